//! Create-time validation of a defaulted Job (`pkg/apis/batch/validation`), reporting every
//! error at once in upstream's words, into a [`ValidJob`] with concrete values.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::batch::v1::{Job, JobSpec, PodFailurePolicy, SuccessPolicy};
use k8s_openapi::api::core::v1::{
    Container, EnvVarSource, PodSpec, ResourceFieldSelector, SecurityContext, Volume,
};

use crate::config::config_key_errors;
use crate::field::{FieldError, Invalid};
use crate::indexset::IndexSet;
use crate::labels;
use crate::names::dns1123_subdomain_errors;
use crate::quantity::Quantity;
use crate::valid::{
    CompletionMode, ExitCodeOperator, ExitCodesRule, FailurePolicyAction, FailurePolicyRule,
    PodConditionPattern, PodReplacementPolicy, RestartPolicy, SuccessPolicyRule, ValidJob,
};
use crate::version::Emulation;

const MAX_INDEXED_PARALLELISM: i32 = 100_000;
const MAX_COMPLETIONS_FOR_PER_INDEX_BACKOFF: i32 = 100_000;
const MAX_PARALLELISM_FOR_PER_INDEX_BACKOFF: i32 = 10_000;
const MAX_FAILED_INDEXES_FOR_PER_INDEX_BACKOFF: i32 = 10_000;
const MAX_FAILURE_POLICY_RULES: usize = 20;
const MAX_EXIT_CODE_VALUES: usize = 255;
const MAX_SUCCESS_POLICY_RULES: usize = 20;

pub(crate) const DNS1123_LABEL_ERROR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_ERROR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// Validates a Job bound for a cluster, which runs images with whatever `runtimeClassName`
/// it has: upstream's rules as joblet's image runtimes apply them, less what only joblet's
/// node cannot run (the API server and the cluster's nodes speak for those).
pub fn validate_job_for_cluster(job: &Job) -> Result<(), Invalid> {
    let mut as_images = job.clone();
    let pod = (as_images.spec.as_mut()).and_then(|s| s.template.spec.as_mut());
    if let Some(pod) = pod {
        pod.runtime_class_name = Some("podman".to_string());
    }
    match validate_job(&as_images) {
        Ok(_) => Ok(()),
        Err(mut invalid) => {
            invalid.errors.retain(|e| !e.node_limit);
            match invalid.errors.is_empty() {
                true => Ok(()),
                false => Err(invalid),
            }
        }
    }
}

/// Validates a Job that went through [`crate::prepare_for_create`] (or was read back from
/// the store) and returns its concrete form, or every error found.
pub fn validate_job(job: &Job) -> Result<ValidJob, Invalid> {
    validate_job_as(job, Emulation::default())
}

/// [`validate_job`] by the rules of an emulated version's API server.
pub fn validate_job_as(job: &Job, emulation: Emulation) -> Result<ValidJob, Invalid> {
    let mut errors = Vec::new();
    let name = job.metadata.name.clone().unwrap_or_default();
    validate_name(&name, &mut errors);
    let default_spec = JobSpec::default();
    let spec = job.spec.as_ref().unwrap_or(&default_spec);
    let manual = spec.manual_selector == Some(true);
    if !manual {
        validate_generated_selector(job, spec, &mut errors);
    }
    let valid = validate_spec(&name, spec, manual, emulation, &mut errors);
    match valid {
        Some(fields) if errors.is_empty() => Ok(ValidJob::new(job.clone(), fields)),
        _ => Err(Invalid {
            kind: "Job.batch",
            name,
            errors,
        }),
    }
}

pub(crate) fn validate_name(name: &str, errors: &mut Vec<FieldError>) {
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if !is_dns1123_subdomain(name) {
        errors.push(FieldError::invalid_str(
            "metadata.name",
            name,
            DNS1123_SUBDOMAIN_ERROR,
        ));
    }
}

fn validate_generated_selector(job: &Job, spec: &JobSpec, errors: &mut Vec<FieldError>) {
    let Some(uid) = job.metadata.uid.as_deref().filter(|u| !u.is_empty()) else {
        errors.push(FieldError::required("metadata.uid", ""));
        return;
    };
    let name = job.metadata.name.as_deref().unwrap_or("");
    let empty = BTreeMap::new();
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&empty);
    for (key, expected) in [
        (labels::LEGACY_CONTROLLER_UID, uid),
        (labels::LEGACY_JOB_NAME, name),
        (labels::CONTROLLER_UID, uid),
        (labels::JOB_NAME, name),
    ] {
        let path = format!("spec.template.metadata.labels[{key}]");
        let detail = format!("must be '{expected}'");
        match template_labels.get(key) {
            None => errors.push(FieldError::required(path, detail)),
            Some(value) if value != expected => {
                errors.push(FieldError::invalid_str(path, value, &detail))
            }
            Some(_) => {}
        }
    }
    let generated: BTreeMap<String, String> =
        [(labels::CONTROLLER_UID.to_string(), uid.to_string())].into();
    if let Some(selector) = &spec.selector {
        let match_labels = selector.match_labels.clone().unwrap_or_default();
        if match_labels != generated || selector.match_expressions.is_some() {
            let rendered = serde_json::to_string(selector).unwrap_or_default();
            errors.push(FieldError::invalid(
                "spec.selector",
                rendered,
                "`selector` not auto-generated",
            ));
        }
    }
}

