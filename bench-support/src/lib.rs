//! # faas-bench-support
//!
//! What the workspace's benchmarks (`cargo bench -p ...`) share, so that each bench holds only
//! what it measures:
//!
//! - [`quick`]: `FAAS_BENCH_QUICK=1` asks for a short run;
//! - [`percentile`], [`ms`], [`us`]: latency figures;
//! - [`timed`] (sequential calls) and [`concurrent`] (a fixed number of calls on `n`
//!   connections at once): latencies and the wall time they took;
//! - [`release_app`]: a release build of one of the workspace's example apps, described, ready
//!   to package and deploy (the benches' subjects);
//! - [`Row`] and [`report`]: every figure is a ratio against a baseline measured in the same run,
//!   printed as a Markdown table and written as JSON to `$CARGO_TARGET_DIR/bench/NAME.json`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use faas_bench_support::{percentile, timed, Row};
//! let (lat, total) = timed(20, || async { tokio::task::yield_now().await }).await;
//! assert_eq!(lat.len(), 20);
//! assert!(lat.windows(2).all(|w| w[0] <= w[1]), "sorted");
//! assert!(percentile(&lat, 0.5) <= total);
//! let row = Row::new("yield p50", "1 µs", "1 µs baseline", 1.0);
//! assert_eq!(row.note, "");
//! # }
//! ```
#![warn(missing_docs)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// `FAAS_BENCH_QUICK` is set: a short run (fewer calls, for a smoke test of the bench itself).
pub fn quick() -> bool {
    std::env::var_os("FAAS_BENCH_QUICK").is_some()
}

/// The `p` quantile (0.0 to 1.0, nearest rank) of `sorted` latencies.
///
/// ```
/// use std::time::Duration;
/// let lat: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
/// assert_eq!(faas_bench_support::percentile(&lat, 0.5), Duration::from_millis(51));
/// assert_eq!(faas_bench_support::percentile(&lat, 0.99), Duration::from_millis(99));
/// assert_eq!(faas_bench_support::percentile(&lat, 1.0), Duration::from_millis(100));
/// ```
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    assert!(!sorted.is_empty(), "no latencies to take a percentile of");
    sorted[((sorted.len() as f64 - 1.0) * p.clamp(0.0, 1.0)).round() as usize]
}

/// Milliseconds, fractional.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Microseconds, fractional.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `n` sequential calls of `call` after one warm-up call: their latencies, sorted, and the total
/// time of the `n`.
pub async fn timed<F, Fut>(n: usize, mut call: F) -> (Vec<Duration>, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    call().await;
    let mut lat = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        call().await;
        lat.push(t.elapsed());
    }
    let total = started.elapsed();
    lat.sort();
    (lat, total)
}

/// `total` calls of `call` spread over `connections` concurrent loops (each loop's calls are
/// sequential, as on one keep-alive connection), after one warm-up call per loop: every latency,
/// sorted, and the wall time of the whole run; `total / wall` is the throughput.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (lat, wall) = faas_bench_support::concurrent(4, 40, |_| async { tokio::task::yield_now().await }).await;
/// assert_eq!(lat.len(), 40);
/// assert!(wall >= *lat.last().unwrap());
/// # }
/// ```
pub async fn concurrent<F, Fut>(connections: usize, total: usize, call: F) -> (Vec<Duration>, Duration)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let connections = connections.max(1);
    futures::future::join_all((0..connections).map(&call)).await;
    let started = Instant::now();
    let loops = (0..connections).map(|c| {
        let calls = total / connections + usize::from(c < total % connections);
        let call = &call;
        async move {
            let mut lat = Vec::with_capacity(calls);
            for _ in 0..calls {
                let t = Instant::now();
                call(c).await;
                lat.push(t.elapsed());
            }
            lat
        }
    });
    let mut lat: Vec<Duration> = futures::future::join_all(loops).await.into_iter().flatten().collect();
    let wall = started.elapsed();
    lat.sort();
    (lat, wall)
}

/// One figure of a report: what was measured, its value, the baseline measured in the same run,
/// their ratio, and a note (sample sizes, the other percentiles).
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub what: String,
    /// The figure, with its unit.
    pub value: String,
    /// The baseline's figure, with its unit and what it is.
    pub baseline: String,
    /// value / baseline.
    pub ratio: f64,
    /// Sample sizes, other percentiles, caveats.
    pub note: String,
}

impl Row {
    /// A row without a note.
    pub fn new(what: impl Into<String>, value: impl Into<String>, baseline: impl Into<String>, ratio: f64) -> Row {
        Row { what: what.into(), value: value.into(), baseline: baseline.into(), ratio, note: String::new() }
    }

    /// The row with `note`.
    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }
}

/// A release build of the app in `dir` (relative to the workspace, `examples/pipeline`), cargo
/// package `package`, described as app `app` with default settings.
pub async fn release_app(dir: &str, package: &str, app: &str) -> faas_api::AppSpec {
    eprintln!("building {dir} (release)...");
    let progress = faas_api::NoProgress;
    let binary = faas_packaging::build::cargo_build(&workspace_root().join(dir), Some(package), true, &progress)
        .await
        .unwrap_or_else(|e| panic!("release build of {dir}: {e}"));
    let manifest = faas_packaging::build::describe(&binary).await.unwrap_or_else(|e| panic!("describing {dir}: {e}"));
    faas_api::AppSpec::from_parts(&faas_api::Config::default_for(app), binary, manifest)
        .unwrap_or_else(|e| panic!("the app of {dir}: {e}"))
}

/// The workspace's root (the directory above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("bench-support lives in the workspace").to_path_buf()
}

/// The target directory: `$CARGO_TARGET_DIR` (relative to the workspace when relative), else
/// the workspace's `target`.
pub fn target_dir() -> PathBuf {
    let root = workspace_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// The rows as JSON.
pub fn rows_json(rows: &[Row]) -> Value {
    rows.iter()
        .map(|r| json!({"what": r.what, "value": r.value, "baseline": r.baseline, "ratio": r.ratio, "note": r.note}))
        .collect()
}

/// Prints `rows` as a Markdown table and writes them to `$CARGO_TARGET_DIR/bench/{name}.json`;
/// returns the file written.
pub fn report(name: &str, rows: &[Row]) -> PathBuf {
    println!("\n| benchmark | value | baseline (same run) | ratio | note |\n|---|---|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} | {:.2} | {} |", r.what, r.value, r.baseline, r.ratio, r.note);
    }
    let out = target_dir().join("bench");
    let file = out.join(format!("{name}.json"));
    let written = std::fs::create_dir_all(&out)
        .and_then(|_| std::fs::write(&file, serde_json::to_string_pretty(&rows_json(rows)).expect("JSON")));
    match written {
        Ok(()) => println!("JSON: {}", file.display()),
        Err(e) => eprintln!("cannot write {}: {e}", file.display()),
    }
    file
}
