//! Azure Storage queues (Azurite): the client the queue trigger polls with.
//!
//! [`QueueClient`] speaks the Queue service REST API (`x-ms-version` [`API_VERSION`]) with Shared
//! Key authorization, against Azurite (`UseDevelopmentStorage=true`) or a real storage account: the
//! two differ only in the endpoint, which for Azurite is path-style (the account name is the first
//! path segment, so it appears twice in the canonicalized resource: `/devstoreaccount1/devstoreaccount1/q`).
//!
//! [`spawn_trigger`] is the queue trigger of the Functions host's queue extension (v5): it polls a
//! queue, hands each message to a handler, deletes it when the handler succeeds, lets it reappear
//! after the visibility timeout when it fails, and moves it to `<queue>-poison` after
//! [`TriggerOptions::max_dequeue`] (5) dequeues.
//!
//! ```no_run
//! # async fn demo() -> Result<(), faas_api::Error> {
//! use faas_emulator_azure::queue::QueueClient;
//! use std::time::Duration;
//!
//! let client = QueueClient::from_connection_string("UseDevelopmentStorage=true")?;
//! client.create_queue("orders").await?;
//! client.put("orders", r#"{"id": 1}"#).await?;
//! for m in client.receive("orders", 16, Duration::from_secs(30)).await? {
//!     println!("{} (dequeued {} times): {}", m.id, m.dequeue_count, m.text);
//!     client.delete("orders", &m).await?;
//! }
//! # Ok(()) }
//! ```

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use faas_api::{Error, ErrorKind};
use futures::future::BoxFuture;
use futures::FutureExt as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

/// The Queue service REST API version this client sends (`x-ms-version`).
pub const API_VERSION: &str = "2021-12-02";

/// Azurite's well-known development account name.
pub const DEVSTORE_ACCOUNT: &str = "devstoreaccount1";

/// Azurite's well-known development account key (public: it is the same for every Azurite).
pub const DEVSTORE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's default queue endpoint (path-style: the account is the first path segment).
pub const DEVSTORE_QUEUE_ENDPOINT: &str = "http://127.0.0.1:10001/devstoreaccount1";

/// The Storage limit on a message's text as sent (after base64 encoding): 64 KiB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The most messages one Get Messages call returns (a Storage limit).
pub const MAX_RECEIVE: u32 = 32;

/// A client of one storage account's Queue service. Cheap to clone (the HTTP connection pool and
/// credentials are shared).
///
/// ```
/// use faas_emulator_azure::queue::QueueClient;
/// let azurite = QueueClient::from_connection_string("UseDevelopmentStorage=true").unwrap();
/// assert_eq!(azurite.account(), "devstoreaccount1");
/// assert_eq!(azurite.endpoint(), "http://127.0.0.1:10001/devstoreaccount1");
///
/// let real = QueueClient::from_connection_string(
///     "DefaultEndpointsProtocol=https;AccountName=myaccount;AccountKey=a2V5;EndpointSuffix=core.windows.net",
/// )
/// .unwrap();
/// assert_eq!(real.endpoint(), "https://myaccount.queue.core.windows.net");
///
/// let e = QueueClient::from_connection_string("AccountName=myaccount").unwrap_err();
/// assert!(e.message().contains("AccountKey"), "{e}");
/// ```
#[derive(Clone)]
pub struct QueueClient {
    inner: Arc<Inner>,
}

struct Inner {
    account: String,
    key: Vec<u8>,
    /// The queue endpoint without a trailing slash, e.g. `http://127.0.0.1:10001/devstoreaccount1`.
    endpoint: String,
    /// The endpoint's path without a trailing slash (`/devstoreaccount1` for Azurite, `` for Azure).
    base_path: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for QueueClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueClient")
            .field("account", &self.inner.account)
            .field("endpoint", &self.inner.endpoint)
            .finish_non_exhaustive()
    }
}

/// One message received (or peeked) from a queue.
#[derive(Debug, Clone)]
pub struct QueueMessage {
    /// The message id (a GUID).
    pub id: String,
    /// The pop receipt of this dequeue, needed to delete the message (empty for peeked messages).
    pub pop_receipt: String,
    /// The message text: base64-decoded when the stored text is base64 of UTF-8 text (as
    /// [`QueueClient::put`] and the Functions queue extension write it), else as stored.
    pub text: String,
    /// How many times the message has been dequeued, this time included.
    pub dequeue_count: u64,
    /// When the message was put, ISO 8601 (`2025-06-01T10:00:00+00:00`).
    pub insertion_time: String,
    /// When the message expires, ISO 8601.
    pub expiration_time: String,
    /// When the message becomes visible again, ISO 8601 (empty for peeked messages).
    pub next_visible_time: String,
}

