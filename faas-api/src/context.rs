//! The portable invocation [`Context`] every handler receives.
//!
//! ```
//! use faas_api::{App, Context, Error};
//! async fn whoami(cx: Context, _: serde_json::Value) -> Result<serde_json::Value, Error> {
//!     Ok(serde_json::json!({"function": cx.function_name(), "backend": cx.backend()}))
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let app = App::new().function("whoami", whoami);
//! let reply = app.call_json("whoami", &serde_json::json!({})).await.unwrap();
//! assert_eq!(reply, serde_json::json!({"function": "whoami", "backend": "local"}));
//! # }
//! ```

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
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use faas_api::cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
/// use faas_api::{Context, Error, Payload, Services};
///
/// /// Answers every call with the callee's name and keeps the ids of emitted events.
/// #[derive(Default)]
/// struct Fake {
///     emitted: Mutex<Vec<String>>,
/// }
///
/// #[async_trait::async_trait]
/// impl Services for Fake {
///     async fn invoke(&self, _caller: &Context, name: &str, _payload: Payload) -> Result<Payload, Error> {
///         Ok(Payload::bytes(name.to_string()))
///     }
///     async fn emit(&self, _caller: &Context, event: Event) -> Result<(), Error> {
///         self.emitted.lock().unwrap().push(event.id().to_string());
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let fake = Arc::new(Fake::default());
/// let cx = Context::builder("caller").services(fake.clone()).build();
/// let reply = cx.invoke("other", Payload::empty()).await.unwrap();
/// assert_eq!(reply.body().as_ref(), b"other");
/// cx.emit(EventBuilderV10::new().id("e1").source("/test").ty("t").build().unwrap()).await.unwrap();
/// assert_eq!(*fake.emitted.lock().unwrap(), ["e1"]);
/// # }
/// ```
#[async_trait]
pub trait Services: Send + Sync + 'static {
    /// Invokes function `name` synchronously and returns its reply.
    async fn invoke(&self, caller: &Context, name: &str, payload: Payload) -> Result<Payload, Error>;
    /// Emits a CloudEvent to whatever routes events on this backend.
    async fn emit(&self, caller: &Context, event: Event) -> Result<(), Error>;
}

/// [`Services`] for a host that has no way to reach other functions: every call is refused with
/// a `backend_unavailable` error saying so.
///
/// ```
/// use std::sync::Arc;
/// use faas_api::{Context, ErrorKind, Payload, context::NoServices};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // `NoServices` is also what a context built without `services` uses.
/// let cx = Context::builder("f").services(Arc::new(NoServices)).build();
/// let err = cx.invoke("other", Payload::empty()).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::BackendUnavailable);
/// assert!(err.message().contains("cannot invoke `other`"), "{}", err.message());
/// # }
/// ```
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
///
/// ```
/// use faas_api::Level;
/// assert_eq!(Level::Warn.as_str(), "WARN");
/// assert_eq!(serde_json::to_string(&Level::Warn).unwrap(), r#""warn""#);
/// ```
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
    ///
    /// ```
    /// use faas_api::Level;
    /// assert_eq!(Level::Info.as_str(), "INFO");
    /// assert_eq!(Level::Error.as_str(), "ERROR");
    /// ```
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
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use faas_api::{Context, Level, LogSink};
///
/// /// Keeps `invocation LEVEL line` strings.
/// #[derive(Default)]
/// struct Lines(Mutex<Vec<String>>);
///
/// impl LogSink for Lines {
///     fn write(&self, invocation_id: &str, level: Level, line: &str) {
///         self.0.lock().unwrap().push(format!("{invocation_id} {} {line}", level.as_str()));
///     }
/// }
///
/// let lines = Arc::new(Lines::default());
/// let cx = Context::builder("f").invocation_id("inv-1").log_sink(lines.clone()).build();
/// cx.logger().info("hello");
/// assert_eq!(*lines.0.lock().unwrap(), ["inv-1 INFO hello"]);
/// ```
pub trait LogSink: Send + Sync + 'static {
    /// Writes one line for invocation `invocation_id`.
    fn write(&self, invocation_id: &str, level: Level, line: &str);
}

