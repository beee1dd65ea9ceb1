//! The other documents a Job file carries: Namespaces and Services, defaulted and validated
//! as the API server does (`ValidateNamespace`, `ValidateService`'s checks of what a Service
//! names and exposes), with the warning of what joblet does not do with a Service.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::config::Valid;
use crate::field::{FieldError, Invalid};
use crate::names::{label_value_errors, qualified_name_errors};
use crate::validation::{is_dns1123_label, DNS1123_LABEL_ERROR};

const DNS1035_LABEL_ERROR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

fn name_errors(name: &str, dns1035: bool, errors: &mut Vec<FieldError>) {
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if dns1035 && !is_dns1035_label(name) {
        errors.push(FieldError::invalid_str(
            "metadata.name",
            name,
            DNS1035_LABEL_ERROR,
        ));
    } else if !dns1035 && !is_dns1123_label(name) {
        errors.push(FieldError::invalid_str(
            "metadata.name",
            name,
            DNS1123_LABEL_ERROR,
        ));
    }
}

/// `ValidateNamespace`: a namespace's name is a DNS-1123 label.
pub fn validate_namespace(namespace: &Namespace) -> Result<(), Invalid> {
    let name = namespace.metadata.name.clone().unwrap_or_default();
    let mut errors = Vec::new();
    name_errors(&name, false, &mut errors);
    Invalid::check("Namespace", &name, errors)
}

/// `SetDefaults_Service` and its ports': type `ClusterIP`, protocol `TCP`, the target port
/// the port.
pub fn default_service(service: &mut Service) {
    let spec = service.spec.get_or_insert_with(Default::default);
    spec.type_.get_or_insert_with(|| "ClusterIP".to_string());
    spec.session_affinity
        .get_or_insert_with(|| "None".to_string());
    for port in spec.ports.iter_mut().flatten() {
        port.protocol.get_or_insert_with(|| "TCP".to_string());
        port.target_port.get_or_insert(IntOrString::Int(port.port));
    }
}

