//! The activation log: one record per invocation, newest first, optionally persisted as JSON lines
//! so `faas logs` and `faas activations` still show them after a restart.
//!
//! Persistence is off the invocation path: [`ActivationLog::record`] only appends to memory and to a
//! queue, and a writer thread writes the queue in batches (at most [`FLUSH_INTERVAL`] later, or
//! sooner when many records wait). An invocation therefore costs no system call for its record.
//! Dropping the log, or calling [`ActivationLog::flush`], writes everything recorded so far. A
//! process killed outright can lose the records of its last few milliseconds; records are a
//! diagnostic trail, while acknowledged asynchronous work has its own fsync'd journal
//! ([`crate::queue`]). The file is rewritten with only the records kept in memory whenever it
//! grows past [`COMPACT_FACTOR`] times the capacity, so a long `faas dev` session does not grow it
//! without bound, and each record is rewritten at most once per `COMPACT_FACTOR - 1` new ones.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use faas_api::{Activation, ActivationQuery, ActivationStatus};

/// Default number of activations kept in memory.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// The longest a persisted record waits in memory before the writer thread writes it.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// The file is compacted when it holds this many times the capacity in lines (at the default
/// capacity, about 10 MB of records at most).
pub const COMPACT_FACTOR: usize = 4;

/// Records waiting beyond this many wake the writer thread before [`FLUSH_INTERVAL`] ends.
const WAKE_AT: usize = 1024;

#[derive(Default)]
struct Records {
    /// Shared with the writer's queue, so a record is never copied to be persisted.
    list: VecDeque<Arc<Activation>>,
    /// Ids recorded as pending: only those are ever replaced, so other records need no search.
    pending: HashSet<String>,
}

/// What `record` hands to the writer thread.
#[derive(Default)]
struct Queue {
    waiting: Vec<Arc<Activation>>,
    stop: bool,
}

/// The state shared by the log and its writer thread. Locks are always taken in the order
/// `file` → `records` → `queue`, which keeps the file in the order records were made.
struct Shared {
    records: Mutex<Records>,
    capacity: usize,
    /// `None` when the log is only in memory.
    file: Option<Mutex<Persisted>>,
    queue: Mutex<Queue>,
    wake: Condvar,
}

struct Persisted {
    path: PathBuf,
    file: File,
    /// Reused for every batch, so writing allocates nothing once it has grown.
    buf: Vec<u8>,
    /// Swapped with the queue's vector for every batch, for the same reason.
    batch: Vec<Arc<Activation>>,
    /// Lines in the file, to know when to compact it.
    lines: usize,
}

/// A bounded, optionally persisted, log of activations.
///
/// ```
/// use faas_runner_local::activations::ActivationLog;
/// use faas_api::{Activation, ActivationQuery, ActivationStatus, InvokeMode};
/// let log = ActivationLog::in_memory(10);
/// let a = Activation { id: "1".into(), function: "f".into(), start_ms: 0, duration_us: 5, billed_us: 5, cause: None, cold: true,
///     status: ActivationStatus::Success, error: None, result_size: 2, mode: InvokeMode::Sync, attempt: 1, logs: vec![] };
/// log.record(a.clone());
/// assert_eq!(log.query(&ActivationQuery { function: Some("f".into()), ..Default::default() }), vec![a]);
/// ```
pub struct ActivationLog {
    shared: Arc<Shared>,
    path: Option<PathBuf>,
    writer: Option<JoinHandle<()>>,
}

impl ActivationLog {
    /// A log kept only in memory.
    pub fn in_memory(capacity: usize) -> ActivationLog {
        let shared = Shared {
            records: Mutex::new(Records::default()),
            capacity: capacity.max(1),
            file: None,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        };
        ActivationLog { shared: Arc::new(shared), path: None, writer: None }
    }

