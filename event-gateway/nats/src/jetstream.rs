//! [`JetStreamStore`]: the gateway's [`EventStore`] on NATS JetStream (layout and durability: crate docs).

use std::collections::{HashMap, VecDeque};
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::connection::State;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, AckKind};
use async_trait::async_trait;
use bytes::Bytes;
use faas_gateway_store::{Appended, Delivery, DeliveryKey, EventStore, NewEvent, StoreError, StoreStats};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::task::AbortHandle;

/// Bytes a message may carry besides the event body (the `Nats-Msg-Id` header and its framing).
pub const HEADROOM: usize = 1024;

/// Longest accepted target once encoded as a subject token (see [`JetStreamStore`]); longer targets are
/// refused as [`StoreError::TooLarge`].
pub const MAX_TARGET_TOKEN: usize = 1024;

/// Longest wait of one `claim`.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Publishes awaiting their acknowledgement at once during one `append`.
const MAX_IN_FLIGHT: usize = 512;

/// Header of a delivery whose body is stored in parts: `chunks=N size=BYTES sha256=HEX`.
const BODY_HEADER: &str = "Faas-Body";

/// How often acknowledgements that failed are tried again (only while connected).
const OWED_POLL: Duration = Duration::from_millis(200);

/// Largest message `max_payload` must allow for the store to work at all (a part of a large body, or a
/// small event, plus [`HEADROOM`]).
const MIN_PAYLOAD: usize = 64 * 1024;

/// Settings of a [`JetStreamStore`].
///
/// ```
/// use std::time::Duration;
/// use faas_gateway_nats::JetStreamOptions;
///
/// let options = JetStreamOptions { ack_wait: Duration::from_secs(60), ..Default::default() };
/// assert_eq!(options.stream, "FAAS_GATEWAY");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamOptions {
    /// Name of the deliveries stream (also the base of the other names). Default `FAAS_GATEWAY`.
    pub stream: String,
    /// Subject prefix; `None` (the default) uses the stream name. Gateways sharing a server but not their
    /// events need different streams and prefixes.
    pub subject_prefix: Option<String>,
    /// Name of the shared durable consumer. Default `faas-gateway`.
    pub consumer: String,
    /// Events with the same `source` and `id` within this window are duplicates (the streams'
    /// `duplicate_window`). Default 10 minutes.
    pub dedupe_window: Duration,
    /// Largest event body accepted. Bodies that do not fit one message (the server's `max_payload`, 1 MiB
    /// by default, less [`HEADROOM`]) are stored in parts in the bodies stream (see the [crate docs](crate)),
    /// so every body up to this limit is accepted whatever the server's `max_payload`. Default 1 MiB.
    pub max_event_bytes: usize,
    /// JetStream replicas of each stream (1, or 3/5 on a cluster). Default 1.
    pub replicas: usize,
    /// The consumer's `ack_wait`: how long the server waits for an ack before handing a delivery to another
    /// replica when the replica holding it is gone. Leases longer than this are kept alive with progress
    /// acks; shorter leases end early by a negative ack. Default 30 s.
    pub ack_wait: Duration,
    /// Bound on every request to the server (connect, publish acks, acks, info). Default 5 s.
    pub request_timeout: Duration,
    /// Parts of a large body that no delivery refers to (left by a gateway that crashed in the middle of
    /// storing an event, before acknowledging it) are deleted once they are this old. It must exceed the
    /// longest `append`. Default 15 minutes.
    pub orphan_grace: Duration,
    /// Name of the key–value bucket (its stream is `KV_<name>`; see the [crate docs](crate#key-value-bucket));
    /// `None` (the default) uses `<stream>_KV`. Letters, digits, `-` and `_`.
    pub kv_bucket: Option<String>,
    /// Largest value [`kv_put`](faas_gateway_store::KvStore::kv_put) accepts. A value travels in one
    /// message, so the effective limit is the smaller of this and the server's `max_payload` less
    /// [`HEADROOM`] (with the defaults of both: 1 MiB − 1 KiB); larger values get
    /// [`StoreError::ValueTooLarge`] naming the effective limit
    /// ([`JetStreamStore::kv_value_limit`]). Default 1 MiB.
    pub max_value_bytes: usize,
    /// How often the key–value sweeper removes expired values and delete markers from the bucket (they
    /// read as absent before that already). Default 5 s.
    pub kv_sweep_interval: Duration,
}

impl Default for JetStreamOptions {
    fn default() -> Self {
        JetStreamOptions {
            stream: "FAAS_GATEWAY".to_string(),
            subject_prefix: None,
            consumer: "faas-gateway".to_string(),
            dedupe_window: Duration::from_secs(600),
            max_event_bytes: 1024 * 1024,
            replicas: 1,
            ack_wait: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
            orphan_grace: Duration::from_secs(15 * 60),
            kv_bucket: None,
            max_value_bytes: 1024 * 1024,
            kv_sweep_interval: Duration::from_secs(5),
        }
    }
}

