//! `sync_pod`: what the kubelet does next with a pod, given what its containers did.
//! Upstream splits it as `computePodActions` and `computeInitContainerActions`
//! (kuberuntime_manager.go, kuberuntime_container.go), the crash back-off (`doBackOff`) and
//! the termination order of sidecars (kuberuntime_termination_order.go).

use std::time::Duration;

use joblet_api::k8s_openapi::api::core::v1::PodStatus;
use joblet_api::k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::plan::{Kind, PodPlan};
use crate::status::{pod_status, Shown};
use crate::StopRequest;

/// However short the pod's grace has become, a sidecar whose turn comes late still gets this
/// long to exit (upstream's `minimumGracePeriodInSeconds`).
const MINIMUM_SIDECAR_GRACE: Duration = Duration::from_secs(2);

/// A stop asked of the pod, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    pub request: StopRequest,
    pub asked_at: Timestamp,
}

/// What the pod's worker saw of it.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// When the pod began on this node (`status.startTime`).
    pub started_at: Timestamp,
    /// Index-aligned with the plan's containers.
    pub containers: &'a [ContainerRecord],
    pub stop: Option<Stop>,
    /// The status last computed: condition transition times and the node's fields (IPs)
    /// carry over from it.
    pub previous: &'a PodStatus,
}

/// One container's life so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerRecord {
    /// Whether it was ever created (a run, even one that could not start).
    pub created: bool,
    /// How many times it was created again after the first.
    pub restarts: i32,
    /// The run before the current one.
    pub last: Option<Run>,
    pub state: State,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum State {
    #[default]
    NotStarted,
    /// Its configuration could not be made (a missing ConfigMap, Secret or key): not created;
    /// tried again when the node's objects change.
    ConfigError {
        message: String,
    },
    /// Its image is being pulled, or looked for (not created yet); `failed` holds the last
    /// failure when this is a retry.
    Pulling {
        failed: Option<ImageFailure>,
    },
    /// Its image could not be had: looked for again once its back-off ends.
    NoImage(ImageFailure),
    Running {
        id: String,
        started_at: Timestamp,
    },
    /// Asked to stop; killed outright at `kill_at` if still running.
    Stopping {
        id: String,
        started_at: Timestamp,
        kill_at: Timestamp,
    },
    Exited(Run),
}

/// Why a container's image could not be had, how many times in a row, the last time when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFailure {
    pub error: ImageError,
    /// The engine's error, or the kubelet's message for `Never`.
    pub message: String,
    pub count: i32,
    pub at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The pull failed (`ErrImagePull`, then `ImagePullBackOff`).
    Pull,
    /// Not on the machine, and `imagePullPolicy: Never` (`ErrImageNeverPull`).
    NeverPull,
}

impl State {
    fn is_running(&self) -> bool {
        matches!(self, State::Running { .. } | State::Stopping { .. })
    }
}

