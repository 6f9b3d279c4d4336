//! `faas.toml`: the app, its functions and triggers, and backend profiles.
//!
//! ```toml
//! [app]
//! name = "greeter"
//! default_backend = "dev"     # optional
//!
//! [functions.hello]
//! timeout = "10s"             # "500ms", "10s", "2m", "1h"
//! memory_mb = 128
//! concurrency = 4             # instances at once (local: process pool size)
//! prewarm = 1                 # instances started ahead of the first call
//! env = { GREETING = "Hello" }
//! http = { route = "/hello", method = "POST" }
//! events = { type = "com.example.greet" }
//!
//! [backends.dev]
//! kind = "local"
//!
//! [backends.prod]
//! kind = "lambda"
//! region = "eu-west-1"
//! ```
//!
//! **Backend selection precedence** ([`Config::select_backend`]): the `--backend` flag, then the
//! `FAAS_BACKEND` environment variable, then `[app] default_backend`, then the only profile when
//! exactly one is defined, then an implicit `local` profile when none is. A name that is not
//! defined is an error, except `local`, which always means the default local backend.
//!
//! Secrets are never written inline: keys whose name contains `secret`, `password`, `token` or
//! `credentials` must hold a reference, `env:NAME` or `file:PATH`.
//!
//! Every error names the file, the line and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::Error;
use crate::app::{EventFilter, Trigger};
use crate::runner::{Capability, FunctionSpec};

/// Default function timeout: 30 seconds.
///
/// ```
/// use faas_api::{FunctionSpec, config::DEFAULT_TIMEOUT};
/// assert_eq!(DEFAULT_TIMEOUT, std::time::Duration::from_secs(30));
/// assert_eq!(FunctionSpec::new("f").timeout, DEFAULT_TIMEOUT);
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default memory size, in MB.
///
/// ```
/// use faas_api::{FunctionSpec, config::DEFAULT_MEMORY_MB};
/// assert_eq!(DEFAULT_MEMORY_MB, 128);
/// assert_eq!(FunctionSpec::new("f").memory_mb, DEFAULT_MEMORY_MB);
/// ```
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// Default number of instances per function.
///
/// ```
/// use faas_api::{FunctionSpec, config::DEFAULT_CONCURRENCY};
/// assert_eq!(DEFAULT_CONCURRENCY, 8);
/// assert_eq!(FunctionSpec::new("f").concurrency, DEFAULT_CONCURRENCY);
/// ```
pub const DEFAULT_CONCURRENCY: u32 = 8;
/// The config file name, looked up by [`Config::find`].
///
/// ```
/// assert_eq!(faas_api::config::FILE_NAME, "faas.toml");
/// ```
pub const FILE_NAME: &str = "faas.toml";

/// A configuration error: where it is and what is wrong. It displays as `FILE:LINE: key `KEY`:
/// MESSAGE` (without the key part when the key is unknown), and converts into a bad-input
/// [`Error`] of type `InvalidConfig`.
///
/// ```
/// use faas_api::{ConfigError, Error, ErrorKind};
/// let e = ConfigError { file: "faas.toml".into(), line: 4, key: Some("functions.f.memory_mb".into()),
///     message: "must be at least 1".into() };
/// assert_eq!(e.to_string(), "faas.toml:4: key `functions.f.memory_mb`: must be at least 1");
/// let e: Error = e.into();
/// assert_eq!((e.kind(), e.error_type()), (ErrorKind::BadInput, "InvalidConfig"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{file}{}: {}{message}",
    if *line > 0 { format!(":{line}") } else { String::new() },
    key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default()
)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line; 0 when the error is about the whole file (it could not be read), and then
    /// the message names no line.
    pub line: usize,
    /// The dotted key path, when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::bad_input(e.to_string()).with_type("InvalidConfig")
    }
}

/// The `[app]` section.
///
/// ```
/// use faas_api::Config;
/// let c = Config::parse("[app]\nname = \"greeter\"\nbin = \"greeter-fn\"\n", "faas.toml").unwrap();
/// assert_eq!(c.app.name, "greeter");
/// assert_eq!(c.app.bin.as_deref(), Some("greeter-fn"));
/// assert_eq!(c.app.default_backend, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// App name.
    pub name: String,
    /// Default backend profile.
    #[serde(default)]
    pub default_backend: Option<String>,
    /// The cargo binary target that holds the app (default: the package's only binary).
    #[serde(default)]
    pub bin: Option<String>,
}

/// An HTTP trigger in `faas.toml` (`http = { route = "/hello", method = "POST" }`).
///
/// ```
/// use faas_api::Config;
/// let c = Config::parse("[app]\nname = 'a'\n[functions.hello]\nhttp = { route = '/hello' }\n", "faas.toml").unwrap();
/// let http = c.functions["hello"].http.as_ref().unwrap();
/// assert_eq!((http.route.as_str(), http.method.as_deref()), ("/hello", None));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path starting with `/`.
    pub route: String,
    /// Method, or any when absent.
    #[serde(default)]
    pub method: Option<String>,
}

