//! End to end against the local Lambda emulator: a real faas app binary (fixture/main.rs, whose
//! main is `faas::serve`) is packaged as a `bootstrap` zip, deployed through `LambdaRunner` (the
//! real aws-sdk-lambda pointed at the emulator with dummy credentials), invoked synchronously,
//! asynchronously and with errors, redeployed, listed and removed — all over 127.0.0.1.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use faas_api::{
    ActivationQuery, ActivationStatus, AppSpec, BackendProfile, Config, ErrorKind, InvokeMode, InvokeRequest,
    NoProgress, Payload, Runner,
};
use faas_emulator_lambda::EmulatorOptions;
use faas_runner_lambda::deploy::LambdaRunner;
use serde_json::{json, Value};

/// Builds the fixture app once (an example target of this crate) and returns its path.
fn fixture() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let built = faas_packaging::build::build_example(dir, "faas-runner-lambda", "faas-lambda-fixture")
            .expect("the fixture builds");
        // A debug build carries hundreds of MB of debug info, over Lambda's 50 MB upload limit;
        // deploy it stripped, as a release build would be.
        let stripped = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("faas-lambda-fixture");
        let status = std::process::Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(&stripped)
            .arg(&built)
            .status()
            .expect("`strip` (binutils) runs");
        assert!(status.success(), "strip failed");
        stripped
    })
    .clone()
}

async fn app_spec(greeting: &str) -> AppSpec {
    let binary = fixture();
    let manifest = faas_packaging::build::describe(&binary).await.unwrap();
    let mut config = Config::default_for("lambda-fixture");
    config.functions.entry("context".into()).or_default().env.insert("GREETING".into(), greeting.into());
    config.functions.entry("hello".into()).or_default().timeout = Some(Duration::from_secs(5));
    AppSpec::from_parts(&config, binary, manifest).unwrap()
}

fn body(p: &Payload) -> Value {
    serde_json::from_slice(p.body()).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", p.body()))
}

