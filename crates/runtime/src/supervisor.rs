//! The supervisor: one process per state directory that owns the pods' process groups and
//! logs, as containerd does for a node, so that pods outlive the engine that asked for
//! them. The engine talks to it over `DIR/supervisor.sock`, a line of JSON per message.
//!
//! A pod's final status is appended to the journal `DIR/exits.journal` before it is
//! reported, and the engine's acknowledgement that it recorded it is appended after: whatever
//! dies in between, the next engine learns how the pod ended. The journal is rewritten with
//! only the unacknowledged ends when it grows. The supervisor leaves once no engine is
//! connected and no pod runs.
//!
//! SIGTERM or SIGINT to the supervisor (its pid is in `DIR/supervisor.pid`) is a node
//! shutdown: every pod is stopped within its grace period and recorded disrupted, pods
//! started after it are stopped at once, and it leaves once nothing runs.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use joblet_api::k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret, Service};
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use joblet_api::k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use joblet_kubelet::{supersedes, KubeletEvent};

use crate::{Clock, CommitPacing, Disruption, Local, PodUpdate, RuntimeConfig, StopRequest};

/// How long a new supervisor waits for one that is leaving.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// How long a new supervisor waits for the engine that started it.
const FIRST_CLIENT_WAIT: Duration = Duration::from_secs(10);

/// What the engine asks.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", try_from = "RequestLine")]
pub(crate) enum Request {
    /// Starts a pod; `stop` is a stop asked for before the start (the pod never runs).
    Start {
        pod: Box<Pod>,
        stop: Option<WireStop>,
    },
    Stop {
        namespace: String,
        name: String,
        stop: WireStop,
    },
    /// These pods' final statuses are recorded by the engine: they may be forgotten.
    Acknowledge { pods: Vec<(String, String)> },
    /// Every ConfigMap and Secret pods may take variables from, replacing the last set. Held
    /// in memory only: Secret values are never journaled.
    Objects {
        config_maps: Vec<ConfigMap>,
        secrets: Vec<Secret>,
        #[serde(default)]
        services: Vec<Service>,
    },
}

/// A line of the journal: a pod's end, or the acknowledgement of ends.
#[derive(Deserialize)]
#[serde(untagged)]
enum JournalLine {
    Exit(Report),
    Acknowledged(Request),
}

/// What the supervisor tells: every status change of its pods; on connection, first the
/// last status of every pod it holds, then `Synced`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", try_from = "ReportLine")]
pub(crate) enum Report {
    Update {
        namespace: String,
        name: String,
        status: Box<PodStatus>,
        /// Containers' `finishedAt` in Unix nanoseconds: the API's times are whole
        /// seconds, and the controller's back-off counts from the precise one.
        #[serde(default)]
        finished_at: Vec<i64>,
        /// The update's events ([`PodUpdate::events`]).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        events: Vec<WireEvent>,
    },
    Synced,
}

/// Every field a [`Request`] may have, as read. serde reads an internally tagged enum by
/// copying the whole line into an intermediate tree first, then reading that: for lines
/// that carry a pod or its status, the larger part of the work of the supervisor's reader
/// and of the engine's. A struct is read straight; the tag then picks the variant.
#[derive(Deserialize)]
struct RequestLine {
    op: String,
    pod: Option<Box<Pod>>,
    stop: Option<WireStop>,
    namespace: Option<String>,
    name: Option<String>,
    pods: Option<Vec<(String, String)>>,
    config_maps: Option<Vec<ConfigMap>>,
    secrets: Option<Vec<Secret>>,
    #[serde(default)]
    services: Vec<Service>,
}

fn missing(field: &str) -> String {
    format!("missing field `{field}`")
}

impl TryFrom<RequestLine> for Request {
    type Error = String;

    fn try_from(line: RequestLine) -> Result<Request, String> {
        Ok(match line.op.as_str() {
            "start" => Request::Start {
                pod: line.pod.ok_or_else(|| missing("pod"))?,
                stop: line.stop,
            },
            "stop" => Request::Stop {
                namespace: line.namespace.ok_or_else(|| missing("namespace"))?,
                name: line.name.ok_or_else(|| missing("name"))?,
                stop: line.stop.ok_or_else(|| missing("stop"))?,
            },
            "acknowledge" => Request::Acknowledge {
                pods: line.pods.ok_or_else(|| missing("pods"))?,
            },
            "objects" => Request::Objects {
                config_maps: line.config_maps.ok_or_else(|| missing("config_maps"))?,
                secrets: line.secrets.ok_or_else(|| missing("secrets"))?,
                services: line.services,
            },
            other => {
                return Err(format!(
                    "unknown variant `{other}`, expected one of `start`, `stop`, `acknowledge`, `objects`"
                ))
            }
        })
    }
}

