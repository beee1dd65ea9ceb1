//! The fit rules after upstream's `noderesources/fit_test.go` (`TestEnoughRequests`) and the
//! queue's order and retries.

use super::*;
use serde_json::json;

/// A node with 10 CPUs, 20 bytes of memory, 5 GPUs and room for `pods` pods.
fn node(pods: u32) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": "box", "labels": {"kubernetes.io/hostname": "box", "disk": "ssd"}},
        "status": {"allocatable": {"cpu": "10", "memory": "20", "ephemeral-storage": "20",
            "pods": pods.to_string(), "example.com/gpu": "5"}}
    }))
    .unwrap()
}

fn spec(requests: serde_json::Value) -> PodSpec {
    serde_json::from_value(
        json!({"containers": [{"name": "c", "resources": {"requests": requests}}]}),
    )
    .unwrap()
}

fn key(name: &str) -> PodKey {
    ("default".to_string(), name.to_string())
}

fn insufficient(reasons: &str) -> String {
    format!("0/1 nodes are available: {reasons}. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod..")
}

fn never(reasons: &str) -> String {
    format!("0/1 nodes are available: {reasons}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling..")
}

/// A scheduler with one pod bound that requests `used`, and the decision for `pod`.
fn decide(used: serde_json::Value, pod: PodSpec) -> Decision {
    let mut scheduler = Scheduler::new(&node(110));
    scheduler.add_bound(key("used"), &spec(used));
    scheduler.enqueue(key("new"), &pod);
    let mut decisions = scheduler.schedule();
    assert_eq!(decisions.len(), 1);
    decisions.remove(0)
}

fn unschedulable(message: String) -> Decision {
    Decision::Unschedulable {
        pod: key("new"),
        message,
    }
}

#[test]
fn no_resources_requested_always_fits() {
    let full = json!({"cpu": "10", "memory": "20"});
    assert_eq!(decide(full, spec(json!({}))), Decision::Bind(key("new")));
}

#[test]
fn too_many_resources_fails() {
    assert_eq!(
        decide(
            json!({"cpu": "10", "memory": "20"}),
            spec(json!({"cpu": "1", "memory": "1"}))
        ),
        unschedulable(insufficient("1 Insufficient cpu, 1 Insufficient memory"))
    );
    assert_eq!(
        decide(
            json!({"cpu": "5", "memory": "5"}),
            spec(json!({"cpu": "1", "memory": "1"}))
        ),
        Decision::Bind(key("new"))
    );
    assert_eq!(
        decide(
            json!({"cpu": "9", "memory": "5"}),
            spec(json!({"cpu": "2", "memory": "1"}))
        ),
        unschedulable(insufficient("1 Insufficient cpu"))
    );
}

#[test]
fn init_containers_count_by_their_max() {
    let pod: PodSpec = serde_json::from_value(json!({
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "3", "memory": "1"}}}],
        "containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1"}}}]}))
    .unwrap();
    assert_eq!(
        decide(json!({"cpu": "8", "memory": "19"}), pod.clone()),
        unschedulable(insufficient("1 Insufficient cpu"))
    );
    assert_eq!(
        decide(json!({"cpu": "7", "memory": "19"}), pod),
        Decision::Bind(key("new"))
    );
}

#[test]
fn extended_resources_fit_or_name_themselves() {
    let gpus = |n: u32| spec(json!({"example.com/gpu": n.to_string()}));
    assert_eq!(
        decide(json!({"example.com/gpu": "3"}), gpus(2)),
        Decision::Bind(key("new"))
    );
    assert_eq!(
        decide(json!({"example.com/gpu": "4"}), gpus(2)),
        unschedulable(insufficient("1 Insufficient example.com/gpu"))
    );
    // More than the node has, or a resource it does not have: waiting never helps.
    assert_eq!(
        decide(json!({}), gpus(6)),
        unschedulable(never("1 Insufficient example.com/gpu"))
    );
    assert_eq!(
        decide(json!({}), spec(json!({"nvidia.com/gpu": "1", "cpu": "1"}))),
        unschedulable(never("1 Insufficient nvidia.com/gpu"))
    );
    assert_eq!(
        decide(
            json!({"cpu": "10"}),
            spec(json!({"nvidia.com/gpu": "1", "cpu": "1"}))
        ),
        unschedulable(never("1 Insufficient cpu, 1 Insufficient nvidia.com/gpu"))
    );
}

#[test]
fn the_pod_count_is_a_limit_even_without_requests() {
    let mut scheduler = Scheduler::new(&node(2));
    for name in ["a", "b", "c"] {
        scheduler.enqueue(key(name), &spec(json!({})));
    }
    assert_eq!(
        scheduler.schedule(),
        [
            Decision::Bind(key("a")),
            Decision::Bind(key("b")),
            Decision::Unschedulable {
                pod: key("c"),
                message: insufficient("1 Too many pods")
            },
        ]
    );
}

