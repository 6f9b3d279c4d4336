//! The acceptance test: the conformance suite against the pipes backend, with no exceptions.

use faas_api::{BackendProfile, NoProgress};
use faas_pipes::PipesBackend;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipes_conforms() {
    std::env::set_var(faas_conformance::ENV_PROBE_BIN, env!("CARGO_BIN_EXE_pipes-probe"));
    // Not a backend of this build: its column stays out of the committed matrix and the README.
    std::env::remove_var("FAAS_UPDATE_MATRIX");
    let dir = tempfile::tempdir().unwrap();
    let profile = BackendProfile::new("test", "pipes").with("dir", dir.path().to_str().unwrap());
    let columns = faas_conformance::run_targets(&PipesBackend, &profile, &NoProgress).await.unwrap();
    faas_conformance::publish(&columns);
    for c in &columns {
        faas_conformance::assert_conforms(&c.matrix, &c.label, &c.capabilities);
    }
}
