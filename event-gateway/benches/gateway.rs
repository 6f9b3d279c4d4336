//! Gateway throughput and latency against a bare hyper baseline, in one run.
//!
//! `cargo bench -p faas-gateway --bench gateway` (env: `BENCH_EVENTS` default 5000, `BENCH_CLIENTS` default 32).
//!
//! - baseline: a bare hyper server on loopback answering the same POSTs with 202 (no parsing, no storage);
//! - embedded: the gateway with the embedded store (every event fsynced before its 202) and one subscription
//!   to a no-op HTTP sink;
//! - jetstream: the same on NATS JetStream, when `nats-server` is installed.
//!
//! For the gateway runs, events/s is ingress to delivery: from the first POST until the sink has every event;
//! latency is per event, from just before its POST to its arrival at the sink (p50/p99). Prints a table and
//! the ratios to the baseline request rate (target: embedded ≥ 0.25).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

struct Arrivals {
    at: Mutex<HashMap<String, Instant>>,
    count: AtomicUsize,
}

/// A hyper server answering every request with `status`; records `ce-id` arrival times when `arrivals` given.
async fn serve(status: u16, arrivals: Option<Arc<Arrivals>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let arrivals = arrivals.clone();
                    async move {
                        let id = req.headers().get("ce-id").and_then(|v| v.to_str().ok()).map(str::to_string);
                        let _ = req.into_body().collect().await;
                        if let (Some(arrivals), Some(id)) = (arrivals, id) {
                            arrivals.at.lock().unwrap().entry(id).or_insert_with(Instant::now);
                            arrivals.count.fetch_add(1, Ordering::SeqCst);
                        }
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

fn event(id: &str) -> String {
    serde_json::json!({
        "specversion": "1.0", "id": id, "source": "/bench", "type": "bench.event",
        "datacontenttype": "application/json", "data": {"n": id, "payload": "x".repeat(200)}
    })
    .to_string()
}

/// Posts `n` events from `clients` concurrent clients; returns (elapsed, send instants by id).
async fn post_all(url: &str, n: usize, clients: usize, prefix: &str) -> (Duration, HashMap<String, Instant>) {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, url, prefix) = (next.clone(), url.to_string(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().pool_max_idle_per_host(4).build().unwrap();
            let mut sent = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let id = format!("{prefix}-{i}");
                let at = Instant::now();
                let r = http
                    .post(&url)
                    .header("content-type", "application/cloudevents+json")
                    .body(event(&id))
                    .send()
                    .await
                    .expect("post");
                assert_eq!(r.status().as_u16(), 202, "{id}");
                sent.push((id, at));
            }
            sent
        }));
    }
    let mut all = HashMap::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (start.elapsed(), all)
}

struct Row {
    name: String,
    rate: f64,
    p50: Option<Duration>,
    p99: Option<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run_gateway(name: &str, mut config: faas_gateway::config::GatewayConfig, n: usize, clients: usize) -> Row {
    let arrivals = Arc::new(Arrivals { at: Mutex::new(HashMap::new()), count: AtomicUsize::new(0) });
    let sink = serve(200, Some(arrivals.clone())).await;
    let text = format!("[[gateway.subscriptions]]\nid = \"noop\"\nsink = \"http://{sink}/\"\nprotocol = \"HTTP\"\n");
    let parsed = faas_gateway::config::GatewayConfig::parse(&text, "bench.toml").unwrap();
    config.subscriptions = parsed.subscriptions;
    let gateway = faas_gateway::start(faas_gateway::GatewayOptions {
        config,
        backends: Default::default(),
        runners: faas_api::Registry::new(),
        bind: Some("127.0.0.1:0".parse().unwrap()),
    })
    .await
    .expect("gateway starts");
    let url = format!("http://{}/", gateway.addr());
    let prefix = format!("{name}-{}", uuid::Uuid::new_v4());
    let start = Instant::now();
    let (_, sent) = post_all(&url, n, clients, &prefix).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while arrivals.at.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "{name}: not every event was delivered");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = start.elapsed();
    let mut latencies: Vec<Duration> = {
        let at = arrivals.at.lock().unwrap();
        sent.iter().map(|(id, t)| at[id].saturating_duration_since(*t)).collect()
    };
    latencies.sort();
    gateway.shutdown().await;
    Row {
        name: name.to_string(),
        rate: n as f64 / elapsed.as_secs_f64(),
        p50: Some(percentile(&latencies, 0.50)),
        p99: Some(percentile(&latencies, 0.99)),
    }
}

fn fmt_ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.2} ms", d.as_secs_f64() * 1000.0)).unwrap_or_else(|| "-".into())
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us too: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let n = if quick { 200 } else { env("BENCH_EVENTS", 5000) };
    let clients = env("BENCH_CLIENTS", 32);
    let mut rows = Vec::new();

    // Baseline: bare hyper answering the same POSTs.
    let bare = serve(202, None).await;
    let (elapsed, _) = post_all(&format!("http://{bare}/"), n, clients, "bare").await;
    rows.push(Row {
        name: "bare hyper (baseline)".into(),
        rate: n as f64 / elapsed.as_secs_f64(),
        p50: None,
        p99: None,
    });

    let dir = tempfile::tempdir().unwrap();
    let embedded = faas_gateway::config::GatewayConfig { data_dir: dir.path().join("store"), ..Default::default() };
    rows.push(run_gateway("embedded", embedded, n, clients).await);

    match faas_gateway_nats::testing::NatsServer::start() {
        Ok(Some(nats)) => {
            let js = faas_gateway::config::GatewayConfig {
                store: faas_gateway::config::StoreKind::Nats,
                nats_url: Some(nats.url()),
                ..Default::default()
            };
            rows.push(run_gateway("jetstream", js, n, clients).await);
        }
        Ok(None) => println!("jetstream: skipped (nats-server not found)"),
        Err(e) => println!("jetstream: skipped ({e})"),
    }

    let base = rows[0].rate;
    println!("\nfaas-gateway benchmark: {n} events, {clients} concurrent clients, no-op HTTP sink");
    println!("{:<24} {:>12} {:>12} {:>12} {:>10}", "run", "events/s", "p50", "p99", "vs bare");
    for r in &rows {
        println!("{:<24} {:>12.0} {:>12} {:>12} {:>10.3}", r.name, r.rate, fmt_ms(r.p50), fmt_ms(r.p99), r.rate / base);
    }
}
