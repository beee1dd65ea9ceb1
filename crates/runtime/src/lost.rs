//! Pods whose processes nobody watches any more: their supervisor (or the engine that ran
//! them) was killed. What is left of them is ended, and they are recorded as failed and
//! disrupted, as the pods of a failed node are.

use joblet_api::k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, PodStatus};
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{kill_leftover, Disruption};

/// The reason is the kubelet's for a node-level termination (see README).
const PROCESSES_LOST: Disruption = Disruption {
    reason: "TerminationByKubelet",
    message: "joblet stopped while the pod was running; its processes were lost",
};

/// Ends the processes still running of a pod that was lost, and records it failed.
pub fn mark_lost(status: &mut PodStatus, now: &Time) {
    let containers = status.container_statuses.iter().flatten();
    for container in containers.chain(status.init_container_statuses.iter().flatten()) {
        let running = container.state.as_ref().and_then(|s| s.running.as_ref());
        if let (Some(id), Some(started)) = (
            container.container_id.as_deref(),
            running.and_then(|r| r.started_at.as_ref()),
        ) {
            kill_leftover(id, started.0);
        }
    }
    status.phase = Some("Failed".to_string());
    for container in status.container_statuses.iter_mut().flatten() {
        if container
            .state
            .as_ref()
            .is_some_and(|s| s.terminated.is_some())
        {
            continue;
        }
        // What the kubelet reports for a container it cannot find any more.
        container.ready = false;
        container.state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 137,
                reason: Some("ContainerStatusUnknown".to_string()),
                message: Some(
                    "The container could not be located when the pod was terminated".to_string(),
                ),
                finished_at: Some(now.clone()),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    for condition in conditions.iter_mut() {
        if condition.type_ == "Ready" || condition.type_ == "ContainersReady" {
            condition.status = "False".to_string();
        }
    }
    PROCESSES_LOST.mark(status, now);
}
