//! `/openapi/v3`: the schemas of the served kinds (from `k8s-openapi`'s JSON schemas, so
//! `kubectl explain` prints upstream's descriptions) and the operations served on each, with
//! their parameters (`fieldValidation` on patches tells kubectl the server validates fields
//! itself).

use joblet_api::k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
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
    let list_meta = schema::<ListMeta>(&mut generator);
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
        let collection = if resource.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", resource.plural)
        } else {
            format!("{prefix}/{}", resource.plural)
        };
        let list = format!("{}List", resource.kind);
        schemas.insert(list.clone(), list_schema(resource, &reference, &list_meta));
        let list = json!({"$ref": format!("#/components/schemas/{list}")});
        let (collection_item, object_item) = operations(resource, &reference, &list, &gvk);
        paths.insert(format!("{collection}/{{name}}"), object_item);
        paths.insert(collection, collection_item);
    }
    schemas.insert("Status".into(), status_schema());
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.0", joblet_api::version::Emulation::BINARY)},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// The operations joblet serves on a kind's collection and on one of its objects, as
/// upstream's document names them (`listNamespacedJob`, `createNamespacedJob`, ...), with
/// the path parameters declared on each path.
fn operations(resource: &Resource, object: &Value, list: &Value, gvk: &Value) -> (Value, Value) {
    let scope = if resource.namespaced {
        "Namespaced"
    } else {
        ""
    };
    let kind = resource.kind;
    let query = |name: &str, type_: &str| json!({"name": name, "in": "query", "schema": {"type": type_, "uniqueItems": true}});
    let path = |name: &str| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}});
    let writes = || {
        vec![
            query("dryRun", "string"),
            query("fieldManager", "string"),
            query("fieldValidation", "string"),
        ]
    };
    let selectors = || {
        [
            ("labelSelector", "string"),
            ("fieldSelector", "string"),
            ("limit", "integer"),
            ("continue", "string"),
            ("resourceVersion", "string"),
            ("resourceVersionMatch", "string"),
            ("timeoutSeconds", "integer"),
        ]
        .map(|(name, type_)| query(name, type_))
        .to_vec()
    };
    let answer = |schema: &Value, codes: &[&str]| {
        let content = json!({"application/json": {"schema": schema}});
        let codes: Map<String, Value> = codes
            .iter()
            .map(|code| {
                (
                    code.to_string(),
                    json!({"description": "OK", "content": content}),
                )
            })
            .collect();
        Value::Object(codes)
    };
    let operation = |id: String, action: &str, parameters: Vec<Value>, responses: Value| {
        json!({
            "operationId": id,
            "parameters": parameters,
            "responses": responses,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        })
    };
    let body = |content: Value| json!({"required": true, "content": content});
    let status = json!({"$ref": "#/components/schemas/Status"});
    let mut names = vec![path("name")];
    let mut scoped = Vec::new();
    if resource.namespaced {
        names.push(path("namespace"));
        scoped.push(path("namespace"));
    }
    let writable = registry::lookup(kind).is_some();
    let mut on_collection = json!({"parameters": scoped});
    let mut listing = selectors();
    listing.extend([
        query("watch", "boolean"),
        query("allowWatchBookmarks", "boolean"),
    ]);
    on_collection["get"] = operation(
        format!("list{scope}{kind}"),
        "list",
        listing,
        answer(list, &["200"]),
    );
    if writable || kind == "Namespace" {
        let mut create = operation(
            format!("create{scope}{kind}"),
            "post",
            writes(),
            answer(object, &["200", "201", "202"]),
        );
        create["requestBody"] = body(json!({"application/json": {"schema": object}}));
        on_collection["post"] = create;
    }
    on_collection["delete"] = operation(
        format!("deletecollection{scope}{kind}"),
        "deletecollection",
        selectors(),
        answer(&status, &["200"]),
    );
    let mut on_object = json!({"parameters": names});
    on_object["get"] = operation(
        format!("read{scope}{kind}"),
        "get",
        Vec::new(),
        answer(object, &["200"]),
    );
    // Declared for the kinds created through the API, patched or not (Namespaces):
    // kubectl reads `fieldValidation` here to know the server validates fields itself.
    let mut patch = writes();
    patch.push(query("force", "boolean"));
    let mut patching = operation(
        format!("patch{scope}{kind}"),
        "patch",
        patch,
        answer(object, &["200", "201"]),
    );
    // Strategic merge patches are served but not named: kubectl would then work its patches
    // out from these schemas, which lack upstream's patch strategies and merge keys, rather
    // than from the types built into it (and re-applying a file would replace its lists).
    patching["requestBody"] = body(json!({
        "application/json-patch+json": {"schema": {"type": "array", "items": {"type": "object"}}},
        "application/merge-patch+json": {"schema": {"type": "object"}},
        "application/apply-patch+yaml": {"schema": {"type": "object"}},
    }));
    if writable || kind == "Namespace" {
        on_object["patch"] = patching;
    }
    if writable {
        let mut replace = operation(
            format!("replace{scope}{kind}"),
            "put",
            writes(),
            answer(object, &["200", "201"]),
        );
        replace["requestBody"] = body(json!({"application/json": {"schema": object}}));
        on_object["put"] = replace;
    }
    on_object["delete"] = operation(
        format!("delete{scope}{kind}"),
        "delete",
        vec![
            query("dryRun", "string"),
            query("gracePeriodSeconds", "integer"),
            query("propagationPolicy", "string"),
        ],
        answer(&status, &["200", "202"]),
    );
    (on_collection, on_object)
}

