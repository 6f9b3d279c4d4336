//! # faas-conformance
//!
//! The conformance suite of faas: one catalogue of cases, run black-box through the runner SPI
//! ([`faas_api::Runner`]) against a fixture app of probe functions deployed to a backend,
//! producing a capability matrix (backend × case → pass / fail / not supported, with a note).
//! Modelled on Beam's ValidatesRunner tests and Dapr's component conformance. A backend's own
//! test is [`run_targets`] and [`assert_conforms`] on each column (see the example there).
//!
//! - [`fixture`]: the probe functions (`faas-probe` is that app as a binary);
//! - [`cases`]: the catalogue, one async check per case;
//! - [`harness`]: deploys the fixture and runs cases, never aborting on a failing one;
//! - [`matrix`]: the generated matrix, its JSON and Markdown, and the README block.
//!
//! ```no_run
//! # async fn demo() -> Result<(), faas_api::Error> {
//! let profile = faas_api::BackendProfile::new("dev", "local");
//! let local = faas_front::backend::LocalBackend;
//! let matrix = faas_conformance::run_for_profile(&local, profile, &faas_api::NoProgress).await?;
//! println!("{}", matrix.to_markdown());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod cases;
pub mod fixture;
mod gateway;
pub mod harness;
pub mod matrix;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use faas_api::backend::{Backend, ConformanceSetup};
use faas_api::{BackendProfile, Capabilities, Error, Progress, Runner};

pub use fixture::fixture_app;
pub use gateway::StateGateway;
pub use harness::{fixture_spec, Harness, HarnessOptions};
pub use matrix::{render_readme_table, update_readme, Matrix};

/// The name of the fixture app binary.
pub const PROBE_BIN: &str = "faas-probe";
/// The env var that points the suite at a prebuilt `faas-probe` binary.
pub const ENV_PROBE_BIN: &str = "FAAS_PROBE_BIN";

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
    let manifest = faas_packaging::build::describe(probe_binary).await?;
    let app = fixture_spec(probe_binary.to_path_buf(), manifest);
    let harness = Harness::deploy(runner, backend_label, app, HarnessOptions::default(), progress).await?;
    let matrix = harness.run_all(progress).await;
    harness.finish().await;
    Ok(matrix)
}

/// The suite's results on one matrix column: its label, what its runner claims, and its rows.
#[derive(Debug, Clone)]
pub struct ColumnRun {
    /// The column label (`local (process)`, `lambda (emulator)`).
    pub label: String,
    /// The capabilities the runner claimed.
    pub capabilities: Capabilities,
    /// The column's rows.
    pub matrix: Matrix,
}

/// Runs the suite for `profile` on `backend`: checks the profile, finds the probe binary
/// ([`probe_binary`]), asks the backend for its conformance targets
/// ([`Backend::conformance`]: one per matrix column, e.g. both local modes) and runs the whole
/// catalogue against each, stopping each target afterwards. Only a target that cannot be set up
/// or deployed to is an error; failing cases are rows.
///
/// A backend's conformance test is about this:
///
/// ```no_run
/// # async fn demo() {
/// let profile = faas_api::BackendProfile::new("dev", "local");
/// let columns = faas_conformance::run_targets(&faas_front::backend::LocalBackend, &profile, &faas_api::NoProgress)
///     .await
///     .expect("the suite ran");
/// faas_conformance::publish(&columns);
/// for c in &columns {
///     faas_conformance::assert_conforms(&c.matrix, &c.label, &c.capabilities);
/// }
/// # }
/// ```
pub async fn run_targets(
    backend: &dyn Backend,
    profile: &BackendProfile,
    progress: &dyn Progress,
) -> Result<Vec<ColumnRun>, Error> {
    backend.check_profile(profile)?;
    progress.step("finding the faas-probe binary");
    let probe = tokio::task::spawn_blocking(probe_binary)
        .await
        .map_err(|e| Error::unavailable(format!("the probe build task failed: {e}")))??;
    let setup = ConformanceSetup {
        fixture: Box::new(fixture_app),
        probe: probe.clone(),
        gateway: Box::new(|| Box::pin(gateway::start())),
    };
    let mut columns = vec![];
    for target in backend.conformance(profile, &setup).await? {
        let capabilities = target.runner.capabilities();
        let result = run(target.runner, &target.label, &probe, progress).await;
        if let Some(stop) = target.stop {
            stop.await;
        }
        columns.push(ColumnRun { label: target.label, capabilities, matrix: result? });
    }
    Ok(columns)
}

