//! The durable conductor through the runs API of a real gateway on 127.0.0.1: compositions run step by
//! step on the gateway's store, their steps functions on a backend (an in-process local runner here,
//! reached through the runner SPI like any function sink), and a run goes on across a restart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use faas_api::{App, BackendProfile, Context, Error, Registry, Runner};
use faas_composition::{call, seq, wait, Composition, Node};
use faas_runner_local::{LocalOptions, LocalRunner};
use serde_json::{json, Value};

const TOKEN: &str = "runs-token";

#[derive(serde::Deserialize, serde::Serialize)]
struct Count {
    n: u64,
}

/// The step functions, and how many times `inc` ran.
fn steps(calls: Arc<AtomicU64>) -> App {
    App::new()
        .function("inc", move |_cx: Context, c: Count| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Error>(Count { n: c.n + 1 }) }
        })
        .function("fail", |_cx: Context, _v: Value| async move {
            Err::<Value, _>(Error::function("OutOfStock", "no more widgets"))
        })
}

struct Gateway {
    running: Option<faas_gateway::RunningGateway>,
    url: String,
}

async fn start(dir: &std::path::Path, runner: Arc<LocalRunner>) -> Gateway {
    start_on(dir, runner, None).await
}

/// A gateway on the embedded store in `dir`, or on JetStream at `nats` (then `dir` is unused).
async fn start_on(dir: &std::path::Path, runner: Arc<LocalRunner>, nats: Option<String>) -> Gateway {
    let toml = r#"
[backends.steps]
kind = "in-test"

[gateway.functions.inc]
backend = "steps"

[gateway.functions.fail]
backend = "steps"
"#;
    let mut config = faas_gateway::config::GatewayConfig::parse(toml, "faas.toml").expect("config parses");
    config.data_dir = dir.to_path_buf();
    config.token = Some(TOKEN.to_string());
    if let Some(url) = nats {
        config.store = faas_gateway::config::StoreKind::Nats;
        config.nats_url = Some(url);
    }
    let mut runners = Registry::new();
    runners.register("in-test", move |_profile: BackendProfile| {
        let runner: Arc<dyn Runner> = runner.clone();
        async move { Ok(runner) }
    });
    let running = faas_gateway::start(faas_gateway::GatewayOptions {
        config,
        backends: [("steps".to_string(), BackendProfile::new("steps", "in-test"))].into(),
        runners,
        bind: Some("127.0.0.1:0".parse().unwrap()),
    })
    .await
    .expect("gateway starts");
    let url = format!("http://{}", running.addr());
    Gateway { running: Some(running), url }
}

