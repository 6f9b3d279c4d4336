//! The whole suite against AWS Lambda, as the local Lambda emulator (taken from the list of
//! backends, as `faas dev --emulate lambda` takes it): the faas probe binary is packaged as a
//! `bootstrap` zip, deployed with aws-sdk-lambda through the Lambda runner, and driven black-box.
//! Writes `conformance/matrix/lambda-emulator.json` with FAAS_UPDATE_MATRIX=1.

use faas_api::backend::EmulatorOptions;
use faas_api::{Capability, NoProgress};
use faas_conformance::{assert_conforms, publish, run_targets};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_emulator_conforms() {
    std::env::set_var(faas_conformance::ENV_PROBE_BIN, env!("CARGO_BIN_EXE_faas-probe"));
    let (backend, emulator) = faas_backends::all().emulator("lambda").unwrap();
    let options = EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), state_dir: None, echo_logs: false };
    let running = emulator.start(options).await.unwrap();
    let columns = run_targets(backend.as_ref(), &running.profile(), &NoProgress).await.expect("the suite ran");
    publish(&columns);
    let [column] = &columns[..] else { panic!("one column, got {}", columns.len()) };
    assert_eq!(column.label, "lambda (emulator)");
    assert_conforms(&column.matrix, &column.label, &column.capabilities);
    assert!(column.capabilities.claims(Capability::Async) && column.capabilities.claims(Capability::WarmReuse));
    running.shutdown().await;
}
