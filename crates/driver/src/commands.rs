//! Writes through the API: what `joblet serve` asks the engine to do. The engine is the
//! only writer of the store, so every change (and its resourceVersion) goes through it;
//! a reply is sent once the change is committed.

use std::time::Duration;

use joblet_api::config::Valid;
use joblet_api::k8s_openapi::api::batch::v1::{CronJob, Job};
use joblet_api::k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, NamespaceStatus, Pod};
use joblet_api::ValidJob;
use joblet_core::{PodView, Time};
use joblet_runtime::Disruption;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::cronjobs::KIND_CRON_JOB;
use crate::objects::{namespace_record, pod_record, KIND_JOB, KIND_NAMESPACE, KIND_POD};
use crate::plain::Plain;
use crate::{job_object, new_uid, Engine, JobEntry, JobKey, LoosePod};

/// What happens to a deleted Job's pods (`DeleteOptions.propagationPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    /// The pods stay, without their owner.
    Orphan,
    /// The pods are deleted (Foreground is treated alike: the Job goes at once).
    Background,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("the object has been modified; please apply your changes to the latest version and try again")]
    Conflict,
    /// An update computed from an object read before another client changed its spec or
    /// metadata: read it again, at least at this resourceVersion, and redo the update.
    #[error("the object has been modified since it was read (now at {0})")]
    Stale(i64),
    #[error("namespace {0} not found")]
    NamespaceNotFound(String),
    #[error("this namespace may not be deleted")]
    Forbidden,
    #[error("state database: {0}")]
    Write(String),
    #[error("the engine has stopped")]
    Stopped,
}

type Reply<T> = oneshot::Sender<Result<T, CommandError>>;

/// What an update of a Job was computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateBase {
    /// The object at exactly this resourceVersion, as the client demands (a PUT, or a
    /// patch naming a resourceVersion): any later write conflicts, status ones too, as
    /// upstream's precondition does.
    Exactly(String),
    /// The object as the server read it at this resourceVersion, for an update without a
    /// precondition (most patches): only a later change of the spec or metadata makes it
    /// stale ([`CommandError::Stale`]); the controller's status writes do not, as upstream
    /// re-applies such an update to the fresh object rather than refuse it.
    ReadAt(i64),
}

impl UpdateBase {
    /// Whether an update computed from this base may be written over the object as it is
    /// now: at resourceVersion `version`, its spec and metadata last changed at
    /// `spec_version`.
    pub(crate) fn admits(&self, version: i64, spec_version: i64) -> Result<(), CommandError> {
        match self {
            UpdateBase::Exactly(wanted) if *wanted != version.to_string() => {
                Err(CommandError::Conflict)
            }
            UpdateBase::ReadAt(read) if spec_version > *read => {
                Err(CommandError::Stale(spec_version))
            }
            _ => Ok(()),
        }
    }
}

/// A validated object of a served kind, as the API hands it to the engine to store.
pub enum Stored {
    Job(Box<ValidJob>),
    CronJob(Box<Valid<CronJob>>),
    Plain(Box<Plain>),
}

/// Which object a delete is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectKey {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

pub(crate) enum Command {
    /// Creates the object (`base: None`), or updates it as validated against what `base`
    /// names; replies with the stored object.
    Put {
        object: Stored,
        base: Option<UpdateBase>,
        reply: Reply<Value>,
    },
    /// Deletes the object (a Job's pods as `propagation` says); replies with the object as
    /// it was.
    Delete {
        key: ObjectKey,
        propagation: Propagation,
        reply: Reply<Value>,
    },
    DeletePod {
        namespace: String,
        name: String,
        grace: Option<Duration>,
        evict: bool,
        reply: Reply<Pod>,
    },
    CreateNamespace(String, Reply<Namespace>),
    DeleteNamespace(String, Reply<Namespace>),
}

/// Asks a running engine for changes; cheap to clone, one per request handler.
#[derive(Clone)]
pub struct EngineHandle {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
}

impl EngineHandle {
    /// A handle to no engine: every command answers [`CommandError::Stopped`]. For driving
    /// the API's reading, parsing and checking alone (fuzzing), where nothing may run.
    pub fn disconnected() -> EngineHandle {
        let (commands, _) = mpsc::unbounded_channel();
        EngineHandle { commands }
    }

    /// Stores a new object (`base: None`) or an update of one; answers once committed.
    pub async fn put(
        &self,
        object: Stored,
        base: Option<UpdateBase>,
    ) -> Result<Value, CommandError> {
        self.call(|reply| Command::Put {
            object,
            base,
            reply,
        })
        .await
    }

    pub async fn delete(
        &self,
        key: ObjectKey,
        propagation: Propagation,
    ) -> Result<Value, CommandError> {
        self.call(|reply| Command::Delete {
            key,
            propagation,
            reply,
        })
        .await
    }

