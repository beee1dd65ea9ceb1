//! Every container run's output, read from the cluster as it is written and saved where a
//! local run saves it (`DIR/logs/<namespace>_<pod>_<container>_<restart>.log`), so it stays
//! after the cluster deletes the pod. A bounded number of streams are open at once; a run
//! that ended before its turn came is read whole, and the one before a restart through
//! `previous`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::AsyncBufReadExt;
use joblet_api::k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{Api, LogParams};
use kube::Client;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How a run's output is read: followed while it runs (or read whole once it ended), or,
/// once the container restarted, as its previous run; `Recheck` reads a run followed while
/// it could still be restarted again as the previous one, and keeps that copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Current,
    Previous,
    Recheck,
}

/// What has been read of a container's runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The first run not read yet.
    pub next: i32,
    /// A run read as the current one while the kubelet could still restart it: the log API
    /// names no run, and a container restarted at once (as the first restart is) may have
    /// answered with its next run. Read again as `previous` once the restart is seen.
    pub unsure: Option<i32>,
}

/// Which runs of a container to read now, given what was read, the container's status, and
/// whether the kubelet may still restart it once it ended: the run before the current one
/// (missed, or read unsure) through `previous`, and the current one while it runs or once it
/// ended for good. An ended run that may restart waits for the restart to be seen. Earlier
/// runs are gone from the node, which keeps one previous run.
pub fn runs_to_read(
    progress: Progress,
    status: &ContainerStatus,
    may_restart: impl Fn(i32) -> bool,
) -> (Vec<(i32, Source)>, Progress) {
    let current = status.restart_count;
    let mut runs = Vec::new();
    let mut unsure = progress.unsure;
    if progress.next < current {
        runs.push((current - 1, Source::Previous));
    } else if unsure.is_some_and(|run| run == current - 1) {
        runs.push((current - 1, Source::Recheck));
    }
    if unsure.is_some_and(|run| run < current) {
        unsure = None;
    }
    let mut next = progress.next.max(current);
    let state = status.state.as_ref();
    let ended_for_good =
        (state.and_then(|s| s.terminated.as_ref())).is_some_and(|t| !may_restart(t.exit_code));
    let running = state.is_some_and(|s| s.running.is_some());
    if next == current && (running || ended_for_good) {
        runs.push((current, Source::Current));
        next = current + 1;
        // While it runs, it may end and be restarted before the request arrives.
        if running && may_restart(1) {
            unsure = Some(current);
        }
    }
    (runs, Progress { next, unsure })
}

pub struct LogSaver {
    client: Client,
    dir: PathBuf,
    /// Copy each line to stdout, prefixed `[pod/NAME/CONTAINER]`.
    stream: bool,
    streams: Arc<Semaphore>,
    progress: HashMap<(String, String, String), Progress>,
    reading: JoinSet<Result<(), String>>,
    problems: Arc<Mutex<Vec<String>>>,
    rechecked: Rechecked,
}

/// The logs replaced by a recheck: a follow of the same run that starts later must not
/// overwrite them.
type Rechecked = Arc<Mutex<std::collections::HashSet<PathBuf>>>;

impl LogSaver {
    pub fn new(client: Client, dir: PathBuf, stream: bool, max_streams: usize) -> LogSaver {
        LogSaver {
            client,
            dir,
            stream,
            streams: Arc::new(Semaphore::new(max_streams)),
            progress: HashMap::new(),
            reading: JoinSet::new(),
            problems: Arc::default(),
            rechecked: Arc::default(),
        }
    }

    /// Starts reading what the pod's status says can be read and was not yet.
    pub fn pod(&mut self, pod: &Pod) {
        let (Some(namespace), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
            return;
        };
        let Some(status) = &pod.status else {
            return;
        };
        let init = (status.init_container_statuses.iter().flatten()).map(|c| (c, true));
        let regular = (status.container_statuses.iter().flatten()).map(|c| (c, false));
        for (container, is_init) in init.chain(regular) {
            let key = (namespace.clone(), name.clone(), container.name.clone());
            let progress = self.progress.entry(key).or_default();
            let may_restart = |exit| may_restart(pod, &container.name, is_init, exit);
            let (runs, after) = runs_to_read(*progress, container, may_restart);
            *progress = after;
            for (run, source) in runs {
                let read = Read {
                    pods: Api::namespaced(self.client.clone(), namespace),
                    path: joblet_runtime::log_path(
                        &self.dir,
                        namespace,
                        name,
                        &container.name,
                        run,
                    ),
                    pod: name.clone(),
                    container: container.name.clone(),
                    source,
                    stream: self.stream && source != Source::Recheck,
                    rechecked: self.rechecked.clone(),
                };
                let streams = self.streams.clone();
                self.reading.spawn(async move {
                    let _open = streams.acquire_owned().await.map_err(|e| e.to_string())?;
                    read.save().await
                });
            }
        }
        self.forget_finished();
    }

