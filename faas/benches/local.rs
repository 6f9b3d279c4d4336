//! Local-backend benchmarks, each reported as a ratio against a baseline measured in the same run.
//!
//! `cargo bench -p faas --bench local` prints a table (and writes `target/bench/local.json`):
//! 1. in-process invoke overhead of a trivial typed handler vs calling the handler directly;
//! 2. process-mode warm invoke latency (p50, p99) and invocations/s, vs in-process invoke;
//! 3. cold start (spawn to first response) of a release build of `examples/hello`, vs spawning
//!    `/bin/true` to exit;
//! 4. the HTTP front's requests/s vs a bare hyper echo server on the same port under the same load;
//! 5. a composition of five steps fused into one process-mode invocation (examples/pipeline's
//!    `five`) vs the client invoking the step five times, one after another;
//! 6. a 5-stage pipeline doing real work (examples/pipeline's `report` over a CSV of 20,000
//!    order lines), fused vs unfused (`FAAS_FUSE=off`, each stage its own invocation), both in
//!    process mode: latency, billed time (the activation records' `billed_us`, summed over every
//!    activation a run made) and cold starts.
//!
//! Set `FAAS_BENCH_QUICK=1` for a short run (fewer iterations). Name sections to run only those:
//! `cargo bench -p faas --bench local -- front` (sections: `inproc`, `process`, `cold`, `front`, `compose`, `pipeline`; the
//! in-process row always runs, as later rows use it as their baseline).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use faas::{App, Context, Error, InvokeRequest, NoProgress, Payload, Runner};
use faas_bench_support::{Row, percentile, quick, release_app, report, us};
use faas_runner_local::pool::{FunctionPool, PoolOptions};
use faas_runner_local::{LocalOptions, LocalRunner};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Hello {
    name: String,
}

#[derive(Serialize)]
struct Reply {
    message: String,
}

async fn hello(_cx: Context, req: Hello) -> Result<Reply, Error> {
    Ok(Reply { message: format!("Hello, {}!", req.name) })
}

async fn echo(_cx: Context, p: Payload) -> Result<Payload, Error> {
    Ok(p)
}

#[tokio::main]
async fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |section: &str| filter.is_empty() || filter.iter().any(|f| f == section);
    let mut rows = Vec::new();
    let n = if quick() { 2_000 } else { 50_000 };

    // 1. In-process overhead.
    let cx = Context::builder("hello").build();
    let t = Instant::now();
    for i in 0..n {
        let r = hello(cx.clone(), Hello { name: format!("Ada{}", i % 10) }).await.unwrap();
        std::hint::black_box(r);
    }
    let direct = t.elapsed() / n;
    let runner =
        LocalRunner::in_process(App::new().function("hello", hello).raw("echo", echo), LocalOptions::default())
            .unwrap();
    let body = Bytes::from_static(br#"{"name":"Ada"}"#);
    let t = Instant::now();
    for _ in 0..n {
        let out = runner
            .invoke(InvokeRequest::new("hello", Payload::new(body.clone(), Some("application/json".into()))))
            .await
            .unwrap();
        std::hint::black_box(out);
    }
    let inproc = t.elapsed() / n;
    rows.push(Row {
        what: "in-process invoke (typed hello)".into(),
        value: format!("{:.2} µs", us(inproc)),
        baseline: format!("{:.2} µs direct call", us(direct)),
        ratio: us(inproc) / us(direct),
        note: "includes JSON decode/encode, panic guard, deadline task, activation record".into(),
    });

    if wanted("process") || wanted("cold") {
        process_and_cold(&mut rows, &body, inproc, &wanted).await;
    }
    if wanted("front") {
        rows.push(front(runner).await);
    }
    if wanted("compose") {
        compose(&mut rows).await;
    }
    if wanted("pipeline") {
        pipeline(&mut rows).await;
    }
    report("local", &rows);
}

/// Sections 2 and 3, which need a release build of examples/hello.
async fn process_and_cold(rows: &mut Vec<Row>, body: &Bytes, inproc: Duration, wanted: &dyn Fn(&str) -> bool) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    eprintln!("building examples/hello (release)...");
    let binary =
        faas_packaging::build::cargo_build(&workspace.join("examples/hello"), Some("hello"), true, &NoProgress)
            .await
            .expect("release build of examples/hello");
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);

    if wanted("process") {
        process(rows, body, inproc, &binary).await;
    }
    if wanted("cold") {
        cold(rows, body, &binary, size).await;
    }
}

