//! Cloud Functions packaging: the source archive a 2nd-gen function is built from.
//!
//! Cloud Functions (2nd gen) builds source, and only for its supported runtimes: there is no
//! "custom runtime" that takes a binary. So the faas binary ships inside the source archive of a
//! Python runtime (`python312` by default, the profile's `runtime`), a reproducible zip (the
//! kit's zip builder: the same binary always gives the same bytes) holding:
//!
//! - `faas-app`: the function binary, debug info stripped, mode 0755;
//! - `main.py`: what the Python Functions Framework imports (before it binds the port); on import
//!   it replaces the Python process with `faas-app` (`os.execv`), keeping the environment
//!   (`PORT`, `FUNCTION_TARGET`, `FUNCTION_SIGNATURE_TYPE`, `K_SERVICE`, the function's own
//!   variables), so the binary itself serves the Functions Framework contract
//!   ([`crate::host`]), with no forwarding hop. The framework's own `--target`, `--signature-type`
//!   and `--port` flags become those variables when they are not set, and `FAAS_SIGNATURE_TYPE`
//!   (which the runner sets for a CloudEvent function that the platform starts as an `http` one,
//!   `FUNCTION_SIGNATURE_TYPE` being reserved) overrides `FUNCTION_SIGNATURE_TYPE`.
//! - `requirements.txt`: `functions-framework==3.*`, which the Python build installs.
//!
//! The binary runs in the runtime's image: `python312` is Google's Ubuntu 22.04 base image
//! (glibc 2.35). A `gnu` build made on a system with a newer glibc may not start there (the
//! function then fails its start-up check); `libc = "musl"` (a static binary) is the safe choice.
//! Cloud Run is x86_64 only.

use std::path::{Path, PathBuf};

use faas_api::Error;
use faas_packaging::zip::{write_app_zip, Entry, ZipInfo};
use faas_packaging::{check_arch, with_stripped_copy, Arch};

/// The binary's name in the archive.
pub const APP: &str = "faas-app";
/// Its mode.
pub const APP_MODE: u32 = 0o755;
/// The module the Python Functions Framework imports.
pub const MAIN_PY: &str = "main.py";
/// The Python dependencies the build installs.
pub const REQUIREMENTS: &str = "requirements.txt";

/// The text of `main.py`.
pub const MAIN_PY_TEXT: &str = r#"# A faas app on Google Cloud Functions (2nd gen).
#
# Cloud Functions builds source for its runtimes only, so the app's binary ships in this Python
# source archive as `faas-app`. The Python Functions Framework imports this module before it
# binds the port; the import replaces the Python process with the binary, which keeps the
# environment (PORT, FUNCTION_TARGET, FUNCTION_SIGNATURE_TYPE, K_SERVICE, ...) and serves the
# Functions Framework contract itself.
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_app = os.path.join(_here, "faas-app")


def _flag(name):
    """The value of the Functions Framework's flag `name` (`--target X` or `--target=X`)."""
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
    return None


for _name, _var in (("--target", "FUNCTION_TARGET"), ("--signature-type", "FUNCTION_SIGNATURE_TYPE"),
                    ("--port", "PORT")):
    _value = _flag(_name)
    if _value and not os.environ.get(_var):
        os.environ[_var] = _value

# An event function the faas event gateway delivers to over HTTP (no Eventarc trigger) is started
# by the platform as an `http` function; the runner names its real signature here.
if os.environ.get("FAAS_SIGNATURE_TYPE"):
    os.environ["FUNCTION_SIGNATURE_TYPE"] = os.environ["FAAS_SIGNATURE_TYPE"]

# UNCONFIRMED: whether the execute bit of the uploaded zip survives Google's build; set it again,
# and where the source directory is read-only, run a copy of the binary instead.
try:
    os.chmod(_app, 0o755)
except OSError:
    pass
if not os.access(_app, os.X_OK):
    import shutil
    import tempfile

    _copy = os.path.join(tempfile.mkdtemp(prefix="faas-"), "faas-app")
    shutil.copyfile(_app, _copy)
    os.chmod(_copy, 0o755)
    _app = _copy

sys.stdout.flush()
sys.stderr.flush()
os.execv(_app, ["faas-app"])
"#;

/// The text of `requirements.txt`.
pub const REQUIREMENTS_TEXT: &str = "functions-framework==3.*\n";

/// Where the archives of `binary` go: `target/faas/gcf` of the binary's target directory.
pub fn package_dir(binary: &Path) -> PathBuf {
    match binary.ancestors().find(|a| a.file_name().is_some_and(|n| n == "target")) {
        Some(target) => target.join("faas").join("gcf"),
        None => std::env::temp_dir().join("faas-gcf"),
    }
}

/// The archive's file name for `app` and `runtime`: `{app}-gcf-{runtime}.zip` (the name says the
/// runtime it is for, which `faas build` reports).
///
/// ```
/// assert_eq!(faas_runner_gcf::package::archive_name("shop", "python312"), "shop-gcf-python312.zip");
/// ```
pub fn archive_name(app: &str, runtime: &str) -> String {
    format!("{app}-gcf-{runtime}.zip")
}

