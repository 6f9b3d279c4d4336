//! The writer thread of the embedded store: group commit and compaction.
//!
//! Every change to the log goes through one thread. It takes whatever operations are queued (one, or
//! hundreds under load), writes them with a single `write`, and — if any of them is an append — makes them
//! durable with a single `fdatasync` before answering any of them. Acks and retries are written in order
//! but not synced on their own (a lost ack only causes a redelivery); a dirty log is synced within
//! [`SYNC_INTERVAL`] anyway.
//!
//! Key–value writes are decided (condition checked, revision taken) in the index by the caller, then written
//! and fsynced like appends, and committed to the index before their callers are answered.
//!
//! Compaction: when the segment is mostly dead records, the thread snapshots the live state (events with
//! pending deliveries, de-duplication keys still in the window, live key–value entries and the revision
//! clock) at the current end of the segment, and a
//! helper thread writes the snapshot to `events-<gen+1>.log.tmp` and fsyncs it while appends go on. The
//! writer then copies the records appended in the meantime to the new file, fsyncs it, renames it into
//! place and fsyncs the directory; on open, the highest complete generation wins and older ones are
//! deleted. A kill at any point leaves either the old segment or the complete new one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{oneshot, Notify};

use super::record::Record;
use super::state::{micros, KvChange, NewEntry, State};
use crate::StoreError;

/// A log with unsynced acks/retries is synced at the latest this long after the first of them.
pub(crate) const SYNC_INTERVAL: Duration = Duration::from_millis(500);

/// How often the writer looks for a finished compaction while idle.
const COMPACTION_POLL: Duration = Duration::from_millis(20);

/// At most this many operations per group commit.
const MAX_BATCH: usize = 4096;

pub(crate) type Reply = oneshot::Sender<Result<(), StoreError>>;

/// Work for the writer thread.
pub(crate) enum Op {
    /// New events (already framed in `frames`): write, fsync, then index them.
    Append { frames: Vec<u8>, entries: Vec<NewEntry>, reply: Reply },
    /// Answer once everything queued before is durable.
    Barrier { reply: Reply },
    /// An ack or retry record: write in order, no fsync of its own.
    Record { frame: Vec<u8>, reply: Reply },
    /// A key–value write whose condition held (already decided in the index): write, fsync, then commit it.
    /// `frame` may hold more records after the write's own, committed with it: the events of `entries`
    /// (indexed once durable, as appends are) and an ack (see [`crate::GatewayStore::advance`]).
    Kv { frame: Vec<u8>, change: KvChange, entries: Vec<NewEntry>, reply: Reply },
    /// Finish queued work, abandon a running compaction, close the files, release the lock, then answer.
    Shutdown { reply: oneshot::Sender<()> },
}

/// Counters of the writer, for tests, benchmarks and metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub syncs: AtomicU64,
    pub writes: AtomicU64,
    pub appended_events: AtomicU64,
    pub compactions: AtomicU64,
    pub log_bytes: AtomicU64,
}

/// State shared between the store's handles and the writer thread.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub notify: Notify,
    pub counters: Counters,
    pub window_us: u64,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Name of the segment file of generation `gen`.
pub(crate) fn segment_name(gen: u64) -> String {
    format!("events-{gen:016}.log")
}

/// fsyncs a directory, making renames and creations in it durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What [`write_segment`] wrote.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// The file's length.
    pub len: u64,
    /// (sequence number, frame length) of every event.
    pub events: Vec<(u64, u64)>,
    /// (key, revision, frame length) of every key–value entry.
    pub kv: Vec<(String, u64, u64)>,
}

