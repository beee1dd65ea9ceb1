//! Picking up a state directory: the Namespaces, Jobs and pods the last engine left.

use std::collections::{HashMap, HashSet};

use joblet_api::k8s_openapi::api::batch::v1::Job;
use joblet_api::k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, Namespace, Pod, PodCondition,
};
use joblet_api::validate_job;
use joblet_core::{BackoffRecord, JobState, PodView, Status, Time};
use joblet_runtime::Disruption;

use crate::objects::{pod_record, ControllerState, KIND_CONTROLLER};
use crate::{Engine, EngineError, JobEntry, JobKey, PodEntry, KIND_JOB, KIND_NAMESPACE, KIND_POD};

/// What a node that lost its pods records (reason as the kubelet's, see README).
const PROCESSES_LOST: Disruption = Disruption {
    reason: "TerminationByKubelet",
    message: "joblet stopped while the pod was running; its processes were lost",
};

impl Engine {
    /// Loads every stored Namespace and Job with its pods, so that the controller goes on
    /// where the last engine stopped: counted pods stay counted. Pods that were still
    /// running when it stopped have lost their processes: they are recorded as failed and
    /// disrupted, as a node failure is. Creates the `default` Namespace on first use.
    pub fn recover(&mut self) -> Result<(), EngineError> {
        let now = self.clock.now();
        let store = self.store.lock().expect("store");
        let namespaces = store.list(KIND_NAMESPACE)?;
        let jobs = store.list(KIND_JOB)?;
        let controllers = store.list(KIND_CONTROLLER)?;
        let pods = store.list(KIND_POD)?;
        let events = store.list(crate::KIND_EVENT)?;
        drop(store);
        if let Some(ttl) = self.config.event_ttl {
            let mut expiring: Vec<(Time, String, String)> = events
                .into_iter()
                .filter_map(|r| {
                    let event: joblet_api::k8s_openapi::api::core::v1::Event =
                        serde_json::from_str(&r.body).ok()?;
                    let at = Time::from_wire(event.metadata.creation_timestamp.as_ref()?);
                    Some((at.plus_millis(ttl.as_millis() as i64), r.namespace, r.name))
                })
                .collect();
            expiring.sort();
            self.expiring_events = expiring.into();
        }
        for record in namespaces {
            if let Ok(namespace) = serde_json::from_str::<Namespace>(&record.body) {
                self.namespaces.insert(record.name, namespace);
            }
        }
        if !self.namespaces.contains_key("default") {
            self.put_namespace("default", now);
        }
        let controllers: HashMap<JobKey, ControllerState> = controllers
            .into_iter()
            .filter_map(|r| Some(((r.namespace, r.name), serde_json::from_str(&r.body).ok()?)))
            .collect();
        let mut owners: HashMap<String, JobKey> = HashMap::new();
        for record in jobs {
            let key = (record.namespace.clone(), record.name.clone());
            let job = serde_json::from_str::<Job>(&record.body)
                .map_err(|e| e.to_string())
                .and_then(|job| validate_job(&job).map_err(|e| e.to_string()));
            let job = match job {
                Ok(job) => job,
                Err(error) => {
                    eprintln!("joblet: skipping stored job {}/{}: {error}", key.0, key.1);
                    continue;
                }
            };
            let mut state = JobState::default();
            if let Some(status) = &job.object().status {
                state.status = Status::from_wire(status, job.spec.completions.unwrap_or(0));
            }
            if let Some(controller) = controllers.get(&key).filter(|c| c.uid == job.uid()) {
                state.backoff = BackoffRecord {
                    failures_after_last_success: controller.failures_after_last_success,
                    last_failure: controller.last_failure_ms.map(Time),
                };
                state.pods_created = controller.pods_created;
            }
            owners.insert(job.uid().to_string(), key.clone());
            self.jobs.insert(
                key,
                JobEntry {
                    job,
                    state,
                    pods: HashMap::new(),
                    dirty: true,
                    requeue_at: None,
                    resource_version: record.resource_version,
                    unwritten: false,
                    unwritten_pods: HashSet::new(),
                },
            );
        }
        for record in pods {
            let Ok(mut pod) = serde_json::from_str::<Pod>(&record.body) else {
                continue;
            };
            let mut view = PodView::from_pod(&pod);
            let lost = !view.phase.is_terminal();
            if lost {
                mark_lost(&mut pod, now);
                view = PodView::from_pod(&pod);
                let rv = self.next_resource_version();
                self.batch.put(pod_record(&pod, rv));
            }
            let owner = pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find_map(|owner| owners.get(&owner.uid))
                .cloned();
            let Some(job_key) = owner else { continue };
            if !view.tracked && !lost {
                // Finished and counted: only the store keeps it.
                continue;
            }
            let pod_key = (record.namespace.clone(), record.name.clone());
            self.pod_owner.insert(pod_key, job_key.clone());
            if let Some(entry) = self.jobs.get_mut(&job_key) {
                entry
                    .pods
                    .insert(record.name, PodEntry { object: pod, view });
            }
        }
        self.flush();
        self.writer.barrier().map_err(EngineError::Write)
    }
}

/// The pod's processes were the engine's that stopped: any still running are ended (a
/// killed engine leaves them running unwatched), and the pod is recorded as failed.
fn mark_lost(pod: &mut Pod, now: Time) {
    let status = pod.status.get_or_insert_with(Default::default);
    let containers = status.container_statuses.iter().flatten();
    for container in containers.chain(status.init_container_statuses.iter().flatten()) {
        let running = container.state.as_ref().and_then(|s| s.running.as_ref());
        if let (Some(id), Some(started)) = (
            container.container_id.as_deref(),
            running.and_then(|r| r.started_at.as_ref()),
        ) {
            joblet_runtime::kill_leftover(id, started.0);
        }
    }
    status.phase = Some("Failed".to_string());
    for container in status.container_statuses.iter_mut().flatten() {
        if container
            .state
            .as_ref()
            .is_some_and(|s| s.terminated.is_some())
        {
            continue;
        }
        // What the kubelet reports for a container it cannot find any more.
        container.ready = false;
        container.state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 137,
                reason: Some("ContainerStatusUnknown".to_string()),
                message: Some(
                    "The container could not be located when the pod was terminated".to_string(),
                ),
                finished_at: Some(now.to_wire()),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    for condition in conditions.iter_mut() {
        if condition.type_ == "Ready" || condition.type_ == "ContainersReady" {
            condition.status = "False".to_string();
        }
    }
    conditions.push(PodCondition {
        type_: "DisruptionTarget".to_string(),
        status: "True".to_string(),
        reason: Some(PROCESSES_LOST.reason.to_string()),
        message: Some(PROCESSES_LOST.message.to_string()),
        last_transition_time: Some(now.to_wire()),
        ..Default::default()
    });
}
