//! Durable storage for the faas CloudEvents gateway.
//!
//! The gateway acknowledges an event (HTTP 202) only after [`EventStore::append`] has returned: by then the
//! event and one pending *delivery* per matching subscription are durable. Delivery workers then
//! [`claim`](EventStore::claim) due deliveries (a lease: no other worker or replica gets them until the lease
//! expires), and finish each one with [`ack`](EventStore::ack) (delivered, or dead-lettered) or
//! [`retry_at`](EventStore::retry_at) (failed; try again later).
//!
//! Delivery is at-least-once: a worker that dies holding a lease loses nothing; the delivery comes back when
//! the lease expires. Duplicate ingress (same `source` + `id` within the de-duplication window) is reported as
//! [`Appended::Duplicate`] and stores nothing.
//!
//! Implementations: [`embedded::EmbeddedStore`] (a single-node append-only log with group commit; the
//! default) and `faas-gateway-nats` (NATS JetStream, shared by several gateway replicas).

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

pub mod embedded;
pub mod kv;
pub mod testing;

pub use kv::{Expect, KvEntry, KvPage, KvStore};

/// A store with both sides, events and key–value: what the gateway runs on (its conductor keeps runs
/// in the key–value side and their wake-ups as events).
///
/// [`advance`](GatewayStore::advance) is the one operation that spans both sides. The default does its
/// three parts one after another, in the order that is safe to stop between (see [`Advance`]); a store
/// that can commit them together (the embedded log: one write, one fsync) overrides it.
#[async_trait]
pub trait GatewayStore: EventStore + KvStore {
    /// Writes `advance.value` under `advance.key` if `advance.expect` holds, appends `advance.append`
    /// and acknowledges `advance.ack`: the conductor's step from one continuation to the next.
    ///
    /// Nothing at all is done when the condition fails ([`StoreError::Conflict`]) or the value or an
    /// event is too large. An `ack` of a delivery no longer pending (acknowledged meanwhile, or its
    /// lease expired and it was claimed again) is skipped, not an error: the write and the appends
    /// stand.
    async fn advance(&self, advance: Advance) -> Result<Advanced, StoreError> {
        let Advance { key, value, expect, append, ack } = advance;
        let revision = self.kv_put(&key, value, expect, None).await?;
        let appended = if append.is_empty() { Vec::new() } else { self.append(append).await? };
        if let Some(delivery) = ack {
            match self.ack(&delivery).await {
                Ok(()) | Err(StoreError::UnknownDelivery(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Advanced { revision, appended })
    }
}

/// What [`GatewayStore::advance`] does, in this order: a conditional key–value write, events appended,
/// a delivery acknowledged. The order is what makes stopping between the parts safe (a store that
/// does them one by one, or a torn write): the write without the events leaves the next continuation
/// without its wake-up, which the conductor appends again from the record when the acknowledged one
/// comes back (or at start); the events without the ack only redeliver the old wake-up, found stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advance {
    /// The key written (a run's record).
    pub key: String,
    /// Its new value.
    pub value: Bytes,
    /// The condition the write is made under; when it fails nothing is done.
    pub expect: Expect,
    /// Events appended with the write (the next continuation's wake-up), de-duplicated as
    /// [`EventStore::append`] does.
    pub append: Vec<NewEvent>,
    /// The delivery acknowledged with the write (the wake-up just handled), if any.
    pub ack: Option<DeliveryKey>,
}

/// What [`GatewayStore::advance`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advanced {
    /// The key's new revision.
    pub revision: u64,
    /// One result per appended event, as [`EventStore::append`] returns them.
    pub appended: Vec<Appended>,
}

/// One event to store, with the targets it must be delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The event's `source` attribute (with `id`, the de-duplication key).
    pub source: String,
    /// The event's `id` attribute.
    pub id: String,
    /// The event in the CloudEvents JSON format (structured mode body), opaque to the store.
    pub body: Bytes,
    /// Delivery targets (subscription ids, or any other key the gateway chooses): one delivery each.
    /// An event with no target is still de-duplicated but creates no delivery.
    pub targets: Vec<String>,
}

