//! `joblet`: Kubernetes Jobs, without the cluster.

mod display;
mod duration;
mod on_cluster;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use joblet_api::k8s_openapi::api::batch::v1::{CronJob, Job};
use joblet_api::k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use joblet_api::version::Emulation;
use joblet_api::ValidJob;
use joblet_core::BackoffConfig;
use joblet_driver::{admit, Admission, Engine, EngineConfig, Settled};
use joblet_runtime::SupervisorCommand;

/// mimalloc: glibc's malloc spent a tenth of the engine's and supervisor's time freeing
/// (`_int_free`, `malloc_consolidate`) under a stream of short pods. Its arenas are
/// committed as they are used (the workspace's `.cargo/config.toml`): committed at once, a
/// 10,000-pod run peaked at 93 MiB instead of 66.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit statuses of `joblet run`, documented in the README.
mod exit {
    pub const COMPLETE: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const INVALID: u8 = 2;
    pub const SUSPENDED: u8 = 3;
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Parser)]
#[command(
    name = "joblet",
    version,
    about = "Kubernetes Jobs, without the cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the batch/v1 Jobs of a manifest to their end, pods as local processes or containers.
    Run(RunArgs),
    /// Serve the Kubernetes API for Jobs over HTTPS, for kubectl and client libraries.
    Serve(ServeArgs),
    /// The pods' supervisor of a state directory, started by `run` and `serve`.
    #[command(hide = true)]
    Supervise(SuperviseArgs),
}

#[derive(clap::Args)]
struct SuperviseArgs {
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    backoff_base: Duration,
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    backoff_max: Duration,
    #[arg(long)]
    logs: bool,
    #[arg(long)]
    no_fsync: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Where objects, logs, credentials and the kubeconfig live (default:
    /// $XDG_STATE_HOME/joblet/server, or ~/.local/state/joblet/server).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Address to listen on (port 0: any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6443")]
    listen: std::net::SocketAddr,
    /// The runtime of pods that name no `runtimeClassName`, written into their Job's
    /// template when it is created (a pod's own class always wins).
    #[arg(long, value_enum, value_name = "RUNTIME", default_value = "host")]
    runtime: RuntimeClass,
    /// How many pods the node runs at once, as the kubelet's `--max-pods`: the scheduler
    /// keeps the others Pending until one ends.
    #[arg(long, value_name = "N", default_value_t = 110, value_parser = clap::value_parser!(i64).range(1..))]
    max_pods: i64,
    /// Base of the pod re-creation and container restart back-off (upstream: 10s).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = duration::parse)]
    backoff_base: Duration,
    /// Cap of the pod re-creation back-off (upstream: 10m); container restarts cap at half.
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = duration::parse)]
    backoff_max: Duration,
    /// How long the logs of deleted pods stay on disk in DIR/logs.
    #[arg(long, value_name = "DUR", default_value = "24h", value_parser = duration::parse)]
    log_retention: Duration,
    /// How long events are kept (as the API server's --event-ttl).
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = duration::parse)]
    event_ttl: Duration,
    /// On SIGTERM or Ctrl-C, stop every pod as a node shutdown does (recorded Failed with
    /// DisruptionTarget). Without it, a stopped server leaves its pods running under the
    /// supervisor and the next `serve` adopts them, as a restart should.
    #[arg(long)]
    stop_pods_on_exit: bool,
    /// Do not fsync commits and pod ends: faster on slow disks, and still safe when a
    /// process crashes or is killed, but a power loss may lose the last results (and run
    /// their pods again).
    #[arg(long)]
    no_fsync: bool,
    /// Behave as this Kubernetes version's API server (1.34 to 1.37): its feature-gate
    /// defaults, as kube-apiserver's `--emulated-version`.
    #[arg(long, value_name = "1.MINOR", default_value_t = Emulation::BINARY)]
    emulated_version: Emulation,
}

