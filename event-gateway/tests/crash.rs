//! SIGKILL the gateway binary in the middle of a load, restart it on the same data directory: every event
//! that got a 202 is delivered (duplicates allowed, none lost).

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_load_loses_no_acknowledged_event() {
    let sink = RecordingSink::ok().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("faas.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[app]
name = "crash-test"

[gateway]
data_dir = "gateway-data"

[gateway.delivery]
backoffBase = "10ms"
backoffMax = "100ms"
attemptTimeout = "2s"

[[gateway.subscriptions]]
id = "recorder"
sink = "{}"
protocol = "HTTP"
"#,
            sink.url()
        ),
    )
    .unwrap();

    let mut first = GatewayProcess::start(&config, &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let posters = tokio::spawn(post_until_stopped(vec![first.url.clone()], "crash", 16, stop.clone()));
    // Let the load run until a good number of events were delivered, then kill mid-stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sink.count() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let acked = posters.await.unwrap();
    let delivered_before_restart = sink.count();
    assert!(!acked.is_empty(), "some events were acknowledged before the kill");

    let second = GatewayProcess::start(&config, &[]).await;
    let acked_set: HashSet<String> = acked.iter().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let missing = loop {
        let got: HashSet<String> = sink.received().iter().map(|r| r.ce_id()).collect();
        let missing: Vec<&String> = acked_set.iter().filter(|id| !got.contains(*id)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.len();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let received = sink.received();
    let unique: HashSet<String> = received.iter().map(|r| r.ce_id()).collect();
    println!(
        "crash test: {} acknowledged, {} delivered before the kill, {} deliveries in all, {} unique ids, {} duplicates, {} lost",
        acked_set.len(),
        delivered_before_restart,
        received.len(),
        unique.len(),
        received.len() - unique.len(),
        missing
    );
    assert_eq!(missing, 0, "acknowledged events lost after SIGKILL");
    drop(second);
}
