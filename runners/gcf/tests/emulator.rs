//! The runner end to end against the local Cloud Functions (`faas-emulator-gcf`): a real faas
//! app binary (fixture/main.rs, whose main is `faas::serve`) is packaged as the Python source
//! archive whose `main.py` execs it, deployed through `GcfRunner` over the Cloud Functions v2 API
//! (Google's SDK with an endpoint override), on 127.0.0.1; then invoked at each function's own
//! URL, redeployed unchanged, listed, its activations and logs read from `entries:list`, and
//! removed; and a function the platform cannot take, or another app's, is refused before
//! anything is sent.

use std::sync::Arc;
use std::time::Duration;

use faas_api::{
    ActivationQuery, ActivationStatus, AppSpec, BackendProfile, Config, ErrorKind, InvokeMode, InvokeRequest,
    NoProgress, Payload, Runner,
};
use faas_emulator_gcf::{Emulator, EmulatorOptions};
use faas_runner_gcf::deploy::GcfRunner;
use serde_json::{json, Value};

mod common;
use common::fixture;

const APP: &str = "fixture";

async fn app_spec() -> AppSpec {
    let binary = fixture();
    let manifest = faas_packaging::build::describe(&binary).await.unwrap();
    let mut config = Config::default_for(APP);
    config.functions.entry("slow".into()).or_default().timeout = Some(Duration::from_secs(2));
    AppSpec::from_parts(&config, binary, manifest).unwrap()
}

async fn start() -> (Emulator, Arc<GcfRunner>) {
    let options = EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
    let emulator = faas_emulator_gcf::start(options).await.unwrap();
    let profile = BackendProfile::new("emulator", "gcf")
        .with("endpoint", emulator.url())
        .with("project", "local-project")
        .with("region", "us-central1");
    let runner = GcfRunner::from_profile(&profile).unwrap();
    (emulator, runner)
}

/// Progress messages, kept.
#[derive(Default)]
struct Steps(std::sync::Mutex<Vec<String>>);