/// kubectl's `--validate`: what becomes of fields the Job type does not have.
#[derive(Clone, Copy, ValueEnum)]
enum Validate {
    /// Refuse the manifest (`strict decoding error: unknown field "spec.completion"`).
    #[value(alias = "true")]
    Strict,
    /// Warn about each field and drop it.
    Warn,
    /// Drop them silently.
    #[value(alias = "false")]
    Ignore,
}

/// Where pods run whose template names no `runtimeClassName`.
#[derive(Clone, Copy, ValueEnum)]
enum RuntimeClass {
    /// Host processes: fast, nothing to install, but every container needs its `command`
    /// and gets no volumes or memory limit.
    Host,
    /// Containers from their images (podman prepares them, runc runs them), as root.
    Podman,
    /// Containers from their images in a Docker daemon's storage (runc runs them), as root.
    Docker,
}

impl RuntimeClass {
    fn name(self) -> &'static str {
        match self {
            RuntimeClass::Host => "host",
            RuntimeClass::Podman => "podman",
            RuntimeClass::Docker => "docker",
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Json,
    Yaml,
}

/// kubectl's `--dry-run`: only `server` is a run's (a client-side one is `run` itself).
#[derive(Clone, Copy, ValueEnum)]
enum DryRun {
    /// Send everything with `dryRun=All`; print what the server would store.
    Server,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("cluster").multiple(true)))]
struct RunArgs {
    /// Manifest file (YAML or JSON, several documents or a v1 List); `-` for stdin. May be
    /// given several times: the files are read as one manifest.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<String>,
    /// Print the final Job object(s) as the API server would show them.
    #[arg(short = 'o', long, value_enum)]
    output: Option<Output>,
    /// The runtime of pods that name no `runtimeClassName`, written into their Job's
    /// template when it is created (a pod's own class always wins).
    #[arg(
        long,
        value_enum,
        value_name = "RUNTIME",
        default_value = "host",
        conflicts_with = "cluster"
    )]
    runtime: RuntimeClass,
    /// How many pods the node runs at once, as the kubelet's `--max-pods`: the scheduler
    /// keeps the others Pending until one ends.
    #[arg(long, value_name = "N", default_value_t = 110, value_parser = clap::value_parser!(i64).range(1..), conflicts_with = "cluster")]
    max_pods: i64,
    /// Stream every pod's output, each line prefixed `[pod/NAME/CONTAINER]`.
    #[arg(long)]
    logs: bool,
    /// The run directory for pod logs and the Job's records (default: a new directory
    /// under $XDG_STATE_HOME/joblet, or ~/.local/state/joblet).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Base of the pod re-creation and container restart back-off (upstream: 10s).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = duration::parse, conflicts_with = "cluster")]
    backoff_base: Duration,
    /// Cap of the pod re-creation back-off (upstream: 10m); container restarts cap at half.
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = duration::parse, conflicts_with = "cluster")]
    backoff_max: Duration,
    /// Start Jobs that the manifest marks `suspend: true` instead of leaving them suspended.
    #[arg(long)]
    resume: bool,
    /// Fields the Job type does not have: refused (strict, as kubectl apply's default),
    /// warned about (warn), or dropped (ignore).
    #[arg(long, value_enum, value_name = "MODE", default_value = "strict")]
    validate: Validate,
    /// Do not fsync commits and pod ends: faster on slow disks, and still safe when a
    /// process crashes or is killed, but a power loss may lose the last results (and run
    /// their pods again).
    #[arg(long, conflicts_with = "cluster")]
    no_fsync: bool,
    /// Re-run the indexes that did not succeed of the failed Indexed Jobs in the state
    /// directory, with a fresh failure budget, in the same Jobs' history.
    #[arg(long, requires = "state_dir", conflicts_with = "cluster")]
    retry_failed: bool,
    /// Run on the Kubernetes cluster of this kubeconfig context instead of this machine:
    /// the cluster schedules and runs the pods; joblet follows them and saves their logs.
    #[arg(long, value_name = "NAME", group = "cluster")]
    context: Option<String>,
    /// The kubeconfig to read (default: $KUBECONFIG, else ~/.kube/config); given alone,
    /// runs on its current context.
    #[arg(long, value_name = "FILE", group = "cluster")]
    kubeconfig: Option<PathBuf>,
    /// The namespace of objects that name none (on a cluster, default: the context's);
    /// an object that names another is refused, as kubectl refuses it.
    #[arg(short = 'n', long, value_name = "NS")]
    namespace: Option<String>,
    /// With `server`: send everything to the cluster with dryRun=All and print what it
    /// would store (YAML, or `-o json`), running nothing.
    #[arg(long, value_enum, value_name = "MODE")]
    dry_run: Option<DryRun>,
    /// Run the next scheduled Job of each CronJob in the manifest now, as the CronJob
    /// controller would make it at that time (named `<cronjob>-<minutes since the epoch>`).
    #[arg(long)]
    once: bool,
    /// On a cluster: return once the Jobs are created, printing the command that attaches
    /// to them (the same command again).
    #[arg(long, requires = "cluster", conflicts_with = "dry_run")]
    detach: bool,
    /// Behave as this Kubernetes version (1.34 to 1.37): its feature-gate defaults, as
    /// kube-apiserver's `--emulated-version` (a cluster's version is its own).
    #[arg(long, value_name = "1.MINOR", default_value_t = Emulation::BINARY, conflicts_with = "cluster")]
    emulated_version: Emulation,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_open_files_limit();
    match cli.command {
        Command::Run(args) => ExitCode::from(run(args)),
        Command::Serve(args) => ExitCode::from(serve(args)),
        Command::Supervise(args) => ExitCode::from(supervise(args)),
    }
}

