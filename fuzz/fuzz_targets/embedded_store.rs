//! The embedded event store opening a data directory whose log is damaged: a valid log is written
//! through the store (appends, claims, acks, retries, key–value puts and deletes, with and without
//! conditions and TTLs, sometimes a compaction), then truncated,
//! bit-flipped, overwritten or replaced by frames the input chooses, and the store is opened again.
//!
//! The check is against a model of the log (its documented framing, `len | crc32 | payload`,
//! read back by this harness): the records wholly before the damage are what a crash can leave.
//! - a truncation is a torn tail: the store opens, with exactly the deliveries those records leave
//!   pending (same targets, bodies and attempt counts);
//! - a burst of flipped bits (at most 32, which CRC32 always detects) in the last record is a torn
//!   tail as well; in any other record it is `Corrupt`, naming the file and the damaged record's
//!   byte offset;
//! - anything else (overwrites, hand-framed records) opens or fails with an error naming the file;
//!   when it opens, it opens again to the same deliveries and entries, and accepts a new append
//!   (claimable after another reopen) and a new key–value write (readable after it).
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use bytes::Bytes;
use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
use faas_gateway_store::{Appended, EventStore, Expect as Condition, KvStore, NewEvent, StoreError};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Step {
    /// Append a batch of events: (source index, repeat an earlier id?, body, targets).
    Append(Vec<(u8, bool, Vec<u8>, u8)>),
    /// Claim what is due; ack the claimed deliveries picked by the mask, retry the others picked.
    Settle { ack: u16, retry: u16 },
    /// A key–value write of one of a few keys.
    Kv { key: u8, op: KvOp },
}

#[derive(Debug, Arbitrary)]
enum KvOp {
    /// Put a value; `ttl`: 0 none, 1 already expired, else an hour.
    Put {
        value: Vec<u8>,
        condition: Cond,
        ttl: u8,
    },
    Delete {
        condition: Cond,
    },
}

#[derive(Debug, Arbitrary)]
enum Cond {
    Any,
    Absent,
    /// The key's current revision (as read just before), or that plus this offset.
    Current(u8),
}

#[derive(Debug, Arbitrary)]
enum Damage {
    /// Cut the log at this offset (modulo its length).
    Truncate(u32),
    /// XOR up to 4 consecutive bytes at this offset (a burst CRC32 always detects).
    Flip(u32, [u8; 4]),
    /// Overwrite from this offset (may run past the end).
    Overwrite(u32, Vec<u8>),
    /// Replace the log by frames of these payloads (valid length and CRC), after a header or not.
    Frames(bool, Vec<Vec<u8>>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    steps: Vec<Step>,
    compact: bool,
    damage: Damage,
}

/// A pending delivery as the store hands it out: target, body, attempt.
type Pending = Vec<(String, Vec<u8>, u32)>;

/// Live key–value entries: key → (value, revision).
type Entries = BTreeMap<String, (Vec<u8>, u64)>;

const KEYS: [&str; 5] = ["a", "a/b", "state/app/k", "runs/1", "ü/x y"];

fn options(compact: bool) -> EmbeddedOptions {
    EmbeddedOptions {
        dedupe_window: Duration::from_secs(600),
        max_event_bytes: 4096,
        compact_min_bytes: if compact { 256 } else { 64 << 20 },
        max_value_bytes: 4096,
    }
}

fn sorted(mut p: Pending) -> Pending {
    p.sort();
    p
}

async fn pending(store: &EmbeddedStore) -> Pending {
    let claimed = store.claim(100_000, Duration::from_secs(3600), Duration::ZERO).await.expect("claim");
    sorted(claimed.into_iter().map(|d| (d.target, d.body.to_vec(), d.attempt)).collect())
}

/// Every live entry, read page by page (small pages, to exercise the cursor).
async fn entries(store: &EmbeddedStore) -> Entries {
    let mut out = Entries::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.kv_list("", after.as_deref(), 2).await.expect("kv list");
        for (key, entry) in page.entries {
            assert!(entry.expires_at.is_none_or(|at| at > SystemTime::now()), "listed an expired entry");
            assert!(out.insert(key.clone(), (entry.value.to_vec(), entry.revision)).is_none(), "{key} listed twice");
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// The current segment: the newest `events-N.log`.
fn segment(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a segment")
}

/// One frame of the log as this harness reads the documented format.
struct FrameInfo {
    start: usize,
    end: usize,
    payload: Vec<u8>,
}

fn frames(data: &[u8]) -> Vec<FrameInfo> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap());
        let Some(payload) = data.get(at + 8..at + 8 + len) else { break };
        assert_eq!(crc32fast::hash(payload), crc, "the store wrote a frame with a bad CRC at {at}");
        out.push(FrameInfo { start: at, end: at + 8 + len, payload: payload.to_vec() });
        at += 8 + len;
    }
    assert_eq!(at, data.len(), "the store left a partial frame after a clean shutdown");
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn bytes(&mut self) -> Vec<u8> {
        let n = self.u32() as usize;
        self.take(n).to_vec()
    }
}