/// What [`EventStore::append`] did with one [`NewEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored durably, with this many deliveries.
    Stored {
        /// Deliveries created (one per target).
        deliveries: usize,
    },
    /// An event with the same `source` and `id` was stored within the de-duplication window; nothing stored.
    Duplicate,
}

/// A store-assigned handle of one delivery; pass it back to [`EventStore::ack`] or [`EventStore::retry_at`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryKey(pub String);

impl std::fmt::Display for DeliveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A claimed delivery: one event to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Handle for ack/retry.
    pub key: DeliveryKey,
    /// The target given at append time.
    pub target: String,
    /// The event body given at append time.
    pub body: Bytes,
    /// Attempts already made (0 on the first delivery; incremented by each [`EventStore::retry_at`]).
    pub attempt: u32,
    /// When the event was appended.
    pub received_at: SystemTime,
}

/// Errors of a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing the store's files failed.
    #[error("store I/O error on {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The store's files are damaged beyond the torn tail a crash can leave.
    #[error("store corrupted: {0}")]
    Corrupt(String),
    /// The store (or the server behind it) cannot be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The delivery key is unknown (already acked, or its lease expired and another worker took it).
    #[error("unknown or expired delivery {0}")]
    UnknownDelivery(DeliveryKey),
    /// An event is larger than the store accepts.
    #[error("event of {size} bytes is larger than the store's limit of {limit} bytes")]
    TooLarge {
        /// Size of the event body.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A key–value write's condition ([`Expect`]) did not hold: the key changed (or appeared, or went)
    /// since it was read. Read it again and retry.
    #[error("key {key} has changed: {}", match current {
        Some(revision) => format!("its current revision is {revision}"),
        None => "it is absent now".to_owned(),
    })]
    Conflict {
        /// The key.
        key: String,
        /// Its current revision (`None`: absent).
        current: Option<u64>,
    },
    /// A key breaks the rules of [`kv::check_key`].
    #[error("invalid key {key:?}: {reason}")]
    BadKey {
        /// The key (shortened if long).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value is larger than the store accepts.
    #[error("value of {size} bytes for key {key} is larger than the store's limit of {limit} bytes")]
    ValueTooLarge {
        /// The key.
        key: String,
        /// Size of the value.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// Counters a store reports for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Deliveries not yet acked (due, leased or waiting for a retry).
    pub backlog: u64,
}

/// Durable storage of events and their pending deliveries.
///
/// Contract every implementation keeps (and `faas-gateway-store`'s tests check for the embedded one):
/// - `append` returns only once every stored event and its deliveries survive a crash of the process
///   (SIGKILL) and, for the embedded store, of the machine (fsync).
/// - A claimed delivery is not handed out again until `lease` has passed without an ack/retry.
/// - `retry_at(key, t)` makes the delivery due again at `t` with `attempt + 1`.
/// - `ack` removes the delivery for good; an ack lost in a crash only causes a redelivery.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Stores events durably; one result per event, in order. De-duplicates by `source` + `id`.
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError>;

    /// Claims up to `max` deliveries that are due now, each leased for `lease`. Waits up to `wait` for one
    /// to become due; returns an empty list if none did.
    async fn claim(&self, max: usize, lease: Duration, wait: Duration) -> Result<Vec<Delivery>, StoreError>;

    /// Marks a delivery done (delivered, or handed to the dead-letter sink).
    async fn ack(&self, key: &DeliveryKey) -> Result<(), StoreError>;

    /// Schedules a failed delivery for another attempt at `not_before`.
    async fn retry_at(&self, key: &DeliveryKey, not_before: SystemTime) -> Result<(), StoreError>;

    /// Current counters.
    async fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Loads the gateway's registry document (functions and subscriptions created through the management
    /// API), shared by every replica using this store. `None` if none was saved yet.
    async fn load_registry(&self) -> Result<Option<Bytes>, StoreError>;

    /// Replaces the registry document durably.
    async fn save_registry(&self, document: Bytes) -> Result<(), StoreError>;
}