/// Raises the soft limit of open files to the hard one, as Go programs such as
/// kube-apiserver do at start: the usual soft limit of 1,024 is too few for a server's
/// connections or a run's pipes. Pods inherit it, as containers get a high limit on a node.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn durability(no_fsync: bool) -> joblet_driver::Durability {
    if no_fsync {
        joblet_driver::Durability::ProcessCrash
    } else {
        joblet_driver::Durability::PowerLoss
    }
}

fn backoff(base: Duration, max: Duration) -> BackoffConfig {
    BackoffConfig {
        base_ms: base.as_millis() as i64,
        max_ms: max.as_millis() as i64,
    }
}

/// How `run` and `serve` start the supervisor of their state directory: this program.
fn supervisor_command(
    state_dir: &std::path::Path,
    base: Duration,
    max: Duration,
    logs: bool,
    no_fsync: bool,
) -> Result<SupervisorCommand, String> {
    let program = std::env::current_exe().map_err(|e| format!("error: finding joblet: {e}"))?;
    let mut args = vec![
        "supervise".to_string(),
        "--state-dir".to_string(),
        state_dir.display().to_string(),
        format!("--backoff-base={}ms", base.as_millis()),
        format!("--backoff-max={}ms", max.as_millis()),
    ];
    if logs {
        args.push("--logs".to_string());
    }
    if no_fsync {
        args.push("--no-fsync".to_string());
    }
    Ok(SupervisorCommand {
        program,
        args,
        log: state_dir.join("supervisor.log"),
        inherit_stdout: logs,
    })
}

fn supervise(args: SuperviseArgs) -> u8 {
    let backoff = backoff(args.backoff_base, args.backoff_max);
    let config = joblet_driver::runtime_config(&args.state_dir, &backoff, args.logs);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("joblet supervise: starting the async runtime: {e}");
            return exit::FAILED;
        }
    };
    let clock = std::sync::Arc::new(joblet_driver::SystemClock);
    match runtime.block_on(joblet_runtime::supervise(
        &args.state_dir,
        config,
        clock,
        !args.no_fsync,
    )) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("joblet supervise: {}: {e}", args.state_dir.display());
            exit::FAILED
        }
    }
}

