//! `/metrics` of `joblet serve`, read by the Prometheus client library's own parser.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::serve::Server;
use crate::util::scratch;

/// Every sample as `name{label="value",...} value`, sorted labels, as Python's
/// `prometheus_client.parser` reads the text.
fn parse(text: &str) -> Vec<String> {
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test.sh installs python3-prometheus-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn value(samples: &[String], series: &str) -> f64 {
    samples
        .iter()
        .find_map(|s| s.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

const INDEXED: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: counted}
spec:
  completions: 3
  parallelism: 1
  completionMode: Indexed
  backoffLimit: 2
  podFailurePolicy:
    rules:
    - action: Ignore
      onExitCodes: {operator: In, values: [42]}
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "i=$JOB_COMPLETION_INDEX; [ $i = 0 ] || [ -e $TMPDIR/failed-$i ] || { touch $TMPDIR/failed-$i; exit $((i == 1 ? 42 : 1)); }"]
        env: [{name: TMPDIR, value: "DIR"}]
"#;

#[test]
fn metrics_have_the_job_controllers_names_and_move_as_a_job_runs() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let before = parse(&server.ok(&["get", "--raw", "/metrics"]));
    // The process's own metrics are there from the start.
    assert!(
        value(&before, "process_resident_memory_bytes{}") > 0.0,
        "{before:?}"
    );
    assert!(value(&before, "process_cpu_seconds_total{}") >= 0.0);

    let manifest = INDEXED.replace("DIR", &dir.path().display().to_string());
    server.apply(&manifest);
    server.wait_complete("counted");
    let after = parse(&server.ok(&["get", "--raw", "/metrics"]));
    let count = |series: &str| value(&after, series) - value(&before, series);
    // One index at a time: index 1's first pod fails with 42, which the policy ignores
    // (handled by it, not a failure; its replacement is `new`, as upstream counts it), and
    // index 2's with 1 (a failure; its replacement is `recreate_failed`, as a pod failure
    // policy makes the replacement policy `Failed`).
    let expected = [
        (
            r#"jobs_finished_total{completion_mode="Indexed",reason="CompletionsReached",result="succeeded"}"#,
            1.0,
        ),
        (
            r#"job_pods_finished_total{completion_mode="Indexed",result="succeeded"}"#,
            3.0,
        ),
        (
            r#"job_pods_finished_total{completion_mode="Indexed",result="failed"}"#,
            1.0,
        ),
        (
            r#"pod_failures_handled_by_failure_policy_total{action="Ignore"}"#,
            1.0,
        ),
        (
            r#"job_finished_indexes_total{backoffLimit="global",status="succeeded"}"#,
            3.0,
        ),
        (
            r#"job_pods_creation_total{reason="new",status="succeeded"}"#,
            4.0,
        ),
        (
            r#"job_pods_creation_total{reason="recreate_failed",status="succeeded"}"#,
            1.0,
        ),
        (
            r#"terminated_pods_tracking_finalizer_total{event="delete"}"#,
            5.0,
        ),
    ];
    let counted: Vec<(&str, f64)> = (expected.iter())
        .map(|(series, _)| (*series, count(&format!("job_controller_{series}"))))
        .collect();
    assert_eq!(counted, expected, "{after:#?}");
    let syncs = count(
        r#"job_controller_job_syncs_total{action="pods_created",completion_mode="Indexed",result="success"}"#,
    );
    assert!(syncs >= 2.0, "{after:#?}");
    assert_eq!(
        count(
            r#"job_controller_job_sync_duration_seconds_count{action="pods_created",completion_mode="Indexed",result="success"}"#
        ),
        syncs
    );

    // Without the token, refused as the API server refuses it.
    let wrong = server.kubeconfig_with_a_wrong_token(dir.path());
    let refused = Command::new("kubectl")
        .env("KUBECONFIG", &wrong)
        .args(["get", "--raw", "/metrics"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Unauthorized"),
        "{refused:?}"
    );
}
