//! What a pod asks of the node, read once from its spec: its containers in the order the
//! kubelet starts them, and the policies that decide restarts and ends.

use std::time::Duration;

use joblet_api::k8s_openapi::api::core::v1::Pod;

/// The part a container plays in its pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An init container that runs to completion before the next one starts.
    Init,
    /// An init container with `restartPolicy: Always`: started in the init order, then kept
    /// running beside the main containers, and stopped after them.
    Sidecar,
    Main,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Never,
    OnFailure,
    Always,
}

impl RestartPolicy {
    fn parse(policy: Option<&str>) -> Option<RestartPolicy> {
        match policy? {
            "Never" => Some(RestartPolicy::Never),
            "OnFailure" => Some(RestartPolicy::OnFailure),
            "Always" => Some(RestartPolicy::Always),
            _ => None,
        }
    }

    fn restarts(self, code: i32) -> bool {
        match self {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => code != 0,
            RestartPolicy::Always => true,
        }
    }
}

/// A container's own `restartPolicy` and `restartPolicyRules` (ContainerRestartRules), which
/// decide before the pod's policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerRestart {
    pub policy: Option<RestartPolicy>,
    pub rules: Vec<RestartRule>,
}

/// One of `restartPolicyRules`: what to do when the exit code is `In` (or `NotIn`) `codes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartRule {
    pub action: RuleAction,
    pub is_in: bool,
    pub codes: Vec<i32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleAction {
    /// The container starts again in place.
    Restart,
    /// Every container of the pod is stopped and the pod starts over from its first init
    /// container (RestartAllContainersOnContainerExits).
    RestartAllContainers,
}

impl ContainerRestart {
    /// The action of the first rule that matches `code` (`FindMatchingContainerRestartRule`).
    fn action(&self, code: i32) -> Option<RuleAction> {
        (self.rules.iter())
            .find(|rule| rule.codes.contains(&code) == rule.is_in)
            .map(|rule| rule.action)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPlan {
    pub name: String,
    pub image: String,
    pub kind: Kind,
    pub restart: ContainerRestart,
}

/// The kubelet's crash-loop back-off (`doBackOff` over `flowcontrol.Backoff`): the first
/// restart at once, then `base` doubling with each restart, up to `max` (upstream: 10 s to
/// 5 min).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// How long a container that has restarted `restarts` times waits after its last exit.
    pub fn delay(&self, restarts: i32) -> Duration {
        if restarts <= 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (restarts - 1).clamp(0, 20);
        self.base.saturating_mul(factor).min(self.max)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPlan {
    /// The pod as the kubelet's messages name it (`format.Pod`: `name_namespace(uid)`).
    pub pod: String,
    /// The pod's `metadata.generation`.
    pub generation: Option<i64>,
    /// Init containers (and sidecars) in spec order, then the main containers.
    pub containers: Vec<ContainerPlan>,
    pub restart_policy: RestartPolicy,
    /// `terminationGracePeriodSeconds` (default 30 s).
    pub grace: Duration,
    /// `activeDeadlineSeconds`, counted from the pod's start on the node.
    pub active_deadline: Option<Duration>,
    pub backoff: Backoff,
}

impl PodPlan {
    /// The plan of a validated pod; whatever the spec lacks takes the API server's default.
    pub fn new(pod: &Pod, backoff: Backoff) -> PodPlan {
        let spec = pod.spec.clone().unwrap_or_default();
        let plan = |c: &joblet_api::k8s_openapi::api::core::v1::Container, kind| ContainerPlan {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            kind,
            restart: container_restart(c),
        };
        let inits = spec.init_containers.iter().flatten().map(|c| {
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            plan(c, if sidecar { Kind::Sidecar } else { Kind::Init })
        });
        let mains = spec.containers.iter().map(|c| plan(c, Kind::Main));
        let seconds = |s: i64| Duration::from_secs(s.max(0) as u64);
        PodPlan {
            pod: format_pod(pod),
            generation: pod.metadata.generation,
            containers: inits.chain(mains).collect(),
            restart_policy: RestartPolicy::parse(spec.restart_policy.as_deref())
                .unwrap_or(RestartPolicy::Always),
            grace: seconds(spec.termination_grace_period_seconds.unwrap_or(30)),
            active_deadline: spec.active_deadline_seconds.map(seconds),
            backoff,
        }
    }

    pub(crate) fn has_init_containers(&self) -> bool {
        self.containers.iter().any(|c| c.kind != Kind::Main)
    }

    /// Whether container `i`, ended with `code`, starts again in place
    /// (`ContainerShouldRestart`): the first of its rules that matches, then its own policy,
    /// then the pod's. A rule that restarts all containers restarts none alone.
    pub(crate) fn restarts(&self, i: usize, code: i32) -> bool {
        let own = &self.containers[i].restart;
        let Some(policy) = own.policy else {
            return self.restart_policy.restarts(code);
        };
        match own.action(code) {
            Some(action) => action == RuleAction::Restart,
            None => policy.restarts(code),
        }
    }

    /// Whether container `i`, ended with `code`, restarts every container of the pod.
    pub(crate) fn restarts_all(&self, i: usize, code: i32) -> bool {
        self.containers[i].restart.action(code) == Some(RuleAction::RestartAllContainers)
    }

    /// Whether any container has a rule that restarts them all (`AllContainersCouldRestart`).
    pub(crate) fn could_restart_all(&self) -> bool {
        (self.containers.iter().flat_map(|c| &c.restart.rules))
            .any(|rule| rule.action == RuleAction::RestartAllContainers)
    }

    /// [`PodPlan::restarts`] for the container of that name.
    pub(crate) fn restarts_named(&self, name: &str, code: i32) -> bool {
        (self.containers.iter().position(|c| c.name == name))
            .is_some_and(|i| self.restarts(i, code))
    }
}

/// What a container says of its own restarts. Rules with an action or an operator upstream
/// does not know match nothing, as upstream's `findMatchingContainerRestartRule`.
fn container_restart(
    container: &joblet_api::k8s_openapi::api::core::v1::Container,
) -> ContainerRestart {
    let rules = (container.restart_policy_rules.iter().flatten())
        .filter_map(|rule| {
            let action = match rule.action.as_str() {
                "Restart" => RuleAction::Restart,
                "RestartAllContainers" => RuleAction::RestartAllContainers,
                _ => return None,
            };
            let codes = rule.exit_codes.as_ref()?;
            let is_in = match codes.operator.as_str() {
                "In" => true,
                "NotIn" => false,
                _ => return None,
            };
            let codes = codes.values.clone().unwrap_or_default();
            Some(RestartRule {
                action,
                is_in,
                codes,
            })
        })
        .collect();
    ContainerRestart {
        policy: RestartPolicy::parse(container.restart_policy.as_deref()),
        rules,
    }
}

/// A pod as the kubelet's messages name it (`format.Pod`): `name_namespace(uid)`.
pub(crate) fn format_pod(pod: &Pod) -> String {
    let meta = &pod.metadata;
    format!(
        "{}_{}({})",
        meta.name.as_deref().unwrap_or(""),
        meta.namespace.as_deref().unwrap_or("default"),
        meta.uid.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_from_its_base_up_to_its_cap() {
        let backoff = Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
        };
        let delays: Vec<u64> = (0..8).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff.delay(i32::MAX).as_secs(), 300);
    }
}
