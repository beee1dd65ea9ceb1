//! Who a container's process runs as and with which privileges, as the kubelet's effective
//! security context (`DetermineEffectiveSecurityContext`: the container's fields, else the
//! pod's) and a CRI runtime make them (containerd's `WithUser`, `WithAdditionalGIDs`,
//! `WithCapabilities`): the user from `runAsUser`, else the image's `USER` looked up in the
//! image's `/etc/passwd`; `runAsNonRoot` checked as `verifyRunAsNonRoot` does.

use joblet_api::k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};

use crate::plan::format_pod;

/// What a runtime's default spec gives a container (containerd's and podman's default set).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability of Linux 6.x: what `privileged` and `add: [ALL]` give.
const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The image's own words on users: its `USER`, and its account files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageUser {
    /// `USER` of the image's config: `""` (root), `uid`, `name`, `uid:gid`, `name:group`.
    pub user: String,
    /// The image's `/etc/passwd` and `/etc/group` (empty when it has none).
    pub passwd: String,
    pub group: String,
}

/// How a container's process runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSecurity {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
    pub read_only_root: bool,
}

/// The container's process security, or why the container cannot be created (the kubelet's
/// `CreateContainerConfigError` message).
pub fn process_security(
    pod: &Pod,
    container: &Container,
    image: &ImageUser,
) -> Result<ProcessSecurity, String> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.clone().unwrap_or_default();
    let run_as_user = sc.run_as_user.or(pod_sc.and_then(|p| p.run_as_user));
    let run_as_group = sc.run_as_group.or(pod_sc.and_then(|p| p.run_as_group));
    let run_as_non_root = sc
        .run_as_non_root
        .or(pod_sc.and_then(|p| p.run_as_non_root));
    let (user, group) = match image.user.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (image.user.as_str(), None),
    };
    let numeric = |s: &str| s.parse::<u32>().ok();
    if run_as_non_root == Some(true) {
        let where_ = format!(
            "(pod: {:?}, container: {})",
            format_pod(pod),
            container.name
        );
        match (run_as_user, numeric(user)) {
            (Some(0), _) => {
                return Err(format!(
                    "container's runAsUser breaks non-root policy {where_}"
                ))
            }
            (Some(_), _) => {}
            (None, None) if !user.is_empty() => {
                return Err(format!(
                    "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root {where_}"
                ))
            }
            (None, Some(0)) | (None, None) => {
                return Err(format!(
                    "container has runAsNonRoot and image will run as root {where_}"
                ))
            }
            (None, Some(_)) => {}
        }
    }
    let passwd = accounts(&image.passwd);
    let entry_of_uid = |uid: u32| passwd.iter().find(|a| a.id == uid);
    let (uid, username, user_gid) = match run_as_user {
        Some(uid) => {
            let uid = id(uid, "runAsUser")?;
            let entry = entry_of_uid(uid);
            (uid, entry.map(|a| a.name), entry.and_then(|a| a.gid))
        }
        None if user.is_empty() => (0, entry_of_uid(0).map(|a| a.name), Some(0)),
        None => match numeric(user) {
            Some(uid) => {
                let entry = entry_of_uid(uid);
                (uid, entry.map(|a| a.name), entry.and_then(|a| a.gid))
            }
            None => {
                let entry = passwd.iter().find(|a| a.name == user).ok_or_else(|| {
                    format!("unable to find user {user}: no matching entries in passwd file")
                })?;
                (entry.id, Some(entry.name), entry.gid)
            }
        },
    };
    let groups = accounts(&image.group);
    // The image's group, when it names one and no runAsUser replaced its user.
    let image_gid = match (run_as_user, group) {
        (None, Some(group)) => Some(match numeric(group) {
            Some(gid) => gid,
            None => (groups.iter().find(|g| g.name == group))
                .map(|g| g.id)
                .ok_or_else(|| {
                    format!("unable to find group {group}: no matching entries in group file")
                })?,
        }),
        _ => None,
    };
    let gid = match run_as_group {
        Some(gid) => id(gid, "runAsGroup")?,
        None => image_gid.or(user_gid).unwrap_or(0),
    };
    let mut additional_gids: Vec<u32> = match username {
        Some(name) => (groups.iter())
            .filter(|g| g.members.contains(&name))
            .map(|g| g.id)
            .collect(),
        None => Vec::new(),
    };
    let pod_groups = pod_sc.and_then(|p| p.fs_group).into_iter();
    let pod_groups = pod_groups.chain(
        pod_sc
            .and_then(|p| p.supplemental_groups.clone())
            .into_iter()
            .flatten(),
    );
    for group in pod_groups {
        additional_gids.push(id(group, "supplementalGroups")?);
    }
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(ProcessSecurity {
        uid,
        gid,
        additional_gids,
        capabilities: capabilities(&sc),
        no_new_privileges: sc.allow_privilege_escalation == Some(false),
        read_only_root: sc.read_only_root_filesystem == Some(true),
    })
}