/// Every field a [`Report`] may have, as read (see [`RequestLine`]).
#[derive(Deserialize)]
struct ReportLine {
    op: String,
    namespace: Option<String>,
    name: Option<String>,
    status: Option<Box<PodStatus>>,
    #[serde(default)]
    finished_at: Vec<i64>,
    #[serde(default)]
    events: Vec<WireEvent>,
}

impl TryFrom<ReportLine> for Report {
    type Error = String;

    fn try_from(line: ReportLine) -> Result<Report, String> {
        match line.op.as_str() {
            "update" => Ok(Report::Update {
                namespace: line.namespace.ok_or_else(|| missing("namespace"))?,
                name: line.name.ok_or_else(|| missing("name"))?,
                status: line.status.ok_or_else(|| missing("status"))?,
                finished_at: line.finished_at,
                events: line.events,
            }),
            "synced" => Ok(Report::Synced),
            other => Err(format!(
                "unknown variant `{other}`, expected `update` or `synced`"
            )),
        }
    }
}

/// A [`KubeletEvent`] on the wire.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireEvent {
    container: String,
    reason: String,
    message: String,
    warning: bool,
}

/// The terminated containers' finish times (init containers first), in nanoseconds.
fn finish_times(status: &PodStatus) -> Vec<i64> {
    terminated_states(status)
        .map(|finished| finished.map_or(0, |t| t.0.as_nanosecond() as i64))
        .collect()
}

