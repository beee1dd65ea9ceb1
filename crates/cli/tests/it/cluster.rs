//! `joblet run --context` with `joblet serve` as the cluster: the client uses only what any
//! API server offers (create, server-side apply, watches, logs), so the same runs work on a
//! real cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::serve::{wait_for, Server};
use crate::util::{joblet, scratch, Run};

/// `joblet run -f FILE --kubeconfig KUBECONFIG --state-dir DIR/run ARGS…`.
fn run_on(server: &Server, dir: &Path, manifest: &str, args: &[&str]) -> Run {
    Run {
        output: command(&server.kubeconfig, dir, manifest, args)
            .output()
            .unwrap(),
    }
}

fn command(kubeconfig: &Path, dir: &Path, manifest: &str, args: &[&str]) -> Command {
    let file = dir.join("job.yaml");
    std::fs::write(&file, manifest).unwrap();
    let mut command = joblet();
    command
        .args(["run", "-f"])
        .arg(&file)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--state-dir")
        .arg(dir.join("run"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn logs(dir: &Path) -> Vec<(String, String)> {
    let mut logs: Vec<(String, String)> = std::fs::read_dir(dir.join("run/logs"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .map(|p: PathBuf| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    (name, std::fs::read_to_string(&p).unwrap())
                })
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    logs
}

fn names(server: &Server, kind: &str) -> Vec<String> {
    let list = server.json(&["get", kind]);
    (list["items"].as_array().unwrap().iter())
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

const WORK: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: words}
data: {greeting: hello}
---
apiVersion: batch/v1
kind: Job
metadata: {name: work}
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - name: main
        image: busybox
        env:
        - name: GREETING
          valueFrom: {configMapKeyRef: {name: words, key: greeting}}
        command:
        - sh
        - -c
        - |
          flag={dir}/tried-$JOB_COMPLETION_INDEX
          if [ $JOB_COMPLETION_INDEX = 1 ] && [ ! -e $flag ]; then
            touch $flag; echo "index 1 fails once"; exit 1
          fi
          echo "$GREETING from $JOB_COMPLETION_INDEX"
"#;

#[test]
fn a_job_runs_on_the_cluster_and_every_runs_log_stays_after_the_job_is_deleted() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let manifest = WORK.replace("{dir}", &dir.path().display().to_string());
    let run = run_on(&server, dir.path(), &manifest, &["--logs"]);
    run.expect_code(0);
    let stdout = run.stdout();
    // The local run's event lines and summary, from the cluster's watches.
    assert!(
        stdout.contains("SuccessfulCreate       job/work"),
        "{}",
        run.context()
    );
    assert!(
        stdout.contains("Completed              job/work"),
        "{}",
        run.context()
    );
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("work "))
        .unwrap();
    assert!(
        summary.contains("Complete") && summary.contains("3/3"),
        "{summary}"
    );
    assert!(stdout.contains("] hello from 2"), "{}", run.context());
    // The ConfigMap beside the Job was applied, by joblet's field manager.
    let config_map = server.json(&["get", "configmap", "words", "--show-managed-fields"]);
    assert_eq!(
        config_map["metadata"]["managedFields"][0]["manager"],
        "joblet"
    );

    server.ok(&["delete", "job", "work", "--wait=true"]);
    wait_for("the pods to go", Duration::from_secs(20), || {
        names(&server, "pods").is_empty()
    });
    let logs = logs(dir.path());
    let pods = server_pods_named(&logs);
    assert_eq!(pods.len(), 3, "{logs:?}");
    let by_run: Vec<(String, &str)> = (logs.iter())
        .map(|(name, text)| {
            let (_, rest) = name.split_once('_').unwrap();
            let (pod, container_run) = rest.split_once('_').unwrap();
            let index = pod.split('-').nth(1).unwrap();
            (format!("{index}/{container_run}"), text.as_str())
        })
        .collect();
    assert_eq!(
        by_run,
        [
            ("0/main_0.log".to_string(), "hello from 0\n"),
            ("1/main_0.log".to_string(), "index 1 fails once\n"),
            ("1/main_1.log".to_string(), "hello from 1\n"),
            ("2/main_0.log".to_string(), "hello from 2\n"),
        ]
    );
}

fn server_pods_named(logs: &[(String, String)]) -> std::collections::BTreeSet<String> {
    (logs.iter())
        .map(|(name, _)| name.split('_').nth(1).unwrap().to_string())
        .collect()
}

#[test]
fn a_job_that_fails_on_the_cluster_exits_1_with_its_reason() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let manifest = crate::util::job("fails", "  backoffLimit: 1", "echo trying; exit 3");
    let run = run_on(&server, dir.path(), &manifest, &["-o", "json"]);
    run.expect_code(1);
    // The final Job as the cluster shows it.
    let job = run.job();
    assert_eq!(
        job["metadata"]["uid"],
        server.json(&["get", "job", "fails"])["metadata"]["uid"]
    );
    assert_eq!(
        crate::util::condition_reasons(&job),
        [
            "FailureTarget:BackoffLimitExceeded",
            "Failed:BackoffLimitExceeded"
        ]
    );
    assert_eq!(job["status"]["failed"], 2);
    // Without -o, the events say why.
    std::fs::remove_dir_all(dir.path().join("run")).unwrap();
    server.ok(&["delete", "job", "fails"]);
    let run = run_on(&server, dir.path(), &manifest, &[]);
    run.expect_code(1);
    let stdout = run.stdout();
    assert!(
        stdout.contains("container main exited with code 3 (Error)"),
        "{}",
        run.context()
    );
    assert!(
        stdout.contains("BackoffLimitExceeded   job/fails                    Job has reached the specified backoff limit"),
        "{}",
        run.context()
    );
    let logs = logs(dir.path());
    assert_eq!(logs.len(), 2, "both pods' logs: {logs:?}");
    assert!(logs.iter().all(|(_, text)| text == "trying\n"), "{logs:?}");
}

#[test]
fn what_the_server_refuses_is_said_as_kubectl_says_it_and_nothing_is_created() {
    let dir = scratch();
    let server = Server::start(dir.path());
    // Valid for a cluster (any runtime class), refused by this one.
    let manifest = WORK.replace(
        "      restartPolicy: OnFailure",
        "      restartPolicy: OnFailure\n      runtimeClassName: gvisor",
    );
    let run = run_on(&server, dir.path(), &manifest, &[]);
    run.expect_code(2);
    assert_eq!(
        run.stderr().trim(),
        r#"The Job "work" is invalid: spec.template.spec.runtimeClassName: Unsupported value: "gvisor": supported values: "host", "podman", "docker""#
    );
    assert!(names(&server, "jobs").is_empty());
    assert!(
        names(&server, "configmaps").is_empty(),
        "the ConfigMap was only dry-run"
    );
}

#[test]
fn a_manifest_invalid_here_is_refused_before_anything_is_sent() {
    let dir = scratch();
    // No server listens there: the local check speaks first.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kubeconfig_for("https://127.0.0.1:1", "token")).unwrap();
    let manifest = crate::util::job("bad", "  completions: -1", "true");
    let run = Run {
        output: command(&kubeconfig, dir.path(), &manifest, &[])
            .output()
            .unwrap(),
    };
    run.expect_code(2);
    assert!(
        run.stderr()
            .contains("spec.completions: Invalid value: -1: must be greater than or equal to 0"),
        "{}",
        run.context()
    );
    // Valid, but nothing answers: one line naming the context and the server.
    let manifest = crate::util::job("good", "", "true");
    let run = Run {
        output: command(&kubeconfig, dir.path(), &manifest, &[])
            .output()
            .unwrap(),
    };
    run.expect_code(2);
    let stderr = run.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            r#"error: context "elsewhere" (https://127.0.0.1:1): cannot reach the server: "#
        ),
        "{stderr}"
    );
}

