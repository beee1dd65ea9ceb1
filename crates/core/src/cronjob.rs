//! The CronJob controller as a function, after upstream's `cronjob_controllerv2.go` (1.34):
//! `sync(cronjob, its jobs, now, the machine's zone, a uid)` cleans up the finished Jobs
//! beyond the history limits, then decides whether a scheduled time is due and what to do
//! about it, and returns the new status, the Job to create, the Jobs to delete, the events
//! and when to look again. No I/O: the zone the schedule falls back to and the new Job's uid
//! are arguments.

use std::collections::HashSet;

use joblet_api::cron::{self, Schedule};
use joblet_api::k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use joblet_api::k8s_openapi::api::core::v1::ObjectReference;
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use joblet_api::k8s_openapi::jiff::tz::TimeZone;
use joblet_api::k8s_openapi::jiff::Timestamp;

use crate::{Event, EventType, Time};

/// The annotation a scheduled Job carries: its scheduled time, RFC 3339 in the CronJob's zone.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Upstream requeues this long after the next scheduled time, for clock skew.
const NEXT_SCHEDULE_DELTA_MS: i64 = 100;

/// More missed times than this raise `TooManyMissedTimes`.
const MANY_MISSED: i64 = 100;

#[derive(Debug, Default)]
pub struct CronJobSync {
    pub status: CronJobStatus,
    /// Whether `status` differs from the CronJob's.
    pub status_changed: bool,
    /// The Job to create (named `<cronjob>-<minutes since the epoch>`), with the given uid.
    pub create: Option<Job>,
    /// Jobs to delete (history beyond the limits, or active ones a `Replace` displaces).
    pub delete: Vec<String>,
    pub events: Vec<Event>,
    /// When to sync again (the next scheduled time, plus 100 ms).
    pub requeue_at: Option<Time>,
}

/// One sync of `cron`, given the Jobs it controls (owner reference with `controller: true`
/// and its uid: Jobs made by `kubectl create job --from` are not among them).
pub fn sync(
    cron: &CronJob,
    jobs: &[Job],
    now: Time,
    local: &TimeZone,
    new_uid: &str,
) -> CronJobSync {
    let mut out = CronJobSync {
        status: cron.status.clone().unwrap_or_default(),
        ..CronJobSync::default()
    };
    cleanup_finished(cron, jobs, &mut out);
    sync_schedule(cron, jobs, now, local, new_uid, &mut out);
    out.status_changed = cron.status.clone().unwrap_or_default() != out.status;
    out
}

fn event(type_: EventType, reason: &str, message: String) -> Event {
    Event {
        type_,
        reason: reason.to_string(),
        message,
    }
}

fn uid(job: &Job) -> &str {
    job.metadata.uid.as_deref().unwrap_or_default()
}

fn name(job: &Job) -> &str {
    job.metadata.name.as_deref().unwrap_or_default()
}

/// `Complete` or `Failed` true: the type.
fn finished(job: &Job) -> Option<&str> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    (conditions.iter())
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

fn remove_active(status: &mut CronJobStatus, job_uid: &str) {
    if let Some(active) = status.active.as_mut() {
        active.retain(|r| r.uid.as_deref() != Some(job_uid));
        if active.is_empty() {
            status.active = None;
        }
    }
}

fn in_active(status: &CronJobStatus, job_uid: &str) -> bool {
    (status.active.iter().flatten()).any(|r| r.uid.as_deref() == Some(job_uid))
}

/// `cleanupFinishedJobs`: the oldest finished Jobs beyond each history limit are deleted.
fn cleanup_finished(cron: &CronJob, jobs: &[Job], out: &mut CronJobSync) {
    let spec = &cron.spec;
    let limits = [
        ("Complete", spec.successful_jobs_history_limit),
        ("Failed", spec.failed_jobs_history_limit),
    ];
    for (kind, limit) in limits {
        let Some(limit) = limit else { continue };
        let mut finished: Vec<&Job> = jobs.iter().filter(|j| finished(j) == Some(kind)).collect();
        let excess = finished.len().saturating_sub(limit.max(0) as usize);
        // By start time, those never started last; the name breaks ties.
        finished.sort_by(|a, b| {
            let start = |j: &Job| {
                j.status
                    .as_ref()
                    .and_then(|s| s.start_time.clone())
                    .map(|t| t.0)
            };
            match (start(a), start(b)) {
                (Some(x), Some(y)) if x != y => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                _ => name(a).cmp(name(b)),
            }
        });
        for job in finished.into_iter().take(excess) {
            out.delete.push(name(job).to_string());
            remove_active(&mut out.status, uid(job));
            out.events.push(event(
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted job {}", name(job)),
            ));
        }
    }
}

