//! What the kubelet says about a pod as events, read from how its status changed: a
//! container that starts waiting in back-off (`BackOff`), whose configuration or start
//! failed (`Failed`, `Error: …`) or whose image could not be had (image_manager.go's
//! `Failed to pull image …`, `Back-off pulling image …`, `ErrImageNeverPull`), as upstream's
//! kubelet records them; and each run's start (`Created`, `Started`).

use std::time::Duration;

use joblet_api::k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};

use crate::plan::format_pod;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeletEvent {
    /// The container the event is about (the event's `fieldPath` names it).
    pub container: String,
    pub reason: String,
    pub message: String,
    /// A Warning event, else a Normal one.
    pub warning: bool,
}

/// The events of the change from `previous` to `current`.
pub fn kubelet_events(pod: &Pod, previous: &PodStatus, current: &PodStatus) -> Vec<KubeletEvent> {
    let pod_name = format_pod(pod);
    let before: Vec<&ContainerStatus> = container_statuses(previous).collect();
    let mut events = Vec::new();
    for now in container_statuses(current) {
        let was = before.iter().copied().find(|c| c.name == now.name);
        let state = |c: &ContainerStatus| c.state.clone().unwrap_or_default();
        let waiting = |c: &ContainerStatus| {
            let w = state(c).waiting?;
            Some((w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
        };
        let new_waiting = waiting(now).filter(|w| was.and_then(waiting).as_ref() != Some(w));
        let event = |reason: &str, message, warning| KubeletEvent {
            container: now.name.clone(),
            reason: reason.to_string(),
            message,
            warning,
        };
        let image = &now.image;
        match new_waiting.as_ref().map(|(r, m)| (r.as_str(), m)) {
            Some(("CrashLoopBackOff", _)) => events.push(event(
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {pod_name}",
                    now.name
                ),
                true,
            )),
            Some(("CreateContainerConfigError", message)) => {
                events.push(event("Failed", format!("Error: {message}"), true))
            }
            Some(("ErrImagePull", message)) => events.extend([
                event(
                    "Failed",
                    format!("Failed to pull image {image:?}: {message}"),
                    true,
                ),
                event("Failed", "Error: ErrImagePull".to_string(), true),
            ]),
            Some(("ImagePullBackOff", message)) => events.extend([
                event("BackOff", message.clone(), false),
                event("Failed", "Error: ImagePullBackOff".to_string(), true),
            ]),
            Some(("ErrImageNeverPull", message)) => events.extend([
                event("ErrImageNeverPull", message.clone(), true),
                event("Failed", "Error: ErrImageNeverPull".to_string(), true),
            ]),
            _ => {}
        }
        // A new container id is a run that started (`startContainer`'s Normal events); a
        // start that failed keeps the last run's id.
        let new_run = now.container_id.is_some()
            && now.container_id != was.and_then(|c| c.container_id.clone());
        if new_run {
            let name = &now.name;
            events.push(event(
                "Created",
                format!("Created container: {name}"),
                false,
            ));
            events.push(event("Started", format!("Started container {name}"), false));
        }
        let start_error = state(now)
            .terminated
            .filter(|t| t.reason.as_deref() == Some("StartError"));
        let already = was.and_then(|c| state(c).terminated) == start_error;
        if let (Some(terminated), false) = (start_error, already) {
            let message = format!("Error: {}", terminated.message.unwrap_or_default());
            events.push(event("Failed", message, true));
        }
    }
    events
}

/// Init containers' statuses, then the others'.
fn container_statuses(status: &PodStatus) -> impl Iterator<Item = &ContainerStatus> + Clone {
    let inits = status.init_container_statuses.iter().flatten();
    inits.chain(status.container_statuses.iter().flatten())
}

/// Whether a report of `later` may stand for one of `earlier` too, as the kubelet's status
/// manager sends only the latest status it holds: from any status before them, the events
/// read from the change to `later` are those read to `earlier` and then to `later`. So
/// when the same containers run the same runs (container ids) in both, and none waits or
/// failed to start in either: each change then says only the runs that started.
pub fn supersedes(earlier: &PodStatus, later: &PodStatus) -> bool {
    let says_only_runs = |c: &ContainerStatus| {
        let state = c.state.as_ref();
        let waits = state.is_some_and(|s| s.waiting.is_some());
        let start_error = state
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.reason.as_deref() == Some("StartError"));
        !waits && !start_error
    };
    let (was, now) = (container_statuses(earlier), container_statuses(later));
    was.clone().count() == now.clone().count()
        && was.zip(now).all(|(was, now)| {
            was.name == now.name
                && was.container_id == now.container_id
                && says_only_runs(was)
                && says_only_runs(now)
        })
}

/// What the image manager says of a container's image as it makes it ready
/// (image_manager.go's `EnsureImageExists`), told by the pod worker as it happens: a pod's
/// status does not show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageNews {
    /// On the machine, as the pull policy allows: no pull.
    Present,
    Pulling,
    Pulled {
        /// How long the pull took, and with the wait for the pulls before it.
        took: Duration,
        with_waiting: Duration,
        size_bytes: u64,
    },
}