/// A `[functions.NAME]` section: settings that override a function's defaults when applied
/// ([`FunctionConfig::apply`]). Absent settings keep the default.
///
/// ```
/// use faas_api::Config;
/// let text = "[app]\nname = 'a'\n[functions.hello]\ntimeout = '10s'\nrequires = ['logs']\n";
/// let f = &Config::parse(text, "faas.toml").unwrap().functions["hello"];
/// assert_eq!(f.timeout, Some(std::time::Duration::from_secs(10)));
/// assert_eq!(f.memory_mb, None);
/// assert_eq!(f.requires, vec![faas_api::Capability::Logs]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    /// Timeout.
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Memory in MB.
    #[serde(default)]
    pub memory_mb: Option<u32>,
    /// Instances at once.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Instances started ahead.
    #[serde(default)]
    pub prewarm: Option<u32>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// HTTP trigger.
    #[serde(default)]
    pub http: Option<RouteConfig>,
    /// CloudEvent trigger.
    #[serde(default)]
    pub events: Option<EventFilter>,
    /// Capabilities the function needs.
    #[serde(default)]
    pub requires: Vec<Capability>,
}

impl FunctionConfig {
    /// Applies these settings over a spec: given values replace the spec's, `env` entries are
    /// added, and triggers and capabilities are appended unless already there. HTTP methods are
    /// upper-cased.
    ///
    /// ```
    /// use faas_api::{Config, FunctionSpec, Trigger};
    /// let text = "[app]\nname = 'a'\n[functions.hello]\nmemory_mb = 256\nhttp = { route = '/hello', method = 'post' }\n";
    /// let config = Config::parse(text, "faas.toml").unwrap();
    /// let mut spec = FunctionSpec::new("hello");
    /// config.functions["hello"].apply(&mut spec);
    /// config.functions["hello"].apply(&mut spec);
    /// assert_eq!(spec.memory_mb, 256);
    /// assert_eq!(spec.timeout, faas_api::config::DEFAULT_TIMEOUT);
    /// assert_eq!(spec.triggers, vec![Trigger::Http { method: Some("POST".into()), route: "/hello".into() }]);
    /// ```
    pub fn apply(&self, spec: &mut FunctionSpec) {
        if let Some(t) = self.timeout {
            spec.timeout = t;
        }
        if let Some(m) = self.memory_mb {
            spec.memory_mb = m;
        }
        if let Some(c) = self.concurrency {
            spec.concurrency = c;
        }
        if let Some(p) = self.prewarm {
            spec.prewarm = p;
        }
        spec.env.extend(self.env.clone());
        if let Some(h) = &self.http {
            let t = Trigger::Http { method: h.method.as_ref().map(|m| m.to_ascii_uppercase()), route: h.route.clone() };
            if !spec.triggers.contains(&t) {
                spec.triggers.push(t);
            }
        }
        if let Some(filter) = &self.events {
            let t = Trigger::Event { filter: filter.clone() };
            if !spec.triggers.contains(&t) {
                spec.triggers.push(t);
            }
        }
        for c in &self.requires {
            if !spec.requires.contains(c) {
                spec.requires.push(*c);
            }
        }
    }
}

/// A named backend profile: a `kind` plus kind-specific settings, read with typed getters that
/// name the key when the value has the wrong type.
///
/// ```
/// use faas_api::Config;
/// let text = "[app]\nname = 'a'\n[backends.prod]\nkind = 'lambda'\nregion = 'eu-west-1'\nretries = 'three'\n";
/// let prod = Config::parse(text, "faas.toml").unwrap().backends["prod"].clone();
/// assert_eq!((prod.name.as_str(), prod.kind.as_str(), prod.origin.as_str()), ("prod", "lambda", "faas.toml:3"));
/// assert_eq!(prod.str("region").unwrap().as_deref(), Some("eu-west-1"));
/// let err = prod.int("retries").unwrap_err();
/// assert_eq!(err.message(), "faas.toml:3: key `backends.prod.retries`: expected an integer");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BackendProfile {
    /// The profile name (the key under `[backends]`).
    pub name: String,
    /// The runner kind.
    pub kind: String,
    /// Everything else in the table.
    pub settings: toml::Table,
    /// Where it was defined, for error messages.
    pub origin: String,
}

impl BackendProfile {
    /// A profile with no settings, defined in code (its origin is `built-in`).
    ///
    /// ```
    /// let p = faas_api::BackendProfile::new("dev", "local");
    /// assert_eq!((p.name.as_str(), p.kind.as_str(), p.origin.as_str()), ("dev", "local", "built-in"));
    /// assert!(p.settings.is_empty());
    /// ```
    pub fn new(name: impl Into<String>, kind: impl Into<String>) -> BackendProfile {
        BackendProfile { name: name.into(), kind: kind.into(), settings: toml::Table::new(), origin: "built-in".into() }
    }

    /// The profile of a backend kind used without a profile in faas.toml (`--backend lambda` in a
    /// project without `[backends.lambda]`): named after its kind, no settings, an origin that says so.
    ///
    /// ```
    /// let p = faas_api::BackendProfile::implicit("lambda");
    /// assert_eq!((p.name.as_str(), p.kind.as_str()), ("lambda", "lambda"));
    /// assert_eq!(p.origin, "the implicit `lambda` profile (faas.toml has no [backends.lambda])");
    /// assert!(p.is_implicit());
    /// assert!(!faas_api::BackendProfile::new("lambda", "lambda").is_implicit());
    /// ```
    pub fn implicit(kind: &str) -> BackendProfile {
        BackendProfile {
            origin: format!("the implicit `{kind}` profile (faas.toml has no [backends.{kind}])"),
            ..BackendProfile::new(kind, kind)
        }
    }

    /// Whether this is a kind used without a profile in faas.toml ([`BackendProfile::implicit`]).
    pub fn is_implicit(&self) -> bool {
        self.origin == BackendProfile::implicit(&self.kind).origin && self.name == self.kind
    }

