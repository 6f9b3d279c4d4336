//! Behaviour of the embedded event log, on real files (in the target directory, so fsync is real).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
use faas_gateway_store::{Appended, Delivery, EventStore, NewEvent, StoreError};

const LEASE: Duration = Duration::from_secs(30);

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn event(id: &str, targets: &[&str]) -> NewEvent {
    NewEvent {
        source: "/test".into(),
        id: id.into(),
        body: Bytes::from(format!(r#"{{"specversion":"1.0","source":"/test","type":"t","id":"{id}"}}"#)),
        targets: targets.iter().map(|t| t.to_string()).collect(),
    }
}

fn sized_event(id: &str, size: usize) -> NewEvent {
    let mut e = event(id, &["sub"]);
    e.body = Bytes::from(vec![b'x'; size]);
    e
}

async fn open(dir: &Path) -> Arc<EmbeddedStore> {
    EmbeddedStore::open(dir, EmbeddedOptions::default()).await.unwrap()
}

/// Claims everything due now (leases long enough not to expire during the test).
async fn claim_all(store: &EmbeddedStore) -> Vec<Delivery> {
    store.claim(100_000, LEASE, Duration::ZERO).await.unwrap()
}

fn ids(deliveries: &[Delivery]) -> BTreeSet<(String, String)> {
    deliveries
        .iter()
        .map(|d| {
            let v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
            (v["id"].as_str().unwrap().to_owned(), d.target.clone())
        })
        .collect()
}

fn pair(id: &str, target: &str) -> (String, String) {
    (id.to_owned(), target.to_owned())
}

fn segment(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    assert_eq!(logs.len(), 1, "one segment expected: {logs:?}");
    logs.pop().unwrap()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

#[tokio::test]
async fn append_claim_ack() {
    let dir = tempdir();
    let store = open(dir.path()).await;
    let got = store.append(vec![event("1", &["a", "b"]), event("2", &[])]).await.unwrap();
    assert_eq!(got, [Appended::Stored { deliveries: 2 }, Appended::Stored { deliveries: 0 }]);
    assert_eq!(store.stats().await.unwrap().backlog, 2);

    let claimed = claim_all(&store).await;
    assert_eq!(ids(&claimed), BTreeSet::from([pair("1", "a"), pair("1", "b")]));
    for d in &claimed {
        assert_eq!(d.attempt, 0);
        assert!(d.received_at <= SystemTime::now());
    }
    assert!(claim_all(&store).await.is_empty(), "leased deliveries are not handed out twice");
    assert_eq!(store.stats().await.unwrap().backlog, 2, "leased deliveries are still backlog");

    for d in &claimed {
        store.ack(&d.key).await.unwrap();
    }
    assert!(matches!(store.ack(&claimed[0].key).await, Err(StoreError::UnknownDelivery(_))), "acked twice");
    assert_eq!(store.stats().await.unwrap().backlog, 0);
    assert!(store.claim(10, LEASE, Duration::from_millis(50)).await.unwrap().is_empty());
    store.shutdown().await;
}

#[tokio::test]
async fn claim_limits_to_max_and_waits_for_an_append() {
    let dir = tempdir();
    let store = open(dir.path()).await;
    store.append(vec![event("1", &["a", "b", "c"])]).await.unwrap();
    assert_eq!(store.claim(2, LEASE, Duration::ZERO).await.unwrap().len(), 2);
    assert_eq!(store.claim(2, LEASE, Duration::ZERO).await.unwrap().len(), 1);

    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.claim(10, LEASE, Duration::from_secs(30)).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    store.append(vec![event("2", &["late"])]).await.unwrap();
    let got = waiter.await.unwrap();
    assert_eq!(ids(&got), BTreeSet::from([pair("2", "late")]));
    store.shutdown().await;
}

#[tokio::test]
async fn retry_at_delays_and_counts_attempts() {
    let dir = tempdir();
    let store = open(dir.path()).await;
    store.append(vec![event("1", &["a"])]).await.unwrap();
    let first = claim_all(&store).await.pop().unwrap();
    let not_before = SystemTime::now() + Duration::from_millis(400);
    store.retry_at(&first.key, not_before).await.unwrap();

    assert!(claim_all(&store).await.is_empty(), "not claimable before its time");
    assert_eq!(store.stats().await.unwrap().backlog, 1);
    assert!(matches!(store.ack(&first.key).await, Err(StoreError::UnknownDelivery(_))), "old key is spent");

    let again = store.claim(10, LEASE, Duration::from_secs(20)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert!(SystemTime::now() >= not_before, "handed out before not_before");
    assert_eq!(again[0].attempt, 1);
    assert_eq!(again[0].received_at, first.received_at);

    store.retry_at(&again[0].key, SystemTime::now()).await.unwrap();
    let third = claim_all(&store).await;
    assert_eq!(third[0].attempt, 2);
    store.ack(&third[0].key).await.unwrap();
    assert_eq!(store.stats().await.unwrap().backlog, 0);
    store.shutdown().await;
}

#[tokio::test]
async fn an_expired_lease_gives_the_delivery_back() {
    let dir = tempdir();
    let store = open(dir.path()).await;
    store.append(vec![event("1", &["a"])]).await.unwrap();
    let first = store.claim(10, Duration::from_millis(300), Duration::ZERO).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(claim_all(&store).await.is_empty(), "leased");

    let second = store.claim(10, LEASE, Duration::from_secs(20)).await.unwrap();
    assert_eq!(second.len(), 1, "the lease expired");
    assert_eq!(second[0].attempt, 0, "an expired lease is not a retry");
    assert!(
        matches!(store.ack(&first[0].key).await, Err(StoreError::UnknownDelivery(_))),
        "the first worker lost its lease to the second"
    );
    store.ack(&second[0].key).await.unwrap();
    assert_eq!(store.stats().await.unwrap().backlog, 0);
    store.shutdown().await;
}

#[tokio::test]
async fn a_holder_whose_lease_expired_can_still_ack_if_nobody_took_over() {
    let dir = tempdir();
    let store = open(dir.path()).await;
    store.append(vec![event("1", &["a"])]).await.unwrap();
    let first = store.claim(10, Duration::from_millis(10), Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.ack(&first[0].key).await.unwrap();
    assert!(claim_all(&store).await.is_empty());
    store.shutdown().await;
}

#[tokio::test]
async fn dedupe_inside_the_window_and_not_after() {
    let dir = tempdir();
    let options = EmbeddedOptions { dedupe_window: Duration::from_millis(500), ..Default::default() };
    let store = EmbeddedStore::open(dir.path(), options).await.unwrap();
    let got = store.append(vec![event("1", &["a"]), event("1", &["a"]), event("2", &["a"])]).await.unwrap();
    assert_eq!(got, [Appended::Stored { deliveries: 1 }, Appended::Duplicate, Appended::Stored { deliveries: 1 }]);
    assert_eq!(store.append(vec![event("1", &["a", "b"])]).await.unwrap(), [Appended::Duplicate]);
    let mut other_source = event("1", &["a"]);
    other_source.source = "/other".into();
    assert_eq!(store.append(vec![other_source]).await.unwrap(), [Appended::Stored { deliveries: 1 }]);
    assert_eq!(store.stats().await.unwrap().backlog, 3, "a duplicate stores nothing");

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(store.append(vec![event("1", &["a"])]).await.unwrap(), [Appended::Stored { deliveries: 1 }]);
    assert_eq!(store.stats().await.unwrap().backlog, 4);
    store.shutdown().await;
}

#[tokio::test]
async fn restart_keeps_pending_retries_dedupe_keys_and_registry() {
    let dir = tempdir();
    let store = open(dir.path()).await;
    store.append(vec![event("1", &["a", "b"]), event("2", &["a"]), event("3", &["c"])]).await.unwrap();
    let claimed = claim_all(&store).await;
    let by = |id: &str, target: &str| {
        claimed.iter().find(|d| ids(std::slice::from_ref(d)) == BTreeSet::from([pair(id, target)])).unwrap().clone()
    };
    store.ack(&by("1", "a").key).await.unwrap();
    store.ack(&by("3", "c").key).await.unwrap();
    // Retried twice: attempt 2, due now.
    store.retry_at(&by("2", "a").key, SystemTime::now()).await.unwrap();
    let again = claim_all(&store).await;
    assert_eq!(again.len(), 1);
    store.retry_at(&again[0].key, SystemTime::now()).await.unwrap();
    // Retried into the future.
    let later = SystemTime::now() + Duration::from_secs(3600);
    store.retry_at(&by("1", "b").key, later).await.unwrap();
    store.save_registry(Bytes::from_static(br#"{"subscriptions":[]}"#)).await.unwrap();
    store.shutdown().await;

    let store = open(dir.path()).await;
    assert_eq!(store.stats().await.unwrap().backlog, 2);
    let pending = claim_all(&store).await;
    assert_eq!(ids(&pending), BTreeSet::from([pair("2", "a")]), "acked ones stay gone; the future retry waits");
    assert_eq!(pending[0].attempt, 2);
    for id in ["1", "2", "3"] {
        assert_eq!(store.append(vec![event(id, &["a"])]).await.unwrap(), [Appended::Duplicate], "event {id}");
    }
    assert_eq!(store.load_registry().await.unwrap().unwrap(), Bytes::from_static(br#"{"subscriptions":[]}"#));
    // New events after a restart get fresh keys that do not collide with the replayed ones.
    store.append(vec![event("4", &["a"])]).await.unwrap();
    let fresh = claim_all(&store).await;
    assert_eq!(ids(&fresh), BTreeSet::from([pair("4", "a")]));
    assert_ne!(fresh[0].key, pending[0].key);
    store.shutdown().await;
}

#[tokio::test]
async fn registry_is_empty_at_first_and_replaced_on_save() {
    let dir = tempdir();
    let store = open(dir.path()).await;
    assert_eq!(store.load_registry().await.unwrap(), None);
    store.save_registry(Bytes::from_static(b"one")).await.unwrap();
    store.save_registry(Bytes::from_static(b"two")).await.unwrap();
    assert_eq!(store.load_registry().await.unwrap().unwrap(), Bytes::from_static(b"two"));
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    store.shutdown().await;
}

#[tokio::test]
async fn a_torn_tail_of_garbage_is_truncated() {
    let dir = tempdir();
    let store = open(dir.path()).await;
    for i in 0..3 {
        store.append(vec![event(&i.to_string(), &["a"])]).await.unwrap();
    }
    store.shutdown().await;
    let path = segment(dir.path());
    let good_len = std::fs::metadata(&path).unwrap().len();
    let mut data = std::fs::read(&path).unwrap();
    data.extend((0..777u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(&path, &data).unwrap();

    let store = open(dir.path()).await;
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len, "garbage truncated");
    assert_eq!(ids(&claim_all(&store).await), (0..3).map(|i| pair(&i.to_string(), "a")).collect());
    store.append(vec![event("3", &["a"])]).await.unwrap();
    store.shutdown().await;

    let store = open(dir.path()).await;
    assert_eq!(store.stats().await.unwrap().backlog, 4, "appends after the truncation survive a reopen");
    store.shutdown().await;
}

#[tokio::test]
async fn a_record_cut_in_half_is_dropped_and_earlier_ones_kept() {
    let dir = tempdir();
    let store = open(dir.path()).await;
    store.append(vec![sized_event("first", 1000)]).await.unwrap();
    let before_last = store.log_stats().log_bytes;
    store.append(vec![sized_event("last", 1000)]).await.unwrap();
    let end = store.log_stats().log_bytes;
    store.shutdown().await;
    let path = segment(dir.path());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), end);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(before_last + (end - before_last) / 2).unwrap();
    drop(file);

    let store = open(dir.path()).await;
    let pending = claim_all(&store).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].body.len(), 1000);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), before_last);
    // The torn event was never acknowledged: the same id can be appended again.
    assert_eq!(store.append(vec![sized_event("last", 10)]).await.unwrap(), [Appended::Stored { deliveries: 1 }]);
    store.shutdown().await;
}

#[tokio::test]
async fn damage_in_the_middle_is_reported_not_truncated() {
    let dir = tempdir();
    let store = open(dir.path()).await;
    store.append(vec![sized_event("a", 500)]).await.unwrap();
    let middle = store.log_stats().log_bytes - 100;
    store.append(vec![sized_event("b", 500)]).await.unwrap();
    store.shutdown().await;
    let path = segment(dir.path());
    let mut data = std::fs::read(&path).unwrap();
    let len = data.len();
    data[middle as usize] ^= 0xff;
    std::fs::write(&path, &data).unwrap();

    let err = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Corrupt(_)), "{msg}");
    assert!(msg.contains(&path.display().to_string()) && msg.contains("offset"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap().len(), len, "a corrupt log is left as it is");
}

#[tokio::test]
async fn too_large_events_are_refused_and_nothing_is_stored() {
    let dir = tempdir();
    let options = EmbeddedOptions { max_event_bytes: 1000, ..Default::default() };
    let store = EmbeddedStore::open(dir.path(), options).await.unwrap();
    let err = store.append(vec![sized_event("ok", 1000), sized_event("big", 1001)]).await.unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { size: 1001, limit: 1000 }), "{err}");
    assert_eq!(store.stats().await.unwrap().backlog, 0);
    assert_eq!(store.append(vec![sized_event("ok", 1000)]).await.unwrap(), [Appended::Stored { deliveries: 1 }]);
    store.shutdown().await;
}

#[tokio::test]
async fn a_directory_opens_only_once() {
    let dir = tempdir();
    let store = open(dir.path()).await;
    let err = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Unavailable(_)), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    store.shutdown().await;
    let store = open(dir.path()).await;
    assert_eq!(store.stats().await.unwrap().backlog, 0);
    store.shutdown().await;
    assert!(matches!(store.stats().await, Err(StoreError::Unavailable(_))), "shut down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_shrinks_the_log_and_keeps_what_is_pending() {
    let dir = tempdir();
    let options = EmbeddedOptions { compact_min_bytes: 256 << 10, ..Default::default() };
    let keep: BTreeSet<String> = (0..20).map(|chunk| format!("{chunk}-7")).collect();
    let mut retried = None;
    let store = EmbeddedStore::open(dir.path(), options.clone()).await.unwrap();
    for chunk in 0..20 {
        let batch: Vec<NewEvent> = (0..50)
            .map(|i| {
                let mut e = event(&format!("{chunk}-{i}"), &["sub"]);
                let mut body = e.body.to_vec();
                body.truncate(body.len() - 1);
                body.extend(format!(r#","pad":"{}"}}"#, "p".repeat(1000)).bytes());
                e.body = Bytes::from(body);
                e
            })
            .collect();
        store.append(batch).await.unwrap();
    }
    let before = dir_bytes(dir.path());
    for d in claim_all(&store).await {
        let (id, _) = ids(std::slice::from_ref(&d)).pop_first().unwrap();
        if !keep.contains(&id) {
            store.ack(&d.key).await.unwrap();
        } else if retried.is_none() {
            store.retry_at(&d.key, SystemTime::now()).await.unwrap();
            retried = Some(id);
        }
    }
    // Compaction runs in the background (maybe more than once, as acks go on); wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.log_stats().compactions == 0 || store.log_stats().log_bytes * 4 >= before {
        assert!(std::time::Instant::now() < deadline, "no compaction: {:?}", store.log_stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Appends keep working after the switch to the new segment.
    store.append(vec![event("after", &["sub"])]).await.unwrap();
    store.shutdown().await;
    let after = dir_bytes(dir.path());
    assert!(after * 4 < before, "log did not shrink: {before} -> {after}");
    segment(dir.path());

    let store = EmbeddedStore::open(dir.path(), options).await.unwrap();
    let pending = claim_all(&store).await;
    let mut expected: BTreeSet<(String, String)> = keep.iter().map(|id| pair(id, "sub")).collect();
    expected.insert(pair("after", "sub"));
    assert_eq!(ids(&pending), expected);
    let retried = retried.unwrap();
    for d in &pending {
        let (id, _) = ids(std::slice::from_ref(d)).pop_first().unwrap();
        assert_eq!(d.attempt, u32::from(id == retried), "{id}");
    }
    // De-duplication keys of the compacted-away events are still in the window.
    assert_eq!(store.append(vec![event("3-3", &["sub"])]).await.unwrap(), [Appended::Duplicate]);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempdir();
    let store = open(dir.path()).await;
    let syncs_before = store.log_stats().syncs;
    let n = 256;
    // All appends are queued before the writer has finished its first fsync.
    let results = futures::future::join_all((0..n).map(|i| {
        let store = store.clone();
        async move { store.append(vec![event(&i.to_string(), &["a"])]).await }
    }))
    .await;
    for r in results {
        assert_eq!(r.unwrap(), [Appended::Stored { deliveries: 1 }]);
    }
    let stats = store.log_stats();
    let syncs = stats.syncs - syncs_before;
    assert_eq!(stats.appended_events, n);
    eprintln!("{syncs} fsyncs for {n} concurrent appends");
    // Typically 1 to 5; at most half leaves room for a badly descheduled test thread on a loaded machine.
    assert!(syncs * 2 <= n, "{syncs} fsyncs for {n} concurrent appends: no group commit");
    assert_eq!(store.stats().await.unwrap().backlog, n);

    // And from many tasks on several threads.
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let got = store.append(vec![event(&format!("t{t}-{i}"), &["a"])]).await.unwrap();
                    assert_eq!(got, [Appended::Stored { deliveries: 1 }]);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.stats().await.unwrap().backlog, n + 640);
    store.shutdown().await;
    let store = open(dir.path()).await;
    assert_eq!(store.stats().await.unwrap().backlog, n + 640);
    store.shutdown().await;
}
