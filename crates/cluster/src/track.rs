//! What a cluster's watches say about a run's Jobs, their pods and their events, folded
//! into the notices the local engine gives: one stream, so one display, one summary and one
//! exit status for both. Pure: objects and the time in, notices out.

use std::collections::{HashMap, HashSet, VecDeque};

use joblet_api::k8s_openapi::api::batch::v1::Job;
use joblet_api::k8s_openapi::api::core::v1::{Event as WireEvent, Pod};
use joblet_api::{labels, IndexSet};
use joblet_core::{Event, EventType, Status, Time};
use joblet_driver::Notice;

/// Events about pods not seen yet (their watch runs behind the events'), held until the pod
/// shows up; past this many the oldest are dropped.
const MAX_PENDING_EVENTS: usize = 1_000;

type Key = (String, String);

struct TrackedJob {
    job: Job,
    completions: i32,
    deleted: bool,
    running_indexes: IndexSet,
    /// The reasons of the events recorded about the Job.
    event_reasons: HashSet<String>,
}

struct TrackedPod {
    job_uid: String,
    index: Option<i32>,
    /// Pending or Running and not being deleted: it runs, or is about to.
    active: bool,
    failed: bool,
}

#[derive(Default)]
pub struct Tracker {
    /// By uid: a Job deleted and created again under its name is another Job.
    jobs: HashMap<String, TrackedJob>,
    /// The uids in the order the run created the Jobs.
    order: Vec<String>,
    pods: HashMap<Key, TrackedPod>,
    pending_events: VecDeque<WireEvent>,
    /// Each event's count when last shown: a repeated event is shown again, a re-listed one
    /// is not.
    shown_events: HashMap<String, i32>,
}

impl Tracker {
    /// Tracks `jobs`, as the cluster returned them when they were created.
    pub fn new(jobs: &[Job]) -> Tracker {
        let mut tracker = Tracker::default();
        for job in jobs {
            let uid = job.metadata.uid.clone().unwrap_or_default();
            let completions = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
            tracker.order.push(uid.clone());
            tracker.jobs.insert(
                uid,
                TrackedJob {
                    job: job.clone(),
                    completions,
                    deleted: false,
                    running_indexes: IndexSet::new(),
                    event_reasons: HashSet::new(),
                },
            );
        }
        tracker
    }

    /// The uids of the tracked Jobs, for a label selector of their pods.
    pub fn uids(&self) -> &[String] {
        &self.order
    }

    /// The Jobs as last seen, in the run's order.
    pub fn jobs(&self) -> Vec<Job> {
        (self.order.iter())
            .filter_map(|uid| self.jobs.get(uid))
            .map(|tracked| tracked.job.clone())
            .collect()
    }

    /// Names of the Jobs deleted from the cluster before they ended.
    pub fn deleted(&self) -> Vec<String> {
        (self.order.iter())
            .filter_map(|uid| self.jobs.get(uid))
            .filter(|t| t.deleted && !finished(&t.job))
            .map(|t| name(&t.job.metadata.name))
            .collect()
    }

    /// Whether every Job has ended, is suspended, runs nothing with parallelism 0, or is gone:
    /// what ends a local run too.
    pub fn settled(&self) -> bool {
        self.jobs.values().all(|t| t.deleted || settled(&t.job))
    }

    /// Whether the event the Job controller records when it ends a Job has come for every
    /// ended Job: it is written after the Job's status, so its watch may bring it later.
    pub fn final_events_seen(&self) -> bool {
        self.jobs.values().all(|t| {
            t.deleted || final_event_reason(&t.job).is_none_or(|r| t.event_reasons.contains(r))
        })
    }

    /// How many pods of the run's Jobs, but those of `kept`'s uids, the cluster still has.
    pub fn pods_left(&self, kept: &HashSet<String>) -> usize {
        self.pods
            .values()
            .filter(|p| !kept.contains(&p.job_uid))
            .count()
    }

