//! The project a command works on: its directory, its `faas.toml`, and the `.faas/dev.json` file
//! through which `faas dev` tells other commands where it serves.

use std::io::Write;
use std::path::{Path, PathBuf};

use faas_api::{Config, Error};

use crate::output::CliResult;

/// Largest `Cargo.toml` or `dev.json` read.
const MAX_SMALL_FILE: u64 = 1024 * 1024;

/// A project: where it lives and its configuration.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project root: the directory of `faas.toml`, or the given directory when there is none.
    pub root: PathBuf,
    /// `faas.toml`, or the defaults for the package when there is none.
    pub config: Config,
}

impl Project {
    /// Where this project's `faas dev` state lives: `ROOT/.faas`.
    pub fn state_root(&self) -> PathBuf {
        self.root.join(".faas")
    }
}

/// Loads the project at `dir`: `faas.toml` is looked up in `dir` and its parents
/// ([`Config::find`]); without one, the app is named after the cargo package (or the directory)
/// and gets the defaults. An invalid `faas.toml` is an error naming its file, line and key.
pub fn load(dir: &Path) -> CliResult<Project> {
    if !dir.is_dir() {
        return Err(Error::bad_input(format!("project directory `{}` does not exist", dir.display())).into());
    }
    let dir = dir.canonicalize().map_err(|e| Error::bad_input(format!("cannot open `{}`: {e}", dir.display())))?;
    if let Some(path) = Config::find(&dir) {
        let config = Config::load(&path)?;
        let root = path.parent().map(Path::to_path_buf).unwrap_or_else(|| dir.clone());
        return Ok(Project { root, config });
    }
    let name = package_name(&dir)?
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".to_string());
    Ok(Project { root: dir, config: Config::default_for(name) })
}

/// The `[package] name` of `dir/Cargo.toml`, if there is one.
pub fn package_name(dir: &Path) -> CliResult<Option<String>> {
    let path = dir.join("Cargo.toml");
    let Some(text) = read_small(&path)? else { return Ok(None) };
    let value: toml::Table =
        text.parse().map_err(|e: toml::de::Error| Error::bad_input(format!("{}: {}", path.display(), e.message())))?;
    Ok(value.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str()).map(str::to_string))
}

fn read_small(path: &Path) -> CliResult<Option<String>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::bad_input(format!("cannot read {}: {e}", path.display())).into()),
    };
    if meta.len() > MAX_SMALL_FILE {
        return Err(Error::payload_too_large(format!(
            "{} is {} bytes; the limit is {MAX_SMALL_FILE}",
            path.display(),
            meta.len()
        ))
        .into());
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| Error::bad_input(format!("cannot read {}: {e}", path.display())).into())
}

pub use faas_front::dev_record::{dev_info_path, pid_alive, read_dev_info, DevInfo};

/// Writes `dev.json` atomically, readable by the owner only.
pub fn write_dev_info(root: &Path, info: &DevInfo) -> CliResult<PathBuf> {
    let path = dev_info_path(root);
    write_private_json(&path, &serde_json::to_value(info).expect("dev info JSON"))?;
    Ok(path)
}

/// Writes `value` to `path` readable by the owner only (it holds a token), atomically (temp file,
/// fsync, rename), creating the directory.
pub fn write_private_json(path: &Path, value: &serde_json::Value) -> CliResult {
    let dir = path.parent().expect("a file path has a parent");
    let io = |e: std::io::Error| Error::unavailable(format!("cannot write {}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(&serde_json::to_vec_pretty(value).expect("JSON value")).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Removes `dev.json` if it is the one `pid` wrote.
pub fn remove_dev_info(root: &Path, pid: u32) {
    if read_dev_info(root).is_some_and(|i| i.pid == pid) {
        let _ = std::fs::remove_file(dev_info_path(root));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_info_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let info = DevInfo { url: "http://127.0.0.1:1".into(), token: "t".into(), pid: 7 };
        let path = write_dev_info(dir.path(), &info).unwrap();
        assert_eq!(read_dev_info(dir.path()), Some(info));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        remove_dev_info(dir.path(), 8);
        assert!(path.exists(), "another process's dev.json is left alone");
        remove_dev_info(dir.path(), 7);
        assert!(!path.exists());
    }

    #[test]
    fn without_faas_toml_the_app_is_named_after_the_package() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[package]\nname = \"greeter\"\n").unwrap();
        let p = load(dir.path()).unwrap();
        assert_eq!(p.config.app.name, "greeter");
        assert!(p.config.path.is_none());
    }
}
