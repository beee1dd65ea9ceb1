//! The rules with a fake clock: a pod's containers are driven by hand, as a worker would
//! drive them, and each sync's actions and status are checked.

use std::time::Duration;

use joblet_api::k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use joblet_api::k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::*;

const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(10),
    max: Duration::from_secs(300),
};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

/// A pod on a fake node: its records change only as a test says.
struct Node {
    plan: PodPlan,
    records: Vec<ContainerRecord>,
    stop: Option<Stop>,
    status: PodStatus,
    started_at: Timestamp,
}

fn node(spec: Value) -> Node {
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p", "namespace": "default", "uid": "u1", "generation": 1}, "spec": spec}),
    )
    .unwrap();
    let plan = PodPlan::new(&pod, BACKOFF);
    Node {
        records: vec![ContainerRecord::default(); plan.containers.len()],
        plan,
        stop: None,
        status: PodStatus::default(),
        started_at: at(0),
    }
}

fn c(name: &str) -> Value {
    json!({"name": name, "image": "busybox", "command": ["true"]})
}

fn sidecar(name: &str) -> Value {
    json!({"name": name, "image": "busybox", "command": ["sleep", "1d"], "restartPolicy": "Always"})
}

impl Node {
    fn index(&self, name: &str) -> usize {
        self.plan
            .containers
            .iter()
            .position(|c| c.name == name)
            .unwrap()
    }

    fn sync(&mut self, now: i64) -> PodActions {
        let seen = Observed {
            started_at: self.started_at,
            containers: &self.records,
            stop: self.stop,
            previous: &self.status,
        };
        let actions = sync_pod(&self.plan, &seen, at(now));
        self.status = actions.status.clone();
        actions
    }

    /// The names of the containers the sync starts.
    fn starts(&mut self, now: i64) -> Vec<String> {
        let actions = self.sync(now);
        actions
            .start
            .iter()
            .map(|&i| self.plan.containers[i].name.clone())
            .collect()
    }

    fn kills(&mut self, now: i64) -> Vec<(String, u64)> {
        let actions = self.sync(now);
        actions
            .kill
            .iter()
            .map(|&(i, grace)| (self.plan.containers[i].name.clone(), grace.as_secs()))
            .collect()
    }

    fn run(&mut self, name: &str, now: i64) {
        let i = self.index(name);
        let record = &mut self.records[i];
        if let State::Exited(run) = std::mem::take(&mut record.state) {
            record.last = Some(run);
        }
        if record.created {
            record.restarts += 1;
        }
        record.created = true;
        record.state = State::Running {
            id: format!("joblet://{}", 100 + i),
            started_at: at(now),
        };
    }

    /// Starts each container in turn, as each sync asks for the next.
    fn bring_up(&mut self, names: &[&str], now: i64) {
        for name in names {
            assert_eq!(self.starts(now), [*name]);
            self.run(name, now);
        }
    }

    fn stopping(&mut self, name: &str, now: i64, grace: u64) {
        let i = self.index(name);
        let State::Running { id, started_at } = self.records[i].state.clone() else {
            panic!("{name} is not running");
        };
        self.records[i].state = State::Stopping {
            id,
            started_at,
            kill_at: at(now + grace as i64),
        };
    }

    fn exit(&mut self, name: &str, code: i32, now: i64) {
        let i = self.index(name);
        let (id, started_at) = match &self.records[i].state {
            State::Running { id, started_at } | State::Stopping { id, started_at, .. } => {
                (id.clone(), *started_at)
            }
            other => panic!("{name} is not running: {other:?}"),
        };
        self.records[i].state = State::Exited(Run {
            id: Some(id),
            started_at,
            finished_at: at(now),
            exit: Exit {
                code,
                signal: (code > 128).then_some(code - 128),
                reason: if code == 0 {
                    ExitReason::Completed
                } else {
                    ExitReason::Error
                },
                message: None,
            },
        });
    }

    fn phase(&self) -> &str {
        self.status.phase.as_deref().unwrap()
    }

    fn condition(&self, type_: &str) -> &str {
        let conditions = self.status.conditions.as_ref().unwrap();
        &conditions.iter().find(|c| c.type_ == type_).unwrap().status
    }

    fn container(&self, name: &str) -> &ContainerStatus {
        let all = self.status.init_container_statuses.iter().flatten();
        all.chain(self.status.container_statuses.iter().flatten())
            .find(|c| c.name == name)
            .unwrap()
    }

    fn state(&self, name: &str) -> String {
        let state = self.container(name).state.clone().unwrap();
        match (state.running, state.terminated, state.waiting) {
            (Some(_), _, _) => "running".to_string(),
            (_, Some(t), _) => format!("terminated {} {}", t.exit_code, t.reason.unwrap()),
            (_, _, Some(w)) => format!("waiting {}", w.reason.unwrap()),
            _ => "none".to_string(),
        }
    }
}