/// Section 2: process-mode warm invoke.
async fn process(rows: &mut Vec<Row>, body: &Bytes, inproc: Duration, binary: &Path) {
    let proc_runner = LocalRunner::new(LocalOptions::default()).unwrap();
    let manifest = faas_packaging::build::describe(binary).await.unwrap();
    let spec = faas::AppSpec::from_parts(&faas::Config::default_for("hello"), binary.to_path_buf(), manifest).unwrap();
    let package = proc_runner.package(&spec, &NoProgress).await.unwrap();
    proc_runner.deploy(&package, &NoProgress).await.unwrap();
    let warm_n = if quick() { 500 } else { 5_000 };
    let mut lat = Vec::with_capacity(warm_n);
    proc_runner
        .invoke(InvokeRequest::new("hello", Payload::new(body.clone(), Some("application/json".into()))))
        .await
        .unwrap();
    let t = Instant::now();
    for _ in 0..warm_n {
        let s = Instant::now();
        proc_runner
            .invoke(InvokeRequest::new("hello", Payload::new(body.clone(), Some("application/json".into()))))
            .await
            .unwrap();
        lat.push(s.elapsed());
    }
    let total = t.elapsed();
    lat.sort();
    let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));
    rows.push(Row {
        what: "process-mode warm invoke p50".into(),
        value: format!("{:.1} µs", us(p50)),
        baseline: format!("{:.2} µs in-process", us(inproc)),
        ratio: us(p50) / us(inproc),
        note: format!(
            "p99 {:.1} µs; {:.0} invocations/s sequential; target p50 < 200 µs",
            us(p99),
            warm_n as f64 / total.as_secs_f64()
        ),
    });
    // Concurrent throughput: 8 callers, 8 instances.
    let calls = if quick() { 400 } else { 4_000 };
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let r = proc_runner.clone();
        let b = body.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..calls / 8 {
                r.invoke(InvokeRequest::new("hello", Payload::new(b.clone(), Some("application/json".into()))))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let conc = calls as f64 / t.elapsed().as_secs_f64();
    rows.push(Row {
        what: "process-mode invocations/s, 8 concurrent".into(),
        value: format!("{conc:.0}/s"),
        baseline: format!("{:.0}/s sequential", warm_n as f64 / total.as_secs_f64()),
        ratio: conc / (warm_n as f64 / total.as_secs_f64()),
        note: "2 cores shared by caller, pool and functions".into(),
    });
    proc_runner.shutdown().await;
}

/// Section 3: cold start.
async fn cold(rows: &mut Vec<Row>, body: &Bytes, binary: &Path, size: u64) {
    let colds = if quick() { 5 } else { 30 };
    let sock = tempfile::Builder::new().prefix("faas-bench-").tempdir_in("/tmp").unwrap();
    let mut cold = Vec::new();
    let mut spawn_floor = Vec::new();
    for i in 0..colds {
        let s = Instant::now();
        let st = tokio::process::Command::new("/bin/true").status().await.unwrap();
        assert!(st.success());
        spawn_floor.push(s.elapsed());
        let mut fspec = faas::FunctionSpec::new("hello");
        fspec.prewarm = 0;
        let pool = FunctionPool::start(
            fspec,
            binary.to_path_buf(),
            PoolOptions {
                socket_dir: sock.path().to_path_buf(),
                idle_timeout: Duration::from_secs(60),
                memory_limit: false,
                max_body: 6 << 20,
                max_waiting: 10,
                echo_logs: false,
                services_url: Default::default(),
                events_url: None,
            },
        );
        let deadline = std::time::SystemTime::now() + Duration::from_secs(10);
        let s = Instant::now();
        let out = pool
            .invoke(
                &format!("cold-{i}"),
                deadline,
                &faas::TraceContext::random().traceparent(),
                Payload::new(body.clone(), Some("application/json".into())),
            )
            .await;
        cold.push(s.elapsed());
        assert!(out.cold && out.result.is_ok(), "{:?}", out.result);
        pool.retire().await;
    }
    cold.sort();
    spawn_floor.sort();
    let (c50, f50) = (percentile(&cold, 0.5), percentile(&spawn_floor, 0.5));
    rows.push(Row {
        what: "cold start, spawn to first response (release hello)".into(),
        value: format!("{:.2} ms p50", us(c50) / 1000.0),
        baseline: format!("{:.2} ms spawn+exit of /bin/true", us(f50) / 1000.0),
        ratio: us(c50) / us(f50),
        note: format!(
            "p90 {:.2} ms; binary {:.1} MiB; target < 10 ms",
            us(percentile(&cold, 0.9)) / 1000.0,
            size as f64 / 1048576.0
        ),
    });
}

