//! CronJobs in the engine: each is synced by the pure `core::cronjob::sync` when its time
//! comes, when it is added or updated, after its own status write, and when one of its Jobs
//! ends or goes (as upstream's controller re-syncs a CronJob on its own and its Jobs'
//! changes); what the sync decides is carried out here: the Job created as any other,
//! finished Jobs beyond the history deleted with their pods, events recorded about the
//! CronJob, its status stored.

use joblet_api::config::Valid;
use joblet_api::k8s_openapi::api::batch::v1::{CronJob, Job};
use joblet_api::k8s_openapi::api::core::v1::ObjectReference;
use joblet_api::k8s_openapi::jiff::tz::TimeZone;
use joblet_core::{Event, Time};
use joblet_store::Record;
use serde_json::Value;

use crate::commands::{CommandError, Propagation, UpdateBase};
use crate::objects::record;
use crate::{admit, job_object, new_uid, Engine, JobKey, Notice};

pub const KIND_CRON_JOB: &str = "CronJob";

pub(crate) struct CronEntry {
    cron: CronJob,
    /// The resourceVersion at which its spec and metadata last changed (its status writes
    /// move only the object's): an update computed from any later version is not stale.
    spec_version: i64,
    /// When its schedule next asks for a sync.
    next_sync: Option<Time>,
    /// How many Jobs it had, and how many of them had ended, at the last sync: a Job
    /// ending or going syncs it again.
    jobs_seen: (usize, usize),
    dirty: bool,
}

impl CronEntry {
    fn new(cron: CronJob) -> CronEntry {
        let mut entry = CronEntry {
            spec_version: 0,
            cron,
            next_sync: None,
            jobs_seen: (0, 0),
            dirty: true,
        };
        entry.spec_version = entry.resource_version();
        entry
    }

