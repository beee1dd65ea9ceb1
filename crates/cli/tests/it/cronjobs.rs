//! CronJobs in `joblet run`: checked as the API server checks them, and with `--once` their
//! next scheduled Job run now, named and annotated as the CronJob controller makes it.

use std::time::Duration;

use crate::serve::wait_for;
use crate::util::{joblet, run, scratch};

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
fn a_cronjob_runs_on_its_schedule_across_a_real_minute_until_stopped() {
    let dir = scratch();
    let manifest = NIGHTLY
        .replace("0 3 * * *", "* * * * *")
        .replace("name: nightly-report", "name: every-minute");
    let file = dir.path().join("cron.yaml");
    std::fs::write(&file, manifest).unwrap();
    let out = dir.path().join("out");
    let start = || {
        joblet()
            .args(["run", "-f"])
            .arg(&file)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let child = start();
    // The next minute boundary comes within 60 s; its Job runs and ends.
    wait_for(
        "a scheduled Job to run and end",
        Duration::from_secs(80),
        || {
            std::fs::read_to_string(&out)
                .unwrap_or_default()
                .contains("SawCompletedJob")
        },
    );
    let (code, stderr) = crate::util::interrupt(child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains(
            r#"cronjob every-minute: on schedule "* * * * *" (Europe/Paris) until stopped (Ctrl-C)"#
        ),
        "{stderr}"
    );
    let stdout = std::fs::read_to_string(&out).unwrap();
    let created = (stdout.lines())
        .find_map(|l| l.split("Created job ").nth(1))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(created.starts_with("every-minute-"), "{stdout}");
    let summary = (stdout.lines())
        .find(|l| l.starts_with(created))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        summary.contains("Complete") && summary.contains("1/1"),
        "{summary}"
    );
    // The Job ran its template's command: its log is in the run directory.
    let logs: Vec<String> = std::fs::read_dir(dir.path().join("state/logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".log"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(
        logs[0].starts_with(&format!("default_{created}-")),
        "{logs:?}"
    );

    // Run again on the same directory: the same CronJob goes on, its last scheduled time
    // kept (not run again) and its Job still its own.
    let before = stored_cron_job(dir.path());
    let (code, stderr) = crate::util::interrupt({
        let child = start();
        std::thread::sleep(Duration::from_millis(1500));
        child
    });
    assert_eq!(code, Some(130), "{stderr}");
    let after = stored_cron_job(dir.path());
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(
        after["metadata"]["creationTimestamp"],
        before["metadata"]["creationTimestamp"]
    );
    let last = |c: &serde_json::Value| {
        c["status"]["lastScheduleTime"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(last(&after) >= last(&before), "{after}");
}

fn stored_cron_job(dir: &std::path::Path) -> serde_json::Value {
    let db = rusqlite::Connection::open(dir.join("state/state.db")).unwrap();
    let body: String = db
        .query_row(
            "SELECT body FROM objects WHERE kind = 'CronJob' AND name = 'every-minute'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_cronjob_with_a_bad_schedule_is_refused_before_anything_runs() {
    let dir = scratch();
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