impl QueueClient {
    /// A client from a storage connection string: `UseDevelopmentStorage=true` (Azurite's
    /// well-known account at [`DEVSTORE_QUEUE_ENDPOINT`]), or
    /// `DefaultEndpointsProtocol=..;AccountName=..;AccountKey=..` with either `QueueEndpoint=..`
    /// or `EndpointSuffix=..` (default `core.windows.net`, giving `https://<account>.queue.<suffix>`).
    /// Keys are case-insensitive. Errors (bad input) name the missing or malformed key.
    ///
    /// ```
    /// use faas_emulator_azure::queue::QueueClient;
    /// let c = QueueClient::from_connection_string(
    ///     "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;\
    ///      AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;\
    ///      QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1/;",
    /// )
    /// .unwrap();
    /// assert_eq!(c.endpoint(), "http://127.0.0.1:10001/devstoreaccount1");
    ///
    /// let e = QueueClient::from_connection_string("AccountKey=a2V5").unwrap_err();
    /// assert!(e.message().contains("AccountName"), "{e}");
    /// ```
    pub fn from_connection_string(s: &str) -> Result<QueueClient, Error> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(Error::bad_input(format!(
                    "storage connection string: `{}` is not Key=Value",
                    part.split(&['=', ' '][..]).next().unwrap_or(part)
                )));
            };
            pairs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let get = |k: &str| pairs.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return QueueClient::new(DEVSTORE_ACCOUNT, DEVSTORE_KEY, DEVSTORE_QUEUE_ENDPOINT);
        }
        let account = get("accountname").filter(|v| !v.is_empty()).ok_or_else(|| {
            Error::bad_input("storage connection string has no AccountName (nor UseDevelopmentStorage=true)")
        })?;
        let key = match get("accountkey").filter(|v| !v.is_empty()) {
            Some(key) => key,
            None if get("sharedaccesssignature").is_some() => {
                return Err(Error::bad_input(
                    "storage connection string has a SharedAccessSignature but no AccountKey: only Shared Key \
                     (AccountKey) authorization is supported",
                ))
            }
            None => return Err(Error::bad_input("storage connection string has no AccountKey")),
        };
        let endpoint = match get("queueendpoint").filter(|v| !v.is_empty()) {
            Some(endpoint) => endpoint.to_string(),
            None => {
                let protocol = get("defaultendpointsprotocol").unwrap_or("https");
                let suffix = get("endpointsuffix").unwrap_or("core.windows.net");
                format!("{protocol}://{account}.queue.{suffix}")
            }
        };
        QueueClient::new(account, key, &endpoint)
    }

    /// A client of `account` with its base64 `key`, at the queue `endpoint` (`http(s)://host[:port][/path]`).
    ///
    /// ```
    /// use faas_emulator_azure::queue::QueueClient;
    /// let c = QueueClient::new("acct", "a2V5", "http://localhost:10001/acct/").unwrap();
    /// assert_eq!(c.endpoint(), "http://localhost:10001/acct");
    /// assert!(QueueClient::new("acct", "not base64!", "http://localhost:10001").is_err());
    /// assert!(QueueClient::new("acct", "a2V5", "ftp://localhost").is_err());
    /// ```
    pub fn new(account: &str, key: &str, endpoint: &str) -> Result<QueueClient, Error> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|e| Error::bad_input(format!("storage AccountKey is not base64: {e}")))?;
        let url = reqwest::Url::parse(endpoint.trim())
            .map_err(|e| Error::bad_input(format!("storage QueueEndpoint `{endpoint}` is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::bad_input(format!("storage QueueEndpoint `{endpoint}` is not an http(s) URL")));
        }
        if url.query().is_some() {
            return Err(Error::bad_input(format!("storage QueueEndpoint `{endpoint}` has a query")));
        }
        let endpoint = url.as_str().trim_end_matches('/').to_string();
        let base_path = url.path().trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::unavailable(format!("building the HTTP client: {e}")))?;
        Ok(QueueClient { inner: Arc::new(Inner { account: account.to_string(), key, endpoint, base_path, http }) })
    }

    /// The storage account name.
    pub fn account(&self) -> &str {
        &self.inner.account
    }

    /// The queue endpoint, without a trailing slash.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// Creates `queue` (Create Queue, `PUT /{queue}`); Ok when it was created (201) and when it
    /// already exists (204).
    pub async fn create_queue(&self, queue: &str) -> Result<(), Error> {
        check_queue_name(queue)?;
        let path = format!("/{queue}");
        let (status, _) = self.call("PUT", &path, &[], Some(String::new())).await?;
        tracing::debug!(queue, status, "created queue (204: it existed)");
        Ok(())
    }

    /// Deletes `queue` and its messages (Delete Queue, `DELETE /{queue}`).
    pub async fn delete_queue(&self, queue: &str) -> Result<(), Error> {
        check_queue_name(queue)?;
        self.call("DELETE", &format!("/{queue}"), &[], None).await?;
        Ok(())
    }

    /// Deletes every message of `queue` (Clear Messages, `DELETE /{queue}/messages`).
    pub async fn clear(&self, queue: &str) -> Result<(), Error> {
        check_queue_name(queue)?;
        self.call("DELETE", &format!("/{queue}/messages"), &[], None).await?;
        Ok(())
    }

    /// Puts a message (Put Message, `POST /{queue}/messages`) whose text is `text` base64-encoded,
    /// as the Functions queue extension (v5, `messageEncoding: base64`, the default) expects. The
    /// encoded text must fit the Storage limit of 64 KiB ([`MAX_MESSAGE_BYTES`]), so `text` may be
    /// up to 48 KiB; a longer one is bad input, before anything is sent.
    pub async fn put(&self, queue: &str, text: &str) -> Result<(), Error> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        if encoded.len() > MAX_MESSAGE_BYTES {
            return Err(Error::bad_input(format!(
                "queue message of {} bytes is {} bytes base64-encoded, over the Storage limit of {MAX_MESSAGE_BYTES} \
                 (at most {} bytes of text)",
                text.len(),
                encoded.len(),
                MAX_MESSAGE_BYTES / 4 * 3
            ))
            .with_type("MessageTooLarge"));
        }
        self.put_raw(queue, &encoded).await
    }

    /// Puts a message whose stored text is `text` as it is (XML-escaped on the wire, not
    /// base64-encoded): what a producer configured with `messageEncoding: none` sends. At most
    /// [`MAX_MESSAGE_BYTES`] bytes (bad input before sending).
    pub async fn put_raw(&self, queue: &str, text: &str) -> Result<(), Error> {
        check_queue_name(queue)?;
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(Error::bad_input(format!(
                "queue message of {} bytes is over the Storage limit of {MAX_MESSAGE_BYTES} bytes",
                text.len()
            ))
            .with_type("MessageTooLarge"));
        }
        let body = format!("<QueueMessage><MessageText>{}</MessageText></QueueMessage>", xml_escape(text));
        self.call("POST", &format!("/{queue}/messages"), &[], Some(body)).await?;
        tracing::debug!(queue, bytes = text.len(), "put queue message");
        Ok(())
    }

    /// Dequeues up to `max` (1 to 32) messages (Get Messages), hiding them for `visibility`
    /// (rounded up to whole seconds, at least 1 s, at most 7 days). An empty list when the queue
    /// has no visible message.
    pub async fn receive(&self, queue: &str, max: u32, visibility: Duration) -> Result<Vec<QueueMessage>, Error> {
        Ok(self.receive_raw(queue, max, visibility).await?.into_iter().map(|(m, _)| m).collect())
    }

    /// [`receive`](Self::receive), with each message's text also as stored (before decoding).
    async fn receive_raw(
        &self,
        queue: &str,
        max: u32,
        visibility: Duration,
    ) -> Result<Vec<(QueueMessage, String)>, Error> {
        check_queue_name(queue)?;
        check_max(max)?;
        let secs = visibility.as_secs() + u64::from(visibility.subsec_nanos() > 0);
        let secs = secs.max(1);
        if secs > 7 * 24 * 3600 {
            return Err(Error::bad_input(format!(
                "visibility timeout of {secs} s is over the Storage limit of 7 days"
            )));
        }
        let query = [("numofmessages", max.to_string()), ("visibilitytimeout", secs.to_string())];
        let (_, body) = self.call("GET", &format!("/{queue}/messages"), &query, None).await?;
        let messages = parse_messages(&body)?;
        if !messages.is_empty() {
            tracing::debug!(queue, count = messages.len(), "received queue messages");
        }
        Ok(messages)
    }

    /// Looks at up to `max` (1 to 32) visible messages without dequeuing them (Peek Messages):
    /// their `pop_receipt` and `next_visible_time` are empty and their dequeue count unchanged.
    pub async fn peek(&self, queue: &str, max: u32) -> Result<Vec<QueueMessage>, Error> {
        check_queue_name(queue)?;
        check_max(max)?;
        let query = [("numofmessages", max.to_string()), ("peekonly", "true".to_string())];
        let (_, body) = self.call("GET", &format!("/{queue}/messages"), &query, None).await?;
        Ok(parse_messages(&body)?.into_iter().map(|(m, _)| m).collect())
    }

    /// Deletes a received message (Delete Message, `DELETE /{queue}/messages/{id}?popreceipt=..`).
    /// A stale pop receipt (the message became visible and was dequeued again) is not found
    /// (`MessageNotFound`).
    pub async fn delete(&self, queue: &str, m: &QueueMessage) -> Result<(), Error> {
        check_queue_name(queue)?;
        let path = format!("/{queue}/messages/{}", percent_encode(&m.id));
        self.call("DELETE", &path, &[("popreceipt", m.pop_receipt.clone())], None).await?;
        tracing::debug!(queue, id = %m.id, "deleted queue message");
        Ok(())
    }

    /// Sends one Shared Key signed request and returns its status and body as they are, whatever
    /// the status (only a transport failure is an error). `path` is relative to the queue
    /// endpoint (`/{queue}/messages`), already percent-encoded where needed; `query` values are
    /// not encoded. For what the typed methods do not cover, and for looking at the wire.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), faas_api::Error> {
    /// use faas_emulator_azure::queue::QueueClient;
    /// let c = QueueClient::from_connection_string("UseDevelopmentStorage=true")?;
    /// let (status, xml) = c.signed_request("GET", "/orders/messages", &[("peekonly", "true")], None).await?;
    /// assert_eq!(status, 200);
    /// println!("{xml}");
    /// # Ok(()) }
    /// ```
    pub async fn signed_request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<(u16, String), Error> {
        let query: Vec<(&str, String)> = query.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let (status, _, body) = self.send(method, path, &query, body.map(str::to_string)).await?;
        Ok((status, body))
    }

    /// [`send`](Self::send), with a non-success status turned into an error.
    async fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<String>,
    ) -> Result<(u16, String), Error> {
        let (status, error_code, body) = self.send(method, path, query, body).await?;
        if (200..300).contains(&status) {
            return Ok((status, body));
        }
        Err(storage_error(method, &format!("{}{path}", self.inner.base_path), status, error_code.as_deref(), &body))
    }

    /// Signs and sends one request; returns the status, the `x-ms-error-code` header and the body.
    async fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<String>,
    ) -> Result<(u16, Option<String>, String), Error> {
        let inner = &self.inner;
        let mut url = format!("{}{path}", inner.endpoint);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&percent_encode(k));
            url.push('=');
            url.push_str(&percent_encode(v));
        }
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let content_length = body.as_ref().map(|b| b.len().to_string()).unwrap_or_default();
        let content_type = if body.as_ref().is_some_and(|b| !b.is_empty()) { "application/xml" } else { "" };
        let headers = [
            ("Content-Length", content_length.as_str()),
            ("Content-Type", content_type),
            ("x-ms-date", date.as_str()),
            ("x-ms-version", API_VERSION),
        ];
        let query_ref: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let resource = canonicalized_resource(&inner.account, &format!("{}{path}", inner.base_path), &query_ref);
        let signature = shared_key_signature(&inner.key, &string_to_sign(method, &headers, &resource));
        let method_value = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::bad_input(format!("`{method}` is not an HTTP method")))?;
        let mut request = inner
            .http
            .request(method_value, &url)
            .header("x-ms-date", &date)
            .header("x-ms-version", API_VERSION)
            .header("Authorization", format!("SharedKey {}:{signature}", inner.account));
        if !content_type.is_empty() {
            request = request.header("Content-Type", content_type);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(|e| transport_error(&inner.endpoint, method, path, e))?;
        let status = response.status().as_u16();
        let error_code = response.headers().get("x-ms-error-code").and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = response.text().await.map_err(|e| transport_error(&inner.endpoint, method, path, e))?;
        tracing::trace!(method, path, status, "storage request");
        Ok((status, error_code, text))
    }
}

