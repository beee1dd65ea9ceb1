//! A container's environment and command line, as the kubelet builds them
//! (`makeEnvironmentVariables`): `envFrom` first, then `env` in order, with the downward API
//! for `fieldRef`, ConfigMap and Secret keys, and `$(VAR)` expansion
//! (`third_party/forked/golang/expansion`).

use std::collections::{BTreeMap, HashMap};

use joblet_api::k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};
use joblet_api::k8s_openapi::apimachinery::pkg::api::resource::Quantity as QuantityText;
use joblet_api::quantity::{ceil_div, Quantity};

use crate::{Node, Objects};

/// Expands `$(NAME)` with `lookup`; `$$` is a literal `$`; an unknown `$(NAME)` and any
/// other `$` stay as written.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut copied_until = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 >= bytes.len() {
            i += 1;
            continue;
        }
        out.push_str(&input[copied_until..i]);
        match bytes[i + 1] {
            b'$' => {
                out.push('$');
                i += 2;
            }
            b'(' => match input[i + 2..].find(')') {
                Some(len) => {
                    let name = &input[i + 2..i + 2 + len];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => out.push_str(&input[i..i + 3 + len]),
                    }
                    i += 3 + len;
                }
                None => {
                    out.push_str(&input[i..]);
                    i = bytes.len();
                }
            },
            _ => {
                out.push_str(&input[i..i + 2]);
                i += 2;
            }
        }
        copied_until = i;
    }
    if copied_until < input.len() {
        out.push_str(&input[copied_until..]);
    }
    out
}

/// Resolves a downward-API field path against the pod.
pub(crate) fn field_value(pod: &Pod, node: &Node, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let keyed = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
    };
    if let Some(key) = keyed("metadata.labels['") {
        return Some(meta.labels.as_ref()?.get(key).cloned().unwrap_or_default());
    }
    if let Some(key) = keyed("metadata.annotations['") {
        return Some(
            meta.annotations
                .as_ref()?
                .get(key)
                .cloned()
                .unwrap_or_default(),
        );
    }
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => Some(node.name.clone()),
        "spec.serviceAccountName" => Some(
            pod.spec
                .as_ref()
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".to_string()),
        ),
        "status.hostIP" | "status.hostIPs" | "status.podIP" | "status.podIPs" => {
            Some("127.0.0.1".to_string())
        }
        _ => None,
    }
}

/// A container resource's value for a variable, as `ExtractContainerResourceValue` computes
/// it: the limit (the node's allocatable amount when there is none) or the request (the limit when
/// there is none, as the API server defaults it; else 0), divided by the divisor, rounded up.
pub(crate) fn resource_value(
    pod: &Pod,
    container: &Container,
    selector: &ResourceFieldSelector,
    node: &Node,
) -> Result<String, String> {
    let target = match selector.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => container,
        Some(name) => {
            let spec = pod.spec.as_ref();
            let all = spec.into_iter().flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            });
            all.clone()
                .find(|c| c.name == name)
                .ok_or_else(|| format!("container {name} not found"))?
        }
    };
    let unsupported = || format!("unsupported container resource : {}", selector.resource);
    let (kind, resource) = selector.resource.split_once('.').ok_or_else(unsupported)?;
    let resources = target.resources.clone().unwrap_or_default();
    let quantity = |map: &Option<BTreeMap<String, QuantityText>>| {
        map.as_ref()
            .and_then(|m| m.get(resource))
            .and_then(|q| Quantity::parse(&q.0))
    };
    let limit = quantity(&resources.limits);
    let capacity = |value: i128| Quantity::parse(&value.to_string());
    let amount = match kind {
        "limits" => limit.or_else(|| match resource {
            "cpu" => Quantity::parse(&format!("{}m", node.cpu_millis)),
            "memory" => capacity(node.allocatable_memory_bytes()),
            "ephemeral-storage" => capacity(node.allocatable_ephemeral_storage_bytes()),
            _ => None,
        }),
        "requests" => quantity(&resources.requests).or(limit),
        _ => return Err(unsupported()),
    };
    let amount = amount
        .or_else(|| Quantity::parse("0"))
        .ok_or_else(unsupported)?;
    let divisor = (selector.divisor.as_ref())
        .and_then(|d| Quantity::parse(&d.0))
        .filter(|d| d.milli_value() != 0)
        .or_else(|| Quantity::parse("1"))
        .ok_or_else(unsupported)?;
    let value = if resource == "cpu" {
        ceil_div(amount.milli_value(), divisor.milli_value())
    } else {
        ceil_div(amount.value(), divisor.value())
    };
    Ok(value.to_string())
}

