//! [`KvStore`] for [`JetStreamStore`] on a JetStream key–value bucket (layout, key mapping, time-to-live
//! and consistency: [crate docs](crate#key-value-bucket)).

use std::collections::HashMap;
use std::fmt::{Display, Write as _};
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::connection::State;
use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, DiscardPolicy, LastRawMessageErrorKind, StorageType};
use async_nats::HeaderMap;
use async_trait::async_trait;
use bytes::Bytes;
use faas_gateway_store::kv::{check_key, expiry, Expect, KvEntry, KvPage, KvStore, MAX_KEY_BYTES};
use faas_gateway_store::StoreError;
use futures::StreamExt;
use tokio::task::AbortHandle;

use crate::jetstream::{bounded_call, create_or_update, JetStreamOptions, JetStreamStore, HEADROOM};

/// Header of a value written with a time-to-live: its absolute expiry, in microseconds since the Unix
/// epoch (decimal). A value whose expiry has passed reads as absent; the sweeper then removes it.
///
/// ```
/// assert_eq!(faas_gateway_nats::EXPIRES_HEADER, "Faas-Expires-At");
/// ```
pub const EXPIRES_HEADER: &str = "Faas-Expires-At";

/// Header NATS key–value clients mark deletes (`DEL`) and purges (`PURGE`) with.
const OPERATION_HEADER: &str = "KV-Operation";

/// How often a conditional write is decided again when the key changed between the read that decided it
/// and the write (another writer won, or the sweeper removed an expired value or a delete marker), as
/// long as the condition still holds.
const MAX_ATTEMPTS: usize = 8;

/// Reads in flight at once while a listing fetches the values of its page.
const LIST_CONCURRENCY: usize = 32;

/// Messages asked for in one fetch of the sweeper's consumer.
const SWEEP_BATCH: usize = 1024;

/// The sweeper starts over with a full scan of the bucket this often. Its incremental view can only miss
/// a change when a fetch fails (which also starts it over); this bounds anything else.
const RESCAN_EVERY: Duration = Duration::from_secs(15 * 60);

/// Whether a byte stands for itself in a NATS key token.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Maps a store key (one that passes [`check_key`]) to a NATS key–value key: each `/` becomes the token
/// separator `.`, ASCII letters, digits, `-` and `_` stay, and every other byte becomes `=XX` (uppercase
/// hex). The mapping works byte by byte, so a string prefix of a key maps to a string prefix of its NATS
/// key, and whole `/`-segments map to whole tokens.
pub(crate) fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'/' => out.push('.'),
            b if is_plain(b) => out.push(b as char),
            b => {
                let _ = write!(out, "={b:02X}");
            }
        }
    }
    out
}

/// Inverse of [`encode_key`]; `None` for anything it cannot produce (keys other clients wrote into the
/// bucket with other characters, empty tokens, lowercase or needless escapes, invalid UTF-8).
pub(crate) fn decode_key(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut token_start = true;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' if token_start => return None,
            b'.' => {
                out.push(b'/');
                token_start = true;
                i += 1;
                continue;
            }
            b'=' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)) {
                    return None;
                }
                let byte = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                if is_plain(byte) || byte == b'/' {
                    return None;
                }
                out.push(byte);
                i += 3;
            }
            b if is_plain(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
        token_start = false;
    }
    if token_start {
        return None;
    }
    String::from_utf8(out).ok()
}

/// Microseconds since the Unix epoch.
fn micros(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros().min(u64::MAX as u128) as u64)
}

/// What the last message of a key's subject is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A delete or purge marker: the key is absent.
    Marker,
    /// A value, with its expiry (microseconds since the epoch) if written with a time-to-live.
    Value { expires_at: Option<u64> },
}

impl Kind {
    fn of(headers: Option<&HeaderMap>) -> Result<Kind, String> {
        let Some(headers) = headers else { return Ok(Kind::Value { expires_at: None }) };
        if headers.get(OPERATION_HEADER).is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE")) {
            return Ok(Kind::Marker);
        }
        match headers.get(EXPIRES_HEADER) {
            None => Ok(Kind::Value { expires_at: None }),
            Some(value) => match value.as_str().trim().parse::<u64>() {
                Ok(at) => Ok(Kind::Value { expires_at: Some(at) }),
                Err(_) => {
                    Err(format!("its {EXPIRES_HEADER} header {:?} is not a number of microseconds", value.as_str()))
                }
            },
        }
    }
}

