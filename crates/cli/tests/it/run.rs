//! `joblet run`: one test per behaviour of the Job controller and the node, through the
//! binary a user runs.

use std::time::{Duration, Instant};

use crate::util::*;

fn on_failure(manifest: String) -> String {
    manifest.replace("restartPolicy: Never", "restartPolicy: OnFailure")
}

#[test]
fn concurrency_reaches_parallelism_and_never_exceeds_it() {
    let dir = scratch();
    let manifest = job(
        "wide",
        "  completions: 12\n  parallelism: 3",
        "echo \"1 $(date +%s%N)\" >> {dir}/spans; sleep 0.3; echo \"-1 $(date +%s%N)\" >> {dir}/spans",
    );
    let run = run(dir.path(), &manifest, &["-o", "json"]);
    run.expect_code(0);
    let spans = std::fs::read_to_string(dir.path().join("spans")).unwrap();
    let mut changes: Vec<(i64, i64)> = spans
        .lines()
        .map(|l| {
            let (delta, at) = l.split_once(' ').unwrap();
            (at.parse().unwrap(), delta.parse().unwrap())
        })
        .collect();
    changes.sort();
    let (mut running, mut peak) = (0, 0);
    for (_, delta) in &changes {
        running += delta;
        peak = peak.max(running);
    }
    assert_eq!(changes.len(), 24);
    assert_eq!(peak, 3, "peak concurrency\n{}", run.context());
    let job = run.job();
    assert_eq!(job["status"]["succeeded"], 12);
    assert_eq!(
        condition_reasons(&job),
        [
            "SuccessCriteriaMet:CompletionsReached",
            "Complete:CompletionsReached"
        ]
    );
    assert!(job["status"]["completionTime"].is_string());
}

#[test]
fn indexed_job_runs_each_index_exactly_once() {
    let dir = scratch();
    let manifest = job(
        "indexed",
        "  completions: 20\n  parallelism: 5\n  completionMode: Indexed",
        "echo $JOB_COMPLETION_INDEX >> {dir}/indexes; [ \"$HOSTNAME\" = \"indexed-$JOB_COMPLETION_INDEX\" ]",
    );
    let run = run(dir.path(), &manifest, &["-o", "json"]);
    run.expect_code(0);
    let mut indexes = numbers(&dir.path().join("indexes"));
    indexes.sort();
    assert_eq!(indexes, (0..20).collect::<Vec<_>>());
    let job = run.job();
    assert_eq!(job["status"]["completedIndexes"], "0-19");
    assert_eq!(job["status"]["succeeded"], 20);
}

#[test]
fn backoff_limit_with_exponential_recreation_delay() {
    let dir = scratch();
    let manifest = job(
        "flaky",
        "  backoffLimit: 2",
        "date +%s%N >> {dir}/attempts; exit 3",
    );
    let run = run(
        dir.path(),
        &manifest,
        &["-o", "json", "--backoff-base", "300ms"],
    );
    run.expect_code(1);
    let attempts = numbers(&dir.path().join("attempts"));
    assert_eq!(
        attempts.len(),
        3,
        "backoffLimit 2 allows 3 attempts\n{}",
        run.context()
    );
    let gaps: Vec<i64> = attempts
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1_000_000)
        .collect();
    assert!(gaps[0] >= 300, "first re-creation after {}ms", gaps[0]);
    assert!(
        gaps[1] >= 600,
        "second re-creation after {}ms (doubled)",
        gaps[1]
    );
    let job = run.job();
    assert_eq!(job["status"]["failed"], 3);
    assert_eq!(
        condition_reasons(&job),
        [
            "FailureTarget:BackoffLimitExceeded",
            "Failed:BackoffLimitExceeded"
        ]
    );
    assert_eq!(
        job["status"]["conditions"][1]["message"],
        "Job has reached the specified backoff limit"
    );
    assert!(job["status"].get("completionTime").is_none());
}

