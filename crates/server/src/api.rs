//! The HTTP API: routing of Kubernetes REST paths to reads from the watch cache and writes
//! through the engine.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use joblet_api::k8s_openapi::api::batch::v1::Job;
use joblet_api::k8s_openapi::api::core::v1::Namespace;
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use joblet_api::{decode_object, prepare_for_update, validate_job_update};
use joblet_driver::{admit, EngineHandle, Propagation, SystemClock, UpdateBase};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::cache::{Cache, Entry, Key};
use crate::errors::ApiError;
use crate::object_locks::ObjectLocks;
use crate::params::ListOptions;
use crate::patch::{Patch, PatchType, MAX_JSON_PATCH_OPERATIONS};
use crate::registry::request::{
    decode, decode_body, delete_options, dry_run, field_manager, field_validation, json_response,
    raw_json_response, selector, wants_table, ObjectRef, Params, Write,
};
use crate::resources::{self, Resource, JOBS, NAMESPACES, PODS};
use crate::table::{self, Include};
use crate::{logs, managed, openapi, watch};

/// How often a patch is redone because another client changed the object between its read
/// and its write; each time, some other write succeeded, so this only bounds a storm.
const PATCH_ATTEMPTS: usize = 64;

/// How long a redone patch waits for the cache to show the change it collided with.
const STALE_READ_WAIT: Duration = Duration::from_secs(5);

/// Request bodies above this are refused (the API server's limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub struct AppState {
    pub cache: Arc<Cache>,
    pub engine: EngineHandle,
    pub token: String,
    pub log_dir: PathBuf,
    /// `host:port` as discovery reports it.
    pub address: String,
    /// Patches and updates of one object, one at a time.
    pub writes: ObjectLocks,
}

pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(state)
}

/// Where a request goes.
enum Target {
    Version,
    Discovery {
        group: Option<&'static str>,
    },
    OpenApiRoot,
    OpenApi {
        group: &'static str,
    },
    Collection {
        resource: &'static Resource,
        namespace: Option<String>,
    },
    Object {
        resource: &'static Resource,
        namespace: String,
        name: String,
        sub: Option<String>,
    },
}

fn route(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["version"] => return Some(Target::Version),
        ["api"] | ["apis"] => return Some(Target::Discovery { group: None }),
        ["api", "v1"] => return Some(Target::Discovery { group: Some("") }),
        ["apis", "batch", "v1"] => {
            return Some(Target::Discovery {
                group: Some("batch"),
            })
        }
        ["openapi", "v3"] => return Some(Target::OpenApiRoot),
        ["openapi", "v3", "api", "v1"] => return Some(Target::OpenApi { group: "" }),
        ["openapi", "v3", "apis", "batch", "v1"] => {
            return Some(Target::OpenApi { group: "batch" })
        }
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", "batch", "v1", rest @ ..] => ("batch", rest),
        _ => return None,
    };
    let object = |resource: &'static Resource, namespace: &str, name: &str, sub: Option<&str>| {
        Some(Target::Object {
            resource,
            namespace: namespace.to_string(),
            name: name.to_string(),
            sub: sub.map(str::to_string),
        })
    };
    match rest {
        [plural] => Some(Target::Collection {
            resource: Resource::by_path(group, plural)?,
            namespace: None,
        }),
        ["namespaces", name] if group.is_empty() => object(&NAMESPACES, "", name, None),
        ["namespaces", name, "status"] if group.is_empty() => {
            object(&NAMESPACES, "", name, Some("status"))
        }
        ["namespaces", namespace, plural] => {
            let resource = Resource::by_path(group, plural).filter(|r| r.namespaced)?;
            Some(Target::Collection {
                resource,
                namespace: Some(namespace.to_string()),
            })
        }
        ["namespaces", namespace, plural, name] => {
            let resource = Resource::by_path(group, plural).filter(|r| r.namespaced)?;
            object(resource, namespace, name, None)
        }
        ["namespaces", namespace, plural, name, sub] => {
            let resource = Resource::by_path(group, plural).filter(|r| r.namespaced)?;
            if !resource.subresources.iter().any(|(s, _)| s == sub) {
                return None;
            }
            object(resource, namespace, name, Some(sub))
        }
        _ => None,
    }
}

