//! The HTTP front over real sockets on 127.0.0.1, backed by the in-process local runner,
//! exercised with reqwest, raw TCP and `FrontClient`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use faas_api::cloudevents::{AttributesReader as _, Event};
use faas_api::{
    ActivationQuery, ActivationStatus, App, Context, Error, ErrorKind, EventFilter, FunctionSpec, HandlerKind,
    InvokeMode, InvokeRequest, NoProgress, Package, Payload, Runner, Trigger,
};
use faas_front::client::FrontClient;
use faas_front::{Front, FrontOptions, bind};
use faas_runner_local::{LocalOptions, LocalRunner};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(Deserialize)]
struct Hello {
    name: String,
}

#[derive(Serialize)]
struct Reply {
    message: String,
}

async fn hello(cx: Context, req: Hello) -> Result<Reply, Error> {
    cx.logger().info(format!("greeting {}", req.name));
    Ok(Reply { message: format!("Hello, {}!", req.name) })
}

async fn echo(_cx: Context, p: Payload) -> Result<Payload, Error> {
    Ok(p)
}

async fn fail(_cx: Context, msg: String) -> Result<Value, Error> {
    Err(Error::function("ProbeError", msg))
}

#[derive(Deserialize)]
struct Sleep {
    ms: u64,
}

async fn sleep(_cx: Context, req: Sleep) -> Result<Value, Error> {
    tokio::time::sleep(Duration::from_millis(req.ms)).await;
    Ok(json!({ "slept": req.ms }))
}

async fn boom(_cx: Context, _v: Value) -> Result<Value, Error> {
    panic!("probe panic");
}

async fn user(_cx: Context, p: Payload) -> Result<Payload, Error> {
    Ok(Payload::new(format!("user route got {} bytes", p.len()), Some("text/plain".into())))
}

async fn trace(cx: Context, _v: Value) -> Result<Value, Error> {
    Ok(json!({ "traceId": cx.trace().trace_id() }))
}

async fn version(cx: Context, _v: Value) -> Result<Value, Error> {
    Ok(json!({ "version": cx.var("VERSION") }))
}

struct Harness {
    front: Front,
    runner: Arc<LocalRunner>,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<String>>>,
    traces: Arc<Mutex<Vec<String>>>,
}

impl Harness {
    async fn start() -> Harness {
        Self::start_with(FrontOptions { addr: "127.0.0.1:0".parse().unwrap(), ..FrontOptions::default() }).await
    }

    async fn start_with(options: FrontOptions) -> Harness {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let traces = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let trace_sink = traces.clone();
        let on_order = move |cx: Context, e: Event| {
            let sink = sink.clone();
            let trace_sink = trace_sink.clone();
            async move {
                sink.lock().unwrap().push(format!("{} {}", e.ty(), e.id()));
                trace_sink.lock().unwrap().push(cx.trace().trace_id().to_string());
                Ok::<_, Error>(None)
            }
        };
        let app = App::new()
            .function("hello", hello)
            .raw("echo", echo)
            .function("fail", fail)
            .function("sleep", sleep)
            .function("boom", boom)
            .raw("user", user)
            .route("user", "GET", "/users/{id}")
            .function("version", version)
            .function("trace", trace)
            .event("on_order", on_order)
            .subscribe("on_order", EventFilter::new().event_type("order.*"));
        let runner = LocalRunner::in_process(app, LocalOptions::default()).expect("in-process runner");
        let front = bind(runner.clone(), options).await.expect("bind");
        Harness { front, runner, http: reqwest::Client::new(), seen, traces }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.front.url())
    }

    async fn client(&self) -> FrontClient {
        FrontClient::connect(&self.front.url(), Some(self.front.token().to_string())).await.expect("connect")
    }

    async fn post(&self, path: &str, body: &'static str) -> reqwest::Response {
        self.http.post(self.url(path)).header("content-type", "application/json").body(body).send().await.unwrap()
    }
}

/// The error JSON of a response, after checking status and `faas-error`.
async fn expect_error(resp: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    assert_eq!(resp.headers().get("faas-error").map(|v| v.to_str().unwrap()), Some(kind), "faas-error header");
    assert_eq!(resp.headers().get("content-type").unwrap(), "application/json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["kind"], kind, "{v}");
    v
}

/// Writes `request` on a fresh connection and returns the status line and body of the answer.
/// The timeout only guards against a hang (a server waiting for the body it was promised).
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                    return (head.lines().next().unwrap().to_string(), body);
                }
            }
            let n = stream.read(&mut chunk).await.expect("read the response");
            assert!(n > 0, "connection closed before a full response: {:?}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read).await.expect("the server answered without waiting for the body")
}

