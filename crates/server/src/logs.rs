//! `pods/{name}/log`: a container's output from its log file; with `follow`, a stream
//! that waits for the container to start and ends when it ends.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use joblet_api::k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use tokio::sync::mpsc;

use crate::api::{is_true, streaming, AppState, ObjectRef};
use crate::cache::Cache;
use crate::errors::ApiError;

const POLL: Duration = Duration::from_millis(100);

struct LogRequest {
    namespace: String,
    pod: String,
    container: String,
    /// Which run of the container (its restart count then).
    run: i32,
    tail: Option<usize>,
    limit: Option<usize>,
}

pub async fn serve(
    state: &AppState,
    object: &ObjectRef,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let entry = state
        .cache
        .get("Pod", &object.namespace, &object.name)
        .ok_or_else(|| ApiError::not_found(&crate::resources::PODS, &object.name))?;
    let pod: Pod = serde_json::from_str(&entry.body)
        .map_err(|e| ApiError::internal(format!("stored pod: {e}")))?;
    let name = &object.name;
    let spec = pod.spec.clone().unwrap_or_default();
    let names: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .map(|c| c.name.clone())
        .collect();
    let container = match params.get("container") {
        Some(c) => c.clone(),
        None if spec.containers.len() == 1 => spec.containers[0].name.clone(),
        None => {
            let main: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                main.join(" ")
            )));
        }
    };
    if !names.contains(&container) {
        return Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    if params.contains_key("timestamps") && is_true(params.get("timestamps")) {
        return Err(ApiError::bad_request(
            "joblet does not record log timestamps yet: drop --timestamps",
        ));
    }
    let status = container_status(&pod, &container);
    let restarts = status.as_ref().map_or(0, |s| s.restart_count);
    let previous = is_true(params.get("previous"));
    let run = if previous {
        if restarts == 0 {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            )));
        }
        restarts - 1
    } else {
        restarts
    };
    let request = LogRequest {
        namespace: object.namespace.clone(),
        pod: name.clone(),
        container: container.clone(),
        run,
        tail: params.get("tailLines").and_then(|t| t.parse().ok()),
        limit: params.get("limitBytes").and_then(|t| t.parse().ok()),
    };
    let path = joblet_runtime::log_path(&state.log_dir, &request.namespace, name, &container, run);
    let started = status.as_ref().is_some_and(|s| {
        s.state
            .as_ref()
            .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
    }) || previous
        || path.exists();
    if is_true(params.get("follow")) && !previous {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(follow(state.cache.clone(), path, request, tx));
        return Ok(streaming("text/plain", rx));
    }
    if !started {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    }
    let text = read_all(&path, &request);
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response())
}

fn container_status(pod: &Pod, container: &str) -> Option<ContainerStatus> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|s| s.name == container)
        .cloned()
}

/// The log so far, with `tailLines` and `limitBytes` applied.
fn read_all(path: &PathBuf, request: &LogRequest) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    if let Some(tail) = request.tail {
        let start = tail_start(&bytes, tail);
        bytes.drain(..start);
    }
    if let Some(limit) = request.limit {
        bytes.truncate(limit);
    }
    bytes
}

/// Where the last `lines` lines begin.
fn tail_start(bytes: &[u8], lines: usize) -> usize {
    if lines == 0 {
        return bytes.len();
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == lines {
                return i + 1;
            }
        }
    }
    0
}

/// Whether the followed run of the container has ended (or its pod is gone).
fn ended(cache: &Cache, request: &LogRequest) -> bool {
    let Some(entry) = cache.get("Pod", &request.namespace, &request.pod) else {
        return true;
    };
    let Ok(pod) = serde_json::from_str::<Pod>(&entry.body) else {
        return true;
    };
    let terminal = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    match container_status(&pod, &request.container) {
        Some(status) => {
            status.restart_count != request.run
                || status.state.is_some_and(|s| s.terminated.is_some())
                || terminal
        }
        None => terminal,
    }
}

async fn follow(cache: Arc<Cache>, path: PathBuf, request: LogRequest, tx: mpsc::Sender<Bytes>) {
    let mut offset: Option<u64> = None;
    let mut sent = 0usize;
    loop {
        // Read what is there before deciding the container has ended: the runtime
        // finishes the log before it reports the exit.
        let done = ended(&cache, &request);
        if let Ok(mut file) = std::fs::File::open(&path) {
            let mut chunk = Vec::new();
            match offset {
                None => {
                    let _ = file.read_to_end(&mut chunk);
                    offset = Some(chunk.len() as u64);
                    let start = request.tail.map_or(0, |t| tail_start(&chunk, t));
                    chunk.drain(..start);
                }
                Some(at) => {
                    if file.seek(SeekFrom::Start(at)).is_ok() {
                        let _ = file.read_to_end(&mut chunk);
                    }
                    offset = Some(at + chunk.len() as u64);
                }
            }
            if let Some(limit) = request.limit {
                chunk.truncate(limit.saturating_sub(sent));
            }
            if !chunk.is_empty() {
                sent += chunk.len();
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    return;
                }
            }
            if request.limit.is_some_and(|l| sent >= l) {
                return;
            }
        }
        if done {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tail_start;

    #[test]
    fn tail_counts_lines_from_the_end() {
        let log = b"one\ntwo\nthree\n";
        assert_eq!(&log[tail_start(log, 1)..], b"three\n");
        assert_eq!(&log[tail_start(log, 2)..], b"two\nthree\n");
        assert_eq!(&log[tail_start(log, 9)..], log);
        assert_eq!(&log[tail_start(log, 0)..], b"");
        assert_eq!(
            &b"no newline"[tail_start(b"no newline", 1)..],
            b"no newline"
        );
    }
}