async fn dispatch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    if matches!(path.as_str(), "/readyz" | "/livez" | "/healthz") {
        return "ok".into_response();
    }
    if !authorized(&state.token, request.headers()) {
        return ApiError::unauthorized().into_response();
    }
    match handle(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Bearer token, compared in constant time.
fn authorized(token: &str, headers: &HeaderMap) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let params: Params = Query::try_from_uri(&parts.uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let target = route(parts.uri.path()).ok_or_else(ApiError::no_route)?;
    let method = parts.method.clone();
    let read_body = || async {
        axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
            ApiError::too_large(format!("Request entity too large: limit is {MAX_BODY}"))
        })
    };
    match (target, method) {
        (Target::Version, Method::GET) => Ok(json_response(StatusCode::OK, &resources::version())),
        (Target::Discovery { group: None }, Method::GET) => {
            let core = parts.uri.path().trim_matches('/') == "api";
            if accept.contains("as=APIGroupDiscoveryList") {
                let body = resources::aggregated(if core { "" } else { "batch" });
                Ok((
                    [(header::CONTENT_TYPE, resources::AGGREGATED_CONTENT_TYPE)],
                    body.to_string(),
                )
                    .into_response())
            } else if core {
                Ok(json_response(
                    StatusCode::OK,
                    &resources::api_versions(&state.address),
                ))
            } else {
                Ok(json_response(StatusCode::OK, &resources::api_group_list()))
            }
        }
        (Target::Discovery { group: Some(group) }, Method::GET) => Ok(json_response(
            StatusCode::OK,
            &resources::api_resource_list(group),
        )),
        (Target::OpenApiRoot, Method::GET) => Ok(json_response(StatusCode::OK, &openapi::root())),
        (Target::OpenApi { group }, Method::GET) => {
            Ok(json_response(StatusCode::OK, openapi::group_version(group)))
        }
        (
            Target::Collection {
                resource,
                namespace,
            },
            method,
        ) => {
            let namespace = namespace.as_deref();
            match method {
                Method::GET => {
                    let options = ListOptions::parse(&params)?;
                    if options.watch {
                        watch::start(state, resource, namespace, &params, &options, &accept)
                    } else {
                        list(state, resource, namespace, &params, &options, &accept)
                    }
                }
                Method::POST => {
                    let body = read_body().await?;
                    let write = Write::Update(field_manager(&params, &parts.headers));
                    create(
                        state,
                        resource,
                        namespace,
                        &params,
                        &parts.headers,
                        &body,
                        write,
                    )
                    .await
                }
                Method::DELETE => {
                    let body = read_body().await?;
                    delete_collection(state, resource, namespace, &params, &body).await
                }
                _ => Err(ApiError::method_not_allowed(format!(
                    "{} is not supported on {}",
                    parts.method,
                    resource.qualified()
                ))),
            }
        }
        (
            Target::Object {
                resource,
                namespace,
                name,
                sub,
            },
            method,
        ) => {
            let object = ObjectRef {
                resource,
                namespace,
                name,
            };
            match (sub.as_deref(), method) {
                (Some("log"), Method::GET) => logs::serve(state, &object, &params).await,
                (Some("eviction"), Method::POST) => {
                    // Read, though unused: answering before the body is read makes the
                    // connection close under a client still writing it.
                    read_body().await?;
                    evict(state, &object).await
                }
                (None | Some("status"), Method::GET) => get(state, &object, &params, &accept),
                (None, Method::PUT) => {
                    let body = read_body().await?;
                    replace(state, &object, &params, &parts.headers, &body).await
                }
                (None, Method::PATCH) => {
                    let body = read_body().await?;
                    patch_object(state, &object, &params, &parts.headers, &body).await
                }
                (None, Method::DELETE) => {
                    let body = read_body().await?;
                    delete(state, &object, &params, &body).await
                }
                (Some("status"), _) => Err(ApiError::method_not_allowed(
                    "status is written by joblet's controllers only",
                )),
                _ => Err(ApiError::method_not_allowed(format!(
                    "{} is not supported on this resource",
                    parts.method
                ))),
            }
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{} is not supported on this path",
            parts.method
        ))),
    }
}

