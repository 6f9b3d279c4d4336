//! Functions Framework host benchmarks, each a ratio against a baseline measured in the same run:
//!
//! 1. requests/s and p50/p99 latency of `examples/hello` (release) served by the faas GCF host
//!    (`FUNCTION_TARGET=hello`, as Cloud Run starts it), with 8 concurrent connections, vs the
//!    Python Functions Framework (PyPI `functions-framework`, the reference implementation, as
//!    its `functions-framework` command serves it) serving the same trivial function, and vs the
//!    same binary under the faas local HTTP host (`PORT` only);
//! 2. start-up, spawn to first answer: the bare binary, the binary started through the source
//!    archive's `main.py` (the exec that replaces the Python process, as the platform's Python
//!    runtime imports it), and through the reference's `functions-framework` command importing
//!    that `main.py` (what a 2nd-gen instance pays on a cold start before the binary runs);
//! 3. cold start of the deployed archive in the local Cloud Functions: `examples/hello` deployed
//!    by the runner, its instance stopped when idle, and the next invoke through the runner (the
//!    emulator starts the runtime's entry point, which execs the binary, and forwards the
//!    request once it listens), vs a warm invoke of the same function and the bare binary's
//!    start-up of part 2.
//!
//! Run: `cargo bench -p faas-runner-gcf --bench host` (`FAAS_BENCH_QUICK=1` for a short run).
//! It needs python3 with venv and pip (the reference is installed into a scratch virtualenv under
//! the target directory), prints a Markdown table and writes the figures to
//! `$CARGO_TARGET_DIR/bench/gcf-host.json`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faas_api::{AppSpec, BackendProfile, Config, InvokeRequest, NoProgress, Payload, Runner};
use faas_bench_support::{concurrent, ms, percentile, quick, report, workspace_root, Row};
use faas_runner_gcf::deploy::GcfRunner;

const BODY: &str = r#"{"name":"bench"}"#;
const CONNECTIONS: usize = 8;

/// The reference serving the same function as `examples/hello`'s `hello`.
const PY_HELLO: &str = r#"
import functions_framework

@functions_framework.http
def hello(request):
    body = request.get_json(silent=True) or {}
    return {"greeting": "Hello, %s!" % body.get("name", "world")}
