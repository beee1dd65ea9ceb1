//! The Job controller's metrics read from one sync, as upstream's controller records them.

mod common;

use common::*;
use joblet_core::metrics::observe_sync;
use joblet_core::{JobState, PodPhase, PodView};
use serde_json::json;

#[test]
fn a_first_sync_creates_pods_for_new() {
    let j = job(json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed"}));
    let before = JobState::default();
    let r = sync(&j, &before, &[]);
    let m = observe_sync::<PodView>(&j, &before, &[], &r);
    assert_eq!(
        (
            m.completion_mode,
            m.action,
            m.pods_created,
            m.creation_reason
        ),
        ("Indexed", Some("pods_created"), 2, "new")
    );
    assert_eq!(
        (m.pods_succeeded, m.pods_failed, &m.finished),
        (0, 0, &None)
    );
}

#[test]
fn a_replacement_after_a_failure_is_a_recreation_and_the_failure_is_counted_once() {
    let j = job(json!({"completions": 2, "parallelism": 2, "backoffLimit": 6}));
    let before = started(NOW);
    let pods = [running("a"), pod("b", PodPhase::Failed)];
    let r = sync(&j, &before, &pods);
    let m = observe_sync(&j, &before, &pods, &r);
    assert_eq!(
        (m.action, m.pods_created, m.creation_reason, m.pods_failed),
        (Some("pods_created"), 1, "recreate_terminating_or_failed", 1)
    );
    assert_eq!(m.terminated_untracked, 1);
    // The next sync sees the same pods, now counted: nothing more.
    let again = sync(&j, &r.state, &[running("a"), running("c")]);
    let m = observe_sync(&j, &r.state, &[running("a"), running("c")], &again);
    assert_eq!(
        (m.action, m.pods_failed, m.pods_created),
        (Some("tracking"), 0, 0)
    );
}

#[test]
fn a_finishing_sync_is_reconciling_and_names_its_reason_and_a_finished_job_is_not_counted() {
    let j = job(json!({"completions": 2, "parallelism": 2, "completionMode": "Indexed"}));
    let before = started(NOW);
    let pods = [
        indexed("a", 0, PodPhase::Succeeded),
        indexed("b", 1, PodPhase::Succeeded),
    ];
    let r = sync(&j, &before, &pods);
    let m = observe_sync(&j, &before, &pods, &r);
    assert_eq!(m.action, Some("reconciling"));
    assert_eq!(
        m.finished,
        Some(("succeeded", "CompletionsReached".to_string()))
    );
    assert_eq!(
        (m.pods_succeeded, m.indexes_succeeded, m.backoff_limit),
        (2, 2, "global")
    );
    let after = sync(&j, &r.state, &[]);
    assert_eq!(
        observe_sync::<PodView>(&j, &r.state, &[], &after).action,
        None
    );
}

#[test]
fn pods_a_failure_policy_rule_matched_are_counted_by_its_action() {
    let j = job(
        json!({"completions": 1, "backoffLimit": 0, "podFailurePolicy": {"rules": [
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [42]}},
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}}]}}),
    );
    let before = started(NOW);
    let pods = [failed_with("a", &[("main", 42)])];
    let r = sync(&j, &before, &pods);
    let m = observe_sync(&j, &before, &pods, &r);
    assert_eq!(
        (m.failure_policy_actions, m.pods_failed),
        (vec!["Ignore"], 0)
    );
    let pods = [failed_with("b", &[("main", 1)])];
    let r2 = sync(&j, &r.state, &pods);
    let m = observe_sync(&j, &r.state, &pods, &r2);
    assert_eq!(m.failure_policy_actions, ["FailJob"]);
    assert_eq!(m.finished, Some(("failed", "PodFailurePolicy".to_string())));
}