    /// Adds a setting, replacing any earlier value of `key`.
    ///
    /// ```
    /// let p = faas_api::BackendProfile::new("dev", "local").with("mode", "process").with("mode", "inproc");
    /// assert_eq!(p.str("mode").unwrap().as_deref(), Some("inproc"));
    /// ```
    pub fn with(mut self, key: &str, value: impl Into<toml::Value>) -> BackendProfile {
        self.settings.insert(key.to_string(), value.into());
        self
    }

    fn wrong(&self, key: &str, expected: &str) -> Error {
        Error::bad_input(format!("{}: key `backends.{}.{key}`: expected {expected}", self.origin, self.name))
            .with_type("InvalidConfig")
    }

    /// A string setting; `None` when absent, an error naming the key when not a string.
    ///
    /// ```
    /// let p = faas_api::BackendProfile::new("prod", "lambda").with("region", "eu-west-1").with("port", 9000);
    /// assert_eq!(p.str("region").unwrap().as_deref(), Some("eu-west-1"));
    /// assert_eq!(p.str("role").unwrap(), None);
    /// assert!(p.str("port").unwrap_err().message().ends_with("key `backends.prod.port`: expected a string"));
    /// ```
    pub fn str(&self, key: &str) -> Result<Option<String>, Error> {
        match self.settings.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }

    /// An integer setting; `None` when absent, an error naming the key when not an integer.
    ///
    /// ```
    /// let p = faas_api::BackendProfile::new("dev", "local").with("port", 9000).with("host", "127.0.0.1");
    /// assert_eq!(p.int("port").unwrap(), Some(9000));
    /// assert_eq!(p.int("workers").unwrap(), None);
    /// assert!(p.int("host").unwrap_err().message().ends_with("expected an integer"));
    /// ```
    pub fn int(&self, key: &str) -> Result<Option<i64>, Error> {
        match self.settings.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) => Ok(Some(*i)),
            Some(_) => Err(self.wrong(key, "an integer")),
        }
    }

    /// A boolean setting; `None` when absent, an error naming the key when not `true`/`false`.
    ///
    /// ```
    /// let p = faas_api::BackendProfile::new("dev", "local").with("verbose", true).with("debug", "yes");
    /// assert_eq!(p.bool("verbose").unwrap(), Some(true));
    /// assert_eq!(p.bool("quiet").unwrap(), None);
    /// assert!(p.bool("debug").unwrap_err().message().ends_with("expected true or false"));
    /// ```
    pub fn bool(&self, key: &str) -> Result<Option<bool>, Error> {
        match self.settings.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong(key, "true or false")),
        }
    }

    /// A duration setting written like `"10s"` (see [`parse_duration`]); `None` when absent.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = faas_api::BackendProfile::new("dev", "local").with("idle", "2m").with("grace", "soon");
    /// assert_eq!(p.duration("idle").unwrap(), Some(Duration::from_secs(120)));
    /// assert_eq!(p.duration("poll").unwrap(), None);
    /// assert!(p.duration("grace").unwrap_err().message().ends_with("expected a duration like \"10s\""));
    /// ```
    pub fn duration(&self, key: &str) -> Result<Option<Duration>, Error> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) => parse_duration(&s).map(Some).map_err(|_| self.wrong(key, "a duration like \"10s\"")),
        }
    }

    /// Resolves a secret reference (`env:NAME` or `file:PATH`, see [`resolve_secret_with`]); `None`
    /// when absent. The value is never logged, and an inline value is an error.
    ///
    /// ```
    /// use faas_api::BackendProfile;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("token");
    /// std::fs::write(&path, "s3cret\n").unwrap();
    /// let p = BackendProfile::new("prod", "lambda").with("token", format!("file:{}", path.display()));
    /// assert_eq!(p.secret("token").unwrap().as_deref(), Some("s3cret"));
    /// assert_eq!(p.secret("password").unwrap(), None);
    ///
    /// let inline = BackendProfile::new("prod", "lambda").with("token", "hunter2");
    /// let err = inline.secret("token").unwrap_err();
    /// assert!(err.message().contains("never inline values"));
    /// assert!(!err.message().contains("hunter2"));
    /// ```
    pub fn secret(&self, key: &str) -> Result<Option<String>, Error> {
        let Some(reference) = self.str(key)? else { return Ok(None) };
        resolve_secret(&reference).map(Some).map_err(|why| {
            Error::bad_input(format!("{}: key `backends.{}.{key}`: {why}", self.origin, self.name))
                .with_type("InvalidConfig")
        })
    }

    /// Rejects settings not in `known` (nor in the keys every profile takes,
    /// [`crate::state::PROFILE_KEYS`]), naming the first unknown one (in key order) and listing
    /// the known ones. Runners call this so a typo in `faas.toml` is not silently ignored.
    ///
    /// ```
    /// let p = faas_api::BackendProfile::new("dev", "local").with("mode", "process").with("prot", 9000);
    /// assert!(p.deny_unknown(&["mode", "port", "prot"]).is_ok());
    /// let err = p.deny_unknown(&["mode", "port"]).unwrap_err();
    /// assert!(err.message().contains("key `backends.dev.prot`: unknown setting for a `local` backend"));
    /// assert!(err.message().ends_with("known settings: mode, port, state, state_token"));
    /// assert!(p.clone().with("state", "http://127.0.0.1:8090").deny_unknown(&["mode", "prot"]).is_ok());
    /// ```
    pub fn deny_unknown(&self, known: &[&str]) -> Result<(), Error> {
        for key in self.settings.keys() {
            if !known.contains(&key.as_str()) && !crate::state::PROFILE_KEYS.contains(&key.as_str()) {
                return Err(Error::bad_input(format!(
                    "{}: key `backends.{}.{key}`: unknown setting for a `{}` backend; known settings: {}",
                    self.origin,
                    self.name,
                    self.kind,
                    known.iter().chain(&crate::state::PROFILE_KEYS).copied().collect::<Vec<_>>().join(", ")
                ))
                .with_type("InvalidConfig"));
            }
        }
        Ok(())
    }
}

