//! `joblet run --retry-failed`: a failed Indexed Job re-runs what did not succeed.

mod common;

use common::*;
use joblet_core::{retry_failed, JobState, PodPhase, PodView, RetryRefused};
use serde_json::json;

/// Syncs until the pods are all counted (at most a few syncs).
fn settle(job: &joblet_api::ValidJob, pods: &[PodView]) -> JobState {
    let mut state = started(NOW);
    let mut pods = pods.to_vec();
    for _ in 0..4 {
        let r = sync(job, &state, &pods);
        state = r.state;
        for pod in &mut pods {
            pod.tracked &= !r.untrack.contains(&pod.name);
        }
    }
    state
}

#[test]
fn only_the_failed_indexes_run_again_with_a_fresh_budget() {
    let job = job(
        json!({"completions": 4, "parallelism": 4, "completionMode": "Indexed",
        "backoffLimitPerIndex": 0}),
    );
    let failed = settle(
        &job,
        &[
            indexed("p0", 0, PodPhase::Succeeded),
            indexed("p1", 1, PodPhase::Failed),
            indexed("p2", 2, PodPhase::Succeeded),
            indexed("p3", 3, PodPhase::Failed),
        ],
    );
    assert!(failed.status.is_finished(), "{:?}", failed.status);
    assert_eq!(failed.status.failed, 2);

    let (retried, event) = retry_failed(&job, &failed).unwrap();
    assert!(!retried.status.is_finished());
    assert_eq!(retried.status.failed, 0);
    assert_eq!(
        retried.status.failed_indexes.as_ref().unwrap().to_string(),
        ""
    );
    assert_eq!(retried.status.completed_indexes.to_string(), "0,2");
    assert_eq!(retried.status.succeeded, 2);
    assert_eq!(event.reason, "RetryFailed");
    assert_eq!(
        event.message,
        "Retrying indexes 1,3 (2 failed pods before the retry)"
    );

    let r = sync(&job, &retried, &[]);
    assert_eq!(created_indexes(&r), [1, 3]);
    assert!(r.state.status.start_time.is_some(), "a new start");
}

#[test]
fn indexes_a_job_never_reached_run_too() {
    // backoffLimit 0 fails the Job at its first failure, before index 3 ever ran.
    let job = job(
        json!({"completions": 4, "parallelism": 3, "completionMode": "Indexed",
        "backoffLimit": 0}),
    );
    let failed = settle(
        &job,
        &[
            indexed("p0", 0, PodPhase::Succeeded),
            indexed("p1", 1, PodPhase::Failed),
            indexed("p2", 2, PodPhase::Succeeded),
        ],
    );
    assert!(failed.status.is_finished());
    let (retried, _) = retry_failed(&job, &failed).unwrap();
    assert_eq!(created_indexes(&sync(&job, &retried, &[])), [1, 3]);
}

#[test]
fn a_job_that_did_not_fail_or_is_not_indexed_is_refused() {
    let indexed_job = job(json!({"completions": 1, "completionMode": "Indexed"}));
    let complete = settle(&indexed_job, &[indexed("p0", 0, PodPhase::Succeeded)]);
    assert!(complete.status.is_finished());
    assert_eq!(
        retry_failed(&indexed_job, &complete).unwrap_err(),
        RetryRefused::NotFailed
    );
    let running = started(NOW);
    assert_eq!(
        retry_failed(&indexed_job, &running).unwrap_err(),
        RetryRefused::NotFailed
    );
    let plain = job(json!({"completions": 1, "backoffLimit": 0}));
    let failed = settle(&plain, &[pod("p0", PodPhase::Failed)]);
    assert_eq!(
        retry_failed(&plain, &failed).unwrap_err(),
        RetryRefused::NotIndexed
    );
}
