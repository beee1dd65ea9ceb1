//! CronJobs in `joblet run`: checked as the API server checks them, and with `--once` their
//! next scheduled Job run now, named and annotated as the CronJob controller makes it.

use crate::util::{run, scratch};

const NIGHTLY: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly-report
spec:
  schedule: "0 3 * * *"
  timeZone: Europe/Paris
  jobTemplate:
    metadata:
      labels: {team: reports}
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: report
            image: busybox
            command: ["sh", "-c", "echo report done"]
"#;

#[test]
fn once_runs_the_next_scheduled_job_now_as_the_controller_names_it() {
    let dir = scratch();
    let run = run(dir.path(), NIGHTLY, &["--once", "-o", "json"]);
    run.expect_code(0);
    let job = run.job();
    let annotation = job["metadata"]["annotations"]
        ["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", run.context()));
    // 03:00 in Paris, with Paris's offset, and the Job named for that minute since the epoch.
    assert!(
        annotation.ends_with("T03:00:00+01:00") || annotation.ends_with("T03:00:00+02:00"),
        "{annotation}"
    );
    let minutes = std::process::Command::new("date")
        .args(["-d", annotation, "+%s"])
        .output()
        .unwrap();
    let minutes: i64 = String::from_utf8_lossy(&minutes.stdout)
        .trim()
        .parse::<i64>()
        .unwrap()
        / 60;
    assert_eq!(job["metadata"]["name"], format!("nightly-report-{minutes}"));
    assert_eq!(job["metadata"]["labels"]["team"], "reports");
    assert_eq!(
        crate::util::condition_reasons(&job).last().unwrap(),
        "Complete:CompletionsReached"
    );
}

#[test]
fn a_cronjob_without_once_or_with_a_bad_schedule_is_refused_before_anything_runs() {
    let dir = scratch();
    let refused = run(dir.path(), NIGHTLY, &[]);
    refused.expect_code(2);
    assert_eq!(
        refused.stderr().trim(),
        r#"error: CronJob "nightly-report" runs on a schedule: --once runs its next scheduled Job now (joblet run does not follow a schedule yet)"#
    );
    let bad = NIGHTLY
        .replace("0 3 * * *", "61 3 * * *")
        .replace("Europe/Paris", "Europe/Pariss");
    let refused = run(dir.path(), &bad, &["--once"]);
    refused.expect_code(2);
    assert_eq!(
        refused.stderr().trim(),
        r#"error: CronJob.batch "nightly-report" is invalid: [spec.schedule: Invalid value: "61 3 * * *": end of range (61) above maximum (59): 61, spec.timeZone: Invalid value: "Europe/Pariss": unknown time zone Europe/Pariss]"#
    );
}
