//! Where a pod may run, as the API server validates it: `nodeSelector`, node affinity and
//! tolerations. The scheduler reads them against the node (`joblet-scheduler`).

use k8s_openapi::api::core::v1::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Toleration,
};

use crate::field::FieldError;
use crate::names::{label_value_errors, qualified_name_errors};

const OPERATORS: [&str; 6] = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"];

pub fn validate_scheduling(spec: &PodSpec, path: &str, errors: &mut Vec<FieldError>) {
    let selector_path = format!("{path}.nodeSelector");
    for (key, value) in spec.node_selector.iter().flatten() {
        label_name(&selector_path, key, errors);
        for message in label_value_errors(value) {
            errors.push(FieldError::invalid_str(&selector_path, value, &message));
        }
    }
    let node_affinity = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref());
    if let Some(affinity) = node_affinity {
        let affinity_path = format!("{path}.affinity.nodeAffinity");
        if let Some(required) = &affinity.required_during_scheduling_ignored_during_execution {
            let here = format!("{affinity_path}.requiredDuringSchedulingIgnoredDuringExecution");
            validate_node_selector(required, &here, errors);
        }
        let preferred = affinity
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten();
        for (i, term) in preferred.enumerate() {
            let here =
                format!("{affinity_path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
            if !(1..=100).contains(&term.weight) {
                errors.push(FieldError::invalid(
                    format!("{here}.weight"),
                    term.weight,
                    "must be in the range 1-100",
                ));
            }
            validate_term(&term.preference, &format!("{here}.preference"), errors);
        }
    }
    for (i, toleration) in spec.tolerations.iter().flatten().enumerate() {
        validate_toleration(toleration, &format!("{path}.tolerations[{i}]"), errors);
    }
    refuse_what_the_scheduler_does_not_do(spec, path, errors);
}

