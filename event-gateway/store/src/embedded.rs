//! The embedded event log: a single-node [`EventStore`] in a data directory, with no server to run.
//!
//! Layout of the data directory:
//! - `LOCK` — held (`flock`) while a store has the directory open; a second process gets a clear error.
//! - `events-<generation>.log` — the append-only log. Every record is framed with its length and a CRC32.
//!   Records: event stored (with its deliveries), delivery acked, delivery retried, de-duplication key,
//!   key–value put and delete (see [`crate::kv`]), and the key–value revision clock.
//! - `registry.json` — the gateway's registry document (see [`EventStore::save_registry`]).
//!
//! Appends are group-committed: one writer thread batches whatever concurrent [`EventStore::append`] calls
//! are queued into one `write` and one `fdatasync`, and every caller returns only after the fsync covering
//! its events. On open the log is replayed; a torn or corrupt tail (what a crash leaves) is truncated with a
//! warning, while damage followed by valid records is reported as [`StoreError::Corrupt`]. When most of the
//! log is dead (acked deliveries), it is compacted into a new generation in the background.
//!
//! Pending deliveries, leases and de-duplication keys are kept in memory (the bodies of events with pending
//! deliveries included), indexed by due time, and so are the live key–value entries (in key order).
//!
//! Key–value writes ([`KvStore`]) are fsynced before they return, group-committed with appends. A
//! condition is decided under the index's lock against the latest write of the key, durable or not, so
//! two racing compare-and-sets on one key never both win; a write becomes visible to reads once it is
//! durable. Expired keys read as absent at once and leave the log at the next compaction.

mod record;
mod state;
mod writer;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::oneshot;

use self::record::{frame_at, next_valid_frame, Frame, Record, StoredDelivery};
use self::state::{micros, EventEntry, KvChange, KvValue, NewEntry, State};
use self::writer::{segment_name, sync_dir, write_segment, Counters, Op, Shared, Writer};
use crate::kv::{check_key, expiry, Expect, KvEntry, KvPage, KvStore, MAX_KEY_BYTES};
use crate::{
    Advance, Advanced, Appended, Delivery, DeliveryKey, EventStore, GatewayStore, NewEvent, StoreError, StoreStats,
};

const REGISTRY_FILE: &str = "registry.json";
const LOCK_FILE: &str = "LOCK";

/// Options of an [`EmbeddedStore`].
///
/// ```
/// use std::time::Duration;
/// use faas_gateway_store::embedded::EmbeddedOptions;
///
/// let options = EmbeddedOptions { dedupe_window: Duration::from_secs(60), ..Default::default() };
/// assert_eq!(options.max_event_bytes, 1 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// How long a (`source`, `id`) pair is remembered for de-duplication (default 10 minutes).
    pub dedupe_window: Duration,
    /// Largest event body accepted by `append` (default 1 MiB); larger ones get [`StoreError::TooLarge`].
    pub max_event_bytes: usize,
    /// The log is compacted once it is at least this big and more than half of it is dead (default 64 MiB).
    pub compact_min_bytes: u64,
    /// Largest key–value value accepted (default 1 MiB); larger ones get [`StoreError::ValueTooLarge`].
    pub max_value_bytes: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            dedupe_window: Duration::from_secs(600),
            max_event_bytes: 1 << 20,
            compact_min_bytes: 64 << 20,
            max_value_bytes: 1 << 20,
        }
    }
}

/// Counters of the log itself (for metrics, tests and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// `fdatasync` calls made on the log so far (each covers every append written before it).
    pub syncs: u64,
    /// `write` calls made on the log so far (one per group commit).
    pub writes: u64,
    /// Events appended (and made durable) since open.
    pub appended_events: u64,
    /// Compactions completed since open.
    pub compactions: u64,
    /// Current size of the log segment in bytes.
    pub log_bytes: u64,
    /// Estimated bytes of the segment still needed (events with pending deliveries, live key–value entries).
    pub live_bytes: u64,
}

