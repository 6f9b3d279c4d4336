//! Two gateway replicas on one JetStream stream (a real nats-server): events posted to both, one replica
//! SIGKILLed mid-load, the other delivers everything either acknowledged.

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

fn nats_server() -> Option<faas_gateway_nats::testing::NatsServer> {
    match faas_gateway_nats::testing::NatsServer::start() {
        Ok(Some(n)) => Some(n),
        Ok(None) => {
            println!("skipped: nats-server not found");
            None
        }
        Err(e) => panic!("nats-server: {e}"),
    }
}

/// Bytes that are not all alike, `seed` varying them.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

async fn post_binary(url: &str, id: &str, data: Vec<u8>) -> u16 {
    let response = client()
        .post(format!("{url}/"))
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-source", "/tests/large")
        .header("ce-type", "large")
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// The promise of `max_event_bytes` (1 MiB by default) holds on a nats-server with default settings, whose
/// `max_payload` (1 MiB) is smaller than the stored form of such an event (data in base64, 4/3 larger).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_up_to_max_event_bytes_are_accepted_and_delivered_intact_on_default_nats() {
    let Some(nats) = nats_server() else { return };
    let sink = RecordingSink::ok().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("faas.toml");
    let store = format!("store = \"nats\"\nnats_url = \"{}\"", nats.url());
    std::fs::write(&config, recorder_config("large", &store, &sink.url())).unwrap();
    let gateway = GatewayProcess::start(&config, &["--data-dir", dir.path().join("g").to_str().unwrap()]).await;

    let max = 1024 * 1024;
    let sizes = [800 * 1024, max - 1, max];
    for (n, size) in sizes.iter().enumerate() {
        let status = post_binary(&gateway.url, &format!("large-{n}"), noise(*size, n as u64)).await;
        assert_eq!(status, 202, "a binary event of {size} bytes (max_event_bytes {max})");
    }
    assert_eq!(post_binary(&gateway.url, "over", noise(max + 1, 9)).await, 413);

    let received = sink.wait_for(3, Duration::from_secs(30)).await;
    for (n, size) in sizes.iter().enumerate() {
        let id = format!("large-{n}");
        let copies: Vec<_> = received.iter().filter(|r| r.ce_id() == id).collect();
        assert_eq!(copies.len(), 1, "{id} delivered once");
        assert_eq!(copies[0].body.len(), *size, "{id}");
        assert!(copies[0].body[..] == noise(*size, n as u64)[..], "{id} delivered intact");
    }
    // Delivered events leave no parts behind.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while faas_gateway_nats::testing::messages_in(&nats.url(), "FAAS_GATEWAY_BODIES").await.unwrap() != 0 {
        assert!(std::time::Instant::now() < deadline, "parts of delivered events are still stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!received.iter().any(|r| r.ce_id() == "over"));
    drop(gateway);
}

/// nats-server crashes while a delivery is at the sink: the ack fails; once the server is back the gateway
/// sends it again at once (not when the 65 s lease ends), and the event is not delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_ack_is_sent_again_when_nats_returns_and_the_event_is_not_delivered_again() {
    let Some(mut nats) = nats_server() else { return };
    // The sink takes 3 s to answer the first delivery; nats-server is down when it does.
    let sink = RecordingSink::start(vec![Reply::status(200).delay(Duration::from_secs(3))], Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("faas.toml");
    let store = format!("store = \"nats\"\nnats_url = \"{}\"", nats.url());
    // attemptTimeout 30 s: the lease is 2 × 30 s + 5 s = 65 s.
    let text = recorder_config("ack-retry", &store, &sink.url())
        .replace("attemptTimeout = \"2s\"", "attemptTimeout = \"30s\"");
    std::fs::write(&config, text).unwrap();
    let gateway = GatewayProcess::start(&config, &["--data-dir", dir.path().join("g").to_str().unwrap()]).await;

    let (status, _) = post_structured(&gateway.url, &event("ack-1", "ack")).await;
    assert_eq!(status, 202);
    sink.wait_for(1, Duration::from_secs(20)).await;
    // Let the server write the consumer's state, then crash it; the sink answers while it is down.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nats.kill();
    // Down for longer than the consumer's ack_wait (5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    nats.restart().expect("restart nats-server on the same port and store");
    let back = std::time::Instant::now();
    let deadline = back + Duration::from_secs(30);
    loop {
        match faas_gateway_nats::testing::consumer_backlog(&nats.url(), "FAAS_GATEWAY", "faas-gateway").await {
            Ok(0) => break,
            _ => assert!(
                std::time::Instant::now() < deadline,
                "the finished delivery was not acknowledged within 30 s of nats-server's return"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acked_after = back.elapsed();
    // Past another ack_wait: nothing is handed out again.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let deliveries = sink.count();
    println!("ack sent again {acked_after:?} after nats-server returned; {deliveries} deliveries at the sink");
    assert!(acked_after < Duration::from_secs(5), "{acked_after:?}");
    assert_eq!(deliveries, 1, "the event was delivered again");
    drop(gateway);
}
