//! The served kinds (`shared/design/api-registry.md`): each kind is a [`Strategy`] (its
//! defaults, validation, table columns) in a file of its own, and [`Store`] gives it the
//! generic writes (`handlers.rs`) every kind shares. What is read the same way for every
//! kind lives in `request.rs`.

mod config_maps;
mod cron_jobs;
mod handlers;
mod jobs;
mod nodes;
pub mod request;
mod secrets;
mod services;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::future::BoxFuture;
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use joblet_api::k8s_openapi::jiff::Timestamp;
use joblet_api::k8s_openapi::{Metadata, Resource as K8sResource};
use joblet_api::Invalid;
use joblet_driver::{Propagation, Stored};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::api::{AdmissionConfig, AppState};
use crate::cache::Entry;
use crate::errors::ApiError;
use crate::resources::Resource;
use request::{ObjectRef, Params, Write};

/// One kind's rules, as upstream's `rest.RESTCreateStrategy`/`RESTUpdateStrategy` and its
/// `TableConvertor` give them. The hooks run in upstream's `BeforeCreate`/`BeforeUpdate` order.
pub trait Strategy: Send + Sync + 'static {
    type Object: K8sResource
        + Metadata<Ty = ObjectMeta>
        + Serialize
        + DeserializeOwned
        + JsonSchema
        + Clone
        + Send
        + Sync
        + 'static;
    /// Proof of validation: the only thing the engine takes.
    type Valid: Send + 'static;
    const RESOURCE: &'static Resource;
    /// What a delete without a propagation policy does to the objects this one owns.
    const DEFAULT_PROPAGATION: Propagation = Propagation::Orphan;

    /// Scheme defaulting and conversion, on every decoded body and patch result, before
    /// the managed fields are worked out (a Secret's `stringData` goes into `data`).
    fn apply_defaults(&self, _object: &mut Self::Object) {}
    /// Mutating admission on create, after managed fields (what it sets is no manager's):
    /// what the server's configuration defaults.
    fn admit_create(&self, _object: &mut Self::Object, _admission: &AdmissionConfig) {}
    /// After managed fields, on create: what the server sets (a Job's selector, status).
    fn prepare_for_create(&self, _object: &mut Self::Object) {}
    fn validate(
        &self,
        object: Self::Object,
        admission: &AdmissionConfig,
    ) -> Result<Self::Valid, Invalid>;
    fn warnings_on_create(&self, _valid: &Self::Valid) -> Vec<String> {
        Vec::new()
    }
    /// On update, after identity is carried over from `old`: what else the server keeps.
    fn prepare_for_update(&self, _new: &mut Self::Object, _old: &Self::Object) {}
    fn validate_update(
        &self,
        new: Self::Object,
        old: &Self::Object,
        admission: &AdmissionConfig,
    ) -> Result<Self::Valid, Invalid>;
    fn object(valid: &Self::Valid) -> &Self::Object;
    fn stored(valid: Self::Valid) -> Stored;
    /// Table columns, as upstream's printers define them.
    fn columns(&self) -> Vec<Value>;
    fn cells(&self, object: &Self::Object, now: Timestamp) -> Vec<Value>;
}

/// What a write request carries besides its object and body.
pub struct Call<'a> {
    pub state: &'a AppState,
    pub params: &'a Params,
    pub headers: &'a HeaderMap,
}

/// A served kind, as the router and the table, watch and OpenAPI code see it.
pub trait Rest: Send + Sync {
    fn resource(&self) -> &'static Resource;
    /// POST, and a server-side apply of an object that does not exist.
    fn create<'a>(
        &'a self,
        call: &'a Call<'a>,
        namespace: Option<&'a str>,
        body: &'a Bytes,
        write: Write,
    ) -> BoxFuture<'a, Result<Response, ApiError>>;
    fn replace<'a>(
        &'a self,
        call: &'a Call<'a>,
        object: &'a ObjectRef,
        body: &'a Bytes,
    ) -> BoxFuture<'a, Result<Response, ApiError>>;
    fn patch<'a>(
        &'a self,
        call: &'a Call<'a>,
        object: &'a ObjectRef,
        body: &'a Bytes,
    ) -> BoxFuture<'a, Result<Response, ApiError>>;
    fn delete<'a>(
        &'a self,
        call: &'a Call<'a>,
        object: &'a ObjectRef,
        body: &'a Bytes,
    ) -> BoxFuture<'a, Result<Response, ApiError>>;
    fn columns(&self) -> Value;
    fn cells(&self, entry: &Entry, now: Timestamp) -> Vec<Value>;
    /// A reference to the kind's schema, its definitions added to `generator`.
    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> Value;
}

/// A kind served by the generic handlers with its strategy's rules.
pub struct Store<S>(pub S);

impl<S: Strategy> Rest for Store<S> {
    fn resource(&self) -> &'static Resource {
        S::RESOURCE
    }

    fn create<'a>(
        &'a self,
        call: &'a Call<'a>,
        namespace: Option<&'a str>,
        body: &'a Bytes,
        write: Write,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(handlers::create(&self.0, call, namespace, body, write))
    }

    fn replace<'a>(
        &'a self,
        call: &'a Call<'a>,
        object: &'a ObjectRef,
        body: &'a Bytes,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(handlers::replace(&self.0, call, object, body))
    }

    fn patch<'a>(
        &'a self,
        call: &'a Call<'a>,
        object: &'a ObjectRef,
        body: &'a Bytes,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(handlers::patch(self, call, object, body))
    }

    fn delete<'a>(
        &'a self,
        call: &'a Call<'a>,
        object: &'a ObjectRef,
        body: &'a Bytes,
    ) -> BoxFuture<'a, Result<Response, ApiError>> {
        Box::pin(handlers::delete::<S>(call, object, body))
    }

    fn columns(&self) -> Value {
        Value::Array(self.0.columns())
    }

    fn cells(&self, entry: &Entry, now: Timestamp) -> Vec<Value> {
        match entry.object::<S::Object>() {
            Some(object) => self.0.cells(&object, now),
            None => vec![Value::String(entry.name.clone())],
        }
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> Value {
        generator.subschema_for::<S::Object>().to_value()
    }
}

/// The kinds served through strategies (Pods, Events and Namespaces follow).
static REGISTRY: [&dyn Rest; 6] = [
    &Store(jobs::Jobs),
    &Store(cron_jobs::CronJobs),
    &Store(config_maps::ConfigMaps),
    &Store(secrets::Secrets),
    &Store(services::Services),
    &nodes::Nodes,
];

pub fn lookup(kind: &str) -> Option<&'static dyn Rest> {
    REGISTRY
        .iter()
        .copied()
        .find(|rest| rest.resource().kind == kind)
}

/// A table column definition.
pub fn column(name: &str, type_: &str, format: &str, description: &str, priority: u8) -> Value {
    serde_json::json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

/// The NAME column every kind starts with.
pub fn name_column() -> Value {
    column(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace.",
        0,
    )
}

/// The AGE column.
pub fn age_column() -> Value {
    column(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    )
}