fn get(
    state: &AppState,
    object: &ObjectRef,
    params: &Params,
    accept: &str,
) -> Result<Response, ApiError> {
    let entry = object.entry(&state.cache)?;
    if wants_table(accept) {
        let include = Include::parse(params.get("includeObject").map(String::as_str))?;
        let row = table::row(&entry, include, SystemClock.now_timestamp());
        let body = table::table(
            table::columns(object.resource),
            &[row],
            entry.resource_version,
            None,
        );
        return Ok(raw_json_response(StatusCode::OK, body, &[]));
    }
    Ok(raw_json_response(StatusCode::OK, entry.body.clone(), &[]))
}

/// A `continue` token: the key the next page starts after, and the resourceVersion of the
/// list's first page, which later pages show the objects at (`-1`: as they are now).
#[derive(Serialize, Deserialize)]
struct Continue {
    rv: i64,
    start: Key,
}

impl Continue {
    fn encode(&self) -> String {
        use base64::Engine as _;
        let raw = serde_json::to_string(self).expect("a token serializes");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    fn decode(token: &str) -> Result<Continue, ApiError> {
        use base64::Engine as _;
        let invalid = || ApiError::bad_request("continue key is not valid");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| invalid())?;
        serde_json::from_slice(&raw).map_err(|_| invalid())
    }
}

fn list(
    state: &AppState,
    resource: &'static Resource,
    namespace: Option<&str>,
    params: &Params,
    options: &ListOptions,
    accept: &str,
) -> Result<Response, ApiError> {
    let selector = selector(resource, params)?;
    let token = params
        .get("continue")
        .filter(|t| !t.is_empty())
        .map(|t| Continue::decode(t))
        .transpose()?;
    if token.is_some()
        && params
            .get("resourceVersion")
            .is_some_and(|rv| !rv.is_empty() && rv != "0")
    {
        return Err(ApiError::bad_request(
            "specifying resource version is not allowed when using continue",
        ));
    }
    let limit = options.limit;
    let after = token.as_ref().map(|t| &t.start);
    let at = token.as_ref().map(|t| t.rv).filter(|rv| *rv >= 0);
    let page = state
        .cache
        .page(resource.kind, namespace, after, &selector, limit, at)
        .map_err(|_| {
            let rest = Continue {
                rv: -1,
                start: after.cloned().unwrap_or_default(),
            };
            ApiError::gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
            )
            .with_continue(rest.encode())
        })?;
    let (items, rv) = (page.items, page.resource_version);
    let next = page
        .more
        .then(|| {
            items.last().map(|e| {
                Continue {
                    rv: token.as_ref().map_or(rv, |t| t.rv),
                    start: (e.namespace.clone(), e.name.clone()),
                }
                .encode()
            })
        })
        .flatten();
    if wants_table(accept) {
        let include = Include::parse(params.get("includeObject").map(String::as_str))?;
        let now = SystemClock.now_timestamp();
        let rows: Vec<Arc<str>> = items.iter().map(|e| table::row(e, include, now)).collect();
        let body = table::table(table::columns(resource), &rows, rv, next);
        return Ok(raw_json_response(StatusCode::OK, body, &[]));
    }
    Ok(raw_json_response(
        StatusCode::OK,
        list_body(resource, &table::list_metadata(rv, next), &items),
        &[],
    ))
}

/// A `<Kind>List` with the items spliced in as stored: no parsing on the way out.
fn list_body(resource: &Resource, metadata: &Value, items: &[Arc<Entry>]) -> String {
    let mut body =
        String::with_capacity(items.iter().map(|e| e.body.len() + 1).sum::<usize>() + 128);
    body.push_str(&format!(
        "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{metadata},\"items\":[",
        resource.kind,
        resource.api_version(),
    ));
    for (i, entry) in items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&entry.body);
    }
    body.push_str("]}");
    body
}

fn to_value(job: &Job) -> Value {
    serde_json::to_value(job).expect("API objects serialize")
}

