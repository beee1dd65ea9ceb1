//! Re-running the failed indexes of a finished Indexed Job (`joblet run --retry-failed`), a
//! long-standing request upstream (kubernetes#109131). The Job goes on as if its failed
//! indexes had not been tried yet, with a fresh failure budget and deadline; what succeeded
//! stays succeeded, and an event records the retry in the Job's history.

use joblet_api::{IndexSet, ValidJob};

use crate::{BackoffRecord, ConditionType, Event, EventType, JobState};

/// Why a Job cannot be retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RetryRefused {
    #[error("only an Indexed Job has failed indexes to retry")]
    NotIndexed,
    #[error("the Job has not failed (it is running, suspended or complete)")]
    NotFailed,
}

/// The state that re-runs every index of a failed Indexed Job that did not succeed, and the
/// event that says so.
pub fn retry_failed(job: &ValidJob, state: &JobState) -> Result<(JobState, Event), RetryRefused> {
    if !job.is_indexed() {
        return Err(RetryRefused::NotIndexed);
    }
    if !state.status.has_true(ConditionType::Failed) {
        return Err(RetryRefused::NotFailed);
    }
    let completions = job.spec.completions.unwrap_or(0);
    let mut retried = IndexSet::new();
    for index in (0..completions).filter(|i| !state.status.completed_indexes.contains(*i)) {
        retried.insert(index);
    }
    let mut next = state.clone();
    let status = &mut next.status;
    let failures_before = status.failed;
    status.conditions.retain(|c| {
        !matches!(
            c.type_,
            ConditionType::Failed | ConditionType::FailureTarget
        )
    });
    status.failed = 0;
    status.failed_indexes = status.failed_indexes.as_ref().map(|_| IndexSet::new());
    status.completion_time = None;
    // activeDeadlineSeconds counts from the start: the retry is a new start.
    status.start_time = None;
    next.backoff = BackoffRecord::default();
    let event = Event {
        type_: EventType::Normal,
        reason: "RetryFailed".to_string(),
        message: format!(
            "Retrying indexes {retried} ({failures_before} failed pods before the retry)"
        ),
    };
    Ok((next, event))
}