fn resolve_secret(reference: &str) -> Result<String, String> {
    resolve_secret_with(reference, &|name| std::env::var(name).ok())
}

/// The largest file a `file:` secret reference may name (64 KiB: a token, a key, a connection
/// string); a larger one, or one that never ends (`/dev/zero`), is refused, not read whole.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Resolves a secret reference, `env:NAME` (looked up with `env`) or `file:PATH` (trimmed, at
/// most [`MAX_SECRET_FILE_BYTES`]); an inline value is refused. The error says why, without the
/// value.
///
/// ```
/// use faas_api::config::resolve_secret_with;
/// let env = |name: &str| (name == "TOKEN").then(|| "s3cret".to_string());
/// assert_eq!(resolve_secret_with("env:TOKEN", &env).unwrap(), "s3cret");
/// assert_eq!(resolve_secret_with("env:NOPE", &env).unwrap_err(), "environment variable `NOPE` is not set");
/// assert!(resolve_secret_with("s3cret", &env).unwrap_err().contains("never inline values"));
/// assert_eq!(
///     resolve_secret_with("file:/dev/zero", &env).unwrap_err(),
///     "`/dev/zero` is larger than 65536 bytes: a secret file holds one value"
/// );
/// ```
pub fn resolve_secret_with(reference: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if let Some(var) = reference.strip_prefix("env:") {
        env(var).ok_or_else(|| format!("environment variable `{var}` is not set"))
    } else if let Some(path) = reference.strip_prefix("file:") {
        read_secret_file(path)
    } else {
        Err("secrets must be references (`env:NAME` or `file:PATH`), never inline values".into())
    }
}

fn read_secret_file(path: &str) -> Result<String, String> {
    use std::io::Read as _;
    let cannot = |e: std::io::Error| format!("cannot read `{path}`: {e}");
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!("`{path}` is larger than {MAX_SECRET_FILE_BYTES} bytes: a secret file holds one value"));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("`{path}` is not UTF-8 text"))?;
    Ok(text.trim().to_string())
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "password", "token", "credentials"].iter().any(|w| k.contains(w))
}

/// A parsed and validated `faas.toml` (see the [module docs](self) for the format).
///
/// ```
/// use faas_api::Config;
/// let text = r#"
/// [app]
/// name = "greeter"
///
/// [functions.hello]
/// timeout = "10s"
///
/// [backends.dev]
/// kind = "local"
/// "#;
/// let config = Config::parse(text, "faas.toml").unwrap();
/// assert_eq!(config.app.name, "greeter");
/// assert_eq!(config.functions["hello"].timeout, Some(std::time::Duration::from_secs(10)));
/// assert_eq!(config.backends["dev"].kind, "local");
/// assert_eq!(config.path, None);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from (none for a default config).
    pub path: Option<PathBuf>,
    /// `[app]`.
    pub app: AppSection,
    /// `[functions.*]`.
    pub functions: BTreeMap<String, FunctionConfig>,
    /// `[backends.*]`.
    pub backends: BTreeMap<String, BackendProfile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    app: AppSection,
    #[serde(default)]
    functions: BTreeMap<String, FunctionConfig>,
    #[serde(default)]
    backends: BTreeMap<String, RawBackend>,
    /// `[gateway]` belongs to the event gateway (`faas-gateway`), which parses and validates it itself.
    #[serde(default, rename = "gateway")]
    _gateway: Option<toml::Table>,
}

#[derive(Deserialize)]
struct RawBackend {
    kind: String,
    #[serde(flatten)]
    settings: toml::Table,
}

/// The 1-based line of byte `offset` in `text`.
///
/// ```
/// assert_eq!(faas_api::config::line_at("a\nb\nc", 2), 2);
/// ```
pub fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

/// The line of the header `[a.b]` or of the key `b = ...` inside `[a]`, best effort.
fn line_of_key(text: &str, path: &[&str]) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let header_line = |header: &str| lines.iter().position(|l| l.trim() == header);
    if let Some(i) = header_line(&format!("[{}]", path.join("."))) {
        return i + 1;
    }
    if path.len() >= 2
        && let Some(start) = header_line(&format!("[{}]", path[..path.len() - 1].join(".")))
    {
        let key = path[path.len() - 1];
        for (i, line) in lines.iter().enumerate().skip(start + 1) {
            let t = line.trim_start();
            if t.starts_with('[') {
                break;
            }
            if t.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('=')) {
                return i + 1;
            }
        }
        return start + 1;
    }
    1
}

