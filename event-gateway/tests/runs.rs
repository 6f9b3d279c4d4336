//! The durable conductor through the runs API of a real gateway on 127.0.0.1: compositions run step by
//! step on the gateway's store, their steps functions on a backend (an in-process local runner here,
//! reached through the runner SPI like any function sink), and a run goes on across a restart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use faas_api::{App, BackendProfile, Context, Error, Registry, Runner};
use faas_composition::{await_event, call, object, pointer, seq, value, wait, Composition, Node};
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
    let (calls, dir) = (Arc::new(AtomicU64::new(0)), tempfile::tempdir().unwrap());
    let steps = runner(&calls);
    let mut gateway = start(dir.path(), steps.clone()).await;

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
    // Each step's activation names the run that caused it.
    let query = faas_api::ActivationQuery { function: Some("inc".into()), limit: Some(100), ..Default::default() };
    let records = steps.activations(query).await.unwrap();
    assert_eq!(records.len(), 20, "{records:?}");
    assert!(records.iter().all(|a| a.cause.as_deref() == Some("runs/count-1")), "{records:?}");
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

async fn send(method: reqwest::Method, url: &str, body: Option<&Value>) -> (u16, Value) {
    let mut request = client().request(method, url).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A composition registered with the gateway is run by its name; registering one checks its steps
/// against the registered functions (the JSON path named) before anything is saved; a run keeps the
/// program it started with when the composition is replaced or deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_compositions_run_by_name_and_unknown_steps_are_refused_at_registration() {
    use reqwest::Method;
    let (calls, _dir, mut gateway) = fixture().await;
    let url = |path: &str| format!("{}{path}", gateway.url);

    let count = program(seq([call("inc"), call("inc")]));
    let (status, registered) = send(Method::PUT, &url("/compositions/count"), Some(&count)).await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["steps"], json!(["inc"]), "{registered}");
    assert_eq!(registered["program"], count);
    let (status, _) = send(Method::PUT, &url("/compositions/count"), Some(&count)).await;
    assert_eq!(status, 200, "replaced");

    // Unknown steps, a malformed form and a bad name are refused, each named, and change nothing.
    let lost = program(seq([call("inc"), call("nowhere")]));
    let (status, body) = send(Method::PUT, &url("/compositions/lost"), Some(&lost)).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("/program/steps/1")), "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("composition `lost` calls `nowhere`, which is not a function registered"),
        "{body}"
    );
    let bad = json!({"faas": "composition/v1", "program": {"op": "call"}});
    let (status, body) = send(Method::PUT, &url("/compositions/bad"), Some(&bad)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("/program"), "{body}");
    let (status, body) = send(Method::PUT, &url("/compositions/a%20b"), Some(&count)).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("name")), "{body}");
    let (status, listed) = send(Method::GET, &url("/compositions"), None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> =
        listed["compositions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["count"], "{listed}");
    assert_eq!(send(Method::GET, &url("/compositions/lost"), None).await.0, 404);

    // Run by name.
    let (status, run) = post_run(&gateway.url, &json!({"composition": "count", "input": {"n": 5}, "wait": 30})).await;
    assert_eq!((status, &run["status"], &run["result"]), (200, &json!("succeeded"), &json!({"n": 7})), "{run}");
    let (status, body) = post_run(&gateway.url, &json!({"composition": "unknown", "input": 1})).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no composition `unknown` is registered"), "{body}");

    // A run started before the composition changes keeps its program.
    let slow = program(seq([call("inc"), wait(600), call("inc")]));
    assert_eq!(send(Method::PUT, &url("/compositions/slow"), Some(&slow)).await.0, 201);
    let (status, run) =
        post_run(&gateway.url, &json!({"composition": "slow", "input": {"n": 0}, "id": "slow-a"})).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(send(Method::PUT, &url("/compositions/slow"), Some(&program(call("fail")))).await.0, 200);
    let (status, _) = send(Method::DELETE, &url("/compositions/slow"), None).await;
    assert_eq!(status, 204);
    assert_eq!(send(Method::DELETE, &url("/compositions/slow"), None).await.0, 404);
    let (_, run) = get_run(&gateway.url, "slow-a", 30).await;
    assert_eq!((&run["status"], &run["result"]), (&json!("succeeded"), &json!({"n": 2})), "{run}");
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    // Listing filters by composition and status.
    let (_, failing) =
        post_run(&gateway.url, &json!({"composition": "broken", "program": program(call("fail")), "wait": 30})).await;
    assert_eq!(failing["status"], "failed", "{failing}");
    let (status, listed) = send(Method::GET, &url("/runs?composition=count"), None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["runs"].as_array().unwrap().len(), 1, "{listed}");
    let (_, listed) = send(Method::GET, &url("/runs?status=failed"), None).await;
    let ids: Vec<&Value> = listed["runs"].as_array().unwrap().iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&failing["id"]], "{listed}");
    let (status, body) = send(Method::GET, &url("/runs?status=sleeping"), None).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("status")), "{body}");
    let anonymous = client().get(url("/compositions")).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401, "the compositions need the management token");
    gateway.stop().await;
}

