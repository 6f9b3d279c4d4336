//! A pool of warm instances for one function: reuse of the most recently used live instance,
//! retirement on redeploy (idle instances stopped at once, busy ones when they are handed back),
//! expiry of instances idle for too long, and a [`Gate`] on how many run at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::SemaphorePermit;

use crate::gate::{Gate, GateError, WhenBusy};

/// What a pool keeps: one instance of a function (a process plus whatever its protocol needs).
/// Dropping an instance must stop it (a [`crate::Process`] kills its group when dropped), which
/// is how the pool stops instances it retires or expires.
///
/// ```
/// use faas_supervisor::{Instance, Process};
/// struct Worker { process: Process }
/// impl Instance for Worker {
///     fn usable(&self) -> bool {
///         self.process.is_running()
///     }
/// }
/// ```
pub trait Instance: Send + 'static {
    /// Whether it can take another invocation (its process is alive and its protocol is in a
    /// state to go on).
    fn usable(&self) -> bool;
}

/// How a pool behaves.
///
/// ```
/// use std::time::Duration;
/// use faas_supervisor::{PoolConfig, WhenBusy};
/// let config = PoolConfig::new(4, WhenBusy::Reject).idle_timeout(Some(Duration::from_secs(600)));
/// assert_eq!(config.concurrency, 4);
/// ```
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Most instances busy at once (at least one).
    pub concurrency: usize,
    /// What a caller meets when all are busy.
    pub when_busy: WhenBusy,
    /// Idle instances are stopped after this long; `None`: they live until retired.
    pub idle_timeout: Option<Duration>,
}

impl PoolConfig {
    /// `concurrency` instances at once, no idle expiry.
    pub fn new(concurrency: usize, when_busy: WhenBusy) -> PoolConfig {
        PoolConfig { concurrency, when_busy, idle_timeout: None }
    }

    /// Sets the idle expiry.
    pub fn idle_timeout(mut self, idle_timeout: Option<Duration>) -> PoolConfig {
        self.idle_timeout = idle_timeout;
        self
    }
}

struct Idle<T> {
    instance: T,
    since: Instant,
}

struct Shelf<T> {
    idle: Vec<Idle<T>>,
    generation: u64,
}

/// The warm instances of one function, and the gate in front of them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use faas_supervisor::{Instance, Pool, PoolConfig, Process, ProcessSpec, WhenBusy};
///
/// struct Worker(Process);
/// impl Instance for Worker {
///     fn usable(&self) -> bool { self.0.is_running() }
/// }
/// let start = || Worker(ProcessSpec::new("/bin/sh").args(["-c", "sleep 30"]).spawn().unwrap());
///
/// let pool = Pool::new(PoolConfig::new(2, WhenBusy::Queue { max_waiting: 8 }));
/// let mut lease = pool.lease(Duration::from_secs(1)).await.unwrap();
/// let worker = lease.take_warm().unwrap_or_else(start); // none warm yet: a cold start
/// let pid = worker.0.id();
/// lease.give_back(worker);
/// assert_eq!(pool.idle_count(), 1);
///
/// let mut lease = pool.lease(Duration::from_secs(1)).await.unwrap();
/// let worker = lease.take_warm().expect("warm"); // reused
/// assert_eq!(worker.0.id(), pid);
/// pool.retire_idle(); // a redeploy: this busy one is not taken back
/// lease.give_back(worker);
/// assert_eq!(pool.idle_count(), 0);
/// # }
/// ```
pub struct Pool<T: Instance> {
    gate: Gate,
    shelf: Mutex<Shelf<T>>,
    idle_timeout: Option<Duration>,
    retired: AtomicU64,
}

impl<T: Instance> std::fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("gate", &self.gate).field("idle", &self.idle_count()).finish()
    }
}

impl<T: Instance> Pool<T> {
    /// An empty pool. With an idle timeout it starts a task that stops expired instances (it
    /// ends with the pool), so it needs a tokio runtime then.
    pub fn new(config: PoolConfig) -> Arc<Pool<T>> {
        let pool = Arc::new(Pool {
            gate: Gate::new(config.concurrency, config.when_busy),
            shelf: Mutex::new(Shelf { idle: Vec::new(), generation: 0 }),
            idle_timeout: config.idle_timeout,
            retired: AtomicU64::new(0),
        });
        if let Some(timeout) = config.idle_timeout {
            tokio::spawn(reap(Arc::downgrade(&pool), timeout));
        }
        pool
    }

