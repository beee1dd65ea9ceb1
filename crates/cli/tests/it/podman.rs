//! Pods with `runtimeClassName: podman`: containers from images (made offline by
//! `scripts/test-images.sh`), through the binary a user runs.

use std::time::Duration;

use crate::serve::wait_for;
use crate::util::*;

const TIMEOUT: Duration = Duration::from_secs(20);

const IMAGE: &str = "localhost/joblet-test/entry:1";

/// A Job whose pods run under the podman runtime (`restartPolicy: Never`); `spec` holds
/// indented lines of the Job's spec, `pod` those of the pod's (its containers).
fn podman_job(name: &str, spec: &str, pod: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n{spec}  template:\n    spec:\n      runtimeClassName: podman\n      restartPolicy: Never\n{pod}"
    )
}

/// An Indexed Job whose containers leave their command to the image: the image's
/// entrypoint runs the args, inside the image's filesystem, with the index the controller
/// gives each pod.
#[test]
fn an_indexed_job_runs_in_its_image_with_the_images_entrypoint() {
    let dir = scratch();
    let manifest = podman_job(
        "boxed",
        r#"  completions: 3
  parallelism: 3
  completionMode: Indexed
"#,
        &format!(
            r#"      containers:
        - name: main
          image: {IMAGE}
          args: ["echo index $JOB_COMPLETION_INDEX in $(pwd) with $MODE; test ! -e {{dir}}/job.yaml"]
"#
        ),
    );
    let run = run(dir.path(), &manifest, &["--logs", "-o", "json"]);
    run.expect_code(0);
    // The streamed lines come first, then the Job as JSON.
    let stdout = run.stdout();
    let json = &stdout[stdout.find("\n{").map_or(0, |i| i + 1)..];
    let job: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(job["status"]["succeeded"], 3, "{job}");
    assert_eq!(job["status"]["completedIndexes"], "0-2");
    let mut lines = streamed_log_lines(&stdout);
    lines.sort();
    assert_eq!(
        lines,
        [
            "index 0 in /work with image",
            "index 1 in /work with image",
            "index 2 in /work with image"
        ]
    );
}

#[test]
fn an_unknown_runtime_class_is_refused_before_anything_runs() {
    let dir = scratch();
    let manifest = job("gvisor", "", "true").replace(
        "      restartPolicy: Never",
        "      runtimeClassName: gvisor\n      restartPolicy: Never",
    );
    let run = run(dir.path(), &manifest, &[]);
    run.expect_code(2);
    assert!(
        run.stderr().contains(
            "spec.template.spec.runtimeClassName: Unsupported value: \"gvisor\": supported values: \"host\", \"podman\", \"docker\""
        ),
        "{}",
        run.stderr()
    );
}

