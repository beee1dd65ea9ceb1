//! A pod's volumes as the API server takes them: the defaults of `SetDefaults_Volume` and its
//! sources (`defaultMode: 0644`), and `ValidateVolumes` for the sources a Job's pods use
//! (names, one source each, ConfigMap and Secret items and modes), with upstream's messages.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, KeyToPath, PodSpec, Volume, VolumeProjection,
};
use serde_json::Value;

use crate::field::FieldError;
use crate::validation::{is_dns1123_label, DNS1123_LABEL_ERROR};

/// `0644`, the mode of projected files unless a volume says otherwise.
pub const DEFAULT_MODE: i32 = 0o644;

const FILE_MODE_ERROR: &str = "must be a number between 0 and 0777 (octal), both inclusive";

pub fn default_volumes(pod: &mut PodSpec) {
    for source in pod.volumes.iter_mut().flatten() {
        if source_names(source).is_empty() {
            source.empty_dir = Some(Default::default());
        }
        if let Some(config_map) = source.config_map.as_mut() {
            config_map.default_mode.get_or_insert(DEFAULT_MODE);
        }
        if let Some(secret) = source.secret.as_mut() {
            secret.default_mode.get_or_insert(DEFAULT_MODE);
        }
        if let Some(downward) = source.downward_api.as_mut() {
            downward.default_mode.get_or_insert(DEFAULT_MODE);
        }
        if let Some(projected) = source.projected.as_mut() {
            projected.default_mode.get_or_insert(DEFAULT_MODE);
        }
    }
}

/// The sources a volume names (its JSON keys besides `name`): exactly one is valid.
fn source_names(volume: &Volume) -> Vec<String> {
    let mut names = set_fields(volume);
    names.retain(|name| name != "name");
    names
}

/// The fields `value` sets: the keys of its JSON object that are not null.
fn set_fields(value: &impl serde::Serialize) -> Vec<String> {
    match serde_json::to_value(value) {
        Ok(Value::Object(fields)) => fields
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k)
            .collect(),
        _ => Vec::new(),
    }
}

pub fn validate_volumes(volumes: &[Volume], path: &str, errors: &mut Vec<FieldError>) {
    let mut names = HashSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        let here = format!("{path}[{i}]");
        let mut found = Vec::new();
        validate_source(volume, &here, &mut found);
        let name = volume.name.as_str();
        if name.is_empty() {
            found.push(FieldError::required(format!("{here}.name"), ""));
        } else if !is_dns1123_label(name) {
            found.push(FieldError::invalid_str(
                format!("{here}.name"),
                name,
                DNS1123_LABEL_ERROR,
            ));
        }
        if names.contains(name) {
            found.push(FieldError::duplicate(
                format!("{here}.name"),
                format!("{name:?}"),
            ));
        }
        if found.is_empty() {
            names.insert(name);
        }
        errors.append(&mut found);
    }
}

fn validate_source(source: &Volume, path: &str, errors: &mut Vec<FieldError>) {
    let kinds = source_names(source);
    match kinds.as_slice() {
        [] => errors.push(FieldError::required(path, "must specify a volume type")),
        [_] => {}
        [_, more @ ..] => {
            for kind in more {
                errors.push(FieldError::forbidden(
                    format!("{path}.{kind}"),
                    "may not specify more than 1 volume type",
                ));
            }
            return;
        }
    }
    if let Some(config_map) = &source.config_map {
        let here = format!("{path}.configMap");
        if config_map.name.is_empty() {
            errors.push(FieldError::required(format!("{here}.name"), ""));
        }
        validate_projection(&here, config_map.default_mode, &config_map.items, errors);
    }
    if let Some(secret) = &source.secret {
        let here = format!("{path}.secret");
        if secret.secret_name.as_deref().unwrap_or("").is_empty() {
            errors.push(FieldError::required(format!("{here}.secretName"), ""));
        }
        validate_projection(&here, secret.default_mode, &secret.items, errors);
    }
    if let Some(downward) = &source.downward_api {
        let here = format!("{path}.downwardAPI");
        validate_mode(
            &format!("{here}.defaultMode"),
            downward.default_mode,
            errors,
        );
        for item in downward.items.iter().flatten() {
            validate_downward_file(&here, item, errors);
        }
    }
    if let Some(projected) = &source.projected {
        let here = format!("{path}.projected");
        validate_mode(
            &format!("{here}.defaultMode"),
            projected.default_mode,
            errors,
        );
        let mut paths = HashSet::new();
        for (j, projection) in projected.sources.iter().flatten().enumerate() {
            validate_projection_source(
                &format!("{here}.sources[{j}]"),
                projection,
                &mut paths,
                errors,
            );
        }
    }
    if let Some(host_path) = &source.host_path {
        if host_path.path.is_empty() {
            errors.push(FieldError::required(format!("{path}.hostPath.path"), ""));
        } else if host_path.path.split('/').any(|part| part == "..") {
            errors.push(FieldError::invalid_str(
                format!("{path}.hostPath.path"),
                &host_path.path,
                "must not contain '..'",
            ));
        }
    }
}

