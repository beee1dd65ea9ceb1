//! The watch cache: every served object in memory, and a window of recent changes, fed by
//! the engine's writer after each commit. Reads and watches never touch the database.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use joblet_api::k8s_openapi::api::batch::v1::Job;
use joblet_api::k8s_openapi::api::core::v1::{Event, Namespace, Pod};

use joblet_store::{Record, Write};
use serde_json::Value;
use tokio::sync::watch;

use crate::resources::{Resource, RESOURCES};
use crate::table::Include;

/// One stored version of an object.
#[derive(Debug)]
pub struct Entry {
    pub resource_version: i64,
    pub namespace: String,
    pub name: String,
    /// The object as JSON, with `metadata.resourceVersion` set.
    pub body: String,
    pub labels: BTreeMap<String, String>,
    /// The fields field selectors may name (`metadata.name`, `status.phase`, ...).
    pub fields: BTreeMap<&'static str, String>,
    kind: &'static str,
    /// Read once, when a table first needs it.
    typed: OnceLock<Typed>,
    metadata: OnceLock<String>,
    /// The last table row rendered, for the second and form it was rendered for.
    row: Mutex<Option<(RowKey, Arc<str>)>>,
}

/// A rendered table row is good for one second of the clock and one form.
pub type RowKey = (i64, Include);

/// An entry read into its API type.
#[derive(Debug)]
pub enum Typed {
    Job(Box<Job>),
    Pod(Box<Pod>),
    Event(Box<Event>),
    Namespace(Box<Namespace>),
    Unreadable,
}

impl Entry {
    fn new(resource: &Resource, namespace: String, name: String, rv: i64, body: String) -> Self {
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let labels = value["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let mut fields = BTreeMap::new();
        fields.insert("metadata.name", name.clone());
        if resource.namespaced {
            fields.insert("metadata.namespace", namespace.clone());
        }
        for (field, pointer) in resource.field_paths {
            let text = match value.pointer(pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            fields.insert(*field, text);
        }
        Entry {
            resource_version: rv,
            namespace,
            name,
            body,
            labels,
            fields,
            kind: resource.kind,
            typed: OnceLock::new(),
            metadata: OnceLock::new(),
            row: Mutex::new(None),
        }
    }

    pub fn value(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn typed(&self) -> &Typed {
        self.typed.get_or_init(|| {
            let body = &self.body;
            let typed = match self.kind {
                "Job" => serde_json::from_str(body).map(|o| Typed::Job(Box::new(o))),
                "Pod" => serde_json::from_str(body).map(|o| Typed::Pod(Box::new(o))),
                "Event" => serde_json::from_str(body).map(|o| Typed::Event(Box::new(o))),
                _ => serde_json::from_str(body).map(|o| Typed::Namespace(Box::new(o))),
            };
            typed.unwrap_or(Typed::Unreadable)
        })
    }

    pub fn cached_row(&self, key: RowKey) -> Option<Arc<str>> {
        let row = self.row.lock().expect("row cache");
        row.as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, r)| r.clone())
    }

    pub fn cache_row(&self, key: RowKey, row: Arc<str>) {
        *self.row.lock().expect("row cache") = Some((key, row));
    }

    /// `metadata` as JSON text (for `PartialObjectMetadata`).
    pub fn metadata(&self) -> &str {
        self.metadata.get_or_init(|| {
            let mut value = self.value();
            value
                .get_mut("metadata")
                .map(Value::take)
                .unwrap_or(Value::Null)
                .to_string()
        })
    }
}

/// One committed change of one object: the version before and after (`None` once deleted).
#[derive(Debug)]
pub struct Change {
    pub resource_version: i64,
    pub kind: &'static str,
    pub before: Option<Arc<Entry>>,
    pub after: Option<Arc<Entry>>,
    /// For a deletion: the last version, stamped with the deletion's resourceVersion.
    pub deleted: Option<Arc<Entry>>,
}

type Key = (String, String);

struct Inner {
    resource_version: i64,
    objects: HashMap<&'static str, BTreeMap<Key, Arc<Entry>>>,
    history: VecDeque<Arc<Change>>,
    /// Changes after this resourceVersion are all in `history`.
    horizon: i64,
}

/// How many recent changes a watch may start from; older starting points get `410 Gone`.
const HISTORY: usize = 100_000;

pub struct Cache {
    inner: RwLock<Inner>,
    latest: watch::Sender<i64>,
    history_limit: usize,
}

/// A watch asked to start before the oldest change still remembered.
#[derive(Debug)]
pub struct TooOld(pub i64);

impl Cache {
    /// Holds `records`, current at `resource_version`.
    pub fn new(records: Vec<Record>, resource_version: i64) -> Cache {
        let mut objects: HashMap<&'static str, BTreeMap<Key, Arc<Entry>>> = HashMap::new();
        for record in records {
            let Some(resource) = Resource::by_kind(&record.kind) else {
                continue;
            };
            let entry = Entry::new(
                resource,
                record.namespace.clone(),
                record.name.clone(),
                record.resource_version,
                record.body,
            );
            objects
                .entry(resource.kind)
                .or_default()
                .insert((record.namespace, record.name), Arc::new(entry));
        }
        for resource in RESOURCES {
            objects.entry(resource.kind).or_default();
        }
        Cache {
            inner: RwLock::new(Inner {
                resource_version,
                objects,
                history: VecDeque::new(),
                horizon: resource_version,
            }),
            latest: watch::channel(resource_version).0,
            history_limit: HISTORY,
        }
    }

