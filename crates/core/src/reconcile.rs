//! One sync of the Job controller (`syncJob` + `manageJob`, spec §2–§6) as a pure function
//! of the Job, its observed pods and the time.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use joblet_api::valid::{FailurePolicyAction, RestartPolicy};
use joblet_api::{IndexSet, ValidJob};

use crate::backoff::{BackoffConfig, BackoffRecord};
use crate::build::PodToCreate;
use crate::naming::{pod_name, pod_uid};
use crate::pod::{PodPhase, PodView};
use crate::policy::{match_failure_policy, match_success_policy};
use crate::status::{ConditionType, Status};
use crate::time::Time;
use joblet_api::version::Emulation;

/// Upstream creates or deletes at most this many pods per sync.
const MAX_POD_CHANGES_PER_SYNC: usize = 500;

pub const REASON_COMPLETIONS_REACHED: &str = "CompletionsReached";
pub const MESSAGE_COMPLETIONS_REACHED: &str = "Reached expected number of succeeded pods";
pub const REASON_BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
pub const MESSAGE_BACKOFF_LIMIT_EXCEEDED: &str = "Job has reached the specified backoff limit";
pub const REASON_DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
pub const MESSAGE_DEADLINE_EXCEEDED: &str = "Job was active longer than specified deadline";
pub const REASON_POD_FAILURE_POLICY: &str = "PodFailurePolicy";
pub const REASON_FAILED_INDEXES: &str = "FailedIndexes";
pub const MESSAGE_FAILED_INDEXES: &str = "Job has failed indexes";
pub const REASON_MAX_FAILED_INDEXES_EXCEEDED: &str = "MaxFailedIndexesExceeded";
pub const MESSAGE_MAX_FAILED_INDEXES_EXCEEDED: &str =
    "Job has exceeded the specified maximal number of failed indexes";
pub const REASON_SUCCESS_POLICY: &str = "SuccessPolicy";

/// What the controller keeps per Job between syncs. The status is the Job's; the back-off
/// record and pod counter are the controller's own (upstream keeps the record in memory,
/// joblet stores it so a restart does not forget it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobState {
    pub status: Status,
    pub backoff: BackoffRecord,
    /// Pods created so far: the sequence number of the next pod's name.
    pub pods_created: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// An event on the Job, with upstream's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub type_: EventType,
    pub reason: String,
    pub message: String,
}

/// The outcome of one sync: the new state and what to do to the world.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub state: JobState,
    pub create: Vec<PodToCreate>,
    /// Pods to delete gracefully (SIGTERM, then SIGKILL after their grace period).
    pub delete: Vec<String>,
    /// Pods whose tracking finalizer is removed: counted now, or dropped uncounted.
    pub untrack: Vec<String>,
    pub events: Vec<Event>,
    /// The pod failure policy's action for each failed pod counted in this sync that a
    /// rule matched.
    pub failure_policy_actions: Vec<FailurePolicyAction>,
    /// When to sync again if nothing else happens first.
    pub requeue_at: Option<Time>,
}

impl Reconciliation {
    fn event(&mut self, type_: EventType, reason: &str, message: impl Into<String>) {
        self.events.push(Event {
            type_,
            reason: reason.to_string(),
            message: message.into(),
        });
    }

    fn requeue(&mut self, at: Time) {
        self.requeue_at = Some(self.requeue_at.map_or(at, |t| t.min(at)));
    }

