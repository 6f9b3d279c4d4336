//! The `gcf` backend kind as `faas build` uses it: the artifact is the source archive, named
//! after its runtime, made without contacting anything (no project needed).

use faas_api::backend::Backend;
use faas_api::{AppSpec, BackendProfile, Config, ErrorKind, NoProgress};
use faas_runner_gcf::backend::GcfBackend;

mod common;

#[tokio::test]
async fn the_artifact_is_the_source_archive_named_after_its_runtime() {
    let binary = common::fixture();
    let manifest = faas_packaging::build::describe(&binary).await.unwrap();
    let app = AppSpec::from_parts(&Config::default_for("fixture"), binary, manifest).unwrap();
    let profile = BackendProfile::new("gcp", "gcf").with("runtime", "python311");
    let artifact = GcfBackend.artifact(&profile, &app, &NoProgress).await.unwrap();
    assert!(artifact.path.ends_with("fixture-gcf-python311.zip"), "{artifact:?}");
    let bytes = std::fs::read(&artifact.path).unwrap();
    assert_eq!(artifact.digest, Some(faas_packaging::code_sha256(&bytes)));
    let limits = faas_packaging::unpack::Limits { max_zipped: 1 << 30, max_unzipped: 1 << 30, max_entries: 10 };
    let archive = faas_packaging::unpack::Archive::open(&bytes, limits).unwrap();
    let mut names: Vec<String> = archive.entries().iter().map(|e| e.path.display().to_string()).collect();
    names.sort();
    assert_eq!(names, ["faas-app", "main.py", "requirements.txt"]);

    let nodejs = BackendProfile::new("gcp", "gcf").with("runtime", "nodejs20");
    let e = GcfBackend.artifact(&nodejs, &app, &NoProgress).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    assert!(e.message().contains("backends.gcp.runtime"), "{e}");
    let hint = GcfBackend.hint(
        &BackendProfile::new("gcp", "gcf").with("endpoint", "http://127.0.0.1:1"),
        &faas_api::Error::unavailable("down"),
    );
    assert!(hint.unwrap().contains("faas dev --emulate gcf"));
}