#[test]
fn a_plain_pod_starts_its_containers_together_and_succeeds_when_they_all_do() {
    let mut n = node(json!({"restartPolicy": "Never", "containers": [c("b"), c("a")]}));
    assert_eq!(n.starts(0), ["b", "a"]);
    assert_eq!(n.phase(), "Pending");
    assert_eq!(n.state("a"), "waiting ContainerCreating");
    n.run("b", 0);
    n.run("a", 0);
    let running = n.sync(0);
    assert!(running.start.is_empty() && !running.done);
    assert_eq!((n.phase(), n.condition("Ready")), ("Running", "True"));
    // Upstream lists main containers by name.
    let names: Vec<_> = n
        .status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(n.sync(0), running, "an unchanged pod gets the same actions");
    n.exit("a", 0, 3);
    assert_eq!((n.phase(), n.condition("Ready")), ("Running", "True"));
    assert_eq!(n.sync(3).status.phase.as_deref(), Some("Running"));
    assert_eq!(n.condition("Ready"), "False");
    n.exit("b", 0, 5);
    let done = n.sync(5);
    assert!(done.done && done.kill.is_empty());
    assert_eq!(n.phase(), "Succeeded");
    assert_eq!(n.state("b"), "terminated 0 Completed");
    assert_eq!(n.status.start_time.as_ref().unwrap().0, at(0));
}

#[test]
fn with_restart_policy_never_a_failed_container_fails_the_pod_once_the_others_end() {
    let mut n = node(json!({"restartPolicy": "Never", "containers": [c("a"), c("b")]}));
    n.sync(0);
    n.run("a", 0);
    n.run("b", 0);
    n.exit("a", 3, 1);
    let actions = n.sync(1);
    assert!(actions.start.is_empty() && !actions.done);
    assert_eq!(n.phase(), "Running");
    n.exit("b", 0, 2);
    assert!(n.sync(2).done);
    assert_eq!(n.phase(), "Failed");
    assert_eq!(n.state("a"), "terminated 3 Error");
}

#[test]
fn on_failure_restarts_a_failed_container_at_once_then_after_a_doubling_back_off() {
    let mut n = node(json!({"restartPolicy": "OnFailure", "containers": [c("a")]}));
    n.sync(0);
    n.run("a", 0);
    n.exit("a", 1, 1);
    assert_eq!(n.starts(1), ["a"], "the first restart is at once");
    n.run("a", 1);
    n.exit("a", 1, 2);
    let backing_off = n.sync(2);
    assert!(backing_off.start.is_empty() && !backing_off.done);
    assert_eq!(backing_off.wake_at, Some(at(12)));
    assert_eq!(n.state("a"), "waiting CrashLoopBackOff");
    let a = n.container("a").clone();
    let waiting = a.state.unwrap().waiting.unwrap();
    assert_eq!(
        waiting.message.as_deref(),
        Some("back-off 10s restarting failed container=a pod=p_default(u1)")
    );
    let last = a.last_state.unwrap().terminated.unwrap();
    assert_eq!(
        (last.exit_code, a.restart_count, n.phase()),
        (1, 1, "Running")
    );
    assert_eq!(n.starts(12), ["a"]);
    n.run("a", 12);
    n.sync(12);
    assert_eq!(
        (n.container("a").restart_count, n.state("a").as_str()),
        (2, "running")
    );
    n.exit("a", 1, 13);
    assert_eq!(
        n.sync(13).wake_at,
        Some(at(33)),
        "20 s after the third failure"
    );
    n.run("a", 33);
    n.exit("a", 0, 34);
    assert!(n.sync(34).done);
    assert_eq!(
        (n.phase(), n.container("a").restart_count),
        ("Succeeded", 3)
    );
}

#[test]
fn init_containers_run_one_by_one_before_the_main_containers() {
    let mut n = node(
        json!({"restartPolicy": "Never", "initContainers": [c("i1"), c("i2")],
        "containers": [c("m")]}),
    );
    assert_eq!(n.starts(0), ["i1"]);
    assert_eq!(n.state("m"), "waiting PodInitializing");
    n.run("i1", 0);
    assert!(n.starts(0).is_empty());
    assert_eq!(
        (n.phase(), n.condition("Initialized")),
        ("Pending", "False")
    );
    assert!(n.container("i1").started == Some(true) && !n.container("i1").ready);
    n.exit("i1", 0, 1);
    assert_eq!(n.starts(1), ["i2"]);
    assert!(
        n.container("i1").ready,
        "a succeeded init container is ready"
    );
    n.run("i2", 1);
    n.exit("i2", 0, 2);
    assert_eq!(n.starts(2), ["m"]);
    assert_eq!(n.condition("Initialized"), "True");
    n.run("m", 2);
    n.exit("m", 0, 3);
    assert!(n.sync(3).done);
    assert_eq!(n.phase(), "Succeeded");
}

