//! What the API server does to a Job before storing it: defaulting of the Job and its pod
//! template (`pkg/apis/batch/v1/defaults.go`, `pkg/apis/core/v1/defaults.go`) and the
//! selector and label generation of the Job strategy.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::jiff::Timestamp;

use crate::labels;

/// Prepares a Job read from a manifest as the API server does on create: metadata (uid,
/// namespace, creation time, generation), generated selector and labels, and defaults.
/// Status is cleared.
pub fn prepare_for_create(job: &mut Job, uid: &str, now: Timestamp) {
    let meta = &mut job.metadata;
    meta.uid = Some(uid.to_string());
    meta.namespace.get_or_insert_with(|| "default".to_string());
    meta.creation_timestamp = Some(Time(now));
    meta.generation = Some(1);
    meta.resource_version = None;
    job.status = None;
    generate_selector(job);
    apply_defaults(job);
}

/// Selector and template labels unless `manualSelector` is true (spec §1.4).
fn generate_selector(job: &mut Job) {
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let spec = job.spec.get_or_insert_with(Default::default);
    if spec.manual_selector == Some(true) {
        return;
    }
    let template_labels = spec
        .template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new);
    for (key, value) in [
        (labels::LEGACY_CONTROLLER_UID, &uid),
        (labels::LEGACY_JOB_NAME, &name),
        (labels::CONTROLLER_UID, &uid),
        (labels::JOB_NAME, &name),
    ] {
        template_labels
            .entry(key.to_string())
            .or_insert_with(|| value.clone());
    }
    spec.selector
        .get_or_insert_with(LabelSelector::default)
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .entry(labels::CONTROLLER_UID.to_string())
        .or_insert(uid);
}

/// Field defaults of the Job and its pod template.
pub fn apply_defaults(job: &mut Job) {
    let spec = job.spec.get_or_insert_with(Default::default);
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    if spec.backoff_limit.is_none() {
        spec.backoff_limit = Some(if spec.backoff_limit_per_index.is_some() {
            i32::MAX
        } else {
            6
        });
    }
    spec.completion_mode
        .get_or_insert_with(|| "NonIndexed".to_string());
    spec.suspend.get_or_insert(false);
    spec.manual_selector.get_or_insert(false);
    if spec.pod_replacement_policy.is_none() {
        spec.pod_replacement_policy = Some(
            if spec.pod_failure_policy.is_some() {
                "Failed"
            } else {
                "TerminatingOrFailed"
            }
            .to_string(),
        );
    }
    if let Some(policy) = spec.pod_failure_policy.as_mut() {
        for rule in &mut policy.rules {
            for pattern in rule.on_pod_conditions.iter_mut().flatten() {
                if pattern.status.as_deref().is_none_or(str::is_empty) {
                    pattern.status = Some("True".to_string());
                }
            }
        }
    }
    default_template(&mut spec.template);
    // The Job's own labels default to the template's (spec §1.1).
    if job.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
        job.metadata.labels = job
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone());
    }
}