fn serve(args: ServeArgs) -> u8 {
    if let Err(message) = joblet_runtime::check_runtime_class(args.runtime.name()) {
        eprintln!("error: --runtime {}: {message}", args.runtime.name());
        return exit::FAILED;
    }
    let state_dir = args
        .state_dir
        .unwrap_or_else(|| state_home().join("joblet").join("server"));
    let supervisor = match supervisor_command(
        &state_dir,
        args.backoff_base,
        args.backoff_max,
        false,
        args.no_fsync,
    ) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("{message}");
            return exit::FAILED;
        }
    };
    let config = joblet_server::ServeConfig {
        state_dir,
        listen: args.listen,
        backoff: backoff(args.backoff_base, args.backoff_max),
        log_retention: args.log_retention,
        event_ttl: args.event_ttl,
        supervisor,
        stop_pods_on_exit: args.stop_pods_on_exit,
        durability: durability(args.no_fsync),
        default_runtime_class: args.runtime.name(),
        max_pods: args.max_pods,
        emulation: args.emulated_version,
    };
    let leaving = if args.stop_pods_on_exit {
        "stopping every pod"
    } else {
        "pods run on under the supervisor"
    };
    let runtime = tokio::runtime::Runtime::new().expect("starting the async runtime");
    runtime.block_on(async {
        let shutdown = async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
            let mut hangup = signal(SignalKind::hangup()).expect("installing the SIGHUP handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = hangup.recv() => {}
            }
            eprintln!("joblet serve: shutting down; {leaving}");
        };
        match joblet_server::serve(config, shutdown).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        }
    })
}

fn read_input(file: &str) -> Result<String, String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("error: reading stdin: {e}"))?;
        Ok(text)
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("error: {file}: {e}"))
    }
}

/// What `run` takes from its manifest, every object checked as the API server would on
/// create: all or nothing, before anything runs.
struct Admitted {
    /// As sent (to a cluster: not yet named or defaulted).
    jobs: Vec<Job>,
    /// As checked for this machine, one per Job (none for a cluster).
    valid: Vec<ValidJob>,
    /// CronJobs to run on their schedules (here, without `--once`).
    cron_jobs: Vec<CronJob>,
    namespaces: Vec<Namespace>,
    config_maps: Vec<ConfigMap>,
    secrets: Vec<Secret>,
    /// Not stored: they name pods for the node (headless Services' names).
    services: Vec<Service>,
}

/// Where a run's objects go: this machine, or a cluster whose API server defaults and names
/// them itself.
#[derive(Clone, Copy)]
enum Place<'a> {
    Here,
    /// The namespace of objects that name none.
    Cluster {
        namespace: &'a str,
    },
}

