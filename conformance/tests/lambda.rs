//! The whole suite against AWS Lambda, as the local Lambda emulator: the faas probe binary is
//! packaged as a `bootstrap` zip, deployed with aws-sdk-lambda through the Lambda runner, and
//! driven black-box. Writes `conformance/matrix/lambda-emulator.json` with FAAS_UPDATE_MATRIX=1.

use std::io::Write;
use std::time::Duration;

use faas_api::{BackendProfile, Capability, NoProgress};
use faas_conformance::cases::{catalogue, Tag};
use faas_conformance::matrix::Mark;
use faas_emulator_lambda::EmulatorOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_emulator_conforms() {
    std::env::set_var(faas_conformance::ENV_PROBE_BIN, env!("CARGO_BIN_EXE_faas-probe"));
    let emulator = faas_emulator_lambda::start(EmulatorOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        retry_base: Duration::from_millis(50),
        ..Default::default()
    })
    .await
    .unwrap();
    let profile =
        BackendProfile::new("emulator", "lambda").with("region", "us-east-1").with("endpoint", emulator.url());
    let matrix = faas_conformance::run_for_profile(profile.clone(), &NoProgress).await.unwrap();
    let label = "lambda (emulator)";
    let runner = faas_runner_lambda::deploy::LambdaRunner::from_profile(&profile).await.unwrap();
    let caps = faas_api::Runner::capabilities(runner.as_ref());

    let mut stderr = std::io::stderr().lock();
    let _ =
        writeln!(stderr, "\nConformance matrix (AWS Lambda through the local emulator):\n\n{}", matrix.to_markdown());
    drop(stderr);
    if std::env::var_os("FAAS_UPDATE_MATRIX").is_some() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        matrix.write_backend_files(&root.join("matrix")).unwrap();
        let all = faas_conformance::Matrix::read_dir(&root.join("matrix")).unwrap();
        faas_conformance::update_readme(&root.parent().unwrap().join("README.md"), &all).unwrap();
    }

    let mut problems = vec![];
    for case in catalogue() {
        let row = matrix.get(label, case.id).unwrap_or_else(|| panic!("{} missing", case.id));
        let expected_supported = match case.tag {
            Tag::Core => true,
            Tag::Uses(c) => caps.claims(c),
        };
        match (&row.outcome, expected_supported) {
            (Mark::Fail, _) => problems.push(format!("{} failed: {}", case.id, row.note)),
            (Mark::NotSupported, true) if !(case.id == "ASY-01" || case.id == "ASY-02") => {
                problems.push(format!("{} not supported although claimed: {}", case.id, row.note))
            }
            (Mark::Pass, false) => problems.push(format!("{} passed although not claimed", case.id)),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "Lambda conformance problems:\n{}", problems.join("\n"));
    assert!(caps.claims(Capability::Async) && caps.claims(Capability::WarmReuse));
    emulator.shutdown().await;
}