impl JetStreamOptions {
    fn validate(&self) -> Result<(), StoreError> {
        let bad = |what: String| Err(StoreError::Unavailable(format!("invalid JetStream options: {what}")));
        if !is_valid_name(&self.stream) {
            return bad(format!("stream name {:?} must be letters, digits, '-' or '_'", self.stream));
        }
        if !is_valid_name(&self.consumer) {
            return bad(format!("consumer name {:?} must be letters, digits, '-' or '_'", self.consumer));
        }
        if let Some(prefix) = &self.subject_prefix {
            let valid = !prefix.is_empty()
                && prefix.split('.').all(|t| !t.is_empty() && !t.contains(['*', '>']))
                && !prefix.contains(char::is_whitespace);
            if !valid {
                return bad(format!("subject prefix {prefix:?} must be non-empty tokens separated by '.'"));
            }
        }
        if self.dedupe_window.is_zero() {
            return bad("dedupe_window must be positive".to_string());
        }
        if self.ack_wait < Duration::from_millis(100) {
            return bad(format!("ack_wait {:?} is below 100 ms", self.ack_wait));
        }
        if self.request_timeout.is_zero() {
            return bad("request_timeout must be positive".to_string());
        }
        if self.orphan_grace < Duration::from_secs(1) {
            return bad(format!("orphan_grace {:?} is below 1 s", self.orphan_grace));
        }
        if self.max_event_bytes == 0 || self.max_event_bytes > i32::MAX as usize {
            return bad(format!("max_event_bytes {} is out of range", self.max_event_bytes));
        }
        if let Some(bucket) = &self.kv_bucket {
            if !is_valid_name(bucket) {
                return bad(format!("key-value bucket name {bucket:?} must be letters, digits, '-' or '_'"));
            }
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > i32::MAX as usize {
            return bad(format!("max_value_bytes {} is out of range", self.max_value_bytes));
        }
        if self.kv_sweep_interval < Duration::from_millis(100) {
            return bad(format!("kv_sweep_interval {:?} is below 100 ms", self.kv_sweep_interval));
        }
        if !(1..=5).contains(&self.replicas) {
            return bad(format!("replicas {} must be between 1 and 5", self.replicas));
        }
        Ok(())
    }

    fn prefix(&self) -> &str {
        self.subject_prefix.as_deref().unwrap_or(&self.stream)
    }

    /// The key–value bucket's name: [`kv_bucket`](Self::kv_bucket), or `<stream>_KV`.
    ///
    /// ```
    /// use faas_gateway_nats::JetStreamOptions;
    ///
    /// assert_eq!(JetStreamOptions::default().kv_bucket_name(), "FAAS_GATEWAY_KV");
    /// let named = JetStreamOptions { kv_bucket: Some("state".into()), ..Default::default() };
    /// assert_eq!(named.kv_bucket_name(), "state");
    /// ```
    pub fn kv_bucket_name(&self) -> String {
        self.kv_bucket.clone().unwrap_or_else(|| format!("{}_KV", self.stream))
    }
}

/// A claimed message and the task keeping its lease.
struct Claimed {
    delivered: u64,
    message: Arc<jetstream::Message>,
    /// Subject stem of the body's parts (`P.bodies.<target token>.<body id>`) when stored in parts.
    body: Option<String>,
    keeper: AbortHandle,
}

/// Claimed deliveries of this store instance, by stream sequence.
type Claims = Mutex<HashMap<u64, Claimed>>;

/// A finished delivery whose acknowledgement failed (the connection was down): sent again once connected.
struct OwedAck {
    message: Arc<jetstream::Message>,
    body: Option<String>,
    since: Instant,
}

/// How a body is stored: in the delivery message, or in parts (`chunks` messages of the bodies stream).
#[derive(Debug, Clone, PartialEq, Eq)]
struct BodyParts {
    chunks: usize,
    size: usize,
    sha256: String,
}

impl BodyParts {
    fn header(&self) -> String {
        format!("chunks={} size={} sha256={}", self.chunks, self.size, self.sha256)
    }

    fn parse(value: &str) -> Option<BodyParts> {
        let (mut chunks, mut size, mut sha256) = (None, None, None);
        for field in value.split_whitespace() {
            match field.split_once('=')? {
                ("chunks", n) => chunks = n.parse().ok(),
                ("size", n) => size = n.parse().ok(),
                ("sha256", h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    sha256 = Some(h.to_ascii_lowercase())
                }
                _ => return None,
            }
        }
        Some(BodyParts { chunks: chunks?, size: size?, sha256: sha256? })
    }
}

/// A claimed message whose lease is kept, with its delivery (the body still to read when in parts).
struct Registered {
    sequence: u64,
    delivered: u64,
    message: Arc<jetstream::Message>,
    delivery: Delivery,
    parts: Option<(String, BodyParts)>,
}

/// Why a body stored in parts could not be read.
#[derive(Debug)]
enum BodyError {
    /// A part is gone or does not match the delivery's header: the body cannot be recovered.
    Lost(String),
    /// The server did not answer.
    Unavailable(String),
}

/// [`EventStore`] on NATS JetStream: several gateway replicas connect to the same stream and share its
/// deliveries (see the [crate docs](crate) for the layout on the server and what an acknowledgement means).
///
/// Leases: the server redelivers a message when `ack_wait` passes without an ack. A lease asked for in
/// [`claim`](EventStore::claim) that is longer than `ack_wait` is kept alive by sending a progress ack every
/// `ack_wait / 2`; when the lease ends without ack or retry, the store sends a negative ack so the delivery is
/// due again at once, and a late [`ack`](EventStore::ack) gets [`StoreError::UnknownDelivery`]. If the
/// replica holding a delivery dies, the server redelivers it after `ack_wait` (not the lease).
///
/// Failed acks: when [`ack`](EventStore::ack) or [`retry_at`](EventStore::retry_at) cannot reach the server
/// (it is down, or does not answer), it returns [`StoreError::Unavailable`] and the lease is no longer
/// extended, so the server may hand the delivery out again `ack_wait` after the last progress ack instead of
/// when the lease ends. A failed `ack` is also kept and sent again as soon as the connection is back (the
/// client reconnects within a second of the server's return), before this instance pulls anything: a
/// single replica does not deliver that event again, and another replica can only get it if it pulls in
/// the moment between the server's return and that ack.
///
/// Attempts: [`Delivery::attempt`] is the server's delivery count minus one, so it counts each
/// [`retry_at`](EventStore::retry_at) (a delayed negative ack) and also each lease that expired.
///
/// Targets become subject tokens: ASCII letters, digits, `-` and `_` as they are, other bytes as `%XX`, the
/// empty target as `%`. A target whose token would exceed [`MAX_TARGET_TOKEN`] bytes is refused.
pub struct JetStreamStore {
    client: async_nats::Client,
    url: String,
    options: JetStreamOptions,
    prefix: String,
    max_event_bytes: usize,
    /// Bodies up to this size travel in the delivery message; larger ones are stored in parts of this size.
    chunk_bytes: usize,
    context: jetstream::Context,
    deliveries: stream::Stream,
    bodies: stream::Stream,
    consumer: PullConsumer,
    registry: stream::Stream,
    claims: Arc<Claims>,
    owed: Mutex<HashMap<u64, OwedAck>>,
    /// Held while failed acks are sent again, so a claim waits for them.
    resending: tokio::sync::Mutex<()>,
    /// The key–value bucket and its sweeper ([`faas_gateway_store::KvStore`], in `kv.rs`).
    pub(crate) kv: crate::kv::KvBucket,
}

impl std::fmt::Debug for JetStreamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamStore")
            .field("url", &self.url)
            .field("stream", &self.options.stream)
            .field("consumer", &self.options.consumer)
            .finish_non_exhaustive()
    }
}

