//! The pod's status as the kubelet writes it: each container's state
//! (`convertToAPIContainerStatuses`), the phase (`getPhase`, kubelet_pods.go), the conditions
//! (status/generate.go) and what `TerminatePod` makes of containers that never ran.

use std::time::Duration;

use joblet_api::k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodCondition, PodStatus,
};
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use joblet_api::k8s_openapi::jiff::Timestamp;

use crate::plan::{ContainerPlan, Kind, PodPlan};
use crate::sync::{ContainerRecord, Ending, ImageError, ImageFailure, Observed, Pod, Run, State};

/// How an exited container is shown: as it ended, or waiting to start again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shown {
    AsItIs,
    BackingOff(Duration),
    /// Its image could not be pulled and it waits to try again (`ImagePullBackOff`).
    PullBackOff,
}

pub(crate) fn pod_status(
    plan: &PodPlan,
    seen: &Observed,
    shown: &[Shown],
    ending: Option<&Ending>,
    pod: Pod,
    now: Timestamp,
) -> PodStatus {
    let done = pod == Pod::Done;
    let mut status = seen.previous.clone();
    let mut inits = Vec::new();
    let mut mains = Vec::new();
    let lost = lost_at_the_end(plan, seen.containers, done);
    for (i, container) in plan.containers.iter().enumerate() {
        let shown = container_status(plan, i, &seen.containers[i], shown[i], lost[i]);
        match container.kind {
            Kind::Main => mains.push(shown),
            Kind::Init | Kind::Sidecar => inits.push(shown),
        }
    }
    // Upstream sorts the main containers' statuses by name; init containers keep spec order.
    mains.sort_by(|a, b| a.name.cmp(&b.name));
    let mut phase = match pod {
        // Pending through a restart of all its containers, as a pod not started yet.
        Pod::RestartingAll => "Pending",
        _ => phase(plan, &inits, &mains, done),
    };
    let deadline_exceeded = done && ending.is_some_and(|e| e.deadline_exceeded);
    if deadline_exceeded {
        phase = "Failed";
        status.reason = Some("DeadlineExceeded".to_string());
        status.message =
            Some("Pod was active on the node longer than the specified deadline".to_string());
    }
    let now = Time(now);
    // status/generate.go: the ready condition names the unready sidecars and containers...
    let unready: Vec<&str> = (plan.containers.iter().zip(seen.containers))
        .filter(|(c, r)| c.kind != Kind::Init && !r.state_is_running())
        .map(|(c, _)| c.name.as_str())
        .collect();
    let containers_ready = match phase {
        "Succeeded" => Condition::not("PodCompleted", ""),
        "Failed" => Condition::not("PodFailed", ""),
        _ if !unready.is_empty() => Condition::not(
            "ContainersNotReady",
            &format!("containers with unready status: [{}]", unready.join(" ")),
        ),
        _ => Condition::TRUE,
    };
    // ...and the initialized one the init containers not done, unless a container ran or
    // the pod was initialized once (it stays so while it starts over in place).
    let incomplete = incomplete_inits(plan, seen.containers);
    let was_initialized = (seen.previous.conditions.iter().flatten())
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    let initialized = match phase {
        "Succeeded" => Condition {
            value: true,
            reason: "PodCompleted",
            message: String::new(),
        },
        _ if initialized(plan, seen.containers) || was_initialized => Condition::TRUE,
        _ => Condition::not(
            "ContainersNotInitialized",
            &format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            ),
        ),
    };
    set_condition(
        &mut status,
        "PodReadyToStartContainers",
        &Condition::when(!done),
        &now,
    );
    set_condition(&mut status, "PodScheduled", &Condition::TRUE, &now);
    set_condition(&mut status, "Initialized", &initialized, &now);
    set_condition(&mut status, "Ready", &containers_ready, &now);
    set_condition(&mut status, "ContainersReady", &containers_ready, &now);
    if plan.could_restart_all() {
        let restarting = match phase {
            "Succeeded" => Condition::not("PodCompleted", ""),
            "Failed" => Condition::not("PodFailed", ""),
            _ if pod == Pod::RestartingAll => Condition {
                value: true,
                reason: "RestartAllContainersStarted",
                message: "container exited with restart policy rule".to_string(),
            },
            _ => Condition::when(false),
        };
        set_condition(&mut status, "AllContainersRestarting", &restarting, &now);
    }
    if let (true, Some(disruption)) = (done, seen.stop.and_then(|s| s.request.disruption)) {
        disruption.mark(&mut status, &now);
    }
    // The pod generation the kubelet acted on (PodObservedGenerationTracking, GA in 1.35):
    // a graceful deletion raised it.
    let generation = (seen.stop.and_then(|s| s.request.generation)).or(plan.generation);
    status.observed_generation = generation;
    for condition in status.conditions.iter_mut().flatten() {
        condition.observed_generation = generation;
    }
    status.phase = Some(phase.to_string());
    status.start_time = Some(Time(seen.started_at));
    status.init_container_statuses = (!inits.is_empty()).then_some(inits);
    status.container_statuses = Some(mains);
    status
}