impl ImageNews {
    pub fn event(&self, container: &str, image: &str) -> KubeletEvent {
        let (reason, message) = match self {
            ImageNews::Present => (
                "Pulled",
                format!("Container image {image:?} already present on machine"),
            ),
            ImageNews::Pulling => ("Pulling", format!("Pulling image {image:?}")),
            ImageNews::Pulled {
                took,
                with_waiting,
                size_bytes,
            } => (
                "Pulled",
                format!(
                    "Successfully pulled image {image:?} in {} ({} including waiting). Image size: {size_bytes} bytes.",
                    go_millis(*took),
                    go_millis(*with_waiting)
                ),
            ),
        };
        KubeletEvent {
            container: container.to_string(),
            reason: reason.to_string(),
            message,
            warning: false,
        }
    }
}

/// A duration as Go prints `d.Truncate(time.Millisecond)`: `0s`, `313ms`, `1.594s`,
/// `2m5s`, `1h0m0.5s`.
fn go_millis(d: Duration) -> String {
    let millis = d.as_millis();
    if millis == 0 {
        return "0s".to_string();
    }
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let (hours, minutes) = (millis / 3_600_000, millis / 60_000 % 60);
    let (seconds, fraction) = (millis / 1000 % 60, millis % 1000);
    let mut text = match (hours, minutes) {
        (0, 0) => String::new(),
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h{m}m"),
    };
    text += &seconds.to_string();
    if fraction > 0 {
        text += format!(".{fraction:03}").trim_end_matches('0');
    }
    text + "s"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(containers: serde_json::Value) -> PodStatus {
        serde_json::from_value(json!({"containerStatuses": containers})).unwrap()
    }

    fn container(state: serde_json::Value) -> serde_json::Value {
        json!({"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": state})
    }

    /// The container in `state`, in the run `id` if it has one.
    fn run(id: Option<&str>, state: serde_json::Value) -> serde_json::Value {
        let mut c = container(state);
        if let Some(id) = id {
            c["containerID"] = json!(id);
        }
        c
    }

    /// An event as [`said`] gives it.
    fn e(reason: &str, message: &str, warning: bool) -> (String, String, bool) {
        (reason.into(), message.into(), warning)
    }

    /// The events of a change as (reason, message, warning).
    fn said(pod: &Pod, from: &PodStatus, to: &PodStatus) -> Vec<(String, String, bool)> {
        (kubelet_events(pod, from, to).into_iter())
            .map(|e| (e.reason, e.message, e.warning))
            .collect()
    }

    #[test]
    fn back_off_config_errors_and_start_errors_are_said_once() {
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}}),
        )
        .unwrap();
        let running = status(json!([container(json!({"running": {}}))]));
        let backing_off = status(json!([container(
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}})
        )]));
        let events = kubelet_events(&pod, &running, &backing_off);
        assert_eq!(
            events,
            [KubeletEvent {
                container: "main".into(),
                reason: "BackOff".into(),
                message: "Back-off restarting failed container main in pod p_ns(u1)".into(),
                warning: true,
            }]
        );
        assert!(kubelet_events(&pod, &backing_off, &backing_off).is_empty());
        let config = status(json!([container(
            json!({"waiting": {"reason": "CreateContainerConfigError",
            "message": "configmap \"x\" not found"}})
        )]));
        let events = kubelet_events(&pod, &PodStatus::default(), &config);
        assert_eq!(events[0].message, "Error: configmap \"x\" not found");
        let start = status(json!([container(
            json!({"terminated": {"exitCode": 128, "reason": "StartError",
            "message": "exec: \"nope\": executable file not found in $PATH"}})
        )]));
        let events = kubelet_events(&pod, &running, &start);
        assert_eq!(
            (events[0].reason.as_str(), events[0].message.as_str()),
            (
                "Failed",
                "Error: exec: \"nope\": executable file not found in $PATH"
            )
        );
        let failed = status(json!([container(
            json!({"terminated": {"exitCode": 1, "reason": "Error"}})
        )]));
        assert!(kubelet_events(&pod, &running, &failed).is_empty());
    }

    #[test]
    fn image_failures_are_said_as_image_manager_says_them() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        let said = |from: &PodStatus, to: &PodStatus| said(&pod, from, to);
        let creating = status(json!([container(
            json!({"waiting": {"reason": "ContainerCreating"}})
        )]));
        let failed = status(json!([container(
            json!({"waiting": {"reason": "ErrImagePull", "message": "connection refused"}})
        )]));
        let backing_off = status(json!([container(
            json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}})
        )]));
        assert_eq!(
            said(&creating, &failed),
            [
                e(
                    "Failed",
                    "Failed to pull image \"x\": connection refused",
                    true
                ),
                e("Failed", "Error: ErrImagePull", true)
            ]
        );
        assert_eq!(
            said(&failed, &backing_off),
            [
                e("BackOff", "Back-off pulling image \"x\"", false),
                e("Failed", "Error: ImagePullBackOff", true)
            ]
        );
        // Each failure after a back-off is said again.
        assert_eq!(said(&backing_off, &failed).len(), 2);
        assert!(said(&failed, &failed).is_empty());
        let never = status(json!([container(
            json!({"waiting": {"reason": "ErrImageNeverPull",
            "message": "Container image \"x\" is not present with pull policy of Never"}})
        )]));
        assert_eq!(
            said(&creating, &never),
            [
                e(
                    "ErrImageNeverPull",
                    "Container image \"x\" is not present with pull policy of Never",
                    true
                ),
                e("Failed", "Error: ErrImageNeverPull", true)
            ]
        );
    }

    #[test]
    fn each_run_that_starts_is_created_and_started() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        let with_id = |id, state| status(json!([run(id, state)]));
        let creating = with_id(None, json!({"waiting": {"reason": "ContainerCreating"}}));
        let running = with_id(Some("joblet://10"), json!({"running": {}}));
        let said = |from: &PodStatus, to: &PodStatus| said(&pod, from, to);
        assert_eq!(
            said(&creating, &running),
            [
                e("Created", "Created container: main", false),
                e("Started", "Started container main", false)
            ]
        );
        let exited = with_id(Some("joblet://10"), json!({"terminated": {"exitCode": 0}}));
        assert!(said(&running, &exited).is_empty());
        // A run too short to be seen running is still said; so is the next run.
        assert_eq!(said(&creating, &exited).len(), 2);
        let again = with_id(Some("joblet://11"), json!({"running": {}}));
        assert_eq!(said(&exited, &again).len(), 2);
    }

    #[test]
    fn a_status_supersedes_another_only_when_skipping_it_loses_no_event() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        let states = [
            json!({"waiting": {"reason": "ContainerCreating"}}),
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}),
            json!({"waiting": {"reason": "ErrImagePull", "message": "refused"}}),
            json!({"running": {}}),
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
            json!({"terminated": {"exitCode": 128, "reason": "StartError", "message": "no"}}),
        ];
        let mut containers = Vec::new();
        for id in [None, Some("joblet://1"), Some("joblet://2")] {
            for state in &states {
                containers.push(run(id, state.clone()));
            }
        }
        // One container, then with a sidecar beside it (an init container in a run).
        let mut all: Vec<PodStatus> = (containers.iter()).map(|c| status(json!([c]))).collect();
        all.push(PodStatus::default());
        for sidecar in [&containers[9], &containers[16]] {
            let mut sidecar = sidecar.clone();
            sidecar["name"] = json!("sidecar");
            for c in [&containers[9], &containers[10], &containers[15]] {
                let mut with_sidecar = status(json!([c]));
                with_sidecar.init_container_statuses =
                    Some(vec![serde_json::from_value(sidecar.clone()).unwrap()]);
                all.push(with_sidecar);
            }
        }
        let mut superseding = 0;
        for earlier in &all {
            for later in &all {
                if !supersedes(earlier, later) {
                    continue;
                }
                superseding += 1;
                for before in &all {
                    let mut in_two = said(&pod, before, earlier);
                    in_two.extend(said(&pod, earlier, later));
                    assert_eq!(
                        said(&pod, before, later),
                        in_two,
                        "{earlier:?} then {later:?} after {before:?}"
                    );
                }
            }
        }
        // Running, then ended, in the same run: the report kubelets skip most.
        let running = status(json!([run(Some("joblet://1"), json!({"running": {}}))]));
        let ended = status(json!([run(Some("joblet://1"), states[4].clone())]));
        assert!(supersedes(&running, &ended));
        let next_run = status(json!([run(Some("joblet://2"), json!({"running": {}}))]));
        assert!(!supersedes(&ended, &next_run));
        assert!(superseding > 10, "{superseding}");
    }

    #[test]
    fn the_image_managers_news_reads_as_its_events() {
        let pulled = ImageNews::Pulled {
            took: Duration::from_millis(796),
            with_waiting: Duration::from_micros(1_594_400),
            size_bytes: 543804759,
        };
        assert_eq!(
            pulled.event("runner", "x:1").message,
            "Successfully pulled image \"x:1\" in 796ms (1.594s including waiting). Image size: 543804759 bytes."
        );
        assert_eq!(
            ImageNews::Present.event("main", "busybox:1.36"),
            KubeletEvent {
                container: "main".into(),
                reason: "Pulled".into(),
                message: "Container image \"busybox:1.36\" already present on machine".into(),
                warning: false
            }
        );
        assert_eq!(
            ImageNews::Pulling.event("main", "x").message,
            "Pulling image \"x\""
        );
        let go = |millis: u64| go_millis(Duration::from_millis(millis));
        assert_eq!(
            [go(0), go(5), go(1000), go(1500), go(125_000), go(3_600_500)],
            ["0s", "5ms", "1s", "1.5s", "2m5s", "1h0m0.5s"]
        );
    }
}
