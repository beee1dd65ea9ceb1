//! The web view's stream of one Job (`GET /ui/api/jobs/{namespace}/{name}`): the Job when it
//! changes and the state of each of its pods (index, phase, start, end) when it changes,
//! from the watch cache, as lines of JSON. A busy Job's pods change thousands of times a
//! second and its status hundreds; the page draws a few times a second. Watching them
//! through the API cost the page and the server an event for each change (parsed, matched
//! against three selectors, rendered as table rows); here each pod's latest state goes out
//! at most every `EVERY`, and a change that the page does not draw (a finalizer removed,
//! a condition added) sends nothing.
//!
//! Lines: `{"job": <the Job, or null once it is gone>}` first and when it changed;
//! `{"pods": [...], "listing": true}` for the pods there when the stream starts (the ones
//! not ended first), then `{"listed": true}`; `{"pods": [...]}` for the pods that changed.
//! A pod is `{"name", "index", "created", "phase", "start", "end"}` (times in milliseconds
//! since the epoch; `end` null while it runs). Pods seen from the start take their times
//! from their status (whole seconds); pods that start later, the times the server saw them
//! appear and end. A pod deleted before it ended is `Deleted`, ended when it went.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::response::Response;
use joblet_api::k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::api::{streaming, AppState};
use crate::cache::{Cache, Entry, Filter};

/// The least time between two lines of changes: a change shows within it.
const EVERY: Duration = Duration::from_millis(250);
/// Pods per line of the first listing.
const PER_LINE: usize = 2000;

/// Where the stream of a Job is, if `path` is one: its namespace and name.
pub fn path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/ui/api/jobs/")?;
    let (namespace, name) = rest.split_once('/')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains('/')).then_some((namespace, name))
}

pub fn start(state: &AppState, namespace: &str, name: &str) -> Response {
    let (tx, rx) = mpsc::channel(4);
    let stream = JobStream {
        cache: state.cache.clone(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        pods: HashMap::new(),
        changed: HashSet::new(),
        job_version: None,
        tx,
    };
    tokio::spawn(stream.run());
    streaming("application/json", rx)
}

/// A pod as the page draws it.
#[derive(Debug, Serialize)]
struct PodState {
    #[serde(serialize_with = "text")]
    name: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    created: String,
    phase: String,
    start: i64,
    end: Option<i64>,
}

fn text<S: serde::Serializer>(name: &Arc<str>, to: S) -> Result<S::Ok, S::Error> {
    to.serialize_str(name)
}

struct JobStream {
    cache: Arc<Cache>,
    namespace: String,
    name: String,
    pods: HashMap<Arc<str>, PodState>,
    /// Pods whose state changed since the last line.
    changed: HashSet<Arc<str>>,
    /// The Job's resourceVersion last sent (`Some(None)`: sent as gone).
    job_version: Option<Option<i64>>,
    tx: mpsc::Sender<Bytes>,
}

/// The Job's pods, by the label the Job controller gives them.
struct OfJob<'a>(&'a str);

impl Filter for OfJob<'_> {
    fn keep(&self, entry: &Entry) -> bool {
        entry
            .labels
            .get(joblet_api::labels::JOB_NAME)
            .map(String::as_str)
            == Some(self.0)
    }

    fn required_label(&self) -> Option<(&str, &str)> {
        Some((joblet_api::labels::JOB_NAME, self.0))
    }
}

impl JobStream {
    async fn run(mut self) {
        let mut latest = self.cache.subscribe();
        if !self.send_job().await {
            return;
        }
        tokio::task::yield_now().await; // the Job's line out before the pods are read
        let Some(mut seen) = self.list().await else {
            return;
        };
        let mut sent_at = tokio::time::Instant::now();
        loop {
            let due = sent_at + EVERY;
            let pending = !self.changed.is_empty() || self.job_changed();
            tokio::select! {
                changed = latest.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(due), if pending => {
                    if !self.send_job().await || !self.send_changed().await {
                        return;
                    }
                    sent_at = tokio::time::Instant::now();
                    continue;
                }
                _ = self.tx.closed() => return,
            }
            latest.borrow_and_update();
            // Taken as they come, so a pod's times are when the server saw it change.
            match self.cache.changes_after(seen) {
                Ok((changes, current)) => {
                    let now = Timestamp::now().as_millisecond();
                    for change in changes.iter().filter(|c| c.kind == "Pod") {
                        let before = change.before.as_ref().filter(|e| self.ours(e));
                        let after = change.after.as_ref().filter(|e| self.ours(e));
                        match (before, after) {
                            (_, Some(after)) => self.saw(after, now),
                            (Some(before), None) => self.saw_go(&before.name, now),
                            (None, None) => {}
                        }
                    }
                    seen = current;
                }
                // Too far behind: what is current now, as at the start.
                Err(_) => match self.list().await {
                    Some(rv) => seen = rv,
                    None => return,
                },
            }
        }
    }

    fn ours(&self, entry: &Entry) -> bool {
        entry.namespace == self.namespace && OfJob(&self.name).keep(entry)
    }

    fn job_changed(&self) -> bool {
        let now = self
            .cache
            .get("Job", &self.namespace, &self.name)
            .map(|job| job.resource_version);
        self.job_version != Some(now)
    }

    /// Sends the Job if it changed since it was last sent.
    async fn send_job(&mut self) -> bool {
        let job = self.cache.get("Job", &self.namespace, &self.name);
        let version = job.as_ref().map(|j| j.resource_version);
        if self.job_version == Some(version) {
            return true;
        }
        self.job_version = Some(version);
        let body = job.as_ref().map_or("null", |j| j.body.as_str());
        self.send(format!("{{\"job\":{body}}}\n")).await
    }