/// The Shared Key string-to-sign of a Blob, Queue or File service request (version 2009-09-19
/// and later): the verb, the twelve standard headers in their fixed order (`Content-Encoding`,
/// `Content-Language`, `Content-Length` (empty when 0), `Content-MD5`, `Content-Type`, `Date`,
/// `If-Modified-Since`, `If-Match`, `If-None-Match`, `If-Unmodified-Since`, `Range`; absent ones
/// empty), each followed by a newline, then the canonicalized `x-ms-` headers (lowercase names,
/// sorted, `name:value\n`), then the canonicalized resource ([`canonicalized_resource`]).
/// `headers` are matched case-insensitively; any others are ignored.
///
/// ```
/// use faas_emulator_azure::queue::{canonicalized_resource, string_to_sign};
/// // Azure's documented example (Authorize with Shared Key), for a path-style URL.
/// let resource = canonicalized_resource(
///     "myaccount",
///     "/myaccount/mycontainer",
///     &[("restype", "container"), ("comp", "metadata"), ("timeout", "20")],
/// );
/// assert_eq!(resource, "/myaccount/myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20");
/// let sts = string_to_sign(
///     "GET",
///     &[("x-ms-version", "2009-09-19"), ("x-ms-date", "Sun, 11 Oct 2009 21:49:13 GMT"), ("Content-Length", "0")],
///     &resource,
/// );
/// assert_eq!(
///     sts,
///     "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Sun, 11 Oct 2009 21:49:13 GMT\nx-ms-version:2009-09-19\n\
///      /myaccount/myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20"
/// );
/// ```
pub fn string_to_sign(method: &str, headers: &[(&str, &str)], canonicalized_resource: &str) -> String {
    const STANDARD: [&str; 11] = [
        "content-encoding",
        "content-language",
        "content-length",
        "content-md5",
        "content-type",
        "date",
        "if-modified-since",
        "if-match",
        "if-none-match",
        "if-unmodified-since",
        "range",
    ];
    let mut out = String::with_capacity(256);
    out.push_str(&method.to_ascii_uppercase());
    out.push('\n');
    for name in STANDARD {
        let value = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()).unwrap_or("");
        if !(name == "content-length" && value == "0") {
            out.push_str(value);
        }
        out.push('\n');
    }
    let mut ms: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    ms.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in ms {
        out.push_str(&k);
        out.push(':');
        out.push_str(&v);
        out.push('\n');
    }
    out.push_str(canonicalized_resource);
    out
}

