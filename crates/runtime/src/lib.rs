//! Pods as local processes, the way the kubelet runs them: init containers one by one,
//! then every container together; each container in its own process group, torn down
//! whole when its main process ends; `OnFailure` restarts with the kubelet's back-off;
//! SIGTERM then SIGKILL after the grace period on deletion; kubelet-style `PodStatus`.
//!
//! The runtime knows nothing of Jobs: it takes Pod objects and reports their status.

mod container;
pub mod env;
mod leftover;
mod lost;
mod reaper;
mod supervised;
mod supervisor;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use joblet_api::k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use joblet_api::k8s_openapi::jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use container::{run_container, ContainerContext, Outcome};
pub use leftover::kill_leftover;
pub use lost::mark_lost;
pub use reaper::Exit;
use reaper::Reaper;
pub use supervised::SupervisorCommand;
pub use supervisor::supervise;

/// Entry points for the fuzz targets (`fuzz/`): what the supervisor and the engine read
/// from each other and from the journal.
#[doc(hidden)]
pub mod fuzz {
    use crate::supervisor::{parse_journal, pod_update, Report, Request};

    pub fn read_journal(text: &str) {
        let _ = parse_journal(text);
    }

    pub fn read_wire_line(line: &str) {
        let _ = serde_json::from_str::<Request>(line);
        if let Ok(report) = serde_json::from_str::<Report>(line) {
            let _ = pod_update(report);
        }
    }
}

/// The wall clock, given by whoever owns time (the driver), so tests can fake it.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where container logs are written, one file per container run.
    pub log_dir: PathBuf,
    /// The kubelet's restart back-off for `OnFailure` (upstream: 10 s doubling to 5 min).
    pub restart_backoff_base: Duration,
    pub restart_backoff_max: Duration,
    /// Also copy every log line to stdout, prefixed `[pod/NAME/CONTAINER]`.
    pub stream_logs: bool,
}

/// A new status for a pod; terminal once its phase is Succeeded or Failed.
#[derive(Clone, Debug)]
pub struct PodUpdate {
    pub namespace: String,
    pub name: String,
    pub status: PodStatus,
}

impl PodUpdate {
    /// The pod's last status: Succeeded or Failed.
    pub fn is_final(&self) -> bool {
        matches!(self.status.phase.as_deref(), Some("Succeeded" | "Failed"))
    }
}

/// A pod being stopped, and whether Kubernetes would call it a disruption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopRequest {
    pub grace: Duration,
    pub disruption: Option<Disruption>,
}

impl StopRequest {
    /// A later stop merged into this one: the shorter grace, the first disruption.
    pub fn merge(self, later: StopRequest) -> StopRequest {
        StopRequest {
            grace: self.grace.min(later.grace),
            disruption: self.disruption.or(later.disruption),
        }
    }
}

/// The `DisruptionTarget` condition a stopped pod gets, as the kubelet or the API server
/// sets it (pod failure policies match on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disruption {
    pub reason: &'static str,
    pub message: &'static str,
}

impl Disruption {
    /// Adds the `DisruptionTarget` condition to a pod's status.
    pub(crate) fn mark(self, status: &mut PodStatus, now: &Time) {
        status
            .conditions
            .get_or_insert_with(Vec::new)
            .push(PodCondition {
                type_: "DisruptionTarget".to_string(),
                status: "True".to_string(),
                reason: Some(self.reason.to_string()),
                message: Some(self.message.to_string()),
                last_transition_time: Some(now.clone()),
                ..Default::default()
            });
    }

    /// What the kubelet records on a graceful node shutdown; joblet's own shutdown is one.
    pub const NODE_SHUTDOWN: Disruption = Disruption {
        reason: "TerminationByKubelet",
        message: "Pod was terminated in response to imminent node shutdown.",
    };
    /// What the API server records when a pod is evicted (`pods/{name}/eviction`).
    pub const EVICTION: Disruption = Disruption {
        reason: "EvictionByEvictionAPI",
        message: "Eviction API: evicting",
    };
}

/// Asks a running pod to stop; shared by the pod table and the pod's deadline timer.
pub type StopSender = Arc<watch::Sender<Option<StopRequest>>>;

