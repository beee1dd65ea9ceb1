//! Fields of features that are alpha in Kubernetes 1.37, off by default: an API server
//! drops them on write (or, emulating an older version, does not know them). joblet
//! refuses them with their path rather than ignore them in silence.

use serde_json::Value;

use crate::field::FieldError;

/// Why an alpha field is refused.
pub const ALPHA_FIELD: &str =
    "an alpha field of Kubernetes 1.37, off by default there (a cluster would drop it): joblet does not run it";

/// Paths inside a Job's `spec`: `[*]` is every item of a list, `*` every field of an object.
const ALPHA_FIELDS: &[&str] = &[
    // WorkloadWithJob (gang scheduling).
    "scheduling",
    "template.spec.schedulingGroup",
    // EvictionRequestAPI.
    "template.spec.evictionResponders",
    // EmptyDirVolumeMode.
    "template.spec.volumes[*].emptyDir.mode",
    // AtomicWriteVolumeUserFields.
    "template.spec.volumes[*].*.defaultUser",
    "template.spec.volumes[*].*.items[*].user",
    "template.spec.volumes[*].projected.sources[*].*.user",
    "template.spec.volumes[*].projected.sources[*].*.userAnnotations",
    "template.spec.volumes[*].projected.sources[*].*.items[*].user",
    // VolumeBindMountOptions.
    "template.spec.containers[*].volumeMounts[*].bindMountOptions",
    "template.spec.initContainers[*].volumeMounts[*].bindMountOptions",
];

/// Refuses every alpha field set in a Job's `spec`, naming it under `spec.`.
pub fn refuse_alpha_fields(spec: &impl serde::Serialize, errors: &mut Vec<FieldError>) {
    let Ok(spec) = serde_json::to_value(spec) else {
        return;
    };
    for pattern in ALPHA_FIELDS {
        let mut found = Vec::new();
        find(&spec, pattern, "spec".to_string(), &mut found);
        for path in found {
            errors.push(FieldError::forbidden(path, ALPHA_FIELD).node_limit());
        }
    }
}

/// The paths under `value` that `pattern` names and that are set (not null).
fn find(value: &Value, pattern: &str, path: String, found: &mut Vec<String>) {
    let Some((segment, rest)) = split_first(pattern) else {
        if !value.is_null() {
            found.push(path);
        }
        return;
    };
    let (key, each) = match segment.strip_suffix("[*]") {
        Some(key) => (key, true),
        None => (segment, false),
    };
    let Some(object) = value.as_object() else {
        return;
    };
    let fields: Vec<(&String, &Value)> = match key {
        "*" => object.iter().collect(),
        _ => object.get_key_value(key).into_iter().collect(),
    };
    for (name, child) in fields {
        let here = format!("{path}.{name}");
        match (each, child.as_array()) {
            (true, Some(items)) => {
                for (i, item) in items.iter().enumerate() {
                    find(item, rest, format!("{here}[{i}]"), found);
                }
            }
            (true, None) => {}
            (false, _) => find(child, rest, here, found),
        }
    }
}

fn split_first(pattern: &str) -> Option<(&str, &str)> {
    match pattern.split_once('.') {
        Some((first, rest)) => Some((first, rest)),
        None if pattern.is_empty() => None,
        None => Some((pattern, "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(spec: Value) -> Vec<String> {
        let spec: k8s_openapi::api::batch::v1::JobSpec = serde_json::from_value(spec).unwrap();
        let mut errors = Vec::new();
        refuse_alpha_fields(&spec, &mut errors);
        errors.iter().map(|e| e.path.clone()).collect()
    }

    #[test]
    fn alpha_fields_are_named_by_their_path() {
        let spec = json!({
            "scheduling": {},
            "template": {"spec": {
                "schedulingGroup": {},
                "containers": [
                    {"name": "a", "volumeMounts": [{"name": "v", "mountPath": "/v"}]},
                    {"name": "b", "volumeMounts": [{"name": "v", "mountPath": "/v", "bindMountOptions": ["nodev"]}]}
                ],
                "volumes": [
                    {"name": "e", "emptyDir": {"mode": 493}},
                    {"name": "c", "configMap": {"name": "c", "defaultUser": 1000, "items": [{"key": "k", "path": "p", "user": 1}]}},
                    {"name": "p", "projected": {"sources": [{"secret": {"name": "s", "items": [{"key": "k", "path": "p", "user": 2}]}}]}}
                ]
            }}
        });
        assert_eq!(
            refused(spec),
            [
                "spec.scheduling",
                "spec.template.spec.schedulingGroup",
                "spec.template.spec.volumes[0].emptyDir.mode",
                "spec.template.spec.volumes[1].configMap.defaultUser",
                "spec.template.spec.volumes[1].configMap.items[0].user",
                "spec.template.spec.volumes[2].projected.sources[0].secret.items[0].user",
                "spec.template.spec.containers[1].volumeMounts[0].bindMountOptions",
            ]
        );
    }

    #[test]
    fn a_template_without_them_passes() {
        let spec = json!({"template": {"spec": {
            "containers": [{"name": "a", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
            "volumes": [{"name": "v", "emptyDir": {"medium": "Memory"}},
                        {"name": "c", "configMap": {"name": "c", "defaultMode": 420, "items": [{"key": "k", "path": "p"}]}}]
        }}});
        assert!(refused(spec).is_empty());
    }
}
