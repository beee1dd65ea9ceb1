//! The watch cache: every served object in memory, and a window of recent changes, fed by
//! the engine's writer after each commit. Reads and watches never touch the database.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use joblet_api::k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use joblet_store::{Record, Write};
use serde::de::DeserializeOwned;
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
    metadata: OnceLock<String>,
    /// The last table row rendered, for the second and form it was rendered for.
    row: Mutex<Option<(RowKey, Arc<str>)>>,
}

/// A rendered table row is good for one second of the clock and one form.
pub type RowKey = (i64, Include);

/// An entry read into its API type.
#[derive(Debug)]
pub enum Typed {
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
            metadata: OnceLock::new(),
            row: Mutex::new(None),
        }
    }

    pub fn value(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The object read into its API type. Read at each call, not kept: the cache holds the
    /// versions of the last 100,000 changes, and a typed object takes many times the memory
    /// of its JSON (kept, they grew a server watched by a table by gigabytes).
    pub fn typed(&self) -> Typed {
        let body = &self.body;
        let typed = match self.kind {
            "Pod" => serde_json::from_str(body).map(|o| Typed::Pod(Box::new(o))),
            "Event" => serde_json::from_str(body).map(|o| Typed::Event(Box::new(o))),
            _ => serde_json::from_str(body).map(|o| Typed::Namespace(Box::new(o))),
        };
        typed.unwrap_or(Typed::Unreadable)
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The object read into `T`, the API type of its kind; `None` if it does not read as
    /// one. Read at each call, as [`Entry::typed`].
    pub fn object<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(&self.body).ok()
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
    /// `before` stamped with this change's resourceVersion, made when first asked for.
    restamped: OnceLock<Option<Arc<Entry>>>,
}

impl Change {
    /// What a DELETED event carries, for a deletion or for an object that stopped matching
    /// a watch's selector: the version before the change, at the change's resourceVersion,
    /// as upstream's `cacheWatcher.convertToWatchEvent` sends it.
    pub fn before_restamped(&self) -> Option<Arc<Entry>> {
        self.restamped
            .get_or_init(|| {
                let before = self.before.as_ref()?;
                Some(Arc::new(restamp(self.kind, before, self.resource_version)))
            })
            .clone()
    }
}

pub type Key = (String, String);

/// What a list keeps: `keep` decides; `required_label` names a label every kept object
/// carries, so the list reads only the objects with it (`job-name=x` among thousands of pods).
pub trait Filter {
    fn keep(&self, entry: &Entry) -> bool;
    fn required_label(&self) -> Option<(&str, &str)> {
        None
    }
}

impl<F: Fn(&Entry) -> bool> Filter for F {
    fn keep(&self, entry: &Entry) -> bool {
        self(entry)
    }
}

/// Per kind, the keys of the current objects carrying each label (name and value).
type LabelIndex = HashMap<&'static str, HashMap<(String, String), BTreeSet<Key>>>;

struct Inner {
    resource_version: i64,
    objects: HashMap<&'static str, BTreeMap<Key, Arc<Entry>>>,
    labelled: LabelIndex,
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

/// One page of a list.
pub struct Page {
    pub items: Vec<Arc<Entry>>,
    /// The resourceVersion the page shows the objects at.
    pub resource_version: i64,
    /// Whether objects past the page's last one remain.
    pub more: bool,
}

impl Cache {
    /// Holds `records`, current at `resource_version`.
    pub fn new(records: Vec<Record>, resource_version: i64) -> Cache {
        let mut objects: HashMap<&'static str, BTreeMap<Key, Arc<Entry>>> = HashMap::new();
        let mut labelled = LabelIndex::new();
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
            index_labels(&mut labelled, resource.kind, None, Some(&entry));
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
                labelled,
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
            index_labels(
                &mut inner.labelled,
                kind,
                before.as_deref(),
                after.as_deref(),
            );
            inner.history.push_back(Arc::new(Change {
                resource_version: rv,
                kind,
                before,
                after,
                restamped: OnceLock::new(),
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

    /// Every current object of a kind (in one namespace, if given) that `keep` accepts, in
    /// key order; and the resourceVersion they are current at.
    pub fn list(
        &self,
        kind: &str,
        namespace: Option<&str>,
        keep: impl Filter,
    ) -> (Vec<Arc<Entry>>, i64) {
        let page = self
            .page(kind, namespace, None, keep, None, None)
            .expect("the current objects are always at hand");
        (page.items, page.resource_version)
    }

    /// One page of a list: the objects of a kind (in one namespace, if given) in key order,
    /// starting after `after`, that `keep` accepts, as they were at resourceVersion `at`
    /// (now, if `None`), so that the pages of one list are one snapshot, as upstream's
    /// `continue` gives. `at` must not be older than the remembered changes.
    pub fn page(
        &self,
        kind: &str,
        namespace: Option<&str>,
        after: Option<&Key>,
        keep: impl Filter,
        limit: Option<usize>,
        at: Option<i64>,
    ) -> Result<Page, TooOld> {
        let inner = self.inner.read().expect("cache");
        let empty = BTreeMap::new();
        let objects = inner.objects.get(kind).unwrap_or(&empty);
        let at = at.filter(|at| *at < inner.resource_version);
        if at.is_some_and(|at| at < inner.horizon) {
            return Err(TooOld(inner.horizon));
        }
        // Objects changed since `at`: their version then (the one before the first change
        // after it), `None` for those that did not exist yet.
        let mut then: BTreeMap<Key, Option<Arc<Entry>>> = BTreeMap::new();
        if let Some(at) = at {
            let start = inner.history.partition_point(|c| c.resource_version <= at);
            for change in inner.history.range(start..).filter(|c| c.kind == kind) {
                let Some(entry) = change.before.as_ref().or(change.after.as_ref()) else {
                    continue;
                };
                then.entry((entry.namespace.clone(), entry.name.clone()))
                    .or_insert_with(|| change.before.clone());
            }
        }
        // The objects with the required label are the only candidates now; objects changed
        // since `at` are judged as they were then.
        let mut now: Box<dyn Iterator<Item = (&Key, &Arc<Entry>)>> = match keep.required_label() {
            Some((name, value)) => {
                let keys = inner
                    .labelled
                    .get(kind)
                    .and_then(|index| index.get(&(name.to_string(), value.to_string())));
                match keys {
                    Some(keys) => Box::new(
                        in_range(keys.range(bounds(namespace, after)), namespace)
                            .filter_map(|key| objects.get_key_value(key)),
                    ),
                    None => Box::new(std::iter::empty()),
                }
            }
            None => Box::new(key_range(objects, namespace, after)),
        };
        let mut now = now.by_ref().peekable();
        let mut changed = key_range(&then, namespace, after).peekable();
        let mut items = Vec::new();
        let mut more = false;
        loop {
            let entry = match (now.peek(), changed.peek()) {
                (None, None) => break,
                (Some((key, _)), Some((changed_key, _))) if key < changed_key => {
                    now.next().map(|(_, e)| e.clone())
                }
                (Some((key, _)), Some((changed_key, _))) if key == changed_key => {
                    now.next();
                    changed.next().and_then(|(_, e)| e.clone())
                }
                (Some(_), None) => now.next().map(|(_, e)| e.clone()),
                (_, Some(_)) => changed.next().and_then(|(_, e)| e.clone()),
            };
            let Some(entry) = entry.filter(|e| keep.keep(e)) else {
                continue;
            };
            if limit.is_some_and(|l| items.len() >= l) {
                more = true;
                break;
            }
            items.push(entry);
        }
        Ok(Page {
            items,
            resource_version: at.unwrap_or(inner.resource_version),
            more,
        })
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
    /// Waits until the cache holds every write up to `version` (at most `timeout`).
    pub async fn wait_for(&self, version: i64, timeout: std::time::Duration) {
        let mut latest = self.subscribe();
        let _ = tokio::time::timeout(timeout, latest.wait_for(|at| *at >= version)).await;
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest.subscribe()
    }
}

/// The entries of `map` in key order, after `after`, in `namespace` if given.
fn key_range<'a, V>(
    map: &'a BTreeMap<Key, V>,
    namespace: Option<&'a str>,
    after: Option<&Key>,
) -> impl Iterator<Item = (&'a Key, &'a V)> {
    in_range(map.range(bounds(namespace, after)), namespace)
}

/// Where the keys after `after` (in `namespace`, if given) start.
fn bounds(namespace: Option<&str>, after: Option<&Key>) -> (Bound<Key>, Bound<Key>) {
    let start = match (after, namespace) {
        (Some(key), _) => Bound::Excluded(key.clone()),
        (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
        (None, None) => Bound::Unbounded,
    };
    (start, Bound::Unbounded)
}

/// The items of `range` whose key is in `namespace`, if given.
fn in_range<'a, T: KeyOf + 'a>(
    range: impl Iterator<Item = T> + 'a,
    namespace: Option<&'a str>,
) -> impl Iterator<Item = T> + 'a {
    range
        .skip_while(move |item| namespace.is_some_and(|ns| item.key().0.as_str() < ns))
        .take_while(move |item| namespace.is_none_or(|ns| item.key().0 == ns))
}

trait KeyOf {
    fn key(&self) -> &Key;
}

impl KeyOf for &Key {
    fn key(&self) -> &Key {
        self
    }
}

impl<V> KeyOf for (&Key, V) {
    fn key(&self) -> &Key {
        self.0
    }
}

/// Moves an object's key in the label index from the labels it had to the ones it has.
fn index_labels(
    index: &mut LabelIndex,
    kind: &'static str,
    before: Option<&Entry>,
    after: Option<&Entry>,
) {
    if before.map(|e| &e.labels) == after.map(|e| &e.labels) {
        return;
    }
    let index = index.entry(kind).or_default();
    if let Some(before) = before {
        for pair in &before.labels {
            let label = (pair.0.clone(), pair.1.clone());
            if let Some(keys) = index.get_mut(&label) {
                keys.remove(&(before.namespace.clone(), before.name.clone()));
                if keys.is_empty() {
                    index.remove(&label);
                }
            }
        }
    }
    if let Some(after) = after {
        for (name, value) in &after.labels {
            index
                .entry((name.clone(), value.clone()))
                .or_default()
                .insert((after.namespace.clone(), after.name.clone()));
        }
    }
}

/// An earlier version of an object, carrying a later change's resourceVersion.
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
        let deleted = changes[2].before_restamped().unwrap();
        assert_eq!(deleted.value()["metadata"]["resourceVersion"], "4");
        assert_eq!(
            changes[1].after.as_ref().unwrap().fields["status.phase"],
            "Running"
        );
        let (items, _) = cache.list("Pod", Some("default"), every);
        assert_eq!(items.len(), 1);
    }

    #[test]
    fn a_watch_from_before_the_remembered_window_is_too_old() {
        let cache = Cache::new(Vec::new(), 0).with_history_limit(2);
        cache.apply((1..=5).map(|rv| put("a", rv, "Running")).collect());
        assert!(cache.changes_after(3).is_ok());
        assert_eq!(cache.changes_after(2).unwrap_err().0, 3);
    }

    fn every(_: &Entry) -> bool {
        true
    }

    fn names(page: &Page) -> Vec<&str> {
        page.items.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn pages_continue_after_the_last_key() {
        let cache = Cache::new(Vec::new(), 0);
        cache.apply(
            (1..=5)
                .map(|rv| put(&format!("p{rv}"), rv, "Running"))
                .collect(),
        );
        let first = cache
            .page("Pod", Some("default"), None, every, Some(2), None)
            .unwrap();
        assert!(first.more);
        let last = (
            first.items[1].namespace.clone(),
            first.items[1].name.clone(),
        );
        let rest = cache
            .page("Pod", Some("default"), Some(&last), every, None, None)
            .unwrap();
        assert!(!rest.more);
        assert_eq!(names(&first), ["p1", "p2"]);
        assert_eq!(names(&rest), ["p3", "p4", "p5"]);
        let (other, _) = cache.list("Pod", Some("elsewhere"), every);
        assert!(other.is_empty());
    }

    #[test]
    fn a_later_page_shows_the_objects_as_they_were_at_the_first() {
        let cache = Cache::new(Vec::new(), 0);
        cache.apply(
            (1..=4)
                .map(|rv| put(&format!("p{rv}"), rv, "Pending"))
                .collect(),
        );
        let first = cache.page("Pod", None, None, every, Some(1), None).unwrap();
        assert_eq!((names(&first), first.resource_version), (vec!["p1"], 4));
        // After the first page: p2 changes, p3 goes, p25 and p5 come.
        cache.apply(vec![
            put("p2", 5, "Running"),
            Write::Delete {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "p3".into(),
                resource_version: 6,
            },
            put("p25", 7, "Pending"),
            put("p5", 8, "Pending"),
            put("p2", 9, "Succeeded"),
        ]);
        let after = ("default".to_string(), "p1".to_string());
        let rest = cache
            .page("Pod", None, Some(&after), every, None, Some(4))
            .unwrap();
        assert_eq!(names(&rest), ["p2", "p3", "p4"]);
        assert_eq!(rest.resource_version, 4);
        assert_eq!(rest.items[0].fields["status.phase"], "Pending");
        let pending = cache
            .page(
                "Pod",
                None,
                Some(&after),
                |e: &Entry| e.fields["status.phase"] == "Pending",
                Some(1),
                Some(4),
            )
            .unwrap();
        assert_eq!((names(&pending), pending.more), (vec!["p2"], true));
        let now = cache
            .page("Pod", None, Some(&after), every, None, None)
            .unwrap();
        assert_eq!(names(&now), ["p2", "p25", "p4", "p5"]);
        assert_eq!(now.resource_version, 9);
    }

    fn labelled(namespace: &str, name: &str, rv: i64, app: &str) -> Write {
        Write::Put(Record {
            kind: "Pod".into(),
            namespace: namespace.into(),
            name: name.into(),
            resource_version: rv,
            body: format!(r#"{{"metadata":{{"name":"{name}","labels":{{"app":"{app}"}}}}}}"#),
        })
    }

    /// `app=VALUE`, read through the label index.
    struct App(&'static str);

    impl Filter for App {
        fn keep(&self, entry: &Entry) -> bool {
            entry.labels.get("app").map(String::as_str) == Some(self.0)
        }
        fn required_label(&self) -> Option<(&str, &str)> {
            Some(("app", self.0))
        }
    }

    #[test]
    fn a_list_by_label_reads_the_index_and_sees_relabelled_objects_as_they_were() {
        let cache = Cache::new(
            vec![Record {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "p0".into(),
                resource_version: 1,
                body: r#"{"metadata":{"name":"p0","labels":{"app":"x"}}}"#.into(),
            }],
            1,
        );
        cache.apply(vec![
            labelled("default", "p1", 2, "y"),
            labelled("default", "p2", 3, "x"),
            labelled("other", "p3", 4, "x"),
        ]);
        let x = |namespace, at| {
            let page = cache
                .page("Pod", namespace, None, App("x"), None, at)
                .unwrap();
            names(&page)
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(x(Some("default"), None), ["p0", "p2"]);
        assert_eq!(x(None, None), ["p0", "p2", "p3"]);
        // p2 loses the label, p1 gains it, p0 goes.
        cache.apply(vec![
            labelled("default", "p2", 5, "y"),
            labelled("default", "p1", 6, "x"),
            Write::Delete {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "p0".into(),
                resource_version: 7,
            },
        ]);
        assert_eq!(x(Some("default"), None), ["p1"]);
        assert_eq!(x(Some("default"), Some(4)), ["p0", "p2"]);
        let y = cache.page("Pod", None, None, App("y"), None, None).unwrap();
        assert_eq!(names(&y), ["p2"]);
        let none = cache.page("Pod", None, None, App("z"), None, None).unwrap();
        assert!(none.items.is_empty());
    }

    #[test]
    fn a_page_older_than_the_remembered_changes_is_too_old() {
        let cache = Cache::new(Vec::new(), 0).with_history_limit(2);
        cache.apply((1..=5).map(|rv| put("a", rv, "Running")).collect());
        assert!(cache.page("Pod", None, None, every, None, Some(3)).is_ok());
        assert_eq!(
            cache
                .page("Pod", None, None, every, None, Some(2))
                .err()
                .map(|e| e.0),
            Some(3)
        );
    }
}
