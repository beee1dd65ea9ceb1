//! podFailurePolicy, backoffLimitPerIndex and successPolicy, one reconcile at a time.
//! Test names cite shared/spec/job-test-cases.md.

mod common;

use common::*;
use joblet_core::{ConditionType, PodPhase, PodView};
use serde_json::{json, Value};

/// R0 = Ignore on exit codes 1,2,3; R1 = FailJob on 5,6,7 (the F-section rules).
fn f_rules() -> Value {
    json!({"rules": [
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1, 2, 3]}},
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [5, 6, 7]}}]})
}

fn f_job(extra: Value) -> joblet_api::ValidJob {
    let mut spec = json!({"completions": 1, "parallelism": 1, "backoffLimit": 6, "podFailurePolicy": f_rules(),
        "containers": [{"name": "main-container", "image": "x", "command": ["true"]},
                       {"name": "monitoring-container", "image": "x", "command": ["true"]}]});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    job(spec)
}

#[test]
fn tc055_fail_job_on_exit_code() {
    let r = sync(
        &f_job(json!({})),
        &started(NOW),
        &[failed_with("mypod-0", &[("main-container", 5)])],
    );
    assert_eq!((r.state.status.failed, r.state.status.active), (1, 0));
    assert_eq!(
        condition_types(&r),
        [
            ("FailureTarget", "PodFailurePolicy".into()),
            ("Failed", "PodFailurePolicy".into())
        ]
    );
    assert_eq!(
        r.state.status.conditions[1].message,
        "Container main-container for pod default/mypod-0 failed with exit code 5 matching FailJob rule at index 1"
    );
}

#[test]
fn tc056_fail_job_kills_and_counts_the_other_pods() {
    let j = f_job(json!({"completions": 2, "parallelism": 2}));
    let r = sync(
        &j,
        &started(NOW),
        &[
            running("mypod-0"),
            failed_with("mypod-1", &[("main-container", 5)]),
        ],
    );
    let s = &r.state.status;
    assert_eq!((s.failed, s.active, s.terminating), (2, 0, 1));
    assert_eq!(
        condition_types(&r),
        [("FailureTarget", "PodFailurePolicy".into())]
    );
    assert!(s.conditions[0].message.contains("default/mypod-1"));
}

#[test]
fn tc057_container_name_restriction() {
    let rules = json!({"rules": [
        {"action": "Ignore", "onExitCodes": {"containerName": "main-container", "operator": "In", "values": [1, 2, 3]}},
        {"action": "FailJob", "onExitCodes": {"containerName": "main-container", "operator": "In", "values": [5, 6, 7]}}]});
    let j = f_job(json!({"podFailurePolicy": rules}));
    let pod = failed_with(
        "mypod-0",
        &[("monitoring-container", 5), ("main-container", 42)],
    );
    let r = sync(&j, &started(NOW), &[pod]);
    assert_eq!((r.state.status.failed, r.state.status.active), (1, 1));
    assert!(r.state.status.conditions.is_empty());
}

#[test]
fn tc058_running_pod_is_never_evaluated() {
    let pod = PodView {
        phase: PodPhase::Running,
        ..failed_with("mypod-0", &[("main-container", 5)])
    };
    let r = sync(&f_job(json!({})), &started(NOW), &[pod]);
    assert_eq!((r.state.status.active, r.state.status.failed), (1, 0));
    assert!(r.state.status.conditions.is_empty());
}

