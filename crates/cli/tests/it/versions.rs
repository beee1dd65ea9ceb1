//! Kubernetes 1.37, and the older minors `--emulated-version` selects.

use crate::serve::Server;
use crate::util::{job, joblet, run, scratch};

#[test]
fn serve_says_it_is_1_37_and_emulates_the_version_it_is_given() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let version = server.kubectl(&["get", "--raw", "/version"]);
    let version: serde_json::Value = serde_json::from_str(&version.stdout()).unwrap();
    assert_eq!(
        (
            &version["minor"],
            &version["emulationMinor"],
            &version["minCompatibilityMinor"]
        ),
        (&"37".into(), &"37".into(), &"36".into())
    );
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
    let version = older.kubectl(&["get", "--raw", "/version"]);
    let version: serde_json::Value = serde_json::from_str(&version.stdout()).unwrap();
    assert_eq!(
        (
            &version["minor"],
            &version["emulationMinor"],
            &version["minCompatibilityMinor"]
        ),
        (&"37".into(), &"35".into(), &"34".into())
    );
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
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: busybox
          restartPolicy: Never
          restartPolicyRules: {rules}
          command: ["sh", "-c", "if [ -e {dir}/{name}-once ]; then exit 0; fi; touch {dir}/{name}-once; exit 42"]
"#,
        dir = dir.display()
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
