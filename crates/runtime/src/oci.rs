//! Containers from images, as the `podman` and `docker` runtimes run them: the engine
//! prepares each image once (its config, its root filesystem as overlay layers: see
//! `engines.rs`), and each run of a container is `runc run` on an overlay of those layers,
//! launched and watched as host containers are: its output into the log, its exit status
//! (runc's is the container's), SIGTERM then SIGKILL to its process group. Measured here,
//! that costs a tenth of a `podman run` a container (issue 11's note).

use std::collections::{BTreeMap, HashMap};
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use joblet_api::defaults::image_pull_policy;
use joblet_api::k8s_openapi::api::core::v1::{Container, Pod, Service};
use joblet_api::k8s_openapi::apimachinery::pkg::api::resource::Quantity as QuantityText;
use joblet_kubelet::{
    container_process, managed_hosts, process_security, service_hosts, volume_payload, ImageConfig,
    ImageError, ImageNews, ImageUser, Process, ProcessSecurity,
};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::containers::{
    ContainerRuntime, ImageNeed, ImageResult, OnPull, RunEnd, RunRequest, StartFailure, Started,
    Stop,
};
use crate::engines::{run_tool, ImageEngine};
use crate::host::HostRuntime;
use crate::reaper::{Group, Reaper};
use crate::write_volume_files;

/// An image ready to run: its config, its users and its root filesystem's layers.
struct Image {
    config: ImageConfig,
    user: ImageUser,
    /// Read-only overlay layers, the top one first.
    layers: Vec<PathBuf>,
    /// As the engine counts it (`Size`), for the `Pulled` event.
    size_bytes: u64,
}

pub(crate) struct OciRuntime {
    pub host: Arc<HostRuntime>,
    /// Where the images come from.
    engine: Box<dyn ImageEngine>,
    /// Bundles of the runs (`<dir>/<run id>`) and runc's state (`<dir>/runc`).
    pub dir: PathBuf,
    images: Mutex<HashMap<String, Arc<Image>>>,
    /// One pull at a time, as the kubelet's default (`serializeImagePulls`): many pods of a
    /// missing image pull it once.
    pulls: Mutex<()>,
    /// The pods of every container runtime, for the names their hosts files give.
    names: Arc<Mutex<PodNames>>,
}

/// The container runtimes' pods and the Services that may name them: what each pod's hosts
/// file holds, kept up to date as pods come and go.
#[derive(Default)]
pub(crate) struct PodNames {
    /// Each pod and its hosts file.
    pods: BTreeMap<(String, String), (Pod, PathBuf)>,
    services: Vec<Service>,
    /// The Services' part of the hosts files last written, by namespace.
    written: BTreeMap<String, String>,
}

impl PodNames {
    /// The node's Services changed: the hosts files they change are written again.
    pub(crate) fn set_services(&mut self, services: &[Service]) {
        if self.services != services {
            self.services = services.to_vec();
            let _ = self.write(None);
        }
    }

    /// Writes the hosts files that change: the `new` pod's, and those whose namespace's
    /// Services part changed. A file is rewritten in place, so that running containers,
    /// which have it mounted, see the change.
    fn write(&mut self, new: Option<&(String, String)>) -> std::io::Result<()> {
        let pods: Vec<&Pod> = self.pods.values().map(|(pod, _)| pod).collect();
        let mut parts = BTreeMap::new();
        for (namespace, _) in self.pods.keys() {
            if !parts.contains_key(namespace) {
                let part = service_hosts(namespace, &pods, &self.services, POD_IP);
                parts.insert(namespace.clone(), part);
            }
        }
        let mut result = Ok(());
        for (key, (pod, path)) in &self.pods {
            let part = &parts[&key.0];
            let is_new = Some(key) == new;
            if is_new || self.written.get(&key.0) != Some(part) {
                let written = std::fs::write(path, managed_hosts(pod, POD_IP) + part);
                // Another pod's file may be going with its pod.
                if is_new {
                    result = written;
                }
            }
        }
        self.written = parts;
        result
    }
}

