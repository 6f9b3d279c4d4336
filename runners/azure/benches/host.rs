//! Custom-handler host benchmarks, each a ratio against a baseline measured in the same run, all
//! on the test fixture (fixture/main.rs, release build) and its typed function `hello`:
//!
//! 1. requests/s and p50/p99 latency, 8 concurrent keep-alive connections, of
//!    - the default mode: `POST /hello` with the `{"Data": {"req": ...}, "Metadata": ...}` body the
//!      Functions host sends (chunked, its three headers), answered `{"Outputs": ...}`;
//!    - the forwarding mode: `POST /api/hello` with the caller's own JSON body, answered raw;
//!    - the faas local HTTP host (the same binary started with only `PORT`): `POST /functions/hello`;
//!    - the whole path through the local Functions host (faas-emulator-azure, in this process):
//!      `POST /api/hello?code=<function key>`, the host building the default-mode request, the
//!      handler answering it, the host writing the HTTP output back;
//! 2. cold start: spawn to the first answered `GET /` (the Functions host's readiness probe), vs
//!    the local HTTP host's spawn to its first answer.
//!
//! Run: `cargo bench -p faas-runner-azure --bench host` (`FAAS_BENCH_QUICK=1` for a short run).
//! It prints a Markdown table and writes the figures to `$CARGO_TARGET_DIR/bench/azure-host.json`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faas_bench_support::{concurrent, ms, percentile, quick, report, Row};
use serde_json::json;

const BODY: &str = r#"{"name":"bench"}"#;
const CONNECTIONS: usize = 8;
const HOST_VERSION: &str = "4.1037.0.0";

const HOST_JSON: &str = r#"{"version": "2.0", "functionTimeout": "00:00:30",
 "extensions": {"http": {"routePrefix": "api"}},
 "customHandler": {"description": {"defaultExecutablePath": "faas-app"}, "enableForwardingHttpRequest": FORWARDING}}"#;

const FUNCTION_JSON: &str = r#"{"bindings": [
 {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function", "methods": ["post"], "route": "hello"},
 {"type": "http", "direction": "out", "name": "res"}]}"#;

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The fixture, built in release mode.
fn build_fixture() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "faas-runner-azure",
            "--example",
            "faas-azure-fixture",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo");
    assert!(out.status.success(), "the release build of the fixture failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "faas-azure-fixture")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the fixture's executable")
}

/// A function app folder with `hello` (HTTP in/out, route `hello`).
fn app_folder(forwarding: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("host.json"), HOST_JSON.replace("FORWARDING", &forwarding.to_string())).unwrap();
    std::fs::create_dir(dir.path().join("hello")).unwrap();
    std::fs::write(dir.path().join("hello/function.json"), FUNCTION_JSON).unwrap();
    dir
}

/// The fixture as the Functions host starts its custom handler.
fn custom_handler(binary: &Path, folder: &Path, port: u16) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("FUNCTIONS_WORKER_RUNTIME", "custom")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
        .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", "bench-worker")
        .env("FUNCTIONS_HTTPWORKER_ID", "bench-worker")
        .env("FUNCTIONS_APP_ROOT_PATH", folder)
        .current_dir(folder);
    cmd
}

/// The same binary with only `PORT`: the local HTTP host (in an empty directory, so that no
/// `faas.toml` is found).
fn local_http(binary: &Path, dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_clear().env("PORT", port.to_string()).current_dir(dir);
    cmd
}

