//! An engine settles once its Jobs are finished, however fast their pods end: pods that
//! cannot even start (no process is ever made) end before the writer has finished starting
//! them, which once left the engine waiting forever.

use std::time::Duration;

use joblet_api::k8s_openapi::api::batch::v1::Job;
use joblet_core::BackoffConfig;
use joblet_driver::{Engine, EngineConfig, Settled};

fn job() -> Job {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "unstartable"},
        "spec": {
            "backoffLimit": 2,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main",
                    "image": "busybox",
                    "command": ["true"],
                    "workingDir": "/nonexistent/joblet/dir",
                }],
            }},
        },
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_pods_cannot_start_settles_every_time() {
    for attempt in 0..150 {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig {
            state_dir: dir.path().join("state"),
            backoff: BackoffConfig {
                base_ms: 1,
                max_ms: 1,
            },
            stream_logs: false,
            keep_running: false,
            event_ttl: None,
            supervisor: None,
            max_pods: 110,
            durability: joblet_driver::Durability::ProcessCrash,
            emulation: Default::default(),
        };
        let mut engine = Engine::open(config, Box::new(|_| {})).unwrap();
        engine
            .create_or_resume(
                joblet_driver::admit(job(), Default::default()).unwrap(),
                job(),
            )
            .unwrap();
        let (_keep, shutdown) = tokio::sync::mpsc::unbounded_channel();
        let settled = tokio::time::timeout(Duration::from_secs(10), engine.run(shutdown)).await;
        let settled = settled.unwrap_or_else(|_| panic!("attempt {attempt}: never settled"));
        assert_eq!(settled.unwrap(), Settled::Done);
        let status = engine.jobs()[0].status.clone().unwrap();
        assert_eq!(status.failed, Some(3), "attempt {attempt}");
    }
}
