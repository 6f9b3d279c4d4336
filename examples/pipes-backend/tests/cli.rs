//! The vendor's `faas` command (`faas-pipes`) knows the pipes backend: a function deployed to a
//! project's default state directory answers `faas invoke --backend pipes`.

use std::process::Command;

use faas_api::backend::{Backend, BackendEnv};
use faas_api::{BackendProfile, NoProgress};
use faas_pipes::PipesBackend;

#[tokio::test]
async fn faas_pipes_invokes_a_function_deployed_to_the_project() {
    let project = tempfile::tempdir().unwrap();
    let env = BackendEnv { project_root: Some(project.path().to_path_buf()) };
    let runner = PipesBackend.runner(&BackendProfile::implicit("pipes"), &env).await.unwrap();
    let probe = std::path::Path::new(env!("CARGO_BIN_EXE_pipes-probe"));
    let manifest = faas_packaging::build::describe(probe).await.unwrap();
    let package = runner.package(&faas_conformance::fixture_spec(probe.into(), manifest), &NoProgress).await.unwrap();
    runner.deploy(&package, &NoProgress).await.unwrap();
    assert!(project.path().join(".faas/pipes/functions/typed.json").is_file());

    let out = Command::new(env!("CARGO_BIN_EXE_faas-pipes"))
        .args(["invoke", "typed", "-d", r#"{"name":"Ada"}"#, "--backend", "pipes", "--dir"])
        .arg(project.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "faas-pipes invoke failed: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"message":"Hello, Ada!"}"#, "{stderr}");
}
