//! The scheduler of joblet's one node: a queue of pods waiting for it, and the default
//! scheduler's filters that decide which of them it takes (`NodeAffinity`,
//! `NodeResourcesFit`), with upstream's words for those it does not. A pod is bound when it
//! fits beside the pods already bound; the others wait, and are tried again when a bound
//! pod leaves. The node has no taints, so every toleration is satisfied.
//!
//! Pure: no clock, no I/O. The engine binds what it is told and records the events.

mod placement;
mod requests;

use std::collections::{BTreeMap, HashMap};

use joblet_api::k8s_openapi::api::core::v1::{Node, PodSpec};

use placement::{node_matches, NodeIdentity};
pub use requests::{pod_requests, Resources};

/// A pod's namespace and name.
pub type PodKey = (String, String);

/// What the scheduler decided for a waiting pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It fits: bind it to the node.
    Bind(PodKey),
    /// It does not, and this is why (said once per pod and reason: the same reason is not
    /// repeated at each retry).
    Unschedulable { pod: PodKey, message: String },
    /// A pod that named the node itself (`spec.nodeName`), which the kubelet's admission
    /// refuses (lifecycle/predicate.go): it fails, with this reason (`OutOfcpu`,
    /// `NodeAffinity`) and message (`Node didn't have enough resource: cpu, requested: 4000,
    /// used: 0, capacity: 1800`).
    Rejected {
        pod: PodKey,
        reason: String,
        message: String,
    },
}

/// Why a pod does not fit the node.
struct Unfit {
    reasons: Vec<String>,
    /// Whether removing pods could make room (else preemption "is not helpful").
    resolvable: bool,
}

impl Unfit {
    /// `FitError.Error()` for a one-node cluster, with the default preemption's verdict:
    /// all pods have the same priority, so there is never a victim.
    fn message(&self) -> String {
        let mut reasons: Vec<String> = self.reasons.iter().map(|r| format!("1 {r}")).collect();
        reasons.sort();
        let preemption = if self.resolvable {
            "No preemption victims found for incoming pod"
        } else {
            "Preemption is not helpful for scheduling"
        };
        format!(
            "0/1 nodes are available: {}. preemption: 0/1 nodes are available: 1 {preemption}..",
            reasons.join(", ")
        )
    }
}

/// Where a waiting pod may go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Wherever the filters allow.
    Scheduler,
    /// `spec.nodeName` names this node: the scheduler never sees such a pod; the kubelet
    /// admits it, or rejects it.
    ThisNode,
    /// `spec.nodeName` names a node that does not exist here: it waits for good.
    OtherNode,
}

struct Waiting {
    key: PodKey,
    target: Target,
    requests: Resources,
    /// Whether its node selector and affinity accept the node (they cannot change).
    placed: bool,
    /// The last reason given for it.
    said: Option<String>,
}

pub struct Scheduler {
    name: String,
    labels: BTreeMap<String, String>,
    allocatable: Resources,
    allowed_pods: usize,
    /// What the bound pods request, together and each.
    requested: Resources,
    bound: HashMap<PodKey, Resources>,
    /// Waiting pods in the order they came (the scheduling queue's order for pods of equal
    /// priority).
    waiting: BTreeMap<u64, Waiting>,
    arrival: HashMap<PodKey, u64>,
    next_arrival: u64,
    /// Something changed since the last pass: a pod came, or one left the node.
    retry: bool,
}

impl Scheduler {
    /// A scheduler for `node`, as its status reports it (labels, allocatable).
    pub fn new(node: &Node) -> Scheduler {
        let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let allowed_pods = allocatable
            .and_then(|a| a.get("pods"))
            .and_then(|q| q.0.parse().ok())
            .unwrap_or(0);
        Scheduler {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            allocatable: Resources::from_list(allocatable),
            allowed_pods,
            requested: Resources::default(),
            bound: HashMap::new(),
            waiting: BTreeMap::new(),
            arrival: HashMap::new(),
            next_arrival: 0,
            retry: false,
        }
    }

    /// A pod already on the node (bound before, or named by `spec.nodeName`).
    pub fn add_bound(&mut self, key: PodKey, spec: &PodSpec) {
        let requests = pod_requests(spec);
        self.requested.add(&requests);
        if let Some(earlier) = self.bound.insert(key, requests) {
            self.requested.subtract(&earlier);
        }
    }

    /// A pod that waits for the node (or, with `spec.nodeName`, for the node it names).
    pub fn enqueue(&mut self, key: PodKey, spec: &PodSpec) {
        let identity = NodeIdentity {
            name: &self.name,
            labels: &self.labels,
        };
        let target = match spec.node_name.as_deref() {
            None | Some("") => Target::Scheduler,
            Some(name) if name == self.name => Target::ThisNode,
            Some(_) => Target::OtherNode,
        };
        let waiting = Waiting {
            key: key.clone(),
            target,
            requests: pod_requests(spec),
            placed: node_matches(spec, &identity),
            said: None,
        };
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        if let Some(earlier) = self.arrival.insert(key, arrival) {
            self.waiting.remove(&earlier);
        }
        self.waiting.insert(arrival, waiting);
        self.retry = true;
    }

    /// A pod that left: ended or deleted on the node, or deleted while it waited. True when
    /// it was waiting.
    pub fn remove(&mut self, key: &PodKey) -> bool {
        if let Some(requests) = self.bound.remove(key) {
            self.requested.subtract(&requests);
            self.retry = true;
        }
        match self.arrival.remove(key) {
            Some(arrival) => self.waiting.remove(&arrival).is_some(),
            None => false,
        }
    }