/// `syncCronJob`.
fn sync_schedule(
    cron: &CronJob,
    jobs: &[Job],
    now: Time,
    local: &TimeZone,
    new_uid: &str,
    out: &mut CronJobSync,
) {
    let spec = &cron.spec;
    let children: HashSet<&str> = jobs.iter().map(uid).collect();
    for job in jobs {
        let found = in_active(&out.status, uid(job));
        let done = finished(job);
        if !found && done.is_none() {
            out.events.push(event(
                EventType::Warning,
                "UnexpectedJob",
                format!(
                    "Saw a job that the controller did not create or forgot: {}",
                    name(job)
                ),
            ));
        } else if found && done.is_some() {
            remove_active(&mut out.status, uid(job));
            out.events.push(event(
                EventType::Normal,
                "SawCompletedJob",
                format!(
                    "Saw completed job: {}, status: {}",
                    name(job),
                    done.unwrap_or_default()
                ),
            ));
        } else if done == Some("Complete") {
            let completed = job.status.as_ref().and_then(|s| s.completion_time.clone());
            let last = out.status.last_successful_time.clone();
            if let Some(completed) = completed {
                if last.as_ref().is_none_or(|l| completed.0 > l.0) {
                    out.status.last_successful_time = Some(completed);
                }
            }
        }
    }
    // An active Job that is gone.
    let missing: Vec<ObjectReference> = (out.status.active.iter().flatten())
        .filter(|r| !children.contains(r.uid.as_deref().unwrap_or_default()))
        .cloned()
        .collect();
    for gone in missing {
        out.events.push(event(
            EventType::Normal,
            "MissingJob",
            format!(
                "Active job went missing: {}",
                gone.name.as_deref().unwrap_or_default()
            ),
        ));
        remove_active(&mut out.status, gone.uid.as_deref().unwrap_or_default());
    }
    if cron.metadata.deletion_timestamp.is_some() {
        return;
    }
    let zone = match spec.time_zone.as_deref() {
        Some(name) => match cron::load_location(name) {
            Ok(zone) => Some(zone),
            Err(e) => {
                out.events.push(event(
                    EventType::Warning,
                    "UnknownTimeZone",
                    format!("invalid timeZone: {name:?}: {e}"),
                ));
                return;
            }
        },
        None => None,
    };
    if spec.suspend == Some(true) {
        return;
    }
    if spec.schedule.contains("TZ") {
        out.events.push(event(
            EventType::Warning,
            "UnsupportedSchedule",
            format!(
                "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                spec.schedule
            ),
        ));
    }
    let parsed = match cron::parse_standard(&spec.schedule) {
        Ok(parsed) => parsed,
        Err(e) => {
            out.events.push(event(
                EventType::Warning,
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            ));
            return;
        }
    };
    // A TZ= in the schedule wins (an old object's); else timeZone; else the machine's.
    let zone = parsed.zone.or(zone).unwrap_or_else(|| local.clone());
    let times = Times {
        schedule: &parsed.schedule,
        zone: &zone,
    };
    let scheduled = match most_recent_schedule_time(cron, &out.status, now, &times, true) {
        Err(e) => {
            out.events.push(event(
                EventType::Warning,
                "InvalidSchedule",
                format!("invalid schedule: {} : {e}", spec.schedule),
            ));
            return;
        }
        Ok(recent) => {
            if recent.missed == Missed::Many {
                out.events.push(event(
                    EventType::Warning,
                    "TooManyMissedTimes",
                    "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".to_string(),
                ));
            }
            recent.most_recent.filter(|t| *t <= now)
        }
    };
    let Some(scheduled) = scheduled else {
        out.requeue_at = next_sync(cron, &out.status, now, &times);
        return;
    };
    if let Some(deadline) = spec.starting_deadline_seconds {
        if scheduled.plus_millis(deadline * 1000) < now {
            let at = Timestamp::from_millisecond(scheduled.0).unwrap_or(Timestamp::UNIX_EPOCH);
            out.events.push(event(
                EventType::Warning,
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    at.strftime("%a, %d %b %Y %H:%M:%S +0000")
                ),
            ));
            out.requeue_at = next_sync(cron, &out.status, now, &times);
            return;
        }
    }
    let job_name = job_name(cron, scheduled);
    let active_by_name =
        (out.status.active.iter().flatten()).any(|r| r.name.as_deref() == Some(job_name.as_str()));
    let last = out.status.last_schedule_time.as_ref().map(Time::from_wire);
    if active_by_name || last == Some(scheduled) {
        out.requeue_at = next_sync(cron, &out.status, now, &times);
        return;
    }
    let active = out.status.active.clone().unwrap_or_default();
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            out.events.push(event(
                EventType::Normal,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".to_string(),
            ));
            out.requeue_at = next_sync(cron, &out.status, now, &times);
            return;
        }
        Some("Replace") => {
            for running in &active {
                let running_name = running.name.clone().unwrap_or_default();
                out.events.push(event(
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted job {running_name}"),
                ));
                out.delete.push(running_name);
                remove_active(&mut out.status, running.uid.as_deref().unwrap_or_default());
            }
        }
        _ => {}
    }
    // Made before, its status update lost: adopted into the active list, not made again.
    let existing = jobs.iter().find(|j| name(j) == job_name);
    let reference = match existing {
        Some(job) => {
            if in_active(&out.status, uid(job)) {
                return;
            }
            job_reference(job)
        }
        None => {
            let job = job_from_template(cron, scheduled, &zone_of(spec), new_uid, &job_name);
            out.events.push(event(
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created job {job_name}"),
            ));
            let reference = job_reference(&job);
            out.create = Some(job);
            reference
        }
    };
    out.status
        .active
        .get_or_insert_with(Vec::new)
        .push(reference);
    out.status.last_schedule_time = Some(scheduled.to_wire());
    out.requeue_at = next_sync(cron, &out.status, now, &times);
}