impl OciRuntime {
    pub(crate) fn new(
        host: Arc<HostRuntime>,
        engine: Box<dyn ImageEngine>,
        dir: PathBuf,
        names: Arc<Mutex<PodNames>>,
    ) -> Self {
        OciRuntime {
            host,
            engine,
            dir,
            names,
            images: Mutex::new(HashMap::new()),
            pulls: Mutex::new(()),
        }
    }

    /// `EnsureImageExists` (image_manager.go) on a blocking thread: the image looked for
    /// unless the policy is `Always`, pulled if it must be, then prepared.
    fn fetch(&self, name: &str, policy: &str, on_pull: OnPull) -> ImageResult {
        let asked = Instant::now();
        let reaper = &self.host.reaper;
        let present = || {
            let cached = self.images.lock().expect("images").contains_key(name);
            policy != "Always" && (cached || self.engine.exists(reaper, name))
        };
        if !present() {
            if policy == "Never" {
                let message =
                    format!("Container image {name:?} is not present with pull policy of Never");
                return Err((ImageError::NeverPull, message));
            }
            let _one_at_a_time = self.pulls.lock().expect("pulls");
            // The pull before this one may have brought it.
            if !present() {
                on_pull();
                let started = Instant::now();
                (self.engine.pull(reaper, name)).map_err(|e| (ImageError::Pull, e))?;
                let took = started.elapsed();
                // The name may have moved to another image: prepared again.
                self.images.lock().expect("images").remove(name);
                let image = self.image(name).map_err(|e| (ImageError::Pull, e))?;
                return Ok(ImageNews::Pulled {
                    took,
                    with_waiting: asked.elapsed(),
                    size_bytes: image.size_bytes,
                });
            }
        }
        self.image(name)
            .map(|_| ImageNews::Present)
            .map_err(|e| (ImageError::Pull, e))
    }

    /// The image, inspected and its layers found by the engine the first time it is asked
    /// for.
    fn image(&self, name: &str) -> Result<Arc<Image>, String> {
        if let Some(image) = self.images.lock().expect("images").get(name) {
            return Ok(image.clone());
        }
        let (reaper, engine) = (&self.host.reaper, self.engine.name());
        let inspected = (self.engine.inspect(reaper, name)).map_err(|e| {
            format!("image {name:?} is not on this machine ({e}): {engine} pull it")
        })?;
        let (config, user) = image_config(&inspected);
        let layers = self.engine.layers(reaper, name, &inspected)?;
        let user = ImageUser {
            user,
            passwd: layered_file(&layers, "etc/passwd"),
            group: layered_file(&layers, "etc/group"),
        };
        let image = Arc::new(Image {
            config,
            user,
            layers,
            size_bytes: inspected["Size"].as_u64().unwrap_or(0),
        });
        let mut images = self.images.lock().expect("images");
        Ok(images.entry(name.to_string()).or_insert(image).clone())
    }

    /// The container's init runs in a session of its own, out of reach of a signal to
    /// runc's group: `runc kill` signals it (TERM, then KILL after the grace period, which
    /// ends the whole PID namespace); runc's group is killed a moment later in case runc
    /// itself hangs.
    fn stopper(&self, group: Group, id: String) -> Stop {
        let (reaper, handle) = (self.host.reaper.clone(), self.host.handle.clone());
        let runc_root = self.dir.join("runc");
        Box::new(move |grace| {
            runc_kill(&reaper, &runc_root, &id, "TERM");
            let (reaper, runc_root, id) = (reaper.clone(), runc_root.clone(), id.clone());
            handle.spawn(async move {
                tokio::time::sleep(grace).await;
                runc_kill(&reaper, &runc_root, &id, "KILL");
                tokio::time::sleep(RUNC_KILL_SLACK).await;
                // A no-op once runc ended.
                reaper.signal_group(group, Signal::SIGKILL);
            });
        })
    }

