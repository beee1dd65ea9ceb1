//! The four PATCH content types kubectl and clients send: JSON merge patch (RFC 7386) and
//! JSON patch (RFC 6902) from `json-patch`; strategic merge patch, which merges lists of
//! the Kubernetes types by key (`containers` by `name`) and honours its `$` directives;
//! and server-side apply, taken here as a strategic merge of the applied configuration.

use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// What `copy` operations of one JSON patch may add in all (upstream's
/// `JSONPatchMaxCopyBytes`, 3 MiB): without it, a patch that copies the object into itself
/// forty times would need terabytes (CVE-2019-1002100).
pub const MAX_COPY_BYTES: usize = 3 * 1024 * 1024;

/// Upstream's cap on the operations of one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// A PATCH body, read once (a patch is re-applied when the object changed meanwhile).
pub enum Patch {
    Json(json_patch::Patch),
    Merge(Value),
    Strategic(Value),
    /// Server-side apply: the applied configuration, YAML or JSON.
    Apply(Value),
}

impl Patch {
    pub fn parse(kind: PatchType, body: &[u8]) -> Result<Patch, String> {
        let json = || serde_json::from_slice::<Value>(body).map_err(|e| e.to_string());
        Ok(match kind {
            PatchType::Json => {
                Patch::Json(serde_json::from_slice(body).map_err(|e| e.to_string())?)
            }
            PatchType::Merge => Patch::Merge(json()?),
            PatchType::Strategic => Patch::Strategic(json()?),
            PatchType::Apply => {
                let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
                Patch::Apply(joblet_api::yaml::document(text)?)
            }
        })
    }

    /// Applies the patch to `target`.
    pub fn apply_to(&self, target: &mut Value) -> Result<(), String> {
        match self {
            Patch::Json(operations) => {
                let mut copied = 0;
                for operation in &operations.0 {
                    if let json_patch::PatchOperation::Copy(copy) = operation {
                        let from = target.pointer(copy.from.as_str());
                        copied += from.map_or(0, |value| {
                            serde_json::to_vec(value).map_or(0, |bytes| bytes.len())
                        });
                        if copied > MAX_COPY_BYTES {
                            return Err(format!(
                                "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_COPY_BYTES}"
                            ));
                        }
                    }
                    json_patch::patch(target, std::slice::from_ref(operation))
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            Patch::Merge(patch) => {
                json_patch::merge(target, patch);
                Ok(())
            }
            Patch::Strategic(patch) | Patch::Apply(patch) => {
                strategic_merge(target, patch);
                Ok(())
            }
        }
    }
}

/// The merge key of a list field of the Kubernetes types, by the field's name.
pub(crate) fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ports" => "containerPort",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Lists of strings merged as sets rather than replaced.
pub(crate) fn merges_primitives(field: &str) -> bool {
    field == "finalizers"
}

fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = Value::Object(without_directives(patch));
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        unreachable!("made an object above")
    };
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        map.retain(|k, _| keep.contains(&k.as_str()));
    }
    let mut orders = Vec::new();
    for (key, value) in patch {
        if let Some(list) = key.strip_prefix("$setElementOrder/") {
            orders.push((list.to_string(), value.clone()));
            continue;
        }
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(remove)) = (map.get_mut(list), value) {
                items.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                map.remove(key);
            }
            Value::Object(inner)
                if inner.get("$patch").and_then(Value::as_str) == Some("delete") =>
            {
                map.remove(key);
            }
            Value::Object(_) => {
                strategic_merge(map.entry(key.clone()).or_insert(Value::Null), value);
            }
            Value::Array(items) => {
                let slot = map.entry(key.clone()).or_insert(Value::Array(Vec::new()));
                merge_list(slot, items, key);
            }
            other => {
                map.insert(key.clone(), other.clone());
            }
        }
    }
    for (list, order) in orders {
        if let (Some(Value::Array(items)), Value::Array(order)) = (map.get_mut(&list), order) {
            reorder(items, &order, merge_key(&list));
        }
    }
}

