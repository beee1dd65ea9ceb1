//! `joblet run --state-dir DIR` run again on the same directory: it continues the same Jobs.

use crate::util::{job, run, scratch};

fn lines(path: &std::path::Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn a_finished_job_is_reported_as_it_ended_and_nothing_runs_again() {
    let dir = scratch();
    let manifest = job("once", "  completions: 2", "echo ran >> {dir}/ran");
    run(dir.path(), &manifest, &["-o", "json"]).expect_code(0);
    let again = run(dir.path(), &manifest, &["-o", "json"]);
    again.expect_code(0);
    assert!(
        again.stderr().contains("job once: resumed"),
        "{}",
        again.context()
    );
    assert_eq!(again.job()["status"]["succeeded"], 2);
    assert_eq!(lines(&dir.path().join("ran")), ["ran", "ran"]);
}

#[test]
fn a_changed_pod_template_is_refused_as_the_api_server_refuses_it() {
    let dir = scratch();
    run(dir.path(), &job("fixed", "  completions: 1", "true"), &[]).expect_code(0);
    let changed = run(
        dir.path(),
        &job("fixed", "  completions: 1", "echo changed >> {dir}/ran"),
        &[],
    );
    changed.expect_code(2);
    let stderr = changed.stderr();
    assert!(
        stderr.contains("Job.batch \"fixed\" is invalid: spec.template: Invalid value:")
            && stderr.contains("field is immutable"),
        "{stderr}"
    );
    assert!(!dir.path().join("ran").exists(), "nothing ran");
    // A mutable field may change: the Job goes on with it.
    let spec = "  completions: 1\n  parallelism: 3";
    let parallel = run(dir.path(), &job("fixed", spec, "true"), &["-o", "json"]);
    parallel.expect_code(0);
    assert_eq!(parallel.job()["spec"]["parallelism"], 3);
}

#[test]
fn retry_failed_reruns_only_the_indexes_that_did_not_succeed() {
    let dir = scratch();
    let manifest = job(
        "reports",
        "  completions: 4\n  parallelism: 4\n  completionMode: Indexed\n  backoffLimitPerIndex: 0",
        "echo $JOB_COMPLETION_INDEX >> {dir}/ran; \
         case $JOB_COMPLETION_INDEX in 1|3) [ -e {dir}/fixed ] || exit 1;; esac",
    );
    let first = run(dir.path(), &manifest, &["-o", "json"]);
    first.expect_code(1);
    assert_eq!(first.job()["status"]["failedIndexes"], "1,3");
    std::fs::write(dir.path().join("fixed"), "").unwrap();
    let retry = run(dir.path(), &manifest, &["-o", "json", "--retry-failed"]);
    retry.expect_code(0);
    assert!(
        retry
            .stderr()
            .contains("job reports: Retrying indexes 1,3 (2 failed pods before the retry)"),
        "{}",
        retry.context()
    );
    let status = &retry.job()["status"];
    assert_eq!(status["completedIndexes"], "0-3");
    assert_eq!(status["succeeded"], 4);
    assert_eq!(status["failedIndexes"], "");
    assert_eq!(
        lines(&dir.path().join("ran")),
        ["0", "1", "1", "2", "3", "3"]
    );
    // Nothing failed is left: a second retry says so, and runs nothing.
    let nothing = run(dir.path(), &manifest, &["--retry-failed"]);
    nothing.expect_code(0);
    assert!(
        nothing.stderr().contains("nothing to retry"),
        "{}",
        nothing.context()
    );
    assert_eq!(lines(&dir.path().join("ran")).len(), 6);
}

#[test]
fn a_state_directory_too_long_for_the_supervisor_socket_is_refused_clearly() {
    let dir = scratch();
    let state = dir.path().join("d".repeat(120));
    let output = crate::util::joblet()
        .args(["run", "-f", "-", "--state-dir"])
        .arg(&state)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(job("long", "", "true").as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is longer than a Unix socket address allows (107 bytes)"),
        "{stderr}"
    );
}