/// The Shared Key canonicalized resource (version 2009-09-19 and later): `/` + the account name +
/// the request URI's (encoded) path, then for each query parameter, sorted by lowercase name,
/// `\nname:value` with the value not encoded (several values of one name joined by commas, sorted).
/// For a path-style (Azurite) URL the path starts with the account, so it appears twice.
///
/// ```
/// use faas_emulator_azure::queue::canonicalized_resource;
/// assert_eq!(
///     canonicalized_resource("devstoreaccount1", "/devstoreaccount1/orders/messages", &[("visibilitytimeout", "30"), ("numofmessages", "1")]),
///     "/devstoreaccount1/devstoreaccount1/orders/messages\nnumofmessages:1\nvisibilitytimeout:30"
/// );
/// assert_eq!(canonicalized_resource("myaccount", "/orders", &[]), "/myaccount/orders");
/// assert_eq!(canonicalized_resource("myaccount", "", &[]), "/myaccount/");
/// ```
pub fn canonicalized_resource(account: &str, path: &str, query: &[(&str, &str)]) -> String {
    let mut out = format!("/{account}{}", if path.is_empty() { "/" } else { path });
    let mut params: Vec<(String, Vec<&str>)> = Vec::new();
    for (k, v) in query {
        let k = k.to_ascii_lowercase();
        match params.iter_mut().find(|(name, _)| *name == k) {
            Some((_, values)) => values.push(v),
            None => params.push((k, vec![v])),
        }
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, mut values) in params {
        values.sort_unstable();
        out.push('\n');
        out.push_str(&k);
        out.push(':');
        out.push_str(&values.join(","));
    }
    out
}

