//! `/openapi/v3`: the schemas of the served kinds (from `k8s-openapi`'s JSON schemas, so
//! `kubectl explain` prints upstream's descriptions) and one operation per kind with the
//! `fieldValidation` parameter, which tells kubectl the server validates fields itself.

use joblet_api::k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::registry;
use crate::resources::{Resource, RESOURCES};

/// The root document: where each group-version's document is.
pub fn root() -> Value {
    json!({"paths": {
        "api/v1": {"serverRelativeURL": format!("/openapi/v3/api/v1?hash={}", hash())},
        "apis/batch/v1": {"serverRelativeURL": format!("/openapi/v3/apis/batch/v1?hash={}", hash())},
    }})
}

fn hash() -> &'static str {
    concat!("joblet-", env!("CARGO_PKG_VERSION"))
}

/// The document of one group-version (`""` for the core group, or `batch`), made once.
pub fn group_version(group: &str) -> &'static Value {
    static CORE: OnceLock<Value> = OnceLock::new();
    static BATCH: OnceLock<Value> = OnceLock::new();
    let slot = if group.is_empty() { &CORE } else { &BATCH };
    slot.get_or_init(|| document(group))
}

fn document(group: &str) -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut top: Vec<(&Resource, Value)> = Vec::new();
    for resource in RESOURCES.into_iter().filter(|r| r.group == group) {
        let reference = match (registry::lookup(resource.kind), resource.kind) {
            (Some(rest), _) => rest.schema(&mut generator),
            (None, "Pod") => schema::<Pod>(&mut generator),
            (None, "Event") => schema::<Event>(&mut generator),
            (None, _) => schema::<Namespace>(&mut generator),
        };
        top.push((resource, reference));
    }
    let mut schemas: Map<String, Value> = generator.take_definitions(true);
    let mut paths = Map::new();
    for (resource, reference) in top {
        let gvk = json!({"group": resource.group, "version": "v1", "kind": resource.kind});
        // kubectl finds the kind's schema by this extension.
        if let Some(name) = reference["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
        {
            if let Some(Value::Object(schema)) = schemas.get_mut(name) {
                schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
            }
        }
        let prefix = if resource.group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{}/v1", resource.group)
        };
        let path = if resource.namespaced {
            format!(
                "{prefix}/namespaces/{{namespace}}/{}/{{name}}",
                resource.plural
            )
        } else {
            format!("{prefix}/{}/{{name}}", resource.plural)
        };
        let parameter = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}});
        paths.insert(
            path,
            json!({
                "get": {
                    "operationId": format!("read{}", resource.kind),
                    "responses": ok,
                    "x-kubernetes-action": "get",
                    "x-kubernetes-group-version-kind": gvk,
                },
                "patch": {
                    "operationId": format!("patch{}", resource.kind),
                    "parameters": [parameter("dryRun"), parameter("fieldManager"), parameter("fieldValidation"), parameter("force")],
                    "responses": ok,
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk,
                },
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::resources::SERVER_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn schema<T: JsonSchema>(generator: &mut schemars::SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}
