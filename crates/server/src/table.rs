//! `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`: rows rendered on the server with
//! upstream's columns, so `kubectl get` prints what it prints against a cluster.

use joblet_api::k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use joblet_api::k8s_openapi::jiff::Timestamp;
use joblet_api::printers::human_duration;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::cache::{Entry, Typed};
use crate::errors::ApiError;
use crate::registry::{self, age_column, column, name_column};
use crate::resources::Resource;

/// What a row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    /// The `includeObject` parameter of a Table request, checked as `ValidateTableOptions`.
    pub fn parse(value: Option<&str>) -> Result<Include, ApiError> {
        match value.unwrap_or("") {
            "None" => Ok(Include::None),
            "Object" => Ok(Include::Object),
            "Metadata" | "" => Ok(Include::Metadata),
            other => Err(ApiError::bad_request(format!(
                "Unable to convert to Table as requested: includeObject: Invalid value: {}: must be 'Metadata', 'Object', 'None', or empty",
                joblet_api::field::go_quote(other)
            ))),
        }
    }
}

pub fn columns(resource: &Resource) -> Value {
    if let Some(rest) = registry::lookup(resource.kind) {
        return rest.columns();
    }
    let (name, age) = (name_column(), age_column());
    let columns = match resource.kind {
        "Pod" => vec![
            name,
            column("Ready", "string", "", "The aggregate readiness state of this pod for accepting traffic.", 0),
            column("Status", "string", "", "The aggregate status of the containers in this pod.", 0),
            column("Restarts", "string", "", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0),
            age,
            column("IP", "string", "", "IP address allocated to the pod.", 1),
            column("Node", "string", "", "Name of the node this pod is assigned to.", 1),
            column("Nominated Node", "string", "", "Name of the node this pod is nominated to.", 1),
            column("Readiness Gates", "string", "", "The readiness gates of this pod.", 1),
        ],
        "Event" => vec![
            column("Last Seen", "string", "", "Time when last event occurred.", 0),
            column("Type", "string", "", "Type of this event (Normal, Warning).", 0),
            column("Reason", "string", "", "Reason is why the action was taken.", 0),
            column("Object", "string", "", "The object this Event is about.", 0),
            column("Message", "string", "", "A human-readable description of the status of this operation.", 0),
            column("Subobject", "string", "", "The subobject this Event is about.", 1),
            column("Source", "string", "", "The component reporting this event.", 1),
            column("First Seen", "string", "", "The first time this event was reported.", 1),
            column("Count", "integer", "", "The number of times this event has occurred.", 1),
            column("Name", "string", "name", "Name of the event.", 1),
        ],
        _ => vec![
            name,
            column("Status", "string", "", "The status of the namespace.", 0),
            age,
        ],
    };
    Value::Array(columns)
}

/// One row of the table: cells, and the object or its metadata.
pub fn row(entry: &Entry, include: Include, now: Timestamp) -> Arc<str> {
    // Cells change with the clock only by the second: watchers of one change share a row.
    let key = (now.as_second(), include);
    if let Some(row) = entry.cached_row(key) {
        return row;
    }
    let row: Arc<str> = render_row(entry, include, now).into();
    entry.cache_row(key, row.clone());
    row
}

fn render_row(entry: &Entry, include: Include, now: Timestamp) -> String {
    let cells = match registry::lookup(entry.kind()) {
        Some(rest) => rest.cells(entry, now),
        None => typed_cells(entry, now),
    };
    // Written as text: rows are many, and building them as JSON values costs more than
    // rendering them.
    let mut row = format!("{{\"cells\":{}", Value::Array(cells));
    match include {
        Include::None => {}
        Include::Object => {
            row.push_str(",\"object\":");
            row.push_str(&entry.body);
        }
        Include::Metadata => {
            row.push_str(
                ",\"object\":{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":",
            );
            row.push_str(entry.metadata());
            row.push('}');
        }
    }
    row.push('}');
    row
}

/// The cells of the kinds not yet served through a strategy.
fn typed_cells(entry: &Entry, now: Timestamp) -> Vec<Value> {
    match entry.typed() {
        Typed::Pod(pod) => pod_cells(&pod, now),
        Typed::Event(event) => event_cells(&event, now),
        Typed::Namespace(ns) => vec![
            json!(ns.metadata.name.clone().unwrap_or_default()),
            json!(ns
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default()),
            json!(age(
                ns.metadata.creation_timestamp.as_ref().map(|t| &t.0),
                now
            )),
        ],
        Typed::Unreadable => vec![json!(entry.name)],
    }
}

