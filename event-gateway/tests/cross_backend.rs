//! Events crossing backends: a function on the local backend emits a CloudEvent with `cx.emit`; the
//! local runner posts it to the gateway's ingress (`events_url`); a subscription routes it to a
//! function deployed in the local Lambda emulator, reached through the Lambda runner (aws-sdk-lambda).
//! The Lambda function's log, read back through CloudWatch Logs, proves it received that event; a
//! second subscription delivers it to a composition of that app (a sink like any function). The
//! emulator and the runners come from the list of backends, as the `faas-gateway` server takes them.

use std::time::Duration;

use faas_api::backend::EmulatorOptions;
use faas_api::{ActivationQuery, AppSpec, Config, InvokeRequest, NoProgress, Payload, Runner};
use faas_runner_local::{LocalOptions, LocalRunner};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_emitted_on_the_local_backend_reaches_a_function_in_the_lambda_emulator() {
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let backends = faas_backends::all();
    let (backend, emulator) = backends.emulator("lambda").unwrap();
    let options = EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), state_dir: None, echo_logs: false };
    let emulator = emulator.start(options).await.unwrap();

    // The probe app, deployed to the Lambda emulator.
    // Built now, not found next to this test: a probe binary from an earlier build would lack the
    // current local-backend protocol (this crate's tests do not build faas-conformance's binaries).
    let binary = faas_conformance::build_probe().unwrap();
    let manifest = faas_packaging::build::describe(&binary).await.unwrap();
    let spec = AppSpec::from_parts(&Config::default_for("probe"), binary, manifest).unwrap();
    let mut profile = emulator.profile().with("prefix", "xb-");
    profile.name = "emu".into();
    let lambda = backend.runner(&profile, &Default::default()).await.unwrap();
    let package = lambda.package(&spec, &NoProgress).await.unwrap();
    lambda.deploy(&package, &NoProgress).await.unwrap();

    // The gateway: `probe.emitted` events go to the Lambda `collect` function.
    let toml = format!(
        r#"
[app]
name = "cross"

[backends.emu]
kind = "lambda"
region = "us-east-1"
endpoint = "{}"
prefix = "xb-"

[gateway.functions.remote-collect]
backend = "emu"
target = "collect"

[[gateway.subscriptions]]
id = "to-lambda"
types = ["probe.emitted"]
sink = "function:remote-collect"

# A composition is a sink like any function: `seq-echo` is `seq([call("echo")])` of the probe app.
[gateway.functions.remote-seq]
backend = "emu"
target = "seq-echo"

[[gateway.subscriptions]]
id = "to-composition"
types = ["probe.emitted"]
sink = "function:remote-seq"
"#,
        emulator.url()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = faas_gateway::config::GatewayConfig::parse(&toml, "faas.toml").unwrap();
    config.data_dir = dir.path().join("gateway");
    let runners = backends.registry(Default::default());
    let gateway = faas_gateway::start(faas_gateway::GatewayOptions {
        config,
        backends: [("emu".to_string(), profile.clone())].into(),
        runners,
        bind: Some("127.0.0.1:0".parse().unwrap()),
    })
    .await
    .unwrap();
    let ingress = format!("http://{}/", gateway.addr());

    // The same probe app on the local backend (process mode), emitting to the gateway.
    let local = LocalRunner::new(LocalOptions { events_url: Some(ingress), ..Default::default() }).unwrap();
    let package = local.package(&spec, &NoProgress).await.unwrap();
    local.deploy(&package, &NoProgress).await.unwrap();
    let id = format!("xb-{}", uuid::Uuid::new_v4().simple());
    let event = serde_json::json!({
        "specversion": "1.0", "id": id, "source": "/tests/cross-backend", "type": "probe.emitted",
        "datacontenttype": "application/json", "data": {"from": "local"}
    });
    let out = local.invoke(InvokeRequest::new("emit", Payload::json(&event).unwrap())).await.unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(out.payload.body()).unwrap()["emitted"], id.as_str());

    // The Lambda `collect` function logged `collected <id>`.
    let wanted = format!("collected {id}");
    let mut seen = vec![];
    for _ in 0..150 {
        let q = ActivationQuery { function: Some("collect".into()), ..Default::default() };
        seen = lambda.activations(q).await.unwrap();
        if seen.iter().any(|a| a.logs.iter().any(|l| l.contains(&wanted))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let hit = seen.iter().find(|a| a.logs.iter().any(|l| l.contains(&wanted)));
    let hit = hit.unwrap_or_else(|| panic!("the Lambda `collect` function never logged {wanted:?}: {seen:?}"));
    assert_eq!(hit.status, faas_api::ActivationStatus::Success, "{hit:?}");
    assert_eq!(seen.iter().filter(|a| a.logs.iter().any(|l| l.contains(&wanted))).count(), 1, "delivered once");
    // The composition got it too, as one successful activation of its own.
    let mut composed = vec![];
    for _ in 0..150 {
        let q = ActivationQuery { function: Some("seq-echo".into()), ..Default::default() };
        composed = lambda.activations(q).await.unwrap();
        if !composed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(composed.len(), 1, "the composition sink was delivered to once: {composed:?}");
    assert_eq!(composed[0].status, faas_api::ActivationStatus::Success, "{composed:?}");

    local.shutdown().await;
    gateway.shutdown().await;
    emulator.shutdown().await;
}
