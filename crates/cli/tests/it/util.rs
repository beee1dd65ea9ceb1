//! Running the built `joblet` binary and looking at what it left behind.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Run {
    pub output: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The final Job (single-Job runs with `-o json`).
    pub fn job(&self) -> serde_json::Value {
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", self.context()))
    }

    pub fn context(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.output.status.code(),
            self.stdout(),
            self.stderr()
        )
    }

    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), code, "{}", self.context());
        self
    }
}

pub fn joblet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_joblet"))
}

/// The lines of the pods' logs that `--logs` streamed, without their `[pod/…]` prefix, in
/// the order they came.
pub fn streamed_log_lines(stdout: &str) -> Vec<String> {
    (stdout.lines())
        .filter(|l| l.starts_with("[pod/"))
        .map(|l| l.split_once("] ").map_or("", |(_, rest)| rest).to_string())
        .collect()
}

/// `joblet run -f FILE --state-dir STATE RUN_ARGS…`, then `joblet serve --listen
/// 127.0.0.1:0 --state-dir STATE SERVE_ARGS…`, both with the variable `env` set: for what
/// ends both before anything runs.
pub fn run_and_serve_with(
    env: (&str, &std::ffi::OsStr),
    file: &Path,
    state: &Path,
    run_args: &[&str],
    serve_args: &[&str],
) -> (Run, Run) {
    let output = |command: &mut Command| Run {
        output: command.env(env.0, env.1).output().unwrap(),
    };
    let run = output(
        joblet()
            .args(["run", "-f"])
            .arg(file)
            .arg("--state-dir")
            .arg(state)
            .args(run_args),
    );
    let serve = output(
        joblet()
            .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state)
            .args(serve_args),
    );
    (run, serve)
}

/// `joblet run -f <manifest> --state-dir <tmp>/state <extra...>` with the manifest given as
/// text; `{dir}` in the manifest is replaced by a scratch directory for the pods.
pub fn run(dir: &Path, manifest: &str, extra: &[&str]) -> Run {
    let file = dir.join("job.yaml");
    std::fs::write(&file, manifest.replace("{dir}", &dir.display().to_string())).unwrap();
    let output = joblet()
        .arg("run")
        .arg("-f")
        .arg(&file)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run { output }
}

pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("joblet-it-")
        .tempdir()
        .unwrap()
}

/// Processes whose command line or environment contains `marker` (pods export it, so
/// every process they start carries it).
pub fn processes_with(marker: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let mut cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline.extend(std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default());
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            !zombie && String::from_utf8_lossy(&cmdline).contains(marker)
        })
        .collect()
}

/// Asserts that no process carrying `marker` is alive (allowing a moment for SIGKILLs to land).
pub fn assert_none_left(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn condition_reasons(job: &serde_json::Value) -> Vec<String> {
    job["status"]["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    format!(
                        "{}:{}",
                        c["type"].as_str().unwrap(),
                        c["reason"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Lines of a file written by pods, as numbers (nanosecond timestamps or indexes).
pub fn numbers(path: &Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A one-container Job (`restartPolicy: Never`) running `script` under `sh -c`; `spec`
/// holds indented extra spec lines.
pub fn job(name: &str, spec: &str, script: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{spec}
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: busybox
          command: ["sh", "-c", {script:?}]
"#
    )
}

/// Whether a pod carries the `DisruptionTarget` condition a kubelet sets on a node
/// shutdown (reason `TerminationByKubelet`).
pub fn disrupted_by_node_shutdown(pod: &serde_json::Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "DisruptionTarget" && c["reason"] == "TerminationByKubelet")
}

/// SIGINT to a child started with its stderr piped; its exit status and stderr.
pub fn interrupt(mut child: std::process::Child) -> (Option<i32>, String) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    if let Some(pipe) = child.stderr.as_mut() {
        std::io::Read::read_to_string(pipe, &mut stderr).unwrap();
    }
    (status.code(), stderr)
}
