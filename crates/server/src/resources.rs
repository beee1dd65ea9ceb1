//! The resources joblet serves, and how discovery describes them.

use joblet_api::version::Emulation;
use serde_json::{json, Value};

pub struct Resource {
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    /// "" for the core group.
    pub group: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources and their verbs.
    pub subresources: &'static [(&'static str, &'static [&'static str])],
    /// Field selector names beyond `metadata.name`/`metadata.namespace`, and where they are.
    pub field_paths: &'static [(&'static str, &'static str)],
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub const JOBS: Resource = Resource {
    kind: "Job",
    plural: "jobs",
    singular: "job",
    group: "batch",
    namespaced: true,
    short_names: &[],
    categories: &["all"],
    subresources: &[("status", &["get", "patch", "update"])],
    field_paths: &[("status.successful", "/status/succeeded")],
};

pub const CRON_JOBS: Resource = Resource {
    kind: "CronJob",
    plural: "cronjobs",
    singular: "cronjob",
    group: "batch",
    namespaced: true,
    short_names: &["cj"],
    categories: &["all"],
    subresources: &[("status", &["get", "patch", "update"])],
    field_paths: &[],
};

pub const PODS: Resource = Resource {
    kind: "Pod",
    plural: "pods",
    singular: "pod",
    group: "",
    namespaced: true,
    short_names: &["po"],
    categories: &["all"],
    subresources: &[
        ("eviction", &["create"]),
        ("log", &["get"]),
        ("status", &["get", "patch", "update"]),
    ],
    field_paths: &[
        ("status.phase", "/status/phase"),
        ("spec.nodeName", "/spec/nodeName"),
        ("spec.restartPolicy", "/spec/restartPolicy"),
        ("status.podIP", "/status/podIP"),
    ],
};

pub const EVENTS: Resource = Resource {
    kind: "Event",
    plural: "events",
    singular: "event",
    group: "",
    namespaced: true,
    short_names: &["ev"],
    categories: &[],
    subresources: &[],
    field_paths: &[
        ("involvedObject.kind", "/involvedObject/kind"),
        ("involvedObject.namespace", "/involvedObject/namespace"),
        ("involvedObject.name", "/involvedObject/name"),
        ("involvedObject.uid", "/involvedObject/uid"),
        ("involvedObject.apiVersion", "/involvedObject/apiVersion"),
        (
            "involvedObject.resourceVersion",
            "/involvedObject/resourceVersion",
        ),
        ("involvedObject.fieldPath", "/involvedObject/fieldPath"),
        ("reason", "/reason"),
        ("reportingComponent", "/reportingComponent"),
        ("source", "/source/component"),
        ("type", "/type"),
    ],
};

pub const NAMESPACES: Resource = Resource {
    kind: "Namespace",
    plural: "namespaces",
    singular: "namespace",
    group: "",
    namespaced: false,
    short_names: &["ns"],
    categories: &[],
    subresources: &[("status", &["get", "patch", "update"])],
    field_paths: &[("status.phase", "/status/phase")],
};

pub const NODES: Resource = Resource {
    kind: "Node",
    plural: "nodes",
    singular: "node",
    group: "",
    namespaced: false,
    short_names: &["no"],
    categories: &[],
    subresources: &[("status", &["get", "patch", "update"])],
    field_paths: &[("spec.unschedulable", "/spec/unschedulable")],
};

pub const CONFIG_MAPS: Resource = Resource {
    kind: "ConfigMap",
    plural: "configmaps",
    singular: "configmap",
    group: "",
    namespaced: true,
    short_names: &["cm"],
    categories: &[],
    subresources: &[],
    field_paths: &[],
};

pub const SECRETS: Resource = Resource {
    kind: "Secret",
    plural: "secrets",
    singular: "secret",
    group: "",
    namespaced: true,
    short_names: &[],
    categories: &[],
    subresources: &[],
    field_paths: &[("type", "/type")],
};

