//! Pods with `runtimeClassName: docker`: containers from images in the Docker daemon's
//! storage (made offline by `scripts/test-images.sh`), through the binary a user runs.

use std::time::Duration;

use crate::serve::{wait_for, Server};
use crate::util::*;

/// Built in layers FROM the busybox image: a file added, a user added to `/etc/passwd`, a
/// file deleted, `USER app`.
const LAYERED: &str = "localhost/joblet-test/layered:1";

/// An Indexed Job of a many-layered image, an init container filling an emptyDir: each pod
/// sees the image as its layers make it (the added file, not the deleted one), runs as the
/// image's user found in its layers, through the image's entrypoint.
#[test]
fn a_layered_image_runs_as_docker_built_it() {
    let dir = scratch();
    let manifest = format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: layered
spec:
  completions: 2
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      initContainers:
        - name: prep
          image: {LAYERED}
          command: ["/bin/sh", "-c", "echo from-init > /shared/note"]
          volumeMounts: [{{name: shared, mountPath: /shared}}]
      containers:
        - name: main
          image: {LAYERED}
          args: ["echo $JOB_COMPLETION_INDEX $(cat layer.txt) $(cat /shared/note) uid=$(busybox id -u) head=$(test -e /bin/head && echo kept || echo deleted) $MODE"]
          volumeMounts: [{{name: shared, mountPath: /shared}}]
      volumes: [{{name: shared, emptyDir: {{}}}}]
"#
    );
    let run = run(dir.path(), &manifest, &["--runtime", "docker", "--logs"]);
    run.expect_code(0);
    let mut lines = streamed_log_lines(&run.stdout());
    lines.sort();
    assert_eq!(
        lines,
        [
            "0 layered from-init uid=1000 head=deleted image",
            "1 layered from-init uid=1000 head=deleted image"
        ],
        "{}",
        run.context()
    );
}

/// A Docker daemon that does not answer is said before anything runs, by `run` and `serve`.
#[test]
fn an_unreachable_docker_daemon_is_said_before_anything_runs() {
    let dir = scratch();
    let file = dir.path().join("job.yaml");
    std::fs::write(&file, job("nowhere", "", "true")).unwrap();
    let state = dir.path().join("state");
    let nowhere = format!("unix://{}", dir.path().join("no-daemon.sock").display());
    let (run, serve) = run_and_serve_with(
        ("DOCKER_HOST", nowhere.as_ref()),
        &file,
        &state,
        &["--runtime", "docker"],
        &["--runtime", "docker"],
    );
    run.expect_code(2);
    // The rest is the docker client's own words, which name the socket.
    let said = "error: runtimeClassName docker: the Docker daemon does not answer: ";
    assert!(
        run.stderr().starts_with(said) && run.stderr().contains(&nowhere),
        "{}",
        run.context()
    );
    assert!(!state.exists(), "nothing ran, nothing was stored");

    serve.expect_code(1);
    assert!(
        (serve.stderr()).starts_with("error: --runtime docker: the Docker daemon does not answer"),
        "{}",
        serve.context()
    );
}

/// `serve --runtime docker` killed mid-Job: its containers run on under the state
/// directory's supervisor, the next `serve` takes them up, and each index runs once.
#[test]
fn a_killed_server_finds_its_containers_running_and_runs_nothing_twice() {
    let dir = scratch();
    let state = dir.path().join("state");
    let out = dir.path().join("out");
    let mut server = Server::start_with(dir.path(), &state, &["--runtime", "docker"]);
    server.apply(&format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: adopted
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: localhost/joblet-test/entry:1
          args: ["echo $JOB_COMPLETION_INDEX >> /out/started; sleep 2; echo $JOB_COMPLETION_INDEX >> /out/done"]
          volumeMounts: [{{name: out, mountPath: /out}}]
      volumes: [{{name: out, hostPath: {{path: "{}", type: DirectoryOrCreate}}}}]
"#,
        out.display()
    ));
    wait_for("every index started", Duration::from_secs(20), || {
        numbers(&out.join("started")).len() == 3
    });
    server.kill();
    let server = Server::start_with(dir.path(), &state, &["--runtime", "docker"]);
    server.wait_complete("adopted");
    let sorted = |file: &str| {
        let mut indexes = numbers(&out.join(file));
        indexes.sort();
        indexes
    };
    assert_eq!(sorted("started"), [0, 1, 2]);
    assert_eq!(sorted("done"), [0, 1, 2]);
    let job = server.json(&["get", "job", "adopted"]);
    assert_eq!(job["status"].get("failed"), None, "{}", job["status"]);
}

