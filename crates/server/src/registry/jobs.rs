//! Jobs (`pkg/registry/batch/job/strategy.go`): the generated selector and labels, the
//! defaults, and the update rules of the batch API.

use joblet_api::k8s_openapi::api::batch::v1::{Job, JobSpec};
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use joblet_api::k8s_openapi::jiff::Timestamp;
use joblet_api::printers::job_row;
use joblet_api::{Invalid, ValidJob};
use joblet_driver::Stored;
use serde_json::{json, Value};

use super::{age_column, column, name_column, Strategy};
use crate::api::AdmissionConfig;
use crate::resources::{Resource, JOBS};

pub struct Jobs;

impl Strategy for Jobs {
    type Object = Job;
    type Valid = ValidJob;
    const RESOURCE: &'static Resource = &JOBS;

    fn apply_defaults(&self, job: &mut Job) {
        joblet_api::defaults::apply_defaults(job);
    }

    fn admit_create(&self, job: &mut Job, admission: &AdmissionConfig) {
        joblet_api::defaults::default_runtime_class(job, admission.default_runtime_class);
        joblet_api::version::drop_disabled_fields(job, admission.emulation);
    }

    fn prepare_for_create(&self, job: &mut Job) {
        let meta = &job.metadata;
        let uid = meta.uid.clone().unwrap_or_default();
        let created = meta.creation_timestamp.as_ref().map(|t| t.0);
        joblet_api::prepare_for_create(job, &uid, created.unwrap_or_default());
    }

    fn validate(&self, job: Job, admission: &AdmissionConfig) -> Result<ValidJob, Invalid> {
        joblet_api::validation::validate_job_as(&job, admission.emulation)
    }

    /// What a host cannot give a pod (image, resources) is said, not refused.
    fn warnings_on_create(&self, valid: &ValidJob) -> Vec<String> {
        joblet_api::validation::runtime_warnings(valid.object())
    }

    fn prepare_for_update(&self, new: &mut Job, old: &Job) {
        joblet_api::prepare_for_update(old, new);
    }

    fn validate_update(
        &self,
        new: Job,
        old: &Job,
        admission: &AdmissionConfig,
    ) -> Result<ValidJob, Invalid> {
        joblet_api::validate_job_update_as(old, &new, admission.emulation)
    }

    fn object(valid: &ValidJob) -> &Job {
        valid.object()
    }

    fn stored(valid: ValidJob) -> Stored {
        Stored::Job(Box::new(valid))
    }

    fn columns(&self) -> Vec<Value> {
        vec![
            name_column(),
            column("Status", "string", "", "Status of the job.", 0),
            column(
                "Completions",
                "string",
                "",
                "The desired number of successfully finished pods the job should be run with.",
                0,
            ),
            column(
                "Duration",
                "string",
                "",
                "Time required to complete the job.",
                0,
            ),
            age_column(),
            column(
                "Containers",
                "string",
                "",
                "Names of each container in the template.",
                1,
            ),
            column(
                "Images",
                "string",
                "",
                "Images referenced by each container in the template.",
                1,
            ),
            column(
                "Selector",
                "string",
                "",
                "A label query over pods that should match the pod count.",
                1,
            ),
        ]
    }

    fn cells(&self, job: &Job, now: Timestamp) -> Vec<Value> {
        let [name, status, completions, duration, age] = job_row(job, now);
        let mut cells = vec![
            json!(name),
            json!(status),
            json!(completions),
            json!(duration),
            json!(age),
        ];
        cells.extend(template_cells(job.spec.as_ref()));
        cells
    }
}

/// CONTAINERS, IMAGES and SELECTOR of a Job spec (`layoutContainerCells`).
pub(super) fn template_cells(spec: Option<&JobSpec>) -> [Value; 3] {
    let containers = spec
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c.image.as_deref().unwrap_or(""))
        .collect();
    let selector = spec
        .and_then(|s| s.selector.as_ref())
        .map(selector_string)
        .unwrap_or_else(|| "<none>".to_string());
    [
        json!(names.join(",")),
        json!(images.join(",")),
        json!(selector),
    ]
}

fn selector_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for expression in selector.match_expressions.iter().flatten() {
        let values = expression.values.clone().unwrap_or_default().join(",");
        parts.push(match expression.operator.as_str() {
            "In" => format!("{} in ({values})", expression.key),
            "NotIn" => format!("{} notin ({values})", expression.key),
            "Exists" => expression.key.clone(),
            _ => format!("!{}", expression.key),
        });
    }
    if parts.is_empty() {
        "<none>".to_string()
    } else {
        parts.join(",")
    }
}