fn merge_list(slot: &mut Value, patch: &[Value], field: &str) {
    if patch
        .iter()
        .any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *slot = Value::Array(
            patch
                .iter()
                .filter(|item| item.get("$patch").is_none())
                .cloned()
                .collect(),
        );
        return;
    }
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    let Value::Array(items) = slot else {
        unreachable!("made a list above")
    };
    if merges_primitives(field) {
        for item in patch {
            if !items.contains(item) {
                items.push(item.clone());
            }
        }
        return;
    }
    let Some(key) = merge_key(field) else {
        *items = patch.to_vec();
        return;
    };
    for item in patch {
        let id = item.get(key);
        let existing = items
            .iter()
            .position(|old| id.is_some() && old.get(key) == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (existing, delete) {
            (Some(i), true) => {
                items.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut items[i], item),
            (None, false) => {
                let mut fresh = Value::Null;
                strategic_merge(&mut fresh, item);
                items.push(fresh);
            }
        }
    }
}

/// `$setElementOrder`: items named in `order` come first, in that order.
fn reorder(items: &mut Vec<Value>, order: &[Value], key: Option<&str>) {
    let id = |item: &Value| match key {
        Some(key) => item.get(key).cloned(),
        None => Some(item.clone()),
    };
    let mut ordered = Vec::with_capacity(items.len());
    for wanted in order {
        let wanted = id(wanted);
        if let Some(i) = items.iter().position(|item| id(item) == wanted) {
            ordered.push(items.remove(i));
        }
    }
    ordered.append(items);
    *items = ordered;
}

fn without_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(kind: PatchType, target: &mut Value, body: &[u8]) -> Result<(), String> {
        Patch::parse(kind, body)?.apply_to(target)
    }

    fn smp(target: Value, patch: Value) -> Value {
        let mut target = target;
        apply(
            PatchType::Strategic,
            &mut target,
            patch.to_string().as_bytes(),
        )
        .unwrap();
        target
    }

    #[test]
    fn containers_merge_by_name_and_keep_what_the_patch_does_not_name() {
        let job = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo hi"], "imagePullPolicy": "IfNotPresent"},
            {"name": "side", "image": "busybox"}
        ]}}}});
        // What kubectl apply sends when one container's command changes.
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "main"}],
            "containers": [{"name": "main", "command": ["sh", "-c", "echo CHANGED"]}]
        }}}});
        let merged = smp(job, patch);
        let containers = &merged["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["name"], "side");
        assert_eq!(
            containers[1]["command"],
            json!(["sh", "-c", "echo CHANGED"])
        );
        assert_eq!(containers[1]["imagePullPolicy"], "IfNotPresent");
    }

    #[test]
    fn nulls_delete_and_directives_delete_list_items() {
        let pod = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let patch = json!({
            "metadata": {"labels": {"a": null}, "$deleteFromPrimitiveList/finalizers": ["x"]},
            "spec": {"containers": [{"name": "a", "$patch": "delete"}]}
        });
        let merged = smp(pod, patch);
        assert_eq!(merged["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(merged["metadata"]["finalizers"], json!(["y"]));
        assert_eq!(merged["spec"]["containers"], json!([{"name": "b"}]));
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced() {
        let job = json!({"spec": {"template": {"spec": {"containers": [{"name": "m", "args": ["a", "b"]}]}}}});
        let patch =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "m", "args": ["c"]}]}}}});
        let merged = smp(job, patch);
        assert_eq!(
            merged["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["c"])
        );
    }

    #[test]
    fn json_and_merge_patches() {
        let mut job = json!({"spec": {"suspend": true, "parallelism": 2}});
        apply(
            PatchType::Json,
            &mut job,
            br#"[{"op":"replace","path":"/spec/suspend","value":false}]"#,
        )
        .unwrap();
        apply(
            PatchType::Merge,
            &mut job,
            br#"{"spec":{"parallelism":null}}"#,
        )
        .unwrap();
        assert_eq!(job, json!({"spec": {"suspend": false}}));
        assert!(apply(
            PatchType::Json,
            &mut job,
            br#"[{"op":"test","path":"/x","value":1}]"#
        )
        .is_err());
    }
}
