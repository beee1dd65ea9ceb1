//! `metadata.managedFields`: which manager owns which fields of a Job, as the API server's
//! field manager (structured-merge-diff) keeps it. Server-side apply uses it to remove the
//! fields a manager stopped applying and to refuse changing fields another manager owns.
//!
//! A field is named by its path of steps as in `fieldsV1`: `f:name` for a field, `k:{...}`
//! for an item of a list merged by key, `v:...` for an item of a set. A path names a field
//! owned as a whole (a leaf, or an atomic list), or the node of a map or list item itself
//! (`.` in `fieldsV1`).

use std::collections::{BTreeMap, BTreeSet};

use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    FieldsV1, ManagedFieldsEntry, Time,
};
use joblet_api::k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value};

use crate::patch::{merge_key, merges_primitives};

type Path = Vec<String>;

/// The owned paths of an object, each with its value (`None`: a map or list item's node).
type Fields = BTreeMap<Path, Option<Value>>;

/// Object fields that are maps (each key owned apart, and the map itself), not structs.
const MAPS: &[&str] = &[
    "labels",
    "annotations",
    "matchLabels",
    "nodeSelector",
    "limits",
    "requests",
    "overhead",
    // ConfigMaps and Secrets.
    "data",
    "binaryData",
    "stringData",
];

/// What the field manager never tracks: identity and bookkeeping set by the server, and the
/// status, which the main resource's writes do not touch.
const UNTRACKED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// How a manager wrote: server-side apply, or any other write (create, update, patch).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One manager's fields.
struct Owner {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<Time>,
    fields: BTreeSet<Path>,
}

impl Owner {
    fn is(&self, manager: &str, operation: Operation) -> bool {
        self.manager == manager && self.operation == operation.as_str()
    }
}

/// An apply that would change fields other managers own.
#[derive(Debug, PartialEq)]
pub struct Conflicts(pub Vec<(String, String)>);