async fn post_event(url: &str, event: &Value) -> (u16, Value) {
    let response = client()
        .post(format!("{url}/"))
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls the run until `done` holds of its record (at most 20 s).
async fn until(url: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, run) = get_run(url, id, 0).await;
        if done(&run) || std::time::Instant::now() > deadline {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `await_event`: the run waits, costing nothing, until an event accepted at ingress matches its
/// filter; the event (structured JSON) is the value it goes on with. Events that do not match are
/// ignored, the first matching one answers, and a wait that no event answers ends in `timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waits_for_a_matching_event_from_ingress() {
    let (calls, _dir, mut gateway) = fixture().await;
    let filter = faas_api::EventFilter::new().event_type("com.example.paid").subject("order-7");
    let paid = program(seq([
        call("inc"),
        await_event(filter.clone(), 20_000),
        value(object([("n", pointer("/data/n"))])),
        call("inc"),
    ]));
    let (status, run) =
        post_run(&gateway.url, &json!({"composition": "paid", "program": paid, "input": {"n": 0}, "id": "pay-1"}))
            .await;
    assert_eq!(status, 201, "{run}");
    let run = until(&gateway.url, "pay-1", |r| r["current"].as_str().is_some_and(|c| c.starts_with("await"))).await;
    assert_eq!(run["current"], "await type=com.example.paid subject=order-7", "{run}");

    // Not this one: another subject, another type.
    for (ty, subject) in [("com.example.paid", "order-8"), ("com.example.refund", "order-7")] {
        let event = json!({"specversion": "1.0", "id": format!("{ty}-{subject}"), "source": "/shop", "type": ty,
                           "subject": subject, "data": {"n": 100}});
        let (status, body) = post_event(&gateway.url, &event).await;
        assert_eq!((status, &body["accepted"]), (202, &json!(1)), "{body}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, run) = get_run(&gateway.url, "pay-1", 0).await;
    assert_eq!(run["status"], "running", "{run}");

    // This one, in a batch with a second match: the first answers; `accepted` counts events only.
    let batch = json!([
        {"specversion": "1.0", "id": "p1", "source": "/shop", "type": "com.example.paid", "subject": "order-7", "data": {"n": 41}},
        {"specversion": "1.0", "id": "p2", "source": "/shop", "type": "com.example.paid", "subject": "order-7", "data": {"n": 99}}
    ]);
    let response = client()
        .post(format!("{}/", gateway.url))
        .header("content-type", "application/cloudevents-batch+json")
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"accepted": 2, "duplicates": 0}));
    let (_, run) = get_run(&gateway.url, "pay-1", 30).await;
    assert_eq!((&run["status"], &run["result"]), (&json!("succeeded"), &json!({"n": 42})), "{run}");
    let steps: Vec<(&str, &str)> = run["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["function"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("inc", "ok"), ("await", "ok"), ("inc", "ok")], "{run}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // No event comes: the run fails with `timeout`, naming what it waited for.
    let lonely =
        program(seq([await_event(faas_api::EventFilter::new().event_type("com.example.never"), 300), call("inc")]));
    let (status, run) = post_run(&gateway.url, &json!({"composition": "lonely", "program": lonely, "wait": 30})).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!((&run["status"], &run["error"]["kind"]), (&json!("failed"), &json!("timeout")), "{run}");
    assert!(run["error"]["errorMessage"].as_str().unwrap().contains("type=com.example.never"), "{run}");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the step after the timeout never ran");
    gateway.stop().await;
}

/// An express run is done in memory and answered: the same outcome as a durable run, nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn express_runs_answer_in_memory_and_store_nothing() {
    let (calls, _dir, mut gateway) = fixture().await;
    let count = program(seq([call("inc"), wait(50), call("inc"), call("inc")]));
    let (status, run) = post_run(
        &gateway.url,
        &json!({"composition": "count", "program": count, "input": {"n": 1}, "mode": "express"}),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(
        (&run["status"], &run["result"], &run["steps"]),
        (&json!("succeeded"), &json!({"n": 4}), &json!(4)),
        "{run}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let (status, run) = post_run(
        &gateway.url,
        &json!({"composition": "broken", "program": program(seq([call("fail"), call("inc")])), "mode": "express"}),
    )
    .await;
    assert_eq!(
        (status, &run["status"], &run["error"]["errorType"]),
        (200, &json!("failed"), &json!("OutOfStock")),
        "{run}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3, "the step after the failure never ran");
    let (_, listed) = send(reqwest::Method::GET, &format!("{}/runs", gateway.url), None).await;
    assert_eq!(listed["runs"], json!([]), "express runs are not stored: {listed}");
    for (body, field) in [
        (json!({"composition": "c", "program": program(call("inc")), "mode": "express", "id": "x"}), "id"),
        (json!({"composition": "c", "program": program(call("inc")), "mode": "fast"}), "mode"),
    ] {
        let (status, answer) = post_run(&gateway.url, &body).await;
        assert_eq!((status, answer["field"].as_str()), (400, Some(field)), "{answer}");
    }
    gateway.stop().await;
}

/// A subscription whose sink is `composition:NAME` starts one durable run per event, the event as its
/// input; the same event delivered again (or sent again) starts no second run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_to_a_composition_starts_one_run_per_event() {
    use reqwest::Method;
    let (calls, _dir, mut gateway) = fixture().await;
    let url = |path: &str| format!("{}{path}", gateway.url);
    let on_order = program(seq([value(object([("n", pointer("/data/n"))])), call("inc")]));
    assert_eq!(send(Method::PUT, &url("/compositions/on-order"), Some(&on_order)).await.0, 201);
    let (status, sub) = send(
        Method::POST,
        &url("/subscriptions"),
        Some(&json!({"types": ["com.example.order"], "sink": "composition:on-order"})),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let (status, body) = send(
        Method::POST,
        &url("/subscriptions"),
        Some(&json!({"sink": "composition:on-order", "protocolsettings": {"headers": {"x-a": "1"}}})),
    )
    .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("protocolsettings.headers")), "{body}");

    for i in [10, 20] {
        let event = json!({"specversion": "1.0", "id": format!("order-{i}"), "source": "/shop", "type": "com.example.order", "data": {"n": i}});
        assert_eq!(post_event(&gateway.url, &event).await.0, 202);
        assert_eq!(post_event(&gateway.url, &event).await.1["duplicates"], 1, "sent twice, received once");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let runs = loop {
        let (_, listed) = send(Method::GET, &url("/runs?composition=on-order&status=succeeded"), None).await;
        let runs = listed["runs"].as_array().unwrap().clone();
        if runs.len() >= 2 || std::time::Instant::now() > deadline {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut results: Vec<u64> = runs.iter().map(|r| r["result"]["n"].as_u64().unwrap()).collect();
    results.sort();
    assert_eq!(results, [11, 21], "{runs:?}");
    assert!(runs.iter().all(|r| r["id"].as_str().unwrap().starts_with("event-")), "{runs:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one run per event");
    gateway.stop().await;
}