    /// Takes a slot of the gate (waiting at most `wait` when the pool queues). The [`Lease`]
    /// holds it until dropped.
    pub async fn lease(&self, wait: Duration) -> Result<Lease<'_, T>, GateError> {
        let permit = self.gate.enter(wait).await?;
        let generation = self.shelf.lock().expect("pool lock").generation;
        Ok(Lease { pool: self, _permit: permit, generation })
    }

    /// Puts a new instance on the shelf without a lease (pre-warming). Refused (the instance is
    /// dropped, so stopped) once the pool is closed; `false` then.
    pub fn add_idle(&self, instance: T) -> bool {
        if self.gate.is_closed() {
            return false;
        }
        self.shelf.lock().expect("pool lock").idle.push(Idle { instance, since: Instant::now() });
        true
    }

    /// Number of idle (warm) instances.
    pub fn idle_count(&self) -> usize {
        self.shelf.lock().expect("pool lock").idle.len()
    }

    /// Number of instances stopped so far by retirement or expiry (dead ones found on the shelf
    /// included).
    pub fn stopped_count(&self) -> u64 {
        self.retired.load(Ordering::SeqCst)
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// A redeploy: stops every idle instance now; instances busy now are stopped when they are
    /// handed back. New leases get new instances.
    pub fn retire_idle(&self) {
        let idle = {
            let mut shelf = self.shelf.lock().expect("pool lock");
            shelf.generation += 1;
            std::mem::take(&mut shelf.idle)
        };
        self.stop(idle);
    }

    /// Closes the pool: no new leases ([`GateError::Closed`], also for callers waiting now), idle
    /// instances stopped now, busy ones when handed back.
    pub fn close(&self) {
        self.gate.close();
        self.retire_idle();
    }

    /// Whether [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.gate.is_closed()
    }

    fn stop(&self, idle: Vec<Idle<T>>) {
        if !idle.is_empty() {
            self.retired.fetch_add(idle.len() as u64, Ordering::SeqCst);
            tracing::debug!(count = idle.len(), "stopping instances");
        }
        drop(idle);
    }

    fn expire(&self, timeout: Duration) {
        let expired: Vec<Idle<T>> = {
            let mut shelf = self.shelf.lock().expect("pool lock");
            let (old, keep) = std::mem::take(&mut shelf.idle).into_iter().partition(|i| i.since.elapsed() >= timeout);
            shelf.idle = keep;
            old
        };
        self.stop(expired);
    }
}

/// A slot of a [`Pool`]: the right to run one invocation, on a warm instance or a new one.
pub struct Lease<'a, T: Instance> {
    pool: &'a Pool<T>,
    _permit: SemaphorePermit<'a>,
    generation: u64,
}

impl<T: Instance> Lease<'_, T> {
    /// The most recently used idle instance that is still usable; unusable ones found on the
    /// way are stopped. `None`: start a new one (a cold start).
    pub fn take_warm(&mut self) -> Option<T> {
        loop {
            let idle = self.pool.shelf.lock().expect("pool lock").idle.pop()?;
            if idle.instance.usable() {
                return Some(idle.instance);
            }
            self.pool.stop(vec![idle]);
        }
    }

    /// Hands an instance back after its invocation: it goes back on the shelf if it is usable
    /// and the pool was not retired or closed since the lease was taken; else it is stopped.
    /// Returns whether it was kept.
    pub fn give_back(self, instance: T) -> bool {
        let mut shelf = self.pool.shelf.lock().expect("pool lock");
        if instance.usable() && shelf.generation == self.generation && !self.pool.gate.is_closed() {
            shelf.idle.push(Idle { instance, since: Instant::now() });
            return true;
        }
        drop(shelf);
        self.pool.stop(vec![Idle { instance, since: Instant::now() }]);
        false
    }
}

/// Stops instances idle for longer than `timeout`; ends with the pool.
async fn reap<T: Instance>(pool: Weak<Pool<T>>, timeout: Duration) {
    let period = (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        if pool.is_closed() {
            return;
        }
        pool.expire(timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Process, ProcessSpec};

    struct Worker(Process);
    impl Instance for Worker {
        fn usable(&self) -> bool {
            self.0.is_running()
        }
    }

    fn start(script: &str) -> Worker {
        Worker(ProcessSpec::new("/bin/sh").args(["-c", script]).spawn().unwrap())
    }

    #[tokio::test]
    async fn idle_instances_expire_and_their_processes_die() {
        let pool = Pool::new(PoolConfig::new(1, WhenBusy::Reject).idle_timeout(Some(Duration::from_millis(100))));
        let lease = pool.lease(Duration::ZERO).await.unwrap();
        let worker = start("sleep 30");
        let watch = worker.0.watch_exit();
        assert!(lease.give_back(worker));
        assert_eq!(pool.idle_count(), 1);
        let exit =
            tokio::time::timeout(Duration::from_secs(5), watch.clone().wait()).await.expect("expired and killed");
        assert_eq!(exit, crate::Exit::Signal(libc::SIGKILL));
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(pool.stopped_count(), 1);
    }

    #[tokio::test]
    async fn dead_instances_are_not_reused_and_closed_pools_take_nothing() {
        let pool = Pool::new(PoolConfig::new(2, WhenBusy::Queue { max_waiting: 1 }));
        let lease = pool.lease(Duration::ZERO).await.unwrap();
        let quitter = start("exit 0");
        quitter.0.wait().await;
        assert!(!lease.give_back(quitter), "an ended process is not kept");
        pool.add_idle(start("exit 0"));
        let mut lease = pool.lease(Duration::ZERO).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(lease.take_warm().is_none());
        let busy = start("sleep 30");
        let watch = busy.0.watch_exit();
        pool.close();
        assert!(!lease.give_back(busy), "closed while busy: stopped when handed back");
        assert_eq!(watch.clone().wait().await, crate::Exit::Signal(libc::SIGKILL));
        assert_eq!(pool.lease(Duration::ZERO).await.err(), Some(GateError::Closed));
        assert!(!pool.add_idle(start("sleep 30")));
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_full_pool_queues_or_rejects() {
        let queued = Pool::<Worker>::new(PoolConfig::new(1, WhenBusy::Queue { max_waiting: 1 }));
        let held = queued.lease(Duration::ZERO).await.unwrap();
        let waiter = async { queued.lease(Duration::from_secs(5)).await.map(|_| ()) };
        let third = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let refused = queued.lease(Duration::from_secs(5)).await.err();
            drop(held);
            refused
        };
        let (waited, refused) = tokio::join!(waiter, third);
        assert_eq!(waited, Ok(()));
        assert_eq!(refused, Some(GateError::Full { limit: 1, waiting: 1 }));
    }
}