/// containerd's `WithCapabilities`: `privileged` or `add: [ALL]` give all, `drop: [ALL]`
/// removes all, then the named ones are added and dropped (`NET_ADMIN` is `CAP_NET_ADMIN`).
fn capabilities(sc: &SecurityContext) -> Vec<String> {
    let mut caps: Vec<String> = if sc.privileged == Some(true) {
        ALL_CAPABILITIES.map(String::from).to_vec()
    } else {
        DEFAULT_CAPABILITIES.map(String::from).to_vec()
    };
    let (add, drop) = match &sc.capabilities {
        Some(c) => (
            c.add.clone().unwrap_or_default(),
            c.drop.clone().unwrap_or_default(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    if add.iter().any(is_all) {
        caps = ALL_CAPABILITIES.map(String::from).to_vec();
    }
    if drop.iter().any(is_all) {
        caps.clear();
    }
    let named = |c: &String| format!("CAP_{}", c.to_ascii_uppercase());
    for cap in add.iter().filter(|c| !is_all(c)).map(named) {
        if !caps.contains(&cap) {
            caps.push(cap);
        }
    }
    let dropped: Vec<String> = drop.iter().filter(|c| !is_all(c)).map(named).collect();
    caps.retain(|c| !dropped.contains(c));
    caps
}

fn id(value: i64, field: &str) -> Result<u32, String> {
    u32::try_from(value).map_err(|_| format!("{field} {value} is not a valid id"))
}

/// One line of `/etc/passwd` (`name:x:uid:gid:...`) or `/etc/group` (`name:x:gid:members`).
struct Account<'a> {
    name: &'a str,
    id: u32,
    /// passwd: the primary group.
    gid: Option<u32>,
    /// group: its members' names.
    members: Vec<&'a str>,
}

fn accounts(text: &str) -> Vec<Account<'_>> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let id = fields.get(2)?.parse().ok()?;
            let fourth = fields.get(3).copied().unwrap_or("");
            Some(Account {
                name: fields[0],
                id,
                gid: fourth.parse().ok(),
                members: fourth.split(',').filter(|m| !m.is_empty()).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nstaff:x:50:app\naudio:x:29:other\n";

    fn security(
        pod_sc: serde_json::Value,
        sc: serde_json::Value,
        user: &str,
    ) -> Result<ProcessSecurity, String> {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"securityContext": pod_sc, "containers": []}}))
        .unwrap();
        let container: Container =
            serde_json::from_value(json!({"name": "main", "securityContext": sc})).unwrap();
        let image = ImageUser {
            user: user.to_string(),
            passwd: PASSWD.to_string(),
            group: GROUP.to_string(),
        };
        process_security(&pod, &container, &image)
    }

    fn ids(s: &ProcessSecurity) -> (u32, u32, Vec<u32>) {
        (s.uid, s.gid, s.additional_gids.clone())
    }

    #[test]
    fn the_user_comes_from_run_as_user_else_the_images_user_looked_up_in_its_passwd() {
        let root = security(json!({}), json!({}), "").unwrap();
        assert_eq!(ids(&root), (0, 0, vec![]));
        assert_eq!(root.capabilities, DEFAULT_CAPABILITIES.to_vec());
        assert!(!root.no_new_privileges && !root.read_only_root);
        // A named user: its uid and primary group, and the groups that list it.
        assert_eq!(
            ids(&security(json!({}), json!({}), "app").unwrap()),
            (1000, 1000, vec![50])
        );
        assert_eq!(
            ids(&security(json!({}), json!({}), "app:staff").unwrap()),
            (1000, 50, vec![50])
        );
        assert_eq!(
            ids(&security(json!({}), json!({}), "4242").unwrap()),
            (4242, 0, vec![])
        );
        // The pod's runAsUser replaces the image's user; the container's replaces the pod's.
        let pod = json!({"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000]});
        assert_eq!(
            ids(&security(pod.clone(), json!({}), "").unwrap()),
            (1000, 3000, vec![50, 2000, 4000])
        );
        assert_eq!(
            ids(&security(pod, json!({"runAsUser": 7}), "").unwrap()),
            (7, 3000, vec![2000, 4000])
        );
        assert_eq!(
            security(json!({}), json!({}), "nobody").unwrap_err(),
            "unable to find user nobody: no matching entries in passwd file"
        );
    }

    #[test]
    fn run_as_non_root_is_checked_as_the_kubelet_checks_it() {
        let non_root = json!({"runAsNonRoot": true});
        let at = "(pod: \"p_ns(u1)\", container: main)";
        assert_eq!(
            security(non_root.clone(), json!({}), "").unwrap_err(),
            format!("container has runAsNonRoot and image will run as root {at}")
        );
        assert_eq!(
            security(non_root.clone(), json!({}), "app").unwrap_err(),
            format!("container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root {at}")
        );
        assert_eq!(
            security(non_root.clone(), json!({"runAsUser": 0}), "1000").unwrap_err(),
            format!("container's runAsUser breaks non-root policy {at}")
        );
        assert!(security(non_root.clone(), json!({}), "1000").is_ok());
        assert!(security(non_root, json!({"runAsUser": 1000}), "").is_ok());
    }

    #[test]
    fn capabilities_and_privileges_follow_the_security_context() {
        let hardened = json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}});
        let s = security(json!({}), hardened, "").unwrap();
        assert_eq!(s.capabilities, ["CAP_NET_BIND_SERVICE"]);
        assert!(s.no_new_privileges && s.read_only_root);
        let s = security(
            json!({}),
            json!({"capabilities": {"add": ["ALL"], "drop": ["chown"]}}),
            "",
        )
        .unwrap();
        assert_eq!(s.capabilities.len(), ALL_CAPABILITIES.len() - 1);
        assert!(!s.capabilities.contains(&"CAP_CHOWN".to_string()));
        let s = security(json!({}), json!({"privileged": true}), "").unwrap();
        assert!(s.capabilities.contains(&"CAP_SYS_ADMIN".to_string()));
    }
}