/// Writes `LEVEL message` lines to standard output.
///
/// It is the default sink, since every platform captures a function's standard output.
///
/// ```
/// use std::sync::Arc;
/// use faas_api::{Context, Level, LogSink, context::StdoutSink};
/// StdoutSink.write("inv-1", Level::Info, "hello"); // prints `INFO hello`
/// // It is also what a context logs to when no sink is set.
/// let cx = Context::builder("f").log_sink(Arc::new(StdoutSink)).build();
/// cx.logger().warn("careful"); // prints `WARN careful`
/// ```
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
/// # use std::sync::{Arc, Mutex};
/// # use faas_api::{Context, Level, LogSink};
/// # #[derive(Default)]
/// # struct Lines(Mutex<Vec<String>>);
/// # impl LogSink for Lines {
/// #     fn write(&self, _id: &str, level: Level, line: &str) {
/// #         self.0.lock().unwrap().push(format!("{} {line}", level.as_str()));
/// #     }
/// # }
/// # let lines = Arc::new(Lines::default());
/// // `lines` is a `LogSink` that keeps every line it is given.
/// let cx = Context::builder("f").log_sink(lines.clone()).build();
/// cx.logger().info("greeting Ada");
/// cx.logger().error("no name given");
/// assert_eq!(*lines.0.lock().unwrap(), ["INFO greeting Ada", "ERROR no name given"]);
/// ```
#[derive(Clone)]
pub struct Logger {
    invocation_id: Arc<str>,
    sink: Arc<dyn LogSink>,
}

impl Logger {
    /// Writes an informational line.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use faas_api::{Context, Level, LogSink};
    /// # #[derive(Default)]
    /// # struct Lines(Mutex<Vec<String>>);
    /// # impl LogSink for Lines {
    /// #     fn write(&self, _id: &str, level: Level, line: &str) {
    /// #         self.0.lock().unwrap().push(format!("{} {line}", level.as_str()));
    /// #     }
    /// # }
    /// # let lines = Arc::new(Lines::default());
    /// // `lines` is a `LogSink` that keeps every line it is given.
    /// let cx = Context::builder("f").log_sink(lines.clone()).build();
    /// cx.logger().info("started");
    /// assert_eq!(*lines.0.lock().unwrap(), ["INFO started"]);
    /// ```
    pub fn info(&self, line: impl AsRef<str>) {
        self.log(Level::Info, line.as_ref())
    }
    /// Writes a warning line.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use faas_api::{Context, Level, LogSink};
    /// # #[derive(Default)]
    /// # struct Lines(Mutex<Vec<String>>);
    /// # impl LogSink for Lines {
    /// #     fn write(&self, _id: &str, level: Level, line: &str) {
    /// #         self.0.lock().unwrap().push(format!("{} {line}", level.as_str()));
    /// #     }
    /// # }
    /// # let lines = Arc::new(Lines::default());
    /// // `lines` is a `LogSink` that keeps every line it is given.
    /// let cx = Context::builder("f").log_sink(lines.clone()).build();
    /// cx.logger().warn(String::from("retrying"));
    /// assert_eq!(*lines.0.lock().unwrap(), ["WARN retrying"]);
    /// ```
    pub fn warn(&self, line: impl AsRef<str>) {
        self.log(Level::Warn, line.as_ref())
    }
    /// Writes an error line.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use faas_api::{Context, Level, LogSink};
    /// # #[derive(Default)]
    /// # struct Lines(Mutex<Vec<String>>);
    /// # impl LogSink for Lines {
    /// #     fn write(&self, _id: &str, level: Level, line: &str) {
    /// #         self.0.lock().unwrap().push(format!("{} {line}", level.as_str()));
    /// #     }
    /// # }
    /// # let lines = Arc::new(Lines::default());
    /// // `lines` is a `LogSink` that keeps every line it is given.
    /// let cx = Context::builder("f").log_sink(lines.clone()).build();
    /// cx.logger().error("gave up");
    /// assert_eq!(*lines.0.lock().unwrap(), ["ERROR gave up"]);
    /// ```
    pub fn error(&self, line: impl AsRef<str>) {
        self.log(Level::Error, line.as_ref())
    }
    /// Writes a line at `level`.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use faas_api::{Context, Level, LogSink};
    /// # #[derive(Default)]
    /// # struct Lines(Mutex<Vec<String>>);
    /// # impl LogSink for Lines {
    /// #     fn write(&self, _id: &str, level: Level, line: &str) {
    /// #         self.0.lock().unwrap().push(format!("{} {line}", level.as_str()));
    /// #     }
    /// # }
    /// # let lines = Arc::new(Lines::default());
    /// // `lines` is a `LogSink` that keeps every line it is given.
    /// let cx = Context::builder("f").log_sink(lines.clone()).build();
    /// cx.logger().log(Level::Warn, "low on memory");
    /// assert_eq!(*lines.0.lock().unwrap(), ["WARN low on memory"]);
    /// ```
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
    ///
    /// ```
    /// use faas_api::TraceContext;
    /// let t = TraceContext::random();
    /// assert!(t.sampled());
    /// assert_eq!((t.trace_id().len(), t.parent_id().len()), (32, 16));
    /// assert_eq!(TraceContext::parse(&t.traceparent()), Some(t.clone()));
    /// assert_ne!(TraceContext::random().trace_id(), t.trace_id());
    /// ```
    pub fn random() -> TraceContext {
        // Version-4 UUIDs are never all zero (their version and variant bits are set), which W3C
        // forbids for both ids; the low half of the second keeps its variant bits.
        let trace = uuid::Uuid::new_v4().as_u128();
        let parent = uuid::Uuid::new_v4().as_u64_pair().1;
        TraceContext { trace_id: format!("{trace:032x}"), parent_id: format!("{parent:016x}"), flags: 1 }
    }

