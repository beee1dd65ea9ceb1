//! The pod worker (upstream's `pod_workers.go` with the doing half of `SyncPod`): asks
//! `joblet_kubelet::sync_pod` what to do, does it through the container runtime until nothing is left
//! to do now, reports the status when it changed, then waits for a container's end, a stop
//! or the time the rules asked to look again.

use std::sync::Arc;

use joblet_api::k8s_openapi::api::core::v1::{Container, HostIP, Pod, PodIP, PodStatus};
use joblet_api::k8s_openapi::jiff::Timestamp;
use joblet_kubelet::{
    later, since, sync_pod, Backoff, ContainerRecord, Exit, ExitReason, ImageFailure, ImageNews,
    KubeletEvent, Observed, PodActions, PodPlan, Run, State, Stop,
};
use tokio::sync::{mpsc, watch};

use joblet_kubelet::env::container_env;
use joblet_kubelet::Objects;

use crate::containers::{
    self, ContainerRuntime, ImageNeed, ImageResult, RunEnd, RunRequest, StartFailure,
};
use crate::{pod_key, PodUpdate, Shared, StopRequest, StopSender};

/// A container's run that ended: its index, how, and when.
type Ended = (usize, RunEnd, Timestamp);

/// News of a container's image fetch: its pull started, or it ended (fetched, or why it
/// could not be), and when.
type Fetched = (usize, Fetch, Timestamp);

enum Fetch {
    Pulling,
    Done(ImageResult),
}

struct Worker {
    shared: Arc<Shared>,
    pod: Pod,
    namespace: String,
    name: String,
    plan: PodPlan,
    /// Index-aligned with the plan's containers.
    specs: Vec<Container>,
    records: Vec<ContainerRecord>,
    /// How to stop each container's current run, while it runs.
    stops: Vec<Option<containers::Stop>>,
    started_at: Timestamp,
    stop: Option<Stop>,
    status: PodStatus,
    ended: mpsc::UnboundedSender<Ended>,
    fetched: mpsc::UnboundedSender<Fetched>,
    /// Containers whose image was fetched for their next start.
    image_ready: Vec<bool>,
    objects: watch::Receiver<Arc<Objects>>,
    /// Where its containers run (`runtimeClassName`), or why they cannot.
    runtime: Result<Arc<dyn ContainerRuntime>, String>,
    /// Containers whose configuration could not be made from the objects as they are now:
    /// tried again once they change.
    unconfigurable: Vec<bool>,
    /// What the image manager said since the last report, told with the next one.
    events: Vec<KubeletEvent>,
}

/// Runs a pod until it ends and its final status is reported.
pub(crate) async fn run_pod(
    shared: Arc<Shared>,
    pod: Pod,
    // Held so that the receiver never sees the channel closed.
    _stop_tx: StopSender,
    mut stop_rx: watch::Receiver<Option<StopRequest>>,
) {
    let (namespace, name) = pod_key(&pod);
    let config = &shared.config;
    let backoff = Backoff {
        base: config.restart_backoff_base,
        max: config.restart_backoff_max,
    };
    let plan = PodPlan::new(&pod, backoff);
    let spec = pod.spec.clone().unwrap_or_default();
    let specs: Vec<Container> = spec
        .init_containers
        .into_iter()
        .flatten()
        .chain(spec.containers)
        .collect();
    let mut status = pod.status.clone().unwrap_or_default();
    // One machine: the node's address is the pod's (the kubelet fills both lists too).
    let local = "127.0.0.1".to_string();
    status.host_ip = Some(local.clone());
    status.host_ips = Some(vec![HostIP { ip: local.clone() }]);
    status.pod_ip = Some(local.clone());
    status.pod_ips = Some(vec![PodIP { ip: local }]);
    let (ended, mut ends) = mpsc::unbounded_channel();
    let (fetched, mut fetches) = mpsc::unbounded_channel();
    let mut objects = shared.objects.subscribe();
    objects.mark_unchanged();
    let runtime = shared.runtimes.for_pod(&pod);
    let mut worker = Worker {
        runtime,
        objects: objects.clone(),
        unconfigurable: vec![false; specs.len()],
        events: Vec::new(),
        image_ready: vec![false; specs.len()],
        records: vec![ContainerRecord::default(); specs.len()],
        stops: (0..specs.len()).map(|_| None).collect(),
        started_at: shared.clock.now(),
        shared,
        pod,
        namespace,
        name,
        plan,
        specs,
        stop: None,
        status,
        ended,
        fetched,
    };
    let mut reported: Option<PodStatus> = None;
    loop {
        let now = worker.shared.clock.now();
        if let Some(request) = *stop_rx.borrow_and_update() {
            let asked_at = worker.stop.map_or(now, |s| s.asked_at);
            worker.stop = Some(Stop { request, asked_at });
        }
        let actions = worker.act(now);
        if actions.done {
            worker.finish();
            return;
        }
        if reported.as_ref() != Some(&worker.status) || !worker.events.is_empty() {
            worker.report();
            reported = Some(worker.status.clone());
        }
        let wake = actions
            .wake_at
            .map(|at| since(now, at))
            .unwrap_or(std::time::Duration::MAX);
        tokio::select! {
            Some(end) = ends.recv() => {
                worker.ended(end);
                while let Ok(end) = ends.try_recv() {
                    worker.ended(end);
                }
            }
            Some(fetched) = fetches.recv() => worker.fetched(fetched),
            Ok(()) = stop_rx.changed() => {}
            Ok(()) = objects.changed() => worker.unconfigurable.fill(false),
            _ = tokio::time::sleep(wake) => {}
        }
    }
}