/// A key's state as one read found it.
#[derive(Debug, Default)]
struct Current {
    /// Stream sequence of the subject's last message, whatever it is (value, expired value, marker): the
    /// condition a write that expects the key as it was read is made under.
    last: Option<u64>,
    /// The live entry, if the key is present.
    live: Option<KvEntry>,
}

/// The key–value bucket of one [`JetStreamStore`], with its sweeper (stopped when this is dropped).
pub(crate) struct KvBucket {
    bucket: Arc<Bucket>,
    sweeper: AbortHandle,
}

impl Drop for KvBucket {
    fn drop(&mut self) {
        self.sweeper.abort();
    }
}

/// What the operations and the sweeper share.
struct Bucket {
    name: String,
    /// `$KV.<bucket>.`
    prefix: String,
    stream: stream::Stream,
    context: jetstream::Context,
    client: async_nats::Client,
    /// The server URL without credentials.
    url: String,
    max_value_bytes: usize,
    timeout: Duration,
}

impl KvBucket {
    /// Creates the bucket (or updates it to `options`) and starts its sweeper.
    pub(crate) async fn open(
        context: &jetstream::Context,
        client: &async_nats::Client,
        options: &JetStreamOptions,
        url: &str,
    ) -> Result<KvBucket, StoreError> {
        let name = options.kv_bucket_name();
        // The stream a NATS key–value bucket is (what `nats kv` and every client library expect), made
        // here rather than by async-nats's `create_or_update_key_value`: that one first asks for the account
        // info, whose answer from nats-server 2.9 async-nats 0.51 cannot parse.
        let config = stream::Config {
            name: format!("KV_{name}"),
            description: Some("faas gateway: key-value state (conductor records, function state)".to_string()),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            storage: StorageType::File,
            num_replicas: options.replicas,
            discard: DiscardPolicy::New,
            allow_rollup: true,
            deny_delete: true,
            deny_purge: false,
            allow_direct: true,
            ..Default::default()
        };
        let stream = create_or_update(context, config, options.request_timeout).await.map_err(|e| {
            StoreError::Unavailable(format!("NATS at {url}: cannot create key-value bucket {name}: {e}"))
        })?;
        let bucket = Arc::new(Bucket {
            prefix: format!("$KV.{name}."),
            name,
            stream,
            context: context.clone(),
            client: client.clone(),
            url: url.to_string(),
            max_value_bytes: options.max_value_bytes,
            timeout: options.request_timeout,
        });
        let limit = bucket.value_limit();
        if limit < options.max_value_bytes {
            tracing::info!(
                bucket = %bucket.name,
                max_value_bytes = options.max_value_bytes,
                limit,
                "key-value values are limited by the server's max_payload (less headroom for headers)"
            );
        }
        let sweeper = tokio::spawn(sweep(bucket.clone(), options.kv_sweep_interval)).abort_handle();
        tracing::debug!(bucket = %bucket.name, "key-value bucket ready");
        Ok(KvBucket { bucket, sweeper })
    }
}

impl Bucket {
    /// The largest value accepted: [`JetStreamOptions::max_value_bytes`], or the server's `max_payload`
    /// less [`HEADROOM`] if that is smaller.
    fn value_limit(&self) -> usize {
        match self.client.server_info().max_payload {
            0 => self.max_value_bytes,
            max_payload => self.max_value_bytes.min(max_payload.saturating_sub(HEADROOM)),
        }
    }

    fn subject(&self, key: &str) -> String {
        format!("{}{}", self.prefix, encode_key(key))
    }

    fn unavailable(&self, what: &str, e: impl Display) -> StoreError {
        if matches!(self.client.connection_state(), State::Connected) {
            StoreError::Unavailable(format!("NATS key-value {what} at {}: {e}", self.url))
        } else {
            StoreError::Unavailable(format!("NATS key-value {what}: connection to {} lost: {e}", self.url))
        }
    }

