//! Which cluster a run goes to, by kubectl's rules, and whether it answers: a cluster that
//! cannot be reached, refuses the credentials or lacks `batch/v1` is said in one line naming
//! the context and the server, before anything is sent.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// What the user named: `--kubeconfig`, `--context`, `--namespace`.
#[derive(Clone, Debug, Default)]
pub struct Target {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
}

pub struct Cluster {
    pub client: Client,
    /// Where objects that name no namespace go: `--namespace`, else the context's.
    pub namespace: String,
    pub context: String,
    pub server: String,
}

impl Cluster {
    /// `context "NAME" (https://SERVER)`, as errors name the cluster.
    pub fn describe(&self) -> String {
        format!("context {:?} ({})", self.context, self.server)
    }
}

/// Loads the kubeconfig (`--kubeconfig`, else `KUBECONFIG`'s files merged, else
/// `~/.kube/config`) and picks the context (`--context`, else the current one). Sends
/// nothing: `Cluster::check` does.
pub async fn load(target: &Target) -> Result<Cluster, String> {
    let kubeconfig = match &target.kubeconfig {
        Some(path) => Kubeconfig::read_from(path)
            .map_err(|e| format!("error: kubeconfig {}: {}", path.display(), chain(&e)))?,
        None => Kubeconfig::read().map_err(|e| format!("error: kubeconfig: {}", chain(&e)))?,
    };
    let context = match (&target.context, &kubeconfig.current_context) {
        (Some(context), _) => context.clone(),
        (None, Some(current)) => current.clone(),
        (None, None) => {
            return Err(
                "error: the kubeconfig has no current context: name one with --context".to_string(),
            )
        }
    };
    if !kubeconfig.contexts.iter().any(|c| c.name == context) {
        return Err(format!(
            "error: context {context:?} does not exist in the kubeconfig"
        ));
    }
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| format!("error: context {context:?}: {}", chain(&e)))?;
    let server = config.cluster_url.to_string();
    let server = server.trim_end_matches('/').to_string();
    let namespace = (target.namespace.clone()).unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config)
        .map_err(|e| format!("error: context {context:?} ({server}): {}", chain(&e)))?;
    Ok(Cluster {
        client,
        namespace,
        context,
        server,
    })
}

impl Cluster {
    /// Asks the server for `batch/v1`: it answers, takes the credentials, and serves Jobs.
    pub async fn check(&self) -> Result<(), String> {
        match self.client.list_api_group_resources("batch/v1").await {
            Ok(resources) if resources.resources.iter().any(|r| r.name == "jobs") => Ok(()),
            Ok(_) => Err(format!(
                "error: {}: the server has no batch/v1 Jobs",
                self.describe()
            )),
            Err(kube::Error::Api(status)) if status.code == 404 => Err(format!(
                "error: {}: the server has no batch/v1 API",
                self.describe()
            )),
            Err(kube::Error::Api(status)) if matches!(status.code, 401 | 403) => Err(format!(
                "error: {}: the server refused the credentials: {}",
                self.describe(),
                said_by_server(&status)
            )),
            Err(e) => Err(format!(
                "error: {}: cannot reach the server: {}",
                self.describe(),
                said(&e)
            )),
        }
    }
}

/// An error and its causes in one line, as Go's wrapped errors read.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// What a failed request says: the server's Status, or the transport's error.
pub fn said(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => said_by_server(status),
        other => chain(other),
    }
}

fn said_by_server(status: &kube::core::Status) -> String {
    match (status.message.is_empty(), status.reason.is_empty()) {
        (false, _) => status.message.clone(),
        (true, false) => status.reason.clone(),
        (true, true) => format!("HTTP {}", status.code),
    }
}