    /// Where a pod's volumes live while it runs.
    fn pod_dir(&self, pod: &Pod) -> PathBuf {
        let meta = &pod.metadata;
        let namespace = meta.namespace.as_deref().unwrap_or("default");
        let name = meta.name.as_deref().unwrap_or("");
        let uid = meta.uid.as_deref().unwrap_or("");
        self.dir
            .join("pods")
            .join(format!("{namespace}_{name}_{uid}"))
    }

    /// The pod's `/etc/hosts`, as the kubelet writes it, shared by its containers, with
    /// the names of the headless Services' pods; written at the pod's first start, and again
    /// as pods and the node's Services ([`PodNames::set_services`]) change.
    fn hosts_file(&self, pod: &Pod) -> std::io::Result<PathBuf> {
        let dir = self.pod_dir(pod);
        let path = dir.join("etc-hosts");
        let key = crate::pod_key(pod);
        let mut names = self.names.lock().expect("pod names");
        if !names.pods.contains_key(&key) {
            std::fs::create_dir_all(&dir)?;
            names.pods.insert(key.clone(), (pod.clone(), path.clone()));
            names.write(Some(&key))?;
        }
        Ok(path)
    }

    /// The container's volume mounts as OCI bind mounts, each volume made ready first: an
    /// `emptyDir` made once for the pod (a tmpfs for `medium: Memory`), a `hostPath`
    /// checked against its `type`, the files of a ConfigMap, Secret, the downward API or a
    /// projection of them written as the kubelet lays them out. A missing ConfigMap, Secret
    /// or key leaves the container waiting.
    fn mounts(&self, run: &RunRequest<'_>) -> Result<Vec<Value>, StartFailure> {
        let pod = run.pod;
        let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref());
        let fs_group = (pod.spec.as_ref())
            .and_then(|s| s.security_context.as_ref()?.fs_group)
            .and_then(|g| u32::try_from(g).ok());
        let mut mounts = Vec::new();
        for mount in run.container.volume_mounts.iter().flatten() {
            let Some(volume) = volumes.into_iter().flatten().find(|v| v.name == mount.name) else {
                return Err(StartFailure::Failed(format!(
                    "volume {:?} not found",
                    mount.name
                )));
            };
            let dir = self.pod_dir(pod).join("volumes").join(&volume.name);
            let failed = |e: std::io::Error| {
                StartFailure::Failed(format!(
                    "MountVolume.SetUp failed for volume {:?} : {e}",
                    volume.name
                ))
            };
            let source = if let Some(host) = &volume.host_path {
                host_path(&host.path, host.type_.as_deref().unwrap_or("")).map_err(failed)?
            } else if let Some(files) = volume_payload(volume, pod, run.node, run.objects) {
                let mut payload = files.map_err(StartFailure::Waiting)?;
                if fs_group.is_some() {
                    // SetVolumeOwnership's mask for a read-only volume: the group reads.
                    payload.values_mut().for_each(|file| file.mode |= 0o440);
                }
                write_volume_files(&dir, &payload).map_err(failed)?;
                own_by_group(&dir, fs_group).map_err(failed)?;
                dir
            } else {
                let empty = volume.empty_dir.clone().unwrap_or_default();
                if !dir.exists() {
                    std::fs::create_dir_all(&dir).map_err(failed)?;
                    if empty.medium.as_deref() == Some("Memory") {
                        mount_tmpfs(&dir, empty.size_limit.as_ref()).map_err(failed)?;
                    }
                    // Any user of the pod's containers may write to it, as the kubelet's.
                    std::fs::set_permissions(&dir, Permissions::from_mode(0o777))
                        .map_err(failed)?;
                    own_by_group(&dir, fs_group).map_err(failed)?;
                }
                dir
            };
            let source = match mount.sub_path.as_deref().filter(|p| !p.is_empty()) {
                Some(sub) => {
                    let inside = source.join(sub);
                    if !inside.exists() {
                        std::fs::create_dir_all(&inside).map_err(failed)?;
                    }
                    inside
                }
                None => source,
            };
            let access = if mount.read_only == Some(true) {
                "ro"
            } else {
                "rw"
            };
            mounts.push(json!({"destination": mount.mount_path, "type": "bind",
                "source": source, "options": ["rbind", access]}));
        }
        Ok(mounts)
    }
}