    /// A child span of this trace: same trace id and flags, new parent id.
    ///
    /// ```
    /// use faas_api::TraceContext;
    /// let t = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// let child = t.child();
    /// assert_eq!(child.trace_id(), t.trace_id());
    /// assert_ne!(child.parent_id(), t.parent_id());
    /// assert!(child.sampled());
    /// ```
    pub fn child(&self) -> TraceContext {
        let b = uuid::Uuid::new_v4().simple().to_string();
        TraceContext { trace_id: self.trace_id.clone(), parent_id: b[..16].to_string(), flags: self.flags }
    }

    /// The 32-hex-digit trace id.
    ///
    /// ```
    /// let t = faas_api::TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// ```
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The 16-hex-digit parent (span) id.
    ///
    /// ```
    /// let t = faas_api::TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// assert_eq!(t.parent_id(), "00f067aa0ba902b7");
    /// ```
    pub fn parent_id(&self) -> &str {
        &self.parent_id
    }

    /// Whether the sampled flag is set.
    ///
    /// ```
    /// use faas_api::TraceContext;
    /// assert!(TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap().sampled());
    /// assert!(!TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap().sampled());
    /// ```
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The `traceparent` header value (version `00`).
    ///
    /// ```
    /// let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// assert_eq!(faas_api::TraceContext::parse(header).unwrap().traceparent(), header);
    /// ```
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

#[derive(Clone)]
struct Inner {
    invocation_id: String,
    function_name: String,
    deadline: SystemTime,
    trace: TraceContext,
    backend: String,
    logger: Logger,
    services: Arc<dyn Services>,
    state: Arc<dyn crate::state::StateStore>,
    vars: BTreeMap<String, String>,
    extensions: http::Extensions,
}

impl Context {
    /// Starts building a context for function `function_name`.
    ///
    /// ```
    /// let cx = faas_api::Context::builder("hello").backend("lambda").build();
    /// assert_eq!(cx.function_name(), "hello");
    /// assert_eq!(cx.backend(), "lambda");
    /// ```
    pub fn builder(function_name: impl Into<String>) -> ContextBuilder {
        ContextBuilder {
            function_name: function_name.into(),
            invocation_id: None,
            deadline: None,
            trace: None,
            backend: "local".to_string(),
            sink: None,
            services: None,
            state: None,
            vars: BTreeMap::new(),
            extensions: http::Extensions::new(),
        }
    }

    /// The unique id of this invocation.
    ///
    /// ```
    /// use faas_api::Context;
    /// assert_eq!(Context::builder("f").invocation_id("abc").build().invocation_id(), "abc");
    /// // Hosts that set none get a fresh UUID.
    /// assert_eq!(Context::builder("f").build().invocation_id().len(), 36);
    /// ```
    pub fn invocation_id(&self) -> &str {
        &self.inner.invocation_id
    }

