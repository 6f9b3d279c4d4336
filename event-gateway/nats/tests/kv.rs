//! `JetStreamStore` as a [`KvStore`] against a real nats-server (each test starts its own on a free port).
//!
//! Without nats-server installed these tests print "skipped: nats-server not found" and pass, unless
//! FAAS_REQUIRE_NATS is set: then they fail.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::stream::LastRawMessageErrorKind;
use bytes::Bytes;
use faas_gateway_nats::testing::NatsServer;
use faas_gateway_nats::{JetStreamOptions, JetStreamStore, EXPIRES_HEADER, HEADROOM};
use faas_gateway_store::kv::{Expect, KvStore};
use faas_gateway_store::StoreError;

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
    JetStreamOptions { request_timeout: Duration::from_secs(3), ..Default::default() }
}

async fn connect_with(server: &NatsServer, options: JetStreamOptions) -> Arc<JetStreamStore> {
    JetStreamStore::connect(&server.url(), options).await.expect("connect")
}

async fn connect(server: &NatsServer) -> Arc<JetStreamStore> {
    connect_with(server, options()).await
}

/// The bucket's stream, read directly (not through the store).
async fn raw_bucket(server: &NatsServer, options: &JetStreamOptions) -> async_nats::jetstream::stream::Stream {
    let client = async_nats::connect(server.url()).await.expect("raw connection");
    let context = async_nats::jetstream::new(client);
    context.get_stream(format!("KV_{}", options.kv_bucket_name())).await.expect("the bucket's stream")
}

/// Whether the bucket still holds a message (value or marker) for the NATS key `key`.
async fn holds(stream: &async_nats::jetstream::stream::Stream, bucket: &str, key: &str) -> bool {
    match stream.get_last_raw_message_by_subject(&format!("$KV.{bucket}.{key}")).await {
        Ok(_) => true,
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => false,
        Err(e) => panic!("raw read of {key}: {e}"),
    }
}

#[tokio::test]
async fn the_store_keeps_the_key_value_contract() {
    let Some(server) = server() else { return };
    let store = connect(&server).await;
    let limit = store.kv_value_limit();
    assert_eq!(limit, 1024 * 1024 - HEADROOM, "a default server's max_payload less headroom is the limit");
    faas_gateway_store::testing::kv_contract(store.clone(), "contract", limit).await;

    // A smaller max_value_bytes is the limit itself, on a second run over the same bucket.
    let small = connect_with(&server, JetStreamOptions { max_value_bytes: 64 * 1024, ..options() }).await;
    assert_eq!(small.kv_value_limit(), 64 * 1024);
    faas_gateway_store::testing::kv_contract(small.clone(), "contract-small", 64 * 1024).await;
}

#[tokio::test]
async fn two_replicas_share_the_bucket_and_a_race_has_one_winner() {
    let Some(server) = server() else { return };
    let (one, two) = (connect(&server).await, connect(&server).await);

    let r1 = one.kv_put("shared/a", Bytes::from_static(b"from one"), Expect::Absent, None).await.unwrap();
    let seen = two.kv_get("shared/a").await.unwrap().expect("replica two reads replica one's write");
    assert_eq!((seen.value.as_ref(), seen.revision), (&b"from one"[..], r1));
    let r2 = two.kv_put("shared/a", Bytes::from_static(b"from two"), Expect::Revision(r1), None).await.unwrap();
    assert_eq!(one.kv_get("shared/a").await.unwrap().unwrap().revision, r2);
    let listed = one.kv_list("shared/", None, 10).await.unwrap();
    assert_eq!(listed.entries.len(), 1);
    assert_eq!(listed.entries[0].1.value.as_ref(), b"from two");
    assert!(one.kv_delete("shared/a", Expect::Revision(r2)).await.unwrap());
    assert_eq!(two.kv_get("shared/a").await.unwrap(), None, "replica two sees replica one's delete");

    // Both replicas try the same compare-and-set at once: exactly one wins, the other learns its revision.
    for round in 0..20 {
        let key = format!("race/{round}");
        let base = one.kv_put(&key, Bytes::from_static(b"base"), Expect::Any, None).await.unwrap();
        let (a, b) = tokio::join!(
            one.kv_put(&key, Bytes::from_static(b"one"), Expect::Revision(base), None),
            two.kv_put(&key, Bytes::from_static(b"two"), Expect::Revision(base), None),
        );
        let (winner, value, loser) = match (a, b) {
            (Ok(revision), Err(e)) => (revision, &b"one"[..], e),
            (Err(e), Ok(revision)) => (revision, &b"two"[..], e),
            (a, b) => panic!("round {round}: expected one winner, got {a:?} and {b:?}"),
        };
        match loser {
            StoreError::Conflict { current, .. } => assert_eq!(current, Some(winner), "round {round}"),
            other => panic!("round {round}: the loser should get a conflict, got {other:?}"),
        }
        assert_eq!(two.kv_get(&key).await.unwrap().unwrap().value.as_ref(), value);

        // Creating the same new key from both: one create wins.
        let fresh = format!("race/new-{round}");
        let (a, b) = tokio::join!(
            one.kv_put(&fresh, Bytes::from_static(b"one"), Expect::Absent, None),
            two.kv_put(&fresh, Bytes::from_static(b"two"), Expect::Absent, None),
        );
        assert!(a.is_ok() != b.is_ok(), "round {round}: {a:?} and {b:?}");
    }
}

