//! One node, as a cluster sees it: requests counted against the machine, pods that wait in
//! `Pending` with the scheduler's reason, the node kubectl lists, and the other documents a
//! Job file carries (a Namespace, a headless Service).

use crate::serve::{wait_for, Server};
use crate::util::{job, run, scratch};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

/// The most intervals open at once, from `start NANOS` and `end NANOS` lines.
fn most_at_once(log: &str) -> i64 {
    let mut moments: Vec<(i64, i64)> = log
        .lines()
        .filter_map(|line| {
            let (what, at) = line.split_once(' ')?;
            let step = if what == "start" { 1 } else { -1 };
            Some((at.trim().parse().ok()?, step))
        })
        .collect();
    // At the same instant an end comes before a start.
    moments.sort();
    let (mut open, mut most) = (0, 0);
    for (_, step) in moments {
        open += step;
        most = most.max(open);
    }
    most
}

const TIMED: &str =
    "echo start $(date +%s%N) >> {dir}/log; sleep 0.3; echo end $(date +%s%N) >> {dir}/log";

/// Pods that each request a CPU run no more at a time than the machine has CPUs, and
/// the others say why they wait.
#[test]
fn pods_requesting_a_cpu_each_run_as_many_at_a_time_as_the_node_has() {
    let dir = scratch();
    let cpus = std::thread::available_parallelism().unwrap().get() as i64;
    let pods = 2 * cpus + 2;
    let manifest = job(
        "cpu-bound",
        &format!("  completions: {pods}\n  parallelism: {pods}"),
        TIMED,
    )
    .replace(
        "          command:",
        "          resources:\n            requests: {cpu: \"1\"}\n          command:",
    );
    let run = run(dir.path(), &manifest, &[]);
    run.expect_code(0);
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(log.lines().count() as i64, 2 * pods, "{log}");
    let most = most_at_once(&log);
    assert!(
        most >= 1 && most <= cpus,
        "{most} at once on {cpus} CPUs: {log}"
    );
    let waited = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod..";
    assert!(run.stdout().contains(waited), "{}", run.context());
}

/// `--max-pods` bounds pods that request nothing.
#[test]
fn max_pods_bounds_the_pods_on_the_node() {
    let dir = scratch();
    let manifest = job("one-by-one", "  completions: 3\n  parallelism: 3", TIMED);
    let run = run(dir.path(), &manifest, &["--max-pods", "1"]);
    run.expect_code(0);
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(most_at_once(&log), 1, "{log}");
    assert!(
        run.stdout().contains("1 Too many pods"),
        "{}",
        run.context()
    );
}

/// A GPU this machine does not have: the pod stays Pending, never counted as a failure,
/// until the Job's deadline ends it.
#[test]
fn a_pod_that_can_never_fit_waits_until_its_jobs_deadline() {
    let dir = scratch();
    let manifest = job(
        "gpu",
        "  activeDeadlineSeconds: 2\n  backoffLimit: 0",
        "true",
    )
    .replace(
        "          command:",
        "          resources:\n            limits: {nvidia.com/gpu: 1}\n          command:",
    );
    let run = run(dir.path(), &manifest, &[]);
    run.expect_code(1);
    let out = run.stdout();
    let never = "FailedScheduling       pod/gpu-";
    assert!(out.contains(never), "{}", run.context());
    assert!(out.contains("0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."), "{}", run.context());
    assert!(out.contains("DeadlineExceeded"), "{}", run.context());
}

