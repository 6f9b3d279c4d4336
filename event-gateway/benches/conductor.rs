//! The durable conductor against the targets of COMPOSITION.md, each against a baseline measured in
//! the same run. The steps are examples/pipeline's `step` (a no-op adding 1), a release build run by
//! the local runner in process mode, reached by the gateway through the runner SPI like any function.
//!
//! `cargo bench -p faas-gateway --bench conductor` (`FAAS_BENCH_QUICK=1`: smaller samples).
//!
//! Rows:
//! 1. durable overhead per step (a 20-step run's time / 20, minus the step's own invoke), p50 and p99
//!    over runs, against the gateway's ingress → delivery latency (one event at a time to an HTTP sink);
//! 2. express overhead per step against the step's invoke;
//! 3. flatness: the time per step around step 10,000 of one run against around step 10;
//! 4. transitions/s with 1,000 concurrent runs against the gateway's events/s (32 clients);
//! 5. fused (`five`, one process-mode invocation) against the same 5 steps conducted, durable and express.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use faas_api::{BackendProfile, InvokeRequest, NoProgress, Payload, Registry, Runner};
use faas_bench_support::{percentile, quick, report, us, Row};
use faas_composition::{call, repeat, seq, Composition, Node};
use faas_runner_local::{LocalOptions, LocalRunner};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

const TOKEN: &str = "bench-token";

/// When each event id reached the HTTP sink.
#[derive(Default)]
struct Arrivals {
    at: Mutex<HashMap<String, Instant>>,
    count: AtomicUsize,
}