struct Shared {
    config: RuntimeConfig,
    /// Pods may be started from any thread; their tasks run here.
    handle: tokio::runtime::Handle,
    clock: Arc<dyn Clock>,
    reaper: Reaper,
    updates: mpsc::UnboundedSender<PodUpdate>,
    pods: Mutex<HashMap<(String, String), StopSender>>,
}

/// Where pods run: in this process, or under a supervisor process that outlives it.
#[derive(Clone)]
pub struct Runtime(Backend);

#[derive(Clone)]
enum Backend {
    InProcess(Local),
    Supervised(Arc<supervised::Client>),
}

impl Runtime {
    /// Pods as children of this process: they end with it. Must be called within a Tokio
    /// runtime, where the pods' tasks will run.
    pub fn new(
        config: RuntimeConfig,
        clock: Arc<dyn Clock>,
        updates: mpsc::UnboundedSender<PodUpdate>,
    ) -> std::io::Result<Self> {
        Ok(Runtime(Backend::InProcess(Local::new(
            config, clock, updates,
        )?)))
    }

    /// Pods under the supervisor of `dir` (started with `command` if none runs), which
    /// outlives this process. The pods it already holds are reported first, as updates;
    /// [`Runtime::adopted`] tells which they were.
    pub fn supervised(
        dir: &Path,
        command: SupervisorCommand,
        clock: Arc<dyn Clock>,
        updates: mpsc::UnboundedSender<PodUpdate>,
    ) -> std::io::Result<Self> {
        let client = supervised::Client::connect(dir, command, clock, updates)?;
        Ok(Runtime(Backend::Supervised(client)))
    }

    /// Starts pods; their status arrives as [`PodUpdate`]s until a terminal one. May be
    /// called from any thread.
    pub fn start(&self, pods: Vec<Pod>) {
        match &self.0 {
            Backend::InProcess(local) => pods.into_iter().for_each(|pod| local.start(pod)),
            Backend::Supervised(client) => client.start(pods),
        }
    }

    /// Announces a pod that will be started: a stop requested before its start is kept,
    /// and the pod then never runs. Counts as running until started and ended, or forgotten.
    pub fn reserve(&self, namespace: &str, name: &str) {
        match &self.0 {
            Backend::InProcess(local) => {
                local.reserve(namespace, name);
            }
            Backend::Supervised(client) => client.reserve(namespace, name),
        }
    }

    /// Drops a reserved pod that will not be started after all.
    pub fn forget(&self, namespace: &str, name: &str) {
        match &self.0 {
            Backend::InProcess(local) => local.forget(namespace, name),
            Backend::Supervised(client) => client.forget(namespace, name),
        }
    }

    /// Stops a running pod: SIGTERM to every container's process group, SIGKILL after
    /// `grace` (the pod's `terminationGracePeriodSeconds` when `None`). A `disruption`
    /// adds the `DisruptionTarget` condition to the pod's final status. Unknown or already
    /// finished pods are ignored.
    pub fn stop(
        &self,
        namespace: &str,
        name: &str,
        grace: Option<Duration>,
        disruption: Option<Disruption>,
    ) {
        match &self.0 {
            Backend::InProcess(local) => local.stop(namespace, name, grace, disruption),
            Backend::Supervised(client) => client.stop(namespace, name, grace, disruption),
        }
    }

    /// These pods' final statuses (namespace, name) are recorded for good: a supervisor may
    /// forget them.
    pub fn acknowledge(&self, pods: Vec<(String, String)>) {
        if let Backend::Supervised(client) = &self.0 {
            client.acknowledge(pods);
        }
    }

    /// Whether the supervisor held this pod when this runtime connected to it: a pod that
    /// ran on while no engine watched, or finished then.
    pub fn adopted(&self, namespace: &str, name: &str) -> bool {
        match &self.0 {
            Backend::InProcess(_) => false,
            Backend::Supervised(client) => client.adopted(namespace, name),
        }
    }

    /// Pods whose processes have not all ended yet.
    pub fn running(&self) -> usize {
        match &self.0 {
            Backend::InProcess(local) => local.running(),
            Backend::Supervised(client) => client.running(),
        }
    }
}

/// Pods run by this process's own tasks; also what a supervisor runs.
#[derive(Clone)]
pub(crate) struct Local {
    shared: Arc<Shared>,
}

