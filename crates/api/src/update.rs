//! Updates of a stored Job, as the API server's Job strategy treats them: what the server
//! keeps from the stored object, and which fields may not change (`field is immutable`).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::defaults::apply_defaults;
use crate::field::{FieldError, Invalid};
use crate::valid::ValidJob;
use crate::validation::validate_job_as;
use crate::version::Emulation;

/// Carries over what a client cannot change (identity, creation time, status) and
/// re-applies defaults, so that a merged or replaced object compares like for like.
/// `generation` goes up when the spec changes.
pub fn prepare_for_update(old: &Job, new: &mut Job) {
    carry_identity(&mut new.metadata, &old.metadata);
    new.status.clone_from(&old.status);
    apply_defaults(new);
    if new.spec != old.spec {
        new.metadata.generation = Some(old.metadata.generation.unwrap_or(1) + 1);
    }
}

/// What no update of any kind changes (`rest.BeforeUpdate`): identity, creation and
/// deletion times, generation; managed fields are worked out afresh.
pub fn carry_identity(new: &mut ObjectMeta, old: &ObjectMeta) {
    new.uid.clone_from(&old.uid);
    new.namespace.clone_from(&old.namespace);
    new.name.clone_from(&old.name);
    new.creation_timestamp.clone_from(&old.creation_timestamp);
    new.deletion_timestamp.clone_from(&old.deletion_timestamp);
    new.generation = old.generation;
    new.managed_fields = None;
}

/// Validates `new` as an update of `old`: the create-time rules plus immutability.
pub fn validate_job_update(old: &Job, new: &Job) -> Result<ValidJob, Invalid> {
    validate_job_update_as(old, new, Emulation::default())
}