    /// Sends every pod of the Job as it is now, the ones not ended first; the
    /// resourceVersion they are current at.
    async fn list(&mut self) -> Option<i64> {
        let (mut entries, rv) = self
            .cache
            .list("Pod", Some(&self.namespace), OfJob(&self.name));
        entries.sort_by_key(|entry| ended(phase(entry)));
        self.pods.clear();
        self.changed.clear();
        // A line at a time, each read and sent before the next: reading 100,000 pods at
        // once held a worker thread for half a second, and with it the Job's line sent
        // before (the connection's task waits on that thread to be woken).
        for chunk in entries.chunks(PER_LINE) {
            let pods: Vec<PodState> = chunk.iter().filter_map(|entry| listed(entry)).collect();
            let line = serde_json::json!({"pods": pods, "listing": true});
            if !self.send(format!("{line}\n")).await {
                return None;
            }
            self.pods
                .extend(pods.into_iter().map(|pod| (pod.name.clone(), pod)));
            tokio::task::yield_now().await;
        }
        self.send("{\"listed\":true}\n".to_string())
            .await
            .then_some(rv)
    }

    /// A pod that is the Job's after a change.
    fn saw(&mut self, entry: &Entry, now: i64) {
        let phase = phase(entry);
        let ended = ended(phase);
        if let Some(known) = self.pods.get_mut(entry.name.as_str()) {
            let end = if ended { known.end.or(Some(now)) } else { None };
            if known.phase != phase || known.end != end {
                known.phase = phase.to_string();
                known.end = end;
                self.changed.insert(known.name.clone());
            }
            return;
        }
        let Some(fields) = PodFields::read(entry) else {
            return;
        };
        let name: Arc<str> = entry.name.as_str().into();
        let state = PodState {
            name: name.clone(),
            index: fields.index(),
            created: fields.metadata.creation_timestamp.unwrap_or_default(),
            phase: phase.to_string(),
            start: now,
            end: ended.then_some(now),
        };
        self.pods.insert(name.clone(), state);
        self.changed.insert(name);
    }

    /// A pod deleted, or no longer the Job's: ended then if it had not.
    fn saw_go(&mut self, name: &str, now: i64) {
        if let Some(known) = self.pods.get_mut(name).filter(|p| p.end.is_none()) {
            known.phase = "Deleted".to_string();
            known.end = Some(now);
            self.changed.insert(known.name.clone());
        }
    }

    async fn send_changed(&mut self) -> bool {
        if self.changed.is_empty() {
            return true;
        }
        let pods: Vec<&PodState> = self
            .changed
            .iter()
            .filter_map(|n| self.pods.get(n))
            .collect();
        let line = format!("{}\n", serde_json::json!({ "pods": pods }));
        self.changed.clear();
        self.send(line).await
    }

    async fn send(&self, line: String) -> bool {
        self.tx.send(Bytes::from(line)).await.is_ok()
    }
}

/// A pod's phase, as the cache's field selectors read it.
fn phase(entry: &Entry) -> &str {
    match entry.fields.get("status.phase").map_or("", String::as_str) {
        "" => "Pending",
        phase => phase,
    }
}

fn ended(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed")
}

/// A pod listed when the stream starts, with the times its status gives: from its start
/// (or creation) to the last of its containers' ends once it ended.
fn listed(entry: &Entry) -> Option<PodState> {
    let fields = PodFields::read(entry)?;
    let millis = |time: &Option<String>| -> Option<i64> {
        Some(time.as_deref()?.parse::<Timestamp>().ok()?.as_millisecond())
    };
    let status = &fields.status;
    let phase = phase(entry);
    let start = millis(&status.start_time)
        .or_else(|| millis(&fields.metadata.creation_timestamp))
        .unwrap_or_default();
    let ends = (status.init_container_statuses.iter())
        .chain(&status.container_statuses)
        .filter_map(|s| millis(&s.state.terminated.as_ref()?.finished_at));
    let end = ended(phase).then(|| ends.fold(start, i64::max));
    Some(PodState {
        name: entry.name.as_str().into(),
        index: fields.index(),
        created: fields
            .metadata
            .creation_timestamp
            .clone()
            .unwrap_or_default(),
        phase: phase.to_string(),
        start,
        end,
    })
}

/// What the page needs of a pod, read without the rest of it.
#[derive(Deserialize)]
struct PodFields {
    metadata: PodMetadata,
    #[serde(default)]
    status: PodStatus,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodMetadata {
    creation_timestamp: Option<String>,
    #[serde(default)]
    annotations: Annotations,
}

#[derive(Deserialize, Default)]
struct Annotations {
    #[serde(rename = "batch.kubernetes.io/job-completion-index")]
    completion_index: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    start_time: Option<String>,
    #[serde(default)]
    init_container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    container_statuses: Vec<ContainerStatus>,
}

#[derive(Deserialize)]
struct ContainerStatus {
    #[serde(default)]
    state: ContainerState,
}

#[derive(Deserialize, Default)]
struct ContainerState {
    terminated: Option<Terminated>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Terminated {
    finished_at: Option<String>,
}

impl PodFields {
    fn read(entry: &Entry) -> Option<PodFields> {
        serde_json::from_str(&entry.body).ok()
    }

    fn index(&self) -> Option<u64> {
        self.metadata
            .annotations
            .completion_index
            .as_deref()?
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_path_names_a_namespace_and_a_job() {
        assert_eq!(path("/ui/api/jobs/default/pi"), Some(("default", "pi")));
        assert_eq!(path("/ui/api/jobs/default/"), None);
        assert_eq!(path("/ui/api/jobs/default"), None);
        assert_eq!(path("/ui/api/jobs/default/pi/x"), None);
        assert_eq!(path("/ui/app.js"), None);
    }
}