/// [`run_targets`] with the columns merged into one matrix: what `faas conformance --backend
/// NAME` runs.
pub async fn run_for_profile(
    backend: &dyn Backend,
    profile: BackendProfile,
    progress: &dyn Progress,
) -> Result<Matrix, Error> {
    let mut matrix = Matrix::default();
    for column in run_targets(backend, &profile, progress).await? {
        matrix.merge(column.matrix);
    }
    Ok(matrix)
}

/// The differences between column `label` of `matrix` and what a conforming backend that claims
/// `capabilities` gives: every case passes when the runner claims all it needs and is "not
/// supported" otherwise ([`cases::Case::expected`]); a missing row is a difference too.
pub fn conformance_problems(matrix: &Matrix, label: &str, capabilities: &Capabilities) -> Vec<String> {
    let mut problems = vec![];
    for case in cases::catalogue() {
        let Some(row) = matrix.get(label, case.id) else {
            problems.push(format!("{label} {}: no result", case.id));
            continue;
        };
        let expected = case.expected(capabilities);
        if row.outcome != expected {
            problems.push(format!("{label} {}: expected {expected:?}, got {:?}: {}", case.id, row.outcome, row.note));
        }
    }
    problems
}

/// Panics, listing every difference, unless column `label` of `matrix` is what a conforming
/// backend claiming `capabilities` gives ([`conformance_problems`]). Every backend's conformance
/// test ends with it; there are no per-backend exceptions.
#[track_caller]
pub fn assert_conforms(matrix: &Matrix, label: &str, capabilities: &Capabilities) {
    let problems = conformance_problems(matrix, label, capabilities);
    assert!(problems.is_empty(), "conformance failures on `{label}`:\n{}", problems.join("\n"));
}

/// Shows the columns' matrix on stderr (also when the test harness captures output), writes it
/// to `<target>/conformance/` when the probe lives in a target directory, and with
/// `FAAS_UPDATE_MATRIX=1` regenerates the committed per-backend files in `conformance/matrix/`
/// and the README's backend table.
pub fn publish(columns: &[ColumnRun]) {
    let mut matrix = Matrix::default();
    for c in columns {
        matrix.merge(c.matrix.clone());
    }
    let markdown = matrix.to_markdown();
    let labels: Vec<&str> = columns.iter().map(|c| c.label.as_str()).collect();
    let written = std::env::var_os(ENV_PROBE_BIN)
        .map(PathBuf::from)
        .and_then(|p| p.parent().and_then(Path::parent).map(|t| t.join("conformance")))
        .and_then(|dir| {
            let slug = labels.iter().map(|l| matrix::slug(l)).collect::<Vec<_>>().join("+");
            std::fs::create_dir_all(&dir).ok()?;
            std::fs::write(dir.join(format!("{slug}.json")), matrix.to_json()).ok()?;
            std::fs::write(dir.join(format!("{slug}.md")), &markdown).ok()?;
            Some(format!(", also in {}", dir.display()))
        })
        .unwrap_or_default();
    // Written to the stderr handle directly (not `eprintln!`, which the test harness captures),
    // so the matrix shows in the output of a plain `cargo test`.
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "\nConformance matrix ({}){written}:\n\n{markdown}", labels.join(", "));
    if std::env::var_os("FAAS_UPDATE_MATRIX").is_some() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        matrix.write_backend_files(&root.join("matrix")).expect("write conformance/matrix");
        let readme = root.parent().expect("the workspace").join("README.md");
        if readme.is_file() {
            let all = Matrix::read_dir(&root.join("matrix")).expect("read conformance/matrix");
            update_readme(&readme, &all).expect("update the README's backend table");
        }
    }
}