/// A ConfigMap beside the Job in one file, mounted as files; an emptyDir an init container
/// fills and the main container reads.
#[test]
fn volumes_carry_a_config_map_and_an_init_containers_work_to_the_main_container() {
    let dir = scratch();
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {greeting: hello}\n---\n";
    let job = podman_job(
        "mounted",
        "",
        &format!(
            r#"      volumes:
        - name: work
          emptyDir: {{}}
        - name: conf
          configMap:
            name: settings
      initContainers:
        - name: fetch
          image: {IMAGE}
          args: ["echo fetched > /work/data"]
          volumeMounts: [{{name: work, mountPath: /work}}]
      containers:
        - name: main
          image: {IMAGE}
          imagePullPolicy: Never
          args: ["echo $(cat /etc/app/greeting) $(cat /work/data)"]
          volumeMounts:
            - {{name: work, mountPath: /work}}
            - {{name: conf, mountPath: /etc/app, readOnly: true}}
"#
        ),
    );
    let manifest = format!("{config_map}{job}");
    let run = run(dir.path(), &manifest, &["--logs"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains("/main] hello fetched\n"),
        "{}",
        run.stdout()
    );
}

/// A container over its memory limit is `OOMKilled` (137), and a `podFailurePolicy` rule on
/// that exit code fails the Job at once, as on a cluster.
#[test]
fn a_memory_limit_ends_oom_killed_and_a_failure_policy_matches_it() {
    let dir = scratch();
    let manifest = podman_job(
        "hungry",
        r#"  backoffLimit: 5
  podFailurePolicy:
    rules:
      - action: FailJob
        onExitCodes: {containerName: main, operator: In, values: [137]}
"#,
        &format!(
            r#"      containers:
        - name: main
          image: {IMAGE}
          args: ["a=x; while true; do a=\"$a$a\"; done"]
          resources:
            limits: {{memory: 16Mi}}
"#
        ),
    );
    let run = run(dir.path(), &manifest, &[]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains("PodFailed")
            && out.contains("container main exited with code 137 (OOMKilled)"),
        "{out}"
    );
    assert!(
        out.contains("failed with exit code 137 matching FailJob rule at index 0"),
        "{out}"
    );
}

/// Through kubectl on `serve`: a container whose supervisor is killed does not run on
/// unwatched; the next supervisor ends it and the pod is recorded lost, as a failed node's.
#[test]
fn a_killed_supervisors_containers_are_ended_by_the_next_one() {
    let dir = scratch();
    let state = dir.path().join("state");
    let server = crate::serve::Server::start(dir.path());
    let marker = format!("boxed-marker-{}", std::process::id());
    server.apply(&podman_job(
        "boxed",
        r#"  backoffLimit: 0
"#,
        &format!(
            r#"      containers:
        - name: main
          image: {IMAGE}
          args: ["export MARK={marker}; sleep 60"]
"#
        ),
    ));
    wait_for("the container running", TIMEOUT, || {
        !processes_with(&marker).is_empty()
    });
    let logs = server.ok(&["get", "pods", "-l", "job-name=boxed", "--no-headers"]);
    assert!(logs.contains("Running"), "{logs}");
    let pid = std::fs::read_to_string(state.join("supervisor.pid")).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid.trim().parse().unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the container ended", TIMEOUT, || {
        processes_with(&marker).is_empty()
    });
    let job = server.json(&["get", "job", "boxed"]);
    wait_for("the Job failed", TIMEOUT, || {
        server.json(&["get", "job", "boxed"])["status"]["failed"] == 1
    });
    let listed = std::process::Command::new("runc")
        .arg("--root")
        .arg(state.join("containers/runc"))
        .args(["list", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "", "{job}");
}

/// A manifest as written for a cluster (no runtimeClassName, no command) runs in its image
/// under `--runtime podman`, which is recorded in its template.
#[test]
fn the_runtime_flag_runs_a_clusters_manifest_in_its_image() {
    let dir = scratch();
    let manifest = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: plain}}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: main, image: {IMAGE}}}]\n"
    );
    let run = run(
        dir.path(),
        &manifest,
        &["--runtime", "podman", "--logs", "-o", "json"],
    );
    run.expect_code(0);
    let stdout = run.stdout();
    assert!(stdout.contains("/main] from the image\n"), "{stdout}");
    let job: serde_json::Value =
        serde_json::from_str(&stdout[stdout.find("\n{").unwrap()..]).unwrap();
    assert_eq!(
        job["spec"]["template"]["spec"]["runtimeClassName"],
        "podman"
    );

    // On the host, the same manifest lacks what only an image gives.
    let on_host = run_in(dir.path(), "host", &manifest);
    on_host.expect_code(2);
    assert!(
        on_host
            .stderr()
            .contains("containers[0].command: Required value"),
        "{}",
        on_host.context()
    );
}

fn run_in(dir: &std::path::Path, runtime: &str, manifest: &str) -> Run {
    let dir = dir.join(runtime);
    std::fs::create_dir(&dir).unwrap();
    run(&dir, manifest, &["--runtime", runtime])
}