impl Worker {
    /// Syncs and does what the rules ask until they ask nothing more now.
    fn act(&mut self, now: Timestamp) -> PodActions {
        // Each round starts or stops something; a container asked twice in one turn (a
        // start error with no back-off) waits for the next turn.
        for _ in 0..=self.specs.len() * 2 {
            let actions = self.sync(now);
            if actions.start_over {
                self.records
                    .iter_mut()
                    .for_each(ContainerRecord::start_over);
                continue;
            }
            let starts: Vec<usize> = (actions.start.iter().copied())
                .filter(|&i| !self.unconfigurable[i])
                .collect();
            if starts.is_empty() && actions.kill.is_empty() {
                return actions;
            }
            for &(i, grace) in &actions.kill {
                self.stop_container(i, grace, now);
            }
            for i in starts {
                self.start_container(i);
            }
        }
        self.sync(now)
    }

    fn sync(&mut self, now: Timestamp) -> PodActions {
        let seen = Observed {
            started_at: self.started_at,
            containers: &self.records,
            stop: self.stop,
            previous: &self.status,
        };
        let actions = sync_pod(&self.plan, &seen, now);
        self.status = actions.status.clone();
        actions
    }

    fn start_container(&mut self, i: usize) {
        if !std::mem::take(&mut self.image_ready[i]) && self.fetch_image(i) {
            return;
        }
        let record = &mut self.records[i];
        if let State::Exited(run) = std::mem::take(&mut record.state) {
            record.last = Some(run);
        }
        let spec = &self.specs[i];
        let objects = self.objects.borrow().clone();
        let env = match container_env(&self.pod, spec, &self.shared.node, &objects) {
            Ok(env) => env,
            Err(message) => {
                record.state = State::ConfigError { message };
                self.unconfigurable[i] = true;
                return;
            }
        };
        // A run that waits for its volumes' objects was never created: it counts no restart.
        let restarts = record.restarts + i32::from(record.created);
        let started_at = self.shared.clock.now();
        let run = RunRequest {
            pod: &self.pod,
            container: spec,
            env: &env,
            objects: &objects,
            node: &self.shared.node,
            restarts,
        };
        let started = match &self.runtime {
            Ok(runtime) => runtime.start(run),
            Err(message) => Err(StartFailure::Failed(message.clone())),
        };
        if !matches!(started, Err(StartFailure::Waiting(_))) {
            record.restarts = restarts;
            record.created = true;
        }
        match started {
            Ok(started) => {
                record.state = State::Running {
                    id: started.id,
                    started_at,
                };
                self.stops[i] = Some(started.stop);
                let ended = self.ended.clone();
                let clock = self.shared.clock.clone();
                let exit = started.exit;
                self.shared.handle.spawn(async move {
                    let exit = exit.await;
                    let _ = ended.send((i, exit, clock.now()));
                });
            }
            Err(StartFailure::Waiting(message)) => {
                record.state = State::ConfigError { message };
                self.unconfigurable[i] = true;
            }
            Err(StartFailure::Failed(message)) => {
                record.state = State::Exited(Run {
                    id: None,
                    started_at,
                    finished_at: self.shared.clock.now(),
                    exit: Exit {
                        code: 128,
                        signal: None,
                        reason: ExitReason::StartError,
                        message: Some(message),
                    },
                })
            }
        }
    }

