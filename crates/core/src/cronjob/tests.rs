//! Cases after upstream's `cronjob_controllerv2_test.go` (`TestControllerV2SyncCronJob`), with
//! a fake clock: the schedule `*/1 * * * ?` or an hourly one, a CronJob created at a known
//! time, and the time of the sync.

use super::*;
use serde_json::json;

/// 2016-05-19T10:00:00Z, a Thursday: upstream's `justBeforeTheHour` is 09:59.
fn at(text: &str) -> Time {
    Time(text.parse::<Timestamp>().unwrap().as_millisecond())
}

fn cron(patch: serde_json::Value) -> CronJob {
    let mut value = json!({
        "metadata": {
            "name": "mycronjob", "namespace": "snazzycats", "uid": "1a2b3c",
            "creationTimestamp": "2016-05-19T04:00:00Z",
        },
        "spec": {
            "schedule": "0 * * * ?",
            "concurrencyPolicy": "Allow",
            "jobTemplate": {
                "metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}},
                "spec": {"template": {"spec": {"containers": [], "restartPolicy": "OnFailure"}}}
            }
        }
    });
    merge(&mut value, patch);
    serde_json::from_value(value).unwrap()
}

fn merge(target: &mut serde_json::Value, patch: serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}

fn job(name: &str, uid: &str, status: serde_json::Value) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "snazzycats", "uid": uid},
        "status": status,
    }))
    .unwrap()
}

fn active(name: &str, uid: &str) -> serde_json::Value {
    json!({"kind": "Job", "apiVersion": "batch/v1", "name": name, "namespace": "snazzycats", "uid": uid})
}

fn run(cron: &CronJob, jobs: &[Job], now: &str) -> CronJobSync {
    sync(cron, jobs, at(now), &TimeZone::UTC, "new-uid")
}

fn reasons(out: &CronJobSync) -> Vec<String> {
    out.events.iter().map(|e| e.reason.clone()).collect()
}

#[test]
fn never_ran_not_time() {
    let out = run(&cron(json!({})), &[], "2016-05-19T04:30:00Z");
    assert!(out.create.is_none());
    assert!(reasons(&out).is_empty());
    // The next hour, plus 100 ms.
    assert_eq!(out.requeue_at, Some(at("2016-05-19T05:00:00.1Z")));
}

#[test]
fn never_ran_is_time_creates_the_job_named_for_its_minute() {
    let out = run(&cron(json!({})), &[], "2016-05-19T05:00:10Z");
    let job = out.create.as_ref().expect("a Job");
    // 2016-05-19T05:00:00Z is 24,393,900 minutes since the epoch.
    assert_eq!(job.metadata.name.as_deref(), Some("mycronjob-24393900"));
    assert_eq!(job.metadata.uid.as_deref(), Some("new-uid"));
    let annotations = job.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations[SCHEDULED_TIMESTAMP], "2016-05-19T05:00:00Z");
    assert_eq!(annotations["x"], "y");
    assert_eq!(job.metadata.labels.as_ref().unwrap()["a"], "b");
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("CronJob", "1a2b3c", Some(true))
    );
    assert_eq!(reasons(&out), ["SuccessfulCreate"]);
    assert_eq!(
        out.status.active.as_ref().unwrap()[0].name.as_deref(),
        Some("mycronjob-24393900")
    );
    assert_eq!(
        out.status.last_schedule_time,
        Some(at("2016-05-19T05:00:00Z").to_wire())
    );
    assert!(out.status_changed);
    assert_eq!(out.requeue_at, Some(at("2016-05-19T06:00:00.1Z")));
}

#[test]
fn the_annotation_is_written_in_the_time_zone() {
    let cron = cron(json!({
        "metadata": {"creationTimestamp": "2016-05-18T12:00:00Z"},
        "spec": {"schedule": "0 5 * * *", "timeZone": "Europe/Paris"},
    }));
    let out = run(&cron, &[], "2016-05-19T03:00:05Z");
    let job = out.create.expect("05:00 in Paris is 03:00 UTC in May");
    assert_eq!(
        job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP],
        "2016-05-19T05:00:00+02:00"
    );
}

#[test]
fn suspended_runs_nothing() {
    let out = run(
        &cron(json!({"spec": {"suspend": true}})),
        &[],
        "2016-05-19T05:00:10Z",
    );
    assert!(out.create.is_none());
    assert_eq!(out.requeue_at, None);
}

