//! The files of a pod's `configMap` and `secret` volumes, as the kubelet's volume plugins
//! compute them (`MakePayload` in pkg/volume/configmap and pkg/volume/secret): each key a
//! file (or the listed `items` at their paths), with `defaultMode` or the item's `mode`. A
//! runtime that mounts volumes writes them with the atomic layout
//! (`joblet_runtime::write_volume_files`).

use std::collections::BTreeMap;

use joblet_api::k8s_openapi::api::core::v1::{KeyToPath, Volume};
use joblet_api::volumes::DEFAULT_MODE;

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
/// volume that projects no object.
pub fn volume_payload(
    volume: &Volume,
    namespace: &str,
    objects: &Objects,
) -> Option<Result<Payload, String>> {
    let failed = |error: String| {
        format!(
            "MountVolume.SetUp failed for volume {:?} : {error}",
            volume.name
        )
    };
    if let Some(source) = &volume.config_map {
        let optional = source.optional == Some(true);
        let mut keys: BTreeMap<&str, &[u8]> = BTreeMap::new();
        match objects.config_map(namespace, &source.name) {
            Some(config_map) => {
                for (key, value) in config_map.data.iter().flatten() {
                    keys.insert(key, value.as_bytes());
                }
                for (key, value) in config_map.binary_data.iter().flatten() {
                    keys.insert(key, &value.0);
                }
            }
            None if optional => {}
            None => {
                return Some(Err(failed(format!(
                    "configmap {:?} not found",
                    source.name
                ))))
            }
        }
        let missing = |key: &str| format!("configmap references non-existent config key: {key}");
        let payload = make_payload(&keys, &source.items, source.default_mode, optional, missing);
        return Some(payload.map_err(failed));
    }
    let source = volume.secret.as_ref()?;
    let name = source.secret_name.clone().unwrap_or_default();
    let optional = source.optional == Some(true);
    let mut keys: BTreeMap<&str, &[u8]> = BTreeMap::new();
    match objects.secret(namespace, &name) {
        Some(secret) => {
            for (key, value) in secret.data.iter().flatten() {
                keys.insert(key, &value.0);
            }
        }
        None if optional => {}
        None => return Some(Err(failed(format!("secret {name:?} not found")))),
    }
    let missing = |key: &str| format!("references non-existent secret key: {key}");
    let payload = make_payload(&keys, &source.items, source.default_mode, optional, missing);
    Some(payload.map_err(failed))
}

/// Every key as a file named after it, or only the listed items at their paths; a listed
/// key that is absent is an error unless the volume is optional.
fn make_payload(
    keys: &BTreeMap<&str, &[u8]>,
    items: &Option<Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
    missing: impl Fn(&str) -> String,
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

    fn payload(volume: serde_json::Value) -> Result<Vec<(String, Vec<u8>, u32)>, String> {
        let volume: Volume = serde_json::from_value(volume).unwrap();
        let payload = volume_payload(&volume, "ns", &objects()).expect("a projected volume")?;
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
        assert!(volume_payload(&empty, "ns", &objects()).is_none());
    }
}
