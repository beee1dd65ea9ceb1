//! Containers as host processes (the `host` runtime): each run in its own process group, its
//! output through a pipe into its log file, its end told once the log is complete.

use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use joblet_kubelet::env::command_line;

use crate::containers::{ContainerRuntime, RunEnd, RunRequest, StartFailure, Started, Stop};
use crate::reaper::{Exit, Group, Reaper};
use crate::{log_path, Clock, RuntimeConfig};

/// How long output may keep flowing after a container's process group is gone.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

/// Runs containers as process groups of this process (or of the supervisor).
pub(crate) struct HostRuntime {
    pub config: RuntimeConfig,
    pub handle: tokio::runtime::Handle,
    pub clock: Arc<dyn Clock>,
    pub reaper: Reaper,
}

impl ContainerRuntime for HostRuntime {
    fn start(&self, run: RunRequest<'_>) -> Result<Started, StartFailure> {
        let argv = command_line(run.container, run.env);
        let Some(program) = argv.first() else {
            return Err(StartFailure::Failed(
                "no command given: the host runtime does not read image entrypoints".to_string(),
            ));
        };
        let working_dir = run
            .container
            .working_dir
            .as_deref()
            .filter(|d| !d.is_empty());
        let mut command = Command::new(program);
        command
            .args(&argv[1..])
            .envs(run.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = working_dir {
            if !std::path::Path::new(dir).is_dir() {
                return Err(StartFailure::Failed(format!(
                    "chdir to cwd ({dir:?}) set in config.json failed: no such file or directory"
                )));
            }
            command.current_dir(dir);
        }
        let (group, exit) = self
            .launch(&run, command)
            .map_err(|e| StartFailure::Failed(spawn_error(program, &e)))?;
        Ok(Started {
            id: format!("joblet://{}", group.leader),
            exit: Box::pin(async move {
                RunEnd {
                    exit: exit.await,
                    oom_killed: false,
                }
            }),
            stop: self.stopper(group),
        })
    }
}

/// Waits for the main process to end (the reaper then kills what it left in its group, as a
/// container's PID namespace dies with its init process), then for its output: the log is
/// complete when this returns.
async fn exited(exit: oneshot::Receiver<Exit>, output: JoinHandle<()>) -> Exit {
    let lost = Exit {
        code: 128 + Signal::SIGKILL as i32,
        signal: Some(Signal::SIGKILL as i32),
    };
    let exit = exit.await.unwrap_or(lost);
    // The group is dead by now; only a process that left it (setsid) could hold the pipe
    // open.
    let abort = output.abort_handle();
    if tokio::time::timeout(OUTPUT_DRAIN, output).await.is_err() {
        abort.abort();
    }
    exit
}

impl HostRuntime {
    /// Starts `command` as a container's run: in a new process group, its output going to
    /// the run's log file. The future resolves once it ended and its output is all logged.
    pub(crate) fn launch(
        &self,
        run: &RunRequest<'_>,
        mut command: Command,
    ) -> std::io::Result<(Group, impl Future<Output = Exit> + Send + 'static)> {
        let meta = &run.pod.metadata;
        let namespace = meta.namespace.as_deref().unwrap_or("default");
        let pod_name = meta.name.as_deref().unwrap_or("");
        let container = &run.container.name;
        let path = log_path(
            &self.config.log_dir,
            namespace,
            pod_name,
            container,
            run.restarts,
        );
        // Output goes through a pipe: the log file is created only when the container
        // writes something (creating thousands of empty files costs more than the pods).
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let write_err = write.try_clone()?;
        // Ready to read before the process exists, so no failure can leave it unwatched.
        let reader = pipe::Receiver::from_owned_fd(read)?;
        command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(write))
            .stderr(Stdio::from(write_err));
        let spawned = self.reaper.spawn(&mut command);
        drop(command); // closes our copies of the pipe's write end
        let (_child, exit, group) = spawned?;
        let prefix = self
            .config
            .stream_logs
            .then(|| format!("[pod/{pod_name}/{container}] "));
        let clock = self.clock.clone();
        let output = self.handle.spawn(copy_output(reader, path, prefix, clock));
        Ok((group, exited(exit, output)))
    }

    /// SIGTERM to the run's group, SIGKILL after the grace period if it is still there.
    pub(crate) fn stopper(&self, group: Group) -> Stop {
        let (reaper, handle) = (self.reaper.clone(), self.handle.clone());
        Box::new(move |grace| {
            reaper.signal_group(group, Signal::SIGTERM);
            let reaper = reaper.clone();
            handle.spawn(async move {
                tokio::time::sleep(grace).await;
                // A no-op once the group's leader was reaped.
                reaper.signal_group(group, Signal::SIGKILL);
            });
        })
    }
}

fn spawn_error(program: &str, error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound if !program.contains('/') => {
            format!("exec: {program:?}: executable file not found in $PATH")
        }
        std::io::ErrorKind::NotFound => {
            format!("exec: {program:?}: stat {program}: no such file or directory")
        }
        std::io::ErrorKind::PermissionDenied => format!("exec: {program:?}: permission denied"),
        _ => format!("exec: {program:?}: {error}"),
    }
}

/// Copies a container's output to its log file (created on the first byte) with the
/// time of each piece beside it, and, when streaming, to stdout with the pod prefix on
/// every line.
async fn copy_output(
    mut pipe: pipe::Receiver,
    path: PathBuf,
    prefix: Option<String>,
    clock: Arc<dyn crate::Clock>,
) {
    let mut log: Option<(File, File)> = None;
    let mut written: u64 = 0;
    let mut buf = vec![0u8; 8192];
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if log.is_none() {
            let open = |p: &std::path::Path| File::options().create(true).append(true).open(p);
            log = open(&path)
                .and_then(|file| Ok((file, open(&crate::log_times_path(&path))?)))
                .ok();
        }
        if let Some((file, times)) = log.as_mut() {
            let nanos = clock.now().as_nanosecond() as i64;
            let mut entry = [0u8; 16];
            entry[..8].copy_from_slice(&written.to_le_bytes());
            entry[8..].copy_from_slice(&nanos.to_le_bytes());
            let _ = times.write_all(&entry);
            let _ = file.write_all(&buf[..n]);
            written += n as u64;
        }
        if let Some(prefix) = &prefix {
            partial.extend_from_slice(&buf[..n]);
            print_lines(prefix, &mut partial, false);
        }
    }
    if let Some(prefix) = &prefix {
        print_lines(prefix, &mut partial, true);
    }
}

/// Prints the complete lines of `pending` (and, at the end, the rest) with `prefix`.
fn print_lines(prefix: &str, pending: &mut Vec<u8>, at_end: bool) {
    let cut = if at_end {
        pending.len()
    } else {
        pending
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1)
    };
    if cut == 0 {
        return;
    }
    let mut out = std::io::stdout().lock();
    for line in pending[..cut].split_inclusive(|b| *b == b'\n') {
        let _ = out.write_all(prefix.as_bytes());
        let _ = out.write_all(line);
        if !line.ends_with(b"\n") {
            let _ = out.write_all(b"\n");
        }
    }
    pending.drain(..cut);
}
