//! SIGKILL the gateway binary in the middle of a 20-step durable run, five times (TRI-04), restarting it on
//! the same data directory each time: the run finishes with the same result, its continuation number
//! never goes back, and a step runs again at most once per kill. The steps are the conformance probe's
//! `echo`, deployed in the Lambda emulator (this test's process) and reached by the gateway through
//! the Lambda runner, as any function sink.

mod process;

use std::time::Duration;

use faas_api::backend::EmulatorOptions;
use faas_api::{ActivationQuery, AppSpec, Config, NoProgress};
use faas_composition::{call, seq, wait, Composition, Node};
use process::GatewayProcess;
use serde_json::{json, Value};

const TOKEN: &str = "conductor-crash-token";
const STEPS: usize = 20;
const KILLS: u64 = 5; // TRI-04 of COMPOSITION.md

fn gateway(config: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_faas-gateway"));
    cmd.arg("--config")
        .arg(config)
        .args(["--port", "0"])
        .env("RUST_LOG", "warn")
        .env("FAAS_GATEWAY_TOKEN", TOKEN)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

async fn run_record(url: &str, id: &str) -> Value {
    let response = reqwest::Client::new().get(format!("{url}/runs/{id}")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_finishes_the_run_with_the_same_result() {
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let backends = faas_backends::all();
    let (backend, emulator) = backends.emulator("lambda").unwrap();
    let options = EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), state_dir: None, echo_logs: false };
    let emulator = emulator.start(options).await.unwrap();
    let binary = faas_conformance::build_probe().unwrap();
    let manifest = faas_packaging::build::describe(&binary).await.unwrap();
    let spec = AppSpec::from_parts(&Config::default_for("probe"), binary, manifest).unwrap();
    let mut profile = emulator.profile().with("prefix", "cc-");
    profile.name = "emu".into();
    let lambda = backend.runner(&profile, &Default::default()).await.unwrap();
    let package = lambda.package(&spec, &NoProgress).await.unwrap();
    lambda.deploy(&package, &NoProgress).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("faas.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[app]
name = "conductor-crash"

[backends.emu]
kind = "lambda"
region = "us-east-1"
endpoint = "{}"
prefix = "cc-"

[gateway]
data_dir = "gateway-data"
token = "env:FAAS_GATEWAY_TOKEN"

[gateway.functions.echo]
backend = "emu"
"#,
            emulator.url()
        ),
    )
    .unwrap();

    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..STEPS {
        if i > 0 {
            nodes.push(wait(120));
        }
        nodes.push(call("echo"));
    }
    let program = serde_json::to_value(Composition::from(seq(nodes))).unwrap();
    let input = json!({"order": 42, "items": ["tea", "cake"]});
    let mut gw = GatewayProcess::spawn(gateway(&config)).await;
    let response = reqwest::Client::new()
        .post(format!("{}/runs", gw.url))
        .bearer_auth(TOKEN)
        .json(&json!({"composition": "twenty", "program": program, "input": input, "id": "twenty-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201, "{}", response.text().await.unwrap());

    // Kill whenever the run has moved on a few more continuations, restart, and watch it never go back.
    let total = (2 * STEPS - 1) as u64; // continuations 0..=38 (20 calls, 19 waits)
    let mut last_seq = 0;
    for kill in 1..=KILLS {
        let target = total * kill / (KILLS + 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let record = run_record(&gw.url, "twenty-1").await;
            let seq = record["seq"].as_u64().unwrap();
            assert!(seq >= last_seq, "the run went back from continuation {last_seq} to {seq}: {record}");
            last_seq = seq;
            assert_eq!(record["status"], "running", "the run ended before kill {kill}: {record}");
            if seq >= target {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the run stalled at {seq}: {record}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gw.kill().await;
        println!("kill {kill}: SIGKILL at continuation {last_seq}");
        gw = GatewayProcess::spawn(gateway(&config)).await;
        let record = run_record(&gw.url, "twenty-1").await;
        let seq = record["seq"].as_u64().unwrap();
        assert!(seq >= last_seq, "after the restart the run is back at {seq}, was at {last_seq}: {record}");
    }
    let response = reqwest::Client::new()
        .get(format!("{}/runs/twenty-1?wait=120", gw.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let record: Value = response.json().await.unwrap();
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(record["result"], input, "the same result as without kills");
    assert_eq!(record["seq"].as_u64(), Some(total - 1), "{record}");
    gw.kill().await;

    let echoes = lambda
        .activations(ActivationQuery { function: Some("echo".into()), limit: Some(1000), ..Default::default() })
        .await
        .unwrap();
    println!("{} step invocations for {STEPS} steps and {KILLS} kills", echoes.len());
    assert!(echoes.len() >= STEPS, "every step ran: {} invocations", echoes.len());
    assert!(
        echoes.len() as u64 <= STEPS as u64 + KILLS,
        "a step runs again at most once per kill: {} invocations",
        echoes.len()
    );
    emulator.shutdown().await;
}