impl ContainerRuntime for OciRuntime {
    fn image(self: Arc<Self>, container: &Container, on_pull: OnPull) -> ImageNeed {
        let name = container.image.clone().unwrap_or_default();
        let policy =
            (container.image_pull_policy.clone()).unwrap_or_else(|| image_pull_policy(Some(&name)));
        if policy != "Always" && self.images.lock().expect("images").contains_key(&name) {
            return ImageNeed::Present;
        }
        let handle = self.host.handle.clone();
        let fetch = handle.spawn_blocking(move || self.fetch(&name, &policy, on_pull));
        ImageNeed::Fetch(Box::pin(async move {
            fetch
                .await
                .unwrap_or_else(|e| Err((ImageError::Pull, e.to_string())))
        }))
    }

    fn pod_ended(&self, pod: &Pod) {
        let mut names = self.names.lock().expect("pod names");
        if names.pods.remove(&crate::pod_key(pod)).is_some() {
            let _ = names.write(None);
        }
        drop(names);
        let dir = self.pod_dir(pod);
        let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref());
        for volume in volumes.into_iter().flatten() {
            let memory = volume.empty_dir.as_ref().and_then(|e| e.medium.as_deref());
            if memory == Some("Memory") {
                let tmpfs = dir.join("volumes").join(&volume.name);
                let _ = nix::mount::umount2(&tmpfs, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    fn start(&self, run: RunRequest<'_>) -> Result<Started, StartFailure> {
        if !nix::unistd::geteuid().is_root() {
            return Err(StartFailure::Failed(not_root(self.engine.name())));
        }
        let name = run.container.image.as_deref().unwrap_or("");
        let image = self.image(name)?;
        let process = container_process(run.container, run.env, &image.config)?;
        let security =
            process_security(run.pod, run.container, &image.user).map_err(StartFailure::Waiting)?;
        let mounts = self.mounts(&run)?;
        let meta = &run.pod.metadata;
        let namespace = meta.namespace.as_deref().unwrap_or("default");
        let pod = meta.name.as_deref().unwrap_or("");
        let id = format!("{namespace}_{pod}_{}_{}", run.container.name, run.restarts);
        let bundle = self.dir.join(&id);
        let hostname = run
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| pod.to_string());
        let hosts = self
            .hosts_file(run.pod)
            .map_err(|e| format!("writing /etc/hosts: {e}"))?;
        let mut config = bundle_config(&process, &security, &hostname, &hosts, mounts);
        config["linux"]["cgroupsPath"] = json!(format!("/joblet/{id}"));
        config["linux"]["resources"] = resources(run.container);
        prepare_bundle(&bundle, &image.layers, &config)
            .map_err(|e| format!("preparing the container's root filesystem: {e}"))?;
        let runc_root = self.dir.join("runc");
        let mut command = runc(&runc_root);
        command
            .arg("run")
            // Kept after its end, so its cgroup can tell whether it ran out of memory.
            .arg("--keep")
            .arg("--bundle")
            .arg(&bundle)
            .arg(&id);
        let (group, exit) = match self.host.launch(&run, command) {
            Ok(launched) => launched,
            Err(e) => {
                remove_bundle(&self.host.reaper, &runc_root, &bundle, &id);
                return Err(StartFailure::Failed(format!("runc: {e}")));
            }
        };
        let reaper = self.host.reaper.clone();
        let id_for_stop = id.clone();
        let exit = async move {
            let exit = exit.await;
            // `runc delete` and the unmount block for milliseconds: off the async threads.
            let cleanup = tokio::task::spawn_blocking(move || {
                let oom_killed = oom_kills(&id) > 0;
                remove_bundle(&reaper, &runc_root, &bundle, &id);
                oom_killed
            });
            let oom_killed = cleanup.await.unwrap_or(false);
            RunEnd { exit, oom_killed }
        };
        Ok(Started {
            id: format!("runc://{}", group.leader),
            exit: Box::pin(exit),
            stop: self.stopper(group, id_for_stop),
        })
    }
}

/// The container's limits as the OCI config's resources, as a CRI runtime sets them: the
/// memory limit in bytes, the CPU limit as a CFS quota per 100 ms period, the CPU request
/// (else the limit) as shares.
fn resources(container: &Container) -> Value {
    let resources = container.resources.as_ref();
    let quantity = |map: Option<&std::collections::BTreeMap<String, QuantityText>>, name: &str| {
        map.and_then(|m| m.get(name))
            .and_then(|q| joblet_api::quantity::Quantity::parse(&q.0))
    };
    let limits = resources.and_then(|r| r.limits.as_ref());
    let requests = resources.and_then(|r| r.requests.as_ref());
    let mut out = json!({});
    if let Some(memory) = quantity(limits, "memory") {
        out["memory"] = json!({"limit": memory.value()});
    }
    let cpu_limit = quantity(limits, "cpu").map(|q| q.milli_value());
    let cpu_request = quantity(requests, "cpu")
        .map(|q| q.milli_value())
        .or(cpu_limit);
    if let Some(millis) = cpu_limit {
        out["cpu"]["period"] = json!(CPU_PERIOD_MICROS);
        out["cpu"]["quota"] = json!((millis * CPU_PERIOD_MICROS as i128 / 1000).max(1000));
    }
    if let Some(millis) = cpu_request {
        out["cpu"]["shares"] = json!((millis * 1024 / 1000).max(2));
    }
    out
}

/// The CFS period a CPU limit is a quota of (the kubelet's default).
const CPU_PERIOD_MICROS: u64 = 100_000;

/// How often the kernel killed a process of the run's cgroup for memory (cgroup v2's
/// `memory.events`, v1's `memory.oom_control`); 0 when it cannot tell.
fn oom_kills(id: &str) -> u64 {
    let read = |path: String| std::fs::read_to_string(path).ok();
    let text = read(format!("/sys/fs/cgroup/joblet/{id}/memory.events")).or_else(|| {
        read(format!(
            "/sys/fs/cgroup/memory/joblet/{id}/memory.oom_control"
        ))
    });
    text.and_then(|t| {
        t.lines()
            .find_map(|line| line.strip_prefix("oom_kill ")?.trim().parse().ok())
    })
    .unwrap_or(0)
}

/// A `hostPath` checked as the kubelet checks its `type`, created for the `…OrCreate` ones.
fn host_path(path: &str, type_: &str) -> std::io::Result<PathBuf> {
    let path = PathBuf::from(path);
    let meta = std::fs::metadata(&path);
    let wrong = |what: &str| {
        Err(std::io::Error::other(format!(
            "hostPath type check failed: {} is not a {what}",
            path.display()
        )))
    };
    match (type_, &meta) {
        ("DirectoryOrCreate", Err(_)) => std::fs::create_dir_all(&path)?,
        ("FileOrCreate", Err(_)) => {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
        }
        ("Directory" | "DirectoryOrCreate", Ok(m)) if !m.is_dir() => return wrong("directory"),
        ("File" | "FileOrCreate", Ok(m)) if !m.is_file() => return wrong("file"),
        ("Directory", Err(_)) => return wrong("directory"),
        ("File", Err(_)) => return wrong("file"),
        (_, Err(_)) if !type_.is_empty() => {
            return Err(std::io::Error::other(format!(
                "hostPath type check failed: {} does not exist",
                path.display()
            )))
        }
        _ => {}
    }
    Ok(path)
}

/// A tmpfs for an `emptyDir` with `medium: Memory`, as large as its `sizeLimit`.
fn mount_tmpfs(dir: &Path, size: Option<&QuantityText>) -> std::io::Result<()> {
    let size = size
        .and_then(|q| joblet_api::quantity::Quantity::parse(&q.0))
        .map(|q| format!("size={}", q.value()));
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        size.as_deref(),
    )
    .map_err(std::io::Error::from)
}

/// `fsGroup` on a volume the kubelet manages (SetVolumeOwnership): everything in it owned by
/// the group, directories setgid so that new files are too. Links are left alone.
fn own_by_group(dir: &Path, group: Option<u32>) -> std::io::Result<()> {
    let Some(group) = group else {
        return Ok(());
    };
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    std::os::unix::fs::lchown(dir, None, Some(group))?;
    if meta.is_dir() {
        let mode = meta.permissions().mode() | 0o2000;
        std::fs::set_permissions(dir, Permissions::from_mode(mode))?;
        for entry in std::fs::read_dir(dir)? {
            own_by_group(&entry?.path(), Some(group))?;
        }
    }
    Ok(())
}

/// How long runc gets to end after its container was killed, before it is killed too.
const RUNC_KILL_SLACK: Duration = Duration::from_secs(2);

/// Whether this machine can run containers of `engine`'s images, checked before anything
/// runs: root, and the engine and runc that answer. The error names what to do.
pub(crate) fn check_engine(engine: &dyn ImageEngine) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err(not_root(engine.name()));
    }
    engine.check(&Reaper::get())
}