    /// Remembers only the last `limit` changes.
    pub fn with_history_limit(mut self, limit: usize) -> Cache {
        self.history_limit = limit;
        self
    }

    /// Applies committed writes, in resourceVersion order.
    pub fn apply(&self, writes: Vec<Write>) {
        let mut inner = self.inner.write().expect("cache");
        for write in writes {
            let rv = write.resource_version();
            let (kind, key, after) = match write {
                Write::Put(record) => {
                    let Some(resource) = Resource::by_kind(&record.kind) else {
                        continue;
                    };
                    let entry = Entry::new(
                        resource,
                        record.namespace.clone(),
                        record.name.clone(),
                        rv,
                        record.body,
                    );
                    (
                        resource.kind,
                        (record.namespace, record.name),
                        Some(Arc::new(entry)),
                    )
                }
                Write::Delete {
                    kind,
                    namespace,
                    name,
                    ..
                } => {
                    let Some(resource) = Resource::by_kind(&kind) else {
                        continue;
                    };
                    (resource.kind, (namespace, name), None)
                }
            };
            let objects = inner.objects.entry(kind).or_default();
            let before = match &after {
                Some(entry) => objects.insert(key, entry.clone()),
                None => objects.remove(&key),
            };
            if before.is_none() && after.is_none() {
                continue;
            }
            let deleted = match (&before, &after) {
                (Some(last), None) => Some(Arc::new(restamp(kind, last, rv))),
                _ => None,
            };
            inner.history.push_back(Arc::new(Change {
                resource_version: rv,
                kind,
                before,
                after,
                deleted,
            }));
            inner.resource_version = inner.resource_version.max(rv);
        }
        while inner.history.len() > self.history_limit {
            if let Some(old) = inner.history.pop_front() {
                inner.horizon = old.resource_version;
            }
        }
        let latest = inner.resource_version;
        drop(inner);
        self.latest.send_replace(latest);
    }

    pub fn resource_version(&self) -> i64 {
        self.inner.read().expect("cache").resource_version
    }

    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Arc<Entry>> {
        let inner = self.inner.read().expect("cache");
        inner
            .objects
            .get(kind)?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// The objects of a kind (in one namespace, if given) in key order, starting after
    /// `after`, that `keep` accepts; and the resourceVersion they are current at.
    pub fn list(
        &self,
        kind: &str,
        namespace: Option<&str>,
        after: Option<&(String, String)>,
        keep: impl Fn(&Entry) -> bool,
        limit: Option<usize>,
    ) -> (Vec<Arc<Entry>>, i64, bool) {
        let inner = self.inner.read().expect("cache");
        let Some(objects) = inner.objects.get(kind) else {
            return (Vec::new(), inner.resource_version, false);
        };
        let range: Box<dyn Iterator<Item = (&Key, &Arc<Entry>)>> = match (after, namespace) {
            (Some(key), _) => Box::new(objects.range::<Key, _>((
                std::ops::Bound::Excluded(key.clone()),
                std::ops::Bound::Unbounded,
            ))),
            (None, Some(ns)) => {
                Box::new(objects.range::<Key, _>((ns.to_string(), String::new())..))
            }
            (None, None) => Box::new(objects.iter()),
        };
        let mut items = Vec::new();
        let mut more = false;
        for (key, entry) in range {
            if namespace.is_some_and(|ns| key.0 != ns) {
                if namespace.is_some_and(|ns| key.0.as_str() > ns) {
                    break;
                }
                continue;
            }
            if !keep(entry) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                more = true;
                break;
            }
            items.push(entry.clone());
        }
        (items, inner.resource_version, more)
    }

