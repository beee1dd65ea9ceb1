//! The engine: the Job controller loop and the node loop over one store and one runtime.
//! It is the only place that reads the clock. `joblet run` drives it until its Jobs
//! settle; `joblet serve` (later) keeps it running behind the API.

mod clock;
mod commands;
mod correlator;
mod cronjobs;
mod metrics;
mod objects;
mod plain;
mod recover;
mod writer;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use joblet_api::k8s_openapi::api::batch::v1::Job;
use joblet_api::k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, ObjectReference, Pod, PodCondition, PodStatus, Secret, Service,
};
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use joblet_api::version::Emulation;
use joblet_api::{prepare_for_create, IndexSet, Invalid, ValidJob};
use joblet_core::{
    build_pod, reconcile, ttl_expiry, BackoffConfig, ControllerConfig, Event, EventType, JobState,
    PodView, Status, Time,
};
use joblet_kubelet::kubelet_events;
use joblet_runtime::{Disruption, PodUpdate, Runtime, RuntimeConfig, SupervisorCommand};
use joblet_scheduler::{Decision, Scheduler};
use joblet_store::{Batch, Record, Store, StoreError};
pub use joblet_store::{CrashPoint, Durability};
use tokio::sync::mpsc;

pub use clock::SystemClock;
pub use commands::{CommandError, EngineHandle, ObjectKey, Propagation, Stored, UpdateBase};
pub use cronjobs::KIND_CRON_JOB;
pub use metrics::Metrics;
use objects::{
    container_reference, event_record, job_record, job_reference, pod_record, pod_reference,
};
pub use objects::{KIND_EVENT, KIND_JOB, KIND_NAMESPACE, KIND_NODE, KIND_POD};
pub use plain::{Plain, KIND_CONFIG_MAP, KIND_SECRET, KIND_SERVICE};
pub use writer::Feed;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub state_dir: PathBuf,
    /// Pod re-creation back-off of the controller (upstream: 10 s doubling to 10 min).
    pub backoff: BackoffConfig,
    pub stream_logs: bool,
    /// Serve: never settle, and forget deleted Jobs (`run` stops once its Jobs settle).
    pub keep_running: bool,
    /// How long events are kept (the API server's `--event-ttl`); `None`: for good.
    pub event_ttl: Option<Duration>,
    /// Pods run under a supervisor process started so, which outlives the engine (else
    /// they are the engine's children and end with it).
    pub supervisor: Option<SupervisorCommand>,
    /// What a commit survives: a power loss (fsync per group commit) or a process crash.
    pub durability: Durability,
    /// How many pods the node takes at once (the kubelet's `--max-pods`).
    pub max_pods: i64,
    /// The Kubernetes version whose feature gates the controllers follow.
    pub emulation: Emulation,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("job {name}: nothing to retry: {reason}")]
    RetryRefused {
        name: String,
        reason: joblet_core::RetryRefused,
    },
    /// A failed commit, as the store words it.
    #[error("{0}")]
    Write(String),
}

/// What the engine tells whoever watches it (the CLI's progress view or event lines).
#[derive(Clone, Debug)]
pub enum Notice {
    /// A Job made while the engine runs (by a CronJob), as stored.
    JobAdded(Box<Job>),
    /// An event recorded about a Job or one of its pods (`object`: `job/x`, `pod/x-abcde`).
    Event {
        namespace: String,
        job: String,
        object: String,
        event: Event,
        at: Time,
    },
    /// A pod of the Job failed, and why (a container's exit code and reason, or the pod's).
    PodFailed {
        namespace: String,
        job: String,
        pod: String,
        reason: String,
        at: Time,
    },
    Status {
        namespace: String,
        job: String,
        status: Status,
        /// Indexes with a pod running or about to (Indexed Jobs).
        running_indexes: IndexSet,
        at: Time,
    },
}

type JobKey = (String, String);

/// The kinds of the objects the API serves, as stored.
pub const SERVED_KINDS: [&str; 9] = [
    KIND_NAMESPACE,
    KIND_NODE,
    KIND_JOB,
    KIND_CRON_JOB,
    KIND_POD,
    KIND_EVENT,
    KIND_CONFIG_MAP,
    KIND_SECRET,
    KIND_SERVICE,
];

/// A pod without a Job in memory (its Job was deleted): tracked until its processes end.
struct LoosePod {
    object: Pod,
    /// Deleted with its Job (else orphaned, and kept).
    delete_when_done: bool,
}

struct PodEntry {
    object: Pod,
    view: PodView,
}

struct JobEntry {
    job: ValidJob,
    state: JobState,
    /// Pods that still matter to the controller: not both finished and counted.
    pods: HashMap<String, PodEntry>,
    dirty: bool,
    requeue_at: Option<Time>,
    resource_version: i64,
    /// The resourceVersion at which the Job's spec and metadata last changed (the
    /// controller's status writes move `resource_version` only): an update computed from
    /// any later version of the object is not stale.
    spec_version: i64,
    /// Changed since the last flush: written once per flush, however often they changed.
    unwritten: bool,
    unwritten_pods: HashSet<String>,
}

/// What [`Engine::create_or_resume`] did with a manifest's Job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Created,
    /// The state directory held the same Job: it goes on.
    Resumed,
    /// The state directory held the Job with other values of its mutable fields
    /// (parallelism, suspend, deadlines...): it goes on with the manifest's.
    Updated,
}

/// What a request to stop the engine asks of its pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Stop every pod first, as a node shutdown does (a second request kills at once).
    StopPods,
    /// Leave the pods running under the supervisor for the next engine to adopt, as a
    /// restart of the control plane leaves a node's pods. Without a supervisor the pods
    /// are the engine's children and cannot outlive it: they are stopped.
    LeavePods,
}