/// Section 4: the front vs bare hyper on the same port and load.
async fn front(runner: std::sync::Arc<LocalRunner>) -> Row {
    // Short rounds on the same port, bare and front back to back (the order swapped every round),
    // and the median of the per-round ratios: on a shared two-core VM the machine's speed drifts
    // by more than the gap being measured within seconds, but rarely within one pair of rounds.
    let rounds = if quick() { 2 } else { 12 };
    let round = Duration::from_millis(750);
    let conns = 16;
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let (mut bare_all, mut front_all, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        let mut pair = [0.0; 2];
        for which in if i % 2 == 0 { [0, 1] } else { [1, 0] } {
            pair[which] = if which == 0 {
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                let bare = tokio::spawn(bare_echo(listener));
                let rps = load(addr, "/", conns, round).await;
                bare.abort();
                let _ = bare.await;
                rps
            } else {
                let options = faas_front::FrontOptions { addr, ..Default::default() };
                let front = faas_front::bind(runner.clone(), options).await.unwrap();
                let rps = load(addr, "/functions/echo", conns, round).await;
                front.shutdown().await;
                rps
            };
        }
        bare_all.push(pair[0]);
        front_all.push(pair[1]);
        ratios.push(pair[1] / pair[0]);
    }
    ratios.sort_by(f64::total_cmp);
    let median =
        |v: &[f64]| if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Row {
        what: "faas dev HTTP front, requests/s (raw echo, in-process)".into(),
        value: format!("{:.0}/s", mean(&front_all)),
        baseline: format!("{:.0}/s bare hyper echo", mean(&bare_all)),
        ratio: median(&ratios),
        note: format!(
            "median of {rounds} paired {} ms rounds (range {:.2}–{:.2}); {conns} keep-alive connections, same port {}; \
             target ≥ 0.7",
            round.as_millis(),
            ratios[0],
            ratios[ratios.len() - 1],
            addr.port()
        ),
    }
}

async fn bare_echo(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { return };
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(body)))
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

/// Drives `conns` keep-alive connections for `dur` and returns requests/s. The load runs on its own
/// thread and single-threaded runtime, like an external load generator: it does not share the
/// server's scheduler, so the server under test is the only thing that differs between runs.
async fn load(addr: SocketAddr, path: &'static str, conns: usize, dur: Duration) -> f64 {
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(drive(addr, path, conns, dur))
    })
    .await
    .unwrap()
}

async fn drive(addr: SocketAddr, path: &'static str, conns: usize, dur: Duration) -> f64 {
    let end = Instant::now() + dur;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
            tokio::spawn(conn);
            let mut n = 0u64;
            while Instant::now() < end {
                let req = hyper::Request::post(path)
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/octet-stream")
                    .body(Full::new(Bytes::from_static(b"0123456789abcdef")))
                    .unwrap();
                sender.ready().await.unwrap();
                let resp = sender.send_request(req).await.unwrap();
                assert!(resp.status().is_success(), "{}", resp.status());
                let _ = resp.into_body().collect().await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / dur.as_secs_f64()
}

/// Section 5: five steps fused into one invocation vs five invocations conducted by the caller,
/// both through the local runner in process mode (a release build of examples/pipeline); and, in
/// process, what the machine adds per step: the fused run vs calling the step's handler 5 times.
async fn compose(rows: &mut Vec<Row>) {
    compose_in_process(rows).await;
    let spec = release_app("examples/pipeline", "example-pipeline", "pipeline").await;
    let runner = LocalRunner::new(LocalOptions::default()).unwrap();
    let package = runner.package(&spec, &NoProgress).await.unwrap();
    runner.deploy(&package, &NoProgress).await.unwrap();
    let invoke = |function: &'static str, n: u64| {
        let runner = runner.clone();
        async move {
            let body = format!("{{\"n\":{n}}}");
            let out = runner
                .invoke(InvokeRequest::new(function, Payload::new(body, Some("application/json".into()))))
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(out.payload.body()).unwrap()["n"].as_u64().unwrap()
        }
    };
    // Warm both functions' instances first.
    assert_eq!(invoke("five", 0).await, 5);
    assert_eq!(invoke("step", 0).await, 1);
    let rounds = if quick() { 300 } else { 3_000 };
    let (mut fused, mut conducted) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    // Alternate the two, so that drift on the machine falls on both alike.
    for _ in 0..rounds {
        let s = Instant::now();
        assert_eq!(invoke("five", 0).await, 5);
        fused.push(s.elapsed());
        let s = Instant::now();
        let mut n = 0;
        for _ in 0..5 {
            n = invoke("step", n).await;
        }
        assert_eq!(n, 5);
        conducted.push(s.elapsed());
    }
    fused.sort();
    conducted.sort();
    let (f50, f99, c50, c99) =
        (percentile(&fused, 0.5), percentile(&fused, 0.99), percentile(&conducted, 0.5), percentile(&conducted, 0.99));
    rows.push(Row {
        what: "composition of 5 steps fused into one process-mode invocation, p50".into(),
        value: format!("{:.1} µs (p99 {:.1} µs)", us(f50), us(f99)),
        baseline: format!("{:.1} µs (p99 {:.1} µs), the client invoking the step 5 times", us(c50), us(c99)),
        ratio: us(c50) / us(f50),
        note: "ratio: how many times faster the fused run is; one invocation (and one instance) instead of five".into(),
    });
    runner.shutdown().await;
}