    /// Deletes a pod (its processes get `grace`, else the pod's grace period); `evict`
    /// marks the pod disrupted, as the eviction API does.
    pub async fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
        grace: Option<Duration>,
        evict: bool,
    ) -> Result<Pod, CommandError> {
        self.call(|reply| Command::DeletePod {
            namespace: namespace.to_string(),
            name: name.to_string(),
            grace,
            evict,
            reply,
        })
        .await
    }

    pub async fn create_namespace(&self, name: &str) -> Result<Namespace, CommandError> {
        self.call(|reply| Command::CreateNamespace(name.to_string(), reply))
            .await
    }

    pub async fn delete_namespace(&self, name: &str) -> Result<Namespace, CommandError> {
        self.call(|reply| Command::DeleteNamespace(name.to_string(), reply))
            .await
    }

    async fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(command(tx))
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)?
    }
}

impl Engine {
    pub(crate) fn carry_out(&mut self, command: Command, now: Time) {
        match command {
            Command::Put {
                object,
                base,
                reply,
            } => {
                let result = match object {
                    Stored::Job(job) => match base {
                        None => self.create_from_api(*job),
                        Some(base) => self.update_job(*job, &base),
                    }
                    .map(|job| to_value(&job)),
                    Stored::CronJob(cron) => self.put_cron_job(*cron, base.as_ref()),
                    Stored::Plain(object) => self.put_plain(*object, base.as_ref()),
                };
                self.reply_when_committed(reply, result);
            }
            Command::Delete {
                key,
                propagation,
                reply,
            } => {
                let result = self.delete_object(key, propagation, now);
                self.reply_when_committed(reply, result);
            }
            Command::DeletePod {
                namespace,
                name,
                grace,
                evict,
                reply,
            } => {
                let result = self.delete_pod(&namespace, &name, grace, evict, now);
                self.reply_when_committed(reply, result);
            }
            Command::CreateNamespace(name, reply) => {
                let result = if self.namespaces.contains_key(&name) {
                    Err(CommandError::AlreadyExists)
                } else {
                    Ok(self.put_namespace(&name, now))
                };
                self.reply_when_committed(reply, result);
            }
            Command::DeleteNamespace(name, reply) => {
                let result = self.delete_namespace(&name);
                self.reply_when_committed(reply, result);
            }
        }
    }

