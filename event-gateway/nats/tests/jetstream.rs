//! `JetStreamStore` against a real nats-server (each test starts its own on a free port).
//!
//! Without nats-server installed these tests print "skipped: nats-server not found" and pass, unless
//! FAAS_REQUIRE_NATS is set: then they fail.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use faas_gateway_nats::testing::NatsServer;
use faas_gateway_nats::{JetStreamOptions, JetStreamStore};
use faas_gateway_store::{Appended, Delivery, EventStore, NewEvent, StoreError};

const LONG_LEASE: Duration = Duration::from_secs(60);

fn server() -> Option<NatsServer> {
    match NatsServer::start() {
        Ok(Some(server)) => Some(server),
        Ok(None) => {
            eprintln!("skipped: nats-server not found");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn options() -> JetStreamOptions {
    JetStreamOptions {
        ack_wait: Duration::from_secs(2),
        request_timeout: Duration::from_secs(3),
        max_event_bytes: 64 * 1024,
        ..Default::default()
    }
}

async fn connect(server: &NatsServer) -> Arc<JetStreamStore> {
    JetStreamStore::connect(&server.url(), options()).await.expect("connect")
}

fn event(source: &str, id: &str, targets: &[&str]) -> NewEvent {
    NewEvent {
        source: source.to_string(),
        id: id.to_string(),
        body: Bytes::from(format!(
            r#"{{"specversion":"1.0","id":"{id}","source":"{source}","type":"test.event","data":{{"n":"{id}"}}}}"#
        )),
        targets: targets.iter().map(|t| t.to_string()).collect(),
    }
}

/// Claims until `count` deliveries arrived or `within` passed.
async fn claim_n(store: &JetStreamStore, count: usize, lease: Duration, within: Duration) -> Vec<Delivery> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < count && Instant::now() < deadline {
        got.extend(store.claim(count - got.len(), lease, Duration::from_millis(500)).await.expect("claim"));
    }
    got
}

fn id_of(delivery: &Delivery) -> String {
    let json: serde_json::Value = serde_json::from_slice(&delivery.body).expect("body is the stored JSON");
    json["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn appended_events_are_claimed_once_and_acked() {
    let Some(server) = server() else { return };
    let store = connect(&server).await;
    let before = SystemTime::now() - Duration::from_secs(1);
    let appended =
        store.append(vec![event("/s", "1", &["sub-a", "sub.b"]), event("/s", "2", &["sub-a"])]).await.unwrap();
    assert_eq!(appended, vec![Appended::Stored { deliveries: 2 }, Appended::Stored { deliveries: 1 }]);
    assert_eq!(store.stats().await.unwrap().backlog, 3);

    let deliveries = claim_n(&store, 3, LONG_LEASE, Duration::from_secs(10)).await;
    let after = SystemTime::now() + Duration::from_secs(1);
    let mut seen: Vec<(String, String)> = deliveries.iter().map(|d| (id_of(d), d.target.clone())).collect();
    seen.sort();
    assert_eq!(seen, vec![("1".into(), "sub-a".into()), ("1".into(), "sub.b".into()), ("2".into(), "sub-a".into())]);
    for delivery in &deliveries {
        assert_eq!(delivery.attempt, 0);
        assert!(delivery.received_at >= before && delivery.received_at <= after, "{delivery:?}");
    }
    assert_eq!(deliveries[0].body, event("/s", &id_of(&deliveries[0]), &[]).body);
    // Leased: nothing else is due.
    assert!(store.claim(10, LONG_LEASE, Duration::from_millis(300)).await.unwrap().is_empty());
    assert_eq!(store.stats().await.unwrap().backlog, 3);

    for delivery in &deliveries {
        store.ack(&delivery.key).await.unwrap();
    }
    assert_eq!(store.stats().await.unwrap().backlog, 0);
    assert!(matches!(store.ack(&deliveries[0].key).await, Err(StoreError::UnknownDelivery(_))));
    // Acked deliveries do not come back, even after ack_wait.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(store.claim(10, LONG_LEASE, Duration::from_millis(300)).await.unwrap().is_empty());
}

#[tokio::test]
async fn retry_at_delays_the_delivery_and_counts_the_attempt() {
    let Some(server) = server() else { return };
    let store = connect(&server).await;
    store.append(vec![event("/s", "r1", &["t"])]).await.unwrap();
    let first = claim_n(&store, 1, LONG_LEASE, Duration::from_secs(10)).await.remove(0);
    assert_eq!(first.attempt, 0);

    let not_before = SystemTime::now() + Duration::from_millis(1500);
    store.retry_at(&first.key, not_before).await.unwrap();
    assert!(matches!(store.ack(&first.key).await, Err(StoreError::UnknownDelivery(_))));
    // Not due yet.
    assert!(store.claim(10, LONG_LEASE, Duration::from_millis(200)).await.unwrap().is_empty());
    assert_eq!(store.stats().await.unwrap().backlog, 1, "a delivery waiting for its retry is backlog");

    let second = claim_n(&store, 1, LONG_LEASE, Duration::from_secs(10)).await.remove(0);
    assert!(SystemTime::now() + Duration::from_millis(50) >= not_before, "redelivered before not_before");
    assert_eq!(second.attempt, 1);
    assert_eq!(second.body, first.body);
    assert_eq!(second.target, "t");
    assert_ne!(second.key, first.key);

    // A retry in the past is due at once.
    store.retry_at(&second.key, SystemTime::now() - Duration::from_secs(5)).await.unwrap();
    let third = claim_n(&store, 1, LONG_LEASE, Duration::from_secs(10)).await.remove(0);
    assert_eq!(third.attempt, 2);
    store.ack(&third.key).await.unwrap();
    assert_eq!(store.stats().await.unwrap().backlog, 0);
}

#[tokio::test]
async fn duplicates_by_source_and_id_store_nothing() {
    let Some(server) = server() else { return };
    let store = connect(&server).await;
    let first = store.append(vec![event("/a", "1", &["x"])]).await.unwrap();
    assert_eq!(first, vec![Appended::Stored { deliveries: 1 }]);
    // Same source and id: duplicate, even with more targets than the first copy had.
    assert_eq!(store.append(vec![event("/a", "1", &["x"])]).await.unwrap(), vec![Appended::Duplicate]);
    assert_eq!(store.append(vec![event("/a", "1", &["x", "y"])]).await.unwrap(), vec![Appended::Duplicate]);
    // Same id from another source: a different event.
    assert_eq!(store.append(vec![event("/b", "1", &["x"])]).await.unwrap(), vec![Appended::Stored { deliveries: 1 }]);
    // Events without targets are remembered too.
    assert_eq!(store.append(vec![event("/a", "2", &[])]).await.unwrap(), vec![Appended::Stored { deliveries: 0 }]);
    assert_eq!(store.append(vec![event("/a", "2", &["x"])]).await.unwrap(), vec![Appended::Duplicate]);
    // Twice in one batch; a target listed twice is one delivery.
    assert_eq!(
        store.append(vec![event("/a", "3", &["x", "x"]), event("/a", "3", &["x"])]).await.unwrap(),
        vec![Appended::Stored { deliveries: 1 }, Appended::Duplicate]
    );

    assert_eq!(store.stats().await.unwrap().backlog, 3);
    let deliveries = claim_n(&store, 4, LONG_LEASE, Duration::from_secs(3)).await;
    let mut got: Vec<(String, String)> =
        deliveries.iter().map(|d| (format!("{}:{}", d.body.len(), id_of(d)), d.target.clone())).collect();
    got.sort();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(deliveries.iter().all(|d| d.target == "x"), "{got:?}");
}

#[tokio::test]
async fn events_larger_than_the_limit_are_refused_before_anything_is_stored() {
    let Some(server) = server() else { return };
    let store = connect(&server).await;
    let mut big = event("/s", "big", &["t"]);
    big.body = Bytes::from(vec![b'x'; 64 * 1024 + 1]);
    let small = event("/s", "small", &["t"]);
    match store.append(vec![small.clone(), big]).await {
        Err(StoreError::TooLarge { size, limit }) => assert_eq!((size, limit), (64 * 1024 + 1, 64 * 1024)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(store.stats().await.unwrap().backlog, 0);
    // Nothing was remembered for de-duplication either.
    assert_eq!(store.append(vec![small]).await.unwrap(), vec![Appended::Stored { deliveries: 1 }]);
    let mut exact = event("/s", "exact", &["t"]);
    exact.body = Bytes::from(vec![b'y'; 64 * 1024]);
    assert_eq!(store.append(vec![exact]).await.unwrap(), vec![Appended::Stored { deliveries: 1 }]);
}

#[tokio::test]
async fn an_unacked_delivery_comes_back_after_its_lease() {
    let Some(server) = server() else { return };
    let store = connect(&server).await;
    store.append(vec![event("/s", "l1", &["t"])]).await.unwrap();

    // A lease shorter than ack_wait (2 s): due again when the lease ends.
    let first = claim_n(&store, 1, Duration::from_millis(800), Duration::from_secs(10)).await.remove(0);
    assert!(store.claim(1, LONG_LEASE, Duration::ZERO).await.unwrap().is_empty(), "leased");
    let again = claim_n(&store, 1, LONG_LEASE, Duration::from_secs(10)).await.remove(0);
    assert_eq!(again.attempt, 1, "an expired lease counts as an attempt");
    assert_eq!(id_of(&again), "l1");
    assert!(
        matches!(store.ack(&first.key).await, Err(StoreError::UnknownDelivery(_))),
        "the expired lease's key is dead"
    );
    store.retry_at(&again.key, SystemTime::now()).await.unwrap();

    // A lease longer than ack_wait is kept alive: another replica does not get it after ack_wait.
    let held = claim_n(&store, 1, Duration::from_secs(6), Duration::from_secs(10)).await.remove(0);
    let other = connect(&server).await;
    let stolen = other.claim(1, LONG_LEASE, Duration::from_millis(3500)).await.unwrap();
    assert!(stolen.is_empty(), "a delivery leased for 6 s was handed out after {stolen:?}");
    store.ack(&held.key).await.unwrap();
    assert_eq!(store.stats().await.unwrap().backlog, 0);
}

#[tokio::test]
async fn the_registry_document_round_trips_and_is_shared() {
    let Some(server) = server() else { return };
    let store = connect(&server).await;
    assert_eq!(store.load_registry().await.unwrap(), None);
    store.save_registry(Bytes::from_static(br#"{"subscriptions":[]}"#)).await.unwrap();
    assert_eq!(store.load_registry().await.unwrap().as_deref(), Some(&br#"{"subscriptions":[]}"#[..]));
    store.save_registry(Bytes::from_static(br#"{"subscriptions":[{"id":"a"}]}"#)).await.unwrap();
    let replica = connect(&server).await;
    assert_eq!(replica.load_registry().await.unwrap().as_deref(), Some(&br#"{"subscriptions":[{"id":"a"}]}"#[..]));
    let too_big = Bytes::from(vec![b' '; 2 * 1024 * 1024]);
    assert!(matches!(store.save_registry(too_big).await, Err(StoreError::TooLarge { .. })));
    assert_eq!(replica.load_registry().await.unwrap().as_deref(), Some(&br#"{"subscriptions":[{"id":"a"}]}"#[..]));
}

#[tokio::test]
async fn two_replicas_share_the_deliveries_and_take_over_a_dead_ones() {
    let Some(server) = server() else { return };
    let one = connect(&server).await;
    let two = connect(&server).await;
    let events: Vec<NewEvent> = (0..30).map(|i| event("/r", &i.to_string(), &["t"])).collect();
    one.append(events).await.unwrap();

    // Both claim concurrently, a few at a time, acking as they go.
    let worker = |store: Arc<JetStreamStore>| {
        tokio::spawn(async move {
            let mut ids = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                let batch = store.claim(3, LONG_LEASE, Duration::from_millis(500)).await.unwrap();
                if batch.is_empty() && store.stats().await.unwrap().backlog == 0 {
                    break;
                }
                for delivery in batch {
                    ids.push(id_of(&delivery));
                    store.ack(&delivery.key).await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
            ids
        })
    };
    let (a, b) = (worker(one.clone()), worker(two.clone()));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let set_a: BTreeSet<String> = a.iter().cloned().collect();
    let set_b: BTreeSet<String> = b.iter().cloned().collect();
    assert_eq!(a.len(), set_a.len(), "replica one got a delivery twice");
    assert_eq!(b.len(), set_b.len(), "replica two got a delivery twice");
    assert!(set_a.is_disjoint(&set_b), "both replicas got {:?}", set_a.intersection(&set_b).collect::<Vec<_>>());
    let all: BTreeSet<String> = set_a.union(&set_b).cloned().collect();
    assert_eq!(all, (0..30).map(|i| i.to_string()).collect::<BTreeSet<_>>());

    // Replica one dies holding leases: replica two gets them once the server's ack_wait has passed.
    one.append((100..104).map(|i| event("/r", &i.to_string(), &["t"])).collect()).await.unwrap();
    let held = claim_n(&one, 4, LONG_LEASE, Duration::from_secs(10)).await;
    assert_eq!(held.len(), 4);
    drop(one);
    assert!(two.claim(4, LONG_LEASE, Duration::ZERO).await.unwrap().is_empty(), "still leased to replica one");
    let taken = claim_n(&two, 4, LONG_LEASE, Duration::from_secs(15)).await;
    let mut ids: Vec<String> = taken.iter().map(id_of).collect();
    ids.sort();
    assert_eq!(ids, vec!["100", "101", "102", "103"]);
    assert!(taken.iter().all(|d| d.attempt == 1), "{taken:?}");
    for delivery in &taken {
        two.ack(&delivery.key).await.unwrap();
    }
    assert_eq!(two.stats().await.unwrap().backlog, 0);
}

#[tokio::test]
async fn acknowledged_events_survive_a_killed_server() {
    let Some(mut server) = server() else { return };
    let store = connect(&server).await;
    let mut expected = BTreeSet::new();
    for batch in 0..5 {
        let events: Vec<NewEvent> = (0..20).map(|i| event("/d", &format!("{batch}-{i}"), &["t1", "t2"])).collect();
        for result in store.append(events).await.unwrap() {
            assert_eq!(result, Appended::Stored { deliveries: 2 });
        }
        for i in 0..20 {
            expected.insert((format!("{batch}-{i}"), "t1".to_string()));
            expected.insert((format!("{batch}-{i}"), "t2".to_string()));
        }
    }
    store.save_registry(Bytes::from_static(b"{\"v\":1}")).await.unwrap();

    server.kill(); // SIGKILL
    server.restart().expect("restart nats-server on the same store directory");

    // The connected store reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = store.stats().await {
        assert!(Instant::now() < deadline, "the store did not reconnect: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(store);
    let store = connect(&server).await;
    assert_eq!(store.stats().await.unwrap().backlog, 200);
    assert_eq!(store.load_registry().await.unwrap().as_deref(), Some(&b"{\"v\":1}"[..]));
    let deliveries = claim_n(&store, 200, LONG_LEASE, Duration::from_secs(20)).await;
    let got: BTreeSet<(String, String)> = deliveries.iter().map(|d| (id_of(d), d.target.clone())).collect();
    assert_eq!(deliveries.len(), 200);
    assert_eq!(got, expected);
    // De-duplication survives the restart too.
    assert_eq!(store.append(vec![event("/d", "0-0", &["t1"])]).await.unwrap(), vec![Appended::Duplicate]);
}

#[tokio::test]
async fn a_server_that_is_down_gives_a_clear_error_not_a_hang() {
    let Some(mut server) = server() else { return };
    let url = server.url();
    let store = connect(&server).await;
    store.append(vec![event("/s", "1", &["t"])]).await.unwrap();
    let claimed = claim_n(&store, 1, LONG_LEASE, Duration::from_secs(10)).await.remove(0);
    server.kill();

    let bound = Duration::from_secs(20);
    let unavailable = |what: &str, result: Result<Result<(), StoreError>, tokio::time::error::Elapsed>| match result {
        Ok(Err(StoreError::Unavailable(message))) => assert!(message.contains("NATS"), "{what}: {message}"),
        Ok(other) => panic!("{what}: expected Unavailable, got {other:?}"),
        Err(_) => panic!("{what}: no answer within {bound:?}"),
    };
    // The client notices the closed connection at once; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    unavailable(
        "append",
        tokio::time::timeout(bound, async { store.append(vec![event("/s", "2", &["t"])]).await.map(|_| ()) }).await,
    );
    unavailable(
        "claim",
        tokio::time::timeout(bound, async { store.claim(1, LONG_LEASE, Duration::from_secs(1)).await.map(|_| ()) })
            .await,
    );
    unavailable("ack", tokio::time::timeout(bound, store.ack(&claimed.key)).await);
    unavailable("stats", tokio::time::timeout(bound, async { store.stats().await.map(|_| ()) }).await);
    unavailable("load_registry", tokio::time::timeout(bound, async { store.load_registry().await.map(|_| ()) }).await);

    // Connecting to nothing fails with the address in the message.
    drop(server);
    match tokio::time::timeout(bound, JetStreamStore::connect(&url, options())).await {
        Ok(Err(StoreError::Unavailable(message))) => assert!(message.contains(&url), "{message}"),
        Ok(other) => panic!("connect: expected Unavailable, got {:?}", other.map(|_| ())),
        Err(_) => panic!("connect: no answer within {bound:?}"),
    }
}

/// Bytes that are not all alike (so a misplaced part shows), `seed` varying them.
fn noise(len: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn bodies_stream() -> String {
    format!("{}_BODIES", JetStreamOptions::default().stream)
}

#[tokio::test]
async fn events_larger_than_the_servers_max_payload_are_stored_in_parts_and_deleted_when_done() {
    let Some(server) = server() else { return };
    // nats-server's default max_payload is 1 MiB; the store promises 3 MiB.
    let limit = 3 * 1024 * 1024;
    let store =
        JetStreamStore::connect(&server.url(), JetStreamOptions { max_event_bytes: limit, ..options() }).await.unwrap();
    assert_eq!(store.max_event_bytes(), limit);
    let sizes = [1024 * 1024, 2 * 1024 * 1024 + 17, limit];
    let mut expected = Vec::new();
    for (n, size) in sizes.iter().enumerate() {
        let mut e = event("/big", &n.to_string(), &["a", "b.c"]);
        e.body = noise(*size, n as u64);
        expected.push(e.body.clone());
        assert_eq!(store.append(vec![e]).await.unwrap(), vec![Appended::Stored { deliveries: 2 }]);
    }
    let mut too_big = event("/big", "over", &["a"]);
    too_big.body = noise(limit + 1, 9);
    match store.append(vec![too_big]).await {
        Err(StoreError::TooLarge { size, limit: l }) => assert_eq!((size, l), (limit + 1, limit)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(server_messages(&server, &bodies_stream()).await > 0, "large bodies are stored in parts");
    // A re-sent large event is a duplicate and leaves no parts behind.
    let parts_before = server_messages(&server, &bodies_stream()).await;
    let mut again = event("/big", "0", &["a", "b.c"]);
    again.body = expected[0].clone();
    assert_eq!(store.append(vec![again]).await.unwrap(), vec![Appended::Duplicate]);
    assert_eq!(server_messages(&server, &bodies_stream()).await, parts_before);

    let deliveries = claim_n(&store, 6, LONG_LEASE, Duration::from_secs(20)).await;
    assert_eq!(deliveries.len(), 6);
    let mut got: Vec<(String, usize)> = Vec::new();
    for delivery in &deliveries {
        let n = expected.iter().position(|b| *b == delivery.body).expect("every body comes back intact");
        got.push((delivery.target.clone(), n));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("a".into(), 0),
            ("a".into(), 1),
            ("a".into(), 2),
            ("b.c".into(), 0),
            ("b.c".into(), 1),
            ("b.c".into(), 2)
        ]
    );

    // A retried delivery keeps its body; an acked one takes its parts with it.
    store.retry_at(&deliveries[0].key, SystemTime::now()).await.unwrap();
    let retried = claim_n(&store, 1, LONG_LEASE, Duration::from_secs(10)).await.remove(0);
    assert!(retried.body == deliveries[0].body, "the retried delivery keeps its body");
    store.ack(&retried.key).await.unwrap();
    for delivery in &deliveries[1..] {
        store.ack(&delivery.key).await.unwrap();
    }
    assert_eq!(store.stats().await.unwrap().backlog, 0);
    assert_eq!(server_messages(&server, &bodies_stream()).await, 0, "parts of delivered events are deleted");
}

async fn server_messages(server: &NatsServer, stream: &str) -> u64 {
    faas_gateway_nats::testing::messages_in(&server.url(), stream).await.expect("stream info")
}

#[tokio::test]
async fn parts_left_by_a_crash_before_the_delivery_are_never_delivered_and_are_swept() {
    let Some(server) = server() else { return };
    let options =
        JetStreamOptions { max_event_bytes: 3 * 1024 * 1024, orphan_grace: Duration::from_secs(2), ..options() };
    let store = JetStreamStore::connect(&server.url(), options.clone()).await.unwrap();
    // A gateway that crashed after storing two parts of a body and before its delivery: the parts are in
    // the bodies stream, nothing refers to them.
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    for part in 0..2 {
        let subject = format!("{}.bodies.t.crashed0.{part}", options.stream);
        js.publish(subject, noise(1000, part)).await.unwrap().await.unwrap();
    }
    // And a large event stored completely, claimed and held (its parts are older than the grace, too).
    let mut held = event("/s", "held", &["t"]);
    held.body = noise(2 * 1024 * 1024, 3);
    store.append(vec![held.clone()]).await.unwrap();
    let claimed = claim_n(&store, 1, LONG_LEASE, Duration::from_secs(10)).await.remove(0);
    assert_eq!(claimed.body, held.body);
    // 2 MiB in parts of max_payload (1 MiB) less the headroom: 3 parts.
    assert_eq!(server_messages(&server, &bodies_stream()).await, 2 + 3);

    // Nothing half-stored is ever handed out.
    assert!(store.claim(10, LONG_LEASE, Duration::from_millis(500)).await.unwrap().is_empty());
    // The sweep (every grace / 3) deletes the orphans once older than the grace, and keeps referred parts.
    let deadline = Instant::now() + Duration::from_secs(15);
    while server_messages(&server, &bodies_stream()).await != 3 {
        assert!(Instant::now() < deadline, "orphaned parts were not swept");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(server_messages(&server, &bodies_stream()).await, 3, "the held delivery's parts are kept");
    store.ack(&claimed.key).await.unwrap();
    assert_eq!(server_messages(&server, &bodies_stream()).await, 0);
}

#[tokio::test]
async fn a_failed_ack_is_sent_again_when_the_server_returns() {
    let Some(mut server) = server() else { return };
    let store = connect(&server).await;
    store.append(vec![event("/s", "acked-late", &["t"])]).await.unwrap();
    let claimed = claim_n(&store, 1, LONG_LEASE, Duration::from_secs(10)).await.remove(0);
    // Let the server write the consumer's state, then crash it while the delivery is being finished.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    match store.ack(&claimed.key).await {
        Err(StoreError::Unavailable(message)) => assert!(message.contains("NATS"), "{message}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // Down for longer than ack_wait (2 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart().unwrap();
    let back = Instant::now();
    let deadline = back + Duration::from_secs(20);
    loop {
        match faas_gateway_nats::testing::consumer_backlog(&server.url(), &options().stream, &options().consumer).await
        {
            Ok(0) => break,
            _ => assert!(Instant::now() < deadline, "the failed ack was not sent again (lease is {LONG_LEASE:?})"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acked_after = back.elapsed();
    println!("failed ack sent again {acked_after:?} after the server returned");
    assert!(acked_after < Duration::from_secs(10), "{acked_after:?}");
    // Not handed out again, to this replica or another, after ack_wait.
    let other = connect(&server).await;
    assert!(other.claim(1, LONG_LEASE, Duration::from_secs(3)).await.unwrap().is_empty());
    assert!(store.claim(1, LONG_LEASE, Duration::from_millis(500)).await.unwrap().is_empty());
    assert!(matches!(store.ack(&claimed.key).await, Err(StoreError::UnknownDelivery(_))));
}
