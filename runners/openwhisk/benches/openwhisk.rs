//! OpenWhisk benchmarks through the local OpenWhisk, each a ratio against a baseline measured in
//! the same run:
//!
//! 1. warm blocking invoke (p50, p99) of `examples/hello` deployed by the OpenWhisk runner and run
//!    under ActionLoop, vs the same binary on the local backend's process mode;
//! 2. cold start, the `initTime` OpenWhisk records: the faas `exec` vs a shell `exec` that speaks
//!    the same ActionLoop protocol (the floor: starting a process and answering the ack);
//! 3. a 5-action sequence run by the controller vs 5 blocking invokes of the same action from the
//!    client.
//!
//! Run: `cargo bench -p faas-runner-openwhisk --bench openwhisk` (`FAAS_BENCH_QUICK=1` for a short
//! run). It builds `examples/hello` in release mode, prints a Markdown table and writes the figures
//! to `$CARGO_TARGET_DIR/bench/openwhisk.json`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use faas_api::{AppSpec, BackendProfile, Config, InvokeRequest, NoProgress, Payload, Runner};
use faas_bench_support::{ms, percentile, quick, report, timed, Row};
use faas_emulator_openwhisk::{Emulator, EmulatorOptions};
use faas_runner_local::{LocalOptions, LocalRunner};
use faas_runner_openwhisk::deploy::OpenWhiskRunner;
use serde_json::{json, Value};

const BODY: &[u8] = br#"{"name":"bench"}"#;
/// An ActionLoop `exec` in shell: the acknowledgement when asked, then one result per line.
const SHELL_EXEC: &str = "#!/bin/sh\n[ -n \"$__OW_WAIT_FOR_ACK\" ] && echo '{\"ok\":true}' >&3\n\
    while read -r line; do echo '{\"greeting\":\"hi\"}' >&3; done\n";

fn workspace() -> PathBuf {
    faas_bench_support::workspace_root()
}

fn request() -> InvokeRequest {
    InvokeRequest::new("hello", Payload::new(BODY.to_vec(), Some("application/json".into())))
}

/// The controller's REST API.
struct Rest {
    http: reqwest::Client,
    base: String,
    user: String,
    key: String,
}