/// [`validate_job_update`] by the rules of an emulated version's API server.
pub fn validate_job_update_as(
    old: &Job,
    new: &Job,
    emulation: Emulation,
) -> Result<ValidJob, Invalid> {
    let mut errors = immutability_errors(old, new, emulation);
    match validate_job_as(new, emulation) {
        Ok(valid) if errors.is_empty() => Ok(valid),
        Ok(_) => Err(Invalid {
            kind: "Job.batch",
            name: new.metadata.name.clone().unwrap_or_default(),
            errors,
        }),
        Err(mut invalid) => {
            errors.append(&mut invalid.errors);
            invalid.errors = errors;
            Err(invalid)
        }
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn immutability_errors(old: &Job, new: &Job, emulation: Emulation) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let (Some(o), Some(n)) = (old.spec.as_ref(), new.spec.as_ref()) else {
        return errors;
    };
    let mut immutable = |path: &str, changed: bool, value: String| {
        if changed {
            errors.push(FieldError::invalid(path, value, "field is immutable"));
        }
    };
    immutable("spec.selector", o.selector != n.selector, json(&n.selector));
    let template_changed = if template_mutable(old, emulation) {
        let free = |t: &PodTemplateSpec| mutable_free(t, emulation);
        free(&o.template) != free(&n.template)
    } else {
        o.template != n.template
    };
    immutable("spec.template", template_changed, json(&n.template));
    immutable(
        "spec.completionMode",
        o.completion_mode != n.completion_mode,
        json(&n.completion_mode),
    );
    immutable(
        "spec.podFailurePolicy",
        o.pod_failure_policy != n.pod_failure_policy,
        json(&n.pod_failure_policy),
    );
    immutable(
        "spec.backoffLimitPerIndex",
        o.backoff_limit_per_index != n.backoff_limit_per_index,
        json(&n.backoff_limit_per_index),
    );
    immutable(
        "spec.managedBy",
        o.managed_by != n.managed_by,
        json(&n.managed_by),
    );
    immutable(
        "spec.successPolicy",
        o.success_policy != n.success_policy,
        json(&n.success_policy),
    );
    let indexed = n.completion_mode.as_deref() == Some("Indexed");
    if o.completions != n.completions {
        let value = json(&n.completions);
        if !indexed {
            errors.push(FieldError::invalid(
                "spec.completions",
                value,
                "field is immutable",
            ));
        } else if n.completions != n.parallelism {
            errors.push(FieldError::invalid(
                "spec.completions",
                value,
                "can only be modified in tandem with spec.parallelism",
            ));
        }
    }
    errors
}

/// Whether the template of a suspended Job may change (`validationOptionsForJob`): before
/// it started, and from 1.36 also once it is marked suspended with no pod left.
fn template_mutable(old: &Job, emulation: Emulation) -> bool {
    let suspended = old.spec.as_ref().and_then(|s| s.suspend) == Some(true);
    let status = old.status.clone().unwrap_or_default();
    let not_started = status.start_time.is_none();
    let marked_suspended =
        (status.conditions.iter().flatten()).any(|c| c.type_ == "Suspended" && c.status == "True");
    let emptied = marked_suspended && status.active.unwrap_or(0) == 0;
    suspended && (not_started || (emulation.mutable_suspended_jobs() && emptied))
}

/// The template without what a suspended Job may change: its scheduling directives
/// (spec §1.6), and from 1.36 its containers' resources.
fn mutable_free(template: &PodTemplateSpec, emulation: Emulation) -> PodTemplateSpec {
    let mut template = scheduling_free(template);
    if let (true, Some(spec)) = (emulation.mutable_suspended_jobs(), template.spec.as_mut()) {
        let containers = spec.init_containers.iter_mut().flatten();
        for container in containers.chain(&mut spec.containers) {
            container.resources = None;
        }
    }
    template
}

/// The template without the scheduling directives.
fn scheduling_free(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut template = template.clone();
    if let Some(meta) = template.metadata.as_mut() {
        meta.labels = None;
        meta.annotations = None;
    }
    if let Some(spec) = template.spec.as_mut() {
        spec.node_selector = None;
        spec.tolerations = None;
        spec.scheduling_gates = None;
        if let Some(affinity) = spec.affinity.as_mut() {
            affinity.node_affinity = None;
        }
        if spec
            .affinity
            .as_ref()
            .is_some_and(|a| a.pod_affinity.is_none() && a.pod_anti_affinity.is_none())
        {
            spec.affinity = None;
        }
    }
    template
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_jobs, prepare_for_create};

    fn stored(extra: &str) -> Job {
        let text = format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: j}}\nspec:\n{extra}\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: main, image: busybox, command: [\"true\"]}}]\n"
        );
        let mut job = parse_jobs("test", &text).unwrap().remove(0);
        prepare_for_create(&mut job, "uid-1", "2026-01-01T00:00:00Z".parse().unwrap());
        job
    }

    fn update(old: &Job, change: impl FnOnce(&mut Job)) -> Result<ValidJob, String> {
        let mut new = old.clone();
        change(&mut new);
        prepare_for_update(old, &mut new);
        validate_job_update(old, &new).map_err(|e| e.to_string())
    }

    #[test]
    fn mutable_fields_change_and_bump_the_generation() {
        let old = stored("  parallelism: 1");
        let valid = update(&old, |j| {
            let spec = j.spec.as_mut().unwrap();
            spec.parallelism = Some(3);
            spec.suspend = Some(true);
            spec.active_deadline_seconds = Some(60);
        })
        .unwrap();
        assert_eq!(valid.spec.parallelism, 3);
        assert_eq!(valid.object().metadata.generation, Some(2));
        assert_eq!(valid.uid(), "uid-1");
    }

    #[test]
    fn template_and_completions_are_immutable() {
        let old = stored("  completions: 2");
        let error = update(&old, |j| {
            j.spec
                .as_mut()
                .unwrap()
                .template
                .spec
                .as_mut()
                .unwrap()
                .containers[0]
                .command = Some(vec!["false".into()]);
        })
        .unwrap_err();
        assert!(
            error.starts_with("Job.batch \"j\" is invalid: spec.template: Invalid value: {")
                && error.ends_with("}: field is immutable"),
            "{error}"
        );
        let error = update(&old, |j| j.spec.as_mut().unwrap().completions = Some(5)).unwrap_err();
        assert_eq!(
            error,
            "Job.batch \"j\" is invalid: spec.completions: Invalid value: 5: field is immutable"
        );
    }

    #[test]
    fn a_suspended_job_that_never_started_may_change_scheduling_directives() {
        let old = stored("  suspend: true");
        let relabel = |j: &mut Job| {
            let meta = j.spec.as_mut().unwrap().template.metadata.as_mut().unwrap();
            meta.labels
                .as_mut()
                .unwrap()
                .insert("zone".into(), "a".into());
        };
        assert!(update(&old, relabel).is_ok());
        let mut started = old.clone();
        started.status = Some(k8s_openapi::api::batch::v1::JobStatus {
            start_time: old.metadata.creation_timestamp.clone(),
            ..Default::default()
        });
        assert!(update(&started, relabel).is_err());
    }

    /// `TestJobStrategy_ValidateUpdate_MutablePodResources` and
    /// `…_MutableSchedulingDirectives`: which suspended Jobs take a new cpu request or a new
    /// template label, by version.
    #[test]
    fn a_suspended_job_emptied_of_pods_takes_new_resources_and_labels_from_1_36() {
        use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
        let cpu = |j: &mut Job| {
            let pod = j.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
            let requests = [(
                "cpu".to_string(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
            )];
            pod.containers[0].resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
                requests: Some(requests.into()),
                ..Default::default()
            });
        };
        let label = |j: &mut Job| {
            let meta = j.spec.as_mut().unwrap().template.metadata.as_mut().unwrap();
            meta.labels
                .as_mut()
                .unwrap()
                .insert("zone".into(), "a".into());
        };
        let command = |j: &mut Job| {
            let pod = j.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
            pod.containers[0].command = Some(vec!["false".into()]);
        };
        let with_status = |suspend: bool, started: bool, marked: bool, active: i32| {
            let mut job = stored(if suspend {
                "  suspend: true"
            } else {
                "  parallelism: 1"
            });
            let condition = JobCondition {
                type_: "Suspended".into(),
                status: "True".into(),
                ..Default::default()
            };
            job.status = Some(JobStatus {
                start_time: started
                    .then(|| job.metadata.creation_timestamp.clone())
                    .flatten(),
                conditions: marked.then(|| vec![condition]),
                active: Some(active),
                ..Default::default()
            });
            job
        };
        type Change = fn(&mut Job);
        let changes: [(&str, Change); 3] = [("cpu", cpu), ("label", label), ("command", command)];
        // (suspend, started, marked Suspended, active, version, [cpu, label, command] taken)
        let cases = [
            (true, false, false, 0, "1.37", [true, true, false]),
            (true, false, false, 0, "1.35", [false, true, false]),
            (true, true, true, 0, "1.37", [true, true, false]),
            (true, true, true, 0, "1.36", [true, true, false]),
            (true, true, true, 0, "1.35", [false, false, false]),
            (true, true, true, 1, "1.37", [false, false, false]),
            (true, true, false, 0, "1.37", [false, false, false]),
            (false, false, false, 0, "1.37", [false, false, false]),
        ];
        for (suspend, started, marked, active, version, taken) in cases {
            let old = with_status(suspend, started, marked, active);
            let emulation: Emulation = version.parse().unwrap();
            for ((name, change), taken) in changes.iter().zip(taken) {
                let mut new = old.clone();
                change(&mut new);
                prepare_for_update(&old, &mut new);
                let result =
                    validate_job_update_as(&old, &new, emulation).map_err(|e| e.to_string());
                assert_eq!(
                    result.is_ok(),
                    taken,
                    "{name} on suspend={suspend} started={started} marked={marked} active={active} {version}: {result:?}"
                );
            }
        }
    }
}
