//! The asynchronous invocation queue. An invocation is acknowledged (202) only after it is
//! written and synced to a journal; it is then run, retried with exponential back-off and
//! jitter on failures that may pass (function errors, crashes, timeouts, throttling), and marked
//! done. Invocations left pending by a crash or kill are run again by [`AsyncQueue::resume`].
//!
//! A job that crashes on its first try is run again:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::{Arc, Weak};
//! use std::time::Duration;
//! use faas_api::Error;
//! use faas_runner_local::queue::{AsyncQueue, Job, JobRunner};
//! use tokio::sync::mpsc;
//!
//! /// Crashes on the first attempt, succeeds after; reports every attempt.
//! struct Flaky(mpsc::UnboundedSender<u32>);
//! impl JobRunner for Flaky {
//!     fn run(&self, job: Job) -> futures::future::BoxFuture<'_, Result<(), Error>> {
//!         let _ = self.0.send(job.attempt);
//!         Box::pin(async move { if job.attempt == 1 { Err(Error::crash("boom")) } else { Ok(()) } })
//!     }
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let (tx, mut attempts) = mpsc::unbounded_channel();
//! let runner = Arc::new(Flaky(tx));
//! let weak: Weak<dyn JobRunner> = Arc::downgrade(&runner) as Weak<dyn JobRunner>;
//! let queue = AsyncQueue::open(&dir.path().join("async.jsonl"), weak, 2, Duration::from_millis(10));
//! let job = Job {
//!     id: "act-1".into(),
//!     function: "hello".into(),
//!     body: br#""Ada""#.to_vec(),
//!     content_type: Some("application/json".into()),
//!     traceparent: None,
//!     cause: None,
//!     attempt: 1,
//! };
//! queue.enqueue(job).unwrap();
//! assert_eq!(attempts.recv().await, Some(1));
//! assert_eq!(attempts.recv().await, Some(2));
//! # }
//! ```

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use faas_api::{Error, ErrorKind};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// One queued invocation, as written to the journal (one JSON line; the body in base64).
///
/// ```
/// use faas_runner_local::queue::Job;
/// let job = Job {
///     id: "act-1".into(),
///     function: "hello".into(),
///     body: b"{}".to_vec(),
///     content_type: Some("application/json".into()),
///     traceparent: None,
///     cause: None,
///     attempt: 1,
/// };
/// let line = serde_json::to_value(&job).unwrap();
/// assert_eq!(line["body"], "e30=");
/// assert_eq!(serde_json::from_value::<Job>(line).unwrap(), job);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Activation id.
    pub id: String,
    /// Function name.
    pub function: String,
    /// Input body.
    #[serde(with = "b64")]
    pub body: Vec<u8>,
    /// Input content type.
    pub content_type: Option<String>,
    /// Trace context.
    pub traceparent: Option<String>,
    /// What caused it ([`faas_api::InvokeRequest::cause`]); absent in journals written before
    /// it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// 1 for the first try.
    pub attempt: u32,
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};
    /// Writes the bytes as a base64 string.
    ///
    /// ```
    /// # use faas_runner_local::queue::Job;
    /// let job = Job { id: "a".into(), function: "f".into(), body: vec![0, 1, 255], content_type: None, traceparent: None, cause: None, attempt: 1 };
    /// assert_eq!(serde_json::to_value(&job).unwrap()["body"], "AAH/");
    /// ```
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    /// Reads a base64 string back into bytes; anything else is a decoding error.
    ///
    /// ```
    /// # use faas_runner_local::queue::Job;
    /// let line = r#"{"id":"a","function":"f","body":"AAH/","content_type":null,"traceparent":null,"attempt":1}"#;
    /// assert_eq!(serde_json::from_str::<Job>(line).unwrap().body, [0, 1, 255]);
    /// assert!(serde_json::from_str::<Job>(&line.replace("AAH/", "not base64!")).is_err());
    /// ```
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Record {
    Enqueue { job: Job },
    Done { id: String, ok: bool },
}