    /// A log persisted to `path` (JSON lines), loading what is already there. Records that were
    /// written more than once (pending, then finished) keep their last version.
    ///
    /// ```
    /// use faas_runner_local::activations::ActivationLog;
    /// use faas_api::{Activation, ActivationQuery, ActivationStatus, InvokeMode};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("activations.jsonl");
    /// let log = ActivationLog::open(&path, 100).unwrap();
    /// log.record(Activation { id: "1".into(), function: "f".into(), start_ms: 0, duration_us: 5, billed_us: 5, cause: None, cold: true,
    ///     status: ActivationStatus::Success, error: None, result_size: 2, mode: InvokeMode::Sync, attempt: 1,
    ///     logs: vec![] });
    /// drop(log); // writes what is queued
    /// let again = ActivationLog::open(&path, 100).unwrap();
    /// assert_eq!(again.query(&ActivationQuery::default())[0].id, "1");
    /// ```
    pub fn open(path: &Path, capacity: usize) -> std::io::Result<ActivationLog> {
        let capacity = capacity.max(1);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut list: VecDeque<Arc<Activation>> = VecDeque::new();
        // Read as bytes: one damaged line (a torn write, a flipped byte that is not UTF-8) costs
        // that line only, never the records around it.
        if let Ok(bytes) = std::fs::read(path) {
            let mut by_id: HashMap<String, usize> = HashMap::new();
            for line in bytes.split(|b| *b == b'\n') {
                let Ok(a) = serde_json::from_slice::<Activation>(line) else { continue };
                let a = Arc::new(a);
                match by_id.get(&a.id) {
                    Some(&i) => list[i] = a,
                    None => {
                        by_id.insert(a.id.clone(), list.len());
                        list.push_back(a);
                    }
                }
            }
            while list.len() > capacity {
                list.pop_front();
            }
        }
        let pending = list.iter().filter(|a| a.status == ActivationStatus::Pending).map(|a| a.id.clone()).collect();
        let lines = list.len();
        // Compact: rewrite only what is kept.
        let file = rewrite(path, list.iter().map(|a| &**a))?;
        let shared = Arc::new(Shared {
            records: Mutex::new(Records { list, pending }),
            capacity,
            file: Some(Mutex::new(Persisted {
                path: path.to_path_buf(),
                file,
                buf: Vec::new(),
                batch: Vec::new(),
                lines,
            })),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new().name("faas-activations".into()).spawn(move || write_loop(&shared))?
        };
        Ok(ActivationLog { shared, path: Some(path.to_path_buf()), writer: Some(writer) })
    }

    /// Where the log is persisted, if anywhere.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Adds or replaces (same id) a record. Persisting it happens on the writer thread.
    pub fn record(&self, activation: Activation) {
        let shared = &*self.shared;
        let activation = Arc::new(activation);
        let mut records = lock(&shared.records);
        if shared.file.is_some() {
            let mut queue = lock(&shared.queue);
            queue.waiting.push(activation.clone());
            if queue.waiting.len() == WAKE_AT {
                shared.wake.notify_one();
            }
        }
        let Records { list, pending } = &mut *records;
        let replaces = if activation.status == ActivationStatus::Pending {
            !pending.insert(activation.id.clone())
        } else {
            !pending.is_empty() && pending.remove(&activation.id)
        };
        if replaces && let Some(existing) = list.iter_mut().rev().find(|a| a.id == activation.id) {
            *existing = activation;
            return;
        }
        list.push_back(activation);
        while list.len() > shared.capacity {
            if let Some(gone) = list.pop_front() {
                pending.remove(&gone.id);
            }
        }
    }

    /// Writes every record made so far to the file (a no-op for an in-memory log).
    pub fn flush(&self) {
        write_queued(&self.shared);
    }

    /// Records matching `query`, newest first.
    pub fn query(&self, query: &ActivationQuery) -> Vec<Activation> {
        let records = lock(&self.shared.records);
        records
            .list
            .iter()
            .rev()
            .filter(|a| query.function.as_deref().is_none_or(|f| a.function == f))
            .filter(|a| query.id.as_deref().is_none_or(|id| a.id == id))
            .take(query.limit.unwrap_or(50))
            .map(|a| (**a).clone())
            .collect()
    }
}

impl Drop for ActivationLog {
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.wake.notify_one();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data half-updated in a way that
    // matters more than losing the log, so a poisoned lock is used as it is.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writer thread: every [`FLUSH_INTERVAL`] (or when woken), writes what is queued.
fn write_loop(shared: &Shared) {
    loop {
        let stop = {
            let queue = lock(&shared.queue);
            let (queue, _) = shared
                .wake
                .wait_timeout_while(queue, FLUSH_INTERVAL, |q| !q.stop && q.waiting.len() < WAKE_AT)
                .unwrap_or_else(|p| p.into_inner());
            queue.stop
        };
        write_queued(shared);
        if stop {
            return;
        }
    }
}

/// Appends the queued records to the file in one write, compacting it when it has grown past
/// [`COMPACT_FACTOR`] times the capacity.
fn write_queued(shared: &Shared) {
    let Some(file) = &shared.file else { return };
    let mut guard = lock(file);
    let file = &mut *guard;
    std::mem::swap(&mut file.batch, &mut lock(&shared.queue).waiting);
    if file.batch.is_empty() {
        return;
    }
    file.buf.clear();
    for a in &file.batch {
        encode(&mut file.buf, a);
        file.buf.push(b'\n');
    }
    let written = file.file.write_all(&file.buf);
    let count = file.batch.len();
    file.batch.clear();
    // A burst must not pin a large buffer for the life of the process.
    if file.buf.capacity() > 1 << 20 {
        file.buf = Vec::new();
    }
    if let Err(e) = written {
        tracing::warn!(error = %e, path = %file.path.display(), "cannot persist activation records");
        return;
    }
    file.lines += count;
    if file.lines > shared.capacity * COMPACT_FACTOR {
        let records = lock(&shared.records);
        // Everything queued is already in memory, so the rewrite covers it.
        lock(&shared.queue).waiting.clear();
        match rewrite(&file.path, records.list.iter().map(|a| &**a)) {
            Ok(f) => {
                file.file = f;
                file.lines = records.list.len();
            }
            Err(e) => tracing::warn!(error = %e, path = %file.path.display(), "cannot compact the activation log"),
        }
    }
}

/// Replaces the file at `path` with `records` (through a temporary file and a rename) and returns
/// it opened for appending.
fn rewrite<'a>(path: &Path, records: impl Iterator<Item = &'a Activation>) -> std::io::Result<File> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut out = std::io::BufWriter::new(File::create(&tmp)?);
    for a in records {
        serde_json::to_writer(&mut out, a)?;
        out.write_all(b"\n")?;
    }
    out.into_inner().map_err(|e| e.into_error())?;
    std::fs::rename(&tmp, path)?;
    std::fs::OpenOptions::new().append(true).open(path)
}

