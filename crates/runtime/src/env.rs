//! A container's environment and command line, as the kubelet builds them: the downward
//! API for `fieldRef`, and `$(VAR)` expansion (`third_party/forked/golang/expansion`).

use std::collections::HashMap;

use joblet_api::k8s_openapi::api::core::v1::{Container, Pod};

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
fn field_value(pod: &Pod, path: &str) -> Option<String> {
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
        "spec.nodeName" => Some(node_name()),
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

/// The node a local pod runs on: this machine.
pub fn node_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The container's own variables in order, each expanded against those before it, as
/// the kubelet's `makeEnvironmentVariables` does; `HOSTNAME` comes first.
pub fn container_env(pod: &Pod, container: &Container) -> Vec<(String, String)> {
    let hostname = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    let mut vars: Vec<(String, String)> = vec![("HOSTNAME".to_string(), hostname)];
    let mut defined: HashMap<String, String> = HashMap::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) if !value.is_empty() => {
                expand(value, |name| defined.get(name).cloned())
            }
            (_, Some(source)) => source
                .field_ref
                .as_ref()
                .and_then(|f| field_value(pod, &f.field_path))
                .unwrap_or_default(),
            _ => String::new(),
        };
        defined.insert(var.name.clone(), value.clone());
        vars.retain(|(name, _)| name != &var.name);
        vars.push((var.name.clone(), value));
    }
    vars
}

/// `command` followed by `args`, with `$(VAR)` expanded from the container's variables.
pub fn command_line(container: &Container, env: &[(String, String)]) -> Vec<String> {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(|part| expand(part, lookup))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let env = container_env(&pod, container);
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
}
