//! Containers as host processes (the `host` runtime): each run in its own process group, its
//! output through a pipe into its log file, its end told once the log is complete.

use std::fs::File;
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

use crate::containers::{ContainerRuntime, RunRequest, Started};
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
    fn start(&self, run: RunRequest<'_>) -> Result<Started, String> {
        let (group, exit, output) = self.spawn(&run)?;
        let reaper = self.reaper.clone();
        let handle = self.handle.clone();
        Ok(Started {
            id: format!("joblet://{}", group.leader),
            exit: Box::pin(exited(exit, output)),
            stop: Box::new(move |grace| stop(&reaper, &handle, group, grace)),
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

/// SIGTERM to a container's group, SIGKILL after `grace` if it is still there.
fn stop(reaper: &Reaper, handle: &tokio::runtime::Handle, group: Group, grace: Duration) {
    reaper.signal_group(group, Signal::SIGTERM);
    let reaper = reaper.clone();
    handle.spawn(async move {
        tokio::time::sleep(grace).await;
        // A no-op once the group's leader was reaped.
        reaper.signal_group(group, Signal::SIGKILL);
    });
}

impl HostRuntime {
    /// Starts one run of the container in a new process group, its output going to the log
    /// file.
    fn spawn(
        &self,
        run: &RunRequest<'_>,
    ) -> Result<(Group, oneshot::Receiver<Exit>, JoinHandle<()>), String> {
        let RunRequest {
            pod,
            container,
            argv,
            env,
            restarts,
        } = *run;
        let Some(program) = argv.first() else {
            return Err("no command given: joblet does not read image entrypoints".to_string());
        };
        let working_dir = container.working_dir.as_deref().filter(|d| !d.is_empty());
        if let Some(dir) = working_dir {
            if !std::path::Path::new(dir).is_dir() {
                return Err(format!(
                    "chdir to cwd ({dir:?}) set in config.json failed: no such file or directory"
                ));
            }
        }
        let meta = &pod.metadata;
        let namespace = meta.namespace.as_deref().unwrap_or("default");
        let pod_name = meta.name.as_deref().unwrap_or("");
        let config = &self.config;
        let path = log_path(
            &config.log_dir,
            namespace,
            pod_name,
            &container.name,
            restarts,
        );
        let mut command = Command::new(program);
        command
            .args(&argv[1..])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .stdin(Stdio::null());
        if let Some(dir) = working_dir {
            command.current_dir(dir);
        }
        // Output goes through a pipe: the log file is created only when the container
        // writes something (creating thousands of empty files costs more than the pods).
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| format!("cannot create a pipe: {e}"))?;
        let write_err = write
            .try_clone()
            .map_err(|e| format!("cannot create a pipe: {e}"))?;
        // Ready to read before the process exists, so no failure can leave it unwatched.
        let reader = pipe::Receiver::from_owned_fd(read)
            .map_err(|e| format!("cannot read the container's output: {e}"))?;
        command
            .stdout(Stdio::from(write))
            .stderr(Stdio::from(write_err));
        let spawned = self.reaper.spawn(&mut command);
        drop(command); // closes our copies of the pipe's write end
        let (_child, exit, group) = spawned.map_err(|e| spawn_error(program, &e))?;
        let prefix = config
            .stream_logs
            .then(|| format!("[pod/{pod_name}/{}] ", container.name));
        let clock = self.clock.clone();
        let output = self.handle.spawn(copy_output(reader, path, prefix, clock));
        Ok((group, exit, output))
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