impl ContainerRecord {
    fn state_is_running(&self) -> bool {
        matches!(self.state, State::Running { .. } | State::Stopping { .. })
    }
}

fn container_status(
    plan: &PodPlan,
    i: usize,
    record: &ContainerRecord,
    shown: Shown,
    lost: bool,
) -> ContainerStatus {
    let container = &plan.containers[i];
    let mut last = record.last.as_ref();
    let (state, running) = match (&record.state, shown) {
        (
            State::NotStarted
            | State::ConfigError { .. }
            | State::Pulling { .. }
            | State::NoImage(_),
            _,
        ) if lost => (never_ran(), false),
        (State::ConfigError { message }, _) => (
            waiting("CreateContainerConfigError", Some(message.clone())),
            false,
        ),
        (State::NoImage(failure), shown) => (image_waiting(container, failure, shown), false),
        (
            State::Pulling {
                failed: Some(failure),
            },
            _,
        ) => (image_waiting(container, failure, Shown::PullBackOff), false),
        (State::NotStarted | State::Pulling { failed: None }, _) => {
            let reason = if plan.has_init_containers() {
                "PodInitializing"
            } else {
                "ContainerCreating"
            };
            (waiting(reason, None), false)
        }
        (State::Running { started_at, .. } | State::Stopping { started_at, .. }, _) => {
            let running = ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*started_at)),
                }),
                ..Default::default()
            };
            (running, true)
        }
        (State::Exited(run), Shown::BackingOff(delay)) => {
            last = Some(run);
            let message = format!(
                "back-off {} restarting failed container={} pod={}",
                human(delay),
                container.name,
                plan.pod
            );
            (waiting("CrashLoopBackOff", Some(message)), false)
        }
        (State::Exited(run), Shown::AsItIs | Shown::PullBackOff) => (terminated(run), false),
    };
    let succeeded = matches!(
        (&record.state, shown),
        (State::Exited(run), Shown::AsItIs) if run.exit.code == 0
    );
    // A regular init container is ready once it succeeded; the others while they run.
    let ready = match container.kind {
        Kind::Init => succeeded,
        Kind::Sidecar | Kind::Main => running,
    };
    let container_id = match &record.state {
        State::Running { id, .. } | State::Stopping { id, .. } => Some(id.clone()),
        State::Exited(run) => run
            .id
            .clone()
            .or_else(|| record.last.as_ref().and_then(|l| l.id.clone())),
        State::NotStarted
        | State::ConfigError { .. }
        | State::Pulling { .. }
        | State::NoImage(_) => record.last.as_ref().and_then(|l| l.id.clone()),
    };
    ContainerStatus {
        name: container.name.clone(),
        image: container.image.clone(),
        image_id: String::new(),
        container_id,
        ready,
        started: Some(running),
        restart_count: record.restarts,
        state: Some(state),
        last_state: last.map(terminated),
        ..Default::default()
    }
}

/// A container whose image could not be had, as `EnsureImageExists` words it
/// (image_manager.go): the pull's error until the worker looks again, then the back-off.
fn image_waiting(
    container: &ContainerPlan,
    failure: &ImageFailure,
    shown: Shown,
) -> ContainerState {
    match (failure.error, shown) {
        (ImageError::NeverPull, _) => waiting("ErrImageNeverPull", Some(failure.message.clone())),
        (ImageError::Pull, Shown::PullBackOff) => waiting(
            "ImagePullBackOff",
            Some(format!("Back-off pulling image {:?}", container.image)),
        ),
        (ImageError::Pull, _) => waiting("ErrImagePull", Some(failure.message.clone())),
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..Default::default()
    }
}

fn terminated(run: &Run) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: run.exit.code,
            signal: run.exit.signal,
            reason: Some(run.exit.reason.as_str().to_string()),
            message: run.exit.message.clone(),
            started_at: Some(Time(run.started_at)),
            finished_at: Some(Time(run.finished_at)),
            container_id: None,
        }),
        ..Default::default()
    }
}

/// Which containers that never ran `TerminatePod` marks failed when the pod ends: the main
/// containers of a pod that was initialized, and the init containers before the last one
/// that ran. The others stay waiting.
fn lost_at_the_end(plan: &PodPlan, records: &[ContainerRecord], done: bool) -> Vec<bool> {
    if !done {
        return vec![false; records.len()];
    }
    let initialized = initialized(plan, records);
    let last_init_that_ran = plan
        .containers
        .iter()
        .zip(records)
        .rposition(|(c, r)| c.kind != Kind::Main && r.created);
    plan.containers
        .iter()
        .enumerate()
        .map(|(i, c)| match c.kind {
            Kind::Main => initialized,
            Kind::Init | Kind::Sidecar => last_init_that_ran.is_some_and(|last| i < last),
        })
        .collect()
}

