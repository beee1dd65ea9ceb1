//! Kubernetes 1.37, and the older minors `--emulated-version` selects.

use std::time::Duration;

use crate::serve::{wait_for, Server};
use crate::util::{job, joblet, run, scratch};

#[test]
fn serve_says_it_is_1_37_and_emulates_the_version_it_is_given() {
    let dir = scratch();
    let server = Server::start(dir.path());
    assert_eq!(minors(&server), ["37", "37", "36"]);
    let kubectl = server.kubectl(&["version"]);
    assert!(
        kubectl.stdout().contains("Server Version: v1.37.0-joblet."),
        "{}",
        kubectl.context()
    );

    let older = Server::start_with(
        dir.path(),
        &dir.path().join("older"),
        &["--emulated-version", "1.35"],
    );
    assert_eq!(minors(&older), ["37", "35", "34"]);
}

/// `/version`'s minor, emulated minor and minimum compatible minor.
fn minors(server: &Server) -> Vec<String> {
    let version = server.ok(&["get", "--raw", "/version"]);
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    ["minor", "emulationMinor", "minCompatibilityMinor"]
        .map(|key| version[key].as_str().unwrap_or_default().to_string())
        .to_vec()
}

#[test]
fn a_version_joblet_cannot_emulate_is_refused_as_kube_apiserver_refuses_it() {
    let dir = scratch();
    let state = dir.path().join("state");
    let output = joblet()
        .args(["serve", "--emulated-version", "1.20", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("emulation version 1.20 is not between [1.34, 1.37]"),
        "{stderr}"
    );
    assert!(!state.exists());
}

#[test]
fn an_alpha_field_of_1_37_is_refused_with_its_path_before_anything_runs() {
    let dir = scratch();
    let manifest = job(
        "gang",
        "  completions: 1\n  scheduling: {}",
        "touch {dir}/ran",
    )
        + "          volumeMounts: [{name: scratch, mountPath: /x, bindMountOptions: [nodev]}]\n";
    let refused = run(dir.path(), &manifest, &[]);
    refused.expect_code(2);
    let alpha = "Forbidden: an alpha field of Kubernetes 1.37, off by default there (a cluster would drop it): joblet does not run it";
    for path in [
        "spec.scheduling",
        "spec.template.spec.containers[0].volumeMounts[0].bindMountOptions",
    ] {
        assert!(
            refused.stderr().contains(&format!("{path}: {alpha}")),
            "{path}: {}",
            refused.context()
        );
    }
    assert!(!dir.path().join("ran").exists());
}

/// A Job whose container exits 42 on its first run and 0 on the next, restarted in place on
/// 42 by its rule.
fn ruled_job(name: &str, dir: &std::path::Path, rules: &str) -> String {
    let once = format!("{}/{name}-once", dir.display());
    let script = format!("if [ -e {once} ]; then exit 0; fi; touch {once}; exit 42");
    job(name, "  backoffLimit: 0", &script).replace(
        "          image: busybox\n",
        &format!("          image: busybox\n          restartPolicy: Never\n          restartPolicyRules: {rules}\n"),
    )
}

const RESTART_ON_42: &str = "[{action: Restart, exitCodes: {operator: In, values: [42]}}]";

#[test]
fn a_container_restarted_in_place_by_its_rule_completes_the_job_in_one_pod() {
    let dir = scratch();
    let server = Server::start(dir.path());
    server.apply(&ruled_job("retried", dir.path(), RESTART_ON_42));
    server.wait_complete("retried");
    let job = server.json(&["get", "job/retried"]);
    assert_eq!(
        (&job["status"]["succeeded"], &job["status"]["failed"]),
        (&1.into(), &serde_json::Value::Null)
    );
    let pods = server.json(&["get", "pods", "-l", "job-name=retried"]);
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 1, "restarted in place, not replaced");
    let status = &pods[0]["status"]["containerStatuses"][0];
    assert_eq!(
        (
            &status["restartCount"],
            &status["lastState"]["terminated"]["exitCode"]
        ),
        (&1.into(), &42.into())
    );
    // Pod generation: 1 at create, observed by the scheduler's and the kubelet's conditions.
    let pod = &pods[0];
    assert_eq!(
        (
            &pod["metadata"]["generation"],
            &pod["status"]["observedGeneration"]
        ),
        (&1.into(), &1.into())
    );
    let conditions = pod["status"]["conditions"].as_array().unwrap();
    assert!(
        conditions.iter().all(|c| c["observedGeneration"] == 1),
        "{conditions:?}"
    );

    // NotIn: every code but 0 restarts; a code no rule matches ends the container.
    let not_in = "[{action: Restart, exitCodes: {operator: NotIn, values: [0]}}]";
    server.apply(&ruled_job("not-in", dir.path(), not_in));
    server.wait_complete("not-in");
    let unmatched = "[{action: Restart, exitCodes: {operator: In, values: [7]}}]";
    server.apply(&ruled_job("unmatched", dir.path(), unmatched));
    server.ok(&[
        "wait",
        "--for=condition=failed",
        "job/unmatched",
        "--timeout=30s",
    ]);
    let job = server.json(&["get", "job/unmatched"]);
    assert_eq!(job["status"]["failed"], 1);
}