/// The Shared Key signature: base64 of HMAC-SHA256 of the UTF-8 `string_to_sign` keyed with the
/// (base64-decoded) account key. The `Authorization` header is `SharedKey <account>:<signature>`.
///
/// ```
/// use base64::Engine as _;
/// use faas_emulator_azure::queue::{shared_key_signature, DEVSTORE_KEY};
/// let key = base64::engine::general_purpose::STANDARD.decode(DEVSTORE_KEY).unwrap();
/// let sts = "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Sun, 01 Jun 2025 10:00:00 GMT\nx-ms-version:2021-12-02\n\
///            /devstoreaccount1/devstoreaccount1/orders/messages\nnumofmessages:1\nvisibilitytimeout:30";
/// // The value node's crypto.createHmac("sha256", key).update(sts).digest("base64") gives (as Azurite computes it).
/// assert_eq!(shared_key_signature(&key, sts), "XQ87Ad7NMdpCeuSxLjsV+U9rzzF5HSJXML01f9EvCtk=");
/// ```
pub fn shared_key_signature(key: &[u8], string_to_sign: &str) -> String {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Converts a Storage time (RFC 1123, `Sun, 01 Jun 2025 10:00:00 GMT`) to ISO 8601 with an explicit
/// UTC offset (`2025-06-01T10:00:00+00:00`); a time that does not parse is returned as it is.
///
/// ```
/// use faas_emulator_azure::queue::storage_time_to_iso8601;
/// assert_eq!(storage_time_to_iso8601("Sun, 01 Jun 2025 10:00:00 GMT"), "2025-06-01T10:00:00+00:00");
/// assert_eq!(storage_time_to_iso8601("soon"), "soon");
/// ```
pub fn storage_time_to_iso8601(time: &str) -> String {
    match chrono::DateTime::parse_from_rfc2822(time.trim()) {
        Ok(t) => t.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
        Err(_) => time.to_string(),
    }
}

/// Decodes a stored message text: the UTF-8 text it is the base64 of, else the text as stored.
///
/// ```
/// use faas_emulator_azure::queue::decode_message_text;
/// assert_eq!(decode_message_text("aGVsbG8="), "hello");
/// assert_eq!(decode_message_text("{\"a\": 1}"), "{\"a\": 1}");
/// ```
pub fn decode_message_text(stored: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(stored.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| stored.to_string())
}

fn check_queue_name(queue: &str) -> Result<(), Error> {
    let ok = (3..=63).contains(&queue.len())
        && queue.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !queue.starts_with('-')
        && !queue.ends_with('-')
        && !queue.contains("--");
    if ok {
        Ok(())
    } else {
        Err(Error::bad_input(format!(
            "`{queue}` is not a valid queue name (3 to 63 lowercase letters, digits and single hyphens, \
             starting and ending with a letter or digit)"
        ))
        .with_type("InvalidResourceName"))
    }
}

fn check_max(max: u32) -> Result<(), Error> {
    if (1..=MAX_RECEIVE).contains(&max) {
        Ok(())
    } else {
        Err(Error::bad_input(format!("numofmessages must be 1 to {MAX_RECEIVE}, not {max}")))
    }
}

fn transport_error(endpoint: &str, method: &str, path: &str, e: reqwest::Error) -> Error {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        Error::timeout(format!("Azure Storage queue endpoint {endpoint}: {method} {path} timed out: {detail}"))
    } else {
        Error::unavailable(format!(
            "Azure Storage queue endpoint {endpoint} is unreachable ({method} {path}): {detail}"
        ))
    }
}

