//! Helpers shared by the controller tests: Jobs from JSON, pods by hand, one sync.
#![allow(dead_code)]

use joblet_api::k8s_openapi::api::batch::v1::Job;
use joblet_api::k8s_openapi::jiff::Timestamp;
use joblet_api::ValidJob;
use joblet_core::{
    reconcile, ContainerExit, ControllerConfig, JobState, PodPhase, PodView, Reconciliation, Time,
};
use serde_json::json;

pub const NOW: Time = Time(1_800_000_000_000);
pub const LONG_AGO: Time = Time(1_700_000_000_000);

pub fn job(spec: serde_json::Value) -> ValidJob {
    let mut value = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "foobar"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}}
    });
    for (k, v) in spec.as_object().unwrap() {
        if k == "restartPolicy" {
            value["spec"]["template"]["spec"]["restartPolicy"] = v.clone();
        } else if k == "containers" {
            value["spec"]["template"]["spec"]["containers"] = v.clone();
        } else {
            value["spec"][k] = v.clone();
        }
    }
    let mut job: Job = serde_json::from_value(value).unwrap();
    joblet_api::prepare_for_create(
        &mut job,
        "0f8f3c58-2b36-4bd5-9a1e-5d2f8f1b2c3d",
        Timestamp::UNIX_EPOCH,
    );
    joblet_api::validate_job(&job).unwrap()
}

pub fn pod(name: &str, phase: PodPhase) -> PodView {
    PodView {
        name: name.to_string(),
        index: None,
        phase,
        deleting: false,
        tracked: true,
        ready: false,
        ready_since: None,
        created: LONG_AGO,
        finish_time: LONG_AGO,
        restart_count: 0,
        exits: Vec::new(),
        conditions: Vec::new(),
        index_failure_count: 0,
        index_ignored_failure_count: 0,
    }
}

pub fn indexed(name: &str, index: i32, phase: PodPhase) -> PodView {
    PodView {
        index: Some(index),
        ..pod(name, phase)
    }
}

pub fn running(name: &str) -> PodView {
    pod(name, PodPhase::Running)
}

pub fn ready(name: &str) -> PodView {
    PodView {
        ready: true,
        ..running(name)
    }
}

pub fn started(at: Time) -> JobState {
    let mut state = JobState::default();
    state.status.start_time = Some(at);
    state
}

pub fn sync(job: &ValidJob, state: &JobState, pods: &[PodView]) -> Reconciliation {
    reconcile(job, state, pods, NOW, &ControllerConfig::default())
}

pub fn condition_types(r: &Reconciliation) -> Vec<(&'static str, String)> {
    r.state
        .status
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.reason.clone()))
        .collect()
}

pub fn created_indexes(r: &Reconciliation) -> Vec<i32> {
    r.create.iter().map(|p| p.index.unwrap()).collect()
}

pub fn reasons(r: &Reconciliation) -> Vec<&str> {
    r.events.iter().map(|e| e.reason.as_str()).collect()
}

/// A failed pod whose containers exited with these codes (`(container, code)`).
pub fn failed_with(name: &str, exits: &[(&str, i32)]) -> PodView {
    PodView {
        exits: exits
            .iter()
            .map(|(c, code)| ContainerExit {
                name: c.to_string(),
                exit_code: *code,
                init: false,
            })
            .collect(),
        ..pod(name, PodPhase::Failed)
    }
}

pub fn with_condition(mut pod: PodView, type_: &str) -> PodView {
    pod.conditions.push((type_.to_string(), "True".to_string()));
    pod
}

pub fn with_counts(mut pod: PodView, failures: i32, ignored: i32) -> PodView {
    pod.index_failure_count = failures;
    pod.index_ignored_failure_count = ignored;
    pod
}

/// A small deterministic generator, so a failure reproduces.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