fn not_root(engine: &str) -> String {
    format!("the {engine} runtime runs containers as root: run joblet as root (rootless containers are not supported)")
}

/// What runc's errors say to install.
const RUNC_NEEDS: &str = "the container runtimes need runc (apt-get install runc)";

/// Ends what a supervisor that died left of its podman pods, before a new one starts: their
/// containers (their runc processes died or were orphaned, the pods are recorded lost), the
/// containers' overlays and bundles, the pods' volumes.
pub(crate) fn remove_leftovers(dir: &Path) {
    let reaper = Reaper::get();
    let runc_root = dir.join("runc");
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    for id in names(&runc_root) {
        let _ = run_tool(
            &reaper,
            runc(&runc_root).args(["kill", &id, "KILL"]),
            RUNC_NEEDS,
        );
    }
    for name in names(dir) {
        if name != "runc" && name != "pods" {
            remove_bundle(&reaper, &runc_root, &dir.join(&name), &name);
        }
    }
    for pod in names(&dir.join("pods")) {
        let pod = dir.join("pods").join(pod);
        for volume in names(&pod.join("volumes")) {
            // A tmpfs of a `medium: Memory` emptyDir; a no-op for the others.
            let _ = nix::mount::umount2(
                &pod.join("volumes").join(volume),
                nix::mount::MntFlags::MNT_DETACH,
            );
        }
        let _ = std::fs::remove_dir_all(pod);
    }
}