/// Finds the `faas-probe` binary the suite deploys, taking care never to pick up a stale one:
///
/// 1. `$FAAS_PROBE_BIN` when it is set, used as given (whoever sets it vouches for it; the Lambda
///    tests point it at a probe built for another libc, for example).
/// 2. In a **source checkout** (the workspace this crate was compiled from still exists, and
///    `cargo` runs): [`build_probe`]. Cargo rebuilds the probe when its sources changed and is a
///    no-op otherwise, so the probe always matches the sources. A `faas-probe` next to the current
///    executable is deliberately *not* used here: `cargo build -p faas-cli` leaves an older one in
///    place, and a suite run against yesterday's probe passes or fails for the wrong reasons. If
///    the build fails, that failure is the error (no silent fall-back to an old binary).
/// 3. Otherwise (an installed `faas`: no checkout, or no cargo): a `faas-probe` next to the current
///    executable or in its parent directory, accepted only when its manifest (`FAAS_DESCRIBE=1`)
///    equals the fixture this suite was compiled with ([`fixture_app`]'s manifest: the same faas
///    version and the same functions, handlers, triggers and capabilities). A probe from another
///    build is refused with an error naming the difference.
pub fn probe_binary() -> Result<PathBuf, Error> {
    let checkout = source_checkout(Path::new(env!("CARGO_MANIFEST_DIR"))).filter(|_| cargo_available());
    let exe = std::env::current_exe().ok();
    probe_binary_with(
        std::env::var_os(ENV_PROBE_BIN).map(PathBuf::from),
        checkout.as_deref(),
        exe.as_deref(),
        build_probe_in,
    )
}

/// [`probe_binary`] with its inputs spelled out: the `FAAS_PROBE_BIN` value, the source checkout
/// (if any), the current executable, and how to build the probe in a checkout.
fn probe_binary_with(
    env_probe: Option<PathBuf>,
    checkout: Option<&Path>,
    exe: Option<&Path>,
    build: impl FnOnce(&Path) -> Result<PathBuf, Error>,
) -> Result<PathBuf, Error> {
    if let Some(path) = env_probe {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::bad_input(format!("{ENV_PROBE_BIN} is {}, which is not a file", path.display())))
        };
    }
    if let Some(workspace) = checkout {
        return build(workspace);
    }
    let Some(found) = exe.and_then(adjacent_probe) else {
        return Err(Error::unavailable(format!(
            "no {PROBE_BIN} binary next to {} and no faas source checkout to build one in; install it with \
             `cargo install faas-conformance --bin {PROBE_BIN}` (the same version as faas), or set {ENV_PROBE_BIN}",
            exe.map(|e| e.display().to_string()).unwrap_or_else(|| "this program".into())
        )));
    };
    verify_probe(&found)?;
    Ok(found)
}

/// A `faas-probe` in the directory of `exe` or in its parent (test binaries live in
/// `target/debug/deps`, the probe in `target/debug`).
fn adjacent_probe(exe: &Path) -> Option<PathBuf> {
    let name = format!("{PROBE_BIN}{}", std::env::consts::EXE_SUFFIX);
    let dirs = [exe.parent(), exe.parent().and_then(Path::parent)];
    dirs.into_iter().flatten().map(|d| d.join(&name)).find(|p| p.is_file())
}

/// The workspace root of the crate at `manifest_dir` when its sources are still there: the parent
/// holds a `Cargo.toml` with a `[workspace]` table and the crate still has the probe's source.
/// `None` for a crate unpacked from a registry (its parent is the registry's source directory) or
/// a checkout that was removed after `cargo install`.
fn source_checkout(manifest_dir: &Path) -> Option<PathBuf> {
    if !manifest_dir.join("src").join("bin").join(format!("{PROBE_BIN}.rs")).is_file() {
        return None;
    }
    let workspace = manifest_dir.parent()?;
    let manifest = std::fs::read_to_string(workspace.join("Cargo.toml")).ok()?;
    manifest.lines().any(|l| l.trim() == "[workspace]").then(|| workspace.to_path_buf())
}

