//! How the engine's objects are written to the store.

use joblet_api::k8s_openapi::api::core::v1::{
    Event as WireEvent, EventSource, Namespace, ObjectReference, Pod,
};
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use joblet_api::ValidJob;
use joblet_core::{Event, Time};
use joblet_store::Record;
use serde::{Deserialize, Serialize};

use crate::correlator::Recorded;
use crate::{job_object, JobEntry};

pub const KIND_JOB: &str = "Job";
pub const KIND_POD: &str = "Pod";
pub const KIND_EVENT: &str = "Event";
pub const KIND_NAMESPACE: &str = "Namespace";
pub const KIND_NODE: &str = "Node";
/// The controller's own record of a Job: its back-off record and pod counter.
pub const KIND_CONTROLLER: &str = "ControllerState";

pub(crate) fn record<T: Serialize>(
    kind: &str,
    namespace: &str,
    name: &str,
    rv: i64,
    body: &T,
) -> Record {
    Record {
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        resource_version: rv,
        body: serde_json::to_string(body).expect("API objects always serialize"),
    }
}

pub fn job_record(entry: &JobEntry, rv: i64) -> Record {
    let mut job = job_object(entry);
    job.metadata.resource_version = Some(rv.to_string());
    record(KIND_JOB, entry.job.namespace(), entry.job.name(), rv, &job)
}

/// What the controller keeps of a Job beyond its status.
#[derive(Serialize, Deserialize)]
pub struct ControllerState {
    pub uid: String,
    pub failures_after_last_success: u32,
    pub last_failure_ms: Option<i64>,
    pub pods_created: u64,
}

pub fn controller_record(entry: &JobEntry, rv: i64) -> Record {
    let state = ControllerState {
        uid: entry.job.uid().to_string(),
        failures_after_last_success: entry.state.backoff.failures_after_last_success,
        last_failure_ms: entry.state.backoff.last_failure.map(|t| t.0),
        pods_created: entry.state.pods_created,
    };
    record(
        KIND_CONTROLLER,
        entry.job.namespace(),
        entry.job.name(),
        rv,
        &state,
    )
}

pub fn pod_record(pod: &mut Pod, rv: i64) -> Record {
    // Set on the engine's own object, not a copy: pods are written tens of thousands of
    // times a run, and the version stored is the one it now has.
    pod.metadata.resource_version = Some(rv.to_string());
    let meta = &pod.metadata;
    record(
        KIND_POD,
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or(""),
        rv,
        pod,
    )
}

/// The object a Job's events are about.
pub fn job_reference(job: &ValidJob) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".to_string()),
        kind: Some("Job".to_string()),
        name: Some(job.name().to_string()),
        namespace: Some(job.namespace().to_string()),
        uid: Some(job.uid().to_string()),
        ..Default::default()
    }
}

/// A pod, as the scheduler's events name it (a kubelet's name one of its containers).
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".to_string()),
        kind: Some("Pod".to_string()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The container of a pod a kubelet event is about (`spec.containers{main}`).
pub fn container_reference(pod: &Pod, container: &str) -> ObjectReference {
    let spec = pod.spec.as_ref();
    let init = spec.is_some_and(|s| {
        s.init_containers
            .iter()
            .flatten()
            .any(|c| c.name == container)
    });
    let field = if init { "initContainers" } else { "containers" };
    ObjectReference {
        field_path: Some(format!("spec.{field}{{{container}}}")),
        ..pod_reference(pod)
    }
}

/// A uid for the event written at `rv`, as the API server gives every object one (clients
/// key events by it): a random prefix per process and the resourceVersion, unique without
/// reading the system's randomness for every event.
fn event_uid(rv: i64) -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| crate::new_uid()[..23].to_string());
    format!("{prefix}-{:012x}", rv & 0xffff_ffff_ffff)
}

/// An event about `involved`, recorded by `component` (`job-controller`, `kubelet`), as the
/// correlator made it (`recorded`: when it was first written, its message and count),
/// written at `rv`.
pub fn event_record(
    involved: ObjectReference,
    component: &str,
    event: &Event,
    recorded: &Recorded,
    now: Time,
    rv: i64,
) -> Record {
    let namespace = involved.namespace.clone().unwrap_or_default();
    let object = involved.name.as_deref().unwrap_or_default();
    // Upstream names events <object>.<hex timestamp>; the resourceVersion of the event's
    // first write keeps ours unique.
    let (first, first_rv) = (recorded.first_timestamp, recorded.first_rv);
    let name = format!("{object}.{:x}{:04x}", first.0, first_rv & 0xffff);
    let wire = WireEvent {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: Some(event_uid(first_rv)),
            resource_version: Some(rv.to_string()),
            creation_timestamp: Some(recorded.first_timestamp.to_wire()),
            ..Default::default()
        },
        involved_object: involved,
        reason: Some(event.reason.clone()),
        message: Some(recorded.message.clone()),
        type_: Some(event.type_.as_str().to_string()),
        source: Some(EventSource {
            component: Some(component.to_string()),
            host: None,
        }),
        first_timestamp: Some(recorded.first_timestamp.to_wire()),
        last_timestamp: Some(now.to_wire()),
        count: Some(recorded.count),
        reporting_component: Some(component.to_string()),
        ..Default::default()
    };
    record(KIND_EVENT, &namespace, &name, rv, &wire)
}

pub fn namespace_record(namespace: &Namespace, rv: i64) -> Record {
    let mut namespace = namespace.clone();
    namespace.metadata.resource_version = Some(rv.to_string());
    let name = namespace.metadata.name.clone().unwrap_or_default();
    record(KIND_NAMESPACE, "", &name, rv, &namespace)
}