    /// Forgets the pod's containers once it is gone.
    pub fn pod_deleted(&mut self, pod: &Pod) {
        let (namespace, name) = (&pod.metadata.namespace, &pod.metadata.name);
        self.progress
            .retain(|(ns, pod, _), _| Some(ns) != namespace.as_ref() || Some(pod) != name.as_ref());
    }

    fn forget_finished(&mut self) {
        while let Some(done) = self.reading.try_join_next() {
            self.keep_problem(done);
        }
    }

    fn keep_problem(&self, done: Result<Result<(), String>, tokio::task::JoinError>) {
        let problem = match done {
            Ok(Ok(())) => return,
            Ok(Err(problem)) => problem,
            Err(e) => e.to_string(),
        };
        self.problems.lock().expect("log problems").push(problem);
    }

    /// Stops every read at once.
    pub async fn abandon(mut self) {
        self.reading.shutdown().await;
    }

    /// Waits for every stream to end (each ends when its container does), and returns what
    /// could not be saved.
    pub async fn finish(mut self) -> Vec<String> {
        while let Some(done) = self.reading.join_next().await {
            self.keep_problem(done);
        }
        std::mem::take(&mut self.problems.lock().expect("log problems"))
    }
}

/// Whether the kubelet may start a container again after it exited with `exit`: not in an
/// ended or deleted pod; a sidecar always; others by the pod's `restartPolicy`.
fn may_restart(pod: &Pod, container: &str, is_init: bool, exit: i32) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) || pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let Some(spec) = &pod.spec else {
        return true;
    };
    let sidecar = is_init
        && (spec.init_containers.iter().flatten())
            .any(|c| c.name == container && c.restart_policy.as_deref() == Some("Always"));
    match spec.restart_policy.as_deref() {
        _ if sidecar => true,
        Some("Never") => false,
        Some("OnFailure") => exit != 0,
        _ => true,
    }
}

struct Read {
    pods: Api<Pod>,
    path: PathBuf,
    pod: String,
    container: String,
    source: Source,
    stream: bool,
    rechecked: Rechecked,
}

impl Read {
    async fn save(self) -> Result<(), String> {
        let what = format!("logs of pod/{}/{}", self.pod, self.container);
        let params = LogParams {
            container: Some(self.container.clone()),
            follow: self.source == Source::Current,
            previous: self.source != Source::Current,
            ..LogParams::default()
        };
        let mut lines = (self.pods.log_stream(&self.pod, &params).await)
            .map_err(|e| format!("{what}: not saved: {}", crate::connect::said(&e)))?;
        let path = match self.source {
            Source::Recheck => recheck_path(&self.path),
            _ => self.path.clone(),
        };
        let mut file = {
            let rechecked = self.rechecked.lock().expect("rechecked logs");
            if self.source == Source::Current && rechecked.contains(&self.path) {
                None
            } else {
                let file = std::fs::File::create(&path)
                    .map_err(|e| format!("{what}: {}: {e}", path.display()))?;
                Some(tokio::fs::File::from_std(file))
            }
        };
        let prefix = format!("[pod/{}/{}] ", self.pod, self.container);
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = lines.read_until(b'\n', &mut line).await;
            let n = read.map_err(|e| format!("{what}: cut short: {e}"))?;
            if n == 0 {
                break;
            }
            if let Some(file) = &mut file {
                file.write_all(&line)
                    .await
                    .map_err(|e| format!("{what}: {}: {e}", path.display()))?;
            }
            if self.stream {
                let mut out = Vec::with_capacity(prefix.len() + line.len() + 1);
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(&line);
                if !line.ends_with(b"\n") {
                    out.push(b'\n');
                }
                let mut stdout = tokio::io::stdout();
                let _ = stdout.write_all(&out).await;
                let _ = stdout.flush().await;
            }
        }
        if let Some(file) = &mut file {
            file.flush()
                .await
                .map_err(|e| format!("{what}: {}: {e}", path.display()))?;
        }
        if self.source == Source::Recheck {
            // A follow of this run still going writes on into the file replaced here.
            let mut rechecked = self.rechecked.lock().expect("rechecked logs");
            std::fs::rename(&path, &self.path)
                .map_err(|e| format!("{what}: {}: {e}", self.path.display()))?;
            rechecked.insert(self.path.clone());
        }
        Ok(())
    }
}

