//! The kubelet's pod rules as a function: from a pod's plan, what its containers did and the
//! time, what to start, what to stop and the status to report (`sync_pod`). Upstream keeps
//! the same split: `kuberuntime_manager.go` decides (`computePodActions`) and `SyncPod` does
//! it through CRI; here the runtime crate's pod worker does it with host processes.
//!
//! Nothing here does I/O or reads a clock: time is an argument (`clippy.toml` bans the clock).

pub mod env;
mod events;
mod hosts;
mod image;
mod node;
mod objects;
mod plan;
mod security;
mod status;
mod sync;
mod volumes;

use joblet_api::k8s_openapi::api::core::v1::{PodCondition, PodStatus};
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub use events::{kubelet_events, supersedes, ImageNews, KubeletEvent};
pub use hosts::{managed_hosts, service_hosts};
pub use image::{container_process, ImageConfig, Process};
pub use node::{node_object, Node, DEFAULT_MAX_PODS};
pub use objects::Objects;
pub use plan::{Backoff, ContainerPlan, Kind, PodPlan, RestartPolicy};
pub use security::{process_security, ImageUser, ProcessSecurity, DEFAULT_CAPABILITIES};
pub use sync::{
    later, since, sync_pod, ContainerRecord, Exit, ExitReason, ImageError, ImageFailure, Observed,
    PodActions, Run, State, Stop,
};
pub use volumes::{volume_payload, File, Payload};

/// A pod being stopped, whether Kubernetes would call it a disruption, and the pod's
/// generation when its graceful deletion raised it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopRequest {
    pub grace: std::time::Duration,
    pub disruption: Option<Disruption>,
    pub generation: Option<i64>,
}

impl StopRequest {
    /// A later stop merged into this one: the shorter grace, the first disruption, the
    /// newest generation.
    pub fn merge(self, later: StopRequest) -> StopRequest {
        StopRequest {
            grace: self.grace.min(later.grace),
            disruption: self.disruption.or(later.disruption),
            generation: self.generation.max(later.generation),
        }
    }
}

/// The `DisruptionTarget` condition a stopped pod gets, as the kubelet or the API server
/// sets it (pod failure policies match on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disruption {
    pub reason: &'static str,
    pub message: &'static str,
}

impl Disruption {
    /// Adds the `DisruptionTarget` condition to a pod's status, once.
    pub fn mark(self, status: &mut PodStatus, now: &Time) {
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        if conditions.iter().any(|c| c.type_ == "DisruptionTarget") {
            return;
        }
        conditions.push(PodCondition {
            type_: "DisruptionTarget".to_string(),
            status: "True".to_string(),
            reason: Some(self.reason.to_string()),
            message: Some(self.message.to_string()),
            last_transition_time: Some(now.clone()),
            ..Default::default()
        });
    }

    /// What the kubelet records on a graceful node shutdown; joblet's own shutdown is one.
    pub const NODE_SHUTDOWN: Disruption = Disruption {
        reason: "TerminationByKubelet",
        message: "Pod was terminated in response to imminent node shutdown.",
    };
    /// What the API server records when a pod is evicted (`pods/{name}/eviction`).
    pub const EVICTION: Disruption = Disruption {
        reason: "EvictionByEvictionAPI",
        message: "Eviction API: evicting",
    };
}

#[cfg(test)]
mod tests;
