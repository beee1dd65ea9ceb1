//! The process a container runs from an image, as the kubelet and a CRI runtime compose it
//! (containerd's `WithProcessArgs`, `WithEnv`; cri-o alike): `command` replaces the image's
//! `ENTRYPOINT` and drops its `CMD`, `args` alone replaces `CMD`, neither keeps both; the
//! image's variables come first and the container's replace them; `workingDir` unset is the
//! image's.

use joblet_api::k8s_openapi::api::core::v1::Container;

use crate::env::expand_parts;

/// What an image's config says of how to run it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value`, in order.
    pub env: Vec<String>,
    pub working_dir: String,
}

/// A container's process: its arguments, variables and working directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
}

/// What a runtime's default spec puts in `PATH` when the image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The process for `container` from `image`, its `command` and `args` expanded with `env`
/// (the container's variables, as `container_env` made them). An image with nothing to run
/// and a container that names nothing is an error, in containerd's words.
pub fn container_process(
    container: &Container,
    env: &[(String, String)],
    image: &ImageConfig,
) -> Result<Process, String> {
    let command = expand_parts(&container.command, env);
    let args = expand_parts(&container.args, env);
    let args = match (command.is_empty(), args.is_empty()) {
        (false, _) => [command, args].concat(),
        (true, false) => [image.entrypoint.clone(), args].concat(),
        (true, true) => [image.entrypoint.clone(), image.cmd.clone()].concat(),
    };
    if args.is_empty() {
        return Err("failed to generate spec: no command specified".to_string());
    }
    let mut merged: Vec<(String, String)> = image
        .env
        .iter()
        .map(|var| match var.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (var.clone(), String::new()),
        })
        .collect();
    if !merged.iter().any(|(name, _)| name == "PATH") {
        merged.insert(0, ("PATH".to_string(), DEFAULT_PATH.to_string()));
    }
    for (name, value) in env {
        match merged.iter_mut().find(|(n, _)| n == name) {
            Some(existing) => existing.1.clone_from(value),
            None => merged.push((name.clone(), value.clone())),
        }
    }
    let cwd = container
        .working_dir
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| Some(image.working_dir.clone()).filter(|d| !d.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    Ok(Process {
        args,
        env: merged,
        cwd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry.sh".into()],
            cmd: vec!["default".into(), "cmd".into()],
            env: vec!["PATH=/opt/bin:/bin".into(), "MODE=image".into()],
            working_dir: "/work".into(),
        }
    }

    fn args(container: serde_json::Value) -> Result<Vec<String>, String> {
        let container: Container = serde_json::from_value(container).unwrap();
        container_process(&container, &[("WHO".into(), "pod".into())], &image()).map(|p| p.args)
    }

    #[test]
    fn command_and_args_replace_the_images_entrypoint_and_cmd_as_upstream() {
        // Neither: the image's entrypoint and cmd.
        assert_eq!(
            args(json!({"name": "c"})).unwrap(),
            ["/entry.sh", "default", "cmd"]
        );
        // Args alone: the image's entrypoint with the container's args.
        assert_eq!(
            args(json!({"name": "c", "args": ["hello", "$(WHO)"]})).unwrap(),
            ["/entry.sh", "hello", "pod"]
        );
        // A command: the image's cmd is dropped.
        assert_eq!(
            args(json!({"name": "c", "command": ["/bin/sh"]})).unwrap(),
            ["/bin/sh"]
        );
        assert_eq!(
            args(json!({"name": "c", "command": ["/bin/sh"], "args": ["-c", "echo $(WHO)"]}))
                .unwrap(),
            ["/bin/sh", "-c", "echo pod"]
        );
        let container: Container = serde_json::from_value(json!({"name": "c"})).unwrap();
        assert_eq!(
            container_process(&container, &[], &ImageConfig::default()),
            Err("failed to generate spec: no command specified".to_string())
        );
    }

    #[test]
    fn the_images_variables_come_first_and_the_containers_replace_them() {
        let container: Container =
            serde_json::from_value(json!({"name": "c", "workingDir": "/data"})).unwrap();
        let env = [
            ("MODE".to_string(), "pod".to_string()),
            ("EXTRA".to_string(), "1".to_string()),
        ];
        let process = container_process(&container, &env, &image()).unwrap();
        let names: Vec<(&str, &str)> = process
            .env
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            names,
            [("PATH", "/opt/bin:/bin"), ("MODE", "pod"), ("EXTRA", "1")]
        );
        assert_eq!(process.cwd, "/data");
        // No PATH in the image: the runtime's default; no working directory anywhere: `/`.
        let bare = ImageConfig {
            cmd: vec!["true".into()],
            ..Default::default()
        };
        let container: Container = serde_json::from_value(json!({"name": "c"})).unwrap();
        let process = container_process(&container, &[], &bare).unwrap();
        assert_eq!(process.env[0].0, "PATH");
        assert_eq!(process.cwd, "/");
        // The image's working directory when the container sets none.
        let process = container_process(&container, &[], &image()).unwrap();
        assert_eq!(process.cwd, "/work");
    }
}