/// `runc kill`, on a thread of its own: it takes a few milliseconds, too long for the async
/// threads.
fn runc_kill(reaper: &Reaper, root: &Path, id: &str, signal: &'static str) {
    let (reaper, root, id) = (reaper.clone(), root.to_path_buf(), id.to_string());
    std::thread::spawn(move || {
        let _ = run_tool(&reaper, runc(&root).args(["kill", &id, signal]), RUNC_NEEDS);
    });
}

/// `runc` keeping its state under `root`.
fn runc(root: &Path) -> Command {
    let mut command = Command::new("runc");
    command.arg("--root").arg(root);
    command
}

/// A file of the image as its layers make it: the top layer that has it, unless a layer
/// above deleted it (an overlay whiteout, a 0/0 character device). A link is not followed
/// (it would leave the image); a missing file reads as empty.
fn layered_file(layers: &[PathBuf], path: &str) -> String {
    for layer in layers {
        match std::fs::symlink_metadata(layer.join(path)) {
            Ok(meta) if meta.is_file() => {
                return std::fs::read_to_string(layer.join(path)).unwrap_or_default()
            }
            // A whiteout, a link or a directory.
            Ok(_) => return String::new(),
            Err(_) => {}
        }
    }
    String::new()
}

/// `image inspect`'s `Config`: entrypoint, cmd, env, working directory, and its `User`.
fn image_config(inspected: &Value) -> (ImageConfig, String) {
    let config = &inspected["Config"];
    let strings = |field: &str| -> Vec<String> {
        config[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let image = ImageConfig {
        entrypoint: strings("Entrypoint"),
        cmd: strings("Cmd"),
        env: strings("Env"),
        working_dir: config["WorkingDir"].as_str().unwrap_or("").to_string(),
    };
    (image, config["User"].as_str().unwrap_or("").to_string())
}

/// Every joblet pod's address: the machine's network is theirs.
const POD_IP: &str = "127.0.0.1";

/// The OCI runtime config of a run: the process, the namespaces of a pod's container (the
/// machine's network, as every joblet pod has), the mounts every container gets, the pod's
/// hosts file and the host's DNS servers.
fn bundle_config(
    process: &Process,
    security: &ProcessSecurity,
    hostname: &str,
    hosts: &Path,
    volumes: Vec<Value>,
) -> Value {
    let caps = &security.capabilities;
    let env: Vec<String> = process
        .env
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let bind = |path: &str| json!({"destination": path, "type": "bind", "source": path, "options": ["rbind", "ro"]});
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"]}),
        bind("/etc/resolv.conf"),
        json!({"destination": "/etc/hosts", "type": "bind", "source": hosts, "options": ["rbind", "rw"]}),
    ];
    mounts.extend(volumes);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": security.uid, "gid": security.gid,
                "additionalGids": security.additional_gids},
            "args": process.args,
            "env": env,
            "cwd": process.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1048576u64.min(nofile_hard()), "soft": 1024}],
            "noNewPrivileges": security.no_new_privileges,
        },
        "root": {"path": "rootfs", "readonly": security.read_only_root},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"],
            "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
                "/proc/sys", "/proc/sysrq-trigger"],
        },
    })
}