impl Conflicts {
    /// The message and per-field causes of upstream's `409 Conflict`.
    pub fn message(&self) -> String {
        if let [(manager, path)] = self.0.as_slice() {
            return format!("Apply failed with 1 conflict: conflict with {manager}: {path}");
        }
        let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (manager, path) in &self.0 {
            by_manager.entry(manager).or_default().push(path);
        }
        let mut lines = Vec::new();
        for (manager, paths) in by_manager {
            lines.push(format!("conflicts with {manager}:"));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }
}

/// The managed fields after a create, update or patch by `manager` that turned `old` (Null
/// for a create) into `new`: the manager owns what it changed, others lose it.
pub fn after_update(
    old: &Value,
    new: &Value,
    entries: &[ManagedFieldsEntry],
    manager: &str,
    now: Timestamp,
) -> Vec<ManagedFieldsEntry> {
    let mut owners = owners(entries);
    let (changed, removed) = changes(old, new);
    for owner in &mut owners {
        owner
            .fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    let owner = owner_entry(&mut owners, manager, Operation::Update, now);
    owner.fields.extend(changed);
    encode(owners)
}

/// Server-side apply of `config` by `manager` onto `live`: the merged object (`merged`, the
/// live object with the configuration merged in) without the fields `manager` applied last
/// time and no longer applies unless another manager owns them, and the managed fields after
/// it. Changing a field another manager owns is a conflict unless `force` takes it.
pub fn apply(
    live: &Value,
    config: &Value,
    mut merged: Value,
    entries: &[ManagedFieldsEntry],
    manager: &str,
    force: bool,
    now: Timestamp,
) -> Result<(Value, Vec<ManagedFieldsEntry>), Conflicts> {
    let mut owners = owners(entries);
    let applied: BTreeSet<Path> = fields(config).into_keys().collect();
    let last: BTreeSet<Path> = owners
        .iter()
        .find(|o| o.is(manager, Operation::Apply))
        .map(|o| o.fields.clone())
        .unwrap_or_default();
    let kept: BTreeSet<&Path> = owners
        .iter()
        .filter(|o| !o.is(manager, Operation::Apply))
        .flat_map(|o| o.fields.iter())
        .chain(&applied)
        .collect();
    for path in last.iter().filter(|p| !kept.contains(p)) {
        // A node goes only if nobody keeps anything beneath it.
        if !kept.iter().any(|k| k.starts_with(path)) {
            remove(&mut merged, path);
        }
    }
    let live_fields = fields(live);
    let (changed, removed) = changes(live, &merged);
    let upgraded = upgraded_from_client_side_apply(live, &live_fields, manager);
    let mut conflicts = Vec::new();
    for owner in &mut owners {
        if owner.is(manager, Operation::Apply) {
            continue;
        }
        let taken = owner.fields.intersection(&changed);
        if !force {
            conflicts.extend(
                taken
                    .filter(|p| !upgraded.contains(*p))
                    .map(|p| (describe(owner), display(p))),
            );
        }
        owner
            .fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    if !conflicts.is_empty() {
        return Err(Conflicts(conflicts));
    }
    let owner = owner_entry(&mut owners, manager, Operation::Apply, now);
    owner.fields = applied;
    Ok((merged, encode(owners)))
}

/// The fields `kubectl apply --server-side` may take without a conflict from an object
/// managed by client-side apply, as upstream's field manager lets it: those of the
/// `last-applied-configuration` annotation that still hold the value applied then.
fn upgraded_from_client_side_apply(
    live: &Value,
    live_fields: &Fields,
    manager: &str,
) -> BTreeSet<Path> {
    if manager != "kubectl" {
        return BTreeSet::new();
    }
    let Some(last_applied) = live["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
    else {
        return BTreeSet::new();
    };
    fields(&last_applied)
        .into_iter()
        .filter(|(path, value)| live_fields.get(path) == Some(value))
        .map(|(path, _)| path)
        .collect()
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manager of a write that names none: the client's name from its User-Agent, as the
/// API server takes it (`kubectl/v1.34.0 (linux/amd64) ...` is `kubectl`).
pub fn manager_from_user_agent(user_agent: &str) -> String {
    user_agent.split('/').next().unwrap_or("").to_string()
}

fn describe(owner: &Owner) -> String {
    let mut text = format!("{:?}", owner.manager);
    if owner.operation == Operation::Update.as_str() {
        text.push_str(&format!(" using {}", owner.api_version));
        if let Some(time) = &owner.time {
            text.push_str(&format!(" at {}", time.0.strftime("%Y-%m-%dT%H:%M:%SZ")));
        }
    }
    text
}

/// A path as the API server prints it: `.spec.template.spec.containers[name="main"].image`.
fn display(path: &Path) -> String {
    let mut text = String::new();
    for step in path {
        if let Some(field) = step.strip_prefix("f:") {
            text.push('.');
            text.push_str(field);
        } else if let Some(key) = step.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            text.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = step.strip_prefix("v:") {
            text.push_str(&format!("[={value}]"));
        }
    }
    text
}

fn owner_entry<'a>(
    owners: &'a mut Vec<Owner>,
    manager: &str,
    operation: Operation,
    now: Timestamp,
) -> &'a mut Owner {
    let index = match owners.iter().position(|o| o.is(manager, operation)) {
        Some(index) => index,
        None => {
            owners.push(Owner {
                manager: manager.to_string(),
                operation: operation.as_str().to_string(),
                api_version: "batch/v1".to_string(),
                time: None,
                fields: BTreeSet::new(),
            });
            owners.len() - 1
        }
    };
    let owner = &mut owners[index];
    owner.time = Some(Time(now));
    owner
}

fn owners(entries: &[ManagedFieldsEntry]) -> Vec<Owner> {
    entries
        .iter()
        .map(|entry| {
            let mut fields = BTreeSet::new();
            if let Some(FieldsV1(tree)) = &entry.fields_v1 {
                decode_tree(tree, &mut Vec::new(), &mut fields);
            }
            Owner {
                manager: entry.manager.clone().unwrap_or_default(),
                operation: entry.operation.clone().unwrap_or_default(),
                api_version: entry
                    .api_version
                    .clone()
                    .unwrap_or_else(|| "batch/v1".into()),
                time: entry.time.clone(),
                fields,
            }
        })
        .collect()
}

/// The entries in upstream's order (Apply before Update, then oldest first), without the
/// managers left with nothing.
fn encode(owners: Vec<Owner>) -> Vec<ManagedFieldsEntry> {
    let mut owners: Vec<Owner> = owners
        .into_iter()
        .filter(|o| !o.fields.is_empty())
        .collect();
    sort(&mut owners);
    cap_update_managers(&mut owners);
    owners
        .into_iter()
        .map(|owner| ManagedFieldsEntry {
            api_version: Some(owner.api_version),
            fields_type: Some("FieldsV1".to_string()),
            fields_v1: Some(FieldsV1(encode_tree(&owner.fields))),
            manager: Some(owner.manager),
            operation: Some(owner.operation),
            subresource: None,
            time: owner.time,
        })
        .collect()
}

fn sort(owners: &mut [Owner]) {
    owners.sort_by(|a, b| {
        (&a.operation, a.time.as_ref().map(|t| t.0), &a.manager).cmp(&(
            &b.operation,
            b.time.as_ref().map(|t| t.0),
            &b.manager,
        ))
    });
}

/// Upstream keeps at most ten Update managers: the oldest are merged into one named
/// `ancient-changes`, which takes the time of the newest it holds. `owners` are sorted and
/// none is empty.
fn cap_update_managers(owners: &mut Vec<Owner>) {
    const MAX_UPDATE_MANAGERS: usize = 10;
    const ANCIENT: &str = "ancient-changes";
    let update = Operation::Update.as_str();
    let updates: Vec<usize> = (0..owners.len())
        .filter(|i| owners[*i].operation == update)
        .collect();
    let mut left = updates.len();
    let Some(&oldest) = updates.first() else {
        return;
    };
    let mut bucket = owners.iter().position(|o| o.is(ANCIENT, Operation::Update));
    for &i in &updates[1..] {
        if left <= MAX_UPDATE_MANAGERS {
            break;
        }
        let into = *bucket.get_or_insert_with(|| {
            owners[oldest].manager = ANCIENT.to_string();
            oldest
        });
        if i == into {
            continue;
        }
        let fields = std::mem::take(&mut owners[i].fields);
        owners[into].fields.extend(fields);
        owners[into].time = owners[i].time.clone();
        left -= 1;
    }
    // The merged ones are left empty (no owner was before: `encode` drops those).
    owners.retain(|o| !o.fields.is_empty());
    sort(owners);
}

fn encode_tree(paths: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in paths {
        let mut node = &mut root;
        for step in path {
            node = node
                .entry(step.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("fieldsV1 nodes are objects");
        }
    }
    // A path that is both owned and has owned paths beneath it is marked with `.`.
    for path in paths {
        if let Some(Value::Object(node)) = lookup_mut(&mut root, path) {
            if !node.is_empty() {
                node.insert(".".to_string(), Value::Object(Map::new()));
            }
        }
    }
    Value::Object(root)
}

fn lookup_mut<'a>(root: &'a mut Map<String, Value>, path: &Path) -> Option<&'a mut Value> {
    let (first, rest) = path.split_first()?;
    let mut node = root.get_mut(first)?;
    for step in rest {
        node = node.get_mut(step)?;
    }
    Some(node)
}

fn decode_tree(tree: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
    let Value::Object(children) = tree else {
        return;
    };
    if children.is_empty() && !path.is_empty() {
        out.insert(path.clone());
    }
    for (step, child) in children {
        if step == "." {
            out.insert(path.clone());
            continue;
        }
        path.push(step.clone());
        decode_tree(child, path, out);
        path.pop();
    }
}

/// The owned paths of a Job object with their values.
fn fields(object: &Value) -> Fields {
    let mut out = Fields::new();
    let Value::Object(top) = object else {
        return out;
    };
    for (key, value) in top {
        let mut path = vec![format!("f:{key}")];
        match key.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                if let Value::Object(meta) = value {
                    for (field, value) in meta {
                        if !UNTRACKED_METADATA.contains(&field.as_str()) {
                            path.push(format!("f:{field}"));
                            walk(value, field, &mut path, &mut out);
                            path.pop();
                        }
                    }
                }
            }
            _ => walk(value, key, &mut path, &mut out),
        }
    }
    out
}