/// One source of a `projected` volume (`validateProjectionSources`): one kind, its own
/// rules, and no path another source already projects.
fn validate_projection_source<'a>(
    path: &str,
    projection: &'a VolumeProjection,
    paths: &mut HashSet<&'a str>,
    errors: &mut Vec<FieldError>,
) {
    if set_fields(projection).len() > 1 {
        errors.push(FieldError::forbidden(
            path,
            "may not specify more than 1 volume type per source",
        ));
        return;
    }
    let mut projected: Vec<&str> = Vec::new();
    let keyed = [
        (
            "configMap",
            projection.config_map.as_ref().map(|c| (&c.name, &c.items)),
        ),
        (
            "secret",
            projection.secret.as_ref().map(|s| (&s.name, &s.items)),
        ),
    ];
    for (kind, source) in keyed {
        let Some((name, items)) = source else {
            continue;
        };
        let here = format!("{path}.{kind}");
        if name.is_empty() {
            errors.push(FieldError::required(format!("{here}.name"), ""));
        }
        validate_projection(&here, None, items, errors);
        projected.extend(items.iter().flatten().map(|i| i.path.as_str()));
    }
    if let Some(downward) = &projection.downward_api {
        let here = format!("{path}.downwardAPI");
        for item in downward.items.iter().flatten() {
            validate_downward_file(&here, item, errors);
            projected.push(item.path.as_str());
        }
    }
    for file in projected {
        if !paths.insert(file) {
            errors.push(FieldError::invalid_str(
                path,
                file,
                "conflicting duplicate paths",
            ));
        }
    }
}

/// The paths a `downwardAPI` file may take its value from (`validVolumeDownwardAPIFieldPathExpressions`).
const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

/// One file of a `downwardAPI` volume or projection (`validateDownwardAPIVolumeFile`, whose
/// errors name the source, not the item): a local path, and one of a field or a resource.
fn validate_downward_file(path: &str, file: &DownwardAPIVolumeFile, errors: &mut Vec<FieldError>) {
    if file.path.is_empty() {
        errors.push(FieldError::required(format!("{path}.path"), ""));
    }
    for detail in local_non_reserved_path_errors(&file.path) {
        errors.push(FieldError::invalid_str(
            format!("{path}.path"),
            &file.path,
            detail,
        ));
    }
    match (&file.field_ref, &file.resource_field_ref) {
        (Some(field), resource) => {
            let field_path = field.field_path.as_str();
            let keyed = crate::validation::is_keyed_field_path(field_path);
            if !keyed && !VOLUME_FIELD_PATHS.contains(&field_path) {
                errors.push(FieldError::not_supported(
                    format!("{path}.fieldRef.fieldPath"),
                    field_path,
                    VOLUME_FIELD_PATHS,
                ));
            }
            if resource.is_some() {
                errors.push(FieldError::invalid_str(
                    path,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                ));
            }
        }
        (None, Some(resource)) => {
            let here = format!("{path}.resourceFieldRef");
            if resource.container_name.as_deref().unwrap_or("").is_empty() {
                errors.push(FieldError::required(format!("{here}.containerName"), ""));
            }
            crate::validation::validate_resource_field(&here, resource, errors);
        }
        (None, None) => errors.push(FieldError::required(
            path,
            "one of fieldRef and resourceFieldRef is required",
        )),
    }
    validate_mode(&format!("{path}.mode"), file.mode, errors);
}

fn validate_mode(path: &str, mode: Option<i32>, errors: &mut Vec<FieldError>) {
    if let Some(mode) = mode.filter(|m| !(0..=0o777).contains(m)) {
        errors.push(FieldError::invalid(path, mode, FILE_MODE_ERROR));
    }
}