/// Where a variable's value comes from, in the kubelet's words when it is missing.
#[derive(Clone, Copy)]
enum Source {
    ConfigMap,
    Secret,
}

impl Source {
    /// The object's keys and values as text: a ConfigMap's `data` (not `binaryData`, as the
    /// kubelet reads it), a Secret's values with invalid UTF-8 replaced.
    fn data(
        self,
        objects: &Objects,
        namespace: &str,
        name: &str,
    ) -> Option<BTreeMap<String, String>> {
        match self {
            Source::ConfigMap => {
                let config_map = objects.config_map(namespace, name)?;
                Some(config_map.data.clone().unwrap_or_default())
            }
            Source::Secret => {
                let data = objects.secret(namespace, name)?.data.iter().flatten();
                Some(
                    data.map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                        .collect(),
                )
            }
        }
    }

    /// `configmap "x" not found`: the kubelet's object managers name the resource in the
    /// singular, unlike the API server.
    fn not_found(self, name: &str) -> String {
        match self {
            Source::ConfigMap => format!("configmap {name:?} not found"),
            Source::Secret => format!("secret {name:?} not found"),
        }
    }

    fn missing_key(self, key: &str, namespace: &str, name: &str) -> String {
        let kind = match self {
            Source::ConfigMap => "ConfigMap",
            Source::Secret => "Secret",
        };
        format!("couldn't find key {key} in {kind} {namespace}/{name}")
    }
}

/// The container's variables in order, each expanded against those before it, as the
/// kubelet's `makeEnvironmentVariables` does: `HOSTNAME` first, then every key of each
/// `envFrom` source (with its prefix), then `env`, a later one replacing an earlier one of the
/// same name. A ConfigMap, Secret or key that is missing and not optional is an error with the
/// kubelet's message: the container cannot be created (`CreateContainerConfigError`).
pub fn container_env(
    pod: &Pod,
    container: &Container,
    node: &Node,
    objects: &Objects,
) -> Result<Vec<(String, String)>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let hostname = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    let mut vars = Variables::default();
    vars.list.push(("HOSTNAME".to_string(), hostname));
    for from in container.env_from.iter().flatten() {
        let (source, name, optional) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => (Source::ConfigMap, &r.name, r.optional == Some(true)),
            (None, Some(r)) => (Source::Secret, &r.name, r.optional == Some(true)),
            (None, None) => continue,
        };
        let Some(data) = source.data(objects, namespace, name) else {
            if optional {
                continue;
            }
            return Err(source.not_found(name));
        };
        let prefix = from.prefix.as_deref().unwrap_or("");
        for (key, value) in data {
            vars.set(format!("{prefix}{key}"), value);
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) if !value.is_empty() => expand(value, |name| vars.get(name)),
            (_, Some(from)) => {
                let keyed = match (&from.config_map_key_ref, &from.secret_key_ref) {
                    (Some(r), _) => Some((Source::ConfigMap, &r.name, &r.key, r.optional)),
                    (None, Some(r)) => Some((Source::Secret, &r.name, &r.key, r.optional)),
                    (None, None) => None,
                };
                let Some((source, name, key, optional)) = keyed else {
                    let value = match (&from.field_ref, &from.resource_field_ref) {
                        (Some(f), _) => field_value(pod, node, &f.field_path).unwrap_or_default(),
                        (None, Some(r)) => resource_value(pod, container, r, node)?,
                        (None, None) => String::new(),
                    };
                    vars.set(var.name.clone(), value);
                    continue;
                };
                let optional = optional == Some(true);
                match source
                    .data(objects, namespace, name)
                    .map(|mut d| d.remove(key))
                {
                    Some(Some(value)) => value,
                    _ if optional => continue,
                    None => return Err(source.not_found(name)),
                    Some(None) => return Err(source.missing_key(key, namespace, name)),
                }
            }
            _ => String::new(),
        };
        vars.set(var.name.clone(), value);
    }
    Ok(vars.list)
}

