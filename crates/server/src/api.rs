//! The HTTP API: routing of Kubernetes REST paths to reads from the watch cache and writes
//! through the engine.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use joblet_api::decode_object;
use joblet_api::k8s_openapi::api::core::v1::Namespace;
use joblet_api::version::Emulation;
use joblet_driver::{EngineHandle, SystemClock};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::cache::{Cache, Entry, Key};
use crate::errors::ApiError;
use crate::object_locks::ObjectLocks;
use crate::params::ListOptions;
use crate::registry::request::{
    decode_body, delete_options, dry_run, field_manager, field_validation, json_response,
    raw_json_response, selector, wants_table, ObjectRef, Params, Write,
};
use crate::registry::{self, Call};
use crate::resources::{self, Resource, NAMESPACES, PODS};
use crate::table::{self, Include};
use crate::{logs, openapi, watch};

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
    pub admission: AdmissionConfig,
    /// The controller's and the process's metrics (`/metrics`).
    pub metrics: Arc<joblet_driver::Metrics>,
    /// The web view's sign-in codes and sessions.
    pub sessions: crate::ui::Sessions,
}

/// What the server's flags decide of the objects written, as the admission plugins and
/// feature gates configured on an API server do.
pub struct AdmissionConfig {
    /// Written into a Job's template that names no runtime class (`--runtime`).
    pub default_runtime_class: &'static str,
    /// The version whose feature gates drop and validate fields (`--emulated-version`).
    pub emulation: Emulation,
}

pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(state)
}

/// Where a request goes.
enum Target {
    Version,
    Metrics,
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
        ["metrics"] => return Some(Target::Metrics),
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
        // Cluster-scoped kinds: namespaces, nodes.
        [plural, name] => {
            let resource = Resource::by_path(group, plural).filter(|r| !r.namespaced)?;
            object(resource, "", name, None)
        }
        [plural, name, "status"] => {
            let resource = Resource::by_path(group, plural).filter(|r| !r.namespaced)?;
            object(resource, "", name, Some("status"))
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
    if crate::ui::is_ui_path(&path) {
        let (parts, body) = request.into_parts();
        let Ok(body) = axum::body::to_bytes(body, 64 * 1024).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "too large").into_response();
        };
        return crate::ui::serve(
            &state.sessions,
            &state.token,
            &parts.method,
            &path,
            parts.uri.query(),
            &parts.headers,
            &body,
        );
    }
    // The web view's session cookie stands for the token: its page uses the API itself.
    let headers = request.headers();
    if !authorized(&state.token, headers) && !state.sessions.signed_in(headers) {
        return ApiError::unauthorized().into_response();
    }
    if let Some((namespace, name)) = crate::ui::job_stream::path(&path) {
        return match *request.method() {
            Method::GET => crate::ui::job_stream::start(&state, namespace, name),
            _ => (StatusCode::METHOD_NOT_ALLOWED, "not supported").into_response(),
        };
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
    same_token(given.trim(), token)
}

/// Whether `given` is the token, compared in constant time.
pub fn same_token(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
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
    let call = Call {
        state,
        params: &params,
        headers: &parts.headers,
    };
    let method = parts.method.clone();
    let read_body = || async {
        axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
            ApiError::too_large(format!("Request entity too large: limit is {MAX_BODY}"))
        })
    };
    match (target, method) {
        (Target::Version, Method::GET) => Ok(json_response(
            StatusCode::OK,
            &resources::version(state.admission.emulation),
        )),
        (Target::Metrics, Method::GET) => Ok((
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            state.metrics.text(),
        )
            .into_response()),
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
                        list(state, resource, namespace, &params, &options, &accept).await
                    }
                }
                Method::POST => {
                    let body = read_body().await?;
                    match registry::lookup(resource.kind) {
                        Some(rest) => {
                            let write = Write::Update(field_manager(&params, &parts.headers));
                            rest.create(&call, namespace, &body, write).await
                        }
                        None if resource.kind == "Namespace" => {
                            create_namespace(state, &params, &parts.headers, &body).await
                        }
                        None => Err(ApiError::method_not_allowed(format!(
                            "joblet creates {} itself: pods come from Jobs, events from its controllers",
                            resource.plural
                        ))),
                    }
                }
                Method::DELETE => {
                    let body = read_body().await?;
                    delete_collection(&call, resource, namespace, &body).await
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
                    match registry::lookup(object.resource.kind) {
                        Some(rest) => rest.replace(&call, &object, &body).await,
                        None => Err(refuse(&object, "replace")),
                    }
                }
                (None, Method::PATCH) => {
                    let body = read_body().await?;
                    match registry::lookup(object.resource.kind) {
                        Some(rest) => rest.patch(&call, &object, &body).await,
                        None => Err(refuse(&object, "patch")),
                    }
                }
                (None, Method::DELETE) => {
                    let body = read_body().await?;
                    delete_one(&call, &object, &body).await
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

/// How long a list at a resourceVersion newer than the cache's waits for it, as upstream's
/// watch cache does (`blockTimeout`) before answering 504.
const FUTURE_VERSION_WAIT: Duration = Duration::from_secs(3);

async fn wait_for_version(state: &AppState, asked: i64) -> Result<(), ApiError> {
    state.cache.wait_for(asked, FUTURE_VERSION_WAIT).await;
    let current = state.cache.resource_version();
    if asked > current {
        return Err(ApiError::resource_version_too_large(asked, current));
    }
    Ok(())
}

async fn list(
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
    if let Some(asked) = options.resource_version {
        wait_for_version(state, asked).await?;
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

/// `POST namespaces`: the one kind created here that is not served through a strategy yet.
async fn create_namespace(
    state: &AppState,
    params: &Params,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let value = decode_body(headers, body)?;
    let (namespace, unknown) = decode_object::<Namespace>(value).map_err(|e| {
        ApiError::bad_request(format!(
            "Namespace in version \"v1\" cannot be handled as a Namespace: {e}"
        ))
    })?;
    let warnings = field_validation(params, unknown)?;
    let name = namespace.metadata.name.clone().unwrap_or_default();
    joblet_api::services::validate_namespace(&namespace)
        .map_err(|invalid| ApiError::invalid(&NAMESPACES, &invalid))?;
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

/// Writes of kinds that joblet's controllers keep.
fn refuse(object: &ObjectRef, verb: &str) -> ApiError {
    ApiError::method_not_allowed(format!(
        "joblet does not {verb} {}: they are kept by its controllers",
        object.resource.plural
    ))
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

/// A delete, by the kind's strategy or, for kinds not served through one, here.
async fn delete_one(
    call: &Call<'_>,
    object: &ObjectRef,
    body: &Bytes,
) -> Result<Response, ApiError> {
    match registry::lookup(object.resource.kind) {
        Some(rest) => rest.delete(call, object, body).await,
        None => delete(call.state, object, call.params, body).await,
    }
}

async fn delete_collection(
    call: &Call<'_>,
    resource: &'static Resource,
    namespace: Option<&str>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let selector = selector(resource, call.params)?;
    let (items, _) = call.state.cache.list(resource.kind, namespace, &selector);
    for entry in &items {
        let object = ObjectRef {
            resource,
            namespace: entry.namespace.clone(),
            name: entry.name.clone(),
        };
        match delete_one(call, &object, body).await {
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