/// Without podman, `run` and `serve` say what to install before anything runs.
#[test]
fn a_missing_engine_is_named_before_anything_runs() {
    let dir = scratch();
    let empty = dir.path().join("no-tools");
    std::fs::create_dir(&empty).unwrap();
    let manifest = podman_job(
        "nowhere",
        "",
        &format!("      containers: [{{name: main, image: {IMAGE}}}]\n"),
    );
    let file = dir.path().join("job.yaml");
    std::fs::write(&file, manifest).unwrap();
    let state = dir.path().join("state");
    let (run, serve) = run_and_serve_with(
        ("PATH", empty.as_os_str()),
        &file,
        &state,
        &[],
        &["--runtime", "podman"],
    );
    run.expect_code(2);
    assert_eq!(
        run.stderr(),
        "error: runtimeClassName podman: podman is not installed: the podman runtime needs podman and runc (apt-get install podman runc)\n"
    );
    assert!(!state.exists(), "nothing ran, nothing was stored");

    serve.expect_code(1);
    assert!(
        serve
            .stderr()
            .starts_with("error: --runtime podman: podman is not installed"),
        "{}",
        serve.context()
    );
}

/// `kubectl create job --image` on `serve --runtime podman`: the image's own command runs.
#[test]
fn kubectl_create_job_runs_the_image_on_a_podman_server() {
    let dir = scratch();
    let server = crate::serve::Server::start_with(
        dir.path(),
        &dir.path().join("state"),
        &["--runtime", "podman"],
    );
    server.ok(&["create", "job", "hello", &format!("--image={IMAGE}")]);
    server.wait_complete("hello");
    assert_eq!(server.ok(&["logs", "job/hello"]), "from the image\n");
    let class = server.ok(&[
        "get",
        "job",
        "hello",
        "-o",
        "jsonpath={.spec.template.spec.runtimeClassName}",
    ]);
    assert_eq!(class, "podman");
}