impl ContainerRecord {
    /// The container as its pod starting over leaves it: its run kept as the last one, to be
    /// created again, that start counted as a restart.
    pub fn start_over(&mut self) {
        if let State::Exited(run) = &self.state {
            self.last = Some(run.clone());
            self.state = State::NotStarted;
        }
        if std::mem::take(&mut self.created) {
            self.restarts += 1;
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// None when it could not be started.
    pub id: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub exit: Exit,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub signal: Option<i32>,
    pub reason: ExitReason,
    pub message: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    Completed,
    Error,
    /// The process could not be started (exit code 128).
    StartError,
    /// Killed by the kernel for going over its memory limit (exit code 137).
    OOMKilled,
}

impl ExitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Completed => "Completed",
            ExitReason::Error => "Error",
            ExitReason::StartError => "StartError",
            ExitReason::OOMKilled => "OOMKilled",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PodActions {
    /// Containers to start now, in this order.
    pub start: Vec<usize>,
    /// Containers to stop, each with its grace period (SIGTERM, SIGKILL after it).
    pub kill: Vec<(usize, Duration)>,
    /// The whole status as it stands now.
    pub status: PodStatus,
    /// When to sync again though nothing happened: a back-off or the deadline ends, or a
    /// sidecar's turn to stop comes.
    pub wake_at: Option<Timestamp>,
    /// The pod has ended: its phase is terminal and none of its containers runs.
    pub done: bool,
    /// A rule asked to restart every container, and none runs any more: the pod starts over
    /// once each record is [`ContainerRecord::start_over`]; then sync again.
    pub start_over: bool,
}

/// Why the pod's containers are being stopped, since when, and with what grace.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ending {
    pub since: Timestamp,
    pub grace: Duration,
    pub deadline_exceeded: bool,
}

impl Ending {
    fn join(this: Option<Ending>, other: Ending) -> Ending {
        match this {
            None => other,
            Some(this) => Ending {
                since: this.since.min(other.since),
                grace: this.grace.min(other.grace),
                deadline_exceeded: this.deadline_exceeded || other.deadline_exceeded,
            },
        }
    }
}

/// The kubelet's next steps for a pod. Keeps no state: the same inputs give the same
/// actions, and a pod that did nothing new gets an equal status.
pub fn sync_pod(plan: &PodPlan, seen: &Observed, now: Timestamp) -> PodActions {
    let mut wake = Wake::default();
    let mut ending = seen.stop.map(|stop| Ending {
        since: stop.asked_at,
        grace: stop.request.grace.min(plan.grace),
        deadline_exceeded: false,
    });
    if let Some(deadline) = plan.active_deadline {
        let at = later(seen.started_at, deadline);
        if now >= at {
            let by_deadline = Ending {
                since: at,
                grace: plan.grace,
                deadline_exceeded: true,
            };
            ending = Some(Ending::join(ending, by_deadline));
        } else {
            wake.at(at);
        }
    }
    // A container that exited by a rule restarting them all: every container is stopped at
    // once (the grace is not kept, nor pre-stop hooks run), then the pod starts over from its
    // first init container after the back-off of the container that asked.
    let restart_all_at = ending
        .is_none()
        .then(|| restart_all_at(plan, seen))
        .flatten();
    if let Some(ready_at) = restart_all_at {
        let kill = (seen.containers.iter().enumerate())
            .filter(|(_, record)| match &record.state {
                State::Running { .. } => true,
                State::Stopping { kill_at, .. } => now < *kill_at,
                _ => false,
            })
            .map(|(i, _)| (i, Duration::ZERO))
            .collect::<Vec<_>>();
        let stopped = !seen.containers.iter().any(|c| c.state.is_running());
        if stopped && now < ready_at {
            wake.at(ready_at);
        }
        let shown = vec![Shown::AsItIs; plan.containers.len()];
        return PodActions {
            start: Vec::new(),
            kill,
            status: pod_status(plan, seen, &shown, None, Pod::RestartingAll, now),
            wake_at: wake.0,
            done: false,
            start_over: stopped && now >= ready_at,
        };
    }
    let mut start = Vec::new();
    if ending.is_none() {
        match containers_to_start(plan, seen) {
            Next::Start(wanted) => start = wanted,
            Next::KillPod { since } => {
                ending = Some(Ending {
                    since,
                    grace: plan.grace,
                    deadline_exceeded: false,
                })
            }
        }
    }

    // A container that exited and starts again shows waiting, in back-off until its time;
    // so does one whose image could not be had, until its image is looked for again.
    let mut shown = vec![Shown::AsItIs; plan.containers.len()];
    start.retain(|&i| {
        let record = &seen.containers[i];
        let ready_at = match &record.state {
            State::Exited(run) => {
                let delay = plan.backoff.delay(record.restarts);
                shown[i] = Shown::BackingOff(delay);
                later(run.finished_at, delay)
            }
            State::NoImage(failure) => {
                // The kubelet's worker syncs a pod whose start failed again after its own
                // back-off period (10 s, the base); from then the pull shows backing off.
                let looked_again_at = later(failure.at, plan.backoff.base);
                if now >= looked_again_at {
                    shown[i] = Shown::PullBackOff;
                } else {
                    wake.at(looked_again_at);
                }
                later(failure.at, plan.backoff.delay(failure.count))
            }
            _ => return true,
        };
        if now < ready_at {
            wake.at(ready_at);
            return false;
        }
        true
    });

    let mut kill = Vec::new();
    if let Some(ending) = ending {
        for (i, record) in seen.containers.iter().enumerate() {
            let Some(grace) = grace_now(plan, seen, &ending, i, now, &mut wake) else {
                continue;
            };
            match &record.state {
                State::Running { .. } => kill.push((i, grace)),
                // A later, shorter grace wins.
                State::Stopping { kill_at, .. } if later(now, grace) < *kill_at => {
                    kill.push((i, grace))
                }
                _ => {}
            }
        }
    }
    let done = ending.is_some() && !seen.containers.iter().any(|c| c.state.is_running());
    let pod = if done { Pod::Done } else { Pod::Live };
    PodActions {
        start,
        kill,
        status: pod_status(plan, seen, &shown, ending.as_ref(), pod, now),
        wake_at: wake.0,
        done,
        start_over: false,
    }
}

/// Where the pod stands, for its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pod {
    Live,
    /// Its containers are being stopped, or waiting for the back-off, to start over.
    RestartingAll,
    /// Ended: none of its containers runs, nor will.
    Done,
}

