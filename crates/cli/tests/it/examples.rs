//! Every manifest in examples/ runs, as a user would run it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs an example with TMPDIR pointing at a scratch directory, so its outputs are ours.
fn run_example(dir: &Path, manifest: &str, extra: &[&str]) -> Run {
    let file = dir.join("example.yaml");
    std::fs::write(&file, manifest).unwrap();
    let output = joblet()
        .args(["run", "-o", "json", "-f"])
        .arg(&file)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(extra)
        .env("TMPDIR", dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run { output }
}

fn outputs(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let examples = dir.join("joblet-examples");
    let sub = std::fs::read_dir(&examples)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* under {}", examples.display()));
    let mut files: Vec<PathBuf> = std::fs::read_dir(sub)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn image_resize_runs_ten_completions() {
    let dir = scratch();
    let run = run_example(dir.path(), &example("image-resize.yaml"), &[]);
    run.expect_code(0);
    assert_eq!(run.job()["status"]["succeeded"], 10);
}

#[test]
fn shard_migration_runs_fifty_indexes() {
    let dir = scratch();
    let run = run_example(dir.path(), &example("shard-migration.yaml"), &[]);
    run.expect_code(0);
    assert_eq!(run.job()["status"]["completedIndexes"], "0-49");
    let files = outputs(dir.path(), "shard-migration-");
    assert_eq!(files.len(), 50);
    let shard7 =
        std::fs::read_to_string(files.iter().find(|f| f.ends_with("shard-7.txt")).unwrap())
            .unwrap();
    assert_eq!(shard7, "shard 7 of 50: items 7000 to 7999\n");
}

#[test]
fn reliable_job_survives_its_flakes() {
    let dir = scratch();
    let run = run_example(
        dir.path(),
        &example("reliable-job.yaml"),
        &["--backoff-base", "100ms"],
    );
    run.expect_code(0);
    let job = run.job();
    assert_eq!(
        (
            job["status"]["succeeded"].as_i64(),
            job["status"]["failed"].as_i64()
        ),
        (Some(10), Some(2))
    );
}

struct Redis {
    child: Child,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is installed by scripts/test.sh");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn start_redis(dir: &Path) -> Redis {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed by scripts/test.sh");
    let redis = Redis { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis_cli(port, &["PING"]) != "PONG" {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    redis
}

#[test]
fn queue_worker_drains_a_real_redis_queue() {
    let dir = scratch();
    let redis = start_redis(dir.path());
    let items: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
    let mut push = vec!["RPUSH", "jobs"];
    push.extend(items.iter().map(String::as_str));
    redis_cli(redis.port, &push);
    let manifest = example("queue-worker.yaml").replace(
        "redis://127.0.0.1:6379",
        &format!("redis://127.0.0.1:{}", redis.port),
    );
    let run = run_example(dir.path(), &manifest, &[]);
    run.expect_code(0);
    let job = run.job();
    assert_eq!(job["status"]["succeeded"], 5, "{}", run.context());
    assert_eq!(redis_cli(redis.port, &["LLEN", "jobs"]), "0");
    let done = redis_cli(redis.port, &["LRANGE", "done", "0", "-1"]);
    let mut processed: Vec<i64> = done.lines().map(|l| l.parse().unwrap()).collect();
    processed.sort();
    assert_eq!(
        processed,
        (1..=100).collect::<Vec<_>>(),
        "every item exactly once"
    );
}

fn conditions(job: &serde_json::Value) -> Vec<(String, String, String)> {
    job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (field("type"), field("reason"), field("message"))
        })
        .collect()
}

#[test]
fn pod_failure_policy_fails_the_job_on_exit_code_42() {
    let dir = scratch();
    let started = Instant::now();
    let run = run_example(dir.path(), &example("pod-failure-policy.yaml"), &[]);
    run.expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "FailJob stops the Job at once"
    );
    let job = run.job();
    let conditions = conditions(&job);
    assert_eq!(conditions.len(), 2, "{conditions:?}");
    assert_eq!(
        (conditions[1].0.as_str(), conditions[1].1.as_str()),
        ("Failed", "PodFailurePolicy")
    );
    let message = &conditions[1].2;
    assert!(
        message.starts_with("Container task for pod default/pod-failure-policy-")
            && message.ends_with("failed with exit code 42 matching FailJob rule at index 0"),
        "{message}"
    );
    assert_eq!(job["status"]["succeeded"], 2);
}

