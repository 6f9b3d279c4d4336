//! The whole suite against Apache OpenWhisk, as the local OpenWhisk (taken from the list of
//! backends, as `faas dev --emulate openwhisk` takes it): the faas probe binary is packaged as a
//! native action zip, deployed through the controller's REST API by the OpenWhisk runner, run by
//! the emulator's invoker under the ActionLoop protocol, and driven black-box. Writes
//! `conformance/matrix/openwhisk-emulator.json` with FAAS_UPDATE_MATRIX=1.

use faas_api::backend::EmulatorOptions;
use faas_api::NoProgress;
use faas_conformance::{assert_conforms, publish, run_targets};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openwhisk_emulator_conforms() {
    std::env::set_var(faas_conformance::ENV_PROBE_BIN, env!("CARGO_BIN_EXE_faas-probe"));
    let (backend, emulator) = faas_backends::all().emulator("openwhisk").unwrap();
    let options = EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), state_dir: None, echo_logs: false };
    let running = emulator.start(options).await.unwrap();
    let columns = run_targets(backend.as_ref(), &running.profile(), &NoProgress).await.expect("the suite ran");
    publish(&columns);
    for c in &columns {
        assert_conforms(&c.matrix, &c.label, &c.capabilities);
    }
    running.shutdown().await;
}
