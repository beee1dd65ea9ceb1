//! One container of a pod: its runs, restarts and termination.

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use joblet_api::k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodStatus,
};
use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How long output may keep flowing after a container's process group is gone.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

use crate::env::{command_line, container_env};
use crate::reaper::{Exit, Group, Reaper};
use crate::{log_path, set_condition, PodRecord, StopRequest};

pub(crate) struct ContainerContext {
    pub record: Arc<PodRecord>,
    pub pod: Arc<Pod>,
    pub container: Container,
    pub init: bool,
    pub restart_on_failure: bool,
    pub default_grace: Duration,
    pub stop: watch::Receiver<Option<StopRequest>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Succeeded,
    Failed,
}

/// Runs the container until it succeeds, fails for good, or the pod is stopped.
pub(crate) async fn run_container(mut ctx: ContainerContext) -> Outcome {
    let env = container_env(&ctx.pod, &ctx.container);
    let argv = command_line(&ctx.container, &env);
    let mut restarts = 0;
    loop {
        if ctx.stop.borrow().is_some() {
            return Outcome::Failed; // stopped before it could start
        }
        let started = ctx.record.now();
        let (exit, reason, message) = match spawn(&ctx, &argv, &env, restarts) {
            Ok((group, exit_rx, output)) => {
                let pod_containers = ctx.pod.spec.as_ref().map_or(0, |s| s.containers.len());
                let init = ctx.init;
                let state = ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(started.clone()),
                    }),
                    ..Default::default()
                };
                ctx.record.update(true, |s| {
                    let status = container_status(s, &ctx.container, init);
                    status.state = Some(state);
                    status.ready = !init;
                    status.started = Some(true);
                    status.container_id = Some(format!("joblet://{}", group.leader));
                    if !init {
                        s.phase = Some("Running".to_string());
                        let all_running =
                            s.container_statuses.iter().flatten().filter(|c| {
                                c.state.as_ref().is_some_and(|st| st.running.is_some())
                            });
                        if all_running.count() == pod_containers {
                            let now = started.clone();
                            set_condition(s, "ContainersReady", true, &now);
                            set_condition(s, "Ready", true, &now);
                        }
                    }
                });
                let reaper = ctx.record.shared.reaper.clone();
                let exit = wait(&reaper, group, exit_rx, &mut ctx.stop, ctx.default_grace).await;
                // The log is complete before the exit is reported. The group is dead by
                // now; only a process that left it (setsid) could hold the pipe open.
                let abort = output.abort_handle();
                if tokio::time::timeout(OUTPUT_DRAIN, output).await.is_err() {
                    abort.abort();
                }
                let reason = if exit.code == 0 { "Completed" } else { "Error" };
                (exit, reason, None)
            }
            Err(message) => (
                Exit {
                    code: 128,
                    signal: None,
                },
                "StartError",
                Some(message),
            ),
        };
        let finished = ctx.record.now();
        let terminated = ContainerStateTerminated {
            exit_code: exit.code,
            signal: exit.signal,
            reason: Some(reason.to_string()),
            message,
            started_at: Some(started),
            finished_at: Some(finished.clone()),
            container_id: None,
        };
        let stopped = ctx.stop.borrow().is_some();
        let restart = exit.code != 0 && ctx.restart_on_failure && !stopped;
        let delay = restart_delay(&ctx, restarts);
        let init = ctx.init;
        let pod_name = ctx.pod.metadata.name.clone().unwrap_or_default();
        // The pod's own final report follows the last container's end at once.
        let publish = init || restart || !ctx.record.last_container_done();
        ctx.record.update(publish, |s| {
            let status = container_status(s, &ctx.container, init);
            status.ready = false;
            status.started = Some(false);
            if restart {
                status.last_state = Some(ContainerState {
                    terminated: Some(terminated),
                    ..Default::default()
                });
                status.state = Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("CrashLoopBackOff".to_string()),
                        message: Some(format!(
                            "back-off {} restarting failed container={} pod={pod_name}",
                            human(delay),
                            ctx.container.name
                        )),
                    }),
                    ..Default::default()
                });
            } else {
                status.state = Some(ContainerState {
                    terminated: Some(terminated),
                    ..Default::default()
                });
            }
            if !init {
                set_condition(s, "ContainersReady", false, &finished);
                set_condition(s, "Ready", false, &finished);
            }
        });
        if exit.code == 0 {
            return Outcome::Succeeded;
        }
        if !restart {
            return Outcome::Failed;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop_requested(&mut ctx.stop) => return Outcome::Failed,
        }
        restarts += 1;
        ctx.record.update(false, |s| {
            container_status(s, &ctx.container, init).restart_count = restarts
        });
    }
}

