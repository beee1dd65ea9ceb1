//! A projected volume's files on disk, laid out as the kubelet's `AtomicWriter`
//! (pkg/volume/util/atomic_writer.go) lays them out, so that a reader never sees half an
//! update: the files live in a hidden directory `..<n>_<pid>`, `..data` is a symlink to it,
//! and each visible entry is a symlink through `..data` (`key -> ..data/key`). An update
//! writes a new hidden directory and swaps `..data` with one `rename`, then removes what the
//! new payload no longer has. Programs that watch `..data` see every update as one event.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path};
use std::sync::atomic::{AtomicU64, Ordering};

use joblet_kubelet::Payload;

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// Writes `payload` into `dir` (created if missing); nothing changes when the files already
/// hold it.
pub fn write_volume_files(dir: &Path, payload: &Payload) -> io::Result<()> {
    for path in payload.keys() {
        check_path(path)?;
    }
    std::fs::create_dir_all(dir)?;
    let old = std::fs::read_link(dir.join(DATA)).ok();
    if let Some(old) = &old {
        if holds(&dir.join(old), payload)? {
            return Ok(());
        }
    }
    let (name, hidden) = new_hidden_dir(dir)?;
    for (path, file) in payload {
        let target = hidden.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &file.data)?;
        // Set after writing, so the umask does not take bits away.
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))?;
    }
    let _ = std::fs::remove_file(dir.join(DATA_TMP));
    symlink(&name, dir.join(DATA_TMP))?;
    std::fs::rename(dir.join(DATA_TMP), dir.join(DATA))?;
    let visible: BTreeSet<&str> = payload.keys().map(|p| top_level(p)).collect();
    for entry in &visible {
        let link = dir.join(entry);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA).join(entry), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?.file_name();
        let name = entry.to_string_lossy();
        if !name.starts_with("..") && !visible.contains(name.as_ref()) {
            std::fs::remove_file(dir.join(&entry))?;
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old))?;
    }
    Ok(())
}

/// A relative path with no `..` element, not starting with `..` (the writer's own names).
fn check_path(path: &str) -> io::Result<()> {
    let relative = Path::new(path)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if path.is_empty() || path.starts_with("..") || !relative {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid path in a volume: {path:?}"),
        ));
    }
    Ok(())
}

fn top_level(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// Whether the hidden directory holds exactly the payload, contents and modes.
fn holds(hidden: &Path, payload: &Payload) -> io::Result<bool> {
    let mut found = 0;
    for (path, file) in payload {
        let target = hidden.join(path);
        match std::fs::read(&target) {
            Ok(data) if data == file.data => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        if std::fs::metadata(&target)?.permissions().mode() & 0o7777 != file.mode {
            return Ok(false);
        }
        found += 1;
    }
    Ok(found == count_files(hidden)?)
}

fn count_files(dir: &Path) -> io::Result<usize> {
    let mut count = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        count += if entry.file_type()?.is_dir() {
            count_files(&entry.path())?
        } else {
            1
        };
    }
    Ok(count)
}

/// A fresh hidden directory: `..<n>_<pid>`, unique among writers of this process and others.
fn new_hidden_dir(dir: &Path) -> io::Result<(String, std::path::PathBuf)> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    loop {
        let name = format!(
            "..{}_{}",
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        let path = dir.join(&name);
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok((name, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use joblet_kubelet::File;

    fn payload(files: &[(&str, &str, u32)]) -> Payload {
        files
            .iter()
            .map(|(path, data, mode)| {
                let file = File {
                    data: data.as_bytes().to_vec(),
                    mode: *mode,
                };
                (path.to_string(), file)
            })
            .collect()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn files_are_links_through_data_and_an_update_swaps_them_whole() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("volume");
        write_volume_files(
            &dir,
            &payload(&[("app.ini", "level=3", 0o644), ("etc/key", "k", 0o400)]),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("app.ini")).unwrap(),
            "level=3"
        );
        assert_eq!(std::fs::read_to_string(dir.join("etc/key")).unwrap(), "k");
        assert_eq!(
            std::fs::read_link(dir.join("app.ini")).unwrap(),
            Path::new("..data/app.ini")
        );
        let mode = std::fs::metadata(dir.join("etc/key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
        let first = std::fs::read_link(dir.join(DATA)).unwrap();
        let listing = names(&dir);
        assert_eq!(listing.len(), 4, "{listing:?}");

        // The same payload again: nothing moves.
        write_volume_files(
            &dir,
            &payload(&[("app.ini", "level=3", 0o644), ("etc/key", "k", 0o400)]),
        )
        .unwrap();
        assert_eq!(std::fs::read_link(dir.join(DATA)).unwrap(), first);

        // An update without `etc`: a new hidden directory, the old one and the stale link go.
        write_volume_files(&dir, &payload(&[("app.ini", "level=4", 0o644)])).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("app.ini")).unwrap(),
            "level=4"
        );
        let second = std::fs::read_link(dir.join(DATA)).unwrap();
        assert_ne!(second, first);
        let mut expected = vec![
            "..data".to_string(),
            second.to_string_lossy().into_owned(),
            "app.ini".to_string(),
        ];
        expected.sort();
        assert_eq!(names(&dir), expected);
    }

    #[test]
    fn paths_that_would_leave_the_volume_are_refused() {
        let root = tempfile::tempdir().unwrap();
        for path in ["/etc/passwd", "../x", "a/../../x", "..data", ""] {
            let error = write_volume_files(root.path(), &payload(&[(path, "x", 0o644)]));
            assert!(error.is_err(), "{path}");
        }
        assert!(names(root.path()).is_empty());
    }
}
