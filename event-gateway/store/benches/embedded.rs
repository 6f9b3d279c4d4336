//! Group commit of the embedded store against a plain `write + fdatasync` per event.
//!
//! `cargo bench -p faas-gateway-store --bench embedded` (set `FAAS_BENCH_EVENTS` to change the event count,
//! default 4000). Files go to the target directory (a real disk, so fsync costs what it costs).
//! Prints appends/s for 1 and 64 concurrent appenders and for the baseline measured in the same run, and the
//! ratios.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
use faas_gateway_store::{EventStore, NewEvent};

const BODY: usize = 1024;

fn event(task: usize, i: usize) -> NewEvent {
    NewEvent {
        source: "/bench".into(),
        id: format!("{task}-{i}"),
        body: Bytes::from(vec![b'x'; BODY]),
        targets: vec!["subscription".into()],
    }
}

/// The baseline: one `write` + `fdatasync` per event, records of the same size as the store's.
fn baseline(dir: &Path, n: usize, record: usize) -> Duration {
    let mut file = OpenOptions::new().create(true).append(true).open(dir.join("baseline.log")).unwrap();
    let buf = vec![b'x'; record];
    let start = Instant::now();
    for _ in 0..n {
        file.write_all(&buf).unwrap();
        file.sync_data().unwrap();
    }
    start.elapsed()
}

async fn store_run(dir: &Path, n: usize, appenders: usize) -> (Duration, u64) {
    let store = EmbeddedStore::open(dir, EmbeddedOptions::default()).await.unwrap();
    let syncs = store.log_stats().syncs;
    let start = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..n / appenders {
                    store.append(vec![event(task, i)]).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();
    let syncs = store.log_stats().syncs - syncs;
    store.shutdown().await;
    (elapsed, syncs)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("FAAS_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(4000);
    let n = n.div_ceil(64) * 64;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Size of one event record as the store frames it (header, ids, target, body).
    let record = {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        rt.block_on(async {
            let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
            let before = store.log_stats().log_bytes;
            store.append(vec![event(0, 0)]).await.unwrap();
            let size = store.log_stats().log_bytes - before;
            store.shutdown().await;
            size as usize
        })
    };

    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    let base_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let base = rate(n, baseline(base_dir.path(), n, record));
    let mut rows = Vec::new();
    for appenders in [1, 64] {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let (elapsed, syncs) = rt.block_on(store_run(dir.path(), n, appenders));
        rows.push((appenders, rate(n, elapsed), syncs));
    }

    println!("embedded store: {n} appends of one {BODY}-byte event ({record}-byte record) each");
    println!("{:<40} {:>12} {:>10} {:>14}", "run", "appends/s", "fsyncs", "vs baseline");
    println!("{:<40} {:>12.0} {:>10} {:>14}", "baseline: write + fdatasync per event", base, n, "1.00x");
    for (appenders, r, syncs) in rows {
        let label = format!("EmbeddedStore, {appenders} appender(s)");
        println!("{label:<40} {r:>12.0} {syncs:>10} {:>13.2}x", r / base);
    }
}
