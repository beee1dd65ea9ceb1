//! Pods as local processes, the way the kubelet runs them: a worker per pod follows the
//! kubelet's rules (`joblet_kubelet::sync_pod`: init containers, sidecars, restarts with
//! back-off, termination order, status) with each container in its own process group, torn
//! down whole when its main process ends.
//!
//! The runtime knows nothing of Jobs: it takes Pod objects and reports their status.

mod containers;
mod engines;
mod host;
mod leftover;
mod lost;
mod oci;
mod pacing;
mod reaper;
mod supervised;
mod supervisor;
mod volume_files;
mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use joblet_api::k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use joblet_api::k8s_openapi::api::core::v1::{NodeSystemInfo, Pod, PodStatus};
use joblet_api::k8s_openapi::jiff::Timestamp;
pub use joblet_kubelet::{Disruption, StopRequest};
use joblet_kubelet::{KubeletEvent, Node, Objects};
use tokio::sync::{mpsc, watch};

pub use leftover::kill_leftover;
pub use lost::mark_lost;
pub use pacing::CommitPacing;
pub use reaper::Exit;
use reaper::Reaper;
pub use supervised::SupervisorCommand;
pub use supervisor::supervise;
pub use volume_files::write_volume_files;

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
    /// Where container runtimes keep their runs' files (the podman runtime's bundles).
    pub containers_dir: PathBuf,
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
    /// What the kubelet said since the last update that the status does not show (the
    /// image manager's `Pulling` and `Pulled`): told once, never kept.
    pub events: Vec<KubeletEvent>,
}

impl PodUpdate {
    /// The pod's last status: Succeeded or Failed.
    pub fn is_final(&self) -> bool {
        matches!(self.status.phase.as_deref(), Some("Succeeded" | "Failed"))
    }
}

/// Asks a running pod to stop; shared by the pod table and the pod's deadline timer.
pub type StopSender = Arc<watch::Sender<Option<StopRequest>>>;

struct Shared {
    config: RuntimeConfig,
    /// Pods may be started from any thread; their tasks run here.
    handle: tokio::runtime::Handle,
    clock: Arc<dyn Clock>,
    /// Where containers run.
    runtimes: Runtimes,
    updates: mpsc::UnboundedSender<PodUpdate>,
    pods: Mutex<HashMap<(String, String), StopSender>>,
    /// The ConfigMaps and Secrets pods take variables from; workers watch for changes.
    objects: watch::Sender<Arc<Objects>>,
    /// This machine: the node every pod runs on.
    node: Node,
}

/// The container runtimes a pod may name in `spec.runtimeClassName`, as a cluster's
/// RuntimeClasses name its nodes' handlers; a pod that names none runs on the host.
struct Runtimes {
    host: Arc<host::HostRuntime>,
    podman: Arc<oci::OciRuntime>,
    docker: Arc<oci::OciRuntime>,
    /// The container runtimes' pods, named in one another's hosts files.
    names: Arc<Mutex<oci::PodNames>>,
}

impl Runtimes {
    fn for_pod(&self, pod: &Pod) -> Result<Arc<dyn containers::ContainerRuntime>, String> {
        let class = pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.as_deref());
        match class.unwrap_or("") {
            "" | "host" => Ok(self.host.clone()),
            "podman" => Ok(self.podman.clone()),
            "docker" => Ok(self.docker.clone()),
            other => Err(format!("RuntimeClass {other:?} not found")),
        }
    }
}