fn cargo_command() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Whether `cargo --version` runs.
fn cargo_available() -> bool {
    std::process::Command::new(cargo_command())
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Checks that the probe at `path` is the fixture this suite expects: its `FAAS_DESCRIBE=1`
/// manifest must equal [`fixture_app`]'s (faas version, functions, handlers, triggers and
/// capabilities). The error names the difference and says what to do.
pub fn verify_probe(path: &Path) -> Result<(), Error> {
    let found = describe_blocking(path)?;
    let expected = fixture_app().manifest();
    if found == expected {
        return Ok(());
    }
    let difference = if found.faas_version != expected.faas_version {
        format!("it was built with faas {}, this suite is faas {}", found.faas_version, expected.faas_version)
    } else {
        let names = |m: &faas_api::Manifest| m.functions.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
        let (have, want) = (names(&found), names(&expected));
        let missing: Vec<&String> = want.iter().filter(|n| !have.contains(n)).collect();
        let extra: Vec<&String> = have.iter().filter(|n| !want.contains(n)).collect();
        let changed: Vec<&String> =
            want.iter().filter(|n| found.function(n).is_some_and(|f| Some(f) != expected.function(n))).collect();
        let mut parts = vec![];
        for (what, list) in [("missing", missing), ("unexpected", extra), ("different", changed)] {
            if !list.is_empty() {
                parts.push(format!("{what}: {}", list.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")));
            }
        }
        if parts.is_empty() {
            parts.push("its functions are declared in another order".into());
        }
        format!("its functions differ from the suite's fixture ({})", parts.join("; "))
    };
    Err(Error::bad_input(format!(
        "{} is a stale {PROBE_BIN}: {difference}; reinstall it together with faas \
         (`cargo install faas-conformance --bin {PROBE_BIN}`) or set {ENV_PROBE_BIN} to a matching build",
        path.display()
    ))
    .with_type("StaleProbe"))
}

/// Runs `binary` with `FAAS_DESCRIBE=1` and parses the manifest it prints (the last JSON line),
/// waiting at most 10 s.
fn describe_blocking(binary: &Path) -> Result<faas_api::Manifest, Error> {
    use std::process::{Command, Stdio};
    let spawn = || {
        Command::new(binary)
            .env(faas_host::wire::ENV_DESCRIBE, "1")
            .env_remove(faas_host::wire::ENV_SOCKET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    };
    // ETXTBSY: another thread forked while the file was still open for writing; that clears up.
    let mut child = match spawn() {
        Err(e) if e.raw_os_error() == Some(26) => {
            std::thread::sleep(Duration::from_millis(50));
            spawn()
        }
        other => other,
    }
    .map_err(|e| Error::bad_input(format!("cannot run {}: {e}", binary.display())))?;
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::timeout(format!("{} did not describe itself within 10 s", binary.display())));
            }
        }
    }
    let out =
        child.wait_with_output().map_err(|e| Error::bad_input(format!("cannot run {}: {e}", binary.display())))?;
    faas_packaging::build::manifest_from_output(binary, &out)
}

/// Builds the probe binary with cargo from this workspace (a no-op when it is up to date) and returns
/// its path. Never picks up a binary left over from an earlier build.
pub fn build_probe() -> Result<PathBuf, Error> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
    build_probe_in(workspace)
}

