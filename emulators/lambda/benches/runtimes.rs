//! faas vs the official `lambda_runtime` crate, both hosted by the local Lambda emulator and called with the
//! official aws-sdk-lambda: warm synchronous Invoke throughput and latency, cold start (environment spawn to
//! first response) and the size of each release `bootstrap`.
//!
//! Run: `cargo bench -p faas-emulator-lambda --bench runtimes` (`FAAS_BENCH_QUICK=1` for a short run).
//! The bench builds both binaries itself with `cargo build --release`, prints a Markdown table and writes the
//! figures as JSON to `$CARGO_TARGET_DIR/bench/lambda.json` (default `<workspace>/target/bench/lambda.json`).
//!
//! The two sides run the closest pair of handlers the fixtures offer (the fixtures are not edited for the bench):
//! - "minimal": faas `hello` (payload parsed into a `serde_json::Value`, a one-field object returned) against the
//!   `lambda_runtime` fixture's `big` op with `bytes: 0` (payload parsed into a `Value`, `""` returned). Same
//!   request for both; faas does slightly more work (a `format!` and a larger response).
//! - "echo": faas raw `echo` (request bytes returned verbatim, not parsed) against the `lambda_runtime` fixture's
//!   default `echo` op (the event plus request id, ARN, deadline, trace id, 10 env vars, cwd and pid: more work
//!   and a ~700-byte response). Not equal work; shown for completeness.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
use faas_bench_support::{ms, percentile, target_dir, workspace_root};
use faas_emulator_lambda::{Emulator, EmulatorOptions};
use serde_json::{json, Value};

const ROLE: &str = "arn:aws:iam::123456789012:role/bench";
const MINIMAL_PAYLOAD: &[u8] = br#"{"name":"bench","op":"big","bytes":0}"#;
const ECHO_PAYLOAD: &[u8] = br#"{"op":"echo","name":"bench","n":42}"#;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Run sizes: full by default, short with `FAAS_BENCH_QUICK=1`.
struct Plan {
    quick: bool,
    warmup: usize,
    calls: usize,
    rounds: usize,
    cold_samples: usize,
}

impl Plan {
    fn from_env() -> Plan {
        let quick = std::env::var("FAAS_BENCH_QUICK").is_ok_and(|v| v == "1");
        if quick {
            Plan { quick, warmup: 20, calls: 200, rounds: 2, cold_samples: 5 }
        } else {
            Plan { quick, warmup: 200, calls: 2000, rounds: 4, cold_samples: 20 }
        }
    }
}

/// One row of the report.
struct Row {
    benchmark: String,
    unit: &'static str,
    faas: f64,
    lambda_runtime: f64,
    note: String,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.faas / self.lambda_runtime
    }
}

/// `cargo build --release <args>` in the workspace; returns the executable cargo reports for `artifact`.
fn cargo_build_release(root: &Path, args: &[&str], artifact: &str) -> BenchResult<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building {artifact}: cargo build --release {}", args.join(" "));
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--message-format=json"])
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("cargo build --release {} failed ({})", args.join(" "), output.status).into());
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == artifact)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| format!("cargo reported no executable for {artifact}").into())
}

/// A deployment zip holding `binary` as `bootstrap` (mode 0755).
fn bootstrap_zip(binary: &Path) -> BenchResult<Vec<u8>> {
    Ok(faas_packaging::zip::zip_bytes(vec![faas_packaging::zip::Entry::file("bootstrap", binary, 0o755)])?)
}

fn client(emulator: &Emulator) -> aws_sdk_lambda::Client {
    let config = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
        .endpoint_url(emulator.url())
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_lambda::Client::from_conf(config)
}

async fn create(client: &aws_sdk_lambda::Client, name: &str, handler: &str, zip: &[u8]) -> BenchResult<()> {
    client
        .create_function()
        .function_name(name)
        .role(ROLE)
        .runtime(Runtime::Providedal2023)
        .handler(handler)
        .timeout(30)
        .code(FunctionCode::builder().zip_file(Blob::new(zip.to_vec())).build())
        .send()
        .await?;
    Ok(())
}

/// One synchronous Invoke; fails on a transport error, a non-200 status or a function error.
async fn invoke(client: &aws_sdk_lambda::Client, name: &str, payload: &'static [u8]) -> BenchResult<Vec<u8>> {
    let out = client.invoke().function_name(name).payload(Blob::new(payload)).send().await?;
    if out.status_code() != 200 || out.function_error().is_some() {
        return Err(format!(
            "{name}: status {} function error {:?}: {}",
            out.status_code(),
            out.function_error(),
            String::from_utf8_lossy(out.payload().map(|p| p.as_ref()).unwrap_or_default())
        )
        .into());
    }
    Ok(out.payload().map(|p| p.as_ref().to_vec()).unwrap_or_default())
}

