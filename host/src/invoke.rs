//! The invocation layer every host shares: from a platform's facts about one invocation to the
//! handler's reply.
//!
//! [`Invoker::invoke`] does, in order:
//!
//! 1. chooses the function by the one rule of [`choose_function`];
//! 2. builds the [`Context`] from the platform's [`Facts`] (invocation id, deadline, trace,
//!    platform extensions) and the host's settings (backend name, services, variables);
//! 3. runs the handler in its own task, so a panic becomes a crash error and the handler can be
//!    aborted: when [`Limits::abort_before`] is set, the handler is stopped that long before its
//!    deadline and the invocation fails with a [`faas_api::ErrorKind::Timeout`] error, which the
//!    host reports in its platform's format before the platform ends the instance. The timeout
//!    is answered once the handler has stopped: a handler stops at its next `.await`, so one stuck
//!    in blocking code (a busy loop, `std::thread::sleep`) is never answered for, and the
//!    platform's own limit (Lambda's timeout, the local pool's kill) ends the instance instead of
//!    the host carrying on beside a runaway thread;
//! 4. refuses a reply over [`Limits::max_reply`].
//!
//! [`Invoker::invoke_json_only`] does the same for platforms whose payloads must be JSON
//! documents, unwrapping and wrapping the [`crate::envelope`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::{Duration, SystemTime};
//! use faas_api::{App, Context, Error, ErrorKind, Payload};
//! use faas_host::{Facts, Invoker, Limits};
//!
//! async fn slow(_cx: Context, _p: Payload) -> Result<Payload, Error> {
//!     tokio::time::sleep(Duration::from_secs(60)).await;
//!     Ok(Payload::empty())
//! }
//! let limits = Limits { abort_before: Some(Duration::from_millis(10)), ..Limits::new("Example") };
//! let invoker = Invoker::new(App::new().raw("slow", slow), "example").limits(limits);
//! let facts = Facts { deadline: Some(SystemTime::now() + Duration::from_millis(100)), ..Facts::default() };
//! let err = invoker.invoke(facts, Payload::empty()).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Timeout);
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use faas_api::{App, Context, Error, Payload, Services, TraceContext};

/// The function to run, by the one rule every faas host follows:
///
/// 1. the name the platform gives (`named`: per request, like OpenWhisk's action name, or per
///    environment, like Lambda's `_HANDLER`), which must be a function of the app;
/// 2. else the app's only function;
/// 3. else an error naming the choices.
///
/// `named_by` says where the name comes from, for the error messages.
///
/// ```
/// use faas_api::{App, Context, Error, ErrorKind};
/// use faas_host::choose_function;
/// async fn f(_: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> { Ok(v) }
/// let two = App::new().function("a", f).function("b", f);
/// assert_eq!(choose_function(&two, Some("b"), "_HANDLER").unwrap(), "b");
/// let err = choose_function(&two, Some("c"), "_HANDLER").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert_eq!(err.message(), "no function named `c` (from _HANDLER); known functions: a, b");
/// let err = choose_function(&two, None, "_HANDLER").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::BadInput);
/// assert_eq!(err.message(), "_HANDLER is not set and the app defines 2 functions; name one of: a, b");
/// let one = App::new().function("only", f);
/// assert_eq!(choose_function(&one, None, "_HANDLER").unwrap(), "only");
/// ```
pub fn choose_function(app: &App, named: Option<&str>, named_by: &str) -> Result<String, Error> {
    let names = app.names();
    let list = || if names.is_empty() { "none".to_string() } else { names.join(", ") };
    match named {
        Some(name) if app.contains(name) => Ok(name.to_string()),
        Some(name) => {
            Err(Error::not_found(format!("no function named `{name}` (from {named_by}); known functions: {}", list())))
        }
        None if names.len() == 1 => Ok(names[0].to_string()),
        None => Err(Error::bad_input(format!(
            "{named_by} is not set and the app defines {} functions; name one of: {}",
            names.len(),
            list()
        ))),
    }
}