impl JetStreamStore {
    /// Connects to the NATS server at `url` (`nats://host:port`, several separated by commas), and creates
    /// (or updates to `options`) the streams, the durable consumer, the registry stream and the key–value
    /// bucket (whose sweeper runs until the store is dropped).
    ///
    /// Fails with [`StoreError::Unavailable`] naming the problem when the server cannot be reached within
    /// [`JetStreamOptions::request_timeout`], has no JetStream, or refuses the configuration.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), faas_gateway_store::StoreError> {
    /// use faas_gateway_nats::{JetStreamOptions, JetStreamStore};
    /// use faas_gateway_store::EventStore;
    ///
    /// let store = JetStreamStore::connect("nats://127.0.0.1:4222", JetStreamOptions::default()).await?;
    /// println!("backlog: {}", store.stats().await?.backlog);
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str, options: JetStreamOptions) -> Result<Arc<JetStreamStore>, StoreError> {
        options.validate()?;
        let shown = redact(url);
        let timeout = options.request_timeout;
        let connecting = async_nats::ConnectOptions::new()
            .name("faas-gateway")
            .connection_timeout(timeout)
            .request_timeout(Some(timeout))
            // Back within a second of the server's return (the default backs off to 4 s), so that acks
            // that failed meanwhile are sent before the server hands their deliveries out again.
            .reconnect_delay_callback(|attempts| Duration::from_millis((50u64 << attempts.min(5)).min(1000)))
            .connect(url);
        let client = match tokio::time::timeout(timeout + Duration::from_secs(1), connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(StoreError::Unavailable(format!("cannot connect to NATS at {shown}: {e}"))),
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot connect to NATS at {shown}: no answer within {timeout:?}"
                )))
            }
        };
        let max_payload = client.server_info().max_payload;
        if max_payload > 0 && max_payload < MIN_PAYLOAD {
            return Err(StoreError::Unavailable(format!(
                "NATS at {shown}: the server's max_payload of {max_payload} bytes is below the {MIN_PAYLOAD} bytes \
                 the gateway needs; raise max_payload in the nats-server configuration"
            )));
        }
        let max_event_bytes = options.max_event_bytes;
        // Bodies larger than one message are stored in parts, so any max_payload works.
        let chunk_bytes = if max_payload > 0 { max_payload - HEADROOM } else { 1024 * 1024 - HEADROOM };
        let inline_bytes = max_event_bytes.min(chunk_bytes);
        let context = jetstream::ContextBuilder::new().timeout(timeout).build(client.clone());
        let prefix = options.prefix().to_string();
        let at = |what: &str, e: &dyn Display| StoreError::Unavailable(format!("NATS at {shown}: {what}: {e}"));

        let deliveries_config = stream::Config {
            name: options.stream.clone(),
            description: Some("faas gateway: pending deliveries".to_string()),
            subjects: vec![format!("{prefix}.deliveries.>")],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            num_replicas: options.replicas,
            duplicate_window: options.dedupe_window,
            max_message_size: (inline_bytes + HEADROOM) as i32,
            ..Default::default()
        };
        let deliveries = create_or_update(&context, deliveries_config, timeout)
            .await
            .map_err(|e| at(&format!("cannot create stream {}", options.stream), &e))?;

        let bodies_name = format!("{}_BODIES", options.stream);
        let bodies_config = stream::Config {
            name: bodies_name.clone(),
            description: Some("faas gateway: bodies of large events, in parts".to_string()),
            subjects: vec![format!("{prefix}.bodies.>")],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            num_replicas: options.replicas,
            max_message_size: (chunk_bytes + HEADROOM) as i32,
            ..Default::default()
        };
        let bodies = create_or_update(&context, bodies_config, timeout)
            .await
            .map_err(|e| at(&format!("cannot create stream {bodies_name}"), &e))?;

        let seen_name = format!("{}_SEEN", options.stream);
        let seen_config = stream::Config {
            name: seen_name.clone(),
            description: Some("faas gateway: events seen within the de-duplication window".to_string()),
            subjects: vec![format!("{prefix}.seen")],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            num_replicas: options.replicas,
            duplicate_window: options.dedupe_window,
            max_age: options.dedupe_window,
            max_message_size: HEADROOM as i32,
            ..Default::default()
        };
        create_or_update(&context, seen_config, timeout)
            .await
            .map_err(|e| at(&format!("cannot create stream {seen_name}"), &e))?;

        let consumer_config = pull::Config {
            durable_name: Some(options.consumer.clone()),
            description: Some("faas gateway delivery workers".to_string()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            max_deliver: -1,
            max_ack_pending: -1,
            filter_subject: format!("{prefix}.deliveries.>"),
            ..Default::default()
        };
        let consumer = bounded_call(timeout, deliveries.create_consumer(consumer_config))
            .await
            .map_err(|e| at(&format!("cannot create consumer {}", options.consumer), &e))?;

        let registry_name = format!("{}_REGISTRY", options.stream);
        let registry_config = stream::Config {
            name: registry_name.clone(),
            description: Some("faas gateway: registry document (functions and subscriptions)".to_string()),
            subjects: vec![format!("{prefix}.registry")],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            num_replicas: options.replicas,
            max_messages_per_subject: 1,
            ..Default::default()
        };
        let registry = create_or_update(&context, registry_config, timeout)
            .await
            .map_err(|e| at(&format!("cannot create stream {registry_name}"), &e))?;
        let kv = crate::kv::KvBucket::open(&context, &client, &options, &shown).await?;
        tracing::info!(url = %shown, stream = %options.stream, consumer = %options.consumer, "connected to NATS JetStream");
        let store = Arc::new(JetStreamStore {
            client,
            url: shown,
            prefix,
            max_event_bytes,
            chunk_bytes,
            context,
            deliveries,
            bodies,
            consumer,
            registry,
            options,
            claims: Arc::new(Mutex::new(HashMap::new())),
            owed: Mutex::new(HashMap::new()),
            resending: tokio::sync::Mutex::new(()),
            kv,
        });
        tokio::spawn(resend_owed_acks(Arc::downgrade(&store)));
        tokio::spawn(sweep_orphans(Arc::downgrade(&store)));
        Ok(store)
    }

    /// The largest event body [`append`](EventStore::append) accepts: [`JetStreamOptions::max_event_bytes`]
    /// (bodies larger than the server's `max_payload` are stored in parts).
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// The options this store was connected with.
    pub fn options(&self) -> &JetStreamOptions {
        &self.options
    }

    /// Fails fast when the client is not connected (it reconnects in the background).
    fn ensure_connected(&self, what: &str) -> Result<(), StoreError> {
        match self.client.connection_state() {
            State::Connected => Ok(()),
            state => Err(StoreError::Unavailable(format!("NATS {what}: not connected to {} ({state})", self.url))),
        }
    }

    /// Runs one server request bounded by the request timeout, mapping failures to `Unavailable`.
    async fn call<T, E: Display>(&self, what: &str, fut: impl Future<Output = Result<T, E>>) -> Result<T, StoreError> {
        bounded_call(self.options.request_timeout, fut).await.map_err(|e| {
            if matches!(self.client.connection_state(), State::Connected) {
                StoreError::Unavailable(format!("NATS {what} at {}: {e}", self.url))
            } else {
                StoreError::Unavailable(format!("NATS {what}: connection to {} lost: {e}", self.url))
            }
        })
    }

    /// Publishes one message (with `Nats-Msg-Id` `id` when given, and the body header when given).
    async fn publish(
        &self,
        subject: String,
        id: Option<String>,
        parts: Option<&BodyParts>,
        payload: Bytes,
    ) -> Result<PublishAckFuture, StoreError> {
        let mut message = PublishMessage::build().payload(payload);
        if let Some(id) = id {
            message = message.message_id(id);
        }
        if let Some(parts) = parts {
            message = message.header(BODY_HEADER, parts.header().as_str());
        }
        self.call("publish", self.context.send_publish(subject, message)).await
    }

    /// Subject stem of the parts of one delivery's body: `P.bodies.<target token>.<body id>`.
    fn body_stem(&self, token: &str, body_id: &str) -> String {
        format!("{}.bodies.{token}.{body_id}", self.prefix)
    }

    /// Deletes the parts of a body (all messages under `stem`). Failures are logged: the sweep removes
    /// parts no delivery refers to later.
    async fn delete_body(&self, stem: &str) {
        let purge = std::future::IntoFuture::into_future(self.bodies.purge().filter(format!("{stem}.>")));
        if let Err(e) = self.call("body delete", purge).await {
            tracing::warn!(body = stem, error = %e, "could not delete a large body's parts; the sweep removes them later");
        }
    }

    /// Reads a body stored in parts under `stem` and checks it against `parts`.
    async fn load_body(&self, stem: &str, parts: &BodyParts) -> Result<Bytes, BodyError> {
        let mut body = Vec::with_capacity(parts.size);
        for index in 0..parts.chunks {
            let subject = format!("{stem}.{index}");
            let got = bounded_call(self.options.request_timeout, async {
                match self.bodies.get_last_raw_message_by_subject(&subject).await {
                    Ok(message) => Ok(Some(message.payload)),
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
                    Err(e) => Err(e),
                }
            });
            match got.await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => return Err(BodyError::Lost(format!("part {index} of {} is missing", parts.chunks))),
                Err(e) => return Err(BodyError::Unavailable(e)),
            }
        }
        if body.len() != parts.size || sha256_hex(&body) != parts.sha256 {
            return Err(BodyError::Lost(format!(
                "the parts hold {} bytes that do not match the recorded {} bytes and digest",
                body.len(),
                parts.size
            )));
        }
        Ok(Bytes::from(body))
    }

    /// Sends the acknowledgements that failed while the connection was down (see [`JetStreamStore::ack`]).
    async fn resend_owed(&self) {
        let _resending = self.resending.lock().await;
        if !self.owes_acks() || !matches!(self.client.connection_state(), State::Connected) {
            return;
        }
        let owed: Vec<(u64, OwedAck)> = self.owed.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        for (sequence, ack) in owed {
            match self.call("ack", ack.message.double_ack_with(AckKind::Ack)).await {
                Ok(()) => {
                    tracing::info!(sequence, after = ?ack.since.elapsed(), "acknowledged a finished delivery once the connection returned");
                    if let Some(stem) = &ack.body {
                        self.delete_body(stem).await;
                    }
                }
                Err(e) => {
                    tracing::debug!(sequence, error = %e, "ack failed again; tried once more later");
                    self.owed.lock().unwrap_or_else(|p| p.into_inner()).insert(sequence, ack);
                }
            }
        }
    }

    fn owes_acks(&self) -> bool {
        !self.owed.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// One sweep for parts of bodies that no delivery refers to (see [`JetStreamOptions::orphan_grace`]).
    async fn sweep_orphans_once(&self) -> Result<usize, String> {
        let timeout = self.options.request_timeout;
        let root = format!("{}.bodies.", self.prefix);
        let mut stems = std::collections::BTreeMap::new();
        let listing = async {
            let mut info = self.bodies.info_with_subjects(format!("{root}>")).await.map_err(|e| e.to_string())?;
            while let Some(entry) = info.next().await {
                let (subject, _) = entry.map_err(|e| e.to_string())?;
                if let Some((stem, _index)) = subject.rsplit_once('.') {
                    stems.entry(stem.to_string()).or_insert(subject);
                }
            }
            Ok::<_, String>(())
        };
        bounded_call(timeout * 4, listing).await?;
        let mut removed = 0;
        for (stem, subject) in stems {
            let Some(rest) = stem.strip_prefix(&root) else { continue };
            let part = bounded_call(timeout, self.bodies.get_last_raw_message_by_subject(&subject)).await;
            let Ok(part) = part else { continue };
            let age = Duration::from_nanos(
                (time_now_nanos() - part.time.unix_timestamp_nanos()).clamp(0, u64::MAX as i128) as u64,
            );
            if age < self.options.orphan_grace {
                continue;
            }
            let delivery_subject = format!("{}.deliveries.{rest}", self.prefix);
            let referred = bounded_call(timeout, async {
                match self.deliveries.get_last_raw_message_by_subject(&delivery_subject).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(false),
                    Err(e) => Err(e),
                }
            });
            if referred.await? {
                continue;
            }
            tracing::info!(body = %stem, ?age, "deleting the parts of a large body no delivery refers to");
            self.delete_body(&stem).await;
            removed += 1;
        }
        Ok(removed)
    }

    /// Awaits publish acknowledgements, keeping at most `keep` in flight: returns `(event index, duplicate,
    /// stream sequence)` of each one awaited.
    async fn settle(
        &self,
        pending: &mut VecDeque<(usize, PublishAckFuture)>,
        keep: usize,
        settled: &mut Vec<(usize, bool, u64)>,
    ) -> Result<(), StoreError> {
        while pending.len() > keep {
            let Some((index, ack)) = pending.pop_front() else { break };
            let ack = self.call("publish", std::future::IntoFuture::into_future(ack)).await?;
            settled.push((index, ack.duplicate, ack.sequence));
        }
        Ok(())
    }

    /// One pull request: `no_wait` when `wait` is `None`, else waiting up to `wait` for the first message.
    async fn pull(&self, max: usize, wait: Option<Duration>) -> Result<Vec<jetstream::Message>, StoreError> {
        let batch = match wait {
            None => self.call("fetch", self.consumer.fetch().max_messages(max).messages()).await?,
            Some(wait) => self.call("fetch", self.consumer.batch().max_messages(max).expires(wait).messages()).await?,
        };
        let mut batch = std::pin::pin!(batch);
        let deadline = tokio::time::Instant::now() + wait.unwrap_or_default() + self.options.request_timeout;
        let mut messages = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, batch.next()).await {
                Ok(Some(Ok(message))) => messages.push(message),
                Ok(Some(Err(e))) => {
                    if messages.is_empty() {
                        return Err(StoreError::Unavailable(format!("NATS fetch at {}: {e}", self.url)));
                    }
                    break;
                }
                Ok(None) => break,
                Err(_) => {
                    if messages.is_empty() {
                        self.ensure_connected("fetch")?;
                    }
                    break;
                }
            }
        }
        Ok(messages)
    }

    /// Records a claimed message and starts its lease keeper; `None` if the message is not a delivery.
    /// Its body, when stored in parts, is read afterwards ([`complete`](Self::complete)): the lease is kept
    /// from the moment the message is pulled, however long reading the bodies of a batch takes.
    fn register(&self, message: jetstream::Message, lease: Duration) -> Option<Registered> {
        let (sequence, delivered, published) = match message.info() {
            Ok(info) => (info.stream_sequence, info.delivered.max(1) as u64, info.published),
            Err(e) => {
                tracing::warn!(subject = %message.subject, error = %e, "ignoring a message without JetStream metadata");
                return None;
            }
        };
        let rest = message.subject.strip_prefix(&format!("{}.deliveries.", self.prefix)).unwrap_or_default();
        // `<target token>` for a body in the message, `<target token>.<body id>` for a body in parts.
        let (token, body_id) = match rest.split_once('.') {
            Some((token, id)) => (token.to_string(), Some(id.to_string())),
            None => (rest.to_string(), None),
        };
        let target = decode_target(&token);
        let parts = message.headers.as_ref().and_then(|h| h.get(BODY_HEADER)).map(|v| BodyParts::parse(v.as_str()));
        let message = Arc::new(message);
        let body = match (body_id, parts) {
            (None, None) => Some(None),
            (Some(id), Some(Some(parts))) if !id.is_empty() && !id.contains('.') => {
                Some(Some((self.body_stem(&token, &id), parts)))
            }
            _ => None,
        };
        let (Some(target), Some(body)) = (target, body) else {
            tracing::warn!(subject = %message.subject, "dropping a message that is not a gateway delivery");
            let message = message.clone();
            tokio::spawn(async move {
                let _ = message.ack_with(AckKind::Term).await;
            });
            return None;
        };
        let received_at = UNIX_EPOCH + Duration::from_nanos(published.unix_timestamp_nanos().max(0) as u64);
        let delivery = Delivery {
            key: DeliveryKey(format!("{sequence}.{delivered}")),
            target,
            body: message.payload.clone(),
            attempt: delivered.saturating_sub(1).min(u32::MAX as u64) as u32,
            received_at,
        };
        let mut claims = lock(&self.claims);
        let keeper = tokio::spawn(keep_lease(
            Arc::downgrade(&self.claims),
            sequence,
            delivered,
            message.clone(),
            lease,
            self.options.ack_wait,
        ))
        .abort_handle();
        let stem = body.as_ref().map(|(stem, _)| stem.clone());
        let claimed = Claimed { delivered, message: message.clone(), body: stem, keeper };
        if let Some(previous) = claims.insert(sequence, claimed) {
            previous.keeper.abort();
        }
        Some(Registered { sequence, delivered, message, delivery, parts: body })
    }

    /// Reads the body of a registered delivery when it is stored in parts. `None` (and the claim is
    /// released) when it cannot be read: a lost body drops the delivery, a server that does not answer
    /// makes it due again in 1 s.
    async fn complete(&self, registered: Registered) -> Option<Delivery> {
        let Registered { sequence, delivered, message, mut delivery, parts } = registered;
        let Some((stem, parts)) = parts else { return Some(delivery) };
        match self.load_body(&stem, &parts).await {
            Ok(body) => {
                delivery.body = body;
                Some(delivery)
            }
            Err(BodyError::Lost(why)) => {
                self.release(sequence, delivered);
                tracing::error!(sequence, body = %stem, why, "a stored event's body is lost; delivery dropped");
                if let Err(e) = self.call("ack", message.double_ack_with(AckKind::Term)).await {
                    tracing::warn!(sequence, error = %e, "could not drop the delivery; it comes back after ack_wait");
                }
                self.delete_body(&stem).await;
                None
            }
            Err(BodyError::Unavailable(e)) => {
                self.release(sequence, delivered);
                tracing::warn!(sequence, error = %e, "could not read a large body; the delivery is due again in 1 s");
                let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                None
            }
        }
    }

    /// The stream sequence, delivery count and message of a delivery this instance holds.
    fn claimed(&self, key: &DeliveryKey) -> Result<(u64, u64, Arc<jetstream::Message>), StoreError> {
        let unknown = || StoreError::UnknownDelivery(key.clone());
        let (sequence, delivered) = key.0.split_once('.').ok_or_else(unknown)?;
        let sequence: u64 = sequence.parse().map_err(|_| unknown())?;
        let delivered: u64 = delivered.parse().map_err(|_| unknown())?;
        let claims = lock(&self.claims);
        let claimed = claims.get(&sequence).filter(|c| c.delivered == delivered).ok_or_else(unknown)?;
        Ok((sequence, delivered, claimed.message.clone()))
    }

    /// Removes a claim and stops its lease keeper.
    fn release(&self, sequence: u64, delivered: u64) -> Option<Claimed> {
        let mut claims = lock(&self.claims);
        if claims.get(&sequence).is_none_or(|c| c.delivered != delivered) {
            return None;
        }
        let claimed = claims.remove(&sequence)?;
        claimed.keeper.abort();
        Some(claimed)
    }

    /// Sends an acknowledgement the server confirms, then forgets the delivery (and deletes its body's
    /// parts once acked). When that fails, the lease is no longer extended; a failed ack is sent again as
    /// soon as the connection is back (see [`JetStreamStore`]).
    async fn finish(&self, key: &DeliveryKey, kind: AckKind, what: &str) -> Result<(), StoreError> {
        let (sequence, delivered, message) = self.claimed(key)?;
        let sent = match self.ensure_connected(what) {
            Ok(()) => self.call(what, message.double_ack_with(kind)).await,
            Err(e) => Err(e),
        };
        let claimed = self.release(sequence, delivered);
        let body = claimed.and_then(|c| c.body);
        let is_ack = matches!(kind, AckKind::Ack);
        match sent {
            Ok(()) => {
                if let (true, Some(stem)) = (is_ack, &body) {
                    self.delete_body(stem).await;
                }
                Ok(())
            }
            Err(StoreError::Unavailable(e)) if is_ack => {
                self.owed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(sequence, OwedAck { message, body, since: Instant::now() });
                Err(StoreError::Unavailable(format!(
                    "{e}; the ack is sent again once the connection is back (the lease is no longer extended)"
                )))
            }
            Err(StoreError::Unavailable(e)) => Err(StoreError::Unavailable(format!(
                "{e}; the lease is no longer extended: the delivery is due again after ack_wait"
            ))),
            Err(e) => Err(e),
        }
    }
}