    pub fn job(&mut self, job: &Job, now: Time) -> Vec<Notice> {
        let uid = job.metadata.uid.as_deref().unwrap_or_default();
        let Some(tracked) = self.jobs.get_mut(uid) else {
            return Vec::new();
        };
        tracked.job = job.clone();
        vec![status_notice(tracked, now)]
    }

    pub fn job_deleted(&mut self, job: &Job) {
        let uid = job.metadata.uid.as_deref().unwrap_or_default();
        if let Some(tracked) = self.jobs.get_mut(uid) {
            tracked.deleted = true;
        }
    }

    pub fn pod(&mut self, pod: &Pod, now: Time) -> Vec<Notice> {
        let Some(job_uid) = controller_uid(pod).filter(|uid| self.jobs.contains_key(*uid)) else {
            return Vec::new();
        };
        let key = key(&pod.metadata.namespace, &pod.metadata.name);
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let failed = phase == Some("Failed");
        let active = matches!(phase, None | Some("Pending" | "Running"))
            && pod.metadata.deletion_timestamp.is_none();
        let index = (pod.metadata.annotations.as_ref())
            .and_then(|a| a.get(labels::COMPLETION_INDEX))
            .and_then(|i| i.parse().ok());
        let was_failed = self.pods.get(&key).is_some_and(|p| p.failed);
        let tracked = TrackedPod {
            job_uid: job_uid.to_string(),
            index,
            active,
            failed,
        };
        self.pods.insert(key.clone(), tracked);
        let job = &self.jobs[job_uid];
        let (namespace, job_name) = (
            namespace(&job.job.metadata.namespace),
            name(&job.job.metadata.name),
        );
        let mut notices = Vec::new();
        if failed && !was_failed {
            let status = pod.status.clone().unwrap_or_default();
            notices.push(Notice::PodFailed {
                namespace: namespace.clone(),
                job: job_name.clone(),
                pod: key.1.clone(),
                reason: joblet_driver::why_failed(&status),
                at: now,
            });
        }
        notices.extend(self.flush_pending(&key, now));
        notices.extend(self.running_changed(job_uid.to_string(), now));
        notices
    }

    pub fn pod_deleted(&mut self, pod: &Pod, now: Time) -> Vec<Notice> {
        let key = key(&pod.metadata.namespace, &pod.metadata.name);
        match self.pods.remove(&key) {
            Some(gone) => self.running_changed(gone.job_uid, now),
            None => Vec::new(),
        }
    }

    /// After a re-list of `namespace`'s pods: those it did not have are gone.
    pub fn pods_not_listed(
        &mut self,
        namespace: &str,
        listed: &HashSet<String>,
        now: Time,
    ) -> Vec<Notice> {
        let gone: Vec<Key> = (self.pods.keys())
            .filter(|(ns, name)| ns == namespace && !listed.contains(name))
            .cloned()
            .collect();
        let mut jobs = Vec::new();
        for key in gone {
            if let Some(pod) = self.pods.remove(&key) {
                jobs.push(pod.job_uid);
            }
        }
        jobs.sort();
        jobs.dedup();
        (jobs.into_iter())
            .flat_map(|job| self.running_changed(job, now))
            .collect()
    }

