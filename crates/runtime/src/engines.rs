//! The container engines whose images the OCI runtime runs (`runtimeClassName: podman`,
//! `docker`): each finds, pulls and describes images and gives their root filesystem as
//! overlay layers; the containers themselves are runc's (`oci.rs`), whichever engine holds
//! the images. Another engine is another [`ImageEngine`].

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::reaper::Reaper;

pub(crate) trait ImageEngine: Send + Sync {
    /// The engine's command, in errors.
    fn name(&self) -> &'static str;

    /// What to install for this runtime, in errors.
    fn needs(&self) -> &'static str;

    /// Whether the engine answers and can give images as layers: checked before anything
    /// runs, the error saying what to do.
    fn check(&self, reaper: &Reaper) -> Result<(), String>;

    fn exists(&self, reaper: &Reaper, image: &str) -> bool;

    /// Pulls the image; the error is the engine's own message.
    fn pull(&self, reaper: &Reaper, image: &str) -> Result<(), String>;

    /// The image as `image inspect` describes it (the Docker Engine API's `ImageInspect`,
    /// which podman follows too).
    fn inspect(&self, reaper: &Reaper, image: &str) -> Result<Value, String>;

    /// The image's root filesystem as the read-only layers of an overlay, the top one first.
    fn layers(
        &self,
        reaper: &Reaper,
        image: &str,
        inspected: &Value,
    ) -> Result<Vec<PathBuf>, String>;
}

/// Runs a tool to its end: its standard output, or its error output as the error.
pub(crate) fn run_tool(
    reaper: &Reaper,
    command: &mut Command,
    needs: &str,
) -> Result<String, String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = reaper.output(command).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{program} is not installed: {needs}"),
        _ => format!("{program}: {e}"),
    })?;
    if output.exit.code == 0 {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// The first element of `image inspect`'s array.
pub(crate) fn first_inspected(text: &str, engine: &str) -> Result<Value, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("{engine} image inspect: {e}"))?;
    match value {
        Value::Array(mut images) if !images.is_empty() => Ok(images.swap_remove(0)),
        _ => Err(format!("{engine} image inspect: no image in its answer")),
    }
}

/// The podman engine: its images' root filesystems mounted by podman itself.
pub(crate) struct Podman;

impl ImageEngine for Podman {
    fn name(&self) -> &'static str {
        "podman"
    }

    fn needs(&self) -> &'static str {
        "the podman runtime needs podman and runc (apt-get install podman runc)"
    }

    fn check(&self, reaper: &Reaper) -> Result<(), String> {
        check_versions(reaper, &["podman", "runc"], self.needs())
    }

    fn exists(&self, reaper: &Reaper, image: &str) -> bool {
        self.podman(reaper, &["image", "exists", image]).is_ok()
    }

    fn pull(&self, reaper: &Reaper, image: &str) -> Result<(), String> {
        self.podman(reaper, &["pull", "--quiet", image])
            .map(drop)
            .map_err(|e| last_line(&e, "Error: "))
    }

    fn inspect(&self, reaper: &Reaper, image: &str) -> Result<Value, String> {
        let text = self.podman(reaper, &["image", "inspect", "--format", "json", image])?;
        first_inspected(&text, "podman")
    }

    fn layers(&self, reaper: &Reaper, image: &str, _: &Value) -> Result<Vec<PathBuf>, String> {
        let mounted = self.podman(reaper, &["image", "mount", image])?;
        Ok(vec![PathBuf::from(mounted.trim())])
    }
}

impl Podman {
    fn podman(&self, reaper: &Reaper, args: &[&str]) -> Result<String, String> {
        run_tool(reaper, Command::new("podman").args(args), self.needs())
    }
}

/// The Docker engine: its images' layers are the directories of its `overlay2` storage,
/// which `docker image inspect` names.
pub(crate) struct Docker;