/// An advance on JetStream is its three parts one after another — the record's conditional publish,
/// the wake-up's publish, the ack — each confirmed before the next: JetStream (as of the nats-server
/// 2.9 our distributions ship) has no publish spanning two streams, and this order is the one that
/// is safe to stop between (see [`faas_gateway_store::Advance`]).
#[async_trait]
impl faas_gateway_store::GatewayStore for JetStreamStore {}

impl Drop for JetStreamStore {
    fn drop(&mut self) {
        // Leases end with this instance: the server hands its deliveries out again after ack_wait.
        for (_, claimed) in lock(&self.claims).drain() {
            claimed.keeper.abort();
        }
    }
}

#[async_trait]
impl EventStore for JetStreamStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        let mut tokens = Vec::with_capacity(events.len());
        for event in &events {
            if event.body.len() > self.max_event_bytes {
                return Err(StoreError::TooLarge { size: event.body.len(), limit: self.max_event_bytes });
            }
            let mut targets: Vec<(&str, String)> = Vec::with_capacity(event.targets.len());
            for target in &event.targets {
                if targets.iter().any(|(t, _)| *t == target.as_str()) {
                    continue;
                }
                let token = encode_target(target);
                if token.len() > MAX_TARGET_TOKEN {
                    return Err(StoreError::TooLarge { size: token.len(), limit: MAX_TARGET_TOKEN });
                }
                targets.push((target.as_str(), token));
            }
            tokens.push(targets);
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_connected("append")?;

        // 1. Bodies too large for one message, in parts: one copy per delivery, under a fresh body id, so
        // every part belongs to exactly one delivery (deleted with it). Parts of an append that fails or
        // crashes before its delivery is stored are deleted by the sweep.
        let mut planned: Vec<(usize, &str, &str, Option<(String, BodyParts)>)> = Vec::new();
        let mut pending = VecDeque::new();
        let mut stored_parts = Vec::new();
        for (index, (event, targets)) in events.iter().zip(&tokens).enumerate() {
            let large = event.body.len() > self.chunk_bytes;
            let digest = if large { sha256_hex(&event.body) } else { String::new() };
            for (target, token) in targets {
                if !large {
                    planned.push((index, target, token, None));
                    continue;
                }
                let body_id = self.client.new_inbox().rsplit('.').next().unwrap_or_default().to_string();
                let stem = self.body_stem(token, &body_id);
                let chunks = event.body.len().div_ceil(self.chunk_bytes);
                for chunk in 0..chunks {
                    let start = chunk * self.chunk_bytes;
                    let end = (start + self.chunk_bytes).min(event.body.len());
                    let ack = self.publish(format!("{stem}.{chunk}"), None, None, event.body.slice(start..end)).await?;
                    pending.push_back((index, ack));
                    self.settle(&mut pending, MAX_IN_FLIGHT, &mut stored_parts).await?;
                }
                let parts = BodyParts { chunks, size: event.body.len(), sha256: digest.clone() };
                planned.push((index, target, token, Some((body_id, parts))));
            }
        }
        self.settle(&mut pending, 0, &mut stored_parts).await?;

        // 2. Once every part is stored, the deliveries (a re-sent event's are dropped by the server as
        // duplicates). A delivery stored is complete: its body, or all of its parts.
        let mut deliveries = Vec::new();
        for (slot, (index, target, token, large)) in planned.iter().enumerate() {
            let event = &events[*index];
            let id = Some(delivery_id(&event.source, &event.id, target));
            let ack = match large {
                None => {
                    let subject = format!("{}.deliveries.{token}", self.prefix);
                    self.publish(subject, id, None, event.body.clone()).await?
                }
                Some((body_id, parts)) => {
                    let subject = format!("{}.deliveries.{token}.{body_id}", self.prefix);
                    self.publish(subject, id, Some(parts), Bytes::new()).await?
                }
            };
            pending.push_back((slot, ack));
            self.settle(&mut pending, MAX_IN_FLIGHT, &mut deliveries).await?;
        }
        self.settle(&mut pending, 0, &mut deliveries).await?;
        // The server dropped a re-sent delivery: the parts stored for it are nobody's.
        for (slot, is_duplicate, _) in &deliveries {
            if let (true, (_, _, token, Some((body_id, _)))) = (*is_duplicate, &planned[*slot]) {
                self.delete_body(&self.body_stem(token, body_id)).await;
            }
        }

        // 2. Only once every delivery is stored, the markers: a marker means "this event is fully stored".
        let mut markers = Vec::new();
        for (index, event) in events.iter().enumerate() {
            let subject = format!("{}.seen", self.prefix);
            let ack = self.publish(subject, Some(event_id(&event.source, &event.id)), None, Bytes::new()).await?;
            pending.push_back((index, ack));
            self.settle(&mut pending, MAX_IN_FLIGHT, &mut markers).await?;
        }
        self.settle(&mut pending, 0, &mut markers).await?;

        let mut duplicate = vec![false; events.len()];
        for (index, is_duplicate, _) in markers {
            duplicate[index] = is_duplicate;
        }
        let mut results = Vec::with_capacity(events.len());
        for (index, targets) in tokens.iter().enumerate() {
            if !duplicate[index] {
                results.push(Appended::Stored { deliveries: targets.len() });
                continue;
            }
            // A duplicate: the first copy was stored completely. Deliveries this copy added (targets the
            // first did not have) are removed again, so a duplicate stores nothing.
            for (slot, _, sequence) in deliveries.iter().filter(|(slot, dup, _)| planned[*slot].0 == index && !dup) {
                if let Err(e) = self.call("delete", self.deliveries.delete_message(*sequence)).await {
                    tracing::warn!(sequence, error = %e, "could not remove a duplicate event's extra delivery");
                    continue;
                }
                if let (_, _, token, Some((body_id, _))) = &planned[*slot] {
                    self.delete_body(&self.body_stem(token, body_id)).await;
                }
            }
            results.push(Appended::Duplicate);
        }
        Ok(results)
    }

    async fn claim(&self, max: usize, lease: Duration, wait: Duration) -> Result<Vec<Delivery>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.ensure_connected("claim")?;
        // Acks that failed while the connection was down go first (also when the background task is
        // sending them), so none of those deliveries is pulled again by this replica.
        self.resend_owed().await;
        let wait = wait.min(MAX_WAIT);
        // A no-wait request first (it completes at once); if nothing is due, one request for a single message
        // that waits, then a no-wait one for the rest. Pull requests never outlive the call, so no message is
        // handed to a request nobody reads.
        let mut messages = self.pull(max, None).await?;
        if messages.is_empty() && wait >= Duration::from_millis(1) {
            messages = self.pull(1, Some(wait)).await?;
            if !messages.is_empty() && max > 1 {
                messages.extend(self.pull(max - 1, None).await?);
            }
        }
        let registered: Vec<Registered> = messages.into_iter().filter_map(|m| self.register(m, lease)).collect();
        let mut deliveries = Vec::with_capacity(registered.len());
        for one in registered {
            deliveries.extend(self.complete(one).await);
        }
        Ok(deliveries)
    }

    async fn ack(&self, key: &DeliveryKey) -> Result<(), StoreError> {
        self.finish(key, AckKind::Ack, "ack").await
    }

    async fn retry_at(&self, key: &DeliveryKey, not_before: SystemTime) -> Result<(), StoreError> {
        let delay = not_before.duration_since(SystemTime::now()).unwrap_or_default();
        let kind = if delay.is_zero() { AckKind::Nak(None) } else { AckKind::Nak(Some(delay)) };
        self.finish(key, kind, "retry").await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.ensure_connected("stats")?;
        let info = self.call("consumer info", self.deliveries.consumer_info(&self.options.consumer)).await?;
        Ok(StoreStats { backlog: info.num_pending + info.num_ack_pending as u64 })
    }

    async fn load_registry(&self) -> Result<Option<Bytes>, StoreError> {
        self.ensure_connected("registry load")?;
        let subject = format!("{}.registry", self.prefix);
        let last = bounded_call(self.options.request_timeout, async {
            match self.registry.get_last_raw_message_by_subject(&subject).await {
                Ok(message) => Ok(Some(message.payload)),
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
                Err(e) => Err(e),
            }
        });
        last.await.map_err(|e| StoreError::Unavailable(format!("NATS registry load at {}: {e}", self.url)))
    }

    async fn save_registry(&self, document: Bytes) -> Result<(), StoreError> {
        let limit = self.client.server_info().max_payload.saturating_sub(HEADROOM);
        if limit > 0 && document.len() > limit {
            return Err(StoreError::TooLarge { size: document.len(), limit });
        }
        self.ensure_connected("registry save")?;
        let subject = format!("{}.registry", self.prefix);
        let ack =
            self.call("registry save", self.context.send_publish(subject, PublishMessage::build().payload(document)));
        self.call("registry save", std::future::IntoFuture::into_future(ack.await?)).await?;
        Ok(())
    }
}