async fn wait_for_activation(client: &FrontClient, id: &str) -> faas_api::Activation {
    for _ in 0..200 {
        let found =
            client.activations(ActivationQuery { id: Some(id.to_string()), ..Default::default() }).await.unwrap();
        if let Some(a) = found.into_iter().find(|a| a.status != ActivationStatus::Pending) {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("activation {id} never completed");
}

fn spec(name: &str, handler: HandlerKind) -> FunctionSpec {
    let mut s = FunctionSpec::new(name);
    s.handler = handler;
    s
}

fn package(functions: Vec<FunctionSpec>) -> Package {
    Package { app: "test".into(), artifact: "in-process".into(), size: 0, functions }
}

#[tokio::test]
async fn typed_function_replies_with_json_and_an_activation_id() {
    let h = Harness::start().await;
    let resp = h.post("/functions/hello", r#"{"name":"Ada"}"#).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-type").unwrap(), "application/json");
    let id = resp.headers().get("faas-activation-id").expect("activation id").to_str().unwrap().to_string();
    assert!(!id.is_empty());
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"message": "Hello, Ada!"}));

    // The same invocation is in the activation log under that id.
    let client = h.client().await;
    let a = client.activations(ActivationQuery { id: Some(id.clone()), ..Default::default() }).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].function, "hello");
    assert_eq!(a[0].status, ActivationStatus::Success);
}

