//! The `/etc/hosts` the kubelet writes for each pod's containers (kubelet_pods.go's
//! `managedHostsFileContent`): the loopback boilerplate, the pod's own name (its FQDN too
//! when it names a `subdomain`) at its address, then the pod's `hostAliases`. On one
//! machine with no cluster DNS, what DNS would answer of headless Services and their pods
//! follows ([`service_hosts`]).

use joblet_api::k8s_openapi::api::core::v1::{Pod, Service};

/// The cluster domain of the names of Services and their pods.
const CLUSTER_DOMAIN: &str = "cluster.local";

/// The hosts file of `pod`, whose address is `ip`.
pub fn managed_hosts(pod: &Pod, ip: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or("");
    // GeneratePodHostNameAndDomain: the hostname, else the pod's name cut to a DNS label.
    let hostname = match spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        Some(hostname) => hostname.to_string(),
        None => name.chars().take(63).collect::<String>(),
    };
    let hostname = hostname.trim_end_matches(['-', '.']);
    let mut text = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    match spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
        Some(subdomain) => {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            let domain = format!("{subdomain}.{namespace}.svc.{CLUSTER_DOMAIN}");
            text += &format!("{ip}\t{hostname}.{domain}\t{hostname}\n");
        }
        None => text += &format!("{ip}\t{hostname}\n"),
    }
    let aliases = spec.host_aliases.unwrap_or_default();
    if !aliases.is_empty() {
        text += "\n# Entries added by HostAliases.\n";
        for alias in aliases {
            let names = alias.hostnames.unwrap_or_default().join("\t");
            text += &format!("{}\t{names}\n", alias.ip);
        }
    }
    text
}

/// What cluster DNS answers of the headless Services that select pods of `pods`, as lines
/// of a hosts file for a pod of `namespace` (every joblet pod is at `ip`): each Service's
/// name (`<service>.<namespace>.svc.cluster.local`), and each selected pod that names the
/// Service as its `subdomain` and has a `hostname` (`<hostname>.<service>.<namespace>...`,
/// the endpoints controller's rule), with the shorter names the pod's DNS search path
/// would complete. Empty when there are none.
pub fn service_hosts(namespace: &str, pods: &[&Pod], services: &[Service], ip: &str) -> String {
    let mut lines = String::new();
    for service in services {
        let spec = service.spec.clone().unwrap_or_default();
        let selector = spec.selector.unwrap_or_default();
        if spec.cluster_ip.as_deref() != Some("None") || selector.is_empty() {
            continue;
        }
        let Some(name) = service.metadata.name.as_deref() else {
            continue;
        };
        let service_namespace = service.metadata.namespace.as_deref().unwrap_or("default");
        let selected: Vec<&&Pod> = (pods.iter())
            .filter(|pod| {
                pod.metadata.namespace.as_deref().unwrap_or("default") == service_namespace
            })
            .filter(|pod| {
                let labels = pod.metadata.labels.as_ref();
                (selector.iter()).all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            })
            .collect();
        if selected.is_empty() {
            continue;
        }
        // `name.namespace.svc.cluster.local`, then what the search path completes.
        let names = |name: String| {
            let mut names = vec![
                format!("{name}.{service_namespace}.svc.{CLUSTER_DOMAIN}"),
                format!("{name}.{service_namespace}.svc"),
                format!("{name}.{service_namespace}"),
            ];
            if service_namespace == namespace {
                names.push(name);
            }
            format!("{ip}\t{}\n", names.join("\t"))
        };
        lines += &names(name.to_string());
        for pod in selected {
            let spec = pod.spec.as_ref();
            let hostname = spec.and_then(|s| s.hostname.as_deref()).unwrap_or("");
            let subdomain = spec.and_then(|s| s.subdomain.as_deref());
            if !hostname.is_empty() && subdomain == Some(name) {
                lines += &names(format!("{hostname}.{name}"));
            }
        }
    }
    if lines.is_empty() {
        return lines;
    }
    format!("\n# Headless Services and their pods, as cluster DNS would answer.\n{lines}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "hostaliases-pod", "namespace": "ns"},
            "spec": spec}),
        )
        .unwrap()
    }

    #[test]
    fn the_hosts_file_is_the_kubelets() {
        let boilerplate = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n";
        // The documentation's example (customize-hosts-file-for-pods).
        let aliased = pod(json!({"containers": [], "hostAliases": [
            {"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]},
            {"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]}]}));
        assert_eq!(
            managed_hosts(&aliased, "10.244.135.10"),
            format!("{boilerplate}10.244.135.10\thostaliases-pod\n\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\tbar.remote\n")
        );
        let indexed = pod(json!({"containers": [], "hostname": "work-3", "subdomain": "workers"}));
        assert_eq!(
            managed_hosts(&indexed, "127.0.0.1"),
            format!("{boilerplate}127.0.0.1\twork-3.workers.ns.svc.cluster.local\twork-3\n")
        );
    }

    #[test]
    fn headless_services_name_the_pods_they_select() {
        let pod = |ns: &str, name: &str, hostname: &str, app: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns,
                "labels": {"app": app}},
                "spec": {"containers": [], "hostname": hostname, "subdomain": "workers"}}))
            .unwrap()
        };
        let service = |ns: &str, name: &str, cluster_ip: &str| -> Service {
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
                "spec": {"clusterIP": cluster_ip, "selector": {"app": "w"}}}))
            .unwrap()
        };
        let pods = [
            pod("a", "w-0-x", "w-0", "w"),
            pod("a", "w-1-x", "w-1", "w"),
            pod("a", "other", "o-0", "other"),
            pod("b", "w-0-y", "w-0", "w"),
        ];
        let pods: Vec<&Pod> = pods.iter().collect();
        let services = [
            service("a", "workers", "None"),
            // Not headless, or selecting nothing: no names.
            service("a", "queue", "10.0.0.1"),
            service("c", "workers", "None"),
        ];
        assert_eq!(
            service_hosts("a", &pods, &services, "127.0.0.1"),
            "\n# Headless Services and their pods, as cluster DNS would answer.\n\
             127.0.0.1\tworkers.a.svc.cluster.local\tworkers.a.svc\tworkers.a\tworkers\n\
             127.0.0.1\tw-0.workers.a.svc.cluster.local\tw-0.workers.a.svc\tw-0.workers.a\tw-0.workers\n\
             127.0.0.1\tw-1.workers.a.svc.cluster.local\tw-1.workers.a.svc\tw-1.workers.a\tw-1.workers\n"
        );
        // From another namespace, only the names that say the namespace.
        let from_b = service_hosts("b", &pods, &services, "127.0.0.1");
        assert!(from_b.contains("\tw-1.workers.a\n"), "{from_b}");
        assert!(!from_b.contains("\tw-1.workers\n"), "{from_b}");
        assert_eq!(service_hosts("a", &pods, &services[1..2], "127.0.0.1"), "");
    }
}
