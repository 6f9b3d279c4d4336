//! Subscriptions in the CloudEvents Subscriptions API shape (https://github.com/cloudevents/spec/blob/main/subscriptions/spec.md), their sinks and their
//! delivery policies.
//!
//! A subscription as the management API and `faas.toml` write it:
//!
//! ```json
//! {
//!   "source": "https://example.com/orders",          // optional: the event's `source` must equal it
//!   "types": ["com.example.order.created"],          // optional: the event's `type` must be one of them
//!   "filters": [{"prefix": {"subject": "eu/"}}],     // optional: every filter must match (filter.rs)
//!   "sink": "function:billing",                      // required: http(s) URL or function:NAME
//!   "protocol": "HTTP",                              // optional, "HTTP" is the only one supported
//!   "protocolsettings": {"headers": {"x-team": "billing"}, "method": "POST"},  // HTTP sinks only
//!   "delivery": {"retries": 3, "backoffBase": "500ms", "deadletter": "https://dlq.example.com/"}
//! }
//! ```
//!
//! `id` is assigned by the gateway (a UUID v4) on create and ignored in a create body; `origin` (`"api"`
//! or `"config"`) is reported by the management API and ignored in request bodies, so a retrieved
//! subscription can be sent back as an update. Any other unknown field is refused.
//!
//! Durations in `delivery` are strings with a unit: `"500ms"`, `"30s"`, `"5m"`, `"1h"` (the same form as
//! `faas.toml` timeouts).

use std::collections::BTreeMap;
use std::time::Duration;

use std::sync::LazyLock;

use cloudevents::{AttributesReader, Event};
use http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::filter::Filter;

/// The protocols the Subscriptions API lists; only `HTTP` is supported by this gateway.
pub const KNOWN_PROTOCOLS: [&str; 6] = ["HTTP", "MQTT3", "MQTT5", "AMQP", "KAFKA", "NATS"];
/// Most retries a delivery policy may ask for.
pub const MAX_RETRIES: u32 = 100;
/// Longest duration a delivery policy may set.
pub const MAX_POLICY_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Most filters, types, headers or config entries one subscription may hold.
pub const MAX_ITEMS: usize = 256;
/// Longest string (sink, source, type, header name or value, config key or value, ...) a subscription may
/// hold, in characters (Unicode scalar values, what JSON Schema's `maxLength` counts).
pub const MAX_STRING: usize = 4096;
/// The grammar of a sink and of a dead-letter sink, as the OpenAPI document's `Sink` schema states it:
/// `function:NAME` (a valid function name), or a lower-case `http://` or `https://` URL whose host is a
/// host name (ASCII letters, digits, `-`, `_`; the last label starts with a letter), a dotted IPv4
/// address or a bracketed IPv6 address, with an optional port (0-65535, no leading zeros) and a path,
/// query and fragment of visible ASCII characters (percent-encode anything else). No user info.
pub const SINK_PATTERN: &str = concat!(
    r"^((function|composition):[A-Za-z0-9][A-Za-z0-9_-]{0,63}|https?://(",
    r"([A-Za-z0-9_-]+\.)*[A-Za-z][A-Za-z0-9_-]*",
    r"|(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}",
    r"|\[(([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){1,7}:|([0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}",
    r"|([0-9A-Fa-f]{1,4}:){1,5}(:[0-9A-Fa-f]{1,4}){1,2}|([0-9A-Fa-f]{1,4}:){1,4}(:[0-9A-Fa-f]{1,4}){1,3}",
    r"|([0-9A-Fa-f]{1,4}:){1,3}(:[0-9A-Fa-f]{1,4}){1,4}|([0-9A-Fa-f]{1,4}:){1,2}(:[0-9A-Fa-f]{1,4}){1,5}",
    r"|[0-9A-Fa-f]{1,4}:(:[0-9A-Fa-f]{1,4}){1,6}|:((:[0-9A-Fa-f]{1,4}){1,7}|:))\]",
    r")(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0))?([/?#][!-~]*)?)$"
);
/// The grammar of a delivery-policy duration, as the OpenAPI document states it: digits and a unit (`ms`,
/// `s`, `m`, `h`), longer than zero and at most 24h ([`MAX_POLICY_DURATION`]).
pub const DURATION_PATTERN: &str = concat!(
    r"^(0*([1-9]|1[0-9]|2[0-4])h|0*([1-9][0-9]{0,2}|1[0-3][0-9]{2}|14[0-3][0-9]|1440)m",
    r"|0*([1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-5][0-9]{3}|86[0-3][0-9]{2}|86400)s",
    r"|0*([1-9][0-9]{0,6}|[1-7][0-9]{7}|8[0-5][0-9]{6}|86[0-3][0-9]{5}|86400000)ms)$"
);
/// Headers a subscription may not set: the gateway writes them itself.
const RESERVED_HEADERS: [&str; 7] =
    ["content-type", "content-length", "host", "transfer-encoding", "connection", "traceparent", "tracestate"];