/// How the engine stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Every Job is finished (or suspended with nothing running).
    Done,
    /// Shutdown was requested; every pod has been stopped.
    Interrupted,
    /// Shutdown was requested; everything is committed and the pods run on under the
    /// supervisor.
    LeftRunning,
}

pub struct Engine {
    config: EngineConfig,
    clock: Arc<SystemClock>,
    /// Read here, written only by the writer thread.
    store: Arc<Mutex<Store>>,
    writer: writer::Writer,
    next_resource_version: i64,
    runtime: Runtime,
    updates: mpsc::UnboundedReceiver<PodUpdate>,
    /// This machine's name as the cluster's one node, and the scheduler that binds pods to it.
    node_name: String,
    scheduler: Scheduler,
    /// Pods deleted while they waited for the node: no kubelet has them, so they are
    /// marked failed here, as the pod garbage collector marks them on a cluster.
    unbound_deleted: Vec<JobKey>,
    jobs: BTreeMap<JobKey, JobEntry>,
    pod_owner: HashMap<JobKey, JobKey>,
    namespaces: BTreeMap<String, Namespace>,
    plain: plain::PlainObjects,
    cron_jobs: BTreeMap<JobKey, cronjobs::CronEntry>,
    metrics: Arc<Metrics>,
    /// This machine's time zone, read once, when a CronJob first needs it: schedules
    /// without `timeZone` are read in it.
    local_zone: std::sync::OnceLock<joblet_api::k8s_openapi::jiff::tz::TimeZone>,
    loose_pods: HashMap<JobKey, LoosePod>,
    /// Jobs deleted or expired during a `run`, for its report.
    removed: Vec<Job>,
    /// When each stored event goes (serve only), oldest first.
    expiring_events: VecDeque<(Time, String, String)>,
    /// The last expiry of each event recorded again since it was first (its count grew):
    /// its earlier entries in `expiring_events` are passed over.
    renewed_events: HashMap<(String, String), Time>,
    /// Events are combined, counted and rate-limited as client-go's recorder does.
    correlator: correlator::EventCorrelator,
    commands: Option<mpsc::UnboundedReceiver<commands::Command>>,
    batch: Batch,
    to_start: Vec<Pod>,
    /// Pods whose final status is in `batch`: the supervisor may forget them once it is
    /// committed.
    to_acknowledge: Vec<JobKey>,
    observer: Box<dyn FnMut(Notice) + Send>,
}

impl Engine {
    pub fn open(
        config: EngineConfig,
        observer: Box<dyn FnMut(Notice) + Send>,
    ) -> Result<Engine, EngineError> {
        let dir_error = |source| EngineError::StateDir {
            path: config.state_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&config.state_dir).map_err(dir_error)?;
        restrict_to_owner(&config.state_dir).map_err(dir_error)?;
        let store = Store::open(&config.state_dir.join("state.db"), config.durability)?;
        let clock = Arc::new(SystemClock);
        let (tx, updates) = mpsc::unbounded_channel();
        let runtime = match &config.supervisor {
            Some(command) => {
                Runtime::supervised(&config.state_dir, command.clone(), clock.clone(), tx)
            }
            None => {
                let local = runtime_config(&config.state_dir, &config.backoff, config.stream_logs);
                Runtime::new(local, clock.clone(), tx)
            }
        }
        .map_err(dir_error)?;
        let next_resource_version = store.resource_version();
        let store = Arc::new(Mutex::new(store));
        let writer = writer::Writer::start(store.clone(), runtime.clone());
        let machine = joblet_runtime::this_node(&config.state_dir, config.max_pods);
        let node = joblet_kubelet::node_object(&machine, &new_uid(), &clock.now().to_wire());
        let scheduler = Scheduler::new(&node);
        // The node registers itself anew at each start, as a kubelet updates its status.
        let mut batch = Batch::default();
        let node_rv = next_resource_version + 1;
        batch.put(objects::record(
            KIND_NODE,
            "",
            &machine.name,
            node_rv,
            &node,
        ));
        Ok(Engine {
            config,
            clock,
            store,
            writer,
            next_resource_version: node_rv,
            runtime,
            updates,
            node_name: machine.name.clone(),
            scheduler,
            unbound_deleted: Vec::new(),
            jobs: BTreeMap::new(),
            pod_owner: HashMap::new(),
            namespaces: BTreeMap::new(),
            plain: Default::default(),
            cron_jobs: BTreeMap::new(),
            metrics: Arc::new(Metrics::new()),
            local_zone: std::sync::OnceLock::new(),
            loose_pods: HashMap::new(),
            removed: Vec::new(),
            expiring_events: VecDeque::new(),
            renewed_events: HashMap::new(),
            correlator: Default::default(),
            commands: None,
            batch,
            to_start: Vec::new(),
            to_acknowledge: Vec::new(),
            observer,
        })
    }

    /// The ConfigMaps and Secrets the node's pods take variables from, and the Services that
    /// name them (for `joblet run`, those beside its Jobs in the manifest).
    pub fn set_node_objects(
        &self,
        config_maps: &[ConfigMap],
        secrets: &[Secret],
        services: &[Service],
    ) {
        self.runtime.set_objects(config_maps, secrets, services);
    }

    pub fn state_dir(&self) -> &Path {
        &self.config.state_dir
    }

    /// Simulates a crash at the `nth` commit from now (crash tests): that commit and every
    /// later one fail, and the engine stops as it does on any write error.
    pub fn crash_at_commit(&self, nth: u64, point: CrashPoint) {
        self.store
            .lock()
            .expect("store")
            .crash_at_commit(nth, point);
    }

