//! The controller's rules, one reconcile at a time, with a fake clock. Test names cite the
//! cases of shared/spec/job-test-cases.md.

mod common;

use common::*;
use joblet_core::{
    reconcile, BackoffRecord, ConditionType, ControllerConfig, JobState, PodPhase, PodView,
    Reconciliation, Time,
};
use serde_json::json;

#[test]
fn tc001_job_start_creates_parallelism_pods() {
    let j = job(json!({"completions": 5, "parallelism": 2}));
    let r = sync(&j, &JobState::default(), &[]);
    assert_eq!(r.create.len(), 2);
    assert!(r
        .create
        .iter()
        .all(|p| p.name.starts_with("foobar-") && p.index.is_none()));
    assert_eq!(reasons(&r), ["SuccessfulCreate", "SuccessfulCreate"]);
    let s = &r.state.status;
    assert_eq!(
        (s.active, s.ready, s.succeeded, s.failed, s.terminating),
        (2, 0, 0, 0, 0)
    );
    assert_eq!(s.start_time, Some(NOW));
    assert!(s.conditions.is_empty());
}

#[test]
fn tc002_work_queue_start() {
    let j = job(json!({"parallelism": 2}));
    let r = sync(&j, &JobState::default(), &[]);
    assert_eq!(r.create.len(), 2);
    assert_eq!(r.state.status.active, 2);
}

#[test]
fn tc003_steady_state_counts_ready_pods() {
    let j = job(json!({"completions": 5, "parallelism": 3}));
    let r = sync(&j, &started(NOW), &[ready("a"), ready("b"), running("c")]);
    assert!(r.create.is_empty() && r.delete.is_empty());
    assert_eq!((r.state.status.active, r.state.status.ready), (3, 2));
}

#[test]
fn tc004_one_success_frees_a_slot() {
    let j = job(json!({"completions": 5, "parallelism": 2}));
    let r = sync(
        &j,
        &started(NOW),
        &[running("a"), pod("b", PodPhase::Succeeded)],
    );
    assert_eq!(r.create.len(), 1);
    assert_eq!(r.untrack, ["b"]);
    assert_eq!((r.state.status.succeeded, r.state.status.active), (1, 2));
}

#[test]
fn tc005_too_many_active_pods_scale_down_without_counting() {
    let j = job(json!({"completions": 5, "parallelism": 2}));
    let r = sync(
        &j,
        &started(NOW),
        &[running("a"), running("b"), running("c")],
    );
    assert_eq!(r.delete.len(), 1);
    assert_eq!(
        r.untrack, r.delete,
        "finalizer removed first: never counted"
    );
    assert!(r.create.is_empty());
    let s = &r.state.status;
    assert_eq!((s.active, s.terminating, s.failed), (2, 1, 0));
}

#[test]
fn tc006_parallelism_larger_than_remaining_completions() {
    let j = job(json!({"completions": 4, "parallelism": 3}));
    let pods = [
        running("a"),
        running("b"),
        running("c"),
        pod("d", PodPhase::Succeeded),
        pod("e", PodPhase::Succeeded),
    ];
    let r = sync(&j, &started(NOW), &pods);
    assert_eq!(r.delete.len(), 1);
    let s = &r.state.status;
    assert_eq!((s.active, s.succeeded, s.failed), (2, 2, 0));
}

#[test]
fn tc007_many_excess_pods() {
    let j = job(json!({"completions": 5, "parallelism": 2}));
    let pods: Vec<PodView> = (0..10).map(|i| running(&format!("p{i}"))).collect();
    let r = sync(&j, &started(NOW), &pods);
    assert_eq!(r.delete.len(), 8);
    assert_eq!((r.state.status.active, r.state.status.terminating), (2, 8));
}

