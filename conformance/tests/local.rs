//! The whole suite against the local backend, in-process and process mode: every `core` case
//! passes, every case that needs capabilities passes where they are claimed and is "not
//! supported" where they are not. With `FAAS_UPDATE_MATRIX=1` the per-backend files in
//! `conformance/matrix/` and the README's backend table are regenerated too.

use faas_api::BackendProfile;
use faas_conformance::{assert_conforms, publish, run_targets};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_backend_conforms_in_both_modes() {
    std::env::set_var(faas_conformance::ENV_PROBE_BIN, env!("CARGO_BIN_EXE_faas-probe"));
    let profile = BackendProfile::new("dev", "local");
    let columns = run_targets(&faas_front::backend::LocalBackend, &profile, &Stderr).await.expect("the suite ran");
    publish(&columns);
    assert_eq!(columns.iter().map(|c| c.label.as_str()).collect::<Vec<_>>(), ["local (in-process)", "local (process)"]);
    for c in &columns {
        assert_conforms(&c.matrix, &c.label, &c.capabilities);
        // CAP-01 actually refused something in each mode.
        assert!(c.matrix.get(&c.label, "CAP-01").unwrap().note.starts_with("refused `"), "{}", c.label);
    }
}

struct Stderr;

impl faas_api::Progress for Stderr {
    fn step(&self, message: &str) {
        eprintln!("  · {message}");
    }
}