fn terminated_states(status: &PodStatus) -> impl Iterator<Item = Option<&Time>> {
    let init = status.init_container_statuses.iter().flatten();
    init.chain(status.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
        .map(|t| t.finished_at.as_ref())
}

/// Puts back the precise finish times of [`finish_times`] into a status read off the wire.
pub(crate) fn restore_finish_times(status: &mut PodStatus, times: &[i64]) {
    let init = status.init_container_statuses.iter_mut().flatten();
    let terminated = init
        .chain(status.container_statuses.iter_mut().flatten())
        .filter_map(|c| c.state.as_mut()?.terminated.as_mut());
    for (state, nanos) in terminated.zip(times) {
        if let (Some(finished), Ok(precise)) = (
            state.finished_at.as_mut(),
            Timestamp::from_nanosecond(i128::from(*nanos)),
        ) {
            // Only a time that the wire rounded: a status edited since is left as it is.
            if finished.0.as_second() == precise.as_second() {
                finished.0 = precise;
            }
        }
    }
}

/// A [`crate::StopRequest`] on the wire; a disruption by its reason (the known ones only).
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireStop {
    grace_ms: Option<u64>,
    disruption: Option<usize>,
    /// Absent from a stop of an older joblet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generation: Option<i64>,
}

const KNOWN_DISRUPTIONS: [Disruption; 2] = [Disruption::NODE_SHUTDOWN, Disruption::EVICTION];

impl WireStop {
    pub(crate) fn new(
        grace: Option<Duration>,
        disruption: Option<Disruption>,
        generation: Option<i64>,
    ) -> WireStop {
        WireStop {
            grace_ms: grace.map(|g| g.as_millis().min(u64::MAX as u128) as u64),
            disruption: disruption.and_then(|d| KNOWN_DISRUPTIONS.iter().position(|k| *k == d)),
            generation,
        }
    }

    fn grace(self) -> Option<Duration> {
        self.grace_ms.map(Duration::from_millis)
    }

    fn disruption(self) -> Option<Disruption> {
        self.disruption
            .and_then(|i| KNOWN_DISRUPTIONS.get(i).copied())
    }

    /// Merges a later stop into an earlier one, by the runtime's rule (no grace is unbounded).
    pub(crate) fn merge(self, later: WireStop) -> WireStop {
        let merged = self.request().merge(later.request());
        let grace = (merged.grace != Duration::MAX).then_some(merged.grace);
        WireStop::new(grace, merged.disruption, merged.generation)
    }

    fn request(self) -> StopRequest {
        StopRequest {
            grace: self.grace().unwrap_or(Duration::MAX),
            disruption: self.disruption(),
            generation: self.generation,
        }
    }
}

pub(crate) fn socket_path(dir: &Path) -> PathBuf {
    dir.join("supervisor.sock")
}

fn journal_path(dir: &Path) -> PathBuf {
    dir.join("exits.journal")
}

/// Past this size, the journal is rewritten with the unacknowledged ends only.
const JOURNAL_COMPACT_BYTES: u64 = 4 << 20;

type Key = (String, String);

struct Supervisor {
    dir: PathBuf,
    runtime: Local,
    updates: mpsc::UnboundedReceiver<PodUpdate>,
    /// The last status of every pod not yet acknowledged as finished.
    held: HashMap<Key, PodUpdate>,
    journal: std::fs::File,
    journal_bytes: u64,
    /// How much of the journal is known to be on the disk: what a power loss leaves.
    journal_synced: u64,
    /// Journal lines not yet written: written before the reports they precede.
    unwritten: Vec<u8>,
    /// Whether a pod's end is made durable before it is reported.
    sync_journal: bool,
    /// Ends among the unwritten lines: they must reach the disk before their reports.
    unsynced_ends: bool,
    /// A node shutdown was asked for (SIGTERM or SIGINT).
    shutting_down: bool,
    shutdown_signals: ShutdownSignals,
}

/// SIGTERM and SIGINT, the signals that shut a node down. SIGHUP is ignored: a closed
/// terminal must not take the pods with it.
struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    _hangup: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            _hangup: signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Runs the supervisor of `dir` until no engine is connected and no pod runs. Returns at
/// once if another supervisor serves `dir`. Must run within a Tokio runtime.
///
/// With `sync_journal`, a pod's end is on the disk (fdatasync) before it is reported, so a
/// power loss cannot lose an end the engine may have counted.
pub async fn supervise(
    dir: &Path,
    config: RuntimeConfig,
    clock: Arc<dyn Clock>,
    sync_journal: bool,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut lock = std::fs::File::create(dir.join("supervisor.lock"))?;
    // One supervisor per directory. One that is leaving is waited for a moment; one that
    // stays serves, and this one is not needed.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let _lock = loop {
        match nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(locked) => break locked,
            Err(_) if std::time::Instant::now() > deadline => return Ok(()),
            Err((file, _)) => lock = file,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // This directory's pods are this supervisor's now: a container a killed one left
    // running would run on unwatched.
    crate::oci::remove_leftovers(&config.containers_dir);
    let shutdown_signals = ShutdownSignals::install()?;
    let socket = socket_path(dir);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    let pid_file = dir.join("supervisor.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))?;
    let (tx, updates) = mpsc::unbounded_channel();
    let mut supervisor = Supervisor {
        dir: dir.to_path_buf(),
        runtime: Local::new(config, clock, tx)?,
        updates,
        held: load_journal(dir),
        journal: open_journal(dir)?,
        journal_bytes: 0,
        journal_synced: 0,
        unwritten: Vec::new(),
        sync_journal,
        unsynced_ends: false,
        shutting_down: false,
        shutdown_signals,
    };
    supervisor.compact();
    // The engine that started this supervisor connects at once; nothing runs before it.
    if let Ok(Ok((stream, _))) = tokio::time::timeout(FIRST_CLIENT_WAIT, listener.accept()).await {
        supervisor.serve(stream).await;
        // No engine connected: record the ends until nothing runs, or serve the next one.
        while supervisor.runtime.running() > 0 || !supervisor.updates.is_empty() {
            tokio::select! {
                accepted = listener.accept(), if !supervisor.shutting_down => {
                    if let Ok((stream, _)) = accepted {
                        supervisor.serve(stream).await;
                    }
                }
                Some(update) = supervisor.updates.recv() => {
                    supervisor.record(update, None);
                    supervisor.write_journal();
                }
                () = supervisor.shutdown_signals.recv(), if !supervisor.shutting_down => {
                    supervisor.shut_down();
                }
            }
        }
    }
    supervisor.compact();
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&pid_file);
    eprintln!(
        "joblet supervise: leaving, nothing left to run; peak RSS {} KiB, CPU {:.3} s",
        peak_rss_kib().unwrap_or(0),
        cpu_seconds()
    );
    Ok(())
}

/// This process's CPU time, user and system, for the log (its pods' not counted).
fn cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else {
        return 0.0;
    };
    let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    seconds(usage.user_time()) + seconds(usage.system_time())
}

/// This process's peak resident memory (`VmHWM`), for the log.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn open_journal(dir: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal_path(dir))
}

/// Final statuses that no engine acknowledged, from an earlier supervisor.
fn load_journal(dir: &Path) -> HashMap<Key, PodUpdate> {
    parse_journal(&std::fs::read_to_string(journal_path(dir)).unwrap_or_default())
}

/// The unacknowledged ends a journal's text holds.
pub(crate) fn parse_journal(text: &str) -> HashMap<Key, PodUpdate> {
    let mut held = HashMap::new();
    // A line cut short by a crash is skipped: its pod was not reported finished.
    for line in text.lines() {
        match serde_json::from_str::<JournalLine>(line) {
            Ok(JournalLine::Exit(report)) => {
                if let Some(update) = pod_update(report) {
                    held.insert((update.namespace.clone(), update.name.clone()), update);
                }
            }
            Ok(JournalLine::Acknowledged(Request::Acknowledge { pods })) => {
                for key in pods {
                    held.remove(&key);
                }
            }
            _ => {}
        }
    }
    held
}

