//! A deterministic simulation of the whole loop: random Jobs, pods that start, succeed,
//! fail and get deleted at random, a manual clock, and the controller's invariants checked
//! after every sync.

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use joblet_core::{
    reconcile, BackoffConfig, ConditionType, ContainerExit, ControllerConfig, JobState, PodPhase,
    PodView,
};
use serde_json::json;

fn random_job(rng: &mut Lcg) -> serde_json::Value {
    let indexed = rng.chance(50);
    let completions = if indexed || rng.chance(70) {
        Some(rng.below(12) as i32)
    } else {
        None
    };
    let mut spec = json!({"parallelism": rng.below(6), "backoffLimit": rng.below(5)});
    if let Some(c) = completions {
        spec["completions"] = json!(c);
    }
    let mut rules = vec![
        json!({"action": "Ignore", "onExitCodes": {"operator": "In", "values": [4]}}),
        json!({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [5]}}),
    ];
    if indexed {
        spec["completionMode"] = json!("Indexed");
        if rng.chance(50) {
            spec["backoffLimitPerIndex"] = json!(rng.below(3));
            spec["backoffLimit"] = json!(100);
            rules.push(
                json!({"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [3]}}),
            );
            if rng.chance(50) {
                spec["maxFailedIndexes"] = json!(rng.below(completions.unwrap_or(0) as u64 + 1));
            }
        }
        if rng.chance(30) && completions.unwrap_or(0) > 0 {
            spec["successPolicy"] =
                json!({"rules": [{"succeededCount": 1 + rng.below(completions.unwrap() as u64)}]});
        }
    }
    if rng.chance(50) {
        spec["podFailurePolicy"] = json!({"rules": rules});
    }
    spec
}

#[test]
fn random_runs_keep_the_controller_invariants() {
    let config = ControllerConfig {
        backoff: BackoffConfig {
            base_ms: 1_000,
            max_ms: 8_000,
        },
        ..Default::default()
    };
    let mut rng = Lcg(2026);
    let mut finished_runs = 0;
    const RUNS: usize = 300;
    for run in 0..RUNS {
        let spec = random_job(&mut rng);
        let j = job(spec.clone());
        let parallelism = j.spec.parallelism as usize;
        let completions = j.spec.completions;
        let mut state = JobState::default();
        let mut pods: HashMap<String, PodView> = HashMap::new();
        let mut counted: HashSet<String> = HashSet::new();
        let mut now = NOW;
        for step in 0..400 {
            let context = || format!("run {run} step {step} spec {spec}");
            // The world moves: pods start, finish, fail, and deleted pods go away.
            for pod in pods.values_mut() {
                let roll = rng.below(100);
                match pod.phase {
                    PodPhase::Pending if roll < 60 => {
                        pod.phase = PodPhase::Running;
                        pod.ready = true;
                    }
                    PodPhase::Running if pod.deleting || roll < 25 => {
                        let code = [0, 0, 0, 1, 3, 4, 5][rng.below(7) as usize];
                        pod.phase = if code == 0 {
                            PodPhase::Succeeded
                        } else {
                            PodPhase::Failed
                        };
                        pod.ready = false;
                        pod.finish_time = now;
                        pod.exits = vec![ContainerExit {
                            name: "main".into(),
                            exit_code: code,
                            init: false,
                        }];
                    }
                    PodPhase::Pending if pod.deleting => {
                        pod.phase = PodPhase::Failed;
                        pod.finish_time = now;
                    }
                    _ => {}
                }
            }
            let before = state.clone();
            let active_before = pods.values().filter(|p| p.is_active()).count();
            let live: Vec<&PodView> = pods.values().collect();
            let r = reconcile(&j, &state, &live, now, &config);

            assert!(
                r.create.is_empty() || r.delete.is_empty(),
                "created and deleted in one sync: {}",
                context()
            );
            if before.status.is_finished() {
                assert_eq!(r.state, before, "a finished Job changed: {}", context());
                assert!(r.create.is_empty() && r.delete.is_empty());
            }
            if !r.create.is_empty() {
                assert!(
                    active_before + r.create.len() <= parallelism,
                    "above parallelism: {}",
                    context()
                );
                let locked = before.status.has_true(ConditionType::FailureTarget)
                    || before.status.has_true(ConditionType::SuccessCriteriaMet);
                assert!(
                    !locked,
                    "pods created after the outcome was decided: {}",
                    context()
                );
            }
            assert!(
                r.state.status.failed >= before.status.failed,
                "failed went down: {}",
                context()
            );
            if let Some(c) = completions {
                assert!(
                    r.state.status.succeeded <= c,
                    "succeeded above completions: {}",
                    context()
                );
            }
            for name in &r.untrack {
                assert!(
                    counted.insert(name.clone()),
                    "{name} counted twice: {}",
                    context()
                );
                assert!(pods[name].tracked);
            }
            let active_indexes: Vec<i32> = pods
                .values()
                .filter(|p| p.is_active() && !r.delete.contains(&p.name))
                .filter_map(|p| p.index)
                .collect();
            for created in &r.create {
                if let Some(index) = created.index {
                    assert!(
                        !active_indexes.contains(&index),
                        "index {index} twice: {}",
                        context()
                    );
                    assert!(
                        !r.state.status.completed_indexes.contains(index),
                        "completed index {index} re-run: {}",
                        context()
                    );
                }
            }
            let active_after = active_before
                - r.delete.iter().filter(|n| pods[*n].is_active()).count()
                + r.create.len();
            assert_eq!(
                r.state.status.active as usize,
                active_after,
                "status.active: {}",
                context()
            );

            // Apply the decisions, as the driver does.
            for name in &r.untrack {
                pods.get_mut(name).unwrap().tracked = false;
            }
            for name in &r.delete {
                pods.get_mut(name).unwrap().deleting = true;
            }
            for created in &r.create {
                let mut pod = pod(&created.name, PodPhase::Pending);
                pod.index = created.index;
                pod.created = now;
                pod.index_failure_count = created.index_failure_count.unwrap_or(0);
                pod.index_ignored_failure_count = created.index_ignored_failure_count.unwrap_or(0);
                pods.insert(created.name.clone(), pod);
            }
            pods.retain(|_, p| !p.phase.is_terminal() || p.tracked);
            state = r.state;
            now = now.plus_millis(rng.below(3_000) as i64);
            if state.status.is_finished() && pods.values().all(|p| p.phase.is_terminal()) {
                finished_runs += 1;
                break;
            }
        }
    }
    assert!(
        finished_runs > RUNS * 3 / 4,
        "only {finished_runs} of {RUNS} runs finished"
    );
}
