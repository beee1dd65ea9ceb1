//! The pod failure policy and the success policy as decision tables (spec §4.4, §5.1).

use joblet_api::valid::{
    ExitCodeOperator, FailurePolicyAction, FailurePolicyRule, SuccessPolicyRule,
};
use joblet_api::IndexSet;

use crate::pod::{PodPhase, PodView};

/// The first rule matching a failed pod: its action and, for `FailJob`, the condition
/// message in upstream's words. `None`: no rule matched (counted as `Count` would be).
pub fn match_failure_policy(
    rules: &[FailurePolicyRule],
    pod: &PodView,
    namespace: &str,
) -> Option<(FailurePolicyAction, String)> {
    if pod.phase != PodPhase::Failed {
        return None;
    }
    for (i, rule) in rules.iter().enumerate() {
        if let Some(codes) = &rule.on_exit_codes {
            let matched = pod.exits.iter().find(|exit| {
                exit.exit_code != 0
                    && codes
                        .container_name
                        .as_ref()
                        .is_none_or(|name| *name == exit.name)
                    && match codes.operator {
                        ExitCodeOperator::In => codes.values.contains(&exit.exit_code),
                        ExitCodeOperator::NotIn => !codes.values.contains(&exit.exit_code),
                    }
            });
            if let Some(exit) = matched {
                let message = format!(
                    "Container {} for pod {namespace}/{} failed with exit code {} matching FailJob rule at index {i}",
                    exit.name, pod.name, exit.exit_code
                );
                return Some((rule.action, message));
            }
        }
        let condition = rule.on_pod_conditions.iter().find(|pattern| {
            pod.conditions
                .iter()
                .any(|(type_, status)| *type_ == pattern.type_ && *status == pattern.status)
        });
        if let Some(pattern) = condition {
            let message = format!(
                "Pod {namespace}/{} has condition {} matching FailJob rule at index {i}",
                pod.name, pattern.type_
            );
            return Some((rule.action, message));
        }
    }
    None
}

/// The index of the first success-policy rule the succeeded indexes satisfy.
pub fn match_success_policy(
    rules: &[SuccessPolicyRule],
    succeeded: &IndexSet,
    completions: i32,
) -> Option<usize> {
    if succeeded.is_empty() {
        return None;
    }
    rules.iter().position(|rule| match &rule.succeeded_indexes {
        Some(listed) => {
            let mut listed = listed.clone();
            listed.truncate(completions);
            if listed.is_empty() {
                return false;
            }
            let done = listed.iter().filter(|i| succeeded.contains(*i)).count();
            done == listed.len() || rule.succeeded_count.is_some_and(|c| done >= c as usize)
        }
        None => rule
            .succeeded_count
            .is_some_and(|c| succeeded.len() >= c as usize),
    })
}