    /// The logical name of the function being invoked.
    ///
    /// ```
    /// assert_eq!(faas_api::Context::builder("resize-image").build().function_name(), "resize-image");
    /// ```
    pub fn function_name(&self) -> &str {
        &self.inner.function_name
    }

    /// The wall-clock deadline of this invocation.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let at = SystemTime::now() + Duration::from_secs(60);
    /// assert_eq!(faas_api::Context::builder("f").deadline(at).build().deadline(), at);
    /// ```
    pub fn deadline(&self) -> SystemTime {
        self.inner.deadline
    }

    /// The deadline in Unix epoch milliseconds.
    ///
    /// ```
    /// let cx = faas_api::Context::builder("f").deadline_ms(1_700_000_000_123).build();
    /// assert_eq!(cx.deadline_ms(), 1_700_000_000_123);
    /// ```
    pub fn deadline_ms(&self) -> u64 {
        self.inner.deadline.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
    }

    /// Time left before the deadline (zero once past).
    ///
    /// ```
    /// use std::time::Duration;
    /// use faas_api::Context;
    /// assert!(Context::builder("f").timeout(Duration::from_secs(30)).build().remaining() <= Duration::from_secs(30));
    /// // A deadline in the past leaves nothing.
    /// assert_eq!(Context::builder("f").deadline_ms(1_000).build().remaining(), Duration::ZERO);
    /// ```
    pub fn remaining(&self) -> Duration {
        self.inner.deadline.duration_since(SystemTime::now()).unwrap_or_default()
    }

    /// The W3C trace context of this invocation (the caller's trace, or a fresh one).
    ///
    /// ```
    /// let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// let cx = faas_api::Context::builder("f").traceparent(Some(tp)).build();
    /// assert_eq!(cx.trace().trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// ```
    pub fn trace(&self) -> &TraceContext {
        &self.inner.trace
    }

    /// The name of the backend running the function: `local`, `lambda`, `azure`, `gcf`, `openwhisk`.
    ///
    /// ```
    /// use faas_api::Context;
    /// assert_eq!(Context::builder("f").build().backend(), "local");
    /// assert_eq!(Context::builder("f").backend("lambda").build().backend(), "lambda");
    /// ```
    pub fn backend(&self) -> &str {
        &self.inner.backend
    }

    /// The logger whose lines are attributed to this invocation.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use faas_api::{Context, Level, LogSink};
    /// # #[derive(Default)]
    /// # struct Lines(Mutex<Vec<String>>);
    /// # impl LogSink for Lines {
    /// #     fn write(&self, _id: &str, level: Level, line: &str) {
    /// #         self.0.lock().unwrap().push(format!("{} {line}", level.as_str()));
    /// #     }
    /// # }
    /// # let lines = Arc::new(Lines::default());
    /// // `lines` is a `LogSink` that keeps every line it is given.
    /// let cx = Context::builder("f").log_sink(lines.clone()).build();
    /// cx.logger().info("hi");
    /// assert_eq!(*lines.0.lock().unwrap(), ["INFO hi"]);
    /// ```
    pub fn logger(&self) -> &Logger {
        &self.inner.logger
    }

    /// The function's state: keys of its app kept by the backend's state service, the same on
    /// every backend (see [`crate::state`]).
    pub fn state(&self) -> crate::state::State {
        crate::state::State::new(self.inner.state.clone())
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

    /// The context of a step this invocation runs itself (a composition's step fused into it):
    /// function `function_name`, invocation id `{this id}/{step}`, a child span of this trace, and
    /// everything else of this one: the deadline, the backend, the log sink (the step's lines
    /// carry its own id), the services, the variables and the extensions.
    ///
    /// ```
    /// let cx = faas_api::Context::builder("checkout").invocation_id("run-1").var("K", "v").build();
    /// let step = cx.step("charge", "3");
    /// assert_eq!((step.function_name(), step.invocation_id()), ("charge", "run-1/3"));
    /// assert_eq!(step.trace().trace_id(), cx.trace().trace_id());
    /// assert_ne!(step.trace().parent_id(), cx.trace().parent_id());
    /// assert_eq!((step.deadline(), step.var("K")), (cx.deadline(), Some("v".to_string())));
    /// ```
    pub fn step(&self, function_name: &str, step: &str) -> Context {
        let inner = &self.inner;
        let invocation_id = format!("{}/{step}", inner.invocation_id);
        let logger = Logger { invocation_id: Arc::from(invocation_id.as_str()), sink: inner.logger.sink.clone() };
        Context {
            inner: Arc::new(Inner {
                invocation_id,
                function_name: function_name.to_string(),
                deadline: inner.deadline,
                trace: inner.trace.child(),
                backend: inner.backend.clone(),
                logger,
                services: inner.services.clone(),
                state: inner.state.clone(),
                vars: inner.vars.clone(),
                extensions: inner.extensions.clone(),
            }),
        }
    }

    /// This context with one more extension (replacing one of the same type).
    ///
    /// ```
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Depth(u32);
    /// let cx = faas_api::Context::builder("f").build().with_extension(Depth(2));
    /// assert_eq!(cx.extension::<Depth>(), Some(&Depth(2)));
    /// ```
    pub fn with_extension<T: Send + Sync + Clone + 'static>(mut self, value: T) -> Context {
        Arc::make_mut(&mut self.inner).extensions.insert(value);
        self
    }