#[test]
fn a_wrong_token_is_refused_in_one_line_and_nothing_is_created() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let config = std::fs::read_to_string(&server.kubeconfig).unwrap();
    let wrong = dir.path().join("wrong-kubeconfig");
    let token_line = config
        .lines()
        .find(|l| l.trim().starts_with("token:"))
        .unwrap();
    std::fs::write(
        &wrong,
        config.replace(token_line, "    token: not-the-token"),
    )
    .unwrap();
    let run = Run {
        output: command(&wrong, dir.path(), WORK, &[]).output().unwrap(),
    };
    run.expect_code(2);
    let server_url = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap();
    assert_eq!(
        run.stderr().trim(),
        format!(
            r#"error: context "joblet" ({server_url}): the server refused the credentials: Unauthorized"#
        )
    );
    assert!(names(&server, "jobs").is_empty());
    assert!(names(&server, "configmaps").is_empty());
}

#[test]
fn ctrl_c_deletes_the_jobs_and_waits_for_their_pods() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let manifest = crate::util::job(
        "long",
        "  completions: 4\n  parallelism: 2",
        "echo started; sleep 60",
    );
    // The context named, the kubeconfig found through KUBECONFIG, as kubectl finds it.
    let child = command(&server.kubeconfig, dir.path(), &manifest, &[])
        .env("KUBECONFIG", &server.kubeconfig)
        .args(["--context", "joblet"])
        .spawn()
        .unwrap();
    wait_for("both pods to log", Duration::from_secs(20), || {
        let logs = logs(dir.path());
        logs.len() == 2 && logs.iter().all(|(_, text)| text == "started\n")
    });
    let (code, stderr) = crate::util::interrupt(child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("run interrupted: its Jobs were deleted from the cluster"),
        "{stderr}"
    );
    assert!(names(&server, "jobs").is_empty());
    assert!(
        names(&server, "pods").is_empty(),
        "waited for the pods to go"
    );
}