impl ImageEngine for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn needs(&self) -> &'static str {
        "the docker runtime needs a running Docker daemon and runc (apt-get install docker.io runc; systemctl start docker)"
    }

    fn check(&self, reaper: &Reaper) -> Result<(), String> {
        check_versions(reaper, &["docker", "runc"], self.needs())?;
        let driver = self
            .docker(reaper, &["info", "--format", "{{.Driver}}"])
            .map_err(|e| format!("the Docker daemon does not answer: {}", last_line(&e, "")))?;
        match driver.trim() {
            "overlay2" => Ok(()),
            other => Err(format!(
                "the docker runtime runs images of docker's overlay2 storage driver; this daemon's is {other:?}"
            )),
        }
    }

    fn exists(&self, reaper: &Reaper, image: &str) -> bool {
        self.docker(reaper, &["image", "inspect", "--format", "{{.Id}}", image])
            .is_ok()
    }

    fn pull(&self, reaper: &Reaper, image: &str) -> Result<(), String> {
        self.docker(reaper, &["pull", "--quiet", image])
            .map(drop)
            .map_err(|e| last_line(&e, ""))
    }

    fn inspect(&self, reaper: &Reaper, image: &str) -> Result<Value, String> {
        let text = self.docker(reaper, &["image", "inspect", image])?;
        first_inspected(&text, "docker")
    }

    fn layers(&self, _: &Reaper, image: &str, inspected: &Value) -> Result<Vec<PathBuf>, String> {
        overlay2_layers(inspected)
            .ok_or_else(|| format!("image {image:?} is not in docker's overlay2 storage"))
    }
}

impl Docker {
    fn docker(&self, reaper: &Reaper, args: &[&str]) -> Result<String, String> {
        run_tool(reaper, Command::new("docker").args(args), self.needs())
    }
}

/// An overlay2 image's layers, top first: its `UpperDir`, then its `LowerDir`s.
fn overlay2_layers(inspected: &Value) -> Option<Vec<PathBuf>> {
    let driver = &inspected["GraphDriver"];
    if driver["Name"] != "overlay2" {
        return None;
    }
    let upper = driver["Data"]["UpperDir"].as_str()?;
    let lower = driver["Data"]["LowerDir"].as_str().unwrap_or("");
    let lowers = lower.split(':').filter(|dir| !dir.is_empty());
    Some(
        std::iter::once(upper)
            .chain(lowers)
            .map(PathBuf::from)
            .collect(),
    )
}

/// `PROGRAM --version` answers for each program.
fn check_versions(reaper: &Reaper, programs: &[&str], needs: &str) -> Result<(), String> {
    for program in programs {
        match reaper.output(Command::new(program).arg("--version")) {
            Ok(output) if output.exit.code == 0 => {}
            Ok(output) => {
                let error = String::from_utf8_lossy(&output.stderr);
                return Err(format!("`{program} --version` failed: {}", error.trim()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!("{program} is not installed: {needs}"))
            }
            Err(e) => return Err(format!("{program}: {e}")),
        }
    }
    Ok(())
}

/// A tool's error without the warnings of its retries: its last line, less its prefix.
fn last_line(stderr: &str, prefix: &str) -> String {
    let last = stderr.lines().last().unwrap_or(stderr);
    last.strip_prefix(prefix).unwrap_or(last).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_overlay2_images_layers_are_its_upper_dir_then_its_lower_dirs() {
        let layered = json!({"GraphDriver": {"Name": "overlay2", "Data": {
            "LowerDir": "/d/b/diff:/d/a/diff", "UpperDir": "/d/c/diff", "MergedDir": "/d/c/merged"}}});
        assert_eq!(
            overlay2_layers(&layered).unwrap(),
            [
                PathBuf::from("/d/c/diff"),
                PathBuf::from("/d/b/diff"),
                PathBuf::from("/d/a/diff")
            ]
        );
        // An image of one layer names no lower one.
        let single =
            json!({"GraphDriver": {"Name": "overlay2", "Data": {"UpperDir": "/d/a/diff"}}});
        assert_eq!(
            overlay2_layers(&single).unwrap(),
            [PathBuf::from("/d/a/diff")]
        );
        let other = json!({"GraphDriver": {"Name": "btrfs", "Data": {}}});
        assert_eq!(overlay2_layers(&other), None);
    }
}