/// A list's `metadata`: the resourceVersion it is current at and where the next page starts.
pub fn list_metadata(resource_version: i64, next: Option<String>) -> Value {
    let mut metadata = json!({"resourceVersion": resource_version.to_string()});
    if let Some(next) = next {
        metadata["continue"] = json!(next);
    }
    metadata
}

/// A Table (as JSON text) of rendered rows; `columns` is `null` in watch events after the
/// first, as the API server sends them.
pub fn table(
    columns: Value,
    rows: &[Arc<str>],
    resource_version: i64,
    next: Option<String>,
) -> String {
    let metadata = list_metadata(resource_version, next);
    let mut text = String::with_capacity(rows.iter().map(|r| r.len() + 1).sum::<usize>() + 2048);
    text.push_str(&format!(
        "{{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{metadata},\"columnDefinitions\":{columns},\"rows\":["
    ));
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(row);
    }
    text.push_str("]}");
    text
}

/// What `table` makes of one row with no columns, written straight into a watch stream's
/// buffer: the form of every watch event after the first, so the commonest by far.
pub fn write_watch_row(out: &mut impl std::fmt::Write, row: &str, resource_version: i64) {
    let _ = write!(
        out,
        "{{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{{\"resourceVersion\":\"{resource_version}\"}},\"columnDefinitions\":null,\"rows\":[{row}]}}"
    );
}

pub fn age(created: Option<&Timestamp>, now: Timestamp) -> String {
    match created {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".to_string(),
    }
}

/// READY, STATUS and RESTARTS as upstream's `printPod` computes them: a started sidecar
/// counts among the containers and, once ready, among the ready ones.
struct PodColumns {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i32,
    /// When the last container that restarted had ended.
    last_restart: Option<Timestamp>,
}

