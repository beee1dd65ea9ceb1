//! `joblet serve`: the engine behind a Kubernetes-compatible API over HTTPS, so kubectl and
//! the client libraries work against it unchanged.

mod api;
mod cache;
mod connection;
mod errors;
mod logs;
mod managed;
mod object_locks;
mod openapi;
mod params;
mod patch;
mod protobuf;
mod registry;
mod resources;
mod selectors;
mod table;
pub mod tls;
mod ui;
mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use joblet_api::version::Emulation;
use joblet_core::BackoffConfig;
use joblet_driver::{Durability, Engine, EngineConfig, EngineError, Settled, Shutdown};
use joblet_runtime::SupervisorCommand;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

pub use api::{router, AdmissionConfig, AppState, MAX_BODY};
pub use cache::Cache;

/// A client gets this long to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// At most this many connections and HTTP/2 requests at once (fewer if the descriptor limit
/// is low): with TLS and HTTP buffers each costs up to about 100 KiB, so 4,096 stay under
/// 400 MiB.
const MAX_CONNECTIONS: usize = 4096;

/// The connection cap, leaving descriptors for the database, logs and the supervisor.
fn max_connections() -> usize {
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft as usize);
    MAX_CONNECTIONS.min(limit.saturating_sub(256)).max(16)
}

pub struct ServeConfig {
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    pub backoff: BackoffConfig,
    /// How long the logs of deleted pods stay on disk.
    pub log_retention: Duration,
    /// How long events are kept (the API server's `--event-ttl`).
    pub event_ttl: Duration,
    /// How to start the pods' supervisor, which outlives the server.
    pub supervisor: SupervisorCommand,
    /// On shutdown, stop every pod as a node shutdown does; else they run on under the
    /// supervisor and the next server adopts them.
    pub stop_pods_on_exit: bool,
    pub durability: Durability,
    /// The runtime class of pods whose template names none (`--runtime`).
    pub default_runtime_class: &'static str,
    /// How many pods the node takes at once (`--max-pods`).
    pub max_pods: i64,
    /// The Kubernetes version served (`--emulated-version`).
    pub emulation: Emulation,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Credentials(#[from] tls::CredentialError),
    #[error("another joblet is serving state directory {0}")]
    Busy(String),
    #[error("listening on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
}

/// Holds the state directory for one server: a second one is refused at once.
fn lock_state_dir(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, ServeError> {
    let dir_error = |source| ServeError::StateDir {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(dir_error)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("serve.lock"))
        .map_err(dir_error)?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| ServeError::Busy(dir.display().to_string()))
}

/// An engine for the API: its Jobs recovered from `state_dir`, a cache fed by its writer.
/// Pods run under `supervisor` if given, else as the engine's children.
pub fn open_engine(
    state_dir: &Path,
    backoff: BackoffConfig,
    event_ttl: Duration,
    supervisor: Option<SupervisorCommand>,
    durability: Durability,
    max_pods: i64,
    emulation: Emulation,
) -> Result<(Engine, Arc<Cache>, joblet_driver::EngineHandle), EngineError> {
    let config = EngineConfig {
        state_dir: state_dir.to_path_buf(),
        backoff,
        stream_logs: false,
        keep_running: true,
        event_ttl: Some(event_ttl),
        supervisor,
        durability,
        max_pods,
        emulation,
    };
    let mut engine = Engine::open(config, Box::new(|_| {}))?;
    engine.recover()?;
    let handle = engine.handle();
    let (records, rv) = engine.snapshot()?;
    let cache = Arc::new(Cache::new(records, rv));
    let fed = cache.clone();
    engine.feed(Box::new(move |writes| fed.apply(writes)));
    Ok((engine, cache, handle))
}

/// Serves until `shutdown` resolves; then stops accepting, lets requests in flight finish
/// (streams get a few seconds), commits, and leaves the pods running under the supervisor
/// (or stops them first, with `stop_pods_on_exit`).
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let _lock = lock_state_dir(&config.state_dir)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            address: config.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| ServeError::Listen {
        address: config.listen,
        source,
    })?;
    let credentials = tls::load_or_create(&config.state_dir, address)?;
    let tls = TlsAcceptor::from(tls::server_config(&credentials)?);
    let (mut engine, cache, handle) = open_engine(
        &config.state_dir,
        config.backoff,
        config.event_ttl,
        Some(config.supervisor.clone()),
        config.durability,
        config.max_pods,
        config.emulation,
    )?;
    let kubeconfig = tls::write_kubeconfig(&config.state_dir, address, &credentials)?;
    let state = Arc::new(AppState {
        cache,
        engine: handle,
        token: credentials.token.clone(),
        log_dir: config.state_dir.join("logs"),
        address: address.to_string(),
        writes: Default::default(),
        admission: AdmissionConfig {
            default_runtime_class: config.default_runtime_class,
            emulation: config.emulation,
        },
        metrics: engine.metrics(),
        sessions: Default::default(),
    });
    tokio::spawn(logs::sweep_forever(
        state.cache.clone(),
        state.log_dir.clone(),
        config.log_retention,
    ));
    let (stop_engine, engine_stop_rx) = mpsc::unbounded_channel();
    let engine_task = tokio::spawn(async move { engine.run(engine_stop_rx).await });
    eprintln!("joblet serve: listening on https://{address}");
    match state.sessions.new_code() {
        Ok(code) => eprintln!("web UI: https://{address}/?code={code}"),
        Err(e) => eprintln!("web UI: https://{address}/ (no sign-in code: {e}; paste the token)"),
    }
    println!("export KUBECONFIG={}", kubeconfig.display());

    let app = router(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(tokio::sync::Semaphore::new(max_connections()));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of descriptors (or another passing error): wait for some to
                        // be freed instead of spinning on accept.
                        eprintln!("joblet serve: accepting a connection: {error}");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                };
                // At the cap, a new connection is closed at once: memory and descriptors
                // stay bounded, and the connections already open are served.
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    drop(stream);
                    continue;
                };
                let tls = tls.clone();
                let app = app.clone();
                let places = connections.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let _permit = permit;
                    let Ok(Ok(stream)) = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await else {
                        return;
                    };
                    connection::serve(stream, app, places, watcher).await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(3)) => {}
    }
    let _ = stop_engine.send(if config.stop_pods_on_exit {
        Shutdown::StopPods
    } else {
        Shutdown::LeavePods
    });
    match engine_task.await {
        Ok(Ok(Settled::Interrupted | Settled::Done | Settled::LeftRunning)) => Ok(()),
        Ok(Err(error)) => Err(error.into()),
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}
