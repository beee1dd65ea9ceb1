//! The HTTP API without sockets: requests straight into the router, a real engine behind.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use joblet_core::BackoffConfig;
use joblet_server::{open_engine, router, AdmissionConfig, AppState};
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "test-token";

struct App {
    router: axum::Router,
    _dir: tempfile::TempDir,
}

impl App {
    fn new() -> App {
        App::with_runtime("host")
    }

    /// A server whose `--runtime` is `runtime`.
    fn with_runtime(runtime: &'static str) -> App {
        let dir = tempfile::tempdir().unwrap();
        let backoff = BackoffConfig {
            base_ms: 100,
            max_ms: 1000,
        };
        let (mut engine, cache, handle) = open_engine(
            dir.path(),
            backoff,
            std::time::Duration::from_secs(3600),
            None,
            joblet_driver::Durability::ProcessCrash,
            110,
            Default::default(),
        )
        .unwrap();
        let metrics = engine.metrics();
        let (_stop, stop_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let _keep_open = _stop;
            engine.run(stop_rx).await
        });
        let state = Arc::new(AppState {
            cache,
            engine: handle,
            token: TOKEN.to_string(),
            log_dir: dir.path().join("logs"),
            address: "127.0.0.1:0".to_string(),
            writes: Default::default(),
            admission: AdmissionConfig {
                default_runtime_class: runtime,
                emulation: Default::default(),
            },
            metrics,
            sessions: Default::default(),
        });
        App {
            router: router(state),
            _dir: dir,
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, String, Vec<(String, String)>) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned(), headers)
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        accept: &str,
        body: Option<(&str, String)>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::ACCEPT, accept);
        let body = match body {
            Some((content_type, text)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                Body::from(text)
            }
            None => Body::empty(),
        };
        let (status, text, _) = self.send(request.body(body).unwrap()).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

impl App {
    /// A JSON body sent with `method` (POST, or a merge patch for PATCH).
    async fn send_json(&self, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
        let content_type = match method {
            "PATCH" => "application/merge-patch+json",
            _ => "application/json",
        };
        self.call(
            method,
            uri,
            "application/json",
            Some((content_type, body.to_string())),
        )
        .await
    }
}

fn job(name: &str, script: &str) -> String {
    json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"completions": 2, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]}}}
    })
    .to_string()
}

fn manager_names(object: &Value) -> Vec<&str> {
    object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect()
}

fn resource_version(object: &Value) -> i64 {
    let text = object["metadata"]["resourceVersion"].as_str().unwrap();
    text.parse().unwrap()
}

fn item_names(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect()
}

const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