/// An error of the management API (and of validation): an HTTP status, a message and, when known, the
/// JSON path of the offending field. The management API answers it as `{"error": message, "field": path}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct ApiError {
    /// Status to answer with.
    pub status: StatusCode,
    /// What is wrong, in a sentence.
    pub message: String,
    /// JSON path of the offending field (e.g. `filters[2].all`), when the problem is in one.
    pub field: Option<String>,
}

impl ApiError {
    /// 400 about `field`.
    ///
    /// ```
    /// let e = faas_gateway::subscription::ApiError::invalid("sink", "is required");
    /// assert_eq!(e.to_string(), "sink: is required");
    /// assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
    /// ```
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into(), field: Some(field.into()) }
    }

    /// 400 not about one field.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into(), field: None }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, message: message.into(), field: None }
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::CONFLICT, message: message.into(), field: None }
    }

    /// 503 (the store failed).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, message: message.into(), field: None }
    }

    /// The same error about `prefix.field` (or `prefix` when it had no field).
    pub fn under(mut self, prefix: &str) -> ApiError {
        self.field = Some(match self.field.take() {
            Some(f) if f.starts_with('[') => format!("{prefix}{f}"),
            Some(f) => format!("{prefix}.{f}"),
            None => prefix.to_string(),
        });
        self
    }
}

/// Where a subscription (or a function route) delivers: a parsed `sink` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// An absolute `http`/`https` URL that receives events in CloudEvents binary mode.
    Http(url::Url),
    /// `function:NAME`: a function in the gateway's function registry.
    Function(String),
    /// `composition:NAME`: a durable run of a composition registered with the gateway
    /// ([`crate::compositions`]), the event as its input.
    Composition(String),
}

impl Sink {
    /// Parses a sink URI: an absolute `http(s)` URL, or `function:NAME` with a valid function name.
    ///
    /// ```
    /// use faas_gateway::subscription::Sink;
    /// assert!(matches!(Sink::parse("https://hooks.example.com/e").unwrap(), Sink::Http(_)));
    /// assert_eq!(Sink::parse("function:billing").unwrap(), Sink::Function("billing".into()));
    /// assert!(Sink::parse("/relative/path").unwrap_err().message.contains("not an absolute URI"));
    /// ```
    pub fn parse(s: &str) -> Result<Sink, ApiError> {
        let invalid = |m: String| ApiError::invalid("sink", m);
        if s.is_empty() {
            return Err(invalid("is empty; use an http(s) URL or function:NAME".into()));
        }
        let chars = s.chars().count();
        if chars > MAX_STRING {
            return Err(invalid(format!("is {chars} characters long; the limit is {MAX_STRING}")));
        }
        if let Some(name) = s.strip_prefix("function:") {
            faas_api::validate_function_name(name)
                .map_err(|e| invalid(format!("`{s}` does not name a valid function: {}", e.message())))?;
            return Ok(Sink::Function(name.to_string()));
        }
        if let Some(name) = s.strip_prefix("composition:") {
            faas_api::validate_function_name(name)
                .map_err(|e| invalid(format!("`{s}` does not name a valid composition: {}", e.message())))?;
            return Ok(Sink::Composition(name.to_string()));
        }
        match url::Url::parse(s) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
                if u.host_str().is_none_or(str::is_empty) {
                    return Err(invalid(format!("`{s}` has no host")));
                }
                Ok(Sink::Http(u))
            }
            Ok(u) => Err(invalid(format!(
                "`{s}` has scheme `{}`, which this gateway cannot deliver to; use an http(s) URL or function:NAME",
                u.scheme()
            ))),
            Err(_) => Err(invalid(format!(
                "`{s}` is not an absolute URI; use an http(s) URL (like https://host/path) or function:NAME"
            ))),
        }
    }
}

