//! The files of a pod's `configMap`, `secret`, `downwardAPI` and `projected` volumes, as the
//! kubelet's volume plugins compute them (`MakePayload` in pkg/volume/configmap and
//! pkg/volume/secret, `CollectData` in pkg/volume/downwardapi and pkg/volume/projected): each
//! key a file (or the listed `items` at their paths), with `defaultMode` or the item's `mode`. A
//! runtime that mounts volumes writes them with the atomic layout
//! (`joblet_runtime::write_volume_files`).

use std::collections::BTreeMap;

use joblet_api::k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, KeyToPath, Pod, ProjectedVolumeSource, Volume,
};
use joblet_api::volumes::DEFAULT_MODE;

use crate::env::{field_value, resource_value};
use crate::Node;
use crate::Objects;

/// One projected file: its contents and permission bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A volume's files by their path inside it.
pub type Payload = BTreeMap<String, File>;

/// The volume's files, or why it cannot be set up in the kubelet's words
/// (`MountVolume.SetUp failed for volume "cfg" : configmap "x" not found`); `None` for a
/// volume that projects nothing (an `emptyDir`, a `hostPath`).
pub fn volume_payload(
    volume: &Volume,
    pod: &Pod,
    node: &Node,
    objects: &Objects,
) -> Option<Result<Payload, String>> {
    let failed = |error: String| {
        format!(
            "MountVolume.SetUp failed for volume {:?} : {error}",
            volume.name
        )
    };
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let payload = if let Some(source) = &volume.config_map {
        let optional = source.optional == Some(true);
        config_map_keys(objects, namespace, &source.name, optional).and_then(|keys| {
            make_payload(
                &keys,
                &source.items,
                source.default_mode,
                optional,
                missing_config_map_key,
            )
        })
    } else if let Some(source) = &volume.secret {
        let name = source.secret_name.as_deref().unwrap_or_default();
        let optional = source.optional == Some(true);
        secret_keys(objects, namespace, name, optional).and_then(|keys| {
            make_payload(
                &keys,
                &source.items,
                source.default_mode,
                optional,
                missing_secret_key,
            )
        })
    } else if let Some(source) = &volume.downward_api {
        downward_payload(
            pod,
            node,
            source.items.iter().flatten(),
            source.default_mode,
        )
    } else {
        projected_payload(volume.projected.as_ref()?, pod, node, objects)
    };
    Some(payload.map_err(failed))
}

fn config_map_keys<'a>(
    objects: &'a Objects,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<BTreeMap<&'a str, &'a [u8]>, String> {
    let mut keys = BTreeMap::new();
    match objects.config_map(namespace, name) {
        Some(config_map) => {
            for (key, value) in config_map.data.iter().flatten() {
                keys.insert(key.as_str(), value.as_bytes());
            }
            for (key, value) in config_map.binary_data.iter().flatten() {
                keys.insert(key.as_str(), value.0.as_slice());
            }
        }
        None if optional => {}
        None => return Err(format!("configmap {name:?} not found")),
    }
    Ok(keys)
}

fn secret_keys<'a>(
    objects: &'a Objects,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<BTreeMap<&'a str, &'a [u8]>, String> {
    match objects.secret(namespace, name) {
        Some(secret) => Ok((secret.data.iter().flatten())
            .map(|(key, value)| (key.as_str(), value.0.as_slice()))
            .collect()),
        None if optional => Ok(BTreeMap::new()),
        None => Err(format!("secret {name:?} not found")),
    }
}

/// The kubelet's words for a listed key a ConfigMap or Secret does not have.
fn missing_config_map_key(key: &str) -> String {
    format!("configmap references non-existent config key: {key}")
}

fn missing_secret_key(key: &str) -> String {
    format!("references non-existent secret key: {key}")
}