/// Runs a job; implemented by the runner. An error of a [`retryable`] kind makes the queue try
/// again later.
///
/// ```
/// use faas_api::Error;
/// use faas_runner_local::queue::{Job, JobRunner};
/// use futures::future::BoxFuture;
///
/// struct Refuse;
/// impl JobRunner for Refuse {
///     fn run(&self, job: Job) -> BoxFuture<'_, Result<(), Error>> {
///         Box::pin(async move { Err(Error::not_found(format!("no function `{}`", job.function))) })
///     }
/// }
/// # let job = Job { id: "a".into(), function: "f".into(), body: vec![], content_type: None, traceparent: None, cause: None, attempt: 1 };
/// let err = futures::executor::block_on(Refuse.run(job)).unwrap_err();
/// assert_eq!(err.message(), "no function `f`");
/// ```
pub trait JobRunner: Send + Sync + 'static {
    /// Runs `job` once.
    ///
    /// ```
    /// # use faas_runner_local::queue::{Job, JobRunner};
    /// struct Accept;
    /// impl JobRunner for Accept {
    ///     fn run(&self, _job: Job) -> futures::future::BoxFuture<'_, Result<(), faas_api::Error>> {
    ///         Box::pin(async { Ok(()) })
    ///     }
    /// }
    /// # let job = Job { id: "a".into(), function: "f".into(), body: vec![], content_type: None, traceparent: None, cause: None, attempt: 1 };
    /// assert!(futures::executor::block_on(Accept.run(job)).is_ok());
    /// ```
    fn run(&self, job: Job) -> BoxFuture<'_, Result<(), Error>>;
}

/// Whether an async failure of this kind is worth another try: function errors, crashes,
/// timeouts, throttling and an unavailable backend may pass; bad input or a missing function
/// will not.
///
/// ```
/// use faas_api::ErrorKind;
/// use faas_runner_local::queue::retryable;
/// assert!(retryable(ErrorKind::Timeout));
/// assert!(retryable(ErrorKind::Crash));
/// assert!(!retryable(ErrorKind::BadInput));
/// assert!(!retryable(ErrorKind::NotFound));
/// ```
pub fn retryable(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Function
            | ErrorKind::Crash
            | ErrorKind::Timeout
            | ErrorKind::Throttled
            | ErrorKind::BackendUnavailable
    )
}

/// The delay before try number `attempt + 1`: `base * 2^(attempt-1)`, capped at 5 minutes, with up
/// to 25 % random jitter either way.
///
/// ```
/// use std::time::Duration;
/// let d = faas_runner_local::queue::backoff(Duration::from_secs(1), 3);
/// assert!(d >= Duration::from_secs(3) && d <= Duration::from_secs(5));
/// ```
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(Duration::from_secs(300));
    let jitter: f64 = rand::random::<f64>() * 0.5 - 0.25;
    capped.mul_f64(1.0 + jitter)
}

struct Journal {
    path: PathBuf,
    file: Option<File>,
}

/// The queue. Jobs run concurrently (each function's own concurrency limit applies).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::{Arc, Weak};
/// use std::time::Duration;
/// use faas_runner_local::queue::{AsyncQueue, Job, JobRunner};
/// use tokio::sync::mpsc;
///
/// /// Reports the function of every job it runs.
/// struct Report(mpsc::UnboundedSender<String>);
/// impl JobRunner for Report {
///     fn run(&self, job: Job) -> futures::future::BoxFuture<'_, Result<(), faas_api::Error>> {
///         let _ = self.0.send(job.function);
///         Box::pin(async { Ok(()) })
///     }
/// }
///
/// let dir = tempfile::tempdir().unwrap();
/// let (tx, mut ran) = mpsc::unbounded_channel();
/// let runner = Arc::new(Report(tx));
/// let weak: Weak<dyn JobRunner> = Arc::downgrade(&runner) as Weak<dyn JobRunner>;
/// let queue = AsyncQueue::open(&dir.path().join("async.jsonl"), weak, 3, Duration::from_millis(100));
/// # let job = Job { id: "act-1".into(), function: "hello".into(), body: vec![], content_type: None, traceparent: None, cause: None, attempt: 1 };
/// queue.enqueue(job).unwrap(); // on disk once this returns
/// assert_eq!(ran.recv().await.unwrap(), "hello");
/// # }
/// ```
pub struct AsyncQueue {
    journal: Arc<Mutex<Journal>>,
    runner: Weak<dyn JobRunner>,
    retries: u32,
    base: Duration,
    pending_at_open: Mutex<Vec<Job>>,
}