/// The embedded event log. See the [module documentation](self).
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use faas_gateway_store::{embedded::{EmbeddedOptions, EmbeddedStore}, Appended, EventStore, NewEvent};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
/// let event = NewEvent {
///     source: "/orders".into(),
///     id: "1".into(),
///     body: Bytes::from_static(br#"{"specversion":"1.0","id":"1","source":"/orders","type":"created"}"#),
///     targets: vec!["billing".into()],
/// };
/// assert_eq!(store.append(vec![event.clone()]).await.unwrap(), [Appended::Stored { deliveries: 1 }]);
/// assert_eq!(store.append(vec![event]).await.unwrap(), [Appended::Duplicate]);
///
/// let claimed = store.claim(10, Duration::from_secs(30), Duration::ZERO).await.unwrap();
/// assert_eq!(claimed[0].target, "billing");
/// store.ack(&claimed[0].key).await.unwrap();
/// assert_eq!(store.stats().await.unwrap().backlog, 0);
/// store.shutdown().await;
/// # });
/// ```
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Op>,
    dir: PathBuf,
    options: EmbeddedOptions,
    registry_lock: tokio::sync::Mutex<()>,
    /// The writer thread, joined by [`EmbeddedStore::shutdown`].
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Closed (its sender dropped) when the writer thread has ended and the lock file is closed.
    released: tokio::sync::watch::Receiver<()>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").field("dir", &self.dir).field("options", &self.options).finish()
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.display().to_string(), source }
}

impl EmbeddedStore {
    /// Opens (creating it if needed) the store in `dir`: takes the directory's lock, replays the log
    /// (truncating a torn tail), and starts the writer thread.
    ///
    /// Errors: [`StoreError::Unavailable`] if another process (or another store in this one) has the
    /// directory open; [`StoreError::Corrupt`] if the log is damaged other than at its tail;
    /// [`StoreError::Io`] naming the file for I/O errors.
    pub async fn open(dir: &Path, options: EmbeddedOptions) -> Result<Arc<EmbeddedStore>, StoreError> {
        let owned = dir.to_path_buf();
        let opts = options.clone();
        let (shared, tx, writer, released) =
            tokio::task::spawn_blocking(move || open_blocking(&owned, &opts))
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening the event store panicked: {e}")))??;
        Ok(Arc::new(EmbeddedStore {
            shared,
            tx,
            dir: dir.to_path_buf(),
            options,
            registry_lock: tokio::sync::Mutex::new(()),
            writer: Mutex::new(Some(writer)),
            released,
        }))
    }

    /// Resolves once the directory's lock is released: the writer thread has ended, after
    /// [`shutdown`](EmbeddedStore::shutdown) or after the last handle was dropped (which does not
    /// wait for it). Keeping this future does not keep the store open, so an owner that only
    /// drops its handles can still wait until the directory can be opened again.
    ///
    /// ```
    /// # use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
    /// let released = store.released();
    /// drop(store);
    /// released.await;
    /// let again = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
    /// # again.shutdown().await;
    /// # });
    /// ```
    pub fn released(&self) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        let mut released = self.released.clone();
        async move { while released.changed().await.is_ok() {} }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counters of the log: fsyncs, writes, compactions, sizes.
    ///
    /// ```
    /// # use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
    /// assert_eq!(store.log_stats().appended_events, 0);
    /// # });
    /// ```
    pub fn log_stats(&self) -> LogStats {
        let c: &Counters = &self.shared.counters;
        LogStats {
            syncs: c.syncs.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            appended_events: c.appended_events.load(Ordering::Relaxed),
            compactions: c.compactions.load(Ordering::Relaxed),
            log_bytes: c.log_bytes.load(Ordering::Relaxed),
            live_bytes: self.shared.lock().live_bytes,
        }
    }