impl Sink {
    /// [`Sink::parse`] for a sink a client is setting now (a subscription's `sink` or `deadletter`): it must
    /// also follow [`SINK_PATTERN`], the grammar the OpenAPI document states. Stored sinks are read with
    /// the more lenient [`Sink::parse`], so entries saved by older versions keep working.
    ///
    /// ```
    /// use faas_gateway::subscription::Sink;
    /// assert!(Sink::parse_new("http://127.0.0.1:9000/hook?x=1").is_ok());
    /// let err = Sink::parse_new("https://user:secret@hooks.example.com/").unwrap_err();
    /// assert!(err.message.contains("user info"), "{}", err.message);
    /// assert!(!err.message.contains("secret"), "credentials are not echoed");
    /// ```
    pub fn parse_new(s: &str) -> Result<Sink, ApiError> {
        static GRAMMAR: LazyLock<regex::Regex> =
            LazyLock::new(|| regex::Regex::new(SINK_PATTERN).expect("SINK_PATTERN compiles"));
        let sink = Sink::parse(s)?;
        if let Sink::Http(url) = &sink {
            if !url.username().is_empty() || url.password().is_some() {
                return Err(ApiError::invalid(
                    "sink",
                    "must not carry user info (credentials) in the URL; send them in protocolsettings.headers \
                     (e.g. `authorization`)",
                ));
            }
            if !GRAMMAR.is_match(s) {
                return Err(ApiError::invalid(
                    "sink",
                    format!(
                        "`{s}` is not of the accepted form: a lower-case http:// or https:// scheme, a host name \
                         (ASCII letters, digits, `-`, `_`; the last label starts with a letter), a dotted IPv4 or \
                         [IPv6] address, an optional port without leading zeros, then a path, query and fragment \
                         of visible ASCII characters (percent-encode others)"
                    ),
                ));
            }
        }
        Ok(sink)
    }
}

impl std::fmt::Display for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Http(u) => f.write_str(u.as_str()),
            Sink::Function(name) => write!(f, "function:{name}"),
            Sink::Composition(name) => write!(f, "composition:{name}"),
        }
    }
}

/// `protocolsettings` of an HTTP subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Extra headers sent with every delivery (not `content-type`, `ce-*` and other headers the gateway sets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_as_empty")]
    pub headers: BTreeMap<String, String>,
    /// The HTTP method: `POST` (the default and the only one the webhook spec allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// How a subscription's events are delivered. The gateway's defaults come from `[gateway.delivery]`;
/// each subscription may override any field with [`DeliveryPolicyOverrides`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Attempts after the first before giving up (default 5).
    pub retries: u32,
    /// Back-off before the first retry; doubles on each retry, with full jitter (default 200 ms).
    pub backoff_base: Duration,
    /// Cap of the back-off (default 60 s).
    pub backoff_max: Duration,
    /// How long one attempt may take (default 30 s).
    pub attempt_timeout: Duration,
    /// Longest `Retry-After` honoured (default 5 min).
    pub retry_after_max: Duration,
    /// Where events go when delivery fails for good (a sink URI), if anywhere.
    pub deadletter: Option<String>,
}

impl Default for DeliveryPolicy {
    fn default() -> DeliveryPolicy {
        DeliveryPolicy {
            retries: 5,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(30),
            retry_after_max: Duration::from_secs(300),
            deadletter: None,
        }
    }
}

impl DeliveryPolicy {
    /// This policy with the fields `overrides` sets replaced.
    ///
    /// ```
    /// use faas_gateway::subscription::{DeliveryPolicy, DeliveryPolicyOverrides};
    /// let p = DeliveryPolicy::default().with(&DeliveryPolicyOverrides { retries: Some(2), ..Default::default() });
    /// assert_eq!(p.retries, 2);
    /// assert_eq!(p.backoff_base, DeliveryPolicy::default().backoff_base);
    /// ```
    pub fn with(&self, overrides: &DeliveryPolicyOverrides) -> DeliveryPolicy {
        DeliveryPolicy {
            retries: overrides.retries.unwrap_or(self.retries),
            backoff_base: overrides.backoff_base.unwrap_or(self.backoff_base),
            backoff_max: overrides.backoff_max.unwrap_or(self.backoff_max),
            attempt_timeout: overrides.attempt_timeout.unwrap_or(self.attempt_timeout),
            retry_after_max: overrides.retry_after_max.unwrap_or(self.retry_after_max),
            deadletter: overrides.deadletter.clone().or_else(|| self.deadletter.clone()),
        }
    }
}

