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
    /// Largest event body accepted. The stream's maximum message size is this plus [`HEADROOM`]; if the
    /// server's `max_payload` (1 MiB by default) is smaller, the effective limit is lowered to fit it (see
    /// [`JetStreamStore::max_event_bytes`]). Default 1 MiB.
    pub max_event_bytes: usize,
    /// JetStream replicas of each stream (1, or 3/5 on a cluster). Default 1.
    pub replicas: usize,
    /// The consumer's `ack_wait`: how long the server waits for an ack before handing a delivery to another
    /// replica when the replica holding it is gone. Leases longer than this are kept alive with progress
    /// acks; shorter leases end early by a negative ack. Default 30 s.
    pub ack_wait: Duration,
    /// Bound on every request to the server (connect, publish acks, acks, info). Default 5 s.
    pub request_timeout: Duration,
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
        if self.max_event_bytes == 0 || self.max_event_bytes > i32::MAX as usize - HEADROOM {
            return bad(format!("max_event_bytes {} is out of range", self.max_event_bytes));
        }
        if !(1..=5).contains(&self.replicas) {
            return bad(format!("replicas {} must be between 1 and 5", self.replicas));
        }
        Ok(())
    }

    fn prefix(&self) -> &str {
        self.subject_prefix.as_deref().unwrap_or(&self.stream)
    }
}

/// A claimed message and the task keeping its lease.
struct Claimed {
    delivered: u64,
    message: Arc<jetstream::Message>,
    keeper: AbortHandle,
}

/// Claimed deliveries of this store instance, by stream sequence.
type Claims = Mutex<HashMap<u64, Claimed>>;

