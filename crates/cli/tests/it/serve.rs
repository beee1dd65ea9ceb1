//! `joblet serve` driven by the real kubectl, as users drive a cluster.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{assert_none_left, job, joblet, processes_with, scratch, Run};

/// A running `joblet serve` on a free port, stopped (SIGTERM) when dropped.
pub struct Server {
    child: Option<Child>,
    pub state: PathBuf,
    pub kubeconfig: PathBuf,
    /// The `web UI:` URL with its one-time sign-in code.
    pub web_ui: String,
    /// Held open: the server's later messages must not meet a closed pipe.
    _stderr: BufReader<std::process::ChildStderr>,
    cache: PathBuf,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        Self::start_in(dir, &dir.join("state"))
    }

    pub fn start_in(dir: &Path, state: &Path) -> Server {
        Self::start_with(dir, state, &[])
    }

    pub fn start_with(dir: &Path, state: &Path, extra: &[&str]) -> Server {
        Self::start_command(joblet(), dir, state, extra)
    }

    /// `joblet serve` started as `command` (the binary, or a wrapper that runs it).
    pub fn start_command(mut command: Command, dir: &Path, state: &Path, extra: &[&str]) -> Server {
        let mut child = command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--backoff-base",
                "200ms",
            ])
            .arg("--state-dir")
            .arg(state)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting joblet serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(kubeconfig) = line.trim().strip_prefix("export KUBECONFIG=") else {
            let output = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            panic!("joblet serve printed {line:?}, and on stderr:\n{stderr}");
        };
        let kubeconfig = kubeconfig.into();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut web_ui = String::new();
        while !web_ui.starts_with("web UI: ") {
            web_ui.clear();
            assert!(stderr.read_line(&mut web_ui).unwrap() > 0, "no web UI line");
        }
        Server {
            child: Some(child),
            state: state.to_path_buf(),
            kubeconfig,
            web_ui: web_ui["web UI: ".len()..].trim().to_string(),
            _stderr: stderr,
            cache: dir.join("kube-cache"),
        }
    }

    /// A kubectl left running (`-w`, `logs -f`); its output is read once it is killed.
    pub fn background(&self, args: &[&str]) -> Child {
        Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", &self.cache)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl is on the machine image")
    }

    pub fn kubectl(&self, args: &[&str]) -> Run {
        self.kubectl_with(args, None)
    }

    pub fn kubectl_with(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = Command::new("kubectl");
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", &self.cache)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("kubectl is on the machine image");
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        Run {
            output: child.wait_with_output().unwrap(),
        }
    }

    /// A copy of the kubeconfig in `dir` whose token is not the server's.
    pub fn kubeconfig_with_a_wrong_token(&self, dir: &Path) -> PathBuf {
        let config = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let token = std::fs::read_to_string(self.state.join("token")).unwrap();
        let wrong = dir.join("wrong-kubeconfig");
        std::fs::write(&wrong, config.replace(token.trim(), "not-the-token")).unwrap();
        wrong
    }

    /// `kubectl` that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.kubectl(args);
        run.expect_code(0);
        run.stdout()
    }

    pub fn apply(&self, manifest: &str) -> String {
        let run = self.kubectl_with(&["apply", "-f", "-"], Some(manifest));
        run.expect_code(0);
        run.stdout()
    }

    /// `kubectl wait --for=condition=complete job/NAME`, within 30 s.
    pub fn wait_complete(&self, job: &str) {
        let job = format!("job/{job}");
        self.ok(&["wait", "--for=condition=complete", &job, "--timeout=30s"]);
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("the server runs").id() as i32
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait; the exit status.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        child.wait().ok()?.code()
    }
}

impl Drop for Server {
    /// Stops a server still running, and then its supervisor (a node shutdown), so that no
    /// test leaves pods behind. One already stopped or killed by the test is left as it is:
    /// its pods may be the next server's.
    fn drop(&mut self) {
        if self.stop().is_some() {
            stop_supervisor(&self.state);
        }
    }
}

/// SIGTERM to the state directory's supervisor, if one runs; waits until it has left.
pub fn stop_supervisor(state: &Path) {
    let Ok(text) = std::fs::read_to_string(state.join("supervisor.pid")) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let pid = nix::unistd::Pid::from_raw(pid);
    if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_err() {
        return;
    }
    wait_for("the supervisor to leave", Duration::from_secs(40), || {
        nix::sys::signal::kill(pid, None).is_err() || is_zombie(pid.as_raw())
    });
}

fn is_zombie(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')')
        .next()
        .is_some_and(|s| s.trim_start().starts_with('Z'))
}

pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kubectl_applies_a_job_and_monitors_it_as_on_a_cluster() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let manifest = job(
        "hello",
        "  completions: 3\n  parallelism: 2",
        "echo hello from $HOSTNAME; sleep 0.3; echo bye",
    );
    assert_eq!(server.apply(&manifest), "job.batch/hello created\n");
    assert_eq!(server.apply(&manifest), "job.batch/hello unchanged\n");
    assert_eq!(
        server.ok(&[
            "wait",
            "--for=condition=complete",
            "job/hello",
            "--timeout=30s"
        ]),
        "job.batch/hello condition met\n"
    );
    let table = server.ok(&["get", "jobs"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].split_whitespace().collect::<Vec<_>>()
            == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "{table}"
    );
    assert!(
        lines[1].starts_with("hello") && lines[1].contains("Complete") && lines[1].contains("3/3"),
        "{table}"
    );
    let wide = server.ok(&["get", "jobs", "-o", "wide"]);
    assert!(
        wide.contains("CONTAINERS")
            && wide.contains("busybox")
            && wide.contains("batch.kubernetes.io/controller-uid="),
        "{wide}"
    );
    let job = server.json(&["get", "job", "hello"]);
    assert_eq!(job["status"]["succeeded"], 3);
    let conditions: Vec<&str> = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(conditions, ["SuccessCriteriaMet", "Complete"]);
    assert_eq!(
        server.ok(&["get", "job", "hello", "-o", "jsonpath={.status.succeeded}"]),
        "3"
    );
    let yaml = server.ok(&["get", "job", "hello", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Job") && yaml.contains("completionMode: NonIndexed"),
        "{yaml}"
    );

    let pods = server.ok(&["get", "pods", "-l", "job-name=hello"]);
    assert_eq!(pods.lines().count(), 4, "{pods}");
    assert!(
        pods.lines()
            .skip(1)
            .all(|l| l.contains("0/1") && l.contains("Completed")),
        "{pods}"
    );
    let name = server.ok(&[
        "get",
        "pods",
        "-l",
        "job-name=hello",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    assert_eq!(
        server.ok(&["logs", &name]),
        format!("hello from {name}\nbye\n")
    );
    assert_eq!(
        server.ok(&["logs", "-f", &name]),
        format!("hello from {name}\nbye\n")
    );
    assert_eq!(server.ok(&["logs", &name, "--tail=1"]), "bye\n");
    assert_eq!(
        server.ok(&["logs", &name, "--since=1h"]),
        format!("hello from {name}\nbye\n")
    );
    let stamped = server.ok(&["logs", &name, "--timestamps"]);
    let created = &job["metadata"]["creationTimestamp"].as_str().unwrap()[..10];
    for (line, text) in stamped
        .lines()
        .zip([format!("hello from {name}"), "bye".to_string()])
    {
        let (time, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest, text);
        // RFC 3339 with nanoseconds, as the kubelet writes: 2026-11-27T03:46:17.123456789Z
        assert!(
            time.starts_with(created) && time.len() == 30 && time.ends_with('Z'),
            "{stamped}"
        );
    }
    let by_job = server.kubectl(&["logs", "job/hello"]);
    by_job.expect_code(0);
    assert!(
        by_job.stdout().starts_with("hello from hello-"),
        "{}",
        by_job.context()
    );

    // describe's column widths vary; compare words.
    let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let describe = words(&server.ok(&["describe", "job", "hello"]));
    for expected in [
        "Pods Statuses: 0 Active (0 Ready) / 3 Succeeded / 0 Failed",
        "Normal SuccessfulCreate",
        "job-controller Created pod: hello-",
        "Normal Completed",
        "Job completed",
    ] {
        assert!(describe.contains(expected), "{expected:?} in\n{describe}");
    }
    let describe_pod = words(&server.ok(&["describe", "pod", &name]));
    for expected in [
        "Controlled By: Job/hello",
        "Reason: Completed",
        "Exit Code: 0",
    ] {
        assert!(
            describe_pod.contains(expected),
            "{expected:?} in\n{describe_pod}"
        );
    }

    assert_eq!(
        server.ok(&["delete", "job", "hello"]),
        "job.batch \"hello\" deleted\n"
    );
    let gone = server.kubectl(&["get", "job", "hello"]);
    assert_eq!(gone.code(), 1);
    assert_eq!(
        gone.stderr(),
        "Error from server (NotFound): jobs.batch \"hello\" not found\n"
    );
    // kubectl cascades: the pods went with the Job.
    let left = server.kubectl(&["get", "pods"]);
    assert_eq!(
        left.stderr(),
        "No resources found in default namespace.\n",
        "{}",
        left.context()
    );
}

#[test]
fn get_jobs_watch_prints_a_row_per_change() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let mut watch = server.background(&["get", "jobs", "-w"]);
    server.apply(&job("watched", "  completions: 2", "sleep 1"));
    server.wait_complete("watched");
    std::thread::sleep(Duration::from_millis(300));
    watch.kill().unwrap();
    let output = String::from_utf8(watch.wait_with_output().unwrap().stdout).unwrap();
    let rows: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("watched"))
        .collect();
    assert!(rows.iter().any(|r| r.contains("Running")), "{output}");
    assert!(
        rows.last().unwrap().contains("Complete") && rows.last().unwrap().contains("2/2"),
        "{output}"
    );
}

#[test]
fn a_pod_that_stops_matching_a_watch_is_deleted_from_it_as_it_was_last_seen() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let watch = |output: &[&str]| {
        let args = ["get", "pods", "-w", "--output-watch-events"];
        let selector = ["--field-selector", "status.phase!=Succeeded"];
        server.background(&[&args[..], output, &selector[..]].concat())
    };
    let (mut objects, mut rows) = (watch(&["-o", "json"]), watch(&[]));
    server.apply(&job("leaving", "", "sleep 1"));
    server.wait_complete("leaving");
    std::thread::sleep(Duration::from_millis(300));
    let stop = |watch: &mut Child| {
        watch.kill().unwrap();
        let mut output = String::new();
        watch
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut output)
            .unwrap();
        output
    };
    let (output, table) = (stop(&mut objects), stop(&mut rows));
    // In a table too: the last row is the pod as it was.
    let last_row: Vec<&str> = table.lines().last().unwrap().split_whitespace().collect();
    assert_eq!(
        (last_row[0], last_row[3]),
        ("DELETED", "Running"),
        "{table}"
    );
    let events: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&output)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let seen: Vec<(&str, &str, i64)> = events
        .iter()
        .map(|e| {
            let object = &e["object"];
            let rv = object["metadata"]["resourceVersion"].as_str().unwrap();
            (
                e["type"].as_str().unwrap(),
                object["status"]["phase"].as_str().unwrap(),
                rv.parse().unwrap(),
            )
        })
        .collect();
    // As upstream's watch cache sends it: the object before the change that made it stop
    // matching, at that change's resourceVersion.
    let (kind, phase, rv) = *seen.last().unwrap();
    assert_eq!((kind, phase), ("DELETED", "Running"), "{seen:?}");
    assert!(seen[..seen.len() - 1].iter().all(|e| e.2 < rv), "{seen:?}");
    let pod = server.json(&["get", "pods", "-l", "job-name=leaving"]);
    let pod = &pod["items"][0];
    assert_eq!(pod["status"]["phase"], "Succeeded");
    let final_rv: i64 = pod["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv <= final_rv, "{seen:?} {final_rv}");
}

