//! Real processes, real signals: the runtime as the node agent of a single machine.

use std::time::{Duration, Instant};

use joblet_api::k8s_openapi::api::core::v1::{ConfigMap, ContainerStatus, Pod, PodStatus};
use joblet_api::k8s_openapi::jiff::Timestamp;
use serde_json::json;
use tokio::sync::mpsc;

use super::*;

pub(crate) struct SystemClock;
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        Timestamp::new(since.as_secs() as i64, since.subsec_nanos() as i32).unwrap()
    }
}

struct Harness {
    runtime: Runtime,
    updates: mpsc::UnboundedReceiver<PodUpdate>,
    dir: tempfile::TempDir,
}

fn harness(stream_logs: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let config = RuntimeConfig {
        log_dir: dir.path().join("logs"),
        containers_dir: dir.path().join("containers"),
        restart_backoff_base: Duration::from_millis(50),
        restart_backoff_max: Duration::from_millis(200),
        stream_logs,
    };
    Harness {
        runtime: Runtime::new(config, Arc::new(SystemClock), tx).unwrap(),
        updates: rx,
        dir,
    }
}

fn pod(name: &str, spec: serde_json::Value) -> Pod {
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "default", "uid": "u1"}, "spec": spec}),
    )
    .unwrap()
}

fn shell(name: &str, script: &str) -> serde_json::Value {
    json!({"name": name, "image": "busybox", "command": ["sh", "-c", script]})
}

impl Harness {
    /// Waits for the pod's terminal status (within a generous bound).
    async fn finish(&mut self, name: &str) -> PodStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let update = tokio::time::timeout(left, self.updates.recv())
                .await
                .expect("pod did not finish in time")
                .expect("runtime closed");
            let phase = update.status.phase.as_deref().unwrap_or("");
            if update.name == name && (phase == "Succeeded" || phase == "Failed") {
                return update.status;
            }
        }
    }

    async fn wait_running(&mut self, name: &str) {
        loop {
            let update = self.updates.recv().await.unwrap();
            if update.name == name && update.status.phase.as_deref() == Some("Running") {
                return;
            }
        }
    }

    fn log(&self, pod: &str, container: &str, restart: i32) -> String {
        let dir = self.dir.path().join("logs");
        std::fs::read_to_string(crate::log_path(&dir, "default", pod, container, restart))
            .unwrap_or_default()
    }
}

fn main_status(status: &PodStatus) -> &ContainerStatus {
    &status.container_statuses.as_ref().unwrap()[0]
}

fn terminated(
    status: &ContainerStatus,
) -> &joblet_api::k8s_openapi::api::core::v1::ContainerStateTerminated {
    status.state.as_ref().unwrap().terminated.as_ref().unwrap()
}

fn process_exists(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[tokio::test]
async fn a_succeeding_container_logs_and_reports_its_environment() {
    let mut h = harness(false);
    h.runtime.start(vec![pod("ok", json!({"restartPolicy": "Never", "hostname": "job-3", "containers": [
        {"name": "main", "image": "x", "command": ["sh", "-c", "echo out $HOSTNAME $(GREETING); echo err >&2"],
         "env": [{"name": "GREETING", "value": "hello"}]}]}))]);
    let status = h.finish("ok").await;
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let ips = |list: Option<Vec<String>>| list.unwrap_or_default();
    assert_eq!(
        (
            ips(status
                .host_ips
                .as_ref()
                .map(|l| l.iter().map(|i| i.ip.clone()).collect())),
            ips(status
                .pod_ips
                .as_ref()
                .map(|l| l.iter().map(|i| i.ip.clone()).collect()))
        ),
        (vec!["127.0.0.1".to_string()], vec!["127.0.0.1".to_string()])
    );
    let t = terminated(main_status(&status));
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    assert_eq!(h.log("ok", "main", 0), "out job-3 hello\nerr\n");
}

#[tokio::test]
async fn exit_codes_and_signal_deaths_are_reported_like_the_kubelet() {
    let mut h = harness(false);
    h.runtime.start(vec![pod(
        "three",
        json!({"restartPolicy": "Never", "containers": [shell("main", "exit 3")]}),
    )]);
    let status = h.finish("three").await;
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert_eq!(terminated(main_status(&status)).exit_code, 3);
    h.runtime.start(vec![pod(
        "killed",
        json!({"restartPolicy": "Never", "containers": [shell("main", "kill -9 $$$$")]}),
    )]);
    let status = h.finish("killed").await;
    let t = terminated(main_status(&status));
    assert_eq!((t.exit_code, t.signal), (137, Some(9)));
}

#[tokio::test]
async fn a_command_that_cannot_start_fails_the_container_with_a_reason() {
    let mut h = harness(false);
    h.runtime.start(vec![pod(
        "missing",
        json!({"restartPolicy": "Never", "containers": [
        {"name": "main", "image": "x", "command": ["no-such-command-joblet"]}]}),
    )]);
    let status = h.finish("missing").await;
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    let t = terminated(main_status(&status));
    assert_eq!(
        (t.exit_code, t.reason.as_deref()),
        (128, Some("StartError"))
    );
    assert_eq!(
        t.message.as_deref(),
        Some("exec: \"no-such-command-joblet\": executable file not found in $PATH")
    );
}

#[tokio::test]
async fn stop_escalates_to_sigkill_after_the_grace_period() {
    let mut h = harness(false);
    h.runtime.start(vec![pod(
        "stubborn",
        json!({"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
        "containers": [shell("main", "trap '' TERM; sleep 60 & wait; sleep 60")]}),
    )]);
    h.wait_running("stubborn").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let asked = Instant::now();
    h.runtime.stop("default", "stubborn", None, None, None);
    let status = h.finish("stubborn").await;
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "SIGKILL came after {waited:?}"
    );
    assert_eq!(terminated(main_status(&status)).exit_code, 137);
    assert_eq!(status.phase.as_deref(), Some("Failed"));
}