/// Warm sequential Invoke figures of one function.
struct Warm {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// Warm, sequential Invokes of two functions, interleaved in rounds so background load hits both alike.
async fn warm_pair(
    client: &aws_sdk_lambda::Client,
    plan: &Plan,
    faas: &str,
    lambda_runtime: &str,
    payload: &'static [u8],
) -> BenchResult<(Warm, Warm)> {
    for name in [faas, lambda_runtime] {
        for _ in 0..plan.warmup {
            invoke(client, name, payload).await?;
        }
    }
    let per_round = plan.calls / plan.rounds;
    let mut samples = [Vec::with_capacity(plan.calls), Vec::with_capacity(plan.calls)];
    let mut busy = [Duration::ZERO; 2];
    for round in 0..plan.rounds {
        // Alternate which side goes first.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let name = [faas, lambda_runtime][side];
            let started = Instant::now();
            for _ in 0..per_round {
                let t = Instant::now();
                invoke(client, name, payload).await?;
                samples[side].push(t.elapsed());
            }
            busy[side] += started.elapsed();
        }
    }
    let summarize = |side: usize| {
        let mut s = samples[side].clone();
        s.sort();
        Warm {
            per_second: s.len() as f64 / busy[side].as_secs_f64(),
            p50: percentile(&s, 0.5),
            p99: percentile(&s, 0.99),
        }
    };
    Ok((summarize(0), summarize(1)))
}

/// The `Init Duration` of the last invocation's REPORT line, if it was a cold start.
fn init_duration(emulator: &Emulator, name: &str) -> Option<f64> {
    let record = emulator.invocations(name).pop()?;
    let rest = record.log.split("Init Duration: ").nth(1)?;
    rest.split(" ms").next()?.trim().parse().ok()
}

/// Cold starts: each sample changes an env var (which retires the warm environment), then times the first Invoke.
/// Returns (client-side first-Invoke latency, emulator-reported init duration in ms) per side.
async fn cold_pair(
    emulator: &Emulator,
    client: &aws_sdk_lambda::Client,
    plan: &Plan,
    names: [&str; 2],
    payload: &'static [u8],
) -> BenchResult<[(Vec<Duration>, Vec<f64>); 2]> {
    let mut out: [(Vec<Duration>, Vec<f64>); 2] = Default::default();
    for sample in 0..plan.cold_samples {
        let order = if sample % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let name = names[side];
            client
                .update_function_configuration()
                .function_name(name)
                .environment(Environment::builder().variables("BENCH_GENERATION", sample.to_string()).build())
                .send()
                .await?;
            // Let the retired process finish dying so its teardown is not charged to the new one.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let t = Instant::now();
            invoke(client, name, payload).await?;
            out[side].0.push(t.elapsed());
            let init = init_duration(emulator, name)
                .ok_or_else(|| format!("{name}: invocation after a configuration change was not a cold start"))?;
            out[side].1.push(init);
        }
    }
    Ok(out)
}

fn median_f64(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[(s.len() - 1) / 2]
}