    /// Invokes another function by logical name, on whatever backend hosts this one.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use faas_api::{Context, Error, ErrorKind, Payload, Services};
    /// # use faas_api::cloudevents::Event;
    /// /// Calls `upper` locally: upper-cases the payload.
    /// struct Local;
    /// #[async_trait::async_trait]
    /// impl Services for Local {
    ///     async fn invoke(&self, _: &Context, name: &str, p: Payload) -> Result<Payload, Error> {
    ///         match name {
    ///             "upper" => Ok(Payload::bytes(p.body().to_ascii_uppercase())),
    ///             _ => Err(Error::not_found(format!("no function named `{name}`"))),
    ///         }
    ///     }
    ///     # async fn emit(&self, _: &Context, _: Event) -> Result<(), Error> { Ok(()) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cx = Context::builder("caller").services(Arc::new(Local)).build();
    /// let reply = cx.invoke("upper", Payload::bytes("shout")).await.unwrap();
    /// assert_eq!(reply.body().as_ref(), b"SHOUT");
    /// assert_eq!(cx.invoke("nope", Payload::empty()).await.unwrap_err().kind(), ErrorKind::NotFound);
    /// # }
    /// ```
    pub async fn invoke(&self, name: &str, payload: Payload) -> Result<Payload, Error> {
        let services = self.inner.services.clone();
        services.invoke(self, name, payload).await
    }

    /// Emits a CloudEvent.
    ///
    /// Where it goes depends on the host (see [`Services::emit`]); with no event route the call
    /// fails with a `backend_unavailable` error.
    ///
    /// ```
    /// use faas_api::cloudevents::{EventBuilder, EventBuilderV10};
    /// use faas_api::{Context, ErrorKind};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let event = EventBuilderV10::new().id("1").source("/shop").ty("order.created").build().unwrap();
    /// // A context without services (see `Services` for one that has them) refuses to emit.
    /// let err = Context::builder("f").build().emit(event).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::BackendUnavailable);
    /// # }
    /// ```
    pub async fn emit(&self, event: Event) -> Result<(), Error> {
        let services = self.inner.services.clone();
        services.emit(self, event).await
    }