/// The zone of the scheduled-timestamp annotation: `timeZone`, else UTC (Go's
/// `LoadLocation("")`).
fn zone_of(spec: &joblet_api::k8s_openapi::api::batch::v1::CronJobSpec) -> TimeZone {
    (spec.time_zone.as_deref())
        .and_then(|z| cron::load_location(z).ok())
        .unwrap_or(TimeZone::UTC)
}

struct Times<'a> {
    schedule: &'a Schedule,
    zone: &'a TimeZone,
}

impl Times<'_> {
    fn next(&self, after: Time) -> Option<Time> {
        let after = Timestamp::from_millisecond(after.0).ok()?;
        let next = self.schedule.next(after, self.zone)?;
        Some(Time(next.as_millisecond()))
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Missed {
    None,
    Few,
    Many,
}

struct MostRecent {
    earliest: Time,
    most_recent: Option<Time>,
    missed: Missed,
}

/// `mostRecentScheduleTime`: the last scheduled time since the last one run (or the
/// CronJob's creation, or the starting deadline), found without walking every missed time.
fn most_recent_schedule_time(
    cron: &CronJob,
    status: &CronJobStatus,
    now: Time,
    times: &Times,
    with_deadline: bool,
) -> Result<MostRecent, String> {
    let created = cron
        .metadata
        .creation_timestamp
        .as_ref()
        .map(Time::from_wire);
    let mut earliest = (status.last_schedule_time.as_ref().map(Time::from_wire))
        .or(created)
        .unwrap_or_default();
    let deadline = cron.spec.starting_deadline_seconds;
    if let (true, Some(deadline)) = (with_deadline, deadline) {
        let scheduling_deadline = now.plus_millis(-deadline * 1000);
        if scheduling_deadline > earliest {
            earliest = scheduling_deadline;
        }
    }
    let none = |missed| MostRecent {
        earliest,
        most_recent: None,
        missed,
    };
    let too_close = "time difference between two schedules is less than 1 second".to_string();
    let Some(t1) = times.next(earliest) else {
        return Err(too_close);
    };
    if now < t1 {
        return Ok(none(Missed::None));
    }
    let Some(t2) = times.next(t1) else {
        return Err(too_close);
    };
    if now < t2 {
        return Ok(MostRecent {
            earliest,
            most_recent: Some(t1),
            missed: Missed::None,
        });
    }
    // Go's Duration.Round(time.Second), then whole seconds.
    let between = (t2.millis_since(t1) + 500).div_euclid(1000);
    if between < 1 {
        return Err(too_close);
    }
    let elapsed = now.millis_since(t1) / 1000;
    let missed_count = elapsed / between + 1;
    let potential_earliest = t1.plus_millis((missed_count - 2) * between * 1000);
    let mut most_recent = None;
    let mut t = times.next(potential_earliest);
    while let Some(time) = t.filter(|t| *t <= now) {
        most_recent = Some(time);
        t = times.next(time);
    }
    let missed = match missed_count {
        n if n > MANY_MISSED => Missed::Many,
        n if n > 0 => Missed::Few,
        _ => Missed::None,
    };
    Ok(MostRecent {
        earliest,
        most_recent,
        missed,
    })
}

/// `nextScheduleTimeDuration`, as an instant: the next scheduled time after the most recent
/// one (or after now, when times were missed), plus 100 ms.
fn next_sync(cron: &CronJob, status: &CronJobStatus, now: Time, times: &Times) -> Option<Time> {
    let recent = match most_recent_schedule_time(cron, status, now, times, false) {
        Err(_) => now,
        Ok(MostRecent {
            most_recent: Some(t),
            ..
        }) => t,
        Ok(MostRecent {
            earliest,
            missed: Missed::None,
            ..
        }) => earliest,
        Ok(_) => now,
    };
    Some(times.next(recent)?.plus_millis(NEXT_SCHEDULE_DELTA_MS))
}

/// The Job the CronJob would make at its next scheduled time after `now`, to run at once
/// (`joblet run --once`): named and annotated as the controller names it, without the owner
/// reference to a CronJob that is not stored. An unknown zone or a schedule that never fires
/// is said as the controller's events say it.
pub fn next_job(cron: &CronJob, now: Time, local: &TimeZone, uid: &str) -> Result<Job, String> {
    let spec = &cron.spec;
    let zone = match spec.time_zone.as_deref() {
        Some(name) => {
            cron::load_location(name).map_err(|e| format!("invalid timeZone: {name:?}: {e}"))?
        }
        None => local.clone(),
    };
    let parsed = cron::parse_standard(&spec.schedule)
        .map_err(|e| format!("unparseable schedule: {:?} : {e}", spec.schedule))?;
    let zone = parsed.zone.unwrap_or(zone);
    let times = Times {
        schedule: &parsed.schedule,
        zone: &zone,
    };
    let scheduled = times.next(now).ok_or_else(|| {
        format!(
            "invalid schedule: {} : it never fires within five years",
            spec.schedule
        )
    })?;
    let name = job_name(cron, scheduled);
    let mut job = job_from_template(cron, scheduled, &zone_of(spec), uid, &name);
    job.metadata.owner_references = None;
    Ok(job)
}

/// `<cronjob>-<scheduled time in minutes since the epoch>`.
pub fn job_name(cron: &CronJob, scheduled: Time) -> String {
    let name = cron.metadata.name.as_deref().unwrap_or_default();
    format!("{name}-{}", scheduled.0.div_euclid(60_000))
}

/// `getJobFromTemplate2`: the template's labels, annotations (and the scheduled time) and
/// spec, owned by the CronJob as its controller.
fn job_from_template(
    cron: &CronJob,
    scheduled: Time,
    zone: &TimeZone,
    uid: &str,
    name: &str,
) -> Job {
    let template = cron.spec.job_template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.to_string(), rfc3339_in(scheduled, zone));
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: cron.metadata.namespace.clone(),
            uid: Some(uid.to_string()),
            labels: meta.labels.filter(|l| !l.is_empty()),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".to_string(),
                kind: "CronJob".to_string(),
                name: cron.metadata.name.clone().unwrap_or_default(),
                uid: cron.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Go's `time.RFC3339` in a zone: `Z` when the offset is zero.
fn rfc3339_in(at: Time, zone: &TimeZone) -> String {
    let instant = Timestamp::from_millisecond(at.0).unwrap_or(Timestamp::UNIX_EPOCH);
    let zoned = instant.to_zoned(zone.clone());
    if zoned.offset().seconds() == 0 {
        zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

fn job_reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".to_string()),
        kind: Some("Job".to_string()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

#[cfg(test)]
mod tests;
