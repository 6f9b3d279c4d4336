//! Shared test helpers: recording HTTP sinks with scripted answers, an in-process gateway, HTTP posting.
#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// One scripted answer of a sink.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply { status, headers: Vec::new(), body: String::new(), delay: Duration::ZERO }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.to_string();
        self
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A request a sink received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn ce_id(&self) -> String {
        self.header("ce-id").unwrap_or_default().to_string()
    }
}

struct SinkState {
    script: Mutex<VecDeque<Reply>>,
    default: Reply,
    received: Mutex<Vec<Recorded>>,
}

/// An HTTP sink on 127.0.0.1 that records every request and answers from a script (then a default).
pub struct RecordingSink {
    addr: SocketAddr,
    state: Arc<SinkState>,
    task: tokio::task::JoinHandle<()>,
}

async fn sink_handler(State(state): State<Arc<SinkState>>, headers: HeaderMap, body: Bytes) -> Response {
    state.received.lock().unwrap().push(Recorded { headers, body, at: Instant::now() });
    let reply = state.script.lock().unwrap().pop_front().unwrap_or_else(|| state.default.clone());
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}

impl RecordingSink {
    /// A sink that always answers 200.
    pub async fn ok() -> RecordingSink {
        RecordingSink::start(Vec::new(), Reply::status(200)).await
    }

    /// A sink answering `script` in order, then `default`.
    pub async fn start(script: Vec<Reply>, default: Reply) -> RecordingSink {
        let state =
            Arc::new(SinkState { script: Mutex::new(script.into()), default, received: Mutex::new(Vec::new()) });
        let app = axum::Router::new().fallback(sink_handler).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        RecordingSink { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/sink", self.addr)
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }

    /// Waits until at least `n` requests arrived (panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "sink {} got {} requests, expected {n} within {timeout:?}",
                self.url(),
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RecordingSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A gateway started in this process from a `faas.toml` text (its `[gateway]` section), on a free port with
/// the embedded store in a temporary directory.
pub struct TestGateway {
    pub gateway: faas_gateway::RunningGateway,
    pub dir: tempfile::TempDir,
    pub url: String,
}

pub async fn start_gateway(toml_text: &str) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    start_gateway_in(toml_text, dir).await
}

pub async fn start_gateway_in(toml_text: &str, dir: tempfile::TempDir) -> TestGateway {
    let config = faas_gateway::config::GatewayConfig::parse(toml_text, "faas.toml").expect("test config parses");
    start_gateway_with(config, dir).await
}

/// A gateway started from a parsed config (for settings a test sets directly), its store in `dir`.
pub async fn start_gateway_with(
    mut config: faas_gateway::config::GatewayConfig,
    dir: tempfile::TempDir,
) -> TestGateway {
    config.data_dir = dir.path().join("store");
    let gateway = faas_gateway::start(faas_gateway::GatewayOptions {
        config,
        backends: Default::default(),
        runners: faas_api::Registry::new(),
        bind: Some("127.0.0.1:0".parse().unwrap()),
    })
    .await
    .expect("gateway starts");
    let url = format!("http://{}", gateway.addr());
    TestGateway { gateway, dir, url }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(32).build().unwrap()
}

/// POSTs a structured event; returns status and JSON body.
pub async fn post_structured(url: &str, event: &serde_json::Value) -> (u16, serde_json::Value) {
    let response = client()
        .post(format!("{url}/"))
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

pub fn event(id: &str, ty: &str) -> serde_json::Value {
    serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "/tests",
        "type": ty,
        "datacontenttype": "application/json",
        "data": {"id": id}
    })
}

/// The value of a counter line in a Prometheus text body (`name{labels} value`), 0 if absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok()))
        .unwrap_or(0.0)
}

/// Posts events `prefix-0`, `prefix-1`, ... from `clients` concurrent tasks until `stop` is set; returns the
/// ids that were answered 202.
pub async fn post_until_stopped(
    urls: Vec<String>,
    prefix: &str,
    clients: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (next, stop, prefix, urls) = (next.clone(), stop.clone(), prefix.to_string(), urls.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
            let mut acked = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let id = format!("{prefix}-{n}");
                let url = &urls[(n + c) % urls.len()];
                let sent = http
                    .post(format!("{url}/"))
                    .header("content-type", "application/cloudevents+json")
                    .body(event(&id, "load").to_string())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 202 => acked.push(id),
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
            acked
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// A `faas.toml` whose gateway (with `store_settings`, lines of the `[gateway]` table) retries fast and
/// delivers every event to `sink_url`: the set-up of the zero-loss tests.
pub fn recorder_config(app: &str, store_settings: &str, sink_url: &str) -> String {
    format!(
        r#"
[app]
name = "{app}"

[gateway]
{store_settings}

[gateway.delivery]
backoffBase = "10ms"
backoffMax = "100ms"
attemptTimeout = "2s"

[[gateway.subscriptions]]
id = "recorder"
sink = "{sink_url}"
protocol = "HTTP"
"#
    )
}

/// Waits (up to `within`) until `sink` has recorded at least `n` deliveries.
pub async fn wait_for_deliveries(sink: &RecordingSink, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while sink.count() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many of `acked` never reached `sink`, waiting up to `within` for them; and a one-line account
/// (`acknowledged`, deliveries, unique ids, duplicates, lost) for the test output.
pub async fn lost_events(sink: &RecordingSink, acked: &HashSet<String>, within: Duration) -> (usize, String) {
    let deadline = Instant::now() + within;
    let missing = loop {
        let got: HashSet<String> = sink.received().iter().map(|r| r.ce_id()).collect();
        let missing = acked.iter().filter(|id| !got.contains(*id)).count();
        if missing == 0 || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let received = sink.received();
    let unique: HashSet<String> = received.iter().map(|r| r.ce_id()).collect();
    let account = format!(
        "{} acknowledged, {} deliveries, {} unique ids, {} duplicates, {missing} lost",
        acked.len(),
        received.len(),
        unique.len(),
        received.len() - unique.len()
    );
    (missing, account)
}