#[test]
fn failures_read_as_on_a_cluster() {
    let dir = scratch();
    let server = Server::start(dir.path());
    server.apply(&job(
        "failer",
        "  backoffLimit: 0",
        "echo about to fail; exit 3",
    ));
    assert_eq!(
        server.ok(&[
            "wait",
            "--for=condition=failed",
            "job/failer",
            "--timeout=30s"
        ]),
        "job.batch/failer condition met\n"
    );
    let failed = server.ok(&["get", "pods", "--field-selector=status.phase=Failed"]);
    assert!(
        failed
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("failer-") && l.contains("Error")),
        "{failed}"
    );
    let none = server.kubectl(&["get", "pods", "--field-selector=status.phase=Running"]);
    assert_eq!(none.stderr(), "No resources found in default namespace.\n");
    let status = server.ok(&["get", "jobs"]);
    assert!(
        status.contains("Failed") && status.contains("0/1"),
        "{status}"
    );

    let invalid = server.kubectl_with(
        &["apply", "-f", "-"],
        Some("apiVersion: batch/v1\nkind: Job\nmetadata: {name: invalid}\nspec:\n  completions: -1\n  template:\n    spec:\n      containers: [{name: main, image: busybox, command: [\"true\"]}]\n"),
    );
    assert_eq!(invalid.code(), 1);
    assert_eq!(
        invalid.stderr(),
        "The Job \"invalid\" is invalid: \n* spec.completions: Invalid value: -1: must be greater than or equal to 0\n* spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"\n"
    );
    let unknown = server.kubectl_with(
        &["create", "-f", "-"],
        Some(&job("strict", "  bogusField: 1", "true")),
    );
    assert_eq!(unknown.code(), 1);
    assert!(
        unknown.stderr().contains("Error from server (BadRequest): error when creating \"STDIN\": strict decoding error: unknown field \"spec.bogusField\""),
        "{}",
        unknown.context()
    );
    let mounted = server.kubectl_with(
        &["apply", "-f", "-"],
        Some(&format!(
            "{}          volumeMounts: [{{name: scratch, mountPath: /work}}]\n      volumes: [{{name: scratch, emptyDir: {{}}}}]\n",
            job("mounted", "", "true")
        )),
    );
    assert_eq!(mounted.code(), 1);
    assert_eq!(
        mounted.stderr(),
        "The Job \"mounted\" is invalid: spec.template.spec.containers[0].volumeMounts: Forbidden: joblet runs containers as host processes and cannot mount volumes: \"/work\" would be the host's own directory; --runtime podman|docker or runtimeClassName: podman|docker mounts them\n"
    );
    let probed = server.kubectl_with(
        &["create", "-f", "-"],
        Some(&format!(
            "{}          livenessProbe: {{exec: {{command: [\"true\"]}}}}\n",
            job("probed", "", "true")
        )),
    );
    assert!(
        probed.stderr().contains(
            "Warning: spec.template.spec.containers[0].livenessProbe: ignored: joblet runs no probes or hooks"
        ) && probed.stdout().contains("job.batch/probed created"),
        "{}",
        probed.context()
    );
    let missing = server.kubectl(&["delete", "job", "nope"]);
    assert_eq!(
        missing.stderr(),
        "Error from server (NotFound): jobs.batch \"nope\" not found\n"
    );
    let duplicate = server.kubectl_with(&["create", "-f", "-"], Some(&job("failer", "", "true")));
    assert!(duplicate.stderr().contains("Error from server (AlreadyExists): error when creating \"STDIN\": jobs.batch \"failer\" already exists"), "{}", duplicate.context());
}

/// client-go's event correlator: a Job's first nine `SuccessfulCreate`s as they are, the
/// later ones one combined event, and 25 events from the controller about the Job in all
/// (then one per 5 minutes), so `Completed` is not among them, as on a cluster.
#[test]
fn a_big_jobs_events_are_combined_and_limited_as_client_go_records_them() {
    let dir = scratch();
    let server = Server::start(dir.path());
    server.apply(&job("many", "  completions: 40\n  parallelism: 10", "true"));
    server.wait_complete("many");
    let events = server.json(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=Job,involvedObject.name=many",
    ]);
    let events = events["items"].as_array().unwrap();
    let (combined, plain): (Vec<_>, Vec<_>) = events.iter().partition(|e| {
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("(combined from similar events): Created pod: many-")
    });
    assert_eq!(plain.len(), 9, "{events:?}");
    assert!(plain
        .iter()
        .all(|e| e["reason"] == "SuccessfulCreate" && e["count"] == 1));
    assert_eq!(combined.len(), 1, "{events:?}");
    assert_eq!(
        combined[0]["count"], 16,
        "25 events about the Job, 9 of them plain"
    );
    let describe = server.ok(&["describe", "job/many"]);
    assert!(
        describe.contains("(combined from similar events): Created pod: many-"),
        "{describe}"
    );
}

#[test]
fn patch_suspends_and_resumes_a_running_job() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let marker = format!("suspend-marker-{}", std::process::id());
    server.apply(&job(
        "pausable",
        "  completions: 2\n  parallelism: 2",
        &format!("export MARK={marker}; sleep 3"),
    ));
    wait_for("pods running", Duration::from_secs(10), || {
        processes_with(&marker).len() >= 2
    });
    assert_eq!(
        server.ok(&[
            "patch",
            "job",
            "pausable",
            "-p",
            r#"{"spec":{"suspend":true}}"#
        ]),
        "job.batch/pausable patched\n"
    );
    wait_for("pods stopped", Duration::from_secs(10), || {
        processes_with(&marker).is_empty()
    });
    let job = server.json(&["get", "job", "pausable"]);
    let suspended = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Suspended" && c["status"] == "True");
    assert!(suspended, "{job}");
    assert!(server.ok(&["get", "jobs"]).contains("Suspended"));
    server.ok(&[
        "patch",
        "job",
        "pausable",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/suspend","value":false}]"#,
    ]);
    server.wait_complete("pausable");
    let job = server.json(&["get", "job", "pausable"]);
    assert_eq!(job["status"]["succeeded"], 2);
    // The template cannot change, as upstream.
    let immutable = server.kubectl(&[
        "patch",
        "job",
        "pausable",
        "--type=merge",
        "-p",
        r#"{"spec":{"completions":5}}"#,
    ]);
    assert_eq!(
        immutable.stderr(),
        "The Job \"pausable\" is invalid: spec.completions: Invalid value: 5: field is immutable\n"
    );
}

#[test]
fn server_side_apply_owns_fields_drops_what_it_stops_applying_and_reports_conflicts() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let manifest = |labels: &str, parallelism: u32| {
        job(
            "owned",
            &format!("  suspend: true\n  parallelism: {parallelism}"),
            "true",
        )
        .replace(
            "  name: owned\n",
            &format!("  name: owned\n  labels:\n{labels}"),
        )
    };
    let apply = |manifest: String, extra: &[&str]| {
        let mut args = vec!["apply", "--server-side", "-f", "-"];
        args.extend(extra);
        server.kubectl_with(&args, Some(&manifest))
    };
    let first = apply(manifest("    app: x\n    tier: batch\n", 2), &[]);
    first.expect_code(0);
    assert_eq!(first.stdout(), "job.batch/owned serverside-applied\n");
    server.ok(&[
        "patch",
        "job",
        "owned",
        "-p",
        r#"{"spec":{"parallelism":3}}"#,
    ]);

    // The next apply no longer sets `tier`, and sets parallelism, which kubectl-patch owns.
    let refused = apply(manifest("    app: x\n", 2), &[]);
    refused.expect_code(1);
    let stderr = refused.stderr();
    assert!(
        stderr.starts_with(
            "error: Apply failed with 1 conflict: conflict with \"kubectl-patch\" using batch/v1 at "
        ) && stderr.contains(": .spec.parallelism\n"),
        "{stderr}"
    );
    let unchanged = server.json(&["get", "job", "owned"]);
    assert_eq!(unchanged["spec"]["parallelism"], 3);
    assert_eq!(unchanged["metadata"]["labels"]["tier"], "batch");

    apply(manifest("    app: x\n", 2), &["--force-conflicts"]).expect_code(0);
    let owned_job = server.json(&["get", "job", "owned", "--show-managed-fields"]);
    assert_eq!(owned_job["spec"]["parallelism"], 2);
    assert_eq!(
        owned_job["metadata"]["labels"],
        serde_json::json!({"app": "x"})
    );
    let managers: Vec<(&str, &str)> = owned_job["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap(),
                e["operation"].as_str().unwrap(),
            )
        })
        .collect();
    // kubectl-patch owned only parallelism, which the forced apply took.
    assert_eq!(managers, [("kubectl", "Apply")]);
    let owned = &owned_job["metadata"]["managedFields"][0]["fieldsV1"];
    assert_eq!(
        owned["f:metadata"]["f:labels"],
        serde_json::json!({".": {}, "f:app": {}})
    );
    assert_eq!(owned["f:spec"]["f:parallelism"], serde_json::json!({}));

    // A Job managed by client-side apply moves to server-side apply without conflicts on
    // what it last applied, as kubectl and the API server do it.
    let client_side = job("moved", "  suspend: true\n  parallelism: 2", "true");
    server.apply(&client_side);
    let moved = server.kubectl_with(
        &["apply", "--server-side", "-f", "-"],
        Some(&client_side.replace("parallelism: 2", "parallelism: 4")),
    );
    moved.expect_code(0);
    let moved_job = server.json(&["get", "job", "moved", "--show-managed-fields"]);
    assert_eq!(moved_job["spec"]["parallelism"], 4);
    let managers: Vec<&str> = moved_job["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert!(
        !managers.contains(&"kubectl-client-side-apply"),
        "{managers:?}"
    );
    assert!(managers.contains(&"kubectl"), "{managers:?}");
}