fn recheck_path(log: &std::path::Path) -> PathBuf {
    let mut path = log.as_os_str().to_owned();
    path.push(".recheck");
    PathBuf::from(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(restarts: i32, state: serde_json::Value) -> ContainerStatus {
        serde_json::from_value(json!({
            "name": "main", "image": "x", "imageID": "", "ready": false,
            "restartCount": restarts, "state": state,
        }))
        .unwrap()
    }

    const NO_RESTART: fn(i32) -> bool = |_| false;
    const RESTARTS: fn(i32) -> bool = |_| true;

    fn read(next: i32, unsure: Option<i32>) -> Progress {
        Progress { next, unsure }
    }

    #[test]
    fn a_run_is_read_once_it_started_and_once_only() {
        let waiting = status(0, json!({"waiting": {"reason": "ContainerCreating"}}));
        assert_eq!(
            runs_to_read(read(0, None), &waiting, NO_RESTART),
            (vec![], read(0, None))
        );
        let running = status(0, json!({"running": {}}));
        let never = runs_to_read(read(0, None), &running, NO_RESTART);
        assert_eq!(never, (vec![(0, Source::Current)], read(1, None)));
        assert_eq!(
            runs_to_read(read(1, None), &running, NO_RESTART),
            (vec![], read(1, None))
        );
        let ended = status(0, json!({"terminated": {"exitCode": 0}}));
        assert_eq!(
            runs_to_read(read(1, None), &ended, NO_RESTART),
            (vec![], read(1, None))
        );
        // Never seen running, ended for good: read whole.
        let whole = runs_to_read(read(0, None), &ended, NO_RESTART);
        assert_eq!(whole, (vec![(0, Source::Current)], read(1, None)));
    }

    #[test]
    fn an_ended_run_that_may_restart_is_read_once_the_restart_is_seen() {
        let ended = status(0, json!({"terminated": {"exitCode": 1}}));
        // The log API names no run: asking now might bring the next one's.
        assert_eq!(
            runs_to_read(read(0, None), &ended, RESTARTS),
            (vec![], read(0, None))
        );
        let backing_off = status(1, json!({"waiting": {"reason": "CrashLoopBackOff"}}));
        let previous = runs_to_read(read(0, None), &backing_off, RESTARTS);
        assert_eq!(previous, (vec![(0, Source::Previous)], read(1, None)));
    }

    #[test]
    fn a_run_followed_while_it_could_restart_is_read_again_after_the_restart() {
        let running = status(0, json!({"running": {}}));
        let followed = runs_to_read(read(0, None), &running, RESTARTS);
        assert_eq!(followed, (vec![(0, Source::Current)], read(1, Some(0))));
        // Restarted at once: run 0 is read again as the previous one, and run 1 followed.
        let again = status(1, json!({"running": {}}));
        let both = runs_to_read(read(1, Some(0)), &again, RESTARTS);
        assert_eq!(
            both,
            (
                vec![(0, Source::Recheck), (1, Source::Current)],
                read(2, Some(1))
            )
        );
        // Run 1 ended for good: nothing to recheck.
        let ended = status(1, json!({"terminated": {"exitCode": 0}}));
        assert_eq!(
            runs_to_read(read(2, Some(1)), &ended, NO_RESTART),
            (vec![], read(2, Some(1)))
        );
    }

    #[test]
    fn a_run_missed_before_a_restart_is_read_as_the_previous_one() {
        // Seen after three restarts: runs 0 and 1 are gone from the node.
        let later = status(3, json!({"running": {}}));
        assert_eq!(
            runs_to_read(read(0, None), &later, RESTARTS),
            (
                vec![(2, Source::Previous), (3, Source::Current)],
                read(4, Some(3))
            )
        );
    }

    #[test]
    fn who_may_restart_follows_the_pods_policy_and_phase() {
        let pod = |policy: &str, phase: &str| -> Pod {
            serde_json::from_value(json!({
                "spec": {
                    "restartPolicy": policy,
                    "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                    "containers": [{"name": "main"}],
                },
                "status": {"phase": phase},
            }))
            .unwrap()
        };
        assert!(may_restart(&pod("OnFailure", "Running"), "main", false, 1));
        assert!(!may_restart(&pod("OnFailure", "Running"), "main", false, 0));
        assert!(!may_restart(&pod("Never", "Running"), "main", false, 1));
        assert!(
            may_restart(&pod("Never", "Running"), "proxy", true, 0),
            "a sidecar"
        );
        assert!(!may_restart(&pod("OnFailure", "Failed"), "main", false, 1));
    }
}
