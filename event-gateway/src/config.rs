//! The `[gateway]` section of `faas.toml`.
//!
//! ```toml
//! [gateway]
//! port = 8090                    # on 127.0.0.1; 0 picks a free port
//! data_dir = ".faas/gateway"     # the embedded store (relative to faas.toml's directory)
//! store = "embedded"             # or "nats" (with nats_url)
//! nats_url = "nats://127.0.0.1:4222"
//! token = "env:FAAS_GATEWAY_TOKEN_VALUE"   # management API bearer token: env:NAME or file:PATH only
//! ingress_token = "file:/run/secrets/ingress"   # optional bearer token on POST /
//! max_event_bytes = 1048576      # ingress request limit, at least 65536
//! dedupe_window = "10m"          # duplicates (same source + id) within it are dropped
//! concurrency = 64               # deliveries in flight
//!
//! [gateway.delivery]             # defaults for every subscription (same names as a subscription's `delivery`)
//! retries = 5
//! backoffBase = "200ms"
//! backoffMax = "60s"
//! attemptTimeout = "30s"
//! retryAfterMax = "5m"
//! deadletter = "https://dlq.example.com/events"
//!
//! [gateway.functions.billing]    # function:billing → function `billing-v2` on backend profile `prod`
//! backend = "prod"
//! target = "billing-v2"
//!
//! [[gateway.subscriptions]]      # the Subscriptions API shape, plus a required `id`
//! id = "orders-to-billing"
//! types = ["com.example.order.created"]
//! filters = [{ prefix = { subject = "eu/" } }]
//! sink = "function:billing"
//! ```
//!
//! Secrets are references, never inline values: `env:NAME` reads an environment variable, `file:PATH` a file
//! (trimmed). The `FAAS_GATEWAY_TOKEN` environment variable, when set, overrides `token`.
//!
//! Every error names the file, the line and the key (as [`faas_api::ConfigError`]); secret values never
//! appear in errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use faas_api::ConfigError;
use serde::Deserialize;

use crate::registry::{Declared, FunctionRequest, FunctionRoute};
use crate::subscription::{
    validate_id, DeliveryPolicy, DeliveryPolicyOverrides, Sink, Subscription, SubscriptionRequest,
};

/// Default port.
pub const DEFAULT_PORT: u16 = 8090;
/// Default `max_event_bytes` (1 MiB).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Smallest `max_event_bytes` accepted: CloudEvents intermediaries must forward events of 64 KiB.
pub const MIN_MAX_EVENT_BYTES: usize = 64 * 1024;
/// Largest `max_event_bytes` accepted (64 MiB).
pub const MAX_MAX_EVENT_BYTES: usize = 64 * 1024 * 1024;
/// Default de-duplication window.
pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(600);
/// Default number of deliveries in flight.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// The environment variable that overrides `token`.
pub const TOKEN_ENV: &str = "FAAS_GATEWAY_TOKEN";

/// Which event store the gateway uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The embedded single-node log in `data_dir` (default).
    #[default]
    Embedded,
    /// NATS JetStream at `nats_url` (several replicas may share it).
    Nats,
}