/// An emulator on a free 127.0.0.1 port started with `options`, and a runner for it whose Lambda
/// function names start with `prefix`.
async fn emulator_and_runner(
    options: EmulatorOptions,
    prefix: &str,
) -> (faas_emulator_lambda::Emulator, std::sync::Arc<LambdaRunner>) {
    // Dummy credentials: the SDK signs requests, the emulator does not check signatures.
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let emulator =
        faas_emulator_lambda::start(EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), ..options }).await.unwrap();
    let profile = BackendProfile::new("emu", "lambda")
        .with("region", "us-east-1")
        .with("endpoint", emulator.url())
        .with("prefix", prefix);
    let runner = LambdaRunner::from_profile(&profile).await.unwrap();
    (emulator, runner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_deploy_invoke_redeploy_and_remove_through_the_emulator() {
    let options = EmulatorOptions { retry_base: Duration::from_millis(50), ..Default::default() };
    let (emulator, runner) = emulator_and_runner(options, "t-").await;

    // Package: a reproducible zip; packaging twice gives the same bytes.
    let spec = app_spec("hi").await;
    let package = runner.package(&spec, &NoProgress).await.unwrap();
    let first = std::fs::read(&package.artifact).unwrap();
    let again = runner.package(&spec, &NoProgress).await.unwrap();
    assert_eq!(std::fs::read(&again.artifact).unwrap(), first);

    // Deploy: everything is created, then listed with its settings.
    let report = runner.deploy(&package, &NoProgress).await.unwrap();
    let mut created = report.created.clone();
    created.sort();
    assert_eq!(created, vec!["context", "counter", "echo", "fail", "hello", "panics", "touch"], "{report:?}");
    let listed = runner.list().await.unwrap();
    let hello = listed.iter().find(|f| f.spec.name == "hello").expect("hello is listed");
    assert_eq!(hello.spec.timeout, Duration::from_secs(5));
    assert_eq!(hello.state, "Active");
    let context = listed.iter().find(|f| f.spec.name == "context").unwrap();
    assert_eq!(context.spec.env.get("GREETING").map(String::as_str), Some("hi"));

    // Typed sync invoke.
    let req = InvokeRequest::new("hello", Payload::json(&json!({"name": "Ada"})).unwrap());
    let out = runner.invoke(req).await.unwrap();
    assert_eq!(body(&out.payload), json!({"message": "Hello, Ada!"}));
    assert!(!out.activation_id.is_empty());

    // Raw replies keep their bytes.
    let out = runner.invoke(InvokeRequest::new("echo", Payload::bytes(&b"plain bytes"[..]))).await.unwrap();
    assert_eq!(out.payload.body().as_ref(), b"plain bytes");

    // The context: the function's name, the Lambda ARN, the deployed env, the caller's trace.
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut req = InvokeRequest::new("context", Payload::json(&json!({})).unwrap());
    req.traceparent = Some(tp.into());
    let out = runner.invoke(req).await.unwrap();
    let cx = body(&out.payload);
    assert_eq!(cx["function_name"], "context");
    assert_eq!(cx["backend"], "lambda");
    assert_eq!(cx["greeting"], "hi");
    assert_eq!(cx["invocation_id"], out.activation_id.as_str());
    assert_eq!(cx["lambda_name"], "t-context");
    assert!(cx["arn"].as_str().unwrap().ends_with(":function:t-context"), "{cx}");
    assert_eq!(cx["traceparent"].as_str().unwrap()[..36], tp[..36], "same trace id: {cx}");
    assert!(cx["remaining_ms"].as_u64().unwrap() > 0);

    // Errors map back to the portable taxonomy.
    let err = runner
        .invoke(InvokeRequest::new("fail", Payload::json(&json!({"message": "boom"})).unwrap()))
        .await
        .unwrap_err();
    assert_eq!((err.kind(), err.error_type(), err.message()), (ErrorKind::Function, "ProbeError", "boom"));
    let err = runner.invoke(InvokeRequest::new("panics", Payload::json(&json!({})).unwrap())).await.unwrap_err();
    assert_eq!((err.kind(), err.error_type()), (ErrorKind::Crash, "Panic"));
    assert!(err.message().contains("fixture panic"), "{err}");
    let err = runner.invoke(InvokeRequest::new("hello", Payload::new(&b"{\"name\":"[..], None))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput, "{err}");
    let err = runner.invoke(InvokeRequest::new("nope", Payload::json(&json!({})).unwrap())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.message().contains("ResourceNotFoundException"), "{err}");
    let err = runner
        .invoke(InvokeRequest {
            mode: InvokeMode::Async,
            ..InvokeRequest::new("hello", Payload::bytes(vec![b'x'; 1_048_577]))
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge, "{err}");

    // A warm environment is reused.
    let a =
        body(&runner.invoke(InvokeRequest::new("counter", Payload::json(&json!({})).unwrap())).await.unwrap().payload);
    let b =
        body(&runner.invoke(InvokeRequest::new("counter", Payload::json(&json!({})).unwrap())).await.unwrap().payload);
    assert_eq!((a["pid"].clone(), b["count"].as_u64().unwrap()), (b["pid"].clone(), a["count"].as_u64().unwrap() + 1));

    // Async: accepted at once, run later.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("touched");
    let req = InvokeRequest {
        mode: InvokeMode::Async,
        ..InvokeRequest::new("touch", Payload::json(&json!({"path": marker})).unwrap())
    };
    let accepted = runner.invoke(req).await.unwrap();
    assert!(accepted.payload.is_empty());
    let mut waited = 0;
    while !marker.exists() && waited < 300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let text = std::fs::read_to_string(&marker).expect("the async invocation ran");
    assert_eq!(text.trim(), accepted.activation_id);

    // Activation records come from CloudWatch Logs (FilterLogEvents on the emulator's port).
    let hello_id = {
        let req = InvokeRequest::new("hello", Payload::json(&json!({"name": "Logs"})).unwrap());
        runner.invoke(req).await.unwrap().activation_id
    };
    let acts = runner.activations(ActivationQuery { id: Some(hello_id.clone()), ..Default::default() }).await.unwrap();
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!((acts[0].function.as_str(), acts[0].status), ("hello", ActivationStatus::Success));
    assert!(acts[0].duration_us > 0, "{acts:?}");
    let touched = runner.activations(ActivationQuery { function: Some("touch".into()), ..Default::default() });
    let touched = touched.await.unwrap();
    assert_eq!(touched.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), vec![accepted.activation_id.as_str()]);
    assert!(touched[0].cold, "the first `touch` started an environment: {touched:?}");
    // An async failure: Lambda retries it twice; each attempt is a record with the error the
    // function reported (printed by the faas host, read back from the log).
    let req = InvokeRequest {
        mode: InvokeMode::Async,
        ..InvokeRequest::new("fail", Payload::json(&json!({"message": "async boom"})).unwrap())
    };
    let failed_id = runner.invoke(req).await.unwrap().activation_id;
    let mut attempts = vec![];
    for _ in 0..100 {
        let q = ActivationQuery { id: Some(failed_id.clone()), ..Default::default() };
        attempts = runner.activations(q).await.unwrap();
        if attempts.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), vec![3, 2, 1], "newest first: {attempts:?}");
    for a in &attempts {
        let e = a.error.as_ref().expect("a failed attempt carries its error");
        assert_eq!((a.status, e.error_type(), e.message()), (ActivationStatus::Error, "ProbeError", "async boom"));
        assert_eq!(a.mode, InvokeMode::Async);
    }
    let all = runner.activations(ActivationQuery { limit: Some(2), ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 2, "the limit applies across functions");

    // Dry run: validated, not run.
    let dry =
        InvokeRequest { mode: InvokeMode::DryRun, ..InvokeRequest::new("hello", Payload::json(&json!({})).unwrap()) };
    assert!(runner.invoke(dry).await.unwrap().payload.is_empty());

    // Redeploying the same package changes nothing; a changed variable updates one function.
    let report = runner.deploy(&package, &NoProgress).await.unwrap();
    assert!(report.created.is_empty() && report.updated.is_empty(), "{report:?}");
    assert_eq!(report.unchanged.len(), 7);
    let changed = runner.package(&app_spec("hello again").await, &NoProgress).await.unwrap();
    let report = runner.deploy(&changed, &NoProgress).await.unwrap();
    assert_eq!(report.updated, vec!["context"], "{report:?}");
    let cx =
        body(&runner.invoke(InvokeRequest::new("context", Payload::json(&json!({})).unwrap())).await.unwrap().payload);
    assert_eq!(cx["greeting"], "hello again");

    // Remove: gone from the list; removing again is not found.
    runner.remove("hello").await.unwrap();
    assert!(runner.list().await.unwrap().iter().all(|f| f.spec.name != "hello"));
    assert_eq!(runner.remove("hello").await.unwrap_err().kind(), ErrorKind::NotFound);
    let err = runner.invoke(InvokeRequest::new("hello", Payload::json(&json!({})).unwrap())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    emulator.shutdown().await;
}

/// `cargo lambda watch` serves the Runtime API under a base path and passes it as a URL
/// (`AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:PORT/.rt`); a faas function must run there as it does
/// under Lambda's bare `host:port`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_runs_when_the_runtime_api_is_a_url_with_a_base_path() {
    let options = EmulatorOptions { runtime_api_base: Some("/.rt".into()), ..Default::default() };
    let (emulator, runner) = emulator_and_runner(options, "rt-").await;
    let mut spec = app_spec("hi").await;
    spec.functions.retain(|f| f.name == "hello" || f.name == "fail");
    let package = runner.package(&spec, &NoProgress).await.unwrap();
    runner.deploy(&package, &NoProgress).await.unwrap();

    let req = InvokeRequest::new("hello", Payload::json(&json!({"name": "Ada"})).unwrap());
    let out = runner.invoke(req).await.unwrap_or_else(|e| panic!("the invocation failed: {e}"));
    assert_eq!(body(&out.payload), json!({"message": "Hello, Ada!"}));
    // Errors take the same path (`<base>/2018-06-01/runtime/invocation/<id>/error`).
    let err = runner
        .invoke(InvokeRequest::new("fail", Payload::json(&json!({"message": "boom"})).unwrap()))
        .await
        .unwrap_err();
    assert_eq!((err.kind(), err.error_type(), err.message()), (ErrorKind::Function, "ProbeError", "boom"));
    // The environment stays warm: a second invocation reuses it through the same base path.
    let req = InvokeRequest::new("hello", Payload::json(&json!({"name": "Bo"})).unwrap());
    assert_eq!(body(&runner.invoke(req).await.unwrap().payload), json!({"message": "Hello, Bo!"}));
    emulator.shutdown().await;
}