fn fmt_value(v: f64, unit: &str) -> String {
    match unit {
        "bytes" => format!("{:.0} ({:.2} MiB)", v, v / (1024.0 * 1024.0)),
        "inv/s" => format!("{v:.0}"),
        _ => format!("{v:.3}"),
    }
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let plan = Plan::from_env();
    let root = workspace_root();

    let lambda_runtime_bin = cargo_build_release(
        &root,
        &["-p", "faas-emulator-lambda", "--features", "fixtures", "--bin", "lambda-runtime-fixture"],
        "lambda-runtime-fixture",
    )?;
    let faas_bin = cargo_build_release(
        &root,
        &["-p", "faas-runner-lambda", "--example", "faas-lambda-fixture"],
        "faas-lambda-fixture",
    )?;
    let faas_zip = bootstrap_zip(&faas_bin)?;
    let lambda_runtime_zip = bootstrap_zip(&lambda_runtime_bin)?;

    let emulator =
        faas_emulator_lambda::start(EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() })
            .await?;
    let client = client(&emulator);
    create(&client, "faas-hello", "hello", &faas_zip).await?;
    create(&client, "lr-minimal", "bootstrap", &lambda_runtime_zip).await?;
    create(&client, "faas-echo", "echo", &faas_zip).await?;
    create(&client, "lr-echo", "bootstrap", &lambda_runtime_zip).await?;

    // Both sides answer what the handler pairing says they should.
    let hello: Value = serde_json::from_slice(&invoke(&client, "faas-hello", MINIMAL_PAYLOAD).await?)?;
    assert_eq!(hello, json!({"message": "Hello, bench!"}), "faas hello answers");
    let minimal: Value = serde_json::from_slice(&invoke(&client, "lr-minimal", MINIMAL_PAYLOAD).await?)?;
    assert_eq!(minimal, json!(""), "lambda_runtime big/0 answers an empty string");
    let echoed = invoke(&client, "faas-echo", ECHO_PAYLOAD).await?;
    assert_eq!(echoed, ECHO_PAYLOAD, "faas echo returns the payload verbatim");
    let echoed: Value = serde_json::from_slice(&invoke(&client, "lr-echo", ECHO_PAYLOAD).await?)?;
    assert_eq!(echoed["event"]["n"], 42, "lambda_runtime echo returns the event");

    eprintln!("warm invokes: {} per function after {} warm-up calls", plan.calls, plan.warmup);
    let (faas_min, lr_min) = warm_pair(&client, &plan, "faas-hello", "lr-minimal", MINIMAL_PAYLOAD).await?;
    let (faas_echo, lr_echo) = warm_pair(&client, &plan, "faas-echo", "lr-echo", ECHO_PAYLOAD).await?;
    eprintln!("cold starts: {} per side", plan.cold_samples);
    let [(faas_cold, faas_init), (lr_cold, lr_init)] =
        cold_pair(&emulator, &client, &plan, ["faas-hello", "lr-minimal"], MINIMAL_PAYLOAD).await?;
    emulator.shutdown().await;

    let sort = |v: &[Duration]| {
        let mut s = v.to_vec();
        s.sort();
        s
    };
    let (faas_cold, lr_cold) = (sort(&faas_cold), sort(&lr_cold));
    let warm_note = format!("{} sequential calls, {} warm-up", plan.calls, plan.warmup);
    let mut rows = Vec::new();
    for (label, faas, lr, extra) in [
        ("minimal (faas hello vs lambda_runtime big/0)", &faas_min, &lr_min, ""),
        (
            "echo (faas raw echo vs lambda_runtime echo)",
            &faas_echo,
            &lr_echo,
            "; not equal work: lambda_runtime echo adds context/env/cwd/pid",
        ),
    ] {
        rows.push(Row {
            benchmark: format!("warm Invoke {label}: invocations/s"),
            unit: "inv/s",
            faas: faas.per_second,
            lambda_runtime: lr.per_second,
            note: format!("higher is better; {warm_note}{extra}"),
        });
        rows.push(Row {
            benchmark: format!("warm Invoke {label}: p50 latency"),
            unit: "ms",
            faas: ms(faas.p50),
            lambda_runtime: ms(lr.p50),
            note: "lower is better; client-side, SDK to SDK".into(),
        });
        rows.push(Row {
            benchmark: format!("warm Invoke {label}: p99 latency"),
            unit: "ms",
            faas: ms(faas.p99),
            lambda_runtime: ms(lr.p99),
            note: "lower is better".into(),
        });
    }
    rows.push(Row {
        benchmark: "cold start: first Invoke after UpdateFunctionConfiguration, p50".into(),
        unit: "ms",
        faas: ms(percentile(&faas_cold, 0.5)),
        lambda_runtime: ms(percentile(&lr_cold, 0.5)),
        note: format!("lower is better; {} samples, client-side, spawn to first response", plan.cold_samples),
    });
    rows.push(Row {
        benchmark: "cold start: emulator Init Duration, p50".into(),
        unit: "ms",
        faas: median_f64(&faas_init),
        lambda_runtime: median_f64(&lr_init),
        note: "lower is better; REPORT line: process spawn to first /invocation/next".into(),
    });
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len() as f64);
    rows.push(Row {
        benchmark: "bootstrap binary size (release, unstripped)".into(),
        unit: "bytes",
        faas: size(&faas_bin)?,
        lambda_runtime: size(&lambda_runtime_bin)?,
        note: "lower is better; faas binary holds the whole fixture app (7 functions)".into(),
    });
    rows.push(Row {
        benchmark: "deployment zip size (deflate)".into(),
        unit: "bytes",
        faas: faas_zip.len() as f64,
        lambda_runtime: lambda_runtime_zip.len() as f64,
        note: "lower is better".into(),
    });

    println!();
    println!("| benchmark | faas | lambda_runtime | ratio (faas/lambda_runtime) | note |");
    println!("|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} ({}) | {} | {} | {:.3} | {} |",
            row.benchmark,
            row.unit,
            fmt_value(row.faas, row.unit),
            fmt_value(row.lambda_runtime, row.unit),
            row.ratio(),
            row.note
        );
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!();
    println!(
        "{} run on {cpus} CPUs (shared with other builds: figures are indicative).",
        if plan.quick { "Quick (FAAS_BENCH_QUICK=1)" } else { "Full" }
    );

    let report = json!({
        "bench": "faas-emulator-lambda/runtimes",
        "quick": plan.quick,
        "cpus": cpus,
        "binaries": {"faas": faas_bin, "lambda_runtime": lambda_runtime_bin},
        "results": rows.iter().map(|r| json!({
            "benchmark": r.benchmark,
            "unit": r.unit,
            "faas": r.faas,
            "lambda_runtime": r.lambda_runtime,
            "ratio": r.ratio(),
            "note": r.note,
        })).collect::<Vec<_>>(),
        "cold_start_ms": {
            "faas": faas_cold.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            "lambda_runtime": lr_cold.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        },
    });
    let out_dir = target_dir().join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join("lambda.json");
    std::fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    println!("JSON: {}", out.display());
    Ok(())
}