#[tokio::test]
async fn raw_function_gets_bytes_and_content_type_unchanged() {
    let h = Harness::start().await;
    let all: Vec<u8> = (0..=255u8).collect();
    let resp = h
        .http
        .post(h.url("/functions/echo"))
        .header("content-type", "application/octet-stream")
        .body(all.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-type").unwrap(), "application/octet-stream");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), all.as_slice());

    // No content type in, none out.
    let resp = h.http.post(h.url("/functions/echo")).body("plain").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-type").is_none());
    assert_eq!(resp.text().await.unwrap(), "plain");
}

#[tokio::test]
async fn malformed_json_is_400_naming_the_parse_error() {
    let h = Harness::start().await;
    let v = expect_error(h.post("/functions/hello", r#"{"name": }"#).await, 400, "bad_input").await;
    let msg = v["errorMessage"].as_str().unwrap();
    assert!(msg.contains("malformed JSON") && msg.contains("line 1 column 10"), "{msg}");

    let v = expect_error(h.post("/functions/hello", r#"{"nom":"Ada"}"#).await, 400, "bad_input").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("missing field `name`"), "{v}");
}

#[tokio::test]
async fn unknown_and_invalid_function_names() {
    let h = Harness::start().await;
    let v = expect_error(h.post("/functions/nope", "{}").await, 404, "not_found").await;
    let msg = v["errorMessage"].as_str().unwrap();
    assert!(msg.contains("`nope`") && msg.contains("known functions:") && msg.contains("hello"), "{msg}");

    let v = expect_error(h.post("/functions/bad.name", "{}").await, 400, "bad_input").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("contains `.`"), "{v}");
    let long = format!("/functions/{}", "a".repeat(100));
    let resp = h.http.post(h.url(&long)).body("{}").send().await.unwrap();
    let v = expect_error(resp, 400, "bad_input").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("limit is 64"), "{v}");
}

#[tokio::test]
async fn content_length_over_the_limit_is_413_before_the_body_is_read() {
    let h = Harness::start().await;
    // Claims 100 MB, sends 10 bytes and keeps the connection open: only an answer that does not
    // wait for the body can arrive.
    let request = b"POST /functions/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n0123456789";
    let (status, body) = raw_exchange(h.front.local_addr(), request).await;
    assert!(status.contains(" 413 "), "{status}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["kind"], "payload_too_large");
    let msg = v["errorMessage"].as_str().unwrap();
    assert!(msg.contains("100000000 bytes") && msg.contains("limit is 6291456 bytes"), "{msg}");

    // `Expect: 100-continue` gets the 413 instead of an invitation to send.
    let request =
        b"POST /functions/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 7000000\r\n\r\n";
    let (status, _) = raw_exchange(h.front.local_addr(), request).await;
    assert!(status.contains(" 413 "), "{status}");

    // The function never ran.
    let client = h.client().await;
    let echoed =
        client.activations(ActivationQuery { function: Some("echo".into()), ..Default::default() }).await.unwrap();
    assert!(echoed.is_empty(), "{echoed:?}");
}

#[tokio::test]
async fn oversized_bodies_are_413_with_size_and_limit() {
    let h =
        Harness::start_with(FrontOptions { addr: "127.0.0.1:0".parse().unwrap(), token: None, max_body: 1024 }).await;
    // Declared length.
    let resp = h.http.post(h.url("/functions/echo")).body(vec![b'x'; 2048]).send().await.unwrap();
    let v = expect_error(resp, 413, "payload_too_large").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("2048 bytes"), "{v}");

    // Chunked, so the size is only known by reading: cut off at the limit.
    let mut request = b"POST /functions/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        request.extend_from_slice(b"400\r\n");
        request.extend_from_slice(&[b'y'; 1024]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = raw_exchange(h.front.local_addr(), &request).await;
    assert!(status.contains(" 413 "), "{status}");
    assert!(body.contains("over the limit of 1024 bytes"), "{body}");

    // Exactly at the limit is fine.
    let resp = h.http.post(h.url("/functions/echo")).body(vec![b'z'; 1024]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), 1024);

    // Events and deploys have the same limit.
    let resp = h.http.post(h.url("/events")).body(vec![b'x'; 2048]).send().await.unwrap();
    expect_error(resp, 413, "payload_too_large").await;
}

#[tokio::test]
async fn function_error_is_500_with_its_type_and_panic_is_502_then_service_continues() {
    let h = Harness::start().await;
    let v = expect_error(h.post("/functions/fail", r#""boom""#).await, 500, "function").await;
    assert_eq!(v["errorType"], "ProbeError");
    assert_eq!(v["errorMessage"], "boom");

    let v = expect_error(h.post("/functions/boom", "{}").await, 502, "crash").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("probe panic"), "{v}");
    let resp = h.post("/functions/hello", r#"{"name":"again"}"#).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["message"], "Hello, again!");
}

#[tokio::test]
async fn deadline_is_504_after_deploying_a_short_timeout_through_the_client() {
    let h = Harness::start().await;
    let client = h.client().await;
    let mut s = spec("sleep", HandlerKind::Typed);
    s.timeout = Duration::from_millis(200);
    let report = client.deploy(&package(vec![s]), &NoProgress).await.unwrap();
    assert_eq!(report.updated, vec!["sleep".to_string()]);
    let listed = client.list().await.unwrap();
    let sleep_info = listed.iter().find(|f| f.spec.name == "sleep").unwrap();
    assert_eq!(sleep_info.spec.timeout, Duration::from_millis(200));

    let v = expect_error(h.post("/functions/sleep", r#"{"ms": 5000}"#).await, 504, "timeout").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("timed out"), "{v}");
    // Through the client the same error comes back typed.
    let err =
        client.invoke(InvokeRequest::new("sleep", Payload::json(&json!({"ms": 5000})).unwrap())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    // And a short call still works.
    let resp = h.post("/functions/sleep", r#"{"ms": 1}"#).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn async_invocation_is_202_and_shows_up_in_the_activation_log() {
    let h = Harness::start().await;
    let resp = h
        .http
        .post(h.url("/functions/hello"))
        .header("faas-invoke-mode", "async")
        .body(r#"{"name":"later"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let header_id = resp.headers().get("faas-activation-id").unwrap().to_str().unwrap().to_string();
    let v: Value = resp.json().await.unwrap();
    let id = v["activationId"].as_str().unwrap().to_string();
    assert_eq!(id, header_id);

    let client = h.client().await;
    let done = wait_for_activation(&client, &id).await;
    assert_eq!(done.status, ActivationStatus::Success);
    assert_eq!(done.mode, InvokeMode::Async);

    // Listed by function, newest first, over plain HTTP with the token.
    let list: Vec<Value> = h
        .http
        .get(h.url("/_faas/activations?function=hello&limit=5"))
        .bearer_auth(h.front.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.iter().any(|a| a["id"] == id.as_str()), "{list:?}");
    assert!(list.iter().all(|a| a["function"] == "hello"));

    let one: Value = h
        .http
        .get(h.url(&format!("/_faas/activations/{id}")))
        .bearer_auth(h.front.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], id.as_str());
    let resp = h.http.get(h.url("/_faas/activations/no-such-id")).bearer_auth(h.front.token()).send().await.unwrap();
    expect_error(resp, 404, "not_found").await;
    let resp = h.http.get(h.url("/_faas/activations?limit=99999")).bearer_auth(h.front.token()).send().await.unwrap();
    let v = expect_error(resp, 400, "bad_input").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("`limit`"), "{v}");
    let resp = h.http.get(h.url("/_faas/activations?colour=red")).bearer_auth(h.front.token()).send().await.unwrap();
    let v = expect_error(resp, 400, "bad_input").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("colour"), "{v}");

    // Through the client.
    let invoked = client
        .invoke(InvokeRequest {
            mode: InvokeMode::Async,
            ..InvokeRequest::new("hello", Payload::json(&json!({"name":"c"})).unwrap())
        })
        .await
        .unwrap();
    assert!(!invoked.activation_id.is_empty());
    assert_eq!(wait_for_activation(&client, &invoked.activation_id).await.status, ActivationStatus::Success);
}

#[tokio::test]
async fn dry_run_log_tail_and_bad_mode_headers() {
    let h = Harness::start().await;
    let resp = h
        .http
        .post(h.url("/functions/hello"))
        .header("faas-invoke-mode", "dry-run")
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = h.http.post(h.url("/functions/nope")).header("faas-invoke-mode", "dry-run").send().await.unwrap();
    expect_error(resp, 404, "not_found").await;

    let resp = h
        .http
        .post(h.url("/functions/hello"))
        .header("faas-invoke-mode", "eventually")
        .body("{}")
        .send()
        .await
        .unwrap();
    let v = expect_error(resp, 400, "bad_input").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("faas-invoke-mode"), "{v}");

    let resp = h
        .http
        .post(h.url("/functions/hello"))
        .header("faas-log-type", "tail")
        .body(r#"{"name":"Logger"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let encoded = resp.headers().get("faas-log-result").expect("log result").to_str().unwrap();
    let logs = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap()).unwrap();
    assert!(logs.contains("greeting Logger"), "{logs}");

    let client = h.client().await;
    let invoked = client
        .invoke(InvokeRequest {
            with_logs: true,
            ..InvokeRequest::new("hello", Payload::json(&json!({"name":"Cli"})).unwrap())
        })
        .await
        .unwrap();
    assert!(invoked.logs.unwrap().iter().any(|l| l.contains("greeting Cli")));
    let dry = client
        .invoke(InvokeRequest { mode: InvokeMode::DryRun, ..InvokeRequest::new("hello", Payload::empty()) })
        .await
        .unwrap();
    assert!(dry.payload.is_empty());
}

#[tokio::test]
async fn declared_routes_match_method_and_segments() {
    let h = Harness::start().await;
    let resp = h.http.get(h.url("/users/42")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("faas-activation-id").is_some());
    assert_eq!(resp.headers().get("content-type").unwrap(), "text/plain");
    assert_eq!(resp.text().await.unwrap(), "user route got 0 bytes");

    let resp = h.http.post(h.url("/users/42")).body("x").send().await.unwrap();
    let v = expect_error(resp, 404, "not_found").await;
    let msg = v["errorMessage"].as_str().unwrap();
    assert!(msg.contains("`POST /users/42`") && msg.contains("GET /users/{id} → user"), "{msg}");

    let resp = h.http.get(h.url("/users/42/extra")).send().await.unwrap();
    expect_error(resp, 404, "not_found").await;

    // A fixed path with the wrong method.
    let resp = h.http.get(h.url("/functions/hello")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers().get("allow").unwrap(), "POST");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["errorType"], "MethodNotAllowed");
}

#[tokio::test]
async fn a_redeploy_is_seen_by_the_next_request() {
    let h = Harness::start().await;
    let client = h.client().await;
    let mut v1 = spec("version", HandlerKind::Typed);
    v1.env.insert("VERSION".into(), "1".into());
    client.deploy(&package(vec![v1.clone()]), &NoProgress).await.unwrap();
    let got: Value = h.post("/functions/version", "{}").await.json().await.unwrap();
    assert_eq!(got["version"], "1");

    let mut v2 = v1.clone();
    v2.env.insert("VERSION".into(), "2".into());
    let report = client.deploy(&package(vec![v2.clone()]), &NoProgress).await.unwrap();
    assert_eq!(report.updated, vec!["version".to_string()]);
    let got: Value = h.post("/functions/version", "{}").await.json().await.unwrap();
    assert_eq!(got["version"], "2");
    // Deploying the same again changes nothing.
    let report = client.deploy(&package(vec![v2]), &NoProgress).await.unwrap();
    assert_eq!(report.unchanged, vec!["version".to_string()]);

    // Moving a route: the old path is gone, the new one answers, at once.
    let mut u = spec("user", HandlerKind::Raw);
    u.triggers.push(Trigger::Http { method: Some("GET".into()), route: "/people/{id}".into() });
    client.deploy(&package(vec![u]), &NoProgress).await.unwrap();
    assert_eq!(h.http.get(h.url("/people/7")).send().await.unwrap().status(), 200);
    assert_eq!(h.http.get(h.url("/users/7")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn deploy_refuses_bad_packages_and_changes_nothing() {
    let h = Harness::start().await;
    let token = h.front.token().to_string();
    let before: Value =
        h.http.get(h.url("/_faas/functions")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();

    let resp = h.http.post(h.url("/_faas/deploy")).bearer_auth(&token).body("{not json").send().await.unwrap();
    let v = expect_error(resp, 400, "bad_input").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("not a valid package"), "{v}");

    let bad_name = serde_json::to_vec(&package(vec![spec("a/b", HandlerKind::Typed)])).unwrap();
    let resp = h.http.post(h.url("/_faas/deploy")).bearer_auth(&token).body(bad_name).send().await.unwrap();
    expect_error(resp, 400, "bad_input").await;

    // A function this in-process app does not have.
    let unknown = serde_json::to_vec(&package(vec![spec("ghost", HandlerKind::Typed)])).unwrap();
    let resp = h.http.post(h.url("/_faas/deploy")).bearer_auth(&token).body(unknown).send().await.unwrap();
    assert_eq!(resp.status(), 404);

    let after: Value =
        h.http.get(h.url("/_faas/functions")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn events_in_binary_structured_and_batch_mode_reach_subscribers() {
    let h = Harness::start().await;
    // Binary mode.
    let resp = h
        .http
        .post(h.url("/events"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "b-1")
        .header("ce-source", "/shop")
        .header("ce-type", "order.created")
        .header("content-type", "application/json")
        .body(r#"{"total": 3}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let v: Value = resp.json().await.unwrap();
    let deliveries = v["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["function"], "on_order");
    assert!(!deliveries[0]["activationId"].as_str().unwrap().is_empty());

    // Structured mode.
    let resp = h
        .http
        .post(h.url("/events"))
        .header("content-type", "application/cloudevents+json")
        .body(r#"{"specversion":"1.0","id":"s-1","source":"/shop","type":"order.paid","data":{"x":1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.json::<Value>().await.unwrap()["deliveries"].as_array().unwrap().len(), 1);

    // Batch mode: one matching, one not.
    let resp = h
        .http
        .post(h.url("/events"))
        .header("content-type", "application/cloudevents-batch+json")
        .body(
            r#"[{"specversion":"1.0","id":"k-1","source":"/shop","type":"order.shipped"},
                {"specversion":"1.0","id":"k-2","source":"/shop","type":"user.created"}]"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["deliveries"].as_array().unwrap().len(), 1, "{v}");

    // Nothing subscribes: accepted, no deliveries.
    let resp = h
        .http
        .post(h.url("/events"))
        .header("content-type", "application/cloudevents+json")
        .body(r#"{"specversion":"1.0","id":"n-1","source":"/x","type":"user.deleted"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"deliveries": []}));

    // The handler saw exactly the three matching events.
    for _ in 0..200 {
        if h.seen.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut seen = h.seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, vec!["order.created b-1", "order.paid s-1", "order.shipped k-1"]);
}

#[tokio::test]
async fn invalid_events_are_refused_naming_the_problem() {
    let h = Harness::start().await;
    let resp = h
        .http
        .post(h.url("/events"))
        .header("ce-specversion", "1.0")
        .header("ce-source", "/shop")
        .header("ce-type", "order.created")
        .send()
        .await
        .unwrap();
    let v = expect_error(resp, 400, "bad_input").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("`id`"), "{v}");

    let resp = h
        .http
        .post(h.url("/events"))
        .header("content-type", "application/cloudevents+json")
        .body(r#"{"specversion":"1.0","source":"/shop","type":"order.created"}"#)
        .send()
        .await
        .unwrap();
    let v = expect_error(resp, 400, "bad_input").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("`id`"), "{v}");

    let resp = h
        .http
        .post(h.url("/events"))
        .header("content-type", "application/cloudevents+avro")
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["errorType"], "UnsupportedMediaType");
    assert!(v["errorMessage"].as_str().unwrap().contains("cloudevents+avro"), "{v}");

    // A batch with one bad event delivers none of them.
    let resp = h
        .http
        .post(h.url("/events"))
        .header("content-type", "application/cloudevents-batch+json")
        .body(r#"[{"specversion":"1.0","id":"ok","source":"/s","type":"order.a"},{"specversion":"1.0","source":"/s","type":"order.b"}]"#)
        .send()
        .await
        .unwrap();
    let v = expect_error(resp, 400, "bad_input").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("batch event 1"), "{v}");
    // A batch mixing spec versions is refused as a whole (one batch, one spec version).
    let resp = h
        .http
        .post(h.url("/events"))
        .header("content-type", "application/cloudevents-batch+json")
        .body(r#"[{"specversion":"1.0","id":"a","source":"/s","type":"order.a"},{"specversion":"0.3","id":"b","source":"/s","type":"order.b"}]"#)
        .send()
        .await
        .unwrap();
    let v = expect_error(resp, 400, "bad_input").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("mixes spec versions"), "{v}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(h.seen.lock().unwrap().is_empty());
}

/// Invalid attribute values over a valid event of a subscribed type, and what the refusal must say: the
/// attribute and the rule it breaks.
fn bad_attribute_values() -> Vec<(&'static str, Value, &'static [&'static str])> {
    vec![
        ("data_base64 not base64", json!({"data_base64": "%%%"}), &["`data_base64`", "base64", "RFC 4648"]),
        ("time not a timestamp", json!({"time": "yesterday"}), &["`time`", "RFC 3339", "`yesterday`"]),
        ("dataschema not a URI", json!({"dataschema": "not a uri"}), &["`dataschema`", "absolute URI"]),
        ("extension an object", json!({"myext": {"a": 1}}), &["`myext`", "a string, a boolean or an integer"]),
        ("extension a fraction", json!({"myext": 0.5}), &["`myext`", "a string, a boolean or an integer"]),
        ("datacontenttype a number", json!({"datacontenttype": 5}), &["`datacontenttype`", "string"]),
        ("id a number", json!({"id": 7}), &["`id`", "non-empty string"]),
        ("type null", json!({"type": null}), &["`type`"]),
        ("source with a space", json!({"source": "/my shop"}), &["`source`", "URI-reference"]),
        ("specversion a number", json!({"specversion": 1}), &["`specversion`", "`1.0`"]),
        ("subject a number", json!({"subject": 3}), &["`subject`", "string"]),
        ("subject empty", json!({"subject": ""}), &["`subject`", "non-empty string"]),
    ]
}

fn order_event(id: &str, attributes: &Value) -> Value {
    let mut e = json!({"specversion": "1.0", "id": id, "source": "/shop", "type": "order.created"});
    for (k, v) in attributes.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

#[tokio::test]
async fn invalid_attribute_values_are_refused_naming_the_attribute_and_the_rule() {
    let h = Harness::start().await;
    let post = |content_type: &'static str, body: String| {
        h.http.post(h.url("/events")).header("content-type", content_type).body(body).send()
    };
    for (name, attributes, says) in bad_attribute_values() {
        let resp = post("application/cloudevents+json", order_event("bad", &attributes).to_string()).await.unwrap();
        let v = expect_error(resp, 400, "bad_input").await;
        let message = v["errorMessage"].as_str().unwrap();
        for s in says {
            assert!(message.contains(s), "structured, {name}: {message:?} should mention {s:?}");
        }
        let batch =
            json!([order_event("ok-0", &json!({})), order_event("ok-1", &json!({})), order_event("bad", &attributes)]);
        let resp = post("application/cloudevents-batch+json", batch.to_string()).await.unwrap();
        let v = expect_error(resp, 400, "bad_input").await;
        let message = v["errorMessage"].as_str().unwrap();
        assert!(message.contains("batch event 2"), "batch, {name}: {message:?} should name the event");
        for s in says {
            assert!(message.contains(s), "batch, {name}: {message:?} should mention {s:?}");
        }
    }
    let binary: Vec<(&str, (&str, &str), &[&str])> = vec![
        ("ce-time", ("ce-time", "yesterday"), &["`time`", "`ce-time`", "RFC 3339"]),
        ("ce-dataschema", ("ce-dataschema", "not%20a%20uri"), &["`dataschema`", "`ce-dataschema`", "absolute URI"]),
        ("bad escape in an extension", ("ce-myext", "%zz"), &["`ce-myext`", "percent-encoding"]),
        ("invalid UTF-8 in an extension", ("ce-myext", "%FF"), &["`ce-myext`", "UTF-8"]),
    ];
    for (name, (header, value), says) in binary {
        let resp = h
            .http
            .post(h.url("/events"))
            .header("ce-specversion", "1.0")
            .header("ce-id", "bad-bin")
            .header("ce-source", "/shop")
            .header("ce-type", "order.created")
            .header(header, value)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let v = expect_error(resp, 400, "bad_input").await;
        let message = v["errorMessage"].as_str().unwrap();
        for s in says {
            assert!(message.contains(s), "binary, {name}: {message:?} should mention {s:?}");
        }
    }
    // None of them reached the subscriber, while a valid event with every optional attribute does.
    let good = order_event(
        "good",
        &json!({"time": "2018-04-05T17:31:00+02:00", "dataschema": "https://example.com/order.json", "subject": "o-1",
                "datacontenttype": "application/vnd.order+json; charset=utf-8", "data": {"n": 1}, "myext": 3, "myflag": false}),
    );
    let resp = post("application/cloudevents+json", good.to_string()).await.unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    for _ in 0..200 {
        if !h.seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.seen.lock().unwrap().clone(), vec!["order.created good"]);
}

#[tokio::test]
async fn management_needs_the_right_token() {
    let h = Harness::start().await;
    // Capabilities are public (read-only, not secret) so invocation-only clients can connect.
    let resp = h.http.get(h.url("/_faas/capabilities")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = h.http.get(h.url("/_faas/functions")).send().await.unwrap();
    assert_eq!(resp.headers().get("www-authenticate").unwrap(), "Bearer");
    let v = expect_error(resp, 401, "unauthorized").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("missing"), "{v}");

    let resp = h.http.get(h.url("/_faas/functions")).bearer_auth("not-the-token").send().await.unwrap();
    let v = expect_error(resp, 401, "unauthorized").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("wrong"), "{v}");
    assert!(!v.to_string().contains(h.front.token()), "the token is never echoed");

    for (method, path) in
        [("DELETE", "/_faas/functions/hello"), ("POST", "/_faas/deploy"), ("GET", "/_faas/activations")]
    {
        let resp = h.http.request(method.parse().unwrap(), h.url(path)).body("{}").send().await.unwrap();
        assert_eq!(resp.status(), 401, "{method} {path}");
    }
    // Nothing was removed by the refused DELETE.
    assert_eq!(h.post("/functions/hello", r#"{"name":"still"}"#).await.status(), 200);

    let resp = h.http.get(h.url("/_faas/capabilities")).bearer_auth(h.front.token()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["kind"], "local");
    assert!(v["capabilities"]["claims"].as_array().unwrap().iter().any(|c| c == "async"));

    // A FrontClient without the right token can invoke, but every management call is refused.
    for token in [Some("wrong".to_string()), None] {
        let client = FrontClient::connect(&h.front.url(), token).await.unwrap();
        let out =
            client.invoke(InvokeRequest::new("hello", Payload::json(&json!({"name": "x"})).unwrap())).await.unwrap();
        assert_eq!(out.payload.json_as::<Value>().unwrap()["message"], "Hello, x!");
        assert_eq!(client.list().await.unwrap_err().kind(), ErrorKind::Unauthorized);
        assert_eq!(client.remove("hello").await.unwrap_err().kind(), ErrorKind::Unauthorized);
    }
    assert_eq!(h.post("/functions/hello", r#"{"name":"still"}"#).await.status(), 200);
}

#[tokio::test]
async fn a_configured_token_is_used() {
    let h = Harness::start_with(FrontOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        token: Some("my-token-123".into()),
        ..FrontOptions::default()
    })
    .await;
    assert_eq!(h.front.token(), "my-token-123");
    let resp = h.http.get(h.url("/_faas/functions")).bearer_auth("my-token-123").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let err = bind(
        h.runner.clone(),
        FrontOptions { addr: "127.0.0.1:0".parse().unwrap(), token: Some(String::new()), ..Default::default() },
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
}

#[tokio::test]
async fn front_client_is_a_runner() {
    let h = Harness::start().await;
    let client = h.client().await;
    assert_eq!(client.kind(), "local");
    assert_eq!(client.capabilities(), h.runner.capabilities());

    let out = client.invoke(InvokeRequest::new("hello", Payload::json(&json!({"name":"Ada"})).unwrap())).await.unwrap();
    assert_eq!(out.payload.body().as_ref(), br#"{"message":"Hello, Ada!"}"#);
    assert_eq!(out.payload.content_type(), Some("application/json"));
    assert!(!out.activation_id.is_empty());

    let err = client.invoke(InvokeRequest::new("fail", Payload::json(&"bad").unwrap())).await.unwrap_err();
    assert_eq!(err, Error::function("ProbeError", "bad"));
    let err = client.invoke(InvokeRequest::new("nope", Payload::empty())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = client.invoke(InvokeRequest::new("../x", Payload::empty())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);

    let names: Vec<String> = client.list().await.unwrap().into_iter().map(|f| f.spec.name).collect();
    assert!(names.contains(&"hello".to_string()) && names.contains(&"on_order".to_string()), "{names:?}");

    client.remove("echo").await.unwrap();
    let err = client.invoke(InvokeRequest::new("echo", Payload::empty())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(client.remove("echo").await.unwrap_err().kind(), ErrorKind::NotFound);
    // The others still work.
    assert!(client.invoke(InvokeRequest::new("hello", Payload::json(&json!({"name":"B"})).unwrap())).await.is_ok());

    let recent =
        client.activations(ActivationQuery { function: Some("hello".into()), limit: Some(1), id: None }).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].function, "hello");
    let none =
        client.activations(ActivationQuery { id: Some("missing/id?x#y".into()), ..Default::default() }).await.unwrap();
    assert!(none.is_empty());

    // package() locates and measures the binary; a missing one is bad input.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("app");
    std::fs::write(&bin, b"12345").unwrap();
    let manifest = faas_api::Manifest { faas_version: "0".into(), functions: vec![] };
    let app = faas_api::AppSpec { app: "a".into(), binary: bin.clone(), manifest, functions: vec![] };
    let p = client.package(&app, &NoProgress).await.unwrap();
    assert_eq!(p.size, 5);
    assert!(p.artifact.is_absolute());
    let missing = faas_api::AppSpec { binary: dir.path().join("nope"), ..app };
    assert_eq!(client.package(&missing, &NoProgress).await.unwrap_err().kind(), ErrorKind::BadInput);
}

#[tokio::test]
async fn index_and_health() {
    let h = Harness::start().await;
    let v: Value = h.http.get(h.url("/")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["backend"], "local");
    let functions: Vec<&str> = v["functions"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(functions.contains(&"hello") && functions.contains(&"user"));
    assert!(v["endpoints"]["routes"].as_array().unwrap().iter().any(|r| r == "GET /users/{id} → user"));
    assert_eq!(h.http.get(h.url("/_faas/health")).send().await.unwrap().status(), 200);
    assert!(!v.to_string().contains(h.front.token()), "the index never shows the token");
}

#[tokio::test]
async fn a_port_in_use_names_the_address_and_suggests_port() {
    let h = Harness::start().await;
    let err =
        bind(h.runner.clone(), FrontOptions { addr: h.front.local_addr(), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BackendUnavailable);
    assert!(err.message().contains(&h.front.local_addr().to_string()), "{}", err.message());
    assert!(err.message().contains("--port"), "{}", err.message());
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let h = Harness::start().await;
    let url = h.front.url();
    assert_eq!(h.http.get(format!("{url}/_faas/health")).send().await.unwrap().status(), 200);
    let Harness { front, .. } = h;
    front.shutdown().await;
    let err = FrontClient::connect(&url, Some("t".into())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BackendUnavailable);
    assert!(err.message().contains("start one with `faas dev`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_do_not_disturb_an_in_flight_invocation() {
    let h = Arc::new(Harness::start().await);
    let slow = {
        let h = h.clone();
        tokio::spawn(async move {
            let resp = h.post("/functions/sleep", r#"{"ms": 1500}"#).await;
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        })
    };
    // Give the slow call a head start (correctness below does not depend on it).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = h.front.local_addr();
    let _ =
        raw_exchange(addr, b"POST /functions/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nabc").await;
    assert_eq!(h.post("/functions/hello", "{oops").await.status(), 400);
    assert_eq!(h.post("/functions/nope", "{}").await.status(), 404);
    assert_eq!(h.post("/functions/boom", "{}").await.status(), 502);
    assert_eq!(h.post("/functions/fail", r#""x""#).await.status(), 500);
    assert_eq!(h.post("/events", "{}").await.status(), 400);
    assert_eq!(h.http.get(h.url("/_faas/functions")).bearer_auth("bad").send().await.unwrap().status(), 401);
    let resp = h.http.post(h.url("/functions/hello")).header("faas-invoke-mode", "x").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    // Garbage that is not HTTP at all.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"\x00\x01NOT HTTP\r\n\r\n").await.unwrap();
    drop(s);

    let (status, body) = slow.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, json!({"slept": 1500}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_get_their_own_replies() {
    let h = Arc::new(Harness::start().await);
    let calls = (0..50).map(|i| {
        let h = h.clone();
        tokio::spawn(async move {
            let resp =
                h.http.post(h.url("/functions/hello")).body(format!(r#"{{"name":"n{i}"}}"#)).send().await.unwrap();
            (i, resp.json::<Value>().await.unwrap())
        })
    });
    for call in calls.collect::<Vec<_>>() {
        let (i, v) = call.await.unwrap();
        assert_eq!(v["message"], format!("Hello, n{i}!"));
    }
}

/// A runner whose every call panics: the front must answer 502 and keep serving.
struct PanickingRunner;

#[async_trait::async_trait]
impl Runner for PanickingRunner {
    fn kind(&self) -> &str {
        "panicky"
    }
    fn capabilities(&self) -> faas_api::Capabilities {
        faas_api::Capabilities {
            claims: Default::default(),
            max_sync_payload: 1024,
            max_async_payload: 1024,
            max_timeout: Duration::from_secs(1),
        }
    }
    async fn package(&self, _: &faas_api::AppSpec, _: &dyn faas_api::Progress) -> Result<Package, Error> {
        panic!("package exploded")
    }
    async fn deploy(&self, _: &Package, _: &dyn faas_api::Progress) -> Result<faas_api::DeployReport, Error> {
        panic!("deploy exploded")
    }
    async fn invoke(&self, _: InvokeRequest) -> Result<faas_api::Invoked, Error> {
        panic!("invoke exploded")
    }
    async fn list(&self) -> Result<Vec<faas_api::FunctionInfo>, Error> {
        panic!("list exploded")
    }
    async fn remove(&self, _: &str) -> Result<(), Error> {
        panic!("remove exploded")
    }
    async fn activations(&self, _: ActivationQuery) -> Result<Vec<faas_api::Activation>, Error> {
        panic!("activations exploded")
    }
}

#[tokio::test]
async fn a_panicking_runner_is_a_502_and_the_server_keeps_serving() {
    let front =
        bind(Arc::new(PanickingRunner), FrontOptions { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() })
            .await
            .unwrap();
    let http = reqwest::Client::new();
    let resp = http.post(format!("{}/functions/f", front.url())).body("{}").send().await.unwrap();
    let v = expect_error(resp, 502, "crash").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("invoke exploded"), "{v}");
    let resp = http.get(format!("{}/some/route", front.url())).send().await.unwrap();
    let v = expect_error(resp, 502, "crash").await;
    assert!(v["errorMessage"].as_str().unwrap().contains("list exploded"), "{v}");
    let resp = http.get(format!("{}/_faas/health", front.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["backend"], "panicky");
    // The client reaches it too, and gets the crash as a typed error.
    let client = FrontClient::connect(&front.url(), Some(front.token().to_string())).await.unwrap();
    assert_eq!(client.kind(), "panicky");
    assert_eq!(client.list().await.unwrap_err().kind(), ErrorKind::Crash);
}

#[tokio::test]
async fn traceparent_is_forwarded_to_functions_and_event_subscribers() {
    let h = Harness::start().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let resp =
        h.http.post(h.url("/functions/trace")).header("traceparent", &traceparent).body("{}").send().await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["traceId"], trace_id);

    let client = h.client().await;
    let out = client
        .invoke(InvokeRequest {
            traceparent: Some(traceparent.clone()),
            ..InvokeRequest::new("trace", Payload::json(&json!({})).unwrap())
        })
        .await
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(out.payload.body()).unwrap()["traceId"], trace_id);

    let resp = h
        .http
        .post(h.url("/events"))
        .header("traceparent", &traceparent)
        .header("content-type", "application/cloudevents+json")
        .body(r#"{"specversion":"1.0","id":"t-1","source":"/shop","type":"order.traced"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    for _ in 0..200 {
        if !h.traces.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(h.traces.lock().unwrap().clone(), vec![trace_id.to_string()]);
}