/// Keeps a claimed message's lease: progress acks while the lease outlasts `ack_wait`, a negative ack (due
/// again at once) when the lease ends without ack or retry.
async fn keep_lease(
    claims: Weak<Claims>,
    sequence: u64,
    delivered: u64,
    message: Arc<jetstream::Message>,
    lease: Duration,
    ack_wait: Duration,
) {
    // A lease too long to represent never ends (until ack, retry or drop).
    let deadline = Instant::now().checked_add(lease);
    let step = (ack_wait / 2).max(Duration::from_millis(50));
    loop {
        let remaining = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
        if remaining <= step {
            tokio::time::sleep(remaining).await;
            break;
        }
        tokio::time::sleep(step).await;
        if let Err(e) = message.ack_with(AckKind::Progress).await {
            tracing::debug!(sequence, error = %e, "progress ack failed");
        }
    }
    let Some(claims) = claims.upgrade() else { return };
    let expired = {
        let mut claims = lock(&claims);
        match claims.get(&sequence) {
            Some(c) if c.delivered == delivered => claims.remove(&sequence),
            _ => None,
        }
    };
    if expired.is_some() {
        tracing::debug!(sequence, "lease expired; delivery handed back");
        if let Err(e) = message.ack_with(AckKind::Nak(None)).await {
            tracing::debug!(sequence, error = %e, "negative ack failed; the server redelivers after ack_wait");
        }
    }
}

