//! The in-memory index of the embedded store: live events, pending deliveries by due time, leases and
//! de-duplication keys. Rebuilt from the log on open; kept in step with it afterwards.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::record::{Record, StoredDelivery};
use crate::kv::{KvEntry, KvPage};
use crate::{Delivery, DeliveryKey};

/// Microseconds since the Unix epoch (0 for times before it).
pub(crate) fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_micros().min(u64::MAX as u128) as u64).unwrap_or(0)
}

/// The inverse of [`micros`].
pub(crate) fn from_micros(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

/// Identifies a delivery: event sequence number and target index.
pub(crate) type Slot = (u64, u32);

/// A live event (one with at least one pending delivery).
#[derive(Debug, Clone)]
pub(crate) struct EventEntry {
    pub source: String,
    pub id: String,
    pub body: Bytes,
    pub received_at: u64,
    /// Bytes its record occupies in the current segment (for the dead-space estimate).
    pub frame_len: u64,
    /// Pending deliveries of this event.
    pub live: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct DeliveryEntry {
    pub target: String,
    pub attempt: u32,
    pub not_before: u64,
    /// When it is claimable: `not_before`, or the end of the current lease.
    pub due: u64,
    /// Claim number of the current (or last, if expired and not re-claimed) lease; `None` when not leased.
    pub holder: Option<u64>,
}

/// A record about one event to be committed to the index once it is durable.
#[derive(Debug)]
pub(crate) struct NewEntry {
    pub seq: u64,
    pub entry: EventEntry,
    pub deliveries: Vec<StoredDelivery>,
}

/// A key's committed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KvValue {
    pub value: Bytes,
    pub revision: u64,
    /// Microseconds since the Unix epoch; 0 for no expiry.
    pub expires_at: u64,
    /// Bytes its record occupies in the current segment (for the dead-space estimate).
    pub frame_len: u64,
}

impl KvValue {
    fn live_at(&self, now: u64) -> bool {
        self.expires_at == 0 || self.expires_at > now
    }

    fn entry(&self) -> KvEntry {
        KvEntry {
            value: self.value.clone(),
            revision: self.revision,
            expires_at: (self.expires_at != 0).then(|| from_micros(self.expires_at)),
        }
    }
}

/// A key–value write decided (its condition held, its revision taken) and queued, to be committed to the
/// index once durable.
#[derive(Debug)]
pub(crate) struct KvChange {
    pub key: String,
    /// The new value (with its revision); `None` for a delete.
    pub value: Option<KvValue>,
}

/// Writes of one key decided but not yet durable: conditions are evaluated against the latest of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KvPending {
    /// Revision of the latest such write; `None` if it is a delete.
    pub latest: Option<u64>,
    /// How many are outstanding.
    pub count: u32,
}

/// Why an ack or retry was refused.
#[derive(Debug)]
pub(crate) struct Unknown;

#[derive(Debug, Default)]
pub(crate) struct State {
    pub events: HashMap<u64, EventEntry>,
    pub deliveries: HashMap<Slot, DeliveryEntry>,
    /// (due, seq, idx) of every pending delivery.
    pub due: BTreeSet<(u64, u64, u32)>,
    /// (source, id) → (received_at, durable). Keys of events still being written are not durable yet:
    /// they already make later copies duplicates, but a compaction snapshot leaves them out (if the write
    /// fails, the event was never acknowledged and must not be remembered).
    pub dedupe: HashMap<(String, String), (u64, bool)>,
    /// Dedupe keys roughly in arrival order, for expiry.
    pub dedupe_order: VecDeque<(u64, (String, String))>,
    pub next_seq: u64,
    pub next_claim: u64,
    /// Committed key–value entries (expired ones until they are read, overwritten or compacted away).
    pub kv: BTreeMap<String, KvValue>,
    /// Key–value writes decided but not yet durable, by key.
    pub kv_pending: HashMap<String, KvPending>,
    /// The next key–value revision (revisions start at 1).
    pub next_revision: u64,
    /// Sum of `frame_len` of live events and key–value entries.
    pub live_bytes: u64,
    /// Set once `shutdown` was called: no new operations.
    pub closed: bool,
    /// Set when a write or fsync failed: the store refuses further work (its files' state is unknown).
    pub failed: Option<String>,
}