/// The parsed, validated `[gateway]` section (secrets resolved).
#[derive(Clone, PartialEq)]
pub struct GatewayConfig {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// Which store.
    pub store: StoreKind,
    /// NATS URL for `store = "nats"`.
    pub nats_url: Option<String>,
    /// The management API bearer token (resolved; `FAAS_GATEWAY_TOKEN` wins). `None`: no token configured.
    pub token: Option<String>,
    /// The ingress bearer token (resolved), if ingress requires one.
    pub ingress_token: Option<String>,
    /// Ingress request body limit in bytes.
    pub max_event_bytes: usize,
    /// De-duplication window by `source` + `id`.
    pub dedupe_window: Duration,
    /// Deliveries in flight.
    pub concurrency: usize,
    /// Default delivery policy (the built-in defaults with `[gateway.delivery]` applied).
    pub delivery: DeliveryPolicy,
    /// `[gateway.functions.*]`, in name order.
    pub functions: Vec<FunctionRoute>,
    /// `[[gateway.subscriptions]]`, in file order.
    pub subscriptions: Vec<Subscription>,
    /// Backend profile names defined under `[backends]`, plus the implicit `local` (what function routes
    /// may name).
    pub backends: BTreeSet<String>,
    /// The file it came from, for messages.
    pub file: String,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |t: &Option<String>| t.as_ref().map(|_| "<redacted>");
        f.debug_struct("GatewayConfig")
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field("store", &self.store)
            .field("nats_url", &self.nats_url)
            .field("token", &redact(&self.token))
            .field("ingress_token", &redact(&self.ingress_token))
            .field("max_event_bytes", &self.max_event_bytes)
            .field("dedupe_window", &self.dedupe_window)
            .field("concurrency", &self.concurrency)
            .field("delivery", &self.delivery)
            .field("functions", &self.functions)
            .field("subscriptions", &self.subscriptions)
            .field("backends", &self.backends)
            .field("file", &self.file)
            .finish()
    }
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            port: DEFAULT_PORT,
            data_dir: PathBuf::from(".faas/gateway"),
            store: StoreKind::Embedded,
            nats_url: None,
            token: None,
            ingress_token: None,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            dedupe_window: DEFAULT_DEDUPE_WINDOW,
            concurrency: DEFAULT_CONCURRENCY,
            delivery: DeliveryPolicy::default(),
            functions: Vec::new(),
            subscriptions: Vec::new(),
            backends: BTreeSet::from(["local".to_string()]),
            file: faas_api::config::FILE_NAME.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct Root {
    #[serde(default)]
    gateway: Option<RawGateway>,
    #[serde(default)]
    backends: BTreeMap<String, toml::Value>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    store: Option<StoreKind>,
    #[serde(default)]
    nats_url: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    ingress_token: Option<String>,
    #[serde(default)]
    max_event_bytes: Option<usize>,
    #[serde(default, deserialize_with = "faas_api::config::opt_duration")]
    dedupe_window: Option<Duration>,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(default)]
    delivery: Option<DeliveryPolicyOverrides>,
    #[serde(default)]
    functions: BTreeMap<String, RawFunction>,
    #[serde(default)]
    subscriptions: Vec<SubscriptionRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunction {
    backend: String,
    #[serde(default)]
    target: Option<String>,
}