    /// Stores a Job of a manifest, `admitted` as on create (see [`admit`]); the controller
    /// picks it up on the next [`Engine::run`]. If the state directory already holds a Job
    /// of that name, a run is being resumed: the `manifest` is applied to it as an update,
    /// so its counted pods stay counted, and a change to an immutable field (the pod
    /// template, for one) is refused with the API server's error.
    pub fn create_or_resume(
        &mut self,
        admitted: ValidJob,
        manifest: Job,
    ) -> Result<Admission, EngineError> {
        let key = (
            admitted.namespace().to_string(),
            admitted.name().to_string(),
        );
        let Some(entry) = self.jobs.get_mut(&key) else {
            self.insert_new_job(key.clone(), admitted);
            self.flush();
            self.note_spec_change(&key);
            self.writer.barrier().map_err(EngineError::Write)?;
            return Ok(Admission::Created);
        };
        let stored = job_object(entry);
        let mut new = manifest;
        let created = stored.metadata.creation_timestamp.as_ref();
        let created = created.map_or_else(|| self.clock.now_timestamp(), |t| t.0);
        prepare_for_create(&mut new, entry.job.uid(), created);
        joblet_api::prepare_for_update(&stored, &mut new);
        let valid = joblet_api::validate_job_update_as(&stored, &new, self.config.emulation)?;
        if valid.object().spec == entry.job.object().spec {
            return Ok(Admission::Resumed);
        }
        entry.job = valid;
        entry.dirty = true;
        entry.unwritten = true;
        self.flush();
        self.note_spec_change(&key);
        self.writer.barrier().map_err(EngineError::Write)?;
        Ok(Admission::Updated)
    }

    /// Re-runs the indexes of a failed Indexed Job that did not succeed, with a fresh
    /// failure budget (`joblet run --retry-failed`); the retry is recorded as an event.
    /// Returns the event's message.
    pub fn retry_failed(&mut self, namespace: &str, name: &str) -> Result<String, EngineError> {
        let key = (namespace.to_string(), name.to_string());
        let Some(mut entry) = self.jobs.remove(&key) else {
            return Err(EngineError::RetryRefused {
                name: name.to_string(),
                reason: joblet_core::RetryRefused::NotFailed,
            });
        };
        let retried = joblet_core::retry_failed(&entry.job, &entry.state);
        let message = match retried {
            Ok((state, event)) => {
                entry.state = state;
                entry.dirty = true;
                entry.unwritten = true;
                self.record_event(&entry.job, &event, self.clock.now());
                Ok(event.message)
            }
            Err(reason) => Err(EngineError::RetryRefused {
                name: name.to_string(),
                reason,
            }),
        };
        self.jobs.insert(key, entry);
        self.flush();
        self.writer.barrier().map_err(EngineError::Write)?;
        message
    }

    fn insert_new_job(&mut self, key: JobKey, job: ValidJob) {
        let entry = JobEntry {
            job,
            state: JobState::default(),
            pods: HashMap::new(),
            dirty: true,
            requeue_at: None,
            resource_version: 0,
            spec_version: 0,
            unwritten: true,
            unwritten_pods: HashSet::new(),
        };
        self.jobs.insert(key, entry);
    }

    /// After a flush that wrote the Job's new spec or metadata: its version is theirs.
    fn note_spec_change(&mut self, key: &JobKey) {
        if let Some(entry) = self.jobs.get_mut(key) {
            entry.spec_version = entry.resource_version;
        }
    }

    /// The controller's metrics, as `/metrics` shows them.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// A handle through which the API asks for changes while [`Engine::run`] runs.
    pub fn handle(&mut self) -> EngineHandle {
        let (commands, rx) = mpsc::unbounded_channel();
        self.commands = Some(rx);
        EngineHandle { commands }
    }

    /// Every object the API serves, committed, and the resourceVersion they are current at.
    pub fn snapshot(&mut self) -> Result<(Vec<Record>, i64), EngineError> {
        self.flush();
        self.writer.barrier().map_err(EngineError::Write)?;
        let store = self.store.lock().expect("store");
        let mut records = Vec::new();
        for kind in SERVED_KINDS {
            records.extend(store.list(kind)?);
        }
        Ok((records, store.resource_version()))
    }

    /// From now on, every committed write also goes to `feed`, in order. Nothing is written
    /// between a [`Engine::snapshot`] and this call but through the engine itself, so a
    /// snapshot followed by the feed misses nothing.
    pub fn feed(&mut self, feed: Feed) {
        self.writer.feed(feed);
    }

    /// The Jobs as the API server would show them, with status.
    pub fn jobs(&self) -> Vec<Job> {
        let mut jobs: Vec<Job> = self.removed.clone();
        jobs.extend(self.jobs.values().map(job_object));
        jobs
    }