    /// Sends the reply once everything written so far is committed: whoever reads after
    /// the reply sees the change.
    fn reply_when_committed<T: Send + 'static>(
        &mut self,
        reply: Reply<T>,
        result: Result<T, CommandError>,
    ) {
        // A waiting pod the command deleted is failed in the same commit.
        self.fail_unbound_deleted();
        self.flush();
        self.writer.submit(
            Default::default(),
            Vec::new(),
            vec![Box::new(move |committed| {
                let _ = reply.send(committed.map_err(CommandError::Write).and(result));
            })],
        );
    }

    fn put_plain(
        &mut self,
        object: Plain,
        base: Option<&UpdateBase>,
    ) -> Result<Value, CommandError> {
        let namespace = match &object {
            Plain::ConfigMap(valid) => valid.object().metadata.namespace.clone(),
            Plain::Secret(valid) => valid.object().metadata.namespace.clone(),
            Plain::Service(valid) => valid.object().metadata.namespace.clone(),
        };
        let namespace = namespace.unwrap_or_default();
        if !self.namespaces.contains_key(&namespace) {
            return Err(CommandError::NamespaceNotFound(namespace));
        }
        let rv = self.next_resource_version + 1;
        let (record, stored) = self.plain.put(object, base, rv)?;
        self.next_resource_version = rv;
        self.batch.put(record);
        self.publish_node_objects();
        Ok(stored)
    }

    fn delete_object(
        &mut self,
        key: ObjectKey,
        propagation: Propagation,
        now: Time,
    ) -> Result<Value, CommandError> {
        let ObjectKey {
            kind,
            namespace,
            name,
        } = key;
        let key = (namespace, name);
        if kind == KIND_JOB {
            let entry = self.jobs.remove(&key).ok_or(CommandError::NotFound)?;
            let mut object = job_object(&entry);
            object.metadata.deletion_timestamp = Some(now.to_wire());
            self.remove_job(&key, entry, propagation);
            return Ok(to_value(&object));
        }
        if kind == KIND_CRON_JOB {
            return self.delete_cron_job(&key, propagation, now);
        }
        let object = self
            .plain
            .remove(kind, &key)
            .ok_or(CommandError::NotFound)?;
        let rv = self.next_resource_version();
        self.batch.delete(kind, &key.0, &key.1, rv);
        self.publish_node_objects();
        Ok(object)
    }

    /// Once what is queued is committed, the node's pods see the ConfigMaps, Secrets and
    /// Services as stored.
    pub(crate) fn publish_node_objects(&mut self) {
        let (config_maps, secrets, services) = self.plain.for_node();
        let runtime = self.runtime.clone();
        self.flush();
        self.writer.submit(
            Default::default(),
            Vec::new(),
            vec![Box::new(move |committed| {
                if committed.is_ok() {
                    runtime.set_objects(&config_maps, &secrets, &services);
                }
            })],
        );
    }

    fn create_from_api(&mut self, job: ValidJob) -> Result<Job, CommandError> {
        if !self.namespaces.contains_key(job.namespace()) {
            return Err(CommandError::NamespaceNotFound(job.namespace().to_string()));
        }
        let key: JobKey = (job.namespace().to_string(), job.name().to_string());
        if self.jobs.contains_key(&key) {
            return Err(CommandError::AlreadyExists);
        }
        self.insert_new_job(key.clone(), job);
        self.flush();
        self.note_spec_change(&key);
        Ok(job_object(&self.jobs[&key]))
    }

    fn update_job(&mut self, job: ValidJob, base: &UpdateBase) -> Result<Job, CommandError> {
        let key: JobKey = (job.namespace().to_string(), job.name().to_string());
        let entry = self.jobs.get_mut(&key).ok_or(CommandError::NotFound)?;
        base.admits(entry.resource_version, entry.spec_version)?;
        // Only a change of the spec is the controller's business (labels and
        // annotations are not): a storm of label patches costs no syncs.
        entry.dirty |= entry.job.object().spec != job.object().spec;
        entry.job = job;
        entry.unwritten = true;
        self.flush();
        self.note_spec_change(&key);
        Ok(job_object(&self.jobs[&key]))
    }

    fn delete_pod(
        &mut self,
        namespace: &str,
        name: &str,
        grace: Option<Duration>,
        evict: bool,
        now: Time,
    ) -> Result<Pod, CommandError> {
        let pod_key = (namespace.to_string(), name.to_string());
        let disruption = evict.then_some(Disruption::EVICTION);
        if let Some(job_key) = self.pod_owner.get(&pod_key).cloned() {
            let mut entry = self.jobs.remove(&job_key).expect("a pod's owner is known");
            let object = entry.pods.get_mut(name).map(|pod| {
                mark_deleted(&mut pod.object, grace, now);
                pod.view = PodView::from_pod(&pod.object);
                pod.object.clone()
            });
            let generation = object.as_ref().and_then(|p| p.metadata.generation);
            self.stop_pod(namespace, name, grace, disruption, generation);
            if let Some(pod) = &object {
                self.record_killing(&entry.job, pod, now);
            }
            entry.dirty = true;
            self.persist_pod(&mut entry, name);
            self.jobs.insert(job_key, entry);
            return object.ok_or(CommandError::NotFound);
        }
        if let Some(loose) = self.loose_pods.get_mut(&pod_key) {
            mark_deleted(&mut loose.object, grace, now);
            loose.delete_when_done = true;
            let object = loose.object.clone();
            let generation = object.metadata.generation;
            self.stop_pod(namespace, name, grace, disruption, generation);
            return Ok(object);
        }
        let stored = self
            .stored_pod(namespace, name)
            .ok_or(CommandError::NotFound)?;
        let rv = self.next_resource_version();
        self.batch.delete(KIND_POD, namespace, name, rv);
        Ok(stored)
    }

    fn stored_pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        let record = self
            .store
            .lock()
            .expect("store")
            .get(KIND_POD, namespace, name)
            .ok()
            .flatten()?;
        serde_json::from_str(&record.body).ok()
    }

    pub(crate) fn put_namespace(&mut self, name: &str, now: Time) -> Namespace {
        let namespace = Namespace {
            metadata: joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.to_string()),
                uid: Some(new_uid()),
                creation_timestamp: Some(now.to_wire()),
                labels: Some(
                    [("kubernetes.io/metadata.name".to_string(), name.to_string())].into(),
                ),
                ..Default::default()
            },
            spec: Some(NamespaceSpec {
                finalizers: Some(vec!["kubernetes".to_string()]),
            }),
            status: Some(NamespaceStatus {
                phase: Some("Active".to_string()),
                ..Default::default()
            }),
        };
        let rv = self.next_resource_version();
        let record = namespace_record(&namespace, rv);
        let mut stored = namespace;
        stored.metadata.resource_version = Some(rv.to_string());
        self.batch.put(record);
        self.namespaces.insert(name.to_string(), stored.clone());
        stored
    }

    /// A namespace goes with everything in it.
    fn delete_namespace(&mut self, name: &str) -> Result<Namespace, CommandError> {
        if name == "default" {
            return Err(CommandError::Forbidden);
        }
        let namespace = self.namespaces.remove(name).ok_or(CommandError::NotFound)?;
        let keys: Vec<JobKey> = self
            .jobs
            .keys()
            .filter(|(ns, _)| ns == name)
            .cloned()
            .collect();
        for key in keys {
            let entry = self.jobs.remove(&key).expect("listed above");
            self.remove_job(&key, entry, Propagation::Background);
        }
        self.remove_cron_jobs_of(name);
        let loose: Vec<(String, String)> = self
            .loose_pods
            .keys()
            .filter(|(ns, _)| ns == name)
            .cloned()
            .collect();
        for key in loose {
            self.stop_pod(&key.0, &key.1, None, None, None);
            if let Some(pod) = self.loose_pods.get_mut(&key) {
                pod.delete_when_done = true;
            }
        }
        let stored: Vec<String> = self
            .store
            .lock()
            .expect("store")
            .list(KIND_POD)
            .into_iter()
            .flatten()
            .filter(|r| {
                r.namespace == name
                    && !self
                        .loose_pods
                        .contains_key(&(r.namespace.clone(), r.name.clone()))
            })
            .map(|r| r.name)
            .collect();
        for pod in stored {
            let rv = self.next_resource_version();
            self.batch.delete(KIND_POD, name, &pod, rv);
        }
        let removed = self.plain.remove_namespace(name);
        for (kind, object) in &removed {
            let rv = self.next_resource_version();
            self.batch.delete(kind, name, object, rv);
        }
        if !removed.is_empty() {
            self.publish_node_objects();
        }
        let rv = self.next_resource_version();
        self.batch.delete(KIND_NAMESPACE, "", name, rv);
        Ok(namespace)
    }

    /// Takes a Job out of the store; its pods are stopped and deleted, or orphaned.
    pub(crate) fn remove_job(
        &mut self,
        key: &JobKey,
        mut entry: JobEntry,
        propagation: Propagation,
    ) {
        let namespace = key.0.clone();
        let cascade = propagation == Propagation::Background;
        if !self.config.keep_running {
            // `run` still reports the Job.
            self.removed.push(job_object(&entry));
        }
        for (name, pod) in std::mem::take(&mut entry.pods) {
            let pod_key = (namespace.clone(), name.clone());
            self.pod_owner.remove(&pod_key);
            let mut object = pod.object;
            release(&mut object, cascade);
            let rv = self.next_resource_version();
            if pod.view.phase.is_terminal() {
                if cascade {
                    self.batch.delete(KIND_POD, &namespace, &name, rv);
                } else {
                    self.batch.put(pod_record(&mut object, rv));
                }
                continue;
            }
            if cascade {
                self.stop_pod(&namespace, &name, None, None, None);
            }
            self.batch.put(pod_record(&mut object, rv));
            self.loose_pods.insert(
                pod_key,
                LoosePod {
                    object,
                    delete_when_done: cascade,
                },
            );
        }
        // Finished, counted pods live only in the store.
        let stored = self.store.lock().expect("store").list(KIND_POD);
        for record in stored.into_iter().flatten() {
            let Ok(mut pod) = serde_json::from_str::<Pod>(&record.body) else {
                continue;
            };
            let owned = pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|owner| owner.uid == entry.job.uid());
            let pod_key = (record.namespace.clone(), record.name.clone());
            if !owned || self.loose_pods.contains_key(&pod_key) {
                continue;
            }
            let rv = self.next_resource_version();
            if cascade {
                self.batch
                    .delete(KIND_POD, &record.namespace, &record.name, rv);
            } else {
                release(&mut pod, false);
                self.batch.put(pod_record(&mut pod, rv));
            }
        }
        let rv = self.next_resource_version();
        self.batch
            .delete(KIND_JOB, &namespace, entry.job.name(), rv);
        let rv = self.next_resource_version();
        self.batch.delete(
            crate::objects::KIND_CONTROLLER,
            &namespace,
            entry.job.name(),
            rv,
        );
    }
}

/// A pod leaves its Job: no tracking finalizer; orphaned pods also lose their owner.
fn release(pod: &mut Pod, cascade: bool) {
    if let Some(finalizers) = pod.metadata.finalizers.as_mut() {
        finalizers.retain(|f| f != joblet_api::labels::TRACKING_FINALIZER);
    }
    if !cascade {
        pod.metadata.owner_references = None;
    }
}

fn to_value<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).expect("API objects serialize")
}

fn mark_deleted(pod: &mut Pod, grace: Option<Duration>, now: Time) {
    crate::mark_deleting(pod, now);
    let grace = grace.map(|g| g.as_secs() as i64).or_else(|| {
        pod.spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
    });
    pod.metadata.deletion_grace_period_seconds = grace.or(Some(30));
}
