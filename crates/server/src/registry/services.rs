//! Services (`pkg/registry/core/service/strategy.go`): defaulted, validated and stored, with
//! a warning on create of what joblet does not do for them — no virtual IP is allocated and
//! no name is served; pods reach each other at 127.0.0.1.

use joblet_api::config::Valid;
use joblet_api::k8s_openapi::api::core::v1::Service;
use joblet_api::k8s_openapi::jiff::Timestamp;
use joblet_api::services::{admit_service, admit_service_update, default_service, service_warning};
use joblet_api::Invalid;
use joblet_driver::{Plain, Stored};
use serde_json::{json, Value};

use super::{age_column, column, name_column, Strategy};
use crate::api::AdmissionConfig;
use crate::resources::{Resource, SERVICES};
use crate::table::age;

pub struct Services;

impl Strategy for Services {
    type Object = Service;
    type Valid = Valid<Service>;
    const RESOURCE: &'static Resource = &SERVICES;

    fn apply_defaults(&self, service: &mut Service) {
        default_service(service);
    }

    fn validate(
        &self,
        service: Service,
        _admission: &AdmissionConfig,
    ) -> Result<Self::Valid, Invalid> {
        admit_service(service)
    }

    fn warnings_on_create(&self, valid: &Self::Valid) -> Vec<String> {
        vec![service_warning(valid.object())]
    }

    fn validate_update(
        &self,
        new: Service,
        old: &Service,
        _admission: &AdmissionConfig,
    ) -> Result<Self::Valid, Invalid> {
        admit_service_update(new, old)
    }

    fn object(valid: &Self::Valid) -> &Service {
        valid.object()
    }

    fn stored(valid: Self::Valid) -> Stored {
        Stored::Plain(Box::new(Plain::Service(Box::new(valid))))
    }

    /// `serviceColumnDefinitions`.
    fn columns(&self) -> Vec<Value> {
        vec![
            name_column(),
            column("Type", "string", "", "type determines how the Service is exposed.", 0),
            column("Cluster-IP", "string", "", "clusterIP is the IP address of the service and is usually assigned randomly.", 0),
            column("External-IP", "string", "", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.", 0),
            column("Port(s)", "string", "", "The list of ports that are exposed by this service.", 0),
            age_column(),
            column("Selector", "string", "", "Route service traffic to pods with label keys and values matching this selector.", 1),
        ]
    }

    /// `printService`.
    fn cells(&self, service: &Service, now: Timestamp) -> Vec<Value> {
        let spec = service.spec.clone().unwrap_or_default();
        let kind = spec
            .type_
            .clone()
            .unwrap_or_else(|| "ClusterIP".to_string());
        let cluster_ip = spec
            .cluster_ip
            .clone()
            .filter(|ip| !ip.is_empty())
            .unwrap_or_else(|| "<none>".to_string());
        let external = match kind.as_str() {
            "ExternalName" => spec.external_name.clone().unwrap_or_default(),
            "LoadBalancer" => "<pending>".to_string(),
            _ => spec
                .external_ips
                .clone()
                .filter(|ips| !ips.is_empty())
                .map_or_else(|| "<none>".to_string(), |ips| ips.join(",")),
        };
        let ports: Vec<String> = (spec.ports.iter().flatten())
            .map(|p| {
                let protocol = p.protocol.as_deref().unwrap_or("TCP");
                match p.node_port {
                    Some(node_port) => format!("{}:{node_port}/{protocol}", p.port),
                    None => format!("{}/{protocol}", p.port),
                }
            })
            .collect();
        let selector: Vec<String> = (spec.selector.iter().flatten())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let or_none = |list: Vec<String>| {
            if list.is_empty() {
                "<none>".to_string()
            } else {
                list.join(",")
            }
        };
        let created = service.metadata.creation_timestamp.as_ref();
        vec![
            json!(service.metadata.name.clone().unwrap_or_default()),
            json!(kind),
            json!(cluster_ip),
            json!(external),
            json!(or_none(ports)),
            json!(age(created.map(|t| &t.0), now)),
            json!(or_none(selector)),
        ]
    }
}
