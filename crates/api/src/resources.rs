//! A container's `resources` as the API server defaults and validates them: requests taken
//! from limits, names a container may ask for, quantities that parse and are not negative,
//! requests within limits. The scheduler counts these requests against the node.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as QuantityText;

use crate::field::FieldError;
use crate::names::qualified_name_errors;
use crate::quantity::Quantity;

/// Apimachinery's `resource.Quantity` grammar, in its decoding error.
const QUANTITY_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// `IsStandardResourceName`: the names with no domain that any resource list may hold.
const STANDARD_RESOURCES: [&str; 18] = [
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "quota",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

/// `SetDefaults_Pod`: a limit with no request of its own is also the request.
pub fn default_requests(resources: &mut ResourceRequirements) {
    let Some(limits) = resources.limits.as_ref().filter(|l| !l.is_empty()) else {
        return;
    };
    let requests = resources.requests.get_or_insert_with(BTreeMap::new);
    for (name, limit) in limits {
        requests
            .entry(name.clone())
            .or_insert_with(|| limit.clone());
    }
}

fn is_huge_pages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// `IsNativeResource`: no domain, or a `kubernetes.io` one.
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// `IsExtendedResourceName`: a device or vendor resource such as `nvidia.com/gpu`, counted
/// in whole units and never overcommitted.
pub fn is_extended(name: &str) -> bool {
    !is_native(name)
        && !name.starts_with("requests.")
        && qualified_name_errors(&format!("requests.{name}")).is_empty()
}

/// `IsOvercommitAllowed`: a request may be below its limit.
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_huge_pages(name)
}

/// `validateContainerResourceName`.
fn validate_name(path: &str, name: &str, errors: &mut Vec<FieldError>) {
    let quoted = |detail: &str| FieldError::invalid_str(path, name, detail);
    let naming = qualified_name_errors(name);
    let bare = !name.contains('/');
    errors.extend(naming.iter().map(|e| quoted(e)));
    if naming.is_empty() && bare && !(STANDARD_RESOURCES.contains(&name) || is_huge_pages(name)) {
        errors.push(quoted(
            "must be a standard resource type or fully qualified",
        ));
    }
    if bare {
        if !["cpu", "memory", "ephemeral-storage"].contains(&name) && !is_huge_pages(name) {
            errors.push(quoted("must be a standard resource for containers"));
        }
    } else if !is_native(name) && !is_extended(name) {
        errors.push(quoted("doesn't follow extended resource name standard"));
    }
}

/// `ValidateResourceQuantityValue`: parsed, not negative, whole where the resource counts
/// units.
fn validate_quantity(
    path: &str,
    name: &str,
    text: &QuantityText,
    errors: &mut Vec<FieldError>,
) -> Option<Quantity> {
    let Some(quantity) = Quantity::parse(&text.0) else {
        errors.push(FieldError::invalid_str(path, &text.0, QUANTITY_ERROR));
        return None;
    };
    let shown = quantity.canonical();
    if quantity.milli_value() < 0 {
        errors.push(FieldError::invalid_str(
            path,
            &shown,
            "must be greater than or equal to 0",
        ));
    }
    if is_extended(name) && quantity.milli_value() % 1000 != 0 {
        errors.push(FieldError::invalid_str(path, &shown, "must be an integer"));
    }
    Some(quantity)
}

