//! The node object a kubelet registers and keeps up to date: this machine's name, labels,
//! capacity and allocatable resources, conditions and system info.

use std::collections::BTreeMap;

use joblet_api::k8s_openapi::api::core::v1::{
    Node as NodeObject, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo,
};
use joblet_api::k8s_openapi::apimachinery::pkg::api::resource::Quantity as QuantityText;
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use joblet_api::quantity::Quantity;

/// The node pods run on: its name (`spec.nodeName`), its capacity, how many pods it takes,
/// and what it runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    pub name: String,
    pub cpu_millis: i128,
    pub memory_bytes: i128,
    /// The file system of the state directory, where pods' logs and volumes go.
    pub ephemeral_storage_bytes: i128,
    /// The kubelet's `--max-pods` (110 by default).
    pub max_pods: i64,
    /// Kernel, OS image, machine and boot ids, container runtime, architecture.
    pub system: NodeSystemInfo,
}

/// The kubelet's `--max-pods` default.
pub const DEFAULT_MAX_PODS: i64 = 110;

/// The kubelet's default hard eviction threshold `memory.available<100Mi`, held back from
/// allocatable memory.
const MEMORY_EVICTION_BYTES: i128 = 100 << 20;
/// `nodefs.available<10%`, held back from allocatable ephemeral storage.
const NODEFS_EVICTION_PERCENT: i128 = 10;

impl Node {
    /// Capacity less what the kubelet holds back for eviction (no kube or system
    /// reservations, as a kubelet's defaults).
    pub fn allocatable_memory_bytes(&self) -> i128 {
        (self.memory_bytes - MEMORY_EVICTION_BYTES).max(0)
    }

    pub fn allocatable_ephemeral_storage_bytes(&self) -> i128 {
        self.ephemeral_storage_bytes - self.ephemeral_storage_bytes * NODEFS_EVICTION_PERCENT / 100
    }
}

/// Bytes as the kubelet writes them (a binary quantity: `24578184Ki`).
fn bytes(value: i128) -> QuantityText {
    let text = value.to_string();
    let canonical = if value % 1024 == 0 {
        Quantity::parse(&format!("{}Ki", value / 1024)).map(|q| q.canonical())
    } else {
        None
    };
    QuantityText(canonical.unwrap_or(text))
}

fn cpu(millis: i128) -> QuantityText {
    let text = format!("{millis}m");
    QuantityText(Quantity::parse(&text).map_or(text, |q| q.canonical()))
}

/// The node as the API serves it (`kubectl get nodes`, `kubectl describe node`).
pub fn node_object(node: &Node, uid: &str, since: &Time) -> NodeObject {
    let arch = node.system.architecture.clone();
    let os = node.system.operating_system.clone();
    let labels = BTreeMap::from([
        ("beta.kubernetes.io/arch".to_string(), arch.clone()),
        ("beta.kubernetes.io/os".to_string(), os.clone()),
        ("kubernetes.io/arch".to_string(), arch),
        ("kubernetes.io/hostname".to_string(), node.name.clone()),
        ("kubernetes.io/os".to_string(), os),
    ]);
    let annotations = BTreeMap::from([
        ("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string()),
        (
            "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
            "true".to_string(),
        ),
    ]);
    let resources = |memory: i128, storage: i128| {
        BTreeMap::from([
            ("cpu".to_string(), cpu(node.cpu_millis)),
            ("ephemeral-storage".to_string(), bytes(storage)),
            ("hugepages-1Gi".to_string(), QuantityText("0".to_string())),
            ("hugepages-2Mi".to_string(), QuantityText("0".to_string())),
            ("memory".to_string(), bytes(memory)),
            ("pods".to_string(), QuantityText(node.max_pods.to_string())),
        ])
    };
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(since.clone()),
        last_transition_time: Some(since.clone()),
    };
    NodeObject {
        metadata: ObjectMeta {
            name: Some(node.name.clone()),
            uid: Some(uid.to_string()),
            creation_timestamp: Some(since.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".to_string(),
                    address: "127.0.0.1".to_string(),
                },
                NodeAddress {
                    type_: "Hostname".to_string(),
                    address: node.name.clone(),
                },
            ]),
            capacity: Some(resources(node.memory_bytes, node.ephemeral_storage_bytes)),
            allocatable: Some(resources(
                node.allocatable_memory_bytes(),
                node.allocatable_ephemeral_storage_bytes(),
            )),
            conditions: Some(vec![
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                condition(
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                ),
            ]),
            node_info: Some(node.system.clone()),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_reports_capacity_and_what_the_kubelet_holds_back() {
        let node = Node {
            name: "box".to_string(),
            cpu_millis: 2000,
            memory_bytes: 8 << 30,
            ephemeral_storage_bytes: 100 << 30,
            max_pods: 110,
            system: NodeSystemInfo {
                architecture: "amd64".to_string(),
                operating_system: "linux".to_string(),
                ..Default::default()
            },
        };
        let object = node_object(&node, "u", &Time(Default::default()));
        let status = object.status.unwrap();
        let text = |map: &Option<BTreeMap<String, QuantityText>>, key: &str| {
            map.as_ref().unwrap()[key].0.clone()
        };
        assert_eq!(text(&status.capacity, "cpu"), "2");
        assert_eq!(text(&status.capacity, "memory"), "8Gi");
        assert_eq!(text(&status.allocatable, "memory"), "8092Mi");
        assert_eq!(text(&status.capacity, "pods"), "110");
        // 90% of 100Gi.
        assert_eq!(text(&status.allocatable, "ephemeral-storage"), "90Gi");
        let labels = object.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "box");
        assert_eq!(labels["kubernetes.io/arch"], "amd64");
    }
}
