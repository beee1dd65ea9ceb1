//! Pods made from a Job's template (spec §2.7).

use joblet_api::k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodStatus,
};
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use joblet_api::{labels, ValidJob};

use crate::time::Time;

/// A pod the controller decided to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodToCreate {
    pub name: String,
    pub uid: String,
    pub index: Option<i32>,
    /// Per-index failure counts inherited by a replacement (backoffLimitPerIndex only).
    pub index_failure_count: Option<i32>,
    pub index_ignored_failure_count: Option<i32>,
}

/// The pod object as the controller would POST it, Pending, created at `now`.
pub fn build_pod(job: &ValidJob, spec: &PodToCreate, now: Time) -> Pod {
    let template = job.template();
    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut pod_labels = template_meta.labels.unwrap_or_default();
    let mut annotations = template_meta.annotations.unwrap_or_default();
    let mut pod_spec = template.spec.clone().unwrap_or_default();
    if let Some(index) = spec.index {
        let index_text = index.to_string();
        pod_labels.insert(labels::COMPLETION_INDEX.to_string(), index_text.clone());
        annotations.insert(labels::COMPLETION_INDEX.to_string(), index_text);
        pod_spec.hostname = Some(format!("{}-{index}", job.name()));
        let init = pod_spec.init_containers.iter_mut().flatten();
        for container in init.chain(pod_spec.containers.iter_mut()) {
            let env = container.env.get_or_insert_with(Vec::new);
            if !env.iter().any(|e| e.name == labels::COMPLETION_INDEX_ENV) {
                env.push(EnvVar {
                    name: labels::COMPLETION_INDEX_ENV.to_string(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: Some("v1".to_string()),
                            field_path: format!("metadata.labels['{}']", labels::COMPLETION_INDEX),
                        }),
                        ..Default::default()
                    }),
                });
            }
        }
    }
    if let Some(count) = spec.index_failure_count {
        annotations.insert(labels::INDEX_FAILURE_COUNT.to_string(), count.to_string());
    }
    if let Some(count) = spec.index_ignored_failure_count.filter(|c| *c > 0) {
        annotations.insert(
            labels::INDEX_IGNORED_FAILURE_COUNT.to_string(),
            count.to_string(),
        );
    }
    let mut finalizers = template_meta.finalizers.unwrap_or_default();
    if !finalizers.iter().any(|f| f == labels::TRACKING_FINALIZER) {
        finalizers.push(labels::TRACKING_FINALIZER.to_string());
    }
    let generate_name = match spec.index {
        Some(i) => format!("{}-{i}-", job.name()),
        None => format!("{}-", job.name()),
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            generate_name: Some(generate_name),
            namespace: Some(job.namespace().to_string()),
            uid: Some(spec.uid.clone()),
            creation_timestamp: Some(now.to_wire()),
            // Pod generation (GA in 1.35): 1 at create.
            generation: Some(1),
            labels: Some(pod_labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".to_string(),
                kind: "Job".to_string(),
                name: job.name().to_string(),
                uid: job.uid().to_string(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: Some(PodStatus {
            phase: Some("Pending".to_string()),
            ..Default::default()
        }),
    }
}
