//! The Job controller as a pure function: `reconcile(job, state, pods, now)` returns the
//! new status and the pods to create, delete and count. No I/O, no clock, no threads.

pub mod backoff;
pub mod build;
pub mod cronjob;
pub mod metrics;
pub mod naming;
pub mod pod;
pub mod policy;
pub mod reconcile;
pub mod retry;
pub mod status;
pub mod time;

pub use backoff::{BackoffConfig, BackoffRecord};
pub use build::{build_pod, PodToCreate};
pub use pod::{ContainerExit, PodPhase, PodView};
pub use reconcile::{
    reconcile, ttl_expiry, ControllerConfig, Event, EventType, JobState, Reconciliation,
};
pub use retry::{retry_failed, RetryRefused};
pub use status::{Condition, ConditionType, Status};
pub use time::Time;