#[test]
fn discovery_explain_namespaces_and_credentials() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let resources = server.ok(&["api-resources"]);
    for row in [
        ("jobs", "batch/v1", "Job"),
        ("pods", "v1", "Pod"),
        ("events", "v1", "Event"),
    ] {
        assert!(
            resources.lines().any(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                cells.first() == Some(&row.0)
                    && cells.contains(&row.1)
                    && cells.last() == Some(&row.2)
            }),
            "{row:?} in\n{resources}"
        );
    }
    let explain = server.ok(&["explain", "job.spec.backoffLimit"]);
    assert!(
        explain.contains("FIELD: backoffLimit <integer>")
            && explain.contains("Specifies the number of retries"),
        "{explain}"
    );

    let namespace = server.kubectl_with(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n"),
    );
    assert_eq!(
        namespace.stdout(),
        "namespace/team-a created\n",
        "{}",
        namespace.context()
    );
    let created = server.kubectl(&["get", "ns", "team-a"]);
    assert_eq!(created.code(), 0, "{}", created.context());
    let missing = server.kubectl_with(
        &["apply", "-n", "team-b", "-f", "-"],
        Some(&job("x", "", "true")),
    );
    assert!(
        missing.stderr().contains("namespaces \"team-b\" not found"),
        "{}",
        missing.context()
    );

    // Everything in the state directory is the owner's alone, the kubeconfig included.
    use std::os::unix::fs::PermissionsExt;
    for file in ["kubeconfig", "token", "pki/ca.key", "pki/server.key"] {
        let mode = std::fs::metadata(server.state.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file}: {mode:o}");
    }
    // A wrong token is refused, as a cluster refuses it.
    let wrong = server.kubeconfig_with_a_wrong_token(dir.path());
    let refused = Command::new("kubectl")
        .env("KUBECONFIG", &wrong)
        .env("KUBECACHEDIR", dir.path().join("other-cache"))
        .args(["get", "jobs"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("You must be logged in to the server"),
        "{refused:?}"
    );
    let ready = server.ok(&["get", "--raw", "/readyz"]);
    assert_eq!(ready, "ok");
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let dir = scratch();
    let _first = Server::start(dir.path());
    let second = joblet()
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&second.stderr),
        format!(
            "error: another joblet is serving state directory {}\n",
            dir.path().join("state").display()
        )
    );
}

#[test]
fn a_killed_server_resumes_its_jobs_on_restart() {
    let dir = scratch();
    let mut server = Server::start(dir.path());
    server.apply(&job(
        "resumable",
        "  completions: 6\n  parallelism: 2\n  completionMode: Indexed",
        "sleep 0.3",
    ));
    wait_for("two completions", Duration::from_secs(20), || {
        server.json(&["get", "job", "resumable"])["status"]["succeeded"]
            .as_i64()
            .unwrap_or(0)
            >= 2
    });
    server.kill();
    let before = dir.path().join("state");
    let server = Server::start_in(dir.path(), &before);
    server.wait_complete("resumable");
    let job = server.json(&["get", "job", "resumable"]);
    assert_eq!(job["status"]["succeeded"], 6, "{job}");
    assert_eq!(job["status"]["completedIndexes"], "0-5", "{job}");
}

#[test]
fn config_maps_and_secrets_outlive_a_restart_of_the_server() {
    let dir = scratch();
    let mut server = Server::start(dir.path());
    server.ok(&["create", "configmap", "kept", "--from-literal=MODE=fast"]);
    server.ok(&[
        "create",
        "secret",
        "generic",
        "kept",
        "--from-literal=TOKEN=t0k",
    ]);
    server.kill();
    let server = Server::start_in(dir.path(), &dir.path().join("state"));
    assert_eq!(
        server.ok(&["get", "cm,secrets", "-o", "name"]),
        "configmap/kept\nsecret/kept\n"
    );
    // The node has them too: a pod started after the restart reads both.
    server.apply(
        &(job("after-restart", "", "test \"$MODE:$TOKEN\" = fast:t0k")
            + "          envFrom: [{configMapRef: {name: kept}}, {secretRef: {name: kept}}]\n"),
    );
    server.wait_complete("after-restart");
}

#[test]
fn the_official_python_client_creates_lists_and_watches_a_job() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/python_client.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(&server.kubeconfig)
        .output()
        .expect("python3 runs (scripts/test.sh installs the kubernetes client)");
    let run = Run { output };
    run.expect_code(0);
    assert_eq!(
        run.stdout(),
        "created py-job 6\nlisted ['py-job']\nwatched py-job succeeded 2\nconditions ['SuccessCriteriaMet', 'Complete']\nlog from python\nagain 409 Conflict\nremaining []\n",
        "{}",
        run.context()
    );
}