#[test]
fn tc008_deletion_order_unready_first_then_most_recently_ready() {
    let j = job(json!({"completions": 5, "parallelism": 2}));
    let a = PodView {
        ready_since: Some(Time(1)),
        ..ready("a")
    };
    let b = PodView {
        ready_since: Some(Time(2)),
        ..ready("b")
    };
    let r = sync(&j, &started(NOW), &[a.clone(), b.clone(), running("c")]);
    assert_eq!(r.delete, ["c"]);
    assert_eq!(r.state.status.ready, 2);
    let c = PodView {
        ready_since: Some(Time(3)),
        ..ready("c")
    };
    let r = sync(&j, &started(NOW), &[a, b, c]);
    assert_eq!(
        r.delete,
        ["c"],
        "the pod that became ready most recently goes first"
    );
}

#[test]
fn tc009_success_and_failure_at_the_same_instant_reset_the_backoff() {
    let j = job(json!({"completions": 5, "parallelism": 2}));
    let t = NOW.plus_millis(-1);
    let pods = [
        running("a"),
        PodView {
            finish_time: t,
            ..pod("b", PodPhase::Succeeded)
        },
        PodView {
            finish_time: t,
            ..pod("c", PodPhase::Failed)
        },
    ];
    let r = sync(&j, &started(NOW), &pods);
    assert_eq!(r.create.len(), 1);
    let s = &r.state.status;
    assert_eq!((s.succeeded, s.failed, s.active), (1, 1, 2));
    assert_eq!(r.state.backoff, BackoffRecord::default());
}

#[test]
fn tc010_failure_long_ago_is_replaced_at_once() {
    let j = job(json!({"completions": 5, "parallelism": 2}));
    let r = sync(
        &j,
        &started(NOW),
        &[running("a"), pod("b", PodPhase::Failed)],
    );
    assert_eq!(r.create.len(), 1);
    assert_eq!((r.state.status.failed, r.state.status.active), (1, 2));
    assert!(r.state.status.conditions.is_empty());
}

#[test]
fn tc011_active_backoff_blocks_replacement() {
    let j = job(json!({"completions": 1, "parallelism": 1}));
    let mut state = started(NOW);
    state.backoff = BackoffRecord {
        failures_after_last_success: 1,
        last_failure: Some(NOW),
    };
    let r = sync(&j, &state, &[]);
    assert!(r.create.is_empty());
    assert_eq!(r.state.status.active, 0);
    assert_eq!(r.requeue_at, Some(NOW.plus_millis(10_000)));
    state.backoff = BackoffRecord::default();
    assert_eq!(sync(&j, &state, &[]).create.len(), 1);
}

/// #139457 (in 1.37, and patch releases back to 1.33): upstream reported `active` 0 while
/// a replacement waited out the back-off, which the API server refused beside `ready`.
#[test]
fn active_stays_the_real_count_while_a_replacement_waits_for_the_back_off() {
    let j = job(json!({"completions": 4, "parallelism": 2}));
    let mut state = started(NOW);
    state.backoff = BackoffRecord {
        failures_after_last_success: 1,
        last_failure: Some(NOW),
    };
    let r = sync(&j, &state, &[ready("a")]);
    assert!(r.create.is_empty());
    assert_eq!((r.state.status.active, r.state.status.ready), (1, 1));
    assert_eq!(r.requeue_at, Some(NOW.plus_millis(10_000)));
}

#[test]
fn tc012_normal_completion() {
    let j = job(json!({"completions": 5, "parallelism": 2}));
    let pods: Vec<PodView> = (0..5)
        .map(|i| pod(&format!("p{i}"), PodPhase::Succeeded))
        .collect();
    let r = sync(&j, &started(NOW), &pods);
    assert_eq!(r.state.status.succeeded, 5);
    assert_eq!(
        condition_types(&r),
        [
            ("SuccessCriteriaMet", "CompletionsReached".into()),
            ("Complete", "CompletionsReached".into())
        ]
    );
    assert_eq!(
        r.state.status.conditions[1].message,
        "Reached expected number of succeeded pods"
    );
    assert_eq!(r.state.status.completion_time, Some(NOW));
    assert_eq!(reasons(&r), ["Completed"]);
}

#[test]
fn tc013_completions_zero_completes_immediately() {
    let j = job(json!({"completions": 0, "parallelism": 0}));
    let r = sync(&j, &JobState::default(), &[]);
    assert!(r.create.is_empty());
    assert!(r.state.status.has_true(ConditionType::Complete));
}