    pub fn event(&mut self, event: &WireEvent, now: Time) -> Vec<Notice> {
        let involved = &event.involved_object;
        let uid = event.metadata.uid.clone().unwrap_or_default();
        let count = (event.count)
            .or_else(|| event.series.as_ref().and_then(|s| s.count))
            .unwrap_or(1);
        if self
            .shown_events
            .get(&uid)
            .is_some_and(|&shown| shown >= count)
        {
            return Vec::new();
        }
        let (job, object) = match involved.kind.as_deref() {
            Some("Job") => {
                let uid = involved.uid.as_deref().unwrap_or_default();
                match self.jobs.get_mut(uid) {
                    Some(tracked) => {
                        let reason = event.reason.clone().unwrap_or_default();
                        tracked.event_reasons.insert(reason);
                        (&tracked.job, format!("job/{}", name(&involved.name)))
                    }
                    None => return Vec::new(),
                }
            }
            Some("Pod") => {
                let pod = key(&involved.namespace, &involved.name);
                match self.pods.get(&pod) {
                    Some(tracked) => (&self.jobs[&tracked.job_uid].job, format!("pod/{}", pod.1)),
                    None => {
                        if self.may_be_ours(&pod) {
                            if self.pending_events.len() == MAX_PENDING_EVENTS {
                                self.pending_events.pop_front();
                            }
                            self.pending_events.push_back(event.clone());
                        }
                        return Vec::new();
                    }
                }
            }
            _ => return Vec::new(),
        };
        let notice = Notice::Event {
            namespace: namespace(&job.metadata.namespace),
            job: name(&job.metadata.name),
            object,
            event: Event {
                type_: match event.type_.as_deref() {
                    Some("Warning") => EventType::Warning,
                    _ => EventType::Normal,
                },
                reason: event.reason.clone().unwrap_or_default(),
                message: event.message.clone().unwrap_or_default(),
            },
            at: now,
        };
        self.shown_events.insert(uid, count);
        vec![notice]
    }

    /// A pod's name starts with its Job's (cut to fit the pod name's length).
    fn may_be_ours(&self, pod: &Key) -> bool {
        self.jobs.values().any(|t| {
            let job = &t.job.metadata;
            let prefix = name(&job.name);
            let prefix = &prefix[..prefix.len().min(50)];
            namespace(&job.namespace) == pod.0 && pod.1.starts_with(prefix)
        })
    }

    fn flush_pending(&mut self, pod: &Key, now: Time) -> Vec<Notice> {
        let about = |e: &WireEvent| key(&e.involved_object.namespace, &e.involved_object.name);
        if !self.pending_events.iter().any(|e| about(e) == *pod) {
            return Vec::new();
        }
        let (now_known, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_events)
            .into_iter()
            .partition(|e| about(e) == *pod);
        self.pending_events = still.into();
        (now_known.iter())
            .flat_map(|e| self.event(e, now))
            .collect()
    }

    /// A status notice when the indexes the Job's pods run have changed.
    fn running_changed(&mut self, job_uid: String, now: Time) -> Vec<Notice> {
        let running: IndexSet = (self.pods.values())
            .filter(|p| p.job_uid == job_uid && p.active)
            .filter_map(|p| p.index)
            .collect();
        let Some(tracked) = self.jobs.get_mut(&job_uid) else {
            return Vec::new();
        };
        if tracked.running_indexes == running {
            return Vec::new();
        }
        tracked.running_indexes = running;
        vec![status_notice(tracked, now)]
    }
}

fn status_notice(tracked: &TrackedJob, now: Time) -> Notice {
    let meta = &tracked.job.metadata;
    let status = (tracked.job.status.as_ref())
        .map(|s| Status::from_wire(s, tracked.completions))
        .unwrap_or_default();
    Notice::Status {
        namespace: namespace(&meta.namespace),
        job: name(&meta.name),
        status,
        running_indexes: tracked.running_indexes.clone(),
        at: now,
    }
}

/// The reason of the event upstream's Job controller records as it ends a Job: `Completed`,
/// or the `Failed` condition's own reason (`BackoffLimitExceeded`, `DeadlineExceeded`...).
fn final_event_reason(job: &Job) -> Option<&str> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let ended = |type_: &str| (conditions.iter()).find(|c| c.type_ == type_ && c.status == "True");
    if ended("Complete").is_some() {
        return Some("Completed");
    }
    ended("Failed").and_then(|c| c.reason.as_deref())
}

fn controller_uid(pod: &Pod) -> Option<&str> {
    let owners = pod.metadata.owner_references.iter().flatten();
    let owner = owners
        .filter(|o| o.controller == Some(true) && o.kind == "Job")
        .map(|o| o.uid.as_str())
        .next();
    owner.or_else(|| {
        let labels = pod.metadata.labels.as_ref()?;
        labels.get(labels::CONTROLLER_UID).map(String::as_str)
    })
}

