//! Nothing lost, nothing run twice: a 2,000-completion Indexed Job whose engine is
//! SIGKILLed at random moments and started again, under `run` and under `serve`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::serve::Server;
use crate::util::{assert_none_left, job, joblet, scratch};

const COMPLETIONS: usize = 2000;
const KILLS: usize = 10;

/// Each pod appends its index to `{dir}/indexes`, and logs a line before and after.
fn manifest(dir: &Path, marker: &str) -> String {
    job(
        "reports",
        &format!(
            "  completions: {COMPLETIONS}\n  parallelism: 50\n  completionMode: Indexed\n  backoffLimit: 0"
        ),
        &format!(
            "export MARK={marker}; echo begin $JOB_COMPLETION_INDEX; \
             echo $JOB_COMPLETION_INDEX >> {dir}/indexes; sleep 0.005; echo end $JOB_COMPLETION_INDEX",
            dir = dir.display()
        ),
    )
}

/// Kill moments, spread over `span`, from a seed printed so a failure can be replayed.
fn kill_moments(test: &str, span: Duration) -> Vec<Duration> {
    let seed = std::env::var("JOBLET_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
                | 1
        });
    eprintln!("{test}: JOBLET_CRASH_SEED={seed}");
    let mut state = seed;
    (0..KILLS)
        .map(|_| {
            // xorshift64: enough spread for kill moments.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            span.mul_f64((state % 1000) as f64 / 1000.0)
        })
        .collect()
}

/// Every index once in the pods' own record, and every pod's log whole.
fn check_nothing_lost_or_repeated(dir: &Path, state: &Path) {
    let text = std::fs::read_to_string(dir.join("indexes")).unwrap();
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for line in text.lines() {
        *seen.entry(line.parse().unwrap()).or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "indexes run twice: {repeated:?}");
    assert_eq!(seen.len(), COMPLETIONS, "every index ran");
    let mut logs = 0;
    for entry in std::fs::read_dir(state.join("logs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let log = std::fs::read_to_string(&path).unwrap();
            let index = log
                .strip_prefix("begin ")
                .and_then(|rest| rest.split_once('\n'))
                .map(|(index, _)| index.to_string())
                .unwrap_or_else(|| panic!("{}: {log:?}", path.display()));
            assert_eq!(
                log,
                format!("begin {index}\nend {index}\n"),
                "{}",
                path.display()
            );
            logs += 1;
        }
    }
    assert_eq!(logs, COMPLETIONS, "one pod, one log, per index");
}

#[test]
fn run_killed_ten_times_resumes_and_runs_each_index_once() {
    let dir = scratch();
    let state = dir.path().join("state");
    let marker = format!("crash-run-{}", std::process::id());
    let file = dir.path().join("job.yaml");
    std::fs::write(&file, manifest(dir.path(), &marker)).unwrap();
    let run = |stderr: Stdio| {
        joblet()
            .args(["run", "-o", "json", "-f"])
            .arg(&file)
            .arg("--state-dir")
            .arg(&state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap()
    };
    for moment in kill_moments("run", Duration::from_secs(2)) {
        let mut child = run(Stdio::null());
        std::thread::sleep(moment);
        let _ = child.kill();
        let _ = child.wait();
    }
    let output = run(Stdio::piped()).wait_with_output().unwrap();
    let job: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{}\n{stderr}", job["status"]);
    assert_eq!(job["status"]["succeeded"], COMPLETIONS);
    assert_eq!(job["status"]["completedIndexes"], "0-1999");
    assert_eq!(job["status"].get("failed"), None, "{}", job["status"]);
    check_nothing_lost_or_repeated(dir.path(), &state);
    assert_none_left(&marker);
    assert_none_left(&state.display().to_string());
}

#[test]
fn serve_killed_ten_times_completes_the_job_and_runs_each_index_once() {
    let dir = scratch();
    let state = dir.path().join("state");
    let marker = format!("crash-serve-{}", std::process::id());
    let mut server = Server::start(dir.path());
    server.apply(&manifest(dir.path(), &marker));
    for moment in kill_moments("serve", Duration::from_secs(1)) {
        std::thread::sleep(moment);
        server.kill();
        server = Server::start_in(dir.path(), &state);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let job = server.json(&["get", "job", "reports"]);
        if job["status"]["succeeded"] == COMPLETIONS || Instant::now() > deadline {
            break job;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(job["status"]["succeeded"], COMPLETIONS, "{}", job["status"]);
    assert_eq!(job["status"]["completedIndexes"], "0-1999");
    assert_eq!(job["status"].get("failed"), None, "{}", job["status"]);
    let conditions = job["status"]["conditions"].as_array().unwrap();
    assert!(conditions
        .iter()
        .any(|c| c["type"] == "Complete" && c["status"] == "True"));
    check_nothing_lost_or_repeated(dir.path(), &state);
    assert_eq!(server.stop(), Some(0));
    assert_none_left(&marker);
    assert_none_left(&state.display().to_string());
}
