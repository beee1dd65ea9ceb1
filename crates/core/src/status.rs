//! The Job status the controller maintains, and its wire form.

use joblet_api::k8s_openapi::api::batch::v1::{JobCondition, JobStatus, UncountedTerminatedPods};
use joblet_api::IndexSet;

use crate::time::Time;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    Suspended,
    SuccessCriteriaMet,
    FailureTarget,
    Complete,
    Failed,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Suspended => "Suspended",
            ConditionType::SuccessCriteriaMet => "SuccessCriteriaMet",
            ConditionType::FailureTarget => "FailureTarget",
            ConditionType::Complete => "Complete",
            ConditionType::Failed => "Failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Suspended" => ConditionType::Suspended,
            "SuccessCriteriaMet" => ConditionType::SuccessCriteriaMet,
            "FailureTarget" => ConditionType::FailureTarget,
            "Complete" => ConditionType::Complete,
            "Failed" => ConditionType::Failed,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub type_: ConditionType,
    pub status: bool,
    pub reason: String,
    pub message: String,
    pub last_probe_time: Time,
    pub last_transition_time: Time,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub start_time: Option<Time>,
    pub completion_time: Option<Time>,
    pub active: i32,
    pub ready: i32,
    pub terminating: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub completed_indexes: IndexSet,
    /// Present (possibly empty) only with `backoffLimitPerIndex`.
    pub failed_indexes: Option<IndexSet>,
    pub conditions: Vec<Condition>,
}

impl Status {
    pub fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    pub fn has_true(&self, type_: ConditionType) -> bool {
        self.condition(type_).is_some_and(|c| c.status)
    }

    /// A Job is finished once `Complete` or `Failed` is true.
    pub fn is_finished(&self) -> bool {
        self.has_true(ConditionType::Complete) || self.has_true(ConditionType::Failed)
    }

    /// The terminal condition's time, from which `ttlSecondsAfterFinished` counts.
    pub fn finished_at(&self) -> Option<Time> {
        self.conditions
            .iter()
            .find(|c| {
                c.status && matches!(c.type_, ConditionType::Complete | ConditionType::Failed)
            })
            .map(|c| c.last_transition_time)
    }

    /// Sets a condition as upstream's `updateConditionsWithReason` does: an unchanged
    /// condition is left alone, a changed one is updated in place with new times, and a
    /// missing one is appended only when true. Returns whether anything changed.
    pub fn set_condition(
        &mut self,
        type_: ConditionType,
        status: bool,
        reason: &str,
        message: &str,
        now: Time,
    ) -> bool {
        if let Some(existing) = self.conditions.iter_mut().find(|c| c.type_ == type_) {
            if existing.status == status && existing.reason == reason && existing.message == message
            {
                return false;
            }
            existing.status = status;
            existing.reason = reason.to_string();
            existing.message = message.to_string();
            existing.last_probe_time = now;
            existing.last_transition_time = now;
            return true;
        }
        if !status {
            return false;
        }
        self.conditions.push(Condition {
            type_,
            status,
            reason: reason.to_string(),
            message: message.to_string(),
            last_probe_time: now,
            last_transition_time: now,
        });
        true
    }

    pub fn to_wire(&self, indexed: bool) -> JobStatus {
        JobStatus {
            start_time: self.start_time.map(Time::to_wire),
            completion_time: self.completion_time.map(Time::to_wire),
            active: (self.active != 0).then_some(self.active),
            ready: Some(self.ready),
            terminating: Some(self.terminating),
            succeeded: (self.succeeded != 0).then_some(self.succeeded),
            failed: (self.failed != 0).then_some(self.failed),
            completed_indexes: (indexed && !self.completed_indexes.is_empty())
                .then(|| self.completed_indexes.to_string()),
            failed_indexes: self.failed_indexes.as_ref().map(ToString::to_string),
            uncounted_terminated_pods: Some(UncountedTerminatedPods::default()),
            conditions: (!self.conditions.is_empty()).then(|| {
                self.conditions
                    .iter()
                    .map(|c| JobCondition {
                        type_: c.type_.as_str().to_string(),
                        status: if c.status { "True" } else { "False" }.to_string(),
                        reason: Some(c.reason.clone()),
                        message: Some(c.message.clone()),
                        last_probe_time: Some(c.last_probe_time.to_wire()),
                        last_transition_time: Some(c.last_transition_time.to_wire()),
                    })
                    .collect()
            }),
        }
    }

    /// Reads a stored status back; index strings are read leniently against `completions`.
    pub fn from_wire(status: &JobStatus, completions: i32) -> Self {
        let time = |t: &Option<_>| t.as_ref().map(Time::from_wire);
        Status {
            start_time: time(&status.start_time),
            completion_time: time(&status.completion_time),
            active: status.active.unwrap_or(0),
            ready: status.ready.unwrap_or(0),
            terminating: status.terminating.unwrap_or(0),
            succeeded: status.succeeded.unwrap_or(0),
            failed: status.failed.unwrap_or(0),
            completed_indexes: status
                .completed_indexes
                .as_deref()
                .map(|s| IndexSet::parse_lenient(s, completions))
                .unwrap_or_default(),
            failed_indexes: status
                .failed_indexes
                .as_deref()
                .map(|s| IndexSet::parse_lenient(s, completions)),
            conditions: status
                .conditions
                .iter()
                .flatten()
                .filter_map(|c| {
                    Some(Condition {
                        type_: ConditionType::parse(&c.type_)?,
                        status: c.status == "True",
                        reason: c.reason.clone().unwrap_or_default(),
                        message: c.message.clone().unwrap_or_default(),
                        last_probe_time: time(&c.last_probe_time).unwrap_or_default(),
                        last_transition_time: time(&c.last_transition_time).unwrap_or_default(),
                    })
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tc044_condition_updated_in_place_never_duplicated() {
        let mut status = Status::default();
        let t = Time::from_secs(10);
        assert!(!status.set_condition(ConditionType::Failed, false, "", "", t));
        assert!(
            status.conditions.is_empty(),
            "a false condition is never created"
        );
        status.conditions.push(Condition {
            type_: ConditionType::Failed,
            status: false,
            reason: String::new(),
            message: String::new(),
            last_probe_time: t,
            last_transition_time: t,
        });
        assert!(status.set_condition(
            ConditionType::Failed,
            true,
            "DeadlineExceeded",
            "m",
            Time::from_secs(20)
        ));
        assert!(!status.set_condition(
            ConditionType::Failed,
            true,
            "DeadlineExceeded",
            "m",
            Time::from_secs(30)
        ));
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(
            status.conditions[0].last_transition_time,
            Time::from_secs(20)
        );
    }

    #[test]
    fn wire_round_trip() {
        let mut status = Status {
            start_time: Some(Time::from_secs(5)),
            succeeded: 2,
            completed_indexes: [0, 1].into_iter().collect(),
            ..Status::default()
        };
        status.set_condition(
            ConditionType::SuccessCriteriaMet,
            true,
            "CompletionsReached",
            "m",
            Time::from_secs(9),
        );
        let wire = status.to_wire(true);
        assert_eq!(wire.completed_indexes.as_deref(), Some("0,1"));
        assert_eq!(wire.active, None);
        assert_eq!(wire.ready, Some(0));
        assert_eq!(Status::from_wire(&wire, 2), status);
    }
}
