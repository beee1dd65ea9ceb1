//! CronJobs (`pkg/registry/batch/cronjob/strategy.go`): upstream's defaults and validation;
//! the engine's CronJob controller writes the status and makes the Jobs.

use joblet_api::config::Valid;
use joblet_api::cronjobs;
use joblet_api::k8s_openapi::api::batch::v1::CronJob;
use joblet_api::k8s_openapi::jiff::Timestamp;
use joblet_api::Invalid;
use joblet_driver::{Propagation, Stored};
use serde_json::{json, Value};

use super::jobs::template_cells;
use super::{age_column, column, name_column, Strategy};
use crate::api::AdmissionConfig;
use crate::resources::{Resource, CRON_JOBS};
use crate::table::age;

pub struct CronJobs;

impl Strategy for CronJobs {
    type Object = CronJob;
    type Valid = Valid<CronJob>;
    const RESOURCE: &'static Resource = &CRON_JOBS;
    /// `DefaultGarbageCollectionPolicy` of batch/v1: the Jobs go with their CronJob.
    const DEFAULT_PROPAGATION: Propagation = Propagation::Background;

    fn apply_defaults(&self, cron: &mut CronJob) {
        cronjobs::apply_defaults(cron);
    }

    fn admit_create(&self, cron: &mut CronJob, admission: &AdmissionConfig) {
        if let Some(job) = cron.spec.job_template.spec.as_mut() {
            joblet_api::defaults::default_template_runtime_class(
                &mut job.template,
                admission.default_runtime_class,
            );
            joblet_api::version::drop_disabled_pod_fields(&mut job.template, admission.emulation);
        }
    }

    fn prepare_for_create(&self, cron: &mut CronJob) {
        cronjobs::prepare_for_create(cron);
    }

    fn validate(
        &self,
        cron: CronJob,
        _admission: &AdmissionConfig,
    ) -> Result<Self::Valid, Invalid> {
        cronjobs::admit(cron)
    }

    fn prepare_for_update(&self, new: &mut CronJob, old: &CronJob) {
        cronjobs::prepare_for_update(new, old);
    }

    fn validate_update(
        &self,
        new: CronJob,
        old: &CronJob,
        _admission: &AdmissionConfig,
    ) -> Result<Self::Valid, Invalid> {
        cronjobs::admit_update(new, old)
    }

    fn object(valid: &Self::Valid) -> &CronJob {
        valid.object()
    }

    fn stored(valid: Self::Valid) -> Stored {
        Stored::CronJob(Box::new(valid))
    }

    fn columns(&self) -> Vec<Value> {
        vec![
            name_column(),
            column("Schedule", "string", "", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.", 0),
            column("Timezone", "string", "", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process.", 0),
            column("Suspend", "boolean", "", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.", 0),
            column("Active", "integer", "", "A list of pointers to currently running jobs.", 0),
            column("Last Schedule", "string", "", "Information when was the last time the job was successfully scheduled.", 0),
            age_column(),
            column("Containers", "string", "", "Names of each container in the template.", 1),
            column("Images", "string", "", "Images referenced by each container in the template.", 1),
            column("Selector", "string", "", "A label query over pods that should match the pod count.", 1),
        ]
    }

    /// `printCronJob`.
    fn cells(&self, cron: &CronJob, now: Timestamp) -> Vec<Value> {
        let spec = &cron.spec;
        let status = cron.status.clone().unwrap_or_default();
        let last_schedule = match &status.last_schedule_time {
            Some(time) => age(Some(&time.0), now),
            None => "<none>".to_string(),
        };
        let suspend = match spec.suspend {
            Some(true) => "True",
            Some(false) => "False",
            None => "<unset>",
        };
        let created = cron.metadata.creation_timestamp.as_ref();
        let mut cells = vec![
            json!(cron.metadata.name.clone().unwrap_or_default()),
            json!(spec.schedule),
            json!(spec.time_zone.as_deref().unwrap_or("<none>")),
            json!(suspend),
            json!(status.active.map_or(0, |a| a.len())),
            json!(last_schedule),
            json!(age(created.map(|t| &t.0), now)),
        ];
        cells.extend(template_cells(spec.job_template.spec.as_ref()));
        cells
    }
}