#[test]
fn a_failed_init_container_fails_a_never_pod_and_its_main_containers_never_run() {
    let mut n = node(
        json!({"restartPolicy": "Never", "initContainers": [c("i1"), c("i2")],
        "containers": [c("m")]}),
    );
    n.sync(0);
    n.run("i1", 0);
    n.exit("i1", 2, 1);
    let actions = n.sync(1);
    assert!(actions.done && actions.start.is_empty());
    assert_eq!(n.phase(), "Failed");
    assert_eq!(n.state("i1"), "terminated 2 Error");
    // TerminatePod leaves what comes after the failure waiting.
    assert_eq!(n.state("i2"), "waiting PodInitializing");
    assert_eq!(n.state("m"), "waiting PodInitializing");
}

#[test]
fn a_failed_init_container_of_an_on_failure_pod_is_restarted_with_back_off() {
    let mut n = node(
        json!({"restartPolicy": "OnFailure", "initContainers": [c("i")],
        "containers": [c("m")]}),
    );
    n.sync(0);
    n.run("i", 0);
    n.exit("i", 1, 1);
    assert_eq!(n.starts(1), ["i"]);
    n.run("i", 1);
    n.exit("i", 1, 2);
    let actions = n.sync(2);
    assert!(actions.start.is_empty() && !actions.done);
    assert_eq!(
        (n.phase(), n.state("i").as_str()),
        ("Pending", "waiting CrashLoopBackOff")
    );
    assert_eq!(n.starts(12), ["i"]);
}

#[test]
fn a_sidecar_starts_in_the_init_order_and_the_next_container_starts_once_it_runs() {
    let mut n = node(json!({"restartPolicy": "Never",
        "initContainers": [sidecar("proxy"), c("setup"), sidecar("shipper")],
        "containers": [c("m")]}));
    assert_eq!(n.starts(0), ["proxy"]);
    n.run("proxy", 0);
    assert_eq!(n.starts(0), ["setup"]);
    let proxy = n.container("proxy");
    assert!(
        proxy.started == Some(true) && proxy.ready,
        "a running sidecar is started and ready"
    );
    n.run("setup", 0);
    n.exit("setup", 0, 1);
    assert_eq!(n.starts(1), ["shipper"]);
    assert_eq!(n.condition("Initialized"), "False");
    n.run("shipper", 1);
    assert_eq!(n.starts(1), ["m"]);
    assert_eq!((n.condition("Initialized"), n.phase()), ("True", "Pending"));
    n.run("m", 1);
    n.sync(1);
    assert_eq!((n.phase(), n.condition("Ready")), ("Running", "True"));
}

#[test]
fn a_sidecar_is_restarted_whatever_the_pods_policy_and_the_pod_runs_on() {
    let mut n = node(
        json!({"restartPolicy": "Never", "initContainers": [sidecar("s")],
        "containers": [c("m")]}),
    );
    n.bring_up(&["s", "m"], 0);
    n.exit("s", 0, 1);
    assert_eq!(n.starts(1), ["s"], "the first restart is at once");
    n.run("s", 1);
    n.exit("s", 0, 2);
    let actions = n.sync(2);
    assert!(actions.start.is_empty(), "in back-off");
    assert_eq!(actions.wake_at, Some(at(12)));
    assert_eq!((n.phase(), n.condition("Ready")), ("Running", "False"));
    assert_eq!(n.state("s"), "waiting CrashLoopBackOff");
    assert_eq!(n.starts(12), ["s"]);
    n.run("s", 12);
    n.sync(12);
    assert_eq!(
        (n.container("s").restart_count, n.condition("Ready")),
        (2, "True")
    );
}

#[test]
fn a_sidecar_that_exits_before_the_next_init_container_starts_is_restarted() {
    let mut n = node(
        json!({"restartPolicy": "Never", "initContainers": [sidecar("s"), c("i")],
        "containers": [c("m")]}),
    );
    n.sync(0);
    n.run("s", 0);
    n.sync(0);
    n.run("i", 0);
    n.exit("s", 1, 1);
    assert_eq!(n.starts(1), ["s"]);
    n.run("s", 1);
    n.exit("i", 0, 2);
    assert_eq!(n.starts(2), ["m"]);
}

#[test]
fn once_the_main_containers_end_the_sidecars_stop_in_reverse_order_and_the_pod_succeeds() {
    let mut n = node(
        json!({"restartPolicy": "Never", "terminationGracePeriodSeconds": 30,
        "initContainers": [sidecar("s1"), sidecar("s2")], "containers": [c("m")]}),
    );
    n.bring_up(&["s1", "s2", "m"], 0);
    n.exit("m", 0, 5);
    // The last sidecar first, with the whole grace; the first waits for it.
    let actions = n.sync(5);
    assert_eq!(actions.start, [] as [usize; 0]);
    assert_eq!(actions.wake_at, Some(at(35)));
    assert_eq!(n.kills(5), [("s2".to_string(), 30)]);
    n.stopping("s2", 5, 30);
    assert!(
        n.kills(5).is_empty(),
        "a container being stopped is not asked again"
    );
    assert_eq!(n.phase(), "Running");
    n.exit("s2", 143, 8);
    assert_eq!(n.kills(8), [("s1".to_string(), 27)]);
    n.stopping("s1", 8, 27);
    n.exit("s1", 137, 9);
    let done = n.sync(9);
    assert!(done.done);
    // A sidecar's end on the way out is no failure.
    assert_eq!(n.phase(), "Succeeded");
    assert_eq!(n.state("s1"), "terminated 137 Error");
    assert!(!n.container("s1").ready);
}

