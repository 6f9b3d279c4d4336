//! The portable invocation [`Context`] every handler receives.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use cloudevents::Event;
use serde::Serialize;

use crate::{Error, Payload};

/// What a host offers a running function beyond its input: calling other functions by logical
/// name and emitting events. Each backend implements it once; handlers reach it through
/// [`Context::invoke`] and [`Context::emit`].
#[async_trait]
pub trait Services: Send + Sync + 'static {
    /// Invokes function `name` synchronously and returns its reply.
    async fn invoke(&self, caller: &Context, name: &str, payload: Payload) -> Result<Payload, Error>;
    /// Emits a CloudEvent to whatever routes events on this backend.
    async fn emit(&self, caller: &Context, event: Event) -> Result<(), Error>;
}

/// [`Services`] for a host that has no way to reach other functions: every call is refused with
/// a `backend_unavailable` error saying so.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoServices;

#[async_trait]
impl Services for NoServices {
    async fn invoke(&self, _: &Context, name: &str, _: Payload) -> Result<Payload, Error> {
        Err(Error::unavailable(format!(
            "cannot invoke `{name}`: this host was started without a way to reach other functions"
        )))
    }
    async fn emit(&self, _: &Context, event: Event) -> Result<(), Error> {
        Err(Error::unavailable(format!(
            "cannot emit event `{}`: this host was started without an event route",
            cloudevents::AttributesReader::id(&event)
        )))
    }
}

/// Severity of a line written through a [`Logger`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Informational.
    Info,
    /// Something odd but not fatal.
    Warn,
    /// An error.
    Error,
}

impl Level {
    /// Upper-case name, as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// Where a [`Logger`] writes. The default writes to standard output, which every platform
/// captures per invocation; the in-process local host captures into the activation record.
pub trait LogSink: Send + Sync + 'static {
    /// Writes one line for invocation `invocation_id`.
    fn write(&self, invocation_id: &str, level: Level, line: &str);
}

/// Writes `LEVEL message` lines to standard output.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutSink;

impl LogSink for StdoutSink {
    fn write(&self, _invocation_id: &str, level: Level, line: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{} {}", level.as_str(), line);
        let _ = out.flush();
    }
}

/// The per-invocation logger handed out by [`Context::logger`]. Lines are attributed to the
/// invocation by whichever host runs it, and are mirrored as `tracing` events.
///
/// ```
/// let cx = faas_api::Context::builder("hello").build();
/// cx.logger().info("greeting Ada");
/// ```
#[derive(Clone)]
pub struct Logger {
    invocation_id: Arc<str>,
    sink: Arc<dyn LogSink>,
}

impl Logger {
    /// Writes an informational line.
    pub fn info(&self, line: impl AsRef<str>) {
        self.log(Level::Info, line.as_ref())
    }
    /// Writes a warning line.
    pub fn warn(&self, line: impl AsRef<str>) {
        self.log(Level::Warn, line.as_ref())
    }
    /// Writes an error line.
    pub fn error(&self, line: impl AsRef<str>) {
        self.log(Level::Error, line.as_ref())
    }
    /// Writes a line at `level`.
    pub fn log(&self, level: Level, line: &str) {
        tracing::event!(tracing::Level::DEBUG, invocation = %self.invocation_id, level = level.as_str(), "{line}");
        self.sink.write(&self.invocation_id, level, line);
    }
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger").field("invocation_id", &self.invocation_id).finish()
    }
}

/// A W3C Trace Context (`traceparent`), parsed.
///
/// ```
/// use faas_api::TraceContext;
/// let t = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!(t.sampled());
/// assert!(TraceContext::parse("not a traceparent").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: String,
    parent_id: String,
    flags: u8,
}

impl TraceContext {
    /// Parses a `traceparent` header value (version `00`; future versions accepted per the spec's
    /// forward-compatibility rule when the first four fields are well formed).
    ///
    /// ```
    /// use faas_api::TraceContext;
    /// assert!(TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_some());
    /// assert!(TraceContext::parse("hello").is_none());
    /// assert!(TraceContext::parse("00-00000000000000000000000000000000-b7ad6b7169203331-01").is_none());
    /// ```
    pub fn parse(header: &str) -> Option<TraceContext> {
        let mut parts = header.trim().split('-');
        let version = parts.next()?;
        let trace_id = parts.next()?;
        let parent_id = parts.next()?;
        let flags = parts.next()?;
        let hex =
            |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex(version, 2) || version == "ff" || !hex(trace_id, 32) || !hex(parent_id, 16) || !hex(flags, 2) {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        if trace_id.bytes().all(|b| b == b'0') || parent_id.bytes().all(|b| b == b'0') {
            return None;
        }
        Some(TraceContext {
            trace_id: trace_id.to_string(),
            parent_id: parent_id.to_string(),
            flags: u8::from_str_radix(flags, 16).ok()?,
        })
    }

    /// A fresh, sampled trace context with random ids.
    pub fn random() -> TraceContext {
        let a = uuid::Uuid::new_v4().simple().to_string();
        let b = uuid::Uuid::new_v4().simple().to_string();
        TraceContext { trace_id: a, parent_id: b[..16].to_string(), flags: 1 }
    }

    /// A child span of this trace: same trace id, new parent id.
    pub fn child(&self) -> TraceContext {
        let b = uuid::Uuid::new_v4().simple().to_string();
        TraceContext { trace_id: self.trace_id.clone(), parent_id: b[..16].to_string(), flags: self.flags }
    }

    /// The 32-hex-digit trace id.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The 16-hex-digit parent (span) id.
    pub fn parent_id(&self) -> &str {
        &self.parent_id
    }

    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.parent_id, self.flags)
    }
}