"#;

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` (which listens on `port`) and waits until it answers `path`; the time that took.
async fn start(mut cmd: Command, port: u16, path: &str) -> (Server, Duration) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start the server");
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut server = Server { child, url };
    loop {
        if let Ok(resp) = http.post(&server.url).header("content-type", "application/json").body(BODY).send().await {
            assert!(resp.status().is_success(), "{} answered {}", server.url, resp.status());
            return (server, started.elapsed());
        }
        assert!(server.child.try_wait().unwrap().is_none(), "{} exited", server.url);
        assert!(started.elapsed() < Duration::from_secs(60), "{} did not start", server.url);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The environment Cloud Run gives an instance of function `hello`.
fn cloud_run_env(cmd: &mut Command, port: u16) -> &mut Command {
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("PORT", port.to_string())
        .env("FUNCTION_TARGET", "hello")
        .env("K_SERVICE", "hello")
        .env("FAAS_CONCURRENCY", CONNECTIONS.to_string())
}

fn gcf_host(binary: &Path, port: u16) -> Command {
    let mut cmd = Command::new(binary);
    cloud_run_env(&mut cmd, port);
    cmd
}

fn local_http(binary: &Path, port: u16) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_clear().env("PORT", port.to_string());
    cmd
}

fn reference(venv: &Path, source: &Path, port: u16) -> Command {
    let mut cmd = Command::new(venv.join("bin/functions-framework"));
    cmd.args(["--target", "hello", "--signature-type", "http", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--source")
        .arg(source);
    cmd
}

struct Load {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn load(url: &str, total: usize) -> Load {
    let http = reqwest::Client::new();
    let (lat, wall) = concurrent(CONNECTIONS, total, |_| {
        let http = http.clone();
        async move {
            let resp = http.post(url).header("content-type", "application/json").body(BODY).send().await.unwrap();
            assert!(resp.status().is_success(), "{url}: {}", resp.status());
            let body = resp.bytes().await.unwrap();
            assert!(body.windows(5).any(|w| w == b"bench"), "{url}: {}", String::from_utf8_lossy(&body));
        }
    })
    .await;
    Load { per_second: total as f64 / wall.as_secs_f64(), p50: percentile(&lat, 0.5), p99: percentile(&lat, 0.99) }
}

fn throughput_rows(rows: &mut Vec<Row>, faas: &Load, other: &Load, name: &str, total: usize) {
    rows.push(
        Row::new(
            format!("GCF host requests/s ({CONNECTIONS} connections) vs {name}"),
            format!("{:.0}/s", faas.per_second),
            format!("{:.0}/s {name}", other.per_second),
            faas.per_second / other.per_second,
        )
        .note(format!(
            "p50 {:.3} vs {:.3} ms (ratio {:.2}), p99 {:.3} vs {:.3} ms (ratio {:.2}); {total} requests each",
            ms(faas.p50),
            ms(other.p50),
            ms(faas.p50) / ms(other.p50),
            ms(faas.p99),
            ms(other.p99),
            ms(faas.p99) / ms(other.p99)
        )),
    );
}

/// The median of `n` start-ups of what `command` makes.
async fn startup(n: usize, path: &str, command: impl Fn(u16) -> Command) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let port = common::free_port();
        times.push(start(command(port), port, path).await.1);
    }
    times.sort();
    percentile(&times, 0.5)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    eprintln!("building examples/hello (release)...");
    let binary: PathBuf =
        faas_packaging::build::cargo_build(&workspace_root().join("examples/hello"), Some("hello"), true, &NoProgress)
            .await
            .expect("release build of examples/hello");
    eprintln!("installing the reference functions-framework...");
    let venv = tokio::task::spawn_blocking(common::reference_env).await.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("main.py");
    std::fs::write(&source, PY_HELLO).unwrap();
    let total = if quick() { 2_000 } else { 20_000 };
    let mut rows = Vec::new();

    // 1. Throughput and latency, one server at a time.
    let port = common::free_port();
    let (server, _) = start(gcf_host(&binary, port), port, "/").await;
    let faas = load(&server.url, total).await;
    drop(server);
    let port = common::free_port();
    let (server, _) = start(local_http(&binary, port), port, "/functions/hello").await;
    let local = load(&server.url, total).await;
    drop(server);
    let port = common::free_port();
    let (server, _) = start(reference(&venv, &source, port), port, "/").await;
    let python = load(&server.url, total).await;
    drop(server);
    throughput_rows(&mut rows, &faas, &python, "the Python Functions Framework", total);
    throughput_rows(&mut rows, &faas, &local, "the faas local HTTP host", total);

    // 2. Start-up: the bare binary, through main.py's exec, through the reference importing it.
    let archive = scratch.path().join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    faas_runner_gcf::package::write_source(&binary, &archive).expect("the source archive's files");
    let main_py = archive.join("main.py");
    let starts = if quick() { 5 } else { 30 };
    let bare = startup(starts, "/", |port| gcf_host(&binary, port)).await;
    let exec = startup(starts, "/", |port| {
        let mut cmd = Command::new("python3");
        cloud_run_env(&mut cmd, port).arg(&main_py).current_dir(&archive);
        cmd
    })
    .await;
    let framework = startup(starts, "/", |port| {
        let mut cmd = reference(&venv, &main_py, port);
        cloud_run_env(&mut cmd, port).current_dir(&archive);
        cmd
    })
    .await;
    rows.push(
        Row::new(
            "start-up to first answer through main.py's exec (python3 main.py)",
            format!("{:.1} ms", ms(exec)),
            format!("{:.1} ms bare binary", ms(bare)),
            ms(exec) / ms(bare),
        )
        .note(format!("median of {starts}; the packaging's own cost: {:.1} ms", ms(exec) - ms(bare))),
    );
    rows.push(
        Row::new(
            "start-up to first answer through functions-framework importing main.py",
            format!("{:.1} ms", ms(framework)),
            format!("{:.1} ms bare binary", ms(bare)),
            ms(framework) / ms(bare),
        )
        .note(format!(
            "median of {starts}; what a cold 2nd-gen instance adds before the binary runs: {:.1} ms",
            ms(framework) - ms(bare)
        )),
    );

    // 3. Cold start of the deployed archive in the local Cloud Functions (its launcher imports
    // main.py, as the Python runtime does; no Functions Framework on the way).
    let idle = Duration::from_millis(400);
    let emulator = faas_emulator_gcf::start(faas_emulator_gcf::EmulatorOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        search_path: false,
        idle_timeout: Some(idle),
        ..Default::default()
    })
    .await
    .unwrap();
    let runner = GcfRunner::from_profile(&BackendProfile::new("gcp", "gcf").with("endpoint", emulator.url())).unwrap();
    let manifest = faas_packaging::build::describe(&binary).await.unwrap();
    let spec = AppSpec::from_parts(&Config::default_for("hello"), binary.clone(), manifest).unwrap();
    let package = runner.package(&spec, &NoProgress).await.unwrap();
    runner.deploy(&package, &NoProgress).await.unwrap();
    let invoke = || async {
        let request =
            InvokeRequest::new("hello", Payload::new(BODY.as_bytes().to_vec(), Some("application/json".into())));
        runner.invoke(request).await.expect("hello answers");
    };
    invoke().await;
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..starts {
        tokio::time::sleep(idle * 3).await;
        let t = Instant::now();
        invoke().await;
        cold.push(t.elapsed());
        let t = Instant::now();
        invoke().await;
        warm.push(t.elapsed());
    }
    cold.sort();
    warm.sort();
    let (cold50, warm50) = (percentile(&cold, 0.5), percentile(&warm, 0.5));
    rows.push(
        Row::new(
            "local Cloud Functions: cold invoke of the deployed archive (runner → emulator → main.py exec → binary)",
            format!("{:.1} ms", ms(cold50)),
            format!("{:.1} ms bare binary start-up", ms(bare)),
            ms(cold50) / ms(bare),
        )
        .note(format!(
            "median of {starts}; a warm invoke of the same function {:.2} ms, so the cold start adds {:.1} ms",
            ms(warm50),
            ms(cold50) - ms(warm50)
        )),
    );
    emulator.shutdown().await;
    report("gcf-host", &rows);
}