#[test]
fn an_evicted_pod_is_disrupted_and_a_failure_policy_can_ignore_it() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let marker = format!("evict-marker-{}", std::process::id());
    let manifest = job(
        "evictable",
        "  backoffLimit: 0\n  podFailurePolicy:\n    rules:\n      - action: Ignore\n        onPodConditions: [{type: DisruptionTarget}]",
        &format!("export MARK={marker}; if [ -e {dir}/second ]; then exit 0; fi; touch {dir}/second; sleep 30", dir = dir.path().display()),
    );
    server.apply(&manifest);
    wait_for("the first pod running", Duration::from_secs(10), || {
        !processes_with(&marker).is_empty()
    });
    let pod = server.ok(&[
        "get",
        "pods",
        "-l",
        "job-name=evictable",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let eviction = dir.path().join("eviction.json");
    std::fs::write(
        &eviction,
        format!(r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"default"}}}}"#),
    )
    .unwrap();
    let path = format!("/api/v1/namespaces/default/pods/{pod}/eviction");
    server.ok(&["create", "--raw", &path, "-f", eviction.to_str().unwrap()]);
    // Without the Ignore rule, backoffLimit 0 would fail the Job on this pod.
    server.wait_complete("evictable");
    let job = server.json(&["get", "job", "evictable"]);
    assert_eq!(
        (
            job["status"]["succeeded"].as_i64(),
            job["status"]["failed"].as_i64()
        ),
        (Some(1), None),
        "{job}"
    );
    assert!(processes_with(&marker).is_empty());
}

#[test]
fn logs_follow_a_pod_from_before_it_starts_to_its_end() {
    let dir = scratch();
    let server = Server::start(dir.path());
    server.apply(&job("streamer", "", "echo one; sleep 1; echo two"));
    // Straight after apply: kubectl waits for the pod, the server for the container.
    let started = Instant::now();
    let followed = server.kubectl(&["logs", "-f", "job/streamer"]);
    followed.expect_code(0);
    assert_eq!(followed.stdout(), "one\ntwo\n");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "it followed the pod to its end"
    );
}

#[test]
fn a_restarted_server_kills_no_pod_and_the_job_goes_on() {
    let dir = scratch();
    let state = dir.path().join("state");
    let mut server = Server::start(dir.path());
    let marker = format!("restart-marker-{}", std::process::id());
    server.apply(&job(
        "restarted",
        "  completions: 12\n  parallelism: 4\n  completionMode: Indexed\n  backoffLimit: 0",
        &format!(
            "export MARK={marker}; echo $JOB_COMPLETION_INDEX >> {dir}/runs; echo begin $JOB_COMPLETION_INDEX; sleep 1; echo end $JOB_COMPLETION_INDEX",
            dir = dir.path().display()
        ),
    ));
    wait_for(
        "a completion and pods running",
        Duration::from_secs(20),
        || {
            let job = server.json(&["get", "job", "restarted"]);
            job["status"]["succeeded"].as_i64().unwrap_or(0) >= 1
                && !processes_with(&marker).is_empty()
        },
    );
    assert_eq!(server.stop(), Some(0));
    assert!(
        !processes_with(&marker).is_empty(),
        "the pods run on after SIGTERM"
    );
    let server = Server::start_in(dir.path(), &state);
    server.wait_complete("restarted");
    let job = server.json(&["get", "job", "restarted"]);
    assert_eq!(job["status"]["succeeded"], 12, "{job}");
    assert_eq!(job["status"].get("failed"), None, "no pod failed: {job}");
    let mut runs = crate::util::numbers(&dir.path().join("runs"));
    runs.sort();
    assert_eq!(runs, (0..12).collect::<Vec<i64>>(), "every index ran once");
    let pods = server.json(&["get", "pods", "-l", "job-name=restarted"]);
    for pod in pods["items"].as_array().unwrap() {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .unwrap();
        assert_eq!(
            server.ok(&["logs", name]),
            format!("begin {index}\nend {index}\n"),
            "the log of {name} is whole"
        );
    }
}

#[test]
fn a_server_stopped_with_stop_pods_on_exit_disrupts_its_pods_and_resumes_the_job() {
    let dir = scratch();
    let state = dir.path().join("state");
    let mut server = Server::start_with(dir.path(), &state, &["--stop-pods-on-exit"]);
    let marker = format!("shutdown-marker-{}", std::process::id());
    // The first attempt is cut by the shutdown; the policy ignores disruptions, so with
    // backoffLimit 0 the Job still completes on the retry.
    let manifest = job(
        "survivor",
        "  backoffLimit: 0\n  podFailurePolicy:\n    rules:\n      - action: Ignore\n        onPodConditions: [{type: DisruptionTarget}]",
        &format!("export MARK={marker}; if [ -e {dir}/again ]; then exit 0; fi; touch {dir}/again; sleep 30", dir = dir.path().display()),
    );
    server.apply(&manifest);
    wait_for("the pod running", Duration::from_secs(10), || {
        !processes_with(&marker).is_empty()
    });
    assert_eq!(server.stop(), Some(0));
    assert!(
        processes_with(&marker).is_empty(),
        "SIGTERM with --stop-pods-on-exit stops every pod"
    );
    let server = Server::start_in(dir.path(), &state);
    server.wait_complete("survivor");
    let job = server.json(&["get", "job", "survivor"]);
    assert_eq!(
        (
            job["status"]["succeeded"].as_i64(),
            job["status"]["failed"].as_i64()
        ),
        (Some(1), None),
        "{job}"
    );
    let pods = server.json(&["get", "pods", "-l", "job-name=survivor"]);
    let disrupted: Vec<&serde_json::Value> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| crate::util::disrupted_by_node_shutdown(p))
        .collect();
    assert_eq!(disrupted.len(), 1, "{pods}");
}

#[test]
fn ttl_deletes_a_finished_job_and_delete_f_cascades() {
    let dir = scratch();
    let server = Server::start(dir.path());
    server.apply(&job("shortlived", "  ttlSecondsAfterFinished: 1", "true"));
    assert_eq!(
        server.ok(&["wait", "--for=delete", "job/shortlived", "--timeout=30s"]),
        "job.batch/shortlived condition met\n"
    );
    let pods = server.kubectl(&["get", "pods", "-l", "job-name=shortlived"]);
    assert_eq!(pods.stderr(), "No resources found in default namespace.\n");

    let file = dir.path().join("job.yaml");
    std::fs::write(&file, job("from-file", "  completions: 2", "true")).unwrap();
    let path = file.to_str().unwrap();
    assert_eq!(
        server.ok(&["create", "-f", path]),
        "job.batch/from-file created\n"
    );
    server.wait_complete("from-file");
    assert_eq!(
        server.ok(&["delete", "-f", path]),
        "job.batch \"from-file\" deleted\n"
    );
    let pods = server.kubectl(&["get", "pods"]);
    assert_eq!(pods.stderr(), "No resources found in default namespace.\n");
}

#[test]
fn events_go_after_the_event_ttl() {
    let dir = scratch();
    let server = Server::start_with(
        dir.path(),
        &dir.path().join("state"),
        &["--event-ttl", "1s"],
    );
    server.apply(&job("noted", "", "true"));
    server.wait_complete("noted");
    let events = server.ok(&["get", "events"]);
    assert!(events.contains("job/noted"), "{events}");
    wait_for("events to expire", Duration::from_secs(10), || {
        server.kubectl(&["get", "events"]).stderr() == "No resources found in default namespace.\n"
    });
}