    /// Finishes queued writes, syncs and closes the log, and releases the directory's lock, so the
    /// directory can be opened again (by this process or another), and waits for the writer thread to
    /// end. Later calls on this store fail with [`StoreError::Unavailable`]. Dropping the last handle
    /// does the same, but without waiting for it.
    ///
    /// ```
    /// # use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
    /// store.shutdown().await;
    /// let again = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
    /// # again.shutdown().await;
    /// # });
    /// ```
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        let sent = {
            let mut state = self.shared.lock();
            state.closed = true;
            self.tx.send(Op::Shutdown { reply }).is_ok()
        };
        if sent {
            self.shared.notify.notify_waiters();
            let _ = done.await;
        }
        // The writer answers just before its thread ends: wait for the end too, so that a store shut
        // down leaves no thread behind (LeakSanitizer, under fuzz/embedded_store, saw it still running).
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }

    /// Locks the index, refusing work once the store is shut down or failed.
    fn state(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        let state = self.shared.lock();
        if state.closed {
            return Err(StoreError::Unavailable(format!("the event store in {} is shut down", self.dir.display())));
        }
        if let Some(msg) = &state.failed {
            return Err(StoreError::Unavailable(format!(
                "the event store in {} failed and must be reopened: {msg}",
                self.dir.display()
            )));
        }
        Ok(state)
    }

    fn send(&self, op: Op) -> Result<(), StoreError> {
        self.tx.send(op).map_err(|_| self.stopped())
    }

    /// Refuses an event body over [`EmbeddedOptions::max_event_bytes`].
    fn check_events(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        let limit = self.options.max_event_bytes;
        match events.iter().find(|e| e.body.len() > limit) {
            Some(big) => Err(StoreError::TooLarge { size: big.body.len(), limit }),
            None => Ok(()),
        }
    }

    /// Refuses a key–value value over [`EmbeddedOptions::max_value_bytes`].
    fn check_value(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let limit = self.options.max_value_bytes;
        if value.len() > limit {
            return Err(StoreError::ValueTooLarge { key: key.to_owned(), size: value.len(), limit });
        }
        Ok(())
    }

    fn stopped(&self) -> StoreError {
        StoreError::Unavailable(format!("the event store writer for {} has stopped", self.dir.display()))
    }

    async fn wait(&self, reply: oneshot::Receiver<Result<(), StoreError>>) -> Result<(), StoreError> {
        reply.await.map_err(|_| self.stopped())?
    }
}