    /// Fails fast when the client is not connected (it reconnects in the background).
    fn ensure_connected(&self, what: &str) -> Result<(), StoreError> {
        match self.client.connection_state() {
            State::Connected => Ok(()),
            state => {
                Err(StoreError::Unavailable(format!("NATS key-value {what}: not connected to {} ({state})", self.url)))
            }
        }
    }

    /// Reads the last message of `key`'s subject through the stream leader (the message-get API, not
    /// direct get, which a follower may answer from behind).
    async fn read(&self, key: &str, subject: &str) -> Result<Current, StoreError> {
        let got = tokio::time::timeout(self.timeout, self.stream.get_last_raw_message_by_subject(subject)).await;
        let message = match got {
            Err(_) => return Err(self.unavailable("read", format!("no answer within {:?}", self.timeout))),
            Ok(Err(e)) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(Current::default()),
            Ok(Err(e)) => return Err(self.unavailable("read", e)),
            Ok(Ok(message)) => message,
        };
        let kind = Kind::of(Some(&message.headers))
            .map_err(|why| StoreError::Corrupt(format!("key-value bucket {}, key {key}: {why}", self.name)))?;
        let live = match kind {
            Kind::Marker => None,
            Kind::Value { expires_at } if expires_at.is_some_and(|at| at <= micros(SystemTime::now())) => None,
            Kind::Value { expires_at } => Some(KvEntry {
                value: message.payload,
                revision: message.sequence,
                expires_at: expires_at.map(|at| UNIX_EPOCH + Duration::from_micros(at)),
            }),
        };
        Ok(Current { last: Some(message.sequence), live })
    }