/// One deployment of examples/pipeline for section 6: its runner, and the front that serves
/// the runner's `cx.invoke` to its process-mode children (what `faas dev` runs).
struct Deployment {
    runner: std::sync::Arc<LocalRunner>,
    front: faas_front::Front,
}

impl Deployment {
    async fn start(spec: &faas::AppSpec) -> Deployment {
        let runner = LocalRunner::new(LocalOptions::default()).unwrap();
        let options = faas_front::FrontOptions { addr: SocketAddr::from(([127, 0, 0, 1], 0)), ..Default::default() };
        let front = faas_front::bind(runner.clone(), options).await.unwrap();
        runner.set_services_url(front.url());
        let package = runner.package(spec, &NoProgress).await.unwrap();
        runner.deploy(&package, &NoProgress).await.unwrap();
        Deployment { runner, front }
    }

    /// Runs `report` over `csv`: the time it took and the line count it answered.
    async fn report(&self, csv: &Payload) -> (Duration, u64) {
        let s = Instant::now();
        let out = self.runner.invoke(InvokeRequest::new("report", csv.clone())).await.unwrap();
        let took = s.elapsed();
        let v: serde_json::Value = serde_json::from_slice(out.payload.body()).unwrap();
        (took, v["lines"].as_u64().unwrap())
    }

    /// Every activation recorded so far (all functions), newest first.
    async fn activations(&self) -> Vec<faas::Activation> {
        let query = faas::ActivationQuery { limit: Some(100_000), ..Default::default() };
        self.runner.activations(query).await.unwrap()
    }

    async fn stop(self) {
        self.front.shutdown().await;
        self.runner.shutdown().await;
    }
}