/// A `downwardAPI` volume's files (pkg/volume/downwardapi `CollectData`): each item's field
/// or resource, `metadata.labels` and `metadata.annotations` as `key="value"` lines.
fn downward_payload<'a>(
    pod: &Pod,
    node: &Node,
    items: impl Iterator<Item = &'a DownwardAPIVolumeFile>,
    default_mode: Option<i32>,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    for item in items {
        let data = if let Some(field) = &item.field_ref {
            let meta = &pod.metadata;
            match field.field_path.as_str() {
                "metadata.labels" => format_map(meta.labels.as_ref()),
                "metadata.annotations" => format_map(meta.annotations.as_ref()),
                path => field_value(pod, node, path)
                    .ok_or_else(|| format!("unsupported fieldPath: {path}"))?,
            }
        } else if let Some(resource) = &item.resource_field_ref {
            // Validation requires `containerName` here: the container passed is unused.
            resource_value(pod, &Container::default(), resource, node)?
        } else {
            continue;
        };
        let mode = item.mode.or(default_mode).unwrap_or(DEFAULT_MODE) as u32 & 0o777;
        let file = File {
            data: data.into_bytes(),
            mode,
        };
        payload.insert(item.path.clone(), file);
    }
    Ok(payload)
}

/// `fieldpath.FormatMap`: `key="value"` lines, sorted by key.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    let lines: Vec<String> = (map.into_iter().flatten())
        .map(|(key, value)| format!("{key}={value:?}"))
        .collect();
    lines.join("\n")
}

/// A `projected` volume's files: each source's, with the volume's `defaultMode`.
fn projected_payload(
    source: &ProjectedVolumeSource,
    pod: &Pod,
    node: &Node,
    objects: &Objects,
) -> Result<Payload, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mode = source.default_mode;
    let mut payload = Payload::new();
    for projection in source.sources.iter().flatten() {
        let files = if let Some(source) = &projection.config_map {
            let optional = source.optional == Some(true);
            let keys = config_map_keys(objects, namespace, &source.name, optional)?;
            make_payload(&keys, &source.items, mode, optional, missing_config_map_key)?
        } else if let Some(source) = &projection.secret {
            let optional = source.optional == Some(true);
            let keys = secret_keys(objects, namespace, &source.name, optional)?;
            make_payload(&keys, &source.items, mode, optional, missing_secret_key)?
        } else if let Some(source) = &projection.downward_api {
            downward_payload(pod, node, source.items.iter().flatten(), mode)?
        } else {
            // Validation refuses the sources joblet cannot project.
            continue;
        };
        payload.extend(files);
    }
    Ok(payload)
}