/// Deserializes TOML `text` into `T`; an error names `file`, the line (from the parser's span, else
/// `line_of_key(key)`, else 1) and the dotted key, and says "missing required key" for a missing field.
/// Every part of faas that reads `faas.toml` (the gateway's `[gateway]` section too) reports errors
/// this way.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct App { #[allow(dead_code)] name: String }
/// #[derive(serde::Deserialize)]
/// struct File { #[allow(dead_code)] app: App }
/// let e = faas_api::config::deserialize_toml::<File>("[app]\nnom = 1\n", "faas.toml", &|_| None).err().unwrap();
/// assert_eq!((e.key.as_deref(), e.message.as_str()), (Some("app.name"), "missing required key `name`"));
/// ```
pub fn deserialize_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
    line_of_key: &dyn Fn(&str) -> Option<usize>,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let key = (path != "." && !path.is_empty()).then_some(path);
        let message = inner.message().to_string();
        let (key, message) = match message.strip_prefix("missing field `") {
            Some(rest) => {
                let field = rest.split('`').next().unwrap_or_default();
                let key = match key {
                    Some(k) => format!("{k}.{field}"),
                    None => field.to_string(),
                };
                (Some(key), format!("missing required key `{field}`"))
            }
            None if message.trim().is_empty() => (key, syntax_problem(text, inner.span())),
            None => (key, message),
        };
        let line =
            inner.span().map(|s| line_at(text, s.start)).or_else(|| key.as_deref().and_then(line_of_key)).unwrap_or(1);
        ConfigError { file: file.to_string(), line, key, message }
    })
}

/// What is wrong at a syntax error the TOML parser reports without a message (it has none for a
/// carriage return not followed by a newline, for one): the character found there.
fn syntax_problem(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let at = span.map_or(text.len(), |s| s.start);
    match text.get(at..).and_then(|rest| rest.chars().next()) {
        Some('\r') => "a carriage return (`\\r`) must be followed by a newline (`\\n`); save the file with LF or CRLF \
                       line endings"
            .to_string(),
        Some(c) => format!("invalid TOML: unexpected `{}`", c.escape_debug()),
        None if at >= text.len() => "invalid TOML: unexpected end of file".to_string(),
        None => "invalid TOML".to_string(),
    }
}

impl Config {
    /// A config with only an app name: every function gets the defaults, the backend is local.
    ///
    /// ```
    /// let c = faas_api::Config::default_for("greeter");
    /// assert_eq!(c.app.name, "greeter");
    /// assert!(c.functions.is_empty() && c.backends.is_empty());
    /// assert_eq!(c.select_backend_with(None, None, &[]).unwrap().kind, "local");
    /// ```
    pub fn default_for(app: impl Into<String>) -> Config {
        Config {
            path: None,
            app: AppSection { name: app.into(), default_backend: None, bin: None },
            functions: BTreeMap::new(),
            backends: BTreeMap::new(),
        }
    }

    /// Reads and validates `path`; errors name the file (line 0 when it cannot be read at all).
    ///
    /// ```
    /// use faas_api::Config;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("faas.toml");
    /// std::fs::write(&path, "[app]\nname = \"greeter\"\n").unwrap();
    /// let config = Config::load(&path).unwrap();
    /// assert_eq!(config.app.name, "greeter");
    /// assert_eq!(config.path.as_deref(), Some(path.as_path()));
    ///
    /// let err = Config::load(&dir.path().join("missing.toml")).unwrap_err();
    /// assert_eq!(err.line, 0);
    /// assert!(err.message.starts_with("cannot read"));
    /// assert!(err.to_string().contains("missing.toml: cannot read"), "{err}");
    /// ```
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        let mut config = Config::parse(&text, &path.display().to_string())?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Finds `faas.toml` in `dir` or its nearest ancestor that has one.
    ///
    /// ```
    /// use faas_api::Config;
    /// let root = tempfile::tempdir().unwrap();
    /// let nested = root.path().join("src/bin");
    /// std::fs::create_dir_all(&nested).unwrap();
    /// std::fs::write(root.path().join("faas.toml"), "[app]\nname = 'a'\n").unwrap();
    /// assert_eq!(Config::find(&nested), Some(root.path().join("faas.toml")));
    /// std::fs::write(nested.join("faas.toml"), "[app]\nname = 'b'\n").unwrap();
    /// assert_eq!(Config::find(&nested), Some(nested.join("faas.toml")));
    /// ```
    pub fn find(dir: &Path) -> Option<PathBuf> {
        dir.ancestors().map(|d| d.join(FILE_NAME)).find(|p| p.is_file())
    }

    /// Parses and validates config text; `file` is used in error messages.
    ///
    /// ```
    /// use faas_api::Config;
    /// let err = Config::parse("[app]\nname = \"x\"\n\n[functions.hello]\ntimeout = 10\n", "faas.toml").unwrap_err();
    /// assert_eq!(err.line, 5);
    /// assert_eq!(err.key.as_deref(), Some("functions.hello.timeout"));
    /// assert!(err.to_string().starts_with("faas.toml:5: key `functions.hello.timeout`:"), "{err}");
    /// ```
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let err = |line: usize, key: Option<String>, message: String| ConfigError {
            file: file.to_string(),
            line,
            key,
            message,
        };
        let raw: RawConfig = deserialize_toml(text, file, &|_| None)?;