fn admit_all(args: &RunArgs, place: Place) -> Result<Admitted, String> {
    let validation = match args.validate {
        Validate::Strict => joblet_api::FieldValidation::Strict,
        Validate::Warn => joblet_api::FieldValidation::Warn,
        Validate::Ignore => joblet_api::FieldValidation::Ignore,
    };
    let sources: Vec<&str> = (args.files.iter())
        .map(|f| if f == "-" { "stdin" } else { f.as_str() })
        .collect();
    let source = sources.join(", ");
    let mut all = joblet_api::Manifest::default();
    for (file, source) in args.files.iter().zip(&sources) {
        let text = read_input(file)?;
        let (manifest, warnings) = joblet_api::parse_manifest(source, &text, validation)
            .map_err(|e| format!("error: {e}"))?;
        for warning in warnings {
            eprintln!("Warning: {warning}");
        }
        all.jobs.extend(manifest.jobs);
        all.cron_jobs.extend(manifest.cron_jobs);
        all.namespaces.extend(manifest.namespaces);
        all.config_maps.extend(manifest.config_maps);
        all.secrets.extend(manifest.secrets);
        all.services.extend(manifest.services);
    }
    if all.jobs.is_empty() && all.cron_jobs.is_empty() {
        return Err(format!("error: {source}: no Job in the input"));
    }
    let joblet_api::Manifest {
        mut jobs,
        cron_jobs,
        namespaces,
        mut config_maps,
        mut secrets,
        mut services,
    } = all;
    let mut errors = Vec::new();
    let mut scheduled = Vec::new();
    for cron_job in cron_jobs {
        match admit_cron_job(args, place, cron_job) {
            Ok(CronRun::Once(job)) => jobs.push(*job),
            Ok(CronRun::Scheduled(cron_job)) => scheduled.push(*cron_job),
            Err(message) => errors.push(message),
        }
    }
    let default_namespace = match place {
        Place::Here => args.namespace.as_deref(),
        Place::Cluster { namespace } => Some(namespace),
    };
    let metas = (jobs.iter_mut().map(|j| &mut j.metadata))
        .chain(config_maps.iter_mut().map(|c| &mut c.metadata))
        .chain(secrets.iter_mut().map(|s| &mut s.metadata))
        .chain(services.iter_mut().map(|s| &mut s.metadata));
    for meta in metas {
        match (&meta.namespace, args.namespace.as_deref()) {
            (Some(own), Some(asked)) if own != asked => errors.push(format!(
                "error: the namespace from the provided object {own:?} does not match the \
                 namespace {asked:?}. You must pass '--namespace={own}' to perform this operation."
            )),
            (Some(_), _) => {}
            (None, _) => meta.namespace = default_namespace.map(str::to_string),
        }
    }
    // As `kubectl create -f` gets them named by the API server: each run makes new objects.
    // A cluster names them itself; here only the copies checked are named.
    let named =
        |mut meta: joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            joblet_driver::generate_name(&mut meta);
            meta
        };
    let here = matches!(place, Place::Here);
    let mut valid = Vec::new();
    for job in &mut jobs {
        if args.resume {
            if let Some(spec) = job.spec.as_mut() {
                spec.suspend = Some(false);
            }
        }
        let mut checked = job.clone();
        checked.metadata = named(checked.metadata);
        if !here {
            if let Err(invalid) = joblet_driver::admit_for_cluster(checked) {
                errors.push(format!("error: {invalid}"));
            }
            continue;
        }
        joblet_api::defaults::default_runtime_class(&mut checked, args.runtime.name());
        joblet_api::version::drop_disabled_fields(&mut checked, args.emulated_version);
        *job = checked.clone();
        match admit(checked, args.emulated_version) {
            Ok(admitted) => {
                for warning in joblet_api::validation::runtime_warnings(admitted.object()) {
                    eprintln!("Warning: {warning}");
                }
                valid.push(admitted)
            }
            Err(invalid) => errors.push(format!("error: {invalid}")),
        }
    }
    for config_map in &mut config_maps {
        let mut checked = config_map.clone();
        checked.metadata = named(checked.metadata);
        if let Err(invalid) = joblet_api::config::validate_config_map(&checked) {
            errors.push(format!("error: {invalid}"));
        }
        if here {
            *config_map = checked;
        }
    }
    for secret in &mut secrets {
        let mut checked = secret.clone();
        checked.metadata = named(checked.metadata);
        joblet_api::config::prepare_secret(&mut checked);
        if let Err(invalid) = joblet_api::config::validate_secret(&checked) {
            errors.push(format!("error: {invalid}"));
        }
        if here {
            *secret = checked;
        }
    }
    // A run's namespaces exist as soon as something is in them: a Namespace document is
    // checked, and needs nothing more.
    let namespaces: Vec<_> = (namespaces.into_iter())
        .map(|mut namespace| {
            let checked = named(namespace.metadata.clone());
            if let Err(invalid) = joblet_api::services::validate_namespace(&Namespace {
                metadata: checked.clone(),
                ..namespace.clone()
            }) {
                errors.push(format!("error: {invalid}"));
            }
            if here {
                namespace.metadata = checked;
            }
            namespace
        })
        .collect();
    for service in &mut services {
        let mut checked = service.clone();
        checked.metadata = named(checked.metadata);
        joblet_api::services::default_service(&mut checked);
        match joblet_api::services::validate_service(&checked) {
            // A cluster routes to Services; this machine only names their pods.
            Ok(()) if here => eprintln!(
                "Warning: {}",
                joblet_api::services::service_warning(&checked)
            ),
            Ok(()) => {}
            Err(invalid) => errors.push(format!("error: {invalid}")),
        }
        if here {
            *service = checked;
        }
    }
    let metas = (jobs.iter().map(|job| ("Job", &job.metadata)))
        .chain(config_maps.iter().map(|c| ("ConfigMap", &c.metadata)))
        .chain(secrets.iter().map(|s| ("Secret", &s.metadata)))
        .chain(services.iter().map(|s| ("Service", &s.metadata)))
        .chain(namespaces.iter().map(|n| ("Namespace", &n.metadata)));
    let mut seen = std::collections::HashSet::new();
    for (kind, meta) in metas {
        let namespace = match kind {
            "Namespace" => "",
            _ => meta.namespace.as_deref().unwrap_or("default"),
        };
        // Named by the server: never the same.
        let Some(name) = meta.name.as_deref() else {
            continue;
        };
        if !seen.insert((kind, namespace, name)) {
            errors.push(format!("error: {kind} {name:?} appears twice in {source}"));
        }
    }
    if errors.is_empty() {
        Ok(Admitted {
            jobs,
            cron_jobs: scheduled,
            valid,
            namespaces,
            config_maps,
            secrets,
            services,
        })
    } else {
        Err(errors.join("\n"))
    }
}