/// Spawns `cmd` and polls `GET /` every millisecond until any answer; the time that took.
async fn start(mut cmd: Command, port: u16) -> (Server, Duration) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start the fixture");
    let mut server = Server { child, port };
    loop {
        if http.get(format!("http://127.0.0.1:{port}/")).send().await.is_ok() {
            return (server, started.elapsed());
        }
        assert!(server.child.try_wait().unwrap().is_none(), "the fixture exited");
        assert!(started.elapsed() < Duration::from_secs(30), "the fixture did not start");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The default-mode body the Functions host sends for `POST /api/hello` with [`BODY`].
fn invocation_body() -> Vec<u8> {
    let body = json!({"Data": {"req": {"Url": "https://bench.azurewebsites.net/api/hello", "Method": "POST", "Query": {},
        "Headers": {"Accept": ["*/*"], "Host": ["bench.azurewebsites.net"], "Content-Type": ["application/json"],
            "Content-Length": [BODY.len().to_string()]},
        "Params": {}, "Identities": [{"AuthenticationType": "WebJobsAuthLevel", "IsAuthenticated": true, "Claims": []}],
        "Body": BODY}},
        "Metadata": {"name": "\"bench\"", "Query": {}, "Headers": {"Accept": "*/*", "Host": "bench.azurewebsites.net"},
            "sys": {"MethodName": "hello", "UtcNow": "2026-12-01T19:22:58.907293Z", "RandGuid": "893e1d80-0000-0000-0000-000000000000"}}});
    serde_json::to_vec(&body).unwrap()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Default,
    Forwarding,
    Local,
    Emulator,
}

struct Load {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn load(port: u16, mode: Mode, total: usize, key: &str) -> Load {
    let http = reqwest::Client::new();
    let invocation = invocation_body();
    let (lat, wall) = concurrent(CONNECTIONS, total, |_| {
        let http = http.clone();
        let invocation = invocation.clone();
        let key = key.to_string();
        async move {
            let request = match mode {
                Mode::Default => {
                    let half = invocation.len() / 2;
                    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                        vec![Ok(invocation[..half].to_vec()), Ok(invocation[half..].to_vec())];
                    http.post(format!("http://127.0.0.1:{port}/hello"))
                        .header("Content-Type", "application/json; charset=utf-8")
                        .header("X-Azure-Functions-HostVersion", HOST_VERSION)
                        .header("X-Azure-Functions-InvocationId", uuid::Uuid::new_v4().to_string())
                        .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
                        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
                }
                Mode::Forwarding => http
                    .post(format!("http://127.0.0.1:{port}/api/hello"))
                    .header("Content-Type", "application/json")
                    .header("X-Azure-Functions-HostVersion", HOST_VERSION)
                    .header("X-Azure-Functions-InvocationId", uuid::Uuid::new_v4().to_string())
                    .body(BODY),
                Mode::Local => http
                    .post(format!("http://127.0.0.1:{port}/functions/hello"))
                    .header("Content-Type", "application/json")
                    .body(BODY),
                Mode::Emulator => http
                    .post(format!("http://127.0.0.1:{port}/api/hello?code={key}"))
                    .header("Content-Type", "application/json")
                    .body(BODY),
            };
            let resp = request.send().await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
            let body = resp.bytes().await.unwrap();
            assert!(body.windows(5).any(|w| w == b"bench"), "{}", String::from_utf8_lossy(&body));
        }
    })
    .await;
    Load { per_second: total as f64 / wall.as_secs_f64(), p50: percentile(&lat, 0.5), p99: percentile(&lat, 0.99) }
}

fn throughput_row(what: &str, faas: &Load, other: &Load, name: &str, total: usize) -> Row {
    Row::new(
        format!("{what} requests/s ({CONNECTIONS} connections) vs {name}"),
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
    ))
}

/// The load through the local Functions host: the fixture deployed as site `bench` (a
/// default-mode folder with the binary as `faas-app`), called at `/api/hello` with its key.
async fn through_the_emulator(binary: &Path, total: usize) -> Load {
    let folder = app_folder(false);
    std::fs::copy(binary, folder.path().join("faas-app")).unwrap();
    let options = faas_emulator_azure::EmulatorOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        echo_logs: false,
        ..Default::default()
    };
    let emulator = faas_emulator_azure::start(options).await.unwrap();
    emulator.run_folder("bench", folder.path(), Default::default()).await.unwrap();
    let key = emulator.function_key("bench", "hello").expect("the function's key");
    let loaded = load(emulator.local_addr().port(), Mode::Emulator, total, &key).await;
    emulator.shutdown().await;
    loaded
}

/// The median of `n` start-ups of what `command` makes.
async fn startup(n: usize, command: impl Fn(u16) -> Command) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let port = free_port();
        times.push(start(command(port), port).await.1);
    }
    times.sort();
    percentile(&times, 0.5)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    eprintln!("building the fixture (release)...");
    let binary = tokio::task::spawn_blocking(build_fixture).await.unwrap();
    let default_folder = app_folder(false);
    let forwarding_folder = app_folder(true);
    let empty = tempfile::tempdir().unwrap();
    let total = if quick() { 2_000 } else { 20_000 };
    let mut rows = Vec::new();

    // 1. Throughput and latency, one server at a time.
    let port = free_port();
    let (server, _) = start(custom_handler(&binary, default_folder.path(), port), port).await;
    let default = load(server.port, Mode::Default, total, "").await;
    drop(server);
    let port = free_port();
    let (server, _) = start(custom_handler(&binary, forwarding_folder.path(), port), port).await;
    let forwarding = load(server.port, Mode::Forwarding, total, "").await;
    drop(server);
    let port = free_port();
    let (server, _) = start(local_http(&binary, empty.path(), port), port).await;
    let local = load(server.port, Mode::Local, total, "").await;
    drop(server);
    let emulated = through_the_emulator(&binary, total).await;
    rows.push(throughput_row(
        "the local Functions host's /api/hello (default mode)",
        &emulated,
        &local,
        "the faas local HTTP host",
        total,
    ));
    rows.push(throughput_row("custom handler, default mode", &default, &local, "the faas local HTTP host", total));
    rows.push(throughput_row(
        "custom handler, forwarding mode",
        &forwarding,
        &local,
        "the faas local HTTP host",
        total,
    ));
    rows.push(throughput_row("custom handler, default mode", &default, &forwarding, "the forwarding mode", total));

    // 2. Cold start: spawn to the first answered readiness probe.
    let starts = if quick() { 5 } else { 30 };
    let azure = startup(starts, |port| custom_handler(&binary, default_folder.path(), port)).await;
    let local = startup(starts, |port| local_http(&binary, empty.path(), port)).await;
    rows.push(
        Row::new(
            "custom handler cold start: spawn to the first answered GET /",
            format!("{:.1} ms", ms(azure)),
            format!("{:.1} ms the local HTTP host", ms(local)),
            ms(azure) / ms(local),
        )
        .note(format!(
            "median of {starts}; includes reading host.json and function.json; the Functions host polls every 25 ms"
        )),
    );
    report("azure-host", &rows);
}