        if raw.app.name.trim().is_empty() {
            return Err(err(line_of_key(text, &["app", "name"]), Some("app.name".into()), "must not be empty".into()));
        }
        for (name, f) in &raw.functions {
            let at = |k: &str| line_of_key(text, &["functions", name, k]);
            crate::validate_function_name(name).map_err(|e| {
                err(line_of_key(text, &["functions", name]), Some(format!("functions.{name}")), e.message().into())
            })?;
            if f.memory_mb == Some(0) {
                return Err(err(
                    at("memory_mb"),
                    Some(format!("functions.{name}.memory_mb")),
                    "must be at least 1".into(),
                ));
            }
            if f.concurrency == Some(0) {
                return Err(err(
                    at("concurrency"),
                    Some(format!("functions.{name}.concurrency")),
                    "must be at least 1".into(),
                ));
            }
            if f.timeout == Some(Duration::ZERO) {
                return Err(err(
                    at("timeout"),
                    Some(format!("functions.{name}.timeout")),
                    "must be longer than zero".into(),
                ));
            }
            if let Some(h) = &f.http
                && !h.route.starts_with('/')
            {
                return Err(err(
                    at("http"),
                    Some(format!("functions.{name}.http.route")),
                    format!("route `{}` must start with `/`", h.route),
                ));
            }
        }
        let mut backends = BTreeMap::new();
        for (name, b) in raw.backends {
            let line = line_of_key(text, &["backends", &name]);
            for (key, value) in &b.settings {
                if is_secret_key(key) {
                    let ok = value.as_str().is_some_and(|s| s.starts_with("env:") || s.starts_with("file:"));
                    if !ok {
                        return Err(err(
                            line_of_key(text, &["backends", &name, key]),
                            Some(format!("backends.{name}.{key}")),
                            "secrets must be references (`env:NAME` or `file:PATH`), never inline values".into(),
                        ));
                    }
                }
            }
            let origin = format!("{file}:{line}");
            backends.insert(name.clone(), BackendProfile { name, kind: b.kind, settings: b.settings, origin });
        }
        if let Some(d) = &raw.app.default_backend
            && d != "local"
            && !backends.contains_key(d)
        {
            return Err(err(
                line_of_key(text, &["app", "default_backend"]),
                Some("app.default_backend".into()),
                format!("names backend `{d}`, which is not defined under [backends]"),
            ));
        }
        Ok(Config { path: None, app: raw.app, functions: raw.functions, backends })
    }

    /// Picks the backend profile: `flag`, then the `FAAS_BACKEND` environment variable (when not
    /// empty), then `default_backend`, then the only profile, then the implicit `local` one. A name
    /// that is no profile but one of `kinds` (the backend kinds the caller can run) selects that
    /// kind with its defaults, as `local` always does. See [`Config::select_backend_with`] for the
    /// rules without the environment.
    ///
    /// ```
    /// use faas_api::Config;
    /// let c = Config::parse("[app]\nname = 'a'\n[backends.prod]\nkind = 'lambda'\n", "faas.toml").unwrap();
    /// // The flag wins over `FAAS_BACKEND`, whatever it is set to.
    /// assert_eq!(c.select_backend(Some("prod"), &[]).unwrap().kind, "lambda");
    /// assert_eq!(c.select_backend(Some("local"), &[]).unwrap().kind, "local");
    /// assert!(c.select_backend(Some("staging"), &[]).unwrap_err().message().contains("unknown backend profile `staging`"));
    /// ```
    pub fn select_backend(&self, flag: Option<&str>, kinds: &[&str]) -> Result<BackendProfile, Error> {
        let env = std::env::var("FAAS_BACKEND").ok().filter(|s| !s.is_empty());
        self.select_backend_with(flag, env.as_deref(), kinds)
    }

    /// [`Config::select_backend`] with the environment value passed in.
    ///
    /// ```
    /// use faas_api::Config;
    /// let c = Config::parse("[app]\nname='a'\n[backends.dev]\nkind='local'\n[backends.prod]\nkind='lambda'\n", "faas.toml").unwrap();
    /// assert_eq!(c.select_backend_with(Some("prod"), Some("dev"), &[]).unwrap().name, "prod");
    /// assert_eq!(c.select_backend_with(None, Some("dev"), &[]).unwrap().name, "dev");
    /// assert!(c.select_backend_with(None, None, &[]).unwrap_err().message().contains("--backend"));
    /// assert!(c.select_backend_with(Some("staging"), None, &[]).unwrap_err().message().contains("defines: dev, prod"));
    /// // A kind without a profile of its name: that kind, no settings.
    /// let p = Config::default_for("a").select_backend_with(Some("lambda"), None, &["lambda", "local"]).unwrap();
    /// assert_eq!((p.name.as_str(), p.kind.as_str(), p.settings.len()), ("lambda", "lambda", 0));
    /// let e = Config::default_for("a").select_backend_with(Some("nimbus"), None, &["lambda", "local"]).unwrap_err();
    /// assert!(e.message().ends_with("defines: none; backend kinds: lambda, local"), "{}", e.message());
    /// ```
    pub fn select_backend_with(
        &self,
        flag: Option<&str>,
        env: Option<&str>,
        kinds: &[&str],
    ) -> Result<BackendProfile, Error> {
        let chosen = flag.or(env).or(self.app.default_backend.as_deref());
        match chosen {
            Some(name) => match self.backends.get(name) {
                Some(p) => Ok(p.clone()),
                None if name == "local" || kinds.contains(&name) => Ok(BackendProfile::new(name, name)),
                None => Err(Error::bad_input(format!(
                    "unknown backend profile `{name}`; {} defines: {}{}",
                    self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| FILE_NAME.into()),
                    if self.backends.is_empty() {
                        "none".to_string()
                    } else {
                        self.backends.keys().cloned().collect::<Vec<_>>().join(", ")
                    },
                    if kinds.is_empty() { String::new() } else { format!("; backend kinds: {}", kinds.join(", ")) }
                ))),
            },
            None => match self.backends.len() {
                0 => Ok(BackendProfile::new("local", "local")),
                1 => Ok(self.backends.values().next().expect("one").clone()),
                _ => Err(Error::bad_input(format!(
                    "several backends are configured ({}); choose one with --backend NAME or FAAS_BACKEND, or set [app] default_backend",
                    self.backends.keys().cloned().collect::<Vec<_>>().join(", ")
                ))),
            },
        }
    }
}