#[test]
fn tc014_parallelism_zero_pauses() {
    let j = job(json!({"completions": 3, "parallelism": 0}));
    let r = sync(&j, &JobState::default(), &[]);
    assert!(r.create.is_empty() && r.state.status.conditions.is_empty());
    assert_eq!(r.state.status.start_time, Some(NOW));
}

#[test]
fn tc017_work_queue_one_success_while_others_run() {
    let j = job(json!({"parallelism": 2}));
    let r = sync(
        &j,
        &started(NOW),
        &[running("a"), pod("b", PodPhase::Succeeded)],
    );
    assert!(r.create.is_empty() && r.delete.is_empty());
    assert_eq!((r.state.status.active, r.state.status.succeeded), (1, 1));
    assert!(r.state.status.conditions.is_empty());
}

#[test]
fn tc018_tc019_work_queue_all_finished() {
    let j = job(json!({"parallelism": 2}));
    let r = sync(
        &j,
        &started(NOW),
        &[pod("a", PodPhase::Succeeded), pod("b", PodPhase::Succeeded)],
    );
    assert!(r.state.status.has_true(ConditionType::Complete));
    let r = sync(
        &j,
        &started(NOW),
        &[pod("a", PodPhase::Succeeded), pod("b", PodPhase::Failed)],
    );
    assert!(r.create.is_empty());
    assert_eq!((r.state.status.succeeded, r.state.status.failed), (1, 1));
    assert!(r.state.status.has_true(ConditionType::Complete));
}

#[test]
fn tc020_work_queue_failure_before_success_is_replaced() {
    let j = job(json!({"parallelism": 2}));
    let r = sync(
        &j,
        &started(NOW),
        &[running("a"), pod("b", PodPhase::Failed)],
    );
    assert_eq!(r.create.len(), 1);
    assert_eq!((r.state.status.active, r.state.status.failed), (2, 1));
}

#[test]
fn tc021_work_queue_still_obeys_backoff_limit() {
    let j = job(json!({"parallelism": 3, "backoffLimit": 1}));
    let t1 = sync(
        &j,
        &started(NOW),
        &[running("b"), running("c"), pod("a", PodPhase::Succeeded)],
    );
    assert!(t1.create.is_empty());
    let t2 = sync(&j, &t1.state, &[running("c"), pod("b", PodPhase::Failed)]);
    assert!(t2.create.is_empty() && t2.state.status.conditions.is_empty());
    let t3 = sync(&j, &t2.state, &[pod("c", PodPhase::Failed)]);
    assert_eq!(t3.state.status.failed, 2);
    assert_eq!(
        condition_types(&t3)[1],
        ("Failed", "BackoffLimitExceeded".into())
    );
}

#[test]
fn tc022_tc023_never_backoff_limit_one() {
    let j = job(json!({"completions": 1, "parallelism": 1, "backoffLimit": 1}));
    let r = sync(&j, &started(NOW), &[pod("a", PodPhase::Failed)]);
    assert_eq!(r.create.len(), 1);
    assert_eq!((r.state.status.active, r.state.status.failed), (1, 1));
    let r = sync(
        &j,
        &started(NOW),
        &[pod("a", PodPhase::Failed), pod("b", PodPhase::Failed)],
    );
    assert_eq!(r.state.status.failed, 2);
    assert_eq!(
        condition_types(&r),
        [
            ("FailureTarget", "BackoffLimitExceeded".into()),
            ("Failed", "BackoffLimitExceeded".into())
        ]
    );
    assert_eq!(
        r.state.status.conditions[1].message,
        "Job has reached the specified backoff limit"
    );
    assert_eq!(r.state.status.completion_time, None);
    assert_eq!(reasons(&r), ["BackoffLimitExceeded"]);
}

