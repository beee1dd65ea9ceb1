//! Pods with `runtimeClassName: docker`: containers from images in the Docker daemon's
//! storage (made offline by `scripts/test-images.sh`), through the binary a user runs.

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
