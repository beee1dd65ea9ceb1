//! What the kubelet says about a pod as events, read from how its status changed: a
//! container that starts waiting in back-off (`BackOff`), or whose configuration or start
//! failed (`Failed`, `Error: …`), as upstream's kubelet records them. The Normal events of
//! every container's start (`Created`, `Started`) are left out: ten thousand pods would make
//! forty thousand of them.

use joblet_api::k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};

use crate::plan::format_pod;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeletEvent {
    /// The container the event is about (the event's `fieldPath` names it).
    pub container: String,
    pub reason: &'static str,
    pub message: String,
}

/// The events of the change from `previous` to `current`; all Warnings.
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
        match new_waiting {
            Some((reason, _)) if reason == "CrashLoopBackOff" => events.push(KubeletEvent {
                container: now.name.clone(),
                reason: "BackOff",
                message: format!(
                    "Back-off restarting failed container {} in pod {pod_name}",
                    now.name
                ),
            }),
            Some((reason, message)) if reason == "CreateContainerConfigError" => {
                events.push(KubeletEvent {
                    container: now.name.clone(),
                    reason: "Failed",
                    message: format!("Error: {message}"),
                })
            }
            _ => {}
        }
        let start_error = state(&now)
            .terminated
            .filter(|t| t.reason.as_deref() == Some("StartError"));
        let already = was.and_then(|c| state(c).terminated) == start_error;
        if let (Some(terminated), false) = (start_error, already) {
            events.push(KubeletEvent {
                container: now.name.clone(),
                reason: "Failed",
                message: format!("Error: {}", terminated.message.unwrap_or_default()),
            });
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
                message: "Back-off restarting failed container main in pod p_ns(u1)".into()
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
}