/// Maps a Storage error response to a portable error whose type is the Storage error code.
fn storage_error(method: &str, path: &str, status: u16, header_code: Option<&str>, body: &str) -> Error {
    let code = xml_tag(body, "Code").map(xml_unescape).or(header_code.map(str::to_string));
    let message = xml_tag(body, "Message")
        .map(xml_unescape)
        .map(|m| m.lines().next().unwrap_or("").trim().to_string())
        .filter(|m| !m.is_empty());
    let kind = match status {
        409 => ErrorKind::BadInput,
        500 => ErrorKind::BackendUnavailable,
        503 if code.as_deref() == Some("ServerBusy") => ErrorKind::Throttled,
        _ => ErrorKind::from_status(status),
    };
    let text = format!(
        "Azure Storage {method} {path}: {status} {}: {}",
        code.as_deref().unwrap_or("(no error code)"),
        message.as_deref().unwrap_or("(no message)")
    );
    let e = Error::new(kind, text);
    match code {
        Some(code) => e.with_type(code),
        None => e,
    }
}

fn parse_messages(xml: &str) -> Result<Vec<(QueueMessage, String)>, Error> {
    if !xml.contains("<QueueMessagesList") {
        return Err(Error::unavailable(format!(
            "Azure Storage answered Get Messages with no QueueMessagesList: {}",
            &xml[..xml.len().min(200)]
        )));
    }
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<QueueMessage>") {
        let after = &rest[start + "<QueueMessage>".len()..];
        let end = after.find("</QueueMessage>").unwrap_or(after.len());
        let one = &after[..end];
        rest = &after[end..];
        let field = |name: &str| xml_tag(one, name).map(xml_unescape).unwrap_or_default();
        let raw = field("MessageText");
        let message = QueueMessage {
            id: field("MessageId"),
            pop_receipt: field("PopReceipt"),
            text: decode_message_text(&raw),
            dequeue_count: field("DequeueCount").trim().parse().unwrap_or(0),
            insertion_time: storage_time_to_iso8601(&field("InsertionTime")),
            expiration_time: storage_time_to_iso8601(&field("ExpirationTime")),
            next_visible_time: storage_time_to_iso8601(&field("TimeNextVisible")),
        };
        out.push((message, raw));
    }
    Ok(out)
}

/// The text inside the first `<name>..</name>` (or `<name/>`) of `xml`.
fn xml_tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    if let Some(i) = xml.find(&open) {
        let start = i + open.len();
        let end = xml[start..].find(&format!("</{name}>"))?;
        return Some(&xml[start..start + end]);
    }
    xml.find(&format!("<{name}/>")).map(|_| "")
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

fn xml_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 12) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Percent-encodes everything but the URI unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a queue trigger calls for each message: Ok deletes the message, Err leaves it to be
/// retried. Build one from an async closure with [`queue_handler`].
pub type QueueHandler = Arc<dyn Fn(QueueMessage) -> BoxFuture<'static, Result<(), Error>> + Send + Sync>;

/// Wraps an async closure as a [`QueueHandler`].
///
/// ```
/// use faas_emulator_azure::queue::{queue_handler, QueueHandler};
/// let handler: QueueHandler = queue_handler(|m| async move {
///     println!("got {}", m.text);
///     Ok(())
/// });
/// # drop(handler);
/// ```
pub fn queue_handler<F, Fut>(f: F) -> QueueHandler
where
    F: Fn(QueueMessage) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    Arc::new(move |m| f(m).boxed())
}

/// How a queue trigger polls and retries ([`spawn_trigger_with`]).
///
/// ```
/// use faas_emulator_azure::queue::TriggerOptions;
/// use std::time::Duration;
/// let o = TriggerOptions::default();
/// assert_eq!((o.max_dequeue, o.batch_size), (5, 16));
/// assert_eq!(o.max_poll_interval, Duration::from_secs(1));
/// let fast = TriggerOptions { visibility: Duration::from_secs(1), ..TriggerOptions::default() };
/// # drop(fast);
/// ```
#[derive(Debug, Clone)]
pub struct TriggerOptions {
    /// How long a received message stays hidden: the time the handler has before the message can
    /// be delivered again, and so the delay before a failed message is retried (default 30 s;
    /// whole seconds, at least 1). The Functions host instead holds a renewed 10-minute lease and
    /// makes a failed message visible again after its `visibilityTimeout` (default 0).
    pub visibility: Duration,
    /// After this many failed deliveries a message is moved to `<queue>-poison` (the Functions
    /// default `maxDequeueCount`, 5). A message received with a higher dequeue count (its earlier
    /// deliveries did not finish) is moved without calling the handler.
    pub max_dequeue: u64,
    /// The longest wait between polls of an empty (or unreachable) queue; polls back off
    /// exponentially from 100 ms up to it. The Functions host's `maxPollingInterval` defaults to
    /// 1 minute in Azure; this local host defaults to 1 s so that messages are picked up quickly.
    pub max_poll_interval: Duration,
    /// How many messages one poll receives and handles concurrently (the Functions `batchSize`,
    /// 16; at most 32).
    pub batch_size: u32,
}