/// The recipe's "Monitor Jobs" commands, on the recipe's own example.
#[test]
fn the_recipes_monitor_commands_work_on_its_example() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let mut watch = server.background(&["get", "jobs", "-w"]);
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/image-resize.yaml"
    );
    assert_eq!(
        server.ok(&["apply", "-f", example]),
        "job.batch/image-resize created\n"
    );
    server.ok(&[
        "wait",
        "--for=condition=complete",
        "job/image-resize",
        "--timeout=60s",
    ]);
    let jobs = server.ok(&["get", "jobs"]);
    assert!(
        jobs.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("image-resize") && l.contains("10/10")),
        "{jobs}"
    );
    let pods = server.ok(&["get", "pods", "-l", "job-name=image-resize"]);
    assert_eq!(
        pods.lines().filter(|l| l.contains("Completed")).count(),
        10,
        "{pods}"
    );
    let failed = server.kubectl(&[
        "get",
        "pods",
        "-l",
        "job-name=image-resize",
        "--field-selector=status.phase=Failed",
    ]);
    assert_eq!(
        failed.stderr(),
        "No resources found in default namespace.\n"
    );
    std::thread::sleep(Duration::from_millis(300));
    watch.kill().unwrap();
    let watched = String::from_utf8(watch.wait_with_output().unwrap().stdout).unwrap();
    let last = watched
        .lines()
        .rev()
        .find(|l| l.starts_with("image-resize"));
    assert!(
        last.is_some_and(|l| l.contains("Complete") && l.contains("10/10")),
        "{watched}"
    );
}

/// The generator commands send protobuf bodies.
#[test]
fn kubectl_create_job_and_namespace_from_the_command_line() {
    let dir = scratch();
    let server = Server::start(dir.path());
    assert_eq!(
        server.ok(&["create", "namespace", "team-c"]),
        "namespace/team-c created\n"
    );
    assert_eq!(
        server.ok(&[
            "create",
            "job",
            "cj",
            "-n",
            "team-c",
            "--image=busybox:1.36",
            "--",
            "echo",
            "hi"
        ]),
        "job.batch/cj created\n"
    );
    server.ok(&[
        "wait",
        "-n",
        "team-c",
        "--for=condition=complete",
        "job/cj",
        "--timeout=30s",
    ]);
    assert_eq!(server.ok(&["logs", "-n", "team-c", "job/cj"]), "hi\n");
}

#[test]
fn pods_outlive_a_killed_server_and_the_next_one_adopts_them() {
    let dir = scratch();
    let state = dir.path().join("state");
    let mut server = Server::start(dir.path());
    let marker = format!("adopted-marker-{}", std::process::id());
    server.apply(&job(
        "adopted",
        "  backoffLimit: 0",
        &format!(
            "echo run >> {dir}/runs; export MARK={marker}; echo started; sleep 1.5; echo finished",
            dir = dir.path().display()
        ),
    ));
    let long = format!("adopted-long-{}", std::process::id());
    server.apply(&job("long", "", &format!("export MARK={long}; sleep 60")));
    wait_for("the pods running", Duration::from_secs(10), || {
        !processes_with(&marker).is_empty() && !processes_with(&long).is_empty()
    });
    server.kill();
    let mut server = Server::start_in(dir.path(), &state);
    // An adopted pod is still the server's to stop.
    server.ok(&["delete", "job", "long"]);
    assert_none_left(&long);
    server.wait_complete("adopted");
    let job = server.json(&["get", "job", "adopted"]);
    assert_eq!(job["status"]["succeeded"], 1);
    assert_eq!(job["status"].get("failed"), None, "{job}");
    let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap();
    assert_eq!(runs, "run\n", "the pod ran once");
    assert_eq!(server.ok(&["logs", "job/adopted"]), "started\nfinished\n");
    // Once the server stops, so does the supervisor: nothing is left behind.
    assert_eq!(server.stop(), Some(0));
    assert_none_left(&state.display().to_string());
}

