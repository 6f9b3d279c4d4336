//! The host against a small fake Runtime API on 127.0.0.1: it hands out queued invocations on
//! `/next`, records every post, and answers `/next` with 500 once the queue is empty, which ends
//! the host's loop.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::*;

struct Queued {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Post {
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Post {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} posted non-JSON ({e}): {:?}", self.path, self.body))
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

#[derive(Default)]
struct Fake {
    queue: Mutex<VecDeque<Queued>>,
    posts: Mutex<Vec<Post>>,
    nexts: AtomicUsize,
    connections: AtomicUsize,
}

impl Fake {
    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }
}

/// An invocation with the headers Lambda always sends, plus `extra` (which replaces a default of
/// the same name).
fn invocation(id: &str, body: &str, extra: &[(&str, &str)]) -> Queued {
    let mut headers = vec![
        ("Lambda-Runtime-Aws-Request-Id".to_string(), id.to_string()),
        ("Lambda-Runtime-Deadline-Ms".to_string(), "4102444800000".to_string()),
        (
            "Lambda-Runtime-Invoked-Function-Arn".to_string(),
            "arn:aws:lambda:us-east-1:123456789012:function:probe".to_string(),
        ),
    ];
    headers.retain(|(k, _)| !extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(k)));
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Queued { headers, body: body.as_bytes().to_vec() }
}