/// Per-subscription (or gateway-wide, in `[gateway.delivery]`) changes to the delivery policy. JSON/TOML
/// field names: `retries`, `backoffBase`, `backoffMax`, `attemptTimeout`, `retryAfterMax`, `deadletter`;
/// durations as strings with a unit (`"200ms"`, `"30s"`, `"5m"`, `"1h"`).
///
/// ```
/// let o: faas_gateway::subscription::DeliveryPolicyOverrides =
///     serde_json::from_str(r#"{"retries": 3, "backoffBase": "500ms"}"#).unwrap();
/// assert_eq!(o.backoff_base, Some(std::time::Duration::from_millis(500)));
/// assert_eq!(serde_json::to_string(&o).unwrap(), r#"{"retries":3,"backoffBase":"500ms"}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeliveryPolicyOverrides {
    /// See [`DeliveryPolicy::retries`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// See [`DeliveryPolicy::backoff_base`].
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub backoff_base: Option<Duration>,
    /// See [`DeliveryPolicy::backoff_max`].
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub backoff_max: Option<Duration>,
    /// See [`DeliveryPolicy::attempt_timeout`].
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub attempt_timeout: Option<Duration>,
    /// See [`DeliveryPolicy::retry_after_max`].
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub retry_after_max: Option<Duration>,
    /// See [`DeliveryPolicy::deadletter`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadletter: Option<String>,
}

impl DeliveryPolicyOverrides {
    /// Checks ranges: `retries` ≤ [`MAX_RETRIES`], durations above zero and at most [`MAX_POLICY_DURATION`],
    /// `deadletter` a valid sink ([`Sink::parse_new`]). Field paths in errors are relative (`retries`,
    /// `backoffBase`, ...). A `backoffBase` longer than `backoffMax` is not an error: the back-off is capped
    /// at `backoffMax` from the first retry (the OpenAPI document cannot state a rule between two fields).
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(r) = self.retries {
            if r > MAX_RETRIES {
                return Err(ApiError::invalid("retries", format!("{r} is more than the limit of {MAX_RETRIES}")));
            }
        }
        for (name, value) in [
            ("backoffBase", self.backoff_base),
            ("backoffMax", self.backoff_max),
            ("attemptTimeout", self.attempt_timeout),
            ("retryAfterMax", self.retry_after_max),
        ] {
            if let Some(d) = value {
                if d.is_zero() {
                    return Err(ApiError::invalid(name, "must be longer than zero"));
                }
                if d > MAX_POLICY_DURATION {
                    return Err(ApiError::invalid(name, "must be at most 24h"));
                }
            }
        }
        if let Some(dl) = &self.deadletter {
            Sink::parse_new(dl).map_err(|e| ApiError { field: Some("deadletter".into()), ..e })?;
        }
        Ok(())
    }
}

/// Formats a duration the way [`DeliveryPolicyOverrides`] writes it: the largest whole unit of `h`, `m`,
/// `s`, `ms`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(faas_gateway::subscription::format_duration(Duration::from_secs(120)), "2m");
/// assert_eq!(faas_gateway::subscription::format_duration(Duration::from_millis(1500)), "1500ms");
/// ```
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1000)] {
        if ms != 0 && ms.checked_rem(size) == Some(0) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Serde for `Option<Duration>` as `"500ms"`-style strings.
mod opt_duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    /// `null` is absent; a string must be digits and a unit, nothing else (no sign, no spaces): the
    /// grammar of [`DURATION_PATTERN`] (its range is checked by [`DeliveryPolicyOverrides::validate`]).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        faas_api::config::opt_duration_parsed_by(d, parse_policy_duration)
    }

    fn parse_policy_duration(s: &str) -> Result<Duration, String> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let (number, unit) = s.split_at(digits);
        if number.is_empty() || !["ms", "s", "m", "h"].contains(&unit) {
            return Err(format!(
                "`{s}` is not a duration: write digits and a unit (ms, s, m or h) with nothing between or \
                 around them, like \"500ms\", \"30s\", \"5m\" or \"1h\""
            ));
        }
        // Longer than 24h in any unit; refused here so that the unit conversion cannot overflow.
        if number.trim_start_matches('0').len() > 12 {
            return Err(format!("`{s}` must be at most 24h"));
        }
        faas_api::config::parse_duration(s)
    }
}