/// A container's variables in order (setting one again moves it to the end), and those a
/// `$(NAME)` may refer to: the ones it declares, not `HOSTNAME`.
#[derive(Default)]
struct Variables {
    list: Vec<(String, String)>,
    declared: HashMap<String, String>,
}

impl Variables {
    fn set(&mut self, name: String, value: String) {
        self.declared.insert(name.clone(), value.clone());
        self.list.retain(|(n, _)| *n != name);
        self.list.push((name, value));
    }

    fn get(&self, name: &str) -> Option<String> {
        self.declared.get(name).cloned()
    }
}

/// `command` followed by `args`, with `$(VAR)` expanded from the container's variables.
pub fn command_line(container: &Container, env: &[(String, String)]) -> Vec<String> {
    [
        expand_parts(&container.command, env),
        expand_parts(&container.args, env),
    ]
    .concat()
}

/// Each part with `$(VAR)` expanded from the container's variables (the last of a name wins).
pub fn expand_parts(parts: &Option<Vec<String>>, env: &[(String, String)]) -> Vec<String> {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    parts
        .iter()
        .flatten()
        .map(|part| expand(part, lookup))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use joblet_api::k8s_openapi::api::core::v1::{ConfigMap, Secret};

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let lookup = vars(&[("A", "x"), ("B", "y")]);
        assert_eq!(expand("$(A)-$(B)", &lookup), "x-y");
        assert_eq!(expand("$(MISSING)", &lookup), "$(MISSING)");
        assert_eq!(expand("echo $$", &lookup), "echo $");
        assert_eq!(expand("$$(A)", &lookup), "$(A)");
        assert_eq!(expand("$HOME and $", &lookup), "$HOME and $");
        assert_eq!(expand("$(A", &lookup), "$(A");
        assert_eq!(expand("héllo $(A) wörld", &lookup), "héllo x wörld");
    }

    #[test]
    fn env_is_expanded_in_order_with_the_downward_api() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p-1", "namespace": "ns", "uid": "u",
                         "labels": {"batch.kubernetes.io/job-completion-index": "7"}},
            "spec": {"hostname": "job-7", "containers": [{
                "name": "c", "command": ["echo", "$(SHARD)", "$(POD)"], "args": ["$(LATER)"],
                "env": [
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "SHARD", "value": "shard-$(IDX)"},
                    {"name": "IDX", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-completion-index']"}}},
                    {"name": "LATER", "value": "$(IDX)/$(POD)"}
                ]}]}
        }))
        .unwrap();
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let env = container_env(&pod, container, &node(), &Objects::default()).unwrap();
        let get = |n: &str| env.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(get("HOSTNAME"), "job-7");
        assert_eq!(get("POD"), "p-1");
        // IDX is defined after SHARD, so SHARD keeps the reference as written (as upstream).
        assert_eq!(get("SHARD"), "shard-$(IDX)");
        assert_eq!(get("LATER"), "7/p-1");
        assert_eq!(
            command_line(container, &env),
            ["echo", "shard-$(IDX)", "p-1", "7/p-1"]
        );
    }

    fn node() -> Node {
        Node {
            name: "node-1".to_string(),
            cpu_millis: 2000,
            memory_bytes: 8 << 30,
            ephemeral_storage_bytes: 100 << 30,
            ..Default::default()
        }
    }

    #[test]
    fn resource_fields_divide_the_limit_or_the_nodes_allocatable_rounding_up() {
        let env = env_of(serde_json::json!({"name": "c",
            "resources": {"limits": {"cpu": "1500m", "memory": "64Mi"}, "requests": {"memory": "32Mi"}},
            "env": [
                {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "REQ_MEM", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory", "divisor": "1Mi"}}},
                {"name": "REQ_CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
                {"name": "DISK", "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage", "divisor": "1Gi"}}}]}))
        .unwrap();
        let get = |n: &str| env.iter().find(|(k, _)| k == n).unwrap().1.as_str();
        assert_eq!((get("CPU"), get("CPU_M")), ("2", "1500"));
        assert_eq!((get("MEM_MI"), get("REQ_MEM")), ("64", "32"));
        // A request defaults to the limit; no limit: the node's allocatable amount (the
        // kubelet keeps 10% of the disk for eviction).
        assert_eq!((get("REQ_CPU"), get("DISK")), ("1500", "90"));
        let no_limits = env_of(serde_json::json!({"name": "c", "env": [
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Gi"}}},
            {"name": "REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}}]}))
        .unwrap();
        let values: Vec<&str> = no_limits[1..].iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, ["2", "8", "0"]);
    }

    fn objects() -> Objects {
        let config_map: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "settings", "namespace": "ns"},
            "data": {"MODE": "fast", "LEVEL": "3"}}))
        .unwrap();
        // "czNjcjN0" is base64 for "s3cr3t".
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "creds", "namespace": "ns"},
            "data": {"password": "czNjcjN0"}}))
        .unwrap();
        Objects::new([&config_map], [&secret])
    }

    fn env_of(container: serde_json::Value) -> Result<Vec<(String, String)>, String> {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [container]}}))
        .unwrap();
        container_env(
            &pod,
            &pod.spec.as_ref().unwrap().containers[0],
            &node(),
            &objects(),
        )
    }

    #[test]
    fn env_from_comes_first_with_its_prefix_and_env_overrides_it() {
        let env = env_of(serde_json::json!({"name": "c",
            "envFrom": [{"configMapRef": {"name": "settings"}},
                        {"prefix": "DB_", "secretRef": {"name": "creds"}},
                        {"configMapRef": {"name": "absent", "optional": true}}],
            "env": [{"name": "MODE", "value": "slow-$(LEVEL)"},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                    {"name": "L", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "LEVEL"}}},
                    {"name": "NONE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "x", "optional": true}}}]}))
        .unwrap();
        let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["HOSTNAME", "LEVEL", "DB_password", "MODE", "PW", "L"]
        );
        let get = |n: &str| env.iter().find(|(k, _)| k == n).unwrap().1.as_str();
        assert_eq!(
            (get("MODE"), get("PW"), get("L")),
            ("slow-3", "s3cr3t", "3")
        );
        assert_eq!(get("DB_password"), "s3cr3t");
    }

    #[test]
    fn a_missing_source_or_key_is_the_kubelets_error_unless_optional() {
        let from = |r: serde_json::Value| env_of(serde_json::json!({"name": "c", "envFrom": [r]}));
        assert_eq!(
            from(serde_json::json!({"configMapRef": {"name": "x"}})).unwrap_err(),
            "configmap \"x\" not found"
        );
        assert_eq!(
            from(serde_json::json!({"secretRef": {"name": "x"}})).unwrap_err(),
            "secret \"x\" not found"
        );
        let key = |kind: &str, name: &str, key: &str| {
            env_of(serde_json::json!({"name": "c", "env": [
                {"name": "V", "valueFrom": {kind: {"name": name, "key": key}}}]}))
        };
        assert_eq!(
            key("configMapKeyRef", "settings", "nope").unwrap_err(),
            "couldn't find key nope in ConfigMap ns/settings"
        );
        assert_eq!(
            key("secretKeyRef", "creds", "user").unwrap_err(),
            "couldn't find key user in Secret ns/creds"
        );
        assert_eq!(
            key("secretKeyRef", "gone", "user").unwrap_err(),
            "secret \"gone\" not found"
        );
    }
}