async fn sink(arrivals: Arc<Arrivals>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let arrivals = arrivals.clone();
                    async move {
                        let id = req.headers().get("ce-id").and_then(|v| v.to_str().ok()).map(str::to_string);
                        let _ = req.into_body().collect().await;
                        if let Some(id) = id {
                            arrivals.at.lock().unwrap().entry(id).or_insert_with(Instant::now);
                            arrivals.count.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

fn program(node: Node) -> Value {
    serde_json::to_value(Composition::from(node)).unwrap()
}

fn event(id: &str) -> String {
    json!({"specversion": "1.0", "id": id, "source": "/bench", "type": "bench.event", "data": {"n": 0}}).to_string()
}

struct Bench {
    url: String,
    http: reqwest::Client,
    runner: Arc<LocalRunner>,
    arrivals: Arc<Arrivals>,
}

impl Bench {
    async fn post_run(&self, body: &Value) -> Value {
        let r = self.http.post(format!("{}/runs", self.url)).bearer_auth(TOKEN).json(body).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        r.json().await.unwrap()
    }

    async fn run(&self, node: &Value, mode: &str) -> Value {
        let mut body = json!({"composition": "bench", "program": node, "input": {"n": 0}});
        if mode == "express" {
            body["mode"] = json!("express");
        } else {
            body["wait"] = json!(300);
        }
        let run = self.post_run(&body).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        run
    }

    async fn invoke(&self, function: &str) -> u64 {
        let out = self
            .runner
            .invoke(InvokeRequest::new(function, Payload::new(r#"{"n":0}"#, Some("application/json".into()))))
            .await
            .unwrap();
        serde_json::from_slice::<Value>(out.payload.body()).unwrap()["n"].as_u64().unwrap()
    }

    async fn post_event(&self, id: &str) {
        let r = self
            .http
            .post(format!("{}/", self.url))
            .header("content-type", "application/cloudevents+json")
            .body(event(id))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

#[tokio::main]
async fn main() {
    let quick = quick();
    let spec = faas_bench_support::release_app("examples/pipeline", "example-pipeline", "pipeline").await;
    let runner = LocalRunner::new(LocalOptions::default()).unwrap();
    let package = runner.package(&spec, &NoProgress).await.unwrap();
    runner.deploy(&package, &NoProgress).await.unwrap();

    let arrivals = Arc::new(Arrivals::default());
    let sink_addr = sink(arrivals.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[backends.steps]\nkind = \"in-bench\"\n\n[gateway.functions.step]\nbackend = \"steps\"\n\n\
         [[gateway.subscriptions]]\nid = \"to-sink\"\ntypes = [\"bench.event\"]\nsink = \"http://{sink_addr}/\"\n"
    );
    let mut config = faas_gateway::config::GatewayConfig::parse(&toml, "faas.toml").unwrap();
    config.data_dir = dir.path().to_path_buf();
    config.token = Some(TOKEN.into());
    let mut runners = Registry::new();
    let for_gateway = runner.clone();
    runners.register("in-bench", move |_profile: BackendProfile| {
        let runner: Arc<dyn Runner> = for_gateway.clone();
        async move { Ok(runner) }
    });
    let gateway = faas_gateway::start(faas_gateway::GatewayOptions {
        config,
        backends: [("steps".to_string(), BackendProfile::new("steps", "in-bench"))].into(),
        runners,
        bind: Some("127.0.0.1:0".parse().unwrap()),
    })
    .await
    .unwrap();
    let b = Bench {
        url: format!("http://{}", gateway.addr()),
        http: reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap(),
        runner,
        arrivals,
    };
    let mut rows = Vec::new();

    // Baselines: the step's own invoke, and the gateway's ingress → delivery, one event at a time.
    assert_eq!(b.invoke("step").await, 1);
    assert_eq!(b.invoke("five").await, 5);
    let n = if quick { 200 } else { 2_000 };
    let mut invokes = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Instant::now();
        b.invoke("step").await;
        invokes.push(s.elapsed());
    }
    let invokes = sorted(invokes);
    let invoke50 = percentile(&invokes, 0.5);
    let n = if quick { 100 } else { 500 };
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("seq-{i}");
        let s = Instant::now();
        b.post_event(&id).await;
        let arrived = loop {
            if let Some(at) = b.arrivals.at.lock().unwrap().get(&id) {
                break *at;
            }
            tokio::time::sleep(Duration::from_micros(100)).await;
        };
        latencies.push(arrived - s);
    }
    let latencies = sorted(latencies);
    let (l50, l99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));

    // 1. Durable overhead per step.
    let twenty = program(seq((0..20).map(|_| call("step"))));
    let runs = if quick { 10 } else { 50 };
    let mut per_step = Vec::with_capacity(runs);
    for _ in 0..runs {
        let s = Instant::now();
        b.run(&twenty, "durable").await;
        per_step.push(s.elapsed() / 20);
    }
    let per_step = sorted(per_step);
    let (d50, d99) = (percentile(&per_step, 0.5), percentile(&per_step, 0.99));
    let (o50, o99) = (d50.saturating_sub(invoke50), d99.saturating_sub(invoke50));
    rows.push(
        Row::new(
            "durable conductor overhead per step, p50 (20-step runs, embedded store)",
            format!("{:.0} µs (p99 {:.0} µs)", us(o50), us(o99)),
            format!("{:.0} µs (p99 {:.0} µs), ingress → delivery of one event", us(l50), us(l99)),
            us(o50) / us(l50),
        )
        .note(format!(
            "{runs} runs; a step takes {:.0} µs p50 in all, of which the step's process-mode invoke {:.0} µs; target ≤ 1",
            us(d50),
            us(invoke50)
        )),
    );

    // 2. Express overhead per step.
    let mut per_step = Vec::with_capacity(runs);
    for _ in 0..runs * 4 {
        let s = Instant::now();
        b.run(&twenty, "express").await;
        per_step.push(s.elapsed() / 20);
    }
    let per_step = sorted(per_step);
    let e50 = percentile(&per_step, 0.5);
    rows.push(
        Row::new(
            "express overhead per step, p50 (20-step runs, the run's one HTTP request included)",
            format!("{:.1} µs", us(e50.saturating_sub(invoke50))),
            format!("{:.1} µs, the step's process-mode invoke", us(invoke50)),
            us(e50.saturating_sub(invoke50)) / us(invoke50),
        )
        .note(format!("{} runs; target ≤ 50 µs above the invoke", runs * 4)),
    );

    // 3. Flatness: one long run, the time per step around step 10 and around the last step.
    let steps: u32 = if quick { 1_000 } else { 10_000 };
    let long = program(repeat(steps, call("step")));
    let started = b.post_run(&json!({"composition": "long", "program": long, "input": {"n": 0}, "id": "flat"})).await;
    assert_eq!(started["status"], "running");
    // The run's progress sampled every 10 ms all along (the same polling early and late): the time
    // per step over `span` steps from step 10, and over the last `span` steps.
    let span: u64 = if quick { 200 } else { 1_000 };
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let late = loop {
        let run: Value =
            b.http.get(format!("{}/runs/flat", b.url)).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
        samples.push((Instant::now(), run["steps"].as_u64().unwrap()));
        if run["status"] != "running" {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(late["status"], "succeeded", "{late}");
    // Time per step between the first samples at or past `from` and `to`.
    let per_step = |from: u64, to: u64| -> f64 {
        let at = |n: u64| samples.iter().find(|(_, s)| *s >= n).copied().expect("a sample past the step");
        let ((t0, s0), (t1, s1)) = (at(from), at(to));
        t1.duration_since(t0).as_secs_f64() * 1e3 / (s1 - s0) as f64
    };
    let total = u64::from(steps);
    let (early_ms, late_ms) = (per_step(10, 10 + span), per_step(total - span, total));
    rows.push(
        Row::new(
            format!("flatness: time per step over steps {}–{total} of one run", total - span),
            format!("{late_ms:.3} ms"),
            format!("{early_ms:.3} ms over steps 10–{}", 10 + span),
            late_ms / early_ms,
        )
        .note("the run's record polled every 10 ms throughout; target ≤ 1.1"),
    );

    // 4. Transitions/s with many concurrent runs, against the gateway's events/s.
    let clients = 32;
    let events = if quick { 1_000 } else { 5_000 };
    let before = b.arrivals.count.load(Ordering::SeqCst);
    let next = Arc::new(AtomicUsize::new(0));
    let s = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, url, http) = (next.clone(), b.url.clone(), b.http.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= events {
                    break;
                }
                let r = http
                    .post(format!("{url}/"))
                    .header("content-type", "application/cloudevents+json")
                    .body(event(&format!("load-{i}")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 202);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    while b.arrivals.count.load(Ordering::SeqCst) < before + events {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let events_per_s = events as f64 / s.elapsed().as_secs_f64();
    let concurrent = if quick { 200 } else { 1_000 };
    let five = program(seq((0..5).map(|_| call("step"))));
    let s = Instant::now();
    let mut ids = Vec::with_capacity(concurrent);
    for i in 0..concurrent {
        let run = b
            .post_run(&json!({"composition": "five", "program": five, "input": {"n": 0}, "id": format!("many-{i}")}))
            .await;
        ids.push(run["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let run: Value = b
            .http
            .get(format!("{}/runs/{id}?wait=300", b.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    let transitions_per_s = (concurrent * 5) as f64 / s.elapsed().as_secs_f64();
    rows.push(
        Row::new(
            format!("transitions/s, {concurrent} concurrent 5-step runs"),
            format!("{transitions_per_s:.0}/s"),
            format!("{events_per_s:.0} events/s ingress → delivery, {clients} clients"),
            transitions_per_s / events_per_s,
        )
        .note("runs started one after another from one client, all conducted at once; target ≥ 0.5"),
    );

    // 5. Fused against conducted, 5 no-op steps, alternating.
    let rounds = if quick { 50 } else { 300 };
    let (mut fused, mut durable, mut express) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let s = Instant::now();
        assert_eq!(b.invoke("five").await, 5);
        fused.push(s.elapsed());
        let s = Instant::now();
        assert_eq!(b.run(&five, "durable").await["result"]["n"], 5);
        durable.push(s.elapsed());
        let s = Instant::now();
        assert_eq!(b.run(&five, "express").await["result"]["n"], 5);
        express.push(s.elapsed());
    }
    let (f50, d50, e50) =
        (percentile(&sorted(fused), 0.5), percentile(&sorted(durable), 0.5), percentile(&sorted(express), 0.5));
    rows.push(
        Row::new(
            "5 no-op steps fused into one process-mode invocation, p50",
            format!("{:.0} µs", us(f50)),
            format!("{:.0} µs conducted durably", us(d50)),
            us(d50) / us(f50),
        )
        .note(format!("{rounds} alternating rounds; ratio: how many times faster fused is; target ≥ 30")),
    );
    rows.push(
        Row::new(
            "5 no-op steps fused, against conducted express, p50",
            format!("{:.0} µs", us(f50)),
            format!("{:.0} µs conducted express", us(e50)),
            us(e50) / us(f50),
        )
        .note("same rounds; target ≥ 4"),
    );

    report("conductor", &rows);
    gateway.shutdown().await;
    b.runner.shutdown().await;
}
