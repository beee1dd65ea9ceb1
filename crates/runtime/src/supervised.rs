//! The engine's side of the supervisor: the runtime's calls become requests on the
//! supervisor's socket, its reports become [`PodUpdate`]s. If the supervisor dies, a new
//! one is started; pods the old one ran and the new one does not know of are recorded
//! lost (failed, with `DisruptionTarget`), as a failed node's are.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use joblet_api::k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret, Service};
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::mpsc;

use crate::supervisor::{json_line, pod_update, socket_path, Report, Request, WireStop};
use crate::{mark_lost, Clock, Disruption, PodUpdate};

/// How long a supervisor that was just started may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How to start the supervisor: this program, with these arguments (it must call
/// [`crate::supervise`] on the same directory).
#[derive(Clone, Debug)]
pub struct SupervisorCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Where its standard error goes.
    pub log: PathBuf,
    /// Its standard output is the caller's (for streamed logs), else none.
    pub inherit_stdout: bool,
}

type Key = (String, String);

#[derive(Default)]
struct PodSlot {
    /// Handed to the supervisor (else only reserved).
    started: bool,
    /// A stop asked for before the start.
    stop: Option<WireStop>,
    /// The last status the supervisor reported.
    last: Option<PodStatus>,
}

/// Locks are taken in one order, `stream` before `pods`, and the reader takes only `pods`
/// (and `adopted`): a write that waits for the supervisor to read never holds up the reader,
/// which the supervisor may be waiting for.
pub(crate) struct Client {
    dir: PathBuf,
    command: SupervisorCommand,
    clock: Arc<dyn Clock>,
    updates: mpsc::UnboundedSender<PodUpdate>,
    /// The connection's writing side; held across a write so requests keep their order.
    stream: Mutex<UnixStream>,
    pods: Mutex<HashMap<Key, PodSlot>>,
    /// What the supervisor held when the connection began.
    adopted: Mutex<HashSet<Key>>,
}

impl Client {
    pub(crate) fn connect(
        dir: &Path,
        command: SupervisorCommand,
        clock: Arc<dyn Clock>,
        updates: mpsc::UnboundedSender<PodUpdate>,
    ) -> std::io::Result<Arc<Client>> {
        let (stream, reader, adopted) = open(dir, &command)?;
        let client = Arc::new(Client {
            dir: dir.to_path_buf(),
            command,
            clock,
            updates,
            stream: Mutex::new(stream),
            pods: Mutex::new(HashMap::new()),
            adopted: Mutex::new(HashSet::new()),
        });
        client.take_sync(adopted);
        // The reader holds the client weakly: once the engine drops it, the connection
        // closes (see `Drop`) and the reader ends.
        let reading = Arc::downgrade(&client);
        std::thread::Builder::new()
            .name("joblet-supervised".to_string())
            .spawn(move || read_forever(&reading, reader))?;
        Ok(client)
    }

    /// Takes the pods a (new) supervisor holds, as this client's.
    fn take_sync(&self, sync: Vec<PodUpdate>) {
        let mut adopted = HashSet::new();
        let mut pods = self.pods.lock().expect("pod table");
        for update in sync {
            let key = (update.namespace.clone(), update.name.clone());
            adopted.insert(key.clone());
            if !update.is_final() {
                let slot = pods.entry(key).or_default();
                slot.started = true;
                slot.last = Some(update.status.clone());
            }
            let _ = self.updates.send(update);
        }
        drop(pods);
        *self.adopted.lock().expect("adopted") = adopted;
    }

    fn send(&self, request: &Request) {
        write(
            &mut self.stream.lock().expect("stream"),
            &json_line(request),
        );
    }

    /// Starts pods, in one write to the supervisor.
    pub(crate) fn start(&self, batch: Vec<Pod>) {
        // The stream first: a stop cannot overtake the start.
        let mut stream = self.stream.lock().expect("stream");
        let mut lines = Vec::new();
        let mut pods = self.pods.lock().expect("pod table");
        for pod in batch {
            let namespace = pod.metadata.namespace.clone().unwrap_or("default".into());
            let key = (namespace, pod.metadata.name.clone().unwrap_or_default());
            let slot = pods.entry(key).or_default();
            slot.started = true;
            let request = Request::Start {
                pod: Box::new(pod),
                stop: slot.stop,
            };
            lines.extend(json_line(&request));
        }
        drop(pods);
        write(&mut stream, &lines);
    }

    pub(crate) fn reserve(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        self.pods.lock().expect("pod table").entry(key).or_default();
    }

    pub(crate) fn forget(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        self.pods.lock().expect("pod table").remove(&key);
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
        let mut stream = self.stream.lock().expect("stream");
        let mut pods = self.pods.lock().expect("pod table");
        let Some(slot) = pods.get_mut(&key) else {
            return;
        };
        let stop = WireStop::new(grace, disruption, generation);
        if !slot.started {
            slot.stop = Some(slot.stop.map_or(stop, |earlier| earlier.merge(stop)));
            return;
        }
        drop(pods);
        let request = Request::Stop {
            namespace: key.0,
            name: key.1,
            stop,
        };
        write(&mut stream, &json_line(&request));
    }

    pub(crate) fn set_objects(
        &self,
        config_maps: &[ConfigMap],
        secrets: &[Secret],
        services: &[Service],
    ) {
        self.send(&Request::Objects {
            config_maps: config_maps.to_vec(),
            secrets: secrets.to_vec(),
            services: services.to_vec(),
        });
    }

    pub(crate) fn acknowledge(&self, pods: Vec<(String, String)>) {
        self.send(&Request::Acknowledge { pods });
    }

