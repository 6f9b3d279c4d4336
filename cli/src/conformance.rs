//! `faas conformance`: runs the conformance suite against a backend profile and writes its
//! capability matrix.

use std::path::Path;

use faas_api::Error;
use serde_json::json;

use crate::args::{ConformanceArgs, GlobalArgs};
use crate::backend;
use crate::output::{print_stdout, CliResult, Output};
use crate::progress::Spinner;
use crate::project;

/// Runs the suite for the selected profile, prints the matrix (Markdown, or JSON with `--json`),
/// writes `matrix.json` and `matrix.md` into `--out`, and fails when any case failed.
pub async fn conformance(global: &GlobalArgs, args: ConformanceArgs, out: Output) -> CliResult {
    // Profiles come from the project's faas.toml when there is one; `local` always exists.
    let config = match faas_api::Config::find(&global.dir) {
        Some(_) => project::load(&global.dir)?.config,
        None => faas_api::Config::default_for("conformance"),
    };
    let profile = backend::select(&config, global.backend.as_deref())?;
    // A profile that cannot work is named before the (slow) probe build.
    let kind = backend::list().for_profile(&profile)?;
    kind.check_profile(&profile).map_err(|e| backend::with_hint(&profile, e))?;
    let spinner = Spinner::new(out.is_json());
    out.note(format!("running the conformance suite against `{}` ({})", profile.name, profile.kind));
    // The in-process mode runs the probe functions inside this process; whatever they print must
    // not end up in the matrix (or the JSON document) on stdout.
    let diverted = StdoutDiversion::to_stderr();
    let result = faas_conformance::run_for_profile(kind.as_ref(), profile.clone(), &spinner).await;
    drop(diverted);
    spinner.finish();
    let matrix = result.map_err(|e| backend::with_hint(&profile, e))?;
    let written = write(&matrix, &args.out)?;
    let failed: Vec<String> = matrix
        .results
        .iter()
        .filter(|r| r.outcome == faas_conformance::matrix::Mark::Fail)
        .map(|r| format!("{} on {}", r.case, r.backend))
        .collect();
    if out.is_json() {
        let matrix_json: serde_json::Value = serde_json::from_str(&matrix.to_json()).map_err(Error::from)?;
        let doc = json!({"ok": failed.is_empty(), "backend": profile.name, "matrix": matrix_json, "written": written, "failed": failed});
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&doc).expect("JSON")));
    } else {
        print_stdout(&matrix.to_markdown());
        print_stdout("\n");
        for w in &written {
            out.note(format!("wrote {w}"));
        }
    }
    if !failed.is_empty() {
        return Err(Error::function(
            "ConformanceFailed",
            format!("{} case(s) failed: {}", failed.len(), failed.join(", ")),
        )
        .into());
    }
    Ok(())
}

fn write(matrix: &faas_conformance::Matrix, dir: &Path) -> CliResult<Vec<String>> {
    let io = |path: &Path, e: std::io::Error| Error::unavailable(format!("cannot write {}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut written = vec![];
    for (name, text) in [("matrix.json", matrix.to_json()), ("matrix.md", matrix.to_markdown())] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

/// While alive, file descriptor 1 (stdout) points at stderr; dropping it restores stdout.
struct StdoutDiversion {
    #[cfg(unix)]
    saved: Option<std::os::fd::OwnedFd>,
}

impl StdoutDiversion {
    fn to_stderr() -> StdoutDiversion {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        #[cfg(unix)]
        {
            use std::os::fd::{AsFd, AsRawFd};
            let saved = std::io::stdout().as_fd().try_clone_to_owned().ok();
            if saved.is_some() {
                // SAFETY: dup2 on the process's own standard descriptors, which stay open.
                unsafe { libc::dup2(std::io::stderr().as_fd().as_raw_fd(), 1) };
            }
            StdoutDiversion { saved }
        }
        #[cfg(not(unix))]
        StdoutDiversion {}
    }
}

impl Drop for StdoutDiversion {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        #[cfg(unix)]
        if let Some(saved) = self.saved.take() {
            use std::os::fd::AsRawFd;
            // SAFETY: `saved` is an open duplicate of the original stdout.
            unsafe { libc::dup2(saved.as_raw_fd(), 1) };
        }
    }
}