async fn create(
    state: &AppState,
    resource: &'static Resource,
    namespace: Option<&str>,
    params: &Params,
    headers: &HeaderMap,
    body: &Bytes,
    write: Write,
) -> Result<Response, ApiError> {
    let value = decode_body(headers, body)?;
    match resource.kind {
        "Job" => {
            let (mut job, mut warnings) = decode::<Job>(value, params)?;
            let namespace = namespace.unwrap_or("default");
            if job
                .metadata
                .namespace
                .as_deref()
                .is_some_and(|ns| ns != namespace)
            {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            job.metadata.namespace = Some(namespace.to_string());
            generate_name(&mut job.metadata);
            let now = SystemClock.now_timestamp();
            // The creator owns what it set and the defaults, not the generated selector;
            // managed fields sent along are kept beside it, as upstream keeps them.
            let sent = job.metadata.managed_fields.take().unwrap_or_default();
            job.metadata.managed_fields = Some(match write {
                Write::Update(manager) => {
                    let mut defaulted = job.clone();
                    joblet_api::defaults::apply_defaults(&mut defaulted);
                    let created = to_value(&defaulted);
                    managed::after_update(&Value::Null, &created, &sent, &manager, now)
                }
                Write::Apply { manager, .. } => {
                    let config = to_value(&job);
                    managed::apply(
                        &Value::Null,
                        &config,
                        config.clone(),
                        &sent,
                        &manager,
                        true,
                        now,
                    )
                    .map(|(_, entries)| entries)
                    .expect("a forced apply has no conflicts")
                }
            });
            let valid = admit(job).map_err(|invalid| ApiError::invalid(&JOBS, &invalid))?;
            warnings.extend(joblet_api::validation::host_runtime_warnings(
                valid.object(),
            ));
            let name = valid.name().to_string();
            let created = if dry_run(params) {
                valid.object().clone()
            } else {
                state
                    .engine
                    .create_job(valid)
                    .await
                    .map_err(|e| ApiError::from_command(&JOBS, &name, e))?
            };
            Ok(raw_json_response(
                StatusCode::CREATED,
                serde_json::to_string(&created).expect("API objects serialize"),
                &warnings,
            ))
        }
        "Namespace" => {
            let (namespace, unknown) = decode_object::<Namespace>(value).map_err(|e| {
                ApiError::bad_request(format!(
                    "Namespace in version \"v1\" cannot be handled as a Namespace: {e}"
                ))
            })?;
            let warnings = field_validation(params, unknown)?;
            let name = namespace.metadata.name.clone().unwrap_or_default();
            if !joblet_api::validation::is_dns1123_label(&name) {
                let invalid = joblet_api::Invalid {
                    kind: "Namespace",
                    name: name.clone(),
                    errors: vec![if name.is_empty() {
                        joblet_api::FieldError::required(
                            "metadata.name",
                            "name or generateName is required",
                        )
                    } else {
                        joblet_api::FieldError::invalid_str(
                            "metadata.name",
                            &name,
                            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                        )
                    }],
                };
                return Err(ApiError::invalid(&NAMESPACES, &invalid));
            }
            let created = state
                .engine
                .create_namespace(&name)
                .await
                .map_err(|e| ApiError::from_command(&NAMESPACES, &name, e))?;
            Ok(raw_json_response(
                StatusCode::CREATED,
                serde_json::to_string(&created).expect("API objects serialize"),
                &warnings,
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "joblet creates {} itself: pods come from Jobs, events from its controllers",
            resource.plural
        ))),
    }
}

/// `metadata.generateName`: the prefix and five random characters, as the API server does.
fn generate_name(
    meta: &mut joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) {
    if meta.name.as_deref().is_some_and(|n| !n.is_empty()) {
        return;
    }
    if let Some(prefix) = meta.generate_name.as_deref() {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut bytes = [0u8; 5];
        // Without a random source the suffix is fixed; a clash is an AlreadyExists.
        let _ = joblet_driver::random_bytes(&mut bytes);
        let suffix: String = bytes
            .iter()
            .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
            .collect();
        meta.name = Some(format!("{prefix}{suffix}"));
    }
}

/// The managed fields of an updated Job: those after a change by a manager, or those an
/// apply worked out.
enum ManagedFields {
    ChangedBy(String),
    Applied(Vec<ManagedFieldsEntry>),
}

/// Writes `new` over the stored Job `old`, as an update of what `base` names.
async fn update_job(
    state: &AppState,
    old: &Job,
    mut new: Job,
    base: UpdateBase,
    params: &Params,
    managed_fields: ManagedFields,
) -> Result<Job, ApiError> {
    // Managed fields sent with an update replace the recorded ones, as upstream takes them
    // (kubectl rewrites them so when it moves an object from client-side apply to SSA).
    let sent = new.metadata.managed_fields.take().filter(|m| !m.is_empty());
    prepare_for_update(old, &mut new);
    let entries = sent
        .as_deref()
        .or(old.metadata.managed_fields.as_deref())
        .unwrap_or_default();
    new.metadata.managed_fields = Some(match managed_fields {
        ManagedFields::ChangedBy(manager) => managed::after_update(
            &to_value(old),
            &to_value(&new),
            entries,
            &manager,
            SystemClock.now_timestamp(),
        ),
        ManagedFields::Applied(entries) => entries,
    });
    let name = old.metadata.name.clone().unwrap_or_default();
    let valid =
        validate_job_update(old, &new).map_err(|invalid| ApiError::invalid(&JOBS, &invalid))?;
    if dry_run(params) {
        return Ok(valid.object().clone());
    }
    state
        .engine
        .update_job(valid, base)
        .await
        .map_err(|e| ApiError::from_command(&JOBS, &name, e))
}

fn stored_job(entry: &Entry) -> Result<Job, ApiError> {
    serde_json::from_str(&entry.body).map_err(|e| ApiError::internal(format!("stored job: {e}")))
}

fn only_jobs(object: &ObjectRef, verb: &str) -> Result<(), ApiError> {
    if object.resource.kind == "Job" {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(format!(
            "joblet does not {verb} {}: they are kept by its controllers",
            object.resource.plural
        )))
    }
}