/// The key–value entries the frames leave, and the highest revision any of them names (the store's
/// replay, as documented: a put already expired, or a delete, leaves the key absent).
fn model_kv(frames: &[FrameInfo], now: u64) -> (Entries, u64) {
    let mut entries = Entries::new();
    let mut top = 0;
    for f in frames {
        let mut r = Reader(&f.payload[1..]);
        match f.payload[0] {
            6 => {
                let key = String::from_utf8(r.bytes()).unwrap();
                let revision = r.u64();
                let expires_at = r.u64();
                let value = r.bytes();
                top = top.max(revision);
                if expires_at == 0 || expires_at > now {
                    entries.insert(key, (value, revision));
                } else {
                    entries.remove(&key);
                }
            }
            7 => {
                let key = String::from_utf8(r.bytes()).unwrap();
                top = top.max(r.u64());
                entries.remove(&key);
            }
            8 => top = top.max(r.u64().saturating_sub(1)),
            _ => {}
        }
    }
    (entries, top)
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_micros() as u64
}

/// The deliveries the first `n` frames leave pending (the store's replay, as documented).
fn model(frames: &[FrameInfo]) -> Pending {
    let mut slots: BTreeMap<(u64, u32), (String, Vec<u8>, u32)> = BTreeMap::new();
    for f in frames {
        let mut r = Reader(&f.payload[1..]);
        match f.payload[0] {
            2 => {
                let seq = r.u64();
                let _received = r.u64();
                let _source = r.bytes();
                let _id = r.bytes();
                let body = r.bytes();
                slots.retain(|(s, _), _| *s != seq);
                for _ in 0..r.u32() {
                    let idx = r.u32();
                    let target = String::from_utf8(r.bytes()).unwrap();
                    let attempt = r.u32();
                    let _not_before = r.u64();
                    slots.insert((seq, idx), (target, body.clone(), attempt));
                }
            }
            3 => {
                let slot = (r.u64(), r.u32());
                slots.remove(&slot);
            }
            4 => {
                let slot = (r.u64(), r.u32());
                let attempt = r.u32();
                if let Some(d) = slots.get_mut(&slot) {
                    d.2 = attempt;
                }
            }
            _ => {}
        }
    }
    sorted(slots.into_values().collect())
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn header(next_seq: u64) -> Vec<u8> {
    let mut p = vec![1u8];
    p.extend_from_slice(b"FAASGWL1");
    p.extend_from_slice(&next_seq.to_le_bytes());
    frame(&p)
}

/// An error must name the log file; a `Corrupt` one also the byte offset.
fn check_error(e: &StoreError, log: &Path) {
    let text = e.to_string();
    match e {
        StoreError::Corrupt(_) => {
            assert!(text.contains(&log.display().to_string()), "corrupt error does not name the file: {text}");
            assert!(text.contains("offset"), "corrupt error does not name the offset: {text}");
        }
        StoreError::Io { path, .. } => assert!(!path.is_empty(), "{text}"),
        other => panic!("unexpected error opening a damaged log: {other:?}"),
    }
}

/// With FUZZ_DEBUG set, what is in the data directory (to read a failing input's story).
fn debug(dir: &Path, when: &str) {
    if std::env::var_os("FUZZ_DEBUG").is_none() {
        return;
    }
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    eprintln!("-- {when}");
    for p in names {
        let data = std::fs::read(&p).unwrap_or_default();
        eprintln!("{} ({} bytes): {:?}", p.display(), data.len(), &data[..data.len().min(200)]);
    }
}

async fn run(input: Input) {
    let base = if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
    let tmp = tempfile::tempdir_in(base).unwrap();
    let dir = tmp.path().join("data");
    let opts = options(input.compact);

    // 1. A valid log, written through the store.
    let store = EmbeddedStore::open(&dir, opts.clone()).await.expect("open an empty directory");
    let mut counter = 0u32;
    let mut ids: Vec<(String, String)> = Vec::new();
    for step in input.steps.into_iter().take(8) {
        match step {
            Step::Append(batch) => {
                let events: Vec<NewEvent> = batch
                    .into_iter()
                    .take(8)
                    .map(|(source, repeat, body, targets)| {
                        counter += 1;
                        let (source, id) = match (repeat, ids.get(source as usize % ids.len().max(1))) {
                            (true, Some(old)) => old.clone(),
                            _ => (format!("/s{}", source % 4), format!("e{counter}")),
                        };
                        ids.push((source.clone(), id.clone()));
                        // Bodies carry the counter, so (target, body) names one delivery.
                        let mut b = format!("{counter}:").into_bytes();
                        b.extend(body.into_iter().take(64));
                        NewEvent {
                            source,
                            id,
                            body: Bytes::from(b),
                            targets: (0..targets % 4).map(|t| format!("t{t}")).collect(),
                        }
                    })
                    .collect();
                let n = events.len();
                let results = store.append(events).await.expect("append");
                assert_eq!(results.len(), n);
                let _ = results.iter().filter(|r| matches!(r, Appended::Duplicate)).count();
            }
            Step::Settle { ack, retry } => {
                let claimed = store.claim(16, Duration::from_secs(3600), Duration::ZERO).await.expect("claim");
                for (i, d) in claimed.iter().enumerate() {
                    if ack & (1 << i) != 0 {
                        store.ack(&d.key).await.expect("ack");
                    } else if retry & (1 << i) != 0 {
                        store.retry_at(&d.key, SystemTime::UNIX_EPOCH).await.expect("retry");
                    }
                }
            }
            Step::Kv { key, op } => {
                let key = KEYS[key as usize % KEYS.len()];
                let current = store.kv_get(key).await.expect("kv get").map(|e| e.revision);
                let condition = |c: &Cond| match c {
                    Cond::Any => Condition::Any,
                    Cond::Absent => Condition::Absent,
                    Cond::Current(off) => Condition::Revision(current.unwrap_or(1) + *off as u64 % 2),
                };
                let (condition, result) = match op {
                    KvOp::Put { value, condition: c, ttl } => {
                        let ttl = match ttl % 3 {
                            0 => None,
                            1 => Some(Duration::ZERO),
                            _ => Some(Duration::from_secs(3600)),
                        };
                        let value = Bytes::from(value.into_iter().take(64).collect::<Vec<u8>>());
                        let c = condition(&c);
                        (c, store.kv_put(key, value, c, ttl).await.map(|_| ()))
                    }
                    KvOp::Delete { condition: c } => {
                        let c = condition(&c);
                        (c, store.kv_delete(key, c).await.map(|_| ()))
                    }
                };
                match result {
                    Ok(()) => assert!(condition.met_by(current), "{condition:?} not met by {current:?}, yet written"),
                    Err(StoreError::Conflict { current: reported, .. }) => {
                        assert!(!condition.met_by(current), "{condition:?} met by {current:?}, yet a conflict");
                        assert_eq!(reported, current, "the conflict names another revision than the current one");
                    }
                    Err(e) => panic!("kv write failed: {e}"),
                }
            }
        }
    }
    let entries_before = entries(&store).await;
    store.shutdown().await;
    drop(store);

    let log = segment(&dir);
    let data = std::fs::read(&log).unwrap();
    debug(&dir, "after the first session");
    let written = frames(&data);
    let (model_before, _) = model_kv(&written, now_us());
    assert_eq!(entries_before, model_before, "the log does not hold the entries the store served");

    // 2. Damage.
    enum Expect {
        /// Opens with exactly these pending deliveries and entries; new revisions above `top`.
        Opens(Pending, Entries, u64),
        /// Fails with `Corrupt` naming byte offset `at`, or (`tail_ok`) opens with `kept`.
        CorruptAt { at: usize, tail_ok: bool, kept: (Pending, Entries, u64) },
        /// Anything but a panic or an error that does not name the file.
        Anything,
    }
    let (damaged, expect) = match input.damage {
        Damage::Truncate(at) => {
            let at = at as usize % (data.len() + 1);
            let kept: Vec<FrameInfo> = written.into_iter().filter(|f| f.end <= at).collect();
            let (kv, top) = model_kv(&kept, now_us());
            (data[..at].to_vec(), Expect::Opens(model(&kept), kv, top))
        }
        Damage::Flip(at, mask) => {
            if data.is_empty() {
                return;
            }
            let at = at as usize % data.len();
            let mut d = data.clone();
            for (i, m) in mask.iter().enumerate() {
                if let Some(b) = d.get_mut(at + i) {
                    *b ^= m;
                }
            }
            if d == data {
                return;
            }
            let first = (0..d.len()).find(|&i| d[i] != data[i]).unwrap();
            let last = (0..d.len()).rfind(|&i| d[i] != data[i]).unwrap();
            let frame_of = |at: usize| written.iter().position(|f| f.start <= at && at < f.end).unwrap();
            let hit = frame_of(first);
            // The burst may run into the next record: a torn tail when it reaches the last one.
            let tail_ok = frame_of(last) + 1 == written.len();
            let (kv, top) = model_kv(&written[..hit], now_us());
            (d, Expect::CorruptAt { at: written[hit].start, tail_ok, kept: (model(&written[..hit]), kv, top) })
        }
        Damage::Overwrite(at, bytes) => {
            let at = at as usize % (data.len() + 1);
            let bytes = &bytes[..bytes.len().min(512)];
            let mut d = data.clone();
            if d.len() < at + bytes.len() {
                d.resize(at + bytes.len(), 0);
            }
            d[at..at + bytes.len()].copy_from_slice(bytes);
            (d, Expect::Anything)
        }
        Damage::Frames(with_header, payloads) => {
            let mut d = if with_header { header(1) } else { Vec::new() };
            for p in payloads.iter().take(16) {
                d.extend(frame(p));
            }
            (d, Expect::Anything)
        }
    };
    std::fs::write(&log, &damaged).unwrap();
    debug(&dir, "damaged");

    // 3. Reopen.
    // (`pending` claims with a long lease: each store is asked once.)
    let (store, now, kv_now, top) = match (EmbeddedStore::open(&dir, opts.clone()).await, expect) {
        (Ok(store), Expect::Opens(want, want_kv, top)) => {
            let got = pending(&store).await;
            assert_eq!(got, want, "lost or invented deliveries before a torn tail");
            let kv = entries(&store).await;
            assert_eq!(kv, want_kv, "lost or invented key–value entries before a torn tail");
            (store, got, kv, top)
        }
        (Ok(store), Expect::CorruptAt { tail_ok: true, kept: (want, want_kv, top), .. }) => {
            let got = pending(&store).await;
            assert_eq!(got, want, "lost or invented deliveries before a damaged last record");
            let kv = entries(&store).await;
            assert_eq!(kv, want_kv, "lost or invented key–value entries before a damaged last record");
            (store, got, kv, top)
        }
        (Ok(_), Expect::CorruptAt { at, tail_ok: false, .. }) => {
            panic!(
                "damage at offset {at}, followed by valid records, was taken as a torn tail; log {} bytes before, \
                 damaged {:?}…",
                data.len(),
                &damaged[..damaged.len().min(64)]
            )
        }
        (Err(e), Expect::CorruptAt { at, .. }) => {
            check_error(&e, &log);
            let text = e.to_string();
            assert!(
                text.contains(&format!("byte offset {at},")),
                "corrupt error names another offset than {at}: {text}"
            );
            return;
        }
        (Err(e), Expect::Opens(..)) => panic!("a truncated log (a torn tail) does not open: {e}"),
        (Err(e), Expect::Anything) => {
            check_error(&e, &log);
            return;
        }
        (Ok(store), Expect::Anything) => {
            let got = pending(&store).await;
            let kv = entries(&store).await;
            (store, got, kv, 0)
        }
    };

    // 4. What opened opens again to the same deliveries, and takes a new event durably.
    let fresh = NewEvent {
        source: "/fresh".into(),
        id: "fresh".into(),
        body: Bytes::from_static(b"fresh"),
        targets: vec!["tf".into()],
    };
    let stored = store.append(vec![fresh]).await.expect("append after reopening a damaged log");
    let mut want_kv = kv_now;
    match store.kv_put("fresh/key", Bytes::from_static(b"fresh"), Condition::Any, None).await {
        Ok(revision) => {
            assert!(revision > top, "revision {revision} handed out again after a reopen (log went up to {top})");
            want_kv.insert("fresh/key".into(), (b"fresh".to_vec(), revision));
        }
        // A hand-framed log may have taken every revision there is.
        Err(e) => panic!("kv put after reopening a damaged log: {e}"),
    }
    store.shutdown().await;
    drop(store);
    debug(&dir, "after the second session");
    let store = EmbeddedStore::open(&dir, opts).await.expect("a log the store opened and wrote opens again");
    let mut want = now;
    if stored == [Appended::Stored { deliveries: 1 }] {
        want.push(("tf".into(), b"fresh".to_vec(), 0));
    }
    assert_eq!(pending(&store).await, sorted(want), "reopening changed the pending deliveries");
    assert_eq!(entries(&store).await, want_kv, "reopening changed the key–value entries");
    store.shutdown().await;
}

fuzz_target!(|input: Input| {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(run(input));
});