impl Local {
    pub(crate) fn new(
        config: RuntimeConfig,
        clock: Arc<dyn Clock>,
        updates: mpsc::UnboundedSender<PodUpdate>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&config.log_dir)?;
        Ok(Local {
            shared: Arc::new(Shared {
                config,
                handle: tokio::runtime::Handle::current(),
                clock,
                reaper: Reaper::get(),
                updates,
                pods: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub(crate) fn start(&self, pod: Pod) {
        let key = pod_key(&pod);
        let stop_tx = self.reserve(&key.0, &key.1);
        let stop_rx = stop_tx.subscribe();
        let shared = self.shared.clone();
        self.shared
            .handle
            .spawn(async move { run_pod(&shared, pod, stop_tx, stop_rx).await });
    }

    pub(crate) fn reserve(&self, namespace: &str, name: &str) -> StopSender {
        let key = (namespace.to_string(), name.to_string());
        self.shared
            .pods
            .lock()
            .expect("pod table")
            .entry(key)
            .or_insert_with(|| Arc::new(watch::channel(None).0))
            .clone()
    }

    pub(crate) fn forget(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        self.shared.pods.lock().expect("pod table").remove(&key);
    }

    pub(crate) fn stop(
        &self,
        namespace: &str,
        name: &str,
        grace: Option<Duration>,
        disruption: Option<Disruption>,
    ) {
        let key = (namespace.to_string(), name.to_string());
        if let Some(tx) = self.shared.pods.lock().expect("pod table").get(&key) {
            let request = StopRequest {
                grace: grace.unwrap_or(Duration::MAX),
                disruption,
            };
            tx.send_if_modified(|current| {
                let merged = current.map_or(request, |earlier| earlier.merge(request));
                let changed = *current != Some(merged);
                *current = Some(merged);
                changed
            });
        }
    }

    pub(crate) fn running(&self) -> usize {
        self.shared.pods.lock().expect("pod table").len()
    }

    /// Stops every pod, as [`Local::stop`] stops one.
    pub(crate) fn stop_all(&self, disruption: Option<Disruption>) {
        let keys: Vec<(String, String)> = {
            let pods = self.shared.pods.lock().expect("pod table");
            pods.keys().cloned().collect()
        };
        for (namespace, name) in keys {
            self.stop(&namespace, &name, None, disruption);
        }
    }
}

pub fn log_path(dir: &Path, namespace: &str, pod: &str, container: &str, restart: i32) -> PathBuf {
    // `_` cannot occur in Kubernetes names, so this cannot collide.
    dir.join(format!("{namespace}_{pod}_{container}_{restart}.log"))
}

/// Beside each log, when each piece of it was read: 16 bytes per piece, the piece's offset
/// in the log (u64) and the time in Unix nanoseconds (i64), little-endian. The log itself
/// stays the container's output as written.
pub fn log_times_path(log: &Path) -> PathBuf {
    let mut path = log.as_os_str().to_owned();
    path.push(".times");
    PathBuf::from(path)
}

/// The pieces recorded in a log's times file: (offset, Unix nanoseconds), by offset.
pub fn read_log_times(log: &Path) -> Vec<(u64, i64)> {
    let bytes = std::fs::read(log_times_path(log)).unwrap_or_default();
    bytes
        .chunks_exact(16)
        .map(|c| {
            let offset = u64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
            let nanos = i64::from_le_bytes(c[8..].try_into().expect("8 bytes"));
            (offset, nanos)
        })
        .collect()
}

fn pod_key(pod: &Pod) -> (String, String) {
    (
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// The pod's status as it evolves, shared by its containers.
pub(crate) struct PodRecord {
    shared: Arc<Shared>,
    namespace: String,
    name: String,
    status: Mutex<PodStatus>,
    running_containers: std::sync::atomic::AtomicUsize,
}

impl PodRecord {
    pub(crate) fn now(&self) -> Time {
        Time(self.shared.clock.now())
    }

    /// Changes the status; `publish` also reports it. Changes that are followed closely
    /// by another are not published on their own: each report costs the engine a write.
    pub(crate) fn update(&self, publish: bool, change: impl FnOnce(&mut PodStatus)) {
        let mut status = self.status.lock().expect("pod status");
        change(&mut status);
        if publish {
            let _ = self.shared.updates.send(PodUpdate {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                status: status.clone(),
            });
        }
    }

    /// Counts down the main containers still running; true for the last one.
    pub(crate) fn last_container_done(&self) -> bool {
        self.running_containers
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
    }
}

fn set_condition(status: &mut PodStatus, type_: &str, value: bool, now: &Time) {
    let value = if value { "True" } else { "False" };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == value => {}
        Some(c) => {
            c.status = value.to_string();
            c.last_transition_time = Some(now.clone());
        }
        None => conditions.push(PodCondition {
            type_: type_.to_string(),
            status: value.to_string(),
            last_transition_time: Some(now.clone()),
            ..Default::default()
        }),
    }
}

async fn run_pod(
    shared: &Arc<Shared>,
    pod: Pod,
    stop_tx: Arc<watch::Sender<Option<StopRequest>>>,
    stop_rx: watch::Receiver<Option<StopRequest>>,
) {
    let (namespace, name) = pod_key(&pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let record = Arc::new(PodRecord {
        shared: shared.clone(),
        namespace,
        name,
        status: Mutex::new(pod.status.clone().unwrap_or_default()),
        running_containers: std::sync::atomic::AtomicUsize::new(spec.containers.len()),
    });
    let grace =
        Duration::from_secs(spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64);
    let restart_on_failure = spec.restart_policy.as_deref() == Some("OnFailure");
    let pod = Arc::new(pod);
    let now = record.now();
    record.update(false, |s| {
        s.phase = Some("Pending".to_string());
        s.start_time = Some(now.clone());
        s.host_ip = Some("127.0.0.1".to_string());
        s.pod_ip = Some("127.0.0.1".to_string());
        set_condition(s, "PodScheduled", true, &now);
        set_condition(s, "Initialized", spec.init_containers.is_none(), &now);
        set_condition(s, "Ready", false, &now);
        set_condition(s, "ContainersReady", false, &now);
    });

    // Pod-level activeDeadlineSeconds: the kubelet stops the pod and fails it.
    let deadline_hit = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deadline_task = spec.active_deadline_seconds.map(|seconds| {
        let stop_tx = stop_tx.clone();
        let hit = deadline_hit.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(seconds.max(0) as u64)).await;
            hit.store(true, std::sync::atomic::Ordering::SeqCst);
            stop_tx.send_if_modified(|current| {
                let fresh = current.is_none();
                if fresh {
                    *current = Some(StopRequest {
                        grace,
                        disruption: None,
                    });
                }
                fresh
            });
        })
    });

    let context = |container, init| ContainerContext {
        record: record.clone(),
        pod: pod.clone(),
        container,
        init,
        restart_on_failure,
        default_grace: grace,
        stop: stop_rx.clone(),
    };

    let mut failed = false;
    for container in spec.init_containers.iter().flatten() {
        if run_container(context(container.clone(), true)).await != Outcome::Succeeded {
            failed = true;
            break;
        }
    }
    if !failed {
        let now = record.now();
        record.update(false, |s| set_condition(s, "Initialized", true, &now));
        let mut containers = JoinSet::new();
        for container in &spec.containers {
            containers.spawn(run_container(context(container.clone(), false)));
        }
        while let Some(outcome) = containers.join_next().await {
            if outcome.map_or(true, |o| o != Outcome::Succeeded) {
                failed = true;
            }
        }
    }
    if let Some(task) = deadline_task {
        task.abort();
    }
    let deadline_exceeded = deadline_hit.load(std::sync::atomic::Ordering::SeqCst);
    let disruption = stop_rx.borrow().and_then(|request| request.disruption);
    // Out of the table and reported under one lock: whoever sees the pod finished sees no
    // process of it running, and whoever sees nothing running finds the report queued.
    let mut table = shared.pods.lock().expect("pod table");
    table.remove(&(record.namespace.clone(), record.name.clone()));
    let now = record.now();
    record.update(true, |s| {
        let phase = if failed || deadline_exceeded {
            "Failed"
        } else {
            "Succeeded"
        };
        s.phase = Some(phase.to_string());
        if deadline_exceeded {
            s.reason = Some("DeadlineExceeded".to_string());
            s.message =
                Some("Pod was active on the node longer than the specified deadline".to_string());
        }
        set_condition(s, "Ready", false, &now);
        set_condition(s, "ContainersReady", false, &now);
        if let Some(disruption) = disruption {
            disruption.mark(s, &now);
        }
    });
    drop(table);
}

#[cfg(test)]
mod tests;