fn walk(value: &Value, field: &str, path: &mut Path, out: &mut Fields) {
    match value {
        Value::Object(map) if MAPS.contains(&field) => {
            out.insert(path.clone(), None);
            for (key, value) in map {
                path.push(format!("f:{key}"));
                out.insert(path.clone(), Some(value.clone()));
                path.pop();
            }
        }
        Value::Object(map) if !map.is_empty() => {
            for (key, value) in map {
                path.push(format!("f:{key}"));
                walk(value, key, path, out);
                path.pop();
            }
        }
        Value::Array(items) if merge_key(field).is_some() && items.iter().all(Value::is_object) => {
            let key = merge_key(field).expect("checked above");
            for item in items {
                let mut id = Map::new();
                id.insert(
                    key.to_string(),
                    item.get(key).cloned().unwrap_or(Value::Null),
                );
                path.push(format!("k:{}", Value::Object(id)));
                out.insert(path.clone(), None);
                walk_item(item, path, out);
                path.pop();
            }
        }
        Value::Array(items) if merges_primitives(field) => {
            for item in items {
                path.push(format!("v:{item}"));
                out.insert(path.clone(), Some(item.clone()));
                path.pop();
            }
        }
        other => {
            out.insert(path.clone(), Some(other.clone()));
        }
    }
}