/// Serde `deserialize_with` for a collection: `null` is the empty collection, as if the field were absent.
fn null_as_empty<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A validated subscription.
///
/// ```
/// use cloudevents::EventBuilder;
/// use faas_gateway::subscription::SubscriptionRequest;
///
/// let req: SubscriptionRequest = serde_json::from_value(serde_json::json!({
///     "types": ["com.example.order.created"],
///     "filters": [{"prefix": {"subject": "eu/"}}],
///     "sink": "https://hooks.example.com/orders"
/// })).unwrap();
/// let sub = req.validate("s1".into()).unwrap();
/// let event = cloudevents::EventBuilderV10::new().id("1").source("/shop")
///     .ty("com.example.order.created").subject("eu/42").build().unwrap();
/// assert!(sub.matches(&event));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Identifier (assigned by the gateway, or given in `faas.toml`).
    pub id: String,
    /// When set, the event's `source` must equal it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When non-empty, the event's `type` must be one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// Subscription-manager-specific configuration (kept, not interpreted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Every filter must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    /// Where events go: an http(s) URL or `function:NAME`.
    pub sink: String,
    /// Always `"HTTP"`.
    pub protocol: String,
    /// Headers and method for HTTP sinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocolsettings: Option<HttpSettings>,
    /// Changes to the gateway's default delivery policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryPolicyOverrides>,
}

impl Subscription {
    /// True when the event's `source` equals [`Subscription::source`] (if set), its `type` is one of
    /// [`Subscription::types`] (if any) and every filter matches.
    pub fn matches(&self, event: &Event) -> bool {
        if let Some(source) = &self.source {
            if event.source().as_str() != source {
                return false;
            }
        }
        if !self.types.is_empty() && !self.types.iter().any(|t| t == event.ty()) {
            return false;
        }
        self.filters.iter().all(|f| f.matches(event))
    }

    /// The parsed sink.
    pub fn sink(&self) -> Result<Sink, ApiError> {
        Sink::parse(&self.sink)
    }

    /// This subscription as a request (for updates that change part of it).
    pub fn to_request(&self) -> SubscriptionRequest {
        SubscriptionRequest {
            id: Some(self.id.clone()),
            origin: None,
            source: self.source.clone(),
            types: self.types.clone(),
            config: self.config.clone(),
            filters: self.filters.iter().map(Filter::to_json).collect(),
            sink: Some(self.sink.clone()),
            protocol: Some(self.protocol.clone()),
            protocolsettings: self.protocolsettings.clone(),
            delivery: self.delivery.clone(),
        }
    }
}

/// The body of a create or update (and an entry of `[[gateway.subscriptions]]` in `faas.toml`): a
/// [`Subscription`] not yet validated. Filters are kept as JSON until [`SubscriptionRequest::validate`]
/// so their errors carry the full path (`filters[2].all[0].exact`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRequest {
    /// Ignored on create (the gateway assigns one); must match the path on update; required in `faas.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Read-only (`"api"` or `"config"`); accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// See [`Subscription::source`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// See [`Subscription::types`].
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub types: Vec<String>,
    /// See [`Subscription::config`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_as_empty")]
    pub config: BTreeMap<String, String>,
    /// Filter expressions, checked by [`SubscriptionRequest::validate`].
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub filters: Vec<serde_json::Value>,
    /// Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
    /// `"HTTP"` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// See [`Subscription::protocolsettings`].
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "optional_object")]
    pub protocolsettings: Option<HttpSettings>,
    /// See [`Subscription::delivery`].
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "optional_object")]
    pub delivery: Option<DeliveryPolicyOverrides>,
}

/// Serde `deserialize_with` for an optional struct: an object (or `null`, absent), never an array (serde's
/// derive would otherwise take `[]` or `[3]` as the fields in order, which the OpenAPI document does not allow).
fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    struct Visit<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_option(Visit(std::marker::PhantomData))
}

fn check_string(field: &str, s: &str) -> Result<(), ApiError> {
    if s.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    let chars = s.chars().count();
    if chars > MAX_STRING {
        return Err(ApiError::invalid(field, format!("is {chars} characters long; the limit is {MAX_STRING}")));
    }
    Ok(())
}

fn check_count(field: &str, n: usize) -> Result<(), ApiError> {
    if n > MAX_ITEMS {
        return Err(ApiError::invalid(field, format!("holds {n} entries; the limit is {MAX_ITEMS}")));
    }
    Ok(())
}

/// Checks an id given in `faas.toml`: 1 to 64 characters of `a-z`, `0-9`, `-`, `_`, `.`.
///
/// ```
/// assert!(faas_gateway::subscription::validate_id("orders-to-billing").is_ok());
/// assert!(faas_gateway::subscription::validate_id("Orders").is_err());
/// ```
pub fn validate_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::invalid("id", format!("`{id}` must be 1 to 64 characters long")));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(*c))) {
        return Err(ApiError::invalid(
            "id",
            format!("`{id}` contains `{c}`; use lower-case letters, digits, `-`, `_` and `.` only"),
        ));
    }
    Ok(())
}