#[test]
fn tc024_boundary_at_backoff_limit_six() {
    let j = job(json!({"completions": 2, "parallelism": 2}));
    let mut pods: Vec<PodView> = (0..6)
        .map(|i| pod(&format!("f{i}"), PodPhase::Failed))
        .collect();
    pods.push(running("r"));
    let r = sync(&j, &started(NOW), &pods);
    assert_eq!(
        (r.create.len(), r.state.status.active, r.state.status.failed),
        (1, 2, 6)
    );
    let pods: Vec<PodView> = (0..7)
        .map(|i| pod(&format!("f{i}"), PodPhase::Failed))
        .collect();
    let r = sync(&j, &started(NOW), &pods);
    assert_eq!(r.state.status.failed, 7);
    assert!(r.state.status.has_true(ConditionType::Failed));
}

#[test]
fn tc025_backoff_limit_zero_kills_and_counts_the_rest() {
    let j = job(json!({"completions": 3, "parallelism": 2, "backoffLimit": 0}));
    let r = sync(
        &j,
        &started(NOW),
        &[ready("a"), ready("b"), pod("c", PodPhase::Failed)],
    );
    assert_eq!(r.delete.len(), 2);
    let s = &r.state.status;
    assert_eq!((s.failed, s.active, s.ready, s.terminating), (3, 0, 0, 2));
    assert_eq!(
        condition_types(&r),
        [("FailureTarget", "BackoffLimitExceeded".into())]
    );
    // Once the two pods have terminated, the terminal condition follows.
    let gone = [
        PodView {
            deleting: true,
            tracked: false,
            ..pod("a", PodPhase::Failed)
        },
        PodView {
            deleting: true,
            tracked: false,
            ..pod("b", PodPhase::Failed)
        },
    ];
    let later = sync(&j, &r.state, &gone);
    assert_eq!(later.state.status.failed, 3, "nothing counted twice");
    assert_eq!(
        condition_types(&later),
        [
            ("FailureTarget", "BackoffLimitExceeded".into()),
            ("Failed", "BackoffLimitExceeded".into())
        ]
    );
    assert_eq!(later.state.status.terminating, 0);
}

#[test]
fn tc026_to_tc028_on_failure_restart_counts() {
    let on_failure = |limit| {
        job(
            json!({"completions": 1, "parallelism": 1, "backoffLimit": limit, "restartPolicy": "OnFailure"}),
        )
    };
    let restarted = |n| PodView {
        restart_count: n,
        ..running("a")
    };
    let r = sync(&on_failure(1), &started(NOW), &[restarted(1)]);
    assert_eq!(
        (r.delete.len(), r.state.status.failed, r.state.status.active),
        (1, 1, 0)
    );
    assert_eq!(
        condition_types(&r),
        [("FailureTarget", "BackoffLimitExceeded".into())]
    );
    assert_eq!(
        sync(&on_failure(0), &started(NOW), &[restarted(0)])
            .state
            .status
            .active,
        1
    );
    assert!(sync(&on_failure(0), &started(NOW), &[restarted(1)])
        .state
        .status
        .has_true(ConditionType::FailureTarget));
    assert_eq!(
        sync(&on_failure(1), &started(NOW), &[restarted(0)])
            .state
            .status
            .active,
        1
    );
    let two = |limit| {
        job(
            json!({"completions": 5, "parallelism": 2, "backoffLimit": limit, "restartPolicy": "OnFailure"}),
        )
    };
    let pods = [
        PodView {
            restart_count: 1,
            ..running("a")
        },
        PodView {
            restart_count: 1,
            ..running("b")
        },
    ];
    let r = sync(&two(2), &started(NOW), &pods);
    assert_eq!((r.delete.len(), r.state.status.failed), (2, 2));
    assert_eq!(sync(&two(3), &started(NOW), &pods).state.status.active, 2);
}

#[test]
fn tc029_on_failure_succeeded_pods_complete_a_suspended_job() {
    let j = job(
        json!({"completions": 4, "parallelism": 2, "suspend": true, "restartPolicy": "OnFailure"}),
    );
    let pods: Vec<PodView> = [1, 1, 2, 0]
        .iter()
        .enumerate()
        .map(|(i, &n)| PodView {
            restart_count: n,
            ..pod(&format!("p{i}"), PodPhase::Succeeded)
        })
        .collect();
    let r = sync(&j, &started(LONG_AGO), &pods);
    assert_eq!(r.state.status.succeeded, 4);
    assert!(r.state.status.has_true(ConditionType::Complete));
}

