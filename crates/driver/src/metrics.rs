//! The Job controller's metrics under upstream's names and labels
//! (`pkg/controller/job/metrics/metrics.go`), fed by each sync as `core::metrics` reads it,
//! and the process's own (`process_cpu_seconds_total`, `process_resident_memory_bytes`, …),
//! in one registry that `joblet serve` answers `/metrics` from.

use std::time::Duration;

use joblet_core::metrics::SyncMetrics;
use prometheus::{
    exponential_buckets, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

const SUBSYSTEM: &str = "job_controller";

pub struct Metrics {
    registry: Registry,
    sync_duration: HistogramVec,
    syncs: IntCounterVec,
    jobs_finished: IntCounterVec,
    pods_finished: IntCounterVec,
    failure_policy: IntCounterVec,
    tracking_finalizer: IntCounterVec,
    finished_indexes: IntCounterVec,
    pods_creation: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help).subsystem(SUBSYSTEM), labels)
        .expect("a valid metric");
    registry
        .register(Box::new(counter.clone()))
        .expect("registered once");
    counter
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let sync_duration = HistogramVec::new(
            HistogramOpts::new(
                "job_sync_duration_seconds",
                "The time it took to sync a job",
            )
            .subsystem(SUBSYSTEM)
            .buckets(exponential_buckets(0.004, 2.0, 15).expect("valid buckets")),
            &["completion_mode", "result", "action"],
        )
        .expect("a valid metric");
        registry
            .register(Box::new(sync_duration.clone()))
            .expect("registered once");
        let process = prometheus::process_collector::ProcessCollector::for_self();
        registry
            .register(Box::new(process))
            .expect("registered once");
        Metrics {
            syncs: counter(
                &registry,
                "job_syncs_total",
                "The number of job syncs",
                &["completion_mode", "result", "action"],
            ),
            jobs_finished: counter(
                &registry,
                "jobs_finished_total",
                "The number of finished jobs",
                &["completion_mode", "result", "reason"],
            ),
            pods_finished: counter(
                &registry,
                "job_pods_finished_total",
                "The number of finished Pods that are fully tracked",
                &["completion_mode", "result"],
            ),
            failure_policy: counter(
                &registry,
                "pod_failures_handled_by_failure_policy_total",
                "The number of failed Pods handled by failure policy with respect to the failure policy action applied based on the matched rule. Possible values of the action label correspond to the possible values for the failure policy rule action, which are: \"FailJob\", \"Ignore\" and \"Count\".",
                &["action"],
            ),
            tracking_finalizer: counter(
                &registry,
                "terminated_pods_tracking_finalizer_total",
                "The number of terminated pods (phase=Failed|Succeeded) that have the finalizer batch.kubernetes.io/job-tracking. The event label can be \"add\" or \"delete\".",
                &["event"],
            ),
            finished_indexes: counter(
                &registry,
                "job_finished_indexes_total",
                "The number of finished indexes. Possible values for the status label are: \"succeeded\", \"failed\". Possible values for the backoffLimit label are: \"perIndex\" and \"global\"",
                &["status", "backoffLimit"],
            ),
            pods_creation: counter(
                &registry,
                "job_pods_creation_total",
                "The number of Pods created by the Job controller labelled with a reason for the Pod creation. This metric also distinguishes between Pods created using different PodReplacementPolicy settings. Possible values of the \"reason\" label are: \"new\", \"recreate_terminating_or_failed\", \"recreate_failed\". Possible values of the \"status\" label are: \"succeeded\", \"failed\".",
                &["reason", "status"],
            ),
            sync_duration,
            registry,
        }
    }

    /// Counts one sync that took `elapsed`. Every sync here succeeds: the engine's writes
    /// are committed in batches after it, and a failed commit stops the engine.
    pub(crate) fn record(&self, sync: &SyncMetrics, elapsed: Duration) {
        let mode = sync.completion_mode;
        if let Some(action) = sync.action {
            let labels = [mode, "success", action];
            self.sync_duration
                .with_label_values(&labels)
                .observe(elapsed.as_secs_f64());
            self.syncs.with_label_values(&labels).inc();
        }
        if let Some((result, reason)) = &sync.finished {
            self.jobs_finished
                .with_label_values(&[mode, result, reason.as_str()])
                .inc();
        }
        let add = |counter: &IntCounterVec, labels: &[&str], n: u64| {
            if n > 0 {
                counter.with_label_values(labels).inc_by(n);
            }
        };
        add(
            &self.pods_finished,
            &[mode, "succeeded"],
            sync.pods_succeeded,
        );
        add(&self.pods_finished, &[mode, "failed"], sync.pods_failed);
        // Zero but for Indexed Jobs.
        let limit = sync.backoff_limit;
        add(
            &self.finished_indexes,
            &["succeeded", limit],
            sync.indexes_succeeded,
        );
        add(
            &self.finished_indexes,
            &["failed", limit],
            sync.indexes_failed,
        );
        add(
            &self.pods_creation,
            &[sync.creation_reason, "succeeded"],
            sync.pods_created,
        );
        for action in &sync.failure_policy_actions {
            self.failure_policy.with_label_values(&[action]).inc();
        }
        for event in ["add", "delete"] {
            add(
                &self.tracking_finalizer,
                &[event],
                sync.terminated_untracked,
            );
        }
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn text(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .expect("metrics encode")
    }
}
