//! NATS JetStream storage for the faas CloudEvents gateway: [`JetStreamStore`] implements
//! [`faas_gateway_store::EventStore`] on a JetStream stream, a durable pull consumer shared by every gateway
//! replica, and a one-message stream for the registry document.
//!
//! [`testing::NatsServer`] starts a real `nats-server` for tests.
//!
//! Layout on the server (names from [`JetStreamOptions`]; `P` is the subject prefix, by default the stream
//! name):
//! - stream `STREAM` (file storage, work-queue retention: a message is deleted once acked), subjects
//!   `P.deliveries.>`: one message per (event, target) on `P.deliveries.<target token>`, the body being the
//!   event; its `Nats-Msg-Id` is derived from `source` + `id` + target, so the server drops a re-sent event
//!   within `duplicate_window` (= [`JetStreamOptions::dedupe_window`]).
//! - durable pull consumer `CONSUMER` on it (explicit ack, `ack_wait` = [`JetStreamOptions::ack_wait`],
//!   unlimited `max_deliver` and `max_ack_pending`: the gateway decides when to give up), shared by all
//!   replicas, so each delivery goes to one replica at a time.
//! - stream `STREAM_SEEN`, subject `P.seen`: one empty marker per event (`Nats-Msg-Id` from `source` + `id`),
//!   kept for the de-duplication window. It remembers events that had no target, and decides `Duplicate`
//!   when a re-sent event has targets the first one did not have.
//! - stream `STREAM_REGISTRY`, subject `P.registry`, keeping the last message: the registry document.
//! - stream `STREAM_BODIES` (file storage, limits retention), subjects `P.bodies.>`: bodies too large for
//!   one message, in parts. Such a delivery is the message `P.deliveries.<target token>.<body id>` with an
//!   empty body and a `Faas-Body: chunks=N size=BYTES sha256=HEX` header; its parts are
//!   `P.bodies.<target token>.<body id>.<0..N>`, each as large as the server's `max_payload` allows.
//!
//! Durability: `append` returns after the server acknowledged every publish. A JetStream acknowledgement
//! means the message was written to the stream's files (with `replicas` > 1: to a quorum of servers). The
//! server writes through the OS page cache and fsyncs only on an interval (the `sync_interval` setting: two
//! minutes by default in nats-server releases; `sync_interval: always`, where the server supports it, syncs
//! every write), so an acknowledged event survives a crash of nats-server (SIGKILL; tested) but a power loss
//! of a single-server deployment within that interval can lose it. Run three replicas (or
//! `sync_interval: always`) where that matters.
//!
//! Acks: an ack that fails because the server is down is sent again as soon as the connection returns,
//! before the replica pulls again; meanwhile the lease of that delivery is no longer extended (details:
//! [`JetStreamStore`]).
//!
//! Size: every event body up to [`JetStreamOptions::max_event_bytes`] is accepted, whatever the server's
//! `max_payload` (1 MiB by default). A body that fits one message (`max_payload` less [`HEADROOM`]) travels
//! in its delivery; a larger one is stored in parts, one copy per delivery under a fresh body id, *before*
//! the delivery that refers to it: `append` returns (and the gateway answers 202) only once every part and
//! the delivery are acknowledged by the server, a delivery is never stored without all of its parts (a
//! claim checks their size and SHA-256), and parts without a delivery are never handed out. Parts are
//! deleted when their delivery is acked or turns out to be a duplicate; parts that no delivery refers to
//! (left by a gateway that crashed between the parts and the delivery, before answering) are deleted by a
//! sweep once older than [`JetStreamOptions::orphan_grace`].
//!
//! ```no_run
//! # async fn run() -> Result<(), faas_gateway_store::StoreError> {
//! use std::time::Duration;
//! use faas_gateway_nats::{JetStreamOptions, JetStreamStore};
//! use faas_gateway_store::{EventStore, NewEvent};
//!
//! let store = JetStreamStore::connect("nats://127.0.0.1:4222", JetStreamOptions::default()).await?;
//! store
//!     .append(vec![NewEvent {
//!         source: "/orders".into(),
//!         id: "1".into(),
//!         body: r#"{"specversion":"1.0","id":"1","source":"/orders","type":"created"}"#.into(),
//!         targets: vec!["audit".into()],
//!     }])
//!     .await?;
//! for delivery in store.claim(10, Duration::from_secs(30), Duration::from_secs(1)).await? {
//!     store.ack(&delivery.key).await?;
//! }
//! # Ok(()) }
//! ```

mod jetstream;
pub mod testing;

pub use jetstream::{JetStreamOptions, JetStreamStore, HEADROOM, MAX_TARGET_TOKEN};
