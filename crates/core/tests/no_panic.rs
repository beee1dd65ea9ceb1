//! No manifest may panic joblet: thousands of mutated manifests go through parsing,
//! defaulting, validation and, when valid, one reconcile.

use joblet_api::k8s_openapi::jiff::Timestamp;
use joblet_core::{reconcile, JobState, PodView, Time};
use serde_json::{json, Value};

mod common;

use common::Lcg;

const PATHS: &[&[&str]] = &[
    &["spec", "completions"],
    &["spec", "parallelism"],
    &["spec", "completionMode"],
    &["spec", "backoffLimit"],
    &["spec", "backoffLimitPerIndex"],
    &["spec", "maxFailedIndexes"],
    &["spec", "activeDeadlineSeconds"],
    &["spec", "ttlSecondsAfterFinished"],
    &["spec", "suspend"],
    &["spec", "manualSelector"],
    &["spec", "selector"],
    &["spec", "podReplacementPolicy"],
    &["spec", "podFailurePolicy"],
    &["spec", "successPolicy"],
    &["spec", "template", "spec", "restartPolicy"],
    &["spec", "template", "spec", "containers"],
    &["spec", "template", "spec", "initContainers"],
    &["spec", "template", "metadata", "labels"],
    &["spec", "template", "spec", "terminationGracePeriodSeconds"],
    &["metadata", "name"],
    &["metadata", "labels"],
    &["kind"],
    &["apiVersion"],
];

fn values() -> Vec<Value> {
    vec![
        json!(-1),
        json!(0),
        json!(1),
        json!(3),
        json!(2147483647),
        json!(-2147483648),
        json!(100001),
        json!(1e300),
        json!(1.5),
        json!("Indexed"),
        json!("NonIndexed"),
        json!("Never"),
        json!("OnFailure"),
        json!("x"),
        json!(""),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
        json!({"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0, 2147483647]}}]}),
        json!({"rules": [{"succeededIndexes": "0-2147483647,-1", "succeededCount": -5}]}),
        json!({"matchLabels": {"a": "b"}}),
        json!([{"name": "", "image": ""}]),
        json!([{"name": "c", "image": "i", "command": ["true"], "env": [{"name": "", "valueFrom": {}}]}]),
        json!("a".repeat(300)),
    ]
}

fn set(target: &mut Value, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().unwrap();
    let mut node = target;
    for key in parents {
        if !node.get(*key).is_some_and(Value::is_object) {
            node[*key] = json!({});
        }
        node = node.get_mut(*key).unwrap();
    }
    node[*last] = value;
}

#[test]
fn mutated_manifests_never_panic() {
    let base = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "fuzz"},
        "spec": {"completions": 4, "parallelism": 2, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}}
    });
    let pool = values();
    let mut rng = Lcg(42);
    let mut valid = 0;
    for _ in 0..5000 {
        let mut doc = base.clone();
        for _ in 0..1 + rng.below(4) {
            let path = PATHS[rng.below(PATHS.len() as u64) as usize];
            set(
                &mut doc,
                path,
                pool[rng.below(pool.len() as u64) as usize].clone(),
            );
        }
        let text = serde_json::to_string(&doc).unwrap();
        let Ok(jobs) = joblet_api::parse_jobs("fuzz", &text) else {
            continue;
        };
        for mut job in jobs {
            joblet_api::prepare_for_create(
                &mut job,
                "0f8f3c58-2b36-4bd5-9a1e-5d2f8f1b2c3d",
                Timestamp::UNIX_EPOCH,
            );
            if let Ok(job) = joblet_api::validate_job(&job) {
                valid += 1;
                let result = reconcile::<PodView>(
                    &job,
                    &JobState::default(),
                    &[],
                    Time(1_000),
                    &joblet_core::ControllerConfig::default(),
                );
                assert!(result.create.len() <= 500);
            }
        }
    }
    assert!(
        valid > 100,
        "the mutations should leave some manifests valid ({valid})"
    );
}

#[test]
fn mangled_text_never_panics() {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/shard-migration.yaml"
    ))
    .unwrap();
    let bytes = base.as_bytes();
    let inserts = b":-[]{}\"'\n #&*!|>%@`";
    let mut rng = Lcg(7);
    for _ in 0..3000 {
        let mut text = bytes.to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(text.len() as u64) as usize;
            match rng.below(3) {
                0 => {
                    text.remove(at);
                }
                1 => text.insert(at, inserts[rng.below(inserts.len() as u64) as usize]),
                _ => text[at] = inserts[rng.below(inserts.len() as u64) as usize],
            }
        }
        let text = String::from_utf8_lossy(&text);
        if let Ok(jobs) = joblet_api::parse_jobs("fuzz", &text) {
            for mut job in jobs {
                joblet_api::prepare_for_create(&mut job, "u", Timestamp::UNIX_EPOCH);
                let _ = joblet_api::validate_job(&job);
            }
        }
    }
}
