//! What a pod asks of a node: its effective requests, as `resource.PodRequests` sums them
//! and the scheduler's `NodeResourcesFit` counts them.

use std::collections::BTreeMap;

use joblet_api::k8s_openapi::api::core::v1::{Container, PodSpec};
use joblet_api::k8s_openapi::apimachinery::pkg::api::resource::Quantity as QuantityText;
use joblet_api::quantity::Quantity;
use joblet_api::resources::is_extended;

/// Amounts of resources in the scheduler's units: CPU in millicores, the rest in whole
/// units (bytes, devices), rounded up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i128,
    pub memory: i128,
    pub ephemeral_storage: i128,
    /// Extended resources (`nvidia.com/gpu`) and huge pages (`IsScalarResourceName`).
    pub scalar: BTreeMap<String, i128>,
}

impl Resources {
    /// Reads a resource list; names the scheduler does not count are left out.
    pub fn from_list(list: Option<&BTreeMap<String, QuantityText>>) -> Resources {
        let mut resources = Resources::default();
        for (name, text) in list.into_iter().flatten() {
            let Some(quantity) = Quantity::parse(&text.0) else {
                continue;
            };
            match name.as_str() {
                "cpu" => resources.milli_cpu = quantity.milli_value(),
                "memory" => resources.memory = quantity.value(),
                "ephemeral-storage" => resources.ephemeral_storage = quantity.value(),
                name if is_scalar(name) => {
                    resources.scalar.insert(name.to_string(), quantity.value());
                }
                _ => {}
            }
        }
        resources
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }

    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        for (name, value) in &other.scalar {
            *self.scalar.entry(name.clone()).or_default() += value;
        }
    }

    pub fn subtract(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        for (name, value) in &other.scalar {
            *self.scalar.entry(name.clone()).or_default() -= value;
        }
    }

    /// Each resource the larger of the two (`maxResourceList`).
    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (name, value) in &other.scalar {
            let mine = self.scalar.entry(name.clone()).or_default();
            *mine = (*mine).max(*value);
        }
    }
}

/// `IsScalarResourceName`: extended resources, huge pages, `kubernetes.io/`-prefixed and
/// attachable volumes.
fn is_scalar(name: &str) -> bool {
    is_extended(name)
        || name.starts_with("hugepages-")
        || name.starts_with("kubernetes.io/")
        || name.starts_with("attachable-volumes-")
}

fn requests(container: &Container) -> Resources {
    Resources::from_list(
        container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref()),
    )
}

/// The pod's effective requests (the sidecar KEP's rule): the sum of its containers and
/// sidecars, or, if larger, what each init container needs while it runs (itself plus the
/// sidecars started before it), plus the pod's overhead.
pub fn pod_requests(spec: &PodSpec) -> Resources {
    let mut total = Resources::default();
    for container in &spec.containers {
        total.add(&requests(container));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for container in spec.init_containers.iter().flatten() {
        let own = requests(container);
        let while_running = if container.restart_policy.as_deref() == Some("Always") {
            total.add(&own);
            sidecars.add(&own);
            sidecars.clone()
        } else {
            let mut with_sidecars = own;
            with_sidecars.add(&sidecars);
            with_sidecars
        };
        init_peak.max_with(&while_running);
    }
    total.max_with(&init_peak);
    total.add(&Resources::from_list(spec.overhead.as_ref()));
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> PodSpec {
        serde_json::from_value(value).unwrap()
    }

    fn container(name: &str, cpu: &str, memory: &str) -> serde_json::Value {
        json!({"name": name, "resources": {"requests": {"cpu": cpu, "memory": memory}}})
    }

    fn sidecar(name: &str, cpu: &str, memory: &str) -> serde_json::Value {
        let mut c = container(name, cpu, memory);
        c["restartPolicy"] = json!("Always");
        c
    }

    fn cpu_and_memory(spec: PodSpec) -> (i128, i128) {
        let r = pod_requests(&spec);
        (r.milli_cpu, r.memory)
    }

    // The cases of upstream's `TestPodRequests` (component-helpers) and the sidecar KEP.
    #[test]
    fn containers_add_up_and_init_containers_take_the_max() {
        let plain = spec(
            json!({"containers": [container("a", "1", "1Gi"), container("b", "500m", "1Gi")]}),
        );
        assert_eq!(cpu_and_memory(plain), (1500, 2 << 30));
        let init_larger = spec(json!({
            "initContainers": [container("i", "4", "1Gi")],
            "containers": [container("a", "1", "2Gi")]}));
        assert_eq!(cpu_and_memory(init_larger), (4000, 2 << 30));
    }

    #[test]
    fn sidecars_count_with_the_containers_and_under_later_init_containers() {
        // A sidecar (1) then an init container (2): while it runs, 3; after, 1 + 1.
        let pod = spec(json!({
            "initContainers": [sidecar("s", "1", "100Mi"), container("i", "2", "100Mi")],
            "containers": [container("a", "1", "100Mi")]}));
        assert_eq!(cpu_and_memory(pod), (3000, 200 << 20));
        // An init container before the sidecar does not run beside it.
        let pod = spec(json!({
            "initContainers": [container("i", "2", "100Mi"), sidecar("s", "1", "100Mi")],
            "containers": [container("a", "1", "100Mi")]}));
        assert_eq!(cpu_and_memory(pod), (2000, 200 << 20));
        // Two sidecars, the second with an init container between.
        let pod = spec(json!({
            "initContainers": [sidecar("s1", "1", "0"), container("i", "1500m", "0"),
                               sidecar("s2", "2", "0")],
            "containers": [container("a", "500m", "0")]}));
        assert_eq!(cpu_and_memory(pod), (3500, 0));
    }

    #[test]
    fn extended_resources_and_overhead_are_counted() {
        let pod = spec(json!({
            "overhead": {"cpu": "250m"},
            "containers": [{"name": "a", "resources": {
                "requests": {"nvidia.com/gpu": "1", "cpu": "1", "storage": "1Gi"}}}]}));
        let requests = pod_requests(&pod);
        assert_eq!(requests.milli_cpu, 1250);
        assert_eq!(
            requests.scalar,
            BTreeMap::from([("nvidia.com/gpu".to_string(), 1)])
        );
    }
}