async fn replace(
    state: &AppState,
    object: &ObjectRef,
    params: &Params,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    only_jobs(object, "replace")?;
    let _turn = state.writes.turn(&object.namespace, &object.name).await;
    let entry = object.entry(&state.cache)?;
    let old = stored_job(&entry)?;
    let (new, warnings) = decode::<Job>(decode_body(headers, body)?, params)?;
    if new.metadata.name.as_deref() != Some(object.name.as_str()) {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    let base = match new
        .metadata
        .resource_version
        .clone()
        .filter(|rv| !rv.is_empty())
    {
        Some(version) => UpdateBase::Exactly(version),
        None => UpdateBase::ReadAt(entry.resource_version),
    };
    let managed_fields = ManagedFields::ChangedBy(field_manager(params, headers));
    let updated = update_job(state, &old, new, base, params, managed_fields).await?;
    Ok(raw_json_response(
        StatusCode::OK,
        serde_json::to_string(&updated).expect("API objects serialize"),
        &warnings,
    ))
}

async fn patch_object(
    state: &AppState,
    object: &ObjectRef,
    params: &Params,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    only_jobs(object, "patch")?;
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
    let _turn = state.writes.turn(&object.namespace, &object.name).await;
    // A patch is re-applied to the fresh object when another client's change came between
    // (turns keep other patches and updates out, not every writer).
    for _ in 0..PATCH_ATTEMPTS {
        let Some(entry) = state.cache.get("Job", &object.namespace, &object.name) else {
            if let Write::Apply { .. } = write {
                let mut yaml_headers = headers.clone();
                yaml_headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/yaml"),
                );
                return create(
                    state,
                    &JOBS,
                    Some(&object.namespace),
                    params,
                    &yaml_headers,
                    body,
                    write,
                )
                .await;
            }
            return Err(ApiError::not_found(&JOBS, &object.name));
        };
        let old = stored_job(&entry)?;
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
        let entries = old.metadata.managed_fields.as_deref().unwrap_or_default();
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
        let (new, warnings) = decode::<Job>(value, params)?;
        let precondition = new
            .metadata
            .resource_version
            .clone()
            .filter(|rv| *rv != entry.resource_version.to_string());
        let base = match precondition {
            Some(version) => UpdateBase::Exactly(version),
            None => UpdateBase::ReadAt(entry.resource_version),
        };
        match update_job(state, &old, new, base, params, managed_fields).await {
            Ok(updated) => {
                return Ok(raw_json_response(
                    StatusCode::OK,
                    serde_json::to_string(&updated).expect("API objects serialize"),
                    &warnings,
                ))
            }
            // Another client changed the spec or metadata since the read: read its change
            // and patch that, as upstream's GuaranteedUpdate does.
            Err(ApiError {
                stale: Some(version),
                ..
            }) => state.cache.wait_for(version, STALE_READ_WAIT).await,
            Err(error) => return Err(error),
        }
    }
    Err(ApiError::conflict(&JOBS, &object.name))
}

