//! The crash points of the create-pod and finish-pod paths, as a deterministic simulation:
//! the store fails at its nth commit (before or after writing it), so the engine stops there
//! as a killed process would; a new engine started on the directory must end the Job as a
//! run without a crash does, every index having run exactly once. Pods run under a
//! supervisor in this process, which outlives the engines as `joblet supervise` does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use joblet_api::k8s_openapi::api::batch::v1::{Job, JobStatus};
use joblet_core::BackoffConfig;
use joblet_driver::{runtime_config, CrashPoint, Engine, EngineConfig, Settled};
use joblet_runtime::SupervisorCommand;

const COMPLETIONS: usize = 4;

/// The Job of a simulation: its pods run, or they never fit the node and wait until the
/// Job's deadline deletes them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pods {
    Run,
    NeverFit,
}

fn job(dir: &Path, pods: Pods) -> Job {
    let mut job: Job = serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "points"},
        "spec": {
            "completions": COMPLETIONS,
            "parallelism": 2,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main",
                    "image": "busybox",
                    "command": ["sh", "-c", format!(
                        "echo $JOB_COMPLETION_INDEX >> {}/indexes; sleep 0.02",
                        dir.display()
                    )],
                }],
            }},
        },
    }))
    .unwrap();
    if pods == Pods::NeverFit {
        let spec = job.spec.as_mut().unwrap();
        spec.active_deadline_seconds = Some(1);
        let pod = spec.template.spec.as_mut().unwrap();
        pod.node_selector = Some([("disk".to_string(), "none".to_string())].into());
    }
    job
}

fn backoff() -> BackoffConfig {
    BackoffConfig {
        base_ms: 10,
        max_ms: 100,
    }
}

fn config(state: &Path) -> EngineConfig {
    EngineConfig {
        state_dir: state.to_path_buf(),
        backoff: backoff(),
        stream_logs: false,
        keep_running: false,
        event_ttl: None,
        // The supervisor is this process's (below). Until it listens, the engine may start
        // one: `true` leaves at once, as a supervisor does that finds another one serving.
        supervisor: Some(SupervisorCommand {
            program: PathBuf::from("true"),
            args: Vec::new(),
            log: state.join("supervisor.log"),
            inherit_stdout: false,
        }),
        max_pods: 110,
        emulation: Default::default(),
        durability: joblet_driver::Durability::PowerLoss,
    }
}

/// One engine's life on the directory: recover, apply the Job, run until it settles (its
/// final status) or the simulated crash (`None`).
async fn engine_life(
    state: &Path,
    dir: &Path,
    crash: Option<(u64, CrashPoint)>,
    pods: Pods,
) -> Option<JobStatus> {
    std::fs::create_dir_all(state).unwrap();
    // Waits for the last supervisor if it still runs pods; serves otherwise.
    let supervised = runtime_config(state, &backoff(), false);
    let supervisor_dir = state.to_path_buf();
    tokio::spawn(async move {
        let clock = std::sync::Arc::new(joblet_driver::SystemClock);
        joblet_runtime::supervise(&supervisor_dir, supervised, clock, true).await
    });
    let mut engine = Engine::open(config(state), Box::new(|_| {})).unwrap();
    if let Some((nth, point)) = crash {
        engine.crash_at_commit(nth, point);
    }
    if let Err(e) = engine.recover() {
        eprintln!("recover: {e}");
        return None;
    }
    let admitted = joblet_driver::admit(job(dir, pods), Default::default()).unwrap();
    if let Err(e) = engine.create_or_resume(admitted, job(dir, pods)) {
        eprintln!("create: {e}");
        return None;
    }
    let (_keep, shutdown) = tokio::sync::mpsc::unbounded_channel();
    match engine.run(shutdown).await {
        Ok(Settled::Done) => Some(engine.jobs()[0].status.clone().unwrap()),
        Ok(Settled::Interrupted | Settled::LeftRunning) => unreachable!("never interrupted"),
        Err(e) => {
            eprintln!("run: {e}");
            None
        }
    }
}

/// What must not depend on crashes: the counts, the indexes and the conditions.
fn summary(status: &JobStatus) -> String {
    let mut conditions: Vec<String> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| format!("{}={}", c.type_, c.status))
        .collect();
    conditions.sort();
    format!(
        "succeeded={:?} failed={:?} active={:?} completedIndexes={:?} conditions={conditions:?}",
        status.succeeded, status.failed, status.active, status.completed_indexes
    )
}

fn indexes_run(dir: &Path) -> Vec<usize> {
    let text = std::fs::read_to_string(dir.join("indexes")).unwrap_or_default();
    let mut indexes: Vec<usize> = text.lines().map(|l| l.parse().unwrap()).collect();
    indexes.sort();
    indexes
}

/// Runs with a crash at the `nth` commit, then restarts until the Job settles. `None` if
/// the run needed fewer commits than `nth` (no crash happened).
async fn crash_and_recover(nth: u64, point: CrashPoint, pods: Pods) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    if engine_life(&state, dir.path(), Some((nth, point)), pods)
        .await
        .is_some()
    {
        return None;
    }
    let status = loop {
        if let Some(status) = engine_life(&state, dir.path(), None, pods).await {
            break status;
        }
    };
    let expected = match pods {
        Pods::Run => (0..COMPLETIONS).collect::<Vec<_>>(),
        Pods::NeverFit => Vec::new(),
    };
    assert_eq!(
        indexes_run(dir.path()),
        expected,
        "each index runs once, or never (crash at commit {nth}, {point:?})"
    );
    Some(summary(&status))
}

/// Every crash point of a run, then restarts until the Job settles: it must end as the run
/// without a crash ended (`condition` among its conditions); the number of crash points.
async fn every_crash_point(pods: Pods, condition: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let Some(reference) = engine_life(&state, dir.path(), None, pods).await else {
        panic!("a run without crash settles");
    };
    let expected = summary(&reference);
    assert!(expected.contains(condition), "{expected}");
    let mut points = 0;
    for point in [CrashPoint::BeforeCommit, CrashPoint::AfterCommit] {
        for nth in 1.. {
            let Some(summary) =
                tokio::time::timeout(Duration::from_secs(60), crash_and_recover(nth, point, pods))
                    .await
                    .unwrap_or_else(|_| panic!("crash at commit {nth}, {point:?}: no end"))
            else {
                break;
            };
            assert_eq!(summary, expected, "crash at commit {nth}, {point:?}");
            points += 1;
        }
    }
    eprintln!("{points} crash points, each ended as: {expected}");
    points
}

/// One test for both cases: the supervisors of a process share its one reaper of children.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_crash_point_ends_as_the_run_without_crash() {
    let points = every_crash_point(Pods::Run, "Complete=True").await;
    // Creating the Job, each pod's record, start and end: a few commits each at least.
    assert!(points >= 2 * COMPLETIONS, "only {points} crash points");
    // Pods that wait for the node until the deadline deletes them: a crash between their
    // deletion and their failure being recorded must not leave them waiting for ever.
    let points = every_crash_point(Pods::NeverFit, "Failed=True").await;
    assert!(points >= 4, "only {points} crash points");
}