impl Rest {
    fn new(emulator: &Emulator) -> Rest {
        let (user, key) = emulator.auth().split_once(':').unwrap();
        Rest {
            http: reqwest::Client::new(),
            base: format!("{}/api/v1/namespaces/guest", emulator.url()),
            user: user.into(),
            key: key.into(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .basic_auth(&self.user, Some(&self.key))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// Creates or replaces an ActionLoop action whose zip holds `exec`; `version` changes its
    /// parameters so that the next activation is a cold start.
    async fn put_actionloop(&self, name: &str, zip: &[u8], version: usize) {
        let code = base64::engine::general_purpose::STANDARD.encode(zip);
        // `name` is also a default parameter, merged under each activation's own: a component of
        // a sequence gets the previous one's result and still has a name.
        let body = json!({
            "exec": {"kind": "blackbox", "image": "openwhisk/actionloop-v2", "binary": true, "code": code},
            "parameters": [
                {"key": "BENCH_VERSION", "value": version.to_string(), "init": true},
                {"key": "name", "value": "bench"},
            ],
        });
        self.call(reqwest::Method::PUT, &format!("actions/{name}?overwrite=true"), body).await;
    }

    async fn invoke(&self, name: &str) -> Value {
        let body: Value = serde_json::from_slice(BODY).unwrap();
        self.call(reqwest::Method::POST, &format!("actions/{name}?blocking=true"), body).await
    }
}

fn init_time(record: &Value) -> Option<Duration> {
    let annotations = record["annotations"].as_array()?;
    let init = annotations.iter().find(|a| a["key"] == "initTime")?;
    Some(Duration::from_millis(init["value"].as_u64()?))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut rows = Vec::new();
    eprintln!("building examples/hello (release)...");
    let binary =
        faas_packaging::build::cargo_build(&workspace().join("examples/hello"), Some("hello"), true, &NoProgress)
            .await
            .expect("release build of examples/hello");
    let manifest = faas_packaging::build::describe(&binary).await.unwrap();
    let spec = AppSpec::from_parts(&Config::default_for("hello"), binary.clone(), manifest).unwrap();
    let warm_n = if quick() { 300 } else { 3_000 };

    // 1. Warm blocking invoke: OpenWhisk runner + local OpenWhisk vs local process mode.
    let local = LocalRunner::new(LocalOptions::default()).unwrap();
    let package = local.package(&spec, &NoProgress).await.unwrap();
    local.deploy(&package, &NoProgress).await.unwrap();
    let (local_lat, _) = timed(warm_n, || async { local.invoke(request()).await.map(drop).unwrap() }).await;
    local.shutdown().await;

    let options = EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
    let emulator = faas_emulator_openwhisk::start(options).await.unwrap();
    let profile = BackendProfile::new("ow", "openwhisk")
        .with("endpoint", emulator.url())
        .with("auth", format!("file:{}", emulator.auth_file().display()));
    let runner: Arc<OpenWhiskRunner> = OpenWhiskRunner::from_profile(&profile).unwrap();
    let package = runner.package(&spec, &NoProgress).await.unwrap();
    runner.deploy(&package, &NoProgress).await.unwrap();
    let (ow_lat, _) = timed(warm_n, || async { runner.invoke(request()).await.map(drop).unwrap() }).await;
    let (ow50, ow99) = (percentile(&ow_lat, 0.5), percentile(&ow_lat, 0.99));
    let (l50, l99) = (percentile(&local_lat, 0.5), percentile(&local_lat, 0.99));
    rows.push(Row {
        what: "OpenWhisk warm blocking invoke p50 (runner → local OpenWhisk → ActionLoop)".into(),
        value: format!("{:.3} ms", ms(ow50)),
        baseline: format!("{:.3} ms local process mode", ms(l50)),
        ratio: ms(ow50) / ms(l50),
        note: format!(
            "p99 {:.3} ms vs {:.3} ms (ratio {:.2}); {warm_n} sequential calls each",
            ms(ow99),
            ms(l99),
            ms(ow99) / ms(l99)
        ),
    });

    // 2. Cold start: initTime of the faas exec vs a shell exec, both ActionLoop.
    let rest = Rest::new(&emulator);
    let faas_zip = std::fs::read(&package.artifact).unwrap();
    let shell_zip = faas_packaging::zip::zip_bytes(vec![faas_packaging::zip::Entry::bytes(
        "exec",
        SHELL_EXEC.as_bytes().to_vec(),
        0o755,
    )])
    .unwrap();
    let colds = if quick() { 5 } else { 30 };
    let mut faas_init = Vec::new();
    let mut shell_init = Vec::new();
    for i in 0..colds {
        for (name, zip, into) in [("cold-faas", &faas_zip, &mut faas_init), ("cold-shell", &shell_zip, &mut shell_init)]
        {
            rest.put_actionloop(name, zip, i).await;
            let record = rest.invoke(name).await;
            assert_eq!(record["response"]["status"], "success", "{record}");
            into.push(init_time(&record).unwrap_or_else(|| panic!("no initTime on a cold start: {record}")));
        }
    }
    faas_init.sort();
    shell_init.sort();
    let (f50, s50) = (percentile(&faas_init, 0.5), percentile(&shell_init, 0.5));
    rows.push(Row {
        what: "OpenWhisk cold start, initTime p50 (faas exec)".into(),
        value: format!("{:.0} ms", ms(f50)),
        baseline: format!("{:.0} ms shell exec", ms(s50)),
        ratio: ms(f50) / ms(s50).max(1.0),
        note: format!(
            "{colds} cold starts each; p90 {:.0} vs {:.0} ms; initTime is whole milliseconds (a 0 counts as 1)",
            ms(percentile(&faas_init, 0.9)),
            ms(percentile(&shell_init, 0.9))
        ),
    });

    // 3. A 5-action sequence vs 5 blocking invokes from the client.
    rest.put_actionloop("step", &faas_zip, 0).await;
    let components: Vec<String> = (0..5).map(|_| "/guest/step".to_string()).collect();
    let body = json!({"exec": {"kind": "sequence", "components": components}});
    rest.call(reqwest::Method::PUT, "actions/seq5?overwrite=true", body).await;
    let seq_n = if quick() { 100 } else { 1_000 };
    let (seq_lat, _) = timed(seq_n, || async {
        let record = rest.invoke("seq5").await;
        assert_eq!(record["response"]["status"], "success", "{record}");
    })
    .await;
    let (five_lat, _) = timed(seq_n, || async {
        for _ in 0..5 {
            let record = rest.invoke("step").await;
            assert_eq!(record["response"]["status"], "success", "{record}");
        }
    })
    .await;
    let (q50, c50) = (percentile(&seq_lat, 0.5), percentile(&five_lat, 0.5));
    rows.push(Row {
        what: "OpenWhisk 5-action sequence, p50".into(),
        value: format!("{:.3} ms", ms(q50)),
        baseline: format!("{:.3} ms for 5 client blocking invokes", ms(c50)),
        ratio: ms(q50) / ms(c50),
        note: format!(
            "p99 {:.3} vs {:.3} ms; {seq_n} runs each; the controller chains the components itself",
            ms(percentile(&seq_lat, 0.99)),
            ms(percentile(&five_lat, 0.99))
        ),
    });
    emulator.shutdown().await;
    report("openwhisk", &rows);
}