#[test]
fn tc059_not_in_operator() {
    let j = f_job(
        json!({"podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [5, 6, 7]}}]}}),
    );
    let r = sync(
        &j,
        &started(NOW),
        &[failed_with("mypod-0", &[("main-container", 42)])],
    );
    assert!(r.state.status.conditions[0]
        .message
        .ends_with("exit code 42 matching FailJob rule at index 0"));
    let r = sync(
        &j,
        &started(NOW),
        &[failed_with("mypod-0", &[("main-container", 5)])],
    );
    assert_eq!((r.state.status.failed, r.create.len()), (1, 1));
}

#[test]
fn tc060_init_container_exit_codes() {
    let mut pod = failed_with("mypod-0", &[("main-container", 143)]);
    pod.exits.push(joblet_core::ContainerExit {
        name: "init-container".into(),
        exit_code: 5,
        init: true,
    });
    let r = sync(&f_job(json!({})), &started(NOW), &[pod]);
    assert_eq!(
        r.state.status.conditions[0].message,
        "Container init-container for pod default/mypod-0 failed with exit code 5 matching FailJob rule at index 1"
    );
}

#[test]
fn tc061_tc062_ignore_wins_and_is_not_counted() {
    let j = f_job(json!({"backoffLimit": 0}));
    let r = sync(
        &j,
        &started(NOW),
        &[failed_with(
            "mypod-0",
            &[("main-container", 2), ("monitoring-container", 6)],
        )],
    );
    assert_eq!((r.state.status.failed, r.state.status.active), (0, 1));
    assert!(r.state.status.conditions.is_empty());
    assert_eq!(
        r.untrack,
        ["mypod-0"],
        "an ignored failure is released, uncounted"
    );
}

#[test]
fn tc063_no_rule_matches_default_counting() {
    let r = sync(
        &f_job(json!({"backoffLimit": 0})),
        &started(NOW),
        &[failed_with("mypod-0", &[("main-container", 10)])],
    );
    assert_eq!(r.state.status.failed, 1);
    assert_eq!(
        condition_types(&r)[1],
        ("Failed", "BackoffLimitExceeded".into())
    );
}

#[test]
fn tc064_tc065_count_and_rule_order() {
    let j = f_job(json!({"podFailurePolicy": {"rules": [
        {"action": "Count", "onExitCodes": {"operator": "In", "values": [1, 2]}},
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [2, 3]}}]}}));
    let r = sync(
        &j,
        &started(NOW),
        &[failed_with("mypod-0", &[("main-container", 2)])],
    );
    assert_eq!((r.state.status.failed, r.state.status.active), (1, 1));
    let j = f_job(json!({"podFailurePolicy": {"rules": [
        {"action": "Count", "onPodConditions": [{"type": "ResourceLimitExceeded"}]},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}));
    let pod = with_condition(
        with_condition(pod("mypod-0", PodPhase::Failed), "ResourceLimitExceeded"),
        "DisruptionTarget",
    );
    assert_eq!(sync(&j, &started(NOW), &[pod]).state.status.failed, 1);
}

#[test]
fn tc066_tc067_ignored_disruptions_still_delay_recreation() {
    let j = f_job(
        json!({"backoffLimit": 0, "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}),
    );
    let long_ago = with_condition(pod("mypod-0", PodPhase::Failed), "DisruptionTarget");
    let r = sync(&j, &started(NOW), std::slice::from_ref(&long_ago));
    assert_eq!((r.state.status.failed, r.state.status.active), (0, 1));
    let just_now = PodView {
        finish_time: NOW,
        ..long_ago
    };
    let r = sync(&j, &started(NOW), &[just_now]);
    assert_eq!((r.state.status.failed, r.state.status.active), (0, 0));
    assert_eq!(r.requeue_at, Some(NOW.plus_millis(10_000)));
}

#[test]
fn tc068_fail_job_on_pod_condition() {
    let j = f_job(
        json!({"podFailurePolicy": {"rules": [{"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}),
    );
    let r = sync(
        &j,
        &started(NOW),
        &[with_condition(
            pod("mypod-0", PodPhase::Failed),
            "DisruptionTarget",
        )],
    );
    assert_eq!(
        r.state.status.conditions[1].message,
        "Pod default/mypod-0 has condition DisruptionTarget matching FailJob rule at index 0"
    );
    assert_eq!(r.state.status.failed, 1);
}

#[test]
fn tc069_terminating_pod_is_no_failure_under_a_policy() {
    let j = job(json!({"parallelism": 1, "backoffLimit": 0,
        "podFailurePolicy": {"rules": [{"action": "Count", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}));
    let r = sync(
        &j,
        &started(NOW),
        &[PodView {
            deleting: true,
            ..running("mypod-0")
        }],
    );
    let s = &r.state.status;
    assert_eq!(
        (s.failed, s.active, s.terminating, r.create.len()),
        (0, 0, 1, 0)
    );
    assert!(s.conditions.is_empty());
}

#[test]
fn tc070_failure_target_keeps_its_message() {
    let j = f_job(json!({}));
    let mut state = started(NOW);
    state.status.set_condition(
        ConditionType::FailureTarget,
        true,
        "PodFailurePolicy",
        "about default/already-deleted-pod",
        NOW,
    );
    let r = sync(
        &j,
        &state,
        &[failed_with("mypod-0", &[("main-container", 5)])],
    );
    assert_eq!(
        r.state.status.conditions[1].message,
        "about default/already-deleted-pod"
    );
    assert_eq!(r.state.status.failed, 1);
}

fn per_index(completions: i32, limit: i32, extra: Value) -> joblet_api::ValidJob {
    let mut spec = json!({"completionMode": "Indexed", "completions": completions, "parallelism": completions, "backoffLimitPerIndex": limit});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    job(spec)
}

#[test]
fn tc076_tc077_first_failure_waits_for_its_replacement() {
    let j = per_index(2, 1, json!({}));
    let failed0 = with_counts(indexed("f0", 0, PodPhase::Failed), 0, 0);
    let r = sync(&j, &started(NOW), std::slice::from_ref(&failed0));
    assert_eq!(created_indexes(&r), [0, 1]);
    assert_eq!(r.create[0].index_failure_count, Some(1));
    assert_eq!(r.create[1].index_failure_count, Some(0));
    let s = &r.state.status;
    assert_eq!(
        (
            s.active,
            s.failed,
            s.failed_indexes.as_ref().map(ToString::to_string)
        ),
        (2, 0, Some(String::new()))
    );
    assert!(!r.untrack.contains(&"f0".to_string()));
    let replacement = with_counts(indexed("r0", 0, PodPhase::Pending), 1, 0);
    let r = sync(
        &j,
        &r.state,
        &[failed0, replacement, indexed("p1", 1, PodPhase::Pending)],
    );
    assert_eq!((r.state.status.failed, r.state.status.active), (1, 2));
}

/// #139457 on the per-index path: the other index's running pod stays counted.
#[test]
fn active_stays_the_real_count_while_an_index_waits_for_its_back_off() {
    let j = per_index(2, 1, json!({}));
    let failed0 = PodView {
        finish_time: NOW,
        ..with_counts(indexed("f0", 0, PodPhase::Failed), 0, 0)
    };
    let running1 = PodView {
        ready: true,
        ..indexed("r1", 1, PodPhase::Running)
    };
    let r = sync(&j, &started(NOW), &[failed0, running1]);
    assert!(r.create.is_empty());
    assert_eq!((r.state.status.active, r.state.status.ready), (1, 1));
    assert_eq!(r.requeue_at, Some(NOW.plus_millis(10_000)));
}

#[test]
fn tc078_index_exhausts_its_budget() {
    let r = sync(
        &per_index(2, 1, json!({})),
        &started(NOW),
        &[with_counts(indexed("f0", 0, PodPhase::Failed), 1, 0)],
    );
    let s = &r.state.status;
    assert_eq!(s.failed_indexes.as_ref().unwrap().to_string(), "0");
    assert_eq!((s.failed, s.active), (1, 1));
    assert_eq!(created_indexes(&r), [1]);
    assert!(s.conditions.is_empty());
}

#[test]
fn tc079_fail_index_action() {
    let j = per_index(
        2,
        1,
        json!({"podFailurePolicy": {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [3]}}]}}),
    );
    let pod = PodView {
        index: Some(0),
        ..failed_with("f0", &[("main", 3)])
    };
    let r = sync(&j, &started(NOW), &[pod]);
    assert_eq!(
        r.state.status.failed_indexes.as_ref().unwrap().to_string(),
        "0"
    );
    assert_eq!(r.state.status.failed, 1);
    assert_eq!(created_indexes(&r), [1]);
}

#[test]
fn tc081_ignore_with_per_index_backoff() {
    let j = per_index(
        2,
        1,
        json!({"podFailurePolicy": {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]}}),
    );
    let pod = PodView {
        index: Some(0),
        ..failed_with("f0", &[("main", 3)])
    };
    let r = sync(&j, &started(NOW), &[pod]);
    assert_eq!((r.state.status.failed, r.state.status.active), (0, 2));
    let replacement = r.create.iter().find(|p| p.index == Some(0)).unwrap();
    assert_eq!(
        (
            replacement.index_failure_count,
            replacement.index_ignored_failure_count
        ),
        (Some(0), Some(1))
    );
}

#[test]
fn tc082_global_backoff_limit_first() {
    let j = per_index(2, 1, json!({"backoffLimit": 1}));
    let pods = [
        indexed("f0", 0, PodPhase::Failed),
        indexed("f1", 1, PodPhase::Failed),
    ];
    let r = sync(&j, &started(NOW), &pods);
    assert_eq!(r.state.status.failed, 2);
    assert_eq!(
        condition_types(&r)[1],
        ("Failed", "BackoffLimitExceeded".into())
    );
    assert_eq!(
        r.state.status.failed_indexes.as_ref().unwrap().to_string(),
        ""
    );
}

#[test]
fn tc083_all_done_one_failed() {
    let pods = [
        with_counts(indexed("f0", 0, PodPhase::Failed), 1, 0),
        indexed("s1", 1, PodPhase::Succeeded),
    ];
    let r = sync(&per_index(2, 1, json!({})), &started(NOW), &pods);
    let s = &r.state.status;
    assert_eq!(
        (
            s.failed_indexes.as_ref().unwrap().to_string(),
            s.completed_indexes.to_string()
        ),
        ("0".into(), "1".into())
    );
    assert_eq!((s.succeeded, s.failed), (1, 1));
    assert_eq!(
        condition_types(&r),
        [
            ("FailureTarget", "FailedIndexes".into()),
            ("Failed", "FailedIndexes".into())
        ]
    );
    assert_eq!(s.conditions[1].message, "Job has failed indexes");
}

#[test]
fn tc084_max_failed_indexes_exceeded() {
    let j = per_index(4, 1, json!({"maxFailedIndexes": 1}));
    let pods = [
        with_counts(indexed("f0", 0, PodPhase::Failed), 1, 0),
        indexed("s1", 1, PodPhase::Succeeded),
        with_counts(indexed("f2", 2, PodPhase::Failed), 1, 0),
        indexed("r3", 3, PodPhase::Running),
    ];
    let r = sync(&j, &started(NOW), &pods);
    let s = &r.state.status;
    assert_eq!(s.failed_indexes.as_ref().unwrap().to_string(), "0,2");
    assert_eq!((s.failed, s.succeeded, s.terminating), (3, 1, 1));
    assert_eq!(
        condition_types(&r),
        [("FailureTarget", "MaxFailedIndexesExceeded".into())]
    );
    assert_eq!(
        s.conditions[0].message,
        "Job has exceeded the specified maximal number of failed indexes"
    );
}

#[test]
fn tc092_per_index_recreation_delay() {
    let j = per_index(1, 5, json!({}));
    let just_failed = PodView {
        finish_time: NOW,
        ..with_counts(indexed("f0", 0, PodPhase::Failed), 2, 0)
    };
    let r = sync(&j, &started(NOW), std::slice::from_ref(&just_failed));
    assert!(r.create.is_empty());
    assert_eq!(
        r.requeue_at,
        Some(NOW.plus_millis(40_000)),
        "failure-count 2 + this failure = 3 failures: 10s x 2^2"
    );
    let mixed = with_counts(just_failed, 1, 1);
    assert_eq!(
        sync(&j, &started(NOW), &[mixed]).requeue_at,
        Some(NOW.plus_millis(40_000))
    );
}

fn success_job(completions: i32, rules: Value, extra: Value) -> joblet_api::ValidJob {
    let mut spec = json!({"completionMode": "Indexed", "completions": completions, "parallelism": completions, "successPolicy": {"rules": rules}});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    job(spec)
}

#[test]
fn tc093_success_policy_met_while_others_run() {
    let j = success_job(
        3,
        json!([{"succeededIndexes": "0,1", "succeededCount": 1}]),
        json!({}),
    );
    let pods = [
        indexed("f0", 0, PodPhase::Failed),
        indexed("r0", 0, PodPhase::Running),
        indexed("s1", 1, PodPhase::Succeeded),
        indexed("r2", 2, PodPhase::Running),
    ];
    let r = sync(&j, &started(NOW), &pods);
    let s = &r.state.status;
    assert_eq!(
        condition_types(&r),
        [("SuccessCriteriaMet", "SuccessPolicy".into())]
    );
    assert_eq!(s.conditions[0].message, "Matched rules at index 0");
    assert_eq!(
        (s.failed, s.succeeded, s.terminating, s.active),
        (1, 1, 2, 0)
    );
    assert_eq!(s.completed_indexes.to_string(), "1");
    // The killed pods end Failed: not counted, and then the Job completes.
    let gone = [
        PodView {
            deleting: true,
            tracked: false,
            ..indexed("r0", 0, PodPhase::Failed)
        },
        PodView {
            deleting: true,
            tracked: false,
            ..indexed("r2", 2, PodPhase::Failed)
        },
    ];
    let later = sync(&j, &r.state, &gone);
    assert_eq!(later.state.status.failed, 1);
    assert_eq!(
        condition_types(&later)[1],
        ("Complete", "SuccessPolicy".into())
    );
    assert!(later.state.status.completion_time.is_some());
}

#[test]
fn tc095_tc097_failure_beats_success() {
    let j = success_job(
        2,
        json!([{"succeededIndexes": "0,1", "succeededCount": 1}]),
        json!({"backoffLimit": 1}),
    );
    let pods = [
        indexed("f0", 0, PodPhase::Failed),
        indexed("g0", 0, PodPhase::Failed),
        indexed("s1", 1, PodPhase::Succeeded),
    ];
    let r = sync(&j, &started(NOW), &pods);
    assert_eq!(
        condition_types(&r)[0],
        ("FailureTarget", "BackoffLimitExceeded".into())
    );
}

#[test]
fn tc098_success_criteria_met_is_sticky() {
    let j = success_job(
        2,
        json!([{"succeededCount": 1}]),
        json!({"backoffLimit": 0}),
    );
    let mut state = started(NOW);
    state.status.set_condition(
        ConditionType::SuccessCriteriaMet,
        true,
        "SuccessPolicy",
        "Matched rules at index 0",
        NOW,
    );
    let r = sync(&j, &state, &[indexed("f0", 0, PodPhase::Failed)]);
    assert_eq!(r.state.status.failed, 1);
    assert_eq!(
        condition_types(&r),
        [
            ("SuccessCriteriaMet", "SuccessPolicy".into()),
            ("Complete", "SuccessPolicy".into())
        ]
    );
}

#[test]
fn tc099_tc100_success_with_pending_indexes() {
    let j = success_job(2, json!([{"succeededIndexes": "1"}]), json!({}));
    let r = sync(
        &j,
        &started(NOW),
        &[
            indexed("p0", 0, PodPhase::Pending),
            indexed("s1", 1, PodPhase::Succeeded),
        ],
    );
    assert_eq!(r.delete, ["p0"]);
    assert_eq!((r.state.status.failed, r.state.status.terminating), (0, 1));
    assert!(r.state.status.has_true(ConditionType::SuccessCriteriaMet));
    let j = success_job(2, json!([{"succeededCount": 1}]), json!({}));
    let r = sync(
        &j,
        &started(NOW),
        &[
            indexed("p0", 0, PodPhase::Pending),
            indexed("s1", 1, PodPhase::Succeeded),
        ],
    );
    assert!(r.state.status.has_true(ConditionType::SuccessCriteriaMet));
}

#[test]
fn tc101_policy_requiring_every_index_reports_success_policy() {
    let j = success_job(1, json!([{"succeededIndexes": "0"}]), json!({}));
    let r = sync(&j, &started(NOW), &[indexed("s0", 0, PodPhase::Succeeded)]);
    assert_eq!(
        condition_types(&r),
        [
            ("SuccessCriteriaMet", "SuccessPolicy".into()),
            ("Complete", "SuccessPolicy".into())
        ]
    );
}

#[test]
fn tc102_rule_restricted_to_a_subset() {
    let j = success_job(
        6,
        json!([{"succeededIndexes": "1-4", "succeededCount": 3}]),
        json!({}),
    );
    let pods = [
        indexed("s1", 1, PodPhase::Succeeded),
        indexed("s3", 3, PodPhase::Succeeded),
        indexed("s5", 5, PodPhase::Succeeded),
    ];
    let r = sync(&j, &started(NOW), &pods);
    assert!(r.state.status.conditions.is_empty());
    let r = sync(&j, &r.state, &[indexed("s2", 2, PodPhase::Succeeded)]);
    assert!(r.state.status.has_true(ConditionType::SuccessCriteriaMet));
}
