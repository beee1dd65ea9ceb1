//! What one sync of a Job tells the Job controller's metrics, as upstream's
//! `pkg/controller/job` records them in `pkg/controller/job/metrics`: read from the Job, its
//! state before the sync, its pods and the sync's outcome. The driver adds the sync's
//! duration and keeps the counters.

use std::borrow::Borrow;

use joblet_api::valid::{FailurePolicyAction, PodReplacementPolicy};
use joblet_api::ValidJob;

use crate::pod::{PodPhase, PodView};
use crate::reconcile::{JobState, Reconciliation};
use crate::status::ConditionType;

/// One sync's contribution to each metric.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncMetrics {
    /// `completion_mode`: `Indexed` or `NonIndexed`.
    pub completion_mode: &'static str,
    /// `action` of `job_syncs_total` and `job_sync_duration_seconds`; none for a sync
    /// upstream does not count (a Job already finished, or another controller's).
    pub action: Option<&'static str>,
    /// `jobs_finished_total`'s `result` (`succeeded`, `failed`) and `reason`.
    pub finished: Option<(&'static str, String)>,
    /// `job_pods_finished_total`, by `result`.
    pub pods_succeeded: u64,
    pub pods_failed: u64,
    /// `job_finished_indexes_total` (Indexed Jobs), by `status`, with the `backoffLimit`
    /// label (`perIndex` or `global`).
    pub indexes_succeeded: u64,
    pub indexes_failed: u64,
    pub backoff_limit: &'static str,
    /// `job_pods_creation_total`: pods created and their `reason`.
    pub pods_created: u64,
    pub creation_reason: &'static str,
    /// `pod_failures_handled_by_failure_policy_total`, an `action` per counted pod.
    pub failure_policy_actions: Vec<&'static str>,
    /// `terminated_pods_tracking_finalizer_total`: terminated pods whose tracking ended
    /// (`delete`); joblet tracks a pod from its creation, so each was also `add`ed.
    pub terminated_untracked: u64,
}

/// The metrics of the sync that turned `before` into `out`.
pub fn observe_sync<P: Borrow<PodView>>(
    job: &ValidJob,
    before: &JobState,
    pods: &[P],
    out: &Reconciliation,
) -> SyncMetrics {
    let indexed = job.is_indexed();
    let mut metrics = SyncMetrics {
        completion_mode: if indexed { "Indexed" } else { "NonIndexed" },
        backoff_limit: if job.spec.backoff_limit_per_index.is_some() {
            "perIndex"
        } else {
            "global"
        },
        creation_reason: "new",
        ..SyncMetrics::default()
    };
    if !job.managed_by_controller() || before.status.is_finished() {
        return metrics;
    }
    let (old, new) = (&before.status, &out.state.status);
    // A Job whose end is decided is not managed further: upstream's action stays
    // `reconciling`.
    let finishing = [
        ConditionType::FailureTarget,
        ConditionType::SuccessCriteriaMet,
        ConditionType::Complete,
        ConditionType::Failed,
    ]
    .into_iter()
    .any(|c| new.has_true(c));
    metrics.action = Some(if finishing {
        "reconciling"
    } else if !out.create.is_empty() {
        "pods_created"
    } else if !out.delete.is_empty() {
        "pods_deleted"
    } else {
        "tracking"
    });
    for (type_, result) in [
        (ConditionType::Complete, "succeeded"),
        (ConditionType::Failed, "failed"),
    ] {
        if let Some(condition) = new.condition(type_).filter(|c| c.status) {
            metrics.finished = Some((result, condition.reason.clone()));
        }
    }
    let grown = |after: i32, before: i32| u64::try_from(after - before).unwrap_or(0);
    metrics.pods_succeeded = grown(new.succeeded, old.succeeded);
    metrics.pods_failed = grown(new.failed, old.failed);
    if indexed {
        metrics.indexes_succeeded = grown(
            new.completed_indexes.len() as i32,
            old.completed_indexes.len() as i32,
        );
        let failed_indexes = |s: &crate::Status| s.failed_indexes.as_ref().map_or(0, |f| f.len());
        metrics.indexes_failed = grown(failed_indexes(new) as i32, failed_indexes(old) as i32);
    }
    metrics.pods_created = out.create.len() as u64;
    // `recordJobPodsCreationTotal`: pods replacing failed ones, or terminating ones.
    let terminating_before = new.terminating - out.delete.len() as i32;
    metrics.creation_reason = match job.spec.pod_replacement_policy {
        PodReplacementPolicy::Failed if new.failed > 0 => "recreate_failed",
        _ if new.failed > 0 || terminating_before > 0 => "recreate_terminating_or_failed",
        _ => "new",
    };
    metrics.failure_policy_actions = (out.failure_policy_actions.iter())
        .map(|action| match action {
            FailurePolicyAction::FailJob => "FailJob",
            FailurePolicyAction::FailIndex => "FailIndex",
            FailurePolicyAction::Ignore => "Ignore",
            FailurePolicyAction::Count => "Count",
        })
        .collect();
    metrics.terminated_untracked = (pods.iter().map(Borrow::borrow))
        .filter(|p| matches!(p.phase, PodPhase::Succeeded | PodPhase::Failed))
        .filter(|p| out.untrack.contains(&p.name))
        .count() as u64;
    metrics
}