impl SubscriptionRequest {
    /// Validates the request and makes it the subscription `id`. Errors are 400s naming the field:
    /// a missing or invalid sink, an unsupported protocol, an empty type, a bad filter, a bad header,
    /// a method other than POST, or a delivery override out of range.
    ///
    /// ```
    /// use faas_gateway::subscription::SubscriptionRequest;
    /// let req: SubscriptionRequest = serde_json::from_str(r#"{"sink": "function:billing", "filters": [{"any": []}]}"#).unwrap();
    /// let err = req.validate("s1".into()).unwrap_err();
    /// assert_eq!(err.to_string(), "filters[0].any: must hold at least one filter");
    /// ```
    pub fn validate(self, id: String) -> Result<Subscription, ApiError> {
        if let Some(source) = &self.source {
            check_string("source", source)?;
        }
        check_count("types", self.types.len())?;
        for (i, t) in self.types.iter().enumerate() {
            check_string(&format!("types[{i}]"), t)?;
        }
        check_count("config", self.config.len())?;
        for (k, v) in &self.config {
            check_string("config", k).map_err(|e| ApiError { message: format!("a key {}", e.message), ..e })?;
            if v.chars().count() > MAX_STRING {
                return Err(ApiError::invalid(
                    format!("config.{k}"),
                    format!("is longer than {MAX_STRING} characters"),
                ));
            }
        }
        check_count("filters", self.filters.len())?;
        let filters = self
            .filters
            .iter()
            .enumerate()
            .map(|(i, v)| {
                Filter::from_json_at(v, &format!("filters[{i}]")).map_err(|e| ApiError::invalid(e.path, e.message))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sink = self.sink.ok_or_else(|| {
            ApiError::invalid("sink", "is required: an http(s) URL or function:NAME to deliver events to")
        })?;
        let parsed = Sink::parse_new(&sink)?;
        let protocol = self.protocol.unwrap_or_else(|| "HTTP".to_string());
        if protocol != "HTTP" {
            let message = if KNOWN_PROTOCOLS.contains(&protocol.as_str()) {
                format!("protocol `{protocol}` is not supported by this gateway; use `HTTP`")
            } else {
                format!("unknown protocol `{protocol}`; the Subscriptions API defines {}", KNOWN_PROTOCOLS.join(", "))
            };
            return Err(ApiError::invalid("protocol", message));
        }
        if let Some(settings) = &self.protocolsettings {
            validate_settings(settings, &parsed)?;
        }
        if let Some(delivery) = &self.delivery {
            delivery.validate().map_err(|e| e.under("delivery"))?;
        }
        Ok(Subscription {
            id,
            source: self.source,
            types: self.types,
            config: self.config,
            filters,
            sink,
            protocol,
            protocolsettings: self.protocolsettings.map(|s| HttpSettings {
                method: s.method.map(|m| m.to_ascii_uppercase()),
                headers: s.headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
            }),
            delivery: self.delivery,
        })
    }
}

fn validate_settings(settings: &HttpSettings, sink: &Sink) -> Result<(), ApiError> {
    if let Some(m) = &settings.method {
        if !m.eq_ignore_ascii_case("POST") {
            return Err(ApiError::invalid(
                "protocolsettings.method",
                format!("method `{m}` is not supported; webhook deliveries use POST"),
            ));
        }
    }
    if settings.headers.is_empty() {
        return Ok(());
    }
    if !matches!(sink, Sink::Http(_)) {
        return Err(ApiError::invalid(
            "protocolsettings.headers",
            format!("headers apply to HTTP sinks only; this subscription's sink is `{sink}`"),
        ));
    }
    check_count("protocolsettings.headers", settings.headers.len())?;
    for (name, value) in &settings.headers {
        let field = format!("protocolsettings.headers.{name}");
        if name.len() > MAX_STRING || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ApiError::invalid(field, format!("`{name}` is not a valid HTTP header name")));
        }
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("ce-") || RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(ApiError::invalid(
                field,
                format!("header `{name}` is set by the gateway and cannot be overridden"),
            ));
        }
        if value.chars().count() > MAX_STRING || http::HeaderValue::from_str(value).is_err() {
            return Err(ApiError::invalid(field, "is not a valid HTTP header value"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::EventBuilder;
    use serde_json::json;

    fn request(v: serde_json::Value) -> SubscriptionRequest {
        serde_json::from_value(v).unwrap()
    }

    fn invalid(v: serde_json::Value) -> ApiError {
        let e = request(v).validate("x".into()).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{e}");
        e
    }

    fn event(source: &str, ty: &str) -> Event {
        cloudevents::EventBuilderV10::new().id("1").source(source).ty(ty).subject("eu/1").build().unwrap()
    }

    #[test]
    fn matches_source_types_and_filters() {
        let sub = request(json!({
            "source": "/shop", "types": ["a", "b"], "filters": [{"prefix": {"subject": "eu/"}}], "sink": "function:f"
        }))
        .validate("s".into())
        .unwrap();
        assert!(sub.matches(&event("/shop", "a")));
        assert!(sub.matches(&event("/shop", "b")));
        assert!(!sub.matches(&event("/shop", "c")));
        assert!(!sub.matches(&event("/other", "a")));
        let all = request(json!({"sink": "http://127.0.0.1:1/"})).validate("s".into()).unwrap();
        assert!(all.matches(&event("/anything", "any")), "no source, types or filters: everything matches");
    }

    #[test]
    fn sinks() {
        assert!(matches!(Sink::parse("http://127.0.0.1:9000/hook?x=1").unwrap(), Sink::Http(_)));
        assert_eq!(Sink::parse("function:a-b_1").unwrap().to_string(), "function:a-b_1");
        assert!(Sink::parse("").unwrap_err().message.contains("is empty"));
        assert!(Sink::parse("hooks.example.com/x").unwrap_err().message.contains("not an absolute URI"));
        assert!(Sink::parse("ftp://example.com/x").unwrap_err().message.contains("scheme `ftp`"));
        assert!(Sink::parse("function:a/b").unwrap_err().message.contains("does not name a valid function"));
        assert!(Sink::parse("function:").unwrap_err().message.contains("does not name a valid function"));
        assert!(Sink::parse("http://").is_err());
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(invalid(json!({})).field.as_deref(), Some("sink"));
        let e = invalid(json!({"sink": "/relative"}));
        assert_eq!(e.field.as_deref(), Some("sink"));
        assert!(e.message.contains("not an absolute URI"));
        assert_eq!(invalid(json!({"sink": "function:f", "types": ["a", ""]})).field.as_deref(), Some("types[1]"));
        assert_eq!(invalid(json!({"sink": "function:f", "source": ""})).field.as_deref(), Some("source"));
        let e = invalid(json!({"sink": "function:f", "filters": [{"exact": {"type": "x"}}, {"all": [{"sql": "x"}]}]}));
        assert_eq!(e.field.as_deref(), Some("filters[1].all[0]"));
        assert_eq!(e.message, "the `sql` (CESQL) dialect is not supported yet");
        let e = invalid(json!({"sink": "function:f", "filters": [{"exact": {"": "x"}}]}));
        assert_eq!(e.to_string(), "filters[0].exact: attribute name is empty");
    }

    #[test]
    fn protocols() {
        assert_eq!(request(json!({"sink": "function:f"})).validate("s".into()).unwrap().protocol, "HTTP");
        assert!(invalid(json!({"sink": "function:f", "protocol": "KAFKA"}))
            .message
            .contains("not supported by this gateway"));
        assert!(invalid(json!({"sink": "function:f", "protocol": "http"})).message.contains("unknown protocol `http`"));
        assert!(invalid(json!({"sink": "function:f", "protocol": "SMTP"})).message.contains("unknown protocol"));
    }

    #[test]
    fn protocol_settings() {
        let ok = request(
            json!({"sink": "https://h.example/", "protocolsettings": {"headers": {"X-Team": "a"}, "method": "post"}}),
        )
        .validate("s".into())
        .unwrap();
        let settings = ok.protocolsettings.unwrap();
        assert_eq!(settings.method.as_deref(), Some("POST"));
        assert_eq!(settings.headers["x-team"], "a");
        let e = invalid(json!({"sink": "https://h.example/", "protocolsettings": {"method": "GET"}}));
        assert_eq!(e.field.as_deref(), Some("protocolsettings.method"));
        let e = invalid(json!({"sink": "https://h.example/", "protocolsettings": {"headers": {"ce-id": "1"}}}));
        assert!(e.message.contains("set by the gateway"));
        let e = invalid(json!({"sink": "https://h.example/", "protocolsettings": {"headers": {"bad header": "1"}}}));
        assert!(e.message.contains("not a valid HTTP header name"));
        let e = invalid(json!({"sink": "https://h.example/", "protocolsettings": {"headers": {"x": "a\nb"}}}));
        assert!(e.message.contains("not a valid HTTP header value"));
        let e = invalid(json!({"sink": "function:f", "protocolsettings": {"headers": {"x": "1"}}}));
        assert!(e.message.contains("HTTP sinks only"));
    }

    #[test]
    fn delivery_overrides() {
        let sub = request(
            json!({"sink": "function:f", "delivery": {"retries": 2, "backoffMax": "5s", "deadletter": "function:dlq"}}),
        )
        .validate("s".into())
        .unwrap();
        let p = DeliveryPolicy::default().with(sub.delivery.as_ref().unwrap());
        assert_eq!(
            (p.retries, p.backoff_max, p.deadletter.as_deref()),
            (2, Duration::from_secs(5), Some("function:dlq"))
        );
        assert_eq!(p.attempt_timeout, Duration::from_secs(30));
        let e = invalid(json!({"sink": "function:f", "delivery": {"retries": 101}}));
        assert_eq!(e.field.as_deref(), Some("delivery.retries"));
        let e = invalid(json!({"sink": "function:f", "delivery": {"attemptTimeout": "0s"}}));
        assert_eq!(e.to_string(), "delivery.attemptTimeout: must be longer than zero");
        let capped = request(json!({"sink": "function:f", "delivery": {"backoffBase": "2m", "backoffMax": "1m"}}));
        assert!(capped.validate("s".into()).is_ok(), "a base above the cap is capped, not refused");
        let e = invalid(json!({"sink": "function:f", "delivery": {"deadletter": "nope"}}));
        assert_eq!(e.field.as_deref(), Some("delivery.deadletter"));
        let bad = serde_json::from_value::<SubscriptionRequest>(
            json!({"sink": "function:f", "delivery": {"backoffBase": 5}}),
        );
        assert!(bad.unwrap_err().to_string().contains("expected a duration string"));
        let bad = serde_json::from_value::<SubscriptionRequest>(
            json!({"sink": "function:f", "delivery": {"backoffBase": "5 parsecs"}}),
        );
        assert!(bad.unwrap_err().to_string().contains("is not a duration"));
        for spaced in [" 5s", "5 s", "5s ", "+5s", "5S"] {
            let bad = serde_json::from_value::<SubscriptionRequest>(
                json!({"sink": "function:f", "delivery": {"backoffBase": spaced}}),
            );
            assert!(bad.unwrap_err().to_string().contains("is not a duration"), "{spaced:?}");
        }
        let huge = serde_json::from_value::<SubscriptionRequest>(
            json!({"sink": "function:f", "delivery": {"backoffBase": "99999999999999999h"}}),
        );
        assert!(huge.unwrap_err().to_string().contains("at most 24h"));
        let array = serde_json::from_value::<SubscriptionRequest>(json!({"sink": "function:f", "delivery": []}));
        assert!(array.unwrap_err().to_string().contains("expected an object"));
        let null = request(json!({"sink": "function:f", "delivery": {"backoffBase": null, "retries": null}}));
        assert_eq!(null.delivery, Some(DeliveryPolicyOverrides::default()));
    }

    #[test]
    fn unknown_fields_are_refused_but_id_and_origin_are_accepted() {
        let bad = serde_json::from_value::<SubscriptionRequest>(json!({"sink": "function:f", "filter": []}));
        assert!(bad.unwrap_err().to_string().contains("unknown field `filter`"));
        let ok =
            request(json!({"id": "ignored", "origin": "api", "sink": "function:f"})).validate("real".into()).unwrap();
        assert_eq!(ok.id, "real");
    }

    #[test]
    fn subscription_json_round_trips_through_a_request() {
        let sub = request(json!({
            "source": "/s", "types": ["t"], "config": {"k": "v"}, "filters": [{"not": {"exact": {"id": "1"}}}],
            "sink": "https://h.example/", "protocolsettings": {"headers": {"x": "1"}},
            "delivery": {"retryAfterMax": "1m"}
        }))
        .validate("s1".into())
        .unwrap();
        let json = serde_json::to_value(&sub).unwrap();
        assert_eq!(json["filters"][0], json!({"not": {"exact": {"id": "1"}}}));
        assert_eq!(json["delivery"], json!({"retryAfterMax": "1m"}));
        let back: Subscription = serde_json::from_value(json).unwrap();
        assert_eq!(back, sub);
        assert_eq!(sub.to_request().validate("s1".into()).unwrap(), sub);
    }

    #[test]
    fn ids() {
        assert!(validate_id("a.b-c_1").is_ok());
        assert!(validate_id("").is_err());
        assert!(validate_id(&"a".repeat(65)).is_err());
        assert!(validate_id("a b").unwrap_err().message.contains("contains ` `"));
    }

    #[test]
    fn durations_format_with_the_largest_whole_unit() {
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_millis(200)), "200ms");
    }
}