/// When the pod may start over, if one of its containers exited by a rule that restarts
/// them all (`ShouldAllContainersRestart`): at the end of that container's crash back-off.
fn restart_all_at(plan: &PodPlan, seen: &Observed) -> Option<Timestamp> {
    (seen.containers.iter().enumerate())
        .filter_map(|(i, record)| match &record.state {
            State::Exited(run) if plan.restarts_all(i, run.exit.code) => {
                Some(later(run.finished_at, plan.backoff.delay(record.restarts)))
            }
            _ => None,
        })
        .max()
}

enum Next {
    Start(Vec<usize>),
    /// Nothing is left to run: the pod's containers are to be stopped.
    KillPod {
        since: Timestamp,
    },
}

/// `computePodActions` for a pod that is not being stopped: the next init container, the
/// sidecars to restart, the main containers to (re)start; or the end of the pod.
fn containers_to_start(plan: &PodPlan, seen: &Observed) -> Next {
    let (mut start, initialized) = match init_containers_to_start(plan, seen) {
        Ok(init) => init,
        Err(failed_at) => return Next::KillPod { since: failed_at },
    };
    if !initialized {
        return Next::Start(start);
    }
    let mut running = 0;
    let mut last_exit = None;
    for (i, (container, record)) in plan.containers.iter().zip(seen.containers).enumerate() {
        if container.kind != Kind::Main {
            continue;
        }
        match &record.state {
            State::NotStarted | State::ConfigError { .. } | State::NoImage(_) => start.push(i),
            State::Pulling { .. } | State::Running { .. } | State::Stopping { .. } => running += 1,
            State::Exited(run) => {
                if plan.restarts(i, run.exit.code) {
                    start.push(i);
                }
                last_exit = last_exit.max(Some(run.finished_at));
            }
        }
    }
    let mains_left = start.iter().any(|&i| plan.containers[i].kind == Kind::Main);
    match last_exit {
        // The sidecars are not restarted once the main containers are done: they would keep
        // the pod alive.
        Some(since) if running == 0 && !mains_left => Next::KillPod { since },
        _ => Next::Start(start),
    }
}