/// A status report as a [`PodUpdate`], its precise finish times put back.
pub(crate) fn pod_update(report: Report) -> Option<PodUpdate> {
    match report {
        Report::Update {
            namespace,
            name,
            mut status,
            finished_at,
            events,
        } => {
            restore_finish_times(&mut status, &finished_at);
            let events = (events.into_iter())
                .map(|e| KubeletEvent {
                    container: e.container,
                    reason: e.reason,
                    message: e.message,
                    warning: e.warning,
                })
                .collect();
            Some(PodUpdate {
                namespace,
                name,
                status: *status,
                events,
            })
        }
        Report::Synced => None,
    }
}

pub(crate) fn json_line<T: Serialize>(value: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).expect("supervisor messages serialize");
    line.push(b'\n');
    line
}

/// The report of a pod's `update`, telling `events` with it.
fn report(update: &PodUpdate, events: &[KubeletEvent]) -> Report {
    Report::Update {
        namespace: update.namespace.clone(),
        name: update.name.clone(),
        status: Box::new(update.status.clone()),
        finished_at: finish_times(&update.status),
        events: (events.iter())
            .map(|e| WireEvent {
                container: e.container.clone(),
                reason: e.reason.clone(),
                message: e.message.clone(),
                warning: e.warning,
            })
            .collect(),
    }
}

/// How long a pod's new status that is not final waits to be reported, for a change that
/// supersedes it. A pod that runs for less is reported once, ended, as the kubelet reports
/// it: it sees a container run only when it next lists them (every second), and a
/// container that ran between two lists it reports ended without having reported it
/// running. Half the reports and the engine's writes of a run of short pods.
const STATUS_HOLD: Duration = Duration::from_millis(50);

/// Reports waiting to be sent. A pod's change that supersedes the one waiting (see
/// [`supersedes`]) replaces it, as the kubelet's status manager sends the API server only
/// the latest status it holds. What tells events goes at once, as the kubelet records them.
#[derive(Default)]
struct Unsent {
    /// Lines to send at the next chance, in order: ends, changes with events, and statuses
    /// a change did not supersede.
    ready: Vec<u8>,
    /// Pods whose latest status waits to be reported, and since when.
    waiting: HashMap<Key, Instant>,
    /// The waiting pods, in the order their status came (a pod's stale entries skipped).
    timeline: VecDeque<(Instant, Key)>,
}

impl Unsent {
    fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.waiting.is_empty()
    }

    /// Adds the change of a pod from `earlier` (its status held so far) to `update` at
    /// `now`, with the `events` told meanwhile; `journaled` is the line of a final status.
    fn add(
        &mut self,
        now: Instant,
        key: &Key,
        earlier: Option<&PodUpdate>,
        update: &PodUpdate,
        events: Vec<KubeletEvent>,
        journaled: Option<Vec<u8>>,
    ) {
        if self.waiting.contains_key(key) {
            let superseded = events.is_empty()
                && earlier.is_some_and(|earlier| supersedes(&earlier.status, &update.status));
            if superseded && !update.is_final() {
                return; // reported when due, as it is then
            }
            self.waiting.remove(key);
            if let (false, Some(earlier)) = (superseded, earlier) {
                // Told as it was: the change to `update` says something it would not.
                self.ready.extend(json_line(&report(earlier, &[])));
            }
        }
        if !update.is_final() && events.is_empty() {
            self.waiting.insert(key.clone(), now);
            self.timeline.push_back((now, key.clone()));
            return;
        }
        match journaled {
            Some(line) if events.is_empty() => self.ready.extend(line),
            _ => self.ready.extend(json_line(&report(update, &events))),
        }
    }

    /// How long until [`Unsent::take`] has something to send.
    fn due(&self, now: Instant) -> Duration {
        match self.timeline.front() {
            Some((since, _)) if self.ready.is_empty() => {
                (*since + STATUS_HOLD).saturating_duration_since(now)
            }
            _ => Duration::ZERO,
        }
    }

    /// The lines to send at `now`: those ready, and the waiting pods' whose status came
    /// [`STATUS_HOLD`] ago or more, as `held` has it now.
    fn take(&mut self, held: &HashMap<Key, PodUpdate>, now: Instant) -> Vec<u8> {
        let mut lines = std::mem::take(&mut self.ready);
        while let Some((since, key)) = self.timeline.front() {
            // An entry whose pod was reported since, or waits with a later status, is stale.
            let current = self.waiting.get(key) == Some(since);
            if current && now < *since + STATUS_HOLD {
                break;
            }
            let Some((_, key)) = self.timeline.pop_front() else {
                break;
            };
            if current {
                self.waiting.remove(&key);
                if let Some(update) = held.get(&key) {
                    lines.extend(json_line(&report(update, &[])));
                }
            }
        }
        lines
    }
}