/// `ValidateService`, for what a Service names, selects and exposes.
pub fn validate_service(service: &Service) -> Result<(), Invalid> {
    let name = service.metadata.name.clone().unwrap_or_default();
    let mut errors = Vec::new();
    name_errors(&name, true, &mut errors);
    let spec = service.spec.clone().unwrap_or_default();
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !TYPES.contains(&kind) {
        errors.push(FieldError::not_supported("spec.type", kind, &TYPES));
    }
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let ports = spec.ports.as_deref().unwrap_or_default();
    if kind == "ExternalName" {
        if spec.external_name.as_deref().unwrap_or_default().is_empty() {
            errors.push(FieldError::required("spec.externalName", ""));
        }
    } else if ports.is_empty() && !headless {
        errors.push(FieldError::required("spec.ports", ""));
    }
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        match port.name.as_deref().unwrap_or_default() {
            "" if ports.len() > 1 => {
                errors.push(FieldError::required(format!("{path}.name"), ""));
            }
            "" => {}
            port_name if !is_dns1123_label(port_name) => errors.push(FieldError::invalid_str(
                format!("{path}.name"),
                port_name,
                DNS1123_LABEL_ERROR,
            )),
            port_name if !names.insert(port_name) => errors.push(FieldError::duplicate(
                format!("{path}.name"),
                format!("{port_name:?}"),
            )),
            _ => {}
        }
        if !(1..=65535).contains(&port.port) {
            errors.push(FieldError::invalid(
                format!("{path}.port"),
                port.port,
                "must be between 1 and 65535, inclusive",
            ));
        }
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        if !["SCTP", "TCP", "UDP"].contains(&protocol) {
            errors.push(FieldError::not_supported(
                format!("{path}.protocol"),
                protocol,
                &["SCTP", "TCP", "UDP"],
            ));
        }
        match &port.target_port {
            Some(IntOrString::Int(n)) if !(1..=65535).contains(n) => {
                errors.push(FieldError::invalid(
                    format!("{path}.targetPort"),
                    n,
                    "must be between 1 and 65535, inclusive",
                ))
            }
            Some(IntOrString::String(s)) if !is_port_name(s) => {
                errors.push(FieldError::invalid_str(
                    format!("{path}.targetPort"),
                    s,
                    "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                ))
            }
            _ => {}
        }
    }
    for (key, value) in spec.selector.iter().flatten() {
        for message in qualified_name_errors(key) {
            errors.push(FieldError::invalid_str("spec.selector", key, &message));
        }
        for message in label_value_errors(value) {
            errors.push(FieldError::invalid_str("spec.selector", value, &message));
        }
    }
    Invalid::check("Service", &name, errors)
}

pub fn admit_service(service: Service) -> Result<Valid<Service>, Invalid> {
    validate_service(&service)?;
    Ok(Valid(service))
}

/// `ValidateServiceUpdate`, for what joblet keeps: the cluster IP a Service was created with
/// (none, or `None` for a headless one) never changes.
pub fn admit_service_update(new: Service, old: &Service) -> Result<Valid<Service>, Invalid> {
    let ip = |s: &Service| s.spec.as_ref().and_then(|s| s.cluster_ip.clone());
    let (new_ip, old_ip) = (ip(&new), ip(old));
    if new_ip.is_some() && new_ip != old_ip {
        let name = new.metadata.name.clone().unwrap_or_default();
        let value = new_ip.unwrap_or_default();
        let error = FieldError::invalid_str("spec.clusterIP", &value, "field is immutable");
        return Err(Invalid {
            kind: "Service",
            name,
            errors: vec![error],
        });
    }
    admit_service(new)
}

/// `IsValidPortName`: at most 15 characters, lower case letters, digits and inner hyphens,
/// at least one letter.
fn is_port_name(s: &str) -> bool {
    s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// What joblet does not do for a Service, said when it is accepted.
pub fn service_warning(service: &Service) -> String {
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let spec = service.spec.as_ref();
    let headless = spec.and_then(|s| s.cluster_ip.as_deref()) == Some("None")
        && spec
            .and_then(|s| s.selector.as_ref())
            .is_some_and(|s| !s.is_empty());
    if headless {
        format!(
            "Service {name:?}: accepted, no DNS server: podman and docker pods find its name and its pods' (hostname.subdomain) in their /etc/hosts, at 127.0.0.1, the address every pod shares; host pods do not"
        )
    } else {
        format!(
            "Service {name:?}: accepted, not served: joblet gives Services no virtual IP and no DNS names; its pods share the machine's network and reach each other at 127.0.0.1"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(value: serde_json::Value) -> Result<(), String> {
        let mut service: Service = serde_json::from_value(value).unwrap();
        default_service(&mut service);
        validate_service(&service).map_err(|e| e.to_string())
    }

    #[test]
    fn a_headless_service_beside_an_indexed_job_is_valid() {
        let headless = json!({"metadata": {"name": "workers"},
            "spec": {"clusterIP": "None", "selector": {"job-name": "train"}}});
        assert_eq!(service(headless), Ok(()));
        let exposed = json!({"metadata": {"name": "web"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http-alt"},
                               {"name": "https", "port": 443, "targetPort": 8443}]}});
        assert_eq!(service(exposed), Ok(()));
    }

    #[test]
    fn malformed_services_and_namespaces_get_the_api_servers_errors() {
        let bad = json!({"metadata": {"name": "1web"},
            "spec": {"type": "Magic", "ports": [{"port": 0, "protocol": "HTTP"}, {"port": 80}]}});
        assert_eq!(
            service(bad).unwrap_err(),
            format!(
                "Service \"1web\" is invalid: [metadata.name: Invalid value: \"1web\": {DNS1035_LABEL_ERROR}, spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\", spec.ports[0].name: Required value, spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\", spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive, spec.ports[1].name: Required value]"
            )
        );
        assert_eq!(
            service(json!({"metadata": {"name": "web"}, "spec": {}})).unwrap_err(),
            "Service \"web\" is invalid: spec.ports: Required value"
        );
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "Team_A"}})).unwrap();
        assert_eq!(
            validate_namespace(&namespace).unwrap_err().to_string(),
            format!("Namespace \"Team_A\" is invalid: metadata.name: Invalid value: \"Team_A\": {DNS1123_LABEL_ERROR}")
        );
    }
}