    /// Runs the controller and node loops until every Job has settled, or a [`Shutdown`]
    /// arrives.
    pub async fn run(
        &mut self,
        mut shutdown: mpsc::UnboundedReceiver<Shutdown>,
    ) -> Result<Settled, EngineError> {
        let mut interrupted = false;
        loop {
            while let Ok(update) = self.updates.try_recv() {
                self.apply_update(update);
            }
            let now = self.clock.now();
            self.fail_unbound_deleted();
            if !interrupted {
                self.sync_due(now);
                // A sync that deleted waiting pods syncs again once they are marked failed.
                while !self.unbound_deleted.is_empty() {
                    self.fail_unbound_deleted();
                    self.sync_due(now);
                }
                // A pod the kubelet rejected has failed: its Job syncs again at once.
                while self.schedule_pods(now) {
                    self.sync_due(now);
                }
                // A Job a CronJob created is synced (its pods made) in the same turn.
                if self.sync_cron_jobs(now) {
                    self.sync_due(now);
                    while self.schedule_pods(now) {
                        self.sync_due(now);
                    }
                }
                self.expire_events(now);
            }
            self.flush();
            self.writer.error().map_err(EngineError::Write)?;
            let outcome = if interrupted {
                (self.runtime.running() == 0 && self.writer.pending_starts() == 0)
                    .then_some(Settled::Interrupted)
            } else {
                (!self.config.keep_running && self.settled()).then_some(Settled::Done)
            };
            // A pod's final report is queued before it leaves the runtime's table, so it
            // may still be unread here: go round once more to record it.
            if let Some(outcome) = outcome.filter(|_| self.updates.is_empty()) {
                self.writer.barrier().map_err(EngineError::Write)?;
                return Ok(outcome);
            }
            let wake = self.next_wake(now);
            tokio::select! {
                update = self.updates.recv() => {
                    if let Some(update) = update {
                        self.apply_update(update);
                    }
                }
                _ = sleep_until(wake) => {}
                () = self.writer.failed() => {}
                () = self.writer.starts_done() => {}
                Some(command) = next_command(&mut self.commands), if !interrupted => {
                    let now = self.clock.now();
                    self.carry_out(command, now);
                    // Every command waiting is carried out before the next sync, as
                    // upstream's work queue folds a burst of changes into one.
                    while let Some(command) = self.commands.as_mut().and_then(|rx| rx.try_recv().ok()) {
                        self.carry_out(command, now);
                    }
                }
                Some(request) = shutdown.recv() => {
                    if request == Shutdown::LeavePods && self.config.supervisor.is_some() && !interrupted {
                        self.flush();
                        self.writer.barrier().map_err(EngineError::Write)?;
                        return Ok(Settled::LeftRunning);
                    }
                    let grace = interrupted.then_some(Duration::ZERO);
                    interrupted = true;
                    self.stop_all(grace);
                }
            }
        }
    }

    fn settled(&self) -> bool {
        // A schedule runs until it is stopped.
        !self.has_cron_jobs()
            && self.runtime.running() == 0
            && self.writer.pending_starts() == 0
            && self.jobs.values().all(|e| {
                // A finished Job settles once a due TTL expiry has been carried out.
                (e.state.status.is_finished() && e.requeue_at.is_none_or(|t| t > self.clock.now()))
                    || (e.job.spec.suspend && e.state.status.active == 0 && !e.dirty)
                    // Nothing would ever run: `run` reports it rather than wait for ever.
                    || (e.job.spec.parallelism == 0 && e.state.status.active == 0 && !e.dirty)
                    || !e.job.managed_by_controller()
            })
    }