#[test]
fn a_sidecar_whose_turn_never_comes_is_stopped_when_the_grace_is_spent_with_two_seconds() {
    let mut n = node(
        json!({"restartPolicy": "Never", "terminationGracePeriodSeconds": 10,
        "initContainers": [sidecar("s1"), sidecar("s2")], "containers": [c("m")]}),
    );
    n.bring_up(&["s1", "s2", "m"], 0);
    n.exit("m", 1, 0);
    assert_eq!(n.kills(0), [("s2".to_string(), 10)]);
    n.stopping("s2", 0, 10);
    assert!(n.kills(9).is_empty());
    assert_eq!(n.kills(10), [("s1".to_string(), 2)]);
    n.stopping("s1", 10, 2);
    n.exit("s2", 137, 10);
    n.exit("s1", 137, 12);
    assert!(n.sync(12).done);
    assert_eq!(n.phase(), "Failed");
}

#[test]
fn a_stop_kills_every_container_with_the_shorter_grace_and_restarts_nothing() {
    let mut n = node(
        json!({"restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 30,
        "containers": [c("a"), c("b")]}),
    );
    n.sync(0);
    n.run("a", 0);
    n.run("b", 0);
    n.exit("b", 1, 1);
    n.stop = Some(Stop {
        request: StopRequest {
            grace: Duration::from_secs(5),
            disruption: Some(Disruption::EVICTION),
            generation: Some(2),
        },
        asked_at: at(2),
    });
    let actions = n.sync(2);
    assert_eq!(actions.start, [] as [usize; 0]);
    assert_eq!(n.kills(2), [("a".to_string(), 5)]);
    n.stopping("a", 2, 5);
    // A later stop with a shorter grace wins.
    n.stop.as_mut().unwrap().request.grace = Duration::from_secs(1);
    assert_eq!(n.kills(3), [("a".to_string(), 1)]);
    n.exit("a", 143, 3);
    assert!(n.sync(3).done);
    assert_eq!(n.phase(), "Failed");
    let disruption = n
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget");
    assert_eq!(
        disruption.unwrap().reason.as_deref(),
        Some("EvictionByEvictionAPI")
    );
    // The eviction raised the pod's generation; the kubelet says it saw it.
    assert_eq!(n.status.observed_generation, Some(2));
    assert_eq!(disruption.unwrap().observed_generation, Some(2));
}

#[test]
fn a_pod_stopped_before_it_started_ends_failed_at_once() {
    let mut n = node(json!({"restartPolicy": "Never", "containers": [c("a")]}));
    n.stop = Some(Stop {
        request: StopRequest {
            grace: Duration::MAX,
            disruption: None,
            generation: None,
        },
        asked_at: at(0),
    });
    let actions = n.sync(0);
    assert!(actions.done && actions.start.is_empty());
    assert_eq!(n.phase(), "Failed");
    // TerminatePod: a container of an initialized pod that never ran is not known to have
    // succeeded.
    assert_eq!(n.state("a"), "terminated 137 ContainerStatusUnknown");
    assert!(!n
        .status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "DisruptionTarget"));
}

#[test]
fn the_active_deadline_stops_the_pod_and_fails_it() {
    let mut n = node(
        json!({"restartPolicy": "Never", "activeDeadlineSeconds": 60,
        "terminationGracePeriodSeconds": 7, "containers": [c("a")]}),
    );
    n.sync(0);
    n.run("a", 0);
    assert_eq!(n.sync(1).wake_at, Some(at(60)));
    assert_eq!(n.kills(60), [("a".to_string(), 7)]);
    assert!(n.status.reason.is_none());
    n.stopping("a", 60, 7);
    n.exit("a", 0, 61);
    assert!(n.sync(61).done);
    assert_eq!(n.phase(), "Failed");
    assert_eq!(n.status.reason.as_deref(), Some("DeadlineExceeded"));
}

#[test]
fn condition_times_change_only_when_their_value_does() {
    let mut n = node(json!({"restartPolicy": "Never", "containers": [c("a")]}));
    n.sync(0);
    n.run("a", 2);
    n.sync(2);
    n.sync(4);
    let time = |n: &Node, t: &str| {
        let conditions = n.status.conditions.iter().flatten();
        let found = conditions.clone().find(|c| c.type_ == t).unwrap();
        found.last_transition_time.clone().unwrap().0
    };
    assert_eq!(
        (time(&n, "PodScheduled"), time(&n, "Ready")),
        (at(0), at(2))
    );
}

