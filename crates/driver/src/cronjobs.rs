//! CronJobs in the engine: each is synced by the pure `core::cronjob::sync` when its time
//! comes, when it is added, and when one of its Jobs ends (as upstream's controller re-syncs
//! a CronJob on its Jobs' changes); what the sync decides is carried out here: the Job
//! created as any other, finished Jobs beyond the history deleted with their pods, events
//! recorded about the CronJob, its status stored.

use joblet_api::k8s_openapi::api::batch::v1::{CronJob, Job};
use joblet_api::k8s_openapi::api::core::v1::ObjectReference;
use joblet_core::{Event, Time};

use crate::commands::Propagation;
use crate::objects::{event_record, record};
use crate::{admit, job_object, new_uid, Engine, JobKey, Notice};

pub const KIND_CRON_JOB: &str = "CronJob";

pub(crate) struct CronEntry {
    cron: CronJob,
    /// When its schedule next asks for a sync.
    next_sync: Option<Time>,
    /// How many of its Jobs had ended at the last sync: another ending syncs it again.
    finished_seen: usize,
    dirty: bool,
}

impl Engine {
    /// Adds a CronJob, defaulted and validated, to run on its schedule until the engine
    /// stops (`joblet run -f cronjob.yaml`). One the state directory holds under that name
    /// goes on as the same object (its uid, creation and status: its last scheduled time is
    /// not run again, and the Jobs it made stay its own), with the manifest's spec.
    pub fn add_cron_job(&mut self, mut cron: CronJob) {
        let namespace = cron
            .metadata
            .namespace
            .get_or_insert_with(|| "default".to_string())
            .clone();
        let name = cron.metadata.name.clone().unwrap_or_default();
        let stored = (self.store.lock().expect("store"))
            .get(KIND_CRON_JOB, &namespace, &name)
            .ok()
            .flatten()
            .and_then(|r| serde_json::from_str::<CronJob>(&r.body).ok());
        if let Some(stored) = stored {
            cron.metadata.uid = stored.metadata.uid;
            cron.metadata.creation_timestamp = stored.metadata.creation_timestamp;
            cron.status = stored.status;
        }
        cron.metadata.uid.get_or_insert_with(new_uid);
        cron.metadata
            .creation_timestamp
            .get_or_insert_with(|| self.clock.now().to_wire());
        let rv = self.next_resource_version();
        cron.metadata.resource_version = Some(rv.to_string());
        self.batch
            .put(record(KIND_CRON_JOB, &namespace, &name, rv, &cron));
        self.cron_jobs.insert(
            (namespace, name),
            CronEntry {
                cron,
                next_sync: None,
                finished_seen: 0,
                dirty: true,
            },
        );
    }

    pub(crate) fn has_cron_jobs(&self) -> bool {
        !self.cron_jobs.is_empty()
    }

    pub(crate) fn next_cron_sync(&self) -> Option<Time> {
        self.cron_jobs.values().filter_map(|e| e.next_sync).min()
    }

    /// Syncs every CronJob that is due; whether one created or deleted a Job.
    pub(crate) fn sync_cron_jobs(&mut self, now: Time) -> bool {
        let keys: Vec<JobKey> = self.cron_jobs.keys().cloned().collect();
        let mut changed = false;
        for key in keys {
            let Some(mut entry) = self.cron_jobs.remove(&key) else {
                continue;
            };
            let uid = entry.cron.metadata.uid.clone().unwrap_or_default();
            let jobs: Vec<Job> = (self.jobs.values())
                .filter(|e| controlled_by(e.job.object(), &uid))
                .map(job_object)
                .collect();
            let finished = jobs.iter().filter(|j| ended(j)).count();
            let due = entry.dirty
                || entry.next_sync.is_some_and(|t| t <= now)
                || finished != entry.finished_seen;
            if due {
                changed |= self.sync_cron_job(&mut entry, &jobs, now);
                entry.finished_seen = finished;
                entry.dirty = false;
            }
            self.cron_jobs.insert(key, entry);
        }
        changed
    }

