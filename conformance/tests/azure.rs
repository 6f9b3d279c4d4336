//! The whole suite against Azure Functions, as the local Functions host (taken from the list of
//! backends, as `faas dev --emulate azure` takes it): the faas probe binary is packaged as a
//! function app (host.json, a function.json per function, the binary as its custom handler),
//! deployed through ARM and Kudu's zip deploy by the Azure runner, started by the local host as
//! the Functions host starts a custom handler, and driven black-box through `/api/{function}`
//! with the function key. Writes `conformance/matrix/azure-emulator.json` with
//! FAAS_UPDATE_MATRIX=1.

use faas_api::backend::EmulatorOptions;
use faas_api::NoProgress;
use faas_conformance::{assert_conforms, publish, run_targets};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_emulator_conforms() {
    std::env::set_var(faas_conformance::ENV_PROBE_BIN, env!("CARGO_BIN_EXE_faas-probe"));
    let (backend, emulator) = faas_backends::all().emulator("azure").unwrap();
    let options = EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), state_dir: None, echo_logs: false };
    let running = emulator.start(options).await.unwrap();
    let columns = run_targets(backend.as_ref(), &running.profile(), &NoProgress).await.expect("the suite ran");
    publish(&columns);
    for c in &columns {
        assert_conforms(&c.matrix, &c.label, &c.capabilities);
    }
    running.shutdown().await;
}