/// Writes `records` to a new file at `path` and fsyncs it.
pub(crate) fn write_segment(path: &Path, records: &[Record]) -> io::Result<Written> {
    let file = OpenOptions::new().write(true).create_new(true).open(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(64 << 10);
    let mut written = Written::default();
    for record in records {
        buf.clear();
        let frame_len = record.encode_into(&mut buf) as u64;
        match record {
            Record::Event { seq, .. } => written.events.push((*seq, frame_len)),
            Record::KvPut { key, revision, .. } => written.kv.push((key.clone(), *revision, frame_len)),
            _ => {}
        }
        out.write_all(&buf)?;
        written.len += frame_len;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(written)
}

struct Compaction {
    done: Receiver<io::Result<Written>>,
    /// The helper thread: joined once its result is in, so that none outlives the writer (and the
    /// store's lock on the directory it writes in).
    thread: Option<std::thread::JoinHandle<()>>,
    /// End of the old segment when the snapshot was taken.
    offset: u64,
    gen: u64,
    tmp: PathBuf,
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub rx: Receiver<Op>,
    pub dir: PathBuf,
    pub file: File,
    pub path: PathBuf,
    pub gen: u64,
    pub file_len: u64,
    pub compact_min_bytes: u64,
    /// Held (flock) for as long as the writer runs.
    pub lock: File,
    dirty_since: Option<Instant>,
    compaction: Option<Compaction>,
    next_compaction_at: u64,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        rx: Receiver<Op>,
        dir: PathBuf,
        file: File,
        path: PathBuf,
        gen: u64,
        file_len: u64,
        compact_min_bytes: u64,
        lock: File,
    ) -> Writer {
        Writer {
            shared,
            rx,
            dir,
            file,
            path,
            gen,
            file_len,
            compact_min_bytes,
            lock,
            dirty_since: None,
            compaction: None,
            next_compaction_at: 0,
        }
    }

    /// The thread's main loop; returns when the store is shut down or dropped.
    pub(crate) fn run(mut self) {
        let mut shutdown = None;
        while let Some(first) = self.next_op() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            shutdown = self.process(batch);
            if shutdown.is_some() {
                break;
            }
            self.poll_compaction();
            self.maybe_compact();
        }
        self.finish(shutdown);
    }

    /// Waits for the next operation, syncing a dirty log and finishing compactions meanwhile.
    fn next_op(&mut self) -> Option<Op> {
        loop {
            let mut timeout = None::<Duration>;
            if self.compaction.is_some() {
                timeout = Some(COMPACTION_POLL);
            }
            if let Some(since) = self.dirty_since {
                let left = SYNC_INTERVAL.saturating_sub(since.elapsed());
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            let Some(timeout) = timeout else { return self.rx.recv().ok() };
            match self.rx.recv_timeout(timeout) {
                Ok(op) => return Some(op),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {
                    if self.dirty_since.is_some_and(|since| since.elapsed() >= SYNC_INTERVAL) {
                        if let Err(e) = self.sync() {
                            self.poison("fdatasync", &e);
                        }
                    }
                    self.poll_compaction();
                    self.maybe_compact();
                }
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
        self.dirty_since = None;
        Ok(())
    }

    fn failed(&self) -> Option<String> {
        self.shared.lock().failed.clone()
    }

    /// Marks the store failed after a write or fsync error: the state of the file is unknown, so nothing
    /// more is written or acknowledged.
    fn poison(&self, what: &str, e: &io::Error) {
        let msg = format!("{what} of {} failed: {e}", self.path.display());
        tracing::error!(error = %msg, "event log write failed; the store refuses further work until reopened");
        let mut state = self.shared.lock();
        state.failed.get_or_insert(msg);
        drop(state);
        self.shared.notify.notify_waiters();
    }

    fn error(&self, msg: &str) -> StoreError {
        StoreError::Io { path: self.path.display().to_string(), source: io::Error::other(msg.to_owned()) }
    }

    /// Group commit of one batch. Returns the shutdown reply if the batch held a shutdown.
    fn process(&mut self, batch: Vec<Op>) -> Option<oneshot::Sender<()>> {
        let mut buf = Vec::new();
        let mut need_sync = false;
        let mut replies = Vec::with_capacity(batch.len());
        let mut entries = Vec::new();
        let mut kv = Vec::new();
        let mut shutdown = None;
        for op in batch {
            match op {
                Op::Append { frames, entries: new, reply } => {
                    if buf.is_empty() {
                        buf = frames;
                    } else {
                        buf.extend_from_slice(&frames);
                    }
                    entries.extend(new);
                    need_sync = true;
                    replies.push(reply);
                }
                Op::Barrier { reply } => {
                    need_sync = true;
                    replies.push(reply);
                }
                Op::Record { frame, reply } => {
                    buf.extend_from_slice(&frame);
                    replies.push(reply);
                }
                Op::Kv { frame, change, entries: new, reply } => {
                    buf.extend_from_slice(&frame);
                    kv.push(change);
                    entries.extend(new);
                    need_sync = true;
                    replies.push(reply);
                }
                Op::Shutdown { reply } => shutdown = Some(reply),
            }
        }
        let mut result = match self.failed() {
            Some(msg) => Err(msg),
            None => Ok(()),
        };
        if result.is_ok() && !buf.is_empty() {
            match self.file.write_all(&buf) {
                Ok(()) => {
                    self.file_len += buf.len() as u64;
                    self.shared.counters.writes.fetch_add(1, Ordering::Relaxed);
                    self.shared.counters.log_bytes.store(self.file_len, Ordering::Relaxed);
                    self.dirty_since.get_or_insert_with(Instant::now);
                }
                Err(e) => {
                    self.poison("write", &e);
                    result = Err(format!("write failed: {e}"));
                }
            }
        }
        if result.is_ok() && need_sync && self.dirty_since.is_some() {
            if let Err(e) = self.sync() {
                self.poison("fdatasync", &e);
                result = Err(format!("fdatasync failed: {e}"));
            }
        }
        // Key–value writes first: a wake-up appended with a run's record (an advance) must not be
        // claimed before the record it wakes can be read.
        if !kv.is_empty() {
            let mut state = self.shared.lock();
            for change in kv {
                if result.is_ok() {
                    state.kv_commit(change);
                } else {
                    state.kv_abandon(&change);
                }
            }
        }
        if result.is_ok() && !entries.is_empty() {
            let count = entries.len() as u64;
            let mut state = self.shared.lock();
            for entry in entries {
                state.insert_event(entry);
            }
            drop(state);
            self.shared.counters.appended_events.fetch_add(count, Ordering::Relaxed);
            self.shared.notify.notify_waiters();
        }
        for reply in replies {
            let _ = reply.send(result.clone().map_err(|msg| self.error(&msg)));
        }
        shutdown
    }

    /// Starts a compaction if the segment is big enough and mostly dead.
    fn maybe_compact(&mut self) {
        if self.compaction.is_some() || self.file_len < self.compact_min_bytes.max(self.next_compaction_at) {
            return;
        }
        let records = {
            let state = self.shared.lock();
            if state.failed.is_some() || state.live_bytes.saturating_mul(2) >= self.file_len {
                return;
            }
            state.snapshot(micros(SystemTime::now()), self.shared.window_us)
        };
        let gen = self.gen + 1;
        let tmp = self.dir.join(format!("{}.tmp", segment_name(gen)));
        let (tx, done) = mpsc::channel();
        let path = tmp.clone();
        tracing::info!(
            segment = %self.path.display(),
            bytes = self.file_len,
            live_records = records.len(),
            "compacting the event log"
        );
        let spawned = std::thread::Builder::new().name("faas-store-compact".into()).spawn(move || {
            let _ = fs::remove_file(&path);
            let _ = tx.send(write_segment(&path, &records));
        });
        match spawned {
            Ok(thread) => {
                self.compaction = Some(Compaction { done, thread: Some(thread), offset: self.file_len, gen, tmp })
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not start the compaction thread");
                self.next_compaction_at = self.file_len + self.compact_min_bytes;
            }
        }
    }

    /// Finishes a compaction whose snapshot is written.
    fn poll_compaction(&mut self) {
        let Some(c) = &self.compaction else { return };
        let result = match c.done.try_recv() {
            Ok(result) => result,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => Err(io::Error::other("the compaction thread panicked")),
        };
        let mut c = self.compaction.take().expect("compaction running");
        if let Some(thread) = c.thread.take() {
            let _ = thread.join();
        }
        if self.failed().is_some() {
            let _ = fs::remove_file(&c.tmp);
            return;
        }
        let written = match result {
            Ok(ok) => ok,
            Err(e) => return self.abandon(c, "writing the snapshot", &e),
        };
        // Copy what was appended since the snapshot, then make the new segment durable before it
        // replaces the old one.
        let copied = (|| -> io::Result<File> {
            let mut file = OpenOptions::new().read(true).append(true).open(&c.tmp)?;
            let mut buf = vec![0u8; 1 << 20];
            let mut pos = c.offset;
            while pos < self.file_len {
                let n = buf.len().min((self.file_len - pos) as usize);
                self.file.read_exact_at(&mut buf[..n], pos)?;
                file.write_all(&buf[..n])?;
                pos += n as u64;
            }
            file.sync_all()?;
            Ok(file)
        })();
        let file = match copied {
            Ok(file) => file,
            Err(e) => return self.abandon(c, "copying the tail", &e),
        };
        let new_path = self.dir.join(segment_name(c.gen));
        if let Err(e) = fs::rename(&c.tmp, &new_path) {
            return self.abandon(c, "renaming the new segment", &e);
        }
        // From here on the new segment is the one a restart reads: switch to it whatever happens.
        let old_path = std::mem::replace(&mut self.path, new_path);
        let old_len = self.file_len;
        self.file = file;
        self.gen = c.gen;
        self.file_len = written.len + (old_len - c.offset);
        self.dirty_since = None;
        if let Err(e) = sync_dir(&self.dir) {
            self.poison("fsync of the data directory", &e);
            return;
        }
        if let Err(e) = fs::remove_file(&old_path) {
            tracing::warn!(segment = %old_path.display(), error = %e, "could not delete the old segment");
        }
        {
            let mut state = self.shared.lock();
            for (seq, len) in written.events {
                if let Some(event) = state.events.get_mut(&seq) {
                    event.frame_len = len;
                }
            }
            for (key, revision, len) in written.kv {
                if let Some(value) = state.kv.get_mut(&key).filter(|v| v.revision == revision) {
                    value.frame_len = len;
                }
            }
            state.live_bytes = state.events.values().map(|e| e.frame_len).sum::<u64>()
                + state.kv.values().map(|v| v.frame_len).sum::<u64>();
        }
        self.shared.counters.compactions.fetch_add(1, Ordering::Relaxed);
        self.shared.counters.log_bytes.store(self.file_len, Ordering::Relaxed);
        self.next_compaction_at = 0;
        tracing::info!(segment = %self.path.display(), before = old_len, after = self.file_len, "event log compacted");
    }

    fn abandon(&mut self, c: Compaction, what: &str, e: &io::Error) {
        tracing::warn!(error = %e, step = what, "compaction failed; keeping the current segment");
        let _ = fs::remove_file(&c.tmp);
        self.next_compaction_at = self.file_len + self.compact_min_bytes;
    }

    /// Answers what is left, abandons a running compaction, syncs and closes the segment.
    fn finish(mut self, shutdown: Option<oneshot::Sender<()>>) {
        if self.dirty_since.is_some() {
            if let Err(e) = self.sync() {
                self.poison("fdatasync", &e);
            }
        }
        while let Ok(op) = self.rx.try_recv() {
            let reply = match op {
                Op::Append { reply, .. } | Op::Barrier { reply } | Op::Record { reply, .. } => reply,
                Op::Kv { change, reply, .. } => {
                    self.shared.lock().kv_abandon(&change);
                    reply
                }
                Op::Shutdown { reply } => {
                    let _ = reply.send(());
                    continue;
                }
            };
            let _ = reply.send(Err(StoreError::Unavailable("the event store is shut down".into())));
        }
        if let Some(c) = self.compaction.take() {
            let _ = c.done.recv();
            if let Some(thread) = c.thread {
                let _ = thread.join();
            }
            let _ = fs::remove_file(&c.tmp);
        }
        tracing::debug!(segment = %self.path.display(), "event log closed");
        let Writer { file, lock, .. } = self;
        drop(file);
        drop(lock);
        if let Some(reply) = shutdown {
            let _ = reply.send(());
        }
    }
}