/// What `run` does with a CronJob.
enum CronRun {
    /// `--once`: the Job it makes at its next scheduled time, run now.
    Once(Box<Job>),
    /// Run on its schedule until the run is stopped (here only).
    Scheduled(Box<CronJob>),
}

/// A CronJob checked as the API server checks it; with `--once` (here or on a cluster), the
/// Job it would make at its next scheduled time.
fn admit_cron_job(args: &RunArgs, place: Place, mut cron_job: CronJob) -> Result<CronRun, String> {
    let name = cron_job.metadata.name.clone().unwrap_or_default();
    if let (false, Place::Cluster { .. }) = (args.once, place) {
        return Err(format!(
            "error: CronJob {name:?}: on a cluster, --once runs its next scheduled Job now; the schedule itself is the cluster's (apply the CronJob with kubectl)"
        ));
    }
    joblet_api::cronjobs::apply_defaults(&mut cron_job);
    if cron_job.metadata.namespace.is_none() {
        cron_job.metadata.namespace = match place {
            Place::Here => args.namespace.clone(),
            Place::Cluster { namespace } => Some(namespace.to_string()),
        };
    }
    let mut checked = cron_job;
    joblet_driver::generate_name(&mut checked.metadata);
    if let Some(job) = checked.spec.job_template.spec.as_mut() {
        joblet_api::version::drop_disabled_pod_fields(&mut job.template, args.emulated_version);
    }
    joblet_api::cronjobs::validate(&checked, None)
        .map_err(|invalid| format!("error: {invalid}"))?;
    if !args.once {
        return Ok(CronRun::Scheduled(Box::new(checked)));
    }
    // Without `timeZone` a schedule is read in the controller's zone: this machine's here,
    // UTC on a cluster (where controller managers run).
    let local = match place {
        Place::Here => joblet_api::k8s_openapi::jiff::tz::TimeZone::system(),
        Place::Cluster { .. } => joblet_api::k8s_openapi::jiff::tz::TimeZone::UTC,
    };
    let now = joblet_driver::SystemClock.now();
    let mut job = joblet_core::cronjob::next_job(&checked, now, &local, &joblet_driver::new_uid())
        .map_err(|message| format!("error: CronJob {name:?}: {message}"))?;
    if let Place::Cluster { .. } = place {
        // The cluster gives the uid, as it does to any Job created.
        job.metadata.uid = None;
    }
    Ok(CronRun::Once(Box::new(job)))
}

fn state_home() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
            PathBuf::from(home).join(".local/state")
        })
}

