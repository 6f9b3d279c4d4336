//! What the two executors (in-process and process pool) share: the [`Outcome`] of one run and the
//! per-function concurrency [`Gate`] with its bounded wait queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use faas_api::{Error, Payload};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The result of running one invocation, with the log lines it wrote and whether it needed a
/// new instance.
#[derive(Debug)]
pub struct Outcome {
    /// The reply or the error.
    pub result: Result<Payload, Error>,
    /// Log lines attributed to this invocation.
    pub logs: Vec<String>,
    /// Whether a new instance was started for it.
    pub cold: bool,
}

impl Outcome {
    /// An outcome that never reached a function instance.
    pub fn refused(error: Error) -> Outcome {
        Outcome { result: Err(error), logs: vec![], cold: false }
    }
}

/// At most `limit` invocations of a function run at once; up to `max_waiting` more wait, in
/// arrival order, for a free slot until their deadline. Beyond that, calls are throttled.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::{Duration, SystemTime};
/// let gate = faas_runner_local::exec::Gate::new("f", 1, 0);
/// let deadline = SystemTime::now() + Duration::from_secs(1);
/// let first = gate.enter(deadline).await.unwrap();
/// let err = gate.enter(deadline).await.unwrap_err();
/// assert_eq!(err.kind(), faas_api::ErrorKind::Throttled);
/// drop(first);
/// assert!(gate.enter(deadline).await.is_ok());
/// # });
/// ```
#[derive(Debug)]
pub struct Gate {
    function: String,
    slots: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
}

impl Gate {
    /// A gate for `function` with `limit` slots.
    pub fn new(function: &str, limit: u32, max_waiting: usize) -> Gate {
        Gate {
            function: function.to_string(),
            slots: Semaphore::new(limit.max(1) as usize),
            waiting: AtomicUsize::new(0),
            max_waiting,
        }
    }

    /// Waits for a slot until `deadline`.
    pub async fn enter(&self, deadline: SystemTime) -> Result<SemaphorePermit<'_>, Error> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::throttled(format!(
                "function `{}` is at its concurrency limit and {} invocations are already waiting",
                self.function, self.max_waiting
            )));
        }
        let wait = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        let got = tokio::time::timeout(wait, self.slots.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        match got {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(Error::unavailable(format!("function `{}` was removed", self.function))),
            Err(_) => Err(Error::timeout(format!(
                "function `{}` timed out waiting for a free instance (all busy until the deadline)",
                self.function
            ))),
        }
    }

    /// Closes the gate: waiting and future callers get an error.
    pub fn close(&self) {
        self.slots.close();
    }
}

/// Formats a duration for error messages: `1.5s`, `250ms`.
pub fn human(d: std::time::Duration) -> String {
    if d.as_millis() >= 1000 && d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else if d.as_millis() >= 1000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}