impl AsyncQueue {
    /// Opens (or creates) the journal at `path`, remembering jobs left pending, which
    /// [`AsyncQueue::resume`] starts. Failed jobs are retried up to `retries` times, after
    /// [`backoff`]`(base, attempt)`. Journal problems are reported when a job is enqueued.
    ///
    /// ```
    /// # use std::sync::{Arc, Weak};
    /// # use faas_runner_local::queue::{AsyncQueue, JobRunner};
    /// # struct Nobody;
    /// # impl JobRunner for Nobody {
    /// #     fn run(&self, _: faas_runner_local::queue::Job) -> futures::future::BoxFuture<'_, Result<(), faas_api::Error>> {
    /// #         Box::pin(async { Ok(()) })
    /// #     }
    /// # }
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("queue").join("async.jsonl");
    /// let runner: Weak<dyn JobRunner> = Weak::<Nobody>::new();
    /// let queue = AsyncQueue::open(&path, runner, 3, std::time::Duration::from_secs(1));
    /// assert!(path.exists()); // the directory and the journal are created
    /// assert_eq!(queue.resume(), 0); // nothing was pending
    /// ```
    pub fn open(path: &Path, runner: Weak<dyn JobRunner>, retries: u32, base: Duration) -> AsyncQueue {
        let pending = read_pending(path);
        let file = rewrite(path, &pending).and_then(|_| OpenOptions::new().create(true).append(true).open(path));
        if let Err(e) = &file {
            tracing::error!(path = %path.display(), error = %e, "cannot open the async journal");
        }
        AsyncQueue {
            journal: Arc::new(Mutex::new(Journal { path: path.to_path_buf(), file: file.ok() })),
            runner,
            retries,
            base,
            pending_at_open: Mutex::new(pending),
        }
    }

    /// Durably records `job`, then starts it (on the current tokio runtime). Returns only after
    /// the journal is synced; a journal that could not be opened or written is an error, and the
    /// job is then not started.
    ///
    /// ```
    /// # use std::sync::Weak;
    /// # use faas_runner_local::queue::{AsyncQueue, Job, JobRunner};
    /// # struct Nobody;
    /// # impl JobRunner for Nobody {
    /// #     fn run(&self, _: Job) -> futures::future::BoxFuture<'_, Result<(), faas_api::Error>> {
    /// #         Box::pin(async { Ok(()) })
    /// #     }
    /// # }
    /// let dir = tempfile::tempdir().unwrap();
    /// let not_a_dir = dir.path().join("file");
    /// std::fs::write(&not_a_dir, "").unwrap();
    /// let queue = AsyncQueue::open(&not_a_dir.join("async.jsonl"), Weak::<Nobody>::new(), 3, std::time::Duration::from_secs(1));
    /// # let job = Job { id: "a".into(), function: "f".into(), body: vec![], content_type: None, traceparent: None, cause: None, attempt: 1 };
    /// let err = queue.enqueue(job).unwrap_err();
    /// assert!(err.to_string().contains("could not be opened"), "{err}");
    /// ```
    pub fn enqueue(&self, job: Job) -> std::io::Result<()> {
        append(&self.journal, &Record::Enqueue { job: job.clone() }, true)?;
        self.start(job);
        Ok(())
    }

    /// Starts the jobs found pending when the journal was opened (acknowledged but never
    /// finished, e.g. because the process was killed); returns how many.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::{Arc, Weak};
    /// use std::time::Duration;
    /// use faas_runner_local::queue::{AsyncQueue, Job, JobRunner};
    /// # struct Report(tokio::sync::mpsc::UnboundedSender<String>);
    /// # impl JobRunner for Report {
    /// #     fn run(&self, job: Job) -> futures::future::BoxFuture<'_, Result<(), faas_api::Error>> {
    /// #         let _ = self.0.send(job.id);
    /// #         Box::pin(async { Ok(()) })
    /// #     }
    /// # }
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("async.jsonl");
    /// # let job = Job { id: "act-1".into(), function: "hello".into(), body: vec![], content_type: None, traceparent: None, cause: None, attempt: 1 };
    /// // A queue whose runner is gone: the job is journaled but never runs, as after a crash.
    /// let gone: Weak<dyn JobRunner> = Weak::<Report>::new();
    /// AsyncQueue::open(&path, gone, 3, Duration::from_millis(100)).enqueue(job).unwrap();
    ///
    /// let (tx, mut ran) = tokio::sync::mpsc::unbounded_channel();
    /// let runner = Arc::new(Report(tx));
    /// let weak: Weak<dyn JobRunner> = Arc::downgrade(&runner) as Weak<dyn JobRunner>;
    /// let reopened = AsyncQueue::open(&path, weak, 3, Duration::from_millis(100));
    /// assert_eq!(reopened.resume(), 1);
    /// assert_eq!(ran.recv().await.unwrap(), "act-1");
    /// # }
    /// ```
    pub fn resume(&self) -> usize {
        let jobs = std::mem::take(&mut *self.pending_at_open.lock().expect("pending lock"));
        let n = jobs.len();
        for job in jobs {
            self.start(job);
        }
        n
    }