/// Which of `events` are new (not seen within the de-duplication window), each with the sequence
/// number it takes; the results for the caller, in order.
fn decide_events(
    state: &mut State,
    events: Vec<NewEvent>,
    now: u64,
    window: u64,
) -> (Vec<Appended>, Vec<(u64, NewEvent)>) {
    state.prune_dedupe(now, window);
    let mut results = Vec::with_capacity(events.len());
    let mut stored = Vec::with_capacity(events.len());
    for event in events {
        if state.check_and_insert_dedupe(&event.source, &event.id, now, window) {
            results.push(Appended::Duplicate);
            continue;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        results.push(Appended::Stored { deliveries: event.targets.len() });
        stored.push((seq, event));
    }
    (results, stored)
}

/// Frames the events [`decide_events`] kept onto `frames`; returns their index entries.
fn frame_events(stored: Vec<(u64, NewEvent)>, now: u64, frames: &mut Vec<u8>) -> Vec<NewEntry> {
    let mut entries = Vec::with_capacity(stored.len());
    for (seq, event) in stored {
        let deliveries: Vec<StoredDelivery> = event
            .targets
            .into_iter()
            .enumerate()
            .map(|(idx, target)| StoredDelivery { idx: idx as u32, target, attempt: 0, not_before: now })
            .collect();
        let record =
            Record::Event { seq, received_at: now, source: event.source, id: event.id, body: event.body, deliveries };
        let frame_len = record.encode_into(frames) as u64;
        let Record::Event { source, id, body, deliveries, .. } = record else { unreachable!() };
        entries.push(NewEntry {
            seq,
            entry: EventEntry { source, id, body, received_at: now, frame_len, live: 0 },
            deliveries,
        });
    }
    entries
}

/// The one commit of an advance: the record's write, the next wake-up and the ack of the current
/// one are framed together and reach the log in a single `write`, made durable by a single
/// `fdatasync` (group-committed with whatever else is queued), in [`Advance`]'s order.
#[async_trait]
impl GatewayStore for EmbeddedStore {
    async fn advance(&self, advance: Advance) -> Result<Advanced, StoreError> {
        let Advance { key, value, expect, append, ack } = advance;
        check_key(&key)?;
        self.check_value(&key, &value)?;
        self.check_events(&append)?;
        let now = SystemTime::now();
        let (reply, done) = oneshot::channel();
        let (revision, appended) = {
            let mut state = self.state()?;
            let current = state.kv_current(&key, micros(now));
            if !expect.met_by(current) {
                return Err(StoreError::Conflict { key, current });
            }
            let revision = state.kv_decide(&key, true);
            let record = Record::KvPut { key, revision, expires_at: 0, value };
            let mut frames = Vec::with_capacity(512 + append.iter().map(|e| e.body.len() + 128).sum::<usize>());
            let kv_len = record.encode_into(&mut frames) as u64;
            let Record::KvPut { key, value, .. } = record else { unreachable!() };
            let change = KvChange { key, value: Some(KvValue { value, revision, expires_at: 0, frame_len: kv_len }) };
            let (appended, stored) = decide_events(&mut state, append, micros(now), self.shared.window_us);
            let entries = frame_events(stored, micros(now), &mut frames);
            if let Some(Ok(record)) = ack.map(|delivery| state.ack(&delivery)) {
                record.encode_into(&mut frames);
            }
            // Queued under the index's lock, like every key–value write (see `kv_put`).
            self.send(Op::Kv { frame: frames, change, entries, reply })?;
            (revision, appended)
        };
        self.wait(done).await?;
        Ok(Advanced { revision, appended })
    }
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        self.check_events(&events)?;
        let now = micros(SystemTime::now());
        let (results, stored) = decide_events(&mut *self.state()?, events, now, self.shared.window_us);
        let (reply, done) = oneshot::channel();
        if stored.is_empty() {
            // Only duplicates: answer once the originals (possibly still being written) are durable.
            self.send(Op::Barrier { reply })?;
        } else {
            let mut frames = Vec::with_capacity(stored.iter().map(|(_, e)| e.body.len() + 128).sum());
            let entries = frame_events(stored, now, &mut frames);
            tracing::trace!(events = entries.len(), "appending events");
            self.send(Op::Append { frames, entries, reply })?;
        }
        self.wait(done).await?;
        Ok(results)
    }

    async fn claim(&self, max: usize, lease: Duration, wait: Duration) -> Result<Vec<Delivery>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + wait;
        let lease_us = lease.as_micros().min(u64::MAX as u128) as u64;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = {
                let mut state = self.state()?;
                let now = micros(SystemTime::now());
                let claimed = state.claim(max, now, lease_us);
                if !claimed.is_empty() {
                    tracing::trace!(deliveries = claimed.len(), "claimed deliveries");
                    return Ok(claimed);
                }
                state.next_due().map(|due| Duration::from_micros(due.saturating_sub(now)))
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Vec::new());
            }
            // Wake when something is appended or retried, when the earliest delivery (or lease) is due,
            // or at the deadline. A millisecond of slack avoids spinning on sub-millisecond timers.
            let sleep = next_due.map_or(left, |due| due.max(Duration::from_millis(1)).min(left));
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    async fn ack(&self, key: &DeliveryKey) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        {
            let mut state = self.state()?;
            let record = state.ack(key).map_err(|_| StoreError::UnknownDelivery(key.clone()))?;
            // Queued while holding the index lock, so the log sees acks and retries in the index's order.
            self.send(Op::Record { frame: record.encode(), reply })?;
        }
        self.wait(done).await
    }

    async fn retry_at(&self, key: &DeliveryKey, not_before: SystemTime) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        {
            let mut state = self.state()?;
            let record = state.retry(key, micros(not_before)).map_err(|_| StoreError::UnknownDelivery(key.clone()))?;
            self.send(Op::Record { frame: record.encode(), reply })?;
        }
        self.shared.notify.notify_waiters();
        self.wait(done).await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats { backlog: self.state()?.deliveries.len() as u64 })
    }

    async fn load_registry(&self) -> Result<Option<Bytes>, StoreError> {
        let path = self.dir.join(REGISTRY_FILE);
        let read = tokio::task::spawn_blocking({
            let path = path.clone();
            move || fs::read(path)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("reading the registry panicked: {e}")))?;
        match read {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    async fn save_registry(&self, document: Bytes) -> Result<(), StoreError> {
        drop(self.state()?);
        let _guard = self.registry_lock.lock().await;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || save_registry_blocking(&dir, &document))
            .await
            .map_err(|e| StoreError::Unavailable(format!("saving the registry panicked: {e}")))?
    }
}

#[async_trait]
impl KvStore for EmbeddedStore {
    async fn kv_get(&self, key: &str) -> Result<Option<KvEntry>, StoreError> {
        check_key(key)?;
        Ok(self.state()?.kv_get(key, micros(SystemTime::now())))
    }