fn default_state_dir() -> PathBuf {
    let base = state_home();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    base.join("joblet")
        .join(format!("run-{}-{}", stamp.as_secs(), std::process::id()))
}

fn run(args: RunArgs) -> u8 {
    if args.context.is_some() || args.kubeconfig.is_some() {
        return on_cluster::run(args);
    }
    if args.dry_run.is_some() {
        eprintln!(
            "error: --dry-run=server needs a cluster: name it with --context or --kubeconfig"
        );
        return exit::INVALID;
    }
    let Admitted {
        jobs,
        valid,
        cron_jobs,
        config_maps,
        secrets,
        services,
        ..
    } = match admit_all(&args, Place::Here) {
        Ok(admitted) => admitted,
        Err(message) => {
            eprintln!("{message}");
            return exit::INVALID;
        }
    };
    let classes: std::collections::BTreeSet<&str> = (jobs.iter())
        .filter_map(|job| job.spec.as_ref()?.template.spec.as_ref())
        .map(|pod| pod.runtime_class_name.as_deref().unwrap_or("host"))
        .collect();
    for class in classes {
        if let Err(message) = joblet_runtime::check_runtime_class(class) {
            eprintln!("error: runtimeClassName {class}: {message}");
            return exit::INVALID;
        }
    }
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let resuming = state_dir.join("state.db").exists();
    // A run directory named by the user can be resumed: its pods outlive this process.
    let supervisor = match &args.state_dir {
        Some(dir) => {
            match supervisor_command(
                dir,
                args.backoff_base,
                args.backoff_max,
                args.logs,
                args.no_fsync,
            ) {
                Ok(command) => Some(command),
                Err(message) => {
                    eprintln!("{message}");
                    return exit::FAILED;
                }
            }
        }
        None => None,
    };
    let config = EngineConfig {
        state_dir,
        backoff: backoff(args.backoff_base, args.backoff_max),
        stream_logs: args.logs,
        keep_running: false,
        event_ttl: None,
        supervisor,
        durability: durability(args.no_fsync),
        max_pods: args.max_pods,
        emulation: args.emulated_version,
    };
    let view = view(&args);
    let runtime = match async_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        // Before anything runs: a signal from here on stops the pods, none abandons them.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let first_signal = std::sync::Arc::new(std::sync::OnceLock::new());
        if let Err(e) = forward_stop_signals(tx, first_signal.clone()) {
            eprintln!("error: installing signal handlers: {e}");
            return exit::FAILED;
        }
        let admitted: Vec<Job> = valid.iter().map(|valid| valid.object().clone()).collect();
        let display = display::Display::new(view, &admitted);
        let mut engine = match Engine::open(config, display.observer()) {
            Ok(engine) => engine,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::FAILED;
            }
        };
        engine.set_node_objects(&config_maps, &secrets, &services);
        let scheduling = !cron_jobs.is_empty();
        for cron_job in cron_jobs {
            let spec = &cron_job.spec;
            let zone = spec
                .time_zone
                .as_deref()
                .unwrap_or("this machine's time zone");
            display.note(&format!(
                "cronjob {}: on schedule {:?} ({zone}) until stopped (Ctrl-C)",
                cron_job.metadata.name.as_deref().unwrap_or_default(),
                spec.schedule
            ));
            engine.add_cron_job(cron_job);
        }
        if resuming {
            if let Err(e) = engine.recover() {
                eprintln!("error: {e}");
                return exit::FAILED;
            }
        }
        display.note(&format!("run directory: {}", engine.state_dir().display()));
        for (manifest, admitted) in jobs.into_iter().zip(valid) {
            let (namespace, name) = (
                admitted.namespace().to_string(),
                admitted.name().to_string(),
            );
            match engine.create_or_resume(admitted, manifest) {
                Ok(Admission::Created) => continue,
                Ok(Admission::Resumed) => display.note(&format!("job {name}: resumed")),
                Ok(Admission::Updated) => {
                    display.note(&format!("job {name}: resumed, with the manifest's changes"))
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return exit::INVALID;
                }
            }
            if args.retry_failed {
                match engine.retry_failed(&namespace, &name) {
                    Ok(message) => display.note(&format!("job {name}: {message}")),
                    Err(e) => display.note(&e.to_string()),
                }
            }
        }
        let settled = match engine.run(rx).await {
            Ok(settled) => settled,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::FAILED;
            }
        };
        let finished = engine.jobs();
        display.finish(&finished);
        if let Some(format) = args.output {
            print_objects(&finished, format);
        }
        if settled != Settled::Done {
            let resume = match &args.state_dir {
                Some(_) => "; run the same command again to resume them",
                None => "",
            };
            if scheduling {
                eprintln!("run stopped: no more Jobs are scheduled, and running pods were stopped");
            } else {
                eprintln!("run interrupted: its pods were stopped before the Jobs ended{resume}");
            }
            // 128 + the signal's number, as a shell reports a process it ended.
            return first_signal
                .get()
                .map_or(exit::INTERRUPTED, |signal| 128 + signal);
        }
        for job in finished.iter().filter(|j| idle(j)) {
            let name = job.metadata.name.as_deref().unwrap_or_default();
            eprintln!("job {name}: parallelism is 0: none of its pods runs until it is raised");
        }
        outcome(&finished)
    })
}