async fn handle(fake: Arc<Fake>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let path = parts.uri.path().to_string();
    if parts.method == http::Method::GET && path == "/2018-06-01/runtime/invocation/next" {
        fake.nexts.fetch_add(1, Ordering::SeqCst);
        let next = fake.queue.lock().unwrap().pop_front();
        return Ok(match next {
            Some(q) => {
                let mut resp = Response::builder().status(200).header("content-type", "application/json");
                for (k, v) in &q.headers {
                    resp = resp.header(k, v);
                }
                resp.body(Full::new(Bytes::from(q.body))).unwrap()
            }
            None => Response::builder()
                .status(500)
                .body(Full::new(Bytes::from_static(br#"{"errorType":"InternalServerError","errorMessage":"done"}"#)))
                .unwrap(),
        });
    }
    if parts.method == http::Method::POST && path.starts_with("/2018-06-01/runtime/") {
        fake.posts.lock().unwrap().push(Post { path, headers: parts.headers, body });
        return Ok(Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(Full::new(Bytes::from_static(br#"{"status":"OK"}"#)))
            .unwrap());
    }
    Ok(Response::builder().status(404).body(Full::new(Bytes::new())).unwrap())
}

/// Starts the fake with `queue` and returns it and the `host:port` to put in `AWS_LAMBDA_RUNTIME_API`.
async fn fake_api(queue: Vec<Queued>) -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake { queue: Mutex::new(queue.into()), ..Default::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let f = fake.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            f.connections.fetch_add(1, Ordering::SeqCst);
            let f = f.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(f.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (fake, addr.to_string())
}

fn env(api: &str, handler: Option<&str>) -> HostEnv {
    HostEnv {
        runtime_api: api.to_string(),
        handler: handler.map(str::to_string),
        function_name: "probe-fn".into(),
        function_version: "$LATEST".into(),
        memory_mb: 256,
        log_group: "/aws/lambda/probe-fn".into(),
        log_stream: "2024/01/01/[$LATEST]abc".into(),
        vars: [("GREETING".to_string(), "hi".to_string())].into(),
    }
}

async fn hello(_cx: Context, v: Value) -> Result<Value, Error> {
    Ok(json!({"message": format!("Hello, {}!", v["name"].as_str().unwrap_or("?"))}))
}

async fn fail(_cx: Context, v: Value) -> Result<Value, Error> {
    Err(Error::function("ProbeError", v["message"].as_str().unwrap_or("failed")))
}

async fn panics(_cx: Context, _v: Value) -> Result<Value, Error> {
    panic!("probe panic")
}

async fn context(cx: Context, _v: Value) -> Result<Value, Error> {
    let l = cx.extension::<LambdaContext>().cloned().unwrap_or_default();
    Ok(json!({
        "invocation_id": cx.invocation_id(),
        "function_name": cx.function_name(),
        "deadline_ms": cx.deadline_ms(),
        "backend": cx.backend(),
        "traceparent": cx.trace().traceparent(),
        "greeting": cx.var("GREETING"),
        "lambda": serde_json::to_value(&l).unwrap(),
    }))
}

async fn echo(_cx: Context, p: Payload) -> Result<Payload, Error> {
    Ok(Payload::new(p.into_body(), Some("text/plain".into())))
}

fn app() -> App {
    App::new()
        .function("hello", hello)
        .function("fail", fail)
        .function("panics", panics)
        .function("context", context)
        .raw("echo", echo)
}

/// Runs the host until the fake's queue is drained and returns the fake.
async fn run(app: App, handler: Option<&str>, queue: Vec<Queued>) -> (Arc<Fake>, Error) {
    let (fake, api) = fake_api(queue).await;
    let err = tokio::time::timeout(Duration::from_secs(30), serve_with(app, env(&api, handler)))
        .await
        .expect("the host ends when the Runtime API fails")
        .unwrap_err();
    (fake, err)
}

#[tokio::test]
async fn replies_are_posted_to_response_over_one_kept_alive_connection() {
    let queue = vec![invocation("id-1", r#"{"name":"Ada"}"#, &[]), invocation("id-2", r#"{"name":"Bo"}"#, &[])];
    let (fake, err) = run(app(), Some("hello"), queue).await;
    assert!(err.message().contains("500"), "{err}");
    let posts = fake.posts();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[0].path, "/2018-06-01/runtime/invocation/id-1/response");
    assert_eq!(posts[0].json(), json!({"message": "Hello, Ada!"}));
    assert_eq!(posts[0].header("content-type"), "application/json");
    assert_eq!(posts[1].path, "/2018-06-01/runtime/invocation/id-2/response");
    assert_eq!(posts[1].json(), json!({"message": "Hello, Bo!"}));
    assert_eq!(fake.nexts.load(Ordering::SeqCst), 3);
    assert_eq!(fake.connections.load(Ordering::SeqCst), 1, "the host must reuse its connection");
}

#[tokio::test]
async fn raw_replies_keep_their_content_type() {
    let (fake, _) = run(app(), Some("echo"), vec![invocation("id-1", "plain bytes", &[])]).await;
    let posts = fake.posts();
    assert_eq!(posts[0].path, "/2018-06-01/runtime/invocation/id-1/response");
    assert_eq!(posts[0].body.as_ref(), b"plain bytes");
    assert_eq!(posts[0].header("content-type"), "text/plain");
}

#[tokio::test]
async fn function_errors_go_to_error_with_type_header_and_portable_kind() {
    let (fake, _) = run(app(), Some("fail"), vec![invocation("id-9", r#"{"message":"boom"}"#, &[])]).await;
    let posts = fake.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].path, "/2018-06-01/runtime/invocation/id-9/error");
    assert_eq!(posts[0].header("lambda-runtime-function-error-type"), "Function.ProbeError");
    assert_eq!(
        posts[0].json(),
        json!({"errorType": "ProbeError", "errorMessage": "boom", "stackTrace": [], "kind": "function"})
    );
}

#[tokio::test]
async fn malformed_input_is_a_bad_input_error() {
    let (fake, _) = run(app(), Some("hello"), vec![invocation("id-1", "{\"name\": ", &[])]).await;
    let body = fake.posts()[0].json();
    assert_eq!(body["errorType"], "BadInput");
    assert_eq!(body["kind"], "bad_input");
    assert!(body["errorMessage"].as_str().unwrap().contains("malformed JSON"), "{body}");
    assert_eq!(fake.posts()[0].header("lambda-runtime-function-error-type"), "Function.BadInput");
}

#[tokio::test]
async fn a_panic_is_reported_as_a_crash_and_the_loop_goes_on() {
    let queue = vec![invocation("id-1", "{}", &[]), invocation("id-2", "{}", &[])];
    let (fake, _) = run(app(), Some("panics"), queue).await;
    let posts = fake.posts();
    assert_eq!(posts.len(), 2, "the host survives a panic: {posts:?}");
    let body = posts[0].json();
    assert_eq!(posts[0].path, "/2018-06-01/runtime/invocation/id-1/error");
    assert_eq!(body["errorType"], "Panic");
    assert_eq!(body["kind"], "crash");
    assert!(body["errorMessage"].as_str().unwrap().contains("probe panic"), "{body}");
    assert_eq!(posts[0].header("lambda-runtime-function-error-type"), "Function.Panic");
    assert_eq!(posts[1].path, "/2018-06-01/runtime/invocation/id-2/error");
}

#[tokio::test]
async fn handler_selects_the_function_and_an_unknown_one_is_an_init_error() {
    let (fake, _) = run(app(), Some("echo"), vec![invocation("id-1", "x", &[])]).await;
    assert_eq!(fake.posts()[0].path, "/2018-06-01/runtime/invocation/id-1/response");

    let (fake, err) = run(app(), Some("nope"), vec![invocation("id-1", "{}", &[])]).await;
    assert_eq!(err.kind(), faas_api::ErrorKind::NotFound);
    let posts = fake.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].path, "/2018-06-01/runtime/init/error");
    assert_eq!(posts[0].header("lambda-runtime-function-error-type"), "Runtime.HandlerNotFound");
    let body = posts[0].json();
    assert_eq!(body["kind"], "not_found");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("`nope`") && message.contains("hello, fail, panics, context, echo"), "{message}");
    assert_eq!(fake.nexts.load(Ordering::SeqCst), 0, "no invocation is taken after an init error");
}

#[tokio::test]
async fn without_handler_a_single_function_app_serves_it_and_a_larger_app_fails_init() {
    let single = App::new().function("hello", hello);
    let (fake, _) = run(single, None, vec![invocation("id-1", r#"{"name":"Cy"}"#, &[])]).await;
    assert_eq!(fake.posts()[0].json(), json!({"message": "Hello, Cy!"}));

    let (fake, err) = run(app(), None, vec![]).await;
    assert_eq!(err.kind(), faas_api::ErrorKind::BadInput);
    assert!(err.message().contains("_HANDLER is not set"), "{err}");
    assert_eq!(fake.posts()[0].path, "/2018-06-01/runtime/init/error");
}

#[tokio::test]
async fn headers_become_the_portable_context_and_the_lambda_extension() {
    let extra = [
        ("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"),
        ("Lambda-Runtime-Cognito-Identity", r#"{"cognitoIdentityId":"cid","cognitoIdentityPoolId":"pool"}"#),
        ("Lambda-Runtime-Aws-Tenant-Id", "tenant-7"),
    ];
    let (fake, _) = run(app(), Some("context"), vec![invocation("req-42", "{}", &extra)]).await;
    let r = fake.posts()[0].json();
    assert_eq!(r["invocation_id"], "req-42");
    assert_eq!(r["function_name"], "context");
    assert_eq!(r["deadline_ms"], 4102444800000u64);
    assert_eq!(r["backend"], "lambda");
    assert_eq!(r["greeting"], "hi");
    assert_eq!(r["traceparent"], "00-5bef4de7ad49b0e87f6ef6c87fc2e700-9a9197af755a6419-01");
    let l = &r["lambda"];
    assert_eq!(l["invoked_function_arn"], "arn:aws:lambda:us-east-1:123456789012:function:probe");
    assert_eq!(l["request_id"], "req-42");
    assert_eq!(l["cognito_identity"]["cognitoIdentityPoolId"], "pool");
    assert_eq!(l["tenant_id"], "tenant-7");
    assert_eq!(l["function_name"], "probe-fn");
    assert_eq!(l["memory_mb"], 256);
    assert_eq!(l["log_group"], "/aws/lambda/probe-fn");
    assert_eq!(l["deadline_ms"], 4102444800000u64);
}

#[tokio::test]
async fn a_w3c_traceparent_wins_over_the_xray_header() {
    let xray =
        ("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1");
    let from_client_context = (
        "Lambda-Runtime-Client-Context",
        r#"{"custom":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}"#,
    );
    let event = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t",
        "traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}"#;
    let queue =
        vec![invocation("a", "{}", &[xray, from_client_context]), invocation("b", event, &[xray, from_client_context])];
    let (fake, _) = run(app(), Some("context"), queue).await;
    let posts = fake.posts();
    assert_eq!(posts[0].json()["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_eq!(posts[0].json()["lambda"]["client_context"]["custom"]["traceparent"].as_str().unwrap().len(), 55);
    assert_eq!(posts[1].json()["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
}

#[tokio::test]
async fn an_invocation_without_a_request_id_ends_the_host_with_a_clear_error() {
    let bad = Queued { headers: vec![("Lambda-Runtime-Deadline-Ms".into(), "1".into())], body: b"{}".to_vec() };
    let (_, err) = run(app(), Some("hello"), vec![bad]).await;
    assert_eq!(err.kind(), faas_api::ErrorKind::BackendUnavailable);
    assert!(err.message().contains("Lambda-Runtime-Aws-Request-Id"), "{err}");
}

#[tokio::test]
async fn an_unreachable_runtime_api_is_named_in_the_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let err = serve_with(app(), env(&addr, Some("hello"))).await.unwrap_err();
    assert_eq!(err.kind(), faas_api::ErrorKind::BackendUnavailable);
    assert!(err.message().contains(&addr), "{err}");
}

#[test]
fn error_type_header_is_letters_only() {
    assert_eq!(type_word("ProbeError"), "ProbeError");
    assert_eq!(type_word("my_error2"), "Myerror");
    assert_eq!(type_word("__"), "Unknown");
}

async fn slow(_cx: Context, v: Value) -> Result<Value, Error> {
    tokio::time::sleep(Duration::from_millis(v["ms"].as_u64().unwrap_or(0))).await;
    Ok(json!({"slept": v["ms"]}))
}

async fn big(_cx: Context, v: Value) -> Result<Value, Error> {
    Ok(Value::String("x".repeat(v["bytes"].as_u64().unwrap_or(0) as usize)))
}

fn deadline_in(ms: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    (now.as_millis() as u64 + ms).to_string()
}

#[tokio::test]
async fn a_handler_still_running_at_its_deadline_is_stopped_and_posted_as_a_timeout() {
    let soon = invocation("id-1", r#"{"ms":10000}"#, &[("Lambda-Runtime-Deadline-Ms", &deadline_in(400))]);
    let queue = vec![soon, invocation("id-2", r#"{"ms":1}"#, &[])];
    let started = std::time::Instant::now();
    let (fake, _) = run(App::new().function("slow", slow), None, queue).await;
    assert!(started.elapsed() < Duration::from_secs(2), "the host waited {:?}", started.elapsed());
    let posts = fake.posts();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[0].path, "/2018-06-01/runtime/invocation/id-1/error");
    assert_eq!(posts[0].header("lambda-runtime-function-error-type"), "Function.Timeout");
    let body = posts[0].json();
    assert_eq!(body["kind"], "timeout");
    assert_eq!(body["errorType"], "Timeout");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("function `slow` timed out") && message.contains("before Lambda"), "{message}");
    // The environment goes on serving.
    assert_eq!(posts[1].path, "/2018-06-01/runtime/invocation/id-2/response");
    assert_eq!(posts[1].json(), json!({"slept": 1}));
}

#[tokio::test]
async fn a_reply_over_six_mib_is_payload_too_large_and_one_at_the_limit_is_posted() {
    // A JSON string of n bytes is n + 2 bytes with its quotes.
    let over = invocation("id-1", &format!(r#"{{"bytes":{}}}"#, MAX_PAYLOAD - 1), &[]);
    let at = invocation("id-2", &format!(r#"{{"bytes":{}}}"#, MAX_PAYLOAD - 2), &[]);
    let (fake, _) = run(App::new().function("big", big), None, vec![over, at]).await;
    let posts = fake.posts();
    assert_eq!(posts[0].path, "/2018-06-01/runtime/invocation/id-1/error");
    assert_eq!(posts[0].header("lambda-runtime-function-error-type"), "Function.PayloadTooLarge");
    let body = posts[0].json();
    assert_eq!(body["kind"], "payload_too_large");
    assert!(body["errorMessage"].as_str().unwrap().contains("Lambda's limit is 6291456 bytes"), "{body}");
    assert_eq!(posts[1].path, "/2018-06-01/runtime/invocation/id-2/response");
    assert_eq!(posts[1].body.len(), MAX_PAYLOAD);
}

#[tokio::test]
async fn the_adapter_reads_the_host_env_from_its_snapshot() {
    use faas_host::HostAdapter as _;
    let (fake, api) = fake_api(vec![invocation("id-1", "{}", &[])]).await;
    let env = faas_host::Env::from_pairs([
        ("AWS_LAMBDA_RUNTIME_API", api.as_str()),
        ("_HANDLER", "context"),
        ("AWS_LAMBDA_FUNCTION_NAME", "from-snapshot"),
        ("GREETING", "hello from the snapshot"),
    ]);
    let err = tokio::time::timeout(Duration::from_secs(30), LambdaHost.serve(app(), env)).await.unwrap().unwrap_err();
    assert!(err.message().contains("500"), "{err}");
    let r = fake.posts()[0].json();
    assert_eq!(r["greeting"], "hello from the snapshot");
    assert_eq!(r["lambda"]["function_name"], "from-snapshot");
    assert!(std::env::var(ENV_TRACE_ID).is_err(), "the host must not touch the process environment");
}