/// Everything a handler may know about its invocation, the same on every backend.
///
/// Hosts build contexts with [`Context::builder`]; handlers only read them.
///
/// ```
/// use std::time::Duration;
/// let cx = faas_api::Context::builder("hello")
///     .invocation_id("abc")
///     .timeout(Duration::from_secs(3))
///     .backend("local")
///     .build();
/// assert_eq!(cx.function_name(), "hello");
/// assert_eq!(cx.invocation_id(), "abc");
/// assert!(cx.remaining() <= Duration::from_secs(3));
/// ```
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    invocation_id: String,
    function_name: String,
    deadline: SystemTime,
    trace: TraceContext,
    backend: String,
    logger: Logger,
    services: Arc<dyn Services>,
    vars: BTreeMap<String, String>,
    extensions: http::Extensions,
}

impl Context {
    /// Starts building a context for function `function_name`.
    pub fn builder(function_name: impl Into<String>) -> ContextBuilder {
        ContextBuilder {
            function_name: function_name.into(),
            invocation_id: None,
            deadline: None,
            trace: None,
            backend: "local".to_string(),
            sink: None,
            services: None,
            vars: BTreeMap::new(),
            extensions: http::Extensions::new(),
        }
    }

    /// The unique id of this invocation.
    pub fn invocation_id(&self) -> &str {
        &self.inner.invocation_id
    }

    /// The logical name of the function being invoked.
    pub fn function_name(&self) -> &str {
        &self.inner.function_name
    }

    /// The wall-clock deadline of this invocation.
    pub fn deadline(&self) -> SystemTime {
        self.inner.deadline
    }

    /// The deadline in Unix epoch milliseconds.
    pub fn deadline_ms(&self) -> u64 {
        self.inner.deadline.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
    }

    /// Time left before the deadline (zero once past).
    pub fn remaining(&self) -> Duration {
        self.inner.deadline.duration_since(SystemTime::now()).unwrap_or_default()
    }

    /// The W3C trace context of this invocation (the caller's trace, or a fresh one).
    pub fn trace(&self) -> &TraceContext {
        &self.inner.trace
    }

    /// The name of the backend running the function: `local`, `lambda`, `azure`, `gcf`, `openwhisk`.
    pub fn backend(&self) -> &str {
        &self.inner.backend
    }

    /// The logger whose lines are attributed to this invocation.
    pub fn logger(&self) -> &Logger {
        &self.inner.logger
    }

    /// A configuration variable of the function: the deployed variables where the host carries
    /// them explicitly, otherwise the process environment.
    ///
    /// ```
    /// let cx = faas_api::Context::builder("f").var("GREETING", "hi").build();
    /// assert_eq!(cx.var("GREETING").as_deref(), Some("hi"));
    /// ```
    pub fn var(&self, key: &str) -> Option<String> {
        self.inner.vars.get(key).cloned().or_else(|| std::env::var(key).ok())
    }

    /// Invokes another function by logical name, on whatever backend hosts this one.
    pub async fn invoke(&self, name: &str, payload: Payload) -> Result<Payload, Error> {
        let services = self.inner.services.clone();
        services.invoke(self, name, payload).await
    }

    /// Emits a CloudEvent.
    pub async fn emit(&self, event: Event) -> Result<(), Error> {
        let services = self.inner.services.clone();
        services.emit(self, event).await
    }

    /// A backend-specific extension, when the host provides one of type `T`.
    pub fn extension<T: Send + Sync + Clone + 'static>(&self) -> Option<&T> {
        self.inner.extensions.get::<T>()
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("invocation_id", &self.inner.invocation_id)
            .field("function_name", &self.inner.function_name)
            .field("deadline_ms", &self.deadline_ms())
            .field("trace", &self.inner.trace)
            .field("backend", &self.inner.backend)
            .finish()
    }
}