fn walk_item(item: &Value, path: &mut Path, out: &mut Fields) {
    if let Value::Object(map) = item {
        for (key, value) in map {
            path.push(format!("f:{key}"));
            walk(value, key, path, out);
            path.pop();
        }
    }
}

/// What `compare(&fields(old), &fields(new))` gives, without taking apart what the two share:
/// a label patch of a Job changes a few paths of thousands.
fn changes(old: &Value, new: &Value) -> (BTreeSet<Path>, BTreeSet<Path>) {
    let mut out = (BTreeSet::new(), BTreeSet::new());
    let mut path = Vec::new();
    for key in union_keys(old, new) {
        path.push(format!("f:{key}"));
        match key {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                let (old, new) = (&old[key], &new[key]);
                for field in union_keys(old, new) {
                    if !UNTRACKED_METADATA.contains(&field) {
                        path.push(format!("f:{field}"));
                        changes_under(old.get(field), new.get(field), field, &mut path, &mut out);
                        path.pop();
                    }
                }
            }
            _ => changes_under(old.get(key), new.get(key), key, &mut path, &mut out),
        }
        path.pop();
    }
    out
}

fn changes_under(
    old: Option<&Value>,
    new: Option<&Value>,
    field: &str,
    path: &mut Path,
    out: &mut (BTreeSet<Path>, BTreeSet<Path>),
) {
    match (old, new) {
        (Some(old), Some(new)) if old == new => {}
        // Where `walk` goes into each key alone, so can this.
        (Some(old @ Value::Object(o)), Some(new @ Value::Object(n)))
            if !MAPS.contains(&field) && !o.is_empty() && !n.is_empty() =>
        {
            for key in union_keys(old, new) {
                path.push(format!("f:{key}"));
                changes_under(o.get(key), n.get(key), key, path, out);
                path.pop();
            }
        }
        _ => {
            let (mut before, mut after) = (Fields::new(), Fields::new());
            if let Some(old) = old {
                walk(old, field, path, &mut before);
            }
            if let Some(new) = new {
                walk(new, field, path, &mut after);
            }
            let (changed, removed) = compare(&before, &after);
            out.0.extend(changed);
            out.1.extend(removed);
        }
    }
}