impl Default for TriggerOptions {
    fn default() -> Self {
        TriggerOptions {
            visibility: Duration::from_secs(30),
            max_dequeue: 5,
            max_poll_interval: Duration::from_secs(1),
            batch_size: 16,
        }
    }
}

/// Starts a queue trigger on `queue` with the default [`TriggerOptions`]: see [`spawn_trigger_with`].
/// Must be called within a Tokio runtime.
///
/// ```no_run
/// # async fn demo() -> Result<(), faas_api::Error> {
/// use faas_emulator_azure::queue::{queue_handler, spawn_trigger, QueueClient};
/// let client = QueueClient::from_connection_string("UseDevelopmentStorage=true")?;
/// let trigger = spawn_trigger(client, "orders".into(), queue_handler(|m| async move {
///     println!("order {}: {}", m.id, m.text);
///     Ok(())
/// }));
/// // ... later:
/// trigger.abort();
/// # Ok(()) }
/// ```
pub fn spawn_trigger(client: QueueClient, queue: String, handler: QueueHandler) -> tokio::task::JoinHandle<()> {
    spawn_trigger_with(client, queue, TriggerOptions::default(), handler)
}

/// Starts a queue trigger: a task that polls `queue` (creating it if missing) and calls `handler`
/// for each message, up to [`TriggerOptions::batch_size`] at a time. A message whose handler
/// returns Ok is deleted; one whose handler returns Err (or panics) is left to reappear after
/// [`TriggerOptions::visibility`], and after [`TriggerOptions::max_dequeue`] failed deliveries it
/// is copied (its stored text unchanged) to `<queue>-poison` and deleted, as the Functions host
/// does. An empty queue is polled with an exponential backoff up to
/// [`TriggerOptions::max_poll_interval`]; an unreachable endpoint or any other Storage error is
/// logged once (and its end logged) and retried with the same backoff. The task runs until it is
/// aborted (abort the returned handle; handlers in flight are dropped).
pub fn spawn_trigger_with(
    client: QueueClient,
    queue: String,
    options: TriggerOptions,
    handler: QueueHandler,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run_trigger(client, queue, options, handler))
}

async fn run_trigger(client: QueueClient, queue: String, options: TriggerOptions, handler: QueueHandler) {
    let max_interval = options.max_poll_interval.max(Duration::from_millis(1));
    let min_interval = Duration::from_millis(100).min(max_interval);
    let batch = options.batch_size.clamp(1, MAX_RECEIVE);
    let mut delay = min_interval;
    let mut created = false;
    let mut failing: Option<String> = None;
    tracing::info!(queue = %queue, endpoint = client.endpoint(), "queue trigger started");
    loop {
        let received = if created {
            client.receive_raw(&queue, batch, options.visibility).await
        } else {
            match client.create_queue(&queue).await {
                Ok(()) => {
                    created = true;
                    continue;
                }
                Err(e) => Err(e),
            }
        };
        let messages = match received {
            Ok(messages) => {
                if let Some(previous) = failing.take() {
                    tracing::info!(queue = %queue, previous = %previous, "queue trigger: the queue is reachable again");
                }
                messages
            }
            Err(e) => {
                if e.error_type() == "QueueNotFound" {
                    created = false;
                }
                let summary = format!("{}: {}", e.error_type(), e.message());
                if failing.as_deref() != Some(summary.as_str()) {
                    tracing::warn!(queue = %queue, error = %e, "queue trigger: polling failed; retrying");
                    failing = Some(summary);
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(max_interval);
                continue;
            }
        };
        if messages.is_empty() {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(max_interval);
            continue;
        }
        delay = min_interval;
        let work = messages.into_iter().map(|(m, raw)| process(&client, &queue, &options, &handler, m, raw));
        futures::future::join_all(work).await;
    }
}

async fn process(
    client: &QueueClient,
    queue: &str,
    options: &TriggerOptions,
    handler: &QueueHandler,
    m: QueueMessage,
    raw: String,
) {
    if m.dequeue_count > options.max_dequeue {
        move_to_poison(client, queue, &m, &raw).await;
        return;
    }
    let outcome = match AssertUnwindSafe(handler(m.clone())).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            Err(Error::crash(format!("the queue handler panicked: {what}")))
        }
    };
    match outcome {
        Ok(()) => {
            if let Err(e) = client.delete(queue, &m).await {
                tracing::warn!(queue, id = %m.id, error = %e, "queue trigger: deleting a handled message failed");
            }
        }
        Err(e) if m.dequeue_count >= options.max_dequeue => {
            tracing::warn!(queue, id = %m.id, dequeue_count = m.dequeue_count, error = %e, "queue trigger: handler failed");
            move_to_poison(client, queue, &m, &raw).await;
        }
        Err(e) => {
            tracing::warn!(
                queue, id = %m.id, dequeue_count = m.dequeue_count, error = %e,
                retry_in = ?options.visibility, "queue trigger: handler failed; the message will be retried"
            );
        }
    }
}