#[test]
fn a_container_whose_config_cannot_be_made_waits_and_the_pod_stays_pending() {
    let mut n = node(json!({"restartPolicy": "Never", "containers": [c("a")]}));
    assert_eq!(n.starts(0), ["a"]);
    n.records[0].state = State::ConfigError {
        message: "configmap \"x\" not found".to_string(),
    };
    assert_eq!(
        n.starts(1),
        ["a"],
        "asked again; the worker tries when objects change"
    );
    assert_eq!(n.phase(), "Pending");
    assert_eq!(n.state("a"), "waiting CreateContainerConfigError");
    let waiting = n.container("a").state.clone().unwrap().waiting.unwrap();
    assert_eq!(
        waiting.message.as_deref(),
        Some("configmap \"x\" not found")
    );
    n.run("a", 2);
    assert_eq!(n.container("a").restart_count, 0);
    n.exit("a", 0, 3);
    assert!(n.sync(3).done);
    assert_eq!(n.phase(), "Succeeded");
}

#[test]
fn conditions_say_why_as_status_generate_words_it() {
    let mut n = node(
        json!({"restartPolicy": "Never", "initContainers": [c("i"), sidecar("s")],
        "containers": [c("m")]}),
    );
    n.sync(0);
    n.run("i", 0);
    n.sync(0);
    let why = |n: &Node, t: &str| {
        let conditions = n.status.conditions.iter().flatten();
        let found = conditions.clone().find(|c| c.type_ == t).unwrap();
        format!(
            "{} {} {}",
            found.status,
            found.reason.as_deref().unwrap_or("-"),
            found.message.as_deref().unwrap_or("-")
        )
    };
    assert_eq!(
        why(&n, "Initialized"),
        "False ContainersNotInitialized containers with incomplete status: [i s]"
    );
    assert_eq!(
        why(&n, "Ready"),
        "False ContainersNotReady containers with unready status: [s m]"
    );
    assert_eq!(why(&n, "PodReadyToStartContainers"), "True - -");
    n.exit("i", 0, 1);
    n.bring_up(&["s", "m"], 1);
    n.sync(1);
    assert_eq!(
        (why(&n, "Initialized"), why(&n, "Ready")),
        ("True - -".into(), "True - -".into())
    );
    n.exit("m", 0, 2);
    n.sync(2);
    n.stopping("s", 2, 30);
    n.exit("s", 143, 3);
    assert!(n.sync(3).done);
    assert_eq!(why(&n, "Ready"), "False PodCompleted -");
    assert_eq!(why(&n, "ContainersReady"), "False PodCompleted -");
    assert_eq!(why(&n, "Initialized"), "True PodCompleted -");
    assert_eq!(why(&n, "PodReadyToStartContainers"), "False - -");
}

impl Node {
    fn pulling(&mut self, name: &str) {
        let i = self.index(name);
        let failed = match std::mem::take(&mut self.records[i].state) {
            State::NoImage(failure) => Some(failure),
            _ => None,
        };
        self.records[i].state = State::Pulling { failed };
    }

    fn pull_failed(&mut self, name: &str, error: ImageError, now: i64) {
        let i = self.index(name);
        let count = match &self.records[i].state {
            State::Pulling { failed } => failed.as_ref().map_or(0, |f| f.count) + 1,
            other => panic!("{name} is not pulling: {other:?}"),
        };
        self.records[i].state = State::NoImage(ImageFailure {
            error,
            message: "connection refused".to_string(),
            count,
            at: at(now),
        });
    }

    fn waiting_message(&self, name: &str) -> String {
        let state = self.container(name).state.clone().unwrap();
        state.waiting.unwrap().message.unwrap_or_default()
    }
}

