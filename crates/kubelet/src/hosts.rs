//! The `/etc/hosts` the kubelet writes for each pod's containers (kubelet_pods.go's
//! `managedHostsFileContent`): the loopback boilerplate, the pod's own name (its FQDN too
//! when it names a `subdomain`) at its address, then the pod's `hostAliases`.

use joblet_api::k8s_openapi::api::core::v1::Pod;

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
}