#[tokio::test]
async fn nothing_outlives_the_main_process() {
    let mut h = harness(false);
    let pid_file = h.dir.path().join("bg.pid");
    let script = format!("sleep 300 & echo $! > {}", pid_file.display());
    h.runtime.start(vec![pod(
        "bg",
        json!({"restartPolicy": "Never", "containers": [shell("main", &script)]}),
    )]);
    h.finish("bg").await;
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The reaper collects the killed grandchild's zombie only if it is ours; it is the
    // shell's child, re-parented to init, so give the kill a moment to land.
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        !process_exists(pid)
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
    assert!(gone, "background child {pid} outlived its container");
}

#[tokio::test]
async fn on_failure_restarts_in_place_with_back_off() {
    let mut h = harness(false);
    let marker = h.dir.path().join("tried");
    let script = format!(
        "if [ -e {m} ]; then echo second; exit 0; fi; touch {m}; echo first; exit 1",
        m = marker.display()
    );
    h.runtime.start(vec![pod(
        "flaky",
        json!({"restartPolicy": "OnFailure", "containers": [shell("main", &script)]}),
    )]);
    let status = h.finish("flaky").await;
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let main = main_status(&status);
    assert_eq!(main.restart_count, 1);
    assert_eq!(
        main.last_state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        1
    );
    assert_eq!(
        (h.log("flaky", "main", 0), h.log("flaky", "main", 1)),
        ("first\n".into(), "second\n".into())
    );
}

#[tokio::test]
async fn init_containers_run_first_and_a_failing_one_fails_the_pod() {
    let mut h = harness(false);
    let file = h.dir.path().join("order");
    let f = file.display();
    h.runtime.start(vec![pod("ordered", json!({"restartPolicy": "Never",
        "initContainers": [shell("init1", &format!("echo init1 >> {f}")), shell("init2", &format!("echo init2 >> {f}"))],
        "containers": [shell("a", &format!("echo main >> {f}")), shell("b", "true")]}))]);
    assert_eq!(
        h.finish("ordered").await.phase.as_deref(),
        Some("Succeeded")
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "init1\ninit2\nmain\n"
    );
    h.runtime.start(vec![pod("bad-init", json!({"restartPolicy": "Never",
        "initContainers": [shell("init", "exit 2")], "containers": [shell("main", &format!("echo never >> {f}"))]}))]);
    let status = h.finish("bad-init").await;
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    // The main container never started: it stays waiting, as upstream's TerminatePod
    // leaves the containers of a pod that was never initialized.
    let waiting = main_status(&status)
        .state
        .as_ref()
        .unwrap()
        .waiting
        .as_ref();
    assert_eq!(
        waiting.and_then(|w| w.reason.as_deref()),
        Some("PodInitializing")
    );
    assert_eq!(main_status(&status).container_id, None);
}

#[tokio::test]
async fn pod_active_deadline_fails_the_pod() {
    let mut h = harness(false);
    h.runtime.start(vec![pod(
        "slow",
        json!({"restartPolicy": "Never", "activeDeadlineSeconds": 1,
        "containers": [shell("main", "sleep 30")]}),
    )]);
    let status = h.finish("slow").await;
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
}

