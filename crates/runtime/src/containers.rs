//! What a pod worker asks of the machinery that runs containers, as the kubelet asks CRI:
//! start one run of a container, and later stop it or learn how it ended. The pod rules
//! (`joblet_kubelet::sync_pod`) and the worker know nothing else of a runtime, so another
//! runtime is another implementation of [`ContainerRuntime`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use std::sync::Arc;

use joblet_api::k8s_openapi::api::core::v1::{Container, Pod};
use joblet_kubelet::{ImageError, ImageNews, Node, Objects};

use crate::reaper::Exit;

/// One run of a container to start.
pub(crate) struct RunRequest<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    /// The container's variables, as `container_env` made them.
    pub env: &'a [(String, String)],
    /// The ConfigMaps and Secrets of the node, for the files of its volumes.
    pub objects: &'a Objects,
    /// The node, for the downward API's files.
    pub node: &'a Node,
    /// How often the container restarted before: names this run's log.
    pub restarts: i32,
}

/// How a run ended.
pub(crate) struct RunEnd {
    pub exit: Exit,
    /// The kernel killed it for going over its memory limit.
    pub oom_killed: bool,
}

/// Asks a run to end: SIGTERM now, SIGKILL after the grace period.
pub(crate) type Stop = Box<dyn Fn(Duration) + Send + Sync>;

/// A run that started.
pub(crate) struct Started {
    /// The `containerID` a pod's status shows.
    pub id: String,
    /// Resolves once the run has ended and its output is all in its log.
    pub exit: Pin<Box<dyn Future<Output = RunEnd> + Send>>,
    pub stop: Stop,
}

/// Why a run did not start.
pub(crate) enum StartFailure {
    /// Something the container needs is not there yet (a volume's ConfigMap or Secret): it
    /// waits, and is tried again when the node's objects change.
    Waiting(String),
    /// What `kubectl describe pod` shows for a container that could not start
    /// (`StartError`).
    Failed(String),
}

impl From<String> for StartFailure {
    fn from(message: String) -> Self {
        StartFailure::Failed(message)
    }
}

/// An image made ready (on the machine already, or pulled), or why it could not be.
pub(crate) type ImageResult = Result<ImageNews, (ImageError, String)>;

/// Called when a fetch starts pulling: the `Pulling` event is said as the pull starts.
pub(crate) type OnPull = Box<dyn FnOnce() + Send>;

/// What a container's image needs before a run can start, as `EnsureImageExists` decides
/// from the pull policy.
pub(crate) enum ImageNeed {
    /// The runtime runs no images (host processes).
    None,
    /// On the machine, and the policy does not ask for a pull.
    Present,
    /// Looked for and, as the policy says, pulled: off the pod's worker, as it may take long.
    Fetch(Pin<Box<dyn Future<Output = ImageResult> + Send>>),
}

pub(crate) trait ContainerRuntime: Send + Sync {
    /// Whether the image of `container` is ready to start from; `on_pull` is called if a
    /// fetch pulls it.
    fn image(self: Arc<Self>, _container: &Container, _on_pull: OnPull) -> ImageNeed {
        ImageNeed::None
    }

    fn start(&self, run: RunRequest<'_>) -> Result<Started, StartFailure>;

    /// The pod ended: what its runs shared (its volumes) can go.
    fn pod_ended(&self, _pod: &Pod) {}
}