/// Section 6: `report` fused (one invocation; its stages dispatched inside it) vs unfused (each
/// stage invoked through the backend while `report` waits), in process mode.
async fn pipeline(rows: &mut Vec<Row>) {
    let spec = release_app("examples/pipeline", "example-pipeline", "pipeline").await;
    let mut unfused_spec = spec.clone();
    faas::composition::fused::unfuse(&mut unfused_spec.functions);
    // 20,000 order lines over 40 categories, one in 50 malformed: about 300 KB of CSV, and JSON
    // of the same order between the stages.
    let mut csv = String::new();
    for i in 0..20_000u64 {
        if i % 50 == 49 {
            csv.push_str("not an order line\n");
        } else {
            csv.push_str(&format!("cat{}-{},{},{}\n", i % 40, i, 1 + i % 7, 100 + (i * 37) % 5_000));
        }
    }
    let input = Payload::json(&serde_json::json!({ "csv": csv })).unwrap();
    let lines = 20_000 - 20_000 / 50;
    let (fused, unfused) = (Deployment::start(&spec).await, Deployment::start(&unfused_spec).await);

    // Cold: the first run of each deployment, every instance it needs started for it.
    let (fused_cold, n) = fused.report(&input).await;
    assert_eq!(n, lines);
    let (unfused_cold, n) = unfused.report(&input).await;
    assert_eq!(n, lines);
    let colds = |acts: &[faas::Activation]| acts.iter().filter(|a| a.cold).count();
    let (fused_colds, unfused_colds) = (colds(&fused.activations().await), colds(&unfused.activations().await));

    // Warm: the two alternated, so that drift on the machine falls on both alike.
    let rounds = if quick() { 20 } else { 200 };
    let (mut f, mut u) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        f.push(fused.report(&input).await.0);
        u.push(unfused.report(&input).await.0);
    }
    f.sort();
    u.sort();
    // Billed: every activation's `billed_us` (the warm runs' only: the first run is left out),
    // per run.
    let billed = |acts: Vec<faas::Activation>, per_run: usize| -> (f64, usize) {
        let warm = &acts[..rounds * per_run];
        (warm.iter().map(|a| a.billed_us).sum::<u64>() as f64 / rounds as f64, warm.len() / rounds)
    };
    let (fused_billed, fused_acts) = billed(fused.activations().await, 1);
    let (unfused_billed, unfused_acts) = billed(unfused.activations().await, 6);
    fused.stop().await;
    unfused.stop().await;
    let (f50, f99, u50, u99) = (percentile(&f, 0.5), percentile(&f, 0.99), percentile(&u, 0.5), percentile(&u, 0.99));
    rows.push(Row {
        what: "5-stage pipeline (20,000 CSV lines) fused, warm p50".into(),
        value: format!("{:.2} ms (p99 {:.2} ms)", us(f50) / 1e3, us(f99) / 1e3),
        baseline: format!(
            "{:.2} ms (p99 {:.2} ms) unfused, each stage its own invocation",
            us(u50) / 1e3,
            us(u99) / 1e3
        ),
        ratio: us(f50) / us(u50),
        note: format!("fused takes {:.0}% less time", 100.0 * (1.0 - us(f50) / us(u50))),
    });
    rows.push(Row {
        what: "5-stage pipeline fused, billed time per run".into(),
        value: format!("{:.2} ms over {fused_acts} activation(s)", fused_billed / 1e3),
        baseline: format!("{:.2} ms over {unfused_acts} activations unfused", unfused_billed / 1e3),
        ratio: fused_billed / unfused_billed,
        note: format!(
            "fused bills {:.0}% less: unfused, `report` is billed while each stage runs (double billing)",
            100.0 * (1.0 - fused_billed / unfused_billed)
        ),
    });
    rows.push(Row {
        what: "5-stage pipeline fused, first run (cold)".into(),
        value: format!("{:.2} ms, {fused_colds} cold start(s)", us(fused_cold) / 1e3),
        baseline: format!("{:.2} ms, {unfused_colds} cold starts unfused", us(unfused_cold) / 1e3),
        ratio: us(fused_cold) / us(unfused_cold),
        note: "each unfused stage starts an instance of its own on the first run".into(),
    });
}

/// The fused composition's own cost: `five` through `App::call` vs `step` through `App::call`
/// five times, in one process.
async fn compose_in_process(rows: &mut Vec<Row>) {
    use faas::AppExt;
    use faas::composition::{call, seq};
    async fn step(_cx: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> {
        Ok(serde_json::json!({"n": v["n"].as_u64().unwrap_or(0) + 1}))
    }
    let app = App::new().function("step", step).composition("five", seq((0..5).map(|_| call("step"))));
    let input = || Payload::new(r#"{"n":0}"#, Some("application/json".into()));
    let rounds = if quick() { 2_000 } else { 50_000 };
    let (mut fused, mut direct) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        let s = Instant::now();
        std::hint::black_box(app.call("five", Context::builder("five").build(), input()).await.unwrap());
        fused.push(s.elapsed());
        let s = Instant::now();
        let mut p = input();
        for _ in 0..5 {
            p = app.call("step", Context::builder("step").build(), p).await.unwrap();
        }
        std::hint::black_box(p);
        direct.push(s.elapsed());
    }
    fused.sort();
    direct.sort();
    let (f50, d50) = (percentile(&fused, 0.5), percentile(&direct, 0.5));
    rows.push(Row {
        what: "composition of 5 steps in process (App::call), p50".into(),
        value: format!("{:.2} µs", us(f50)),
        baseline: format!("{:.2} µs, the step's handler called 5 times", us(d50)),
        ratio: us(f50) / us(d50),
        note: format!("the machine adds {:.2} µs per step", (us(f50) - us(d50)) / 5.0),
    });
}