#[tokio::test]
async fn a_pod_stopped_before_it_starts_never_runs() {
    let mut h = harness(false);
    let marker = h.dir.path().join("ran");
    h.runtime.reserve("default", "early");
    h.runtime.stop("default", "early", None, None, None);
    assert_eq!(
        h.runtime.running(),
        1,
        "a reserved pod counts until it ends"
    );
    let script = format!("touch {}", marker.display());
    h.runtime.start(vec![pod(
        "early",
        json!({"restartPolicy": "Never", "containers": [shell("main", &script)]}),
    )]);
    let status = h.finish("early").await;
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert!(!marker.exists());
    assert_eq!(h.runtime.running(), 0);
}

#[tokio::test]
async fn a_disruption_leaves_its_condition_on_the_pod() {
    let mut h = harness(false);
    h.runtime.start(vec![pod(
        "evicted",
        json!({"restartPolicy": "Never", "containers": [shell("main", "sleep 30")]}),
    )]);
    h.wait_running("evicted").await;
    h.runtime.stop(
        "default",
        "evicted",
        Some(Duration::ZERO),
        Some(Disruption::NODE_SHUTDOWN),
        None,
    );
    let status = h.finish("evicted").await;
    let condition = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget")
        .unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_deref()),
        ("True", Some("TerminationByKubelet"))
    );
    assert_eq!(status.phase.as_deref(), Some("Failed"));
}

/// The image of the podman tests: `scripts/test-images.sh` makes it (as `scripts/test.sh`
/// does before the tests), with an `ENTRYPOINT` (`sh -c`), a `CMD`, a `WORKDIR` and `ENV`.
fn test_image() -> &'static str {
    const IMAGE: &str = "localhost/joblet-test/entry:1";
    // Through the reaper: it takes every child's exit in this process.
    let exists = crate::reaper::Reaper::get()
        .output(std::process::Command::new("podman").args(["image", "exists", IMAGE]))
        .expect("the podman runtime's tests need podman and runc (scripts/test.sh installs them)");
    assert!(
        exists.exit.code == 0,
        "{IMAGE} is missing: run scripts/test-images.sh (scripts/test.sh does)"
    );
    IMAGE
}