/// Through kubectl: a pod whose node selector the node does not satisfy waits with the
/// scheduler's condition and event; one that fits is bound to the node `get nodes` lists.
#[test]
fn kubectl_shows_the_node_and_why_a_pod_waits_for_it() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let nodes = server.json(&["get", "nodes"]);
    let node = &nodes["items"][0];
    let name = node["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(nodes["items"].as_array().unwrap().len(), 1, "{nodes}");
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        name.as_str()
    );
    assert_eq!(node["status"]["capacity"]["pods"], "110");
    let table = server.ok(&["get", "nodes"]);
    assert!(table.contains(&name) && table.contains("Ready"), "{table}");

    server.apply(&job("picky", "", "true").replace(
        "      restartPolicy: Never",
        "      restartPolicy: Never\n      nodeSelector: {disk: ssd}",
    ));
    server.apply(&job("plain", "", "true"));
    server.wait_complete("plain");
    let bound = server.json(&["get", "pods", "-l", "job-name=plain"]);
    assert_eq!(
        bound["items"][0]["spec"]["nodeName"],
        name.as_str(),
        "{bound}"
    );

    let waiting = || server.json(&["get", "pods", "-l", "job-name=picky"]);
    wait_for("the picky pod's condition", TIMEOUT, || {
        waiting()["items"][0]["status"]["conditions"][0]["reason"] == "Unschedulable"
    });
    let pod = waiting()["items"][0].clone();
    assert_eq!(pod["status"]["phase"], "Pending", "{pod}");
    assert!(pod["spec"]["nodeName"].is_null(), "{pod}");
    let condition = &pod["status"]["conditions"][0];
    assert_eq!(condition["type"], "PodScheduled");
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["message"], "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling..");
    let pod_name = pod["metadata"]["name"].as_str().unwrap();
    let described = server.ok(&["describe", "pod", pod_name]);
    assert!(
        described.contains("FailedScheduling") && described.contains("default-scheduler"),
        "{described}"
    );
    let described = server.ok(&["describe", "node", &name]);
    assert!(
        described.contains("Allocatable:") && described.contains("Allocated resources:"),
        "{described}"
    );
    // Deleted while it waits: gone, and its Job counts it failed.
    server.ok(&["delete", "pod", pod_name]);
    wait_for("the Job to count the deleted pod", TIMEOUT, || {
        server.json(&["get", "job", "picky"])["status"]["failed"] == 1
    });
}

/// A template that names its node bypasses the scheduler: this machine's name runs (or,
/// asking for more than the machine has, is rejected by the kubelet and fails), any other
/// waits for a node that never comes, until the deadline.
#[test]
fn a_template_naming_a_node_runs_there_or_waits_for_it() {
    let dir = scratch();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let named = |name: &str, node: &str| {
        job(
            name,
            "  activeDeadlineSeconds: 3\n  backoffLimit: 0",
            "true",
        )
        .replace(
            "      restartPolicy: Never",
            &format!("      restartPolicy: Never\n      nodeName: {node}"),
        )
    };
    // More than the machine has: the kubelet rejects it, and the pod fails.
    let oversized = named("oversized", host.trim()).replace(
        "image: busybox",
        "image: busybox\n          resources: {requests: {cpu: 64}}",
    );
    let manifest = format!(
        "{}---\n{}---\n{oversized}",
        named("here", host.trim()),
        named("elsewhere", "no-such-node")
    );
    let run = run(dir.path(), &manifest, &[]);
    run.expect_code(1);
    let out = run.stdout();
    let summary = |name: &str| {
        out.lines()
            .rev()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(summary("here").contains("Complete"), "{}", run.context());
    assert!(summary("elsewhere").contains("Failed"), "{}", run.context());
    assert!(summary("oversized").contains("Failed"), "{}", run.context());
    assert!(
        out.contains("OutOfcpu               pod/oversized-"),
        "{}",
        run.context()
    );
    assert!(
        out.contains(
            "Node didn't have enough resource: cpu, requested: 64000, used: 0, capacity: "
        ),
        "{}",
        run.context()
    );
    assert!(
        out.contains("OutOfcpu: Pod was rejected: Node didn't have enough resource: cpu"),
        "{}",
        run.context()
    );
    // The failure counts at once, not at the deadline.
    assert!(
        out.contains("BackoffLimitExceeded   job/oversized"),
        "{}",
        run.context()
    );
    assert!(!out.contains("FailedScheduling"), "{}", run.context());
}

/// A file as written for a cluster: a Namespace first, a headless Service for the pods'
/// names, and an Indexed Job in that namespace. The Job runs; the Service is accepted with
/// what joblet does not do for it.
#[test]
fn a_job_file_with_its_namespace_and_headless_service_runs() {
    let dir = scratch();
    let run = run(dir.path(), TRAINING, &["-o", "json"]);
    run.expect_code(0);
    assert_eq!(run.job()["metadata"]["namespace"], "training");
    assert_eq!(run.job()["status"]["succeeded"], 2, "{}", run.context());
    assert!(
        run.stderr().contains("Warning: Service \"workers\": accepted, no DNS server: podman and docker pods find its name and its pods' (hostname.subdomain) in their /etc/hosts"),
        "{}",
        run.context()
    );
    // What a cluster refuses is refused here too, before anything runs.
    let bad = TRAINING.replace("name: training}", "name: Training}");
    let run = crate::util::run(dir.path(), &bad, &[]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("Namespace \"Training\" is invalid: metadata.name: Invalid value: \"Training\": a lowercase RFC 1123 label"),
        "{}",
        run.context()
    );
}

/// The same file through `kubectl apply` on `serve`: the Namespace, the Service (listed
/// with upstream's columns) and the Job are created, and the Job runs.
#[test]
fn kubectl_applies_a_job_file_with_its_namespace_and_headless_service() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let run = server.kubectl_with(&["apply", "-f", "-"], Some(TRAINING));
    run.expect_code(0);
    assert_eq!(
        run.stdout(),
        "namespace/training created\nservice/workers created\njob.batch/train created\n"
    );
    assert!(
        run.stderr()
            .contains("Warning: Service \"workers\": accepted, no DNS server"),
        "{}",
        run.context()
    );
    server.ok(&[
        "wait",
        "-n",
        "training",
        "--for=condition=complete",
        "job/train",
        "--timeout=30s",
    ]);
    let services = server.ok(&["get", "svc", "-n", "training", "-o", "wide"]);
    let row: Vec<&str> = services
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        [row[0], row[1], row[2], row[3], row[4], row[6]],
        [
            "workers",
            "ClusterIP",
            "None",
            "<none>",
            "<none>",
            "job-name=train"
        ],
        "{services}"
    );
    server.ok(&["delete", "namespace", "training"]);
    assert_eq!(server.ok(&["get", "svc", "-A", "-o", "name"]), "");
}