/// `ValidateResourceRequirements` for a container's `resources` at `path`.
pub fn validate_resources(
    path: &str,
    resources: &ResourceRequirements,
    errors: &mut Vec<FieldError>,
) {
    let empty = BTreeMap::new();
    let limits = resources.limits.as_ref().unwrap_or(&empty);
    let requests = resources.requests.as_ref().unwrap_or(&empty);
    let mut parsed_limits = BTreeMap::new();
    for (name, text) in limits {
        let here = format!("{path}.limits[{name}]");
        validate_name(&here, name, errors);
        if let Some(quantity) = validate_quantity(&here, name, text, errors) {
            parsed_limits.insert(name.as_str(), quantity);
        }
    }
    for (name, text) in requests {
        let here = format!("{path}.requests[{name}]");
        validate_name(&here, name, errors);
        let Some(request) = validate_quantity(&here, name, text, errors) else {
            continue;
        };
        let shown = request.canonical();
        match parsed_limits.get(name.as_str()) {
            Some(limit) if !overcommit_allowed(name) && !request.same_amount(limit) => {
                errors.push(FieldError::invalid_str(
                    format!("{path}.requests"),
                    &shown,
                    &format!("must be equal to {name} limit of {}", limit.canonical()),
                ));
            }
            Some(limit) if request.milli_value() > limit.milli_value() => {
                errors.push(FieldError::invalid_str(
                    format!("{path}.requests"),
                    &shown,
                    &format!(
                        "must be less than or equal to {name} limit of {}",
                        limit.canonical()
                    ),
                ));
            }
            None if !overcommit_allowed(name) && !limits.contains_key(name) => {
                errors.push(FieldError::required(
                    format!("{path}.limits"),
                    "Limit must be set for non overcommitable resources",
                ));
            }
            _ => {}
        }
    }
    let names = || limits.keys().chain(requests.keys());
    if names().any(|n| is_huge_pages(n)) && !names().any(|n| n == "cpu" || n == "memory") {
        errors.push(FieldError::forbidden(
            path,
            "HugePages require cpu or memory",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors_for(resources: serde_json::Value) -> Vec<String> {
        let mut resources: ResourceRequirements = serde_json::from_value(resources).unwrap();
        default_requests(&mut resources);
        let mut errors = Vec::new();
        validate_resources("c.resources", &resources, &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn requests_default_to_limits() {
        let mut resources: ResourceRequirements = serde_json::from_value(json!({
            "limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "500m"}
        }))
        .unwrap();
        default_requests(&mut resources);
        let requests = resources.requests.unwrap();
        assert_eq!(requests["cpu"].0, "500m");
        assert_eq!(requests["memory"].0, "1Gi");
    }

    #[test]
    fn resources_are_validated_as_the_api_server_does() {
        assert_eq!(
            errors_for(json!({"limits": {"cpu": "1", "nvidia.com/gpu": "1"},
                "requests": {"memory": "64Mi", "ephemeral-storage": "1Gi"}})),
            Vec::<String>::new()
        );
        assert_eq!(
            errors_for(json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1.5"}})),
            ["c.resources.requests: Invalid value: \"1500m\": must be less than or equal to cpu limit of 1"]
        );
        assert_eq!(
            errors_for(json!({"requests": {"memory": "-1Mi", "cpu": "lots"}})),
            [
                "c.resources.requests[cpu]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                "c.resources.requests[memory]: Invalid value: \"-1Mi\": must be greater than or equal to 0",
            ]
        );
        assert_eq!(
            errors_for(json!({"requests": {"gpu": "1", "pods": "1"}})),
            [
                "c.resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified",
                "c.resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
                "c.resources.requests[pods]: Invalid value: \"pods\": must be a standard resource for containers",
            ]
        );
        assert_eq!(
            errors_for(json!({"requests": {"nvidia.com/gpu": "1"}})),
            ["c.resources.limits: Required value: Limit must be set for non overcommitable resources"]
        );
        assert_eq!(
            errors_for(json!({"limits": {"nvidia.com/gpu": "2"}, "requests": {"nvidia.com/gpu": "1"}})),
            ["c.resources.requests: Invalid value: \"1\": must be equal to nvidia.com/gpu limit of 2"]
        );
        assert_eq!(
            errors_for(json!({"limits": {"example.com/dongle": "500m"}})),
            [
                "c.resources.limits[example.com/dongle]: Invalid value: \"500m\": must be an integer",
                "c.resources.requests[example.com/dongle]: Invalid value: \"500m\": must be an integer",
            ]
        );
        assert_eq!(
            errors_for(json!({"limits": {"hugepages-2Mi": "4Mi"}})),
            ["c.resources: Forbidden: HugePages require cpu or memory"]
        );
    }
}