/// Command-line overrides of `[gateway]` (`--port`, `--data-dir`, `--store`, `--nats-url`), as both
/// `faas gateway` and the `faas-gateway` binary take them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--port`.
    pub port: Option<u16>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--store`: `embedded` or `nats`.
    pub store: Option<String>,
    /// `--nats-url`.
    pub nats_url: Option<String>,
}

impl GatewayConfig {
    /// Applies command-line overrides; an unknown store, or `nats` without a URL, is refused with a
    /// message naming the flag.
    ///
    /// ```
    /// use faas_gateway::config::{GatewayConfig, Overrides, StoreKind};
    /// let mut c = GatewayConfig::default();
    /// let o = Overrides { port: Some(0), store: Some("nats".into()), nats_url: Some("nats://127.0.0.1:4222".into()), ..Default::default() };
    /// c.apply(&o).unwrap();
    /// assert_eq!((c.port, c.store), (0, StoreKind::Nats));
    /// let e = c.apply(&Overrides { store: Some("redis".into()), ..Default::default() }).unwrap_err();
    /// assert!(e.contains("`redis`"), "{e}");
    /// ```
    pub fn apply(&mut self, o: &Overrides) -> Result<(), String> {
        if let Some(p) = o.port {
            self.port = p;
        }
        if let Some(d) = &o.data_dir {
            self.data_dir = d.clone();
        }
        match o.store.as_deref() {
            None => {}
            Some("embedded") => self.store = StoreKind::Embedded,
            Some("nats") => self.store = StoreKind::Nats,
            Some(other) => return Err(format!("--store: unknown store `{other}`; use `embedded` or `nats`")),
        }
        if let Some(u) = &o.nats_url {
            self.nats_url = Some(u.clone());
        }
        if self.store == StoreKind::Nats && self.nats_url.is_none() {
            return Err("--store nats needs --nats-url (or `nats_url` in [gateway] of faas.toml)".into());
        }
        Ok(())
    }

    /// Reads `path` (a `faas.toml`) and parses its `[gateway]` section with [`GatewayConfig::parse`]; a
    /// relative `data_dir` is taken relative to the file's directory.
    pub fn from_file(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        let mut config = GatewayConfig::parse(&text, &file)?;
        if config.data_dir.is_relative() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                config.data_dir = dir.join(&config.data_dir);
            }
        }
        Ok(config)
    }

    /// Parses the `[gateway]` section of `faas.toml` text (every other section is ignored; no section
    /// gives the defaults) and resolves its secrets; `file` is used in messages. `FAAS_GATEWAY_TOKEN`
    /// overrides `token`.
    ///
    /// ```
    /// use faas_gateway::config::GatewayConfig;
    /// let c = GatewayConfig::parse("[app]\nname = \"a\"\n[gateway]\nport = 9000\n", "faas.toml").unwrap();
    /// assert_eq!(c.port, 9000);
    /// let e = GatewayConfig::parse("[gateway]\nport = 9000\ntoken = \"hunter2\"\n", "faas.toml").unwrap_err();
    /// assert_eq!(e.to_string(), "faas.toml:3: key `gateway.token`: secrets must be references (`env:NAME` or `file:PATH`), never inline values");
    /// ```
    pub fn parse(text: &str, file: &str) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::parse_with_env(text, file, &|name| std::env::var(name).ok())
    }

    /// [`GatewayConfig::parse`] with the environment given as a function (for tests and embedding).
    pub fn parse_with_env(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<GatewayConfig, ConfigError> {
        let at = |key: String, message: String| ConfigError {
            file: file.to_string(),
            line: line_of_path(text, &key).unwrap_or(1),
            key: Some(key),
            message,
        };
        let root: Root = faas_api::config::deserialize_toml(text, file, &|key| line_of_path(text, key))?;

        // `local` is always a backend, as in faas.toml: without a `[backends.local]` table it is the
        // local backend with its defaults (a `faas dev` server on 127.0.0.1:8080).
        let mut backends: BTreeSet<String> = root.backends.keys().cloned().collect();
        backends.insert("local".to_string());
        let mut config = GatewayConfig { backends, file: file.to_string(), ..Default::default() };
        let raw = root.gateway.unwrap_or_default();

        if let Some(port) = raw.port {
            config.port = port;
        }
        if let Some(dir) = raw.data_dir {
            if dir.as_os_str().is_empty() {
                return Err(at("gateway.data_dir".into(), "must not be empty".into()));
            }
            config.data_dir = dir;
        }
        config.store = raw.store.unwrap_or_default();
        if let Some(url) = raw.nats_url {
            if url.trim().is_empty() {
                return Err(at("gateway.nats_url".into(), "must not be empty".into()));
            }
            config.nats_url = Some(url);
        }
        if let Some(n) = raw.max_event_bytes {
            if n < MIN_MAX_EVENT_BYTES {
                return Err(at(
                    "gateway.max_event_bytes".into(),
                    format!("{n} is below the minimum of {MIN_MAX_EVENT_BYTES} (64 KiB, what CloudEvents intermediaries must forward)"),
                ));
            }
            if n > MAX_MAX_EVENT_BYTES {
                return Err(at(
                    "gateway.max_event_bytes".into(),
                    format!("{n} is above the maximum of {MAX_MAX_EVENT_BYTES} (64 MiB)"),
                ));
            }
            config.max_event_bytes = n;
        }
        if let Some(w) = raw.dedupe_window {
            if w.is_zero() || w > Duration::from_secs(7 * 24 * 3600) {
                return Err(at("gateway.dedupe_window".into(), "must be longer than zero and at most 7 days".into()));
            }
            config.dedupe_window = w;
        }
        if let Some(c) = raw.concurrency {
            if c == 0 || c > 10_000 {
                return Err(at("gateway.concurrency".into(), format!("{c} is out of range; use 1 to 10000")));
            }
            config.concurrency = c;
        }
        if let Some(d) = &raw.delivery {
            d.validate()
                .map_err(|e| at(format!("gateway.delivery.{}", e.field.clone().unwrap_or_default()), e.message))?;
            config.delivery = config.delivery.with(d);
            if config.delivery.backoff_base > config.delivery.backoff_max {
                return Err(at(
                    "gateway.delivery.backoffBase".into(),
                    "is longer than backoffMax (whose default is 60s)".into(),
                ));
            }
        }

        let secret = |key: &str, reference: Option<String>| -> Result<Option<String>, ConfigError> {
            let Some(reference) = reference else { return Ok(None) };
            let key = format!("gateway.{key}");
            let value = faas_api::config::resolve_secret_with(&reference, env).map_err(|why| at(key.clone(), why))?;
            if value.is_empty() {
                return Err(at(key, format!("`{reference}` is empty")));
            }
            Ok(Some(value))
        };
        config.token = match env(TOKEN_ENV).filter(|t| !t.is_empty()) {
            Some(t) => {
                // Still check the file's reference is well-formed, without needing it to resolve.
                if let Some(r) = &raw.token {
                    if !(r.starts_with("env:") || r.starts_with("file:")) {
                        secret("token", raw.token.clone())?;
                    }
                }
                Some(t)
            }
            None => secret("token", raw.token)?,
        };
        config.ingress_token = secret("ingress_token", raw.ingress_token)?;

        for (name, f) in raw.functions {
            let key = format!("gateway.functions.{name}");
            let route = FunctionRequest { name: None, backend: Some(f.backend), target: f.target, origin: None }
                .validate(&name, &config.backends)
                .map_err(|e| match e.field.as_deref() {
                    Some("name") => at(key.clone(), e.message.clone()),
                    Some(field) => {
                        let message = if field == "backend" && config.backends.iter().all(|b| b == "local") {
                            format!("{}; define it under [backends.NAME]", e.message)
                        } else {
                            e.message.clone()
                        };
                        at(format!("{key}.{field}"), message)
                    }
                    None => at(key.clone(), e.message.clone()),
                })?;
            config.functions.push(route);
        }

        let mut ids = BTreeSet::new();
        for (i, mut request) in raw.subscriptions.into_iter().enumerate() {
            let key = format!("gateway.subscriptions[{i}]");
            let id = request.id.take().ok_or_else(|| at(key.clone(), "missing required key `id`".into()))?;
            validate_id(&id).map_err(|e| at(format!("{key}.id"), e.message))?;
            if !ids.insert(id.clone()) {
                return Err(at(format!("{key}.id"), format!("subscription id `{id}` is used twice")));
            }
            if request.origin.is_some() {
                return Err(at(format!("{key}.origin"), "is reported by the gateway; do not set it".into()));
            }
            let sub = request.validate(id).map_err(|e| match &e.field {
                Some(f) => at(format!("{key}.{f}"), e.message.clone()),
                None => at(key.clone(), e.message.clone()),
            })?;
            let deadletter = sub.delivery.as_ref().and_then(|d| d.deadletter.clone());
            for (field, sink) in [("sink", Some(sub.sink.clone())), ("delivery.deadletter", deadletter)] {
                if let Some(Ok(Sink::Function(name))) = sink.as_deref().map(Sink::parse) {
                    if !config.functions.iter().any(|f| f.name == name) {
                        return Err(at(
                            format!("{key}.{field}"),
                            format!("names function `{name}`, which is not declared; add [gateway.functions.{name}]"),
                        ));
                    }
                }
            }
            config.subscriptions.push(sub);
        }
        if let Some(Ok(Sink::Function(name))) = config.delivery.deadletter.as_deref().map(Sink::parse) {
            if !config.functions.iter().any(|f| f.name == name) {
                return Err(at(
                    "gateway.delivery.deadletter".into(),
                    format!("names function `{name}`, which is not declared; add [gateway.functions.{name}]"),
                ));
            }
        }
        Ok(config)
    }

    /// What the registry needs from this configuration: the declared functions and subscriptions and the
    /// known backend profiles.
    pub fn declared(&self) -> Declared {
        Declared {
            backends: self.backends.clone(),
            functions: self.functions.clone(),
            subscriptions: self.subscriptions.clone(),
            file: self.file.clone(),
        }
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `a.b[2].c` into segments.
fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            if let Ok(i) = stripped[..end].parse() {
                out.push(Segment::Index(i));
            }
            rest = &stripped[end + 1..];
        }
    }
    out
}