    pub(crate) fn adopted(&self, namespace: &str, name: &str) -> bool {
        let key = (namespace.to_string(), name.to_string());
        self.adopted.lock().expect("adopted").contains(&key)
    }

    pub(crate) fn running(&self) -> usize {
        self.pods.lock().expect("pod table").len()
    }

    /// Passes on a status; a final one takes the pod out of the table, under its lock, so
    /// whoever sees nothing running finds the report queued.
    fn report(&self, update: PodUpdate) {
        let key = (update.namespace.clone(), update.name.clone());
        let mut pods = self.pods.lock().expect("pod table");
        if update.is_final() {
            pods.remove(&key);
        } else if let Some(slot) = pods.get_mut(&key) {
            slot.last = Some(update.status.clone());
        }
        let _ = self.updates.send(update);
    }

    fn lose_started(&self, lost: impl Fn(&Key) -> bool) {
        let now = Time(self.clock.now());
        let mut pods = self.pods.lock().expect("pod table");
        let keys: Vec<Key> = pods
            .iter()
            .filter(|(key, slot)| slot.started && lost(key))
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            let slot = pods.remove(&key).expect("listed");
            let mut status = slot.last.unwrap_or_default();
            mark_lost(&mut status, &now);
            let _ = self.updates.send(PodUpdate {
                namespace: key.0,
                name: key.1,
                status,
                events: Vec::new(),
            });
        }
    }
}

/// Passes the supervisor's reports on while the client lives; if the supervisor dies, a
/// new one is started: it knows the ends the old one recorded, the rest are lost.
fn read_forever(client: &Weak<Client>, mut reader: BufReader<UnixStream>) {
    loop {
        while let Some(report) = read_report(&mut reader) {
            let Some(client) = client.upgrade() else {
                return;
            };
            if let Some(update) = pod_update(report) {
                client.report(update);
            }
        }
        let Some(client) = client.upgrade() else {
            return;
        };
        match open(&client.dir, &client.command) {
            Ok((stream, next, sync)) => {
                *client.stream.lock().expect("stream") = stream;
                let known: HashSet<Key> = sync
                    .iter()
                    .map(|u| (u.namespace.clone(), u.name.clone()))
                    .collect();
                client.take_sync(sync);
                client.lose_started(|key| !known.contains(key));
                reader = next;
            }
            Err(error) => {
                eprintln!("joblet: the pod supervisor cannot be restarted: {error}");
                client.lose_started(|_| true);
                return;
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let stream = self.stream.get_mut().expect("stream");
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Writes requests; a failed write means the supervisor died, which the reader sees and
/// recovers from.
fn write(stream: &mut UnixStream, lines: &[u8]) {
    let _ = stream.write_all(lines);
}

/// The next report, or `None` once the supervisor is gone.
fn read_report(reader: &mut BufReader<UnixStream>) -> Option<Report> {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => match serde_json::from_str(&line) {
                Ok(report) => return Some(report),
                Err(error) => eprintln!("joblet: ignoring a supervisor report: {error}"),
            },
        }
    }
}

/// Connects to the supervisor of `dir`, starting one if none listens, and reads what it
/// holds.
fn open(
    dir: &Path,
    command: &SupervisorCommand,
) -> std::io::Result<(UnixStream, BufReader<UnixStream>, Vec<PodUpdate>)> {
    let socket = socket_path(dir);
    // What a Unix socket's address holds (sun_path, with its final NUL).
    if socket.as_os_str().len() > 107 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "the path of its pod supervisor's socket, {}, is longer than a Unix socket \
                 address allows (107 bytes): use a shorter state directory path",
                socket.display()
            ),
        ));
    }
    let deadline = Instant::now() + START_TIMEOUT;
    let mut spawned: Option<std::process::Child> = None;
    let opened = loop {
        let error = match UnixStream::connect(&socket).and_then(read_sync) {
            Ok(opened) => break opened,
            Err(error) => error,
        };
        if Instant::now() > deadline {
            return Err(error);
        }
        let exited = match spawned.as_mut().map(std::process::Child::try_wait) {
            Some(Ok(Some(status))) if !status.success() => {
                return Err(std::io::Error::other(format!(
                    "the pod supervisor failed ({status}); see {}",
                    command.log.display()
                )));
            }
            Some(waited) => waited?.is_some(),
            None => true,
        };
        if exited {
            // None listens, or the last one was leaving as we came (it had nothing to
            // do): another one is started; it waits for the last one to be gone.
            spawned = Some(spawn(command)?);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if let Some(child) = spawned {
        // Reaped when it ends, so that it leaves no zombie behind while we run.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
    }
    Ok(opened)
}

/// Reads what a supervisor holds, up to `Synced`.
fn read_sync(
    stream: UnixStream,
) -> std::io::Result<(UnixStream, BufReader<UnixStream>, Vec<PodUpdate>)> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut sync = Vec::new();
    loop {
        match read_report(&mut reader) {
            Some(Report::Synced) => return Ok((stream, reader, sync)),
            Some(report) => sync.extend(pod_update(report)),
            None => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the pod supervisor closed the connection",
                ))
            }
        }
    }
}

/// Starts a supervisor in a process group of its own: a Ctrl-C meant for the engine does
/// not reach it, nor its pods.
fn spawn(command: &SupervisorCommand) -> std::io::Result<std::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&command.log)?;
    let mut process = Command::new(&command.program);
    process.args(&command.args).stdin(Stdio::null()).stderr(log);
    if !command.inherit_stdout {
        process.stdout(Stdio::null());
    }
    process.process_group(0).spawn()
}