    /// Fetches container `i`'s image if it is not ready (the container is `Pulling` till
    /// then); whether it was not.
    fn fetch_image(&mut self, i: usize) -> bool {
        let Ok(runtime) = &self.runtime else {
            return false;
        };
        let tell = self.fetch_news(i);
        let on_pull = Box::new(move || tell(Fetch::Pulling));
        let fetch = match runtime.clone().image(&self.specs[i], on_pull) {
            ImageNeed::None => return false,
            ImageNeed::Present => {
                self.image_said(i, ImageNews::Present);
                return false;
            }
            ImageNeed::Fetch(fetch) => fetch,
        };
        let record = &mut self.records[i];
        let failed = match std::mem::take(&mut record.state) {
            State::NoImage(failure) => Some(failure),
            State::Exited(run) => {
                record.last = Some(run);
                None
            }
            _ => None,
        };
        record.state = State::Pulling { failed };
        let tell = self.fetch_news(i);
        self.shared
            .handle
            .spawn(async move { tell(Fetch::Done(fetch.await)) });
        true
    }

    /// Tells the worker news of container `i`'s fetch, with the time it came.
    fn fetch_news(&self, i: usize) -> impl Fn(Fetch) + Send + 'static {
        let (fetched, clock) = (self.fetched.clone(), self.shared.clock.clone());
        move |news| {
            let _ = fetched.send((i, news, clock.now()));
        }
    }

    fn image_said(&mut self, i: usize, news: ImageNews) {
        let spec = &self.specs[i];
        let image = spec.image.as_deref().unwrap_or("");
        self.events.push(news.event(&spec.name, image));
    }

    fn fetched(&mut self, (i, fetch, at): Fetched) {
        let result = match fetch {
            Fetch::Pulling => return self.image_said(i, ImageNews::Pulling),
            Fetch::Done(result) => result,
        };
        let State::Pulling { failed } = std::mem::take(&mut self.records[i].state) else {
            return;
        };
        self.records[i].state = match result {
            Ok(news) => {
                self.image_said(i, news);
                self.image_ready[i] = true;
                State::NotStarted
            }
            Err((error, message)) => State::NoImage(ImageFailure {
                error,
                message,
                count: failed.map_or(0, |f| f.count) + 1,
                at,
            }),
        };
    }

    fn stop_container(&mut self, i: usize, grace: std::time::Duration, now: Timestamp) {
        let (State::Running { id, started_at } | State::Stopping { id, started_at, .. }) =
            self.records[i].state.clone()
        else {
            return;
        };
        if let Some(stop) = &self.stops[i] {
            stop(grace);
        }
        self.records[i].state = State::Stopping {
            id,
            started_at,
            kill_at: later(now, grace),
        };
    }

    fn ended(&mut self, (i, end, finished_at): Ended) {
        let (State::Running { id, started_at } | State::Stopping { id, started_at, .. }) =
            std::mem::take(&mut self.records[i].state)
        else {
            return;
        };
        self.stops[i] = None;
        let exit = end.exit;
        let reason = match exit.code {
            _ if end.oom_killed => ExitReason::OOMKilled,
            0 => ExitReason::Completed,
            _ => ExitReason::Error,
        };
        self.records[i].state = State::Exited(Run {
            id: Some(id),
            started_at,
            finished_at,
            exit: Exit {
                code: exit.code,
                signal: exit.signal,
                reason,
                message: None,
            },
        });
    }

    fn report(&mut self) {
        let _ = self.shared.updates.send(PodUpdate {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            status: self.status.clone(),
            events: std::mem::take(&mut self.events),
        });
    }

    /// Out of the table and reported under one lock: whoever sees the pod finished sees no
    /// process of it running, and whoever sees nothing running finds the report queued.
    fn finish(&mut self) {
        if let Ok(runtime) = &self.runtime {
            runtime.pod_ended(&self.pod);
        }
        let shared = self.shared.clone();
        let mut table = shared.pods.lock().expect("pod table");
        table.remove(&(self.namespace.clone(), self.name.clone()));
        self.report();
        drop(table);
    }
}