/// Whether pods of runtime class `class` can run on this machine, checked before anything
/// runs (`joblet run`, `joblet serve --runtime`): the error says what to install or do.
pub fn check_runtime_class(class: &str) -> Result<(), String> {
    match class {
        "" | "host" => Ok(()),
        "podman" => oci::check_engine(&engines::Podman),
        "docker" => oci::check_engine(&engines::Docker),
        other => Err(format!("RuntimeClass {other:?} not found")),
    }
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
    /// adds the `DisruptionTarget` condition to the pod's final status; a `generation` (that
    /// a graceful deletion raised) is the one its status reports observed. Unknown or already
    /// finished pods are ignored.
    pub fn stop(
        &self,
        namespace: &str,
        name: &str,
        grace: Option<Duration>,
        disruption: Option<Disruption>,
        generation: Option<i64>,
    ) {
        match &self.0 {
            Backend::InProcess(local) => local.stop(namespace, name, grace, disruption, generation),
            Backend::Supervised(client) => {
                client.stop(namespace, name, grace, disruption, generation)
            }
        }
    }

    /// The ConfigMaps and Secrets pods may take variables from, replacing those set before.
    /// A container that waits for one (`CreateContainerConfigError`) is tried again.
    pub fn set_objects(&self, config_maps: &[ConfigMap], secrets: &[Secret], services: &[Service]) {
        match &self.0 {
            Backend::InProcess(local) => local.set_objects(config_maps, secrets, services),
            Backend::Supervised(client) => client.set_objects(config_maps, secrets, services),
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
        // The pods' own view of the node (the downward API) does not hold its pod limit.
        let node = this_node(&config.log_dir, joblet_kubelet::DEFAULT_MAX_PODS);
        let handle = tokio::runtime::Handle::current();
        let host = Arc::new(host::HostRuntime {
            config: config.clone(),
            handle: handle.clone(),
            clock: clock.clone(),
            reaper: Reaper::get(),
        });
        // Both keep their runs under one directory: a run's name is its pod's and
        // container's, whichever runtime it is, and a dead supervisor's leftovers are
        // removed alike.
        let names = Arc::new(Mutex::new(oci::PodNames::default()));
        let oci = |engine: Box<dyn engines::ImageEngine>| {
            Arc::new(oci::OciRuntime::new(
                host.clone(),
                engine,
                config.containers_dir.clone(),
                names.clone(),
            ))
        };
        let runtimes = Runtimes {
            podman: oci(Box::new(engines::Podman)),
            docker: oci(Box::new(engines::Docker)),
            host,
            names,
        };
        Ok(Local {
            shared: Arc::new(Shared {
                config,
                handle,
                clock,
                runtimes,
                updates,
                pods: Mutex::new(HashMap::new()),
                objects: watch::channel(Arc::new(Objects::default())).0,
                node,
            }),
        })
    }

    pub(crate) fn start(&self, pod: Pod) {
        let key = pod_key(&pod);
        let stop_tx = self.reserve(&key.0, &key.1);
        let stop_rx = stop_tx.subscribe();
        let shared = self.shared.clone();
        // Boxed: a pod's task is many kilobytes, which Tokio would otherwise copy as it
        // stores it and as it replaces it by its output.
        self.shared
            .handle
            .spawn(Box::pin(worker::run_pod(shared, pod, stop_tx, stop_rx)));
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
        generation: Option<i64>,
    ) {
        let key = (namespace.to_string(), name.to_string());
        if let Some(tx) = self.shared.pods.lock().expect("pod table").get(&key) {
            let request = StopRequest {
                grace: grace.unwrap_or(Duration::MAX),
                disruption,
                generation,
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

    pub(crate) fn set_objects(
        &self,
        config_maps: &[ConfigMap],
        secrets: &[Secret],
        services: &[Service],
    ) {
        let objects = Objects::new(config_maps, secrets);
        let names = &self.shared.runtimes.names;
        names.lock().expect("pod names").set_services(services);
        self.shared.objects.send_if_modified(|current| {
            let changed = **current != objects;
            if changed {
                *current = Arc::new(objects);
            }
            changed
        });
    }

    /// Stops every pod, as [`Local::stop`] stops one.
    pub(crate) fn stop_all(&self, disruption: Option<Disruption>) {
        let keys: Vec<(String, String)> = {
            let pods = self.shared.pods.lock().expect("pod table");
            pods.keys().cloned().collect()
        };
        for (namespace, name) in keys {
            self.stop(&namespace, &name, None, disruption, None);
        }
    }
}

/// The node a local pod runs on: this machine, its name and capacity (CPUs, memory, and
/// the file system of `dir`, where pods write their logs and volumes), the pods it takes,
/// and what it runs.
pub fn this_node(dir: &Path, max_pods: i64) -> Node {
    let name = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<i128>().ok())
        .unwrap_or(0);
    let disk = nix::sys::statvfs::statvfs(dir)
        .map(|s| s.blocks() as i128 * s.fragment_size() as i128)
        .unwrap_or(0);
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let os_release = read("/etc/os-release");
    let os_image = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".to_string());
    let kernel = nix::sys::utsname::uname()
        .ok()
        .and_then(|u| u.release().to_str().map(str::to_string))
        .unwrap_or_default();
    // Go's names for the architectures, as `kubernetes.io/arch` carries them.
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    };
    let version = env!("CARGO_PKG_VERSION");
    Node {
        name,
        cpu_millis: cpus as i128 * 1000,
        memory_bytes: memory_kib * 1024,
        ephemeral_storage_bytes: disk,
        max_pods,
        system: NodeSystemInfo {
            architecture: architecture.to_string(),
            operating_system: std::env::consts::OS.to_string(),
            os_image,
            kernel_version: kernel,
            machine_id: read("/etc/machine-id"),
            system_uuid: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            container_runtime_version: format!("joblet://{version}"),
            kubelet_version: format!(
                "v{}.0-joblet.{version}",
                joblet_api::version::Emulation::BINARY
            ),
            ..Default::default()
        },
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

#[cfg(test)]
mod tests;