#[test]
fn deadline_kills_a_pod_that_ignores_sigterm() {
    let dir = scratch();
    let marker = format!("deadline-marker-{}", std::process::id());
    let manifest = format!(
        r#"apiVersion: batch/v1
kind: Job
metadata: {{name: slow}}
spec:
  activeDeadlineSeconds: 1
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: busybox
          command: ["sh", "-c", "export MARK={marker}; trap '' TERM; sleep 30; sleep 30"]
"#
    );
    let started = Instant::now();
    let run = run(dir.path(), &manifest, &["-o", "json"]);
    let took = started.elapsed();
    run.expect_code(1);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let job = run.job();
    assert_eq!(
        condition_reasons(&job),
        ["FailureTarget:DeadlineExceeded", "Failed:DeadlineExceeded"]
    );
    assert_eq!(job["status"]["failed"], 1);
    assert_eq!(job["status"]["terminating"], 0);
    assert_none_left(&marker);
}

#[test]
fn on_failure_restarts_the_container_in_place() {
    let dir = scratch();
    let manifest = on_failure(job(
        "retry",
        "  backoffLimit: 4",
        "echo attempt; echo run >> {dir}/runs; [ $(wc -l < {dir}/runs) -ge 3 ]",
    ));
    let run = run(
        dir.path(),
        &manifest,
        &["-o", "json", "--backoff-base", "100ms"],
    );
    run.expect_code(0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("runs"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    let job = run.job();
    assert_eq!(
        (
            job["status"]["succeeded"].as_i64(),
            job["status"].get("failed")
        ),
        (Some(1), None)
    );
    // One log file per container run, as `kubectl logs --previous` needs.
    let logs: Vec<_> = std::fs::read_dir(dir.path().join("state/logs"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .collect();
    assert_eq!(logs.len(), 3);
}

#[test]
fn on_failure_restarts_count_toward_the_backoff_limit() {
    let dir = scratch();
    let manifest = on_failure(job("crashloop", "  backoffLimit: 2", "exit 1"));
    let run = run(
        dir.path(),
        &manifest,
        &["-o", "json", "--backoff-base", "100ms"],
    );
    run.expect_code(1);
    let job = run.job();
    assert_eq!(condition_reasons(&job)[1], "Failed:BackoffLimitExceeded");
    assert_eq!(
        job["status"]["failed"], 1,
        "the restarting pod is deleted and counted once"
    );
}

#[test]
fn work_queue_completes_when_all_workers_exit() {
    let dir = scratch();
    let manifest = job(
        "queue",
        "  parallelism: 4",
        "n=$(echo $HOSTNAME | cksum | cut -c1-2); sleep 0.$((n % 5)); echo $HOSTNAME >> {dir}/workers",
    );
    let run = run(dir.path(), &manifest, &["-o", "json"]);
    run.expect_code(0);
    let job = run.job();
    assert_eq!(job["status"]["succeeded"], 4);
    assert!(job["spec"].get("completions").is_none());
}

#[test]
fn validation_errors_are_all_reported_and_nothing_runs() {
    let dir = scratch();
    let manifest = r#"apiVersion: batch/v1
kind: Job
metadata: {name: bad}
spec:
  completionMode: Indexed
  parallelism: -1
  template:
    spec:
      restartPolicy: Always
      containers:
        - name: main
          image: busybox
          command: ["sh", "-c", "touch {dir}/ran"]
"#;
    let run = run(dir.path(), manifest, &[]);
    run.expect_code(2);
    let stderr = run.stderr();
    assert!(
        stderr.contains("Job.batch \"bad\" is invalid: ["),
        "{stderr}"
    );
    for expected in [
        "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
        "spec.completions: Required value: when completion mode is Indexed",
        "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in {stderr}"
        );
    }
    assert!(!dir.path().join("ran").exists());
    assert!(
        !dir.path().join("state").exists(),
        "invalid input creates no state"
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_status_2() {
    let dir = scratch();
    let run_text = |text: &str| run(dir.path(), text, &[]);
    let r = run_text("apiVersion: batch/v1\nkind: Job\nspec:\n  completions: [1\n");
    r.expect_code(2);
    assert!(
        r.stderr().contains("line 4, column 16: unclosed bracket"),
        "{}",
        r.context()
    );
    // One line of JSON, then YAML documents, the last one broken on the file's line 8.
    let r = run_text(
        "{\"apiVersion\": \"batch/v1\", \"kind\": \"Job\", \"metadata\": {\"name\": \"j\"}}\n# then YAML\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n   name: k\n  labels: {}\n",
    );
    r.expect_code(2);
    assert!(
        r.stderr()
            .contains("error converting YAML to JSON: yaml: line 8, column"),
        "{}",
        r.context()
    );
    let r = run_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n");
    r.expect_code(2);
    assert!(
        r.stderr()
            .contains("joblet runs batch/v1 Jobs and CronJobs, with the v1 Namespaces, ConfigMaps, Secrets and Services beside them; this is a v1 Pod \"p\""),
        "{}",
        r.context()
    );
    let r = run_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: noentry}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: resize, image: imagetools:v1}]\n",
    );
    r.expect_code(2);
    assert!(
        r.stderr().contains("spec.template.spec.containers[0].command: Required value: joblet runs container \"resize\""),
        "{}",
        r.context()
    );
    let missing = joblet()
        .args(["run", "-f", "/nonexistent/job.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn a_command_that_cannot_start_fails_the_pod() {
    let dir = scratch();
    let manifest = job("nocmd", "  backoffLimit: 0", "unused");
    let manifest = manifest.replace(
        "[\"sh\", \"-c\", \"unused\"]",
        "[\"joblet-no-such-binary\"]",
    );
    let run = run(dir.path(), &manifest, &["-o", "json"]);
    run.expect_code(1);
    assert_eq!(run.job()["status"]["failed"], 1);
}

#[test]
fn several_jobs_run_concurrently_and_print_a_list() {
    let dir = scratch();
    let manifest = format!(
        "{}---\n{}",
        job("first", "  completions: 2", "sleep 0.2"),
        job("second", "  completions: 1\n  backoffLimit: 0", "exit 1")
    );
    let run = run(dir.path(), &manifest, &["-o", "yaml"]);
    run.expect_code(1);
    let list = joblet_api::yaml::document(&run.stdout()).unwrap();
    assert_eq!(list["kind"], "List");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second"]);
}

#[test]
fn events_and_summary_off_a_terminal() {
    let dir = scratch();
    let run = run(
        dir.path(),
        &job("plain", "  completions: 2", "echo hi"),
        &[],
    );
    run.expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains("Normal   SuccessfulCreate       job/plain"),
        "{out}"
    );
    assert!(
        out.contains("Normal   Completed              job/plain                    Job completed"),
        "{out}"
    );
    assert!(
        out.contains("NAME    STATUS     COMPLETIONS   DURATION   AGE\nplain   Complete   2/2"),
        "{out}"
    );
    assert!(
        run.stderr().contains("run directory: "),
        "{}",
        run.context()
    );
}

#[test]
fn logs_are_streamed_with_the_pod_prefix_and_kept() {
    let dir = scratch();
    let run = run(
        dir.path(),
        &job("talk", "", "echo hello from $HOSTNAME"),
        &["--logs"],
    );
    run.expect_code(0);
    let line = run
        .stdout()
        .lines()
        .find(|l| l.starts_with("[pod/talk-"))
        .map(String::from);
    let line = line.unwrap_or_else(|| panic!("{}", run.context()));
    let pod = line
        .trim_start_matches("[pod/")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(line, format!("[pod/{pod}/main] hello from {pod}"));
    let kept = std::fs::read_to_string(
        dir.path()
            .join(format!("state/logs/default_{pod}_main_0.log")),
    )
    .unwrap();
    assert_eq!(kept, format!("hello from {pod}\n"));
}

#[test]
fn no_process_outlives_its_pod() {
    let dir = scratch();
    let marker = format!("bg-marker-{}", std::process::id());
    let run = run(
        dir.path(),
        &job(
            "bg",
            "",
            &format!("export MARK={marker}; sleep 300 & echo started"),
        ),
        &[],
    );
    run.expect_code(0);
    assert_none_left(&marker);
}

/// `joblet run` of two long pods, stopped by `signal`: it must stop both pods, record them
/// disrupted, and exit `128 + signal`. With `state_dir`, the pods run under the supervisor.
fn a_signal_stops_every_pod(signal: nix::sys::signal::Signal, state_dir: bool) {
    let dir = scratch();
    let marker = format!("signal-marker-{signal}-{state_dir}-{}", std::process::id());
    let file = dir.path().join("job.yaml");
    std::fs::write(
        &file,
        job(
            "long",
            "  parallelism: 2\n  completions: 2",
            &format!("export MARK={marker}; sleep 60"),
        ),
    )
    .unwrap();
    let mut command = joblet();
    command.args(["run", "-f"]).arg(&file);
    if state_dir {
        command.arg("--state-dir").arg(dir.path().join("state"));
    } else {
        command.env("XDG_STATE_HOME", dir.path().join("xdg"));
    }
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Two pods, each a shell and its sleep.
    while processes_with(&marker).len() < 4 {
        assert!(Instant::now() < deadline, "pods never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(128 + signal as i32));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = match state_dir {
        true => "run interrupted: its pods were stopped before the Jobs ended; run the same command again to resume them",
        false => "run interrupted: its pods were stopped before the Jobs ended\n",
    };
    assert!(stderr.contains(said), "{stderr}");
    assert_none_left(&marker);
    let db = if state_dir {
        dir.path().join("state/state.db")
    } else {
        let runs = dir.path().join("xdg/joblet");
        let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap();
        run.path().join("state.db")
    };
    // Stopping joblet is a node shutdown: the pods record the disruption, as a kubelet would.
    let db = rusqlite::Connection::open(db).unwrap();
    let bodies: Vec<String> = db
        .prepare("SELECT body FROM objects WHERE kind = 'Pod'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(bodies.len(), 2);
    for body in bodies {
        let pod: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(pod["status"]["phase"], "Failed");
        assert!(crate::util::disrupted_by_node_shutdown(&pod), "{pod}");
    }
}

#[test]
fn ctrl_c_stops_every_pod_and_exits_130() {
    a_signal_stops_every_pod(nix::sys::signal::Signal::SIGINT, true);
}

#[test]
fn sigterm_stops_every_pod_and_exits_143() {
    a_signal_stops_every_pod(nix::sys::signal::Signal::SIGTERM, false);
    a_signal_stops_every_pod(nix::sys::signal::Signal::SIGTERM, true);
}

#[test]
fn sighup_stops_every_pod_and_exits_129() {
    a_signal_stops_every_pod(nix::sys::signal::Signal::SIGHUP, false);
}

#[test]
fn working_dir_and_downward_api_reach_the_process() {
    let dir = scratch();
    let manifest = r#"apiVersion: batch/v1
kind: Job
metadata: {name: where, labels: {team: batch}}
spec:
  template:
    metadata:
      labels: {team: batch}
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: busybox
          workingDir: {dir}
          command: ["sh", "-c", "echo \"$(pwd) $POD_NS $TEAM $(GREETING)\" > out"]
          env:
            - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
            - {name: TEAM, valueFrom: {fieldRef: {fieldPath: "metadata.labels['team']"}}}
            - {name: GREETING, value: hi}
"#;
    run(dir.path(), manifest, &[]).expect_code(0);
    let out = std::fs::read_to_string(dir.path().join("out")).unwrap();
    assert_eq!(out, format!("{} default batch hi\n", dir.path().display()));
}

#[test]
fn a_job_created_suspended_is_reported_and_exits_3_unless_resumed() {
    let dir = scratch();
    let manifest = job("parked", "  suspend: true", "touch {dir}/ran");
    let run1 = run(dir.path(), &manifest, &["-o", "json"]);
    run1.expect_code(3);
    assert_eq!(condition_reasons(&run1.job()), ["Suspended:JobSuspended"]);
    assert!(!dir.path().join("ran").exists());
    // The run's supervisor leaves on its own once the run is gone; it may still be writing.
    crate::serve::stop_supervisor(&dir.path().join("state"));
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    run(dir.path(), &manifest, &["--resume"]).expect_code(0);
    assert!(dir.path().join("ran").exists());
}

#[test]
fn ttl_after_finished_removes_the_records() {
    let dir = scratch();
    let stored = |name: &str| {
        let db = rusqlite::Connection::open(dir.path().join(format!("{name}/state.db"))).unwrap();
        let count = |kind: &str| -> i64 {
            db.query_row(
                "SELECT count(*) FROM objects WHERE kind = ?1",
                [kind],
                |r| r.get(0),
            )
            .unwrap()
        };
        (count("Job"), count("Pod"))
    };
    let expiring = job(
        "short-lived",
        "  completions: 2\n  ttlSecondsAfterFinished: 0",
        "true",
    );
    run(dir.path(), &expiring, &[]).expect_code(0);
    assert_eq!(stored("state"), (0, 0));
    let kept = job(
        "kept",
        "  completions: 2\n  ttlSecondsAfterFinished: 300",
        "true",
    );
    std::fs::rename(dir.path().join("state"), dir.path().join("first")).unwrap();
    run(dir.path(), &kept, &[]).expect_code(0);
    assert_eq!(stored("state"), (1, 2));
}

#[test]
fn fail_index_and_ignore_actions_on_real_exit_codes() {
    let dir = scratch();
    let manifest = r#"apiVersion: batch/v1
kind: Job
metadata: {name: actions}
spec:
  completionMode: Indexed
  completions: 4
  parallelism: 4
  backoffLimitPerIndex: 1
  podFailurePolicy:
    rules:
      - {action: FailIndex, onExitCodes: {operator: In, values: [3]}}
      - {action: Ignore, onExitCodes: {operator: In, values: [4]}}
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: busybox
          command:
            - sh
            - -c
            - |
              case $JOB_COMPLETION_INDEX in
                1) exit 3 ;;
                2) mkdir {dir}/ignored-once 2>/dev/null && exit 4 ;;
              esac
              exit 0
"#;
    let run = run(
        dir.path(),
        manifest,
        &["-o", "json", "--backoff-base", "100ms"],
    );
    run.expect_code(1);
    let job = run.job();
    let status = &job["status"];
    assert_eq!(
        (
            status["failedIndexes"].as_str(),
            status["completedIndexes"].as_str()
        ),
        (Some("1"), Some("0,2,3"))
    );
    assert_eq!(
        status["failed"],
        1,
        "FailIndex counts, Ignore does not\n{}",
        run.context()
    );
    assert_eq!(
        condition_reasons(&job),
        ["FailureTarget:FailedIndexes", "Failed:FailedIndexes"]
    );
}

#[test]
fn max_failed_indexes_stops_the_job_early() {
    // TC-085: maxFailedIndexes 0, budget 0: the first failed index ends the Job.
    let dir = scratch();
    let manifest = job(
        "strict",
        "  completionMode: Indexed\n  completions: 4\n  parallelism: 1\n  backoffLimitPerIndex: 0\n  maxFailedIndexes: 0",
        "echo $JOB_COMPLETION_INDEX >> {dir}/started; exit 1",
    );
    let run = run(dir.path(), &manifest, &["-o", "json"]);
    run.expect_code(1);
    let job = run.job();
    assert_eq!(
        condition_reasons(&job),
        [
            "FailureTarget:MaxFailedIndexesExceeded",
            "Failed:MaxFailedIndexesExceeded"
        ]
    );
    assert_eq!(
        (
            job["status"]["failedIndexes"].as_str(),
            job["status"]["failed"].as_i64()
        ),
        (Some("0"), Some(1))
    );
    assert_eq!(
        numbers(&dir.path().join("started")),
        [0],
        "indexes 1-3 never started"
    );
}

#[test]
fn unknown_fields_are_refused_unless_validate_says_otherwise() {
    let dir = scratch();
    let manifest = job("typo", "  completion: 3", "true");
    let strict = run(dir.path(), &manifest, &["-o", "json"]);
    strict.expect_code(2);
    assert!(
        strict.stderr().contains(
            "document 1: Job in version \"v1\" cannot be handled as a Job: strict decoding error: unknown field \"spec.completion\""
        ),
        "{}",
        strict.context()
    );
    assert!(!dir.path().join("state").exists(), "nothing ran");
    let warn = run(dir.path(), &manifest, &["-o", "json", "--validate=warn"]);
    warn.expect_code(0);
    assert!(
        warn.stderr()
            .contains("Warning: unknown field \"spec.completion\""),
        "{}",
        warn.context()
    );
    assert_eq!(
        warn.job()["spec"]["completions"],
        1,
        "the typo is not a completions count"
    );
    let ignore = run(dir.path(), &manifest, &["--validate=false"]);
    ignore.expect_code(0);
    assert!(
        !ignore.stderr().contains("unknown field"),
        "{}",
        ignore.context()
    );
}

#[test]
fn a_yaml_error_names_the_file_line_and_column() {
    let dir = scratch();
    let run = run(
        dir.path(),
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\n   labels: {}\n",
        &[],
    );
    run.expect_code(2);
    let file = dir.path().join("job.yaml");
    assert_eq!(
        run.stderr(),
        format!("error: {}: error converting YAML to JSON: yaml: line 5, column 10: mapping values are not allowed in this context\n", file.display())
    );
}

#[test]
fn a_field_the_host_runtime_cannot_honour_is_refused_before_anything_runs() {
    let dir = scratch();
    let manifest = format!(
        "{}          volumeMounts: [{{name: scratch, mountPath: {{dir}}/mounted}}]\n          resources: {{limits: {{memory: 64Mi}}}}\n      volumes: [{{name: scratch, emptyDir: {{}}}}]\n",
        job("mounts", "  completions: 1", "touch {dir}/ran")
    );
    let refused = run(dir.path(), &manifest, &[]);
    refused.expect_code(2);
    let path = "spec.template.spec.containers[0]";
    assert!(
        refused.stderr().contains(&format!("{path}.volumeMounts: Forbidden: joblet runs containers as host processes and cannot mount volumes"))
            && refused.stderr().contains(&format!("{path}.resources.limits.memory: Forbidden:")),
        "{}",
        refused.context()
    );
    assert!(!dir.path().join("ran").exists() && !dir.path().join("state").exists());

    // What it ignores without changing a result runs, with a warning that says so.
    let warned = run(
        dir.path(),
        &format!(
            "{}          resources: {{limits: {{cpu: 500m}}}}\n",
            job("cpu", "  completions: 1", "touch {dir}/ran")
        ),
        &[],
    );
    warned.expect_code(0);
    assert!(
        warned.stderr().contains(&format!(
            "Warning: {path}.resources.limits.cpu: not enforced: joblet runs containers as host processes"
        )),
        "{}",
        warned.context()
    );
    assert!(dir.path().join("ran").exists());
}

/// The pods a run left in its state directory.
fn stored_pods(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let db = rusqlite::Connection::open(dir.join("state/state.db")).unwrap();
    let mut query = db
        .prepare("SELECT body FROM objects WHERE kind = 'Pod'")
        .unwrap();
    let bodies = query.query_map([], |r| r.get::<_, String>(0)).unwrap();
    bodies
        .map(|body| serde_json::from_str(&body.unwrap()).unwrap())
        .collect()
}

const SIDECAR_JOB: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: with-sidecar
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      initContainers:
        - name: helper
          image: busybox
          restartPolicy: Always
          command:
            - sh
            - -c
            - |
              trap 'echo TERM >> {dir}/helper; exit 0' TERM
              if [ ! -e {dir}/crashed ] && [ "$CRASH_FIRST" = yes ]; then touch {dir}/crashed; exit 1; fi
              echo up >> {dir}/helper
              touch {dir}/ready
              while :; do sleep 0.1; done
          env:
            - name: CRASH_FIRST
              value: "no"
      containers:
        - name: main
          image: busybox
          command: ["sh", "-c", "while [ ! -e {dir}/ready ]; do sleep 0.05; done; echo main done"]
"#;

#[test]
fn a_sidecar_runs_beside_the_main_container_and_is_stopped_when_it_ends() {
    let dir = scratch();
    let run = run(dir.path(), SIDECAR_JOB, &["-o", "json"]);
    run.expect_code(0);
    assert_eq!(run.job()["status"]["succeeded"], 1, "{}", run.context());
    // Started before the main container, stopped by SIGTERM once it ended, not left to the
    // grace period's SIGKILL.
    let helper = std::fs::read_to_string(dir.path().join("helper")).unwrap();
    assert_eq!(helper, "up\nTERM\n");
    let pods = stored_pods(dir.path());
    let status = &pods[0]["status"];
    assert_eq!(status["phase"], "Succeeded");
    let sidecar = &status["initContainerStatuses"][0];
    assert_eq!(sidecar["name"], "helper");
    assert_eq!(sidecar["state"]["terminated"]["exitCode"], 0);
    assert_eq!(sidecar["restartCount"], 0);
}

#[test]
fn a_sidecar_that_crashes_is_restarted_though_the_pod_never_restarts() {
    let dir = scratch();
    let manifest = SIDECAR_JOB.replace("value: \"no\"", "value: \"yes\"");
    let run = run(
        dir.path(),
        &manifest,
        &["-o", "json", "--backoff-base", "100ms"],
    );
    run.expect_code(0);
    assert_eq!(run.job()["status"]["succeeded"], 1, "{}", run.context());
    let pods = stored_pods(dir.path());
    assert_eq!(pods.len(), 1, "the pod was not replaced");
    let sidecar = &pods[0]["status"]["initContainerStatuses"][0];
    assert_eq!(sidecar["restartCount"], 1);
    assert_eq!(sidecar["lastState"]["terminated"]["exitCode"], 1);
}

#[test]
fn emulating_1_34_a_container_restart_policy_is_refused_outside_init_containers() {
    let dir = scratch();
    let manifest = SIDECAR_JOB.replace(
        "command: [\"sh\", \"-c\", \"while",
        "restartPolicy: Always\n          command: [\"sh\", \"-c\", \"while",
    );
    let run = run(dir.path(), &manifest, &["--emulated-version", "1.34"]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("spec.template.spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"),
        "{}",
        run.context()
    );
}

#[test]
fn several_files_are_one_manifest_and_a_file_of_settings_alone_has_no_job() {
    let dir = scratch();
    let settings = dir.path().join("settings.yaml");
    std::fs::write(
        &settings,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {GREETING: hello}\n",
    )
    .unwrap();
    let job_file = dir.path().join("job.yaml");
    let manifest = job(
        "greet",
        "  completions: 1",
        "echo $GREETING > {dir}/greeting",
    )
    .replace("{dir}", &dir.path().display().to_string())
        + "          envFrom: [{configMapRef: {name: settings}}]\n";
    std::fs::write(&job_file, manifest).unwrap();
    let run = |files: &[&std::path::Path]| {
        let mut command = joblet();
        command.arg("run");
        for file in files {
            command.arg("-f").arg(file);
        }
        Run {
            output: command
                .arg("--state-dir")
                .arg(dir.path().join("state"))
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap(),
        }
    };
    run(&[&settings, &job_file]).expect_code(0);
    let greeting = std::fs::read_to_string(dir.path().join("greeting")).unwrap();
    assert_eq!(greeting, "hello\n");
    let alone = run(&[&settings]);
    alone.expect_code(2);
    assert_eq!(
        alone.stderr(),
        format!("error: {}: no Job in the input\n", settings.display())
    );
}

#[test]
fn resource_fields_reach_the_process_from_limits_or_the_machine() {
    let dir = scratch();
    let manifest = job(
        "sized",
        "  completions: 1",
        "echo $CPU_M $MEM_MI $NODE_CPUS > {dir}/sized",
    ) + r#"          resources: {limits: {cpu: 250m}, requests: {memory: 48Mi}}
          env:
            - {name: CPU_M, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}
            - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1Mi}}}
            - {name: NODE_CPUS, valueFrom: {resourceFieldRef: {resource: limits.cpu, containerName: helper}}}
      initContainers:
        - {name: helper, image: busybox, command: ["true"]}