#[tokio::test]
async fn values_survive_a_killed_server() {
    let Some(mut server) = server() else { return };
    let store = connect(&server).await;
    let mut written = Vec::new();
    for i in 0..50 {
        let key = format!("durable/{i}");
        let value = Bytes::from(format!("value {i}"));
        let revision = store.kv_put(&key, value.clone(), Expect::Absent, None).await.unwrap();
        written.push((key, value, revision));
    }
    let long = store
        .kv_put("durable/ttl", Bytes::from_static(b"for an hour"), Expect::Any, Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(store.kv_delete("durable/0", Expect::Any).await.unwrap());
    let highest = written.iter().map(|(_, _, r)| *r).max().unwrap().max(long);

    server.kill(); // SIGKILL
    server.restart().expect("restart nats-server on the same store directory");

    // The connected store reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = store.kv_get("durable/1").await {
        assert!(Instant::now() < deadline, "the store did not reconnect: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(store);
    let store = connect(&server).await;
    assert_eq!(store.kv_get("durable/0").await.unwrap(), None, "the delete survived");
    for (key, value, revision) in &written[1..] {
        let entry = store.kv_get(key).await.unwrap().unwrap_or_else(|| panic!("{key} lost"));
        assert_eq!((&entry.value, entry.revision), (value, *revision), "{key}");
    }
    let ttl = store.kv_get("durable/ttl").await.unwrap().expect("the value with a TTL survived");
    assert!(ttl.expires_at.unwrap() > SystemTime::now() + Duration::from_secs(3000));
    assert_eq!(store.kv_list("durable/", None, 100).await.unwrap().entries.len(), 50);

    // Compare-and-set goes on from the revisions read before the crash, and revisions keep growing.
    let (key, _, revision) = &written[1];
    let next = store.kv_put(key, Bytes::from_static(b"after"), Expect::Revision(*revision), None).await.unwrap();
    assert!(next > highest, "no revision is handed out twice across a restart: {highest} then {next}");
    let reborn = store.kv_put("durable/0", Bytes::from_static(b"again"), Expect::Absent, None).await.unwrap();
    assert!(reborn > next);
}

#[tokio::test]
async fn the_sweeper_removes_expired_values_and_delete_markers_but_never_a_newer_write() {
    let Some(server) = server() else { return };
    let options = JetStreamOptions { kv_sweep_interval: Duration::from_millis(200), ..options() };
    let store = connect_with(&server, options.clone()).await;
    let raw = raw_bucket(&server, &options).await;
    let bucket = options.kv_bucket_name();

    store.kv_put("sweep/brief", Bytes::from_static(b"x"), Expect::Any, Some(Duration::from_millis(300))).await.unwrap();
    store.kv_put("sweep/gone", Bytes::from_static(b"x"), Expect::Any, None).await.unwrap();
    assert!(store.kv_delete("sweep/gone", Expect::Any).await.unwrap());
    store.kv_put("sweep/kept", Bytes::from_static(b"x"), Expect::Any, Some(Duration::from_secs(3600))).await.unwrap();
    store.kv_put("sweep/plain", Bytes::from_static(b"x"), Expect::Any, None).await.unwrap();
    assert!(holds(&raw, &bucket, "sweep.brief").await && holds(&raw, &bucket, "sweep.gone").await);

    let deadline = Instant::now() + Duration::from_secs(10);
    while holds(&raw, &bucket, "sweep.brief").await || holds(&raw, &bucket, "sweep.gone").await {
        assert!(Instant::now() < deadline, "the sweeper did not remove the expired value and the delete marker");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(holds(&raw, &bucket, "sweep.kept").await, "a value that has not expired is kept");
    assert!(holds(&raw, &bucket, "sweep.plain").await, "a value without TTL is kept");

    // An expired value not swept yet is absent for conditions too: a create writes over it (on the expired
    // value's revision), and later sweeps keep the new value.
    let rare = JetStreamOptions { kv_sweep_interval: Duration::from_secs(3600), ..options.clone() };
    let slow = connect_with(&server, rare).await;
    drop(store);
    let old =
        slow.kv_put("sweep/again", Bytes::from_static(b"old"), Expect::Any, Some(Duration::from_millis(100))).await;
    let old = old.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(holds(&raw, &bucket, "sweep.again").await, "not swept yet: no sweeper runs often");
    let new = slow.kv_put("sweep/again", Bytes::from_static(b"new"), Expect::Absent, None).await.unwrap();
    assert!(new > old);
    let store = connect_with(&server, options.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let entry = store.kv_get("sweep/again").await.unwrap().expect("the newer write is never swept");
    assert_eq!((entry.value.as_ref(), entry.revision), (&b"new"[..], new));
}

#[tokio::test]
async fn dropping_the_store_stops_its_sweeper() {
    let Some(server) = server() else { return };
    let options = JetStreamOptions { kv_sweep_interval: Duration::from_millis(100), ..options() };
    let store = connect_with(&server, options.clone()).await;
    let raw = raw_bucket(&server, &options).await;
    let bucket = options.kv_bucket_name();
    let client = async_nats::connect(server.url()).await.unwrap();
    let context = async_nats::jetstream::new(client);
    let expired = |key: &'static str| {
        let context = context.clone();
        let subject = format!("$KV.{bucket}.{key}");
        async move {
            let past = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64 - 1_000_000;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(EXPIRES_HEADER, past.to_string());
            context.publish_with_headers(subject, headers, Bytes::from_static(b"x")).await.unwrap().await.unwrap();
        }
    };

    // While the store lives, a value written expired (by anyone) is swept.
    expired("live.k").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while holds(&raw, &bucket, "live.k").await {
        assert!(Instant::now() < deadline, "the sweeper of a live store did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.kv_get("live/k").await.unwrap(), None);

    drop(store);
    expired("dropped.k").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(holds(&raw, &bucket, "dropped.k").await, "a dropped store's sweeper kept running");
}

#[tokio::test]
async fn values_over_the_servers_max_payload_are_refused_with_the_effective_limit() {
    let Some(server) = server() else { return };
    // max_value_bytes above what one message can carry: the server's max_payload less headroom rules.
    let store = connect_with(&server, JetStreamOptions { max_value_bytes: 4 * 1024 * 1024, ..options() }).await;
    let limit = store.kv_value_limit();
    assert_eq!(limit, 1024 * 1024 - HEADROOM);
    match store.kv_put("big/over", Bytes::from(vec![1u8; limit + 1]), Expect::Any, None).await {
        Err(StoreError::ValueTooLarge { size, limit: said, key }) => {
            assert_eq!((size, said, key.as_str()), (limit + 1, limit, "big/over"))
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert_eq!(store.kv_get("big/over").await.unwrap(), None);
    // A value of exactly the limit fits, with the headers of a TTL and a condition.
    let value = Bytes::from(vec![2u8; limit]);
    store.kv_put("big/exact", value.clone(), Expect::Absent, Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(store.kv_get("big/exact").await.unwrap().unwrap().value, value);
}

#[tokio::test]
async fn keys_other_clients_wrote_are_left_out_of_listings() {
    let Some(server) = server() else { return };
    let store = connect(&server).await;
    store.kv_put("mixed/ours", Bytes::from_static(b"x"), Expect::Any, None).await.unwrap();
    let client = async_nats::connect(server.url()).await.unwrap();
    let context = async_nats::jetstream::new(client);
    let bucket = options().kv_bucket_name();
    // `=zz` is no escape this store writes; `mixed.plain` decodes to `mixed/plain`.
    for key in ["mixed.bad=zz", "mixed.plain"] {
        context.publish(format!("$KV.{bucket}.{key}"), Bytes::from_static(b"y")).await.unwrap().await.unwrap();
    }
    let page = store.kv_list("mixed/", None, 10).await.unwrap();
    let keys: Vec<&str> = page.entries.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["mixed/ours", "mixed/plain"]);
    // A prefix with an empty segment matches no key, and is no error.
    assert!(store.kv_list("mixed//", None, 10).await.unwrap().entries.is_empty());
    assert!(matches!(store.kv_list(&"p".repeat(2000), None, 10).await, Err(StoreError::BadKey { .. })));
}

#[tokio::test]
async fn a_server_that_is_down_gives_a_clear_error_naming_it() {
    let Some(mut server) = server() else { return };
    let port = server.port().to_string();
    let store = connect(&server).await;
    store.kv_put("down/k", Bytes::from_static(b"x"), Expect::Any, None).await.unwrap();
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let bound = Duration::from_secs(20);
    let check = |what: &str, result: Result<StoreError, tokio::time::error::Elapsed>| match result {
        Ok(StoreError::Unavailable(message)) => {
            assert!(message.contains("NATS") && message.contains(&port), "{what}: {message}")
        }
        Ok(other) => panic!("{what}: expected Unavailable, got {other:?}"),
        Err(_) => panic!("{what}: no answer within {bound:?}"),
    };
    check("get", tokio::time::timeout(bound, async { store.kv_get("down/k").await.unwrap_err() }).await);
    let put = store.kv_put("down/k", Bytes::from_static(b"y"), Expect::Any, None);
    check("put", tokio::time::timeout(bound, async { put.await.unwrap_err() }).await);
    check(
        "delete",
        tokio::time::timeout(bound, async { store.kv_delete("down/k", Expect::Any).await.unwrap_err() }).await,
    );
    check("list", tokio::time::timeout(bound, async { store.kv_list("down/", None, 10).await.unwrap_err() }).await);

    // Back once the server is.
    server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.kv_get("down/k").await {
            Ok(entry) => {
                assert_eq!(entry.unwrap().value.as_ref(), b"x");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "not back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_store_keeps_the_advance_contract() {
    let Some(server) = server() else { return };
    let store = connect(&server).await;
    let limit = store.kv_value_limit();
    faas_gateway_store::testing::advance_contract(store.clone(), "advance", limit).await;
}