    /// Publishes one message to the bucket: `Some(revision)` once stored, `None` when the server refused it
    /// because its `Nats-Expected-Last-Subject-Sequence` did not hold (JetStream error 10071).
    async fn write(
        &self,
        key: &str,
        subject: String,
        message: PublishMessage,
        size: usize,
    ) -> Result<Option<u64>, StoreError> {
        let ack = match tokio::time::timeout(self.timeout, self.context.send_publish(subject, message)).await {
            Err(_) => return Err(self.unavailable("write", format!("no answer within {:?}", self.timeout))),
            Ok(Err(e)) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                return Err(StoreError::ValueTooLarge { key: key.to_string(), size, limit: self.value_limit() })
            }
            Ok(Err(e)) => return Err(self.unavailable("write", e)),
            Ok(Ok(ack)) => ack,
        };
        match tokio::time::timeout(self.timeout, ack.into_future()).await {
            Err(_) => Err(self.unavailable(
                "write",
                format!("no acknowledgement within {:?}; the write may or may not be stored", self.timeout),
            )),
            Ok(Ok(ack)) => Ok(Some(ack.sequence)),
            Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
            Ok(Err(e)) => Err(self.unavailable("write", e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<KvEntry>, StoreError> {
        check_key(key)?;
        self.ensure_connected("get")?;
        Ok(self.read(key, &self.subject(key)).await?.live)
    }

    async fn put(&self, key: &str, value: Bytes, expect: Expect, ttl: Option<Duration>) -> Result<u64, StoreError> {
        check_key(key)?;
        let limit = self.value_limit();
        if value.len() > limit {
            if limit < self.max_value_bytes {
                tracing::debug!(
                    key,
                    size = value.len(),
                    limit,
                    "value refused: larger than the server's max_payload less headroom for headers"
                );
            }
            return Err(StoreError::ValueTooLarge { key: key.to_string(), size: value.len(), limit });
        }
        self.ensure_connected("put")?;
        let subject = self.subject(key);
        // 0 never stands for an expiry (it would read as expired).
        let expires_at = expiry(SystemTime::now(), ttl).map(|at| micros(at).max(1));
        for attempt in 1.. {
            let condition = match expect {
                Expect::Any => None,
                Expect::Absent | Expect::Revision(_) => {
                    let current = self.read(key, &subject).await?;
                    let live = current.live.as_ref().map(|entry| entry.revision);
                    if !expect.met_by(live) {
                        return Err(StoreError::Conflict { key: key.to_string(), current: live });
                    }
                    // The subject's last message, so the write lands only if nothing came in between: 0 when
                    // there is none, else the (expired) value or the marker the key's absence rests on.
                    Some(current.last.unwrap_or(0))
                }
            };
            let mut message = PublishMessage::build().payload(value.clone());
            if let Some(at) = expires_at {
                message = message.header(EXPIRES_HEADER, at.to_string());
            }
            if let Some(last) = condition {
                message = message.expected_last_subject_sequence(last);
            }
            match self.write(key, subject.clone(), message, value.len()).await? {
                Some(revision) => {
                    tracing::trace!(key, revision, "key-value put");
                    return Ok(revision);
                }
                None if attempt < MAX_ATTEMPTS => continue,
                None => break,
            }
        }
        let current = self.read(key, &subject).await?.live.map(|entry| entry.revision);
        Err(StoreError::Conflict { key: key.to_string(), current })
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<bool, StoreError> {
        check_key(key)?;
        self.ensure_connected("delete")?;
        let subject = self.subject(key);
        for attempt in 1.. {
            let current = self.read(key, &subject).await?;
            let live = current.live.as_ref().map(|entry| entry.revision);
            if !expect.met_by(live) {
                return Err(StoreError::Conflict { key: key.to_string(), current: live });
            }
            // Absent (never written, deleted, or expired): nothing to write.
            let Some(revision) = live else { return Ok(false) };
            let marker = PublishMessage::build()
                .payload(Bytes::new())
                .header(OPERATION_HEADER, "DEL")
                .expected_last_subject_sequence(revision);
            match self.write(key, subject.clone(), marker, 0).await? {
                Some(marker) => {
                    tracing::trace!(key, revision, marker, "key-value delete");
                    return Ok(true);
                }
                None if attempt < MAX_ATTEMPTS => continue,
                None => break,
            }
        }
        let current = self.read(key, &subject).await?.live.map(|entry| entry.revision);
        Err(StoreError::Conflict { key: key.to_string(), current })
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<KvPage, StoreError> {
        for (what, text) in [("prefix", Some(prefix)), ("after", after)] {
            if let Some(text) = text.filter(|t| t.len() > MAX_KEY_BYTES) {
                return Err(StoreError::BadKey {
                    key: text.chars().take(80).collect(),
                    reason: format!("a list {what} is at most {MAX_KEY_BYTES} bytes; this one has {}", text.len()),
                });
            }
        }
        let limit = limit.max(1);
        // The server filters by the prefix's whole segments; the rest of it is matched here.
        let filter = match prefix.rfind('/') {
            // No key has an empty segment, so no key starts with such a prefix.
            Some(end) if prefix[..end].split('/').any(str::is_empty) => return Ok(KvPage::default()),
            Some(end) => format!("{}{}.>", self.prefix, encode_key(&prefix[..end])),
            None => format!("{}>", self.prefix),
        };
        self.ensure_connected("list")?;
        let mut keys = Vec::new();
        let listing = async {
            let mut subjects = self.stream.info_with_subjects(&filter).await.map_err(|e| e.to_string())?;
            while let Some(subject) = subjects.next().await {
                let (subject, _) = subject.map_err(|e| e.to_string())?;
                let Some(key) = subject.strip_prefix(&self.prefix).and_then(decode_key) else {
                    tracing::debug!(bucket = %self.name, %subject, "skipping a key this store did not write");
                    continue;
                };
                if key.starts_with(prefix) && after.is_none_or(|after| key.as_str() > after) {
                    keys.push((key, subject));
                }
            }
            Ok::<_, String>(())
        };
        bounded_call(self.timeout * 4, listing).await.map_err(|e| self.unavailable("list", e))?;
        keys.sort_unstable();

        // Values for the page, in key order; keys found deleted or expired meanwhile are left out.
        let mut page = KvPage::default();
        let reads = keys.into_iter().map(|(key, subject)| async move {
            let current = self.read(&key, &subject).await;
            (key, current)
        });
        let mut reads = futures::stream::iter(reads).buffered(LIST_CONCURRENCY);
        while let Some((key, current)) = reads.next().await {
            let Some(entry) = current?.live else { continue };
            if page.entries.len() == limit {
                page.next = page.entries.last().map(|(key, _)| key.clone());
                break;
            }
            page.entries.push((key, entry));
        }
        Ok(page)
    }

    /// Removes the messages of `subject` up to and including `revision` (a purge bounded by the
    /// sequence): a later write of the key is never touched. Returns how many were removed.
    async fn remove_up_to(&self, subject: &str, revision: u64) -> Result<u64, String> {
        let purge = self.stream.purge().filter(subject).sequence(revision + 1).into_future();
        Ok(bounded_call(self.timeout, purge).await?.purged)
    }
}

/// Removes expired values and delete markers from the bucket every `interval`, while the store lives.
async fn sweep(bucket: Arc<Bucket>, interval: Duration) {
    let mut sweeper = Sweeper { bucket, tail: None, expiring: HashMap::new(), markers: HashMap::new() };
    loop {
        tokio::time::sleep(interval).await;
        if !matches!(sweeper.bucket.client.connection_state(), State::Connected) {
            continue;
        }
        match sweeper.once(interval).await {
            Ok(0) => {}
            Ok(removed) => {
                tracing::debug!(bucket = %sweeper.bucket.name, removed, "swept expired keys and delete markers")
            }
            Err(e) => {
                tracing::debug!(bucket = %sweeper.bucket.name, error = %e, "key-value sweep failed; it starts over");
                sweeper.restart();
            }
        }
    }
}

/// The sweeper's view of the bucket, kept up to date by a consumer that tails the bucket (headers only,
/// starting from the last message of every key).
struct Sweeper {
    bucket: Arc<Bucket>,
    /// The consumer and when it was created.
    tail: Option<(PullConsumer, Instant)>,
    /// Values written with a time-to-live, by subject: (revision, expiry in microseconds).
    expiring: HashMap<String, (u64, u64)>,
    /// Delete markers, by subject: their revision.
    markers: HashMap<String, u64>,
}

impl Sweeper {
    /// Drops the view, and the consumer (the next round starts with a full scan).
    fn restart(&mut self) {
        self.expiring.clear();
        self.markers.clear();
        if let Some((consumer, _)) = self.tail.take() {
            let (stream, name) = (self.bucket.stream.clone(), consumer.cached_info().name.clone());
            let timeout = self.bucket.timeout;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(timeout, stream.delete_consumer(&name)).await;
            });
        }
    }

    /// One round: reads what changed, then removes what expired and the delete markers.
    async fn once(&mut self, interval: Duration) -> Result<usize, String> {
        if self.tail.as_ref().is_some_and(|(_, since)| since.elapsed() >= RESCAN_EVERY) {
            self.restart();
        }
        let consumer = match &self.tail {
            Some((consumer, _)) => consumer.clone(),
            None => {
                let config = pull::Config {
                    description: Some("faas gateway: key-value sweeper".to_string()),
                    deliver_policy: DeliverPolicy::LastPerSubject,
                    ack_policy: AckPolicy::None,
                    filter_subject: format!("{}>", self.bucket.prefix),
                    headers_only: true,
                    // Gone by itself if this sweeper stops fetching (its store dropped, or the process died).
                    inactive_threshold: (interval * 10).max(Duration::from_secs(60)),
                    memory_storage: true,
                    num_replicas: 1,
                    ..Default::default()
                };
                let consumer = bounded_call(self.bucket.timeout, self.bucket.stream.create_consumer(config)).await?;
                self.tail = Some((consumer.clone(), Instant::now()));
                consumer
            }
        };
        loop {
            let fetch = consumer.fetch().max_messages(SWEEP_BATCH).messages();
            let batch = bounded_call(self.bucket.timeout, fetch).await?;
            let mut batch = std::pin::pin!(batch);
            let deadline = tokio::time::Instant::now() + self.bucket.timeout;
            let mut got = 0;
            loop {
                match tokio::time::timeout_at(deadline, batch.next()).await {
                    Ok(Some(Ok(message))) => {
                        got += 1;
                        self.observe(&message);
                    }
                    Ok(Some(Err(e))) => return Err(e.to_string()),
                    Ok(None) => break,
                    Err(_) => return Err(format!("fetch not finished within {:?}", self.bucket.timeout)),
                }
            }
            if got < SWEEP_BATCH {
                break;
            }
        }
        let now = micros(SystemTime::now());
        let expired: Vec<(String, u64)> = self
            .expiring
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(subject, (revision, _))| (subject.clone(), *revision))
            .collect();
        let markers: Vec<(String, u64)> = self.markers.iter().map(|(s, r)| (s.clone(), *r)).collect();
        let mut removed = 0;
        for (subject, revision) in expired {
            removed += self.bucket.remove_up_to(&subject, revision).await?;
            tracing::trace!(%subject, revision, "expired key-value entry removed");
            self.expiring.remove(&subject);
        }
        for (subject, revision) in markers {
            removed += self.bucket.remove_up_to(&subject, revision).await?;
            self.markers.remove(&subject);
        }
        Ok(removed as usize)
    }

    /// Takes note of one message of the bucket (they come in stream order, so the latest of a key wins).
    fn observe(&mut self, message: &jetstream::Message) {
        let Ok(info) = message.info() else { return };
        let revision = info.stream_sequence;
        let subject = message.subject.to_string();
        self.expiring.remove(&subject);
        self.markers.remove(&subject);
        match Kind::of(message.headers.as_ref()) {
            Ok(Kind::Marker) => {
                self.markers.insert(subject, revision);
            }
            Ok(Kind::Value { expires_at: Some(at) }) => {
                self.expiring.insert(subject, (revision, at));
            }
            Ok(Kind::Value { expires_at: None }) => {}
            Err(why) => tracing::warn!(%subject, revision, why, "key-value entry with an unreadable expiry is kept"),
        }
    }
}

impl JetStreamStore {
    /// The largest value [`kv_put`](KvStore::kv_put) accepts: [`JetStreamOptions::max_value_bytes`], or
    /// the server's `max_payload` less [`HEADROOM`] (room for the headers) if that is smaller. Larger
    /// values get [`StoreError::ValueTooLarge`] with this limit.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), faas_gateway_store::StoreError> {
    /// use faas_gateway_nats::{JetStreamOptions, JetStreamStore};
    ///
    /// let store = JetStreamStore::connect("nats://127.0.0.1:4222", JetStreamOptions::default()).await?;
    /// // A default nats-server (max_payload 1 MiB) and the default max_value_bytes (1 MiB):
    /// assert_eq!(store.kv_value_limit(), 1024 * 1024 - faas_gateway_nats::HEADROOM);
    /// # Ok(()) }
    /// ```
    pub fn kv_value_limit(&self) -> usize {
        self.kv.bucket.value_limit()
    }
}

#[async_trait]
impl KvStore for JetStreamStore {
    async fn kv_get(&self, key: &str) -> Result<Option<KvEntry>, StoreError> {
        self.kv.bucket.get(key).await
    }

    async fn kv_put(&self, key: &str, value: Bytes, expect: Expect, ttl: Option<Duration>) -> Result<u64, StoreError> {
        self.kv.bucket.put(key, value, expect, ttl).await
    }

    async fn kv_delete(&self, key: &str, expect: Expect) -> Result<bool, StoreError> {
        self.kv.bucket.delete(key, expect).await
    }

    async fn kv_list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<KvPage, StoreError> {
        self.kv.bucket.list(prefix, after, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_nats_keys() {
        let keys = [
            "a",
            "state/shop/cart:42",
            "runs/01J/steps/3",
            "a.b",
            "x=1&y=2",
            "with space",
            "*",
            ">",
            "ünï/cödé",
            "-_/Az09",
            "=3D",
            "%",
            "tail.",
            ".lead",
        ];
        for key in keys {
            assert!(check_key(key).is_ok(), "{key:?}");
            let encoded = encode_key(key);
            assert!(
                encoded.bytes().all(|b| is_plain(b) || b == b'.' || b == b'='),
                "{key:?} -> {encoded:?} has a byte NATS keys do not allow"
            );
            assert!(!encoded.starts_with('.') && !encoded.ends_with('.') && !encoded.contains(".."), "{encoded:?}");
            assert_eq!(decode_key(&encoded).as_deref(), Some(key), "{key:?} -> {encoded:?}");
        }
        assert_eq!(encode_key("state/shop/a.b c"), "state.shop.a=2Eb=20c");
        assert_eq!(encode_key("ü"), "=C3=BC");
        assert_eq!(encode_key("*>"), "=2A=3E");
    }

    #[test]
    fn only_what_encode_produces_decodes() {
        for bad in ["", ".", "a.", ".a", "a..b", "a=2e", "a=41", "a=2F", "a=4", "a=", "a b", "a*", "=FF", "a+b"] {
            assert_eq!(decode_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn prefixes_are_preserved() {
        let key = "state/shop/cart:42";
        for end in (1..=key.len()).filter(|&end| key.is_char_boundary(end)) {
            let prefix = &key[..end];
            assert!(encode_key(key).starts_with(&encode_key(prefix)), "{prefix:?}");
        }
        // Whole segments become whole tokens: the server-side filter of a listing.
        assert!(encode_key("state/shop/cart:42").starts_with(&format!("{}.", encode_key("state/shop"))));
        // Byte order of keys is not the order of their encodings, so listings sort decoded keys.
        assert!("a.x" < "a0" && encode_key("a.x") > encode_key("a0"));
    }

    #[test]
    fn markers_and_expiries_are_read_from_the_headers() {
        assert_eq!(Kind::of(None), Ok(Kind::Value { expires_at: None }));
        let mut headers = HeaderMap::new();
        headers.insert(EXPIRES_HEADER, "1700000000000000");
        assert_eq!(Kind::of(Some(&headers)), Ok(Kind::Value { expires_at: Some(1_700_000_000_000_000) }));
        headers.insert(OPERATION_HEADER, "DEL");
        assert_eq!(Kind::of(Some(&headers)), Ok(Kind::Marker));
        let mut headers = HeaderMap::new();
        headers.insert(OPERATION_HEADER, "PURGE");
        assert_eq!(Kind::of(Some(&headers)), Ok(Kind::Marker));
        let mut headers = HeaderMap::new();
        headers.insert(EXPIRES_HEADER, "soon");
        assert!(Kind::of(Some(&headers)).unwrap_err().contains("soon"));
    }

    /// The sweeper's removal never touches a write newer than the revision it decided on.
    #[tokio::test]
    async fn removal_is_bounded_by_the_revision() {
        let Some(server) = crate::testing::NatsServer::start().expect("nats-server") else {
            eprintln!("skipped: nats-server not found");
            return;
        };
        let options = JetStreamOptions { kv_sweep_interval: Duration::from_secs(3600), ..Default::default() };
        let store = JetStreamStore::connect(&server.url(), options).await.unwrap();
        let bucket = &store.kv.bucket;
        let subject = bucket.subject("bounded/k");
        let old = store.kv_put("bounded/k", Bytes::from_static(b"old"), Expect::Any, None).await.unwrap();
        let new = store.kv_put("bounded/k", Bytes::from_static(b"new"), Expect::Any, None).await.unwrap();
        assert_eq!(bucket.remove_up_to(&subject, old).await.unwrap(), 0, "the old value was already replaced");
        let entry = store.kv_get("bounded/k").await.unwrap().expect("the newer write survives");
        assert_eq!((entry.value.as_ref(), entry.revision), (&b"new"[..], new));
        assert_eq!(bucket.remove_up_to(&subject, new).await.unwrap(), 1);
        assert_eq!(store.kv_get("bounded/k").await.unwrap(), None);
        // A key whose last message is gone entirely is absent for conditions too, and takes a new revision.
        let again = store.kv_put("bounded/k", Bytes::from_static(b"again"), Expect::Absent, None).await.unwrap();
        assert!(again > new);
    }
}