#[test]
fn a_fail_job_rule_on_42_never_sees_a_container_its_rule_restarts_with_a_growing_back_off() {
    let dir = scratch();
    let script = "date +%s%N >> {dir}/runs; [ $(wc -l < {dir}/runs) -ge 4 ] || exit 42";
    let spec = "  backoffLimit: 0\n  podFailurePolicy:\n    rules:\n      - action: FailJob\n        onExitCodes: {operator: In, values: [42]}";
    let manifest = job("patient", spec, script).replace(
        "          image: busybox\n",
        &format!("          image: busybox\n          restartPolicy: Never\n          restartPolicyRules: {RESTART_ON_42}\n"),
    );
    let ran = run(
        dir.path(),
        &manifest,
        &["--backoff-base", "200ms", "-o", "json"],
    );
    ran.expect_code(0);
    let status = &ran.job()["status"];
    assert_eq!(
        (&status["succeeded"], &status["failed"]),
        (&1.into(), &serde_json::Value::Null)
    );
    // At once, then 200 ms, then 400 ms after each exit (lower bounds: a busy machine only
    // adds to them).
    let runs: Vec<u64> = std::fs::read_to_string(dir.path().join("runs"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(runs.len(), 4);
    let gaps: Vec<u64> = runs.windows(2).map(|w| (w[1] - w[0]) / 1_000_000).collect();
    assert!(gaps[1] >= 200 && gaps[2] >= 400, "gaps in ms: {gaps:?}");
}

#[test]
fn kubectl_gets_the_api_servers_words_for_bad_restart_rules() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let without_policy = ruled_job("nopolicy", dir.path(), RESTART_ON_42).replace(
        "          restartPolicy: Never\n          restartPolicyRules",
        "          restartPolicyRules",
    );
    refused(
        &server,
        &without_policy,
        "spec.template.spec.containers[0].restartPolicy: Required value: must specify restartPolicy when restart rules are used",
    );
    let rules: Vec<String> = (0..21)
        .map(|i| format!("{{action: Restart, exitCodes: {{operator: In, values: [{i}]}}}}"))
        .collect();
    let too_many = ruled_job("many", dir.path(), &format!("[{}]", rules.join(", ")));
    refused(
        &server,
        &too_many,
        "spec.template.spec.containers[0].restartPolicyRules: Too many: 21: must have at most 20 items",
    );
}

/// `kubectl create` of `manifest` fails, saying `error`.
fn refused(server: &Server, manifest: &str, error: &str) {
    let create = server.kubectl_with(&["create", "-f", "-"], Some(manifest));
    create.expect_code(1);
    assert!(create.stderr().contains(error), "{}", create.context());
}

#[test]
fn emulating_1_34_drops_restart_rules_and_the_exit_fails_the_job() {
    let dir = scratch();
    let manifest = ruled_job("old", dir.path(), RESTART_ON_42);
    // 1.34 takes no restartPolicy on a main container (run.rs checks its refusal): the rules
    // alone are dropped, and exit 42 fails the pod, and the Job with it.
    let manifest = manifest.replace(
        "          restartPolicy: Never\n          restartPolicyRules",
        "          restartPolicyRules",
    );
    let ran = run(
        dir.path(),
        &manifest,
        &["--emulated-version", "1.34", "-o", "json"],
    );
    ran.expect_code(1);
    let job = ran.job();
    assert_eq!(job["status"]["failed"], 1, "{}", ran.context());
    assert!(job["spec"]["template"]["spec"]["containers"][0]["restartPolicyRules"].is_null());
    let out_of_range = run(dir.path(), &manifest, &["--emulated-version", "1.20"]);
    out_of_range.expect_code(2);
    assert!(out_of_range
        .stderr()
        .contains("emulation version 1.20 is not between [1.34, 1.37]"));
}

/// A Job whose main container asks, by exiting 42 on its first run, that every container of
/// its pod start over: its init container and sidecar as well.
fn restarting_all_job(dir: &std::path::Path) -> String {
    let dir = dir.display();
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: over
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      initContainers:
        - name: setup
          image: busybox
          command: ["sh", "-c", "echo setup >> {dir}/setups"]
        - name: helper
          image: busybox
          restartPolicy: Always
          command: ["sleep", "600"]
      containers:
        - name: main
          image: busybox
          restartPolicy: Never
          restartPolicyRules: [{{action: RestartAllContainers, exitCodes: {{operator: In, values: [42]}}}}]
          command: ["sh", "-c", "if [ -e {dir}/once ]; then exit 0; fi; touch {dir}/once; exit 42"]
"#
    )
}