fn pod_columns(pod: &Pod) -> PodColumns {
    let status = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .or_else(|| status.phase.clone())
        .unwrap_or_else(|| "Pending".to_string());
    let inits = spec.init_containers.unwrap_or_default();
    let sidecar = |name: &str| {
        inits
            .iter()
            .any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"))
    };
    let total = spec.containers.len() + inits.iter().filter(|c| sidecar(&c.name)).count();
    let (mut ready, mut restarts, mut sidecar_restarts) = (0, 0, 0);
    let (mut last_restart, mut sidecar_last_restart) = (None, None);
    let ended = |c: &ContainerStatus| {
        let last = c.last_state.as_ref()?.terminated.as_ref()?;
        last.finished_at.as_ref().map(|t| t.0)
    };
    let mut initializing = false;
    for (i, container) in status.init_container_statuses.iter().flatten().enumerate() {
        restarts += container.restart_count;
        last_restart = last_restart.max(ended(container));
        if sidecar(&container.name) {
            sidecar_restarts += container.restart_count;
            sidecar_last_restart = sidecar_last_restart.max(ended(container));
        }
        let state = container.state.clone().unwrap_or_default();
        if state.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if sidecar(&container.name) && container.started == Some(true) {
            ready += usize::from(container.ready);
            continue;
        }
        reason = if let Some(terminated) = &state.terminated {
            match (&terminated.reason, terminated.signal) {
                (Some(r), _) if !r.is_empty() => format!("Init:{r}"),
                (_, Some(signal)) if signal != 0 => format!("Init:Signal:{signal}"),
                _ => format!("Init:ExitCode:{}", terminated.exit_code),
            }
        } else if let Some(waiting) = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{}", inits.len())
        };
        initializing = true;
        break;
    }
    let condition = |type_: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    if !initializing || condition("Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for container in status.container_statuses.iter().flatten().rev() {
            restarts += container.restart_count;
            last_restart = last_restart.max(ended(container));
            let state = container.state.clone().unwrap_or_default();
            if let Some(r) = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty())
            {
                reason = r;
            } else if let Some(terminated) = &state.terminated {
                reason = match (&terminated.reason, terminated.signal) {
                    (Some(r), _) if !r.is_empty() => r.clone(),
                    (_, Some(signal)) if signal != 0 => format!("Signal:{signal}"),
                    _ => format!("ExitCode:{}", terminated.exit_code),
                };
            } else if container.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition("Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }
    let terminal = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
    if pod.metadata.deletion_timestamp.is_some() && status.reason.as_deref() == Some("NodeLost") {
        reason = "Unknown".to_string();
    } else if pod.metadata.deletion_timestamp.is_some() && !terminal {
        reason = "Terminating".to_string();
    }
    PodColumns {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

fn pod_cells(pod: &Pod, now: Timestamp) -> Vec<Value> {
    let status = pod.status.clone().unwrap_or_default();
    let columns = pod_columns(pod);
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_else(|| "<none>".to_string());
    vec![
        json!(pod.metadata.name.clone().unwrap_or_default()),
        json!(format!("{}/{}", columns.ready, columns.total)),
        json!(columns.reason),
        json!(match columns.last_restart {
            // `2 (5m ago)`: how long since the last restart's container ended.
            Some(at) if columns.restarts != 0 => {
                format!("{} ({} ago)", columns.restarts, age(Some(&at), now))
            }
            _ => columns.restarts.to_string(),
        }),
        json!(age(
            pod.metadata.creation_timestamp.as_ref().map(|t| &t.0),
            now
        )),
        json!(status.pod_ip.unwrap_or_else(|| "<none>".to_string())),
        json!(node),
        json!("<none>"),
        json!("<none>"),
    ]
}

fn event_cells(event: &Event, now: Timestamp) -> Vec<Value> {
    let last = event
        .last_timestamp
        .as_ref()
        .or(event.first_timestamp.as_ref())
        .map(|t| &t.0)
        .or(event.event_time.as_ref().map(|t| &t.0));
    let first = event.first_timestamp.as_ref().map(|t| &t.0).or(last);
    let object = &event.involved_object;
    vec![
        json!(age(last, now)),
        json!(event.type_.clone().unwrap_or_default()),
        json!(event.reason.clone().unwrap_or_default()),
        json!(format!(
            "{}/{}",
            object.kind.clone().unwrap_or_default().to_lowercase(),
            object.name.clone().unwrap_or_default()
        )),
        json!(event.message.clone().unwrap_or_default()),
        json!(object.field_path.clone().unwrap_or_default()),
        json!(event
            .source
            .as_ref()
            .and_then(|s| s.component.clone())
            .unwrap_or_default()),
        json!(age(first, now)),
        json!(event.count.unwrap_or(1)),
        json!(event.metadata.name.clone().unwrap_or_default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(pod: Value) -> (String, String) {
        let pod: Pod = serde_json::from_value(pod).unwrap();
        let c = pod_columns(&pod);
        (format!("{}/{}", c.ready, c.total), c.reason)
    }

    #[test]
    fn a_started_sidecar_counts_in_ready_as_kubectl_prints_it() {
        let spec = json!({"initContainers": [
            {"name": "proxy", "image": "x", "restartPolicy": "Always"},
            {"name": "setup", "image": "x"}],
            "containers": [{"name": "main", "image": "x"}]});
        let running = json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
        let done = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        let waiting = json!({"waiting": {"reason": "PodInitializing"}});
        let status = |proxy: &Value, setup: &Value, main: &Value, main_ready: bool| {
            json!({"metadata": {"name": "p"}, "spec": spec, "status": {"phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                "initContainerStatuses": [
                    {"name": "proxy", "image": "x", "imageID": "", "ready": true, "started": true, "restartCount": 0, "state": proxy},
                    {"name": "setup", "image": "x", "imageID": "", "ready": true, "restartCount": 0, "state": setup}],
                "containerStatuses": [
                    {"name": "main", "image": "x", "imageID": "", "ready": main_ready, "restartCount": 0, "state": main}]}})
        };
        assert_eq!(
            columns(status(&running, &done, &running, true)),
            ("2/2".to_string(), "Running".to_string())
        );
        let mut initializing = status(&running, &running, &waiting, false);
        initializing["status"]["conditions"][0]["status"] = json!("False");
        initializing["status"]["phase"] = json!("Pending");
        initializing["status"]["initContainerStatuses"][1]["ready"] = json!(false);
        assert_eq!(
            columns(initializing),
            ("1/2".to_string(), "Init:1/2".to_string())
        );
    }

    #[test]
    fn restarts_say_how_long_ago_the_last_one_was() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "main", "image": "x"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "main", "image": "x",
                "imageID": "", "ready": true, "restartCount": 2,
                "state": {"running": {"startedAt": "2026-01-01T00:05:00Z"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T00:04:00Z"}}}]}}))
        .unwrap();
        let now: Timestamp = "2026-01-01T00:06:30Z".parse().unwrap();
        assert_eq!(pod_cells(&pod, now)[3], json!("2 (2m30s ago)"));
        let mut fresh = pod.clone();
        let status = fresh.status.as_mut().unwrap();
        status.container_statuses.as_mut().unwrap()[0].restart_count = 0;
        status.container_statuses.as_mut().unwrap()[0].last_state = None;
        assert_eq!(pod_cells(&fresh, now)[3], json!("0"));
    }

    #[test]
    fn a_watch_row_is_the_one_row_table_without_columns() {
        let row: Arc<str> =
            r#"{"cells":["a","Running"],"object":{"kind":"PartialObjectMetadata"}}"#.into();
        let mut written = String::new();
        write_watch_row(&mut written, &row, 42);
        assert_eq!(written, table(Value::Null, &[row], 42, None));
    }
}