    async fn kv_put(&self, key: &str, value: Bytes, expect: Expect, ttl: Option<Duration>) -> Result<u64, StoreError> {
        check_key(key)?;
        self.check_value(key, &value)?;
        let now = SystemTime::now();
        // 0 stands for "no expiry" in the log; an expiry can never fall on the epoch itself.
        let expires_at = expiry(now, ttl).map_or(0, |at| micros(at).max(1));
        let (reply, done) = oneshot::channel();
        let revision = {
            let mut state = self.state()?;
            let current = state.kv_current(key, micros(now));
            if !expect.met_by(current) {
                return Err(StoreError::Conflict { key: key.to_owned(), current });
            }
            let revision = state.kv_decide(key, true);
            let record = Record::KvPut { key: key.to_owned(), revision, expires_at, value };
            let frame = record.encode();
            let Record::KvPut { key, value, .. } = record else { unreachable!() };
            let value = KvValue { value, revision, expires_at, frame_len: frame.len() as u64 };
            // Queued under the index's lock, so the log holds the writes in the order they were decided.
            self.send(Op::Kv { frame, change: KvChange { key, value: Some(value) }, entries: Vec::new(), reply })?;
            revision
        };
        self.wait(done).await?;
        Ok(revision)
    }

    async fn kv_delete(&self, key: &str, expect: Expect) -> Result<bool, StoreError> {
        check_key(key)?;
        let (reply, done) = oneshot::channel();
        {
            let mut state = self.state()?;
            let current = state.kv_current(key, micros(SystemTime::now()));
            if !expect.met_by(current) {
                return Err(StoreError::Conflict { key: key.to_owned(), current });
            }
            if current.is_none() {
                return Ok(false);
            }
            let revision = state.kv_decide(key, false);
            let frame = Record::KvDelete { key: key.to_owned(), revision }.encode();
            self.send(Op::Kv {
                frame,
                change: KvChange { key: key.to_owned(), value: None },
                entries: Vec::new(),
                reply,
            })?;
        }
        self.wait(done).await?;
        Ok(true)
    }

    async fn kv_list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<KvPage, StoreError> {
        for (what, text) in [("prefix", Some(prefix)), ("after", after)] {
            if let Some(text) = text.filter(|t| t.len() > MAX_KEY_BYTES) {
                return Err(StoreError::BadKey {
                    key: text.chars().take(80).collect(),
                    reason: format!("a list {what} is at most {MAX_KEY_BYTES} bytes; this one has {}", text.len()),
                });
            }
        }
        Ok(self.state()?.kv_list(prefix, after, limit, micros(SystemTime::now())))
    }
}

/// Replaces `registry.json` atomically and durably: temp file, fsync, rename, directory fsync.
fn save_registry_blocking(dir: &Path, document: &[u8]) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{REGISTRY_FILE}.tmp"));
    let path = dir.join(REGISTRY_FILE);
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        io::Write::write_all(&mut file, document)?;
        file.sync_all()
    };
    write().map_err(io_error(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_error(&path))?;
    sync_dir(dir).map_err(io_error(dir))?;
    tracing::debug!(bytes = document.len(), "registry saved");
    Ok(())
}

/// Takes the directory's lock without waiting.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io_error(&path))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            return Err(StoreError::Unavailable(format!(
                "the gateway data directory {} is already in use by another store (lock {} is held); \
                 stop the other gateway or choose another data directory",
                dir.display(),
                path.display()
            )));
        }
        return Err(io_error(&path)(err));
    }
    Ok(file)
}

/// An opened store's parts: the shared index, the writer's queue and its thread.
type Opened = (Arc<Shared>, mpsc::Sender<Op>, std::thread::JoinHandle<()>, tokio::sync::watch::Receiver<()>);