/// `computeInitContainerActions`: the init containers to start (the next one, and sidecars
/// that exited), and whether the pod is initialized. `Err` holds when an init container
/// failed for good (restart policy `Never`).
fn init_containers_to_start(
    plan: &PodPlan,
    seen: &Observed,
) -> Result<(Vec<usize>, bool), Timestamp> {
    let inits = plan
        .containers
        .iter()
        .take_while(|c| c.kind != Kind::Main)
        .count();
    if inits == 0 {
        return Ok((Vec::new(), true));
    }
    // A main container that ran means the pod was initialized, whatever became of its init
    // containers since.
    let mut initialized = plan
        .containers
        .iter()
        .zip(seen.containers)
        .any(|(c, r)| c.kind == Kind::Main && r.created);
    let mut reached = initialized;
    let mut start = Vec::new();
    // From the last init container that has a status back to the first: the last tells
    // what comes next; before it, only sidecars need restarting.
    for i in (0..inits).rev() {
        let sidecar = plan.containers[i].kind == Kind::Sidecar;
        let run = match &seen.containers[i].state {
            State::NotStarted | State::ConfigError { .. } | State::NoImage(_) => {
                if reached && sidecar {
                    start.push(i);
                }
                continue;
            }
            // On its way: nothing after it starts yet.
            State::Pulling { .. } => {
                reached = true;
                continue;
            }
            _ if reached && !sidecar => continue,
            State::Running { .. } | State::Stopping { .. } => None,
            State::Exited(run) => Some(run),
        };
        match run {
            // A running sidecar counts as started: the next init container may start.
            None if sidecar => {
                if i == inits - 1 {
                    initialized = true;
                } else if !reached {
                    start.push(i + 1);
                }
            }
            None => {}
            Some(_) if sidecar => start.push(i),
            Some(run) if run.exit.code != 0 => {
                if !plan.restarts(i, run.exit.code) {
                    return Err(run.finished_at);
                }
                start.push(i);
            }
            Some(_) if i == inits - 1 => initialized = true,
            Some(_) => start.push(i + 1),
        }
        reached = true;
    }
    if !reached {
        start.push(0);
    }
    start.reverse();
    Ok((start, initialized))
}

/// The grace container `i` gets if it is its turn to be stopped now; None while it waits.
/// Main and init containers are stopped at once; a sidecar once every main container and
/// every sidecar declared after it has exited, or the grace is spent, with what is left of it
/// (`newTerminationOrdering`, `waitForTurn`, `killContainer`).
fn grace_now(
    plan: &PodPlan,
    seen: &Observed,
    ending: &Ending,
    i: usize,
    now: Timestamp,
    wake: &mut Wake,
) -> Option<Duration> {
    if plan.containers[i].kind != Kind::Sidecar {
        return Some(ending.grace);
    }
    let waits_for = |j: usize| {
        let kind = plan.containers[j].kind;
        kind == Kind::Main || (kind == Kind::Sidecar && j > i)
    };
    let others_running =
        (0..plan.containers.len()).any(|j| waits_for(j) && seen.containers[j].state.is_running());
    let turn_ends = later(ending.since, ending.grace);
    if others_running && now < turn_ends {
        wake.at(turn_ends);
        return None;
    }
    // Upstream counts the wait in whole seconds.
    let waited = Duration::from_secs(since(ending.since, now).as_secs());
    let left = ending.grace.saturating_sub(waited);
    Some(left.max(MINIMUM_SIDECAR_GRACE.min(ending.grace)))
}

/// The earliest time asked for.
#[derive(Default)]
struct Wake(Option<Timestamp>);

impl Wake {
    fn at(&mut self, at: Timestamp) {
        self.0 = Some(self.0.map_or(at, |t| t.min(at)));
    }
}

/// `at` plus `d`, or the end of time.
pub fn later(at: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| at.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// How long from `earlier` to `now`, zero if `now` is earlier.
pub fn since(earlier: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(earlier)).unwrap_or_default()
}