impl State {
    /// Drops de-duplication keys older than `window` (relative to `now`, in µs).
    pub(crate) fn prune_dedupe(&mut self, now: u64, window: u64) {
        while let Some((at, _)) = self.dedupe_order.front() {
            if at.saturating_add(window) > now {
                break;
            }
            let (at, key) = self.dedupe_order.pop_front().expect("front exists");
            if self.dedupe.get(&key).is_some_and(|&(kept, _)| kept == at) {
                self.dedupe.remove(&key);
            }
        }
    }

    /// Whether (source, id) was seen within the window; if not, records it as seen at `now`.
    pub(crate) fn check_and_insert_dedupe(&mut self, source: &str, id: &str, now: u64, window: u64) -> bool {
        let key = (source.to_owned(), id.to_owned());
        if let Some(&(at, _)) = self.dedupe.get(&key) {
            if at.saturating_add(window) > now {
                return true;
            }
        }
        self.dedupe.insert(key.clone(), (now, false));
        self.dedupe_order.push_back((now, key));
        false
    }

    /// Remembers a de-duplication key read from the log, if still inside the window.
    pub(crate) fn restore_dedupe(&mut self, source: String, id: String, at: u64, now: u64, window: u64) {
        if at.saturating_add(window) <= now {
            return;
        }
        let key = (source, id);
        let newer = self.dedupe.get(&key).is_none_or(|&(old, _)| old < at);
        if newer {
            self.dedupe.insert(key.clone(), (at, true));
            self.dedupe_order.push_back((at, key));
        }
    }

    /// Adds a durable event and its deliveries to the index.
    pub(crate) fn insert_event(&mut self, new: NewEntry) {
        let NewEntry { seq, mut entry, deliveries } = new;
        self.next_seq = self.next_seq.max(seq + 1);
        let key = (std::mem::take(&mut entry.source), std::mem::take(&mut entry.id));
        if let Some((at, durable)) = self.dedupe.get_mut(&key) {
            if *at == entry.received_at {
                *durable = true;
            }
        }
        (entry.source, entry.id) = key;
        if let Some(old) = self.events.remove(&seq) {
            // Only a damaged or hand-edited log repeats a sequence number; the later record wins.
            self.remove_event_deliveries(seq, &old);
        }
        entry.live = 0;
        for d in deliveries {
            let slot = (seq, d.idx);
            self.due.insert((d.not_before, seq, d.idx));
            let fresh = self
                .deliveries
                .insert(
                    slot,
                    DeliveryEntry {
                        target: d.target,
                        attempt: d.attempt,
                        not_before: d.not_before,
                        due: d.not_before,
                        holder: None,
                    },
                )
                .is_none();
            if fresh {
                entry.live += 1;
            }
        }
        if entry.live > 0 {
            self.live_bytes += entry.frame_len;
            self.events.insert(seq, entry);
        }
    }

    fn remove_event_deliveries(&mut self, seq: u64, old: &EventEntry) {
        if old.live > 0 {
            self.live_bytes = self.live_bytes.saturating_sub(old.frame_len);
        }
        let slots: Vec<Slot> = self.deliveries.keys().filter(|(s, _)| *s == seq).copied().collect();
        for slot in slots {
            if let Some(d) = self.deliveries.remove(&slot) {
                self.due.remove(&(d.due, slot.0, slot.1));
            }
        }
    }

    /// Applies an ack record (replay): removes the delivery if it is still there.
    pub(crate) fn apply_ack(&mut self, slot: Slot) {
        if let Some(d) = self.deliveries.remove(&slot) {
            self.due.remove(&(d.due, slot.0, slot.1));
            self.release_event(slot.0);
        }
    }

    /// Applies a retry record (replay): sets the attempt count and the due time.
    pub(crate) fn apply_retry(&mut self, slot: Slot, attempt: u32, not_before: u64) {
        if let Some(d) = self.deliveries.get_mut(&slot) {
            self.due.remove(&(d.due, slot.0, slot.1));
            d.attempt = attempt;
            d.not_before = not_before;
            d.due = not_before;
            d.holder = None;
            self.due.insert((not_before, slot.0, slot.1));
        }
    }

