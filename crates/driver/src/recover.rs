//! Picking up a state directory: the Namespaces, Jobs, CronJobs, pods, ConfigMaps and Secrets
//! the last engine left.

use std::collections::{HashMap, HashSet};

use joblet_api::k8s_openapi::api::batch::v1::Job;
use joblet_api::k8s_openapi::api::core::v1::{Namespace, Pod};
use joblet_api::validate_job;
use joblet_core::{BackoffRecord, JobState, PodView, Status, Time};

use crate::objects::{pod_record, ControllerState, KIND_CONTROLLER};
use crate::{Engine, EngineError, JobEntry, JobKey, PodEntry, KIND_JOB, KIND_NAMESPACE, KIND_POD};

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
        let mut plain = store.list(crate::KIND_CONFIG_MAP)?;
        plain.extend(store.list(crate::KIND_SECRET)?);
        plain.extend(store.list(crate::KIND_SERVICE)?);
        // A run takes only its manifest's CronJobs (`add_cron_job`); a server, all it kept.
        let cron_jobs = if self.config.keep_running {
            store.list(crate::KIND_CRON_JOB)?
        } else {
            Vec::new()
        };
        drop(store);
        self.plain.load(plain);
        self.load_cron_jobs(cron_jobs);
        if !self.plain.nothing_for_node() {
            self.publish_node_objects();
        }
        if let Some(ttl) = self.config.event_ttl {
            let mut expiring: Vec<(Time, String, String)> = events
                .into_iter()
                .filter_map(|r| {
                    let event: joblet_api::k8s_openapi::api::core::v1::Event =
                        serde_json::from_str(&r.body).ok()?;
                    // Its last write gave it the whole TTL.
                    let written = (event.last_timestamp.as_ref())
                        .or(event.metadata.creation_timestamp.as_ref())?;
                    let at = Time::from_wire(written);
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
                    spec_version: record.resource_version,
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
            let unfinished = !view.phase.is_terminal();
            let (namespace, name) = (record.namespace.as_str(), record.name.as_str());
            // Running on under the supervisor, or ended while nobody watched: its reports
            // are on their way.
            let adopted = unfinished && self.runtime.adopted(namespace, name);
            let bound = pod.spec.as_ref().is_some_and(|s| s.node_name.is_some());
            // A pod that waited for the node ran nowhere: it waits again.
            let lost = unfinished
                && !adopted
                && (started(&pod) || (bound && self.config.supervisor.is_none()));
            if lost {
                let status = pod.status.get_or_insert_with(Default::default);
                joblet_runtime::mark_lost(status, &now.to_wire());
                view = PodView::from_pod(&pod);
                let rv = self.next_resource_version();
                self.batch.put(pod_record(&mut pod, rv));
            } else if unfinished && !adopted {
                let key = (namespace.to_string(), name.to_string());
                if bound {
                    // Recorded and bound, and the engine stopped before handing it over:
                    // it starts now, once.
                    self.runtime.reserve(namespace, name);
                    self.to_start.push(pod.clone());
                    self.scheduler
                        .add_bound(key, pod.spec.as_ref().expect("bound"));
                } else {
                    // It was waiting for the node: it waits again.
                    self.scheduler
                        .enqueue(key, pod.spec.as_ref().expect("built with a spec"));
                }
            } else if adopted {
                let key = (namespace.to_string(), name.to_string());
                self.scheduler
                    .add_bound(key, pod.spec.as_ref().expect("built with a spec"));
            }
            let owner = pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find_map(|owner| owners.get(&owner.uid))
                .cloned();
            let Some(job_key) = owner else { continue };
            if !view.tracked && !unfinished {
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

/// Whether a supervisor ever reported the pod: it then has a start time.
fn started(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| s.start_time.is_some())
}
