//! The whole suite against Google Cloud Functions (2nd gen), as the local Cloud Functions (taken
//! from the list of backends, as `faas dev --emulate gcf` takes it): the faas probe binary is
//! packaged as a Python source archive whose `main.py` replaces itself with the binary, uploaded
//! and deployed through the v2 API by the Cloud Functions runner, started by the emulator as the
//! platform starts an instance, and driven black-box through each function's URL. Writes
//! `conformance/matrix/gcf-emulator.json` with FAAS_UPDATE_MATRIX=1.

use faas_api::backend::EmulatorOptions;
use faas_api::NoProgress;
use faas_conformance::{assert_conforms, publish, run_targets};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcf_emulator_conforms() {
    std::env::set_var(faas_conformance::ENV_PROBE_BIN, env!("CARGO_BIN_EXE_faas-probe"));
    let (backend, emulator) = faas_backends::all().emulator("gcf").unwrap();
    let options = EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), state_dir: None, echo_logs: false };
    let running = emulator.start(options).await.unwrap();
    let columns = run_targets(backend.as_ref(), &running.profile(), &NoProgress).await.expect("the suite ran");
    publish(&columns);
    for c in &columns {
        assert_conforms(&c.matrix, &c.label, &c.capabilities);
    }
    running.shutdown().await;
}