/// What a platform says about one invocation. Everything is optional; what is missing gets a
/// default (a fresh invocation id, a new trace, the [`Limits::default_timeout`]).
///
/// ```
/// use faas_host::Facts;
/// let facts = Facts { function: Some("hello".into()), invocation_id: Some("inv-1".into()), ..Facts::default() };
/// assert_eq!(facts.function.as_deref(), Some("hello"));
/// ```
#[derive(Debug, Default)]
pub struct Facts {
    /// The function the request names, if the platform names one per request.
    pub function: Option<String>,
    /// The platform's id of this invocation.
    pub invocation_id: Option<String>,
    /// When the platform ends the invocation.
    pub deadline: Option<SystemTime>,
    /// The caller's trace, when the platform passed one (see [`crate::trace`]).
    pub trace: Option<TraceContext>,
    /// Platform-specific facts, visible to handlers through [`Context::extension`].
    pub extensions: http::Extensions,
}

/// What a host's serve loop decoded from a request, for [`Invoker::invoke_input`].
///
/// ```
/// let input = faas_host::invoke::Input::Payload(faas_api::Payload::bytes("hi"));
/// assert!(matches!(input, faas_host::invoke::Input::Payload(_)));
/// ```
#[derive(Debug)]
pub enum Input {
    /// The payload as decoded ([`Invoker::invoke`]).
    Payload(Payload),
    /// A JSON-only platform's body: a faas envelope is unwrapped and the reply wrapped
    /// ([`Invoker::invoke_json_only`]).
    JsonOnly(Bytes),
    /// A request the host refuses before any handler runs (a web call with a method its route
    /// does not take, say): the error is the result.
    Refused(Error),
}

/// A host's limits and deadline policy.
///
/// ```
/// use std::time::Duration;
/// let limits = faas_host::Limits::new("Lambda");
/// assert_eq!(limits.max_reply, None);
/// assert_eq!(limits.abort_before, Some(Duration::ZERO));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The platform's name in error messages ("Lambda's limit is ...").
    pub platform: &'static str,
    /// Largest reply the platform accepts, in bytes; larger ones fail with `PayloadTooLarge`.
    pub max_reply: Option<usize>,
    /// `Some(margin)`: the host aborts the handler `margin` before its deadline and answers with a
    /// timeout error (time to report it before the platform ends the instance). `None`: the
    /// platform enforces the deadline itself and reports the timeout in its own words.
    pub abort_before: Option<Duration>,
    /// The budget of an invocation whose platform gave no deadline; `None`: no limit is enforced
    /// (the context then shows [`Context::builder`]'s default deadline).
    pub default_timeout: Option<Duration>,
}

impl Limits {
    /// No reply limit, the deadline enforced at the deadline itself, no default budget.
    ///
    /// ```
    /// assert_eq!(faas_host::Limits::new("OpenWhisk").platform, "OpenWhisk");
    /// ```
    pub fn new(platform: &'static str) -> Limits {
        Limits { platform, max_reply: None, abort_before: Some(Duration::ZERO), default_timeout: None }
    }
}