    fn next_wake(&self, now: Time) -> Option<Duration> {
        let earliest = self
            .jobs
            .values()
            .filter_map(|e| e.requeue_at)
            .chain(self.expiring_events.front().map(|(at, _, _)| *at))
            .chain(self.next_cron_sync())
            .min();
        let poll = (self.runtime.running() > 0
            && self.jobs.values().all(|e| e.state.status.is_finished()))
        .then_some(Duration::from_millis(5));
        let timer = earliest.map(|t| Duration::from_millis(t.millis_since(now).max(0) as u64));
        match (timer, poll) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn stop_all(&mut self, grace: Option<Duration>) {
        self.writer.cancel_starts();
        let now = self.clock.now();
        let keys: Vec<JobKey> = self.jobs.keys().cloned().collect();
        for key in keys {
            let entry = self.jobs.remove(&key).expect("listed above");
            for (name, pod) in &entry.pods {
                // Stopping with joblet is a node shutdown: the pods are disrupted.
                self.stop_pod(
                    entry.job.namespace(),
                    name,
                    grace,
                    Some(Disruption::NODE_SHUTDOWN),
                    None,
                );
                self.record_killing(&entry.job, &pod.object, now);
            }
            self.jobs.insert(key, entry);
        }
        let loose: Vec<JobKey> = self.loose_pods.keys().cloned().collect();
        for (namespace, name) in loose {
            self.stop_pod(
                &namespace,
                &name,
                grace,
                Some(Disruption::NODE_SHUTDOWN),
                None,
            );
        }
    }

    fn sync_due(&mut self, now: Time) {
        let keys: Vec<JobKey> = self
            .jobs
            .iter()
            .filter(|(_, e)| e.dirty || e.requeue_at.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.sync_job(&key, now);
        }
    }

    /// One controller sync of one Job, and carrying out what it decided.
    fn sync_job(&mut self, key: &JobKey, now: Time) {
        let Some(mut entry) = self.jobs.remove(key) else {
            return;
        };
        let started = std::time::Instant::now();
        entry.dirty = false;
        entry.requeue_at = None;
        if let Some(expiry) = ttl_expiry(&entry.job, &entry.state.status) {
            if expiry <= now {
                // The TTL controller deletes with foreground propagation: pods go too.
                self.remove_job(key, entry, Propagation::Background);
                return;
            }
            entry.requeue_at = Some(expiry);
        }
        let views: Vec<&PodView> = entry.pods.values().map(|p| &p.view).collect();
        let controller = ControllerConfig {
            backoff: self.config.backoff,
            emulation: self.config.emulation,
        };
        let result = reconcile(&entry.job, &entry.state, &views, now, &controller);
        let observed =
            joblet_core::metrics::observe_sync(&entry.job, &entry.state, &views, &result);
        let namespace = entry.job.namespace().to_string();
        for name in &result.untrack {
            if let Some(pod) = entry.pods.get_mut(name) {
                if let Some(finalizers) = pod.object.metadata.finalizers.as_mut() {
                    finalizers.retain(|f| f != joblet_api::labels::TRACKING_FINALIZER);
                }
                pod.view.tracked = false;
            }
        }
        for name in &result.delete {
            if let Some(pod) = entry.pods.get_mut(name) {
                mark_deleting(&mut pod.object, now);
                pod.object.metadata.deletion_grace_period_seconds = pod
                    .object
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
                    .or(Some(30));
                pod.view = PodView::from_pod(&pod.object);
                let pod = pod.object.clone();
                self.stop_pod(&namespace, name, None, None, pod.metadata.generation);
                self.record_killing(&entry.job, &pod, now);
            }
        }
        let touched: Vec<String> = result
            .untrack
            .iter()
            .chain(&result.delete)
            .cloned()
            .collect();
        for name in touched {
            self.persist_pod(&mut entry, &name);
        }
        for spec in &result.create {
            let pod = build_pod(&entry.job, spec, now);
            let view = PodView::from_pod(&pod);
            let pod_key = (namespace.clone(), spec.name.clone());
            self.pod_owner.insert(pod_key.clone(), key.clone());
            // Created pods wait for the scheduler, in the order they were created.
            self.scheduler
                .enqueue(pod_key, pod.spec.as_ref().expect("built with a spec"));
            entry
                .pods
                .insert(spec.name.clone(), PodEntry { object: pod, view });
            self.persist_pod(&mut entry, &spec.name);
        }
        for event in &result.events {
            self.record_event(&entry.job, event, now);
        }
        let status_changed = result.state.status != entry.state.status;
        let finished_now = !entry.state.status.is_finished() && result.state.status.is_finished();
        entry.state = result.state;
        entry.requeue_at = match (entry.requeue_at, result.requeue_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if finished_now {
            if let Some(expiry) = ttl_expiry(&entry.job, &entry.state.status) {
                entry.requeue_at = Some(expiry);
            }
        }
        if status_changed || !result.create.is_empty() {
            self.persist_job(&mut entry);
        }
        if status_changed {
            let running_indexes = entry
                .pods
                .values()
                .filter(|p| p.view.is_active())
                .filter_map(|p| p.view.index)
                .collect();
            (self.observer)(Notice::Status {
                namespace: namespace.clone(),
                job: entry.job.name().to_string(),
                status: entry.state.status.clone(),
                running_indexes,
                at: now,
            });
        }
        self.jobs.insert(key.clone(), entry);
        self.metrics.record(&observed, started.elapsed());
    }

    /// A status change reported by the runtime (the node's kubelet).
    fn apply_update(&mut self, update: PodUpdate) {
        let is_final = update.is_final();
        let pod_key = (update.namespace, update.name);
        if is_final {
            self.to_acknowledge.push(pod_key.clone());
            self.scheduler.remove(&pod_key);
        }
        let Some(job_key) = self.pod_owner.get(&pod_key).cloned() else {
            self.apply_loose_update(pod_key, update.status);
            return;
        };
        let Some(mut entry) = self.jobs.remove(&job_key) else {
            return;
        };
        let mut said = Vec::new();
        if let Some(pod) = entry.pods.get_mut(&pod_key.1) {
            let previous = pod.object.status.take().unwrap_or_default();
            // What the kubelet told (its image manager, before a start), then what its
            // status change says.
            let changed = kubelet_events(&pod.object, &previous, &update.status);
            said = (update.events.into_iter().chain(changed))
                .map(|e| (container_reference(&pod.object, &e.container), e))
                .collect();
            if is_final && update.status.phase.as_deref() == Some("Failed") {
                (self.observer)(Notice::PodFailed {
                    namespace: pod_key.0.clone(),
                    job: job_key.1.clone(),
                    pod: pod_key.1.clone(),
                    reason: why_failed(&update.status),
                    at: self.clock.now(),
                });
            }
            pod.object.status = Some(update.status);
            pod.view = PodView::from_pod(&pod.object);
            entry.dirty = true;
            self.persist_pod(&mut entry, &pod_key.1);
        }
        let now = self.clock.now();
        for (involved, said) in said {
            let event = Event {
                type_: if said.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: said.reason.to_string(),
                message: said.message,
            };
            let owner = (entry.job.namespace(), entry.job.name());
            self.record_event_about(owner, involved, "kubelet", &event, now);
        }
        self.jobs.insert(job_key, entry);
    }

    fn apply_loose_update(
        &mut self,
        pod_key: JobKey,
        status: joblet_api::k8s_openapi::api::core::v1::PodStatus,
    ) {
        let Some(mut pod) = self.loose_pods.remove(&pod_key) else {
            return;
        };
        pod.object.status = Some(status);
        let rv = self.next_resource_version();
        let done = PodView::from_pod(&pod.object).phase.is_terminal();
        if done && pod.delete_when_done {
            self.batch.delete(KIND_POD, &pod_key.0, &pod_key.1, rv);
            return;
        }
        self.batch.put(pod_record(&mut pod.object, rv));
        if !done {
            self.loose_pods.insert(pod_key, pod);
        }
    }

    /// Hands pending writes to the writer, which commits them and then starts the pods
    /// they recorded: a pod is always on disk before its process exists.
    fn flush(&mut self) {
        let mut rv = self.next_resource_version;
        for entry in self.jobs.values_mut() {
            for name in std::mem::take(&mut entry.unwritten_pods) {
                if let Some(pod) = entry.pods.get_mut(&name) {
                    rv += 1;
                    self.batch.put(pod_record(&mut pod.object, rv));
                }
            }
            if std::mem::take(&mut entry.unwritten) {
                rv += 1;
                entry.resource_version = rv;
                self.batch.put(job_record(entry, rv));
                rv += 1;
                self.batch.put(objects::controller_record(entry, rv));
            }
        }
        self.next_resource_version = rv;
        let mut acks: Vec<writer::Ack> = Vec::new();
        if !self.to_acknowledge.is_empty() {
            let (runtime, pods) = (
                self.runtime.clone(),
                std::mem::take(&mut self.to_acknowledge),
            );
            acks.push(Box::new(move |committed| {
                if committed.is_ok() {
                    runtime.acknowledge(pods);
                }
            }));
        }
        self.writer.submit(
            std::mem::take(&mut self.batch),
            std::mem::take(&mut self.to_start),
            acks,
        );
    }

    fn next_resource_version(&mut self) -> i64 {
        self.next_resource_version += 1;
        self.next_resource_version
    }

    fn persist_job(&mut self, entry: &mut JobEntry) {
        entry.unwritten = true;
    }

    /// Writes the pod; a pod that is finished and counted leaves memory (and, if it was
    /// deleted, the store, as the API server removes it once its finalizers are gone).
    fn persist_pod(&mut self, entry: &mut JobEntry, name: &str) {
        let Some(pod) = entry.pods.get(name) else {
            return;
        };
        let namespace = entry.job.namespace().to_string();
        let done = pod.view.phase.is_terminal() && !pod.view.tracked;
        if !done {
            entry.unwritten_pods.insert(name.to_string());
            return;
        }
        let mut pod = entry.pods.remove(name).expect("found above");
        let rv = self.next_resource_version();
        if pod.view.deleting {
            self.batch.delete(KIND_POD, &namespace, name, rv);
        } else {
            self.batch.put(pod_record(&mut pod.object, rv));
        }
        entry.unwritten_pods.remove(name);
        self.pod_owner.remove(&(namespace, name.to_string()));
    }

    fn record_event(&mut self, job: &ValidJob, event: &Event, now: Time) {
        let owner = (job.namespace(), job.name());
        self.record_event_about(owner, job_reference(job), "job-controller", event, now);
    }

    /// The kubelet's `Killing` events for a pod of `job` it is asked to stop: one for each
    /// container its last status shows running (`killContainer`: `Stopping container NAME`).
    fn record_killing(&mut self, job: &ValidJob, pod: &Pod, now: Time) {
        let status = pod.status.clone().unwrap_or_default();
        let statuses = (status.init_container_statuses.iter().flatten())
            .chain(status.container_statuses.iter().flatten());
        let running: Vec<String> = statuses
            .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            .map(|c| c.name.clone())
            .collect();
        for container in running {
            let event = Event {
                type_: EventType::Normal,
                reason: "Killing".to_string(),
                message: format!("Stopping container {container}"),
            };
            let involved = container_reference(pod, &container);
            let owner = (job.namespace(), job.name());
            self.record_event_about(owner, involved, "kubelet", &event, now);
        }
    }

    /// Records an event about `involved` (a Job or CronJob, or an object of one: the
    /// `owner`, by namespace and name), to expire after the event TTL, and tells the
    /// observer.
    pub(crate) fn record_event_about(
        &mut self,
        (namespace, owner): (&str, &str),
        involved: ObjectReference,
        component: &str,
        event: &Event,
        now: Time,
    ) {
        let object = format!(
            "{}/{}",
            involved.kind.as_deref().unwrap_or_default().to_lowercase(),
            involved.name.as_deref().unwrap_or_default()
        );
        let rv = self.next_resource_version();
        let candidate = correlator::Candidate {
            component,
            involved: &involved,
            event,
            rv,
        };
        let Some(recorded) = self.correlator.correlate(candidate, now) else {
            return;
        };
        let event = Event {
            message: recorded.message.clone(),
            ..event.clone()
        };
        let record = event_record(involved, component, &event, &recorded, now, rv);
        if let Some(ttl) = self.config.event_ttl {
            // Each write of an event gives it the whole TTL again, as the API server's.
            let at = now.plus_millis(ttl.as_millis() as i64);
            let key = (record.namespace.clone(), record.name.clone());
            if recorded.count > 1 {
                self.renewed_events.insert(key.clone(), at);
            }
            self.expiring_events.push_back((at, key.0, key.1));
        }
        self.batch.put(record);
        (self.observer)(Notice::Event {
            namespace: namespace.to_string(),
            job: owner.to_string(),
            object,
            event,
            at: now,
        });
    }
}

impl Engine {
    /// Stops a pod: through the runtime once it is bound to the node; a pod that still
    /// waits for the scheduler leaves its queue and is marked failed on the next turn.
    fn stop_pod(
        &mut self,
        namespace: &str,
        name: &str,
        grace: Option<Duration>,
        disruption: Option<Disruption>,
        generation: Option<i64>,
    ) {
        let key = (namespace.to_string(), name.to_string());
        if self.scheduler.remove(&key) {
            self.unbound_deleted.push(key);
        } else {
            self.runtime
                .stop(namespace, name, grace, disruption, generation);
        }
    }

    /// Marks the pods deleted while they waited `Failed`, as the pod garbage collector does
    /// with deleted pods that were never scheduled (`gcUnscheduledTerminating`).
    pub(crate) fn fail_unbound_deleted(&mut self) {
        for key in std::mem::take(&mut self.unbound_deleted) {
            let Some(object) = self.pod_object(&key) else {
                continue;
            };
            let mut status = object.status.clone().unwrap_or_default();
            status.phase = Some("Failed".to_string());
            self.apply_update(PodUpdate {
                namespace: key.0,
                name: key.1,
                status,
                events: Vec::new(),
            });
        }
    }

    /// A pod the engine tracks: of a Job, or loose.
    fn pod_object(&self, key: &JobKey) -> Option<&Pod> {
        let owned = (self.pod_owner.get(key))
            .and_then(|job| self.jobs.get(job))
            .and_then(|entry| entry.pods.get(&key.1));
        owned
            .map(|p| &p.object)
            .or_else(|| self.loose_pods.get(key).map(|p| &p.object))
    }

    /// Changes a tracked pod and writes it: `change`'s answer, the pod as changed, and the
    /// key of its Job (none for a loose pod).
    fn change_pod<R>(
        &mut self,
        key: &JobKey,
        change: impl FnOnce(&mut Pod) -> R,
    ) -> Option<(R, Pod, Option<JobKey>)> {
        if self.loose_pods.contains_key(key) {
            let rv = self.next_resource_version();
            let loose = self.loose_pods.get_mut(key).expect("just found");
            let answer = change(&mut loose.object);
            self.batch.put(pod_record(&mut loose.object, rv));
            return Some((answer, loose.object.clone(), None));
        }
        let job_key = self.pod_owner.get(key).cloned()?;
        let mut entry = self.jobs.remove(&job_key)?;
        let changed = entry.pods.get_mut(&key.1).map(|pod| {
            let answer = change(&mut pod.object);
            pod.view = PodView::from_pod(&pod.object);
            (answer, pod.object.clone())
        });
        if changed.is_some() {
            self.persist_pod(&mut entry, &key.1);
        }
        self.jobs.insert(job_key.clone(), entry);
        changed.map(|(answer, object)| (answer, object, Some(job_key)))
    }

    /// An event of `source` (the scheduler, the kubelet) about a pod of the Job `job_key`.
    fn record_pod_event(
        &mut self,
        job_key: &JobKey,
        pod: &Pod,
        source: &str,
        event: Event,
        now: Time,
    ) {
        let Some(entry) = self.jobs.remove(job_key) else {
            return;
        };
        let owner = (entry.job.namespace(), entry.job.name());
        self.record_event_about(owner, pod_reference(pod), source, &event, now);
        self.jobs.insert(job_key.clone(), entry);
    }

    /// Carries out the scheduler's decisions: binds the pods that fit and starts them, says
    /// why the others wait, and fails those the kubelet rejects. Whether it failed any.
    fn schedule_pods(&mut self, now: Time) -> bool {
        let mut rejected = false;
        for decision in self.scheduler.schedule() {
            match decision {
                Decision::Bind(key) => self.bind(key, now),
                Decision::Unschedulable { pod, message } => {
                    self.mark_unschedulable(pod, message, now)
                }
                Decision::Rejected {
                    pod,
                    reason,
                    message,
                } => {
                    self.reject(pod, reason, message, now);
                    rejected = true;
                }
            }
        }
        rejected
    }

    /// Sets a pod's `PodScheduled` condition; `Some(message)` when it is not (`Unschedulable`).
    fn scheduled_condition(pod: &mut Pod, unschedulable: Option<&str>, now: Time) {
        let generation = pod.metadata.generation;
        let status = pod.status.get_or_insert_with(Default::default);
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        conditions.retain(|c| c.type_ != "PodScheduled");
        conditions.insert(
            0,
            PodCondition {
                type_: "PodScheduled".to_string(),
                status: if unschedulable.is_some() {
                    "False"
                } else {
                    "True"
                }
                .to_string(),
                reason: unschedulable.map(|_| "Unschedulable".to_string()),
                message: unschedulable.map(str::to_string),
                last_transition_time: Some(now.to_wire()),
                observed_generation: generation,
                ..Default::default()
            },
        );
    }

    /// Binds a pod to the node (`spec.nodeName`, `PodScheduled`), and hands it to the
    /// runtime once that is committed.
    fn bind(&mut self, key: JobKey, now: Time) {
        let node = self.node_name.clone();
        let placed = self.change_pod(&key, |pod| {
            let spec = pod.spec.get_or_insert_with(Default::default);
            // A pod that named the node itself was never the scheduler's to place.
            let by_name = spec.node_name.replace(node.clone()).is_some();
            Self::scheduled_condition(pod, None, now);
            by_name
        });
        let Some((by_name, object, owner)) = placed else {
            return;
        };
        if let (false, Some(job_key)) = (by_name, owner) {
            let event = Event {
                type_: EventType::Normal,
                reason: "Scheduled".to_string(),
                message: format!("Successfully assigned {}/{} to {node}", key.0, key.1),
            };
            self.record_pod_event(&job_key, &object, "default-scheduler", event, now);
        }
        // Reserved only once found, so that nothing is held for a pod that is gone.
        self.runtime.reserve(&key.0, &key.1);
        self.to_start.push(object);
    }

    /// A pod that does not fit: `PodScheduled` False, and a `FailedScheduling` event.
    fn mark_unschedulable(&mut self, key: JobKey, message: String, now: Time) {
        let marked = self.change_pod(&key, |pod| {
            Self::scheduled_condition(pod, Some(&message), now);
        });
        if let Some(((), object, Some(job_key))) = marked {
            let event = Event {
                type_: EventType::Warning,
                reason: "FailedScheduling".to_string(),
                message,
            };
            self.record_pod_event(&job_key, &object, "default-scheduler", event, now);
        }
    }

    /// The kubelet refused a pod bound to it by name (`rejectPod`): the pod fails with the
    /// reason, and a Warning event says it.
    fn reject(&mut self, key: JobKey, reason: String, message: String, now: Time) {
        let Some(object) = self.pod_object(&key).cloned() else {
            return;
        };
        let mut status = object.status.clone().unwrap_or_default();
        status.phase = Some("Failed".to_string());
        status.reason = Some(reason.clone());
        status.message = Some(format!("Pod was rejected: {message}"));
        if let Some(job_key) = self.pod_owner.get(&key).cloned() {
            let event = Event {
                type_: EventType::Warning,
                reason,
                message,
            };
            self.record_pod_event(&job_key, &object, "kubelet", event, now);
        }
        self.apply_update(PodUpdate {
            namespace: key.0,
            name: key.1,
            status,
            events: Vec::new(),
        });
    }

    /// Deletes the events whose time is up: a long-running server would otherwise keep
    /// every event forever.
    fn expire_events(&mut self, now: Time) {
        while self
            .expiring_events
            .front()
            .is_some_and(|(at, _, _)| *at <= now)
        {
            let (at, namespace, name) = self.expiring_events.pop_front().expect("checked");
            let key = (namespace, name);
            if self.renewed_events.get(&key).is_some_and(|last| *last > at) {
                continue;
            }
            self.renewed_events.remove(&key);
            let rv = self.next_resource_version();
            self.batch.delete(KIND_EVENT, &key.0, &key.1, rv);
        }
    }
}

/// How pods of a state directory run, for an engine or its supervisor. The kubelet's
/// crash-loop back-off (10 s to 5 min) scales with the controller's (10 s to 10 min): the
/// same base, half the cap.
pub fn runtime_config(
    state_dir: &Path,
    backoff: &BackoffConfig,
    stream_logs: bool,
) -> RuntimeConfig {
    RuntimeConfig {
        log_dir: state_dir.join("logs"),
        containers_dir: state_dir.join("containers"),
        restart_backoff_base: Duration::from_millis(backoff.base_ms as u64),
        restart_backoff_max: Duration::from_millis(backoff.max_ms as u64 / 2),
        stream_logs,
    }
}

/// Prepares and validates a Job as the API server of `emulation` does on create, without
/// storing it.
pub fn admit(mut job: Job, emulation: Emulation) -> Result<ValidJob, Invalid> {
    prepare_for_create(&mut job, &new_uid(), SystemClock.now_timestamp());
    joblet_api::validation::validate_job_as(&job, emulation)
}

/// Checks a Job bound for a cluster as its API server would on create, less what only
/// joblet's node cannot run.
pub fn admit_for_cluster(mut job: Job) -> Result<(), Invalid> {
    prepare_for_create(&mut job, &new_uid(), SystemClock.now_timestamp());
    joblet_api::validate_job_for_cluster(&job)
}

/// Sets a pod's `deletionTimestamp`, once: a graceful deletion raises its generation.
pub(crate) fn mark_deleting(pod: &mut Pod, now: Time) {
    if pod.metadata.deletion_timestamp.is_none() {
        pod.metadata.deletion_timestamp = Some(now.to_wire());
        pod.metadata.generation = pod.metadata.generation.map(|g| g + 1);
    }
}

/// The Job as stored, with its current status and resourceVersion.
fn job_object(entry: &JobEntry) -> Job {
    let mut job = entry.job.object().clone();
    job.metadata.resource_version = Some(entry.resource_version.to_string());
    job.status = Some(entry.state.status.to_wire(entry.job.is_indexed()));
    job
}

async fn next_command(
    commands: &mut Option<mpsc::UnboundedReceiver<commands::Command>>,
) -> Option<commands::Command> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(wake: Option<Duration>) {
    match wake {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Fills `bytes` from the kernel's random source.
pub fn random_bytes(bytes: &mut [u8]) -> std::io::Result<()> {
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, bytes)
}

/// `metadata.generateName` of an object without a name: the prefix and five random
/// characters, as the API server names it on create.
pub fn generate_name(meta: &mut ObjectMeta) {
    if meta.name.as_deref().is_some_and(|n| !n.is_empty()) {
        return;
    }
    if let Some(prefix) = meta.generate_name.as_deref() {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut bytes = [0u8; 5];
        // Without a random source the suffix is fixed; a clash is an AlreadyExists.
        let _ = random_bytes(&mut bytes);
        let suffix: String = bytes
            .iter()
            .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
            .collect();
        meta.name = Some(format!("{prefix}{suffix}"));
    }
}

/// A random (version 4) UUID, as the API server gives every object.
pub fn new_uid() -> String {
    let mut bytes = [0u8; 16];
    if random_bytes(&mut bytes).is_err() {
        // No /dev/urandom: fall back to the clock and pid, still unique enough per machine.
        let seed = SystemClock.now().0 as u128 ^ ((std::process::id() as u128) << 64);
        bytes = seed.to_le_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Nothing in the state directory is readable by other users.
fn restrict_to_owner(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Why a pod failed, for a person: the pod's own reason (a deadline, an eviction), else the
/// first container that ended in error, as the pod failure policy finds it. The same words
/// for a pod of this machine and one of a cluster.
pub fn why_failed(status: &PodStatus) -> String {
    if let Some(reason) = &status.reason {
        let message = status.message.as_deref().unwrap_or("");
        return format!("{reason}: {message}");
    }
    let containers = status.container_statuses.iter().flatten();
    let all = containers.chain(status.init_container_statuses.iter().flatten());
    for container in all {
        let terminated = container.state.as_ref().and_then(|s| s.terminated.as_ref());
        if let Some(t) = terminated.filter(|t| t.exit_code != 0) {
            let reason = t.reason.as_deref().unwrap_or("Error");
            let message = t
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            return format!(
                "container {} exited with code {} ({reason}{message})",
                container.name, t.exit_code
            );
        }
    }
    // Disrupted, or never scheduled (deleted while it waited for the node).
    let conditions = status.conditions.iter().flatten();
    let said = conditions
        .clone()
        .find(|c| c.type_ == "DisruptionTarget")
        .or_else(|| {
            conditions
                .clone()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        });
    match said {
        Some(c) => format!(
            "{}: {}",
            c.reason.as_deref().unwrap_or(""),
            c.message.as_deref().unwrap_or("")
        ),
        None => "failed".to_string(),
    }
}