    fn delete_pod(&mut self, pod: &PodView, untrack: bool) {
        self.delete.push(pod.name.clone());
        if untrack && pod.tracked {
            self.untrack.push(pod.name.clone());
        }
        self.event(
            EventType::Normal,
            "SuccessfulDelete",
            format!("Deleted pod: {}", pod.name),
        );
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Finish {
    Success { reason: String, message: String },
    Failure { reason: String, message: String },
}

/// How the controller runs: its pod re-creation back-off, and the Kubernetes version whose
/// feature gates it follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControllerConfig {
    pub backoff: BackoffConfig,
    pub emulation: Emulation,
}

/// One sync: from the Job, its state, the pods that still matter (every pod that is not
/// both finished and counted) and the time, to the new state and actions.
pub fn reconcile<P: Borrow<PodView>>(
    job: &ValidJob,
    state: &JobState,
    pods: &[P],
    now: Time,
    config: &ControllerConfig,
) -> Reconciliation {
    let backoff = &config.backoff;
    let pods: Vec<&PodView> = pods.iter().map(Borrow::borrow).collect();
    let pods = pods.as_slice();
    let mut out = Reconciliation {
        state: state.clone(),
        ..Reconciliation::default()
    };
    if !job.managed_by_controller() || state.status.is_finished() {
        return out;
    }
    let spec = &job.spec;
    let indexed = job.is_indexed();
    let completions = spec.completions;
    let only_failed = job.only_replaces_failed_pods();
    let has_valid_index =
        |p: &PodView| !indexed || p.index.is_some_and(|i| i < completions.unwrap_or(0));
    let success_locked = state.status.has_true(ConditionType::SuccessCriteriaMet);
    // Once success is decided, a pod being deleted is no failure (spec §5.1).
    let considered_failed = |p: &PodView| {
        p.phase == PodPhase::Failed
            || (!only_failed && !success_locked && p.deleting && p.phase != PodPhase::Succeeded)
    };

    if out.state.status.start_time.is_none() && !spec.suspend {
        out.state.status.start_time = Some(now);
    }

    // Pods that finished since the last sync and can still be counted.
    let new_succeeded: Vec<&PodView> = pods
        .iter()
        .copied()
        .filter(|p| p.tracked && has_valid_index(p) && p.phase == PodPhase::Succeeded)
        .collect();
    let new_failed: Vec<&PodView> = pods
        .iter()
        .copied()
        .filter(|p| p.tracked && has_valid_index(p) && considered_failed(p))
        .collect();
    let finish_times = |list: &[&PodView]| list.iter().map(|p| p.finish_time).collect::<Vec<_>>();
    out.state.backoff = state
        .backoff
        .update(&finish_times(&new_succeeded), &finish_times(&new_failed));
    let verdicts: HashMap<&str, (FailurePolicyAction, String)> = new_failed
        .iter()
        .filter_map(|p| {
            let verdict = match_failure_policy(&spec.pod_failure_policy, p, job.namespace())?;
            Some((p.name.as_str(), verdict))
        })
        .collect();
    let ignored = |p: &PodView| {
        verdicts
            .get(p.name.as_str())
            .is_some_and(|(action, _)| *action == FailurePolicyAction::Ignore)
    };

    let status = &mut out.state.status;
    if indexed {
        for pod in &new_succeeded {
            status
                .completed_indexes
                .insert(pod.index.expect("valid index"));
        }
        status.completed_indexes.truncate(completions.unwrap_or(0));
    }
    if let Some(limit) = spec.backoff_limit_per_index {
        let failed_indexes = status.failed_indexes.get_or_insert_with(IndexSet::new);
        for pod in &new_failed {
            let index_failed = match verdicts.get(pod.name.as_str()) {
                Some((FailurePolicyAction::FailIndex, _)) => true,
                Some((FailurePolicyAction::Ignore, _)) => false,
                _ => pod.index_failure_count >= limit,
            };
            if index_failed {
                failed_indexes.insert(pod.index.expect("valid index"));
            }
        }
    }
    let mut delayed = delayed_deletions(job, status, pods, &new_failed);
    // Failures held back for their replacement still count toward backoffLimit.
    let provisional_failed =
        status.failed + new_failed.iter().filter(|p| !ignored(p)).count() as i32;

    let mut finish = locked_finish(&state.status);
    let mut new_finish = false;
    if finish.is_none() {
        let fail_job = pods.iter().find_map(|p| {
            match match_failure_policy(&spec.pod_failure_policy, p, job.namespace()) {
                Some((FailurePolicyAction::FailJob, message)) => Some(message),
                _ => None,
            }
        });
        finish = match fail_job {
            Some(message) => Some(Finish::Failure {
                reason: REASON_POD_FAILURE_POLICY.to_string(),
                message,
            }),
            None => failure_condition(job, &out.state.status, provisional_failed, pods, now),
        };
        match (&finish, spec.active_deadline_seconds) {
            (None, Some(deadline)) if !spec.suspend => {
                if let Some(start) = out.state.status.start_time {
                    out.requeue(start.plus_millis(deadline.saturating_mul(1000)));
                }
            }
            _ => {}
        }
        if finish.is_none() {
            finish = index_outcome(job, &out.state.status);
        }
        new_finish = finish.is_some();
    }
    if finish.is_some() {
        // A finishing Job keeps nothing back: every failure is counted now.
        delayed.clear();
    }

    let status = &mut out.state.status;
    for pod in &new_succeeded {
        if !indexed {
            status.succeeded += 1;
        }
        out.untrack.push(pod.name.clone());
    }
    if indexed {
        status.succeeded = status.completed_indexes.len() as i32;
    }
    for pod in &new_failed {
        if delayed.values().any(|d| d.name == pod.name) {
            continue; // its replacement inherits its failure counts first (spec §4.6)
        }
        if !ignored(pod) {
            status.failed += 1;
        }
        out.untrack.push(pod.name.clone());
        if let Some((action, _)) = verdicts.get(pod.name.as_str()) {
            out.failure_policy_actions.push(*action);
        }
    }

    let already_terminating = pods.iter().filter(|p| p.is_terminating()).count() as i32;
    let mut terminating = already_terminating;
    let active_after = match &finish {
        Some(finish) => {
            let failing = matches!(finish, Finish::Failure { .. });
            for pod in pods.iter().filter(|p| p.is_active()) {
                out.delete_pod(pod, !failing);
                terminating += 1;
            }
            if failing {
                // Pods killed because the Job failed count as failures (spec §2.8 rule 3).
                let uncounted: Vec<&PodView> = pods
                    .iter()
                    .copied()
                    .filter(|p| {
                        p.tracked
                            && has_valid_index(p)
                            && p.phase != PodPhase::Succeeded
                            && !out.untrack.contains(&p.name)
                    })
                    .collect();
                for pod in uncounted {
                    out.state.status.failed += 1;
                    out.untrack.push(pod.name.clone());
                }
            }
            0
        }
        None => {
            let (active_after, deleted) =
                manage_job(job, pods, &delayed, &verdicts, now, backoff, &mut out);
            terminating += deleted;
            let succeeded = out.state.status.succeeded;
            let complete = active_after == 0
                && match completions {
                    None => succeeded > 0,
                    Some(c) => succeeded >= c,
                };
            if complete {
                finish = Some(Finish::Success {
                    reason: REASON_COMPLETIONS_REACHED.to_string(),
                    message: MESSAGE_COMPLETIONS_REACHED.to_string(),
                });
                new_finish = true;
            } else {
                update_suspended_condition(job, now, config.emulation, &mut out);
            }
            active_after
        }
    };

    let ready = pods
        .iter()
        .filter(|p| p.is_active() && p.ready && !out.delete.contains(&p.name))
        .count() as i32;
    let status = &mut out.state.status;
    status.active = active_after;
    status.ready = ready;
    status.terminating = terminating;

    if let Some(finish) = finish {
        let (interim, terminal, reason, message) = match &finish {
            Finish::Success { reason, message } => (
                ConditionType::SuccessCriteriaMet,
                ConditionType::Complete,
                reason,
                message,
            ),
            Finish::Failure { reason, message } => (
                ConditionType::FailureTarget,
                ConditionType::Failed,
                reason,
                message,
            ),
        };
        if new_finish {
            status.set_condition(interim, true, reason, message, now);
        }
        // The terminal condition waits until no pod of the Job is terminating (§5.3).
        if terminating == 0 {
            status.set_condition(terminal, true, reason, message, now);
            match finish {
                Finish::Success { .. } => {
                    status.completion_time = Some(now);
                    let too_many = !indexed && completions.is_some_and(|c| status.succeeded > c);
                    out.event(EventType::Normal, "Completed", "Job completed");
                    if too_many {
                        out.event(
                            EventType::Warning,
                            "TooManySucceededPods",
                            "Too many succeeded pods running after completion count reached",
                        );
                    }
                }
                Finish::Failure { reason, message } => {
                    out.event(EventType::Warning, &reason, message);
                }
            }
            out.requeue_at = None;
        }
    }
    out
}

/// A finish decided in an earlier sync stays decided (spec §2.3 steps 10a–b).
fn locked_finish(status: &Status) -> Option<Finish> {
    let from = |type_| status.condition(type_).filter(|c| c.status);
    if let Some(c) = from(ConditionType::SuccessCriteriaMet) {
        return Some(Finish::Success {
            reason: c.reason.clone(),
            message: c.message.clone(),
        });
    }
    from(ConditionType::FailureTarget).map(|c| Finish::Failure {
        reason: c.reason.clone(),
        message: c.message.clone(),
    })
}

/// The failure checks in upstream's order: backoffLimit, then the deadline (spec §2.3 10d–e).
fn failure_condition(
    job: &ValidJob,
    status: &Status,
    failed: i32,
    pods: &[&PodView],
    now: Time,
) -> Option<Finish> {
    let spec = &job.spec;
    let restarts_exceeded = spec.restart_policy == RestartPolicy::OnFailure && {
        let restarts: i64 = pods
            .iter()
            .filter(|p| matches!(p.phase, PodPhase::Pending | PodPhase::Running))
            .map(|p| p.restart_count as i64)
            .sum();
        if spec.backoff_limit == 0 {
            restarts > 0
        } else {
            restarts >= spec.backoff_limit as i64
        }
    };
    if failed > spec.backoff_limit || restarts_exceeded {
        return Some(Finish::Failure {
            reason: REASON_BACKOFF_LIMIT_EXCEEDED.to_string(),
            message: MESSAGE_BACKOFF_LIMIT_EXCEEDED.to_string(),
        });
    }
    let past_deadline = match (spec.active_deadline_seconds, status.start_time) {
        (Some(deadline), Some(start)) if !spec.suspend => {
            now.millis_since(start) >= deadline.saturating_mul(1000)
        }
        _ => false,
    };
    past_deadline.then(|| Finish::Failure {
        reason: REASON_DEADLINE_EXCEEDED.to_string(),
        message: MESSAGE_DEADLINE_EXCEEDED.to_string(),
    })
}

/// With `backoffLimitPerIndex`: failed indexes, then the success policy (spec §2.3 h–i).
fn index_outcome(job: &ValidJob, status: &Status) -> Option<Finish> {
    let completions = job.spec.completions.unwrap_or(0);
    if let Some(failed) = &status.failed_indexes {
        if job
            .spec
            .max_failed_indexes
            .is_some_and(|max| failed.len() > max as usize)
        {
            return Some(Finish::Failure {
                reason: REASON_MAX_FAILED_INDEXES_EXCEEDED.to_string(),
                message: MESSAGE_MAX_FAILED_INDEXES_EXCEEDED.to_string(),
            });
        }
        if !failed.is_empty()
            && failed.len() + status.completed_indexes.len() >= completions as usize
        {
            return Some(Finish::Failure {
                reason: REASON_FAILED_INDEXES.to_string(),
                message: MESSAGE_FAILED_INDEXES.to_string(),
            });
        }
    }
    let rule = match_success_policy(
        &job.spec.success_policy,
        &status.completed_indexes,
        completions,
    )?;
    Some(Finish::Success {
        reason: REASON_SUCCESS_POLICY.to_string(),
        message: format!("Matched rules at index {rule}"),
    })
}

/// Per index, the latest failed pod whose replacement does not exist yet: it keeps its
/// finalizer (and so is not counted) until the replacement has inherited its failure
/// counts (upstream's `getPodsWithDelayedDeletionPerIndex`).
fn delayed_deletions<'a>(
    job: &ValidJob,
    status: &Status,
    pods: &[&'a PodView],
    new_failed: &[&'a PodView],
) -> BTreeMap<i32, &'a PodView> {
    let mut delayed: BTreeMap<i32, &PodView> = BTreeMap::new();
    if job.spec.backoff_limit_per_index.is_none() {
        return delayed;
    }
    let active: IndexSet = pods
        .iter()
        .filter(|p| p.is_active())
        .filter_map(|p| p.index)
        .collect();
    let failed = status.failed_indexes.clone().unwrap_or_default();
    for pod in new_failed {
        let index = pod.index.expect("valid index");
        if status.completed_indexes.contains(index)
            || failed.contains(index)
            || active.contains(index)
        {
            continue;
        }
        let absolute = |p: &PodView| p.index_failure_count + p.index_ignored_failure_count;
        let later = delayed.get(&index).is_none_or(|current| {
            absolute(current) <= absolute(pod) && pod.finish_time >= current.finish_time
        });
        if later {
            delayed.insert(index, pod);
        }
    }
    delayed
}

/// Upstream's order for choosing pods to delete: the least advanced first (spec §2.6).
fn deletion_order(a: &PodView, b: &PodView) -> Ordering {
    a.phase
        .cmp(&b.phase)
        .then(a.ready.cmp(&b.ready))
        .then_with(|| match (a.ready, b.ready) {
            (true, true) => b.ready_since.cmp(&a.ready_since),
            _ => Ordering::Equal,
        })
        .then(b.restart_count.cmp(&a.restart_count))
        .then(b.created.cmp(&a.created))
}

/// Creates or deletes pods toward the wanted number of active pods; never both in one
/// sync. Returns the active count afterwards and how many pods it deleted.
fn manage_job(
    job: &ValidJob,
    pods: &[&PodView],
    delayed: &BTreeMap<i32, &PodView>,
    verdicts: &HashMap<&str, (FailurePolicyAction, String)>,
    now: Time,
    backoff: &BackoffConfig,
    out: &mut Reconciliation,
) -> (i32, i32) {
    let spec = &job.spec;
    let mut active: Vec<&PodView> = pods.iter().copied().filter(|p| p.is_active()).collect();
    let active_count = active.len() as i32;
    if spec.suspend {
        for pod in &active {
            out.delete_pod(pod, true);
        }
        return (0, active_count);
    }
    let succeeded = out.state.status.succeeded;
    let want = match spec.completions {
        None if succeeded == 0 => spec.parallelism,
        None => active_count,
        Some(c) => (c - succeeded).clamp(0, spec.parallelism),
    };

    let mut to_delete: Vec<&PodView> = Vec::new();
    if job.is_indexed() {
        let completions = spec.completions.unwrap_or(0);
        let mut by_index: BTreeMap<i32, Vec<&PodView>> = BTreeMap::new();
        for pod in active.drain(..) {
            match pod.index.filter(|i| *i < completions) {
                Some(index) => by_index.entry(index).or_default().push(pod),
                None => to_delete.push(pod),
            }
        }
        for (_, mut group) in by_index {
            group.sort_by(|a, b| deletion_order(a, b));
            let best = group.pop().expect("groups are never empty");
            to_delete.extend(group);
            active.push(best);
        }
    }
    // Upstream's `activePodsForRemoval`: forced removals first, then the least advanced.
    let rm_at_least = (active_count - want).max(0) as usize;
    if to_delete.len() < rm_at_least {
        active.sort_by(|a, b| deletion_order(a, b));
        to_delete.extend(active.iter().take(rm_at_least - to_delete.len()));
    }
    if !to_delete.is_empty() {
        to_delete.truncate(MAX_POD_CHANGES_PER_SYNC);
        for pod in &to_delete {
            out.delete_pod(pod, true);
        }
        let deleted = to_delete.len() as i32;
        return (active_count - deleted, deleted);
    }

    let terminating: Vec<&PodView> = pods
        .iter()
        .copied()
        .filter(|p| p.is_terminating())
        .collect();
    let held_back = if job.only_replaces_failed_pods() {
        terminating.len() as i32
    } else {
        0
    };
    let diff = want - active_count - held_back;
    if diff <= 0 {
        return (active_count, 0);
    }
    let per_index = spec.backoff_limit_per_index.is_some();
    if !per_index {
        let wait = out.state.backoff.remaining_ms(backoff, now);
        if wait > 0 {
            out.requeue(now.plus_millis(wait));
            return (active_count, 0);
        }
    }
    let diff = (diff as usize).min(MAX_POD_CHANGES_PER_SYNC);
    let mut to_create: Vec<PodToCreate> = Vec::new();
    let first_seq = out.state.pods_created;
    let mut requeue_at: Option<Time> = None;
    let mut plan = |index: Option<i32>, failures: Option<(i32, i32)>| {
        let seq = first_seq + to_create.len() as u64;
        to_create.push(PodToCreate {
            uid: pod_uid(job.uid(), seq),
            name: pod_name(job.name(), job.uid(), index, seq),
            index,
            index_failure_count: failures.map(|f| f.0),
            index_ignored_failure_count: failures.map(|f| f.1),
        });
    };
    if job.is_indexed() {
        let running: IndexSet = active.iter().filter_map(|p| p.index).collect();
        let failed_indexes = out.state.status.failed_indexes.clone().unwrap_or_default();
        let mut excluded = vec![
            &out.state.status.completed_indexes,
            &running,
            &failed_indexes,
        ];
        let terminating_indexes: IndexSet = terminating.iter().filter_map(|p| p.index).collect();
        if held_back > 0 {
            excluded.push(&terminating_indexes);
        }
        for index in IndexSet::first_missing(spec.completions.unwrap_or(0), diff, &excluded) {
            if !per_index {
                plan(Some(index), None);
                continue;
            }
            // The replacement inherits the failed pod's counts, after a per-index back-off.
            let Some(previous) = delayed.get(&index) else {
                plan(Some(index), Some((0, 0)));
                continue;
            };
            let was_ignored = verdicts
                .get(previous.name.as_str())
                .is_some_and(|(action, _)| *action == FailurePolicyAction::Ignore);
            let (failures, ignored) = (
                previous.index_failure_count + i32::from(!was_ignored),
                previous.index_ignored_failure_count + i32::from(was_ignored),
            );
            let delay = backoff.delay_ms((failures + ignored).max(1) as u32);
            let wait = delay - now.millis_since(previous.finish_time);
            if wait > 0 {
                let at = now.plus_millis(wait);
                requeue_at = Some(requeue_at.map_or(at, |t| t.min(at)));
                continue;
            }
            plan(Some(index), Some((failures, ignored)));
        }
    } else {
        for _ in 0..diff {
            plan(None, None);
        }
    }
    if let Some(at) = requeue_at {
        out.requeue(at);
    }
    let created = to_create.len() as i32;
    out.state.pods_created += to_create.len() as u64;
    for pod in to_create {
        out.event(
            EventType::Normal,
            "SuccessfulCreate",
            format!("Created pod: {}", pod.name),
        );
        out.create.push(pod);
    }
    (active_count + created, 0)
}

/// The `Suspended` condition follows `spec.suspend` (spec §6); resuming restarts the
/// deadline clock. From 1.36 a Job marked suspended loses its `startTime` (#135104): it
/// counts as not started, and its template may change.
fn update_suspended_condition(
    job: &ValidJob,
    now: Time,
    emulation: Emulation,
    out: &mut Reconciliation,
) {
    let status = &mut out.state.status;
    if job.spec.suspend {
        if status.set_condition(
            ConditionType::Suspended,
            true,
            "JobSuspended",
            "Job suspended",
            now,
        ) {
            if emulation.mutable_suspended_jobs() {
                status.start_time = None;
            }
            out.event(EventType::Normal, "Suspended", "Job suspended");
        }
    } else if status.has_true(ConditionType::Suspended) {
        status.set_condition(
            ConditionType::Suspended,
            false,
            "JobResumed",
            "Job resumed",
            now,
        );
        status.start_time = Some(now);
        out.event(EventType::Normal, "Resumed", "Job resumed");
    }
}

/// When a finished Job with `ttlSecondsAfterFinished` expires (spec §7).
pub fn ttl_expiry(job: &ValidJob, status: &Status) -> Option<Time> {
    let ttl = job.spec.ttl_seconds_after_finished?;
    let finished = status.finished_at()?;
    Some(finished.plus_millis(ttl as i64 * 1000))
}
