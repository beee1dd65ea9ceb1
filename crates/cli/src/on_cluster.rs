//! `joblet run --context`: the manifest checked here as for a local run, then sent to a
//! Kubernetes cluster, which runs it; followed with the local run's display, logs on disk,
//! summary and exit status.

use joblet_api::k8s_openapi::api::batch::v1::Job;
use joblet_api::Manifest;
use joblet_cluster::{Cluster, Ending, FollowOptions, Submitted, Target};

use crate::{
    admit_all, async_runtime, default_state_dir, display, exit, forward_stop_signals, outcome,
    print_objects, view, Admitted, Output, Place, RunArgs,
};

/// Log streams open at once; the other runs' logs wait their turn (and are read whole).
const MAX_LOG_STREAMS: usize = 100;

pub fn run(args: RunArgs) -> u8 {
    match async_runtime() {
        Ok(runtime) => runtime.block_on(run_on_cluster(args)),
        Err(code) => code,
    }
}

async fn run_on_cluster(args: RunArgs) -> u8 {
    let target = Target {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        namespace: args.namespace.clone(),
    };
    let cluster = match joblet_cluster::load(&target).await {
        Ok(cluster) => cluster,
        Err(message) => {
            eprintln!("{message}");
            return exit::INVALID;
        }
    };
    let place = Place::Cluster {
        namespace: &cluster.namespace,
    };
    let admitted = match admit_all(&args, place) {
        Ok(admitted) => admitted,
        Err(message) => {
            eprintln!("{message}");
            return exit::INVALID;
        }
    };
    if let Err(message) = cluster.check().await {
        eprintln!("{message}");
        return exit::INVALID;
    }
    let objects = objects(admitted);
    let source = args.files.join(", ");
    let dry_run = args.dry_run.is_some();
    let submitted = match joblet_cluster::submit(&cluster, &objects, &source, dry_run).await {
        Ok(submitted) => submitted,
        Err(message) => {
            eprintln!("{message}");
            return exit::INVALID;
        }
    };
    if dry_run {
        print_dry_run(&submitted, args.output);
        return exit::COMPLETE;
    }
    if args.detach {
        return detach(&args, &cluster, &submitted);
    }
    follow(&args, &cluster, submitted).await
}

/// Says what was created (or found, with this template), as `kubectl create` does, and the
/// command that attaches: the same one, which finds the Jobs by name.
fn detach(args: &RunArgs, cluster: &Cluster, submitted: &Submitted) -> u8 {
    for job in &submitted.jobs {
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let attached = submitted
            .attached
            .contains(job.metadata.uid.as_deref().unwrap_or_default());
        println!(
            "job.batch/{name} {}",
            if attached { "unchanged" } else { "created" }
        );
    }
    if submitted
        .jobs
        .iter()
        .any(|j| j.metadata.generate_name.is_some())
    {
        eprintln!(
            "Warning: a Job named by generateName cannot be attached to (the same command creates another): follow it with kubectl"
        );
    }
    eprintln!("detached: attach with: {}", attach_command(args, cluster));
    exit::COMPLETE
}

/// The command line that attaches to the run's Jobs, quoted for a POSIX shell.
fn attach_command(args: &RunArgs, cluster: &Cluster) -> String {
    let mut words = vec!["joblet".to_string(), "run".to_string()];
    for file in &args.files {
        words.extend(["-f".to_string(), file.clone()]);
    }
    if let Some(kubeconfig) = &args.kubeconfig {
        words.extend(["--kubeconfig".to_string(), kubeconfig.display().to_string()]);
    }
    words.extend(["--context".to_string(), cluster.context.clone()]);
    words.extend(["--namespace".to_string(), cluster.namespace.clone()]);
    if args.logs {
        words.push("--logs".to_string());
    }
    let quoted: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
    quoted.join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn objects(admitted: Admitted) -> Manifest {
    Manifest {
        jobs: admitted.jobs,
        namespaces: admitted.namespaces,
        config_maps: admitted.config_maps,
        secrets: admitted.secrets,
        services: admitted.services,
        ..Manifest::default()
    }
}

/// What the server would store: every object, as YAML documents or a JSON List.
fn print_dry_run(submitted: &Submitted, output: Option<Output>) {
    let jobs = submitted
        .jobs
        .iter()
        .map(|j| serde_json::to_value(j).expect("Jobs serialize"));
    let all: Vec<serde_json::Value> = submitted.others.iter().cloned().chain(jobs).collect();
    match output {
        Some(Output::Json) => {
            let list = serde_json::json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": all,
                "metadata": {"resourceVersion": ""},
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&list).expect("JSON values serialize")
            );
        }
        Some(Output::Yaml) | None => {
            let documents: Vec<String> = all.iter().map(joblet_api::yaml::to_string).collect();
            print!("{}", documents.join("---\n"));
        }
    }
}

async fn follow(args: &RunArgs, cluster: &Cluster, submitted: Submitted) -> u8 {
    let run_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let logs_dir = run_dir.join("logs");
    if let Err(e) = std::fs::create_dir_all(&logs_dir) {
        eprintln!("error: {}: {e}", logs_dir.display());
        return exit::FAILED;
    }
    let display = display::Display::new(view(args), &submitted.jobs);
    let (attached, created): (Vec<Job>, Vec<Job>) =
        (submitted.jobs.iter().cloned()).partition(|j| {
            submitted
                .attached
                .contains(j.metadata.uid.as_deref().unwrap_or_default())
        });
    let mut said = Vec::new();
    if !created.is_empty() {
        said.push(format!("{} created", names(&created)));
    }
    if !attached.is_empty() {
        said.push(format!("attached to {}", names(&attached)));
    }
    display.note(&format!(
        "{}: {}; run directory: {}",
        cluster.describe(),
        said.join(", "),
        run_dir.display()
    ));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let first_signal = std::sync::Arc::new(std::sync::OnceLock::new());
    if let Err(e) = forward_stop_signals(tx, first_signal.clone()) {
        eprintln!("error: installing signal handlers: {e}");
        return exit::FAILED;
    }
    let options = FollowOptions {
        logs_dir,
        stream_logs: args.logs,
        max_log_streams: MAX_LOG_STREAMS,
    };
    let note = |text: &str| display.note(text);
    let followed =
        joblet_cluster::follow(cluster, submitted, display.observer(), options, rx, &note).await;
    display.finish(&followed.jobs);
    if let Some(format) = args.output {
        print_objects(&followed.jobs, format);
    }
    if followed.ending == Ending::Interrupted {
        eprintln!("run interrupted: its Jobs were deleted from the cluster");
        return first_signal
            .get()
            .map_or(exit::INTERRUPTED, |signal| 128 + signal);
    }
    if !followed.deleted.is_empty() {
        for name in &followed.deleted {
            eprintln!("job {name}: deleted from the cluster before it ended");
        }
        return exit::FAILED;
    }
    outcome(&followed.jobs)
}

fn names(jobs: &[Job]) -> String {
    let names: Vec<String> = (jobs.iter())
        .map(|j| format!("job/{}", j.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    names.join(", ")
}