    fn release_event(&mut self, seq: u64) {
        if let Some(e) = self.events.get_mut(&seq) {
            e.live = e.live.saturating_sub(1);
            if e.live == 0 {
                let frame_len = e.frame_len;
                self.events.remove(&seq);
                self.live_bytes = self.live_bytes.saturating_sub(frame_len);
            }
        }
    }

    /// Leases up to `max` deliveries due at `now` until `now + lease`.
    pub(crate) fn claim(&mut self, max: usize, now: u64, lease: u64) -> Vec<Delivery> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&(due, seq, idx)) = self.due.first() else { break };
            if due > now {
                break;
            }
            self.due.pop_first();
            let claim = self.next_claim;
            self.next_claim += 1;
            let until = now.saturating_add(lease);
            let (Some(d), Some(e)) = (self.deliveries.get_mut(&(seq, idx)), self.events.get(&seq)) else {
                continue;
            };
            d.due = until;
            d.holder = Some(claim);
            self.due.insert((until, seq, idx));
            out.push(Delivery {
                key: DeliveryKey(format!("{seq}.{idx}.{claim}")),
                target: d.target.clone(),
                body: e.body.clone(),
                attempt: d.attempt,
                received_at: from_micros(e.received_at),
            });
        }
        out
    }

    /// The earliest due time, if any delivery is pending.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.due.first().map(|(due, _, _)| *due)
    }

    /// Resolves a key handed out by [`State::claim`] to its delivery, if that lease is still the current one.
    pub(crate) fn holder_slot(&self, key: &DeliveryKey) -> Result<Slot, Unknown> {
        let mut parts = key.0.split('.');
        let mut next = || parts.next().and_then(|p| p.parse::<u64>().ok()).ok_or(Unknown);
        let (seq, idx, claim) = (next()?, next()?, next()?);
        if parts.next().is_some() || idx > u32::MAX as u64 {
            return Err(Unknown);
        }
        let slot = (seq, idx as u32);
        match self.deliveries.get(&slot) {
            Some(d) if d.holder == Some(claim) => Ok(slot),
            _ => Err(Unknown),
        }
    }

    /// Acks a claimed delivery.
    pub(crate) fn ack(&mut self, key: &DeliveryKey) -> Result<Record, Unknown> {
        let slot = self.holder_slot(key)?;
        self.apply_ack(slot);
        Ok(Record::Ack { seq: slot.0, idx: slot.1 })
    }

    /// Schedules a claimed delivery for another attempt.
    pub(crate) fn retry(&mut self, key: &DeliveryKey, not_before: u64) -> Result<Record, Unknown> {
        let slot = self.holder_slot(key)?;
        let attempt = self.deliveries[&slot].attempt.saturating_add(1);
        self.apply_retry(slot, attempt, not_before);
        Ok(Record::Retry { seq: slot.0, idx: slot.1, attempt, not_before })
    }

    /// The revision a condition on `key` is checked against at `now`: the latest write decided, durable
    /// or not; `None` if that leaves the key absent (or expired).
    pub(crate) fn kv_current(&self, key: &str, now: u64) -> Option<u64> {
        match self.kv_pending.get(key) {
            Some(pending) => pending.latest,
            None => self.kv.get(key).filter(|v| v.live_at(now)).map(|v| v.revision),
        }
    }

    /// Takes the next revision for a write of `key` (`put`: a put, else a delete) whose condition held,
    /// and marks the write pending until [`State::kv_commit`] or [`State::kv_abandon`].
    pub(crate) fn kv_decide(&mut self, key: &str, put: bool) -> u64 {
        // Saturating: only a hand-made log can bring the clock near the end of u64.
        let revision = self.next_revision.max(1);
        self.next_revision = revision.saturating_add(1);
        let pending = self.kv_pending.entry(key.to_owned()).or_insert(KvPending { latest: None, count: 0 });
        pending.latest = put.then_some(revision);
        pending.count += 1;
        revision
    }

    fn kv_settle(&mut self, key: &str) {
        if let Some(pending) = self.kv_pending.get_mut(key) {
            pending.count -= 1;
            if pending.count == 0 {
                self.kv_pending.remove(key);
            }
        }
    }

    /// Applies a decided write once it is durable.
    pub(crate) fn kv_commit(&mut self, change: KvChange) {
        self.kv_settle(&change.key);
        match change.value {
            Some(value) => self.kv_insert(change.key, value),
            None => self.kv_remove(&change.key),
        }
    }

    /// Forgets a decided write that did not become durable.
    pub(crate) fn kv_abandon(&mut self, change: &KvChange) {
        self.kv_settle(&change.key);
    }

    fn kv_insert(&mut self, key: String, value: KvValue) {
        self.next_revision = self.next_revision.max(value.revision.saturating_add(1));
        self.live_bytes += value.frame_len;
        if let Some(old) = self.kv.insert(key, value) {
            self.live_bytes = self.live_bytes.saturating_sub(old.frame_len);
        }
    }

    fn kv_remove(&mut self, key: &str) {
        if let Some(old) = self.kv.remove(key) {
            self.live_bytes = self.live_bytes.saturating_sub(old.frame_len);
        }
    }

    /// Applies a put read from the log (replay): one already expired leaves the key absent.
    pub(crate) fn apply_kv_put(&mut self, key: String, value: KvValue, now: u64) {
        if value.live_at(now) {
            self.kv_insert(key, value);
        } else {
            self.next_revision = self.next_revision.max(value.revision.saturating_add(1));
            self.kv_remove(&key);
        }
    }

    /// Applies a delete read from the log (replay).
    pub(crate) fn apply_kv_delete(&mut self, key: &str, revision: u64) {
        self.next_revision = self.next_revision.max(revision.saturating_add(1));
        self.kv_remove(key);
    }

    /// The committed entry of `key` at `now`; an expired one is dropped from the index.
    pub(crate) fn kv_get(&mut self, key: &str, now: u64) -> Option<KvEntry> {
        match self.kv.get(key) {
            Some(v) if v.live_at(now) => Some(v.entry()),
            Some(_) => {
                self.kv_remove(key);
                None
            }
            None => None,
        }
    }

    /// Up to `limit` committed live entries whose keys start with `prefix`, after `after`.
    pub(crate) fn kv_list(&mut self, prefix: &str, after: Option<&str>, limit: usize, now: u64) -> KvPage {
        let limit = limit.max(1);
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut page = KvPage::default();
        let mut expired = Vec::new();
        for (key, value) in self.kv.range::<str, _>((start, Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            if !value.live_at(now) {
                expired.push(key.clone());
                continue;
            }
            if page.entries.len() == limit {
                page.next = page.entries.last().map(|(key, _)| key.clone());
                break;
            }
            page.entries.push((key.clone(), value.entry()));
        }
        for key in expired {
            self.kv_remove(&key);
        }
        page
    }

    /// The records a fresh segment needs to reproduce this state: the key–value clock, live events with
    /// their live deliveries, the de-duplication keys (still in the window) of events that are no longer
    /// live, then the live key–value entries.
    pub(crate) fn snapshot(&self, now: u64, window: u64) -> Vec<Record> {
        let mut seqs: Vec<u64> = self.events.keys().copied().collect();
        seqs.sort_unstable();
        let mut by_seq: HashMap<u64, Vec<StoredDelivery>> = HashMap::with_capacity(seqs.len());
        for (&(seq, idx), d) in &self.deliveries {
            by_seq.entry(seq).or_default().push(StoredDelivery {
                idx,
                target: d.target.clone(),
                attempt: d.attempt,
                not_before: d.not_before,
            });
        }
        let mut out = Vec::with_capacity(seqs.len() + self.dedupe.len() + self.kv.len() + 2);
        out.push(Record::Header { next_seq: self.next_seq });
        out.push(Record::KvClock { next_revision: self.next_revision.max(1) });
        let mut live_keys = std::collections::HashSet::new();
        for seq in seqs {
            let e = &self.events[&seq];
            let mut deliveries = by_seq.remove(&seq).unwrap_or_default();
            deliveries.sort_by_key(|d| d.idx);
            live_keys.insert((e.source.as_str(), e.id.as_str(), e.received_at));
            out.push(Record::Event {
                seq,
                received_at: e.received_at,
                source: e.source.clone(),
                id: e.id.clone(),
                body: e.body.clone(),
                deliveries,
            });
        }
        for ((source, id), &(at, durable)) in &self.dedupe {
            if durable && at.saturating_add(window) > now && !live_keys.contains(&(source.as_str(), id.as_str(), at)) {
                out.push(Record::Dedupe { received_at: at, source: source.clone(), id: id.clone() });
            }
        }
        for (key, v) in &self.kv {
            if v.live_at(now) {
                out.push(Record::KvPut {
                    key: key.clone(),
                    revision: v.revision,
                    expires_at: v.expires_at,
                    value: v.value.clone(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(state: &mut State, seq: u64, targets: &[&str]) {
        state.insert_event(NewEntry {
            seq,
            entry: EventEntry {
                source: "s".into(),
                id: format!("e{seq}"),
                body: Bytes::from_static(b"{}"),
                received_at: 10,
                frame_len: 100,
                live: 0,
            },
            deliveries: targets
                .iter()
                .enumerate()
                .map(|(i, t)| StoredDelivery { idx: i as u32, target: t.to_string(), attempt: 0, not_before: 10 })
                .collect(),
        });
    }

    #[test]
    fn claim_leases_and_lease_expiry_makes_it_due_again() {
        let mut s = State::default();
        event(&mut s, 1, &["a", "b"]);
        assert_eq!(s.live_bytes, 100);
        let got = s.claim(10, 20, 1000);
        assert_eq!(got.len(), 2);
        assert!(s.claim(10, 500, 1000).is_empty(), "leased deliveries are invisible");
        let again = s.claim(10, 1020, 1000);
        assert_eq!(again.len(), 2, "lease passed");
        assert!(s.ack(&got[0].key).is_err(), "the first lease was taken over");
        s.ack(&again[0].key).unwrap();
        s.ack(&again[1].key).unwrap();
        assert!(s.events.is_empty());
        assert_eq!(s.live_bytes, 0);
    }

    #[test]
    fn retry_bumps_attempt_and_invalidates_the_key() {
        let mut s = State::default();
        event(&mut s, 1, &["a"]);
        let got = s.claim(1, 20, 1000);
        let rec = s.retry(&got[0].key, 5000).unwrap();
        assert_eq!(rec, Record::Retry { seq: 1, idx: 0, attempt: 1, not_before: 5000 });
        assert!(s.ack(&got[0].key).is_err());
        assert!(s.claim(1, 4999, 10).is_empty());
        assert_eq!(s.claim(1, 5000, 10)[0].attempt, 1);
    }

    #[test]
    fn malformed_keys_are_unknown() {
        let mut s = State::default();
        event(&mut s, 1, &["a"]);
        for key in ["", "1", "1.0", "1.0.x", "1.0.0.0", "99.0.0"] {
            assert!(s.ack(&DeliveryKey(key.into())).is_err(), "{key}");
        }
    }

    #[test]
    fn dedupe_expires_with_the_window() {
        let mut s = State::default();
        assert!(!s.check_and_insert_dedupe("s", "1", 100, 50));
        assert!(s.check_and_insert_dedupe("s", "1", 149, 50));
        s.prune_dedupe(150, 50);
        assert!(s.dedupe.is_empty());
        assert!(!s.check_and_insert_dedupe("s", "1", 150, 50));
    }

    #[test]
    fn snapshot_keeps_live_deliveries_and_dedupe_keys_in_window() {
        let mut s = State::default();
        event(&mut s, 1, &["a", "b"]);
        s.restore_dedupe("s".into(), "gone".into(), 18, 18, 5);
        s.restore_dedupe("s".into(), "old".into(), 1, 1, 5);
        s.check_and_insert_dedupe("s", "in-flight", 19, 5);
        let got = s.claim(2, 20, 1000);
        s.ack(&got[0].key).unwrap();
        let snap = s.snapshot(20, 5);
        assert!(matches!(&snap[0], Record::Header { next_seq: 2 }));
        assert!(matches!(&snap[1], Record::KvClock { next_revision: 1 }));
        match &snap[2] {
            Record::Event { deliveries, .. } => {
                assert_eq!(deliveries.len(), 1);
                assert_eq!(deliveries[0].target, "b");
                assert_eq!(deliveries[0].idx, 1);
            }
            other => panic!("{other:?}"),
        }
        let dedupes: Vec<_> = snap.iter().filter(|r| matches!(r, Record::Dedupe { .. })).collect();
        assert_eq!(dedupes.len(), 1, "{snap:?}");
    }

    fn put(s: &mut State, key: &str, expires_at: u64) -> u64 {
        let revision = s.kv_decide(key, true);
        let value = KvValue { value: Bytes::from(key.to_owned()), revision, expires_at, frame_len: 10 };
        s.kv_commit(KvChange { key: key.into(), value: Some(value) });
        revision
    }

    #[test]
    fn conditions_see_pending_writes_and_commits_settle_them() {
        let mut s = State::default();
        let r1 = put(&mut s, "a", 0);
        assert_eq!((r1, s.kv_current("a", 5)), (1, Some(1)));
        assert_eq!(s.kv_decide("a", false), 2);
        assert_eq!(s.kv_current("a", 5), None, "a pending delete decides the next condition");
        assert_eq!(s.kv_get("a", 5).map(|e| e.revision), Some(r1), "but is not visible before it is durable");
        s.kv_commit(KvChange { key: "a".into(), value: None });
        assert!(s.kv_pending.is_empty() && s.kv.is_empty());
        assert_eq!(s.live_bytes, 0);
        assert_eq!(s.kv_decide("b", true), 3);
        s.kv_abandon(&KvChange { key: "b".into(), value: None });
        assert!(s.kv_pending.is_empty());
        assert_eq!(s.next_revision, 4, "an abandoned revision is not handed out again");
    }

    #[test]
    fn expired_entries_are_absent_and_left_out_of_snapshots() {
        let mut s = State::default();
        put(&mut s, "p/a", 100);
        put(&mut s, "p/b", 0);
        put(&mut s, "p/c", 0);
        put(&mut s, "q", 0);
        assert_eq!(s.live_bytes, 40);
        assert_eq!(s.kv_current("p/a", 99), Some(1));
        assert_eq!(s.kv_current("p/a", 100), None);
        let snap = s.snapshot(100, 0);
        let kept: Vec<&str> = snap
            .iter()
            .filter_map(|r| match r {
                Record::KvPut { key, .. } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(kept, ["p/b", "p/c", "q"]);
        assert!(matches!(snap[1], Record::KvClock { next_revision: 5 }));
        let page = s.kv_list("p/", None, 1, 100);
        assert_eq!(page.entries.len(), 1);
        assert_eq!((page.entries[0].0.as_str(), page.next.as_deref()), ("p/b", Some("p/b")));
        assert_eq!(s.live_bytes, 30, "the expired entry the listing passed was dropped");
        let page = s.kv_list("p/", Some("p/b"), 1, 100);
        assert_eq!((page.entries[0].0.as_str(), page.next), ("p/c", None));
        assert!(s.kv_list("p/", Some("p/c"), 1, 100).entries.is_empty());
        assert_eq!(s.kv_list("p/", Some("a"), 5, 100).entries.len(), 2, "an `after` before the prefix");
    }

    #[test]
    fn replay_of_an_expired_put_removes_the_older_value() {
        let mut s = State::default();
        s.apply_kv_put("k".into(), KvValue { value: Bytes::new(), revision: 3, expires_at: 0, frame_len: 5 }, 50);
        s.apply_kv_put("k".into(), KvValue { value: Bytes::new(), revision: 4, expires_at: 40, frame_len: 5 }, 50);
        assert!(s.kv.is_empty());
        assert_eq!((s.next_revision, s.live_bytes), (5, 0));
        s.apply_kv_delete("gone", 9);
        assert_eq!(s.next_revision, 10);
    }
}