/// Sends failed acks again while the store lives (every [`OWED_POLL`], when connected).
async fn resend_owed_acks(store: Weak<JetStreamStore>) {
    loop {
        tokio::time::sleep(OWED_POLL).await;
        let Some(store) = store.upgrade() else { return };
        store.resend_owed().await;
    }
}

/// Deletes parts of bodies no delivery refers to, every third of [`JetStreamOptions::orphan_grace`] (at most
/// every 5 minutes), while the store lives.
async fn sweep_orphans(store: Weak<JetStreamStore>) {
    let Some(period) = store.upgrade().map(|s| (s.options.orphan_grace / 3).min(Duration::from_secs(300))) else {
        return;
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(store) = store.upgrade() else { return };
        if !matches!(store.client.connection_state(), State::Connected) {
            continue;
        }
        if let Err(e) = store.sweep_orphans_once().await {
            tracing::debug!(error = %e, "sweeping large bodies' orphaned parts failed; tried again later");
        }
    }
}

fn time_now_nanos() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or_default()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn lock(claims: &Claims) -> std::sync::MutexGuard<'_, HashMap<u64, Claimed>> {
    claims.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `fut` bounded by `timeout`; errors (and the timeout) become strings.
pub(crate) async fn bounded_call<T, E: Display>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