#[tokio::test(flavor = "multi_thread")]
async fn every_request_needs_the_token_but_health_checks() {
    let app = App::new();
    let anonymous = Request::get(JOBS).body(Body::empty()).unwrap();
    let (status, body, _) = app.send(anonymous).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (body["kind"].as_str(), body["reason"].as_str()),
        (Some("Status"), Some("Unauthorized"))
    );
    let wrong = Request::get(JOBS)
        .header(header::AUTHORIZATION, "Bearer nope")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(wrong).await.0, StatusCode::UNAUTHORIZED);
    let ready = Request::get("/readyz").body(Body::empty()).unwrap();
    assert_eq!(app.send(ready).await.1, "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregated_discovery_is_served_with_its_content_type() {
    let app = App::new();
    let request = Request::get("/apis")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(
            header::ACCEPT,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .body(Body::empty())
        .unwrap();
    let (status, body, headers) = app.send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.contains(&(
        "content-type".to_string(),
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList".to_string()
    )));
    let body: Value = serde_json::from_str(&body).unwrap();
    let resources = &body["items"][0]["versions"][0]["resources"];
    let names: Vec<&str> = (resources.as_array().unwrap().iter())
        .map(|r| r["resource"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cronjobs", "jobs"]);
    for batch in resources.as_array().unwrap() {
        assert_eq!(batch["categories"], json!(["all"]));
    }
    assert_eq!(resources[0]["shortNames"], json!(["cj"]));
    let (_, legacy) = app.call("GET", "/api", "application/json", None).await;
    assert_eq!(legacy["kind"], "APIVersions");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_servers_runtime_is_written_into_templates_that_name_none_on_create() {
    let app = App::with_runtime("podman");
    let class = |job: &Value| job["spec"]["template"]["spec"]["runtimeClassName"].clone();
    let (status, dry) = app
        .call(
            "POST",
            &format!("{JOBS}?dryRun=All"),
            "application/json",
            Some(("application/json", job("dry", "true"))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dry}");
    assert_eq!(class(&dry), "podman");
    // What the server set is no manager's.
    assert!(!dry["metadata"]["managedFields"]
        .to_string()
        .contains("runtimeClassName"));

    let mut on_host: Value = serde_json::from_str(&job("on-host", "true")).unwrap();
    on_host["spec"]["suspend"] = json!(true);
    on_host["spec"]["template"]["spec"]["runtimeClassName"] = json!("host");
    let (status, created) = app.send_json("POST", JOBS, on_host).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(class(&created), "host");

    let mut suspended: Value = serde_json::from_str(&job("later", "true")).unwrap();
    suspended["spec"]["suspend"] = json!(true);
    let (status, created) = app.send_json("POST", JOBS, suspended).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(class(&created), "podman");
    // An update keeps it: the template is the one created.
    let patch = json!({"spec": {"parallelism": 2}});
    let (status, patched) = app
        .send_json("PATCH", &format!("{JOBS}/later"), patch)
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(class(&patched), "podman");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_created_job_is_read_listed_paged_and_watched_to_its_end() {
    let app = App::new();
    let (status, created) = app
        .call(
            "POST",
            JOBS,
            "application/json",
            Some(("application/json", job("a", "true"))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["spec"]["backoffLimit"], 6);
    let created_rv = resource_version(&created);
    let (status, _) = app
        .call(
            "POST",
            JOBS,
            "application/json",
            Some(("application/json", job("b", "true"))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = app
        .call(
            "POST",
            JOBS,
            "application/json",
            Some(("application/json", job("a", "true"))),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(again["message"], "jobs.batch \"a\" already exists");

    // A watch from the creation sees every change of `a` up to Complete, in order.
    let watch = Request::get(format!(
        "{JOBS}?watch=true&resourceVersion={created_rv}&fieldSelector=metadata.name%3Da"
    ))
    .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
    .body(Body::empty())
    .unwrap();
    let response = app.router.clone().oneshot(watch).await.unwrap();
    let mut body = response.into_body().into_data_stream();
    let mut text = String::new();
    let mut last_rv = created_rv;
    use futures_util::StreamExt;
    while !text.contains("\"type\":\"Complete\"") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), body.next())
            .await
            .expect("the job completes")
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    for line in text.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["object"]["metadata"]["name"], "a", "{line}");
        let rv = resource_version(&event["object"]);
        assert!(rv > last_rv, "in order: {text}");
        last_rv = rv;
    }

    let (status, table) = app.call("GET", &format!("{JOBS}/a"), TABLE, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(table["kind"], "Table");
    let cells = &table["rows"][0]["cells"];
    assert_eq!(
        (cells[0].as_str(), cells[1].as_str(), cells[2].as_str()),
        (Some("a"), Some("Complete"), Some("2/2"))
    );
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    let (_, page) = app
        .call("GET", &format!("{JOBS}?limit=1"), "application/json", None)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let next = page["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, rest) = app
        .call(
            "GET",
            &format!("{JOBS}?limit=1&continue={next}"),
            "application/json",
            None,
        )
        .await;
    assert_eq!(rest["items"][0]["metadata"]["name"], "b");
    assert!(rest["metadata"]["continue"].is_null());

    let (status, pods) = app
        .call(
            "GET",
            "/api/v1/namespaces/default/pods?labelSelector=job-name%3Da",
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pods["kind"], "PodList");
    let (status, bad) = app
        .call(
            "GET",
            "/api/v1/pods?fieldSelector=spec.bogus%3D1",
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .ends_with("field label not supported: spec.bogus"),
        "{bad}"
    );

    let (status, deleted) = app
        .call(
            "DELETE",
            &format!("{JOBS}/a"),
            "application/json",
            Some((
                "application/json",
                r#"{"propagationPolicy":"Background"}"#.into(),
            )),
        )
        .await;
    assert_eq!(
        (status, deleted["status"].as_str()),
        (StatusCode::OK, Some("Success"))
    );
    let (status, _) = app
        .call("GET", &format!("{JOBS}/a"), "application/json", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pages_of_one_list_show_one_moment() {
    let app = App::new();
    let create = |name: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app
                .call(
                    "POST",
                    JOBS,
                    "application/json",
                    Some(("application/json", job(name, "true"))),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    };
    for name in ["a", "b", "c"] {
        create(name).await;
    }
    let (_, first) = app
        .call("GET", &format!("{JOBS}?limit=1"), "application/json", None)
        .await;
    assert_eq!(first["items"][0]["metadata"]["name"], "a");
    let first_rv = first["metadata"]["resourceVersion"].clone();
    let next = first["metadata"]["continue"].as_str().unwrap().to_string();

    // Between the pages: b is deleted, bb created, and the Jobs' pods change them.
    let (status, _) = app
        .call("DELETE", &format!("{JOBS}/b"), "application/json", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    create("bb").await;

    let (status, rest) = app
        .call(
            "GET",
            &format!("{JOBS}?continue={next}"),
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    assert_eq!(item_names(&rest), ["b", "c"]);
    assert_eq!(rest["metadata"]["resourceVersion"], first_rv);
    assert!(rest["metadata"]["continue"].is_null());

    let (_, now) = app.call("GET", JOBS, "application/json", None).await;
    assert_eq!(item_names(&now), ["a", "bb", "c"]);

    let (status, refused) = app
        .call(
            "GET",
            &format!("{JOBS}?continue={next}&resourceVersion=5"),
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused["message"],
        "specifying resource version is not allowed when using continue"
    );
    let (status, _) = app
        .call(
            "GET",
            &format!("{JOBS}?continue=bogus"),
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_options_are_checked_as_the_api_server_checks_them() {
    let app = App::new();
    let (status, _) = app
        .call(
            "POST",
            JOBS,
            "application/json",
            Some(("application/json", job("p", "true"))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let patch = |query: &'static str, content_type: &'static str, body: &'static str| {
        let app = &app;
        async move {
            let uri = format!("{JOBS}/p{query}");
            let body = Some((content_type, body.to_string()));
            app.call("PATCH", &uri, "application/json", body).await
        }
    };
    const APPLY: &str = "application/apply-patch+yaml";
    let config = r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"p"},"spec":{"parallelism":2}}"#;
    let (status, refused) = patch("", APPLY, config).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let merge = r#"{"spec":{"parallelism":2}}"#;
    let (status, refused) = patch("?force=true", "application/merge-patch+json", merge).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
    );
    // The creator owns the defaulted parallelism: taking it needs force.
    let (status, conflict) = patch("?fieldManager=tester", APPLY, config).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        conflict["details"]["causes"][0]["field"],
        ".spec.parallelism"
    );
    let (status, applied) = patch("?fieldManager=tester&force=true", APPLY, config).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["spec"]["parallelism"], 2);
    let managers = manager_names(&applied);
    // The creator named no manager and sent no User-Agent: upstream records it as "".
    assert_eq!(managers, ["tester", ""]);

    // Managed fields sent with a create are kept beside the creator's.
    let mut sent: Value = serde_json::from_str(&job("q", "true")).unwrap();
    sent["metadata"]["managedFields"] = json!([{"manager": "elsewhere", "operation": "Update",
        "apiVersion": "batch/v1", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:annotations": {"f:note": {}}}}}]);
    let (status, created) = app
        .call(
            "POST",
            &format!("{JOBS}?fieldManager=creator"),
            "application/json",
            Some(("application/json", sent.to_string())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let managers = manager_names(&created);
    assert_eq!(managers, ["elsewhere", "creator"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_are_checked_before_anything_is_stored() {
    let app = App::new();
    let (status, invalid) = app
        .call(
            "POST",
            JOBS,
            "application/json",
            Some(("application/json", job("Bad_Name", "true"))),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid["reason"], "Invalid");
    assert_eq!(invalid["details"]["causes"][0]["field"], "metadata.name");
    let (status, typed) = app.call("POST", JOBS, "application/json", Some(("application/json", r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"x"},"spec":{"completions":"two"}}"#.into()))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        typed["message"],
        "Job in version \"v1\" cannot be handled as a Job: json: cannot unmarshal string into Go struct field JobSpec.spec.completions of type int32"
    );
    let (status, protobuf) = app
        .call(
            "POST",
            JOBS,
            "application/json",
            Some(("application/vnd.kubernetes.protobuf", "k8s\0".into())),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(protobuf["message"].as_str().unwrap().contains("protobuf"));
    let (status, garbage) = app
        .call(
            "POST",
            JOBS,
            "application/json",
            Some(("application/json", "{not json".into())),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{garbage}");
    let big = "x".repeat(joblet_server::MAX_BODY + 1);
    let (status, _) = app
        .call(
            "POST",
            JOBS,
            "application/json",
            Some(("application/json", big)),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (_, list) = app.call("GET", JOBS, "application/json", None).await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_without_a_resource_version_never_conflict_under_concurrent_writers() {
    let app = Arc::new(App::new());
    // Status churns all the time: 200 short pods, 10 at a time.
    let churn = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "busy"},
        "spec": {"completions": 200, "parallelism": 10, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}}
    });
    let (status, _) = app
        .call(
            "POST",
            JOBS,
            "application/json",
            Some(("application/json", churn.to_string())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..50 {
        let app = app.clone();
        clients.spawn(async move {
            let mut statuses = Vec::new();
            for n in 0..15 {
                let (kind, body) = if n % 2 == 0 {
                    (
                        "application/merge-patch+json",
                        json!({"metadata": {"labels": {format!("c{client}"): format!("v{n}")}}})
                            .to_string(),
                    )
                } else {
                    (
                        "application/strategic-merge-patch+json",
                        json!({"metadata": {"annotations": {"last": format!("{client}-{n}")}}})
                            .to_string(),
                    )
                };
                let (status, body) = app
                    .call(
                        "PATCH",
                        &format!("{JOBS}/busy"),
                        "application/json",
                        Some((kind, body)),
                    )
                    .await;
                statuses.push((status, body["message"].clone()));
            }
            statuses
        });
    }
    let mut answered = 0;
    while let Some(statuses) = clients.join_next().await {
        for (status, message) in statuses.unwrap() {
            assert_eq!(status, StatusCode::OK, "{message}");
            answered += 1;
        }
    }
    assert_eq!(answered, 750);
    let (_, job) = app
        .call("GET", &format!("{JOBS}/busy"), "application/json", None)
        .await;
    for client in 0..50 {
        assert_eq!(
            job["metadata"]["labels"][format!("c{client}")],
            "v14",
            "{job}"
        );
    }
}

#[tokio::test]
async fn patches_that_would_blow_up_the_object_are_refused() {
    let app = App::new();
    let (status, _) = app
        .call(
            "POST",
            JOBS,
            "application/json",
            Some(("application/json", job("bomb", "true"))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Each copy doubles the annotations: 40 would need terabytes (CVE-2019-1002100).
    let mut operations = vec![
        json!({"op": "add", "path": "/metadata/annotations", "value": {"a": "x".repeat(1000)}}),
    ];
    for n in 0..40 {
        operations.push(json!({"op": "copy", "from": "/metadata/annotations", "path": format!("/metadata/annotations/c{n}")}));
    }
    let (status, refused) = app
        .call(
            "PATCH",
            &format!("{JOBS}/bomb"),
            "application/json",
            Some((
                "application/json-patch+json",
                Value::Array(operations).to_string(),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message
            .starts_with("Unable to complete the copy, the accumulated size increase of copy is")
            && message.ends_with("exceeding the limit 3145728"),
        "{message}"
    );
    let many: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/kind", "value": "Job"}))
        .collect();
    let (status, refused) = app
        .call(
            "PATCH",
            &format!("{JOBS}/bomb"),
            "application/json",
            Some((
                "application/json-patch+json",
                Value::Array(many).to_string(),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        refused["message"],
        "The allowed maximum operations in a JSON patch is 10000, got 10001"
    );
    // A YAML alias bomb in a server-side apply (CVE-2019-11253).
    let mut bomb = String::from("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: bomb\n  annotations:\n    l0: &l0 [a, a, a, a, a, a, a, a, a]\n");
    for level in 1..10 {
        let refs = vec![format!("*l{}", level - 1); 9].join(", ");
        bomb.push_str(&format!("    l{level}: &l{level} [{refs}]\n"));
    }
    let (status, refused) = app
        .call(
            "PATCH",
            &format!("{JOBS}/bomb?fieldManager=test"),
            "application/json",
            Some(("application/apply-patch+yaml", bomb)),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("budget breached"),
        "{refused}"
    );
    let (_, job) = app
        .call("GET", &format!("{JOBS}/bomb"), "application/json", None)
        .await;
    assert_eq!(
        job["metadata"].get("annotations"),
        None,
        "nothing was stored"
    );
}

#[tokio::test]
async fn a_list_at_a_resource_version_not_reached_waits_then_answers_504() {
    let app = App::new();
    let (_, list) = app.call("GET", JOBS, "application/json", None).await;
    let current = resource_version(&list);
    let (status, _) = app
        .call(
            "GET",
            &format!("{JOBS}?resourceVersion={current}"),
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let asked = current + 1000;
    let (status, body) = app
        .call(
            "GET",
            &format!("{JOBS}?resourceVersion={asked}&resourceVersionMatch=NotOlderThan"),
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["reason"], "Timeout");
    assert_eq!(
        body["message"],
        format!("Timeout: Too large resource version: {asked}, current: {current}")
    );
    assert_eq!(body["details"]["retryAfterSeconds"], 1);
    assert_eq!(
        body["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );
}

#[tokio::test]
async fn malformed_list_and_watch_queries_are_refused_by_name() {
    let app = App::new();
    let pods = "/api/v1/namespaces/default/pods";
    let long_key = "k".repeat(300);
    let cases: Vec<(String, StatusCode, &str)> = vec![
        (
            format!("{pods}?labelSelector=a%3D%3Db%3D%3Dc"),
            StatusCode::BAD_REQUEST,
            "found '==', expected: ',' or 'end of string'",
        ),
        (
            format!("{pods}?labelSelector={long_key}%3Dx"),
            StatusCode::BAD_REQUEST,
            "name part must be no more than 63 characters",
        ),
        (
            format!("{pods}?fieldSelector=metadata.name%3Da%3Db"),
            StatusCode::BAD_REQUEST,
            "unescaped character in value: 61",
        ),
        (
            format!("{pods}?fieldSelector=metadata.name%3Da%5Cb"),
            StatusCode::BAD_REQUEST,
            "invalid escape sequence: \\b",
        ),
        (
            format!("{pods}?fieldSelector=spec.bogus%3Dx"),
            StatusCode::BAD_REQUEST,
            "field label not supported: spec.bogus",
        ),
        (
            format!("{pods}?limit=abc"),
            StatusCode::BAD_REQUEST,
            "limit: strconv.ParseInt: parsing \"abc\": invalid syntax",
        ),
        (
            format!("{pods}?watch=true&timeoutSeconds=abc"),
            StatusCode::BAD_REQUEST,
            "timeoutSeconds: strconv.ParseInt",
        ),
        (
            format!("{pods}?resourceVersionMatch=NotOlderThan"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            format!("{pods}?resourceVersion=abc"),
            StatusCode::BAD_REQUEST,
            "resourceVersion: Invalid value: \"abc\"",
        ),
        (
            format!("{JOBS}?continue=bogus"),
            StatusCode::BAD_REQUEST,
            "continue key is not valid",
        ),
    ];
    for (uri, code, message) in cases {
        let (status, body) = app.call("GET", &uri, "application/json", None).await;
        assert_eq!(status, code, "{uri}: {body}");
        assert_eq!(body["kind"], "Status", "{uri}");
        assert!(
            body["message"].as_str().unwrap().contains(message),
            "{uri}: {body}"
        );
    }
    let (status, _) = app
        .call(
            "GET",
            &format!("{pods}?labelSelector=job-name%20in%20(a,%20b),!x&limit=10"),
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn include_object_is_checked_as_the_table_options_are_upstream() {
    let app = App::new();
    for include in [
        "",
        "&includeObject=None",
        "&includeObject=Metadata",
        "&includeObject=Object",
    ] {
        let uri = format!("{JOBS}?limit=1{include}");
        let (status, table) = app.call("GET", &uri, TABLE, None).await;
        assert_eq!(
            (status, table["kind"].as_str()),
            (StatusCode::OK, Some("Table")),
            "{uri}"
        );
    }
    // Upstream reads the object first: a missing one is 404 whatever the Table options.
    let missing = format!("{JOBS}/missing?includeObject=Bogus");
    assert_eq!(
        app.call("GET", &missing, TABLE, None).await.0,
        StatusCode::NOT_FOUND
    );
    for uri in [
        format!("{JOBS}?includeObject=Bogus"),
        format!("{JOBS}?watch=true&includeObject=Bogus"),
    ] {
        let (status, body) = app.call("GET", &uri, TABLE, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(
            body["message"],
            "Unable to convert to Table as requested: includeObject: Invalid value: \"Bogus\": must be 'Metadata', 'Object', 'None', or empty",
            "{uri}"
        );
    }
    // Not a Table: the parameter means nothing and is not looked at.
    let (status, _) = app
        .call(
            "GET",
            &format!("{JOBS}?includeObject=Bogus"),
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

const CONFIG_MAPS: &str = "/api/v1/namespaces/default/configmaps";
const SECRETS: &str = "/api/v1/namespaces/default/secrets";

#[tokio::test(flavor = "multi_thread")]
async fn config_maps_are_stored_patched_listed_as_tables_and_deleted() {
    let app = App::new();
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings"}, "data": {"MODE": "fast", "LEVEL": "3"}});
    let (status, created) = app.send_json("POST", CONFIG_MAPS, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty()));
    assert_eq!(manager_names(&created), [""]);
    assert_eq!(
        created["metadata"]["managedFields"][0]["fieldsV1"]["f:data"],
        json!({".": {}, "f:LEVEL": {}, "f:MODE": {}})
    );
    let (status, again) = app.send_json("POST", CONFIG_MAPS, body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(again["message"], "configmaps \"settings\" already exists");

    let one = format!("{CONFIG_MAPS}/settings");
    let patch = json!({"data": {"LEVEL": "4"}});
    let (status, patched) = app.send_json("PATCH", &one, patch).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["data"], json!({"MODE": "fast", "LEVEL": "4"}));
    assert_eq!(patched["metadata"]["uid"], created["metadata"]["uid"]);

    let (status, table) = app.call("GET", CONFIG_MAPS, TABLE, None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Name", "Data", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "settings");
    assert_eq!(table["rows"][0]["cells"][1], 2);

    // Once immutable, the data stays as it is, in upstream's words.
    let patch = json!({"immutable": true});
    let (status, _) = app.send_json("PATCH", &one, patch).await;
    assert_eq!(status, StatusCode::OK);
    let patch = json!({"data": {"LEVEL": "5"}});
    let (status, refused) = app.send_json("PATCH", &one, patch).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused["message"],
        "ConfigMap \"settings\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );

    let bad = json!({"metadata": {"name": "bad"}, "data": {"no spaces": "x"}});
    let (status, invalid) = app.send_json("POST", CONFIG_MAPS, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid["message"].as_str().unwrap().starts_with(
        "ConfigMap \"bad\" is invalid: data[no spaces]: Invalid value: \"no spaces\": a valid config key"
    ), "{invalid}");

    let (status, deleted) = app.call("DELETE", &one, "application/json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["kind"], "Status");
    assert_eq!(deleted["details"]["kind"], "configmaps");
    let (status, _) = app.call("GET", &one, "application/json", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_fold_string_data_keep_their_type_and_never_show_values_in_tables() {
    let app = App::new();
    let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "data": {"user": "YWRtaW4="}, "stringData": {"password": "hunter2"}});
    let (status, created) = app.send_json("POST", SECRETS, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["type"], "Opaque");
    assert_eq!(
        created["data"],
        json!({"user": "YWRtaW4=", "password": "aHVudGVyMg=="})
    );
    assert!(created.get("stringData").is_none());

    let one = format!("{SECRETS}/creds");
    let patch = json!({"type": "kubernetes.io/basic-auth"});
    let (status, refused) = app.send_json("PATCH", &one, patch).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused["message"],
        "Secret \"creds\" is invalid: type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable"
    );

    let (status, table) = app
        .call(
            "GET",
            &format!("{SECRETS}?fieldSelector=type%3DOpaque"),
            TABLE,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        table["rows"][0]["cells"],
        json!(["creds", "Opaque", 2, table["rows"][0]["cells"][3]])
    );
    assert!(!table.to_string().contains("aHVudGVyMg"), "{table}");

    let bad = json!({"metadata": {"name": "bad"}, "data": {"k": "not base64!"}});
    let (status, refused) = app.send_json("POST", SECRETS, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        !refused["message"].as_str().unwrap().contains("not base64"),
        "{refused}"
    );
}

/// The kubelet's wait for a missing Secret: the pod stays Pending with its container
/// waiting `CreateContainerConfigError`, then starts once the Secret is created.
#[tokio::test(flavor = "multi_thread")]
async fn a_pod_waits_for_its_secret_and_runs_once_it_is_created() {
    let app = App::new();
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "needs-secret"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "busybox", "command": ["sh", "-c", "test \"$TOKEN\" = s3cret"],
            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}],
        }]}}}
    });
    let (status, _) = app.send_json("POST", JOBS, job).await;
    assert_eq!(status, StatusCode::CREATED);
    let pods = "/api/v1/namespaces/default/pods";
    let waiting = loop {
        let (_, list) = app.call("GET", pods, "application/json", None).await;
        let state = &list["items"][0]["status"]["containerStatuses"][0]["state"]["waiting"];
        if !state.is_null() {
            break state.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(waiting["reason"], "CreateContainerConfigError");
    assert_eq!(waiting["message"], "secret \"api\" not found");

    let secret = json!({"metadata": {"name": "api"}, "stringData": {"token": "s3cret"}});
    let (status, _) = app.send_json("POST", SECRETS, secret).await;
    assert_eq!(status, StatusCode::CREATED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, job) = app
            .call(
                "GET",
                &format!("{JOBS}/needs-secret"),
                "application/json",
                None,
            )
            .await;
        if job["status"]["succeeded"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never completed: {job}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, events) = app
        .call(
            "GET",
            "/api/v1/namespaces/default/events",
            "application/json",
            None,
        )
        .await;
    assert!(!events.to_string().contains("s3cret"), "{events}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_namespace_takes_its_config_maps_and_secrets_with_it() {
    let app = App::new();
    let namespace = json!({"metadata": {"name": "team"}});
    let (status, _) = app.send_json("POST", "/api/v1/namespaces", namespace).await;
    assert_eq!(status, StatusCode::CREATED);
    let config_maps = "/api/v1/namespaces/team/configmaps";
    let secrets = "/api/v1/namespaces/team/secrets";
    let object = json!({"metadata": {"name": "x"}, "data": {}});
    for collection in [config_maps, secrets] {
        let (status, created) = app.send_json("POST", collection, object.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    let (status, missing) = app
        .send_json(
            "POST",
            "/api/v1/namespaces/nowhere/configmaps",
            object.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["message"], "namespaces \"nowhere\" not found");
    let (status, _) = app
        .call(
            "DELETE",
            "/api/v1/namespaces/team",
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for collection in [config_maps, secrets] {
        let (_, list) = app.call("GET", collection, "application/json", None).await;
        assert_eq!(list["items"], json!([]), "{collection}");
    }
}