#[test]
fn tc033_exponential_recreation_delays() {
    let j = job(json!({"completions": 1, "parallelism": 1}));
    let config = ControllerConfig::default();
    let f1 = NOW;
    let r1 = reconcile(
        &j,
        &started(NOW),
        &[PodView {
            finish_time: f1,
            ..pod("a", PodPhase::Failed)
        }],
        f1,
        &config,
    );
    assert!(r1.create.is_empty());
    assert_eq!(r1.requeue_at, Some(f1.plus_millis(10_000)));
    let r2 = reconcile::<PodView>(&j, &r1.state, &[], f1.plus_millis(10_000), &config);
    assert_eq!(r2.create.len(), 1);
    let f2 = f1.plus_millis(12_000);
    let r3 = reconcile(
        &j,
        &r2.state,
        &[PodView {
            finish_time: f2,
            ..pod("b", PodPhase::Failed)
        }],
        f2,
        &config,
    );
    assert_eq!(r3.requeue_at, Some(f2.plus_millis(20_000)));
    assert_eq!(r3.state.status.failed, 2);
}

#[test]
fn tc036_tc037_deadline_passes_while_pods_run() {
    let j = job(json!({"completions": 2, "parallelism": 1, "activeDeadlineSeconds": 10}));
    let r = sync(
        &j,
        &started(NOW.plus_millis(-15_000)),
        &[running("a"), pod("b", PodPhase::Succeeded)],
    );
    assert_eq!(r.delete, ["a"]);
    let s = &r.state.status;
    assert_eq!(
        (s.succeeded, s.failed, s.active, s.terminating),
        (1, 1, 0, 1)
    );
    assert_eq!(
        condition_types(&r),
        [("FailureTarget", "DeadlineExceeded".into())]
    );
    assert_eq!(
        s.conditions[0].message,
        "Job was active longer than specified deadline"
    );
}

#[test]
fn tc038_deadline_boundary_is_inclusive() {
    let j = job(json!({"completions": 1, "parallelism": 1, "activeDeadlineSeconds": 10}));
    let r = sync(&j, &started(NOW.plus_millis(-10_000)), &[]);
    assert!(r.create.is_empty());
    assert_eq!(
        condition_types(&r),
        [
            ("FailureTarget", "DeadlineExceeded".into()),
            ("Failed", "DeadlineExceeded".into())
        ]
    );
    assert_eq!(reasons(&r), ["DeadlineExceeded"]);
    let r = sync(&j, &started(NOW.plus_millis(-9_000)), &[running("a")]);
    assert_eq!(
        r.requeue_at,
        Some(NOW.plus_millis(1_000)),
        "re-sync at the deadline"
    );
}

#[test]
fn tc039_backoff_limit_beats_the_deadline() {
    let j = job(
        json!({"completions": 1, "parallelism": 1, "backoffLimit": 0, "activeDeadlineSeconds": 1}),
    );
    let r = sync(
        &j,
        &started(NOW.plus_millis(-10_000)),
        &[pod("a", PodPhase::Failed)],
    );
    assert_eq!(
        condition_types(&r)[1],
        ("Failed", "BackoffLimitExceeded".into())
    );
}

#[test]
fn tc040_deadline_ignored_while_suspended() {
    let j = job(
        json!({"completions": 2, "parallelism": 1, "activeDeadlineSeconds": 10, "suspend": true}),
    );
    let r = sync(&j, &started(NOW.plus_millis(-15_000)), &[]);
    assert_eq!(condition_types(&r), [("Suspended", "JobSuspended".into())]);
    assert_eq!(r.state.status.conditions[0].message, "Job suspended");
    assert_eq!(r.requeue_at, None);
}

