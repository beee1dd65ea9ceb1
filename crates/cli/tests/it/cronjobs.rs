//! CronJobs in `joblet run`: checked as the API server checks them, and with `--once` their
//! next scheduled Job run now, named and annotated as the CronJob controller makes it; and
//! under `joblet serve`, through kubectl as on a cluster.

use std::time::Duration;

use crate::serve::{wait_for, Server};
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
    let minutes = minutes_since_the_epoch(annotation);
    assert_eq!(job["metadata"]["name"], format!("nightly-report-{minutes}"));
    assert_eq!(job["metadata"]["labels"]["team"], "reports");
    assert_eq!(
        crate::util::condition_reasons(&job).last().unwrap(),
        "Complete:CompletionsReached"
    );
}

/// An RFC 3339 time in minutes since the epoch, as `date` reads it (not as joblet does).
fn minutes_since_the_epoch(time: &str) -> i64 {
    let seconds = std::process::Command::new("date")
        .args(["-d", time, "+%s"])
        .output()
        .unwrap();
    let seconds: i64 = String::from_utf8_lossy(&seconds.stdout)
        .trim()
        .parse()
        .unwrap();
    seconds / 60
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

const TICK: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: tick
            image: busybox
            command: ["sh", "-c", "echo tick"]
"#;

/// The cells of `kubectl get cronjobs` rows for `name`: NAME, the five fields of the
/// schedule, TIMEZONE, SUSPEND, ACTIVE, LAST SCHEDULE, AGE.
fn cron_rows<'a>(table: &'a str, name: &str) -> Vec<Vec<&'a str>> {
    (table.lines())
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.first() == Some(&name) && cells.len() == 11)
        .collect()
}

#[test]
fn kubectl_runs_a_cronjob_on_serve_across_a_real_minute_and_its_jobs_go_with_it() {
    let dir = scratch();
    let mut server = Server::start(dir.path());
    let mut watch = server.background(&["get", "cronjobs", "-w"]);
    assert_eq!(server.apply(TICK).trim(), "cronjob.batch/tick created");
    let table = server.ok(&["get", "cj"]);
    assert!(
        table.starts_with("NAME   SCHEDULE    TIMEZONE   SUSPEND   ACTIVE   LAST SCHEDULE   AGE"),
        "{table}"
    );
    assert_eq!(
        cron_rows(&table, "tick")[0][6..10],
        ["<none>", "False", "0", "<none>"]
    );
    let wide = server.ok(&["get", "cronjob", "tick", "-o", "wide"]);
    assert!(wide.contains("CONTAINERS   IMAGES    SELECTOR"), "{wide}");

    // The next minute boundary comes within 60 s: its Job runs to the end, and the
    // CronJob says so.
    let cron = |server: &Server| server.json(&["get", "cronjob", "tick"]);
    wait_for(
        "a scheduled run to succeed",
        Duration::from_secs(80),
        || cron(&server)["status"]["lastSuccessfulTime"].is_string(),
    );
    let status = &cron(&server)["status"];
    let jobs = server.json(&["get", "jobs"]);
    let job = &jobs["items"][0];
    let scheduled = job["metadata"]["annotations"]
        ["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("{jobs}"));
    // In UTC, as upstream writes it without a timeZone, and at a minute boundary.
    assert!(scheduled.ends_with(":00Z"), "{scheduled}");
    assert_eq!(status["lastScheduleTime"], scheduled);
    let minutes = minutes_since_the_epoch(scheduled);
    assert_eq!(job["metadata"]["name"], format!("tick-{minutes}"));
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["controller"].as_bool()),
        (Some("CronJob"), Some(true))
    );
    assert!(status["active"].is_null(), "{status}");
    let events = server.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=CronJob",
    ]);
    assert!(
        events.contains("SuccessfulCreate") && events.contains("SawCompletedJob"),
        "{events}"
    );

    // The watch showed ACTIVE and LAST SCHEDULE move: a row with the Job active, then one
    // without it.
    std::thread::sleep(Duration::from_millis(300));
    watch.kill().unwrap();
    let output = String::from_utf8(watch.wait_with_output().unwrap().stdout).unwrap();
    let rows = cron_rows(&output, "tick");
    assert!(
        rows.iter().any(|r| r[8] == "1" && r[9] != "<none>"),
        "{output}"
    );
    assert_eq!(rows.last().unwrap()[8], "0", "{output}");

    // Suspended, it says so; and it outlives a restart of the server as it was.
    server.ok(&[
        "patch",
        "cronjob",
        "tick",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    assert_eq!(cron_rows(&server.ok(&["get", "cj"]), "tick")[0][7], "True");
    let before = cron(&server);
    server.stop();
    let server = Server::start(dir.path());
    let after = cron(&server);
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(after["status"], before["status"]);
    assert_eq!(after["spec"]["suspend"], true);

    // Deleted, its Jobs and their pods go with it.
    server.ok(&["delete", "cronjob", "tick"]);
    wait_for(
        "the CronJob's Job and pod to go",
        Duration::from_secs(10),
        || server.json(&["get", "jobs,pods"])["items"] == serde_json::json!([]),
    );
}

#[test]
fn kubectl_gets_the_api_servers_words_for_a_bad_cronjob() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let bad = TICK
        .replace("\"* * * * *\"", "\"CRON_TZ=UTC 61 * * * *\"")
        .replace("name: tick", &format!("name: {}", "x".repeat(53)));
    let refused = server.kubectl_with(&["apply", "-f", "-"], Some(&bad));
    refused.expect_code(1);
    assert_eq!(
        refused.stderr().trim(),
        format!(
            r#"The CronJob "{name}" is invalid: 
* spec.schedule: Invalid value: "CRON_TZ=UTC 61 * * * *": end of range (61) above maximum (59): 61
* spec.schedule: Invalid value: "CRON_TZ=UTC 61 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead
* metadata.name: Invalid value: "{name}": must be no more than 52 characters"#,
            name = "x".repeat(53)
        )
    );
}