/// Parses `"500ms"`, `"10s"`, `"2m"`, `"1h"`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(faas_api::config::parse_duration("1500ms").unwrap(), Duration::from_millis(1500));
/// assert_eq!(faas_api::config::parse_duration("2m").unwrap(), Duration::from_secs(120));
/// assert!(faas_api::config::parse_duration("ten").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 =
        num.parse().map_err(|_| format!("invalid duration `{s}`: expected a number and a unit, like \"10s\""))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        other => Err(format!("invalid duration `{s}`: unknown unit `{other}`; use ms, s, m or h")),
    }
}

/// Serde `deserialize_with` for an optional duration written as a string (`"500ms"`, `"30s"`, `"5m"`,
/// `"1h"`, see [`parse_duration`]); a JSON `null` is no duration (as if the field were absent), and any
/// other type is an error naming the type found and the accepted forms (`invalid type: integer `5`,
/// expected a duration string with a unit ...`). Shared by every section of
/// `faas.toml`, the gateway's included, and by the gateway's management API.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct S {
///     #[serde(default, deserialize_with = "faas_api::config::opt_duration")]
///     t: Option<std::time::Duration>,
/// }
/// let s: S = toml::from_str("t = \"250ms\"").unwrap();
/// assert_eq!(s.t, Some(std::time::Duration::from_millis(250)));
/// assert!(toml::from_str::<S>("t = 5").is_err());
/// assert_eq!(serde_json::from_str::<S>(r#"{"t": null}"#).unwrap().t, None);
/// let err = serde_json::from_str::<S>(r#"{"t": [1]}"#).err().unwrap().to_string();
/// assert!(err.starts_with("invalid type: sequence, expected a duration string with a unit (ms, s, m or h)"), "{err}");
/// ```
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    opt_duration_parsed_by(d, parse_duration)
}

/// [`opt_duration`] with another parser for the string form (for callers with a stricter grammar or
/// a range): `null` is `None`, a string goes through `parse`, and anything else is an error naming the
/// type found and the accepted forms (never a serde-internal message).
///
/// ```
/// use std::time::Duration;
/// let strict = |s: &str| if s == "1s" { Ok(Duration::from_secs(1)) } else { Err(format!("`{s}` is not 1s")) };
/// let mut de = serde_json::Deserializer::from_str(r#""2s""#);
/// let err = faas_api::config::opt_duration_parsed_by(&mut de, strict).unwrap_err();
/// assert!(err.to_string().starts_with("`2s` is not 1s"));
/// ```
pub fn opt_duration_parsed_by<'de, D: Deserializer<'de>>(
    d: D,
    parse: impl Fn(&str) -> Result<Duration, String>,
) -> Result<Option<Duration>, D::Error> {
    struct Visit<P>(P);
    impl<'de, P: Fn(&str) -> Result<Duration, String>> serde::de::Visitor<'de> for Visit<P> {
        type Value = Option<Duration>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a duration string with a unit (ms, s, m or h), like \"500ms\" or \"30s\"")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            (self.0)(s).map(Some).map_err(E::custom)
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
    }
    d.deserialize_option(Visit(parse))
}

