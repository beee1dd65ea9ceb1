//! What the controller needs to know of a pod, read from the wire object.

use joblet_api::k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use joblet_api::labels;

use crate::time::Time;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl PodPhase {
    pub fn parse(phase: &str) -> Self {
        match phase {
            "Running" => PodPhase::Running,
            "Succeeded" => PodPhase::Succeeded,
            "Failed" => PodPhase::Failed,
            _ => PodPhase::Pending,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, PodPhase::Succeeded | PodPhase::Failed)
    }
}

/// A terminated container's exit, for failure-policy matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerExit {
    pub name: String,
    pub exit_code: i32,
    pub init: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    /// The completion index from the pod's annotation; `None` when missing or invalid.
    pub index: Option<i32>,
    pub phase: PodPhase,
    /// The pod has a deletionTimestamp.
    pub deleting: bool,
    /// The pod still carries the tracking finalizer, so it has not been counted yet.
    pub tracked: bool,
    pub ready: bool,
    pub ready_since: Option<Time>,
    pub created: Time,
    /// When the pod finished, by upstream's fallbacks (spec §4.2).
    pub finish_time: Time,
    /// Restarts summed over containers and init containers.
    pub restart_count: i32,
    /// Terminated containers: regular ones first, then init containers.
    pub exits: Vec<ContainerExit>,
    /// Pod conditions as (type, status).
    pub conditions: Vec<(String, String)>,
    pub index_failure_count: i32,
    pub index_ignored_failure_count: i32,
}

impl PodView {
    pub fn is_active(&self) -> bool {
        !self.phase.is_terminal() && !self.deleting
    }

    pub fn is_terminating(&self) -> bool {
        !self.phase.is_terminal() && self.deleting
    }

    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key));
        let count_annotation = |key: &str| {
            annotation(key)
                .and_then(|v| v.parse::<i32>().ok())
                .filter(|v| *v >= 0)
                .unwrap_or(0)
        };
        let status = pod.status.clone().unwrap_or_default();
        let containers = status.container_statuses.as_deref().unwrap_or(&[]);
        let init_containers = status.init_container_statuses.as_deref().unwrap_or(&[]);
        let condition = |type_: &str| {
            status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == type_)
        };
        let ready_condition = condition("Ready");
        let ready = ready_condition.is_some_and(|c| c.status == "True");
        let created = meta
            .creation_timestamp
            .as_ref()
            .map(Time::from_wire)
            .unwrap_or_default();
        let exits = containers
            .iter()
            .map(|c| (c, false))
            .chain(init_containers.iter().map(|c| (c, true)))
            .filter_map(|(c, init)| {
                let terminated = c.state.as_ref()?.terminated.as_ref()?;
                Some(ContainerExit {
                    name: c.name.clone(),
                    exit_code: terminated.exit_code,
                    init,
                })
            })
            .collect();
        let deletion = meta.deletion_timestamp.as_ref().map(Time::from_wire);
        let finish_time = finish_time(
            containers,
            init_containers,
            ready_condition
                .filter(|c| c.status == "False")
                .and_then(|c| c.last_transition_time.as_ref())
                .map(Time::from_wire),
            deletion
                .map(|d| d.plus_millis(-1000 * meta.deletion_grace_period_seconds.unwrap_or(0))),
            created,
        );
        PodView {
            name: meta.name.clone().unwrap_or_default(),
            index: annotation(labels::COMPLETION_INDEX)
                .and_then(|v| v.parse::<i32>().ok())
                .filter(|i| *i >= 0),
            phase: PodPhase::parse(status.phase.as_deref().unwrap_or("Pending")),
            deleting: deletion.is_some(),
            tracked: meta
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == labels::TRACKING_FINALIZER),
            ready,
            ready_since: ready_condition
                .filter(|c| c.status == "True")
                .and_then(|c| c.last_transition_time.as_ref())
                .map(Time::from_wire),
            created,
            finish_time,
            restart_count: containers
                .iter()
                .chain(init_containers)
                .map(|c| c.restart_count)
                .sum(),
            exits,
            conditions: status
                .conditions
                .iter()
                .flatten()
                .map(|c| (c.type_.clone(), c.status.clone()))
                .collect(),
            index_failure_count: count_annotation(labels::INDEX_FAILURE_COUNT),
            index_ignored_failure_count: count_annotation(labels::INDEX_IGNORED_FAILURE_COUNT),
        }
    }
}

/// Upstream's `getFinishedTime`: the latest container `finishedAt` when every container
/// terminated, else the `Ready=False` transition, else deletion time minus grace, else
/// creation time.
fn finish_time(
    containers: &[ContainerStatus],
    init_containers: &[ContainerStatus],
    not_ready_since: Option<Time>,
    deletion_minus_grace: Option<Time>,
    created: Time,
) -> Time {
    let finished_at = |c: &ContainerStatus| {
        c.state
            .as_ref()?
            .terminated
            .as_ref()?
            .finished_at
            .as_ref()
            .map(Time::from_wire)
    };
    if !containers.is_empty() {
        let all: Option<Vec<Time>> = containers.iter().map(finished_at).collect();
        if let Some(times) = all {
            let init_times = init_containers.iter().filter_map(finished_at);
            if let Some(latest) = times.into_iter().chain(init_times).max() {
                return latest;
            }
        }
    }
    not_ready_since.or(deletion_minus_grace).unwrap_or(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> PodView {
        PodView::from_pod(&serde_json::from_value(value).unwrap())
    }

    #[test]
    fn tc032_finish_time_fallbacks() {
        let terminated = |at: &str| json!({"terminated": {"exitCode": 1, "finishedAt": at}});
        let base = json!({"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(
            pod(base.clone()).finish_time,
            Time::from_secs(1_767_225_600)
        );
        let p = pod(json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"containerStatuses": [
                {"name": "a", "image": "", "imageID": "", "ready": false, "restartCount": 0, "state": terminated("2026-01-01T00:00:10Z")},
                {"name": "b", "image": "", "imageID": "", "ready": false, "restartCount": 0, "state": terminated("2026-01-01T00:00:20Z")}],
              "initContainerStatuses": [
                {"name": "i", "image": "", "imageID": "", "ready": false, "restartCount": 0, "state": terminated("2026-01-01T00:00:30Z")}]}}));
        assert_eq!(p.finish_time, Time::from_secs(1_767_225_630));
        assert_eq!(p.exits.len(), 3);
        let deleting = pod(json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z",
                         "deletionTimestamp": "2026-01-01T00:01:00Z", "deletionGracePeriodSeconds": 30},
            "status": {"containerStatuses": [
                {"name": "a", "image": "", "imageID": "", "ready": true, "restartCount": 2, "state": {"running": {}}}]}}));
        assert_eq!(deleting.finish_time, Time::from_secs(1_767_225_630));
        assert_eq!(deleting.restart_count, 2);
        let not_ready = pod(json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:05Z"}]}}));
        assert_eq!(not_ready.finish_time, Time::from_secs(1_767_225_605));
    }

    #[test]
    fn index_annotation_must_be_a_non_negative_integer() {
        let annotated = |v: &str| {
            pod(json!({"metadata": {"name": "p", "annotations": {"batch.kubernetes.io/job-completion-index": v}}})).index
        };
        assert_eq!(annotated("3"), Some(3));
        assert_eq!(annotated("-1"), None);
        assert_eq!(annotated("invalid"), None);
    }
}
