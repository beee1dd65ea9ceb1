//! CronJobs as the API server takes them: `SetDefaults_CronJob` with the pod template's
//! defaults inside, and `ValidateCronJobCreate`/`ValidateCronJobUpdate` with upstream's
//! messages (the schedule's are robfig/cron's: `cron.rs`).

use k8s_openapi::api::batch::v1::CronJob;

use crate::config::Valid;
use crate::field::{FieldError, Invalid};
use crate::version::Emulation;

const KIND: &str = "CronJob.batch";

/// The cronjob controller appends `-<minutes since the epoch>` (11 characters) to name a Job,
/// whose name may have 63.
pub const MAX_NAME_LENGTH: usize = 52;

pub const CONCURRENCY_POLICIES: [&str; 3] = ["Allow", "Forbid", "Replace"];

/// Defaults as `SetDefaults_CronJob` and the pod template's.
pub fn apply_defaults(cron: &mut CronJob) {
    let spec = &mut cron.spec;
    if spec.concurrency_policy.is_none() {
        spec.concurrency_policy = Some("Allow".to_string());
    }
    spec.suspend.get_or_insert(false);
    spec.successful_jobs_history_limit.get_or_insert(3);
    spec.failed_jobs_history_limit.get_or_insert(1);
    let job = spec.job_template.spec.get_or_insert_with(Default::default);
    crate::defaults::default_template(&mut job.template);
}

/// What the server sets on create (`cronJobStrategy.PrepareForCreate`): an empty status
/// and the first generation.
pub fn prepare_for_create(cron: &mut CronJob) {
    cron.status = Some(Default::default());
    cron.metadata.generation = Some(1);
}

/// `PrepareForUpdate`: the status is the controller's; the generation follows the spec.
pub fn prepare_for_update(new: &mut CronJob, old: &CronJob) {
    new.status.clone_from(&old.status);
    if new.spec != old.spec {
        new.metadata.generation = Some(old.metadata.generation.unwrap_or(1) + 1);
    }
}

/// A CronJob that passed [`validate`]: the only form in which the engine takes one.
pub fn admit(cron: CronJob) -> Result<Valid<CronJob>, Invalid> {
    validate(&cron, None)?;
    Ok(Valid(cron))
}

pub fn admit_update(new: CronJob, old: &CronJob) -> Result<Valid<CronJob>, Invalid> {
    validate(&new, Some(old))?;
    Ok(Valid(new))
}

/// `ValidateCronJobCreate` (with `old`: `ValidateCronJobUpdate`, which allows a `TZ=` the
/// schedule had and skips the name's length).
pub fn validate(cron: &CronJob, old: Option<&CronJob>) -> Result<(), Invalid> {
    let mut errors = Vec::new();
    let name = cron.metadata.name.clone().unwrap_or_default();
    crate::validation::validate_name(&name, &mut errors);
    let spec = &cron.spec;
    let old_spec = old.map(|o| &o.spec);
    if spec.schedule.is_empty() {
        errors.push(FieldError::required("spec.schedule", ""));
    } else {
        let allow_tz = old_spec.is_some_and(|o| o.schedule.contains("TZ"));
        validate_schedule(
            &spec.schedule,
            allow_tz,
            spec.time_zone.is_some(),
            &mut errors,
        );
    }
    crate::validation::non_negative(
        "spec.startingDeadlineSeconds",
        spec.starting_deadline_seconds,
        &mut errors,
    );
    if old_spec.is_none_or(|o| o.time_zone != spec.time_zone) {
        if let Some(zone) = &spec.time_zone {
            validate_time_zone(zone, &mut errors);
        }
    }
    match spec.concurrency_policy.as_deref() {
        Some("Allow" | "Forbid" | "Replace") => {}
        None | Some("") => errors.push(FieldError::required("spec.concurrencyPolicy", "")),
        Some(other) => errors.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            other,
            &CONCURRENCY_POLICIES,
        )),
    }
    validate_job_template(cron, &mut errors);
    crate::validation::non_negative(
        "spec.successfulJobsHistoryLimit",
        spec.successful_jobs_history_limit,
        &mut errors,
    );
    crate::validation::non_negative(
        "spec.failedJobsHistoryLimit",
        spec.failed_jobs_history_limit,
        &mut errors,
    );
    if old.is_none() && name.len() > MAX_NAME_LENGTH {
        errors.push(FieldError::invalid_str(
            "metadata.name",
            &name,
            "must be no more than 52 characters",
        ));
    }
    Invalid::check(KIND, &name, errors)
}