fn validate_projection(
    path: &str,
    default_mode: Option<i32>,
    items: &Option<Vec<KeyToPath>>,
    errors: &mut Vec<FieldError>,
) {
    validate_mode(&format!("{path}.defaultMode"), default_mode, errors);
    for (i, item) in items.iter().flatten().enumerate() {
        let here = format!("{path}.items[{i}]");
        if item.key.is_empty() {
            errors.push(FieldError::required(format!("{here}.key"), ""));
        }
        if item.path.is_empty() {
            errors.push(FieldError::required(format!("{here}.path"), ""));
        }
        for detail in local_non_reserved_path_errors(&item.path) {
            errors.push(FieldError::invalid_str(
                format!("{here}.path"),
                &item.path,
                detail,
            ));
        }
        validate_mode(&format!("{here}.mode"), item.mode, errors);
    }
}

/// The volume kinds the podman runtime mounts, and the sources it projects.
const MOUNTABLE: &[&str] = &[
    "emptyDir",
    "hostPath",
    "configMap",
    "secret",
    "downwardAPI",
    "projected",
];
const PROJECTABLE: &[&str] = &["configMap", "secret", "downwardAPI"];

/// A container's `volumeMounts` (`ValidateVolumeMounts`): each names a volume of the pod, a
/// `mountPath` used once, a relative `subPath` that stays inside; and the volume is of a kind
/// joblet mounts.
pub fn validate_mounts(
    volumes: &[Volume],
    container: &Container,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let mut paths = HashSet::new();
    for (i, mount) in container.volume_mounts.iter().flatten().enumerate() {
        let here = format!("{path}.volumeMounts[{i}]");
        match volumes.iter().find(|v| v.name == mount.name) {
            None if mount.name.is_empty() => {
                errors.push(FieldError::required(format!("{here}.name"), ""))
            }
            None => errors.push(FieldError::not_found(
                format!("{here}.name"),
                format!("{:?}", mount.name),
            )),
            Some(volume) => {
                let kinds = source_names(volume);
                if let Some(kind) = kinds.iter().find(|k| !MOUNTABLE.contains(&k.as_str())) {
                    errors.push(FieldError::forbidden(
                        format!("{here}.name"),
                        format!("joblet mounts emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes, not {kind}"),
                    ).node_limit());
                }
                let sources = volume
                    .projected
                    .iter()
                    .flat_map(|p| p.sources.iter().flatten());
                for source in sources {
                    let kinds = set_fields(source);
                    for kind in kinds.iter().filter(|k| !PROJECTABLE.contains(&k.as_str())) {
                        errors.push(FieldError::forbidden(
                            format!("{here}.name"),
                            format!("joblet projects configMap, secret and downwardAPI sources, not {kind}: it has no service accounts or certificates"),
                        ).node_limit());
                    }
                }
            }
        }
        if mount.mount_path.is_empty() {
            errors.push(FieldError::required(format!("{here}.mountPath"), ""));
        } else if !paths.insert(mount.mount_path.as_str()) {
            errors.push(FieldError::invalid_str(
                format!("{here}.mountPath"),
                &mount.mount_path,
                "must be unique",
            ));
        }
        if mount
            .sub_path_expr
            .as_deref()
            .is_some_and(|e| !e.is_empty())
        {
            errors.push(
                FieldError::forbidden(
                    format!("{here}.subPathExpr"),
                    "joblet does not expand subPathExpr; use subPath",
                )
                .node_limit(),
            );
        }
        if let Some(propagation) = mount.mount_propagation.as_deref().filter(|p| *p != "None") {
            errors.push(
                FieldError::forbidden(
                    format!("{here}.mountPropagation"),
                    format!("joblet mounts volumes without propagation, not {propagation}"),
                )
                .node_limit(),
            );
        }
        if mount.recursive_read_only.as_deref() == Some("Enabled") {
            errors.push(
                FieldError::forbidden(
                    format!("{here}.recursiveReadOnly"),
                    "joblet makes only the mount itself read-only",
                )
                .node_limit(),
            );
        }
        if let Some(sub_path) = mount.sub_path.as_deref().filter(|p| !p.is_empty()) {
            let mut details = Vec::new();
            if sub_path.starts_with('/') {
                details.push("must be a relative path");
            }
            if sub_path.split('/').any(|part| part == "..") {
                details.push("must not contain '..'");
            }
            for detail in details {
                errors.push(FieldError::invalid_str(
                    format!("{here}.subPath"),
                    sub_path,
                    detail,
                ));
            }
        }
    }
}