#[test]
fn a_detached_run_is_attached_to_by_the_same_command_and_a_changed_template_is_refused() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let manifest = crate::util::job(
        "later",
        "  completions: 2",
        "echo working; sleep 1; echo done",
    );
    let detached = run_on(&server, dir.path(), &manifest, &["--detach"]);
    detached.expect_code(0);
    assert_eq!(detached.stdout(), "job.batch/later created\n");
    let stderr = detached.stderr();
    let attach = stderr
        .lines()
        .find_map(|l| l.strip_prefix("detached: attach with: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(
        attach,
        format!(
            "joblet run -f {} --kubeconfig {} --context joblet --namespace default",
            dir.path().join("job.yaml").display(),
            server.kubeconfig.display()
        )
    );
    assert_eq!(
        names(&server, "jobs"),
        ["later"],
        "it runs on without joblet"
    );
    // The printed command, run as it reads (the run directory aside).
    let words: Vec<&str> = attach.split(' ').collect();
    let attached = Run {
        output: joblet()
            .args(&words[1..])
            .arg("--state-dir")
            .arg(dir.path().join("run"))
            .output()
            .unwrap(),
    };
    attached.expect_code(0);
    assert!(
        attached.stderr().contains("attached to job/later"),
        "{}",
        attached.context()
    );
    let summary = attached.stdout();
    let summary = summary
        .lines()
        .rev()
        .find(|l| l.starts_with("later "))
        .unwrap();
    assert!(
        summary.contains("Complete") && summary.contains("2/2"),
        "{summary}"
    );
    let logs = logs(dir.path());
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert!(
        logs.iter().all(|(_, text)| text == "working\ndone\n"),
        "{logs:?}"
    );
    // Another template under the same name is another Job: refused as the server refuses it.
    let changed = manifest.replace("echo working", "echo changed");
    let refused = run_on(&server, dir.path(), &changed, &[]);
    refused.expect_code(2);
    let stderr = refused.stderr();
    assert!(
        stderr.starts_with(r#"The Job "later" is invalid: spec.template: Invalid value: "#)
            && stderr.trim_end().ends_with("field is immutable"),
        "{stderr}"
    );
}

#[test]
fn ctrl_c_on_an_attached_run_leaves_the_job_running_and_returns() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let manifest = crate::util::job("kept", "", "echo started; sleep 300");
    run_on(&server, dir.path(), &manifest, &["--detach"]).expect_code(0);
    let child = command(&server.kubeconfig, dir.path(), &manifest, &[])
        .spawn()
        .unwrap();
    wait_for(
        "the attached run to read the log",
        Duration::from_secs(20),
        || logs(dir.path()).iter().any(|(_, text)| text == "started\n"),
    );
    let asked = std::time::Instant::now();
    let (code, stderr) = crate::util::interrupt(child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("job kept: not created by this run, left running"),
        "{stderr}"
    );
    // Not held until the pod ends (300 s) by its log stream: a hang check, not a speed one.
    assert!(
        asked.elapsed() < Duration::from_secs(60),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(names(&server, "jobs"), ["kept"]);
}

#[test]
fn a_server_dry_run_prints_what_would_be_stored_and_stores_nothing() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let manifest = WORK.replace("{dir}", "/tmp");
    let run = run_on(
        &server,
        dir.path(),
        &manifest,
        &["--dry-run=server", "-o", "json"],
    );
    run.expect_code(0);
    let list: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let kinds: Vec<&str> = (list["items"].as_array().unwrap().iter())
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Job"]);
    let job = &list["items"][1];
    // As the server would store it: defaulted, with its generated selector.
    assert_eq!(job["spec"]["backoffLimit"], 6);
    assert!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"].is_string()
    );
    assert!(names(&server, "jobs").is_empty());
    assert!(names(&server, "configmaps").is_empty());
    // A namespace named twice, differently, is refused as kubectl refuses it.
    let run = run_on(
        &server,
        dir.path(),
        &manifest.replace("{name: work}", "{name: work, namespace: team}"),
        &["--namespace", "other"],
    );
    run.expect_code(2);
    assert!(
        run.stderr().contains(r#"error: the namespace from the provided object "team" does not match the namespace "other". You must pass '--namespace=team' to perform this operation."#),
        "{}",
        run.context()
    );
}

