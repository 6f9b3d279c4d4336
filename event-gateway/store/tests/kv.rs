//! The key–value side of the embedded store: the shared contract, and what must hold across a reopen
//! and a compaction (values, revisions, the revision clock, expiry).

use std::time::Duration;

use bytes::Bytes;
use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
use faas_gateway_store::kv::{Expect, KvStore};
use faas_gateway_store::{EventStore, NewEvent, StoreError};

#[tokio::test]
async fn the_embedded_store_keeps_the_key_value_contract() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions { max_value_bytes: 4096, ..Default::default() };
    let store = EmbeddedStore::open(dir.path(), options).await.unwrap();
    faas_gateway_store::testing::kv_contract(store.clone(), "contract", 4096).await;
    store.shutdown().await;
}

#[tokio::test]
async fn values_and_revisions_survive_a_reopen_and_deleted_revisions_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
    let kept = store.kv_put("runs/1", Bytes::from_static(b"state"), Expect::Absent, None).await.unwrap();
    let dropped = store.kv_put("runs/2", Bytes::from_static(b"gone"), Expect::Any, None).await.unwrap();
    assert!(store.kv_delete("runs/2", Expect::Revision(dropped)).await.unwrap());
    let brief = store.kv_put("runs/3", Bytes::from_static(b"brief"), Expect::Any, Some(Duration::from_millis(200)));
    brief.await.unwrap();
    store.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
    let entry = store.kv_get("runs/1").await.unwrap().expect("kept across the reopen");
    assert_eq!((entry.value.as_ref(), entry.revision), (&b"state"[..], kept));
    assert_eq!(store.kv_get("runs/2").await.unwrap(), None, "the delete was replayed");
    assert_eq!(store.kv_get("runs/3").await.unwrap(), None, "expired while the store was closed");
    let stale = store.kv_put("runs/2", Bytes::new(), Expect::Revision(dropped), None).await;
    assert!(matches!(stale, Err(StoreError::Conflict { current: None, .. })), "{stale:?}");
    let next = store.kv_put("runs/2", Bytes::new(), Expect::Absent, None).await.unwrap();
    assert!(next > dropped + 1, "after a reopen revisions go on past the delete's own: {dropped} then {next}");
    store.shutdown().await;
}

/// A key rewritten thousands of times makes the log mostly dead: it is compacted, and what the snapshot
/// keeps (the live value, its revision, the clock past every revision handed out) is what a reopen sees.
#[tokio::test]
async fn compaction_keeps_live_entries_and_the_revision_clock() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions { compact_min_bytes: 64 << 10, ..Default::default() };
    let store = EmbeddedStore::open(dir.path(), options.clone()).await.unwrap();
    let value = Bytes::from(vec![b'v'; 200]);
    let mut last = 0;
    for i in 0..2_000u32 {
        let key = if i % 2 == 0 { "hot" } else { "scratch/x" };
        last = store.kv_put(key, value.clone(), Expect::Any, None).await.unwrap();
    }
    assert!(store.kv_delete("scratch/x", Expect::Any).await.unwrap());
    store.kv_put("cold", Bytes::from_static(b"c"), Expect::Any, None).await.unwrap();
    store
        .append(vec![NewEvent {
            source: "/s".into(),
            id: "1".into(),
            body: Bytes::from_static(b"{}"),
            targets: vec!["t".into()],
        }])
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.log_stats().compactions == 0 && std::time::Instant::now() < deadline {
        // Compaction is checked after writes: keep writing the hot key until one has run.
        last = store.kv_put("hot", value.clone(), Expect::Any, None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = store.log_stats();
    assert!(stats.compactions >= 1, "no compaction after 2,000 overwrites: {stats:?}");
    assert!(stats.log_bytes < 64 << 10, "the compacted log holds little more than the live entries: {stats:?}");
    let hot = store.kv_get("hot").await.unwrap().unwrap();
    store.shutdown().await;

    let store = EmbeddedStore::open(dir.path(), options).await.unwrap();
    assert_eq!(store.kv_get("hot").await.unwrap(), Some(hot), "the live value and its revision");
    assert_eq!(store.kv_get("scratch/x").await.unwrap(), None, "the deleted key stays deleted");
    assert_eq!(store.kv_get("cold").await.unwrap().unwrap().value.as_ref(), b"c");
    let next = store.kv_put("scratch/x", Bytes::new(), Expect::Absent, None).await.unwrap();
    assert!(next > last + 1, "the clock survived the compaction: last {last}, then {next}");
    let claimed = store.claim(10, Duration::from_secs(30), Duration::ZERO).await.unwrap();
    assert_eq!(claimed.len(), 1, "the event's delivery is still pending beside the key–value entries");
    store.shutdown().await;
}

#[tokio::test]
async fn key_value_writes_are_refused_once_the_store_is_shut_down() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
    store.shutdown().await;
    let refused = store.kv_put("k", Bytes::new(), Expect::Any, None).await;
    assert!(matches!(refused, Err(StoreError::Unavailable(ref m)) if m.contains("shut down")), "{refused:?}");
    assert!(matches!(store.kv_get("k").await, Err(StoreError::Unavailable(_))));
}

#[tokio::test]
async fn an_advance_is_one_commit_on_the_embedded_log() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions { max_value_bytes: 4096, ..Default::default() };
    let store = EmbeddedStore::open(dir.path(), options).await.unwrap();
    faas_gateway_store::testing::advance_contract(store.clone(), "contract", 4096).await;

    // One write and one fsync per advance (record, wake-up and ack framed together), where the three
    // operations done one by one take two fsyncs (the write's and the append's) and three writes.
    let wake = |n: u64| NewEvent {
        source: "faas.test/commit".into(),
        id: format!("wake/{n}"),
        body: Bytes::from_static(b"{}"),
        targets: vec!["conductor".into()],
    };
    store.append(vec![wake(0)]).await.unwrap();
    let mut revision = None;
    let before = store.log_stats();
    for n in 0..20u64 {
        let held = store.claim(1, Duration::from_secs(30), Duration::from_secs(5)).await.unwrap().remove(0);
        let step = faas_gateway_store::Advance {
            key: "runs/counted".into(),
            value: Bytes::from(n.to_string()),
            expect: revision.map_or(Expect::Absent, Expect::Revision),
            append: vec![wake(n + 1)],
            ack: Some(held.key),
        };
        revision = Some(faas_gateway_store::GatewayStore::advance(&*store, step).await.unwrap().revision);
    }
    let after = store.log_stats();
    // The 500 ms background sync may add one.
    assert!(after.syncs - before.syncs <= 21, "{} fsyncs for 20 advances", after.syncs - before.syncs);
    assert!(after.writes - before.writes <= 21, "{} writes for 20 advances", after.writes - before.writes);
    assert_eq!(after.appended_events - before.appended_events, 20);
    store.shutdown().await;

    // All of it is in the log: reopened, the record is the last one and one wake-up is pending.
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
    assert_eq!(store.kv_get("runs/counted").await.unwrap().unwrap().value.as_ref(), b"19");
    let pending = store.claim(10, Duration::from_secs(30), Duration::from_millis(200)).await.unwrap();
    let ids: Vec<String> = pending.iter().map(|d| String::from_utf8_lossy(&d.body).into_owned()).collect();
    assert_eq!(pending.len(), 1, "only the newest wake-up is pending after a reopen: {ids:?}");
    store.shutdown().await;
}