/// `ValidateLocalNonReservedPath`: relative, no `..` element, and not starting with `..`
/// (the writer's own entries are named so).
pub fn local_non_reserved_path_errors(path: &str) -> Vec<&'static str> {
    let mut details = Vec::new();
    if path.starts_with('/') {
        details.push("must be a relative path");
    }
    if path.split('/').any(|part| part == "..") {
        details.push("must not contain '..'");
    }
    if path.starts_with("..") && !path.starts_with("../") {
        details.push("must not start with '..'");
    }
    details
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(volumes: Value) -> Vec<String> {
        let mut pod: PodSpec =
            serde_json::from_value(json!({"containers": [], "volumes": volumes})).unwrap();
        default_volumes(&mut pod);
        let mut errors = Vec::new();
        validate_volumes(pod.volumes.as_deref().unwrap(), "spec.volumes", &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn sources_default_to_an_empty_dir_and_mode_0644() {
        let mut pod: PodSpec = serde_json::from_value(json!({"containers": [], "volumes": [
            {"name": "scratch"},
            {"name": "conf", "configMap": {"name": "c"}},
            {"name": "keys", "secret": {"secretName": "s", "defaultMode": 0o400}},
        ]}))
        .unwrap();
        default_volumes(&mut pod);
        let volumes = serde_json::to_value(&pod.volumes).unwrap();
        assert_eq!(volumes[0]["emptyDir"], json!({}));
        assert_eq!(volumes[1]["configMap"]["defaultMode"], 420);
        assert_eq!(volumes[2]["secret"]["defaultMode"], 256);
    }

    #[test]
    fn names_sources_items_and_modes_are_checked_as_upstream() {
        assert_eq!(
            errors(json!([
                {"name": "a", "configMap": {"name": "c", "items": [
                    {"key": "k", "path": "/etc/x"},
                    {"key": "", "path": "..hidden", "mode": 0o1777},
                    {"key": "k", "path": "a/../b"},
                ]}},
                {"name": "a", "emptyDir": {}},
                {"name": "Bad", "secret": {"defaultMode": -1}},
                {"name": "two", "emptyDir": {}, "hostPath": {"path": "/tmp"}},
            ])),
            [
                "spec.volumes[0].configMap.items[0].path: Invalid value: \"/etc/x\": must be a relative path",
                "spec.volumes[0].configMap.items[1].key: Required value",
                "spec.volumes[0].configMap.items[1].path: Invalid value: \"..hidden\": must not start with '..'",
                "spec.volumes[0].configMap.items[1].mode: Invalid value: 1023: must be a number between 0 and 0777 (octal), both inclusive",
                "spec.volumes[0].configMap.items[2].path: Invalid value: \"a/../b\": must not contain '..'",
                "spec.volumes[2].secret.secretName: Required value",
                "spec.volumes[2].secret.defaultMode: Invalid value: -1: must be a number between 0 and 0777 (octal), both inclusive",
                "spec.volumes[2].name: Invalid value: \"Bad\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                "spec.volumes[3].hostPath: Forbidden: may not specify more than 1 volume type",
            ]
        );
        // The first `a` had errors, so the second is no duplicate of a valid one.
        assert_eq!(
            errors(json!([{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}])),
            ["spec.volumes[1].name: Duplicate value: \"a\""]
        );
    }

    #[test]
    fn mounts_name_a_mountable_volume_once_and_stay_inside_it() {
        let volumes: Vec<Volume> = serde_json::from_value(json!([
            {"name": "scratch", "emptyDir": {}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": "c"}},
        ]))
        .unwrap();
        let container: Container = serde_json::from_value(json!({"name": "c", "volumeMounts": [
            {"name": "scratch", "mountPath": "/data", "subPath": "a/../../b"},
            {"name": "scratch", "mountPath": "/data"},
            {"name": "missing", "mountPath": "/m"},
            {"name": "claim", "mountPath": "/c"},
        ]}))
        .unwrap();
        let mut errors = Vec::new();
        validate_mounts(&volumes, &container, "c", &mut errors);
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "c.volumeMounts[0].subPath: Invalid value: \"a/../../b\": must not contain '..'",
                "c.volumeMounts[1].mountPath: Invalid value: \"/data\": must be unique",
                "c.volumeMounts[2].name: Not found: \"missing\"",
                "c.volumeMounts[3].name: Forbidden: joblet mounts emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes, not persistentVolumeClaim",
            ]
        );
    }

    #[test]
    fn mount_fields_joblet_does_not_apply_are_refused_with_their_path() {
        let volumes: Vec<Volume> =
            serde_json::from_value(json!([{"name": "scratch", "emptyDir": {}}])).unwrap();
        let container: Container = serde_json::from_value(json!({"name": "c", "volumeMounts": [
            {"name": "scratch", "mountPath": "/e", "subPathExpr": "$(POD)",
             "mountPropagation": "HostToContainer", "recursiveReadOnly": "Enabled"},
            {"name": "scratch", "mountPath": "/f", "mountPropagation": "None",
             "recursiveReadOnly": "Disabled"},
        ]}))
        .unwrap();
        let mut errors = Vec::new();
        validate_mounts(&volumes, &container, "c", &mut errors);
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "c.volumeMounts[0].subPathExpr: Forbidden: joblet does not expand subPathExpr; use subPath",
                "c.volumeMounts[0].mountPropagation: Forbidden: joblet mounts volumes without propagation, not HostToContainer",
                "c.volumeMounts[0].recursiveReadOnly: Forbidden: joblet makes only the mount itself read-only",
            ]
        );
    }

    #[test]
    fn downward_api_and_projected_sources_are_checked_as_upstream() {
        let at = "spec.volumes[0]";
        assert_eq!(
            errors(json!([{"name": "info", "downwardAPI": {"items": [
                {"path": "node", "fieldRef": {"fieldPath": "spec.nodeName"}},
                {"path": "../x", "resourceFieldRef": {"resource": "limits.gpu"}},
                {"path": "both", "fieldRef": {"fieldPath": "metadata.name"},
                 "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu"}},
                {"path": "none", "mode": 0o1000}]}}])),
            [
                format!("{at}.downwardAPI.fieldRef.fieldPath: Unsupported value: \"spec.nodeName\": supported values: \"metadata.annotations\", \"metadata.labels\", \"metadata.name\", \"metadata.namespace\", \"metadata.uid\""),
                format!("{at}.downwardAPI.path: Invalid value: \"../x\": must not contain '..'"),
                format!("{at}.downwardAPI.resourceFieldRef.containerName: Required value"),
                format!("{at}.downwardAPI.resourceFieldRef.resource: Unsupported value: \"limits.gpu\": supported values: \"limits.cpu\", \"limits.ephemeral-storage\", \"limits.memory\", \"requests.cpu\", \"requests.ephemeral-storage\", \"requests.memory\""),
                format!("{at}.downwardAPI: Invalid value: \"resource\": fieldRef and resourceFieldRef can not be specified simultaneously"),
                format!("{at}.downwardAPI: Required value: one of fieldRef and resourceFieldRef is required"),
                format!("{at}.downwardAPI.mode: Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive"),
            ]
        );
        assert_eq!(
            errors(json!([{"name": "all", "projected": {"sources": [
                {"configMap": {"name": "a", "items": [{"key": "k", "path": "same"}]}},
                {"secret": {"name": "", "items": [{"key": "k", "path": "same"}]}},
                {"configMap": {"name": "b"}, "secret": {"name": "c"}}]}}])),
            [
                format!("{at}.projected.sources[1].secret.name: Required value"),
                format!("{at}.projected.sources[1]: Invalid value: \"same\": conflicting duplicate paths"),
                format!("{at}.projected.sources[2]: Forbidden: may not specify more than 1 volume type per source"),
            ]
        );
        let volumes: Vec<Volume> =
            serde_json::from_value(json!([{"name": "token", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}}]}}]))
            .unwrap();
        let container: Container = serde_json::from_value(json!({"name": "c", "volumeMounts": [
            {"name": "token", "mountPath": "/var/run/secrets/tokens"}]}))
        .unwrap();
        let mut found = Vec::new();
        validate_mounts(&volumes, &container, "c", &mut found);
        assert_eq!(
            found.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["c.volumeMounts[0].name: Forbidden: joblet projects configMap, secret and downwardAPI sources, not serviceAccountToken: it has no service accounts or certificates"]
        );
    }
}