/// The open-files limit a container may be given: no more than this process's hard limit
/// (without `CAP_SYS_RESOURCE` a higher one is refused).
fn nofile_hard() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(_, hard)| hard)
}

/// The bundle directory: `config.json`, and `rootfs` an overlay of the image's layers whose
/// writes go to `upper`.
fn prepare_bundle(bundle: &Path, layers: &[PathBuf], config: &Value) -> std::io::Result<()> {
    let (upper, work, rootfs) = (
        bundle.join("upper"),
        bundle.join("work"),
        bundle.join("rootfs"),
    );
    for dir in [&upper, &work, &rootfs] {
        std::fs::create_dir_all(dir)?;
    }
    let lower: Vec<_> = layers.iter().map(|l| l.to_string_lossy()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(std::io::Error::from)?;
    std::fs::write(bundle.join("config.json"), config.to_string())
}

/// After a run: runc's record of it (left if runc itself was killed), the overlay, the
/// bundle.
fn remove_bundle(reaper: &Reaper, runc_root: &Path, bundle: &Path, id: &str) {
    if runc_root.join(id).exists() {
        let _ = run_tool(
            reaper,
            runc(runc_root).args(["delete", "--force", id]),
            RUNC_NEEDS,
        );
    }
    let _ = nix::mount::umount2(&bundle.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir_all(bundle);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_config_is_read_from_image_inspect() {
        let inspected = json!({"Config": {"Entrypoint": ["/entry.sh"], "Cmd": ["a", "b"],
            "Env": ["PATH=/bin"], "WorkingDir": "/work", "User": "app:staff"}});
        assert_eq!(
            image_config(&inspected),
            (
                ImageConfig {
                    entrypoint: vec!["/entry.sh".into()],
                    cmd: vec!["a".into(), "b".into()],
                    env: vec!["PATH=/bin".into()],
                    working_dir: "/work".into(),
                },
                "app:staff".to_string()
            )
        );
        // An image without an entrypoint says `null`, one without a user nothing.
        let bare = json!({"Config": {"Entrypoint": null, "Cmd": ["/bin/sh"]}});
        assert_eq!(image_config(&bare).0.cmd, ["/bin/sh"]);
        assert_eq!(image_config(&bare).1, "");
    }
}