pub(crate) async fn create_or_update(
    context: &jetstream::Context,
    config: stream::Config,
    timeout: Duration,
) -> Result<stream::Stream, String> {
    let name = config.name.clone();
    bounded_call(timeout, context.create_or_update_stream(config)).await?;
    bounded_call(timeout, context.get_stream(name)).await
}

/// Stream, consumer and bucket names: letters, digits, `-`, `_`.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `Nats-Msg-Id` of one delivery: SHA-256 of the length-prefixed source, id and target.
fn delivery_id(source: &str, id: &str, target: &str) -> String {
    digest(b"faas-delivery", &[source, id, target])
}

/// The `Nats-Msg-Id` of an event's marker.
fn event_id(source: &str, id: &str) -> String {
    digest(b"faas-event", &[source, id])
}

fn digest(domain: &[u8], parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Encodes a target as one subject token (see [`JetStreamStore`]).
fn encode_target(target: &str) -> String {
    if target.is_empty() {
        return "%".to_string();
    }
    let mut token = String::with_capacity(target.len());
    for b in target.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            token.push(b as char);
        } else {
            token.push_str(&format!("%{b:02X}"));
        }
    }
    token
}

/// Inverse of [`encode_target`]; `None` for anything it cannot produce.
fn decode_target(token: &str) -> Option<String> {
    if token == "%" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = token.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    if out.is_empty() {
        return None;
    }
    String::from_utf8(out).ok()
}

