//! The runner end to end against the local OpenWhisk: a real faas app binary (fixture/main.rs,
//! whose main is `faas::serve`) is packaged as a native action zip and deployed through
//! `OpenWhiskRunner` over the controller's REST API, on 127.0.0.1; then invoked blocking (and
//! past the blocking wait, which the runner polls), non-blocking, through a trigger and rule
//! made from a CloudEvent subscription, and as a web action for a declared route; redeployed
//! unchanged; and removed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use faas_api::{
    ActivationQuery, AppSpec, BackendProfile, Config, ErrorKind, EventFilter, InvokeMode, InvokeRequest, NoProgress,
    Payload, Runner, Trigger,
};
use faas_emulator_openwhisk::{Emulator, EmulatorOptions};
use faas_runner_openwhisk::deploy::{trigger_name, OpenWhiskRunner};
use serde_json::{json, Value};

mod common;
use common::fixture;

const APP: &str = "fixture";

/// The fixture app with `hello` subscribed to `subscription` (when given) and `echo` on the
/// route `POST /echo`.
async fn app_spec(subscription: Option<&str>) -> AppSpec {
    let binary = fixture();
    let manifest = faas_packaging::build::describe(&binary).await.unwrap();
    let mut config = Config::default_for(APP);
    config.functions.entry("slow".into()).or_default().timeout = Some(Duration::from_secs(10));
    let mut spec = AppSpec::from_parts(&config, binary, manifest).unwrap();
    for f in &mut spec.functions {
        match f.name.as_str() {
            "hello" => {
                if let Some(t) = subscription {
                    f.triggers.push(Trigger::Event { filter: EventFilter::new().event_type(t) });
                }
            }
            "echo" => f.triggers.push(Trigger::Http { method: Some("POST".into()), route: "/echo".into() }),
            _ => {}
        }
    }
    spec
}

async fn start(max_blocking_wait: Duration) -> (Emulator, Arc<OpenWhiskRunner>) {
    let options = EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), max_blocking_wait, ..Default::default() };
    let emulator = faas_emulator_openwhisk::start(options).await.unwrap();
    let profile = BackendProfile::new("ow", "openwhisk")
        .with("endpoint", emulator.url())
        .with("auth", format!("file:{}", emulator.auth_file().display()))
        .with("package", APP);
    let runner = OpenWhiskRunner::from_profile(&profile).unwrap();
    (emulator, runner)
}

async fn deploy(runner: &OpenWhiskRunner, spec: &AppSpec) -> faas_api::DeployReport {
    let package = runner.package(spec, &NoProgress).await.unwrap();
    runner.deploy(&package, &NoProgress).await.unwrap()
}

/// The controller's REST API, called by hand.
fn rest(emulator: &Emulator, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    let (user, key) = emulator.auth().split_once(':').unwrap();
    reqwest::Client::new()
        .request(method, format!("{}/api/v1/namespaces/guest/{path}", emulator.url()))
        .basic_auth(user, Some(key))
}

