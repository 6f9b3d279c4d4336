//! The concurrency gate: at most `limit` holders at once; beyond that a caller waits in a bounded
//! queue or is refused at once, as the platform being emulated does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

/// What a caller meets when every slot is taken.
///
/// ```
/// use faas_supervisor::WhenBusy;
/// let local = WhenBusy::Queue { max_waiting: 64 }; // waits for a slot until its deadline
/// let lambda = WhenBusy::Reject; // a 429 at once, as Lambda answers past its concurrency
/// assert_ne!(local, lambda);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenBusy {
    /// Wait, in arrival order, for a free slot; at most `max_waiting` callers wait, further ones
    /// are refused at once.
    Queue {
        /// Most callers waiting at once.
        max_waiting: usize,
    },
    /// Refuse at once.
    Reject,
}

/// Why [`Gate::enter`] gave no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// Every slot is taken and the wait queue is full (or there is none).
    #[error("all {limit} slots are taken and {waiting} callers are already waiting")]
    Full {
        /// The number of slots.
        limit: usize,
        /// Callers waiting (the queue's size; 0 with [`WhenBusy::Reject`]).
        waiting: usize,
    },
    /// No slot came free within the wait.
    #[error("no slot came free within {0:?}")]
    TimedOut(Duration),
    /// The gate was closed ([`Gate::close`]).
    #[error("the gate is closed")]
    Closed,
}

/// At most `limit` holders at once. A slot is held as long as its [`SemaphorePermit`] lives.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use faas_supervisor::{Gate, GateError, WhenBusy};
///
/// let gate = Gate::new(1, WhenBusy::Queue { max_waiting: 1 });
/// let held = gate.enter(Duration::from_secs(1)).await.unwrap();
/// assert_eq!(gate.enter(Duration::from_millis(20)).await.unwrap_err(), GateError::TimedOut(Duration::from_millis(20)));
/// drop(held);
/// assert!(gate.enter(Duration::ZERO).await.is_ok());
///
/// let strict = Gate::new(1, WhenBusy::Reject);
/// let _held = strict.enter(Duration::from_secs(1)).await.unwrap();
/// assert_eq!(strict.enter(Duration::from_secs(1)).await.unwrap_err(), GateError::Full { limit: 1, waiting: 0 });
/// # }
/// ```
#[derive(Debug)]
pub struct Gate {
    slots: Semaphore,
    limit: usize,
    waiting: AtomicUsize,
    when_busy: WhenBusy,
}

impl Gate {
    /// A gate with `limit` slots (at least one).
    pub fn new(limit: usize, when_busy: WhenBusy) -> Gate {
        let limit = limit.max(1);
        Gate { slots: Semaphore::new(limit), limit, waiting: AtomicUsize::new(0), when_busy }
    }

    /// The number of slots.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// What callers meet when every slot is taken.
    pub fn when_busy(&self) -> WhenBusy {
        self.when_busy
    }

    /// Takes a free slot, or (with [`WhenBusy::Queue`]) waits for one for at most `wait`.
    pub async fn enter(&self, wait: Duration) -> Result<SemaphorePermit<'_>, GateError> {
        match self.slots.try_acquire() {
            Ok(permit) => return Ok(permit),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(GateError::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {}
        }
        let max_waiting = match self.when_busy {
            WhenBusy::Reject => return Err(GateError::Full { limit: self.limit, waiting: 0 }),
            WhenBusy::Queue { max_waiting } => max_waiting,
        };
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(GateError::Full { limit: self.limit, waiting: max_waiting });
        }
        let got = tokio::time::timeout(wait, self.slots.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        match got {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(GateError::Closed),
            Err(_) => Err(GateError::TimedOut(wait)),
        }
    }

    /// Closes the gate: waiting and later callers get [`GateError::Closed`]; held slots stay
    /// held until dropped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// let gate = faas_supervisor::Gate::new(1, faas_supervisor::WhenBusy::Reject);
    /// gate.close();
    /// assert_eq!(gate.enter(Duration::ZERO).await.unwrap_err(), faas_supervisor::GateError::Closed);
    /// # }
    /// ```
    pub fn close(&self) {
        self.slots.close();
    }

    /// Whether [`Gate::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.slots.is_closed()
    }
}