#[tokio::test(flavor = "multi_thread")]
async fn a_podman_pod_runs_in_its_image_with_its_entrypoint_variables_and_directory() {
    let mut h = harness(false);
    let image = test_image();
    h.runtime.start(vec![pod("boxed", json!({"restartPolicy": "Never", "runtimeClassName": "podman",
        "hostname": "job-1", "containers": [
        // args alone: the image's entrypoint (sh -c) runs them, not its cmd.
        {"name": "args", "image": image,
         "args": ["echo $MODE $(pwd) $HOSTNAME $WHO; test ! -e /work/../../etc/os-release && test -z \"$CARGO_HOME\""],
         "env": [{"name": "WHO", "value": "pod"}]}]}))]);
    let status = h.finish("boxed").await;
    let t = terminated(main_status(&status));
    assert_eq!(
        (t.exit_code, h.log("boxed", "args", 0).as_str()),
        (0, "image /work job-1 pod\n"),
        "{status:?}"
    );
    assert!(main_status(&status)
        .container_id
        .as_deref()
        .is_some_and(|id| id.starts_with("runc://")));
    // Neither command nor args: the image's entrypoint and cmd; the exit code is the
    // container's.
    h.runtime.start(vec![pod(
        "defaults",
        json!({"restartPolicy": "Never", "runtimeClassName": "podman",
        "containers": [{"name": "main", "image": image}]}),
    )]);
    h.finish("defaults").await;
    assert_eq!(h.log("defaults", "main", 0), "from the image\n");
    h.runtime.start(vec![pod(
        "three",
        json!({"restartPolicy": "Never", "runtimeClassName": "podman",
        "containers": [{"name": "main", "image": image, "command": ["sh", "-c", "exit 3"]}]}),
    )]);
    let status = h.finish("three").await;
    assert_eq!(terminated(main_status(&status)).exit_code, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_podman_pod_leaves_no_container_behind() {
    let mut h = harness(false);
    let image = test_image();
    h.runtime.start(vec![pod("long", json!({"restartPolicy": "Never", "runtimeClassName": "podman",
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": image, "command": ["sh", "-c", "echo up; exec sleep 60"]}]}))]);
    h.wait_running("long").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.log("long", "main", 0).is_empty() {
        assert!(Instant::now() < deadline, "the container never wrote");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    h.runtime.stop("default", "long", None, None, None);
    let status = h.finish("long").await;
    // `sleep`, as the container's init, ignores SIGTERM: SIGKILL after the grace period.
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(terminated(main_status(&status)).exit_code, 137);
    let containers = h.dir.path().join("containers");
    let left: Vec<_> = std::fs::read_dir(&containers)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "runc" && n != "pods")
        .collect();
    assert!(left.is_empty(), "bundles left: {left:?}");
    let pods: Vec<_> = std::fs::read_dir(containers.join("pods"))
        .unwrap()
        .collect();
    assert!(pods.is_empty(), "pod files left: {pods:?}");
    let mut list = std::process::Command::new("runc");
    list.arg("--root").arg(containers.join("runc"));
    let listed = crate::reaper::Reaper::get()
        .output(list.args(["list", "--quiet"]))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_pods_mount_their_volumes_and_wait_for_a_missing_config_map() {
    let mut h = harness(false);
    let image = test_image();
    let host_dir = h.dir.path().join("shared-from-host");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("input"), "from the host").unwrap();
    let script = "cat /in/input; cat /scratch/made-by-init; cat /conf/etc/app.ini; \
        grep -q ' /fast tmpfs ' /proc/mounts && echo fast is tmpfs; \
        echo written > /in/output";
    h.runtime.start(vec![pod("mounted", json!({"restartPolicy": "Never", "runtimeClassName": "podman",
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "fast", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": "in", "hostPath": {"path": host_dir, "type": "Directory"}},
            {"name": "conf", "configMap": {"name": "settings", "items": [{"key": "ini", "path": "etc/app.ini"}]}},
        ],
        "initContainers": [{"name": "init", "image": image, "command": ["sh", "-c", "echo made > /s/made-by-init"],
            "volumeMounts": [{"name": "scratch", "mountPath": "/s"}]}],
        "containers": [{"name": "main", "image": image, "command": ["sh", "-c", script],
            "volumeMounts": [
                {"name": "scratch", "mountPath": "/scratch", "readOnly": true},
                {"name": "fast", "mountPath": "/fast"},
                {"name": "in", "mountPath": "/in"},
                {"name": "conf", "mountPath": "/conf"},
            ]}]}))]);
    // The init container runs; the main one waits for its ConfigMap.
    let waiting = loop {
        let update = h.updates.recv().await.unwrap();
        let statuses = update.status.container_statuses.unwrap_or_default();
        let state = statuses.first().and_then(|s| s.state.clone());
        if let Some(waiting) = state.and_then(|s| s.waiting) {
            if waiting.reason.as_deref() == Some("CreateContainerConfigError") {
                break waiting;
            }
        }
    };
    assert_eq!(
        waiting.message.as_deref(),
        Some("MountVolume.SetUp failed for volume \"conf\" : configmap \"settings\" not found")
    );
    let settings: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings", "namespace": "default"}, "data": {"ini": "level=3"}}))
    .unwrap();
    h.runtime.set_objects(&[settings], &[], &[]);
    let status = h.finish("mounted").await;
    assert_eq!(terminated(main_status(&status)).exit_code, 0, "{status:?}");
    assert_eq!(
        h.log("mounted", "main", 0),
        // The host's file and the ConfigMap's value end without a newline.
        "from the hostmade\nlevel=3fast is tmpfs\n"
    );
    assert_eq!(
        std::fs::read_to_string(host_dir.join("output")).unwrap(),
        "written\n"
    );
    // The pod's own volumes went with it.
    let pods = h.dir.path().join("containers/pods");
    let left: Vec<_> = std::fs::read_dir(&pods).map_or(Vec::new(), |d| d.collect());
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_podman_container_over_its_memory_limit_is_oom_killed() {
    let mut h = harness(false);
    let image = test_image();
    h.runtime.start(vec![pod(
        "hungry",
        json!({"restartPolicy": "Never", "runtimeClassName": "podman",
        "containers": [{"name": "main", "image": image,
            // A string doubling until the limit stops it.
            "command": ["sh", "-c", "a=x; while true; do a=\"$a$a\"; done"],
            "resources": {"limits": {"memory": "16Mi", "cpu": "500m"}}}]}),
    )]);
    let status = h.finish("hungry").await;
    let t = terminated(main_status(&status));
    assert_eq!(
        (t.exit_code, t.reason.as_deref()),
        (137, Some("OOMKilled")),
        "{status:?}"
    );
    // Killed from outside, a container is not OOMKilled.
    h.runtime.start(vec![pod(
        "killed",
        json!({"restartPolicy": "Never", "runtimeClassName": "podman",
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "main", "image": image, "command": ["sleep", "60"],
            "resources": {"limits": {"memory": "16Mi"}}}]}),
    )]);
    h.wait_running("killed").await;
    h.runtime.stop("default", "killed", None, None, None);
    let status = h.finish("killed").await;
    let t = terminated(main_status(&status));
    assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("Error")));
}
