//! What every request carries, read the same way for every kind: the object it names, its
//! body, its options (dry run, field manager and validation, delete options, selectors),
//! and the replies' shapes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use joblet_api::decode_object;
use joblet_api::k8s_openapi;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::cache::{Cache, Entry};
use crate::errors::ApiError;
use crate::resources::Resource;
use crate::selectors::Selector;
use crate::{managed, protobuf};

/// A request's query parameters.
pub type Params = HashMap<String, String>;

pub struct ObjectRef {
    pub resource: &'static Resource,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn entry(&self, cache: &Cache) -> Result<Arc<Entry>, ApiError> {
        cache
            .get(self.resource.kind, &self.namespace, &self.name)
            .ok_or_else(|| ApiError::not_found(self.resource, &self.name))
    }
}

/// A boolean query parameter, as the API server's parameter codec reads one.
pub fn is_true(value: Option<&String>) -> bool {
    crate::params::boolean(value)
}

pub fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

pub fn raw_json_response(code: StatusCode, body: String, warnings: &[String]) -> Response {
    let mut response = (code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    for warning in warnings {
        let text = format!("299 - {:?}", warning);
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append("Warning", value);
        }
    }
    response
}

pub fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

pub fn selector(resource: &Resource, params: &Params) -> Result<Selector, ApiError> {
    Selector::parse(
        resource,
        params.get("labelSelector").map(String::as_str),
        params.get("fieldSelector").map(String::as_str),
    )
    .map_err(|e| {
        ApiError::bad_request(format!(
            "Unable to find \"{}/v1, Resource={}\" that match label selector \"{}\", field selector \"{}\": {e}",
            resource.group,
            resource.plural,
            params.get("labelSelector").map_or("", String::as_str),
            params.get("fieldSelector").map_or("", String::as_str),
        ))
    })
}

/// The request body as JSON: JSON, YAML, or the protobuf of kubectl's generators.
pub fn decode_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return protobuf::decode(body).map_err(ApiError::unsupported_media_type);
    }
    let parsed = if content_type.starts_with("application/yaml") {
        std::str::from_utf8(body)
            .map_err(|e| e.to_string())
            .and_then(joblet_api::yaml::document)
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| ApiError::bad_request(format!("error decoding the request body: {e}")))
}

/// Unknown fields: an error under `fieldValidation=Strict`, warnings by default.
pub fn field_validation(params: &Params, unknown: Vec<String>) -> Result<Vec<String>, ApiError> {
    match params.get("fieldValidation").map(String::as_str) {
        Some("Strict") if !unknown.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            unknown.join(", ")
        ))),
        Some("Ignore") => Ok(Vec::new()),
        _ => Ok(unknown),
    }
}

/// An object of kind `T` from a decoded body, its unknown fields checked as
/// `fieldValidation` says; a wrong type is the API server's decoding error.
pub fn decode<T>(value: Value, params: &Params) -> Result<(T, Vec<String>), ApiError>
where
    T: k8s_openapi::Resource + DeserializeOwned + Serialize + schemars::JsonSchema,
{
    let (object, unknown) = decode_object::<T>(value).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
            kind = T::KIND,
            version = T::VERSION,
        ))
    })?;
    Ok((object, field_validation(params, unknown)?))
}

pub fn dry_run(params: &Params) -> bool {
    params.get("dryRun").is_some_and(|v| v == "All")
}

/// Who writes, and how: what the managed fields of the written Job record.
pub enum Write {
    /// A create, update or non-apply patch by this manager.
    Update(String),
    /// A server-side apply by this manager.
    Apply { manager: String, force: bool },
}

/// The manager named by `fieldManager`, or else the client's name from its User-Agent.
pub fn field_manager(params: &Params, headers: &HeaderMap) -> String {
    params.get("fieldManager").cloned().unwrap_or_else(|| {
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        managed::manager_from_user_agent(agent)
    })
}

impl Write {
    pub fn apply(params: &Params) -> Result<Write, ApiError> {
        let manager = params
            .get("fieldManager")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                )
            })?;
        Ok(Write::Apply {
            manager: manager.clone(),
            force: is_true(params.get("force")),
        })
    }
}

/// `DeleteOptions`, from the body (kubectl) or the query (Python client).
pub struct DeleteOptions {
    pub propagation: Option<String>,
    pub grace: Option<i64>,
}

pub fn delete_options(params: &Params, body: &Bytes) -> Result<DeleteOptions, ApiError> {
    let from_body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let propagation = from_body["propagationPolicy"]
        .as_str()
        .map(str::to_string)
        .or_else(|| params.get("propagationPolicy").cloned());
    let grace = from_body["gracePeriodSeconds"].as_i64().or_else(|| {
        params
            .get("gracePeriodSeconds")
            .and_then(|g| g.parse().ok())
    });
    Ok(DeleteOptions { propagation, grace })
}