    /// The changes after `since`, and the resourceVersion they bring the reader to.
    pub fn changes_after(&self, since: i64) -> Result<(Vec<Arc<Change>>, i64), TooOld> {
        let inner = self.inner.read().expect("cache");
        if since < inner.horizon {
            return Err(TooOld(inner.horizon));
        }
        let start = inner
            .history
            .partition_point(|c| c.resource_version <= since);
        let changes = inner.history.range(start..).cloned().collect();
        Ok((changes, inner.resource_version))
    }

    /// Wakes when something newer than `seen` is committed.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest.subscribe()
    }
}

/// The last version of a deleted object, carrying the deletion's resourceVersion.
fn restamp(kind: &'static str, last: &Entry, rv: i64) -> Entry {
    let mut value = last.value();
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
    let resource = Resource::by_kind(kind).expect("cached kinds are served");
    Entry::new(
        resource,
        last.namespace.clone(),
        last.name.clone(),
        rv,
        value.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(name: &str, rv: i64, phase: &str) -> Write {
        Write::Put(Record {
            kind: "Pod".into(),
            namespace: "default".into(),
            name: name.into(),
            resource_version: rv,
            body: format!(
                r#"{{"metadata":{{"name":"{name}","resourceVersion":"{rv}","labels":{{"app":"x"}}}},"status":{{"phase":"{phase}"}}}}"#
            ),
        })
    }

    #[test]
    fn changes_come_in_order_with_the_version_before_and_after() {
        let cache = Cache::new(Vec::new(), 0);
        cache.apply(vec![put("a", 1, "Pending"), put("b", 2, "Pending")]);
        cache.apply(vec![
            put("a", 3, "Running"),
            Write::Delete {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "b".into(),
                resource_version: 4,
            },
        ]);
        let (changes, rv) = cache.changes_after(1).unwrap();
        assert_eq!(rv, 4);
        let seen: Vec<(i64, bool, bool)> = changes
            .iter()
            .map(|c| (c.resource_version, c.before.is_some(), c.after.is_some()))
            .collect();
        assert_eq!(seen, [(2, false, true), (3, true, true), (4, true, false)]);
        let deleted = changes[2].deleted.as_ref().unwrap();
        assert_eq!(deleted.value()["metadata"]["resourceVersion"], "4");
        assert_eq!(
            changes[1].after.as_ref().unwrap().fields["status.phase"],
            "Running"
        );
        let (items, _, _) = cache.list("Pod", Some("default"), None, |_| true, None);
        assert_eq!(items.len(), 1);
    }

    #[test]
    fn a_watch_from_before_the_remembered_window_is_too_old() {
        let cache = Cache::new(Vec::new(), 0).with_history_limit(2);
        cache.apply((1..=5).map(|rv| put("a", rv, "Running")).collect());
        assert!(cache.changes_after(3).is_ok());
        assert_eq!(cache.changes_after(2).unwrap_err().0, 3);
    }

    #[test]
    fn pages_continue_after_the_last_key() {
        let cache = Cache::new(Vec::new(), 0);
        cache.apply(
            (1..=5)
                .map(|rv| put(&format!("p{rv}"), rv, "Running"))
                .collect(),
        );
        let (first, _, more) = cache.list("Pod", Some("default"), None, |_| true, Some(2));
        assert!(more);
        let last = (first[1].namespace.clone(), first[1].name.clone());
        let (rest, _, more) = cache.list("Pod", Some("default"), Some(&last), |_| true, None);
        assert!(!more);
        let names: Vec<&str> = first.iter().chain(&rest).map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["p1", "p2", "p3", "p4", "p5"]);
        let (other, _, _) = cache.list("Pod", Some("elsewhere"), None, |_| true, None);
        assert!(other.is_empty());
    }
}