const TRAINING: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: training}
---
apiVersion: v1
kind: Service
metadata: {name: workers, namespace: training}
spec:
  clusterIP: None
  selector: {job-name: train}
---
apiVersion: batch/v1
kind: Job
metadata: {name: train, namespace: training}
spec:
  completions: 2
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      subdomain: workers
      restartPolicy: Never
      containers:
      - name: worker
        image: busybox
        command: ["sh", "-c", "test \"$HOSTNAME\" = train-$JOB_COMPLETION_INDEX"]
"#;

/// A value of the wrong type (a YAML 1.1 `yes` in a list of strings) and a quantity that
/// does not parse are decoding errors, worded as the API server's decoder words them,
/// through kubectl on `serve` (400 BadRequest) and through `joblet run`, before anything
/// runs.
#[test]
fn wrong_types_and_bad_quantities_are_refused_as_the_decoder_words_them() {
    let dir = scratch();
    let typed = job("typed", "", "true").replace(
        "command: [\"sh\", \"-c\", \"true\"]",
        "command: [\"echo\", yes]",
    );
    assert!(typed.contains("yes]"), "{typed}");
    let quantity = job("sized", "", "true").replace(
        "image: busybox",
        "image: busybox\n          resources: {requests: {cpu: 2x}}",
    );
    assert!(quantity.contains("2x"), "{quantity}");
    let wrong_type = "json: cannot unmarshal bool into Go struct field Container.spec.template.spec.containers.command of type string";
    let bad_quantity = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

    for (manifest, said) in [(&typed, wrong_type), (&quantity, bad_quantity)] {
        let refused = run(dir.path(), manifest, &[]);
        refused.expect_code(2);
        let ending = format!("document 1: {said}\n");
        assert!(refused.stderr().ends_with(&ending), "{}", refused.context());
    }

    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    let server = Server::start(&served);
    for (manifest, said) in [(&typed, wrong_type), (&quantity, bad_quantity)] {
        let created = server.kubectl_with(&["create", "-f", "-"], Some(manifest));
        created.expect_code(1);
        assert_eq!(
            created.stderr(),
            format!("Error from server (BadRequest): error when creating \"STDIN\": Job in version \"v1\" cannot be handled as a Job: {said}\n")
        );
    }
    assert_eq!(server.ok(&["get", "jobs", "-o", "name"]), "");
}