/// Fields that would keep a pod from running on a cluster, or decide where, that joblet's
/// scheduler does not act on: refused with their path rather than ignored.
fn refuse_what_the_scheduler_does_not_do(spec: &PodSpec, path: &str, errors: &mut Vec<FieldError>) {
    let affinity = spec.affinity.as_ref();
    let required = [
        (
            "podAffinity",
            affinity
                .and_then(|a| a.pod_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
        ),
        (
            "podAntiAffinity",
            affinity
                .and_then(|a| a.pod_anti_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
        ),
    ];
    for (field, terms) in required {
        if terms.is_some_and(|t| !t.is_empty()) {
            errors.push(FieldError::forbidden(
                format!("{path}.affinity.{field}.requiredDuringSchedulingIgnoredDuringExecution"),
                "joblet's scheduler does not apply required pod affinity or anti-affinity yet",
            ));
        }
    }
    if spec
        .scheduling_gates
        .as_ref()
        .is_some_and(|g| !g.is_empty())
    {
        errors.push(FieldError::forbidden(
            format!("{path}.schedulingGates"),
            "nothing in joblet lifts scheduling gates, so its pods would wait for ever",
        ));
    }
    if let Some(name) = spec.scheduler_name.as_deref() {
        if name != "default-scheduler" {
            errors.push(FieldError::forbidden(
                format!("{path}.schedulerName"),
                format!("joblet's one scheduler is default-scheduler; {name:?} does not run here, so its pods would wait for ever"),
            ));
        }
    }
    if let Some(class) = spec
        .priority_class_name
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        errors.push(FieldError::forbidden(
            format!("{path}.priorityClassName"),
            format!("joblet serves no PriorityClasses: {class:?} would not be found, and all pods have the same priority"),
        ));
    }
}

fn label_name(path: &str, key: &str, errors: &mut Vec<FieldError>) {
    for message in qualified_name_errors(key) {
        errors.push(FieldError::invalid_str(path, key, &message));
    }
}

fn validate_node_selector(selector: &NodeSelector, path: &str, errors: &mut Vec<FieldError>) {
    if selector.node_selector_terms.is_empty() {
        errors.push(FieldError::required(
            format!("{path}.nodeSelectorTerms"),
            "must have at least one node selector term",
        ));
    }
    for (i, term) in selector.node_selector_terms.iter().enumerate() {
        validate_term(term, &format!("{path}.nodeSelectorTerms[{i}]"), errors);
    }
}

fn validate_term(term: &NodeSelectorTerm, path: &str, errors: &mut Vec<FieldError>) {
    for (j, requirement) in term.match_expressions.iter().flatten().enumerate() {
        let here = format!("{path}.matchExpressions[{j}]");
        validate_requirement(requirement, &here, errors);
    }
    for (j, requirement) in term.match_fields.iter().flatten().enumerate() {
        let here = format!("{path}.matchFields[{j}]");
        let values = requirement.values.as_deref().unwrap_or_default();
        match requirement.operator.as_str() {
            "In" | "NotIn" if values.len() != 1 => errors.push(FieldError::required(
                format!("{here}.values"),
                "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
            )),
            "In" | "NotIn" => {}
            other => errors.push(FieldError::invalid_str(
                format!("{here}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        if requirement.key != "metadata.name" {
            errors.push(FieldError::invalid_str(
                format!("{here}.key"),
                &requirement.key,
                "not a valid field selector key",
            ));
        }
    }
}

/// `ValidateNodeSelectorRequirement`.
fn validate_requirement(
    requirement: &NodeSelectorRequirement,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let values = requirement.values.as_deref().unwrap_or_default();
    match requirement.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => errors.push(FieldError::required(
            format!("{path}.values"),
            "must be specified when `operator` is 'In' or 'NotIn'",
        )),
        "In" | "NotIn" => {
            for (k, value) in values.iter().enumerate() {
                for message in label_value_errors(value) {
                    errors.push(FieldError::invalid_str(
                        format!("{path}.values[{k}]"),
                        value,
                        &message,
                    ));
                }
            }
        }
        "Exists" | "DoesNotExist" if !values.is_empty() => errors.push(FieldError::forbidden(
            format!("{path}.values"),
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )),
        "Gt" | "Lt" if values.len() != 1 => errors.push(FieldError::required(
            format!("{path}.values"),
            "must be specified single value when `operator` is 'Lt' or 'Gt'",
        )),
        operator if OPERATORS.contains(&operator) => {}
        other => errors.push(FieldError::invalid_str(
            format!("{path}.operator"),
            other,
            "not a valid selector operator",
        )),
    }
    label_name(&format!("{path}.key"), &requirement.key, errors);
}

/// `validateTolerations`, for one toleration.
fn validate_toleration(toleration: &Toleration, path: &str, errors: &mut Vec<FieldError>) {
    let key = toleration.key.as_deref().unwrap_or_default();
    let operator = toleration.operator.as_deref().unwrap_or_default();
    let value = toleration.value.as_deref().unwrap_or_default();
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !key.is_empty() {
        label_name(&format!("{path}.key"), key, errors);
    }
    if key.is_empty() && operator != "Exists" {
        errors.push(FieldError::invalid_str(
            format!("{path}.operator"),
            operator,
            "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        ));
    }
    if toleration.toleration_seconds.is_some() && effect != "NoExecute" {
        errors.push(FieldError::invalid_str(
            format!("{path}.effect"),
            effect,
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
    match operator {
        "Equal" | "" => {
            let messages = label_value_errors(value);
            if !messages.is_empty() {
                errors.push(FieldError::invalid_str(
                    format!("{path}.operator"),
                    value,
                    &messages.join(";"),
                ));
            }
        }
        "Exists" if !value.is_empty() => errors.push(FieldError::invalid_no_value(
            format!("{path}.operator"),
            "value must be empty when `operator` is 'Exists'",
        )),
        "Exists" => {}
        other => errors.push(FieldError::not_supported(
            format!("{path}.operator"),
            other,
            &["Equal", "Exists"],
        )),
    }
    if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        errors.push(FieldError::not_supported(
            format!("{path}.effect"),
            effect,
            &["NoExecute", "NoSchedule", "PreferNoSchedule"],
        ));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_the_scheduler_does_not_do_is_refused_with_its_path() {
        let term = json!([{"labelSelector": {"matchLabels": {"app": "x"}},
            "topologyKey": "kubernetes.io/hostname"}]);
        let spec = json!({
            "schedulerName": "volcano",
            "priorityClassName": "high",
            "schedulingGates": [{"name": "example.com/quota"}],
            "affinity": {
                "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term},
                "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}}
        });
        assert_eq!(
            errors_for(spec),
            [
                "s.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution: Forbidden: joblet's scheduler does not apply required pod affinity or anti-affinity yet",
                "s.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution: Forbidden: joblet's scheduler does not apply required pod affinity or anti-affinity yet",
                "s.schedulingGates: Forbidden: nothing in joblet lifts scheduling gates, so its pods would wait for ever",
                "s.schedulerName: Forbidden: joblet's one scheduler is default-scheduler; \"volcano\" does not run here, so its pods would wait for ever",
                "s.priorityClassName: Forbidden: joblet serves no PriorityClasses: \"high\" would not be found, and all pods have the same priority",
            ]
        );
        // The defaulted scheduler name is accepted.
        assert_eq!(
            errors_for(json!({"schedulerName": "default-scheduler"})),
            Vec::<String>::new()
        );
    }

    use super::*;
    use serde_json::json;

    fn errors_for(spec: serde_json::Value) -> Vec<String> {
        let mut spec = spec;
        spec["containers"] = json!([]);
        let spec: PodSpec = serde_json::from_value(spec).unwrap();
        let mut errors = Vec::new();
        validate_scheduling(&spec, "s", &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn well_formed_placement_is_accepted() {
        let spec = json!({
            "nodeSelector": {"kubernetes.io/os": "linux", "disk": "ssd"},
            "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]},
                        {"key": "gpu", "operator": "DoesNotExist"},
                        {"key": "cores", "operator": "Gt", "values": ["1"]}],
                     "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["old"]}]}]},
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 10, "preference": {"matchExpressions": [
                        {"key": "zone", "operator": "Exists"}]}}]}},
            "tolerations": [{"operator": "Exists"},
                {"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300}]
        });
        assert_eq!(errors_for(spec), Vec::<String>::new());
    }

    #[test]
    fn malformed_placement_gets_the_api_servers_errors() {
        let spec = json!({
            "nodeSelector": {"bad key!": "v"},
            "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [
                        {"key": "a", "operator": "In"},
                        {"key": "b", "operator": "Exists", "values": ["x"]},
                        {"key": "c", "operator": "Gt", "values": ["1", "2"]},
                        {"key": "d", "operator": "Near"}],
                     "matchFields": [{"key": "metadata.labels", "operator": "In", "values": ["x"]}]}]},
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 0, "preference": {}}]}},
            "tolerations": [{"key": "", "operator": "Equal"},
                {"key": "k", "operator": "Exists", "value": "v", "effect": "Sometimes"},
                {"key": "k", "tolerationSeconds": 5, "effect": "NoSchedule"}]
        });
        let terms = "s.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]";
        assert_eq!(
            errors_for(spec),
            [
                "s.nodeSelector: Invalid value: \"bad key!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string(),
                format!("{terms}.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"),
                format!("{terms}.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
                format!("{terms}.matchExpressions[2].values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"),
                format!("{terms}.matchExpressions[3].operator: Invalid value: \"Near\": not a valid selector operator"),
                format!("{terms}.matchFields[0].key: Invalid value: \"metadata.labels\": not a valid field selector key"),
                "s.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: must be in the range 1-100".to_string(),
                "s.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"".to_string(),
                "s.tolerations[1].operator: Invalid value: value must be empty when `operator` is 'Exists'".to_string(),
                "s.tolerations[1].effect: Unsupported value: \"Sometimes\": supported values: \"NoExecute\", \"NoSchedule\", \"PreferNoSchedule\"".to_string(),
                "s.tolerations[2].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set".to_string(),
            ]
        );
    }
}
