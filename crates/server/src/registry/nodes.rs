//! Nodes: the one node, this machine, as its kubelet registers it. It is read only: the
//! engine writes it when it starts, and the API refuses every write with the reason.

use axum::body::Bytes;
use axum::response::Response;
use futures_util::future::BoxFuture;
use joblet_api::k8s_openapi::api::core::v1::Node;
use joblet_api::k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::request::{ObjectRef, Write};
use super::{age_column, column, name_column, Call, Rest};
use crate::cache::Entry;
use crate::errors::ApiError;
use crate::resources::{Resource, NODES};
use crate::table::age;

pub struct Nodes;

fn refused() -> Result<Response, ApiError> {
    Err(ApiError::method_not_allowed(
        "joblet's one node is this machine, registered by joblet itself: it is not written through the API",
    ))
}

impl Rest for Nodes {
    fn resource(&self) -> &'static Resource {
        &NODES
    }

    fn create<'a>(
        &'a self,
        _call: &'a Call<'a>,
        _namespace: Option<&'a str>,
        _body: &'a Bytes,
        _write: Write,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(async { refused() })
    }

    fn replace<'a>(
        &'a self,
        _call: &'a Call<'a>,
        _object: &'a ObjectRef,
        _body: &'a Bytes,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(async { refused() })
    }

    fn patch<'a>(
        &'a self,
        _call: &'a Call<'a>,
        _object: &'a ObjectRef,
        _body: &'a Bytes,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(async { refused() })
    }

    fn delete<'a>(
        &'a self,
        _call: &'a Call<'a>,
        _object: &'a ObjectRef,
        _body: &'a Bytes,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(async { refused() })
    }

    /// `nodeColumnDefinitions` of upstream's printers.
    fn columns(&self) -> Value {
        Value::Array(vec![
            name_column(),
            column("Status", "string", "", "The status of the node", 0),
            column("Roles", "string", "", "The roles of the node", 0),
            age_column(),
            column("Version", "string", "", "Kubelet Version reported by the node.", 0),
            column("Internal-IP", "string", "", "List of addresses reachable to the node.", 1),
            column("External-IP", "string", "", "List of addresses reachable to the node.", 1),
            column("OS-Image", "string", "", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", 1),
            column("Kernel-Version", "string", "", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
            column("Container-Runtime", "string", "", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).", 1),
        ])
    }

    /// `printNode`.
    fn cells(&self, entry: &Entry, now: Timestamp) -> Vec<Value> {
        let Some(node) = entry.object::<Node>() else {
            return vec![Value::String(entry.name.clone())];
        };
        let status = node.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready");
        let mut state = match ready.map(|c| c.status.as_str()) {
            Some("True") => "Ready",
            Some(_) => "NotReady",
            None => "Unknown",
        }
        .to_string();
        if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            state.push_str(",SchedulingDisabled");
        }
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let mut roles: Vec<&str> = labels
            .keys()
            .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
            .chain(labels.get("kubernetes.io/role").map(String::as_str))
            .filter(|r| !r.is_empty())
            .collect();
        roles.sort();
        roles.dedup();
        let roles = if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        };
        let address = |kind: &str| {
            status
                .addresses
                .iter()
                .flatten()
                .find(|a| a.type_ == kind)
                .map_or("<none>".to_string(), |a| a.address.clone())
        };
        let info = status.node_info.clone().unwrap_or_default();
        let created = node.metadata.creation_timestamp.as_ref();
        vec![
            json!(node.metadata.name.clone().unwrap_or_default()),
            json!(state),
            json!(roles),
            json!(age(created.map(|t| &t.0), now)),
            json!(info.kubelet_version),
            json!(address("InternalIP")),
            json!(address("ExternalIP")),
            json!(info.os_image),
            json!(info.kernel_version),
            json!(info.container_runtime_version),
        ]
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> Value {
        generator.subschema_for::<Node>().to_value()
    }
}