#[test]
fn an_exec_credential_plugin_gives_the_token_and_a_suspended_job_exits_3() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let config = std::fs::read_to_string(&server.kubeconfig).unwrap();
    let token = std::fs::read_to_string(server.state.join("token")).unwrap();
    let plugin = dir.path().join("credential-plugin");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\necho '{{\"apiVersion\": \"client.authentication.k8s.io/v1\", \"kind\": \"ExecCredential\", \"status\": {{\"token\": \"{}\"}}}}'\n",
            token.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let token_line = config
        .lines()
        .find(|l| l.trim().starts_with("token:"))
        .unwrap();
    let exec = format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never",
        plugin.display()
    );
    let with_plugin = dir.path().join("plugin-kubeconfig");
    std::fs::write(&with_plugin, config.replace(token_line, &exec)).unwrap();
    let manifest = crate::util::job("held", "  suspend: true", "echo never");
    let run = Run {
        output: command(&with_plugin, dir.path(), &manifest, &[])
            .output()
            .unwrap(),
    };
    run.expect_code(3);
    let summary = run.stdout();
    let summary = summary
        .lines()
        .rev()
        .find(|l| l.starts_with("held "))
        .unwrap();
    assert!(summary.contains("Suspended"), "{summary}");
    assert_eq!(names(&server, "pods"), Vec::<String>::new());
}

#[test]
fn once_runs_a_cronjobs_next_job_on_the_cluster() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let cron_job = r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: hourly}
spec:
  schedule: "@hourly"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - {name: main, image: busybox, command: ["sh", "-c", "echo on the hour"]}
"#;
    let refused = run_on(&server, dir.path(), cron_job, &[]);
    refused.expect_code(2);
    let run = run_on(&server, dir.path(), cron_job, &["--once"]);
    run.expect_code(0);
    let jobs = names(&server, "jobs");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = server.json(&["get", "job", &jobs[0]]);
    // Without timeZone, the hour in UTC, as a cluster's controller reads it.
    let scheduled = job["metadata"]["annotations"]
        ["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        .as_str()
        .unwrap();
    assert!(scheduled.ends_with(":00:00Z"), "{scheduled}");
    assert!(jobs[0].starts_with("hourly-"), "{jobs:?}");
    let logs = logs(dir.path());
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].1, "on the hour\n");
}

fn kubeconfig_for(server: &str, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: far
  cluster: {{server: \"{server}\", insecure-skip-tls-verify: true}}
users:
- name: someone
  user: {{token: {token}}}
contexts:
- name: elsewhere
  context: {{cluster: far, user: someone}}
current-context: elsewhere
"
    )
}
