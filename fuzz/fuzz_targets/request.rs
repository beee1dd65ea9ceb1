//! Any request to the API, as `joblet serve` routes it: the method, path and query, the
//! content type and the body (JSON, YAML, protobuf, every patch type), with a Job, pods
//! and events in the watch cache to read, list, page, select, patch and replace. No engine
//! is behind it (a write that passes every check is refused as from a stopped server), so
//! nothing the fuzzer writes can run.
//!
//! Input: `METHOD PATH?QUERY\nCONTENT-TYPE\nACCEPT\nBODY`.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use joblet_server::{router, AdmissionConfig, AppState, Cache};
use joblet_store::Record;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const JOB: &str = r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"fuzz","namespace":"default","uid":"00000000-0000-4000-8000-000000000000","resourceVersion":"3","creationTimestamp":"2026-01-01T00:00:00Z","labels":{"app":"fuzz"},"managedFields":[{"manager":"kubectl","operation":"Update","apiVersion":"batch/v1","time":"2026-01-01T00:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:parallelism":{}}}}]},"spec":{"parallelism":1,"completions":1,"backoffLimit":6,"completionMode":"NonIndexed","suspend":false,"manualSelector":false,"podReplacementPolicy":"TerminatingOrFailed","selector":{"matchLabels":{"batch.kubernetes.io/controller-uid":"00000000-0000-4000-8000-000000000000"}},"template":{"metadata":{"labels":{"batch.kubernetes.io/controller-uid":"00000000-0000-4000-8000-000000000000","batch.kubernetes.io/job-name":"fuzz","controller-uid":"00000000-0000-4000-8000-000000000000","job-name":"fuzz"}},"spec":{"restartPolicy":"Never","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","schedulerName":"default-scheduler","securityContext":{},"containers":[{"name":"main","image":"busybox","command":["true"],"imagePullPolicy":"Always","terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","resources":{}}]}}},"status":{"active":1,"startTime":"2026-01-01T00:00:00Z"}}"#;
const POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"fuzz-abcde","namespace":"default","uid":"p","resourceVersion":"4","labels":{"job-name":"fuzz","batch.kubernetes.io/job-name":"fuzz"},"ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":"fuzz","uid":"00000000-0000-4000-8000-000000000000","controller":true}]},"spec":{"nodeName":"here","containers":[{"name":"main","image":"busybox"}]},"status":{"phase":"Running","startTime":"2026-01-01T00:00:00Z"}}"#;
const NAMESPACE: &str = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default","resourceVersion":"1"},"status":{"phase":"Active"}}"#;

struct App {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let record = |kind: &str, name: &str, rv: i64, body: &str| Record {
            kind: kind.to_string(),
            namespace: if kind == "Namespace" {
                String::new()
            } else {
                "default".to_string()
            },
            name: name.to_string(),
            resource_version: rv,
            body: body.to_string(),
        };
        let records = vec![
            record("Namespace", "default", 1, NAMESPACE),
            record("Job", "fuzz", 3, JOB),
            record("Pod", "fuzz-abcde", 4, POD),
        ];
        let state = Arc::new(AppState {
            cache: Arc::new(Cache::new(records, 4)),
            engine: joblet_driver::EngineHandle::disconnected(),
            token: "t".to_string(),
            log_dir: std::env::temp_dir().join("joblet-fuzz-logs"),
            address: "127.0.0.1:0".to_string(),
            writes: Default::default(),
            admission: AdmissionConfig {
                default_runtime_class: "host",
                emulation: Default::default(),
            },
            metrics: Default::default(),
            sessions: Default::default(),
        });
        App {
            runtime,
            router: router(state),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let (Some(line), Some(content_type), Some(accept)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let body = parts.next().unwrap_or_default().to_vec();
    let Ok(line) = std::str::from_utf8(line) else {
        return;
    };
    let Some((method, uri)) = line.split_once(' ') else {
        return;
    };
    let Ok(request) = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", "Bearer t")
        .header("content-type", content_type)
        .header("accept", accept)
        .body(Body::from(body))
    else {
        return;
    };
    let app = app();
    app.runtime.block_on(async {
        let response = app.router.clone().oneshot(request).await.unwrap();
        // Watches and followed logs go on: what they send at once is enough.
        let body = axum::body::to_bytes(response.into_body(), 16 << 20);
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), body).await;
    });
});
