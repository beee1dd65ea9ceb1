//! The writes every kind gets (upstream's `genericregistry.Store`): create, replace, patch
//! and delete, with the strategy's hooks in upstream's order, managed fields, dry runs, and
//! the engine as the only writer.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
use joblet_api::k8s_openapi::Metadata;
use joblet_driver::{ObjectKey, Propagation, SystemClock, UpdateBase};
use serde::Serialize;
use serde_json::{json, Value};

use super::request::{
    decode, decode_body, delete_options, dry_run, field_manager, json_response, raw_json_response,
    ObjectRef, Write,
};
use super::{Call, Rest, Store, Strategy};
use crate::api::MAX_BODY;
use crate::errors::ApiError;
use crate::managed;
use crate::patch::{Patch, PatchType, MAX_JSON_PATCH_OPERATIONS};

/// How often a patch is redone because another client changed the object between its read
/// and its write; each time, some other write succeeded, so this only bounds a storm.
const PATCH_ATTEMPTS: usize = 64;

/// How long a redone patch waits for the cache to show the change it collided with.
const STALE_READ_WAIT: Duration = Duration::from_secs(5);

fn to_value<T: Serialize>(object: &T) -> Value {
    serde_json::to_value(object).expect("API objects serialize")
}

pub async fn create<S: Strategy>(
    strategy: &S,
    call: &Call<'_>,
    namespace: Option<&str>,
    body: &Bytes,
    write: Write,
) -> Result<Response, ApiError> {
    let resource = S::RESOURCE;
    let value = decode_body(call.headers, body)?;
    let (mut object, mut warnings) = decode::<S::Object>(value, call.params)?;
    let namespace = namespace.unwrap_or("default");
    let meta = object.metadata_mut();
    if meta.namespace.as_deref().is_some_and(|ns| ns != namespace) {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    meta.namespace = Some(namespace.to_string());
    joblet_driver::generate_name(meta);
    let now = SystemClock.now_timestamp();
    // The creator owns what it set and the defaults, not what the server generates;
    // managed fields sent along are kept beside it, as upstream keeps them.
    let sent = meta.managed_fields.take().unwrap_or_default();
    let applied = to_value(&object);
    strategy.apply_defaults(&mut object);
    let entries = match write {
        Write::Update(manager) => {
            managed::after_update(&Value::Null, &to_value(&object), &sent, &manager, now)
        }
        Write::Apply { manager, .. } => {
            managed::apply(
                &Value::Null,
                &applied,
                applied.clone(),
                &sent,
                &manager,
                true,
                now,
            )
            .expect("a forced apply has no conflicts")
            .1
        }
    };
    let meta = object.metadata_mut();
    meta.managed_fields = Some(entries);
    meta.uid = Some(joblet_driver::new_uid());
    meta.creation_timestamp = Some(Time(now));
    meta.resource_version = None;
    strategy.admit_create(&mut object, &call.state.admission);
    strategy.prepare_for_create(&mut object);
    let name = object.metadata().name.clone().unwrap_or_default();
    let valid = strategy
        .validate(object, &call.state.admission)
        .map_err(|invalid| ApiError::invalid(resource, &invalid))?;
    warnings.extend(strategy.warnings_on_create(&valid));
    let created = if dry_run(call.params) {
        to_value(S::object(&valid))
    } else {
        call.state
            .engine
            .put(S::stored(valid), None)
            .await
            .map_err(|e| ApiError::from_command(resource, &name, e))?
    };
    Ok(raw_json_response(
        StatusCode::CREATED,
        created.to_string(),
        &warnings,
    ))
}

/// The managed fields of an updated object: those after a change by a manager, or those
/// an apply worked out.
enum ManagedFields {
    ChangedBy(String),
    Applied(Vec<ManagedFieldsEntry>),
}

fn stored<S: Strategy>(entry: &crate::cache::Entry) -> Result<S::Object, ApiError> {
    entry
        .object::<S::Object>()
        .ok_or_else(|| ApiError::internal(format!("stored {} is unreadable", S::RESOURCE.singular)))
}

/// Writes `new` over the stored `old`, as an update of what `base` names.
async fn update<S: Strategy>(
    strategy: &S,
    call: &Call<'_>,
    old: &S::Object,
    mut new: S::Object,
    base: UpdateBase,
    managed_fields: ManagedFields,
) -> Result<Value, ApiError> {
    // Managed fields sent with an update replace the recorded ones, as upstream takes them
    // (kubectl rewrites them so when it moves an object from client-side apply to SSA).
    let sent = new
        .metadata_mut()
        .managed_fields
        .take()
        .filter(|m| !m.is_empty());
    strategy.apply_defaults(&mut new);
    joblet_api::carry_identity(new.metadata_mut(), old.metadata());
    strategy.prepare_for_update(&mut new, old);
    let entries = sent
        .as_deref()
        .or(old.metadata().managed_fields.as_deref())
        .unwrap_or_default();
    new.metadata_mut().managed_fields = Some(match managed_fields {
        ManagedFields::ChangedBy(manager) => managed::after_update(
            &to_value(old),
            &to_value(&new),
            entries,
            &manager,
            SystemClock.now_timestamp(),
        ),
        ManagedFields::Applied(entries) => entries,
    });
    let name = old.metadata().name.clone().unwrap_or_default();
    let valid = strategy
        .validate_update(new, old, &call.state.admission)
        .map_err(|invalid| ApiError::invalid(S::RESOURCE, &invalid))?;
    if dry_run(call.params) {
        return Ok(to_value(S::object(&valid)));
    }
    call.state
        .engine
        .put(S::stored(valid), Some(base))
        .await
        .map_err(|e| ApiError::from_command(S::RESOURCE, &name, e))
}

pub async fn replace<S: Strategy>(
    strategy: &S,
    call: &Call<'_>,
    object: &ObjectRef,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let _turn = call
        .state
        .writes
        .turn(&object.namespace, &object.name)
        .await;
    let entry = object.entry(&call.state.cache)?;
    let old = stored::<S>(&entry)?;
    let (new, warnings) = decode::<S::Object>(decode_body(call.headers, body)?, call.params)?;
    if new.metadata().name.as_deref() != Some(object.name.as_str()) {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    let base = match new
        .metadata()
        .resource_version
        .clone()
        .filter(|rv| !rv.is_empty())
    {
        Some(version) => UpdateBase::Exactly(version),
        None => UpdateBase::ReadAt(entry.resource_version),
    };
    let managed_fields = ManagedFields::ChangedBy(field_manager(call.params, call.headers));
    let updated = update(strategy, call, &old, new, base, managed_fields).await?;
    Ok(raw_json_response(
        StatusCode::OK,
        updated.to_string(),
        &warnings,
    ))
}

pub async fn patch<S: Strategy>(
    store: &Store<S>,
    call: &Call<'_>,
    object: &ObjectRef,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let (strategy, params, headers) = (&store.0, call.params, call.headers);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind = PatchType::from_content_type(content_type).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
        ))
    })?;
    let write = match kind {
        PatchType::Apply => Write::apply(params)?,
        _ if params.contains_key("force") => {
            return Err(ApiError::unprocessable(
                "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
            ))
        }
        _ => Write::Update(field_manager(params, headers)),
    };
    let patch = Patch::parse(kind, body)
        .map_err(|e| ApiError::bad_request(format!("the patch could not be applied: {e}")))?;
    if let Patch::Json(operations) = &patch {
        if operations.0.len() > MAX_JSON_PATCH_OPERATIONS {
            return Err(ApiError::too_large(format!(
                "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                operations.0.len()
            )));
        }
    }
    let state = call.state;
    let _turn = state.writes.turn(&object.namespace, &object.name).await;
    // A patch is re-applied to the fresh object when another client's change came between
    // (turns keep other patches and updates out, not every writer).
    for _ in 0..PATCH_ATTEMPTS {
        let Some(entry) = state
            .cache
            .get(S::RESOURCE.kind, &object.namespace, &object.name)
        else {
            if let Write::Apply { .. } = write {
                let mut yaml_headers = headers.clone();
                yaml_headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/yaml"),
                );
                let call = Call {
                    headers: &yaml_headers,
                    ..*call
                };
                return store
                    .create(&call, Some(&object.namespace), body, write)
                    .await;
            }
            return Err(ApiError::not_found(S::RESOURCE, &object.name));
        };
        let old = stored::<S>(&entry)?;
        let live = entry.value();
        let mut value = live.clone();
        patch
            .apply_to(&mut value)
            .map_err(ApiError::unprocessable)?;
        let size = serde_json::to_vec(&value).map_or(0, |bytes| bytes.len());
        if size > MAX_BODY {
            return Err(ApiError::too_large(format!(
                "Request entity too large: limit is {MAX_BODY}"
            )));
        }
        let entries = old.metadata().managed_fields.as_deref().unwrap_or_default();
        let managed_fields = match (&write, &patch) {
            (Write::Apply { manager, force }, Patch::Apply(config)) => {
                let now = SystemClock.now_timestamp();
                let (pruned, entries) =
                    managed::apply(&live, config, value, entries, manager, *force, now)
                        .map_err(|conflicts| ApiError::apply_conflict(&conflicts))?;
                value = pruned;
                ManagedFields::Applied(entries)
            }
            (Write::Update(manager), _) | (Write::Apply { manager, .. }, _) => {
                ManagedFields::ChangedBy(manager.clone())
            }
        };
        let (new, warnings) = decode::<S::Object>(value, params)?;
        let precondition = new
            .metadata()
            .resource_version
            .clone()
            .filter(|rv| *rv != entry.resource_version.to_string());
        let base = match precondition {
            Some(version) => UpdateBase::Exactly(version),
            None => UpdateBase::ReadAt(entry.resource_version),
        };
        match update(strategy, call, &old, new, base, managed_fields).await {
            Ok(updated) => {
                return Ok(raw_json_response(
                    StatusCode::OK,
                    updated.to_string(),
                    &warnings,
                ))
            }
            // Another client changed the object since the read: read its change and patch
            // that, as upstream's GuaranteedUpdate does.
            Err(ApiError {
                stale: Some(version),
                ..
            }) => state.cache.wait_for(version, STALE_READ_WAIT).await,
            Err(error) => return Err(error),
        }
    }
    Err(ApiError::conflict(S::RESOURCE, &object.name))
}

pub async fn delete<S: Strategy>(
    call: &Call<'_>,
    object: &ObjectRef,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let resource = S::RESOURCE;
    let options = delete_options(call.params, body)?;
    let propagation = match options.propagation.as_deref() {
        None => S::DEFAULT_PROPAGATION,
        Some("Orphan") => Propagation::Orphan,
        Some("Background") | Some("Foreground") => Propagation::Background,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )))
        }
    };
    let entry = object.entry(&call.state.cache)?;
    if dry_run(call.params) {
        return Ok(raw_json_response(StatusCode::OK, entry.body.clone(), &[]));
    }
    let key = ObjectKey {
        kind: resource.kind,
        namespace: object.namespace.clone(),
        name: object.name.clone(),
    };
    let deleted = call
        .state
        .engine
        .delete(key, propagation)
        .await
        .map_err(|e| ApiError::from_command(resource, &object.name, e))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": object.name, "group": resource.group, "kind": resource.plural,
                "uid": deleted["metadata"]["uid"]},
        }),
    ))
}