/// A JSON view of a context, as the conformance `context` probe reports it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ContextReport {
    /// [`Context::invocation_id`].
    pub invocation_id: String,
    /// [`Context::function_name`].
    pub function_name: String,
    /// [`Context::deadline_ms`].
    pub deadline_ms: u64,
    /// Milliseconds left when the report was made.
    pub remaining_ms: u64,
    /// [`TraceContext::trace_id`].
    pub trace_id: String,
    /// [`TraceContext::traceparent`].
    pub traceparent: String,
    /// [`Context::backend`].
    pub backend: String,
}

impl From<&Context> for ContextReport {
    fn from(cx: &Context) -> ContextReport {
        ContextReport {
            invocation_id: cx.invocation_id().to_string(),
            function_name: cx.function_name().to_string(),
            deadline_ms: cx.deadline_ms(),
            remaining_ms: cx.remaining().as_millis() as u64,
            trace_id: cx.trace().trace_id().to_string(),
            traceparent: cx.trace().traceparent(),
            backend: cx.backend().to_string(),
        }
    }
}

/// Builds a [`Context`]; used by hosts, not handlers.
pub struct ContextBuilder {
    function_name: String,
    invocation_id: Option<String>,
    deadline: Option<SystemTime>,
    trace: Option<TraceContext>,
    backend: String,
    sink: Option<Arc<dyn LogSink>>,
    services: Option<Arc<dyn Services>>,
    vars: BTreeMap<String, String>,
    extensions: http::Extensions,
}

impl ContextBuilder {
    /// Sets the invocation id (default: a fresh UUID).
    pub fn invocation_id(mut self, id: impl Into<String>) -> Self {
        self.invocation_id = Some(id.into());
        self
    }
    /// Sets the absolute deadline.
    pub fn deadline(mut self, deadline: SystemTime) -> Self {
        self.deadline = Some(deadline);
        self
    }
    /// Sets the deadline from Unix epoch milliseconds.
    pub fn deadline_ms(self, ms: u64) -> Self {
        self.deadline(UNIX_EPOCH + Duration::from_millis(ms))
    }
    /// Sets the deadline to now + `timeout`.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.deadline(SystemTime::now() + timeout)
    }
    /// Sets the trace context.
    pub fn trace(mut self, trace: TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }
    /// Sets the trace context from an optional `traceparent` header; an absent or invalid one
    /// starts a new trace.
    pub fn traceparent(mut self, header: Option<&str>) -> Self {
        self.trace = header.and_then(TraceContext::parse);
        self
    }
    /// Sets the backend name.
    pub fn backend(mut self, backend: impl Into<String>) -> Self {
        self.backend = backend.into();
        self
    }
    /// Sets where log lines go (default: standard output).
    pub fn log_sink(mut self, sink: Arc<dyn LogSink>) -> Self {
        self.sink = Some(sink);
        self
    }
    /// Sets the services used by [`Context::invoke`] and [`Context::emit`].
    pub fn services(mut self, services: Arc<dyn Services>) -> Self {
        self.services = Some(services);
        self
    }
    /// Adds a configuration variable visible through [`Context::var`].
    pub fn var(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(key.into(), value.into());
        self
    }
    /// Adds all variables of `vars`.
    pub fn vars(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.vars.extend(vars);
        self
    }
    /// Adds a backend-specific extension value.
    pub fn extension<T: Send + Sync + Clone + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }
    /// Finishes the context.
    pub fn build(self) -> Context {
        let invocation_id = self.invocation_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let logger = Logger {
            invocation_id: Arc::from(invocation_id.as_str()),
            sink: self.sink.unwrap_or_else(|| Arc::new(StdoutSink)),
        };
        Context {
            inner: Arc::new(Inner {
                invocation_id,
                function_name: self.function_name,
                deadline: self.deadline.unwrap_or_else(|| SystemTime::now() + Duration::from_secs(3)),
                trace: self.trace.unwrap_or_else(TraceContext::random),
                backend: self.backend,
                logger,
                services: self.services.unwrap_or_else(|| Arc::new(NoServices)),
                vars: self.vars,
                extensions: self.extensions,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_all_zero_ids() {
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert_eq!(TraceContext::parse(s).unwrap().traceparent(), s);
        assert!(TraceContext::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
        assert!(TraceContext::parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_none());
        let child = TraceContext::parse(s).unwrap().child();
        assert_eq!(child.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(child.parent_id(), "00f067aa0ba902b7");
    }

    #[test]
    fn invalid_traceparent_starts_a_new_trace() {
        let cx = Context::builder("f").traceparent(Some("garbage")).build();
        assert_eq!(cx.trace().trace_id().len(), 32);
    }

    #[tokio::test]
    async fn no_services_refuses_with_backend_unavailable() {
        let cx = Context::builder("f").build();
        let err = cx.invoke("other", Payload::empty()).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::BackendUnavailable);
        assert!(err.message().contains("other"));
    }
}