#[test]
fn backoff_limit_per_index_fails_only_the_failing_indexes() {
    let dir = scratch();
    let run = run_example(
        dir.path(),
        &example("backoff-limit-per-index.yaml"),
        &["--backoff-base", "100ms"],
    );
    run.expect_code(1);
    let job = run.job();
    let status = &job["status"];
    assert_eq!(
        (
            status["completedIndexes"].as_str(),
            status["failedIndexes"].as_str()
        ),
        (Some("1,3,5,7,9"), Some("0,2,4,6,8"))
    );
    assert_eq!(
        (status["succeeded"].as_i64(), status["failed"].as_i64()),
        (Some(5), Some(10))
    );
    assert_eq!(conditions(&job)[1].1, "FailedIndexes");
    assert_eq!(
        job["spec"]["backoffLimit"], 2147483647,
        "defaulted with backoffLimitPerIndex"
    );
    // Each failed index ran twice; the retry carried failure-count 1.
    let db = rusqlite::Connection::open(dir.path().join("state/state.db")).unwrap();
    let mut counts: Vec<String> = db
        .prepare("SELECT body FROM objects WHERE kind = 'Pod'")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|body| {
            let pod: serde_json::Value = serde_json::from_str(&body.unwrap()).unwrap();
            let annotations = &pod["metadata"]["annotations"];
            format!(
                "{}:{}",
                annotations["batch.kubernetes.io/job-completion-index"]
                    .as_str()
                    .unwrap(),
                annotations["batch.kubernetes.io/job-index-failure-count"]
                    .as_str()
                    .unwrap()
            )
        })
        .filter(|entry| entry.starts_with('0'))
        .collect();
    counts.sort();
    assert_eq!(counts, ["0:0", "0:1"]);
}

#[test]
fn success_policy_completes_when_the_leader_succeeds() {
    let dir = scratch();
    let started = Instant::now();
    let run = run_example(dir.path(), &example("success-policy.yaml"), &[]);
    run.expect_code(0);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the workers are terminated, not waited for"
    );
    let job = run.job();
    assert_eq!(
        conditions(&job),
        [
            (
                "SuccessCriteriaMet".into(),
                "SuccessPolicy".into(),
                "Matched rules at index 0".into()
            ),
            (
                "Complete".into(),
                "SuccessPolicy".into(),
                "Matched rules at index 0".into()
            ),
        ]
    );
    assert_eq!(
        (
            job["status"]["succeeded"].as_i64(),
            job["status"].get("failed")
        ),
        (Some(1), None)
    );
    assert_eq!(job["status"]["completedIndexes"], "0");
}

#[test]
fn sidecar_queue_drains_the_queue_of_its_own_redis_and_completes() {
    let dir = scratch();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let manifest = example("sidecar-queue.yaml").replace("6390", &port.to_string());
    let run = run_example(dir.path(), &manifest, &[]);
    run.expect_code(0);
    assert_eq!(run.job()["status"]["succeeded"], 1, "{}", run.context());
    let logs = dir.path().join("state/logs");
    let worker = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("_worker_0.log"))
        .unwrap();
    let output = std::fs::read_to_string(worker).unwrap();
    let processed = output
        .lines()
        .filter(|l| l.starts_with("processed item"))
        .count();
    assert_eq!(
        (processed, output.lines().last()),
        (20, Some("queue empty"))
    );
    // The sidecar's Redis is gone with its pod.
    assert_eq!(redis_cli(port, &["PING"]), "");
}

#[test]
fn configmap_env_feeds_env_and_env_from_from_the_same_file() {
    let dir = scratch();
    let run = run_example(dir.path(), &example("configmap-env.yaml"), &[]);
    run.expect_code(0);
    assert_eq!(run.job()["status"]["succeeded"], 2, "{}", run.context());
    let logs: Vec<String> = std::fs::read_dir(dir.path().join("state/logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(logs, ["region=eu-west batch=250 rows=500\n"; 2]);
    let everything = format!("{}{}", run.stdout(), run.stderr());
    assert!(!everything.contains("not-a-real-password"), "{everything}");
}

/// The recipe's manifests exactly as written for a cluster (examples/recipe/), under
/// `--runtime podman` with the images `examples/images/build.sh` makes: the image's
/// working directory holds the `./script` a command names, an image's entrypoint runs when
/// no command is given.
#[test]
fn the_recipes_manifests_run_as_written_in_containers() {
    let recipe = |name: &str| example(&format!("recipe/{name}"));
    let dir = scratch();
    let resize = run_example(
        dir.path(),
        &recipe("image-resize.yaml"),
        &["--runtime", "podman"],
    );
    resize.expect_code(0);
    assert_eq!(resize.job()["status"]["succeeded"], 10);

    let dir = scratch();
    let shards = run_example(
        dir.path(),
        &recipe("shard-migration.yaml"),
        &["--runtime", "podman", "--logs"],
    );
    shards.expect_code(0);
    let out = shards.stdout();
    assert!(
        out.contains("] shard 7: migrated items 7000 to 7999\n"),
        "{out}"
    );
    assert_eq!(out.matches(": migrated items ").count(), 50, "{out}");

    let dir = scratch();
    let reliable = run_example(
        dir.path(),
        &recipe("reliable-job.yaml"),
        &["--runtime", "podman"],
    );
    reliable.expect_code(0);
    assert_eq!(reliable.job()["status"]["succeeded"], 10);
}