#[test]
fn a_killed_supervisor_fails_its_pods_as_a_failed_node_does() {
    let dir = scratch();
    let state = dir.path().join("state");
    let server = Server::start(dir.path());
    let marker = format!("orphan-marker-{}", std::process::id());
    server.apply(&job(
        "orphaned",
        "  backoffLimit: 1",
        &format!(
            "if [ -e {dir}/again ]; then exit 0; fi; touch {dir}/again; export MARK={marker}; sleep 30",
            dir = dir.path().display()
        ),
    ));
    wait_for("the pod running", Duration::from_secs(10), || {
        !processes_with(&marker).is_empty()
    });
    // The container's start must be recorded before the supervisor dies: a pod recorded
    // only as Pending names no process group to end (see the README's durability notes).
    wait_for("the pod recorded running", Duration::from_secs(10), || {
        let pods = server.json(&["get", "pods", "-l", "job-name=orphaned"]);
        pods["items"][0]["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    let supervisor: Vec<i32> = processes_with(&state.display().to_string())
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline.split(|b| *b == 0).any(|arg| arg == b"supervise")
        })
        .collect();
    assert_eq!(supervisor.len(), 1, "one supervisor per state directory");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The server notices, starts a new supervisor and ends what the old one left: on a busy
    // machine that takes more than the moment `assert_none_left` allows.
    wait_for(
        "the orphaned processes ended",
        Duration::from_secs(15),
        || processes_with(&marker).is_empty(),
    );
    server.wait_complete("orphaned");
    let job = server.json(&["get", "job", "orphaned"]);
    assert_eq!(job["status"]["failed"], 1);
    let pods = server.json(&["get", "pods", "-l", "job-name=orphaned"]);
    let lost = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["status"]["phase"] == "Failed")
        .expect("the lost pod is recorded failed");
    let disrupted = lost["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "DisruptionTarget" && c["status"] == "True");
    assert!(disrupted, "{lost}");
}

#[test]
fn sigterm_to_the_supervisor_is_a_node_shutdown() {
    let dir = scratch();
    let state = dir.path().join("state");
    let mut server = Server::start(dir.path());
    let marker = format!("node-shutdown-marker-{}", std::process::id());
    server.apply(&job(
        "stranded",
        "  backoffLimit: 0",
        &format!("export MARK={marker}; sleep 60"),
    ));
    wait_for("the pod running", Duration::from_secs(10), || {
        !processes_with(&marker).is_empty()
    });
    assert_eq!(server.stop(), Some(0));
    assert!(!processes_with(&marker).is_empty(), "left running");
    stop_supervisor(&state);
    assert_none_left(&marker);
    let server = Server::start_in(dir.path(), &state);
    server.ok(&[
        "wait",
        "--for=condition=failed",
        "job/stranded",
        "--timeout=30s",
    ]);
    let pods = server.json(&["get", "pods", "-l", "job-name=stranded"]);
    let pod = &pods["items"][0];
    assert_eq!(pod["status"]["phase"], "Failed", "{pod}");
    assert!(crate::util::disrupted_by_node_shutdown(pod), "{pod}");
}

/// How many descriptors a process has open.
fn open_descriptors(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A server started under `prlimit --nofile=LIMITS`, and the address it listens on.
fn server_with_open_files(dir: &Path, limits: &str) -> (Server, String) {
    let mut limited = Command::new("prlimit");
    limited
        .arg(format!("--nofile={limits}"))
        .arg(env!("CARGO_BIN_EXE_joblet"));
    let server = Server::start_command(limited, dir, &dir.join("state"), &[]);
    let config = std::fs::read_to_string(&server.kubeconfig).unwrap();
    let address = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .unwrap()
        .to_string();
    (server, address)
}

#[test]
fn hostile_clients_cannot_starve_the_server_of_descriptors_or_wedge_it() {
    let dir = scratch();
    // The usual soft limit of 1,024 open files: the server raises it to the hard limit.
    let (server, address) = server_with_open_files(dir.path(), "1024:20000");
    let baseline = open_descriptors(server.pid());
    // 1,500 connections that never speak, more than the usual soft limit.
    let idle: Vec<std::net::TcpStream> = (0..1500)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    // A watch that never reads, and a hundred watches opened and dropped.
    let mut stuck = server.background(&["get", "pods", "--watch", "-o", "json"]);
    for _ in 0..100 {
        let mut watch = server.background(&["get", "jobs", "--watch"]);
        let _ = watch.kill();
        let _ = watch.wait();
    }
    server.apply(&job("still-served", "", "true"));
    server.wait_complete("still-served");
    assert!(
        open_descriptors(server.pid()) > 1500,
        "the idle connections were accepted"
    );
    // Connections that never finish a TLS handshake are closed after 10 s; the dropped
    // watches hold nothing.
    wait_for(
        "the idle connections to be closed",
        Duration::from_secs(20),
        || open_descriptors(server.pid()) < baseline + 50,
    );
    drop(idle);
    let _ = stuck.kill();
    let _ = stuck.wait();
}

#[test]
fn a_connection_past_the_cap_is_closed_at_once_and_the_server_serves_again() {
    let dir = scratch();
    // 512 descriptors at most: the cap is 256 connections (256 kept for the rest).
    let (server, address) = server_with_open_files(dir.path(), "512:512");
    let idle: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    // Past the cap: closed at once, not left waiting for a handshake that would be served.
    for _ in 0..5 {
        let mut late = std::net::TcpStream::connect(&address).unwrap();
        late.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut byte = [0u8; 1];
        let read = std::io::Read::read(&mut late, &mut byte);
        assert!(
            matches!(&read, Ok(0))
                || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{read:?}"
        );
    }
    drop(idle);
    wait_for("the server to serve again", Duration::from_secs(20), || {
        server.kubectl(&["get", "jobs"]).code() == 0
    });
}

#[test]
fn http2_requests_past_the_cap_are_answered_429_and_the_server_serves_again() {
    let dir = scratch();
    // 300 descriptors: the cap is 44 places (256 kept for the rest), one for the connection.
    let (server, address) = server_with_open_files(dir.path(), "300:300");
    let token = std::fs::read_to_string(server.state.join("token")).unwrap();
    // 100 watches at once on one HTTP/2 connection: each holds a place until it ends.
    let bodies = dir.path().join("bodies");
    std::fs::create_dir(&bodies).unwrap();
    let mut requests = String::new();
    for i in 0..100 {
        requests += &format!(
            "url = \"https://{address}/api/v1/pods?watch=1&timeoutSeconds=3&n={i}\"\noutput = \"{}/{i}\"\n",
            bodies.display()
        );
    }
    let list = dir.path().join("requests");
    std::fs::write(&list, requests).unwrap();
    let output = Command::new("curl")
        .args(["-k", "-s", "--http2", "--parallel", "--parallel-max", "100"])
        .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
        .args(["-w", "%{http_version} %{http_code}\n", "-K"])
        .arg(&list)
        .output()
        .unwrap();
    let answers = String::from_utf8(output.stdout).unwrap();
    let count = |answer: &str| answers.lines().filter(|l| *l == answer).count();
    assert_eq!(count("2 200"), 43, "{answers}");
    assert_eq!(count("2 429"), 57, "{answers}");
    let refused = (0..100)
        .map(|i| std::fs::read_to_string(bodies.join(i.to_string())).unwrap())
        .find(|body| body.contains("\"code\":429"))
        .unwrap();
    let status: serde_json::Value = serde_json::from_str(&refused).unwrap();
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(
        status["message"],
        "Too many requests, please try again later."
    );
    // The watches ended: their places are free again.
    wait_for("the server to serve again", Duration::from_secs(20), || {
        server.kubectl(&["get", "jobs"]).code() == 0
    });
}

#[test]
fn kubectl_shows_a_running_sidecar_as_ready_and_the_job_completes_without_it() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let d = dir.path().display();
    server.apply(&format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: sidecar
spec:
  template:
    spec:
      restartPolicy: Never
      initContainers:
        - name: proxy
          image: busybox
          restartPolicy: Always
          command: ["sh", "-c", "touch {d}/proxy-up; exec sleep 600"]
      containers:
        - name: main
          image: busybox
          command: ["sh", "-c", "while [ ! -e {d}/go ]; do sleep 0.05; done"]
"#
    ));
    let pods = || server.ok(&["get", "pods", "-l", "job-name=sidecar", "--no-headers"]);
    wait_for(
        "both containers running and ready",
        Duration::from_secs(20),
        || {
            let row = pods();
            let columns: Vec<&str> = row.split_whitespace().collect();
            columns.get(1..3) == Some(&["2/2", "Running"][..])
        },
    );
    std::fs::write(dir.path().join("go"), "").unwrap();
    server.wait_complete("sidecar");
    let pod = server.json(&["get", "pods", "-l", "job-name=sidecar"]);
    let status = &pod["items"][0]["status"];
    assert_eq!(status["phase"], "Succeeded");
    // Stopped by SIGTERM at the main container's end; `exec sleep` dies of it.
    let proxy = &status["initContainerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (proxy["exitCode"].as_i64(), proxy["signal"].as_i64()),
        (Some(143), Some(15))
    );
    let row = pods();
    assert!(
        row.split_whitespace().nth(1) == Some("0/2") && row.contains("Completed"),
        "{row}"
    );
}

