//! Contract checks every store implementation runs in its own tests, so that the embedded log and
//! JetStream keep the same semantics (see [`crate::kv`]). Each check panics, naming what broke.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
//! faas_gateway_store::testing::kv_contract(store.clone(), "doc", 1 << 20).await;
//! store.shutdown().await;
//! # });
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::kv::{Expect, KvStore};
use crate::StoreError;

fn conflict_current(result: Result<impl std::fmt::Debug, StoreError>, what: &str) -> Option<u64> {
    match result {
        Err(StoreError::Conflict { current, .. }) => current,
        other => panic!("{what}: expected a conflict, got {other:?}"),
    }
}

/// Runs every key–value check against `store`, using keys under `namespace/` only (so several runs can
/// share one store). `value_limit` is the store's configured largest value.
pub async fn kv_contract(store: Arc<dyn KvStore>, namespace: &str, value_limit: usize) {
    let k = |name: &str| format!("{namespace}/{name}");
    let s = &*store;

    // Absent, then written, read back, and changed only under the right revision.
    assert_eq!(s.kv_get(&k("a")).await.unwrap(), None, "a key never written is absent");
    let r1 = s.kv_put(&k("a"), Bytes::from_static(b"one"), Expect::Any, None).await.unwrap();
    let got = s.kv_get(&k("a")).await.unwrap().expect("read your write");
    assert_eq!((got.value.as_ref(), got.revision, got.expires_at), (&b"one"[..], r1, None));
    let r2 = s.kv_put(&k("a"), Bytes::from_static(b"two"), Expect::Revision(r1), None).await.unwrap();
    assert!(r2 > r1, "revisions grow: {r1} then {r2}");
    let stale = s.kv_put(&k("a"), Bytes::from_static(b"lost"), Expect::Revision(r1), None).await;
    assert_eq!(conflict_current(stale, "a put with a stale revision"), Some(r2));
    let exists = s.kv_put(&k("a"), Bytes::from_static(b"lost"), Expect::Absent, None).await;
    assert_eq!(conflict_current(exists, "a create of an existing key"), Some(r2));
    assert_eq!(s.kv_get(&k("a")).await.unwrap().unwrap().value.as_ref(), b"two", "a lost race changes nothing");

    // Deletes, conditional and not; a key written again never takes an old revision (no ABA).
    let wrong = s.kv_delete(&k("a"), Expect::Revision(r1)).await;
    assert_eq!(conflict_current(wrong, "a delete with a stale revision"), Some(r2));
    assert!(s.kv_delete(&k("a"), Expect::Revision(r2)).await.unwrap(), "the delete found the key");
    assert_eq!(s.kv_get(&k("a")).await.unwrap(), None, "deleted");
    assert!(!s.kv_delete(&k("a"), Expect::Any).await.unwrap(), "deleting an absent key is not an error");
    let gone = s.kv_delete(&k("a"), Expect::Revision(r2)).await;
    assert_eq!(conflict_current(gone, "a conditional delete of an absent key"), None);
    let r3 = s.kv_put(&k("a"), Bytes::from_static(b"three"), Expect::Absent, None).await.unwrap();
    assert!(r3 > r2, "a key written again after a delete takes a new revision: {r2} then {r3}");
    let aba = s.kv_put(&k("a"), Bytes::from_static(b"lost"), Expect::Revision(r2), None).await;
    assert_eq!(conflict_current(aba, "a put with the revision of a deleted incarnation"), Some(r3));
    let other = s.kv_put(&k("b"), Bytes::new(), Expect::Any, None).await.unwrap();
    assert!(other > r3, "one counter for every key: {r3} then {other}");
    assert_eq!(s.kv_get(&k("b")).await.unwrap().unwrap().value.len(), 0, "an empty value is a value");

    // Time-to-live: readable until it expires, absent after, for reads, lists and conditions alike.
    let before = SystemTime::now();
    let rt = s.kv_put(&k("ttl"), Bytes::from_static(b"brief"), Expect::Any, Some(Duration::from_millis(400))).await;
    let rt = rt.unwrap();
    let entry = s.kv_get(&k("ttl")).await.unwrap().expect("readable before it expires");
    let expires = entry.expires_at.expect("an expiry");
    assert!(
        expires >= before + Duration::from_millis(390) && expires <= SystemTime::now() + Duration::from_millis(410),
        "expires_at is the write time plus the TTL: {expires:?}"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(s.kv_get(&k("ttl")).await.unwrap(), None, "expired keys read as absent");
    let listed = s.kv_list(&k("ttl"), None, 10).await.unwrap();
    assert!(listed.entries.is_empty(), "expired keys are not listed: {listed:?}");
    let expired = s.kv_put(&k("ttl"), Bytes::from_static(b"x"), Expect::Revision(rt), None).await;
    assert_eq!(conflict_current(expired, "a put on the revision of an expired key"), None);
    let again = s.kv_put(&k("ttl"), Bytes::from_static(b"again"), Expect::Absent, None).await.unwrap();
    assert!(again > rt);
    assert_eq!(s.kv_get(&k("ttl")).await.unwrap().unwrap().expires_at, None, "a put without TTL clears it");

    // Listing by prefix, in byte order, page by page.
    for name in ["l/c", "l/a", "l/b", "l2/x", "m"] {
        s.kv_put(&k(name), Bytes::from(name.to_owned()), Expect::Any, None).await.unwrap();
    }
    let page = s.kv_list(&k("l/"), None, 2).await.unwrap();
    let keys: Vec<&str> = page.entries.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, [k("l/a"), k("l/b")], "first page");
    assert_eq!(page.next.as_deref(), Some(k("l/b").as_str()));
    assert_eq!(page.entries[0].1.value.as_ref(), b"l/a");
    let page = s.kv_list(&k("l/"), page.next.as_deref(), 2).await.unwrap();
    let keys: Vec<&str> = page.entries.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!((keys, page.next), (vec![k("l/c").as_str()], None), "last page");
    let all = s.kv_list(&k("l"), None, 100).await.unwrap();
    assert_eq!(all.entries.len(), 4, "a prefix need not end at a segment: {all:?}");
    assert_eq!(all.entries[3].0, k("l2/x"));

    // Bad input changes nothing and names the problem.
    for bad in ["", "/lead", "trail/", "dou//ble", "nul\0"] {
        match s.kv_put(bad, Bytes::new(), Expect::Any, None).await {
            Err(StoreError::BadKey { .. }) => {}
            other => panic!("key {bad:?}: expected BadKey, got {other:?}"),
        }
    }
    match s.kv_put(&k("big"), Bytes::from(vec![7u8; value_limit + 1]), Expect::Any, None).await {
        Err(StoreError::ValueTooLarge { size, limit, .. }) => assert_eq!((size, limit), (value_limit + 1, value_limit)),
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert_eq!(s.kv_get(&k("big")).await.unwrap(), None);
    let odd = k("ünï/cödé:42 x=1.y*>");
    s.kv_put(&odd, Bytes::from_static(b"odd"), Expect::Any, None).await.unwrap();
    assert_eq!(s.kv_get(&odd).await.unwrap().unwrap().value.as_ref(), b"odd", "any valid key round-trips");
    assert_eq!(s.kv_list(&k("ünï/"), None, 10).await.unwrap().entries[0].0, odd);

    // No lost update: concurrent read–modify–write loops on one counter.
    let counter = k("counter");
    let tasks = (0..20).map(|_| {
        let store = store.clone();
        let counter = counter.clone();
        tokio::spawn(async move {
            loop {
                let current = store.kv_get(&counter).await.unwrap();
                let (n, expect) = match &current {
                    Some(e) => {
                        (std::str::from_utf8(&e.value).unwrap().parse::<u64>().unwrap(), Expect::Revision(e.revision))
                    }
                    None => (0, Expect::Absent),
                };
                match store.kv_put(&counter, Bytes::from((n + 1).to_string()), expect, None).await {
                    Ok(_) => return,
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => panic!("counter update failed: {e}"),
                }
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    let total = s.kv_get(&counter).await.unwrap().unwrap();
    assert_eq!(total.value.as_ref(), b"20", "20 increments with compare-and-set retries end at 20");
}

/// Checks [`GatewayStore::advance`](crate::GatewayStore::advance) against `store`: the write, the
/// appended events and the ack all happen, or (on a failed condition or a value too large) none of
/// them. Uses keys under `namespace/` and event ids starting with it; `store` must have no other
/// pending deliveries (the check claims whatever is due). `value_limit`: the store's largest value.
pub async fn advance_contract(store: Arc<dyn crate::GatewayStore>, namespace: &str, value_limit: usize) {
    use crate::{Advance, Appended, NewEvent};
    let key = format!("{namespace}/run");
    let wake = |n: u32| NewEvent {
        source: "faas.test/advance".into(),
        id: format!("{namespace}/{n}"),
        body: Bytes::from(format!("wake-up {n}")),
        targets: vec!["conductor".into()],
    };
    let lease = Duration::from_secs(30);
    let claim_one = |what: &'static str| {
        let store = store.clone();
        async move {
            let mut claimed = store.claim(10, lease, Duration::from_secs(5)).await.unwrap();
            assert_eq!(claimed.len(), 1, "{what}: one delivery due, got {claimed:?}");
            claimed.remove(0)
        }
    };
    let nothing_due = || {
        let store = store.clone();
        async move { store.claim(10, lease, Duration::from_millis(300)).await.unwrap() }
    };

    store.append(vec![wake(0)]).await.unwrap();
    let first = claim_one("the first wake-up").await;
    assert_eq!(first.body.as_ref(), b"wake-up 0");

    // All three parts: the record written, the next wake-up appended, the current one acknowledged.
    let step = Advance {
        key: key.clone(),
        value: Bytes::from_static(b"at 1"),
        expect: Expect::Absent,
        append: vec![wake(1)],
        ack: Some(first.key.clone()),
    };
    let done = store.advance(step).await.expect("an advance whose condition holds");
    assert_eq!(done.appended, [Appended::Stored { deliveries: 1 }]);
    let entry = store.kv_get(&key).await.unwrap().expect("the record is readable once advance returns");
    assert_eq!((entry.value.as_ref(), entry.revision), (&b"at 1"[..], done.revision));
    let second = claim_one("the wake-up appended by the advance").await;
    assert_eq!(second.body.as_ref(), b"wake-up 1", "the acknowledged wake-up is not handed out again");
    assert_eq!(store.stats().await.unwrap().backlog, 1, "only the new wake-up is pending");

    // A failed condition does nothing: no write, no event, no ack.
    let lost = Advance {
        key: key.clone(),
        value: Bytes::from_static(b"lost"),
        expect: Expect::Absent,
        append: vec![wake(2)],
        ack: Some(second.key.clone()),
    };
    assert_eq!(conflict_current(store.advance(lost).await, "an advance on a stale condition"), Some(done.revision));
    assert_eq!(store.kv_get(&key).await.unwrap().unwrap().value.as_ref(), b"at 1", "the record is unchanged");
    assert_eq!(store.stats().await.unwrap().backlog, 1, "the wake-up held is not acknowledged");
    assert!(nothing_due().await.is_empty(), "a failed advance appends nothing");

    // So does a value too large.
    let big = Advance {
        key: key.clone(),
        value: Bytes::from(vec![1u8; value_limit + 1]),
        expect: Expect::Revision(done.revision),
        append: vec![wake(2)],
        ack: Some(second.key.clone()),
    };
    match store.advance(big).await {
        Err(StoreError::ValueTooLarge { size, .. }) => assert_eq!(size, value_limit + 1),
        other => panic!("an advance with a value too large: expected ValueTooLarge, got {other:?}"),
    }
    assert_eq!(store.stats().await.unwrap().backlog, 1, "nothing acknowledged");
    assert!(nothing_due().await.is_empty(), "nothing appended");

    // An ack of a delivery already gone is skipped; a duplicate event is reported as such.
    let again = Advance {
        key: key.clone(),
        value: Bytes::from_static(b"at 2"),
        expect: Expect::Revision(done.revision),
        append: vec![wake(1)],
        ack: Some(first.key.clone()),
    };
    let redone = store.advance(again).await.expect("an advance acknowledging a delivery already acknowledged");
    assert!(redone.revision > done.revision);
    assert_eq!(redone.appended, [Appended::Duplicate], "a wake-up appended twice is de-duplicated");
    assert_eq!(store.stats().await.unwrap().backlog, 1);

    // The last step of a run: the record, no wake-up, the ack.
    let last = Advance {
        key: key.clone(),
        value: Bytes::from_static(b"ended"),
        expect: Expect::Revision(redone.revision),
        append: Vec::new(),
        ack: Some(second.key.clone()),
    };
    assert!(store.advance(last).await.unwrap().appended.is_empty());
    assert_eq!(store.stats().await.unwrap().backlog, 0, "the last wake-up is acknowledged");
    assert_eq!(store.kv_get(&key).await.unwrap().unwrap().value.as_ref(), b"ended");
}