/// A failed pull: `ErrImagePull`, then `ImagePullBackOff` once the worker looks again (the
/// base), the pull tried again when the doubling back-off ends, the back-off shown meanwhile;
/// the pod stays Pending and nothing else of it starts.
#[test]
fn a_failed_pull_waits_in_the_image_back_off_and_the_pod_stays_pending() {
    let mut n = node(
        json!({"restartPolicy": "Never", "initContainers": [c("init")], "containers": [c("main")]}),
    );
    assert_eq!(n.starts(0), ["init"]);
    n.pulling("init");
    let pulling = n.sync(0);
    assert!(pulling.start.is_empty());
    assert_eq!(n.state("init"), "waiting PodInitializing");
    n.pull_failed("init", ImageError::Pull, 1);
    let failed = n.sync(1);
    assert!(failed.start.is_empty());
    assert_eq!(failed.wake_at, Some(at(11)));
    assert_eq!(n.state("init"), "waiting ErrImagePull");
    assert_eq!(n.waiting_message("init"), "connection refused");
    assert_eq!(
        (n.phase(), n.state("main")),
        ("Pending", "waiting PodInitializing".into())
    );
    // The first back-off is the base: the pull is tried again as the worker looks again.
    assert_eq!(n.starts(11), ["init"]);
    n.pulling("init");
    n.sync(11);
    assert_eq!(n.state("init"), "waiting ImagePullBackOff");
    assert_eq!(
        n.waiting_message("init"),
        "Back-off pulling image \"busybox\""
    );
    n.pull_failed("init", ImageError::Pull, 12);
    assert_eq!(n.sync(12).wake_at, Some(at(22)));
    assert_eq!(n.state("init"), "waiting ErrImagePull");
    let backing_off = n.sync(22);
    assert!(backing_off.start.is_empty());
    assert_eq!(backing_off.wake_at, Some(at(32)));
    assert_eq!(n.state("init"), "waiting ImagePullBackOff");
    assert_eq!(n.starts(32), ["init"]);
    n.pulling("init");
    n.sync(32);
    // Pulled at last: it starts, and runs as any container.
    n.records[0].state = State::NotStarted;
    assert_eq!(n.starts(40), ["init"]);
    n.run("init", 40);
    n.sync(40);
    assert_eq!(
        (n.records[0].restarts, n.state("init").as_str()),
        (0, "running")
    );
}

#[test]
fn a_missing_image_with_pull_policy_never_waits_as_err_image_never_pull() {
    let mut n = node(json!({"restartPolicy": "Never", "containers": [c("a"), c("b")]}));
    assert_eq!(n.starts(0), ["a", "b"]);
    n.run("a", 0);
    n.pulling("b");
    n.pull_failed("b", ImageError::NeverPull, 0);
    n.exit("a", 0, 1);
    // `a` ended, but `b` is still to run: the pod goes on.
    let waiting = n.sync(20);
    assert!(!waiting.done && waiting.kill.is_empty());
    assert_eq!(n.state("b"), "waiting ErrImageNeverPull");
    assert_eq!(n.starts(20), ["b"], "looked for again after its back-off");
    n.pulling("b");
    n.sync(20);
    assert_eq!(n.state("b"), "waiting ErrImageNeverPull");
    // getPhase: a waiting container keeps the pod Pending.
    assert_eq!(n.phase(), "Pending");
}

/// The active deadline ends a pod whose image never came; the container never ran.
#[test]
fn the_active_deadline_ends_a_pod_waiting_for_its_image() {
    let mut n = node(
        json!({"restartPolicy": "Never", "activeDeadlineSeconds": 30, "containers": [c("a")]}),
    );
    n.sync(0);
    n.pulling("a");
    n.pull_failed("a", ImageError::Pull, 3);
    let ended = n.sync(30);
    assert!(ended.done);
    assert_eq!(n.phase(), "Failed");
    assert_eq!(n.state("a"), "terminated 137 ContainerStatusUnknown");
}

fn ruled(name: &str, policy: &str, rules: Value) -> Value {
    json!({"name": name, "image": "busybox", "command": ["true"],
           "restartPolicy": policy, "restartPolicyRules": rules})
}

fn rule(operator: &str, codes: &[i32]) -> Value {
    json!({"action": "Restart", "exitCodes": {"operator": operator, "values": codes}})
}

#[test]
fn a_restart_rule_restarts_a_container_in_place_and_the_pod_stays_running() {
    let rules = json!([rule("In", &[42])]);
    let mut n = node(json!({"restartPolicy": "Never", "containers": [ruled("a", "Never", rules)]}));
    n.sync(0);
    n.run("a", 0);
    n.exit("a", 42, 1);
    assert_eq!(
        n.starts(1),
        ["a"],
        "exit 42 matches the rule: restarted at once"
    );
    assert_eq!(n.phase(), "Running");
    n.run("a", 1);
    n.exit("a", 0, 2);
    let end = n.sync(2);
    assert!(
        end.start.is_empty() && end.done,
        "exit 0 matches no rule; Never"
    );
    let a = n.container("a").clone();
    assert_eq!((n.phase(), a.restart_count), ("Succeeded", 1));
    assert_eq!(a.last_state.unwrap().terminated.unwrap().exit_code, 42);
}

