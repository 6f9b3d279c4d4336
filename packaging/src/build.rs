//! Building an app: `cargo build` of the project, then asking the binary what it contains
//! (`FAAS_DESCRIBE=1 ./app` prints its [`Manifest`]), merged with `faas.toml` into an [`AppSpec`].
//!
//! In a project directory (this runs `cargo build`, so it is not run here):
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use faas_api::{Config, NoProgress};
//!
//! let project = Path::new("examples/hello");
//! let config = Config::load(&project.join("faas.toml"))?;
//! let app = faas_packaging::build::build_app(project, &config, false, &NoProgress).await?;
//! for f in &app.functions {
//!     println!("{} (timeout {:?})", f.name, f.timeout);
//! }
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use faas_api::{AppSpec, Config, Error, Manifest, Progress};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::target::{check_binary, check_target_installed, Target};

/// Builds the app in `project_dir` ([`cargo_build`]), asks the binary for its manifest
/// ([`describe`]) and merges it with `config` into an [`AppSpec`].
///
/// A failed build is a bad-input error of type `BuildFailed` carrying cargo's messages:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use faas_api::{Config, NoProgress};
/// let empty = tempfile::tempdir().unwrap(); // no Cargo.toml here
/// let config = Config::default_for("demo");
/// let err = faas_packaging::build::build_app(empty.path(), &config, false, &NoProgress).await.unwrap_err();
/// assert_eq!(err.error_type(), "BuildFailed");
/// assert!(err.message().contains("Cargo.toml"), "{}", err.message());
/// # }
/// ```
pub async fn build_app(
    project_dir: &Path,
    config: &Config,
    release: bool,
    progress: &dyn Progress,
) -> Result<AppSpec, Error> {
    let binary = cargo_build(project_dir, config.app.bin.as_deref(), release, progress).await?;
    progress.step("reading the app manifest");
    let manifest = describe(&binary).await?;
    AppSpec::from_parts(config, binary, manifest)
}

/// Runs `cargo build` in `dir` and returns the path of the binary built (`bin`, or the only one).
/// Compiler errors come back in the error message; a project with several binaries and no `bin`
/// is refused, naming them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use faas_api::NoProgress;
/// let empty = tempfile::tempdir().unwrap();
/// let err = faas_packaging::build::cargo_build(empty.path(), None, false, &NoProgress).await.unwrap_err();
/// assert_eq!(err.kind(), faas_api::ErrorKind::BadInput);
/// assert!(err.message().starts_with("cargo build failed in"), "{}", err.message());
/// # }
/// ```
pub async fn cargo_build(
    dir: &Path,
    bin: Option<&str>,
    release: bool,
    progress: &dyn Progress,
) -> Result<PathBuf, Error> {
    cargo_build_for(dir, bin, None, release, progress).await
}

/// Builds the example `example` of the package `package` (a debug build, with the cargo that runs
/// the caller, in the workspace of `dir`) and returns its executable: how integration tests get a
/// fixture app whose `main` is `faas::serve` (an example, since it depends on the crate under
/// test). Blocking.
///
/// ```
/// let err = faas_packaging::build::build_example(std::path::Path::new("/"), "no-such-package", "x").unwrap_err();
/// assert!(err.message().contains("cargo build -p no-such-package --example x failed"), "{}", err.message());
/// ```
pub fn build_example(dir: &Path, package: &str, example: &str) -> Result<PathBuf, Error> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let what = format!("cargo build -p {package} --example {example}");
    let out = std::process::Command::new(cargo)
        .args(["build", "-p", package, "--example", example, "--message-format=json"])
        .current_dir(dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::unavailable(format!("{what}: cannot run cargo: {e}")))?;
    if !out.status.success() {
        return Err(Error::bad_input(format!("{what} failed ({}) in {}", out.status, dir.display())));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == example)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| Error::bad_input(format!("{what} reported no executable")))
}