    fn resource_version(&self) -> i64 {
        let version = self.cron.metadata.resource_version.as_deref();
        version.and_then(|v| v.parse().ok()).unwrap_or(0)
    }
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
        self.store_cron_job(cron);
    }

    /// Writes the CronJob at a new resourceVersion and keeps it to be synced; the stored
    /// object.
    fn store_cron_job(&mut self, mut cron: CronJob) -> Value {
        let namespace = cron.metadata.namespace.clone().unwrap_or_default();
        let name = cron.metadata.name.clone().unwrap_or_default();
        let rv = self.next_resource_version();
        cron.metadata.resource_version = Some(rv.to_string());
        self.batch
            .put(record(KIND_CRON_JOB, &namespace, &name, rv, &cron));
        let stored = serde_json::to_value(&cron).expect("API objects serialize");
        self.cron_jobs
            .insert((namespace, name), CronEntry::new(cron));
        stored
    }

    /// Creates (`base: None`) or updates a CronJob from the API. The status stays the
    /// controller's; a changed spec is synced at once.
    pub(crate) fn put_cron_job(
        &mut self,
        valid: Valid<CronJob>,
        base: Option<&UpdateBase>,
    ) -> Result<Value, CommandError> {
        let mut cron = valid.into_object();
        let namespace = cron.metadata.namespace.clone().unwrap_or_default();
        if !self.namespaces.contains_key(&namespace) {
            return Err(CommandError::NamespaceNotFound(namespace));
        }
        let key = (namespace, cron.metadata.name.clone().unwrap_or_default());
        match (base, self.cron_jobs.get(&key)) {
            (None, Some(_)) => return Err(CommandError::AlreadyExists),
            (Some(_), None) => return Err(CommandError::NotFound),
            (Some(base), Some(entry)) => {
                base.admits(entry.resource_version(), entry.spec_version)?;
                cron.status.clone_from(&entry.cron.status);
            }
            (None, None) => {}
        }
        Ok(self.store_cron_job(cron))
    }

    /// Deletes a CronJob; its Jobs (those it controls and those made from it by hand) are
    /// deleted with their pods (`Background`), or kept without it (`Orphan`), as the garbage
    /// collector treats an owner's dependents.
    pub(crate) fn delete_cron_job(
        &mut self,
        key: &JobKey,
        propagation: Propagation,
        now: Time,
    ) -> Result<Value, CommandError> {
        let entry = self.cron_jobs.remove(key).ok_or(CommandError::NotFound)?;
        let uid = entry.cron.metadata.uid.clone().unwrap_or_default();
        let owned: Vec<JobKey> = (self.jobs.iter())
            .filter(|(_, e)| owned_by(e.job.object(), &uid))
            .map(|(key, _)| key.clone())
            .collect();
        for job_key in &owned {
            let mut job = self.jobs.remove(job_key).expect("listed above");
            match propagation {
                Propagation::Background => self.remove_job(job_key, job, propagation),
                Propagation::Orphan => {
                    job.job.release_owner(&uid);
                    job.unwritten = true;
                    self.jobs.insert(job_key.clone(), job);
                }
            }
        }
        if propagation == Propagation::Orphan {
            // The orphans' metadata changed: written now, their new version theirs.
            self.flush();
            for job_key in &owned {
                self.note_spec_change(job_key);
            }
        }
        let rv = self.next_resource_version();
        self.batch.delete(KIND_CRON_JOB, &key.0, &key.1, rv);
        let mut object = entry.cron;
        object.metadata.deletion_timestamp = Some(now.to_wire());
        Ok(serde_json::to_value(&object).expect("API objects serialize"))
    }

    /// Takes out the CronJobs of a namespace being deleted (their Jobs go with it).
    pub(crate) fn remove_cron_jobs_of(&mut self, namespace: &str) {
        let keys: Vec<JobKey> = (self.cron_jobs.keys())
            .filter(|(ns, _)| ns == namespace)
            .cloned()
            .collect();
        for key in keys {
            self.cron_jobs.remove(&key);
            let rv = self.next_resource_version();
            self.batch.delete(KIND_CRON_JOB, &key.0, &key.1, rv);
        }
    }

    /// Loads the stored CronJobs (`serve`): each is synced at once, so times missed while
    /// nothing ran are caught up as upstream's controller does after a restart.
    pub(crate) fn load_cron_jobs(&mut self, records: Vec<Record>) {
        for record in records {
            let cron = serde_json::from_str::<CronJob>(&record.body)
                .map_err(|e| e.to_string())
                .and_then(|cron| {
                    joblet_api::cronjobs::admit(cron)
                        .map(Valid::into_object)
                        .map_err(|e| e.to_string())
                });
            match cron {
                Ok(cron) => {
                    let key = (record.namespace, record.name);
                    self.cron_jobs.insert(key, CronEntry::new(cron));
                }
                Err(error) => eprintln!(
                    "joblet: skipping stored cronjob {}/{}: {error}",
                    record.namespace, record.name
                ),
            }
        }
    }

    pub(crate) fn has_cron_jobs(&self) -> bool {
        !self.cron_jobs.is_empty()
    }

    pub(crate) fn next_cron_sync(&self) -> Option<Time> {
        (self.cron_jobs.values())
            .filter_map(|e| if e.dirty { Some(Time(0)) } else { e.next_sync })
            .min()
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
            let controlled =
                || (self.jobs.values()).filter(|e| controlled_by(e.job.object(), &uid));
            // Counted from the engine's own records each turn; the Jobs are built as API
            // objects only for a sync.
            let seen = (
                controlled().count(),
                controlled()
                    .filter(|e| e.state.status.is_finished())
                    .count(),
            );
            let due =
                entry.dirty || entry.next_sync.is_some_and(|t| t <= now) || seen != entry.jobs_seen;
            if due {
                let jobs: Vec<Job> = controlled().map(job_object).collect();
                entry.dirty = false;
                changed |= self.sync_cron_job(&mut entry, &jobs, now);
                entry.jobs_seen = seen;
            }
            self.cron_jobs.insert(key, entry);
        }
        changed
    }

    fn sync_cron_job(&mut self, entry: &mut CronEntry, jobs: &[Job], now: Time) -> bool {
        let local_zone = self.local_zone.get_or_init(TimeZone::system);
        let sync = joblet_core::cronjob::sync(&entry.cron, jobs, now, local_zone, &new_uid());
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
            // Its template was checked when the CronJob was: by the binary's rules.
            match admit(job.clone(), Default::default()) {
                Ok(valid) => {
                    let key = (valid.namespace().to_string(), valid.name().to_string());
                    // The active list names the Job with the uid it was stored with.
                    for reference in status.active.iter_mut().flatten() {
                        if reference.name.as_deref() == Some(valid.name()) {
                            reference.uid = Some(valid.uid().to_string());
                        }
                    }
                    self.insert_new_job(key.clone(), valid);
                    (self.observer)(Notice::JobAdded(Box::new(job_object(&self.jobs[&key]))));
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
            // Synced again, as upstream's controller re-queues a CronJob on every update
            // of it: a Job it saw end leaves the active list in one pass, and its success
            // is recorded in the next.
            entry.dirty = true;
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
        let namespace = cron.metadata.namespace.as_deref().unwrap_or_default();
        let name = cron.metadata.name.as_deref().unwrap_or_default();
        let involved = ObjectReference {
            api_version: Some("batch/v1".to_string()),
            kind: Some(KIND_CRON_JOB.to_string()),
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            uid: cron.metadata.uid.clone(),
            resource_version: cron.metadata.resource_version.clone(),
            ..ObjectReference::default()
        };
        self.record_event_about(
            (namespace, name),
            involved,
            "cronjob-controller",
            event,
            now,
        );
    }
}

/// Whether the Job is a dependent of the CronJob of `uid`, its controller or not.
fn owned_by(job: &Job, uid: &str) -> bool {
    (job.metadata.owner_references.iter().flatten())
        .any(|o| o.kind == KIND_CRON_JOB && o.uid == uid)
}

/// Whether the Job's controller is the CronJob of `uid` (a Job another client made with an
/// owner reference without `controller: true` is its dependent, not its Job).
fn controlled_by(job: &Job, uid: &str) -> bool {
    (job.metadata.owner_references.iter().flatten())
        .any(|o| o.controller == Some(true) && o.kind == KIND_CRON_JOB && o.uid == uid)
}