    pub fn is_waiting(&self, key: &PodKey) -> bool {
        self.arrival.contains_key(key)
    }

    /// One pass over the waiting pods, in order: each that fits beside those bound is
    /// bound; the others wait. Does nothing unless a pod came or left since the last pass.
    pub fn schedule(&mut self) -> Vec<Decision> {
        if !std::mem::take(&mut self.retry) {
            return Vec::new();
        }
        let mut decisions = Vec::new();
        let arrivals: Vec<u64> = self.waiting.keys().copied().collect();
        for arrival in arrivals {
            let waiting = &self.waiting[&arrival];
            let verdict = match waiting.target {
                Target::Scheduler => self.filter(waiting),
                Target::ThisNode => match self.admit(waiting) {
                    Some((reason, message)) => {
                        let waiting = self.waiting.remove(&arrival).expect("listed above");
                        self.arrival.remove(&waiting.key);
                        decisions.push(Decision::Rejected {
                            pod: waiting.key,
                            reason,
                            message,
                        });
                        continue;
                    }
                    None => None,
                },
                Target::OtherNode => continue,
            };
            match verdict {
                None => {
                    let waiting = self.waiting.remove(&arrival).expect("listed above");
                    self.arrival.remove(&waiting.key);
                    self.requested.add(&waiting.requests);
                    self.bound.insert(waiting.key.clone(), waiting.requests);
                    decisions.push(Decision::Bind(waiting.key));
                }
                Some(unfit) => {
                    let message = unfit.message();
                    let waiting = self.waiting.get_mut(&arrival).expect("listed above");
                    if waiting.said.as_ref() != Some(&message) {
                        waiting.said = Some(message.clone());
                        decisions.push(Decision::Unschedulable {
                            pod: waiting.key.clone(),
                            message,
                        });
                    }
                }
            }
        }
        decisions
    }

    /// The default profile's filters, in its order; the first that fails says why.
    fn filter(&self, pod: &Waiting) -> Option<Unfit> {
        if !pod.placed {
            return Some(Unfit {
                reasons: vec!["node(s) didn't match Pod's node affinity/selector".to_string()],
                resolvable: false,
            });
        }
        self.fit(&pod.requests)
    }

    /// The kubelet's admission of a pod bound by name (`GeneralPredicates`): its node
    /// affinity, then the pod count and each resource it requests against what is left of
    /// allocatable, extended resources the node does not have left out. The first failure
    /// is the reason.
    fn admit(&self, pod: &Waiting) -> Option<(String, String)> {
        if !pod.placed {
            let message =
                "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector";
            return Some(("NodeAffinity".to_string(), message.to_string()));
        }
        let insufficient = |name: &str, requested: i128, used: i128, capacity: i128| {
            (requested > 0 && requested > capacity - used).then(|| {
                let message = format!(
                    "Node didn't have enough resource: {name}, requested: {requested}, used: {used}, capacity: {capacity}"
                );
                (format!("OutOf{name}"), message)
            })
        };
        let (request, have, used) = (&pod.requests, &self.allocatable, &self.requested);
        let bound = self.bound.len() as i128;
        insufficient("pods", 1, bound, self.allowed_pods as i128)
            .or_else(|| insufficient("cpu", request.milli_cpu, used.milli_cpu, have.milli_cpu))
            .or_else(|| insufficient("memory", request.memory, used.memory, have.memory))
            .or_else(|| {
                insufficient(
                    "ephemeral-storage",
                    request.ephemeral_storage,
                    used.ephemeral_storage,
                    have.ephemeral_storage,
                )
            })
            .or_else(|| {
                request.scalar.iter().find_map(|(name, wanted)| {
                    let capacity = *have.scalar.get(name)?;
                    let used = used.scalar.get(name).copied().unwrap_or(0);
                    insufficient(name, *wanted, used, capacity)
                })
            })
    }

    /// `NodeResourcesFit`: the pod count, then every resource the pod requests, against
    /// what is left of allocatable.
    fn fit(&self, request: &Resources) -> Option<Unfit> {
        let mut reasons = Vec::new();
        let mut resolvable = true;
        if self.bound.len() + 1 > self.allowed_pods {
            reasons.push("Too many pods".to_string());
        }
        let mut check = |name: &str, wanted: i128, allocatable: i128, used: i128| {
            if wanted > 0 && wanted > allocatable - used {
                reasons.push(format!("Insufficient {name}"));
                // More than the node has at all: no pod leaving makes room.
                resolvable &= wanted <= allocatable;
            }
        };
        if !request.is_zero() {
            let (have, used) = (&self.allocatable, &self.requested);
            check("cpu", request.milli_cpu, have.milli_cpu, used.milli_cpu);
            check("memory", request.memory, have.memory, used.memory);
            check(
                "ephemeral-storage",
                request.ephemeral_storage,
                have.ephemeral_storage,
                used.ephemeral_storage,
            );
            for (name, wanted) in &request.scalar {
                let of = |r: &Resources| r.scalar.get(name).copied().unwrap_or(0);
                check(name, *wanted, of(have), of(used));
            }
        }
        (!reasons.is_empty()).then_some(Unfit {
            reasons,
            resolvable,
        })
    }
}

#[cfg(test)]
mod tests;