/// The kubelet's crash-loop back-off: base doubling per restart, capped.
fn restart_delay(ctx: &ContainerContext, restarts: i32) -> Duration {
    let config = &ctx.record.shared.config;
    let factor = 1u32 << restarts.clamp(0, 20);
    config
        .restart_backoff_base
        .saturating_mul(factor)
        .min(config.restart_backoff_max)
}

fn human(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The container's entry in the pod status, created on first use.
fn container_status<'a>(
    status: &'a mut PodStatus,
    container: &Container,
    init: bool,
) -> &'a mut ContainerStatus {
    let list = if init {
        status.init_container_statuses.get_or_insert_with(Vec::new)
    } else {
        status.container_statuses.get_or_insert_with(Vec::new)
    };
    let position = match list.iter().position(|c| c.name == container.name) {
        Some(i) => i,
        None => {
            list.push(ContainerStatus {
                name: container.name.clone(),
                image: container.image.clone().unwrap_or_default(),
                image_id: String::new(),
                ..Default::default()
            });
            list.len() - 1
        }
    };
    &mut list[position]
}

/// Starts one run of the container in a new process group, its output going to the log
/// file. Errors are what `kubectl describe pod` would show for a container that cannot
/// start.
fn spawn(
    ctx: &ContainerContext,
    argv: &[String],
    env: &[(String, String)],
    restarts: i32,
) -> Result<(Group, oneshot::Receiver<Exit>, JoinHandle<()>), String> {
    let Some(program) = argv.first() else {
        return Err("no command given: joblet does not read image entrypoints".to_string());
    };
    let working_dir = ctx
        .container
        .working_dir
        .as_deref()
        .filter(|d| !d.is_empty());
    if let Some(dir) = working_dir {
        if !std::path::Path::new(dir).is_dir() {
            return Err(format!(
                "chdir to cwd ({dir:?}) set in config.json failed: no such file or directory"
            ));
        }
    }
    let meta = &ctx.pod.metadata;
    let namespace = meta.namespace.as_deref().unwrap_or("default");
    let pod_name = meta.name.as_deref().unwrap_or("");
    let config = &ctx.record.shared.config;
    let path = log_path(
        &config.log_dir,
        namespace,
        pod_name,
        &ctx.container.name,
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
    let spawned = ctx.record.shared.reaper.spawn(&mut command);
    drop(command); // closes our copies of the pipe's write end
    let (_child, exit_rx, group) = spawned.map_err(|e| spawn_error(program, &e))?;
    let prefix = config
        .stream_logs
        .then(|| format!("[pod/{pod_name}/{}] ", ctx.container.name));
    let clock = ctx.record.shared.clock.clone();
    let output = tokio::spawn(copy_output(reader, path, prefix, clock));
    Ok((group, exit_rx, output))
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

async fn stop_requested(stop: &mut watch::Receiver<Option<StopRequest>>) -> StopRequest {
    let request = stop
        .wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|request| *request);
    match request {
        Some(request) => request,
        None => std::future::pending().await,
    }
}

/// Waits for the main process; on a stop request sends SIGTERM to the group and SIGKILL
/// after the grace period. When the main process ends, the reaper kills whatever it left
/// in its group, as a container's PID namespace dies with its init process.
async fn wait(
    reaper: &Reaper,
    group: Group,
    mut exit_rx: oneshot::Receiver<Exit>,
    stop: &mut watch::Receiver<Option<StopRequest>>,
    default_grace: Duration,
) -> Exit {
    let lost = Exit {
        code: 128 + Signal::SIGKILL as i32,
        signal: Some(Signal::SIGKILL as i32),
    };
    tokio::select! {
        exit = &mut exit_rx => exit.unwrap_or(lost),
        request = stop_requested(stop) => {
            reaper.signal_group(group, Signal::SIGTERM);
            let grace = request.grace.min(default_grace);
            tokio::select! {
                exit = &mut exit_rx => exit.unwrap_or(lost),
                _ = tokio::time::sleep(grace) => {
                    reaper.signal_group(group, Signal::SIGKILL);
                    exit_rx.await.unwrap_or(lost)
                }
            }
        }
    }
}