/// Appends `a` as JSON, byte for byte what `serde_json::to_writer` writes for it (a test checks
/// this), without escaping the constant keys: a record is written for every invocation, and
/// serde's key escaping was most of the cost of writing one.
fn encode(buf: &mut Vec<u8>, a: &Activation) {
    let mut num = itoa::Buffer::new();
    let string = |buf: &mut Vec<u8>, s: &str| serde_json::to_writer(&mut *buf, s).expect("a string serialises");
    buf.extend_from_slice(b"{\"id\":");
    string(buf, &a.id);
    buf.extend_from_slice(b",\"function\":");
    string(buf, &a.function);
    buf.extend_from_slice(b",\"start_ms\":");
    buf.extend_from_slice(num.format(a.start_ms).as_bytes());
    buf.extend_from_slice(b",\"duration_us\":");
    buf.extend_from_slice(num.format(a.duration_us).as_bytes());
    buf.extend_from_slice(b",\"billed_us\":");
    buf.extend_from_slice(num.format(a.billed_us).as_bytes());
    if let Some(cause) = &a.cause {
        buf.extend_from_slice(b",\"cause\":");
        string(buf, cause);
    }
    buf.extend_from_slice(if a.cold { b",\"cold\":true" } else { b",\"cold\":false" });
    buf.extend_from_slice(b",\"status\":");
    serde_json::to_writer(&mut *buf, &a.status).expect("a status serialises");
    if let Some(error) = &a.error {
        buf.extend_from_slice(b",\"error\":");
        serde_json::to_writer(&mut *buf, error).expect("an error serialises");
    }
    buf.extend_from_slice(b",\"result_size\":");
    buf.extend_from_slice(num.format(a.result_size).as_bytes());
    buf.extend_from_slice(b",\"mode\":");
    serde_json::to_writer(&mut *buf, &a.mode).expect("a mode serialises");
    buf.extend_from_slice(b",\"attempt\":");
    buf.extend_from_slice(num.format(a.attempt).as_bytes());
    buf.extend_from_slice(b",\"logs\":");
    serde_json::to_writer(&mut *buf, &a.logs).expect("log lines serialise");
    buf.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use faas_api::InvokeMode;

    fn activation(id: &str, status: ActivationStatus) -> Activation {
        Activation {
            id: id.into(),
            function: "f".into(),
            start_ms: 0,
            duration_us: 1,
            billed_us: 1,
            cause: None,
            cold: false,
            status,
            error: None,
            result_size: 0,
            mode: InvokeMode::Async,
            attempt: 1,
            logs: vec![format!("line of {id}")],
        }
    }

    fn lines(path: &Path) -> usize {
        std::fs::read_to_string(path).unwrap().lines().count()
    }

    #[test]
    fn records_are_encoded_exactly_as_serde_encodes_them() {
        let mut failed = activation("a\"b\\c\u{1}é", ActivationStatus::Error);
        failed.error = Some(faas_api::Error::function("Boom", "it \"broke\"\n"));
        failed.logs = vec!["INFO tab\there".into(), String::new(), "ünïcödé".into()];
        failed.cold = true;
        failed.mode = InvokeMode::DryRun;
        failed.start_ms = u64::MAX;
        failed.cause = Some("runs/order-\"7\"".into());
        let mut plain = activation("1", ActivationStatus::Success);
        plain.logs.clear();
        plain.mode = InvokeMode::Sync;
        for a in [failed, plain, activation("2", ActivationStatus::Pending)] {
            let mut ours = Vec::new();
            encode(&mut ours, &a);
            assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&a).unwrap());
        }
    }

    #[test]
    fn records_survive_a_reopen_with_their_last_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let log = ActivationLog::open(&path, 100).unwrap();
        log.record(activation("1", ActivationStatus::Pending));
        log.record(activation("2", ActivationStatus::Success));
        log.record(activation("1", ActivationStatus::Error));
        log.flush();
        assert_eq!(lines(&path), 3, "flush writes every record made so far");
        drop(log);
        let log = ActivationLog::open(&path, 100).unwrap();
        let all = log.query(&ActivationQuery::default());
        let got: Vec<_> = all.iter().map(|a| (a.id.as_str(), a.status)).collect();
        assert_eq!(got, [("2", ActivationStatus::Success), ("1", ActivationStatus::Error)]);
        assert_eq!(lines(&path), 2, "opening compacts the file");
    }

    /// Found by `fuzz/activation_log`: the file was read as UTF-8 text, so one byte that is not
    /// UTF-8 (a damaged sector, a torn multi-byte character) made the whole log unreadable, and
    /// opening then compacted it to nothing.
    #[test]
    fn a_damaged_line_costs_that_line_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut bytes = Vec::new();
        for (i, damage) in [&b""[..], b"{\"id\":\"x\xff\"}", b"{\"id\":\"torn"].iter().enumerate() {
            bytes.extend_from_slice(
                serde_json::to_string(&activation(&i.to_string(), ActivationStatus::Success)).unwrap().as_bytes(),
            );
            bytes.push(b'\n');
            bytes.extend_from_slice(damage);
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(b"{\"id\":\"cut at the end");
        std::fs::write(&path, &bytes).unwrap();
        let log = ActivationLog::open(&path, 100).unwrap();
        let ids: Vec<_> = log.query(&ActivationQuery::default()).into_iter().map(|a| a.id).collect();
        assert_eq!(ids, ["2", "1", "0"]);
        drop(log);
        assert_eq!(lines(&path), 3, "the damaged lines are compacted away, the records kept");
    }

    #[test]
    fn the_writer_thread_persists_without_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let log = ActivationLog::open(&path, 100).unwrap();
        log.record(activation("1", ActivationStatus::Success));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while lines(&path) < 1 {
            assert!(std::time::Instant::now() < deadline, "the record was never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(log);
    }

    #[test]
    fn the_file_stays_bounded_and_keeps_the_newest_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let log = ActivationLog::open(&path, 10).unwrap();
        for i in 0..1000 {
            log.record(activation(&i.to_string(), ActivationStatus::Success));
            if i % 7 == 0 {
                log.flush();
            }
        }
        log.flush();
        let most = 10 * COMPACT_FACTOR + 7;
        assert!(lines(&path) <= most, "the file has {} lines for a capacity of 10", lines(&path));
        drop(log);
        let log = ActivationLog::open(&path, 10).unwrap();
        let ids: Vec<_> = log.query(&ActivationQuery::default()).into_iter().map(|a| a.id).collect();
        let want: Vec<_> = (990..1000).rev().map(|i| i.to_string()).collect();
        assert_eq!(ids, want);
    }
}
