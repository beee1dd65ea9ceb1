//! `pods/{name}/log`: a container's output from its log file; with `follow`, a stream
//! that waits for the container to start and ends when it ends.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use joblet_api::k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use tokio::sync::mpsc;

use joblet_driver::SystemClock;
use joblet_runtime::read_log_times;

use crate::api::{streaming, AppState};
use crate::cache::Cache;
use crate::errors::ApiError;
use crate::registry::request::{is_true, ObjectRef};

const POLL: Duration = Duration::from_millis(100);

struct LogRequest {
    namespace: String,
    pod: String,
    container: String,
    /// Which run of the container (its restart count then).
    run: i32,
    tail: Option<usize>,
    limit: Option<usize>,
    timestamps: bool,
    /// Only lines written at or after this time (Unix nanoseconds).
    since: Option<i64>,
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
        timestamps: is_true(params.get("timestamps")),
        since: params
            .get("sinceSeconds")
            .and_then(|s| s.parse::<i64>().ok())
            .map(|s| SystemClock.now_timestamp().as_nanosecond() as i64 - s * 1_000_000_000),
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

/// The log so far, with `sinceSeconds`, `timestamps`, `tailLines` and `limitBytes` applied.
fn read_all(path: &Path, request: &LogRequest) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    let rest = lines(&bytes, 0, path, request, true, &mut out);
    debug_assert!(rest == bytes.len());
    finish(out, request)
}

fn finish(mut out: Vec<u8>, request: &LogRequest) -> Vec<u8> {
    if let Some(tail) = request.tail {
        let start = tail_start(&out, tail);
        out.drain(..start);
    }
    if let Some(limit) = request.limit {
        out.truncate(limit);
    }
    out
}

/// Appends the lines of `bytes` (read at `offset` in the log) to `out`, each with its time
/// when asked, keeping those since `request.since`; a last line without its newline is
/// left unless `to_end`. Returns how many bytes were used.
fn lines(
    bytes: &[u8],
    offset: u64,
    path: &Path,
    request: &LogRequest,
    to_end: bool,
    out: &mut Vec<u8>,
) -> usize {
    let needs_times = request.timestamps || request.since.is_some();
    let times = if needs_times {
        read_log_times(path)
    } else {
        Vec::new()
    };
    let mut used = 0;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        if !line.ends_with(b"\n") && !to_end {
            break;
        }
        let at = offset + used as u64;
        used += line.len();
        if !needs_times {
            out.extend_from_slice(line);
            continue;
        }
        // The time of the piece the line starts in.
        let piece = times.partition_point(|(start, _)| *start <= at);
        let nanos = piece.checked_sub(1).map_or(0, |i| times[i].1);
        if request.since.is_some_and(|since| nanos < since) {
            continue;
        }
        if request.timestamps {
            out.extend_from_slice(rfc3339_nano(nanos).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    used
}

/// `2026-11-26T23:26:56.313976000Z`, as the kubelet writes log times.
fn rfc3339_nano(nanos: i64) -> String {
    let seconds = nanos.div_euclid(1_000_000_000);
    let fraction = nanos.rem_euclid(1_000_000_000);
    let time = joblet_api::k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap_or_default();
    format!("{}.{fraction:09}Z", time.strftime("%Y-%m-%dT%H:%M:%S"))
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
    // How far the log has been read, and what of it is not sent yet (an unfinished line).
    let mut position: u64 = 0;
    let mut pending: Vec<u8> = Vec::new();
    let mut first = true;
    let mut sent = 0usize;
    loop {
        // Read what is there before deciding the container has ended: the runtime
        // finishes the log before it reports the exit.
        let done = ended(&cache, &request);
        let Ok(mut file) = std::fs::File::open(&path) else {
            if done || !wait(&tx).await {
                return;
            }
            continue;
        };
        let before = pending.len();
        if file.seek(SeekFrom::Start(position)).is_ok() {
            let _ = file.read_to_end(&mut pending);
        }
        position += (pending.len() - before) as u64;
        let mut out = Vec::new();
        let base = position - pending.len() as u64;
        let used = lines(&pending, base, &path, &request, done, &mut out);
        pending.drain(..used);
        if std::mem::take(&mut first) {
            if let Some(tail) = request.tail {
                let start = tail_start(&out, tail);
                out.drain(..start);
            }
        }
        if let Some(limit) = request.limit {
            out.truncate(limit.saturating_sub(sent));
        }
        if !out.is_empty() {
            sent += out.len();
            if tx.send(Bytes::from(out)).await.is_err() {
                return;
            }
        }
        if done || request.limit.is_some_and(|l| sent >= l) || !wait(&tx).await {
            return;
        }
    }
}

/// Waits a poll interval; false once the client is gone.
async fn wait(tx: &mpsc::Sender<Bytes>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(POLL) => true,
        _ = tx.closed() => false,
    }
}

/// Removes the logs of pods that no longer exist once they are older than `retention`;
/// until then they stay on disk, where the deleted pod's output can still be read.
pub async fn sweep_forever(cache: Arc<Cache>, dir: PathBuf, retention: Duration) {
    loop {
        sweep(&cache, &dir, retention);
        tokio::time::sleep(retention.clamp(Duration::from_secs(1), Duration::from_secs(60))).await;
    }
}

fn sweep(cache: &Cache, dir: &Path, retention: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name
            .strip_suffix(".log.times")
            .or(name.strip_suffix(".log"))
        else {
            continue;
        };
        // <namespace>_<pod>_<container>_<restart>: `_` occurs in no Kubernetes name.
        let parts: Vec<&str> = stem.split('_').collect();
        let [namespace, pod, ..] = parts.as_slice() else {
            continue;
        };
        if cache.get("Pod", namespace, pod).is_some() {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= retention);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn lines_carry_the_time_of_the_piece_they_start_in() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("default_p_main_0.log");
        std::fs::write(&log, "one\ntwo\nthree\n").unwrap();
        let second = 1_700_000_000_000_000_000i64;
        let mut times = Vec::new();
        for (offset, nanos) in [(0u64, second), (8, second + 2_500_000_000)] {
            times.extend_from_slice(&offset.to_le_bytes());
            times.extend_from_slice(&nanos.to_le_bytes());
        }
        std::fs::write(joblet_runtime::log_times_path(&log), times).unwrap();
        let request = |timestamps, since| LogRequest {
            namespace: "default".into(),
            pod: "p".into(),
            container: "main".into(),
            run: 0,
            tail: None,
            limit: None,
            timestamps,
            since,
        };
        let text = String::from_utf8(read_all(&log, &request(true, None))).unwrap();
        assert_eq!(
            text,
            "2023-11-14T22:13:20.000000000Z one\n2023-11-14T22:13:20.000000000Z two\n2023-11-14T22:13:22.500000000Z three\n"
        );
        let recent = read_all(&log, &request(false, Some(second + 1)));
        assert_eq!(recent, b"three\n");
    }

    #[test]
    fn logs_of_deleted_pods_go_after_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(Vec::new(), 0);
        let log = dir.path().join("default_gone_main_0.log");
        std::fs::write(&log, "bye\n").unwrap();
        sweep(&cache, dir.path(), Duration::from_secs(3600));
        assert!(log.exists(), "kept during the retention");
        sweep(&cache, dir.path(), Duration::ZERO);
        assert!(!log.exists());
    }
}