#[test]
fn restart_rules_decide_in_order_then_the_containers_policy_then_the_pods() {
    let cases = [
        // (pod policy, container policy, rules, exit code, restarts)
        ("Never", "Never", json!([rule("In", &[1, 2])]), 2, true),
        ("Never", "Never", json!([rule("In", &[1, 2])]), 3, false),
        ("Never", "Never", json!([rule("NotIn", &[0])]), 5, true),
        ("Never", "Never", json!([rule("NotIn", &[0])]), 0, false),
        // Exit 0 is a code like another.
        ("Never", "Never", json!([rule("In", &[0])]), 0, true),
        // No rule matches: the container's own policy, not the pod's.
        ("Always", "Never", json!([rule("In", &[42])]), 1, false),
        ("Never", "OnFailure", json!([rule("In", &[42])]), 1, true),
        ("Never", "OnFailure", json!([rule("In", &[42])]), 0, false),
        ("Never", "Always", json!([]), 0, true),
        // An operator upstream does not know matches nothing.
        (
            "Never",
            "Never",
            json!([{"action": "Restart", "exitCodes": {"operator": "Equals", "values": [1]}}]),
            1,
            false,
        ),
    ];
    for (pod, own, rules, code, restarts) in cases {
        let spec = json!({"restartPolicy": pod, "containers": [ruled("a", own, rules.clone())]});
        let mut n = node(spec);
        n.sync(0);
        n.run("a", 0);
        n.exit("a", code, 1);
        let started = n.starts(1);
        assert_eq!(
            !started.is_empty(),
            restarts,
            "pod {pod}, container {own}, {rules}, exit {code}"
        );
    }
}

#[test]
fn restarted_by_a_rule_again_and_again_a_container_backs_off_doubling() {
    let rules = json!([rule("In", &[42])]);
    let mut n = node(json!({"restartPolicy": "Never", "containers": [ruled("a", "Never", rules)]}));
    n.sync(0);
    n.run("a", 0);
    n.exit("a", 42, 1);
    assert_eq!(n.starts(1), ["a"]);
    n.run("a", 1);
    n.exit("a", 42, 2);
    let first = n.sync(2);
    assert_eq!((first.start.len(), first.wake_at), (0, Some(at(12))));
    assert_eq!(
        (n.state("a").as_str(), n.phase()),
        ("waiting CrashLoopBackOff", "Running")
    );
    assert_eq!(n.starts(12), ["a"]);
    n.run("a", 12);
    n.exit("a", 42, 13);
    assert_eq!(n.sync(13).wake_at, Some(at(33)), "then 20 s");
}

#[test]
fn an_init_container_restarted_by_a_rule_does_not_fail_the_pod() {
    let rules = json!([rule("In", &[7])]);
    let spec = json!({"restartPolicy": "Never",
        "initContainers": [ruled("i", "Never", rules)], "containers": [c("a")]});
    let mut n = node(spec);
    assert_eq!(n.starts(0), ["i"]);
    n.run("i", 0);
    n.exit("i", 7, 1);
    assert_eq!(n.starts(1), ["i"]);
    assert_eq!(n.phase(), "Pending");
    n.run("i", 1);
    n.exit("i", 0, 2);
    assert_eq!(n.starts(2), ["a"]);
    // Another code fails it for good, and the pod with it.
    let rules = json!([rule("In", &[7])]);
    let spec = json!({"restartPolicy": "Never",
        "initContainers": [ruled("i", "Never", rules)], "containers": [c("a")]});
    let mut n = node(spec);
    n.sync(0);
    n.run("i", 0);
    n.exit("i", 8, 1);
    n.sync(1);
    assert_eq!(n.phase(), "Failed");
}

fn restart_all(operator: &str, codes: &[i32]) -> Value {
    json!({"action": "RestartAllContainers", "exitCodes": {"operator": operator, "values": codes}})
}

impl Node {
    /// What the worker does when the sync asks the pod to start over.
    fn start_over(&mut self, now: i64) {
        assert!(self.sync(now).start_over, "the pod starts over at {now}");
        self.records
            .iter_mut()
            .for_each(ContainerRecord::start_over);
    }
}

#[test]
fn restart_all_containers_stops_every_container_and_reruns_the_pod_from_its_init_containers() {
    let rules = json!([restart_all("In", &[42])]);
    let spec = json!({"restartPolicy": "Never",
        "initContainers": [c("init"), sidecar("side")], "containers": [ruled("main", "Never", rules)]});
    let mut n = node(spec);
    let up = |n: &mut Node, now| {
        assert_eq!(n.starts(now), ["init"]);
        n.run("init", now);
        n.exit("init", 0, now);
        n.bring_up(&["side", "main"], now);
    };
    up(&mut n, 0);
    assert_eq!(n.condition("AllContainersRestarting"), "False");
    n.exit("main", 42, 2);
    // Every other container is stopped at once, without its grace.
    let stopping = n.sync(2);
    assert_eq!(
        (stopping.kill.clone(), stopping.start.is_empty()),
        (vec![(n.index("side"), Duration::ZERO)], true)
    );
    assert!(!stopping.start_over && !stopping.done);
    assert_eq!(
        (n.phase(), n.condition("AllContainersRestarting")),
        ("Pending", "True")
    );
    let condition = (n.status.conditions.iter().flatten())
        .find(|c| c.type_ == "AllContainersRestarting")
        .unwrap();
    assert_eq!(
        (condition.reason.as_deref(), condition.message.as_deref()),
        (
            Some("RestartAllContainersStarted"),
            Some("container exited with restart policy rule")
        )
    );
    n.stopping("side", 2, 0);
    n.exit("side", 137, 2);
    n.start_over(2);
    // The same pod from the start: its init container first, each container's run counted.
    // Initialized once, it stays so (GeneratePodInitializedCondition).
    assert_eq!(n.starts(2), ["init"]);
    assert_eq!((n.phase(), n.condition("Initialized")), ("Pending", "True"));
    n.run("init", 2);
    n.exit("init", 0, 2);
    n.bring_up(&["side", "main"], 2);
    n.sync(2);
    assert_eq!(
        (n.phase(), n.condition("AllContainersRestarting")),
        ("Running", "False")
    );
    let counts: Vec<i32> = ["init", "side", "main"]
        .iter()
        .map(|name| n.container(name).restart_count)
        .collect();
    assert_eq!(counts, [1, 1, 1]);
    let last = n.container("main").last_state.clone().unwrap();
    assert_eq!(last.terminated.unwrap().exit_code, 42);
    n.exit("main", 0, 3);
    n.sync(3);
    n.stopping("side", 3, 30);
    n.exit("side", 143, 3);
    assert!(n.sync(3).done);
    assert_eq!(n.phase(), "Succeeded");
    let condition = (n.status.conditions.iter().flatten())
        .find(|c| c.type_ == "AllContainersRestarting")
        .unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_deref()),
        ("False", Some("PodCompleted"))
    );
}