pub(crate) fn non_negative<T: Into<i64> + Copy + std::fmt::Display>(
    path: &str,
    value: Option<T>,
    errors: &mut Vec<FieldError>,
) {
    if let Some(v) = value {
        if v.into() < 0 {
            errors.push(FieldError::invalid(
                path,
                v,
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// The checks of `validateJobSpec`; returns the concrete fields when they could be read
/// (errors may still have been recorded).
pub(crate) fn validate_spec(
    name: &str,
    spec: &JobSpec,
    manual_selector: bool,
    emulation: Emulation,
    errors: &mut Vec<FieldError>,
) -> Option<crate::valid::Fields> {
    crate::alpha::refuse_alpha_fields(spec, errors);
    non_negative("spec.parallelism", spec.parallelism, errors);
    non_negative("spec.completions", spec.completions, errors);
    non_negative(
        "spec.activeDeadlineSeconds",
        spec.active_deadline_seconds,
        errors,
    );
    non_negative("spec.backoffLimit", spec.backoff_limit, errors);
    non_negative(
        "spec.ttlSecondsAfterFinished",
        spec.ttl_seconds_after_finished,
        errors,
    );
    non_negative(
        "spec.backoffLimitPerIndex",
        spec.backoff_limit_per_index,
        errors,
    );
    non_negative("spec.maxFailedIndexes", spec.max_failed_indexes, errors);

    let parallelism = spec.parallelism.unwrap_or(1);
    let mode = match spec.completion_mode.as_deref().unwrap_or("NonIndexed") {
        "NonIndexed" => Some(CompletionMode::NonIndexed),
        "Indexed" => Some(CompletionMode::Indexed),
        other => {
            errors.push(FieldError::not_supported(
                "spec.completionMode",
                other,
                &["NonIndexed", "Indexed"],
            ));
            None
        }
    };
    if mode == Some(CompletionMode::Indexed) {
        validate_indexed(name, spec, parallelism, errors);
    } else {
        if let Some(v) = spec.backoff_limit_per_index {
            errors.push(FieldError::invalid(
                "spec.backoffLimitPerIndex",
                v,
                "requires indexed completion mode",
            ));
        }
        if let Some(v) = spec.max_failed_indexes {
            errors.push(FieldError::invalid(
                "spec.maxFailedIndexes",
                v,
                "requires indexed completion mode",
            ));
        }
    }
    if spec.max_failed_indexes.is_some() && spec.backoff_limit_per_index.is_none() {
        errors.push(FieldError::required(
            "spec.backoffLimitPerIndex",
            "when maxFailedIndexes is specified",
        ));
    }

    if manual_selector {
        validate_manual_selector(spec, errors);
    }

    let pod = spec.template.spec.clone().unwrap_or_default();
    let restart_policy = validate_restart_policy(&pod, spec.pod_failure_policy.is_some(), errors);
    let failure_policy = spec
        .pod_failure_policy
        .as_ref()
        .map(|p| validate_failure_policy(p, &pod, spec.backoff_limit_per_index.is_some(), errors))
        .unwrap_or_default();
    let success_policy = spec
        .success_policy
        .as_ref()
        .map(|p| validate_success_policy(p, spec, mode, errors))
        .unwrap_or_default();
    let replacement = validate_replacement_policy(spec, errors);
    validate_pod_spec(&pod, emulation, errors);

    Some(crate::valid::Fields {
        parallelism,
        completions: spec.completions,
        completion_mode: mode?,
        backoff_limit: spec.backoff_limit.unwrap_or(6),
        backoff_limit_per_index: spec.backoff_limit_per_index,
        max_failed_indexes: spec.max_failed_indexes,
        active_deadline_seconds: spec.active_deadline_seconds,
        ttl_seconds_after_finished: spec.ttl_seconds_after_finished,
        suspend: spec.suspend.unwrap_or(false),
        restart_policy: restart_policy?,
        pod_replacement_policy: replacement?,
        pod_failure_policy: failure_policy,
        success_policy,
        managed_by: spec.managed_by.clone(),
    })
}

fn validate_indexed(name: &str, spec: &JobSpec, parallelism: i32, errors: &mut Vec<FieldError>) {
    let Some(completions) = spec.completions else {
        errors.push(FieldError::required(
            "spec.completions",
            "when completion mode is Indexed",
        ));
        return;
    };
    if parallelism > MAX_INDEXED_PARALLELISM {
        errors.push(FieldError::invalid(
            "spec.parallelism",
            parallelism,
            "must be less than or equal to 100000 when completion mode is Indexed",
        ));
    }
    if completions > 0 {
        let last_pod = format!("{name}-{}", completions - 1);
        if !is_dns1123_label(&last_pod) {
            errors.push(FieldError::invalid_str(
                "metadata.name",
                name,
                &format!("will not able to create pod with invalid DNS label: {last_pod}"),
            ));
        }
    }
    if let Some(max_failed) = spec.max_failed_indexes {
        if max_failed > completions {
            errors.push(FieldError::invalid(
                "spec.maxFailedIndexes",
                max_failed,
                "must be less than or equal to completions",
            ));
        }
        if max_failed > MAX_COMPLETIONS_FOR_PER_INDEX_BACKOFF {
            errors.push(FieldError::invalid(
                "spec.maxFailedIndexes",
                max_failed,
                "must be less than or equal to 100000",
            ));
        }
    }
    if completions > MAX_COMPLETIONS_FOR_PER_INDEX_BACKOFF && spec.backoff_limit_per_index.is_some()
    {
        match spec.max_failed_indexes {
            None => errors.push(FieldError::required(
                "spec.maxFailedIndexes",
                "must be specified when completions is above 100000",
            )),
            Some(m) if m > MAX_FAILED_INDEXES_FOR_PER_INDEX_BACKOFF => errors.push(FieldError::invalid(
                "spec.maxFailedIndexes",
                m,
                "must be less than or equal to 10000 when completions are above 100000 and used with backoff limit per index",
            )),
            Some(_) => {}
        }
        if parallelism > MAX_PARALLELISM_FOR_PER_INDEX_BACKOFF {
            errors.push(FieldError::invalid(
                "spec.parallelism",
                parallelism,
                "must be less than or equal to 10000 when completions are above 100000 and used with backoff limit per index",
            ));
        }
    }
}

fn validate_manual_selector(spec: &JobSpec, errors: &mut Vec<FieldError>) {
    let Some(selector) = &spec.selector else {
        errors.push(FieldError::required("spec.selector", ""));
        return;
    };
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let matches = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| template_labels.get(k) == Some(v));
    if !matches {
        let rendered = serde_json::to_string(&template_labels).unwrap_or_default();
        errors.push(FieldError::invalid(
            "spec.template.metadata.labels",
            rendered,
            "`selector` does not match template `labels`",
        ));
    }
}

fn validate_restart_policy(
    pod: &PodSpec,
    has_failure_policy: bool,
    errors: &mut Vec<FieldError>,
) -> Option<RestartPolicy> {
    const PATH: &str = "spec.template.spec.restartPolicy";
    match pod.restart_policy.as_deref().unwrap_or("") {
        "Never" => Some(RestartPolicy::Never),
        "OnFailure" if has_failure_policy => {
            errors.push(FieldError::invalid_str(
                PATH,
                "OnFailure",
                "only \"Never\" is supported when podFailurePolicy is specified",
            ));
            None
        }
        "OnFailure" => Some(RestartPolicy::OnFailure),
        "" | "Always" => {
            errors.push(FieldError::required(
                PATH,
                "valid values: \"OnFailure\", \"Never\"",
            ));
            None
        }
        other => {
            errors.push(FieldError::not_supported(
                PATH,
                other,
                &["OnFailure", "Never"],
            ));
            None
        }
    }
}

fn validate_replacement_policy(
    spec: &JobSpec,
    errors: &mut Vec<FieldError>,
) -> Option<PodReplacementPolicy> {
    const PATH: &str = "spec.podReplacementPolicy";
    let value = spec.pod_replacement_policy.as_deref();
    if spec.pod_failure_policy.is_some() {
        return match value.unwrap_or("Failed") {
            "Failed" => Some(PodReplacementPolicy::Failed),
            other => {
                errors.push(FieldError::not_supported(PATH, other, &["Failed"]));
                None
            }
        };
    }
    match value.unwrap_or("TerminatingOrFailed") {
        "Failed" => Some(PodReplacementPolicy::Failed),
        "TerminatingOrFailed" => Some(PodReplacementPolicy::TerminatingOrFailed),
        other => {
            errors.push(FieldError::not_supported(
                PATH,
                other,
                &["Failed", "TerminatingOrFailed"],
            ));
            None
        }
    }
}

fn validate_failure_policy(
    policy: &PodFailurePolicy,
    pod: &PodSpec,
    per_index_backoff: bool,
    errors: &mut Vec<FieldError>,
) -> Vec<FailurePolicyRule> {
    const RULES: &str = "spec.podFailurePolicy.rules";
    if policy.rules.len() > MAX_FAILURE_POLICY_RULES {
        errors.push(FieldError::too_many(
            RULES,
            policy.rules.len(),
            MAX_FAILURE_POLICY_RULES,
        ));
    }
    let container_names: HashSet<&str> = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .map(|c| c.name.as_str())
        .collect();
    let mut rules = Vec::new();
    for (i, rule) in policy.rules.iter().enumerate() {
        let path = format!("{RULES}[{i}]");
        let action = match rule.action.as_str() {
            "FailJob" => Some(FailurePolicyAction::FailJob),
            "Ignore" => Some(FailurePolicyAction::Ignore),
            "Count" => Some(FailurePolicyAction::Count),
            "FailIndex" if per_index_backoff => Some(FailurePolicyAction::FailIndex),
            "FailIndex" => {
                errors.push(FieldError::invalid_str(
                    format!("{path}.action"),
                    "FailIndex",
                    "requires the backoffLimitPerIndex to be set",
                ));
                None
            }
            "" => {
                errors.push(FieldError::required(
                    format!("{path}.action"),
                    "valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
                ));
                None
            }
            other => {
                errors.push(FieldError::not_supported(
                    format!("{path}.action"),
                    other,
                    &["Count", "FailIndex", "FailJob", "Ignore"],
                ));
                None
            }
        };
        let on_exit_codes = rule.on_exit_codes.as_ref().map(|codes| {
            let path = format!("{path}.onExitCodes");
            let operator = match codes.operator.as_str() {
                "In" => Some(ExitCodeOperator::In),
                "NotIn" => Some(ExitCodeOperator::NotIn),
                "" => {
                    errors.push(FieldError::required(
                        format!("{path}.operator"),
                        "valid values: [\"In\" \"NotIn\"]",
                    ));
                    None
                }
                other => {
                    errors.push(FieldError::not_supported(
                        format!("{path}.operator"),
                        other,
                        &["In", "NotIn"],
                    ));
                    None
                }
            };
            if let Some(name) = &codes.container_name {
                if !container_names.contains(name.as_str()) {
                    errors.push(FieldError::invalid_str(
                        format!("{path}.containerName"),
                        name,
                        "must be one of the container or initContainer names in the pod template",
                    ));
                }
            }
            validate_exit_code_values(&path, &codes.values, operator, errors);
            (codes.container_name.clone(), operator, codes.values.clone())
        });
        let on_pod_conditions = rule.on_pod_conditions.as_ref().map(|patterns| {
            let path = format!("{path}.onPodConditions");
            if patterns.len() > MAX_FAILURE_POLICY_RULES {
                errors.push(FieldError::too_many(
                    &path,
                    patterns.len(),
                    MAX_FAILURE_POLICY_RULES,
                ));
            }
            let mut out = Vec::new();
            for (j, pattern) in patterns.iter().enumerate() {
                let path = format!("{path}[{j}]");
                if pattern.type_.is_empty() {
                    errors.push(FieldError::invalid_str(
                        format!("{path}.type"),
                        "",
                        "name part must be non-empty",
                    ));
                }
                let status = pattern.status.as_deref().unwrap_or_default();
                match status {
                    "True" | "False" | "Unknown" => {}
                    "" => errors.push(FieldError::required(
                        format!("{path}.status"),
                        "valid values: [\"False\" \"True\" \"Unknown\"]",
                    )),
                    other => errors.push(FieldError::not_supported(
                        format!("{path}.status"),
                        other,
                        &["False", "True", "Unknown"],
                    )),
                }
                out.push(PodConditionPattern {
                    type_: pattern.type_.clone(),
                    status: status.to_string(),
                });
            }
            out
        });
        match (&on_exit_codes, &on_pod_conditions) {
            (Some(_), Some(_)) => errors.push(FieldError::invalid_no_value(
                &path,
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (None, None) => errors.push(FieldError::invalid_no_value(
                &path,
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            _ => {}
        }
        if let Some(action) = action {
            rules.push(FailurePolicyRule {
                action,
                on_exit_codes: on_exit_codes.and_then(|(container_name, operator, values)| {
                    Some(ExitCodesRule {
                        container_name,
                        operator: operator?,
                        values,
                    })
                }),
                on_pod_conditions: on_pod_conditions.unwrap_or_default(),
            });
        }
    }
    rules
}

fn validate_exit_code_values(
    path: &str,
    values: &[i32],
    operator: Option<ExitCodeOperator>,
    errors: &mut Vec<FieldError>,
) {
    let values_path = format!("{path}.values");
    if values.is_empty() {
        errors.push(FieldError::invalid(
            &values_path,
            "[]",
            "at least one value is required",
        ));
    }
    if values.len() > MAX_EXIT_CODE_VALUES {
        errors.push(FieldError::too_many(
            &values_path,
            values.len(),
            MAX_EXIT_CODE_VALUES,
        ));
    }
    let mut seen = HashSet::new();
    for (j, &value) in values.iter().enumerate() {
        if operator == Some(ExitCodeOperator::In) && value == 0 {
            errors.push(FieldError::invalid(
                format!("{values_path}[{j}]"),
                0,
                "must not be 0 for the In operator",
            ));
        }
        if !seen.insert(value) {
            errors.push(FieldError::duplicate(format!("{values_path}[{j}]"), value));
        }
    }
    if values.windows(2).any(|w| w[0] > w[1]) {
        let rendered = serde_json::to_string(values).unwrap_or_default();
        errors.push(FieldError::invalid(
            &values_path,
            rendered,
            "must be ordered",
        ));
    }
}

fn validate_success_policy(
    policy: &SuccessPolicy,
    spec: &JobSpec,
    mode: Option<CompletionMode>,
    errors: &mut Vec<FieldError>,
) -> Vec<SuccessPolicyRule> {
    const PATH: &str = "spec.successPolicy";
    if mode != Some(CompletionMode::Indexed) {
        let rendered = serde_json::to_string(policy).unwrap_or_default();
        errors.push(FieldError::invalid(
            PATH,
            rendered,
            "requires indexed completion mode",
        ));
        return Vec::new();
    }
    if policy.rules.is_empty() {
        errors.push(FieldError::required(
            format!("{PATH}.rules"),
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if policy.rules.len() > MAX_SUCCESS_POLICY_RULES {
        errors.push(FieldError::too_many(
            format!("{PATH}.rules"),
            policy.rules.len(),
            MAX_SUCCESS_POLICY_RULES,
        ));
    }
    let completions = spec.completions.unwrap_or(0);
    let mut rules = Vec::new();
    for (i, rule) in policy.rules.iter().enumerate() {
        let path = format!("{PATH}.rules[{i}]");
        if rule.succeeded_count.is_none() && rule.succeeded_indexes.is_none() {
            errors.push(FieldError::required(
                &path,
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        let indexes =
            rule.succeeded_indexes.as_ref().and_then(|text| {
                match IndexSet::parse_strict(text, completions) {
                    Ok(set) => Some(set),
                    Err(message) => {
                        errors.push(FieldError::invalid_str(
                            format!("{path}.succeededIndexes"),
                            text,
                            &format!("error parsing succeededIndexes: {message}"),
                        ));
                        None
                    }
                }
            });
        if let Some(count) = rule.succeeded_count {
            let count_path = format!("{path}.succeededCount");
            if count < 0 {
                errors.push(FieldError::invalid(
                    &count_path,
                    count,
                    "must be greater than or equal to 0",
                ));
            }
            if count > completions {
                errors.push(FieldError::invalid(
                    &count_path,
                    count,
                    &format!(
                        "must be less than or equal to {completions} (the number of specified completions)"
                    ),
                ));
            }
            if let Some(set) = &indexes {
                if count as usize > set.len() {
                    errors.push(FieldError::invalid(
                        &count_path,
                        count,
                        &format!(
                            "must be less than or equal to {} (the number of indexes in the specified succeededIndexes field)",
                            set.len()
                        ),
                    ));
                }
            }
        }
        rules.push(SuccessPolicyRule {
            succeeded_indexes: indexes,
            succeeded_count: rule.succeeded_count,
        });
    }
    rules
}

/// The downward API's paths for env, as upstream lists them in its error (the two keyed ones
/// match any key).
const SUPPORTED_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels['<KEY>']",
    "metadata.annotations['<KEY>']",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The parts of pod-template validation that matter for running it, plus joblet's own
/// rule that every container names its command.
fn validate_pod_spec(pod: &PodSpec, emulation: Emulation, errors: &mut Vec<FieldError>) {
    const SPEC: &str = "spec.template.spec";
    if pod.containers.is_empty() {
        errors.push(FieldError::required(format!("{SPEC}.containers"), ""));
    }
    let runtime = match pod.runtime_class_name.as_deref() {
        None | Some("host") => Runtime::Host,
        Some("podman" | "docker") => Runtime::Image,
        Some(other) => {
            errors.push(
                FieldError::not_supported(
                    format!("{SPEC}.runtimeClassName"),
                    other,
                    &crate::defaults::RUNTIME_CLASSES,
                )
                .node_limit(),
            );
            Runtime::Host
        }
    };
    let mut names = HashSet::new();
    for (path, container) in containers_with_paths(pod) {
        let volumes = pod.volumes.as_deref().unwrap_or_default();
        validate_container(&path, container, runtime, volumes, &mut names, errors);
    }
    validate_container_restart_policies(pod, emulation, errors);
    if pod.resources.as_ref().is_some_and(|r| {
        r.limits.as_ref().is_some_and(|l| !l.is_empty())
            || r.requests.as_ref().is_some_and(|l| !l.is_empty())
    }) {
        errors.push(
            FieldError::forbidden(
                format!("{SPEC}.resources"),
                "joblet does not take pod-level resources yet: set them on each container",
            )
            .node_limit(),
        );
    }
    crate::scheduling::validate_scheduling(pod, SPEC, errors);
    let volumes = pod.volumes.as_deref().unwrap_or_default();
    crate::volumes::validate_volumes(volumes, &format!("{SPEC}.volumes"), errors);
    validate_names_of_the_pod(pod, SPEC, errors);
    if let Some(seconds) = pod.active_deadline_seconds {
        if seconds <= 0 {
            errors.push(FieldError::invalid(
                format!("{SPEC}.activeDeadlineSeconds"),
                seconds,
                "must be between 1 and 2147483647, inclusive",
            ));
        }
    }
    non_negative(
        "spec.template.spec.terminationGracePeriodSeconds",
        pod.termination_grace_period_seconds,
        errors,
    );
}

/// The names a pod's hosts file gives: its `hostname` and `subdomain` are DNS labels, each
/// of its `hostAliases` an IP address and DNS subdomains (`ValidatePodSpec`,
/// `ValidateHostAliases`).
fn validate_names_of_the_pod(pod: &PodSpec, spec: &str, errors: &mut Vec<FieldError>) {
    for (field, value) in [("hostname", &pod.hostname), ("subdomain", &pod.subdomain)] {
        let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        let path = format!("{spec}.{field}");
        if value.len() > 63 {
            errors.push(FieldError::invalid_str(
                &path,
                value,
                "must be no more than 63 characters",
            ));
        }
        if !is_dns1123_label(value) {
            errors.push(FieldError::invalid_str(&path, value, DNS1123_LABEL_ERROR));
        }
    }
    for (i, alias) in pod.host_aliases.iter().flatten().enumerate() {
        let path = format!("{spec}.hostAliases[{i}]");
        if alias.ip.parse::<std::net::IpAddr>().is_err() {
            errors.push(FieldError::invalid_str(
                format!("{path}.ip"),
                &alias.ip,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
        for (j, hostname) in alias.hostnames.iter().flatten().enumerate() {
            for detail in dns1123_subdomain_errors(hostname) {
                let path = format!("{path}.hostnames[{j}]");
                errors.push(FieldError::invalid_str(path, hostname, &detail));
            }
        }
    }
}

/// A container's own `restartPolicy` (`Always` makes an init container a sidecar) and its
/// `restartPolicyRules`: from 1.35 (ContainerRestartRules) any container may have them;
/// before, only a sidecar's `Always`.
fn validate_container_restart_policies(
    pod: &PodSpec,
    emulation: Emulation,
    errors: &mut Vec<FieldError>,
) {
    const SPEC: &str = "spec.template.spec";
    let inits = (pod.init_containers.iter().flatten().enumerate())
        .map(|(i, c)| (format!("{SPEC}.initContainers[{i}]"), c, true));
    let mains = (pod.containers.iter().enumerate())
        .map(|(i, c)| (format!("{SPEC}.containers[{i}]"), c, false));
    for (path, container, init) in inits.chain(mains) {
        if emulation.container_restart_rules() {
            validate_container_restart_policy(&path, container, emulation, errors);
            continue;
        }
        match (init, container.restart_policy.as_deref()) {
            (_, None) | (true, Some("Always")) => {}
            (true, Some(other)) => errors.push(FieldError::not_supported(
                format!("{path}.restartPolicy"),
                other,
                &["Always"],
            )),
            (false, Some(_)) => errors.push(FieldError::forbidden(
                format!("{path}.restartPolicy"),
                "may not be set for non-init containers",
            )),
        }
    }
}

const MAX_RESTART_RULES: usize = 20;
const MAX_RULE_EXIT_CODES: usize = 255;

/// `validateContainerRestartPolicy`: rules only beside the container's own policy, at most
/// 20 of them, each a `Restart` on exit codes `In` or `NotIn` at most 255 values.
fn validate_container_restart_policy(
    path: &str,
    container: &Container,
    emulation: Emulation,
    errors: &mut Vec<FieldError>,
) {
    let rules = container
        .restart_policy_rules
        .as_deref()
        .unwrap_or_default();
    let policy = format!("{path}.restartPolicy");
    match container.restart_policy.as_deref() {
        None if !rules.is_empty() => errors.push(FieldError::required(
            policy,
            "must specify restartPolicy when restart rules are used",
        )),
        None | Some("Always" | "OnFailure" | "Never") => {}
        Some(other) => errors.push(FieldError::not_supported(
            policy,
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    let rules_path = format!("{path}.restartPolicyRules");
    if rules.len() > MAX_RESTART_RULES {
        errors.push(FieldError::too_many(
            &rules_path,
            rules.len(),
            MAX_RESTART_RULES,
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        let here = format!("{rules_path}[{i}]");
        let actions: &'static [&str] = match emulation.restart_all_containers() {
            true => &["Restart", "RestartAllContainers"],
            false => &["Restart"],
        };
        if !actions.contains(&rule.action.as_str()) {
            errors.push(FieldError::not_supported(
                format!("{here}.action"),
                &rule.action,
                actions,
            ));
        }
        let Some(codes) = &rule.exit_codes else {
            errors.push(FieldError::required(
                format!("{here}.exitCodes"),
                "must be specified",
            ));
            continue;
        };
        if !matches!(codes.operator.as_str(), "In" | "NotIn") {
            errors.push(FieldError::not_supported(
                format!("{here}.exitCodes.operator"),
                &codes.operator,
                &["In", "NotIn"],
            ));
        }
        let values = codes.values.as_ref().map_or(0, Vec::len);
        if values > MAX_RULE_EXIT_CODES {
            errors.push(FieldError::too_many(
                format!("{here}.exitCodes.values"),
                values,
                MAX_RULE_EXIT_CODES,
            ));
        }
    }
}

/// Init containers, then containers, each with its path in a Job.
fn containers_with_paths(pod: &PodSpec) -> impl Iterator<Item = (String, &Container)> {
    const SPEC: &str = "spec.template.spec";
    let init = pod.init_containers.iter().flatten().enumerate();
    init.map(|(i, c)| (format!("{SPEC}.initContainers[{i}]"), c))
        .chain(
            pod.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("{SPEC}.containers[{i}]"), c)),
        )
}

/// Where a pod's containers run (`runtimeClassName`): what they may ask for depends on it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Runtime {
    /// Host processes: nothing from the image, no mounts, no memory limit.
    Host,
    /// Containers from images (podman or docker prepares them, runc runs them), with their
    /// volumes and limits.
    Image,
}

fn validate_container<'a>(
    path: &str,
    container: &'a Container,
    runtime: Runtime,
    volumes: &[Volume],
    names: &mut HashSet<&'a str>,
    errors: &mut Vec<FieldError>,
) {
    let name = container.name.as_str();
    if name.is_empty() {
        errors.push(FieldError::required(format!("{path}.name"), ""));
    } else if !is_dns1123_label(name) {
        errors.push(FieldError::invalid_str(
            format!("{path}.name"),
            name,
            DNS1123_LABEL_ERROR,
        ));
    } else if !names.insert(name) {
        errors.push(FieldError::duplicate(
            format!("{path}.name"),
            format!("{name:?}"),
        ));
    }
    if container.image.as_deref().unwrap_or("").is_empty() {
        errors.push(FieldError::required(format!("{path}.image"), ""));
    }
    if runtime == Runtime::Host && container.command.as_ref().is_none_or(Vec::is_empty) {
        errors.push(FieldError::required(
            format!("{path}.command"),
            format!(
                "joblet runs container {name:?} as a host command and does not read image entrypoints; set command, or run the image's with --runtime podman|docker or runtimeClassName: podman|docker"
            ),
        ).node_limit());
    }
    refuse_what_a_runtime_cannot_give(path, container, runtime, volumes, errors);
    if let Some(resources) = &container.resources {
        crate::resources::validate_resources(&format!("{path}.resources"), resources, errors);
    }
    if let Some(sc) = &container.security_context {
        validate_security_context(&format!("{path}.securityContext"), sc, errors);
    }
    for (j, env) in container.env.iter().flatten().enumerate() {
        let env_path = format!("{path}.env[{j}]");
        if env.name.is_empty() {
            errors.push(FieldError::required(format!("{env_path}.name"), ""));
        } else if !is_relaxed_env_var_name(&env.name) {
            // Upstream's relaxed rule (GA in 1.34); a NUL could not reach a process anyway.
            errors.push(FieldError::invalid_str(
                format!("{env_path}.name"),
                &env.name,
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
        if let Some(source) = &env.value_from {
            validate_env_source(&env_path, env.value.as_deref(), source, errors);
        }
    }
    for (j, from) in container.env_from.iter().flatten().enumerate() {
        let from_path = format!("{path}.envFrom[{j}]");
        if let Some(prefix) = from.prefix.as_deref().filter(|p| !p.is_empty()) {
            if !is_relaxed_env_var_name(prefix) {
                errors.push(FieldError::invalid_str(
                    format!("{from_path}.prefix"),
                    prefix,
                    "a valid environment variable name must consist only of printable ASCII characters other than '='",
                ));
            }
        }
        let names = [
            (
                "configMapRef",
                from.config_map_ref.as_ref().map(|r| &r.name),
            ),
            ("secretRef", from.secret_ref.as_ref().map(|r| &r.name)),
        ];
        for (field, name) in names {
            match name {
                Some(name) if name.is_empty() => errors.push(FieldError::required(
                    format!("{from_path}.{field}.name"),
                    "",
                )),
                Some(name) => {
                    for detail in dns1123_subdomain_errors(name) {
                        errors.push(FieldError::invalid_str(
                            format!("{from_path}.{field}.name"),
                            name,
                            &detail,
                        ));
                    }
                }
                None => {}
            }
        }
        let sources = names.iter().filter(|(_, n)| n.is_some()).count();
        let path = format!("{path}.envFrom");
        match sources {
            0 => errors.push(FieldError::invalid_str(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            )),
            1 => {}
            _ => errors.push(FieldError::invalid_str(
                path,
                "",
                "may not have more than one field specified at a time",
            )),
        }
    }
}

/// A `resourceFieldRef` of an env var (`validateContainerResourceFieldSelector`): a resource
/// of the container, and a divisor its unit allows.
pub(crate) fn validate_resource_field(
    path: &str,
    selector: &ResourceFieldSelector,
    errors: &mut Vec<FieldError>,
) {
    const RESOURCES: &[&str] = &[
        "limits.cpu",
        "limits.ephemeral-storage",
        "limits.memory",
        "requests.cpu",
        "requests.ephemeral-storage",
        "requests.memory",
    ];
    let resource = selector.resource.as_str();
    let hugepages = ["limits.hugepages-", "requests.hugepages-"]
        .iter()
        .any(|p| resource.starts_with(p));
    if resource.is_empty() {
        errors.push(FieldError::required(format!("{path}.resource"), ""));
    } else if !RESOURCES.contains(&resource) && !hugepages {
        errors.push(FieldError::not_supported(
            format!("{path}.resource"),
            resource,
            RESOURCES,
        ));
    }
    let Some(divisor) = selector
        .divisor
        .as_ref()
        .and_then(|d| Quantity::parse(&d.0))
    else {
        return;
    };
    if divisor.value() == 0 && divisor.milli_value() == 0 {
        return; // an unset divisor: 1
    }
    const BYTES: &[&str] = &[
        "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
    ];
    let (allowed, unit): (&[&str], &str) = match resource {
        "limits.cpu" | "requests.cpu" => (&["1m", "1"], "cpu"),
        "limits.memory" | "requests.memory" => (BYTES, "memory"),
        "limits.ephemeral-storage" | "requests.ephemeral-storage" => {
            (BYTES, "local ephemeral storage")
        }
        _ => return,
    };
    let allowed = allowed
        .iter()
        .filter_map(|a| Quantity::parse(a))
        .any(|a| a.binary == divisor.binary && a.same_amount(&divisor));
    if !allowed {
        let values = if unit == "cpu" {
            "1m and 1".to_string()
        } else {
            BYTES.join(", ")
        };
        errors.push(FieldError::invalid_str(
            format!("{path}.divisor"),
            resource,
            &format!("only divisor's values {values} are supported with the {unit} resource"),
        ));
    }
}

/// `metadata.labels['KEY']` or `metadata.annotations['KEY']`: one label or annotation.
pub(crate) fn is_keyed_field_path(path: &str) -> bool {
    ["metadata.labels['", "metadata.annotations['"]
        .iter()
        .any(|p| path.starts_with(p) && path.ends_with("']"))
}

/// An env var's `valueFrom` (`validateEnvVarValueFrom`): one source, and no `value` beside it.
fn validate_env_source(
    path: &str,
    value: Option<&str>,
    source: &EnvVarSource,
    errors: &mut Vec<FieldError>,
) {
    let mut sources = 0;
    if let Some(field_ref) = &source.field_ref {
        sources += 1;
        let field_path = field_ref.field_path.as_str();
        if !is_keyed_field_path(field_path) && !SUPPORTED_FIELD_PATHS.contains(&field_path) {
            errors.push(FieldError::not_supported(
                format!("{path}.valueFrom.fieldRef.fieldPath"),
                field_path,
                SUPPORTED_FIELD_PATHS,
            ));
        }
    }
    let keyed = [
        (
            "configMapKeyRef",
            source
                .config_map_key_ref
                .as_ref()
                .map(|r| (&r.name, &r.key)),
        ),
        (
            "secretKeyRef",
            source.secret_key_ref.as_ref().map(|r| (&r.name, &r.key)),
        ),
    ];
    for (field, selector) in keyed {
        let Some((name, key)) = selector else {
            continue;
        };
        sources += 1;
        let here = format!("{path}.valueFrom.{field}");
        for detail in dns1123_subdomain_errors(name) {
            errors.push(FieldError::invalid_str(
                format!("{here}.name"),
                name,
                &detail,
            ));
        }
        if key.is_empty() {
            errors.push(FieldError::required(format!("{here}.key"), ""));
        } else {
            for detail in config_key_errors(key) {
                errors.push(FieldError::invalid_str(format!("{here}.key"), key, &detail));
            }
        }
    }
    if source.file_key_ref.is_some() {
        sources += 1;
        errors.push(
            FieldError::forbidden(
                format!("{path}.valueFrom.fileKeyRef"),
                "joblet does not read environment variables from env files (EnvFiles)",
            )
            .node_limit(),
        );
    }
    if let Some(selector) = &source.resource_field_ref {
        sources += 1;
        validate_resource_field(
            &format!("{path}.valueFrom.resourceFieldRef"),
            selector,
            errors,
        );
    }
    let path = format!("{path}.valueFrom");
    if sources == 0 {
        errors.push(FieldError::invalid_str(
            path,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ));
    } else if value.is_some_and(|v| !v.is_empty()) {
        errors.push(FieldError::invalid_str(
            path,
            "",
            "may not be specified when `value` is not empty",
        ));
    } else if sources > 1 {
        errors.push(FieldError::invalid_str(
            path,
            "",
            "may not have more than one field specified at a time",
        ));
    }
}

/// What the pod's runtime would silently get wrong, refused before anything runs: on the
/// host a mount would read and write the host's own path and a memory limit would not
/// hold; the container runtimes mount what `validate_mounts` allows and enforces limits.
fn refuse_what_a_runtime_cannot_give(
    path: &str,
    container: &Container,
    runtime: Runtime,
    volumes: &[Volume],
    errors: &mut Vec<FieldError>,
) {
    match (runtime, container.volume_mounts.iter().flatten().next()) {
        (Runtime::Host, Some(mount)) => errors.push(FieldError::forbidden(
            format!("{path}.volumeMounts"),
            format!(
                "joblet runs containers as host processes and cannot mount volumes: {:?} would be the host's own directory; --runtime podman|docker or runtimeClassName: podman|docker mounts them",
                mount.mount_path
            ),
        )),
        (Runtime::Image, Some(_)) => {
            crate::volumes::validate_mounts(volumes, container, path, errors)
        }
        (_, None) => {}
    }
    if container
        .volume_devices
        .as_ref()
        .is_some_and(|d| !d.is_empty())
    {
        errors.push(
            FieldError::forbidden(
                format!("{path}.volumeDevices"),
                "joblet cannot attach devices to containers",
            )
            .node_limit()
            .node_limit(),
        );
    }
    let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
    if runtime == Runtime::Host && limits.is_some_and(|l| l.contains_key("memory")) {
        errors.push(FieldError::forbidden(
            format!("{path}.resources.limits.memory"),
            "joblet runs containers as host processes and cannot enforce a memory limit; --runtime podman|docker or runtimeClassName: podman|docker does",
        ).node_limit());
    }
}

/// `ValidateSecurityContext`: ids in range, and no privilege escalation refused to a
/// container that is given it anyway.
fn validate_security_context(path: &str, sc: &SecurityContext, errors: &mut Vec<FieldError>) {
    for (field, id) in [
        ("runAsUser", sc.run_as_user),
        ("runAsGroup", sc.run_as_group),
    ] {
        if let Some(id) = id.filter(|id| !(0..=i64::from(i32::MAX)).contains(id)) {
            errors.push(FieldError::invalid(
                format!("{path}.{field}"),
                id,
                "must be between 0 and 2147483647, inclusive",
            ));
        }
    }
    if sc.allow_privilege_escalation != Some(false) {
        return;
    }
    let shown = || serde_json::to_string(sc).unwrap_or_default();
    if sc.privileged == Some(true) {
        errors.push(FieldError::invalid(
            path,
            shown(),
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ));
    }
    let added = sc.capabilities.as_ref().and_then(|c| c.add.as_ref());
    if added.is_some_and(|add| add.iter().any(|c| c == "CAP_SYS_ADMIN")) {
        errors.push(FieldError::invalid(
            path,
            shown(),
            "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
        ));
    }
}

/// The fields of a container's security context the container runtimes do not apply, each
/// with whether it is set.
fn unapplied_fields(sc: &SecurityContext) -> Vec<(&'static str, bool)> {
    let mut fields = vec![
        ("seLinuxOptions", sc.se_linux_options.is_some()),
        ("windowsOptions", sc.windows_options.is_some()),
        (
            "procMount",
            sc.proc_mount.as_deref().is_some_and(|m| m != "Default"),
        ),
        ("privileged", sc.privileged == Some(true)),
    ];
    fields.extend(profile_fields(
        sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        sc.app_armor_profile.as_ref().map(|p| p.type_.as_str()),
    ));
    fields
}

/// A seccomp or AppArmor profile other than `Unconfined`, which is what every joblet
/// container gets (as a pod that names no profile on a node without `SeccompDefault`).
fn profile_fields(seccomp: Option<&str>, app_armor: Option<&str>) -> [(&'static str, bool); 2] {
    [
        ("seccompProfile", seccomp.is_some_and(|t| t != "Unconfined")),
        (
            "appArmorProfile",
            app_armor.is_some_and(|t| t != "Unconfined"),
        ),
    ]
}

fn security_not_applied(path: &str, fields: &[(&str, bool)], warnings: &mut Vec<String>) {
    for (field, _) in fields.iter().filter(|(_, set)| *set) {
        let what = if *field == "privileged" {
            "gives all capabilities, but not the host's devices"
        } else {
            "not applied by joblet's container runtimes"
        };
        warnings.push(format!("{path}.{field}: {what}"));
    }
}

/// Fields the host runtime does not act on but whose absence changes no result, each a
/// warning (`path: detail`) for the user to see, as the API server's warnings are shown.
pub fn runtime_warnings(job: &Job) -> Vec<String> {
    const SPEC: &str = "spec.template.spec";
    let Some(pod) = job.spec.as_ref().and_then(|s| s.template.spec.as_ref()) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    let on_host = pod
        .runtime_class_name
        .as_deref()
        .is_none_or(|c| c == "host");
    for (path, container) in containers_with_paths(pod) {
        let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
        if on_host && limits.is_some_and(|l| l.contains_key("cpu")) {
            warnings.push(format!(
                "{path}.resources.limits.cpu: not enforced: joblet runs containers as host processes"
            ));
        }
        let probes = [
            ("livenessProbe", container.liveness_probe.is_some()),
            ("readinessProbe", container.readiness_probe.is_some()),
            ("startupProbe", container.startup_probe.is_some()),
            ("lifecycle", container.lifecycle.is_some()),
        ];
        for (field, _) in probes.iter().filter(|(_, set)| *set) {
            warnings.push(format!(
                "{path}.{field}: ignored: joblet runs no probes or hooks"
            ));
        }
        if let Some(sc) = container.security_context.as_ref() {
            if on_host && *sc != Default::default() {
                warnings.push(format!(
                    "{path}.securityContext: ignored: the container runs as joblet's own user"
                ));
            } else if !on_host {
                security_not_applied(
                    &format!("{path}.securityContext"),
                    &unapplied_fields(sc),
                    &mut warnings,
                );
            }
        }
    }
    // Defaulting sets it to `{}`: only what the user wrote is worth a word.
    if let Some(sc) = pod.security_context.as_ref() {
        let path = format!("{SPEC}.securityContext");
        if on_host && *sc != Default::default() {
            warnings.push(format!(
                "{path}: ignored: the pod runs as joblet's own user"
            ));
        } else if !on_host {
            let mut fields = vec![
                ("seLinuxOptions", sc.se_linux_options.is_some()),
                ("seLinuxChangePolicy", sc.se_linux_change_policy.is_some()),
                (
                    "sysctls",
                    sc.sysctls.as_ref().is_some_and(|s| !s.is_empty()),
                ),
                ("windowsOptions", sc.windows_options.is_some()),
                (
                    "supplementalGroupsPolicy",
                    sc.supplemental_groups_policy.as_deref() == Some("Strict"),
                ),
            ];
            fields.extend(profile_fields(
                sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
                sc.app_armor_profile.as_ref().map(|p| p.type_.as_str()),
            ));
            security_not_applied(&path, &fields, &mut warnings);
        }
    }
    if pod
        .image_pull_secrets
        .as_ref()
        .is_some_and(|s| !s.is_empty())
    {
        let how = if on_host {
            "the host runtime pulls no images"
        } else {
            "joblet's container runtimes pull with the engine's own credentials (podman login, docker login)"
        };
        warnings.push(format!("{SPEC}.imagePullSecrets: not used: {how}"));
    }
    if on_host && pod.host_aliases.as_ref().is_some_and(|a| !a.is_empty()) {
        warnings.push(format!(
            "{SPEC}.hostAliases: not applied: host pods see the machine's /etc/hosts (the container runtimes write them into each pod's)"
        ));
    }
    if pod.dns_config.is_some() {
        warnings.push(format!(
            "{SPEC}.dnsConfig: not applied: joblet's pods use the machine's /etc/resolv.conf"
        ));
    }
    if pod.set_hostname_as_fqdn == Some(true) {
        warnings.push(format!(
            "{SPEC}.setHostnameAsFQDN: not applied: the pod's hostname stays its short name (its FQDN is in its /etc/hosts)"
        ));
    }
    for (i, volume) in pod.volumes.iter().flatten().enumerate() {
        let Some(empty) = volume.empty_dir.as_ref() else {
            continue;
        };
        if !on_host && empty.size_limit.is_some() && empty.medium.as_deref() != Some("Memory") {
            warnings.push(format!(
                "{SPEC}.volumes[{i}].emptyDir.sizeLimit: not enforced: joblet limits only a memory-backed emptyDir (medium: Memory)"
            ));
        }
    }
    warnings
}

/// apimachinery's `IsRelaxedEnvVarName`: printable ASCII but `=`.
fn is_relaxed_env_var_name(name: &str) -> bool {
    name.chars().all(|c| (' '..='~').contains(&c) && c != '=')
}

pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    const BASE: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: foobar}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox, command: ["true"]}]
"#;

    /// Applies a JSON merge patch to the base manifest, prepares and validates it.
    fn errors_for(patch: serde_json::Value) -> Vec<String> {
        errors_for_as(patch, Emulation::default())
    }

    fn errors_for_as(patch: serde_json::Value, emulation: Emulation) -> Vec<String> {
        let mut value = crate::yaml::document(BASE).unwrap();
        merge(&mut value, patch);
        let mut job: Job = serde_json::from_value(value).unwrap();
        crate::prepare_for_create(&mut job, "1a2b3c", Timestamp::UNIX_EPOCH);
        match validate_job_as(&job, emulation) {
            Ok(_) => Vec::new(),
            Err(invalid) => invalid.errors.iter().map(ToString::to_string).collect(),
        }
    }

    pub(crate) fn merge(target: &mut serde_json::Value, patch: serde_json::Value) {
        match (target, patch) {
            (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
                for (k, v) in p {
                    merge(t.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (t, p) => *t = p,
        }
    }

    fn first_error(patch: serde_json::Value) -> String {
        errors_for(patch).into_iter().next().unwrap_or_default()
    }

    use serde_json::json;

    #[test]
    fn base_is_valid() {
        assert_eq!(errors_for(json!({})), Vec::<String>::new());
    }

    #[test]
    fn env_var_names_are_printable_ascii_without_equals() {
        let with_env = |name: &str| {
            json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox",
                "command": ["true"], "env": [{"name": name, "value": "x"}]}]}}}})
        };
        assert_eq!(errors_for(with_env("my.env-name 1!")), Vec::<String>::new());
        let detail = "a valid environment variable name must consist only of printable ASCII characters other than '='";
        assert_eq!(
            first_error(with_env("A\u{0}B")),
            format!("spec.template.spec.containers[0].env[0].name: Invalid value: \"A\\x00B\": {detail}")
        );
        assert_eq!(
            first_error(with_env("A=B")),
            format!(
                "spec.template.spec.containers[0].env[0].name: Invalid value: \"A=B\": {detail}"
            )
        );
        assert_eq!(
            first_error(with_env("é")),
            format!("spec.template.spec.containers[0].env[0].name: Invalid value: \"é\": {detail}")
        );
    }

    #[test]
    fn tc121_tc122_negative_numbers() {
        assert_eq!(
            first_error(json!({"spec": {"parallelism": -1}})),
            "spec.parallelism: Invalid value: -1: must be greater than or equal to 0"
        );
        for field in [
            "completions",
            "backoffLimit",
            "activeDeadlineSeconds",
            "ttlSecondsAfterFinished",
        ] {
            assert_eq!(
                first_error(json!({"spec": {field: -1}})),
                format!("spec.{field}: Invalid value: -1: must be greater than or equal to 0")
            );
        }
    }

    #[test]
    fn tc123_tc124_indexed_rules() {
        assert_eq!(
            first_error(
                json!({"spec": {"completionMode": "Indexed", "completions": null, "parallelism": 2}})
            ),
            "spec.completions: Required value: when completion mode is Indexed"
        );
        assert_eq!(
            first_error(json!({"spec": {"completionMode": "Indexed", "completions": 2, "parallelism": 100001}})),
            "spec.parallelism: Invalid value: 100001: must be less than or equal to 100000 when completion mode is Indexed"
        );
        assert_eq!(
            first_error(json!({"spec": {"completionMode": "Sideways"}})),
            "spec.completionMode: Unsupported value: \"Sideways\": supported values: \"NonIndexed\", \"Indexed\""
        );
    }

    #[test]
    fn tc125_to_tc130_per_index_rules() {
        assert_eq!(
            first_error(json!({"spec": {"backoffLimitPerIndex": 1}})),
            "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode"
        );
        assert_eq!(
            first_error(
                json!({"spec": {"completionMode": "Indexed", "completions": 10, "backoffLimitPerIndex": 1, "maxFailedIndexes": 11}})
            ),
            "spec.maxFailedIndexes: Invalid value: 11: must be less than or equal to completions"
        );
        assert_eq!(
            first_error(json!({"metadata": {"name": "a"}, "spec": {"completionMode": "Indexed", "completions": 100001, "backoffLimitPerIndex": 1}})),
            "spec.maxFailedIndexes: Required value: must be specified when completions is above 100000"
        );
        assert_eq!(
            first_error(json!({"metadata": {"name": "a"}, "spec": {"completionMode": "Indexed", "completions": 100001, "backoffLimitPerIndex": 1, "maxFailedIndexes": 1, "parallelism": 50000}})),
            "spec.parallelism: Invalid value: 50000: must be less than or equal to 10000 when completions are above 100000 and used with backoff limit per index"
        );
        assert_eq!(
            first_error(
                json!({"spec": {"completionMode": "Indexed", "completions": 2, "maxFailedIndexes": 1}})
            ),
            "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified"
        );
    }

    #[test]
    fn before_1_35_a_container_restart_policy_makes_a_sidecar_of_an_init_container_only() {
        let spec = |init: serde_json::Value, main: serde_json::Value| json!({"spec": {"template": {"spec": {"initContainers": [init], "containers": [main]}}}});
        let c = |name: &str, policy: Option<&str>| json!({"name": name, "image": "busybox", "command": ["true"], "restartPolicy": policy});
        assert!(errors_for(spec(c("proxy", Some("Always")), c("main", None))).is_empty());
        // From 1.35 any container may have its own policy.
        let own = spec(c("proxy", Some("OnFailure")), c("main", Some("Always")));
        assert!(errors_for(own.clone()).is_empty());
        assert_eq!(
            errors_for_as(own, "1.34".parse().unwrap()),
            [
                "spec.template.spec.initContainers[0].restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
                "spec.template.spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
            ]
        );
    }

    #[test]
    fn env_files_are_refused_with_their_path() {
        let errors = errors_for(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "main", "image": "busybox", "command": ["true"],
             "env": [{"name": "V", "valueFrom": {"fileKeyRef": {"volumeName": "v", "path": "p", "key": "k"}}}]}]}}}}));
        assert_eq!(
            errors,
            ["spec.template.spec.containers[0].env[0].valueFrom.fileKeyRef: Forbidden: joblet does not read environment variables from env files (EnvFiles)"]
        );
    }

    /// The errors of a Job whose first container has these fields, by the rules of `emulation`.
    fn container_errors(container: serde_json::Value, emulation: Emulation) -> Vec<String> {
        let mut value = crate::yaml::document(BASE).unwrap();
        let mut main = json!({"name": "main", "image": "busybox", "command": ["true"]});
        merge(&mut main, container);
        merge(
            &mut value,
            json!({"spec": {"template": {"spec": {"containers": [main]}}}}),
        );
        let mut job: Job = serde_json::from_value(value).unwrap();
        crate::version::drop_disabled_fields(&mut job, emulation);
        crate::prepare_for_create(&mut job, "1a2b3c", Timestamp::UNIX_EPOCH);
        match validate_job_as(&job, emulation) {
            Ok(_) => Vec::new(),
            Err(invalid) => invalid.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn container_restart_rules_are_validated_as_validate_container_restart_policy() {
        let rule = |operator: &str, values: Vec<i32>| json!({"action": "Restart", "exitCodes": {"operator": operator, "values": values}});
        let path = "spec.template.spec.containers[0]";
        let now = Emulation::default();
        let cases = [
            (json!({"restartPolicy": "Never", "restartPolicyRules": [rule("In", vec![42])]}), vec![]),
            (json!({"restartPolicy": "OnFailure", "restartPolicyRules": [rule("NotIn", vec![0, 1])]}), vec![]),
            (json!({"restartPolicy": "Always"}), vec![]),
            (
                json!({"restartPolicyRules": [rule("In", vec![42])]}),
                vec![format!("{path}.restartPolicy: Required value: must specify restartPolicy when restart rules are used")],
            ),
            (
                json!({"restartPolicy": "Sometimes"}),
                vec![format!("{path}.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"")],
            ),
            (
                json!({"restartPolicy": "Never", "restartPolicyRules": vec![rule("In", vec![1]); 21]}),
                vec![format!("{path}.restartPolicyRules: Too many: 21: must have at most 20 items")],
            ),
            (
                json!({"restartPolicy": "Never", "restartPolicyRules": [rule("In", (0..256).collect())]}),
                vec![format!("{path}.restartPolicyRules[0].exitCodes.values: Too many: 256: must have at most 255 items")],
            ),
            (
                json!({"restartPolicy": "Never", "restartPolicyRules": [
                    {"action": "DoNotRestart", "exitCodes": {"operator": "In", "values": [3]}},
                    {"action": "Restart", "exitCodes": {"operator": "Equals", "values": [3]}},
                    {"action": "Restart"}]}),
                vec![
                    format!("{path}.restartPolicyRules[0].action: Unsupported value: \"DoNotRestart\": supported values: \"Restart\", \"RestartAllContainers\""),
                    format!("{path}.restartPolicyRules[1].exitCodes.operator: Unsupported value: \"Equals\": supported values: \"In\", \"NotIn\""),
                    format!("{path}.restartPolicyRules[2].exitCodes: Required value: must be specified"),
                ],
            ),
        ];
        for (container, expected) in cases {
            assert_eq!(
                container_errors(container.clone(), now),
                expected,
                "{container}"
            );
        }
    }

    #[test]
    fn restart_all_containers_is_an_action_from_1_36() {
        let container = json!({"restartPolicy": "Never", "restartPolicyRules": [
            {"action": "RestartAllContainers", "exitCodes": {"operator": "In", "values": [42]}}]});
        for minor in ["1.36", "1.37"] {
            let errors = container_errors(container.clone(), minor.parse().unwrap());
            assert_eq!(errors, Vec::<String>::new(), "{minor}");
        }
        assert_eq!(
            container_errors(container, "1.35".parse().unwrap()),
            ["spec.template.spec.containers[0].restartPolicyRules[0].action: Unsupported value: \"RestartAllContainers\": supported values: \"Restart\""]
        );
    }

    #[test]
    fn emulating_1_34_drops_the_rules_and_refuses_a_main_containers_policy() {
        let old = "1.34".parse().unwrap();
        let rules = json!([{"action": "Restart", "exitCodes": {"operator": "In", "values": [42]}}]);
        assert_eq!(
            container_errors(json!({"restartPolicyRules": rules}), old),
            Vec::<String>::new()
        );
        assert_eq!(
            container_errors(json!({"restartPolicy": "Never", "restartPolicyRules": rules}), old),
            ["spec.template.spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"]
        );
        assert!(
            container_errors(json!({"restartPolicy": "Never"}), "1.35".parse().unwrap()).is_empty()
        );
    }

    #[test]
    fn tc131_to_tc133_restart_policy() {
        assert_eq!(
            first_error(json!({"spec": {"template": {"spec": {"restartPolicy": null}}}})),
            "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
        );
        assert_eq!(
            first_error(json!({"spec": {"template": {"spec": {"restartPolicy": "Invalid"}}}})),
            "spec.template.spec.restartPolicy: Unsupported value: \"Invalid\": supported values: \"OnFailure\", \"Never\""
        );
        assert_eq!(
            first_error(json!({"spec": {
                "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
                "template": {"spec": {"restartPolicy": "OnFailure"}}}})),
            "spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified"
        );
    }

    #[test]
    fn tc134_to_tc144_failure_policy() {
        let rule = |r: serde_json::Value| {
            first_error(json!({"spec": {"podFailurePolicy": {"rules": [r]}}}))
        };
        assert_eq!(
            rule(json!({"action": "", "onExitCodes": {"operator": "In", "values": [1]}})),
            "spec.podFailurePolicy.rules[0].action: Required value: valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]"
        );
        assert_eq!(
            rule(json!({"action": "UnknownAction", "onExitCodes": {"operator": "In", "values": [1]}})),
            "spec.podFailurePolicy.rules[0].action: Unsupported value: \"UnknownAction\": supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\""
        );
        assert_eq!(
            rule(
                json!({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [12, 13, 13, 13]}})
            ),
            "spec.podFailurePolicy.rules[0].onExitCodes.values[2]: Duplicate value: 13"
        );
        assert_eq!(
            rule(json!({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [19, 11]}})),
            "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: [19,11]: must be ordered"
        );
        assert_eq!(
            rule(json!({"action": "FailJob", "onExitCodes": {"operator": "In", "values": []}})),
            "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []: at least one value is required"
        );
        assert_eq!(
            rule(json!({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1, 0, 2]}})),
            "spec.podFailurePolicy.rules[0].onExitCodes.values[1]: Invalid value: 0: must not be 0 for the In operator"
        );
        assert_eq!(
            rule(json!({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}, "onPodConditions": [{"type": "X"}]})),
            "spec.podFailurePolicy.rules[0]: Invalid value: specifying both OnExitCodes and OnPodConditions is not supported"
        );
        assert_eq!(
            rule(json!({"action": "Ignore", "onPodConditions": [{"type": ""}]})),
            "spec.podFailurePolicy.rules[0].onPodConditions[0].type: Invalid value: \"\": name part must be non-empty"
        );
        assert_eq!(
            rule(json!({"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [1]}})),
            "spec.podFailurePolicy.rules[0].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set"
        );
    }

    #[test]
    fn tc145_tc146_replacement_policy() {
        assert_eq!(
            first_error(json!({"spec": {"podReplacementPolicy": "TerminatingOrFailed",
                "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}})),
            "spec.podReplacementPolicy: Unsupported value: \"TerminatingOrFailed\": supported values: \"Failed\""
        );
        assert_eq!(
            first_error(json!({"spec": {"podReplacementPolicy": ""}})),
            "spec.podReplacementPolicy: Unsupported value: \"\": supported values: \"Failed\", \"TerminatingOrFailed\""
        );
    }

    #[test]
    fn tc147_to_tc150_selectors() {
        assert_eq!(
            first_error(json!({"spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"y": "z"}}}}})),
            "spec.template.metadata.labels: Invalid value: {\"y\":\"z\"}: `selector` does not match template `labels`"
        );
        assert_eq!(
            first_error(json!({"spec": {"selector": {"matchLabels": {"a": "b"}}}})),
            "spec.selector: Invalid value: {\"matchLabels\":{\"a\":\"b\",\"batch.kubernetes.io/controller-uid\":\"1a2b3c\"}}: `selector` not auto-generated"
        );
        assert_eq!(
            first_error(json!({"spec": {"template": {"metadata": {"labels": {"controller-uid": "other"}}}}})),
            "spec.template.metadata.labels[controller-uid]: Invalid value: \"other\": must be '1a2b3c'"
        );
        assert_eq!(
            first_error(json!({"spec": {"manualSelector": true}})),
            "spec.selector: Required value"
        );
    }

    #[test]
    fn tc152_to_tc157_success_policy() {
        let indexed = |policy: serde_json::Value| {
            first_error(
                json!({"spec": {"completionMode": "Indexed", "completions": 5, "successPolicy": policy}}),
            )
        };
        assert_eq!(
            indexed(json!({"rules": []})),
            "spec.successPolicy.rules: Required value: at least one rules must be specified when the successPolicy is specified"
        );
        assert_eq!(
            indexed(json!({"rules": [{}]})),
            "spec.successPolicy.rules[0]: Required value: at least one of succeededCount or succeededIndexes must be specified"
        );
        assert_eq!(
            indexed(json!({"rules": [{"succeededCount": 6}]})),
            "spec.successPolicy.rules[0].succeededCount: Invalid value: 6: must be less than or equal to 5 (the number of specified completions)"
        );
        assert_eq!(
            indexed(json!({"rules": [{"succeededIndexes": "0-1", "succeededCount": 3}]})),
            "spec.successPolicy.rules[0].succeededCount: Invalid value: 3: must be less than or equal to 2 (the number of indexes in the specified succeededIndexes field)"
        );
        assert_eq!(
            indexed(json!({"rules": [{"succeededIndexes": "3-1"}]})),
            "spec.successPolicy.rules[0].succeededIndexes: Invalid value: \"3-1\": error parsing succeededIndexes: non-increasing order, previous: 3, current: 1"
        );
        assert!(first_error(json!({"spec": {"successPolicy": {"rules": [{"succeededCount": 1}]}}}))
            .starts_with("spec.successPolicy: Invalid value: {\"rules\":[{\"succeededCount\":1}]}: requires indexed completion mode"));
    }

    #[test]
    fn tc054_name_too_long_for_indexed_hostnames() {
        let name = "a".repeat(62);
        assert_eq!(
            first_error(json!({"metadata": {"name": name}, "spec": {"completionMode": "Indexed", "completions": 10, "parallelism": 1}})),
            format!("metadata.name: Invalid value: \"{name}\": will not able to create pod with invalid DNS label: {name}-9")
        );
    }

    #[test]
    fn container_without_command_is_named_and_all_errors_are_reported() {
        let errors = errors_for(json!({"spec": {"parallelism": -1, "template": {"spec": {
            "containers": [{"name": "resize", "image": "imagetools:v1"}]}}}}));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[1].starts_with("spec.template.spec.containers[0].command: Required value: joblet runs container \"resize\""));
    }

    #[test]
    fn env_sources_are_checked_as_the_api_server_checks_them() {
        let env = |env: serde_json::Value, env_from: serde_json::Value| {
            errors_for(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "main", "image": "busybox", "command": ["true"], "env": env, "envFrom": env_from}]}}}}))
        };
        let path = "spec.template.spec.containers[0]";
        assert!(env(
            json!([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "a.b"}}},
                   {"name": "B", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw", "optional": true}}}]),
            json!([{"configMapRef": {"name": "settings"}}, {"prefix": "DB_", "secretRef": {"name": "creds"}}])
        )
        .is_empty());
        assert_eq!(
            env(
                json!([{"name": "A", "value": "x", "valueFrom": {"configMapKeyRef": {"name": "s", "key": ""}}},
                       {"name": "B", "valueFrom": {}}]),
                json!([{"configMapRef": {"name": ""}, "secretRef": {"name": "Creds"}}])
            ),
            [
                format!("{path}.env[0].valueFrom.configMapKeyRef.key: Required value"),
                format!("{path}.env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty"),
                format!("{path}.env[1].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"),
                format!("{path}.envFrom[0].configMapRef.name: Required value"),
                format!("{path}.envFrom[0].secretRef.name: Invalid value: \"Creds\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
                format!("{path}.envFrom: Invalid value: \"\": may not have more than one field specified at a time"),
            ]
        );
    }

    #[test]
    fn a_resource_field_names_a_resource_and_a_divisor_its_unit_allows() {
        let env = |selector: serde_json::Value| {
            errors_for(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "main", "image": "busybox", "command": ["true"],
                 "env": [{"name": "V", "valueFrom": {"resourceFieldRef": selector}}]}]}}}}))
        };
        let path = "spec.template.spec.containers[0].env[0].valueFrom.resourceFieldRef";
        for ok in [
            json!({"resource": "limits.cpu", "divisor": "1m"}),
            json!({"resource": "requests.memory", "divisor": "1Mi"}),
            json!({"resource": "limits.memory", "divisor": "1000k"}),
            json!({"resource": "limits.hugepages-2Mi"}),
        ] {
            assert_eq!(env(ok.clone()), Vec::<String>::new(), "{ok}");
        }
        assert_eq!(
            env(json!({"resource": "limits.gpu"})),
            [format!("{path}.resource: Unsupported value: \"limits.gpu\": supported values: \"limits.cpu\", \"limits.ephemeral-storage\", \"limits.memory\", \"requests.cpu\", \"requests.ephemeral-storage\", \"requests.memory\"")]
        );
        assert_eq!(
            env(json!({"resource": "limits.cpu", "divisor": "2"})),
            [format!("{path}.divisor: Invalid value: \"limits.cpu\": only divisor's values 1m and 1 are supported with the cpu resource")]
        );
        assert_eq!(
            env(json!({"resource": "limits.memory", "divisor": "1024"})),
            [format!("{path}.divisor: Invalid value: \"limits.memory\": only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource")]
        );
    }

    #[test]
    fn a_cluster_judges_what_only_joblets_node_cannot_run() {
        let job = |pod: serde_json::Value| {
            let mut value = crate::yaml::document(BASE).unwrap();
            merge(&mut value, json!({"spec": {"template": {"spec": pod}}}));
            let mut job: Job = serde_json::from_value(value).unwrap();
            crate::prepare_for_create(&mut job, "1a2b3c", Timestamp::UNIX_EPOCH);
            job
        };
        let for_a_cluster = job(json!({
            "runtimeClassName": "gvisor",
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}],
            "containers": [{
                "name": "main", "image": "busybox", "command": null,
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "resources": {"limits": {"memory": "1Gi"}},
            }],
        }));
        assert!(
            validate_job(&for_a_cluster).is_err(),
            "joblet's node cannot run it"
        );
        assert_eq!(validate_job_for_cluster(&for_a_cluster), Ok(()));
        // Upstream's own rules still hold: a mount of no volume, as the API server says.
        let broken = job(json!({"containers": [{
            "name": "main", "image": "busybox",
            "volumeMounts": [{"name": "missing", "mountPath": "/data"}],
        }]}));
        let errors: Vec<String> = (validate_job_for_cluster(&broken).unwrap_err().errors.iter())
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            ["spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"missing\""]
        );
    }

    #[test]
    fn runtime_class_name_picks_what_a_container_may_leave_to_its_image() {
        let pod = |class: &str, container: serde_json::Value| json!({"spec": {"template": {"spec": {"runtimeClassName": class, "containers": [container]}}}});
        let from_image = json!({"name": "main", "image": "busybox"});
        let path = "spec.template.spec";
        assert_eq!(
            errors_for(pod("podman", from_image.clone())),
            Vec::<String>::new()
        );
        assert_eq!(
            errors_for(pod("host", from_image.clone())),
            [format!("{path}.containers[0].command: Required value: joblet runs container \"main\" as a host command and does not read image entrypoints; set command, or run the image's with --runtime podman|docker or runtimeClassName: podman|docker")]
        );
        assert_eq!(
            errors_for(pod("gvisor", json!({"name": "main", "image": "busybox", "command": ["true"]}))),
            [format!("{path}.runtimeClassName: Unsupported value: \"gvisor\": supported values: \"host\", \"podman\", \"docker\"")]
        );
        let mounted = json!({"name": "main", "image": "busybox",
            "volumeMounts": [{"name": "v", "mountPath": "/data"}]});
        assert_eq!(
            errors_for(pod("podman", mounted)),
            [format!(
                "{path}.containers[0].volumeMounts[0].name: Not found: \"v\""
            )]
        );
    }

    #[test]
    fn a_security_context_that_contradicts_itself_is_refused() {
        let container = |sc: serde_json::Value| {
            json!({"spec": {"template": {"spec": {"runtimeClassName": "podman",
            "containers": [{"name": "main", "image": "busybox", "securityContext": sc}]}}}})
        };
        let path = "spec.template.spec.containers[0].securityContext";
        assert_eq!(
            errors_for(container(json!({"allowPrivilegeEscalation": false, "privileged": true, "runAsUser": -1}))),
            [
                format!("{path}.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive"),
                format!("{path}: Invalid value: {{\"allowPrivilegeEscalation\":false,\"privileged\":true,\"runAsUser\":-1}}: cannot set `allowPrivilegeEscalation` to false and `privileged` to true"),
            ]
        );
        assert!(errors_for(container(
            json!({"allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN"]}})
        ))
        .is_empty());
    }

    #[test]
    fn what_the_podman_runtime_does_not_apply_is_a_warning() {
        let mut value = crate::yaml::document(BASE).unwrap();
        merge(
            &mut value,
            json!({"spec": {"template": {"spec": {
            "runtimeClassName": "podman",
            "securityContext": {"runAsUser": 1000, "fsGroup": 2000,
                "seccompProfile": {"type": "RuntimeDefault"}},
            "imagePullSecrets": [{"name": "registry"}],
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db"]}],
            "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}],
            "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "Always",
                "securityContext": {"runAsNonRoot": true, "privileged": true,
                    "capabilities": {"drop": ["ALL"]}, "appArmorProfile": {"type": "Unconfined"}},
                "resources": {"limits": {"cpu": "1"}}}]}}}}),
        );
        let mut job: Job = serde_json::from_value(value).unwrap();
        crate::prepare_for_create(&mut job, "1a2b3c", Timestamp::UNIX_EPOCH);
        let path = "spec.template.spec";
        assert_eq!(
            runtime_warnings(&job),
            [
                format!("{path}.containers[0].securityContext.privileged: gives all capabilities, but not the host's devices"),
                format!("{path}.securityContext.seccompProfile: not applied by joblet's container runtimes"),
                format!("{path}.imagePullSecrets: not used: joblet's container runtimes pull with the engine's own credentials (podman login, docker login)"),
                format!("{path}.volumes[0].emptyDir.sizeLimit: not enforced: joblet limits only a memory-backed emptyDir (medium: Memory)"),
            ]
        );
    }

    #[test]
    fn name_resolution_joblet_does_not_apply_is_a_warning() {
        let mut value = crate::yaml::document(BASE).unwrap();
        merge(
            &mut value,
            json!({"spec": {"template": {"spec": {"runtimeClassName": "docker",
                "subdomain": "workers", "setHostnameAsFQDN": true,
                "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]}}}}}),
        );
        let mut job: Job = serde_json::from_value(value).unwrap();
        crate::prepare_for_create(&mut job, "1a2b3c", Timestamp::UNIX_EPOCH);
        let path = "spec.template.spec";
        assert_eq!(
            runtime_warnings(&job),
            [
                format!("{path}.dnsConfig: not applied: joblet's pods use the machine's /etc/resolv.conf"),
                format!("{path}.setHostnameAsFQDN: not applied: the pod's hostname stays its short name (its FQDN is in its /etc/hosts)"),
            ]
        );
    }

    #[test]
    fn the_names_of_a_pods_hosts_file_are_checked() {
        let errors = errors_for(json!({"spec": {"template": {"spec": {
            "hostname": "Work_1", "subdomain": "workers",
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db.local"]},
                {"ip": "10.0.0.300", "hostnames": ["ok", "bad\nline"]}]}}}}));
        let path = "spec.template.spec";
        assert_eq!(
            errors,
            [
                format!("{path}.hostname: Invalid value: \"Work_1\": {DNS1123_LABEL_ERROR}"),
                format!("{path}.hostAliases[1].ip: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"),
                format!("{path}.hostAliases[1].hostnames[1]: Invalid value: \"bad\\nline\": {DNS1123_SUBDOMAIN_ERROR}"),
            ]
        );
    }

    #[test]
    fn what_a_host_cannot_give_is_refused_with_its_path() {
        let container = |extra: serde_json::Value| {
            let mut c = json!({"name": "main", "image": "busybox", "command": ["true"]});
            merge(&mut c, extra);
            json!({"spec": {"template": {"spec": {
                "volumes": [{"name": "scratch", "emptyDir": {}}],
                "initContainers": [{"name": "prep", "image": "busybox", "command": ["true"]}],
                "containers": [c]}}}})
        };
        let errors = errors_for(container(json!({
            "volumeMounts": [{"name": "scratch", "mountPath": "/work"}],
            "resources": {"limits": {"memory": "64Mi", "cpu": "1"}},
        })));
        let path = "spec.template.spec.containers[0]";
        assert_eq!(
            errors,
            [
                format!("{path}.volumeMounts: Forbidden: joblet runs containers as host processes and cannot mount volumes: \"/work\" would be the host's own directory; --runtime podman|docker or runtimeClassName: podman|docker mounts them"),
                format!("{path}.resources.limits.memory: Forbidden: joblet runs containers as host processes and cannot enforce a memory limit; --runtime podman|docker or runtimeClassName: podman|docker does"),
            ]
        );
        // A volume nothing mounts, a CPU limit, requests: accepted.
        assert_eq!(
            errors_for(container(
                json!({"resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}}})
            )),
            Vec::<String>::new()
        );
    }

    #[test]
    fn what_a_host_ignores_harmlessly_is_a_warning() {
        let mut value = crate::yaml::document(BASE).unwrap();
        merge(
            &mut value,
            json!({"spec": {"template": {"spec": {
                "securityContext": {"runAsNonRoot": true},
                "containers": [{"name": "main", "image": "busybox", "command": ["true"],
                    "resources": {"limits": {"cpu": "500m"}},
                    "livenessProbe": {"exec": {"command": ["true"]}}}]}}}}),
        );
        let mut job: Job = serde_json::from_value(value).unwrap();
        crate::prepare_for_create(&mut job, "1a2b3c", Timestamp::UNIX_EPOCH);
        assert_eq!(
            runtime_warnings(&job),
            [
                "spec.template.spec.containers[0].resources.limits.cpu: not enforced: joblet runs containers as host processes",
                "spec.template.spec.containers[0].livenessProbe: ignored: joblet runs no probes or hooks",
                "spec.template.spec.securityContext: ignored: the pod runs as joblet's own user",
            ]
        );
        // The defaulted `securityContext: {}` of a plain manifest says nothing.
        let mut plain: Job = serde_json::from_value(crate::yaml::document(BASE).unwrap()).unwrap();
        crate::prepare_for_create(&mut plain, "1a2b3c", Timestamp::UNIX_EPOCH);
        assert_eq!(runtime_warnings(&plain), Vec::<String>::new());
    }
}
