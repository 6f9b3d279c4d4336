//! What the conformance suite cannot provoke with its probe: binaries that break the protocol.
//! Each "function binary" here is a shell script.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use faas_api::{
    ActivationQuery, ActivationStatus, App, AppSpec, ErrorKind, FunctionSpec, InvokeRequest, NoProgress, Payload,
    Runner,
};
use faas_pipes::PipesRunner;

/// Deploys `script` as the binary of function `f` (timeout 1 s) to a runner in `dir`.
async fn deploy_script(dir: &Path, script: &str) -> PipesRunner {
    let binary = dir.join("app.sh");
    std::fs::write(&binary, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut spec = FunctionSpec::new("f");
    spec.timeout = Duration::from_secs(1);
    let app = AppSpec { app: "scripts".into(), binary, manifest: App::new().manifest(), functions: vec![spec] };
    let runner = PipesRunner::open(dir.join("state")).unwrap();
    let package = runner.package(&app, &NoProgress).await.unwrap();
    assert_eq!(runner.deploy(&package, &NoProgress).await.unwrap().created, ["f"]);
    runner
}

#[tokio::test]
async fn a_process_that_exits_without_answering_is_a_crash_with_its_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let runner = deploy_script(dir.path(), "read line; echo 'cannot go on' >&2; exit 3").await;
    let err = runner.invoke(InvokeRequest::new("f", Payload::bytes("hi"))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Crash, "{err}");
    assert!(err.message().contains("ended without answering: the process exited with status 3"), "{err}");
    assert!(err.message().contains("cannot go on"), "{err}");
    let activations = runner.activations(ActivationQuery::default()).await.unwrap();
    assert_eq!(activations.len(), 1);
    assert_eq!((activations[0].status, activations[0].cold), (ActivationStatus::Error, true));
    assert_eq!(activations[0].logs, ["cannot go on"]);
}

#[tokio::test]
async fn a_process_that_never_answers_is_killed_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let runner = deploy_script(dir.path(), "exec sleep 30").await;
    let started = Instant::now();
    let err = runner.invoke(InvokeRequest::new("f", Payload::bytes("hi"))).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(3), "took {took:?}");
    assert!(err.message().contains("faas::serve_with(app, &[&faas_pipes::PipesHost])"), "{err}");
}

#[tokio::test]
async fn a_line_that_is_not_an_answer_is_a_log_line_and_removal_is_final() {
    let dir = tempfile::tempdir().unwrap();
    // Answers every request with a fixed reply, after a log line on stdout.
    let script = r#"while read -r line; do
  id=$(printf '%s' "$line" | sed 's/^{"id":"\([^"]*\)".*/\1/')
  echo "hello from the script"
  echo "__FAAS_PIPES_END__ $id" >&2
  echo "{\"answer\":\"$id\",\"reply\":{\"body_base64\":\"b2s=\"}}__FAAS_PIPES_END__ $id"
done"#;
    let runner = deploy_script(dir.path(), script).await;
    let request = InvokeRequest { with_logs: true, ..InvokeRequest::new("f", Payload::bytes("hi")) };
    let first = runner.invoke(request.clone()).await.unwrap();
    assert_eq!(first.payload.body().as_ref(), b"ok");
    assert_eq!(first.logs.as_deref(), Some(&["hello from the script".to_string()][..]));
    let second = runner.invoke(request).await.unwrap();
    let cold: Vec<bool> =
        runner.activations(ActivationQuery::default()).await.unwrap().iter().map(|a| a.cold).collect();
    assert_eq!(cold, [false, true], "newest first: the second call reused the instance ({second:?})");

    runner.remove("f").await.unwrap();
    let err = runner.invoke(InvokeRequest::new("f", Payload::empty())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(runner.remove("f").await.unwrap_err().kind(), ErrorKind::NotFound);
    assert!(runner.list().await.unwrap().is_empty());
}
