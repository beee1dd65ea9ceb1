//! Property tests of the failure-policy and success-policy decision tables: on random
//! rules and pods, the implementation agrees with a brute-force reading of the spec
//! (§4.4, §5.1), and the tables' structural properties hold.

mod common;

use common::*;
use joblet_api::valid::{
    ExitCodeOperator, ExitCodesRule, FailurePolicyAction, FailurePolicyRule, PodConditionPattern,
    SuccessPolicyRule,
};
use joblet_api::IndexSet;
use joblet_core::policy::{match_failure_policy, match_success_policy};
use joblet_core::{ContainerExit, PodPhase, PodView};

const ACTIONS: [FailurePolicyAction; 4] = [
    FailurePolicyAction::FailJob,
    FailurePolicyAction::FailIndex,
    FailurePolicyAction::Ignore,
    FailurePolicyAction::Count,
];
const CONTAINERS: [&str; 3] = ["main", "sidecar", "init"];
const CONDITIONS: [&str; 3] = ["DisruptionTarget", "ResourceLimitExceeded", "Ready"];

fn random_rule(rng: &mut Lcg) -> FailurePolicyRule {
    let action = ACTIONS[rng.below(4) as usize];
    if rng.chance(60) {
        let mut values: Vec<i32> = (0..1 + rng.below(3)).map(|_| rng.below(6) as i32).collect();
        values.sort();
        values.dedup();
        FailurePolicyRule {
            action,
            on_exit_codes: Some(ExitCodesRule {
                container_name: rng
                    .chance(40)
                    .then(|| CONTAINERS[rng.below(3) as usize].to_string()),
                operator: if rng.chance(50) {
                    ExitCodeOperator::In
                } else {
                    ExitCodeOperator::NotIn
                },
                values,
            }),
            on_pod_conditions: Vec::new(),
        }
    } else {
        FailurePolicyRule {
            action,
            on_exit_codes: None,
            on_pod_conditions: (0..1 + rng.below(2))
                .map(|_| PodConditionPattern {
                    type_: CONDITIONS[rng.below(3) as usize].to_string(),
                    status: if rng.chance(80) { "True" } else { "False" }.to_string(),
                })
                .collect(),
        }
    }
}

fn random_pod(rng: &mut Lcg) -> PodView {
    let phase = if rng.chance(80) {
        PodPhase::Failed
    } else {
        PodPhase::Running
    };
    let mut pod = pod("p", phase);
    for (i, name) in CONTAINERS.iter().enumerate() {
        if rng.chance(70) {
            pod.exits.push(ContainerExit {
                name: name.to_string(),
                exit_code: rng.below(6) as i32,
                init: i == 2,
            });
        }
    }
    for type_ in CONDITIONS {
        if rng.chance(40) {
            pod.conditions.push((
                type_.to_string(),
                if rng.chance(70) { "True" } else { "False" }.to_string(),
            ));
        }
    }
    pod
}

/// The spec, read literally: the first rule with a matching terminated container (exit
/// code 0 never matches) or a matching condition decides, only for Failed pods.
fn reference_rule(rules: &[FailurePolicyRule], pod: &PodView) -> Option<usize> {
    if pod.phase != PodPhase::Failed {
        return None;
    }
    (0..rules.len()).find(|&i| {
        let rule = &rules[i];
        let by_exit = rule.on_exit_codes.as_ref().is_some_and(|codes| {
            pod.exits.iter().any(|e| {
                let listed = codes.values.contains(&e.exit_code);
                let wanted = match codes.operator {
                    ExitCodeOperator::In => listed,
                    ExitCodeOperator::NotIn => !listed,
                };
                e.exit_code != 0
                    && wanted
                    && codes.container_name.as_ref().is_none_or(|n| *n == e.name)
            })
        });
        let by_condition = rule.on_pod_conditions.iter().any(|pattern| {
            pod.conditions
                .iter()
                .any(|(t, s)| *t == pattern.type_ && *s == pattern.status)
        });
        by_exit || by_condition
    })
}

#[test]
fn failure_policy_matches_the_first_rule_the_spec_selects() {
    let mut rng = Lcg(11);
    for _ in 0..20_000 {
        let rules: Vec<FailurePolicyRule> = (0..1 + rng.below(4))
            .map(|_| random_rule(&mut rng))
            .collect();
        let pod = random_pod(&mut rng);
        let got = match_failure_policy(&rules, &pod, "default");
        let expected = reference_rule(&rules, &pod);
        assert_eq!(
            got.as_ref().map(|(action, _)| *action),
            expected.map(|i| rules[i].action),
            "{rules:?} {pod:?}"
        );
        if let (Some((_, message)), Some(i)) = (got, expected) {
            assert!(
                message.ends_with(&format!("matching FailJob rule at index {i}")),
                "{message}"
            );
            assert!(message.contains("default/p"));
        }
    }
}

#[test]
fn success_policy_agrees_with_the_spec_and_is_monotonic() {
    let mut rng = Lcg(5);
    for _ in 0..20_000 {
        let completions = 1 + rng.below(8) as i32;
        let rules: Vec<SuccessPolicyRule> = (0..1 + rng.below(3))
            .map(|_| {
                let indexes = rng.chance(60).then(|| {
                    (0..completions + 2)
                        .filter(|_| rng.chance(40))
                        .collect::<IndexSet>()
                });
                let count = (indexes.is_none() || rng.chance(50))
                    .then(|| 1 + rng.below(completions as u64) as i32);
                SuccessPolicyRule {
                    succeeded_indexes: indexes,
                    succeeded_count: count,
                }
            })
            .collect();
        let succeeded: IndexSet = (0..completions).filter(|_| rng.chance(50)).collect();
        let reference = rules.iter().position(|rule| {
            let done: Vec<bool> = (0..completions).map(|i| succeeded.contains(i)).collect();
            match &rule.succeeded_indexes {
                Some(listed) => {
                    let listed: Vec<i32> = listed.iter().filter(|i| *i < completions).collect();
                    let hits = listed.iter().filter(|i| done[**i as usize]).count();
                    !listed.is_empty()
                        && (hits == listed.len()
                            || rule.succeeded_count.is_some_and(|c| hits >= c as usize))
                }
                None => rule
                    .succeeded_count
                    .is_some_and(|c| done.iter().filter(|d| **d).count() >= c as usize),
            }
        });
        let reference = reference.filter(|_| !succeeded.is_empty());
        let got = match_success_policy(&rules, &succeeded, completions);
        assert_eq!(got, reference, "{rules:?} {succeeded}");
        // More successes never undo a match, nor move it to a later rule.
        let mut more = succeeded.clone();
        more.insert(rng.below(completions as u64) as i32);
        if let Some(i) = got {
            assert!(match_success_policy(&rules, &more, completions).is_some_and(|j| j <= i));
        }
    }
}