#[test]
fn tc042_deadline_while_waiting_out_a_backoff() {
    let j = job(
        json!({"completions": 1, "parallelism": 1, "backoffLimit": 5, "activeDeadlineSeconds": 100}),
    );
    let start = NOW.plus_millis(-100_000);
    let mut state = started(start);
    state.status.failed = 4;
    state.backoff = BackoffRecord {
        failures_after_last_success: 4,
        last_failure: Some(start.plus_millis(70_000)),
    };
    let r = sync(&j, &state, &[]);
    assert!(r.create.is_empty());
    assert_eq!(r.state.status.failed, 4);
    assert_eq!(
        condition_types(&r)[1],
        ("Failed", "DeadlineExceeded".into())
    );
}

#[test]
fn tc045_indexed_start_lowest_indexes() {
    let j = job(json!({"completions": 5, "parallelism": 2, "completionMode": "Indexed"}));
    let r = sync(&j, &JobState::default(), &[]);
    assert_eq!(created_indexes(&r), [0, 1]);
    assert!(r.create[0].name.starts_with("foobar-0-"));
    assert!(r.create[1].name.starts_with("foobar-1-"));
}

#[test]
fn tc046_indexed_completion_with_a_retried_index() {
    let j = job(json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed"}));
    let pods = [
        indexed("a", 0, PodPhase::Succeeded),
        indexed("b", 1, PodPhase::Failed),
        indexed("c", 1, PodPhase::Succeeded),
        indexed("d", 2, PodPhase::Succeeded),
    ];
    let r = sync(&j, &started(NOW), &pods);
    let s = &r.state.status;
    assert_eq!(
        (s.succeeded, s.failed, s.completed_indexes.to_string()),
        (3, 1, "0-2".into())
    );
    assert!(s.has_true(ConditionType::Complete));
}

#[test]
fn tc047_indexed_failure_via_global_backoff_limit() {
    let j = job(
        json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed", "backoffLimit": 0}),
    );
    let pods = [
        indexed("a", 0, PodPhase::Succeeded),
        indexed("b", 1, PodPhase::Failed),
        indexed("c", 2, PodPhase::Running),
    ];
    let r = sync(&j, &started(NOW), &pods);
    assert_eq!(r.delete, ["c"]);
    let s = &r.state.status;
    assert_eq!((s.succeeded, s.failed, s.terminating), (1, 2, 1));
    assert_eq!(s.completed_indexes.to_string(), "0");
    assert_eq!(
        condition_types(&r),
        [("FailureTarget", "BackoffLimitExceeded".into())]
    );
}

#[test]
fn tc048_duplicate_success_counts_once() {
    let j = job(json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed"}));
    let pods = [
        indexed("a", 0, PodPhase::Succeeded),
        indexed("b", 1, PodPhase::Succeeded),
        indexed("c", 1, PodPhase::Succeeded),
    ];
    let r = sync(&j, &started(NOW), &pods);
    assert_eq!(r.state.status.succeeded, 2);
    assert_eq!(r.state.status.completed_indexes.to_string(), "0,1");
    assert_eq!(created_indexes(&r), [2]);
    assert_eq!(r.state.status.active, 1);
}

#[test]
fn tc049_lowest_missing_indexes_first() {
    let j = job(json!({"completions": 20, "parallelism": 8, "completionMode": "Indexed"}));
    let mut pods = vec![
        indexed("r0", 0, PodPhase::Running),
        indexed("p3", 3, PodPhase::Pending),
    ];
    for i in [2, 4, 5, 7, 8, 9] {
        pods.push(indexed(&format!("s{i}"), i, PodPhase::Succeeded));
    }
    let r = sync(&j, &started(NOW), &pods);
    assert_eq!(created_indexes(&r), [1, 6, 10, 11, 12, 13]);
    let s = &r.state.status;
    assert_eq!(
        (s.active, s.succeeded, s.completed_indexes.to_string()),
        (8, 6, "2,4,5,7-9".into())
    );
}

#[test]
fn tc050_failed_indexes_are_retried_at_the_same_index() {
    let j = job(json!({"completions": 4, "parallelism": 3, "completionMode": "Indexed"}));
    let pods = [
        indexed("a", 0, PodPhase::Failed),
        indexed("b", 1, PodPhase::Pending),
        indexed("c", 2, PodPhase::Failed),
    ];
    let r = sync(&j, &started(NOW), &pods);
    assert_eq!(created_indexes(&r), [0, 2]);
    assert_eq!((r.state.status.failed, r.state.status.active), (2, 3));
}

#[test]
fn tc051_pods_without_a_valid_index_are_deleted_and_never_counted() {
    let j = job(json!({"completions": 5, "parallelism": 2, "completionMode": "Indexed"}));
    let pods = [
        pod("inv-run", PodPhase::Running),
        pod("inv-ok", PodPhase::Succeeded),
        pod("inv-fail", PodPhase::Failed),
        pod("inv-pend", PodPhase::Pending),
        pod("none-run", PodPhase::Running),
        indexed("s0", 0, PodPhase::Succeeded),
        indexed("r1", 1, PodPhase::Running),
        indexed("r2", 2, PodPhase::Running),
    ];
    let r = sync(&j, &started(NOW), &pods);
    let mut deleted = r.delete.clone();
    deleted.sort();
    assert_eq!(deleted, ["inv-pend", "inv-run", "none-run"]);
    assert!(r.create.is_empty());
    let s = &r.state.status;
    assert_eq!(
        (
            s.active,
            s.succeeded,
            s.failed,
            s.completed_indexes.to_string()
        ),
        (2, 1, 0, "0".into())
    );
}

#[test]
fn tc052_duplicate_active_pods_keep_the_most_advanced() {
    let j = job(json!({"completions": 5, "parallelism": 5, "completionMode": "Indexed"}));
    let pods = [
        pod("invalid", PodPhase::Running),
        indexed("s0", 0, PodPhase::Succeeded),
        indexed("r1", 1, PodPhase::Running),
        indexed("r2", 2, PodPhase::Running),
        indexed("p2", 2, PodPhase::Pending),
    ];
    let r = sync(&j, &started(NOW), &pods);
    let mut deleted = r.delete.clone();
    deleted.sort();
    assert_eq!(deleted, ["invalid", "p2"]);
    assert!(r.create.is_empty());
    assert_eq!((r.state.status.active, r.state.status.succeeded), (2, 1));
}

#[test]
fn tc053_indexes_outside_the_range() {
    let j = job(json!({"completions": 5, "parallelism": 2, "completionMode": "Indexed"}));
    let pods = [
        indexed("s0", 0, PodPhase::Succeeded),
        indexed("r5", 5, PodPhase::Running),
        indexed("s6", 6, PodPhase::Succeeded),
        indexed("p7", 7, PodPhase::Pending),
        indexed("f8", 8, PodPhase::Failed),
    ];
    let r = sync(&j, &started(NOW), &pods);
    let mut deleted = r.delete.clone();
    deleted.sort();
    assert_eq!(deleted, ["p7", "r5"]);
    assert!(r.create.is_empty());
    let s = &r.state.status;
    assert_eq!(
        (
            s.succeeded,
            s.failed,
            s.active,
            s.completed_indexes.to_string()
        ),
        (1, 0, 0, "0".into())
    );
}

#[test]
fn tc107_created_suspended_then_tc106_resumed() {
    let j = job(json!({"completions": 2, "parallelism": 1, "suspend": true}));
    let r = sync(&j, &JobState::default(), &[]);
    assert!(r.create.is_empty());
    assert_eq!(r.state.status.start_time, None);
    assert_eq!(reasons(&r), ["Suspended"]);
    let resumed = job(json!({"completions": 2, "parallelism": 1}));
    let r2 = reconcile::<PodView>(
        &resumed,
        &r.state,
        &[],
        NOW.plus_millis(5_000),
        &ControllerConfig::default(),
    );
    assert_eq!(r2.create.len(), 1);
    assert_eq!(condition_types(&r2), [("Suspended", "JobResumed".into())]);
    assert!(!r2.state.status.conditions[0].status);
    assert_eq!(r2.state.status.start_time, Some(NOW.plus_millis(5_000)));
    assert_eq!(reasons(&r2), ["SuccessfulCreate", "Resumed"]);
}

#[test]
fn tc104_suspending_a_running_job_deletes_pods_uncounted() {
    let j = job(json!({"completions": 4, "parallelism": 2, "suspend": true}));
    let r = sync(
        &j,
        &started(NOW),
        &[running("a"), running("b"), pod("c", PodPhase::Succeeded)],
    );
    assert_eq!(r.delete.len(), 2);
    let s = &r.state.status;
    assert_eq!(
        (s.active, s.terminating, s.succeeded, s.failed),
        (0, 2, 1, 0)
    );
    assert!(s.has_true(ConditionType::Suspended));
}

#[test]
fn from_1_36_suspending_a_started_job_clears_its_start_time_and_resuming_sets_a_new_one() {
    let suspended = job(json!({"completions": 2, "parallelism": 1, "suspend": true}));
    let resumed = job(json!({"completions": 2, "parallelism": 1}));
    for (version, kept) in [("1.37", None), ("1.36", None), ("1.35", Some(NOW))] {
        let config = ControllerConfig {
            emulation: version.parse().unwrap(),
            ..Default::default()
        };
        let r = reconcile(
            &suspended,
            &started(NOW),
            &[running("a")],
            NOW.plus_millis(1_000),
            &config,
        );
        assert!(
            r.state.status.has_true(ConditionType::Suspended),
            "{version}"
        );
        assert_eq!(r.state.status.start_time, kept, "{version}");
        let later = NOW.plus_millis(9_000);
        let r2 = reconcile::<PodView>(&resumed, &r.state, &[], later, &config);
        assert_eq!(r2.state.status.start_time, Some(later), "{version}");
    }
}

#[test]
fn tc071_terminating_or_failed_counts_a_deleted_pod_and_replaces_it() {
    let j = job(json!({"completions": 2, "parallelism": 1}));
    let deleting = PodView {
        deleting: true,
        ..running("a")
    };
    let r = sync(&j, &started(NOW), &[deleting]);
    assert_eq!(r.state.status.failed, 1);
    assert_eq!(r.create.len(), 1);
    assert_eq!(r.state.status.terminating, 1);
}

#[test]
fn tc072_failed_policy_waits_for_the_terminating_pod() {
    let j = job(json!({"completions": 2, "parallelism": 1, "podReplacementPolicy": "Failed"}));
    let deleting = PodView {
        deleting: true,
        ..running("a")
    };
    let r = sync(&j, &started(NOW), &[deleting]);
    assert_eq!(r.state.status.failed, 0);
    assert!(r.create.is_empty());
}

#[test]
fn tc118_finished_job_is_not_modified() {
    let j = job(json!({"completions": 1, "parallelism": 1}));
    let done = sync(&j, &started(NOW), &[pod("a", PodPhase::Succeeded)]);
    let again = sync(&j, &done.state, &[running("b")]);
    assert_eq!(again.state, done.state);
    assert!(again.create.is_empty() && again.delete.is_empty() && again.events.is_empty());
}

#[test]
fn tc117_foreign_managed_by_is_untouched() {
    let j = job(
        json!({"completions": 2, "parallelism": 2, "managedBy": "example.com/custom-job-controller"}),
    );
    let r = sync(&j, &JobState::default(), &[]);
    assert_eq!(
        r,
        Reconciliation {
            state: JobState::default(),
            ..Reconciliation::default()
        }
    );
}

#[test]
fn reconcile_is_idempotent_once_applied() {
    // Level-triggered: syncing again with the pods the first sync created changes nothing.
    let j = job(json!({"completions": 5, "parallelism": 3}));
    let first = sync(&j, &JobState::default(), &[]);
    let pods: Vec<PodView> = first
        .create
        .iter()
        .map(|p| pod(&p.name, PodPhase::Pending))
        .collect();
    let second = sync(&j, &first.state, &pods);
    assert!(second.create.is_empty() && second.delete.is_empty());
    assert_eq!(second.state, first.state);
}