impl Supervisor {
    /// Keeps the pod's last status and, with an engine to tell, adds its report to
    /// `unsent`; a final one also goes to the journal, which is written before anyone
    /// hears of it (see [`Supervisor::write_journal`]).
    fn record(&mut self, mut update: PodUpdate, unsent: Option<&mut Unsent>) {
        // Events are told once, as they happen: neither journaled nor told again on a
        // reconnection.
        let events = std::mem::take(&mut update.events);
        let journaled = update.is_final().then(|| json_line(&report(&update, &[])));
        if let Some(line) = &journaled {
            self.unwritten.extend_from_slice(line);
            self.unsynced_ends = true;
        }
        let key = (update.namespace.clone(), update.name.clone());
        if let Some(unsent) = unsent {
            unsent.add(
                Instant::now(),
                &key,
                self.held.get(&key),
                &update,
                events,
                journaled,
            );
        }
        self.held.insert(key, update);
    }

    fn write_journal(&mut self) {
        if self.unwritten.is_empty() {
            return;
        }
        // One fdatasync for every end collected since the last: group commit.
        let written = self.journal.write_all(&self.unwritten);
        self.journal_bytes += self.unwritten.len() as u64;
        let synced = written.and_then(|()| {
            if self.sync_journal && self.unsynced_ends {
                self.journal.sync_data()?;
                self.journal_synced = self.journal_bytes;
            }
            Ok(())
        });
        if let Err(error) = synced {
            eprintln!("joblet supervise: writing the journal: {error}");
        }
        self.unsynced_ends = false;
        self.unwritten.clear();
        if self.journal_bytes > JOURNAL_COMPACT_BYTES {
            self.compact();
        }
    }

    /// Rewrites the journal with the unacknowledged ends only.
    fn compact(&mut self) {
        let mut text = Vec::new();
        for update in self.held.values().filter(|u| u.is_final()) {
            text.extend(json_line(&report(update, &[])));
        }
        let path = journal_path(&self.dir);
        let temporary = path.with_extension("tmp");
        let sync = self.sync_journal;
        let rewritten = std::fs::File::create(&temporary)
            .and_then(|mut file| {
                file.write_all(&text)?;
                if sync {
                    file.sync_data()?;
                }
                Ok(())
            })
            .and_then(|()| std::fs::rename(&temporary, &path))
            // The rename itself must reach the disk before the old journal is trusted gone.
            .and_then(|()| match sync {
                true => std::fs::File::open(&self.dir)?.sync_all(),
                false => Ok(()),
            })
            .and_then(|()| open_journal(&self.dir));
        match rewritten {
            Ok(journal) => {
                self.journal = journal;
                self.journal_bytes = text.len() as u64;
                if sync {
                    self.journal_synced = self.journal_bytes;
                }
            }
            Err(error) => eprintln!("joblet supervise: rewriting the journal: {error}"),
        }
    }

    /// A node shutdown: every pod is stopped within its grace period, recorded disrupted.
    fn shut_down(&mut self) {
        eprintln!("joblet supervise: shutting down, stopping every pod");
        self.shutting_down = true;
        self.runtime.stop_all(Some(Disruption::NODE_SHUTDOWN));
    }