#[test]
fn kubectl_create_cronjob_and_create_job_from_it_as_on_a_cluster() {
    let dir = scratch();
    let server = Server::start(dir.path());
    // Both commands send protobuf; the second carries the CronJob's whole defaulted
    // template and an owner reference.
    let created = server.ok(&[
        "create",
        "cronjob",
        "yearly",
        "--image=busybox",
        "--schedule=0 0 1 1 *",
        "--",
        "sh",
        "-c",
        "echo by hand",
    ]);
    assert_eq!(created.trim(), "cronjob.batch/yearly created");
    let cron = server.json(&["get", "cronjob", "yearly"]);
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Allow");
    let created = server.ok(&["create", "job", "now", "--from=cronjob/yearly"]);
    assert_eq!(created.trim(), "job.batch/now created");
    server.wait_complete("now");
    let job = server.json(&["get", "job", "now"]);
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(owner["uid"], cron["metadata"]["uid"]);
    let template = |o: &serde_json::Value| o["spec"]["template"]["spec"]["containers"].clone();
    assert_eq!(template(&job), template(&cron["spec"]["jobTemplate"]));
    let logs = server.ok(&["logs", "job/now"]);
    assert_eq!(logs.trim(), "by hand");
    // kubectl marks it controlled by the CronJob: its success is the CronJob's, as upstream's
    // controller counts it.
    wait_for(
        "the CronJob to count the Job's success",
        Duration::from_secs(10),
        || {
            server.json(&["get", "cronjob", "yearly"])["status"]["lastSuccessfulTime"]
                == job["status"]["completionTime"]
        },
    );
    server.ok(&["delete", "cronjob", "yearly"]);
    wait_for(
        "the Job to go with its CronJob",
        Duration::from_secs(10),
        || server.json(&["get", "jobs"])["items"] == serde_json::json!([]),
    );
}