/// An image that cannot be had leaves the pod Pending, its containers waiting as the
/// kubelet's (a failed pull: `ErrImagePull`, then `ImagePullBackOff`; `Never`:
/// `ErrImageNeverPull`), with the kubelet's events; no pod failure is counted, and the Job's
/// `activeDeadlineSeconds` ends it.
#[test]
fn a_missing_image_waits_in_pending_until_the_deadline() {
    let dir = scratch();
    let server = crate::serve::Server::start(dir.path());
    let missing = "localhost/joblet-test/missing:1";
    server.apply(&podman_job(
        "absent",
        "  backoffLimit: 0\n  activeDeadlineSeconds: 12\n",
        &format!(
            r#"      containers:
        - {{name: pulled, image: "{missing}", imagePullPolicy: IfNotPresent}}
        - {{name: never, image: "{missing}", imagePullPolicy: Never}}
"#
        ),
    ));
    let waiting = |pod: &serde_json::Value, name: &str| -> String {
        let statuses = pod["status"]["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let status = statuses
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_default();
        status["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let mut seen = std::collections::BTreeSet::new();
    wait_for("the pull backing off", TIMEOUT, || {
        let pods = server.json(&["get", "pods", "-l", "job-name=absent"]);
        let pod = &pods["items"][0];
        assert_eq!(pod["status"]["phase"], "Pending", "{pod}");
        seen.insert(waiting(pod, "pulled"));
        seen.contains("ImagePullBackOff") && waiting(pod, "never") == "ErrImageNeverPull"
    });
    let job = server.json(&["get", "job", "absent"]);
    assert_eq!(job["status"]["active"], 1, "{job}");
    assert!(
        job["status"]["failed"].is_null(),
        "a waiting pod is no failure: {job}"
    );
    let events = server.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=Pod",
    ]);
    for said in [
        &format!("Failed to pull image \"{missing}\": "),
        "Error: ErrImagePull",
        &format!("Back-off pulling image \"{missing}\""),
        "Error: ImagePullBackOff",
        &format!("Container image \"{missing}\" is not present with pull policy of Never"),
        "Error: ErrImageNeverPull",
    ] {
        assert!(events.contains(said), "{said:?} not in\n{events}");
    }
    wait_for("the deadline", TIMEOUT, || {
        let job = server.json(&["get", "job", "absent"]);
        condition_reasons(&job).contains(&"Failed:DeadlineExceeded".to_string())
    });
}

/// The security context as a node applies it: the user and groups (`fsGroup` owning the
/// volumes), no new privileges, the capabilities left after `drop: [ALL]` (only
/// `NET_BIND_SERVICE`, bit 10, in the bounding set), a read-only root
/// filesystem that still has its writable volumes; and `runAsNonRoot` refusing an image
/// that runs as root, the container waiting with the kubelet's message.
#[test]
fn the_security_context_is_applied_and_run_as_non_root_is_checked() {
    let dir = scratch();
    let hardened = podman_job(
        "hardened",
        "",
        &format!(
            r#"      securityContext: {{runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}}
      volumes: [{{name: scratch, emptyDir: {{}}}}]
      containers:
        - name: main
          image: {IMAGE}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {{drop: [ALL], add: [NET_BIND_SERVICE]}}
          volumeMounts: [{{name: scratch, mountPath: /scratch}}]
          args:
            - |
              while read -r key first rest; do
                case $key in Uid:|Gid:|Groups:|CapBnd:|NoNewPrivs:) echo "$key $first";; esac
              done < /proc/self/status
              (echo > /in-root) 2>/dev/null && echo "root writable" || echo "root read-only"
              echo data > /scratch/file && set -- $(ls -ln /scratch/file) && echo "file $3 $4"
"#
        ),
    );
    let run = run(dir.path(), &hardened, &["--logs"]);
    run.expect_code(0);
    let lines = streamed_log_lines(&run.stdout());
    assert_eq!(
        lines,
        [
            "Uid: 1000",
            "Gid: 3000",
            "Groups: 2000",
            "CapBnd: 0000000000000400",
            "NoNewPrivs: 1",
            "root read-only",
            "file 1000 2000"
        ],
        "{}",
        run.context()
    );

    let dir = scratch();
    let rooted = podman_job(
        "rooted",
        "  activeDeadlineSeconds: 3\n",
        &format!(
            "      securityContext: {{runAsNonRoot: true}}\n      containers: [{{name: main, image: {IMAGE}}}]\n"
        ),
    );
    let run = crate::util::run(dir.path(), &rooted, &[]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.contains(
            "Error: container has runAsNonRoot and image will run as root (pod: \"rooted-"
        ),
        "{out}"
    );
}

/// A `downwardAPI` volume and a `projected` one joining a ConfigMap and the downward API,
/// read inside the container.
#[test]
fn downward_api_and_projected_volumes_hold_the_pods_own_words() {
    let dir = scratch();
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {greeting: hello}\n---\n";
    let job = podman_job(
        "described",
        "",
        &format!(
            r#"      volumes:
        - name: info
          downwardAPI:
            items:
              - {{path: name, fieldRef: {{fieldPath: "metadata.labels['job-name']"}}}}
              - {{path: memory, resourceFieldRef: {{containerName: main, resource: limits.memory, divisor: 1Mi}}}}
        - name: all
          projected:
            sources:
              - configMap: {{name: settings}}
              - downwardAPI: {{items: [{{path: namespace, fieldRef: {{fieldPath: metadata.namespace}}}}]}}
      containers:
        - name: main
          image: {IMAGE}
          resources: {{limits: {{memory: 64Mi}}}}
          args: ["echo $(cat /info/name) $(cat /info/memory) $(cat /all/greeting) $(cat /all/namespace)"]
          volumeMounts:
            - {{name: info, mountPath: /info}}
            - {{name: all, mountPath: /all}}
"#
        ),
    );
    let run = run(dir.path(), &format!("{config_map}{job}"), &["--logs"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains("/main] described 64 hello default\n"),
        "{}",
        run.stdout()
    );
}
