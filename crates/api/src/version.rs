//! Which Kubernetes minor joblet behaves as: its own, or an older one chosen with
//! `--emulated-version`, as kube-apiserver's flag chooses feature-gate defaults
//! (component-base/compatibility). One value per process, passed to the rules it changes.

use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;

/// A Kubernetes 1.x minor version between [`Emulation::OLDEST`] and [`Emulation::BINARY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Emulation {
    minor: u32,
}

impl Emulation {
    /// The version joblet's wire types and defaults are (k8s-openapi's `v1_37`).
    pub const BINARY: Emulation = Emulation { minor: 37 };
    /// Upstream emulates up to three minors back.
    pub const OLDEST: Emulation = Emulation { minor: 34 };

    pub fn minor(self) -> u32 {
        self.minor
    }

    /// ContainerRestartRules (beta, on by default, from 1.35): a container's own
    /// `restartPolicy` and its `restartPolicyRules`.
    pub fn container_restart_rules(self) -> bool {
        self.minor >= 35
    }

    /// MutableSchedulingDirectivesForSuspendedJobs and MutablePodResourcesForSuspendedJobs
    /// (beta, on by default, from 1.36): a suspended Job whose pods are gone counts as not
    /// started (its `startTime` cleared) and takes changes of its template's scheduling
    /// directives and containers' resources.
    pub fn mutable_suspended_jobs(self) -> bool {
        self.minor >= 36
    }

    /// RestartAllContainersOnContainerExits (beta, on by default, from 1.36): the
    /// `RestartAllContainers` action of a restart rule.
    pub fn restart_all_containers(self) -> bool {
        self.minor >= 36
    }
}

/// `dropDisabledFields` on create: what the emulated version's feature gates turn off is
/// dropped, as its API server drops it.
pub fn drop_disabled_fields(job: &mut Job, emulation: Emulation) {
    if let Some(spec) = job.spec.as_mut() {
        drop_disabled_pod_fields(&mut spec.template, emulation);
    }
}

/// [`drop_disabled_fields`] for a pod template: `restartPolicyRules` before 1.35
/// (`dropContainerRestartRules`).
pub fn drop_disabled_pod_fields(template: &mut PodTemplateSpec, emulation: Emulation) {
    let Some(pod) = template.spec.as_mut() else {
        return;
    };
    if !emulation.container_restart_rules() {
        let containers = pod.init_containers.iter_mut().flatten();
        for container in containers.chain(&mut pod.containers) {
            container.restart_policy_rules = None;
        }
    }
}

impl Default for Emulation {
    fn default() -> Self {
        Emulation::BINARY
    }
}

impl fmt::Display for Emulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.minor)
    }
}

impl FromStr for Emulation {
    type Err = String;

    /// `1.35`, as kube-apiserver takes it (also `kube=1.35`, its component form, and a
    /// patch version, which it ignores).
    fn from_str(value: &str) -> Result<Self, String> {
        let version = value.strip_prefix("kube=").unwrap_or(value);
        let mut parts = version.trim_start_matches('v').split('.');
        let numbers = (parts.next(), parts.next(), parts.next(), parts.next());
        let parse = |part: &str| part.parse::<u32>().ok();
        let (major, minor) = match numbers {
            (Some(major), Some(minor), patch, None) if patch.is_none_or(|p| parse(p).is_some()) => {
                (parse(major), parse(minor))
            }
            _ => (None, None),
        };
        let (Some(major), Some(minor)) = (major, minor) else {
            return Err(format!("could not parse {value:?} as version"));
        };
        let (oldest, binary) = (Emulation::OLDEST, Emulation::BINARY);
        if major != 1 || minor < oldest.minor || minor > binary.minor {
            return Err(format!(
                "emulation version {major}.{minor} is not between [{oldest}, {binary}]"
            ));
        }
        Ok(Emulation { minor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_the_oldest_to_the_binarys_are_taken() {
        for minor in 34..=37 {
            let parsed: Emulation = format!("1.{minor}").parse().unwrap();
            assert_eq!(parsed.minor(), minor);
        }
        assert_eq!("kube=1.35".parse::<Emulation>().unwrap().minor(), 35);
        assert_eq!("1.36.2".parse::<Emulation>().unwrap().minor(), 36);
        assert_eq!(Emulation::default().to_string(), "1.37");
    }

    #[test]
    fn other_versions_are_refused_as_kube_apiserver_refuses_them() {
        for (value, error) in [
            ("1.20", "emulation version 1.20 is not between [1.34, 1.37]"),
            ("1.38", "emulation version 1.38 is not between [1.34, 1.37]"),
            ("2.35", "emulation version 2.35 is not between [1.34, 1.37]"),
            ("1", "could not parse \"1\" as version"),
            ("1.x", "could not parse \"1.x\" as version"),
            ("1.35.0.1", "could not parse \"1.35.0.1\" as version"),
        ] {
            assert_eq!(value.parse::<Emulation>().unwrap_err(), error, "{value}");
        }
    }
}