/// [`cargo_build`] for a target triple (`--target`), or for this machine when `target` is `None`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use faas_api::NoProgress;
/// use faas_packaging::build::cargo_build_for;
/// let empty = tempfile::tempdir().unwrap();
/// let err = cargo_build_for(empty.path(), Some("app"), Some("x86_64-unknown-linux-musl"), true, &NoProgress)
///     .await
///     .unwrap_err();
/// assert!(err.message().starts_with("cargo build --target x86_64-unknown-linux-musl failed"), "{}", err.message());
/// # }
/// ```
pub async fn cargo_build_for(
    dir: &Path,
    bin: Option<&str>,
    target: Option<&str>,
    release: bool,
    progress: &dyn Progress,
) -> Result<PathBuf, Error> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build").arg("--message-format=json-render-diagnostics").current_dir(dir).kill_on_drop(true);
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    if release {
        cmd.arg("--release");
    }
    if let Some(b) = bin {
        cmd.args(["--bin", b]);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
    progress.step("cargo build");
    let mut child = cmd.spawn().map_err(|e| Error::unavailable(format!("cannot run cargo: {e}")))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let stderr_task = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut kept = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            kept.push(line);
        }
        kept
    });
    let mut executables: Vec<(String, PathBuf)> = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        if let Some(name) = msg["target"]["name"].as_str() {
            progress.step(&format!("compiled {name}"));
        }
        let is_bin = msg["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|v| v == "bin"));
        if let (true, Some(exe)) = (is_bin, msg["executable"].as_str()) {
            let name = msg["target"]["name"].as_str().unwrap_or_default().to_string();
            executables.push((name, PathBuf::from(exe)));
        }
    }
    let status = child.wait().await.map_err(|e| Error::unavailable(format!("cargo failed to run: {e}")))?;
    let stderr_lines = stderr_task.await.unwrap_or_default();
    if !status.success() {
        let text = stderr_lines.join("\n");
        let what = target.map(|t| format!("cargo build --target {t}")).unwrap_or_else(|| "cargo build".into());
        return Err(Error::bad_input(format!("{what} failed in {}:\n{text}", dir.display())).with_type("BuildFailed"));
    }
    match (bin, executables.len()) {
        (Some(b), _) => executables
            .into_iter()
            .find(|(n, _)| n == b)
            .map(|(_, p)| p)
            .ok_or_else(|| Error::bad_input(format!("cargo built no binary named `{b}`"))),
        (None, 1) => Ok(executables.remove(0).1),
        (None, 0) => Err(Error::bad_input(format!("the package in {} has no binary target", dir.display()))),
        (None, _) => Err(Error::bad_input(format!(
            "the project builds several binaries ({}); set [app] bin in faas.toml",
            executables.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Builds the app in `project_dir` for `target` and describes it: what a backend that runs Linux
/// binaries packages.
///
/// When `target` is the build machine's own ([`Target::host`]), this is [`build_app`]. Otherwise the
/// app is built twice: for the build machine (to run it with `FAAS_DESCRIBE=1` and read its
/// manifest) and with `--target <triple>` (the binary that is packaged, checked with
/// [`check_binary`]). A target whose standard library is not installed is refused with the
/// commands that install it ([`check_target_installed`]).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), faas_api::Error> {
/// use std::path::Path;
/// use faas_api::{Config, NoProgress};
/// use faas_packaging::{Arch, Libc, Target};
///
/// let config = Config::load(Path::new("examples/hello/faas.toml"))?;
/// let target = Target::new(Arch::Arm64, Libc::Musl);
/// let app = faas_packaging::build::build_for_target(Path::new("examples/hello"), &config, target, true, &NoProgress)
///     .await?;
/// println!("{} is built for {target}", app.binary.display());
/// # Ok(()) }
/// ```
pub async fn build_for_target(
    project_dir: &Path,
    config: &Config,
    target: Target,
    release: bool,
    progress: &dyn Progress,
) -> Result<AppSpec, Error> {
    let host_spec = build_app(project_dir, config, release, progress).await?;
    if Target::host() == Some(target) {
        return Ok(host_spec);
    }
    let triple = target.triple();
    check_target_installed(triple).await?;
    progress.step(&format!("cargo build --target {triple}"));
    let binary = cargo_build_for(project_dir, config.app.bin.as_deref(), Some(triple), release, progress).await?;
    check_binary(&binary, target)?;
    Ok(AppSpec { binary, ..host_spec })
}

/// Runs `binary` with `FAAS_DESCRIBE=1` and parses the manifest it prints (a faas app's
/// `faas::serve` prints it and exits). A binary that fails, or prints no manifest, is refused.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::path::Path;
/// use faas_packaging::build::describe;
/// let err = describe(Path::new("false")).await.unwrap_err();
/// assert!(err.message().contains("failed to describe itself"), "{}", err.message());
/// let err = describe(Path::new("echo")).await.unwrap_err();
/// assert!(err.message().contains("is not a faas app"), "{}", err.message());
/// # }
/// ```
pub async fn describe(binary: &Path) -> Result<Manifest, Error> {
    let mut cmd = Command::new(binary);
    cmd.env(faas_host::wire::ENV_DESCRIBE, "1")
        .env_remove(faas_host::wire::ENV_SOCKET)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(10), cmd.output())
        .await
        .map_err(|_| Error::timeout(format!("{} did not describe itself within 10 s", binary.display())))?
        .map_err(|e| Error::bad_input(format!("cannot run {}: {e}", binary.display())))?;
    manifest_from_output(binary, &out)
}

/// The manifest in what `binary` printed when run with `FAAS_DESCRIBE=1`: the last line of its
/// stdout that is a JSON object. A failed run, or output with no manifest, is an error naming the
/// binary. [`describe`] uses it; so do callers that must run the binary their own way (without an
/// async runtime, for instance).
///
/// ```
/// use std::os::unix::process::ExitStatusExt as _;
/// use std::path::Path;
/// use faas_packaging::build::manifest_from_output;
/// let ok = std::process::Output {
///     status: std::process::ExitStatus::from_raw(0),
///     stdout: b"starting\n{\"faas_version\":\"0.1.0\",\"functions\":[]}\n".to_vec(),
///     stderr: vec![],
/// };
/// assert_eq!(manifest_from_output(Path::new("app"), &ok).unwrap().faas_version, "0.1.0");
/// let not_an_app = std::process::Output { stdout: b"hello\n".to_vec(), ..ok.clone() };
/// let err = manifest_from_output(Path::new("app"), &not_an_app).unwrap_err();
/// assert!(err.message().starts_with("app is not a faas app"), "{}", err.message());
/// ```
pub fn manifest_from_output(binary: &Path, out: &std::process::Output) -> Result<Manifest, Error> {
    if !out.status.success() {
        return Err(Error::bad_input(format!(
            "{} failed to describe itself ({}): {}",
            binary.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).map_err(|e| {
        Error::bad_input(format!(
            "{} is not a faas app (its FAAS_DESCRIBE output is not a manifest: {e}); does its main call `faas::serve`?",
            binary.display()
        ))
    })
}