#[test]
fn a_node_selector_that_the_node_does_not_satisfy_is_never_resolved() {
    let pod: PodSpec =
        serde_json::from_value(json!({"nodeSelector": {"disk": "hdd"}, "containers": []})).unwrap();
    assert_eq!(
        decide(json!({}), pod),
        unschedulable(never("1 node(s) didn't match Pod's node affinity/selector"))
    );
}

#[test]
fn waiting_pods_are_bound_in_order_as_bound_ones_leave_and_reasons_are_said_once() {
    let mut scheduler = Scheduler::new(&node(110));
    let cpus = |n: u32| spec(json!({"cpu": n.to_string()}));
    scheduler.enqueue(key("a"), &cpus(6));
    scheduler.enqueue(key("b"), &cpus(6));
    scheduler.enqueue(key("c"), &cpus(4));
    let full = insufficient("1 Insufficient cpu");
    assert_eq!(
        scheduler.schedule(),
        [
            Decision::Bind(key("a")),
            Decision::Unschedulable {
                pod: key("b"),
                message: full.clone()
            },
            Decision::Bind(key("c")),
        ]
    );
    // Nothing changed: nothing to say.
    assert_eq!(scheduler.schedule(), []);
    scheduler.enqueue(key("d"), &cpus(1));
    assert_eq!(
        scheduler.schedule(),
        [Decision::Unschedulable {
            pod: key("d"),
            message: full.clone()
        }]
    );
    // `c` ends: `d` fits, `b` still does not (and is not told again).
    assert!(!scheduler.remove(&key("c")));
    assert_eq!(scheduler.schedule(), [Decision::Bind(key("d"))]);
    // `b` is deleted while it waits.
    assert!(scheduler.is_waiting(&key("b")));
    assert!(scheduler.remove(&key("b")));
    assert!(!scheduler.is_waiting(&key("b")));
    scheduler.remove(&key("a"));
    assert_eq!(scheduler.schedule(), []);
}

/// A pod that names the node skips the scheduler; the kubelet's admission takes it or
/// rejects it, as lifecycle/predicate.go words it (extended resources the node does not
/// have are left out). A pod naming another node waits for good.
#[test]
fn a_pod_that_names_its_node_is_admitted_or_rejected_by_the_kubelet() {
    let mut scheduler = Scheduler::new(&node(3));
    scheduler.add_bound(key("used"), &spec(json!({"cpu": "9"})));
    let named = |node: &str, extra: serde_json::Value| -> PodSpec {
        let mut pod = json!({"nodeName": node, "containers": [{"name": "c"}]});
        for (field, value) in extra.as_object().unwrap() {
            match field.as_str() {
                "requests" => pod["containers"][0]["resources"] = json!({"requests": value}),
                _ => pod[field] = value.clone(),
            }
        }
        serde_json::from_value(pod).unwrap()
    };
    let rejected = |name: &str, reason: &str, message: &str| Decision::Rejected {
        pod: key(name),
        reason: reason.to_string(),
        message: message.to_string(),
    };
    scheduler.enqueue(
        key("here"),
        &named("box", json!({"requests": {"cpu": "1"}})),
    );
    scheduler.enqueue(key("big"), &named("box", json!({"requests": {"cpu": "2"}})));
    scheduler.enqueue(key("elsewhere"), &named("other", json!({})));
    scheduler.enqueue(
        key("gpus"),
        &named("box", json!({"requests": {"example.com/gpu": "6"}})),
    );
    scheduler.enqueue(
        key("fpga"),
        &named("box", json!({"requests": {"other.com/fpga": "1"}})),
    );
    scheduler.enqueue(
        key("hdd"),
        &named("box", json!({"nodeSelector": {"disk": "hdd"}})),
    );
    scheduler.enqueue(key("fourth"), &named("box", json!({})));
    assert_eq!(
        scheduler.schedule(),
        [
            Decision::Bind(key("here")),
            rejected("big", "OutOfcpu", "Node didn't have enough resource: cpu, requested: 2000, used: 10000, capacity: 10000"),
            rejected("gpus", "OutOfexample.com/gpu", "Node didn't have enough resource: example.com/gpu, requested: 6, used: 0, capacity: 5"),
            Decision::Bind(key("fpga")),
            rejected("hdd", "NodeAffinity", "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"),
            rejected("fourth", "OutOfpods", "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3"),
        ]
    );
    // The other node never comes: no verdict, and it can still be deleted.
    scheduler.remove(&key("used"));
    assert_eq!(scheduler.schedule(), []);
    assert!(scheduler.remove(&key("elsewhere")));
}
