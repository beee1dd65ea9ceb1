//! What the kubelet says about a pod as events, read from how its status changed: a
//! container that starts waiting in back-off (`BackOff`), whose configuration or start
//! failed (`Failed`, `Error: …`) or whose image could not be had (image_manager.go's
//! `Failed to pull image …`, `Back-off pulling image …`, `ErrImageNeverPull`), as upstream's
//! kubelet records them; and each run's start (`Created`, `Started`).

use joblet_api::k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};

use crate::plan::format_pod;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeletEvent {
    /// The container the event is about (the event's `fieldPath` names it).
    pub container: String,
    pub reason: &'static str,
    pub message: String,
    /// A Warning event, else a Normal one.
    pub warning: bool,
}

/// The events of the change from `previous` to `current`.
pub fn kubelet_events(pod: &Pod, previous: &PodStatus, current: &PodStatus) -> Vec<KubeletEvent> {
    let pod_name = format_pod(pod);
    let statuses = |s: &PodStatus| -> Vec<ContainerStatus> {
        let inits = s.init_container_statuses.iter().flatten();
        inits
            .chain(s.container_statuses.iter().flatten())
            .cloned()
            .collect()
    };
    let before = statuses(previous);
    let mut events = Vec::new();
    for now in statuses(current) {
        let was = before.iter().find(|c| c.name == now.name);
        let state = |c: &ContainerStatus| c.state.clone().unwrap_or_default();
        let waiting = |c: &ContainerStatus| {
            let w = state(c).waiting?;
            Some((w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
        };
        let new_waiting = waiting(&now).filter(|w| was.and_then(waiting).as_ref() != Some(w));
        let event = |reason, message, warning| KubeletEvent {
            container: now.name.clone(),
            reason,
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
        let start_error = state(&now)
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
                reason: "BackOff",
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
            (events[0].reason, events[0].message.as_str()),
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
        let said = |from: &PodStatus, to: &PodStatus| -> Vec<(&'static str, String, bool)> {
            (kubelet_events(&pod, from, to).into_iter())
                .map(|e| (e.reason, e.message, e.warning))
                .collect()
        };
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
                (
                    "Failed",
                    "Failed to pull image \"x\": connection refused".into(),
                    true
                ),
                ("Failed", "Error: ErrImagePull".into(), true)
            ]
        );
        assert_eq!(
            said(&failed, &backing_off),
            [
                ("BackOff", "Back-off pulling image \"x\"".into(), false),
                ("Failed", "Error: ImagePullBackOff".into(), true)
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
                (
                    "ErrImageNeverPull",
                    "Container image \"x\" is not present with pull policy of Never".into(),
                    true
                ),
                ("Failed", "Error: ErrImageNeverPull".into(), true)
            ]
        );
    }

    #[test]
    fn each_run_that_starts_is_created_and_started() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        let with_id = |id: Option<&str>, state: serde_json::Value| {
            let mut c = container(state);
            if let Some(id) = id {
                c["containerID"] = json!(id);
            }
            status(json!([c]))
        };
        let creating = with_id(None, json!({"waiting": {"reason": "ContainerCreating"}}));
        let running = with_id(Some("joblet://10"), json!({"running": {}}));
        let said = |from: &PodStatus, to: &PodStatus| -> Vec<(&'static str, String, bool)> {
            (kubelet_events(&pod, from, to).into_iter())
                .map(|e| (e.reason, e.message, e.warning))
                .collect()
        };
        assert_eq!(
            said(&creating, &running),
            [
                ("Created", "Created container: main".to_string(), false),
                ("Started", "Started container main".to_string(), false)
            ]
        );
        let exited = with_id(Some("joblet://10"), json!({"terminated": {"exitCode": 0}}));
        assert!(said(&running, &exited).is_empty());
        // A run too short to be seen running is still said; so is the next run.
        assert_eq!(said(&creating, &exited).len(), 2);
        let again = with_id(Some("joblet://11"), json!({"running": {}}));
        assert_eq!(said(&exited, &again).len(), 2);
    }
}
