//! # faas-conformance
//!
//! The conformance suite of faas: one catalogue of cases (CONFORMANCE.md), run black-box through
//! the runner SPI ([`faas_api::Runner`]) against a fixture app of probe functions deployed to a
//! backend, producing a capability matrix (backend × case → pass / fail / not supported, with a
//! note). Modelled on Beam's ValidatesRunner tests and Dapr's component conformance.
//!
//! - [`fixture`]: the probe functions (`faas-probe` is that app as a binary);
//! - [`cases`]: the catalogue, one async check per case;
//! - [`harness`]: deploys the fixture and runs cases, never aborting on a failing one;
//! - [`matrix`]: the generated matrix, its JSON and Markdown, and the README block.
//!
//! ```no_run
//! # async fn demo() -> Result<(), faas_api::Error> {
//! let profile = faas_api::BackendProfile::new("dev", "local");
//! let matrix = faas_conformance::run_for_profile(profile, &faas_api::NoProgress).await?;
//! println!("{}", matrix.to_markdown());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod cases;
pub mod fixture;
pub mod harness;
pub mod matrix;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use faas_api::{BackendProfile, Error, Progress, Runner};
use faas_runner_local::{LocalOptions, LocalRunner, Mode};

pub use fixture::fixture_app;
pub use harness::{fixture_spec, Harness, HarnessOptions};
pub use matrix::{render_readme_table, update_readme, Matrix};

/// The name of the fixture app binary.
pub const PROBE_BIN: &str = "faas-probe";
/// The env var that points the suite at a prebuilt `faas-probe` binary.
pub const ENV_PROBE_BIN: &str = "FAAS_PROBE_BIN";
/// Async retry delay of the local runners the suite builds, so ASY-02 sees retries quickly.
pub const LOCAL_RETRY_BASE: Duration = Duration::from_millis(100);

/// Runs the whole catalogue against `runner`: reads the fixture's manifest from `probe_binary`
/// (`FAAS_DESCRIBE=1`), deploys [`fixture_spec`] through the runner, runs every case and
/// returns the matrix rows labelled `backend_label`. Only a failure to deploy the fixture is an
/// error; failing cases are rows.
pub async fn run(
    runner: Arc<dyn Runner>,
    backend_label: &str,
    probe_binary: &Path,
    progress: &dyn Progress,
) -> Result<Matrix, Error> {
    progress.step(&format!("{backend_label}: reading the fixture manifest from {}", probe_binary.display()));
    let manifest = faas_runner_local::build::describe(probe_binary).await?;
    let app = fixture_spec(probe_binary.to_path_buf(), manifest);
    let harness = Harness::deploy(runner, backend_label, app, HarnessOptions::default(), progress).await?;
    Ok(harness.run_all(progress).await)
}

/// Runs the suite against a local runner with an HTTP front bound on 127.0.0.1 (so `emit`
/// reaches the event route from function processes), then stops both.
pub async fn run_local(
    runner: Arc<LocalRunner>,
    backend_label: &str,
    probe_binary: &Path,
    progress: &dyn Progress,
) -> Result<Matrix, Error> {
    let options = faas_front::FrontOptions {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ..faas_front::FrontOptions::default()
    };
    let front = faas_front::bind(runner.clone(), options).await?;
    runner.set_services_url(front.url());
    let result = run(runner.clone(), backend_label, probe_binary, progress).await;
    runner.shutdown().await;
    front.shutdown().await;
    result
}

/// Runs the suite for a backend profile. For `kind = "local"` both modes run, each with its own
/// runner (a temporary state directory, async retries 100 ms apart): `local (in-process)` and
/// `local (process)`. Other kinds are not built into this crate yet.
pub async fn run_for_profile(profile: BackendProfile, progress: &dyn Progress) -> Result<Matrix, Error> {
    match profile.kind.as_str() {
        "local" => {
            let mut options = LocalOptions::from_profile(&profile)?;
            options.state_dir = None;
            options.retry_base = LOCAL_RETRY_BASE;
            options.echo_logs = false;
            progress.step("finding the faas-probe binary");
            let binary = tokio::task::spawn_blocking(probe_binary)
                .await
                .map_err(|e| Error::unavailable(format!("the probe build task failed: {e}")))??;
            let mut matrix = Matrix::default();
            let in_process = LocalRunner::in_process(fixture_app(), options.clone())?;
            matrix.merge(run_local(in_process, "local (in-process)", &binary, progress).await?);
            let process = LocalRunner::new(LocalOptions { mode: Mode::Process, ..options })?;
            matrix.merge(run_local(process, "local (process)", &binary, progress).await?);
            Ok(matrix)
        }
        "lambda" => {
            progress.step("finding the faas-probe binary");
            let binary = tokio::task::spawn_blocking(probe_binary)
                .await
                .map_err(|e| Error::unavailable(format!("the probe build task failed: {e}")))??;
            let runner = faas_runner_lambda::deploy::LambdaRunner::from_profile(&profile).await?;
            let label = match profile.str("endpoint")? {
                Some(e) if e.contains("://127.") || e.contains("://localhost") => "lambda (emulator)".to_string(),
                _ => "lambda".to_string(),
            };
            run(runner, &label, &binary, progress).await
        }
        other => Err(Error::bad_input(format!(
            "no runner for backend kind `{other}` in this build (backend `{}`)",
            profile.name
        ))),
    }
}

/// Finds the `faas-probe` binary: `$FAAS_PROBE_BIN`; else one next to the current executable
/// or in its parent directory (test binaries live in `target/debug/deps`); else builds it with
/// `cargo build -p faas-conformance --bin faas-probe` in this workspace.
pub fn probe_binary() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os(ENV_PROBE_BIN) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::bad_input(format!("{ENV_PROBE_BIN} is {}, which is not a file", path.display())))
        };
    }
    let name = format!("{PROBE_BIN}{}", std::env::consts::EXE_SUFFIX);
    if let Ok(exe) = std::env::current_exe() {
        let dirs = [exe.parent(), exe.parent().and_then(Path::parent)];
        if let Some(found) = dirs.into_iter().flatten().map(|d| d.join(&name)).find(|p| p.is_file()) {
            return Ok(found);
        }
    }
    build_probe()
}

/// Builds the probe binary with cargo from this workspace (a no-op when it is up to date) and returns
/// its path. Unlike [`probe_binary`], never picks up a binary left over from an earlier build.
pub fn build_probe() -> Result<PathBuf, Error> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(&cargo)
        .args(["build", "-p", "faas-conformance", "--bin", PROBE_BIN, "--message-format=json-render-diagnostics"])
        .current_dir(workspace)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::unavailable(format!("cannot run `cargo build` to build {PROBE_BIN}: {e}")))?;
    if !output.status.success() {
        return Err(Error::unavailable(format!(
            "`cargo build -p faas-conformance --bin {PROBE_BIN}` failed ({}); set {ENV_PROBE_BIN} to a built probe",
            output.status
        )));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == PROBE_BIN)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| Error::unavailable(format!("`cargo build` did not report a {PROBE_BIN} executable")))
}