fn build_probe_in(workspace: &Path) -> Result<PathBuf, Error> {
    let output = std::process::Command::new(cargo_command())
        .args(["build", "-p", "faas-conformance", "--bin", PROBE_BIN, "--message-format=json-render-diagnostics"])
        .current_dir(workspace)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::unavailable(format!("cannot run `cargo build` to build {PROBE_BIN}: {e}")))?;
    if !output.status.success() {
        return Err(Error::unavailable(format!(
            "`cargo build -p faas-conformance --bin {PROBE_BIN}` in {} failed ({}); fix the build, or set \
             {ENV_PROBE_BIN} to a built probe",
            workspace.display(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A stand-in `faas-probe` in `dir`: a shell script printing `manifest` under FAAS_DESCRIBE=1.
    #[cfg(unix)]
    fn fake_probe(dir: &Path, manifest: &faas_api::Manifest) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(PROBE_BIN);
        let json = serde_json::to_string(manifest).unwrap();
        let script = format!("#!/bin/sh\n[ \"$FAAS_DESCRIBE\" = 1 ] || exit 3\ncat <<'EOF'\n{json}\nEOF\n");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn no_build(_: &Path) -> Result<PathBuf, Error> {
        panic!("outside a checkout nothing is built")
    }

    #[test]
    fn this_crate_is_in_a_source_checkout_and_a_registry_copy_is_not() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(source_checkout(here).as_deref(), here.parent());

        let tmp = tempfile::tempdir().unwrap();
        let krate = tmp.path().join("faas-conformance-0.1.0");
        std::fs::create_dir_all(krate.join("src/bin")).unwrap();
        std::fs::write(krate.join("src/bin/faas-probe.rs"), "fn main() {}").unwrap();
        assert_eq!(source_checkout(&krate), None, "no workspace around a registry copy");
        std::fs::write(tmp.path().join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        assert_eq!(source_checkout(&krate), None, "a parent package is not a workspace");
        std::fs::write(tmp.path().join("Cargo.toml"), "[workspace]\nmembers = [\"faas-conformance-0.1.0\"]\n").unwrap();
        assert_eq!(source_checkout(&krate).as_deref(), Some(tmp.path()));
        std::fs::remove_file(krate.join("src/bin/faas-probe.rs")).unwrap();
        assert_eq!(source_checkout(&krate), None, "the probe's sources must be there to build it");
    }

    #[cfg(unix)]
    #[test]
    fn in_a_checkout_the_probe_is_built_even_when_an_old_one_sits_next_to_the_executable() {
        let tmp = tempfile::tempdir().unwrap();
        let mut old = fixture_app().manifest();
        old.faas_version = "0.0.1".into();
        let stale = fake_probe(tmp.path(), &old);
        let exe = tmp.path().join("faas");
        let built = tmp.path().join("fresh").join(PROBE_BIN);
        let checkout = Path::new("/src/faas");
        let called = Cell::new(false);
        let found = probe_binary_with(None, Some(checkout), Some(&exe), |ws| {
            assert_eq!(ws, checkout);
            called.set(true);
            Ok(built.clone())
        })
        .unwrap();
        assert!(called.get());
        assert_eq!(found, built);
        assert_ne!(found, stale);

        let err = probe_binary_with(None, Some(checkout), Some(&exe), |_| Err(Error::unavailable("build broke")))
            .unwrap_err();
        assert_eq!(err.message(), "build broke", "a failed build is not papered over with the old probe");
    }

    #[cfg(unix)]
    #[test]
    fn outside_a_checkout_an_adjacent_probe_is_used_only_when_its_manifest_matches() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let exe = bin.join("faas");

        let err = probe_binary_with(None, None, Some(&exe), no_build).unwrap_err();
        assert!(err.message().contains("no faas-probe binary next to"), "{}", err.message());
        assert!(err.message().contains(ENV_PROBE_BIN), "{}", err.message());

        let good = fake_probe(&bin, &fixture_app().manifest());
        assert_eq!(probe_binary_with(None, None, Some(&exe), no_build).unwrap(), good);
        // Test binaries live one level down (target/debug/deps).
        let deps_exe = bin.join("deps").join("suite-1234");
        assert_eq!(probe_binary_with(None, None, Some(&deps_exe), no_build).unwrap(), good);

        let mut old = fixture_app().manifest();
        old.faas_version = "0.0.1".into();
        fake_probe(&bin, &old);
        let err = probe_binary_with(None, None, Some(&exe), no_build).unwrap_err();
        assert_eq!(err.error_type(), "StaleProbe");
        let expected = format!("built with faas 0.0.1, this suite is faas {}", env!("CARGO_PKG_VERSION"));
        assert!(err.message().contains(&expected), "{}", err.message());
        assert!(err.message().contains("cargo install faas-conformance --bin faas-probe"), "{}", err.message());

        let mut fewer = fixture_app().manifest();
        let dropped = fewer.functions.pop().unwrap().name;
        fewer.functions[0].triggers.clear();
        fewer.functions[0].triggers.push(faas_api::Trigger::Http { method: None, route: "/old".into() });
        let changed = fewer.functions[0].name.clone();
        fake_probe(&bin, &fewer);
        let err = probe_binary_with(None, None, Some(&exe), no_build).unwrap_err();
        assert!(err.message().contains(&format!("missing: {dropped}")), "{}", err.message());
        assert!(err.message().contains(&format!("different: {changed}")), "{}", err.message());

        std::fs::write(bin.join(PROBE_BIN), "#!/bin/sh\necho hello\n").unwrap();
        let err = probe_binary_with(None, None, Some(&exe), no_build).unwrap_err();
        assert!(err.message().contains("is not a faas app"), "{}", err.message());
    }

    #[test]
    fn an_explicit_probe_must_exist_and_wins_over_everything() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        let err = probe_binary_with(Some(missing.clone()), Some(Path::new("/src")), None, no_build).unwrap_err();
        assert!(err.message().contains("FAAS_PROBE_BIN is") && err.message().contains("not a file"));
        let file = tmp.path().join("probe");
        std::fs::write(&file, "").unwrap();
        assert_eq!(probe_binary_with(Some(file.clone()), Some(Path::new("/src")), None, no_build).unwrap(), file);
    }
}