/// Serde helper: a [`Duration`] as integer milliseconds, for `#[serde(with = "...")]`.
///
/// ```
/// use std::time::Duration;
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Limits {
///     #[serde(with = "faas_api::config::duration_ms")]
///     timeout: Duration,
/// }
/// let limits = Limits { timeout: Duration::from_secs(3) };
/// assert_eq!(serde_json::to_string(&limits).unwrap(), r#"{"timeout":3000}"#);
/// assert_eq!(serde_json::from_str::<Limits>(r#"{"timeout":250}"#).unwrap().timeout, Duration::from_millis(250));
/// ```
pub mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Serialises as whole milliseconds (sub-millisecond parts are dropped).
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut out = Vec::new();
    /// faas_api::config::duration_ms::serialize(&Duration::from_micros(1500), &mut serde_json::Serializer::new(&mut out))
    ///     .unwrap();
    /// assert_eq!(out, b"1");
    /// ```
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    /// Deserialises from a non-negative integer of milliseconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use faas_api::config::duration_ms;
    /// let d = duration_ms::deserialize(&mut serde_json::Deserializer::from_str("1500")).unwrap();
    /// assert_eq!(d, Duration::from_millis(1500));
    /// assert!(duration_ms::deserialize(&mut serde_json::Deserializer::from_str("-1")).is_err());
    /// ```
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found while fuzzing `faas_toml`: `file:/dev/zero` was read forever. Secret files are read
    /// up to a limit; a file at the limit is still a secret.
    #[test]
    fn secret_files_are_read_up_to_a_limit() {
        let env = |_: &str| None;
        let dir = tempfile::tempdir().unwrap();
        let at_limit = dir.path().join("at-limit");
        std::fs::write(&at_limit, "k".repeat(MAX_SECRET_FILE_BYTES as usize)).unwrap();
        let over = dir.path().join("over");
        std::fs::write(&over, "k".repeat(MAX_SECRET_FILE_BYTES as usize + 1)).unwrap();
        let binary = dir.path().join("binary");
        std::fs::write(&binary, [0xff, 0xfe]).unwrap();
        let at = format!("file:{}", at_limit.display());
        assert_eq!(resolve_secret_with(&at, &env).unwrap().len(), MAX_SECRET_FILE_BYTES as usize);
        let err = resolve_secret_with(&format!("file:{}", over.display()), &env).unwrap_err();
        assert!(err.contains("is larger than 65536 bytes") && err.contains("over"), "{err}");
        let err = resolve_secret_with(&format!("file:{}", binary.display()), &env).unwrap_err();
        assert!(err.ends_with("is not UTF-8 text"), "{err}");
        assert!(resolve_secret_with("file:/dev/zero", &env).unwrap_err().contains("/dev/zero"));
    }

    /// Found by `fuzz/faas_toml`: the TOML parser reports a carriage return without a newline with an
    /// empty message, so the error said only `faas.toml:1: `. The fuzzer's input, then smaller ones.
    #[test]
    fn a_syntax_error_without_a_parser_message_still_says_what_is_wrong() {
        let fuzzed = "\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r]\0\0ap";
        for text in [fuzzed, "\r"] {
            let e = Config::parse(text, "faas.toml").unwrap_err();
            assert!(e.message.starts_with("a carriage return (`\\r`) must be followed by a newline"), "{text:?}: {e}");
            assert!(e.to_string().starts_with("faas.toml:1: a carriage return"), "{e}");
        }
        // Where the parser has a message, it is kept.
        let e = Config::parse("[app]\nname = \"a\"\r", "faas.toml").unwrap_err();
        assert_eq!(e.to_string(), "faas.toml:2: expected newline, `#`");
        assert_eq!(syntax_problem("ab", Some(1..2)), "invalid TOML: unexpected `b`");
        assert_eq!(syntax_problem("a", None), "invalid TOML: unexpected end of file");
    }

    const GOOD: &str = r#"
[app]
name = "greeter"

[functions.hello]
timeout = "10s"
memory_mb = 256
env = { GREETING = "Hi" }
http = { route = "/hello", method = "post" }

[backends.dev]
kind = "local"
mode = "process"

[backends.prod]
kind = "lambda"
region = "eu-west-1"
secret_access_key = "env:AWS_SECRET"
"#;

    #[test]
    fn good_config_parses_and_applies() {
        let c = Config::parse(GOOD, "faas.toml").unwrap();
        assert_eq!(c.app.name, "greeter");
        let mut spec = FunctionSpec::new("hello");
        c.functions["hello"].apply(&mut spec);
        assert_eq!(spec.timeout, Duration::from_secs(10));
        assert_eq!(spec.memory_mb, 256);
        assert_eq!(spec.env["GREETING"], "Hi");
        assert_eq!(spec.triggers, vec![Trigger::Http { method: Some("POST".into()), route: "/hello".into() }]);
        assert_eq!(c.backends["dev"].str("mode").unwrap().as_deref(), Some("process"));
    }

    fn error(text: &str) -> ConfigError {
        Config::parse(text, "faas.toml").unwrap_err()
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = error("[app]\nname = \"a\"\n[functions.f]\nmemory_mb = \"lots\"\n");
        assert_eq!((e.line, e.key.as_deref()), (4, Some("functions.f.memory_mb")));

        let e = error("[app]\nname = \"a\"\n[functions.f]\ntimeot = \"1s\"\n");
        assert_eq!(e.key.as_deref(), Some("functions.f.timeot"));
        assert!(e.message.contains("unknown field `timeot`"), "{e}");
        assert_eq!(e.line, 4);

        let e = error("[app]\nname = \"a\"\n[backends.prod]\nregion = \"x\"\n");
        assert_eq!(e.key.as_deref(), Some("backends.prod.kind"));
        assert!(e.message.contains("missing required key `kind`"), "{e}");

        let e = error("[app]\nname = \"a\"\n[functions.f]\n[functions.f]\n");
        assert_eq!(e.line, 4, "{e}");

        let e = error("[app]\nname = \"a\"\n[functions.\"a/b\"]\n");
        assert_eq!(e.key.as_deref(), Some("functions.a/b"));

        let e = error("[app\nname = 1\n");
        assert_eq!(e.line, 1);

        let e = error("[app]\nname = \"a\"\n[backends.p]\nkind = \"lambda\"\ntoken = \"hunter2\"\n");
        assert_eq!((e.line, e.key.as_deref()), (5, Some("backends.p.token")));
        assert!(!e.to_string().contains("hunter2"));

        let e = error("[app]\nname = \"a\"\n[functions.f]\ntimeout = \"5 parsecs\"\n");
        assert!(e.message.contains("unknown unit `parsecs`"), "{e}");
        assert_eq!(e.line, 4);

        let e = error("[functions.f]\n");
        assert_eq!(e.key.as_deref(), Some("app"), "{e}");
    }

    #[test]
    fn secret_references_resolve_from_the_environment() {
        let c = Config::parse(GOOD, "faas.toml").unwrap();
        // SAFETY: set once, before anything reads it, and no other test in this crate reads or
        // writes `AWS_SECRET`.
        unsafe { std::env::set_var("AWS_SECRET", "s3cr3t") };
        assert_eq!(c.backends["prod"].secret("secret_access_key").unwrap().as_deref(), Some("s3cr3t"));
    }

    #[test]
    fn no_backends_means_local() {
        let c = Config::default_for("x");
        assert_eq!(c.select_backend_with(None, None, &[]).unwrap().kind, "local");
    }
}