#[test]
fn past_the_starting_deadline_is_a_missed_schedule() {
    let cron = cron(json!({"spec": {"startingDeadlineSeconds": 5}}));
    // 10 s late for the 05:00 run, with a 5 s deadline.
    let out = run(&cron, &[], "2016-05-19T05:00:10Z");
    assert!(out.create.is_none());
    assert_eq!(
        reasons(&out),
        Vec::<String>::new(),
        "the deadline also bounds the search"
    );
    // Within the deadline: created.
    let out = run(&cron, &[], "2016-05-19T05:00:04Z");
    assert!(out.create.is_some());
}

#[test]
fn missed_times_run_the_most_recent_once() {
    // Created at 04:00, synced at 09:30: 05:00 to 09:00 were missed; 09:00 runs.
    let out = run(&cron(json!({})), &[], "2016-05-19T09:30:00Z");
    assert_eq!(reasons(&out), ["SuccessfulCreate"]);
    assert_eq!(
        out.create.unwrap().metadata.name.as_deref(),
        Some("mycronjob-24394140")
    );
}

#[test]
fn too_many_missed_times_say_so_and_still_run_the_latest() {
    let cron = cron(json!({"spec": {"schedule": "*/1 * * * ?"}}));
    let out = run(&cron, &[], "2016-05-19T09:30:30Z");
    assert_eq!(reasons(&out), ["TooManyMissedTimes", "SuccessfulCreate"]);
    let job = out.create.unwrap();
    assert_eq!(
        job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP],
        "2016-05-19T09:30:00Z"
    );
}

#[test]
fn a_time_already_run_is_not_run_again() {
    let cron = cron(json!({"status": {
        "lastScheduleTime": "2016-05-19T05:00:00Z",
        "active": [active("mycronjob-24393900", "j1")]
    }}));
    let running = job("mycronjob-24393900", "j1", json!({}));
    let out = run(&cron, &[running], "2016-05-19T05:30:00Z");
    assert!(out.create.is_none());
    assert!(!out.status_changed);
    assert_eq!(out.requeue_at, Some(at("2016-05-19T06:00:00.1Z")));
}

#[test]
fn forbid_skips_while_one_runs_allow_runs_beside_it_replace_deletes_it() {
    let status = json!({"status": {
        "lastScheduleTime": "2016-05-19T05:00:00Z",
        "active": [active("mycronjob-24393900", "j1")]
    }});
    let running = job("mycronjob-24393900", "j1", json!({}));
    let policy = |p: &str| {
        let mut patch = status.clone();
        merge(&mut patch, json!({"spec": {"concurrencyPolicy": p}}));
        run(
            &cron(patch),
            std::slice::from_ref(&running),
            "2016-05-19T06:00:05Z",
        )
    };
    let forbid = policy("Forbid");
    assert!(forbid.create.is_none());
    assert_eq!(reasons(&forbid), ["JobAlreadyActive"]);

    let allow = policy("Allow");
    assert!(allow.create.is_some());
    assert_eq!(allow.status.active.as_ref().unwrap().len(), 2);

    let replace = policy("Replace");
    assert_eq!(replace.delete, ["mycronjob-24393900"]);
    assert_eq!(reasons(&replace), ["SuccessfulDelete", "SuccessfulCreate"]);
    let now_active: Vec<_> = (replace.status.active.iter().flatten())
        .map(|r| r.name.clone().unwrap())
        .collect();
    assert_eq!(now_active, ["mycronjob-24393960"]);
}

#[test]
fn a_finished_job_leaves_the_active_list_and_sets_the_last_success() {
    let cron = cron(json!({"status": {
        "lastScheduleTime": "2016-05-19T05:00:00Z",
        "active": [active("mycronjob-24393900", "j1")]
    }}));
    let done = job(
        "mycronjob-24393900",
        "j1",
        json!({
            "completionTime": "2016-05-19T05:00:30Z",
            "conditions": [{"type": "Complete", "status": "True"}]
        }),
    );
    let out = run(&cron, std::slice::from_ref(&done), "2016-05-19T05:01:00Z");
    assert_eq!(reasons(&out), ["SawCompletedJob"]);
    assert_eq!(out.status.active, None);
    // Seen again, out of the active list: its completion time is the last success.
    let mut later = cron.clone();
    later.status = Some(out.status.clone());
    let again = run(&later, &[done], "2016-05-19T05:02:00Z");
    assert_eq!(
        again.status.last_successful_time,
        Some(at("2016-05-19T05:00:30Z").to_wire())
    );
}

#[test]
fn an_active_job_that_is_gone_is_missing() {
    let cron = cron(json!({"status": {
        "lastScheduleTime": "2016-05-19T05:00:00Z",
        "active": [active("mycronjob-24393900", "j1")]
    }}));
    let out = run(&cron, &[], "2016-05-19T05:01:00Z");
    assert_eq!(reasons(&out), ["MissingJob"]);
    assert_eq!(out.status.active, None);
}