    fn start(&self, job: Job) {
        let runner = self.runner.clone();
        let journal = self.journal.clone();
        let (retries, base) = (self.retries, self.base);
        tokio::spawn(async move {
            let mut job = job;
            loop {
                let Some(r) = runner.upgrade() else { return };
                let result = r.run(job.clone()).await;
                drop(r);
                match result {
                    Ok(()) => break,
                    Err(e) if retryable(e.kind()) && job.attempt <= retries => {
                        let delay = backoff(base, job.attempt);
                        tracing::info!(id = %job.id, attempt = job.attempt, error = %e, ?delay, "async invocation failed; retrying");
                        tokio::time::sleep(delay).await;
                        job.attempt += 1;
                    }
                    Err(e) => {
                        tracing::warn!(id = %job.id, attempt = job.attempt, error = %e, "async invocation failed for good");
                        let _ = append(&journal, &Record::Done { id: job.id.clone(), ok: false }, false);
                        return;
                    }
                }
            }
            let _ = append(&journal, &Record::Done { id: job.id.clone(), ok: true }, false);
        });
    }
}

fn append(journal: &Mutex<Journal>, record: &Record, sync: bool) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut j = journal.lock().expect("journal lock");
    let path = j.path.clone();
    let file = j
        .file
        .as_mut()
        .ok_or_else(|| std::io::Error::other(format!("the async journal {} could not be opened", path.display())))?;
    file.write_all(&line)?;
    if sync {
        file.sync_data()?;
    }
    Ok(())
}

fn read_pending(path: &Path) -> Vec<Job> {
    let Ok(text) = std::fs::read_to_string(path) else { return vec![] };
    let mut order = vec![];
    let mut jobs: HashMap<String, Job> = HashMap::new();
    for line in text.lines() {
        match serde_json::from_str::<Record>(line) {
            Ok(Record::Enqueue { job }) => {
                order.push(job.id.clone());
                jobs.insert(job.id.clone(), job);
            }
            Ok(Record::Done { id, .. }) => {
                jobs.remove(&id);
            }
            Err(_) => {} // a torn last line from a kill mid-write: that job was never acknowledged
        }
    }
    order.into_iter().filter_map(|id| jobs.remove(&id)).collect()
}

/// Compacts the journal to the pending jobs only (write a temp file, sync, rename).
fn rewrite(path: &Path, pending: &[Job]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("compact");
    let mut f = File::create(&tmp)?;
    for job in pending {
        let mut line = serde_json::to_vec(&Record::Enqueue { job: job.clone() }).map_err(std::io::Error::other)?;
        line.push(b'\n');
        f.write_all(&line)?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_jobs_survive_reopen_and_torn_lines_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let job = |id: &str| Job {
            id: id.into(),
            function: "f".into(),
            body: vec![0, 1, 255],
            content_type: None,
            traceparent: None,
            cause: None,
            attempt: 1,
        };
        let mut text = String::new();
        for r in [
            Record::Enqueue { job: job("a") },
            Record::Enqueue { job: job("b") },
            Record::Done { id: "a".into(), ok: true },
        ] {
            text.push_str(&serde_json::to_string(&r).unwrap());
            text.push('\n');
        }
        text.push_str("{\"op\":\"enqueue\",\"job\":{\"id\":\"c\""); // torn write
        std::fs::write(&path, text).unwrap();
        let pending = read_pending(&path);
        assert_eq!(pending, vec![job("b")]);
        rewrite(&path, &pending).unwrap();
        assert_eq!(read_pending(&path), vec![job("b")]);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Duration::from_millis(100);
        for attempt in 1..6 {
            let d = backoff(b, attempt);
            let nominal = 100.0 * f64::from(1u32 << (attempt - 1));
            assert!(
                d.as_millis() as f64 >= nominal * 0.74 && d.as_millis() as f64 <= nominal * 1.26,
                "{attempt}: {d:?}"
            );
        }
        assert!(backoff(Duration::from_secs(100), 10) <= Duration::from_secs(375));
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(retryable(ErrorKind::Crash));
        assert!(!retryable(ErrorKind::BadInput));
        assert!(!retryable(ErrorKind::NotFound));
    }
}