    /// Serves one engine until it disconnects, or, after a shutdown, until nothing runs
    /// (the engine then starts a new supervisor, as pods go to a node that came back).
    async fn serve(&mut self, stream: UnixStream) {
        let (read, mut out) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut sync: Vec<u8> = self
            .held
            .values()
            .flat_map(|u| json_line(&report(u, &[])))
            .collect();
        sync.extend(json_line(&Report::Synced));
        if out.write_all(&sync).await.is_err() {
            return;
        }
        // Reports wait here while an end among them waits for the journal's next sync,
        // spaced from the last one (see `pacing`), and a status that is not final for one
        // that may supersede it.
        let mut unsent = Unsent::default();
        let mut pacing = CommitPacing::default();
        loop {
            let wake = self.next_report(&unsent, &pacing);
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(line)) => self.carry_out(&line),
                    _ => return,
                },
                Some(update) = self.updates.recv() => {
                    self.record(update, Some(&mut unsent));
                    while let Ok(update) = self.updates.try_recv() {
                        self.record(update, Some(&mut unsent));
                    }
                }
                () = tokio::time::sleep(wake), if !unsent.is_empty() => {}
                () = self.shutdown_signals.recv(), if !self.shutting_down => {
                    self.shut_down();
                    if self.runtime.running() == 0 && unsent.is_empty() {
                        return;
                    }
                    continue;
                }
            }
            if self.must_sync() && pacing.wait(Instant::now()).is_some() {
                continue; // the reports wait with the ends for the next sync
            }
            let syncs = self.must_sync();
            self.write_journal();
            if syncs {
                pacing.committed(Instant::now());
            }
            let lines = unsent.take(&self.held, Instant::now());
            if !lines.is_empty() && out.write_all(&lines).await.is_err() {
                return;
            }
            if self.shutting_down && self.runtime.running() == 0 {
                return;
            }
        }
    }

    /// How long until reports may go: the next sync's if ends wait for it, else the
    /// first held report's.
    fn next_report(&self, unsent: &Unsent, pacing: &CommitPacing) -> Duration {
        let now = Instant::now();
        match pacing.wait(now) {
            Some(wait) if self.must_sync() => wait,
            _ => unsent.due(now),
        }
    }

    /// Whether ends wait to be made durable.
    fn must_sync(&self) -> bool {
        self.sync_journal && self.unsynced_ends
    }

    fn carry_out(&mut self, line: &str) {
        let request = match serde_json::from_str::<Request>(line) {
            Ok(request) => request,
            Err(error) => {
                eprintln!("joblet supervisor: ignoring a request: {error}");
                return;
            }
        };
        match request {
            Request::Start { pod, stop } => {
                let meta = &pod.metadata;
                let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
                let name = meta.name.clone().unwrap_or_default();
                if self.held.contains_key(&(namespace.clone(), name.clone())) {
                    return; // Already started: a pod runs once.
                }
                // After a shutdown, a pod is stopped before it runs.
                let shutdown = self.shutting_down.then(|| {
                    WireStop::new(Some(Duration::ZERO), Some(Disruption::NODE_SHUTDOWN), None)
                });
                let stop = match (stop, shutdown) {
                    (Some(asked), Some(shutdown)) => Some(asked.merge(shutdown)),
                    (asked, shutdown) => asked.or(shutdown),
                };
                if let Some(stop) = stop {
                    self.runtime.reserve(&namespace, &name);
                    self.runtime.stop(
                        &namespace,
                        &name,
                        stop.grace(),
                        stop.disruption(),
                        stop.generation,
                    );
                }
                let status = pod.status.clone().unwrap_or_default();
                self.held.insert(
                    (namespace.clone(), name.clone()),
                    PodUpdate {
                        namespace,
                        name,
                        status,
                        events: Vec::new(),
                    },
                );
                self.runtime.start(*pod);
            }
            Request::Stop {
                namespace,
                name,
                stop,
            } => self.runtime.stop(
                &namespace,
                &name,
                stop.grace(),
                stop.disruption(),
                stop.generation,
            ),
            Request::Acknowledge { pods } => {
                let mut acknowledged = Vec::new();
                for key in pods {
                    if self.held.get(&key).is_some_and(|u| u.is_final()) {
                        self.held.remove(&key);
                        acknowledged.push(key);
                    }
                }
                if !acknowledged.is_empty() {
                    let line = json_line(&Request::Acknowledge { pods: acknowledged });
                    self.unwritten.extend(line);
                }
            }
            Request::Objects {
                config_maps,
                secrets,
                services,
            } => self.runtime.set_objects(&config_maps, &secrets, &services),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(name: &str, nanos: i128) -> PodUpdate {
        let status: PodStatus = serde_json::from_value(serde_json::json!({
            "phase": "Failed",
            "containerStatuses": [{"name": "main", "image": "x", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": 3}}}],
        }))
        .unwrap();
        let mut update = PodUpdate {
            namespace: "default".into(),
            name: name.into(),
            status,
            events: Vec::new(),
        };
        let terminated = update.status.container_statuses.as_mut().unwrap()[0]
            .state
            .as_mut()
            .unwrap()
            .terminated
            .as_mut()
            .unwrap();
        terminated.finished_at = Some(Time(Timestamp::from_nanosecond(nanos).unwrap()));
        update
    }

    fn finish_time(update: &PodUpdate) -> Timestamp {
        terminated_states(&update.status).next().unwrap().unwrap().0
    }

    /// A pod's update with one container in `state`, run `run`.
    fn update(name: &str, phase: &str, run: u32, state: serde_json::Value) -> PodUpdate {
        PodUpdate {
            namespace: "default".into(),
            name: name.into(),
            status: serde_json::from_value(serde_json::json!({
                "phase": phase,
                "containerStatuses": [{"name": "main", "image": "x", "imageID": "",
                    "ready": false, "restartCount": 0, "containerID": format!("joblet://{run}"),
                    "state": state}],
            }))
            .unwrap(),
            events: Vec::new(),
        }
    }

    #[test]
    fn a_pods_report_waits_briefly_and_a_superseding_change_replaces_it() {
        let mut held: HashMap<Key, PodUpdate> = HashMap::new();
        let mut unsent = Unsent::default();
        // What `Supervisor::record` does with an update, at `at`.
        let mut record = |unsent: &mut Unsent, mut update: PodUpdate, at: Instant| {
            let events = std::mem::take(&mut update.events);
            let journaled = update.is_final().then(|| json_line(&report(&update, &[])));
            let key = (update.namespace.clone(), update.name.clone());
            unsent.add(at, &key, held.get(&key), &update, events, journaled.clone());
            held.insert(key, update);
            (journaled, held.clone())
        };
        let reports = |lines: &[u8]| -> Vec<(String, String, usize)> {
            (lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()))
                .map(|l| match serde_json::from_slice(l).unwrap() {
                    Report::Update {
                        name,
                        status,
                        events,
                        ..
                    } => (name, status.phase.unwrap(), events.len()),
                    Report::Synced => panic!("not a pod's"),
                })
                .collect()
        };
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let running = serde_json::json!({"running": {}});
        let ended = serde_json::json!({"terminated": {"exitCode": 0}});

        // Ran and ended within the hold: told once, ended.
        record(
            &mut unsent,
            update("a", "Running", 1, running.clone()),
            at(0),
        );
        let (_, held_now) = record(
            &mut unsent,
            update("a", "Succeeded", 1, ended.clone()),
            at(1),
        );
        assert_eq!(
            reports(&unsent.take(&held_now, at(2))),
            [("a".into(), "Succeeded".into(), 0)]
        );
        assert!(unsent.is_empty());

        // A change that tells events goes at once, as the kubelet records them.
        let mut pulled = update("p", "Running", 1, running.clone());
        pulled.events.push(KubeletEvent {
            container: "main".into(),
            reason: "Pulled".into(),
            message: "Container image \"x\" already present on machine".into(),
            warning: false,
        });
        let (_, held_now) = record(&mut unsent, pulled, at(5));
        assert_eq!(unsent.due(at(5)), Duration::ZERO);
        assert_eq!(
            reports(&unsent.take(&held_now, at(5))),
            [("p".into(), "Running".into(), 1)]
        );

        // Still running: held for STATUS_HOLD after it came, then told.
        let (_, held_now) = record(
            &mut unsent,
            update("b", "Running", 1, running.clone()),
            at(10),
        );
        assert!(unsent.take(&held_now, at(20)).is_empty());
        assert_eq!(unsent.due(at(20)), STATUS_HOLD - Duration::from_millis(10));
        assert_eq!(
            reports(&unsent.take(&held_now, at(60))),
            [("b".into(), "Running".into(), 0)]
        );

        // A new run says what the last status would not: the last goes as it was, at once.
        record(
            &mut unsent,
            update("c", "Running", 1, running.clone()),
            at(100),
        );
        let (_, held_now) = record(&mut unsent, update("c", "Running", 2, running), at(101));
        assert_eq!(
            reports(&unsent.take(&held_now, at(102))),
            [("c".into(), "Running".into(), 0)]
        );
        let (journaled, held_now) =
            record(&mut unsent, update("c", "Succeeded", 2, ended), at(103));
        // A final status goes at once, as journaled.
        assert_eq!(unsent.due(at(103)), Duration::ZERO);
        assert_eq!(unsent.take(&held_now, at(103)), journaled.unwrap());
    }

    #[test]
    fn a_finish_time_crosses_the_wire_to_the_nanosecond() {
        let update = finished("p", 1_800_000_000_123_456_789);
        let line = json_line(&report(&update, &[]));
        let wire: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let text = wire["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
            .as_str()
            .unwrap();
        assert!(
            !text.contains(".123"),
            "the API's form is whole seconds: {text}"
        );
        let back = pod_update(serde_json::from_slice(&line).unwrap()).unwrap();
        assert_eq!(finish_time(&back), finish_time(&update));
    }

    #[test]
    fn the_journal_keeps_the_unacknowledged_ends_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = Vec::new();
        text.extend(json_line(&report(&finished("a", 1_000_000_000), &[])));
        text.extend(json_line(&report(&finished("b", 2_000_000_000), &[])));
        text.extend(json_line(&Request::Acknowledge {
            pods: vec![("default".into(), "a".into())],
        }));
        let torn = json_line(&report(&finished("c", 3_000_000_000), &[]));
        text.extend(&torn[..torn.len() / 2]);
        std::fs::write(journal_path(dir.path()), text).unwrap();
        let held = load_journal(dir.path());
        let names: Vec<&str> = held.keys().map(|(_, name)| name.as_str()).collect();
        assert_eq!(names, ["b"]);
    }

    /// A power loss keeps of the journal only what was synced; every end the supervisor
    /// reported must be in that part, so the next engine learns of it.
    async fn ends_reported_and_surviving_a_power_loss(sync_journal: bool) -> (usize, usize) {
        let dir = tempfile::tempdir().unwrap();
        let config = RuntimeConfig {
            log_dir: dir.path().join("logs"),
            containers_dir: dir.path().join("containers"),
            restart_backoff_base: Duration::from_millis(10),
            restart_backoff_max: Duration::from_millis(10),
            stream_logs: false,
        };
        let (tx, updates) = mpsc::unbounded_channel();
        let clock: Arc<dyn Clock> = Arc::new(crate::tests::SystemClock);
        let mut supervisor = Supervisor {
            dir: dir.path().to_path_buf(),
            runtime: Local::new(config, clock, tx).unwrap(),
            updates,
            held: HashMap::new(),
            journal: open_journal(dir.path()).unwrap(),
            journal_bytes: 0,
            journal_synced: 0,
            unwritten: Vec::new(),
            sync_journal,
            unsynced_ends: false,
            shutting_down: false,
            shutdown_signals: ShutdownSignals::install().unwrap(),
        };
        let mut reported = Vec::new();
        for batch in 0..20 {
            // A batch of ends is recorded, written, and only then reported.
            for n in 0..3 {
                supervisor.record(finished(&format!("p{batch}-{n}"), 1_000_000_000), None);
                reported.push(format!("p{batch}-{n}"));
            }
            supervisor.write_journal();
            // Every fifth batch the engine acknowledges the oldest, as it does.
            if batch % 5 == 4 {
                let line = json_line(&Request::Acknowledge {
                    pods: vec![("default".into(), format!("p{}-0", batch - 4))],
                });
                supervisor.carry_out(std::str::from_utf8(&line).unwrap().trim());
                reported.retain(|p| *p != format!("p{}-0", batch - 4));
                supervisor.write_journal();
            }
        }
        // The power cut: what was not synced is gone (a torn line at most remains).
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(journal_path(dir.path()))
            .unwrap();
        file.set_len(supervisor.journal_synced).unwrap();
        let survived = load_journal(dir.path());
        let kept = reported
            .iter()
            .filter(|name| survived.contains_key(&("default".to_string(), name.to_string())))
            .count();
        (reported.len(), kept)
    }

    #[tokio::test]
    async fn every_reported_end_survives_a_power_loss() {
        let (reported, kept) = ends_reported_and_surviving_a_power_loss(true).await;
        assert_eq!(kept, reported);
        // The same without fsync loses them: the simulation can tell.
        let (reported, kept) = ends_reported_and_surviving_a_power_loss(false).await;
        assert!(kept < reported, "{kept} of {reported}");
    }

    /// Requests and reports are written by the tagged enums and read through their line
    /// structs: every kind must read back as written, and a bad line be refused.
    #[test]
    fn every_kind_of_line_reads_back_as_it_was_written() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": "x", "command": ["true"]}]},
        }))
        .unwrap();
        let config_map: ConfigMap =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "c"}})).unwrap();
        let stop = WireStop::new(Some(Duration::from_secs(3)), None, Some(1));
        let requests = [
            Request::Start {
                pod: Box::new(pod.clone()),
                stop: None,
            },
            Request::Start {
                pod: Box::new(pod),
                stop: Some(stop),
            },
            Request::Stop {
                namespace: "default".into(),
                name: "p".into(),
                stop,
            },
            Request::Acknowledge {
                pods: vec![("default".into(), "p".into())],
            },
            Request::Objects {
                config_maps: vec![config_map],
                secrets: Vec::new(),
                services: Vec::new(),
            },
        ];
        for request in &requests {
            let line = json_line(request);
            let back: Request = serde_json::from_slice(&line).unwrap();
            assert_eq!(json_line(&back), line);
        }
        let mut update = finished("p", 1_000_000_000);
        update.events.push(KubeletEvent {
            container: "main".into(),
            reason: "Started".into(),
            message: "Started container main".into(),
            warning: false,
        });
        for report in [report(&update, &update.events), Report::Synced] {
            let line = json_line(&report);
            let back: Report = serde_json::from_slice(&line).unwrap();
            assert_eq!(json_line(&back), line);
        }
        let refused = |line: &str| match serde_json::from_str::<Request>(line) {
            Ok(_) => panic!("{line} was read"),
            Err(error) => error.to_string(),
        };
        assert!(refused(r#"{"op":"start"}"#).contains("missing field `pod`"));
        assert!(refused(r#"{"op":"launch"}"#).contains("unknown variant `launch`"));
        assert!(serde_json::from_str::<Report>(r#"{"op":"update","name":"p"}"#).is_err());
    }

    #[test]
    fn stops_merge_as_the_runtime_merges_them() {
        let first = WireStop::new(Some(Duration::from_secs(30)), None, Some(2));
        let second = WireStop::new(Some(Duration::ZERO), Some(Disruption::NODE_SHUTDOWN), None);
        let merged = first.merge(second);
        assert_eq!(merged.grace(), Some(Duration::ZERO));
        assert_eq!(merged.disruption(), Some(Disruption::NODE_SHUTDOWN));
        assert_eq!(merged.generation, Some(2));
        let unbounded = WireStop::new(None, Some(Disruption::EVICTION), None);
        assert_eq!(unbounded.merge(unbounded).grace(), None);
    }
}
