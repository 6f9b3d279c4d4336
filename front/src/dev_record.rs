//! The record a running `faas dev` leaves in its project, `.faas/dev.json`, through which other
//! commands (and the `local` backend) find the server and its token.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Largest `dev.json` read.
const MAX_RECORD: u64 = 1024 * 1024;

/// What `faas dev` writes to `.faas/dev.json` (mode 0600) while it serves, and removes when it
/// stops. A server killed with SIGKILL cannot remove it: commands that target the recorded server
/// then check its pid ([`pid_alive`]) and whether it answers, and say plainly that it is not
/// running ([`crate::backend::dev_server_not_running`]); the next `faas dev` replaces the stale
/// file, and refuses to start while the recorded server is alive and answering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevInfo {
    /// Base URL of the server, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The management token.
    pub token: String,
    /// Process id of `faas dev`.
    pub pid: u32,
}

/// The path of `dev.json` under a project root.
///
/// ```
/// let p = faas_front::dev_record::dev_info_path(std::path::Path::new("/srv/app"));
/// assert_eq!(p, std::path::Path::new("/srv/app/.faas/dev.json"));
/// ```
pub fn dev_info_path(root: &Path) -> PathBuf {
    root.join(".faas").join("dev.json")
}

/// Reads `dev.json`, if present, small and well-formed.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// assert_eq!(faas_front::dev_record::read_dev_info(dir.path()), None);
/// std::fs::create_dir(dir.path().join(".faas")).unwrap();
/// std::fs::write(dir.path().join(".faas/dev.json"), r#"{"url":"http://127.0.0.1:1","token":"t","pid":7}"#).unwrap();
/// assert_eq!(faas_front::dev_record::read_dev_info(dir.path()).unwrap().pid, 7);
/// ```
pub fn read_dev_info(root: &Path) -> Option<DevInfo> {
    let file = std::fs::File::open(dev_info_path(root)).ok()?;
    let mut text = String::new();
    file.take(MAX_RECORD + 1).read_to_string(&mut text).ok()?;
    if text.len() as u64 > MAX_RECORD {
        return None;
    }
    serde_json::from_str(&text).ok()
}

/// Whether a process with this id exists (on Unix, `kill(pid, 0)`; elsewhere assumed). A zombie
/// counts as alive, which is why callers also ask the server itself.
///
/// ```
/// assert!(faas_front::dev_record::pid_alive(std::process::id()));
/// assert!(!faas_front::dev_record::pid_alive(0), "0 is never a process of ours");
/// ```
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    #[cfg(unix)]
    {
        // SAFETY: signal 0 only checks whether the process exists; nothing is sent.
        if unsafe { libc::kill(pid, 0) } == 0 {
            return true;
        }
        std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        true
    }
}
