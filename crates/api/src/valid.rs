//! A Job that passed validation, with every defaulted field as a concrete value.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::indexset::IndexSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionMode {
    NonIndexed,
    Indexed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Never,
    OnFailure,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodReplacementPolicy {
    TerminatingOrFailed,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicyAction {
    FailJob,
    FailIndex,
    Ignore,
    Count,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCodeOperator {
    In,
    NotIn,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitCodesRule {
    pub container_name: Option<String>,
    pub operator: ExitCodeOperator,
    pub values: Vec<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodConditionPattern {
    pub type_: String,
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailurePolicyRule {
    pub action: FailurePolicyAction,
    pub on_exit_codes: Option<ExitCodesRule>,
    pub on_pod_conditions: Vec<PodConditionPattern>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuccessPolicyRule {
    pub succeeded_indexes: Option<IndexSet>,
    pub succeeded_count: Option<i32>,
}

/// The spec fields the controller reads, concrete after defaulting and validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fields {
    pub parallelism: i32,
    pub completions: Option<i32>,
    pub completion_mode: CompletionMode,
    pub backoff_limit: i32,
    pub backoff_limit_per_index: Option<i32>,
    pub max_failed_indexes: Option<i32>,
    pub active_deadline_seconds: Option<i64>,
    pub ttl_seconds_after_finished: Option<i32>,
    pub suspend: bool,
    pub restart_policy: RestartPolicy,
    pub pod_replacement_policy: PodReplacementPolicy,
    pub pod_failure_policy: Vec<FailurePolicyRule>,
    pub success_policy: Vec<SuccessPolicyRule>,
    pub managed_by: Option<String>,
}

/// A validated Job: the stored object (metadata and defaulted spec) and its concrete fields.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidJob {
    object: Job,
    pub spec: Fields,
}

impl ValidJob {
    pub(crate) fn new(object: Job, spec: Fields) -> Self {
        Self { object, spec }
    }

    /// The Job as the API server would store it, without status.
    pub fn object(&self) -> &Job {
        &self.object
    }

    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or("")
    }

    pub fn namespace(&self) -> &str {
        self.object
            .metadata
            .namespace
            .as_deref()
            .unwrap_or("default")
    }

    pub fn uid(&self) -> &str {
        self.object.metadata.uid.as_deref().unwrap_or("")
    }

    pub fn template(&self) -> &PodTemplateSpec {
        &self
            .object
            .spec
            .as_ref()
            .expect("validated job has a spec")
            .template
    }

    pub fn is_indexed(&self) -> bool {
        self.spec.completion_mode == CompletionMode::Indexed
    }

    /// With a pod failure policy or the `Failed` replacement policy, terminating pods are
    /// neither counted nor replaced until they reach phase Failed (spec §2.2).
    pub fn only_replaces_failed_pods(&self) -> bool {
        self.spec.pod_replacement_policy == PodReplacementPolicy::Failed
            || !self.spec.pod_failure_policy.is_empty()
    }

    /// Drops the owner reference to `uid`, as the garbage collector orphans a dependent of
    /// an owner deleted with `propagationPolicy: Orphan`.
    pub fn release_owner(&mut self, uid: &str) {
        let meta = &mut self.object.metadata;
        if let Some(owners) = meta.owner_references.as_mut() {
            owners.retain(|owner| owner.uid != uid);
        }
        meta.owner_references = meta.owner_references.take().filter(|o| !o.is_empty());
    }

    /// Whether the built-in controller manages this Job (spec §2.3 step 2).
    pub fn managed_by_controller(&self) -> bool {
        self.spec
            .managed_by
            .as_deref()
            .is_none_or(|m| m == crate::labels::JOB_CONTROLLER_NAME)
    }
}
