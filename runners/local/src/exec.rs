//! What the two executors (in-process and process pool) share: the [`Outcome`] of one run and the
//! per-function concurrency [`Gate`] with its bounded wait queue.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::{Duration, SystemTime};
//! use faas_runner_local::exec::{Gate, Outcome};
//!
//! let gate = Gate::new("hello", 2, 0);
//! let deadline = SystemTime::now() + Duration::from_secs(1);
//! let (_a, _b) = (gate.enter(deadline).await.unwrap(), gate.enter(deadline).await.unwrap());
//! let outcome = match gate.enter(deadline).await {
//!     Ok(_slot) => unreachable!("both slots are taken and no one may wait"),
//!     Err(e) => Outcome::refused(e),
//! };
//! assert_eq!(outcome.result.unwrap_err().kind(), faas_api::ErrorKind::Throttled);
//! # }
//! ```

use std::time::{Duration, SystemTime};

use faas_api::{Error, Payload};
use faas_supervisor::{GateError, WhenBusy};
use tokio::sync::SemaphorePermit;

/// The result of running one invocation, with the log lines it wrote and whether it needed a
/// new instance.
///
/// ```
/// use faas_api::Payload;
/// use faas_runner_local::exec::Outcome;
/// let ran = Outcome { result: Ok(Payload::bytes("hi")), logs: vec!["said hi".into()], cold: true };
/// assert_eq!(ran.result.unwrap().body().as_ref(), b"hi");
/// assert_eq!(ran.logs, ["said hi"]);
/// ```
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
    /// An outcome that never reached a function instance: the error, no logs, not cold.
    ///
    /// ```
    /// use faas_runner_local::exec::Outcome;
    /// let o = Outcome::refused(faas_api::Error::throttled("too many calls"));
    /// assert_eq!(o.result.unwrap_err().kind(), faas_api::ErrorKind::Throttled);
    /// assert!(o.logs.is_empty() && !o.cold);
    /// ```
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
    gate: faas_supervisor::Gate,
}

impl Gate {
    /// A gate for `function` with `limit` slots (at least one) and room for `max_waiting` callers
    /// waiting for a slot.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::{Duration, SystemTime};
    /// let gate = faas_runner_local::exec::Gate::new("f", 0, 0); // a limit of 0 means 1
    /// let deadline = SystemTime::now() + Duration::from_secs(1);
    /// let only = gate.enter(deadline).await.unwrap();
    /// assert_eq!(gate.enter(deadline).await.unwrap_err().kind(), faas_api::ErrorKind::Throttled);
    /// # drop(only);
    /// # }
    /// ```
    pub fn new(function: &str, limit: u32, max_waiting: usize) -> Gate {
        let gate = faas_supervisor::Gate::new(limit as usize, WhenBusy::Queue { max_waiting });
        Gate { function: function.to_string(), gate }
    }

    /// Takes a free slot, or waits for one until `deadline` (a timeout error then). Refused at once
    /// as throttled when `max_waiting` callers are already waiting. The slot is freed when the
    /// returned permit is dropped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::{Duration, SystemTime};
    /// let gate = faas_runner_local::exec::Gate::new("f", 1, 1);
    /// let busy = gate.enter(SystemTime::now() + Duration::from_secs(5)).await.unwrap();
    /// let err = gate.enter(SystemTime::now() + Duration::from_millis(20)).await.unwrap_err();
    /// assert_eq!(err.kind(), faas_api::ErrorKind::Timeout);
    /// assert!(err.message().contains("waiting for a free instance"), "{}", err.message());
    /// # drop(busy);
    /// # }
    /// ```
    pub async fn enter(&self, deadline: SystemTime) -> Result<SemaphorePermit<'_>, Error> {
        self.gate.enter(until(deadline)).await.map_err(|e| gate_error(&self.function, e, "was removed"))
    }

    /// Closes the gate: waiting and future callers get an error (the function was removed).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::{Duration, SystemTime};
    /// let gate = faas_runner_local::exec::Gate::new("f", 1, 4);
    /// gate.close();
    /// let err = gate.enter(SystemTime::now() + Duration::from_secs(1)).await.unwrap_err();
    /// assert_eq!(err.message(), "function `f` was removed");
    /// # }
    /// ```
    pub fn close(&self) {
        self.gate.close();
    }
}

/// The time left until `deadline` (zero once it passed).
pub(crate) fn until(deadline: SystemTime) -> Duration {
    deadline.duration_since(SystemTime::now()).unwrap_or_default()
}

/// A refusal of the concurrency gate of `function` as the portable error; `closed` says what
/// happened to a closed function (`was removed`, `was removed or replaced`).
pub(crate) fn gate_error(function: &str, error: GateError, closed: &str) -> Error {
    match error {
        GateError::Full { waiting, .. } => Error::throttled(format!(
            "function `{function}` is at its concurrency limit and {waiting} invocations are already waiting"
        )),
        GateError::TimedOut(_) => Error::timeout(format!(
            "function `{function}` timed out waiting for a free instance (all busy until the deadline)"
        )),
        GateError::Closed => Error::unavailable(format!("function `{function}` {closed}")),
    }
}

/// Formats a duration for error messages: `1.5s`, `250ms`.
///
/// ```
/// use std::time::Duration;
/// use faas_runner_local::exec::human;
/// assert_eq!(human(Duration::from_millis(1500)), "1.5s");
/// assert_eq!(human(Duration::from_secs(30)), "30s");
/// assert_eq!(human(Duration::from_millis(250)), "250ms");
/// ```
pub fn human(d: std::time::Duration) -> String {
    if d.as_millis() >= 1000 && d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else if d.as_millis() >= 1000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}