/// What a run shows: the final objects only with `-o`, bars on a terminal, event lines
/// elsewhere.
fn view(args: &RunArgs) -> display::View {
    if args.output.is_some() {
        display::View::Quiet
    } else if std::io::stdout().is_terminal() {
        display::View::Progress
    } else {
        display::View::Events
    }
}

fn async_runtime() -> Result<tokio::runtime::Runtime, u8> {
    (tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build())
    .map_err(|e| {
        eprintln!("error: starting the runtime: {e}");
        exit::FAILED
    })
}

/// SIGINT, SIGTERM and SIGHUP each ask `run` to stop its pods (what Ctrl-C, a CI timeout,
/// systemd or a closed terminal send); a second one kills them at once. The first
/// signal's number is kept for the exit status.
fn forward_stop_signals(
    stop: tokio::sync::mpsc::UnboundedSender<joblet_driver::Shutdown>,
    first: std::sync::Arc<std::sync::OnceLock<u8>>,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        (SignalKind::interrupt(), 2),
        (SignalKind::terminate(), 15),
        (SignalKind::hangup(), 1),
    ];
    for (kind, number) in kinds {
        let mut signals = signal(kind)?;
        let (stop, first) = (stop.clone(), first.clone());
        tokio::spawn(async move {
            while signals.recv().await.is_some() {
                let _ = first.set(number);
                if stop.send(joblet_driver::Shutdown::StopPods).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

/// A Job that has not finished and runs nothing because its parallelism is 0.
fn idle(job: &Job) -> bool {
    let status = joblet_api::printers::job_status(job);
    let parallelism = job.spec.as_ref().and_then(|s| s.parallelism);
    parallelism == Some(0) && !matches!(status, "Complete" | "Failed" | "Suspended")
}

fn outcome(jobs: &[Job]) -> u8 {
    let status = |job: &Job| joblet_api::printers::job_status(job);
    if jobs.iter().any(|j| status(j) == "Failed") {
        exit::FAILED
    } else if jobs.iter().any(|j| status(j) == "Suspended" || idle(j)) {
        exit::SUSPENDED
    } else {
        exit::COMPLETE
    }
}

fn print_objects(jobs: &[Job], format: Output) {
    let value = match jobs {
        [one] => serde_json::to_value(one),
        many => serde_json::to_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": many,
            "metadata": {"resourceVersion": ""},
        })),
    }
    .expect("Jobs always serialize");
    let text = match format {
        Output::Json => serde_json::to_string_pretty(&value).expect("JSON values serialize") + "\n",
        Output::Yaml => joblet_api::yaml::to_string(&value),
    };
    print!("{text}");
}