/// Every key as a file named after it, or only the listed items at their paths; a listed
/// key that is absent is an error unless the volume is optional.
fn make_payload(
    keys: &BTreeMap<&str, &[u8]>,
    items: &Option<Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
    missing: fn(&str) -> String,
) -> Result<Payload, String> {
    let mode = |m: Option<i32>| m.or(default_mode).unwrap_or(DEFAULT_MODE) as u32 & 0o777;
    let file = |data: &[u8], m: Option<i32>| File {
        data: data.to_vec(),
        mode: mode(m),
    };
    let Some(items) = items.as_ref().filter(|i| !i.is_empty()) else {
        return Ok(keys
            .iter()
            .map(|(key, data)| (key.to_string(), file(data, None)))
            .collect());
    };
    let mut payload = Payload::new();
    for item in items {
        match keys.get(item.key.as_str()) {
            Some(data) => {
                payload.insert(item.path.clone(), file(data, item.mode));
            }
            None if optional => {}
            None => return Err(missing(&item.key)),
        }
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use joblet_api::k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use serde_json::json;

    fn objects() -> Objects {
        let config_map: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "conf", "namespace": "ns"},
            "data": {"app.ini": "level=3"}, "binaryData": {"logo": "AAE="},
        }))
        .unwrap();
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "keys", "namespace": "ns"}, "data": {"id": "a2V5"},
        }))
        .unwrap();
        Objects::new([&config_map], [&secret])
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                "labels": {"job-name": "j", "app": "a \"b\""}},
            "spec": {"containers": [{"name": "main",
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}}]}
        }))
        .unwrap()
    }

    fn node() -> Node {
        Node {
            name: "here".into(),
            cpu_millis: 2000,
            memory_bytes: 1 << 30,
            ephemeral_storage_bytes: 1 << 40,
            ..Default::default()
        }
    }

    fn payload(volume: serde_json::Value) -> Result<Vec<(String, Vec<u8>, u32)>, String> {
        let volume: Volume = serde_json::from_value(volume).unwrap();
        let payload =
            volume_payload(&volume, &pod(), &node(), &objects()).expect("a projected volume")?;
        Ok(payload
            .into_iter()
            .map(|(path, file)| (path, file.data, file.mode))
            .collect())
    }

    #[test]
    fn every_key_is_a_file_with_the_default_mode_binary_data_included() {
        assert_eq!(
            payload(json!({"name": "v", "configMap": {"name": "conf", "defaultMode": 0o440}})),
            Ok(vec![
                ("app.ini".to_string(), b"level=3".to_vec(), 0o440),
                ("logo".to_string(), vec![0, 1], 0o440),
            ])
        );
        assert_eq!(
            payload(json!({"name": "v", "secret": {"secretName": "keys"}})),
            Ok(vec![("id".to_string(), b"key".to_vec(), 0o644)])
        );
    }

    #[test]
    fn items_pick_keys_paths_and_modes_and_a_missing_one_fails_unless_optional() {
        assert_eq!(
            payload(
                json!({"name": "v", "configMap": {"name": "conf", "defaultMode": 0o644,
                "items": [{"key": "app.ini", "path": "etc/app.ini", "mode": 0o600}]}})
            ),
            Ok(vec![(
                "etc/app.ini".to_string(),
                b"level=3".to_vec(),
                0o600
            )])
        );
        assert_eq!(
            payload(json!({"name": "cfg", "configMap": {"name": "conf",
                "items": [{"key": "nope", "path": "x"}]}})),
            Err("MountVolume.SetUp failed for volume \"cfg\" : configmap references non-existent config key: nope".to_string())
        );
        assert_eq!(
            payload(
                json!({"name": "s", "secret": {"secretName": "keys", "optional": true,
                "items": [{"key": "nope", "path": "x"}]}})
            ),
            Ok(vec![])
        );
        assert_eq!(
            payload(json!({"name": "s", "secret": {"secretName": "gone"}})),
            Err(
                "MountVolume.SetUp failed for volume \"s\" : secret \"gone\" not found".to_string()
            )
        );
        assert_eq!(
            payload(json!({"name": "s", "configMap": {"name": "gone", "optional": true}})),
            Ok(vec![])
        );
        let empty: Volume = serde_json::from_value(json!({"name": "e", "emptyDir": {}})).unwrap();
        assert!(volume_payload(&empty, &pod(), &node(), &objects()).is_none());
    }

    #[test]
    fn downward_api_files_hold_the_pods_fields_and_resources() {
        let text = |files: Vec<(String, Vec<u8>, u32)>| -> Vec<(String, String, u32)> {
            (files.into_iter())
                .map(|(path, data, mode)| (path, String::from_utf8(data).unwrap(), mode))
                .collect()
        };
        let files = payload(
            json!({"name": "info", "downwardAPI": {"defaultMode": 0o444, "items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}, "mode": 0o400},
            {"path": "job", "fieldRef": {"fieldPath": "metadata.labels['job-name']"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "main", "resource": "limits.memory", "divisor": "1Mi"}},
            {"path": "cpu", "resourceFieldRef": {"containerName": "main", "resource": "limits.cpu"}}]}}),
        );
        assert_eq!(
            text(files.unwrap()),
            [
                ("cpu".into(), "2".into(), 0o444),
                ("job".into(), "j".into(), 0o444),
                (
                    "labels".into(),
                    "app=\"a \\\"b\\\"\"\njob-name=\"j\"".into(),
                    0o400
                ),
                ("mem".into(), "64".into(), 0o444),
                ("name".into(), "p".into(), 0o444),
            ]
        );
    }

    #[test]
    fn a_projected_volume_joins_its_sources_with_its_default_mode() {
        let files = payload(
            json!({"name": "all", "projected": {"defaultMode": 0o440, "sources": [
            {"configMap": {"name": "conf", "items": [{"key": "app.ini", "path": "conf/app.ini"}]}},
            {"secret": {"name": "keys"}},
            {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}),
        );
        assert_eq!(
            files.unwrap(),
            [
                ("conf/app.ini".to_string(), b"level=3".to_vec(), 0o440),
                ("id".to_string(), b"key".to_vec(), 0o440),
                ("ns".to_string(), b"ns".to_vec(), 0o440),
            ]
        );
        let missing = payload(
            json!({"name": "all", "projected": {"sources": [{"secret": {"name": "gone"}}]}}),
        );
        assert_eq!(
            missing.unwrap_err(),
            "MountVolume.SetUp failed for volume \"all\" : secret \"gone\" not found"
        );
    }
}