    fn sync_cron_job(&mut self, entry: &mut CronEntry, jobs: &[Job], now: Time) -> bool {
        let sync = joblet_core::cronjob::sync(&entry.cron, jobs, now, &self.local_zone, &new_uid());
        let namespace = entry.cron.metadata.namespace.clone().unwrap_or_default();
        let mut changed = false;
        for name in &sync.delete {
            let key = (namespace.clone(), name.clone());
            if let Some(job) = self.jobs.remove(&key) {
                self.remove_job(&key, job, Propagation::Background);
                changed = true;
            }
        }
        let mut status = sync.status;
        let taken = |job: &Job| {
            let key = (
                namespace.clone(),
                job.metadata.name.clone().unwrap_or_default(),
            );
            self.jobs.contains_key(&key)
        };
        // A Job of that name that is not this CronJob's: left alone, as upstream leaves a
        // Job another actor made (its AlreadyExists), and not counted as made.
        if let Some(job) = sync.create.as_ref().filter(|job| taken(job)) {
            let name = job.metadata.name.clone();
            if let Some(active) = status.active.as_mut() {
                active.retain(|r| r.name != name);
            }
            status.active = status.active.filter(|a| !a.is_empty());
            status.last_schedule_time = entry
                .cron
                .status
                .as_ref()
                .and_then(|s| s.last_schedule_time.clone());
        } else if let Some(job) = sync.create {
            match admit(job.clone()) {
                Ok(valid) => {
                    let key = (valid.namespace().to_string(), valid.name().to_string());
                    // The active list names the Job with the uid it was stored with.
                    for reference in status.active.iter_mut().flatten() {
                        if reference.name.as_deref() == Some(valid.name()) {
                            reference.uid = Some(valid.uid().to_string());
                        }
                    }
                    self.insert_new_job(key, valid);
                    changed = true;
                }
                Err(invalid) => {
                    let event = Event {
                        type_: joblet_core::EventType::Warning,
                        reason: "FailedCreate".to_string(),
                        message: format!("Error creating job: {invalid}"),
                    };
                    self.record_cron_event(&entry.cron, &event, now);
                }
            }
        }
        for event in &sync.events {
            self.record_cron_event(&entry.cron, event, now);
        }
        if sync.status_changed || changed {
            entry.cron.status = Some(status);
            let rv = self.next_resource_version();
            entry.cron.metadata.resource_version = Some(rv.to_string());
            let name = entry.cron.metadata.name.clone().unwrap_or_default();
            self.batch
                .put(record(KIND_CRON_JOB, &namespace, &name, rv, &entry.cron));
        }
        entry.next_sync = sync.requeue_at;
        changed
    }

    fn record_cron_event(&mut self, cron: &CronJob, event: &Event, now: Time) {
        let namespace = cron.metadata.namespace.clone().unwrap_or_default();
        let name = cron.metadata.name.clone().unwrap_or_default();
        let involved = ObjectReference {
            api_version: Some("batch/v1".to_string()),
            kind: Some(KIND_CRON_JOB.to_string()),
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: cron.metadata.uid.clone(),
            resource_version: cron.metadata.resource_version.clone(),
            ..ObjectReference::default()
        };
        let rv = self.next_resource_version();
        self.batch
            .put(event_record(involved, "cronjob-controller", event, now, rv));
        (self.observer)(Notice::Event {
            namespace,
            job: name.clone(),
            object: format!("cronjob/{name}"),
            event: event.clone(),
            at: now,
        });
    }
}

/// Whether the Job's controller is the CronJob of `uid` (a Job made by `kubectl create job
/// --from=cronjob/...` has an owner reference without `controller: true`, and is not).
fn controlled_by(job: &Job, uid: &str) -> bool {
    (job.metadata.owner_references.iter().flatten())
        .any(|o| o.controller == Some(true) && o.kind == KIND_CRON_JOB && o.uid == uid)
}

fn ended(job: &Job) -> bool {
    matches!(joblet_api::printers::job_status(job), "Complete" | "Failed")
}