/// The keys of two objects (either may be something else, which has none), in order.
fn union_keys<'a>(a: &'a Value, b: &'a Value) -> impl Iterator<Item = &'a str> {
    let keys = |v: &'a Value| v.as_object().into_iter().flat_map(|m| m.keys());
    let all: BTreeSet<&str> = keys(a).chain(keys(b)).map(String::as_str).collect();
    all.into_iter()
}

/// The paths added or changed from `old` to `new`, and those removed.
fn compare(old: &Fields, new: &Fields) -> (BTreeSet<Path>, BTreeSet<Path>) {
    let changed = new
        .iter()
        .filter(|(path, value)| old.get(*path) != Some(*value))
        .map(|(path, _)| path.clone())
        .collect();
    let removed = old
        .keys()
        .filter(|path| !new.contains_key(*path))
        .cloned()
        .collect();
    (changed, removed)
}

/// Removes the node at `path` from `object`, if it is there.
fn remove(object: &mut Value, path: &Path) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = object;
    for step in parents {
        let next = match step_into(node, step) {
            Some(next) => next,
            None => return,
        };
        node = next;
    }
    if let (Some(field), Value::Object(map)) = (last.strip_prefix("f:"), &mut *node) {
        map.remove(field);
    } else if let Value::Array(items) = node {
        items.retain(|item| !matches_step(item, last));
    }
}

fn step_into<'a>(node: &'a mut Value, step: &str) -> Option<&'a mut Value> {
    match step.strip_prefix("f:") {
        Some(field) => node.get_mut(field),
        None => node
            .as_array_mut()?
            .iter_mut()
            .find(|item| matches_step(item, step)),
    }
}