/// [`EventStore`] on NATS JetStream: several gateway replicas connect to the same stream and share its
/// deliveries (see the [crate docs](crate) for the layout on the server and what an acknowledgement means).
///
/// Leases: the server redelivers a message when `ack_wait` passes without an ack. A lease asked for in
/// [`claim`](EventStore::claim) that is longer than `ack_wait` is kept alive by sending a progress ack every
/// `ack_wait / 2`; when the lease ends without ack or retry, the store sends a negative ack so the delivery is
/// due again at once, and a late [`ack`](EventStore::ack) gets [`StoreError::UnknownDelivery`]. If the
/// replica holding a delivery dies, the server redelivers it after `ack_wait` (not the lease).
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
    context: jetstream::Context,
    deliveries: stream::Stream,
    consumer: PullConsumer,
    registry: stream::Stream,
    claims: Arc<Claims>,
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
    /// (or updates to `options`) the streams, the durable consumer and the registry bucket.
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
        let mut max_event_bytes = options.max_event_bytes;
        if max_payload > 0 && max_event_bytes + HEADROOM > max_payload {
            max_event_bytes = max_payload.saturating_sub(HEADROOM);
            tracing::warn!(
                max_payload,
                configured = options.max_event_bytes,
                effective = max_event_bytes,
                "the NATS server's max_payload is below max_event_bytes plus headroom; larger events are refused \
                 (raise max_payload in the nats-server configuration)"
            );
        }
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
            max_message_size: (max_event_bytes + HEADROOM) as i32,
            ..Default::default()
        };
        let deliveries = create_or_update(&context, deliveries_config, timeout)
            .await
            .map_err(|e| at(&format!("cannot create stream {}", options.stream), &e))?;

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
        tracing::info!(url = %shown, stream = %options.stream, consumer = %options.consumer, "connected to NATS JetStream");
        Ok(Arc::new(JetStreamStore {
            client,
            url: shown,
            prefix,
            max_event_bytes,
            context,
            deliveries,
            consumer,
            registry,
            options,
            claims: Arc::new(Mutex::new(HashMap::new())),
        }))
    }

    /// The largest event body [`append`](EventStore::append) accepts: [`JetStreamOptions::max_event_bytes`],
    /// lowered when the server's `max_payload` is smaller.
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

    async fn publish(&self, subject: String, id: String, payload: Bytes) -> Result<PublishAckFuture, StoreError> {
        let message = PublishMessage::build().message_id(id).payload(payload);
        self.call("publish", self.context.send_publish(subject, message)).await
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
    fn track(&self, message: jetstream::Message, lease: Duration) -> Option<Delivery> {
        let (sequence, delivered, published) = match message.info() {
            Ok(info) => (info.stream_sequence, info.delivered.max(1) as u64, info.published),
            Err(e) => {
                tracing::warn!(subject = %message.subject, error = %e, "ignoring a message without JetStream metadata");
                return None;
            }
        };
        let target = message.subject.strip_prefix(&format!("{}.deliveries.", self.prefix)).and_then(decode_target);
        let message = Arc::new(message);
        let Some(target) = target else {
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
        if let Some(previous) = claims.insert(sequence, Claimed { delivered, message, keeper }) {
            previous.keeper.abort();
        }
        Some(delivery)
    }

    /// The message of a delivery this instance holds.
    fn claimed(&self, key: &DeliveryKey) -> Result<(u64, u64, Arc<jetstream::Message>), StoreError> {
        let unknown = || StoreError::UnknownDelivery(key.clone());
        let (sequence, delivered) = key.0.split_once('.').ok_or_else(unknown)?;
        let sequence: u64 = sequence.parse().map_err(|_| unknown())?;
        let delivered: u64 = delivered.parse().map_err(|_| unknown())?;
        let claims = lock(&self.claims);
        let claimed = claims.get(&sequence).filter(|c| c.delivered == delivered).ok_or_else(unknown)?;
        Ok((sequence, delivered, claimed.message.clone()))
    }

    /// Sends an acknowledgement the server confirms, then forgets the delivery.
    async fn finish(&self, key: &DeliveryKey, kind: AckKind, what: &str) -> Result<(), StoreError> {
        let (sequence, delivered, message) = self.claimed(key)?;
        self.ensure_connected(what)?;
        self.call(what, message.double_ack_with(kind)).await?;
        let mut claims = lock(&self.claims);
        if claims.get(&sequence).is_some_and(|c| c.delivered == delivered) {
            if let Some(claimed) = claims.remove(&sequence) {
                claimed.keeper.abort();
            }
        }
        Ok(())
    }
}

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

        // 1. The deliveries (a re-sent event's are dropped by the server as duplicates).
        let mut pending = VecDeque::new();
        let mut deliveries = Vec::new();
        for (index, (event, targets)) in events.iter().zip(&tokens).enumerate() {
            for (target, token) in targets {
                let subject = format!("{}.deliveries.{token}", self.prefix);
                let ack =
                    self.publish(subject, delivery_id(&event.source, &event.id, target), event.body.clone()).await?;
                pending.push_back((index, ack));
                self.settle(&mut pending, MAX_IN_FLIGHT, &mut deliveries).await?;
            }
        }
        self.settle(&mut pending, 0, &mut deliveries).await?;

        // 2. Only once every delivery is stored, the markers: a marker means "this event is fully stored".
        let mut markers = Vec::new();
        for (index, event) in events.iter().enumerate() {
            let subject = format!("{}.seen", self.prefix);
            let ack = self.publish(subject, event_id(&event.source, &event.id), Bytes::new()).await?;
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
            for (_, _, sequence) in deliveries.iter().filter(|(i, dup, _)| *i == index && !dup) {
                if let Err(e) = self.call("delete", self.deliveries.delete_message(*sequence)).await {
                    tracing::warn!(sequence, error = %e, "could not remove a duplicate event's extra delivery");
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
        Ok(messages.into_iter().filter_map(|m| self.track(m, lease)).collect())
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

fn lock(claims: &Claims) -> std::sync::MutexGuard<'_, HashMap<u64, Claimed>> {
    claims.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `fut` bounded by `timeout`; errors (and the timeout) become strings.
async fn bounded_call<T, E: Display>(timeout: Duration, fut: impl Future<Output = Result<T, E>>) -> Result<T, String> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

async fn create_or_update(
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
        ];
        for options in bad {
            let err = options.validate().unwrap_err().to_string();
            assert!(err.contains("invalid JetStream options"), "{err}");
        }
    }
}
