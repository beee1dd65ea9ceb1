//! `?watch=true`: a chunked stream of JSON events, one per line, from the watch cache.
//! A watch from resourceVersion `N` sees every change after `N`, in order; from `0` or
//! none, first the current objects as ADDED. An object that stops matching the selectors
//! is DELETED for that watcher, as on the API server.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::response::Response;
use bytes::BytesMut;
use joblet_api::k8s_openapi::jiff::Timestamp;
use joblet_driver::SystemClock;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::api::{streaming, AppState};
use crate::cache::{Cache, Entry};
use crate::errors::ApiError;
use crate::params::ListOptions;
use crate::registry::request::{selector, wants_table};
use crate::resources::Resource;
use crate::selectors::Selector;
use crate::table::{self, Include};

/// A chunk is sent once this much is rendered, even mid-batch.
const FLUSH_AT: usize = 48 * 1024;
/// Under a stream of changes, what comes within this time of a watcher's last chunk goes
/// into its next: a busy Job's changes come hundreds a second, and each chunk costs the
/// server (a TLS record, a frame, a write) and the client (a read) more than its events do.
/// An idle watch sends at once.
const GATHER: Duration = Duration::from_millis(20);
/// Chunks are cut from buffers of this size, each reused once the chunks cut from it are
/// written: allocating (and page-faulting) a buffer per chunk cost the server more than
/// encrypting them.
const BUFFER: usize = 64 * 1024;

struct Watcher {
    cache: Arc<Cache>,
    resource: &'static Resource,
    namespace: Option<String>,
    selector: Selector,
    table: Option<Include>,
    columns_sent: bool,
    out: BytesMut,
    tx: mpsc::Sender<Bytes>,
    /// When the last chunk was sent.
    sent_at: Option<tokio::time::Instant>,
}

pub fn start(
    state: &AppState,
    resource: &'static Resource,
    namespace: Option<&str>,
    params: &std::collections::HashMap<String, String>,
    options: &ListOptions,
    accept: &str,
) -> Result<Response, ApiError> {
    let selector = selector(resource, params)?;
    let (since, timeout) = (options.resource_version, options.timeout);
    let bookmarks = options.allow_watch_bookmarks;
    // Few chunks wait for a slow client: the cache's history is what it catches up from.
    let (tx, rx) = mpsc::channel(4);
    let table = wants_table(accept)
        .then(|| Include::parse(params.get("includeObject").map(String::as_str)))
        .transpose()?;
    let watcher = Watcher {
        cache: state.cache.clone(),
        resource,
        namespace: namespace.map(str::to_string),
        selector,
        table,
        columns_sent: false,
        out: BytesMut::with_capacity(BUFFER),
        tx,
        sent_at: None,
    };
    tokio::spawn(watcher.run(since, timeout, bookmarks));
    Ok(streaming("application/json", rx))
}

impl Watcher {
    async fn run(mut self, since: Option<i64>, timeout: Option<Duration>, bookmarks: bool) {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut latest = self.cache.subscribe();
        let mut seen = match since {
            Some(rv) => rv,
            None => {
                let namespace = self.namespace.clone();
                let (items, rv) =
                    self.cache
                        .list(self.resource.kind, namespace.as_deref(), &self.selector);
                let now = SystemClock.now_timestamp();
                for entry in items {
                    self.render("ADDED", &entry, entry.resource_version, now);
                    if self.out.len() >= FLUSH_AT && !self.flush().await {
                        return;
                    }
                }
                if !self.flush().await {
                    return;
                }
                rv
            }
        };
        let mut bookmark = tokio::time::interval(Duration::from_secs(60));
        bookmark.tick().await;
        loop {
            if let Some(sent_at) = self.sent_at {
                tokio::time::sleep_until(sent_at + GATHER).await;
            }
            latest.borrow_and_update();
            match self.cache.changes_after(seen) {
                Err(too_old) => {
                    let status =
                        ApiError::gone(format!("too old resource version: {seen} ({})", too_old.0))
                            .status();
                    self.send_line(&json!({"type": "ERROR", "object": status}))
                        .await;
                    return;
                }
                Ok((changes, current)) => {
                    // Everything that arrived since the last wake goes out in one chunk.
                    let now = SystemClock.now_timestamp();
                    for change in changes {
                        if change.kind != self.resource.kind {
                            continue;
                        }
                        let before = change.before.as_ref().filter(|e| self.visible(e));
                        let after = change.after.as_ref().filter(|e| self.visible(e));
                        let event = match (before, after) {
                            (None, Some(after)) => Some(("ADDED", after.clone())),
                            (Some(_), Some(after)) => Some(("MODIFIED", after.clone())),
                            // Deleted, or no longer matching the selector: the version
                            // before, at the change's resourceVersion. A row without the
                            // object is the one rendered before, with that version.
                            (Some(before), None) if self.table == Some(Include::None) => {
                                Some(("DELETED", before.clone()))
                            }
                            (Some(_), None) => change.before_restamped().map(|d| ("DELETED", d)),
                            (None, None) => None,
                        };
                        if let Some((kind, entry)) = event {
                            self.render(kind, &entry, change.resource_version, now);
                            if self.out.len() >= FLUSH_AT && !self.flush().await {
                                return;
                            }
                        }
                    }
                    if !self.flush().await {
                        return;
                    }
                    seen = current;
                }
            }
            tokio::select! {
                changed = latest.changed() => if changed.is_err() { return },
                _ = self.tx.closed() => return,
                _ = sleep_until(deadline) => return,
                _ = bookmark.tick(), if bookmarks => {
                    let event = json!({"type": "BOOKMARK", "object": {
                        "kind": self.resource.kind,
                        "apiVersion": self.resource.api_version(),
                        "metadata": {"resourceVersion": seen.to_string()},
                    }});
                    if !self.send_line(&event).await {
                        return;
                    }
                }
            }
        }
    }

    fn visible(&self, entry: &Entry) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| entry.namespace == ns)
            && self.selector.matches(entry)
    }

    /// Appends one event line: the stored JSON (or the rendered row) as it is.
    /// `resource_version` is the event's, `now` the time table rows are rendered at
    /// (their ages).
    fn render(&mut self, kind: &str, entry: &Entry, resource_version: i64, now: Timestamp) {
        let out = &mut self.out;
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        match self.table {
            Some(include) => {
                let row = table::row(entry, include, now);
                if self.columns_sent {
                    table::write_watch_row(out, &row, resource_version);
                } else {
                    let columns = table::columns(self.resource);
                    let table = table::table(columns, &[row], resource_version, None);
                    out.extend_from_slice(table.as_bytes());
                    self.columns_sent = true;
                }
            }
            None => out.extend_from_slice(entry.body.as_bytes()),
        }
        out.extend_from_slice(b"}\n");
    }

    /// Sends what was rendered; false once the client is gone.
    async fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        self.sent_at = Some(tokio::time::Instant::now());
        let chunk = self.out.split().freeze();
        if self.out.capacity() < FLUSH_AT / 4 {
            // Takes back the buffer if its chunks are written, else starts a new one.
            self.out.reserve(BUFFER);
        }
        self.tx.send(chunk).await.is_ok()
    }

    async fn send_line(&self, event: &Value) -> bool {
        let mut line = event.to_string();
        line.push('\n');
        self.tx.send(Bytes::from(line)).await.is_ok()
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