fn matches_step(item: &Value, step: &str) -> bool {
    if let Some(key) = step.strip_prefix("k:") {
        let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key) else {
            return false;
        };
        return key.iter().all(|(k, v)| item.get(k) == Some(v));
    }
    if let Some(value) = step.strip_prefix("v:") {
        return serde_json::from_str::<Value>(value).is_ok_and(|v| v == *item);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn changes_skips_what_both_share_and_finds_what_a_full_comparison_finds() {
        let container = |name: &str, image: &str, env: Value| json!({"name": name, "image": image, "env": env, "resources": {}});
        let objects = [
            Value::Null,
            json!({}),
            job(1, json!({"a": "1"})),
            job(2, json!({"a": "1"})),
            job(1, json!({"a": "2", "b": "1"})),
            job(1, json!({})),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "resourceVersion": "7",
                "finalizers": ["x", "y"], "annotations": {"n": "1"}},
                "spec": {"template": {"metadata": {}, "spec": {"containers": [
                    container("a", "busybox", json!([{"name": "E", "value": "1"}])),
                    container("b", "busybox", json!([]))]}}},
                "status": {"active": 3}}),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "resourceVersion": "8",
                "finalizers": ["y"], "annotations": {"n": "2"}},
                "spec": {"template": {"metadata": {"labels": {"l": "v"}}, "spec": {"containers": [
                    container("a", "busybox:2", json!([{"name": "E", "value": "2"}, {"name": "F"}])),
                    container("c", "busybox", json!(null))]}}},
                "status": {"active": 4}}),
            json!({"metadata": "not an object", "spec": [1, 2], "kind": 3}),
            json!({"spec": {"template": "text", "completions": {"deep": {"er": [1]}}}}),
        ];
        for old in &objects {
            for new in &objects {
                assert_eq!(
                    changes(old, new),
                    compare(&fields(old), &fields(new)),
                    "{old} -> {new}"
                );
            }
        }
    }

    fn job(parallelism: i64, labels: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "uid": "u", "labels": labels},
            "spec": {"parallelism": parallelism, "template": {"spec": {"containers": [
                {"name": "main", "image": "busybox", "command": ["true"]}]}}},
            "status": {"active": 1}})
    }

    fn tree(entries: &[ManagedFieldsEntry], manager: &str) -> Value {
        entries
            .iter()
            .find(|e| e.manager.as_deref() == Some(manager))
            .and_then(|e| e.fields_v1.clone())
            .map(|f| f.0)
            .unwrap_or(Value::Null)
    }

    #[test]
    fn a_create_owns_every_field_set_but_identity_and_status() {
        let created = job(2, json!({"app": "x"}));
        let entries = after_update(&Value::Null, &created, &[], "kubectl-create", at(0));
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].operation.as_deref(), Some("Update"));
        assert_eq!(
            tree(&entries, "kubectl-create"),
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {"f:parallelism": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"main\"}": {".": {}, "f:command": {}, "f:image": {}, "f:name": {}}
                }}}}
            })
        );
        // fieldsV1 reads back as the same fields.
        let owners = owners(&entries);
        assert_eq!(
            encode_tree(&owners[0].fields),
            tree(&entries, "kubectl-create")
        );
    }

    #[test]
    fn an_update_takes_the_fields_it_changes_from_their_owner() {
        let created = job(2, json!({"app": "x"}));
        let entries = after_update(&Value::Null, &created, &[], "kubectl-create", at(0));
        let scaled = job(5, json!({"app": "x"}));
        let entries = after_update(&created, &scaled, &entries, "kubectl-patch", at(1));
        assert_eq!(
            tree(&entries, "kubectl-patch"),
            json!({"f:spec": {"f:parallelism": {}}})
        );
        assert!(tree(&entries, "kubectl-create")["f:spec"]
            .get("f:parallelism")
            .is_none());
    }

    #[test]
    fn apply_removes_what_it_no_longer_applies_and_keeps_what_others_own() {
        let config = |labels: Value| {
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "labels": labels},
                "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}}})
        };
        let first = config(json!({"app": "x", "tier": "batch"}));
        let (live, entries) =
            apply(&Value::Null, &first, first.clone(), &[], "me", false, at(0)).unwrap();
        // Another manager adds a label.
        let mut other = live.clone();
        other["metadata"]["labels"]["team"] = json!("data");
        let entries = after_update(&live, &other, &entries, "kubectl-label", at(1));
        // The next apply drops `tier`: it goes; `team` stays, owned by kubectl-label.
        let second = config(json!({"app": "x"}));
        let mut merged = other.clone();
        merged["metadata"]["labels"] = json!({"app": "x", "tier": "batch", "team": "data"});
        let (result, entries) =
            apply(&other, &second, merged, &entries, "me", false, at(2)).unwrap();
        assert_eq!(
            result["metadata"]["labels"],
            json!({"app": "x", "team": "data"})
        );
        assert_eq!(
            tree(&entries, "me")["f:metadata"],
            json!({"f:labels": {".": {}, "f:app": {}}})
        );
        assert_eq!(entries[0].operation.as_deref(), Some("Apply"));
    }

    #[test]
    fn apply_changing_a_field_another_manager_owns_conflicts_unless_forced() {
        let created = job(2, json!({}));
        let entries = after_update(&Value::Null, &created, &[], "kubectl-create", at(0));
        let config = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"parallelism": 3}});
        let merged = job(3, json!({}));
        let conflicts = apply(
            &created,
            &config,
            merged.clone(),
            &entries,
            "me",
            false,
            at(1),
        )
        .unwrap_err();
        assert_eq!(
            conflicts.message(),
            "Apply failed with 1 conflict: conflict with \"kubectl-create\" using batch/v1 at 2027-01-15T08:00:00Z: .spec.parallelism"
        );
        let (_, entries) = apply(&created, &config, merged, &entries, "me", true, at(1)).unwrap();
        assert_eq!(
            tree(&entries, "me"),
            json!({"f:spec": {"f:parallelism": {}}})
        );
        assert!(tree(&entries, "kubectl-create")["f:spec"]
            .get("f:parallelism")
            .is_none());
        // Applying a value equal to the owner's is no conflict: the field is shared.
        let same = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"parallelism": 2}});
        let entries = after_update(&Value::Null, &created, &[], "kubectl-create", at(0));
        let (_, entries) = apply(
            &created,
            &same,
            created.clone(),
            &entries,
            "me",
            false,
            at(1),
        )
        .unwrap();
        assert_eq!(
            tree(&entries, "kubectl-create")["f:spec"]["f:parallelism"],
            json!({})
        );
    }

    #[test]
    fn kubectl_takes_over_from_client_side_apply_what_the_annotation_still_holds() {
        let last_applied = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j"}, "spec": {"parallelism": 2, "suspend": true}});
        let mut live = job(2, json!({}));
        live["spec"]["suspend"] = json!(false);
        live["metadata"]["annotations"] = json!({LAST_APPLIED: last_applied.to_string()});
        let entries = after_update(&Value::Null, &live, &[], "kubectl-client-side-apply", at(0));
        let config = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"parallelism": 4, "suspend": true}});
        let mut merged = live.clone();
        merged["spec"]["parallelism"] = json!(4);
        merged["spec"]["suspend"] = json!(true);
        // parallelism still holds the applied 2: taken; suspend was changed since: a conflict.
        let conflicts = apply(
            &live,
            &config,
            merged.clone(),
            &entries,
            "kubectl",
            false,
            at(1),
        )
        .unwrap_err();
        assert_eq!(conflicts.0.len(), 1);
        assert_eq!(conflicts.0[0].1, ".spec.suspend");
        // Another manager name gets no such upgrade.
        let other = apply(&live, &config, merged, &entries, "mine", false, at(1)).unwrap_err();
        assert_eq!(other.0.len(), 2);
    }

    #[test]
    fn the_oldest_of_more_than_ten_update_managers_become_ancient_changes() {
        let mut object = job(1, json!({}));
        let mut entries = Vec::new();
        for n in 0..12 {
            let mut next = object.clone();
            next["metadata"]["labels"][format!("l{n}")] = json!("x");
            entries = after_update(&object, &next, &entries, &format!("m{n}"), at(n));
            object = next;
        }
        let managers: Vec<&str> = entries
            .iter()
            .filter_map(|e| e.manager.as_deref())
            .collect();
        assert_eq!(
            managers,
            [
                "ancient-changes",
                "m3",
                "m4",
                "m5",
                "m6",
                "m7",
                "m8",
                "m9",
                "m10",
                "m11"
            ]
        );
        let ancient = &entries[0];
        assert_eq!(ancient.time, Some(Time(at(2))));
        let labels = &tree(&entries, "ancient-changes")["f:metadata"]["f:labels"];
        // The labels map itself was there before: none of them owns it.
        assert_eq!(labels, &json!({"f:l0": {}, "f:l1": {}, "f:l2": {}}));
    }

    #[test]
    fn several_conflicts_are_listed_by_manager() {
        let conflicts = Conflicts(vec![
            ("\"b\"".into(), ".spec.x".into()),
            ("\"a\"".into(), ".spec.y".into()),
            ("\"b\"".into(), ".spec.z".into()),
        ]);
        assert_eq!(
            conflicts.message(),
            "Apply failed with 3 conflicts: conflicts with \"a\":\n- .spec.y\nconflicts with \"b\":\n- .spec.x\n- .spec.z"
        );
    }

    #[test]
    fn paths_print_as_the_api_server_prints_them() {
        let path: Path = vec![
            "f:spec".into(),
            "f:template".into(),
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"main\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(
            display(&path),
            ".spec.template.spec.containers[name=\"main\"].image"
        );
        assert_eq!(
            manager_from_user_agent("kubectl/v1.34.1 (linux/amd64) kubernetes/abc"),
            "kubectl"
        );
    }
}