#[test]
fn restart_all_containers_reruns_the_init_container_and_completes_the_job_in_one_pod() {
    let dir = scratch();
    let server = Server::start(dir.path());
    server.apply(&restarting_all_job(dir.path()));
    server.wait_complete("over");
    let job = server.json(&["get", "job/over"]);
    assert_eq!(job["status"]["failed"], serde_json::Value::Null, "{job}");
    let pods = server.json(&["get", "pods", "-l", "job-name=over"]);
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 1, "restarted in place, not replaced");
    let status = &pods[0]["status"];
    let setups = std::fs::read_to_string(dir.path().join("setups")).unwrap();
    assert_eq!(setups, "setup\nsetup\n", "the init container ran again");
    let restarts: Vec<_> = (status["initContainerStatuses"].as_array().unwrap().iter())
        .chain(status["containerStatuses"].as_array().unwrap())
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["restartCount"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(restarts, [("setup", 1), ("helper", 1), ("main", 1)]);
    let main = &status["containerStatuses"][0];
    assert_eq!(main["lastState"]["terminated"]["exitCode"], 42);
    let restarting = (status["conditions"].as_array().unwrap().iter())
        .find(|c| c["type"] == "AllContainersRestarting")
        .unwrap();
    assert_eq!(
        (&restarting["status"], &restarting["reason"]),
        (&"False".into(), &"PodCompleted".into())
    );

    // 1.35 knows only Restart.
    let old = run(
        dir.path(),
        &restarting_all_job(dir.path()),
        &["--emulated-version", "1.35"],
    );
    old.expect_code(2);
    assert!(
        old.stderr().contains("spec.template.spec.containers[0].restartPolicyRules[0].action: Unsupported value: \"RestartAllContainers\": supported values: \"Restart\""),
        "{}",
        old.context()
    );
}

