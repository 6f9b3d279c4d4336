//! NATS JetStream storage for the faas CloudEvents gateway: [`JetStreamStore`] implements
//! [`faas_gateway_store::EventStore`] on a JetStream stream, a durable pull consumer shared by every gateway
//! replica, and a one-message stream for the registry document.
//!
//! [`testing::NatsServer`] starts a real `nats-server` for tests. The key–value side is described under
//! [Key-value bucket](#key-value-bucket).
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
//!
//! # Key-value bucket
//!
//! [`JetStreamStore`] is also a [`faas_gateway_store::KvStore`] (the conductor's records, functions' state),
//! on a NATS key–value bucket: stream `KV_<bucket>` (the bucket is [`JetStreamOptions::kv_bucket`], by
//! default `STREAM_KV`), subjects `$KV.<bucket>.>`, file storage, `replicas` replicas, one message kept per
//! key (`history: 1`). `connect` creates it (or updates it) with the settings NATS key–value clients use,
//! so `nats kv` can look into it.
//! - **Keys.** A store key becomes a NATS key by turning each `/` into the token separator `.` and every
//!   byte outside `[A-Za-z0-9_-]` (`.`, `=`, `:`, space, `*`, `>`, the bytes of non-ASCII characters...)
//!   into `=XX`, uppercase hex: `state/shop/cart:42` is `state.shop.cart=3A42`. Store keys have no empty
//!   segment, so this is always a valid NATS key, and decoding reverses it (keys other clients wrote that
//!   do not decode are left out of listings). A listing asks the server for the keys under the prefix's
//!   whole segments (`state/shop/ca` → `$KV.<bucket>.state.shop.>`), keeps those that start with the
//!   prefix and sorts them by the store keys' byte order, then reads the values of one page.
//! - **Revisions** are the stream sequences of the writes: one counter for the bucket, never handed out
//!   twice, also across restarts (no ABA).
//! - **Conditions.** A conditional write reads the key's last message and, if the condition holds,
//!   publishes with `Nats-Expected-Last-Subject-Sequence` set to that message's sequence (0 when the key
//!   has none). The server refuses it (JetStream error 10071, wrong last sequence) if anything was written
//!   to the key in between; the store reads again and answers [`StoreError::Conflict`](faas_gateway_store::StoreError::Conflict) with the key's
//!   current revision, or tries again if the condition still holds (the key changed but is still absent:
//!   a delete marker or an expired value was swept away). Deletes are `KV-Operation: DEL` markers; a key
//!   whose last message is a delete or purge marker, or none, is absent.
//! - **Time-to-live.** nats-server 2.9 (the Debian package) has no per-message TTL (that came with 2.11),
//!   so the absolute expiry is a header, [`EXPIRES_HEADER`] (microseconds since the Unix epoch), and a
//!   value whose expiry has passed reads as absent, for reads, listings and conditions alike (for
//!   [`Expect::Absent`](faas_gateway_store::Expect::Absent) a write lands on the expired value's
//!   revision). Expiry is judged by the clock of the replica that reads, so replicas' clocks should be
//!   synchronized. Each store runs a sweeper, every [`JetStreamOptions::kv_sweep_interval`] until the
//!   store is dropped: it follows the bucket with a headers-only consumer (one entry in memory per key with
//!   a TTL) and removes expired values and delete markers with a purge bounded by their revision (subject
//!   filter and sequence), so it never removes a newer write of the key.
//! - **Size.** A value travels in one message: up to [`JetStreamStore::kv_value_limit`], the smaller of
//!   [`JetStreamOptions::max_value_bytes`] and the server's `max_payload` less [`HEADROOM`].
//! - **Consistency.** Linearizable per key: every write goes to the stream leader, which checks the
//!   expected sequence against the latest write of the key, and every read goes to the leader too (the
//!   message-get API, not direct get, which a follower may answer from behind). An acknowledged write is
//!   as durable as an event (see Durability above). During a leader failover of a replicated bucket,
//!   reads and writes fail with [`StoreError::Unavailable`](faas_gateway_store::StoreError::Unavailable) until a new leader is elected; no acknowledged
//!   write is lost. A write that failed with `Unavailable` after it was sent may or may not be stored:
//!   read the key to know. A listing is no snapshot: keys written or deleted while it runs may or may not
//!   be in it.
//!
//! ```no_run
//! # async fn run() -> Result<(), faas_gateway_store::StoreError> {
//! use std::time::Duration;
//! use bytes::Bytes;
//! use faas_gateway_nats::{JetStreamOptions, JetStreamStore};
//! use faas_gateway_store::{Expect, KvStore, StoreError};
//!
//! let store = JetStreamStore::connect("nats://127.0.0.1:4222", JetStreamOptions::default()).await?;
//! let revision = store.kv_put("runs/42/state", Bytes::from_static(b"started"), Expect::Absent, None).await?;
//! match store.kv_put("runs/42/state", Bytes::from_static(b"done"), Expect::Revision(revision), None).await {
//!     Ok(_) => {}
//!     Err(StoreError::Conflict { current, .. }) => println!("changed meanwhile; now at {current:?}"),
//!     Err(e) => return Err(e),
//! }
//! store.kv_put("locks/job", Bytes::new(), Expect::Absent, Some(Duration::from_secs(30))).await?;
//! # Ok(()) }
//! ```

mod jetstream;
mod kv;
pub mod testing;

pub use jetstream::{JetStreamOptions, JetStreamStore, HEADROOM, MAX_TARGET_TOKEN};
pub use kv::EXPIRES_HEADER;