async fn get(emulator: &Emulator, path: &str) -> (u16, Value) {
    let resp = rest(emulator, reqwest::Method::GET, path).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

fn sync(function: &str, v: Value) -> InvokeRequest {
    InvokeRequest::new(function, Payload::json(&v).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_invoke_and_redeploy_unchanged() {
    let (emulator, runner) = start(Duration::from_millis(300)).await;
    let spec = app_spec(None).await;
    let first = deploy(&runner, &spec).await;
    assert_eq!(first.created.len(), spec.functions.len(), "{first:?}");
    let again = deploy(&runner, &spec).await;
    assert!(again.created.is_empty() && again.updated.is_empty(), "{again:?}");
    assert_eq!(again.unchanged.len(), spec.functions.len());
    let (status, action) = get(&emulator, "actions/fixture/hello").await;
    assert_eq!(status, 200);
    let annotations = action["annotations"].as_array().unwrap();
    assert!(annotations.iter().any(|a| a["key"] == "faas:digest"), "{action}");

    let reply = runner.invoke(sync("hello", json!({"name": "Ada"}))).await.unwrap();
    assert_eq!(reply.payload.json_as::<Value>().unwrap(), json!({"greeting": "Hello, Ada!"}));
    // Past the emulator's 300 ms blocking wait the controller answers 202; the runner polls the
    // activation to its end.
    let started = Instant::now();
    let slow = runner.invoke(sync("slow", json!({"ms": 1200}))).await.unwrap();
    assert_eq!(slow.payload.json_as::<Value>().unwrap(), json!({"slept": true}));
    assert!(started.elapsed() >= Duration::from_millis(1200));
    // Non-blocking: an id at once, the record later.
    let req = InvokeRequest { mode: InvokeMode::Async, ..sync("hello", json!({"name": "async"})) };
    let id = runner.invoke(req).await.unwrap().activation_id;
    assert_eq!(id.len(), 32, "{id}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let query = ActivationQuery { id: Some(id.clone()), ..Default::default() };
        if let Some(a) = runner.activations(query).await.unwrap().pop() {
            break a;
        }
        assert!(Instant::now() < deadline, "activation {id} never recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(record.function, "hello");

    let gone = runner.remove("nope").await.unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound, "{gone}");
    assert!(gone.message().contains("fixture/nope"), "{gone}");
    runner.remove("hello").await.unwrap();
    let names: Vec<String> = runner.list().await.unwrap().into_iter().map(|f| f.spec.name).collect();
    assert!(!names.contains(&"hello".to_string()) && names.contains(&"echo".to_string()), "{names:?}");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_a_trigger_and_a_rule() {
    let (emulator, runner) = start(Duration::from_secs(60)).await;
    let trigger = trigger_name(APP, &EventFilter::new().event_type("order.created"));
    assert_eq!(trigger, "fixture-order.created");
    let rule = format!("{trigger}-to-hello");
    // A trigger of that name that is not the app's is never taken over; nothing is deployed.
    let resp = rest(&emulator, reqwest::Method::PUT, &format!("triggers/{trigger}")).json(&json!({})).send().await;
    assert_eq!(resp.unwrap().status().as_u16(), 200);
    let package = runner.package(&app_spec(Some("order.created")).await, &NoProgress).await.unwrap();
    let refused = runner.deploy(&package, &NoProgress).await.unwrap_err();
    assert!(refused.message().contains("a trigger named `fixture-order.created` exists"), "{refused}");
    assert_eq!(get(&emulator, "actions/fixture/hello").await.0, 404, "nothing deployed");
    let resp = rest(&emulator, reqwest::Method::DELETE, &format!("triggers/{trigger}")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    deploy(&runner, &app_spec(Some("order.created")).await).await;
    let (status, t) = get(&emulator, &format!("triggers/{trigger}")).await;
    assert_eq!(status, 200, "{t}");
    let filter = t["annotations"].as_array().unwrap().iter().find(|a| a["key"] == "faas:filter").cloned();
    assert_eq!(filter.unwrap()["value"], json!({"type": "order.created"}));
    let (status, r) = get(&emulator, &format!("rules/{rule}")).await;
    assert_eq!((status, r["status"].as_str()), (200, Some("active")), "{r}");
    assert_eq!(r["action"], json!({"name": "hello", "path": "guest/fixture"}));

    // Firing the trigger activates the subscribed action with the trigger's payload.
    let fired = rest(&emulator, reqwest::Method::POST, &format!("triggers/{trigger}"))
        .json(&json!({"name": "Trigger"}))
        .send()
        .await
        .unwrap();
    assert_eq!(fired.status().as_u16(), 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, seen) = get(&emulator, "activations?name=fixture/hello&docs=true").await;
        let results: Vec<&Value> = seen.as_array().into_iter().flatten().map(|a| &a["response"]["result"]).collect();
        if results.contains(&&json!({"greeting": "Hello, Trigger!"})) {
            break;
        }
        assert!(Instant::now() < deadline, "the rule never ran `hello`: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The same declaration again changes nothing; dropping the subscription deletes both.
    deploy(&runner, &app_spec(Some("order.created")).await).await;
    let (_, r2) = get(&emulator, &format!("rules/{rule}")).await;
    assert_eq!(r2["version"], r["version"], "the rule was not rewritten");
    deploy(&runner, &app_spec(None).await).await;
    assert_eq!(get(&emulator, &format!("rules/{rule}")).await.0, 404);
    assert_eq!(get(&emulator, &format!("triggers/{trigger}")).await.0, 404);

    // Removing a subscribed function removes its rule and the trigger left unused.
    deploy(&runner, &app_spec(Some("order.created")).await).await;
    runner.remove("hello").await.unwrap();
    assert_eq!(get(&emulator, &format!("rules/{rule}")).await.0, 404);
    assert_eq!(get(&emulator, &format!("triggers/{trigger}")).await.0, 404);
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_route_is_a_web_action() {
    let (emulator, runner) = start(Duration::from_secs(60)).await;
    deploy(&runner, &app_spec(None).await).await;
    let url = format!("{}/api/v1/web/guest/{APP}/echo", emulator.url());
    let http = reqwest::Client::new();
    // No API key: a web action is public.
    let resp = http.post(&url).header("content-type", "text/plain").body("hi there").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert_eq!(resp.text().await.unwrap(), "hi there");
    let bytes: Vec<u8> = (0..=255u8).collect();
    let resp =
        http.post(&url).header("content-type", "application/octet-stream").body(bytes.clone()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &bytes[..]);
    // JSON both ways: OpenWhisk passes a raw `application/json` body base64-encoded.
    let resp = http.post(&url).header("content-type", "application/json").body(r#"{"a":[1,2]}"#).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"a": [1, 2]}));
    let resp = http.post(&url).header("content-type", "application/json").body("null").send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "null");
    // A method the route does not take: 405 naming the one it does, the function not run.
    let before = runner.activations(ActivationQuery { function: Some("echo".into()), ..Default::default() });
    let before = before.await.unwrap().len();
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errorType"], "MethodNotAllowed", "{body}");
    let after = runner.activations(ActivationQuery { function: Some("echo".into()), ..Default::default() });
    assert_eq!(after.await.unwrap().len(), before + 1, "a refused call is one activation, of the host's answer");
    // A function without routes is not exported.
    let hello = http.post(format!("{}/api/v1/web/guest/{APP}/hello", emulator.url())).send().await.unwrap();
    assert_eq!(hello.status().as_u16(), 404);
    emulator.shutdown().await;
}

/// A caller's trace context travels in the faas envelope, which only a faas action unwraps: an
/// action made by hand (here a Python ActionLoop `exec` without the `faas:function` annotation)
/// gets its parameters as they were sent, traced or not, while a faas function still sees the
/// trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_faas_actions_get_the_envelope_a_traceparent_travels_in() {
    let (emulator, runner) = start(Duration::from_secs(60)).await;
    deploy(&runner, &app_spec(None).await).await;
    let python = String::from_utf8(
        std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 runs")
            .stdout,
    )
    .unwrap();
    // An ActionLoop child gets no PATH: the shebang names python3 by its full path.
    let script = format!(
        "#!{}\nimport json, os, sys\nout = os.fdopen(3, 'w')\nif os.environ.get('__OW_WAIT_FOR_ACK'):\n    \
         out.write(json.dumps({{'ok': True}}) + '\\n'); out.flush()\nfor line in sys.stdin:\n    \
         out.write(json.dumps({{'got': json.loads(line).get('value')}}) + '\\n'); out.flush()\n",
        python.trim()
    );
    let zip =
        faas_packaging::zip::zip_bytes(vec![faas_packaging::zip::Entry::bytes("exec", script.into_bytes(), 0o755)])
            .unwrap();
    use base64::Engine;
    let code = base64::engine::general_purpose::STANDARD.encode(zip);
    let body = json!({"exec": {"kind": "go:1.24", "code": code, "binary": true}});
    let resp = rest(&emulator, reqwest::Method::PUT, &format!("actions/{APP}/plain")).json(&body).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());

    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = InvokeRequest { traceparent: Some(tp.into()), ..sync("plain", json!({"name": "Ada"})) };
    let out = runner.invoke(traced).await.unwrap();
    let v: Value = serde_json::from_slice(out.payload.body()).unwrap();
    assert_eq!(v, json!({"got": {"name": "Ada"}}), "the plain action got its parameters as sent");

    // A faas function still sees the caller's trace.
    let traced = InvokeRequest { traceparent: Some(tp.into()), ..sync("facts", json!({})) };
    let facts: Value = serde_json::from_slice(runner.invoke(traced).await.unwrap().payload.body()).unwrap();
    assert_eq!(facts["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{facts}");
    emulator.shutdown().await;
}
