//! The state service (`/state/v1`, what `cx.state()` reaches) against the gateway's own ingress,
//! measured in the same run, on the embedded store and, when `nats-server` is installed, on
//! JetStream KV.
//!
//! `cargo bench -p faas-gateway --bench state` (`FAAS_BENCH_QUICK=1`: smaller samples; env
//! `BENCH_CLIENTS`, default 32).
//!
//! Rows, per store:
//! 1. ingress (baseline): a 200-byte CloudEvent POSTed until its 202 (durable), ops/s and p50/p99;
//! 2. set: a 200-byte value PUT to a distinct key until its answer (durable), against ingress;
//! 3. get: those keys read back, against ingress;
//! 4. counter under contention: every client adds one to the same key with a `set_if` retry loop
//!    (`faas_api::state::State` over `faas_host::state::HttpState`), increments/s against the set
//!    rate on distinct keys, with the conflicts retried.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faas_api::state::State;
use faas_api::ErrorKind;
use faas_bench_support::{percentile, quick, report, us, Row};
use faas_host::state::HttpState;

const TOKEN: &str = "bench-token";
const APP: &str = "bench";

/// What `clients` concurrent clients measured doing `n` operations.
struct Measured {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

impl Measured {
    fn value(&self, unit: &str) -> String {
        format!("{:.0} {unit}/s (p50 {:.0} µs, p99 {:.0} µs)", self.per_second, us(self.p50), us(self.p99))
    }
}

/// Runs `op(i)` for i in 0..n from `clients` concurrent tasks, each with its own HTTP client.
async fn measure<F, Fut>(n: usize, clients: usize, op: F) -> Measured
where
    F: Fn(reqwest::Client, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().pool_max_idle_per_host(4).build().unwrap();
            let mut took = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return took;
                }
                let at = Instant::now();
                op(http.clone(), i).await;
                took.push(at.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    Measured { per_second: n as f64 / elapsed.as_secs_f64(), p50: percentile(&all, 0.50), p99: percentile(&all, 0.99) }
}

async fn bench_store(
    name: &str,
    mut config: faas_gateway::config::GatewayConfig,
    n: usize,
    clients: usize,
) -> Vec<Row> {
    config.token = Some(TOKEN.to_string());
    let gateway = faas_gateway::start(faas_gateway::GatewayOptions {
        config,
        backends: Default::default(),
        runners: faas_api::Registry::new(),
        bind: Some("127.0.0.1:0".parse().unwrap()),
    })
    .await
    .expect("gateway starts");
    let base = format!("http://{}", gateway.addr());
    let run = uuid::Uuid::new_v4().simple().to_string();
    let app_token = faas_api::state::app_token(TOKEN, APP);
    let value = "x".repeat(200);

    let ingress_url = format!("{base}/");
    let prefix = run.clone();
    let ingress = measure(n, clients, move |http, i| {
        let (url, id) = (ingress_url.clone(), format!("{prefix}-{i}"));
        async move {
            let event = serde_json::json!({
                "specversion": "1.0", "id": id, "source": "/bench", "type": "bench.state",
                "datacontenttype": "application/json", "data": {"payload": "x".repeat(200)}
            });
            let r = http
                .post(url)
                .header("content-type", "application/cloudevents+json")
                .body(event.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 202);
        }
    })
    .await;

    let key_url = {
        let (base, run) = (base.clone(), run.clone());
        move |i: usize| format!("{base}/state/v1/{APP}/{run}/k{i}")
    };
    let (urls, token) = (key_url.clone(), app_token.clone());
    let set = measure(n, clients, move |http, i| {
        let (url, token, value) = (urls(i), token.clone(), value.clone());
        async move {
            let r = http.put(url).bearer_auth(token).body(value).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
        }
    })
    .await;
    let (urls, token) = (key_url.clone(), app_token.clone());
    let get = measure(n, clients, move |http, i| {
        let (url, token) = (urls(i), token.clone());
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            assert_eq!(r.bytes().await.unwrap().len(), 200);
        }
    })
    .await;

    // The counter: every client increments one key with a set_if loop.
    let increments = (n / 4).max(clients);
    let conflicts = Arc::new(AtomicUsize::new(0));
    let state = State::new(Arc::new(HttpState::new(format!("{base}/state/v1/{APP}"), app_token.clone())));
    let counter_key = format!("{run}/counter");
    let (retried, key) = (conflicts.clone(), counter_key.clone());
    let counter = measure(increments, clients, move |_http, _i| {
        let (state, key, retried) = (state.clone(), key.clone(), retried.clone());
        async move {
            loop {
                let current = state.get_json::<u64>(&key).await.unwrap();
                let (n, version) = current.map_or((0, None), |c| (c.value, Some(c.version)));
                match state.set_json_if(&key, &(n + 1), version).await {
                    Ok(_) => return,
                    Err(e) if e.kind() == ErrorKind::Conflict => {
                        retried.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
    })
    .await;
    let check = State::new(Arc::new(HttpState::new(format!("{base}/state/v1/{APP}"), app_token)));
    let total = check.get_json::<u64>(&counter_key).await.unwrap().unwrap().value;
    assert_eq!(total as usize, increments, "{name}: no increment lost");
    gateway.shutdown().await;

    let ingress_value = ingress.value("events");
    let note = format!("{n} operations, {clients} clients, 200-byte values");
    vec![
        Row::new(format!("{name}: ingress (baseline)"), ingress_value.clone(), "-", 1.0).note(note.clone()),
        Row::new(format!("{name}: state set"), set.value("sets"), ingress_value.clone(), set.per_second / ingress.per_second)
            .note(note.clone()),
        Row::new(format!("{name}: state get"), get.value("gets"), ingress_value, get.per_second / ingress.per_second)
            .note(note),
        Row::new(
            format!("{name}: counter, set_if under contention"),
            counter.value("increments"),
            set.value("sets on distinct keys"),
            counter.per_second / set.per_second,
        )
        .note(format!(
            "{increments} increments of one key by {clients} clients, {} conflicts retried; ended at exactly {increments}",
            conflicts.load(Ordering::Relaxed)
        )),
    ]
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us too: keep that quick.
    let small = quick() || !std::env::args().any(|a| a == "--bench");
    let n = if small { 400 } else { 5000 };
    let clients = std::env::var("BENCH_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    let dir = tempfile::tempdir().unwrap();
    let embedded = faas_gateway::config::GatewayConfig { data_dir: dir.path().join("store"), ..Default::default() };
    let mut rows = bench_store("embedded", embedded, n, clients).await;
    match faas_gateway_nats::testing::NatsServer::start() {
        Ok(Some(nats)) => {
            let js = faas_gateway::config::GatewayConfig {
                store: faas_gateway::config::StoreKind::Nats,
                nats_url: Some(nats.url()),
                data_dir: dir.path().join("nats-side"),
                ..Default::default()
            };
            rows.extend(bench_store("jetstream", js, n, clients).await);
        }
        Ok(None) => println!("jetstream: skipped (nats-server not found)"),
        Err(e) => println!("jetstream: skipped ({e})"),
    }
    report("state", &rows);
}