fn finished(job: &Job) -> bool {
    matches!(joblet_api::printers::job_status(job), "Complete" | "Failed")
}

/// Ended, suspended with no pod left, or held at parallelism 0 with none running.
fn settled(job: &Job) -> bool {
    let spec = job.spec.as_ref();
    let status = job.status.as_ref();
    let active = status.and_then(|s| s.active).unwrap_or(0);
    let terminating = status.and_then(|s| s.terminating).unwrap_or(0);
    let idle = active == 0 && terminating == 0;
    finished(job)
        || (joblet_api::printers::job_status(job) == "Suspended" && idle)
        || (spec.and_then(|s| s.parallelism) == Some(0) && idle)
}

fn key(namespace: &Option<String>, name: &Option<String>) -> Key {
    (self::namespace(namespace), self::name(name))
}

fn namespace(namespace: &Option<String>) -> String {
    namespace.clone().unwrap_or_else(|| "default".to_string())
}

fn name(name: &Option<String>) -> String {
    name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "work", "namespace": "default", "uid": "job-uid"},
            "spec": {
                "completions": 3, "parallelism": 2, "completionMode": "Indexed",
                "template": {"spec": {"containers": [], "restartPolicy": "Never"}}
            },
            "status": status,
        }))
        .unwrap()
    }

    fn pod(name: &str, index: i32, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": name, "namespace": "default",
                "annotations": {"batch.kubernetes.io/job-completion-index": index.to_string()},
                "ownerReferences": [{
                    "apiVersion": "batch/v1", "kind": "Job", "name": "work",
                    "uid": "job-uid", "controller": true
                }],
            },
            "status": status,
        }))
        .unwrap()
    }

    fn event(uid: &str, kind: &str, name: &str, reason: &str, count: i32) -> WireEvent {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{name}.1"), "namespace": "default", "uid": uid},
            "involvedObject": {"kind": kind, "name": name, "namespace": "default", "uid": "job-uid"},
            "reason": reason, "message": "said", "type": "Warning", "count": count,
        }))
        .unwrap()
    }

    fn running_indexes(notices: &[Notice]) -> Vec<String> {
        (notices.iter())
            .filter_map(|n| match n {
                Notice::Status {
                    running_indexes, ..
                } => Some(running_indexes.to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_pods_failure_is_told_once_with_its_containers_exit() {
        let mut tracker = Tracker::new(&[job(json!({}))]);
        let failed = json!({"phase": "Failed", "containerStatuses": [{
            "name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 3, "reason": "Error"}}
        }]});
        let notices = tracker.pod(&pod("work-0-abcde", 0, failed.clone()), Time(1));
        let reasons: Vec<_> = (notices.iter())
            .filter_map(|n| match n {
                Notice::PodFailed { pod, reason, .. } => Some((pod.clone(), reason.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            reasons,
            [(
                "work-0-abcde".to_string(),
                "container main exited with code 3 (Error)".to_string()
            )]
        );
        let again = tracker.pod(&pod("work-0-abcde", 0, failed), Time(2));
        assert!(!again.iter().any(|n| matches!(n, Notice::PodFailed { .. })));
    }

    #[test]
    fn running_indexes_follow_the_active_pods() {
        let mut tracker = Tracker::new(&[job(json!({}))]);
        let running = json!({"phase": "Running"});
        let first = tracker.pod(&pod("work-0-a", 0, running.clone()), Time(1));
        assert_eq!(running_indexes(&first), ["0"]);
        let second = tracker.pod(&pod("work-2-b", 2, running.clone()), Time(2));
        assert_eq!(running_indexes(&second), ["0,2"]);
        // The same pods again: nothing changed, nothing said.
        assert!(tracker
            .pod(&pod("work-2-b", 2, running), Time(3))
            .is_empty());
        let done = tracker.pod(&pod("work-0-a", 0, json!({"phase": "Succeeded"})), Time(4));
        assert_eq!(running_indexes(&done), ["2"]);
        let gone = tracker.pod_deleted(&pod("work-2-b", 2, json!({})), Time(5));
        assert_eq!(running_indexes(&gone), [""]);
        assert_eq!(tracker.pods_left(&HashSet::new()), 1);
        assert_eq!(
            tracker.pods_left(&HashSet::from(["job-uid".to_string()])),
            0
        );
    }

    #[test]
    fn pods_of_other_jobs_are_not_ours() {
        let mut tracker = Tracker::new(&[job(json!({}))]);
        let mut other = pod("work-0-a", 0, json!({"phase": "Failed"}));
        other.metadata.owner_references.as_mut().unwrap()[0].uid = "another".into();
        assert!(tracker.pod(&other, Time(1)).is_empty());
        assert_eq!(tracker.pods_left(&HashSet::new()), 0);
    }

    #[test]
    fn the_jobs_status_is_told_as_the_engines() {
        let mut tracker = Tracker::new(&[job(json!({}))]);
        let status = json!({"active": 1, "succeeded": 2, "completedIndexes": "0,2"});
        let notices = tracker.job(&job(status), Time(1));
        let [Notice::Status { status, job, .. }] = notices.as_slice() else {
            panic!("one status notice");
        };
        assert_eq!(job, "work");
        assert_eq!((status.active, status.succeeded), (1, 2));
        assert_eq!(status.completed_indexes.to_string(), "0,2");
        assert!(!tracker.settled());
    }

    #[test]
    fn a_run_settles_when_every_job_ended_or_is_suspended_with_nothing_running() {
        let complete = json!({"conditions": [{"type": "Complete", "status": "True"}]});
        let mut tracker = Tracker::new(&[job(json!({}))]);
        tracker.job(&job(complete), Time(1));
        assert!(tracker.settled());
        assert!(
            !tracker.final_events_seen(),
            "the Completed event comes after the status"
        );
        tracker.event(&event("e1", "Job", "work", "Completed", 1), Time(2));
        assert!(tracker.final_events_seen());

        let suspended = |active: i32| json!({"active": active, "conditions": [{"type": "Suspended", "status": "True"}]});
        let mut tracker = Tracker::new(&[job(json!({}))]);
        tracker.job(&job(suspended(1)), Time(1));
        assert!(!tracker.settled(), "its pods are still being stopped");
        tracker.job(&job(suspended(0)), Time(2));
        assert!(tracker.settled());

        let mut tracker = Tracker::new(&[job(json!({}))]);
        tracker.job_deleted(&job(json!({})));
        assert!(tracker.settled());
        assert_eq!(tracker.deleted(), ["work"]);
    }

    #[test]
    fn events_about_a_pod_seen_late_wait_for_it_and_repeats_show_again() {
        let mut tracker = Tracker::new(&[job(json!({}))]);
        let early = event("e1", "Pod", "work-1-x", "BackOff", 1);
        assert!(tracker.event(&early, Time(1)).is_empty());
        let notices = tracker.pod(&pod("work-1-x", 1, json!({"phase": "Running"})), Time(2));
        let objects: Vec<_> = (notices.iter())
            .filter_map(|n| match n {
                Notice::Event { object, event, .. } => Some((object.clone(), event.reason.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            objects,
            [("pod/work-1-x".to_string(), "BackOff".to_string())]
        );
        // Re-listed unchanged: not shown again; counted again: shown.
        assert!(tracker.event(&early, Time(3)).is_empty());
        assert_eq!(
            tracker
                .event(&event("e1", "Pod", "work-1-x", "BackOff", 2), Time(4))
                .len(),
            1
        );
        // About the Job, and about another Job's pod.
        assert_eq!(
            tracker
                .event(&event("e2", "Job", "work", "SuccessfulCreate", 1), Time(5))
                .len(),
            1
        );
        assert!(tracker
            .event(&event("e3", "Pod", "other-x", "Started", 1), Time(6))
            .is_empty());
        assert!(
            tracker.pending_events.is_empty(),
            "another Job's pod is not waited for"
        );
    }
}