async fn move_to_poison(client: &QueueClient, queue: &str, m: &QueueMessage, raw: &str) {
    let poison = format!("{queue}-poison");
    let moved = async {
        client.create_queue(&poison).await?;
        client.put_raw(&poison, raw).await?;
        client.delete(queue, m).await
    }
    .await;
    match moved {
        Ok(()) => tracing::warn!(
            queue, poison = %poison, id = %m.id, dequeue_count = m.dequeue_count,
            "queue trigger: message moved to the poison queue"
        ),
        Err(e) => tracing::error!(
            queue, poison = %poison, id = %m.id, error = %e,
            "queue trigger: moving a message to the poison queue failed; it will be retried"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_messages_list() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?><QueueMessagesList><QueueMessage><MessageId>a-1</MessageId><InsertionTime>Sun, 01 Jun 2025 10:00:00 GMT</InsertionTime><ExpirationTime>Sun, 08 Jun 2025 10:00:00 GMT</ExpirationTime><PopReceipt>AgAAAA+/=</PopReceipt><TimeNextVisible>Sun, 01 Jun 2025 10:00:30 GMT</TimeNextVisible><DequeueCount>2</DequeueCount><MessageText>PGI+ICYg</MessageText></QueueMessage><QueueMessage><MessageId>b</MessageId><DequeueCount>1</DequeueCount><MessageText>&lt;raw &amp; text&gt;</MessageText></QueueMessage></QueueMessagesList>"#;
        let ms = parse_messages(xml).unwrap();
        assert_eq!(ms.len(), 2);
        let (m, raw) = &ms[0];
        assert_eq!((m.id.as_str(), m.pop_receipt.as_str(), m.dequeue_count), ("a-1", "AgAAAA+/=", 2));
        assert_eq!((m.text.as_str(), raw.as_str()), ("<b> & ", "PGI+ICYg"));
        assert_eq!(m.insertion_time, "2025-06-01T10:00:00+00:00");
        assert_eq!(m.expiration_time, "2025-06-08T10:00:00+00:00");
        assert_eq!(m.next_visible_time, "2025-06-01T10:00:30+00:00");
        assert_eq!(ms[1].0.text, "<raw & text>");
        assert!(parse_messages("<QueueMessagesList/>").unwrap().is_empty());
        assert!(parse_messages("nope").is_err());
    }

    #[test]
    fn maps_storage_errors() {
        let body = "<?xml version=\"1.0\"?><Error><Code>QueueNotFound</Code><Message>The specified queue does not exist.\nRequestId:x\nTime:y</Message></Error>";
        let e = storage_error("GET", "/acct/q/messages", 404, None, body);
        assert_eq!((e.kind(), e.error_type()), (ErrorKind::NotFound, "QueueNotFound"));
        assert_eq!(
            e.message(),
            "Azure Storage GET /acct/q/messages: 404 QueueNotFound: The specified queue does not exist."
        );
        let e = storage_error("GET", "/q", 403, Some("AuthenticationFailed"), "");
        assert_eq!((e.kind(), e.error_type()), (ErrorKind::Unauthorized, "AuthenticationFailed"));
        let e = storage_error("GET", "/q", 503, Some("ServerBusy"), "");
        assert_eq!(e.kind(), ErrorKind::Throttled);
    }

    #[test]
    fn escapes_and_unescapes_xml() {
        let s = "a<b>&\"c\"'d' é 😀";
        assert_eq!(xml_unescape(&xml_escape(s)), s);
        assert_eq!(xml_unescape("&#65;&#x42;&bogus; & x"), "AB&bogus; & x");
    }

    #[test]
    fn validates_queue_names_and_connection_strings() {
        assert!(check_queue_name("orders-1").is_ok());
        for bad in ["ab", "Orders", "-a-", "a--b", "a_b"] {
            assert_eq!(check_queue_name(bad).unwrap_err().kind(), ErrorKind::BadInput, "{bad}");
        }
        let e = QueueClient::from_connection_string("AccountName=a;QueueEndpoint=http://x").unwrap_err();
        assert!(e.message().contains("AccountKey"));
        let e = QueueClient::from_connection_string("AccountName=a;SharedAccessSignature=sv=1").unwrap_err();
        assert!(e.message().contains("AccountKey"));
        assert!(QueueClient::from_connection_string("garbage").unwrap_err().message().contains("garbage"));
        let c = QueueClient::from_connection_string(
            "accountname=a;accountkey=a2V5;defaultendpointsprotocol=http;endpointsuffix=example.net",
        )
        .unwrap();
        assert_eq!(c.endpoint(), "http://a.queue.example.net");
        assert_eq!(c.inner.base_path, "");
    }
}
