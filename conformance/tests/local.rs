//! The whole suite against the local backend, in-process and process mode: every `core` case
//! passes, every `uses:` case passes where the capability is claimed and is "not supported"
//! where it is not. The generated matrix is printed and written to `target/conformance/`.
//!
//! With `FAAS_UPDATE_MATRIX=1` the per-backend files in `conformance/matrix/` and the README's
//! backend table (between the `backend-matrix` markers) are regenerated too.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use faas_api::{Capabilities, Progress, Runner};
use faas_conformance::cases::{catalogue, Tag};
use faas_conformance::matrix::{Mark, Matrix};
use faas_conformance::{fixture_app, run_local, LOCAL_RETRY_BASE};
use faas_runner_local::{LocalOptions, LocalRunner, Mode};

struct StderrProgress;

impl Progress for StderrProgress {
    fn step(&self, message: &str) {
        eprintln!("  · {message}");
    }
}

fn probe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_faas-probe"))
}

/// `<target>/conformance`, found from the probe binary (`<target>/<profile>/faas-probe`), so a
/// CARGO_TARGET_DIR outside the clone is honoured.
fn output_dir() -> PathBuf {
    probe().parent().and_then(Path::parent).map(|t| t.join("conformance")).expect("the probe lives in a target dir")
}

fn check(matrix: &Matrix, label: &str, caps: &Capabilities) -> Vec<String> {
    let mut problems = vec![];
    for case in catalogue() {
        let Some(row) = matrix.get(label, case.id) else {
            problems.push(format!("{label} {}: no result", case.id));
            continue;
        };
        let expected = match case.tag {
            Tag::Core => Mark::Pass,
            Tag::Uses(c) if caps.claims(c) => Mark::Pass,
            Tag::Uses(_) => Mark::NotSupported,
        };
        if row.outcome != expected {
            problems.push(format!("{label} {}: expected {expected:?}, got {:?}: {}", case.id, row.outcome, row.note));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_backend_conforms_in_both_modes() {
    let options = LocalOptions { retry_base: LOCAL_RETRY_BASE, ..LocalOptions::default() };

    let in_process = LocalRunner::in_process(fixture_app(), options.clone()).expect("in-process runner");
    let in_process_caps = in_process.capabilities();
    let mut matrix =
        run_local(in_process, "local (in-process)", probe(), &StderrProgress).await.expect("suite ran in-process");

    let process = LocalRunner::new(LocalOptions { mode: Mode::Process, ..options }).expect("process runner");
    let process_caps = process.capabilities();
    let process_runner: Arc<LocalRunner> = process;
    matrix.merge(
        run_local(process_runner, "local (process)", probe(), &StderrProgress)
            .await
            .expect("suite ran in process mode"),
    );

    let markdown = matrix.to_markdown();
    let out = output_dir();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("matrix.json"), matrix.to_json()).unwrap();
    std::fs::write(out.join("matrix.md"), &markdown).unwrap();
    // Written to the stderr handle directly (not `eprintln!`, which the test harness captures),
    // so the matrix shows in the output of a plain `cargo test`.
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "\nConformance matrix (local backend), also in {}:\n\n{markdown}", out.display());
    if std::env::var_os("FAAS_UPDATE_MATRIX").is_some() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        matrix.write_backend_files(&root.join("matrix")).unwrap();
        let readme = root.parent().unwrap().join("README.md");
        if readme.is_file() {
            let all = Matrix::read_dir(&root.join("matrix")).unwrap();
            faas_conformance::update_readme(&readme, &all).unwrap();
        }
    }

    // Both modes ran every case, and CAP-01 actually refused something in each.
    assert_eq!(matrix.results.len(), 2 * catalogue().len());
    let mut problems = check(&matrix, "local (in-process)", &in_process_caps);
    problems.extend(check(&matrix, "local (process)", &process_caps));
    assert!(problems.is_empty(), "conformance failures:\n{}", problems.join("\n"));
    for label in ["local (in-process)", "local (process)"] {
        let cap = matrix.get(label, "CAP-01").unwrap();
        assert!(cap.note.starts_with("refused `"), "{label}: {}", cap.note);
    }
}