/// The source archive of `binary` (debug info stripped), checked to be for `arch`, written to
/// `out`.
///
/// ```no_run
/// let info = faas_runner_gcf::package::package_app(
///     std::path::Path::new("target/release/hello"), faas_packaging::Arch::X86_64, std::path::Path::new("hello.zip")).unwrap();
/// println!("{} bytes", info.size);
/// ```
pub fn package_app(binary: &Path, arch: Arch, out: &Path) -> Result<ZipInfo, Error> {
    check_arch(binary, arch)?;
    with_stripped_copy(binary, out, |stripped| package_zip(stripped, out))
}

/// Writes the archive's files into the directory `dir` (as the platform's build unpacks it):
/// `binary` as `faas-app` (mode 0755), `main.py` and `requirements.txt`.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let me = std::env::current_exe().unwrap();
/// faas_runner_gcf::package::write_source(&me, dir.path()).unwrap();
/// assert!(dir.path().join("faas-app").exists() && dir.path().join("main.py").exists());
/// ```
pub fn write_source(binary: &Path, dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let io = |what: &Path, e: std::io::Error| Error::unavailable(format!("cannot write {}: {e}", what.display()));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let app = dir.join(APP);
    std::fs::copy(binary, &app)
        .map_err(|e| Error::bad_input(format!("cannot read the app binary {}: {e}", binary.display())))?;
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(APP_MODE)).map_err(|e| io(&app, e))?;
    for (name, text) in [(MAIN_PY, MAIN_PY_TEXT), (REQUIREMENTS, REQUIREMENTS_TEXT)] {
        std::fs::write(dir.join(name), text).map_err(|e| io(&dir.join(name), e))?;
    }
    Ok(())
}

/// The source archive holding `binary` as `faas-app`, with `main.py` and `requirements.txt`,
/// written to `out`.
pub fn package_zip(binary: &Path, out: &Path) -> Result<ZipInfo, Error> {
    let entries = vec![
        Entry::file(APP, binary, APP_MODE),
        Entry::bytes(MAIN_PY, MAIN_PY_TEXT.as_bytes().to_vec(), 0o644),
        Entry::bytes(REQUIREMENTS, REQUIREMENTS_TEXT.as_bytes().to_vec(), 0o644),
    ];
    write_app_zip(entries, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_archive_holds_the_binary_main_py_and_requirements_and_is_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("app");
        std::fs::write(&bin, b"\x7fELF not really").unwrap();
        let a = package_zip(&bin, &dir.path().join("a.zip")).unwrap();
        let b = package_zip(&bin, &dir.path().join("b.zip")).unwrap();
        assert_eq!(std::fs::read(&a.path).unwrap(), std::fs::read(&b.path).unwrap());
        let limits = faas_packaging::unpack::Limits { max_zipped: 1 << 20, max_unzipped: 1 << 20, max_entries: 10 };
        let bytes = std::fs::read(&a.path).unwrap();
        let archive = faas_packaging::unpack::Archive::open(&bytes, limits).unwrap();
        let mut entries: Vec<_> =
            archive.entries().iter().map(|e| (e.path.display().to_string(), e.mode.map(|m| m & 0o777))).collect();
        entries.sort();
        assert_eq!(
            entries,
            [
                (APP.to_string(), Some(0o755)),
                (MAIN_PY.to_string(), Some(0o644)),
                (REQUIREMENTS.to_string(), Some(0o644))
            ]
        );
        assert!(REQUIREMENTS_TEXT.contains("functions-framework==3."));
    }

    /// Runs `main.py` as the Functions Framework does (an import, with the framework's flags in
    /// `sys.argv`) where `faas-app` is a shell script printing its arguments and environment:
    /// the import replaces Python with the binary, passing the environment through.
    #[test]
    fn main_py_execs_the_binary_with_the_environment() {
        let Ok(python) = which("python3") else {
            eprintln!("python3 is not installed; skipping");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MAIN_PY), MAIN_PY_TEXT).unwrap();
        let app = dir.path().join(APP);
        std::fs::write(&app, "#!/bin/sh\necho \"argv0=$0 args=$#\"\nenv\n").unwrap();
        // As an upload that lost the execute bit: main.py sets it again.
        std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = std::process::Command::new(python)
            .args([
                "-c",
                "import sys; sys.argv = ['functions-framework', '--target', 'hello']; import main; print('NOT EXECED')",
            ])
            .current_dir(dir.path())
            .env("PYTHONPATH", dir.path())
            .env("PORT", "8123")
            .env("K_SERVICE", "hello")
            .env("GREETING", "hi there")
            .env("FUNCTION_SIGNATURE_TYPE", "http")
            .env("FAAS_SIGNATURE_TYPE", "cloudevent")
            .env_remove("FUNCTION_TARGET")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(!stdout.contains("NOT EXECED"), "{stdout}");
        assert!(stdout.contains("args=0"), "{stdout}");
        for line in [
            "PORT=8123",
            "K_SERVICE=hello",
            "GREETING=hi there",
            "FUNCTION_TARGET=hello",
            "FUNCTION_SIGNATURE_TYPE=cloudevent",
        ] {
            assert!(stdout.lines().any(|l| l == line), "{line} missing in:\n{stdout}");
        }
        let mode = std::fs::metadata(&app).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "main.py made the binary executable");
    }

    fn which(name: &str) -> Result<PathBuf, ()> {
        let path = std::env::var_os("PATH").ok_or(())?;
        std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()).ok_or(())
    }
}