/// What `TerminatePod` writes for a container of an ended pod that never ran: not known to
/// have succeeded, so an error.
fn never_ran() -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: 137,
            reason: Some("ContainerStatusUnknown".to_string()),
            message: Some(
                "The container could not be located when the pod was terminated".to_string(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn human(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Init containers done, or a main container ran, which means they were once
/// (`GeneratePodInitializedCondition`).
fn initialized(plan: &PodPlan, records: &[ContainerRecord]) -> bool {
    let main_ran =
        (plan.containers.iter().zip(records)).any(|(c, r)| c.kind == Kind::Main && r.created);
    main_ran || incomplete_inits(plan, records).is_empty()
}

/// The init containers not done, in spec order: a regular one until it succeeded, a sidecar
/// while it does not run.
fn incomplete_inits<'a>(plan: &'a PodPlan, records: &[ContainerRecord]) -> Vec<&'a str> {
    (plan.containers.iter().zip(records))
        .filter(|(c, r)| match c.kind {
            Kind::Main => false,
            Kind::Sidecar => !r.state_is_running(),
            Kind::Init => !matches!(&r.state, State::Exited(run) if run.exit.code == 0),
        })
        .map(|(c, _)| c.name.as_str())
        .collect()
}

/// `getPhase`: regular init containers first (one failed for good fails the pod), then the
/// running, waiting and stopped containers; a sidecar that ended counts for nothing. An
/// ended pod not Succeeded nor Failed by then is Failed (`TerminatePod`).
fn phase(
    plan: &PodPlan,
    inits: &[ContainerStatus],
    mains: &[ContainerStatus],
    done: bool,
) -> &'static str {
    let state = |s: &ContainerStatus| s.state.clone().unwrap_or_default();
    let last_run_failed = |s: &ContainerStatus| {
        s.last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .map(|t| t.exit_code != 0)
    };
    let kind_of = |name: &str| {
        plan.containers
            .iter()
            .find(|c| c.name == name && c.kind != Kind::Main)
            .map(|c| c.kind)
    };
    let (mut pending_init, mut failed_init, mut pending_sidecars) = (0, 0, 0);
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    // Stopped containers that start again in place.
    let mut restarting = 0;
    for status in inits {
        let st = state(status);
        if kind_of(&status.name) == Some(Kind::Sidecar) {
            if st.running.is_some() {
                if status.started != Some(true) {
                    pending_sidecars += 1;
                }
                running += 1;
            } else if st.waiting.is_some() && status.last_state.is_none() {
                // Not started yet; one waiting to start again counts for nothing.
                pending_sidecars += 1;
                waiting += 1;
            }
            continue;
        }
        match (&st.running, &st.terminated, &st.waiting) {
            (Some(_), _, _) => pending_init += 1,
            (_, Some(t), _) if t.exit_code != 0 => {
                match plan.restarts_named(&status.name, t.exit_code) {
                    true => pending_init += 1,
                    false => failed_init += 1,
                }
            }
            (_, Some(_), _) => {}
            // Waiting to start (again: a failed run, or a pod starting over).
            (_, _, Some(_)) => pending_init += 1,
            _ => pending_init += 1,
        }
    }
    for status in mains {
        let st = state(status);
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = &st.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
            if plan.restarts_named(&status.name, t.exit_code) {
                restarting += 1;
            }
        } else if last_run_failed(status).is_some() {
            // Waiting to start again after a run.
            stopped += 1;
            restarting += 1;
        } else {
            waiting += 1;
        }
    }
    let initialized = mains
        .iter()
        .any(|s| state(s).waiting.is_none() || s.last_state.is_some());
    let phase = if failed_init > 0 {
        "Failed"
    } else if pending_init > 0 || (pending_sidecars > 0 && !initialized) || waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 && restarting > 0 && !done {
        // A container on its way back keeps the pod running.
        "Running"
    } else if stopped > 0 {
        match stopped == succeeded {
            true => "Succeeded",
            false => "Failed",
        }
    } else {
        "Pending"
    };
    match phase {
        "Pending" | "Running" if done => "Failed",
        phase => phase,
    }
}

/// A condition's value, and why when it is not what it should be.
struct Condition {
    value: bool,
    reason: &'static str,
    message: String,
}

impl Condition {
    const TRUE: Condition = Condition {
        value: true,
        reason: "",
        message: String::new(),
    };

    fn when(value: bool) -> Condition {
        Condition {
            value,
            reason: "",
            message: String::new(),
        }
    }

    fn not(reason: &'static str, message: &str) -> Condition {
        Condition {
            value: false,
            reason,
            message: message.to_string(),
        }
    }
}

/// Sets a condition; its transition time changes only with its value.
fn set_condition(status: &mut PodStatus, type_: &str, condition: &Condition, now: &Time) {
    let value = if condition.value { "True" } else { "False" };
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let at = match conditions.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            conditions.push(PodCondition {
                type_: type_.to_string(),
                ..Default::default()
            });
            conditions.len() - 1
        }
    };
    let c = &mut conditions[at];
    if c.status != value {
        c.status = value.to_string();
        c.last_transition_time = Some(now.clone());
    }
    c.reason = text(condition.reason);
    c.message = text(&condition.message);
}