#[test]
fn a_pod_that_restarts_all_again_waits_for_the_back_off_of_the_container_that_asked() {
    let rules = json!([restart_all("NotIn", &[0])]);
    let mut n = node(json!({"restartPolicy": "Never", "containers": [ruled("a", "Never", rules)]}));
    n.sync(0);
    n.run("a", 0);
    n.exit("a", 1, 1);
    n.start_over(1);
    assert_eq!(n.starts(1), ["a"]);
    n.run("a", 1);
    n.exit("a", 1, 2);
    let waiting = n.sync(2);
    assert_eq!((waiting.start_over, waiting.wake_at), (false, Some(at(12))));
    assert_eq!(n.phase(), "Pending", "not terminal while it waits");
    n.start_over(12);
    assert_eq!(n.starts(12), ["a"]);
    assert_eq!(n.container("a").restart_count, 2);
}

#[test]
fn the_first_matching_rule_decides_between_restarting_one_container_and_all() {
    let rules = json!([rule("In", &[42]), restart_all("NotIn", &[0])]);
    let spec =
        json!({"restartPolicy": "Never", "containers": [ruled("a", "Never", rules), c("b")]});
    let mut n = node(spec);
    n.sync(0);
    n.run("a", 0);
    n.run("b", 0);
    n.exit("a", 42, 1);
    assert_eq!(n.starts(1), ["a"], "42: the first rule, a alone");
    n.run("a", 1);
    n.exit("a", 3, 2);
    let actions = n.sync(2);
    assert_eq!(actions.kill, [(n.index("b"), Duration::ZERO)], "3: all");
    // Exit 0 matches neither: the container's own policy, Never.
    let mut n = node(json!({"restartPolicy": "Never",
        "containers": [ruled("a", "Never", json!([restart_all("NotIn", &[0])]))]}));
    n.sync(0);
    n.run("a", 0);
    n.exit("a", 0, 1);
    let end = n.sync(1);
    assert!(end.done && !end.start_over);
    assert_eq!(n.phase(), "Succeeded");
}

#[test]
fn an_init_container_that_restarts_all_does_not_fail_the_pod_but_a_deletion_ends_it() {
    let rules = json!([restart_all("In", &[7])]);
    let spec = json!({"restartPolicy": "Never",
        "initContainers": [c("first"), ruled("second", "Never", rules)], "containers": [c("a")]});
    let mut n = node(spec);
    n.bring_up(&["first"], 0);
    n.exit("first", 0, 0);
    n.bring_up(&["second"], 0);
    n.exit("second", 7, 1);
    n.start_over(1);
    assert_eq!(n.starts(1), ["first"]);
    n.run("first", 1);
    n.exit("first", 0, 1);
    n.bring_up(&["second"], 1);
    n.exit("second", 7, 2);
    // Deleted while it waits to start over: the pod ends, failed.
    n.stop = Some(Stop {
        request: StopRequest {
            grace: Duration::from_secs(30),
            disruption: None,
            generation: Some(2),
        },
        asked_at: at(3),
    });
    let ended = n.sync(3);
    assert!(ended.done && !ended.start_over);
    assert_eq!(n.phase(), "Failed");
}

#[test]
fn the_status_and_each_condition_say_the_generation_the_kubelet_saw() {
    let mut n = node(json!({"restartPolicy": "Never", "containers": [c("a")]}));
    n.sync(0);
    n.run("a", 0);
    n.sync(0);
    assert_eq!(n.status.observed_generation, Some(1));
    let conditions = n.status.conditions.clone().unwrap();
    assert!(conditions.len() >= 4);
    assert!(
        conditions.iter().all(|c| c.observed_generation == Some(1)),
        "{conditions:?}"
    );
}