/// Opens the directory: lock, pick the segment, replay it, start the writer.
fn open_blocking(dir: &Path, options: &EmbeddedOptions) -> Result<Opened, StoreError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let lock = lock_dir(dir)?;

    // Find the newest complete segment; older generations (superseded by a compaction that finished) and
    // temp files (of one that did not) are leftovers of a crash.
    let mut gens = Vec::new();
    let mut leftovers = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            leftovers.push(entry.path());
        } else if let Some(gen) =
            name.strip_prefix("events-").and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse::<u64>().ok())
        {
            gens.push(gen);
        }
    }
    gens.sort_unstable();
    let gen = match gens.pop() {
        Some(gen) => gen,
        None => {
            let path = dir.join(segment_name(1));
            let tmp = dir.join(format!("{}.tmp", segment_name(1)));
            let _ = fs::remove_file(&tmp);
            write_segment(&tmp, &[Record::Header { next_seq: 1 }]).map_err(io_error(&tmp))?;
            fs::rename(&tmp, &path).map_err(io_error(&path))?;
            sync_dir(dir).map_err(io_error(dir))?;
            leftovers.retain(|p| p != &tmp);
            tracing::info!(dir = %dir.display(), "created a new event log");
            1
        }
    };
    for old in gens.iter().map(|g| dir.join(segment_name(*g))).chain(leftovers) {
        tracing::info!(file = %old.display(), "removing a leftover of an interrupted compaction");
        fs::remove_file(&old).map_err(io_error(&old))?;
    }

    let path = dir.join(segment_name(gen));
    let window_us = options.dedupe_window.as_micros().min(u64::MAX as u128) as u64;
    let (state, len) = replay(&path, window_us)?;
    tracing::info!(
        segment = %path.display(),
        bytes = len,
        events = state.events.len(),
        deliveries = state.deliveries.len(),
        kv_keys = state.kv.len(),
        dedupe_keys = state.dedupe.len(),
        "event log opened"
    );
    let file = OpenOptions::new().read(true).append(true).open(&path).map_err(io_error(&path))?;
    let counters = Counters::default();
    counters.log_bytes.store(len, Ordering::Relaxed);
    let shared = Arc::new(Shared { state: Mutex::new(state), notify: Default::default(), counters, window_us });
    let (tx, rx) = mpsc::channel();
    let writer =
        Writer::new(shared.clone(), rx, dir.to_path_buf(), file, path, gen, len, options.compact_min_bytes, lock);
    let (release, released) = tokio::sync::watch::channel(());
    let handle = std::thread::Builder::new()
        .name("faas-store-writer".into())
        .spawn(move || {
            // `run` consumes the writer and with it the lock file; only then is the release told.
            writer.run();
            drop(release);
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start the event store writer thread: {e}")))?;
    Ok((shared, tx, handle, released))
}

/// Replays a segment into a fresh index, truncating a torn tail. Returns the index and the segment's length.
fn replay(path: &Path, window_us: u64) -> Result<(State, u64), StoreError> {
    let data = fs::read(path).map_err(io_error(path))?;
    let now = micros(SystemTime::now());
    let mut state = State { next_seq: 1, next_revision: 1, ..Default::default() };
    let mut offset = 0usize;
    while offset < data.len() {
        let (payload, len) = match frame_at(&data, offset) {
            Frame::Valid { payload, len } => (payload, len),
            Frame::Invalid => {
                if let Some(next) = next_valid_frame(&data, offset) {
                    return Err(StoreError::Corrupt(format!(
                        "{}: damaged record at byte offset {offset}, followed by a valid record at offset {next}; \
                         this is not a torn tail a crash leaves — restore the file from a backup or move it away",
                        path.display()
                    )));
                }
                tracing::warn!(
                    segment = %path.display(),
                    offset,
                    dropped_bytes = data.len() - offset,
                    "truncating a torn or corrupt tail of the event log (left by a crash; nothing in it was acknowledged)"
                );
                let file = OpenOptions::new().write(true).open(path).map_err(io_error(path))?;
                file.set_len(offset as u64).map_err(io_error(path))?;
                file.sync_all().map_err(io_error(path))?;
                break;
            }
        };
        let record = Record::decode(payload).map_err(|e| {
            StoreError::Corrupt(format!("{}: undecodable record at byte offset {offset}: {e}", path.display()))
        })?;
        match record {
            Record::Header { next_seq } => state.next_seq = state.next_seq.max(next_seq),
            Record::Event { seq, received_at, source, id, body, deliveries } => {
                state.restore_dedupe(source.clone(), id.clone(), received_at, now, window_us);
                state.insert_event(NewEntry {
                    seq,
                    entry: EventEntry { source, id, body, received_at, frame_len: len as u64, live: 0 },
                    deliveries,
                });
            }
            Record::Ack { seq, idx } => state.apply_ack((seq, idx)),
            Record::Retry { seq, idx, attempt, not_before } => state.apply_retry((seq, idx), attempt, not_before),
            Record::Dedupe { received_at, source, id } => state.restore_dedupe(source, id, received_at, now, window_us),
            Record::KvPut { key, revision, expires_at, value } => {
                state.apply_kv_put(key, KvValue { value, revision, expires_at, frame_len: len as u64 }, now)
            }
            Record::KvDelete { key, revision } => state.apply_kv_delete(&key, revision),
            Record::KvClock { next_revision } => state.next_revision = state.next_revision.max(next_revision),
        }
        offset += len;
    }
    state.dedupe_order.make_contiguous().sort_by_key(|(at, _)| *at);
    Ok((state, offset as u64))
}