#[test]
fn a_suspended_job_loses_its_start_time_takes_new_resources_and_resumes_with_them() {
    let dir = scratch();
    let server = Server::start(dir.path());
    server.apply(&job("paused", "  completions: 1", "sleep 30"));
    let status = |server: &Server| server.json(&["get", "job/paused"])["status"].clone();
    wait_for("the pod to run", Duration::from_secs(30), || {
        status(&server)["active"] == 1
    });
    let first_start = status(&server)["startTime"].clone();
    assert!(first_start.is_string());
    let cpu = r#"[{"op": "add", "path": "/spec/template/spec/containers/0/resources", "value": {"requests": {"cpu": "100m"}}}]"#;
    let label = r#"[{"op": "add", "path": "/spec/template/metadata/labels/zone", "value": "a"}]"#;
    let patch = |server: &Server, json: &str| {
        server.kubectl(&["patch", "job/paused", "--type=json", "-p", json])
    };
    let refused = patch(&server, cpu);
    refused.expect_code(1);
    assert!(
        refused.stderr().contains("spec.template: Invalid value")
            && refused.stderr().contains("field is immutable"),
        "a running Job's template is locked: {}",
        refused.context()
    );

    server.ok(&[
        "patch",
        "job/paused",
        "-p",
        r#"{"spec": {"suspend": true}}"#,
    ]);
    server.ok(&[
        "wait",
        "--for=condition=suspended",
        "job/paused",
        "--timeout=30s",
    ]);
    wait_for("the pod to go", Duration::from_secs(30), || {
        let status = status(&server);
        status["active"].as_i64().unwrap_or(0) == 0 && status["startTime"].is_null()
    });
    patch(&server, cpu).expect_code(0);
    patch(&server, label).expect_code(0);

    server.ok(&[
        "patch",
        "job/paused",
        "-p",
        r#"{"spec": {"suspend": false}}"#,
    ]);
    wait_for("a pod of the new template", Duration::from_secs(30), || {
        let pods = server.json(&["get", "pods", "-l", "job-name=paused,zone=a"]);
        pods["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .any(|p| p["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "100m")
        })
    });
    // Cleared while suspended (above), set again on resume.
    assert!(status(&server)["startTime"].is_string());
}

#[test]
fn emulating_1_34_a_suspended_job_keeps_its_start_time_and_its_template() {
    let dir = scratch();
    let server = Server::start_with(
        dir.path(),
        &dir.path().join("state"),
        &["--emulated-version", "1.34"],
    );
    server.apply(&job("kept", "  completions: 1", "sleep 30"));
    let status = |server: &Server| server.json(&["get", "job/kept"])["status"].clone();
    wait_for("the pod to run", Duration::from_secs(30), || {
        status(&server)["active"] == 1
    });
    let started = status(&server)["startTime"].clone();
    server.ok(&["patch", "job/kept", "-p", r#"{"spec": {"suspend": true}}"#]);
    wait_for("the pod to go", Duration::from_secs(30), || {
        let status = status(&server);
        let suspended = (status["conditions"].as_array().into_iter().flatten())
            .any(|c| c["type"] == "Suspended" && c["status"] == "True");
        suspended && status["active"].as_i64().unwrap_or(0) == 0
    });
    assert_eq!(status(&server)["startTime"], started);
    let cpu = r#"[{"op": "add", "path": "/spec/template/spec/containers/0/resources", "value": {"requests": {"cpu": "100m"}}}]"#;
    let refused = server.kubectl(&["patch", "job/kept", "--type=json", "-p", cpu]);
    refused.expect_code(1);
    assert!(
        refused.stderr().contains("field is immutable"),
        "{}",
        refused.context()
    );
}

#[test]
fn a_graceful_delete_raises_a_pods_generation_and_the_kubelet_observes_it() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let script = "trap 'sleep 2; exit 0' TERM; while :; do sleep 0.1; done";
    server.apply(&job("lingering", "  completions: 1", script));
    let pod_name = || {
        let pods = server.json(&["get", "pods", "-l", "job-name=lingering"]);
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        let running = items.iter().find(|p| p["status"]["phase"] == "Running");
        running.map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
    };
    wait_for("the pod to run", Duration::from_secs(30), || {
        pod_name().is_some()
    });
    let name = pod_name().unwrap();
    let pod = format!("pod/{name}");
    assert_eq!(server.json(&["get", &pod])["metadata"]["generation"], 1);
    server.ok(&["delete", &pod, "--wait=false"]);
    wait_for(
        "the kubelet to observe generation 2",
        Duration::from_secs(30),
        || {
            let pod = server.json(&["get", &pod]);
            pod["metadata"]["generation"] == 2 && pod["status"]["observedGeneration"] == 2
        },
    );
}