/// A pod's `/etc/hosts` is the kubelet's: its name under its subdomain, then its
/// `hostAliases`.
#[test]
fn a_pods_hosts_file_names_it_and_its_aliases() {
    let dir = scratch();
    let manifest = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: hosts
spec:
  completionMode: Indexed
  completions: 1
  template:
    spec:
      restartPolicy: Never
      subdomain: workers
      hostAliases: [{ip: 10.1.2.3, hostnames: [db.local, cache.local]}]
      containers:
        - name: main
          image: localhost/joblet-test/entry:1
          args: ["cat /etc/hosts"]
"#;
    let run = run(dir.path(), manifest, &["--runtime", "docker", "--logs"]);
    run.expect_code(0);
    let lines = streamed_log_lines(&run.stdout());
    assert_eq!(
        lines,
        [
            "# Kubernetes-managed hosts file.",
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            "fe00::0\tip6-localnet",
            "fe00::0\tip6-mcastprefix",
            "fe00::1\tip6-allnodes",
            "fe00::2\tip6-allrouters",
            "127.0.0.1\thosts-0.workers.default.svc.cluster.local\thosts-0",
            "",
            "# Entries added by HostAliases.",
            "10.1.2.3\tdb.local\tcache.local",
        ],
        "{}",
        run.context()
    );
}

/// A headless Service and an Indexed Job whose pods name it as their subdomain: each pod
/// finds the other by `<hostname>.<subdomain>`, at 127.0.0.1, through `joblet run` (docker)
/// and through `kubectl apply` on `serve` (podman, the Service sent to the supervisor). A
/// pod's name goes with it, as on a cluster: each stays a moment for the other to find it.
#[test]
fn the_pods_of_a_headless_service_find_each_other_by_name() {
    let manifest = |runtime: &str| {
        format!(
            r#"apiVersion: v1
kind: Service
metadata:
  name: workers
spec:
  clusterIP: None
  selector:
    job-name: names
---
apiVersion: batch/v1
kind: Job
metadata:
  name: names
spec:
  completions: 2
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      runtimeClassName: {runtime}
      subdomain: workers
      containers:
        - name: main
          image: localhost/joblet-test/entry:1
          args: ["peer=names-$((1 - JOB_COMPLETION_INDEX)).workers; until busybox grep -q \"\\s$peer\\b\" /etc/hosts; do sleep 0.1; done; busybox ping -c 1 -W 1 $peer 2>/dev/null | busybox head -1; sleep 2"]
"#
        )
    };
    let resolved = |lines: &[String]| {
        let mut lines: Vec<&String> = lines.iter().filter(|l| l.starts_with("PING")).collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "PING names-0.workers (127.0.0.1): 56 data bytes",
                "PING names-1.workers (127.0.0.1): 56 data bytes"
            ]
        );
    };
    let dir = scratch();
    let run = run(dir.path(), &manifest("docker"), &["--logs"]);
    run.expect_code(0);
    resolved(&streamed_log_lines(&run.stdout()));

    let dir = scratch();
    let server = Server::start(dir.path());
    server.apply(&manifest("podman"));
    server.wait_complete("names");
    let logs: Vec<String> = ["names-0", "names-1"]
        .iter()
        .flat_map(|pod| {
            let selector = format!("batch.kubernetes.io/job-completion-index={}", &pod[6..]);
            let out = server.ok(&["logs", "-l", &selector]);
            out.lines().map(str::to_string).collect::<Vec<_>>()
        })
        .collect();
    resolved(&logs);
}
