//! Errors as the API server sends them: `Status` objects with its reasons and codes, which
//! kubectl turns into the messages users know.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use joblet_api::{FieldError, Invalid};
use joblet_driver::CommandError;
use serde_json::{json, Value};

use crate::resources::Resource;

#[derive(Debug)]
pub struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// For an expired `continue`: the token that goes on with the objects as they are now.
    pub list_continue: Option<String>,
    /// A conflict with a change another client made at this resourceVersion: an update
    /// without a precondition is redone once the cache has it.
    pub stale: Option<i64>,
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            list_continue: None,
            stale: None,
        }
    }

    pub fn stale_at(mut self, version: i64) -> Self {
        self.stale = Some(version);
        self
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn with_continue(mut self, token: String) -> Self {
        self.list_continue = Some(token);
        self
    }

    pub fn not_found(resource: &Resource, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", resource.qualified()),
        )
        .with_details(json!({"name": name, "group": resource.group, "kind": resource.plural}))
    }

    pub fn already_exists(resource: &Resource, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", resource.qualified()),
        )
        .with_details(json!({"name": name, "group": resource.group, "kind": resource.plural}))
    }

    pub fn conflict(resource: &Resource, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                resource.qualified()
            ),
        )
        .with_details(json!({"name": name, "group": resource.group, "kind": resource.plural}))
    }

    pub fn namespace_not_found(namespace: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("namespaces \"{namespace}\" not found"),
        )
        .with_details(json!({"name": namespace, "kind": "namespaces"}))
    }

    pub fn invalid(resource: &Resource, invalid: &Invalid) -> Self {
        let causes: Vec<Value> = invalid
            .errors
            .iter()
            .map(|e: &FieldError| {
                let rendered = e.to_string();
                let message = rendered
                    .strip_prefix(&format!("{}: ", e.path))
                    .unwrap_or(&rendered);
                json!({"reason": e.reason(), "message": message, "field": e.path})
            })
            .collect();
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", invalid.to_string()).with_details(
            json!({"name": invalid.name, "group": resource.group, "kind": resource.kind, "causes": causes}),
        )
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
    }

    /// An apply that would change fields other managers own.
    pub fn apply_conflict(conflicts: &crate::managed::Conflicts) -> Self {
        let causes: Vec<Value> = conflicts
            .0
            .iter()
            .map(|(manager, field)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with {manager}"), "field": field})
            })
            .collect();
        Self::new(StatusCode::CONFLICT, "Conflict", conflicts.message())
            .with_details(json!({"causes": causes}))
    }

    /// What an engine command's failure is to the client.
    pub fn from_command(resource: &Resource, name: &str, error: CommandError) -> ApiError {
        match error {
            CommandError::NotFound => Self::not_found(resource, name),
            CommandError::AlreadyExists => Self::already_exists(resource, name),
            CommandError::Conflict => Self::conflict(resource, name),
            CommandError::Stale(version) => Self::conflict(resource, name).stale_at(version),
            CommandError::NamespaceNotFound(ns) => Self::namespace_not_found(&ns),
            CommandError::Forbidden => Self::forbidden(format!(
                "{} \"{name}\" is forbidden: this namespace may not be deleted",
                resource.qualified()
            )),
            other => Self::internal(other.to_string()),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            message,
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// The path names nothing joblet serves.
    pub fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// More requests at once than the server holds (its max-in-flight answer).
    pub fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests, please try again later.",
        )
        .with_details(json!({"retryAfterSeconds": 1}))
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// A read at a resourceVersion the server has not reached, after waiting for it
    /// (`storage.NewTooLargeResourceVersionError`).
    pub fn resource_version_too_large(asked: i64, current: i64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("Timeout: Too large resource version: {asked}, current: {current}"),
        )
        .with_details(json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1,
        }))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        if let Some(token) = &self.list_continue {
            status["metadata"]["continue"] = json!(token);
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.status().to_string();
        (
            self.code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}