/// The line of the deepest part of `path` (`gateway.subscriptions[1].filters[0].exact`) found in `text`.
fn line_of_path(text: &str, path: &str) -> Option<usize> {
    use toml_edit::{Item, Value};

    enum Node<'a> {
        Table(&'a toml_edit::Table),
        Inline(&'a toml_edit::InlineTable),
        Array(&'a toml_edit::Array),
        Tables(&'a toml_edit::ArrayOfTables),
        Leaf,
    }
    fn of_item(item: &Item) -> Node<'_> {
        match item {
            Item::Table(t) => Node::Table(t),
            Item::ArrayOfTables(a) => Node::Tables(a),
            Item::Value(v) => of_value(v),
            Item::None => Node::Leaf,
        }
    }
    fn of_value(value: &Value) -> Node<'_> {
        match value {
            Value::InlineTable(t) => Node::Inline(t),
            Value::Array(a) => Node::Array(a),
            _ => Node::Leaf,
        }
    }

    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut node = Node::Table(doc.as_table());
    let mut found: Option<usize> = None;
    for segment in segments(path) {
        let (span, next) = match (node, segment) {
            (Node::Table(t), Segment::Key(k)) => {
                let Some((key, item)) = t.get_key_value(k) else { break };
                (key.span().or_else(|| item.span()), of_item(item))
            }
            (Node::Inline(t), Segment::Key(k)) => {
                let Some((key, item)) = t.get_key_value(k) else { break };
                (key.span().or_else(|| item.span()), of_item(item))
            }
            (Node::Array(a), Segment::Index(i)) => {
                let Some(v) = a.get(i) else { break };
                (v.span(), of_value(v))
            }
            (Node::Tables(a), Segment::Index(i)) => {
                let Some(t) = a.get(i) else { break };
                (t.span(), Node::Table(t))
            }
            _ => break,
        };
        if let Some(span) = span {
            found = Some(span.start);
        }
        node = next;
    }
    found.map(|offset| faas_api::config::line_at(text, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "GW_TOKEN" => Some("s3cret-token".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::parse_with_env(text, "faas.toml", &env)
    }

    fn error(text: &str) -> ConfigError {
        parse(text).unwrap_err()
    }

    const FULL: &str = r#"[app]
name = "shop"

[backends.prod]
kind = "lambda"

[backends.dev]
kind = "local"

[gateway]
port = 9001
data_dir = "/var/lib/gw"
store = "nats"
nats_url = "nats://127.0.0.1:4222"
token = "env:GW_TOKEN"
max_event_bytes = 65536
dedupe_window = "5m"
concurrency = 8

[gateway.delivery]
retries = 2
backoffBase = "100ms"
deadletter = "function:dlq"

[gateway.functions.billing]
backend = "prod"
target = "billing-v2"

[gateway.functions.dlq]
backend = "dev"

[[gateway.subscriptions]]
id = "orders-to-billing"
types = ["com.example.order.created"]
filters = [{ prefix = { subject = "eu/" } }]
sink = "function:billing"

[[gateway.subscriptions]]
id = "audit"
sink = "https://audit.example.com/events"
delivery = { retries = 0 }
"#;

    #[test]
    fn a_full_section_parses() {
        let c = parse(FULL).unwrap();
        assert_eq!(c.port, 9001);
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/gw"));
        assert_eq!(c.store, StoreKind::Nats);
        assert_eq!(c.nats_url.as_deref(), Some("nats://127.0.0.1:4222"));
        assert_eq!(c.token.as_deref(), Some("s3cret-token"));
        assert_eq!(c.max_event_bytes, 65536);
        assert_eq!(c.dedupe_window, Duration::from_secs(300));
        assert_eq!(c.concurrency, 8);
        assert_eq!(c.delivery.retries, 2);
        assert_eq!(c.delivery.backoff_base, Duration::from_millis(100));
        assert_eq!(c.delivery.backoff_max, Duration::from_secs(60));
        assert_eq!(c.delivery.deadletter.as_deref(), Some("function:dlq"));
        assert_eq!(
            c.functions[0],
            FunctionRoute { name: "billing".into(), backend: "prod".into(), target: Some("billing-v2".into()) }
        );
        assert_eq!(c.subscriptions.len(), 2);
        assert_eq!(c.subscriptions[0].id, "orders-to-billing");
        assert_eq!(c.subscriptions[1].delivery.as_ref().unwrap().retries, Some(0));
        assert_eq!(c.backends, ["dev", "local", "prod"].into_iter().map(String::from).collect());
        let d = c.declared();
        assert_eq!((d.functions.len(), d.subscriptions.len()), (2, 2));
        assert!(!format!("{c:?}").contains("s3cret-token"), "Debug must not show the token");
    }

    #[test]
    fn no_section_gives_the_defaults() {
        let c = parse("[app]\nname = \"a\"\n").unwrap();
        assert_eq!(c, GatewayConfig::default());
        assert_eq!(c.port, 8090);
        assert_eq!(c.max_event_bytes, 1024 * 1024);
    }

    #[test]
    fn the_environment_token_overrides() {
        let with = |name: &str| (name == TOKEN_ENV).then(|| "from-env".to_string()).or_else(|| env(name));
        let c = GatewayConfig::parse_with_env("[gateway]\ntoken = \"env:UNSET\"\n", "faas.toml", &with).unwrap();
        assert_eq!(c.token.as_deref(), Some("from-env"));
        let c = GatewayConfig::parse_with_env("[gateway]\n", "faas.toml", &with).unwrap();
        assert_eq!(c.token.as_deref(), Some("from-env"));
        let e = GatewayConfig::parse_with_env("[gateway]\ntoken = \"inline\"\n", "faas.toml", &with).unwrap_err();
        assert!(e.message.contains("never inline values"));
    }

    #[test]
    fn secrets_are_references_and_never_echoed() {
        let e = error("[gateway]\nport = 1\ningress_token = \"hunter2\"\n");
        assert_eq!((e.line, e.key.as_deref()), (3, Some("gateway.ingress_token")));
        assert!(!e.to_string().contains("hunter2"));
        let e = error("[gateway]\ntoken = \"env:UNSET_VAR\"\n");
        assert_eq!(e.to_string(), "faas.toml:2: key `gateway.token`: environment variable `UNSET_VAR` is not set");
        let e = error("[gateway]\ntoken = \"env:EMPTY\"\n");
        assert!(e.message.contains("is empty"), "{e}");
        let e = error("[gateway]\ntoken = \"file:/nonexistent/token\"\n");
        assert!(e.message.starts_with("cannot read `/nonexistent/token`"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file\n").unwrap();
        let c = parse(&format!("[gateway]\ntoken = \"file:{}\"\n", path.display())).unwrap();
        assert_eq!(c.token.as_deref(), Some("from-file"));
    }

    #[test]
    fn wrong_types_and_unknown_keys_name_file_line_and_key() {
        let e = error("[app]\nname = \"a\"\n\n[gateway]\nport = \"eighty\"\n");
        assert_eq!((e.line, e.key.as_deref()), (5, Some("gateway.port")));
        let e = error("[gateway]\nport = 70000\n");
        assert_eq!((e.line, e.key.as_deref()), (2, Some("gateway.port")));
        let e = error("[gateway]\nprot = 1\n");
        assert_eq!((e.line, e.key.as_deref()), (2, Some("gateway.prot")));
        assert!(e.message.contains("unknown field `prot`"), "{e}");
        let e = error("[gateway]\nstore = \"redis\"\n");
        assert_eq!(e.key.as_deref(), Some("gateway.store"));
        assert!(e.message.contains("redis"), "{e}");
        let e = error("[gateway]\ndedupe_window = 10\n");
        assert_eq!((e.line, e.key.as_deref()), (2, Some("gateway.dedupe_window")));
        assert!(e.message.contains("expected a duration string"), "{e}");
        let e = error("[gateway]\ndedupe_window = \"10 fortnights\"\n");
        assert!(e.message.contains("unknown unit"), "{e}");
        let e = error("[gateway.delivery]\nbackoffBase = \"1x\"\n");
        assert_eq!((e.line, e.key.as_deref()), (2, Some("gateway.delivery.backoffBase")));
        let e = error("[gateway.delivery]\nretry = 3\n");
        assert_eq!(e.key.as_deref(), Some("gateway.delivery.retry"));
        let e = error("[backends.p]\nkind = \"local\"\n[gateway.functions.f]\ntarget = \"x\"\n");
        assert_eq!(e.key.as_deref(), Some("gateway.functions.f.backend"));
        assert!(e.message.contains("missing required key `backend`"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let e = error("[gateway]\n\nmax_event_bytes = 1000\n");
        assert_eq!((e.line, e.key.as_deref()), (3, Some("gateway.max_event_bytes")));
        assert!(e.message.contains("below the minimum of 65536"), "{e}");
        assert!(error("[gateway]\nmax_event_bytes = 1000000000\n").message.contains("above the maximum"));
        assert!(error("[gateway]\ndedupe_window = \"0s\"\n").message.contains("longer than zero"));
        assert_eq!(error("[gateway]\nconcurrency = 0\n").key.as_deref(), Some("gateway.concurrency"));
        let e = error("[gateway.delivery]\nretries = 1000\n");
        assert_eq!((e.line, e.key.as_deref()), (2, Some("gateway.delivery.retries")));
        let e = error("[gateway.delivery]\nbackoffBase = \"2m\"\n");
        assert!(e.message.contains("longer than backoffMax"), "{e}");
        assert_eq!(error("[gateway]\ndata_dir = \"\"\n").key.as_deref(), Some("gateway.data_dir"));
    }

    #[test]
    fn functions_need_a_known_backend() {
        let e = error("[backends.dev]\nkind = \"local\"\n\n[gateway.functions.billing]\nbackend = \"prod\"\n");
        assert_eq!((e.line, e.key.as_deref()), (5, Some("gateway.functions.billing.backend")));
        assert_eq!(e.message, "unknown backend profile `prod`; known profiles: dev, local");
        let e = error("[gateway.functions.billing]\nbackend = \"prod\"\n");
        assert!(e.message.contains("define it under [backends.NAME]"), "{e}");
        let e = error("[backends.dev]\nkind = \"local\"\n[gateway.functions.\"a/b\"]\nbackend = \"dev\"\n");
        assert_eq!((e.line, e.key.as_deref()), (3, Some("gateway.functions.a/b")));
    }

    #[test]
    fn subscriptions_are_validated_with_their_path() {
        let base = "[backends.dev]\nkind = \"local\"\n[gateway.functions.f]\nbackend = \"dev\"\n\n";
        let e = error(&format!("{base}[[gateway.subscriptions]]\nsink = \"function:f\"\n"));
        assert_eq!((e.line, e.key.as_deref()), (6, Some("gateway.subscriptions[0]")));
        assert_eq!(e.message, "missing required key `id`");
        let e = error(&format!(
            "{base}[[gateway.subscriptions]]\nid = \"a\"\nsink = \"function:f\"\n\n[[gateway.subscriptions]]\nid = \"b\"\nsink = \"function:f\"\nfilters = [\n  {{ exact = {{ type = \"x\" }} }},\n  {{ all = [] }},\n]\n"
        ));
        assert_eq!(e.key.as_deref(), Some("gateway.subscriptions[1].filters[1].all"));
        assert_eq!(e.line, 15, "{e}");
        assert_eq!(e.message, "must hold at least one filter");
        let e = error(&format!("{base}[[gateway.subscriptions]]\nid = \"Bad Id\"\nsink = \"function:f\"\n"));
        assert_eq!((e.line, e.key.as_deref()), (7, Some("gateway.subscriptions[0].id")));
        let e = error(&format!(
            "{base}[[gateway.subscriptions]]\nid = \"a\"\nsink = \"function:f\"\n[[gateway.subscriptions]]\nid = \"a\"\nsink = \"function:f\"\n"
        ));
        assert!(e.message.contains("used twice"), "{e}");
        assert_eq!(e.line, 10);
        let e = error(&format!("{base}[[gateway.subscriptions]]\nid = \"a\"\nsink = \"/relative\"\n"));
        assert_eq!((e.line, e.key.as_deref()), (8, Some("gateway.subscriptions[0].sink")));
        assert!(e.message.contains("not an absolute URI"), "{e}");
        let e = error(&format!("{base}[[gateway.subscriptions]]\nid = \"a\"\nsink = \"function:g\"\n"));
        assert!(e.message.contains("add [gateway.functions.g]"), "{e}");
        let e = error(&format!(
            "{base}[[gateway.subscriptions]]\nid = \"a\"\nsink = \"function:f\"\nfilters = [{{ sql = \"type = 'x'\" }}]\n"
        ));
        assert_eq!((e.line, e.key.as_deref()), (9, Some("gateway.subscriptions[0].filters[0]")));
        assert_eq!(e.message, "the `sql` (CESQL) dialect is not supported yet");
        let e = error(&format!("{base}[[gateway.subscriptions]]\nid = \"a\"\nsink = \"function:f\"\nfiltres = []\n"));
        assert_eq!((e.line, e.key.as_deref()), (9, Some("gateway.subscriptions[0].filtres")));
    }

    #[test]
    fn from_file_reads_and_places_data_dir_beside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faas.toml");
        std::fs::write(&path, "[app]\nname = \"a\"\n[gateway]\nport = 1234\n").unwrap();
        let c = GatewayConfig::from_file(&path).unwrap();
        assert_eq!(c.port, 1234);
        assert_eq!(c.data_dir, dir.path().join(".faas/gateway"));
        let e = GatewayConfig::from_file(&dir.path().join("missing.toml")).unwrap_err();
        assert!(e.message.starts_with("cannot read"), "{e}");
    }

    #[test]
    fn paths_are_located() {
        let text = "[gateway]\nport = 1\n\n[[gateway.subscriptions]]\nid = \"a\"\n[[gateway.subscriptions]]\nid = \"b\"\nfilters = [\n {exact = {type = \"x\"}},\n]\n";
        assert_eq!(line_of_path(text, "gateway.port"), Some(2));
        assert_eq!(line_of_path(text, "gateway.subscriptions[1].id"), Some(7));
        assert_eq!(line_of_path(text, "gateway.subscriptions[1].filters[0].exact.type"), Some(9));
        assert_eq!(line_of_path(text, "gateway.subscriptions[1].nothing"), Some(6));
    }
}