/// The shared invocation layer of a host: the app and the host's settings. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use faas_api::{App, Context, Error, Payload};
/// use faas_host::{Facts, Invoker};
/// async fn who(cx: Context, _p: Payload) -> Result<Payload, Error> {
///     Ok(Payload::bytes(format!("{} on {} ({})", cx.function_name(), cx.backend(), cx.invocation_id())))
/// }
/// let invoker = Invoker::new(App::new().raw("who", who), "example");
/// let facts = Facts { invocation_id: Some("inv-7".into()), ..Facts::default() };
/// let reply = invoker.invoke(facts, Payload::empty()).await.unwrap();
/// assert_eq!(reply.body().as_ref(), b"who on example (inv-7)");
/// # }
/// ```
#[derive(Clone)]
pub struct Invoker {
    app: App,
    backend: String,
    function: Option<String>,
    named_by: String,
    services: Option<Arc<dyn Services>>,
    vars: Arc<BTreeMap<String, String>>,
    limits: Limits,
    log_sink: Option<Arc<dyn faas_api::LogSink>>,
    state: Option<Arc<dyn faas_api::state::StateStore>>,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invoker")
            .field("functions", &self.app.names())
            .field("backend", &self.backend)
            .field("function", &self.function)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Invoker {
    /// An invoker of `app` for the backend named `backend` (what [`Context::backend`] shows),
    /// with [`Limits::new`]`(backend)`.
    ///
    /// ```
    /// let invoker = faas_host::Invoker::new(faas_api::App::new(), "lambda");
    /// assert_eq!(invoker.limits_ref().platform, "lambda");
    /// ```
    pub fn new(app: App, backend: &'static str) -> Invoker {
        Invoker {
            app,
            backend: backend.to_string(),
            function: None,
            named_by: "the platform".to_string(),
            services: None,
            vars: Arc::new(BTreeMap::new()),
            limits: Limits::new(backend),
            log_sink: None,
            state: crate::state::HttpState::store_from_env(&|k| std::env::var(k).ok()),
        }
    }

    /// The function the environment names (`_HANDLER`, `FAAS_FUNCTION`), used when a request
    /// names none; `named_by` says where names come from, for errors (see [`choose_function`]).
    ///
    /// ```
    /// use faas_api::{App, Context, Error};
    /// async fn f(_: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> { Ok(v) }
    /// let invoker = faas_host::Invoker::new(App::new().function("a", f).function("b", f), "lambda")
    ///     .function(Some("b".into()), "_HANDLER");
    /// assert_eq!(invoker.choose(None).unwrap(), "b");
    /// assert_eq!(invoker.choose(Some("a")).unwrap(), "a");
    /// ```
    pub fn function(mut self, name: Option<String>, named_by: impl Into<String>) -> Invoker {
        self.function = name;
        self.named_by = named_by.into();
        self
    }

    /// The services handlers reach through `cx.invoke` and `cx.emit`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let invoker = faas_host::Invoker::new(faas_api::App::new(), "local")
    ///     .services(Arc::new(faas_api::context::NoServices));
    /// # let _ = invoker;
    /// ```
    pub fn services(mut self, services: Arc<dyn Services>) -> Invoker {
        self.services = Some(services);
        self
    }

    /// The variables [`Context::var`] shows (it falls back to the process environment).
    ///
    /// ```
    /// let vars = [("GREETING".to_string(), "hi".to_string())].into();
    /// let invoker = faas_host::Invoker::new(faas_api::App::new(), "lambda").vars(vars);
    /// # let _ = invoker;
    /// ```
    ///
    /// They also name the state service `cx.state()` uses ([`crate::state::ENV_STATE_URL`] and
    /// [`crate::state::ENV_STATE_TOKEN`], which `faas_api::state::bind` puts in every function's
    /// environment), falling back to the process environment, so every host that hands its
    /// function's variables here gives it its state the same way.
    pub fn vars(mut self, vars: BTreeMap<String, String>) -> Invoker {
        self.state =
            crate::state::HttpState::store_from_env(&|k| vars.get(k).cloned().or_else(|| std::env::var(k).ok()));
        self.vars = Arc::new(vars);
        self
    }

    /// Where `cx.state()` keeps the function's state, instead of the service the environment
    /// names.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let invoker = faas_host::Invoker::new(faas_api::App::new(), "local")
    ///     .state(Arc::new(faas_api::state::MemoryState::default()));
    /// # let _ = invoker;
    /// ```
    pub fn state(mut self, store: Arc<dyn faas_api::state::StateStore>) -> Invoker {
        self.state = Some(store);
        self
    }

    /// Where the lines of `cx.logger()` go (standard output as `LEVEL line` by default): a
    /// platform that reads structured logs, or returns them with the answer, gives its own.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let invoker = faas_host::Invoker::new(faas_api::App::new(), "gcf")
    ///     .log_sink(Arc::new(faas_api::context::StdoutSink));
    /// # let _ = invoker;
    /// ```
    pub fn log_sink(mut self, sink: Arc<dyn faas_api::LogSink>) -> Invoker {
        self.log_sink = Some(sink);
        self
    }

    /// The host's limits and deadline policy.
    ///
    /// ```
    /// let limits = faas_host::Limits { max_reply: Some(6 << 20), ..faas_host::Limits::new("Lambda") };
    /// let invoker = faas_host::Invoker::new(faas_api::App::new(), "lambda").limits(limits.clone());
    /// assert_eq!(invoker.limits_ref(), &limits);
    /// ```
    pub fn limits(mut self, limits: Limits) -> Invoker {
        self.limits = limits;
        self
    }

    /// The limits in force.
    ///
    /// ```
    /// assert_eq!(faas_host::Invoker::new(faas_api::App::new(), "local").limits_ref().max_reply, None);
    /// ```
    pub fn limits_ref(&self) -> &Limits {
        &self.limits
    }

    /// The app served.
    ///
    /// ```
    /// assert!(faas_host::Invoker::new(faas_api::App::new(), "local").app().names().is_empty());
    /// ```
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The function for a request naming `requested`: that one, else the environment's, else the
    /// only one ([`choose_function`]).
    ///
    /// ```
    /// use faas_api::{App, Context, Error};
    /// async fn f(_: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> { Ok(v) }
    /// let invoker = faas_host::Invoker::new(App::new().function("only", f), "local");
    /// assert_eq!(invoker.choose(None).unwrap(), "only");
    /// assert!(invoker.choose(Some("other")).is_err());
    /// ```
    pub fn choose(&self, requested: Option<&str>) -> Result<String, Error> {
        choose_function(&self.app, requested.or(self.function.as_deref()), &self.named_by)
    }

    /// Runs one invocation: function choice, context, the handler (panics captured, aborted at
    /// its deadline), reply limit. See the [module docs](self).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use faas_api::{App, Context, Error, ErrorKind, Payload};
    /// use faas_host::{Facts, Invoker, Limits};
    /// async fn big(_cx: Context, _p: Payload) -> Result<Payload, Error> { Ok(Payload::bytes(vec![0u8; 100])) }
    /// let limits = Limits { max_reply: Some(10), ..Limits::new("Example") };
    /// let invoker = Invoker::new(App::new().raw("big", big), "example").limits(limits);
    /// let err = invoker.invoke(Facts::default(), Payload::empty()).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);
    /// assert_eq!(err.message(), "the reply of `big` is 100 bytes; Example's limit is 10 bytes");
    /// # }
    /// ```
    pub async fn invoke(&self, facts: Facts, payload: Payload) -> Result<Payload, Error> {
        let name = self.choose(facts.function.as_deref())?;
        let reply = self.run(&name, facts, payload).await?;
        self.check_reply(&name, reply)
    }

    /// [`Invoker::invoke`] for platforms whose payloads are JSON documents: a `body` that is a
    /// faas [`crate::envelope`] is unwrapped, and the reply is then wrapped the same way (the
    /// reply limit applies to what goes on the wire, envelope included). Any other body is the
    /// payload as is, without a content type.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use faas_api::{App, Context, Error, Payload};
    /// use faas_host::{envelope, Facts, Invoker};
    /// async fn echo(_cx: Context, p: Payload) -> Result<Payload, Error> { Ok(p) }
    /// let invoker = Invoker::new(App::new().raw("echo", echo), "lambda");
    /// let sent = Payload::new(vec![0u8, 1, 2], Some("application/octet-stream".into()));
    /// let reply = invoker.invoke_json_only(Facts::default(), envelope::wrap(&sent).into()).await.unwrap();
    /// assert_eq!(reply.content_type(), Some("application/json"));
    /// assert_eq!(envelope::unwrap(reply.body()), Some(sent));
    /// let plain = invoker.invoke_json_only(Facts::default(), br#"{"a":1}"#.to_vec().into()).await.unwrap();
    /// assert_eq!(plain.body().as_ref(), br#"{"a":1}"#);
    /// # }
    /// ```
    pub async fn invoke_json_only(&self, facts: Facts, body: Bytes) -> Result<Payload, Error> {
        let name = self.choose(facts.function.as_deref())?;
        let (payload, enveloped) = match crate::envelope::unwrap(&body) {
            Some(p) => (p, true),
            None => (Payload::new(body, None), false),
        };
        let reply = self.run(&name, facts, payload).await?;
        let reply = if enveloped {
            Payload::new(crate::envelope::wrap(&reply), Some(faas_api::payload::JSON.to_string()))
        } else {
            reply
        };
        self.check_reply(&name, reply)
    }

    /// [`Invoker::invoke`] or [`Invoker::invoke_json_only`], as `input` says.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use faas_api::{App, Context, Error, Payload};
    /// use faas_host::{invoke::Input, Facts, Invoker};
    /// async fn echo(_cx: Context, p: Payload) -> Result<Payload, Error> { Ok(p) }
    /// let invoker = Invoker::new(App::new().raw("echo", echo), "example");
    /// let reply = invoker.invoke_input(Facts::default(), Input::Payload(Payload::bytes("hi"))).await.unwrap();
    /// assert_eq!(reply.body().as_ref(), b"hi");
    /// # }
    /// ```
    pub async fn invoke_input(&self, facts: Facts, input: Input) -> Result<Payload, Error> {
        match input {
            Input::Payload(payload) => self.invoke(facts, payload).await,
            Input::JsonOnly(body) => self.invoke_json_only(facts, body).await,
            Input::Refused(error) => Err(error),
        }
    }

    /// The context of one invocation of `function`.
    fn context(&self, function: &str, facts: Facts) -> Context {
        let mut cx = Context::builder(function)
            .backend(self.backend.clone())
            .vars(self.vars.iter().map(|(k, v)| (k.clone(), v.clone())))
            .extensions(facts.extensions);
        if let Some(id) = facts.invocation_id {
            cx = cx.invocation_id(id);
        }
        match (facts.deadline, self.limits.default_timeout) {
            (Some(deadline), _) => cx = cx.deadline(deadline),
            (None, Some(timeout)) => cx = cx.timeout(timeout),
            (None, None) => {}
        }
        if let Some(trace) = facts.trace {
            cx = cx.trace(trace);
        }
        if let Some(services) = &self.services {
            cx = cx.services(services.clone());
        }
        if let Some(sink) = &self.log_sink {
            cx = cx.log_sink(sink.clone());
        }
        if let Some(state) = &self.state {
            cx = cx.state(state.clone());
        }
        cx.build()
    }

    /// Runs the handler in its own task (panic capture, abortable at the deadline).
    async fn run(&self, function: &str, facts: Facts, payload: Payload) -> Result<Payload, Error> {
        let enforce = facts.deadline.is_some() || self.limits.default_timeout.is_some();
        let cx = self.context(function, facts);
        let deadline = cx.deadline();
        let started = Instant::now();
        let app = self.app.clone();
        let name = function.to_string();
        let mut task = tokio::spawn(async move { app.call(&name, cx, payload).await });
        let margin = match self.limits.abort_before {
            Some(margin) if enforce => margin,
            _ => return joined(function, task.await),
        };
        let budget = deadline.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(margin);
        match tokio::time::timeout(budget, &mut task).await {
            Ok(joined_result) => joined(function, joined_result),
            Err(_) => {
                task.abort();
                let ran = started.elapsed();
                // Stopped at its next await point; a handler stuck in blocking code never gets
                // there, and then nothing is answered (see the module docs).
                let _ = task.await;
                tracing::warn!(function, ran_ms = ran.as_millis() as u64, "stopped a function at its deadline");
                Err(Error::timeout(format!(
                    "function `{function}` timed out after {} ms: the host stopped it at its deadline{}",
                    ran.as_millis(),
                    if margin.is_zero() {
                        String::new()
                    } else {
                        format!(", {} ms before {} would end the instance", margin.as_millis(), self.limits.platform)
                    }
                )))
            }
        }
    }

    fn check_reply(&self, function: &str, reply: Payload) -> Result<Payload, Error> {
        match self.limits.max_reply {
            Some(max) if reply.len() > max => Err(Error::payload_too_large(format!(
                "the reply of `{function}` is {} bytes; {}'s limit is {max} bytes",
                reply.len(),
                self.limits.platform
            ))),
            _ => Ok(reply),
        }
    }
}

/// The result of the handler's task: a panic that escaped [`App::call`]'s capture (in a
/// destructor, say) is a crash too.
fn joined(function: &str, result: Result<Result<Payload, Error>, tokio::task::JoinError>) -> Result<Payload, Error> {
    match result {
        Ok(r) => r,
        Err(e) if e.is_panic() => {
            Err(Error::crash(format!("function `{function}` panicked outside its handler: {e}")).with_type("Panic"))
        }
        Err(e) => Err(Error::crash(format!("function `{function}` was cancelled: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faas_api::ErrorKind;

    async fn sleep(cx: Context, p: Payload) -> Result<Payload, Error> {
        let ms: u64 = std::str::from_utf8(p.body()).unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Payload::bytes(format!("slept {ms} ms, {} ms left", cx.remaining().as_millis())))
    }

    async fn panics(_cx: Context, _p: Payload) -> Result<Payload, Error> {
        panic!("probe panic")
    }

    async fn hello(_cx: Context, p: Payload) -> Result<Payload, Error> {
        Ok(p)
    }

    fn app() -> App {
        App::new().raw("sleep", sleep).raw("panics", panics).raw("hello", hello)
    }

    fn in_ms(ms: u64) -> Option<SystemTime> {
        Some(SystemTime::now() + Duration::from_millis(ms))
    }

    #[tokio::test]
    async fn the_handler_is_aborted_before_its_deadline_with_a_timeout() {
        let limits = Limits { abort_before: Some(Duration::from_millis(100)), ..Limits::new("Lambda") };
        let invoker = Invoker::new(app(), "lambda").limits(limits);
        let started = Instant::now();
        let facts = Facts { function: Some("sleep".into()), deadline: in_ms(400), ..Facts::default() };
        let err = invoker.invoke(facts, Payload::bytes("10000")).await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert!(err.message().contains("function `sleep` timed out"), "{err}");
        assert!(err.message().contains("100 ms before Lambda would end the instance"), "{err}");
        assert!(took >= Duration::from_millis(250) && took < Duration::from_millis(400), "took {took:?}");
        // Within the budget the handler runs to the end.
        let facts = Facts { function: Some("sleep".into()), deadline: in_ms(2000), ..Facts::default() };
        let reply = invoker.invoke(facts, Payload::bytes("10")).await.unwrap();
        assert!(reply.body().starts_with(b"slept 10 ms"), "{reply:?}");
    }

    #[tokio::test]
    async fn a_past_deadline_times_out_at_once_and_no_policy_lets_the_platform_decide() {
        let invoker = Invoker::new(app(), "local");
        let facts = Facts { function: Some("sleep".into()), deadline: Some(SystemTime::now()), ..Facts::default() };
        let err = invoker.invoke(facts, Payload::bytes("5000")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(!err.message().contains("before"), "no margin, no mention of one: {err}");

        let platform = Invoker::new(app(), "local").limits(Limits { abort_before: None, ..Limits::new("local") });
        let facts = Facts { function: Some("sleep".into()), deadline: Some(SystemTime::now()), ..Facts::default() };
        let reply = platform.invoke(facts, Payload::bytes("20")).await.unwrap();
        assert!(reply.body().starts_with(b"slept 20 ms, 0 ms left"), "{reply:?}");
    }

    #[tokio::test]
    async fn without_a_deadline_the_default_timeout_applies_and_without_one_nothing_does() {
        let limits = Limits { default_timeout: Some(Duration::from_millis(50)), ..Limits::new("Example") };
        let invoker = Invoker::new(app(), "example").limits(limits);
        let facts = Facts { function: Some("sleep".into()), ..Facts::default() };
        assert_eq!(invoker.invoke(facts, Payload::bytes("5000")).await.unwrap_err().kind(), ErrorKind::Timeout);
        let unlimited = Invoker::new(app(), "example");
        let facts = Facts { function: Some("sleep".into()), ..Facts::default() };
        assert!(unlimited.invoke(facts, Payload::bytes("10")).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handler_stuck_in_blocking_code_is_answered_for_only_once_it_has_stopped() {
        async fn blocks(_cx: Context, p: Payload) -> Result<Payload, Error> {
            let ms: u64 = std::str::from_utf8(p.body()).unwrap().parse().unwrap();
            std::thread::sleep(Duration::from_millis(ms)); // no await point: abort cannot stop it
            Ok(Payload::bytes("woke up"))
        }
        let invoker = Invoker::new(App::new().raw("blocks", blocks), "example");
        let started = Instant::now();
        let facts = Facts { deadline: in_ms(50), ..Facts::default() };
        let err = invoker.invoke(facts, Payload::bytes("600")).await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        // Not at the deadline (50 ms): only when the blocking call returned and the task ended.
        assert!(took >= Duration::from_millis(600), "answered after {took:?}, while the handler still ran");
        // A handler at an await point is stopped at once.
        let facts = Facts { function: None, deadline: in_ms(50), ..Facts::default() };
        let sleeper = Invoker::new(App::new().raw("sleep", sleep), "example");
        let started = Instant::now();
        assert_eq!(sleeper.invoke(facts, Payload::bytes("5000")).await.unwrap_err().kind(), ErrorKind::Timeout);
        assert!(started.elapsed() < Duration::from_millis(1000), "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_panic_is_a_crash_and_the_invoker_goes_on() {
        let invoker = Invoker::new(app(), "example");
        let facts = Facts { function: Some("panics".into()), deadline: in_ms(5000), ..Facts::default() };
        let err = invoker.invoke(facts, Payload::empty()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Crash);
        assert_eq!(err.error_type(), "Panic");
        assert!(err.message().contains("probe panic"), "{err}");
        let facts = Facts { function: Some("hello".into()), ..Facts::default() };
        assert_eq!(invoker.invoke(facts, Payload::bytes("hi")).await.unwrap().body().as_ref(), b"hi");
    }

    #[tokio::test]
    async fn the_reply_limit_counts_the_envelope() {
        let limits = Limits { max_reply: Some(20), ..Limits::new("Lambda") };
        let invoker = Invoker::new(app(), "lambda").function(Some("hello".into()), "_HANDLER").limits(limits);
        // 12 bytes fit as they are...
        let reply = invoker.invoke_json_only(Facts::default(), Bytes::from_static(b"\"0123456789\"")).await;
        assert_eq!(reply.unwrap().len(), 12);
        // ...but not inside an envelope.
        let wrapped = crate::envelope::wrap(&Payload::bytes("0123456789"));
        let err = invoker.invoke_json_only(Facts::default(), wrapped.into()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);
        assert!(err.message().starts_with("the reply of `hello` is "), "{err}");
        assert!(err.message().ends_with("Lambda's limit is 20 bytes"), "{err}");
        // Exactly at the limit is fine.
        let reply = invoker.invoke(Facts::default(), Payload::bytes(vec![b'x'; 20])).await.unwrap();
        assert_eq!(reply.len(), 20);
    }

    #[tokio::test]
    async fn the_request_name_wins_then_the_environment_then_the_only_function() {
        let invoker = Invoker::new(app(), "local").function(Some("hello".into()), "FAAS_FUNCTION");
        let named = Facts { function: Some("sleep".into()), ..Facts::default() };
        assert!(invoker.invoke(named, Payload::bytes("1")).await.unwrap().body().starts_with(b"slept"));
        let unnamed = invoker.invoke(Facts::default(), Payload::bytes("from env")).await.unwrap();
        assert_eq!(unnamed.body().as_ref(), b"from env");
        let unknown = Facts { function: Some("nope".into()), ..Facts::default() };
        let err = invoker.invoke(unknown, Payload::empty()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.message().contains("`nope`") && err.message().contains("sleep, panics, hello"), "{err}");

        let bare = Invoker::new(app(), "local").function(None, "FAAS_FUNCTION");
        let err = bare.invoke(Facts::default(), Payload::empty()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadInput);
        assert!(err.message().starts_with("FAAS_FUNCTION is not set and the app defines 3 functions"), "{err}");
        let single = Invoker::new(App::new().raw("hello", hello), "local");
        assert_eq!(single.invoke(Facts::default(), Payload::bytes("x")).await.unwrap().body().as_ref(), b"x");
    }

    #[tokio::test]
    async fn facts_become_the_context() {
        async fn report(cx: Context, _p: Payload) -> Result<Payload, Error> {
            Ok(Payload::bytes(format!(
                "{}|{}|{}|{}|{:?}|{:?}",
                cx.function_name(),
                cx.invocation_id(),
                cx.deadline_ms(),
                cx.trace().traceparent(),
                cx.var("GREETING"),
                cx.extension::<u32>()
            )))
        }
        let invoker = Invoker::new(App::new().raw("report", report), "example")
            .vars([("GREETING".to_string(), "hi".to_string())].into());
        let mut extensions = http::Extensions::new();
        extensions.insert(7u32);
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let facts = Facts {
            function: None,
            invocation_id: Some("inv-1".into()),
            deadline: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(4102444800000)),
            trace: TraceContext::parse(tp),
            extensions,
        };
        let reply = invoker.invoke(facts, Payload::empty()).await.unwrap();
        let expected = format!("report|inv-1|4102444800000|{tp}|Some(\"hi\")|Some(7)");
        assert_eq!(std::str::from_utf8(reply.body()).unwrap(), expected);
    }
}