#[test]
fn an_unknown_job_of_ours_is_unexpected() {
    let out = run(
        &cron(json!({})),
        &[job("stray", "s1", json!({}))],
        "2016-05-19T04:30:00Z",
    );
    assert_eq!(reasons(&out), ["UnexpectedJob"]);
}

#[test]
fn history_beyond_the_limits_is_deleted_oldest_first() {
    let cron =
        cron(json!({"spec": {"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 0}}));
    let finished = |name: &str, start: &str, type_: &str| {
        job(
            name,
            name,
            json!({
                "startTime": start,
                "conditions": [{"type": type_, "status": "True"}]
            }),
        )
    };
    let jobs = [
        finished("new", "2016-05-19T06:00:00Z", "Complete"),
        finished("old", "2016-05-19T05:00:00Z", "Complete"),
        finished("broken", "2016-05-19T04:00:00Z", "Failed"),
    ];
    let out = run(&cron, &jobs, "2016-05-19T06:30:00Z");
    assert_eq!(out.delete, ["old", "broken"]);
    assert_eq!(
        reasons(&out)
            .iter()
            .filter(|r| *r == "SuccessfulDelete")
            .count(),
        2
    );
}

#[test]
fn bad_schedules_and_zones_are_events_not_jobs() {
    let bad_zone = run(
        &cron(json!({"spec": {"timeZone": "Mars/Olympus"}})),
        &[],
        "2016-05-19T05:00:10Z",
    );
    assert_eq!(reasons(&bad_zone), ["UnknownTimeZone"]);
    assert_eq!(
        bad_zone.events[0].message,
        r#"invalid timeZone: "Mars/Olympus": unknown time zone Mars/Olympus"#
    );
    let never = run(
        &cron(json!({"spec": {"schedule": "0 0 31 2 *"}})),
        &[],
        "2016-05-19T05:00:10Z",
    );
    assert_eq!(reasons(&never), ["InvalidSchedule"]);
    let unparseable = run(
        &cron(json!({"spec": {"schedule": "61 * * * *"}})),
        &[],
        "2016-05-19T05:00:10Z",
    );
    assert_eq!(reasons(&unparseable), ["UnparseableSchedule"]);
    assert!(bad_zone.create.is_none() && never.create.is_none() && unparseable.create.is_none());
}

#[test]
fn a_schedule_in_a_zone_follows_its_daylight_saving() {
    // 02:30 every day in New York; the 2016-03-13 02:30 does not exist there.
    let cron = cron(json!({
        "metadata": {"creationTimestamp": "2016-03-12T12:00:00Z"},
        "spec": {"schedule": "30 2 * * *", "timeZone": "America/New_York"},
    }));
    let before = run(&cron, &[], "2016-03-13T05:00:00Z");
    assert!(before.create.is_none());
    // The next run is 02:30 EDT on the 14th, 06:30 UTC.
    assert_eq!(before.requeue_at, Some(at("2016-03-14T06:30:00.1Z")));
}

#[test]
fn a_job_made_before_whose_status_was_lost_is_adopted_not_made_again() {
    let made = job("mycronjob-24393900", "j1", json!({}));
    let out = run(&cron(json!({})), &[made], "2016-05-19T05:00:10Z");
    assert!(out.create.is_none());
    let names: Vec<_> = (out.status.active.iter().flatten())
        .map(|r| r.uid.clone().unwrap())
        .collect();
    assert_eq!(names, ["j1"]);
}

#[test]
fn the_next_job_is_the_one_the_controller_would_make_next() {
    let cron = cron(json!({"spec": {"schedule": "30 * * * *"}}));
    let job = next_job(&cron, at("2016-05-19T05:10:00Z"), &TimeZone::UTC, "u").unwrap();
    assert_eq!(job.metadata.name.as_deref(), Some("mycronjob-24393930"));
    assert_eq!(
        job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP],
        "2016-05-19T05:30:00Z"
    );
    assert_eq!(
        job.metadata.owner_references, None,
        "no CronJob is stored to own it"
    );
    let never = cron_with_schedule("0 0 31 2 *");
    assert_eq!(
        next_job(&never, at("2016-05-19T05:10:00Z"), &TimeZone::UTC, "u").unwrap_err(),
        "invalid schedule: 0 0 31 2 * : it never fires within five years"
    );
}

fn cron_with_schedule(schedule: &str) -> CronJob {
    cron(json!({"spec": {"schedule": schedule}}))
}