/// `<Kind>List`: the kind's objects and the list's metadata.
fn list_schema(resource: &Resource, object: &Value, list_meta: &Value) -> Value {
    json!({
        "type": "object",
        "description": format!("{}List is a list of {}.", resource.kind, resource.plural),
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": list_meta,
            "items": {"type": "array", "items": object},
        },
        "x-kubernetes-group-version-kind": [{"group": resource.group, "version": "v1", "kind": format!("{}List", resource.kind)}],
    })
}

/// `Status`, what deletes and every error answer.
fn status_schema() -> Value {
    json!({
        "type": "object",
        "description": "Status is a return value for calls that don't return other objects.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "status": {"type": "string"},
            "message": {"type": "string"},
            "reason": {"type": "string"},
            "details": {"type": "object"},
            "code": {"type": "integer", "format": "int32"},
        },
    })
}

fn schema<T: JsonSchema>(generator: &mut schemars::SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operations_on(document: &Value, path: &str) -> Vec<String> {
        let item = document["paths"][path].as_object().expect(path);
        item.keys()
            .filter(|k| *k != "parameters")
            .cloned()
            .collect()
    }

    #[test]
    fn every_path_declares_its_parameters() {
        for group in ["", "batch"] {
            let document = group_version(group);
            for (path, item) in document["paths"].as_object().unwrap() {
                let declared: Vec<&str> = item["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["in"] == "path" && p["required"] == true)
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                let named: Vec<&str> = path
                    .split('/')
                    .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                let mut sorted = declared.clone();
                sorted.sort();
                let mut expected = named.clone();
                expected.sort();
                assert_eq!(sorted, expected, "{path}");
            }
        }
    }

    #[test]
    fn operations_are_those_served_with_upstreams_names() {
        let batch = group_version("batch");
        let jobs = "/apis/batch/v1/namespaces/{namespace}/jobs";
        assert_eq!(operations_on(batch, jobs), ["delete", "get", "post"]);
        assert_eq!(
            operations_on(batch, &format!("{jobs}/{{name}}")),
            ["delete", "get", "patch", "put"]
        );
        assert_eq!(
            batch["paths"][jobs]["get"]["operationId"],
            "listNamespacedJob"
        );
        let list = &batch["components"]["schemas"]["JobList"];
        assert_eq!(
            list["properties"]["items"]["items"],
            batch["paths"][jobs]["post"]["requestBody"]["content"]["application/json"]["schema"]
        );
        // Pods come from Jobs: no create or replace.
        let core = group_version("");
        let pods = "/api/v1/namespaces/{namespace}/pods";
        assert_eq!(operations_on(core, pods), ["delete", "get"]);
        assert_eq!(
            operations_on(core, &format!("{pods}/{{name}}")),
            ["delete", "get"]
        );
        assert_eq!(
            core["paths"]["/api/v1/namespaces/{name}"]["get"]["operationId"],
            "readNamespace"
        );
    }
}