    /// A backend-specific extension, when the host provides one of type `T`.
    ///
    /// ```
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Region(String);
    /// let cx = faas_api::Context::builder("f").extension(Region("eu-west-1".into())).build();
    /// assert_eq!(cx.extension::<Region>(), Some(&Region("eu-west-1".into())));
    /// assert_eq!(cx.extension::<u32>(), None);
    /// ```
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
///
/// ```
/// use faas_api::{Context, ContextReport};
/// let cx = Context::builder("probe").invocation_id("abc").backend("local").build();
/// let report = ContextReport::from(&cx);
/// assert_eq!((report.invocation_id.as_str(), report.function_name.as_str()), ("abc", "probe"));
/// assert_eq!(report.traceparent, cx.trace().traceparent());
/// let json = serde_json::to_value(&report).unwrap();
/// assert_eq!(json["backend"], "local");
/// ```
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
///
/// ```
/// use std::time::Duration;
/// use faas_api::Context;
/// let cx = Context::builder("hello")
///     .invocation_id("abc")
///     .timeout(Duration::from_secs(10))
///     .traceparent(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
///     .backend("local")
///     .var("GREETING", "hi")
///     .build();
/// assert_eq!(cx.invocation_id(), "abc");
/// assert_eq!(cx.trace().trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(cx.var("GREETING").as_deref(), Some("hi"));
/// ```
pub struct ContextBuilder {
    function_name: String,
    invocation_id: Option<String>,
    deadline: Option<SystemTime>,
    trace: Option<TraceContext>,
    backend: String,
    sink: Option<Arc<dyn LogSink>>,
    services: Option<Arc<dyn Services>>,
    state: Option<Arc<dyn crate::state::StateStore>>,
    vars: BTreeMap<String, String>,
    extensions: http::Extensions,
}

impl ContextBuilder {
    /// Sets the invocation id (default: a fresh UUID).
    ///
    /// ```
    /// assert_eq!(faas_api::Context::builder("f").invocation_id("inv-7").build().invocation_id(), "inv-7");
    /// ```
    pub fn invocation_id(mut self, id: impl Into<String>) -> Self {
        self.invocation_id = Some(id.into());
        self
    }
    /// Sets the absolute deadline.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let cx = faas_api::Context::builder("f").deadline(UNIX_EPOCH + Duration::from_secs(2_000_000_000)).build();
    /// assert_eq!(cx.deadline_ms(), 2_000_000_000_000);
    /// ```
    pub fn deadline(mut self, deadline: SystemTime) -> Self {
        self.deadline = Some(deadline);
        self
    }
    /// Sets the deadline from Unix epoch milliseconds.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let cx = faas_api::Context::builder("f").deadline_ms(1_500).build();
    /// assert_eq!(cx.deadline(), UNIX_EPOCH + Duration::from_millis(1_500));
    /// ```
    pub fn deadline_ms(self, ms: u64) -> Self {
        self.deadline(UNIX_EPOCH + Duration::from_millis(ms))
    }
    /// Sets the deadline to now + `timeout`.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let before = SystemTime::now();
    /// let cx = faas_api::Context::builder("f").timeout(Duration::from_secs(5)).build();
    /// assert!(cx.deadline() >= before + Duration::from_secs(5));
    /// assert!(cx.deadline() <= SystemTime::now() + Duration::from_secs(5));
    /// ```
    pub fn timeout(self, timeout: Duration) -> Self {
        self.deadline(SystemTime::now() + timeout)
    }
    /// Sets the trace context (default: a fresh random one).
    ///
    /// ```
    /// use faas_api::{Context, TraceContext};
    /// let trace = TraceContext::random();
    /// assert_eq!(Context::builder("f").trace(trace.clone()).build().trace(), &trace);
    /// ```
    pub fn trace(mut self, trace: TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }
    /// Sets the trace context from an optional `traceparent` header; an absent or invalid one
    /// starts a new trace.
    ///
    /// ```
    /// use faas_api::Context;
    /// let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// assert_eq!(Context::builder("f").traceparent(Some(tp)).build().trace().traceparent(), tp);
    /// let fresh = Context::builder("f").traceparent(Some("garbage")).build();
    /// assert_ne!(fresh.trace().trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// assert_eq!(fresh.trace().trace_id().len(), 32);
    /// ```
    pub fn traceparent(mut self, header: Option<&str>) -> Self {
        self.trace = header.and_then(TraceContext::parse);
        self
    }
    /// Sets the backend name (default: `local`).
    ///
    /// ```
    /// assert_eq!(faas_api::Context::builder("f").backend("openwhisk").build().backend(), "openwhisk");
    /// ```
    pub fn backend(mut self, backend: impl Into<String>) -> Self {
        self.backend = backend.into();
        self
    }
    /// Sets where log lines go (default: standard output).
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use faas_api::{Context, Level, LogSink};
    /// # #[derive(Default)]
    /// # struct Lines(Mutex<Vec<String>>);
    /// # impl LogSink for Lines {
    /// #     fn write(&self, _id: &str, level: Level, line: &str) {
    /// #         self.0.lock().unwrap().push(format!("{} {line}", level.as_str()));
    /// #     }
    /// # }
    /// # let lines = Arc::new(Lines::default());
    /// // `lines` is a `LogSink` that keeps every line it is given.
    /// let cx = Context::builder("f").log_sink(lines.clone()).build();
    /// cx.logger().info("captured");
    /// assert_eq!(*lines.0.lock().unwrap(), ["INFO captured"]);
    /// ```
    pub fn log_sink(mut self, sink: Arc<dyn LogSink>) -> Self {
        self.sink = Some(sink);
        self
    }
    /// Sets the services used by [`Context::invoke`] and [`Context::emit`] (default:
    /// [`NoServices`], which refuses both).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use faas_api::{Context, Error, Payload, Services};
    /// # use faas_api::cloudevents::Event;
    /// struct Echo;
    /// #[async_trait::async_trait]
    /// impl Services for Echo {
    ///     async fn invoke(&self, _: &Context, _: &str, p: Payload) -> Result<Payload, Error> { Ok(p) }
    ///     # async fn emit(&self, _: &Context, _: Event) -> Result<(), Error> { Ok(()) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cx = Context::builder("f").services(Arc::new(Echo)).build();
    /// assert_eq!(cx.invoke("any", Payload::bytes("ping")).await.unwrap().body().as_ref(), b"ping");
    /// # }
    /// ```
    pub fn services(mut self, services: Arc<dyn Services>) -> Self {
        self.services = Some(services);
        self
    }
    /// Sets where [`Context::state`] keeps the function's state (default: none, every
    /// operation refused with `backend_unavailable`); [`crate::state::MemoryState`] in a test.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let cx = faas_api::Context::builder("f").state(Arc::new(faas_api::state::MemoryState::default())).build();
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// cx.state().set("k", "v").await.unwrap();
    /// assert_eq!(&cx.state().get("k").await.unwrap().unwrap().value[..], b"v");
    /// # });
    /// ```
    pub fn state(mut self, store: Arc<dyn crate::state::StateStore>) -> Self {
        self.state = Some(store);
        self
    }
    /// Adds a configuration variable visible through [`Context::var`].
    ///
    /// ```
    /// let cx = faas_api::Context::builder("f").var("TABLE", "orders").build();
    /// assert_eq!(cx.var("TABLE").as_deref(), Some("orders"));
    /// ```
    pub fn var(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(key.into(), value.into());
        self
    }
    /// Adds all variables of `vars`.
    ///
    /// ```
    /// let vars = [("A".to_string(), "1".to_string()), ("B".to_string(), "2".to_string())];
    /// let cx = faas_api::Context::builder("f").vars(vars).build();
    /// assert_eq!((cx.var("A").as_deref(), cx.var("B").as_deref()), (Some("1"), Some("2")));
    /// ```
    pub fn vars(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.vars.extend(vars);
        self
    }
    /// Adds a backend-specific extension value.
    ///
    /// ```
    /// #[derive(Clone)]
    /// struct RequestId(u64);
    /// let cx = faas_api::Context::builder("f").extension(RequestId(7)).build();
    /// assert_eq!(cx.extension::<RequestId>().map(|r| r.0), Some(7));
    /// ```
    pub fn extension<T: Send + Sync + Clone + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }

    /// Adds every extension of `extensions` (a host collects a platform's facts in one set);
    /// values of a type already present replace it.
    ///
    /// ```
    /// let mut set = http::Extensions::new();
    /// set.insert(7u32);
    /// set.insert("lambda");
    /// let cx = faas_api::Context::builder("f").extension(1u32).extensions(set).build();
    /// assert_eq!(cx.extension::<u32>(), Some(&7));
    /// assert_eq!(cx.extension::<&str>(), Some(&"lambda"));
    /// ```
    pub fn extensions(mut self, extensions: http::Extensions) -> Self {
        self.extensions.extend(extensions);
        self
    }

    /// Finishes the context.
    ///
    /// Unset fields get defaults: a fresh UUID invocation id, a deadline 3 s from now, a new
    /// sampled trace, logging to standard output and [`NoServices`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let cx = faas_api::Context::builder("f").build();
    /// assert_eq!(cx.invocation_id().len(), 36); // a fresh UUID
    /// assert_eq!(cx.backend(), "local");
    /// assert!(cx.remaining() <= Duration::from_secs(3));
    /// assert!(cx.trace().sampled());
    /// ```
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
                state: self.state.unwrap_or_else(|| Arc::new(crate::state::NoState)),
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