async fn delete(
    state: &AppState,
    object: &ObjectRef,
    params: &Params,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let options = delete_options(params, body)?;
    let entry = object.entry(&state.cache)?;
    if dry_run(params) {
        return Ok(raw_json_response(StatusCode::OK, entry.body.clone(), &[]));
    }
    let resource = object.resource;
    let (ns, name) = (object.namespace.as_str(), object.name.as_str());
    match resource.kind {
        "Job" => {
            // The batch API orphans a Job's pods unless told otherwise; kubectl cascades.
            let propagation = match options.propagation.as_deref() {
                None | Some("Orphan") => Propagation::Orphan,
                Some("Background") | Some("Foreground") => Propagation::Background,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                    )))
                }
            };
            let job = state
                .engine
                .delete_job(ns, name, propagation)
                .await
                .map_err(|e| ApiError::from_command(resource, name, e))?;
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": "batch", "kind": "jobs", "uid": job.metadata.uid},
                }),
            ))
        }
        "Pod" => {
            let grace = options.grace.map(|g| Duration::from_secs(g.max(0) as u64));
            let pod = state
                .engine
                .delete_pod(ns, name, grace, false)
                .await
                .map_err(|e| ApiError::from_command(resource, name, e))?;
            Ok(raw_json_response(
                StatusCode::OK,
                serde_json::to_string(&pod).expect("API objects serialize"),
                &[],
            ))
        }
        "Namespace" => {
            let mut deleted = state
                .engine
                .delete_namespace(name)
                .await
                .map_err(|e| ApiError::from_command(resource, name, e))?;
            if let Some(status) = deleted.status.as_mut() {
                status.phase = Some("Terminating".to_string());
            }
            Ok(raw_json_response(
                StatusCode::OK,
                serde_json::to_string(&deleted).expect("API objects serialize"),
                &[],
            ))
        }
        _ => Err(ApiError::method_not_allowed(
            "events are kept by joblet's controllers",
        )),
    }
}

async fn delete_collection(
    state: &AppState,
    resource: &'static Resource,
    namespace: Option<&str>,
    params: &Params,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let selector = selector(resource, params)?;
    let (items, _) = state.cache.list(resource.kind, namespace, &selector);
    for entry in &items {
        let object = ObjectRef {
            resource,
            namespace: entry.namespace.clone(),
            name: entry.name.clone(),
        };
        match delete(state, &object, params, body).await {
            Ok(_) => {}
            Err(e) if e.reason == "NotFound" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(raw_json_response(
        StatusCode::OK,
        list_body(resource, &json!({}), &items),
        &[],
    ))
}

/// `POST pods/{name}/eviction`: the pod is deleted and marked disrupted.
async fn evict(state: &AppState, object: &ObjectRef) -> Result<Response, ApiError> {
    state
        .engine
        .delete_pod(&object.namespace, &object.name, None, true)
        .await
        .map_err(|e| ApiError::from_command(&PODS, &object.name, e))?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// A watch or log stream's body: chunks sent as they come.
pub fn streaming(content_type: &'static str, rx: tokio::sync::mpsc::Receiver<Bytes>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}