impl Gateway {
    async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

fn program(node: Node) -> Value {
    serde_json::to_value(Composition::from(node)).unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post_run(url: &str, body: &Value) -> (u16, Value) {
    let response = client().post(format!("{url}/runs")).bearer_auth(TOKEN).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_run(url: &str, id: &str, wait: u64) -> (u16, Value) {
    let response = client().get(format!("{url}/runs/{id}?wait={wait}")).bearer_auth(TOKEN).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn runner(calls: &Arc<AtomicU64>) -> Arc<LocalRunner> {
    LocalRunner::in_process(steps(calls.clone()), LocalOptions::default()).expect("in-process runner")
}

/// The step functions' call counter, the gateway's data directory, and the gateway.
async fn fixture() -> (Arc<AtomicU64>, tempfile::TempDir, Gateway) {
    let calls = Arc::new(AtomicU64::new(0));
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(dir.path(), runner(&calls)).await;
    (calls, dir, gateway)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_step_run_with_a_timer_ends_with_its_result_and_history() {
    let (calls, _dir, mut gateway) = fixture().await;

    let mut nodes: Vec<Node> = (0..10).map(|_| call("inc")).collect();
    nodes.push(wait(300));
    nodes.extend((0..10).map(|_| call("inc")));
    let started = std::time::Instant::now();
    let (status, run) = post_run(
        &gateway.url,
        &json!({"composition": "count", "program": program(seq(nodes)), "input": {"n": 0}, "id": "count-1", "wait": 30}),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["result"], json!({"n": 20}));
    assert_eq!(run["steps"], 21, "twenty invocations and one timer: {run}");
    assert_eq!(run["seq"], 20, "continuations 0 to 20");
    assert_eq!(run["history"].as_array().unwrap().len(), faas_gateway::conductor::HISTORY);
    assert_eq!(run["history"][9]["function"], "wait", "{run}");
    assert!(run.get("current").is_none(), "an ended run has no current step: {run}");
    assert!(started.elapsed() >= Duration::from_millis(300), "the timer waited");
    assert_eq!(calls.load(Ordering::SeqCst), 20, "each step ran once");
    let metrics = client().get(format!("{}/metrics", gateway.url)).send().await.unwrap().text().await.unwrap();
    let series = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(series("faas_gateway_runs_started_total"), 1.0);
    assert_eq!(series("faas_gateway_runs_ended_total{status=\"succeeded\"}"), 1.0);
    assert_eq!(series("faas_gateway_run_transitions_total"), 21.0);
    assert_eq!(series("faas_gateway_run_step_seconds_count"), 21.0);

    // Listed, and read back.
    let listed: Value = client()
        .get(format!("{}/runs?limit=10", gateway.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["runs"][0]["id"], "count-1", "{listed}");
    let (status, again) = get_run(&gateway.url, "count-1", 0).await;
    assert_eq!((status, &again), (200, &run));

    // The id is taken now.
    let (status, body) = post_run(
        &gateway.url,
        &json!({"composition": "count", "program": program(call("inc")), "input": {"n": 0}, "id": "count-1"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_fails_the_run_with_its_error_and_bad_requests_are_refused() {
    let (calls, _dir, mut gateway) = fixture().await;

    let (status, run) = post_run(
        &gateway.url,
        &json!({"composition": "checkout", "program": program(seq([call("inc"), call("fail"), call("inc")])),
                "input": {"n": 1}, "wait": 30}),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["errorType"], "OutOfStock", "{run}");
    assert_eq!(run["history"][1]["outcome"], "function", "{run}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the step after the failure never ran");

    // A step that is not a registered function: the run fails with not_found, naming it.
    let (_, run) = post_run(
        &gateway.url,
        &json!({"composition": "lost", "program": program(call("nowhere")), "input": null, "wait": 30}),
    )
    .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["error"]["errorMessage"].as_str().unwrap().contains("`nowhere`"), "{run}");

    // Bad input changes nothing and names the problem.
    let bad = json!({"faas": "composition/v1", "program": {"op": "seq", "steps": [{"op": "call", "function": 7}]}});
    let (status, body) = post_run(&gateway.url, &json!({"composition": "bad", "program": bad})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("/program/steps/0/function"), "the JSON path is named: {body}");
    let (status, body) =
        post_run(&gateway.url, &json!({"composition": "x", "program": program(call("inc")), "id": "a/b"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) =
        post_run(&gateway.url, &json!({"composition": "x", "program": program(call("inc")), "wait": 301})).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("wait")), "{body}");
    let (status, _) = get_run(&gateway.url, "no-such-run", 0).await;
    assert_eq!(status, 404);
    let anonymous = client().get(format!("{}/runs", gateway.url)).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401, "the runs API needs the management token");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_starts_no_further_step() {
    let (calls, _dir, mut gateway) = fixture().await;
    let (status, run) = post_run(
        &gateway.url,
        &json!({"composition": "slow", "program": program(seq([call("inc"), wait(1500), call("inc")])),
                "input": {"n": 0}, "id": "slow-1"}),
    )
    .await;
    assert_eq!((status, &run["status"]), (201, &json!("running")), "{run}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let cancelled: Value = client()
        .delete(format!("{}/runs/slow-1", gateway.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the step after the timer did not run");
    let (_, run) = get_run(&gateway.url, "slow-1", 0).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    gateway.stop().await;
}

/// The run's timer is pending in the store when the gateway stops; a new gateway on the same data
/// directory picks the continuation up and finishes the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_goes_on_after_the_gateway_restarts() {
    let calls = Arc::new(AtomicU64::new(0));
    let dir = tempfile::tempdir().unwrap();
    let mut first = start(dir.path(), runner(&calls)).await;
    let (status, run) = post_run(
        &first.url,
        &json!({"composition": "across", "program": program(seq([call("inc"), wait(1000), call("inc"), call("inc")])),
                "input": {"n": 40}, "id": "across-1"}),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "stopped during the timer");

    let mut second = start(dir.path(), runner(&calls)).await;
    let (status, run) = get_run(&second.url, "across-1", 30).await;
    assert_eq!(status, 200);
    assert_eq!((run["status"].as_str(), &run["result"]), (Some("succeeded"), &json!({"n": 43})), "{run}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    second.stop().await;
}

/// Two gateway replicas on one JetStream: a run started on one goes on on the other when the first
/// stops in the middle of it (its record and wake-ups are in JetStream, not in either process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_jetstream_share_the_runs() {
    let nats = match faas_gateway_nats::testing::NatsServer::start() {
        Ok(Some(server)) => server,
        Ok(None) => {
            assert!(std::env::var_os("FAAS_REQUIRE_NATS").is_none(), "nats-server is required (FAAS_REQUIRE_NATS)");
            eprintln!("skipped: nats-server not found");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let calls = Arc::new(AtomicU64::new(0));
    let dir = tempfile::tempdir().unwrap();
    let mut first = start_on(dir.path(), runner(&calls), Some(nats.url())).await;
    let mut second = start_on(dir.path(), runner(&calls), Some(nats.url())).await;
    let mut nodes = vec![call("inc")];
    for _ in 0..5 {
        nodes.push(wait(200));
        nodes.push(call("inc"));
    }
    let (status, run) = post_run(
        &first.url,
        &json!({"composition": "shared", "program": program(seq(nodes)), "input": {"n": 0}, "id": "shared-1"}),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let (_, seen) = get_run(&second.url, "shared-1", 0).await;
    assert_eq!(seen["id"], "shared-1", "the other replica sees the run at once: {seen}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.stop().await;
    let (status, run) = get_run(&second.url, "shared-1", 60).await;
    assert_eq!(status, 200);
    assert_eq!((run["status"].as_str(), &run["result"]), (Some("succeeded"), &json!({"n": 6})), "{run}");
    assert!(calls.load(Ordering::SeqCst) >= 6, "every step ran");
    second.stop().await;
}
