//! `NodeAffinity`: whether a pod's `nodeSelector` and required node affinity accept the
//! node, as `nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)` decides.

use std::collections::BTreeMap;

use joblet_api::k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, PodSpec};

/// What a node is matched by: its name (`matchFields`) and labels (`matchExpressions`).
pub(crate) struct NodeIdentity<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

pub(crate) fn node_matches(spec: &PodSpec, node: &NodeIdentity) -> bool {
    let selector_matches = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(key, value)| node.labels.get(key) == Some(value));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    // Terms are ORed; an empty term matches nothing.
    let affinity_matches = required.is_none_or(|selector| {
        selector
            .node_selector_terms
            .iter()
            .any(|term| term_matches(term, node))
    });
    selector_matches && affinity_matches
}

fn term_matches(term: &NodeSelectorTerm, node: &NodeIdentity) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(node.name)))
}

fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let listed = |v: &str| values.iter().any(|w| w == v);
    // `Gt` and `Lt` compare integers; a value that is not one matches nothing.
    let compare = |wanted: fn(i64, i64) -> bool| {
        let label = value.and_then(|v| v.parse::<i64>().ok());
        let bound = values.first().and_then(|v| v.parse::<i64>().ok());
        matches!((label, bound, values.len()), (Some(l), Some(b), 1) if wanted(l, b))
    };
    match requirement.operator.as_str() {
        "In" => value.is_some_and(listed),
        "NotIn" => !value.is_some_and(listed),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => compare(|l, b| l > b),
        "Lt" => compare(|l, b| l < b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matches(placement: serde_json::Value) -> bool {
        let mut spec = placement;
        spec["containers"] = json!([]);
        let spec: PodSpec = serde_json::from_value(spec).unwrap();
        let labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), "box".to_string()),
            ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            ("cores".to_string(), "8".to_string()),
        ]);
        node_matches(
            &spec,
            &NodeIdentity {
                name: "box",
                labels: &labels,
            },
        )
    }

    fn required(terms: serde_json::Value) -> serde_json::Value {
        json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> serde_json::Value {
        json!([{"matchExpressions": [{"key": key, "operator": operator, "values": values}]}])
    }

    // After upstream's `TestNodeAffinity` (plugins/nodeaffinity) and the node selector
    // helpers' tests.
    #[test]
    fn node_selectors_match_every_label() {
        assert!(matches(json!({})));
        assert!(matches(
            json!({"nodeSelector": {"kubernetes.io/arch": "amd64"}})
        ));
        assert!(!matches(
            json!({"nodeSelector": {"kubernetes.io/arch": "amd64", "disk": "ssd"}})
        ));
        assert!(!matches(
            json!({"nodeSelector": {"kubernetes.io/arch": "arm64"}})
        ));
    }

    #[test]
    fn each_operator_reads_as_upstreams() {
        assert!(matches(required(expression(
            "kubernetes.io/arch",
            "In",
            &["arm64", "amd64"]
        ))));
        assert!(!matches(required(expression(
            "kubernetes.io/arch",
            "NotIn",
            &["amd64"]
        ))));
        assert!(matches(required(expression("gpu", "NotIn", &["a100"]))));
        assert!(matches(required(expression("cores", "Exists", &[]))));
        assert!(!matches(required(expression("gpu", "Exists", &[]))));
        assert!(matches(required(expression("gpu", "DoesNotExist", &[]))));
        assert!(matches(required(expression("cores", "Gt", &["4"]))));
        assert!(!matches(required(expression("cores", "Lt", &["4"]))));
        assert!(!matches(required(expression("cores", "Gt", &["four"]))));
        assert!(!matches(required(expression(
            "kubernetes.io/arch",
            "Gt",
            &["1"]
        ))));
    }

    #[test]
    fn terms_are_ored_and_their_requirements_anded() {
        let terms = json!([
            {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
            {"matchExpressions": [{"key": "cores", "operator": "Exists"},
                                  {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]);
        assert!(matches(required(terms)));
        let terms = json!([{"matchExpressions": [{"key": "cores", "operator": "Exists"},
                                                  {"key": "gpu", "operator": "Exists"}]}]);
        assert!(!matches(required(terms)));
        // An empty term matches nothing.
        assert!(!matches(required(json!([{}]))));
    }

    #[test]
    fn match_fields_name_the_node() {
        let by_name = |operator: &str, name: &str| {
            required(json!([{"matchFields": [
                {"key": "metadata.name", "operator": operator, "values": [name]}]}]))
        };
        assert!(matches(by_name("In", "box")));
        assert!(!matches(by_name("In", "other")));
        assert!(matches(by_name("NotIn", "other")));
    }
}
