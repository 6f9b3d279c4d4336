//! SIGKILL the gateway binary in the middle of a load, restart it on the same data directory: every event
//! that got a 202 is delivered (duplicates allowed, none lost).

#[path = "../../tests/common/mod.rs"]
mod common;
mod process;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use process::GatewayProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_load_loses_no_acknowledged_event() {
    let sink = RecordingSink::ok().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("faas.toml");
    std::fs::write(&config, recorder_config("crash-test", "data_dir = \"gateway-data\"", &sink.url())).unwrap();

    let mut first = GatewayProcess::start(&config, &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let posters = tokio::spawn(post_until_stopped(vec![first.url.clone()], "crash", 16, stop.clone()));
    // Let the load run until a good number of events were delivered, then kill mid-stream.
    wait_for_deliveries(&sink, 300, Duration::from_secs(60)).await;
    first.kill().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let acked = posters.await.unwrap();
    let delivered_before_restart = sink.count();
    assert!(!acked.is_empty(), "some events were acknowledged before the kill");

    let second = GatewayProcess::start(&config, &[]).await;
    let acked_set: HashSet<String> = acked.iter().cloned().collect();
    let (missing, account) = lost_events(&sink, &acked_set, Duration::from_secs(120)).await;
    println!("crash test: {account}; {delivered_before_restart} delivered before the kill");
    assert_eq!(missing, 0, "acknowledged events lost after SIGKILL");
    drop(second);
}