/// The URL without credentials, for messages and logs.
fn redact(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let one = one.trim();
            let (scheme, rest) = one.split_once("://").map(|(s, r)| (Some(s), r)).unwrap_or((None, one));
            let rest = match rest.rsplit_once('@') {
                Some((_, host)) => format!("***@{host}"),
                None => rest.to_string(),
            };
            match scheme {
                Some(scheme) => format!("{scheme}://{rest}"),
                None => rest,
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_through_subject_tokens() {
        for target in ["sub-1", "a.b", "with space", "*", ">", "", "ünï", "100%", "%", "x_y-Z9"] {
            let token = encode_target(target);
            assert!(!token.is_empty() && !token.contains(['.', '*', '>', ' ']), "{target:?} -> {token:?}");
            assert_eq!(decode_target(&token).as_deref(), Some(target), "{target:?} -> {token:?}");
        }
        assert_eq!(encode_target("a.b"), "a%2Eb");
        assert_eq!(decode_target("a.b"), None);
        assert_eq!(decode_target("%G1"), None);
        assert_eq!(decode_target("%4"), None);
    }

    #[test]
    fn message_ids_separate_their_parts() {
        assert_ne!(delivery_id("a", "bc", "t"), delivery_id("ab", "c", "t"));
        assert_ne!(delivery_id("s", "1", "t1"), delivery_id("s", "1", "t2"));
        assert_eq!(delivery_id("s", "1", "t"), delivery_id("s", "1", "t"));
        assert_ne!(event_id("s", "1"), delivery_id("s", "1", ""));
        assert_eq!(event_id("s", "1").len(), 64);
    }

    #[test]
    fn credentials_are_not_shown() {
        assert_eq!(redact("nats://user:secret@host:4222"), "nats://***@host:4222");
        assert_eq!(redact("nats://a:1,tls://tok@b:2"), "nats://a:1,tls://***@b:2");
        assert_eq!(redact("127.0.0.1:4222"), "127.0.0.1:4222");
    }

    #[test]
    fn options_are_checked() {
        assert!(JetStreamOptions::default().validate().is_ok());
        let bad = [
            JetStreamOptions { stream: "A.B".into(), ..Default::default() },
            JetStreamOptions { consumer: "c d".into(), ..Default::default() },
            JetStreamOptions { subject_prefix: Some("a.*".into()), ..Default::default() },
            JetStreamOptions { dedupe_window: Duration::ZERO, ..Default::default() },
            JetStreamOptions { replicas: 0, ..Default::default() },
            JetStreamOptions { kv_bucket: Some("a.b".into()), ..Default::default() },
            JetStreamOptions { max_value_bytes: 0, ..Default::default() },
            JetStreamOptions { kv_sweep_interval: Duration::from_millis(10), ..Default::default() },
        ];
        for options in bad {
            let err = options.validate().unwrap_err().to_string();
            assert!(err.contains("invalid JetStream options"), "{err}");
        }
    }
}