pub(crate) fn default_template(template: &mut PodTemplateSpec) {
    let pod = template.spec.get_or_insert_with(Default::default);
    pod.restart_policy
        .get_or_insert_with(|| "Always".to_string());
    pod.termination_grace_period_seconds.get_or_insert(30);
    pod.dns_policy
        .get_or_insert_with(|| "ClusterFirst".to_string());
    pod.scheduler_name
        .get_or_insert_with(|| "default-scheduler".to_string());
    pod.security_context.get_or_insert_with(Default::default);
    crate::volumes::default_volumes(pod);
    let init = pod.init_containers.iter_mut().flatten();
    for container in pod.containers.iter_mut().chain(init) {
        container
            .termination_message_path
            .get_or_insert_with(|| "/dev/termination-log".to_string());
        container
            .termination_message_policy
            .get_or_insert_with(|| "File".to_string());
        crate::resources::default_requests(
            container.resources.get_or_insert_with(Default::default),
        );
        if container.image_pull_policy.is_none() {
            container.image_pull_policy = Some(image_pull_policy(container.image.as_deref()));
        }
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise.
pub fn image_pull_policy(image: Option<&str>) -> String {
    let image = image.unwrap_or("");
    let without_digest = image.split('@').next().unwrap_or("");
    let last_segment = without_digest.rsplit('/').next().unwrap_or("");
    let tag = last_segment.split_once(':').map(|(_, tag)| tag);
    if image.contains('@') {
        return "IfNotPresent".to_string();
    }
    match tag {
        None | Some("latest") => "Always".to_string(),
        Some(_) => "IfNotPresent".to_string(),
    }
}

/// The runtime classes a pod may name in `spec.runtimeClassName`; a pod that names none
/// runs on the host.
pub const RUNTIME_CLASSES: [&str; 3] = ["host", "podman", "docker"];

/// The default runtime of `--runtime`, applied on create to a template that names no
/// runtime class, as a mutating admission plugin would: the class is stored with the Job,
/// so its pods run where they started after a restart with another default.
pub fn default_runtime_class(job: &mut Job, class: &str) {
    if let Some(spec) = job.spec.as_mut() {
        default_template_runtime_class(&mut spec.template, class);
    }
}

/// [`default_runtime_class`] on a pod template (a CronJob's Jobs' pods run where the
/// CronJob was created to run them).
pub fn default_template_runtime_class(
    template: &mut k8s_openapi::api::core::v1::PodTemplateSpec,
    class: &str,
) {
    if class == "host" {
        return;
    }
    if let Some(pod) = template.spec.as_mut() {
        pod.runtime_class_name
            .get_or_insert_with(|| class.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml: &str) -> Job {
        serde_json::from_value(crate::yaml::document(yaml).unwrap()).unwrap()
    }

    #[test]
    fn work_queue_keeps_completions_unset() {
        let mut j =
            job("apiVersion: batch/v1\nkind: Job\nspec:\n  parallelism: 5\n  template: {}\n");
        apply_defaults(&mut j);
        let spec = j.spec.unwrap();
        assert_eq!((spec.completions, spec.parallelism), (None, Some(5)));
        assert_eq!(spec.backoff_limit, Some(6));
    }

    #[test]
    fn generated_labels_and_selector() {
        let mut j =
            job("apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  template: {}\n");
        prepare_for_create(&mut j, "u-1", Timestamp::UNIX_EPOCH);
        let spec = j.spec.as_ref().unwrap();
        assert_eq!((spec.completions, spec.parallelism), (Some(1), Some(1)));
        let labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
        assert_eq!(labels["controller-uid"], "u-1");
        assert_eq!(j.metadata.labels.as_ref(), Some(labels));
        let selector = spec
            .selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(selector["batch.kubernetes.io/controller-uid"], "u-1");
        assert_eq!(j.metadata.namespace.as_deref(), Some("default"));
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(image_pull_policy(Some("busybox")), "Always");
        assert_eq!(image_pull_policy(Some("busybox:latest")), "Always");
        assert_eq!(
            image_pull_policy(Some("reg:5000/busybox:1.36")),
            "IfNotPresent"
        );
        assert_eq!(image_pull_policy(Some("reg:5000/busybox")), "Always");
    }

    #[test]
    fn a_default_runtime_class_fills_only_a_template_that_names_none() {
        let class = |yaml: &str, default: &str| {
            let mut j = job(yaml);
            default_runtime_class(&mut j, default);
            j.spec.unwrap().template.spec.unwrap().runtime_class_name
        };
        let unnamed = "spec: {template: {spec: {containers: [{name: c, image: i}]}}}";
        let named =
            "spec: {template: {spec: {runtimeClassName: host, containers: [{name: c, image: i}]}}}";
        assert_eq!(class(unnamed, "podman").as_deref(), Some("podman"));
        assert_eq!(class(named, "podman").as_deref(), Some("host"));
        // Host is what no class means: nothing is written.
        assert_eq!(class(unnamed, "host"), None);
    }
}
