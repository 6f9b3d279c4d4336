//! The in-memory index of the embedded store: live events, pending deliveries by due time, leases and
//! de-duplication keys. Rebuilt from the log on open; kept in step with it afterwards.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::record::{Record, StoredDelivery};
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
    /// Sum of `frame_len` of live events.
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

    /// The records a fresh segment needs to reproduce this state: live events with their live deliveries,
    /// then the de-duplication keys (still in the window) of events that are no longer live.
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
        let mut out = Vec::with_capacity(seqs.len() + self.dedupe.len() + 1);
        out.push(Record::Header { next_seq: self.next_seq });
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
        match &snap[1] {
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
}