fn validate_schedule(
    schedule: &str,
    allow_tz: bool,
    has_time_zone: bool,
    errors: &mut Vec<FieldError>,
) {
    if let Err(message) = crate::cron::parse_standard(schedule) {
        errors.push(FieldError::invalid_str("spec.schedule", schedule, &message));
    }
    if schedule.contains("TZ") {
        if !allow_tz {
            errors.push(FieldError::invalid_str(
                "spec.schedule",
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        } else if has_time_zone {
            errors.push(FieldError::invalid_str(
                "spec.schedule",
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        }
    }
}

/// `validateTimeZone`: IANA's naming rules, then the database.
fn validate_time_zone(zone: &str, errors: &mut Vec<FieldError>) {
    const PATH: &str = "spec.timeZone";
    if zone.is_empty() {
        errors.push(FieldError::invalid_str(
            PATH,
            zone,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    let part_is_valid = |part: &str| {
        (1..=14).contains(&part.len())
            && part != "."
            && part != ".."
            && !part.starts_with('-')
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
    };
    if !zone.split('/').all(part_is_valid) {
        errors.push(FieldError::invalid_str(
            PATH,
            zone,
            &format!("unknown time zone {zone}"),
        ));
        return;
    }
    if zone.eq_ignore_ascii_case("Local") {
        errors.push(FieldError::invalid_str(
            PATH,
            zone,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    if let Err(message) = crate::cron::load_location(zone) {
        errors.push(FieldError::invalid_str(PATH, zone, &message));
    }
}

/// `ValidateJobTemplateSpec`: the Job spec's rules under `spec.jobTemplate.spec`, and no
/// selector (the Job's own is generated).
fn validate_job_template(cron: &CronJob, errors: &mut Vec<FieldError>) {
    const PREFIX: &str = "spec.jobTemplate.spec";
    let default_job = Default::default();
    let job = cron.spec.job_template.spec.as_ref().unwrap_or(&default_job);
    let name = cron.metadata.name.as_deref().unwrap_or_default();
    let mut template_errors = Vec::new();
    crate::validation::validate_spec(name, job, false, Emulation::default(), &mut template_errors);
    for mut error in template_errors {
        if let Some(rest) = error.path.strip_prefix("spec") {
            error.path = format!("{PREFIX}{rest}");
        }
        errors.push(error);
    }
    if let Some(selector) = &job.selector {
        errors.push(FieldError::invalid(
            format!("{PREFIX}.selector"),
            serde_json::to_string(selector).unwrap_or_default(),
            "`selector` will be auto-generated",
        ));
    }
    if job.manual_selector == Some(true) {
        errors.push(FieldError::not_supported(
            format!("{PREFIX}.manualSelector"),
            "true",
            &["nil", "false"],
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::tests::merge;
    use serde_json::json;

    fn cron(patch: serde_json::Value) -> CronJob {
        let mut value = json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "default"},
            "spec": {
                "schedule": "0 3 * * *",
                "jobTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]
                }}}}
            }
        });
        merge(&mut value, patch);
        let mut cron: CronJob = serde_json::from_value(value).unwrap();
        apply_defaults(&mut cron);
        cron
    }

    fn errors(cron: &CronJob, old: Option<&CronJob>) -> Vec<String> {
        match validate(cron, old) {
            Ok(()) => Vec::new(),
            Err(invalid) => invalid.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn defaults_are_upstreams() {
        let spec = cron(json!({})).spec;
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Allow"));
        assert_eq!(spec.suspend, Some(false));
        assert_eq!(spec.successful_jobs_history_limit, Some(3));
        assert_eq!(spec.failed_jobs_history_limit, Some(1));
        let pod = spec.job_template.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.termination_grace_period_seconds, Some(30));
        assert_eq!(errors(&cron(json!({})), None), Vec::<String>::new());
    }

    #[test]
    fn schedules_and_time_zones_are_refused_as_upstream_refuses_them() {
        let schedule = |s: &str| errors(&cron(json!({"spec": {"schedule": s}})), None);
        assert_eq!(
            schedule("61 * * * *"),
            [
                r#"spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61"#
            ]
        );
        assert_eq!(
            schedule("CRON_TZ=UTC * * * * *"),
            [
                r#"spec.schedule: Invalid value: "CRON_TZ=UTC * * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"#
            ]
        );
        assert_eq!(schedule(""), ["spec.schedule: Required value"]);
        assert_eq!(schedule("@every 1h"), Vec::<String>::new());
        let zone = |z: &str| errors(&cron(json!({"spec": {"timeZone": z}})), None);
        assert_eq!(zone("Europe/Paris"), Vec::<String>::new());
        assert_eq!(
            zone("Europe/Pariss"),
            [r#"spec.timeZone: Invalid value: "Europe/Pariss": unknown time zone Europe/Pariss"#]
        );
        assert_eq!(
            zone("Local"),
            [
                r#"spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"#
            ]
        );
        assert_eq!(
            zone(""),
            [r#"spec.timeZone: Invalid value: "": timeZone must be nil or non-empty string"#]
        );
        assert_eq!(
            zone("../etc/passwd"),
            [r#"spec.timeZone: Invalid value: "../etc/passwd": unknown time zone ../etc/passwd"#]
        );
        // An update may keep a TZ= the schedule had, but not add a timeZone beside it.
        let old = cron(json!({"spec": {"schedule": "TZ=UTC 0 3 * * *"}}));
        assert_eq!(errors(&old, Some(&old)), Vec::<String>::new());
        let both = cron(json!({"spec": {"schedule": "TZ=UTC 0 3 * * *", "timeZone": "UTC"}}));
        assert_eq!(
            errors(&both, Some(&old)),
            [
                r#"spec.schedule: Invalid value: "TZ=UTC 0 3 * * *": cannot use both timeZone field and TZ or CRON_TZ in schedule"#
            ]
        );
    }

    #[test]
    fn the_name_the_policies_the_limits_and_the_job_template() {
        let long = "n".repeat(53);
        assert_eq!(
            errors(&cron(json!({"metadata": {"name": long}})), None),
            [format!(
                r#"metadata.name: Invalid value: "{long}": must be no more than 52 characters"#
            )]
        );
        let bad = cron(json!({"spec": {
            "concurrencyPolicy": "Sometimes",
            "startingDeadlineSeconds": -1,
            "successfulJobsHistoryLimit": -1,
            "jobTemplate": {"spec": {
                "completions": -2,
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"spec": {"restartPolicy": "Always"}}
            }}
        }}));
        assert_eq!(
            errors(&bad, None),
            [
                "spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0",
                r#"spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace""#,
                "spec.jobTemplate.spec.completions: Invalid value: -2: must be greater than or equal to 0",
                r#"spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#,
                r#"spec.jobTemplate.spec.selector: Invalid value: {"matchLabels":{"a":"b"}}: `selector` will be auto-generated"#,
                "spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
    }
}