#[test]
fn a_pod_whose_config_map_and_secret_are_missing_waits_until_kubectl_creates_them() {
    let dir = scratch();
    let server = Server::start(dir.path());
    server.apply(
        &(job("needs-settings", "", "test \"$MODE:$TOKEN\" = fast:t0k")
            + "          envFrom: [{configMapRef: {name: settings}}]\n"
            + "          env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: api, key: token}}}]\n"),
    );
    let waiting = || {
        let pods = server.json(&["get", "pods", "-l", "job-name=needs-settings"]);
        pods["items"][0]["status"]["containerStatuses"][0]["state"]["waiting"].clone()
    };
    wait_for(
        "the container waiting for its ConfigMap",
        Duration::from_secs(20),
        || waiting()["reason"] == "CreateContainerConfigError",
    );
    assert_eq!(waiting()["message"], "configmap \"settings\" not found");
    let row = server.ok(&[
        "get",
        "pods",
        "-l",
        "job-name=needs-settings",
        "--no-headers",
    ]);
    assert!(row.contains("CreateContainerConfigError"), "{row}");
    // The kubelet's event, about the pod's container, as `kubectl get events` shows it.
    let events = server.ok(&["get", "events"]);
    assert!(
        events.lines().any(|l| l.contains("Warning")
            && l.contains("Failed")
            && l.contains("pod/needs-settings-")
            && l.contains("Error: configmap \"settings\" not found")),
        "{events}"
    );
    let job = server.json(&["get", "job", "needs-settings"]);
    assert_eq!(job["status"]["active"], 1);
    assert!(job["status"]["failed"].is_null(), "{job}");
    // Created now, as on a cluster: the container waits for the next missing object, then
    // starts once it exists too.
    server.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=MODE=fast",
    ]);
    wait_for(
        "the container waiting for its Secret",
        Duration::from_secs(20),
        || waiting()["message"] == "secret \"api\" not found",
    );
    server.ok(&[
        "create",
        "secret",
        "generic",
        "api",
        "--from-literal=token=t0k",
    ]);
    server.wait_complete("needs-settings");
}

#[test]
fn kubectl_creates_lists_describes_and_deletes_config_maps_and_secrets() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let settings = dir.path().join("app.properties");
    std::fs::write(&settings, "level=3\n").unwrap();
    let from_file = format!("--from-file={}", settings.display());
    server.ok(&[
        "create",
        "configmap",
        "app",
        "--from-literal=MODE=fast",
        &from_file,
    ]);
    server.ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=hunter2",
        "--from-literal=user=admin",
    ]);
    let cm = server.json(&["get", "configmap", "app"]);
    assert_eq!(cm["data"]["app.properties"], "level=3\n");
    let words = |text: &str, line: usize| -> Vec<String> {
        let line = text.lines().nth(line).unwrap_or_default();
        line.split_whitespace().map(str::to_string).collect()
    };
    let rows = server.ok(&["get", "cm"]);
    assert_eq!(words(&rows, 0), ["NAME", "DATA", "AGE"]);
    assert_eq!(words(&rows, 1)[..2], ["app", "2"]);
    let rows = server.ok(&["get", "secrets"]);
    assert_eq!(words(&rows, 0), ["NAME", "TYPE", "DATA", "AGE"]);
    assert!(rows.contains("db") && rows.contains("Opaque"), "{rows}");
    // describe shows sizes, never values.
    let described = server.ok(&["describe", "secret", "db"]);
    assert!(described.contains("password:  7 bytes"), "{described}");
    assert!(!described.contains("hunter2"), "{described}");

    // A Job takes its variables from both, and its pod never shows the Secret's value.
    server.apply(
        &(job("reads-both", "", "test \"$MODE:$DB_user\" = fast:admin")
            + "          envFrom: [{configMapRef: {name: app}}, {secretRef: {name: db}, prefix: DB_}]\n"),
    );
    server.wait_complete("reads-both");
    let pod = server.ok(&["get", "pods", "-l", "job-name=reads-both", "-o", "yaml"]);
    assert!(!pod.contains("hunter2"), "{pod}");

    // Server-side apply of a ConfigMap, then an immutable one refuses changes.
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\nimmutable: true\ndata:\n  k: v\n";
    let run = server.kubectl_with(&["apply", "--server-side", "-f", "-"], Some(manifest));
    run.expect_code(0);
    let changed = manifest.replace("k: v", "k: w");
    let run = server.kubectl_with(&["apply", "--server-side", "-f", "-"], Some(&changed));
    assert_ne!(run.code(), 0);
    assert!(
        run.stderr()
            .contains("data: Forbidden: field is immutable when `immutable` is set"),
        "{}",
        run.stderr()
    );

    server.ok(&["delete", "configmap", "app", "frozen"]);
    server.ok(&["delete", "secret", "db"]);
    assert_eq!(server.ok(&["get", "cm,secrets", "-o", "name"]), "");
}

/// `kubectl describe pod` tells a pod's life as on a cluster: the scheduler's `Scheduled`
/// to the machine's node, the kubelet's `Created` and `Started` for its run, and `Killing`
/// when the Job controller stops it at the deadline.
#[test]
fn a_pods_events_say_it_was_created_started_and_killed() {
    let dir = scratch();
    let server = Server::start(dir.path());
    server.apply(&job(
        "deadline",
        "  activeDeadlineSeconds: 2\n",
        "exec sleep 60",
    ));
    wait_for("the deadline", Duration::from_secs(20), || {
        let job = server.json(&["get", "job", "deadline"]);
        crate::util::condition_reasons(&job).contains(&"Failed:DeadlineExceeded".to_string())
    });
    let events = server.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=Pod",
        "-o",
        "jsonpath={range .items[*]}{.type} {.reason} {.source.component} {.involvedObject.fieldPath}: {.message}{\"\\n\"}{end}",
    ]);
    let pod = server.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=Pod",
        "-o",
        "jsonpath={.items[0].involvedObject.name}",
    ]);
    let node = server.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    // Each event has a uid of its own, as the API server gives them.
    let uids = server.ok(&["get", "events", "-o", "jsonpath={.items[*].metadata.uid}"]);
    let uids: Vec<&str> = uids.split_whitespace().collect();
    let distinct: std::collections::HashSet<&&str> = uids.iter().collect();
    assert!(uids.len() >= 4 && distinct.len() == uids.len(), "{uids:?}");
    assert_eq!(
        events,
        format!(
            "Normal Scheduled default-scheduler : Successfully assigned default/{pod} to {node}\n\
             Normal Created kubelet spec.containers{{main}}: Created container: main\n\
             Normal Started kubelet spec.containers{{main}}: Started container main\n\
             Normal Killing kubelet spec.containers{{main}}: Stopping container main\n"
        ),
    );
}