"#;
    run(dir.path(), &manifest, &[]).expect_code(0);
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("sized")).unwrap(),
        format!("250 48 {cpus}\n")
    );
}

#[test]
fn piped_output_says_why_a_pod_failed_and_when_a_container_backs_off() {
    let dir = scratch();
    let manifest = job(
        "flaky",
        "  backoffLimit: 1\n  completions: 1",
        "[ -e {dir}/second ] && exit 0; touch {dir}/second; echo broken >&2; exit 3",
    );
    let run = run(dir.path(), &manifest, &["--backoff-base", "100ms"]);
    run.expect_code(0);
    let out = run.stdout();
    let failed = out
        .lines()
        .find(|l| l.contains("PodFailed"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(failed.contains("Warning  PodFailed"), "{out}");
    assert!(
        failed.contains("pod/flaky-")
            && failed.ends_with("container main exited with code 3 (Error)"),
        "{out}"
    );

    // A container restarted in place: at once the first time, then in back-off, which the
    // kubelet's BackOff event says, about the pod.
    let dir = scratch();
    let twice = job(
        "restarts",
        "  backoffLimit: 3\n  completions: 1",
        "echo x >> {dir}/runs; [ $(wc -l < {dir}/runs) -ge 3 ] || exit 3",
    );
    let run = crate::util::run(dir.path(), &on_failure(twice), &["--backoff-base", "100ms"]);
    run.expect_code(0);
    let out = run.stdout();
    assert!(
        out.lines().any(|l| l.contains("Warning  BackOff")
            && l.contains("pod/restarts-")
            && l.contains("Back-off restarting failed container main in pod restarts-")),
        "{out}"
    );
}

#[test]
fn a_job_with_parallelism_zero_is_reported_instead_of_waited_for() {
    let dir = scratch();
    let manifest = job(
        "idle",
        "  parallelism: 0\n  completions: 2",
        "touch {dir}/ran",
    );
    let run = run(dir.path(), &manifest, &[]);
    run.expect_code(3);
    assert!(
        run.stderr()
            .contains("job idle: parallelism is 0: none of its pods runs until it is raised"),
        "{}",
        run.context()
    );
    assert!(!dir.path().join("ran").exists());
}

/// `joblet run` on a terminal (a pseudo-terminal from `script`): what the progress view
/// leaves on the screen, escapes and carriage returns kept.
fn on_a_terminal(dir: &std::path::Path, manifest: &str) -> String {
    let file = dir.join("job.yaml");
    std::fs::write(&file, manifest.replace("{dir}", &dir.display().to_string())).unwrap();
    let command = format!(
        "{} run -f {} --state-dir {} --backoff-base 50ms",
        env!("CARGO_BIN_EXE_joblet"),
        file.display(),
        dir.join("state").display()
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("COLUMNS", "150")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) gives the run a terminal");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn on_a_terminal_a_failed_jobs_bar_ends_where_it_stopped_and_failures_are_said() {
    let dir = scratch();
    let manifest = job(
        "half",
        "  completions: 4\n  parallelism: 4\n  completionMode: Indexed\n  backoffLimit: 0",
        "[ $JOB_COMPLETION_INDEX -lt 2 ] || { sleep 0.5; exit 7; }",
    ) + &job("a-longer-name", "  completions: 1", "true").replacen(
        "apiVersion",
        "---\napiVersion",
        1,
    );
    let screen = without_escapes(&on_a_terminal(dir.path(), &manifest));
    // Each bar's last drawing: the failed Job's stays at what succeeded; names aligned.
    let last = |name: &str| {
        screen
            .rsplit(['\r', '\n'])
            .find(|l| l.contains(&format!("{name} [")))
            .unwrap_or_else(|| panic!("no bar for {name}: {screen:?}"))
            .to_string()
    };
    let half = last("half         ");
    assert!(half.contains("] 2/4"), "{half:?}");
    assert!(last("a-longer-name").contains("] 1/1"), "{screen:?}");
    assert!(screen.contains("PodFailed"), "{screen:?}");
    assert!(screen.contains("exited with code 7 (Error)"), "{screen:?}");
    assert!(
        screen.contains("half            Failed     2/4"),
        "{screen:?}"
    );
}

/// Text without its terminal escapes (`ESC [ … letter`).
fn without_escapes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A Job named by `generateName` (samples made for `kubectl create -f`) gets a name as the
/// API server gives one: the prefix and five random characters.
#[test]
fn a_job_with_generate_name_is_named_as_the_api_server_names_it() {
    let dir = scratch();
    let manifest =
        job("unused", "", "true").replace("  name: unused\n", "  generateName: sample-\n");
    let run = run(dir.path(), &manifest, &["-o", "json"]);
    run.expect_code(0);
    let job = run.job();
    let name = job["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("sample-") && name.len() == "sample-".len() + 5,
        "{name}"
    );
    assert_eq!(job["metadata"]["generateName"], "sample-");
    assert_eq!(job["status"]["succeeded"], 1);
}

/// YAML as kubectl reads it (1.1 scalars): a leading-zero number is octal.
#[test]
fn octal_numbers_are_read_as_kubectl_reads_them() {
    let dir = scratch();
    let manifest = job("octal", "  backoffLimit: 010\n", "true");
    let run = run(dir.path(), &manifest, &["-o", "json"]);
    run.expect_code(0);
    assert_eq!(run.job()["spec"]["backoffLimit"], 8);
}
