//! The embedded event store opening a data directory whose log is damaged: a valid log is written
//! through the store (appends, claims, acks, retries, sometimes a compaction), then truncated,
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
//!   when it opens, it opens again to the same deliveries, and accepts a new append that is
//!   claimable after another reopen.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use bytes::Bytes;
use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
use faas_gateway_store::{Appended, EventStore, NewEvent, StoreError};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Step {
    /// Append a batch of events: (source index, repeat an earlier id?, body, targets).
    Append(Vec<(u8, bool, Vec<u8>, u8)>),
    /// Claim what is due; ack the claimed deliveries picked by the mask, retry the others picked.
    Settle { ack: u16, retry: u16 },
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

fn options(compact: bool) -> EmbeddedOptions {
    EmbeddedOptions {
        dedupe_window: Duration::from_secs(600),
        max_event_bytes: 4096,
        compact_min_bytes: if compact { 256 } else { 64 << 20 },
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
        }
    }
    store.shutdown().await;
    drop(store);

    let log = segment(&dir);
    let data = std::fs::read(&log).unwrap();
    debug(&dir, "after the first session");
    let written = frames(&data);

    // 2. Damage.
    enum Expect {
        /// Opens with exactly these pending deliveries.
        Opens(Pending),
        /// Fails with `Corrupt` naming byte offset `at`, or (`tail_ok`) opens with `kept`.
        CorruptAt { at: usize, tail_ok: bool, kept: Pending },
        /// Anything but a panic or an error that does not name the file.
        Anything,
    }
    let (damaged, expect) = match input.damage {
        Damage::Truncate(at) => {
            let at = at as usize % (data.len() + 1);
            let kept: Vec<FrameInfo> = written.into_iter().filter(|f| f.end <= at).collect();
            (data[..at].to_vec(), Expect::Opens(model(&kept)))
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
            (d, Expect::CorruptAt { at: written[hit].start, tail_ok, kept: model(&written[..hit]) })
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
    let (store, now) = match (EmbeddedStore::open(&dir, opts.clone()).await, expect) {
        (Ok(store), Expect::Opens(want)) => {
            let got = pending(&store).await;
            assert_eq!(got, want, "lost or invented deliveries before a torn tail");
            (store, got)
        }
        (Ok(store), Expect::CorruptAt { tail_ok: true, kept, .. }) => {
            let got = pending(&store).await;
            assert_eq!(got, kept, "lost or invented deliveries before a damaged last record");
            (store, got)
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
        (Err(e), Expect::Opens(_)) => panic!("a truncated log (a torn tail) does not open: {e}"),
        (Err(e), Expect::Anything) => {
            check_error(&e, &log);
            return;
        }
        (Ok(store), Expect::Anything) => {
            let got = pending(&store).await;
            (store, got)
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
    store.shutdown().await;
    drop(store);
    debug(&dir, "after the second session");
    let store = EmbeddedStore::open(&dir, opts).await.expect("a log the store opened and wrote opens again");
    let mut want = now;
    if stored == [Appended::Stored { deliveries: 1 }] {
        want.push(("tf".into(), b"fresh".to_vec(), 0));
    }
    assert_eq!(pending(&store).await, sorted(want), "reopening changed the pending deliveries");
    store.shutdown().await;
}

fuzz_target!(|input: Input| {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(run(input));
});