impl faas_api::Progress for Steps {
    fn step(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

fn sync(function: &str, v: Value) -> InvokeRequest {
    InvokeRequest::new(function, Payload::json(&v).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_invoke_redeploy_list_logs_and_remove() {
    let (emulator, runner) = start().await;
    let spec = app_spec().await;
    let package = runner.package(&spec, &NoProgress).await.unwrap();
    assert!(package.artifact.display().to_string().ends_with("fixture-gcf-python312.zip"), "{package:?}");
    let steps = Steps::default();
    let first = runner.deploy(&package, &steps).await.unwrap();
    assert_eq!(first.created.len(), spec.functions.len(), "{first:?}");
    let steps = steps.0.into_inner().unwrap();
    assert!(steps.iter().any(|s| s.starts_with("uploading the source archive")), "{steps:?}");
    assert!(steps.iter().any(|s| s.contains("creating function `hello`") && s.contains("BUILD")), "{steps:?}");

    // Invoked at its own URL; the host sees the execution id the runner sent.
    let reply =
        runner.invoke(InvokeRequest { with_logs: true, ..sync("hello", json!({"name": "Ada"})) }).await.unwrap();
    let v: Value = reply.payload.json_as().unwrap();
    assert_eq!((v["greeting"].as_str(), v["backend"].as_str()), (Some("Hello, Ada!"), Some("gcf")), "{v}");
    assert_eq!(v["id"].as_str(), Some(reply.activation_id.as_str()), "{v}");
    let logs = reply.logs.unwrap();
    assert!(logs.iter().any(|l| l.contains("greeting Ada")), "{logs:?}");

    // Errors keep their kinds.
    let failed = runner.invoke(sync("fail", json!({"message": "nope"}))).await.unwrap_err();
    assert_eq!((failed.kind(), failed.error_type(), failed.message()), (ErrorKind::Function, "ProbeError", "nope"));
    let crashed = runner.invoke(sync("panics", json!({}))).await.unwrap_err();
    assert_eq!(crashed.kind(), ErrorKind::Crash, "{crashed}");
    // A CloudEvent function, sent the event in binary mode.
    let event = json!({"specversion": "1.0", "id": "e1", "source": "/shop", "type": "order.created",
                       "datacontenttype": "application/json", "data": {"n": 1}});
    let ce = Payload::new(event.to_string().into_bytes(), Some("application/cloudevents+json".into()));
    let seen = runner.invoke(InvokeRequest::new("seen", ce)).await.unwrap();
    let seen: Value = serde_json::from_slice(seen.payload.body()).unwrap();
    assert_eq!(seen["type"], "order.created.seen", "{seen}");
    assert_eq!(seen["data"]["data"], json!({"n": 1}), "{seen}");

    // Dry runs read the function; asynchronous invocations are not offered.
    let dry = InvokeRequest { mode: InvokeMode::DryRun, ..sync("hello", json!({})) };
    runner.invoke(dry.clone()).await.unwrap();
    let missing = runner.invoke(InvokeRequest { function: "nope".into(), ..dry }).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    let asynchronous = InvokeRequest { mode: InvokeMode::Async, ..sync("hello", json!({})) };
    assert_eq!(runner.invoke(asynchronous).await.unwrap_err().kind(), ErrorKind::BadInput);

    // Unchanged: nothing is sent.
    let again = runner.deploy(&package, &NoProgress).await.unwrap();
    assert!(again.created.is_empty() && again.updated.is_empty(), "{again:?}");
    assert_eq!(again.unchanged.len(), spec.functions.len());
    // A changed setting updates that function only.
    let mut changed = package.clone();
    changed.functions.iter_mut().find(|f| f.name == "echo").unwrap().env.insert("COLOUR".into(), "blue".into());
    let report = runner.deploy(&changed, &NoProgress).await.unwrap();
    assert_eq!(report.updated, ["echo"], "{report:?}");

    let listed = runner.list().await.unwrap();
    let names: Vec<&str> = listed.iter().map(|f| f.spec.name.as_str()).collect();
    assert_eq!(names, ["echo", "fail", "hello", "panics", "seen", "slow"]);
    let echo = listed.iter().find(|f| f.spec.name == "echo").unwrap();
    assert_eq!((echo.state.as_str(), echo.spec.env.get("COLOUR").map(String::as_str)), ("active", Some("blue")));
    assert_eq!(listed.iter().find(|f| f.spec.name == "slow").unwrap().spec.timeout, Duration::from_secs(2));

    // The activation, rebuilt from the logs.
    let query = ActivationQuery { function: Some("hello".into()), ..Default::default() };
    let activations = runner.activations(query).await.unwrap();
    let hello = activations.iter().find(|a| a.id == reply.activation_id).unwrap_or_else(|| panic!("{activations:?}"));
    assert_eq!(hello.status, ActivationStatus::Success, "{hello:?}");
    assert!(hello.logs.iter().any(|l| l.contains("greeting Ada")), "{hello:?}");
    let by_id = ActivationQuery { id: Some(reply.activation_id.clone()), ..Default::default() };
    assert_eq!(runner.activations(by_id).await.unwrap().len(), 1);

    let gone = runner.remove("nope").await.unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound, "{gone}");
    runner.remove("hello").await.unwrap();
    let names: Vec<String> = runner.list().await.unwrap().into_iter().map(|f| f.spec.name).collect();
    assert!(!names.contains(&"hello".to_string()) && names.contains(&"echo".to_string()), "{names:?}");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_the_platform_cannot_take_are_refused_before_anything_is_sent() {
    let (emulator, runner) = start().await;
    let mut spec = app_spec().await;
    spec.functions.iter_mut().find(|f| f.name == "hello").unwrap().name = "Hello_World".into();
    let e = runner.package(&spec, &NoProgress).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    assert!(e.message().contains("`Hello_World`") && e.message().contains("lowercase"), "{e}");

    let mut spec = app_spec().await;
    let package = runner.package(&spec, &NoProgress).await.unwrap();
    spec.functions.iter_mut().find(|f| f.name == "echo").unwrap().memory_mb = 64;
    let e = runner.deploy(&faas_api::Package { functions: spec.functions, ..package }, &NoProgress).await.unwrap_err();
    assert!(e.message().contains("`echo`") && e.message().contains("128–32768 MB"), "{e}");
    assert!(runner.list().await.unwrap().is_empty(), "nothing was deployed");

    // Another app's function of the same name is never taken over.
    let mut other = app_spec().await;
    other.app = "other".into();
    other.functions.retain(|f| f.name == "echo");
    let theirs = runner.package(&other, &NoProgress).await.unwrap();
    assert_eq!(runner.deploy(&theirs, &NoProgress).await.unwrap().created, ["echo"]);
    let ours = runner.package(&app_spec().await, &NoProgress).await.unwrap();
    let e = runner.deploy(&ours, &NoProgress).await.unwrap_err();
    assert_eq!((e.kind(), e.error_type()), (ErrorKind::BadInput, "Google.ALREADY_EXISTS"), "{e}");
    assert!(e.message().contains("`echo`") && e.message().contains("not app `fixture`'s"), "{e}");
    let names: Vec<String> = runner.list().await.unwrap().into_iter().map(|f| f.spec.name).collect();
    assert_eq!(names, ["echo"]);
    emulator.shutdown().await;
}
