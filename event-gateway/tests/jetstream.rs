//! Two gateway replicas on one JetStream stream (a real nats-server): events posted to both, one replica
//! SIGKILLed mid-load, the other delivers everything either acknowledged.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_the_work_and_survive_losing_one() {
    let nats = match faas_gateway_nats::testing::NatsServer::start() {
        Ok(Some(n)) => n,
        Ok(None) => {
            println!("skipped: nats-server not found");
            return;
        }
        Err(e) => panic!("nats-server: {e}"),
    };
    let sink = RecordingSink::ok().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("faas.toml");
    let store = format!("store = \"nats\"\nnats_url = \"{}\"", nats.url());
    std::fs::write(&config, recorder_config("replicas", &store, &sink.url())).unwrap();
    let mut a = GatewayProcess::start(&config, &["--data-dir", dir.path().join("a").to_str().unwrap()]).await;
    let b = GatewayProcess::start(&config, &["--data-dir", dir.path().join("b").to_str().unwrap()]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let posters = tokio::spawn(post_until_stopped(vec![a.url.clone(), b.url.clone()], "js", 8, stop.clone()));
    wait_for_deliveries(&sink, 200, Duration::from_secs(60)).await;
    a.kill().await;
    // Keep posting (to b only, a is gone) for a moment, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let acked: HashSet<String> = posters.await.unwrap().into_iter().collect();
    assert!(!acked.is_empty());

    let (missing, account) = lost_events(&sink, &acked, Duration::from_secs(90)).await;
    println!("jetstream test: {account} (acknowledged by either replica)");
    assert_eq!(missing, 0, "acknowledged events lost after killing a replica");
    drop(b);
}