pub const SERVICES: Resource = Resource {
    kind: "Service",
    plural: "services",
    singular: "service",
    group: "",
    namespaced: true,
    short_names: &["svc"],
    categories: &["all"],
    subresources: &[("status", &["get", "patch", "update"])],
    field_paths: &[],
};

/// In discovery order: `kubectl get all` lists pods before jobs, as on a cluster.
pub const RESOURCES: [&Resource; 9] = [
    &NAMESPACES,
    &NODES,
    &PODS,
    &EVENTS,
    &CONFIG_MAPS,
    &SECRETS,
    &SERVICES,
    &CRON_JOBS,
    &JOBS,
];

impl Resource {
    pub fn by_kind(kind: &str) -> Option<&'static Resource> {
        RESOURCES.into_iter().find(|r| r.kind == kind)
    }

    pub fn by_path(group: &str, plural: &str) -> Option<&'static Resource> {
        RESOURCES
            .into_iter()
            .find(|r| r.group == group && r.plural == plural)
    }

    pub fn api_version(&self) -> &'static str {
        if self.group.is_empty() {
            "v1"
        } else {
            "batch/v1"
        }
    }

    /// `jobs.batch`, `pods`: how errors name the resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn in_group(group: &str) -> impl Iterator<Item = &'static Resource> + '_ {
        RESOURCES.into_iter().filter(move |r| r.group == group)
    }
}

/// `/version`: the binary's version, and the one it emulates (whose feature-gate defaults
/// it follows) with the oldest it stays compatible with, one minor before, as
/// kube-apiserver's.
pub fn version(emulation: Emulation) -> Value {
    let binary = Emulation::BINARY;
    json!({
        "major": "1",
        "minor": binary.minor().to_string(),
        "emulationMajor": "1",
        "emulationMinor": emulation.minor().to_string(),
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": (emulation.minor() - 1).to_string(),
        "gitVersion": format!("v{binary}.0-joblet.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `/api` or `/apis` in the aggregated form (`APIGroupDiscoveryList`).
pub fn aggregated(group: &str) -> Value {
    let resources: Vec<Value> = Resource::in_group(group)
        .map(|r| {
            let kind = json!({"group": r.group, "version": "v1", "kind": r.kind});
            json!({
                "resource": r.plural,
                "responseKind": kind,
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": VERBS,
                "shortNames": r.short_names,
                "categories": r.categories,
                "subresources": r.subresources.iter().map(|(name, verbs)| json!({
                    "subresource": name,
                    "responseKind": kind,
                    "verbs": verbs,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut metadata = json!({"creationTimestamp": null});
    if !group.is_empty() {
        metadata["name"] = json!(group);
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": [{
            "metadata": metadata,
            "versions": [{"version": "v1", "freshness": "Current", "resources": resources}],
        }],
    })
}

/// `/api` in the legacy form.
pub fn api_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}],
    })
}

/// `/apis` in the legacy form.
pub fn api_group_list() -> Value {
    let version = json!({"groupVersion": "batch/v1", "version": "v1"});
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{"name": "batch", "versions": [version], "preferredVersion": version}],
    })
}

/// `/api/v1` or `/apis/batch/v1` (`APIResourceList`).
pub fn api_resource_list(group: &str) -> Value {
    let mut resources = Vec::new();
    for r in Resource::in_group(group) {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "shortNames": r.short_names,
            "categories": r.categories,
        }));
        for (sub, verbs) in r.subresources {
            resources.push(json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": verbs,
            }));
        }
    }
    let group_version = if group.is_empty() { "v1" } else { "batch/v1" };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::RESOURCES;

    /// The cache drops kinds it does not serve and a snapshot lists the stored kinds by
    /// name: the two lists must agree, or a kind would vanish on restart or never show.
    #[test]
    fn every_stored_kind_is_served_and_every_served_kind_is_stored() {
        let mut served: Vec<&str> = RESOURCES.iter().map(|r| r.kind).collect();
        let mut stored = joblet_driver::SERVED_KINDS.to_vec();
        served.sort();
        stored.sort();
        assert_eq!(served, stored);
    }
}
