//! [`App`]: a set of named functions and their declared triggers.
//!
//! ```
//! use faas_api::{App, Context, Error, EventFilter, Trigger};
//! async fn hello(_cx: Context, name: String) -> Result<String, Error> {
//!     Ok(format!("Hello, {name}!"))
//! }
//! let app = App::new()
//!     .function("hello", hello)
//!     .route("hello", "GET", "/hello")
//!     .subscribe("hello", EventFilter::new().event_type("user.created"));
//! app.validate().unwrap();
//! let manifest = app.manifest();
//! let triggers = &manifest.function("hello").unwrap().triggers;
//! assert_eq!(triggers[0], Trigger::Http { method: Some("GET".into()), route: "/hello".into() });
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use cloudevents::Event;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::handler::{AppHandler, BoxHandler, EventFn, Handler, Invocation, Raw, ServiceHandler, Typed};
use crate::runner::Capability;
use crate::{Context, Error, Payload};

/// The longest function name accepted anywhere (Lambda's limit for a bare name).
///
/// ```
/// use faas_api::{app::MAX_FUNCTION_NAME, validate_function_name};
/// assert!(validate_function_name(&"a".repeat(MAX_FUNCTION_NAME)).is_ok());
/// let err = validate_function_name(&"a".repeat(MAX_FUNCTION_NAME + 1)).unwrap_err();
/// assert!(err.message().contains("the limit is 64"), "{}", err.message());
/// ```
pub const MAX_FUNCTION_NAME: usize = 64;

/// Checks a function name: 1–64 characters from `[A-Za-z0-9_-]`, starting with a letter or digit.
///
/// ```
/// assert!(faas_api::validate_function_name("hello-world_2").is_ok());
/// assert!(faas_api::validate_function_name("a/b").unwrap_err().message().contains("`/`"));
/// assert!(faas_api::validate_function_name("").is_err());
/// ```
pub fn validate_function_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::bad_input("function name is empty"));
    }
    if name.chars().count() > MAX_FUNCTION_NAME {
        return Err(Error::bad_input(format!(
            "function name `{}…` is {} characters long; the limit is {MAX_FUNCTION_NAME}",
            &name[..name.char_indices().nth(16).map(|(i, _)| i).unwrap_or(name.len())],
            name.chars().count()
        )));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(Error::bad_input(format!(
            "function name `{name}` contains `{c}`; use letters, digits, `-` and `_` only"
        )));
    }
    if name.starts_with(['-', '_']) {
        return Err(Error::bad_input(format!("function name `{name}` must start with a letter or digit")));
    }
    Ok(())
}

/// How a function takes its input, as reported in the [`Manifest`].
///
/// ```
/// use faas_api::{App, Context, Error, HandlerKind, Payload};
/// let app = App::new().raw("echo", |_cx: Context, p: Payload| async move { Ok::<_, Error>(p) });
/// assert_eq!(app.manifest().functions[0].handler, HandlerKind::Raw);
/// assert_eq!(serde_json::to_string(&HandlerKind::Typed).unwrap(), r#""typed""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandlerKind {
    /// JSON in, JSON out.
    Typed,
    /// Bytes with a content type in and out.
    Raw,
    /// A CloudEvent in, an optional CloudEvent out.
    Event,
    /// A `tower::Service`.
    Service,
    /// A composition: a program over other functions (JSON in, JSON out), its portable form in
    /// [`FunctionDescription::composition`].
    Composition,
}

/// A CloudEvent filter on `type`, `source` and `subject`. Each given attribute must match
/// exactly, or, when the value ends in `*`, start with the part before it. An empty filter
/// matches every event.
///
/// ```
/// use faas_api::EventFilter;
/// let f = EventFilter::new().event_type("com.example.order.*").source("/shop");
/// assert!(f.matches_attrs("com.example.order.created", "/shop", None));
/// assert!(!f.matches_attrs("com.example.user.created", "/shop", None));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// The event `type`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The event `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The event `subject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl EventFilter {
    /// A filter that matches everything.
    ///
    /// ```
    /// let any = faas_api::EventFilter::new();
    /// assert!(any.matches_attrs("whatever.type", "/any/source", None));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// Requires `type` to match `pattern`.
    ///
    /// ```
    /// let f = faas_api::EventFilter::new().event_type("order.*");
    /// assert!(f.matches_attrs("order.created", "/shop", None));
    /// assert!(!f.matches_attrs("user.created", "/shop", None));
    /// ```
    pub fn event_type(mut self, pattern: impl Into<String>) -> Self {
        self.event_type = Some(pattern.into());
        self
    }
    /// Requires `source` to match `pattern`.
    ///
    /// ```
    /// let f = faas_api::EventFilter::new().source("/shop");
    /// assert!(f.matches_attrs("t", "/shop", None));
    /// assert!(!f.matches_attrs("t", "/shop/eu", None)); // no `*`: exact match
    /// ```
    pub fn source(mut self, pattern: impl Into<String>) -> Self {
        self.source = Some(pattern.into());
        self
    }
    /// Requires `subject` to match `pattern`.
    ///
    /// ```
    /// let f = faas_api::EventFilter::new().subject("invoices/*");
    /// assert!(f.matches_attrs("t", "/s", Some("invoices/42")));
    /// assert!(!f.matches_attrs("t", "/s", None)); // an event without a subject does not match
    /// ```
    pub fn subject(mut self, pattern: impl Into<String>) -> Self {
        self.subject = Some(pattern.into());
        self
    }

    /// Whether an event with these attributes matches.
    ///
    /// ```
    /// use faas_api::EventFilter;
    /// let f = EventFilter::new().event_type("com.example.*").subject("a");
    /// assert!(f.matches_attrs("com.example.x", "/s", Some("a")));
    /// assert!(!f.matches_attrs("com.example.x", "/s", Some("b")));
    /// assert!(!f.matches_attrs("org.example.x", "/s", Some("a")));
    /// ```
    pub fn matches_attrs(&self, event_type: &str, source: &str, subject: Option<&str>) -> bool {
        fn one(pattern: &Option<String>, value: Option<&str>) -> bool {
            match (pattern, value) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(p), Some(v)) => match p.strip_suffix('*') {
                    Some(prefix) => v.starts_with(prefix),
                    None => p == v,
                },
            }
        }
        one(&self.event_type, Some(event_type)) && one(&self.source, Some(source)) && one(&self.subject, subject)
    }

    /// Whether `event` matches.
    ///
    /// ```
    /// use faas_api::EventFilter;
    /// use faas_api::cloudevents::{EventBuilder, EventBuilderV10};
    /// let e = EventBuilderV10::new().id("1").source("/shop").ty("order.created").subject("o-7").build().unwrap();
    /// assert!(EventFilter::new().source("/shop").subject("o-*").matches(&e));
    /// assert!(!EventFilter::new().event_type("order.deleted").matches(&e));
    /// ```
    pub fn matches(&self, event: &Event) -> bool {
        use cloudevents::AttributesReader;
        self.matches_attrs(event.ty(), &event.source().to_string(), event.subject())
    }
}

/// A declared way to reach a function besides calling it by name.
///
/// ```
/// use faas_api::{App, Context, Error, EventFilter, Trigger};
/// # async fn f(_cx: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> { Ok(v) }
/// let app = App::new().function("f", f).route("f", "post", "/f").subscribe("f", EventFilter::new().event_type("t"));
/// let triggers = app.manifest().functions[0].triggers.clone();
/// assert_eq!(triggers, [
///     Trigger::Http { method: Some("POST".into()), route: "/f".into() },
///     Trigger::Event { filter: EventFilter::new().event_type("t") },
/// ]);
/// // The manifest's JSON form.
/// let json = serde_json::to_value(&triggers[0]).unwrap();
/// assert_eq!(json, serde_json::json!({"kind": "http", "method": "POST", "route": "/f"}));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Trigger {
    /// An HTTP route: `method` (any when absent) and a path like `/hello` or `/users/{id}`.
    Http {
        /// Upper-case HTTP method, or none for any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// The route path, starting with `/`.
        route: String,
    },
    /// CloudEvents matching a filter.
    Event {
        /// The filter.
        filter: EventFilter,
    },
}

/// One function of an [`App`], as described to runners (no handler attached).
///
/// ```
/// use faas_api::{App, Capability, Context, Error, FunctionDescription, HandlerKind};
/// # async fn f(_cx: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> { Ok(v) }
/// let app = App::new().function("f", f).requires("f", Capability::Async);
/// let d: &FunctionDescription = &app.manifest().functions[0];
/// assert_eq!((d.name.as_str(), d.handler), ("f", HandlerKind::Typed));
/// assert_eq!(d.requires, [Capability::Async]);
/// assert!(d.triggers.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionDescription {
    /// Logical name.
    pub name: String,
    /// Input style.
    pub handler: HandlerKind,
    /// Declared triggers.
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// Capabilities the function needs from its backend.
    #[serde(default)]
    pub requires: Vec<Capability>,
    /// A composition's program in its portable JSON form (`{"faas": "composition/v1", ...}`),
    /// for the control side (`faas plan`, the conductor); `None` for every other kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition: Option<serde_json::Value>,
}

/// The machine-readable description of an app binary: what `FAAS_DESCRIBE=1 ./app` prints.
///
/// ```
/// use faas_api::{App, Context, Error, Manifest};
/// # async fn f(_cx: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> { Ok(v) }
/// let m = App::new().function("b", f).function("a", f).manifest();
/// assert_eq!(m.faas_version, env!("CARGO_PKG_VERSION"));
/// assert_eq!(m.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["b", "a"]);
/// // What the binary prints reads back into the same manifest.
/// let back: Manifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
/// assert_eq!(back, m);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The faas version the binary was built with.
    pub faas_version: String,
    /// Functions in declaration order.
    pub functions: Vec<FunctionDescription>,
}

impl Manifest {
    /// The function called `name`.
    ///
    /// ```
    /// use faas_api::{App, Context, Error};
    /// # async fn f(_cx: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> { Ok(v) }
    /// let m = App::new().function("hello", f).manifest();
    /// assert_eq!(m.function("hello").map(|d| d.name.as_str()), Some("hello"));
    /// assert!(m.function("nope").is_none());
    /// ```
    pub fn function(&self, name: &str) -> Option<&FunctionDescription> {
        self.functions.iter().find(|f| f.name == name)
    }
}

#[derive(Clone)]
struct Function {
    description: FunctionDescription,
    handler: Entry,
}

/// How a function's handler is called: on its own, or given its app.
#[derive(Clone)]
enum Entry {
    Plain(BoxHandler),
    WithApp(Arc<dyn AppHandler>),
}

/// An [`AppHandler`] with the app it runs in: what [`App::handler_of`] hands out for it.
struct Bound {
    app: App,
    handler: Arc<dyn AppHandler>,
}

impl Handler for Bound {
    fn call(&self, invocation: Invocation) -> BoxFuture<'static, Result<Payload, Error>> {
        self.handler.call(&self.app, invocation)
    }
}

/// A set of named functions plus their declared triggers.
///
/// ```
/// use faas_api::{App, Context, Error};
/// #[derive(serde::Deserialize)] struct Hello { name: String }
/// #[derive(serde::Serialize)] struct Reply { message: String }
/// async fn hello(_cx: Context, req: Hello) -> Result<Reply, Error> {
///     Ok(Reply { message: format!("Hello, {}!", req.name) })
/// }
/// let app = App::new().function("hello", hello).route("hello", "POST", "/hello");
/// assert_eq!(app.names(), vec!["hello"]);
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let reply = app.call_json("hello", &serde_json::json!({"name": "Ada"})).await.unwrap();
/// assert_eq!(reply, serde_json::json!({"message": "Hello, Ada!"}));
/// # });
/// ```
#[derive(Clone, Default)]
pub struct App {
    // Shared: an app handler's bound copy of the app costs one reference count, not a copy.
    functions: Arc<BTreeMap<String, Function>>,
    order: Vec<String>,
    problems: Vec<String>,
}

impl App {
    /// An empty app.
    ///
    /// ```
    /// let app = faas_api::App::new();
    /// assert!(app.names().is_empty());
    /// assert!(app.validate().is_ok());
    /// ```
    pub fn new() -> App {
        App::default()
    }

    fn add(mut self, name: &str, handler_kind: HandlerKind, handler: Entry) -> App {
        if let Err(e) = validate_function_name(name) {
            self.problems.push(e.message().to_string());
            return self;
        }
        if self.functions.contains_key(name) {
            self.problems.push(format!("function `{name}` is defined twice"));
            return self;
        }
        let description = FunctionDescription {
            name: name.to_string(),
            handler: handler_kind,
            triggers: vec![],
            requires: vec![],
            composition: None,
        };
        Arc::make_mut(&mut self.functions).insert(name.to_string(), Function { description, handler });
        self.order.push(name.to_string());
        self
    }

    /// Adds a typed JSON function: the input is decoded into `Req` (a decoding failure is a
    /// bad-input error naming the problem) and the `Resp` is encoded as JSON.
    ///
    /// ```
    /// use faas_api::{App, Context, Error, ErrorKind};
    /// #[derive(serde::Deserialize)]
    /// struct Add { a: i64, b: i64 }
    /// async fn add(_cx: Context, req: Add) -> Result<i64, Error> {
    ///     Ok(req.a + req.b)
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let app = App::new().function("add", add);
    /// assert_eq!(app.call_json("add", &serde_json::json!({"a": 2, "b": 3})).await.unwrap(), 5);
    /// let err = app.call_json("add", &serde_json::json!({"a": 2})).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::BadInput);
    /// assert!(err.message().contains("missing field `b`"), "{}", err.message());
    /// # }
    /// ```
    pub fn function<F, Fut, Req, Resp, E>(self, name: &str, f: F) -> App
    where
        F: Fn(Context, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        E: Into<Error> + Send + 'static,
    {
        self.add(name, HandlerKind::Typed, Entry::Plain(Arc::new(Typed::new(f))))
    }

    /// Adds a raw-bytes function.
    ///
    /// The body and content type reach the function untouched, and its reply is sent as it is.
    ///
    /// ```
    /// use faas_api::{App, Context, Error, Payload};
    /// async fn upper(_cx: Context, p: Payload) -> Result<Payload, Error> {
    ///     Ok(Payload::new(p.body().to_ascii_uppercase(), p.content_type().map(str::to_string)))
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let app = App::new().raw("upper", upper);
    /// let cx = Context::builder("upper").build();
    /// let reply = app.call("upper", cx, Payload::new("shout", Some("text/plain".into()))).await.unwrap();
    /// assert_eq!((reply.body().as_ref(), reply.content_type()), (&b"SHOUT"[..], Some("text/plain")));
    /// # }
    /// ```
    pub fn raw<F, Fut, E>(self, name: &str, f: F) -> App
    where
        F: Fn(Context, Payload) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Payload, E>> + Send + 'static,
        E: Into<Error> + Send + 'static,
    {
        self.add(name, HandlerKind::Raw, Entry::Plain(Arc::new(Raw::new(f))))
    }

    /// Adds a CloudEvent function.
    ///
    /// The function is marked as needing [`Capability::CloudEvents`]. Its input is a structured-mode
    /// JSON event; a returned event is sent back the same way.
    ///
    /// ```
    /// use faas_api::cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
    /// use faas_api::{App, Capability, Context, Error, event};
    /// async fn audit(cx: Context, e: Event) -> Result<Option<Event>, Error> {
    ///     cx.logger().info(format!("saw {}", e.id()));
    ///     Ok(None)
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let app = App::new().event("audit", audit);
    /// assert_eq!(app.manifest().functions[0].requires, [Capability::CloudEvents]);
    /// let e = EventBuilderV10::new().id("1").source("/shop").ty("order.created").build().unwrap();
    /// let cx = Context::builder("audit").build();
    /// let reply = app.call("audit", cx, event::encode_structured(&e).unwrap()).await.unwrap();
    /// assert!(reply.is_empty()); // `None` means no reply event
    /// # }
    /// ```
    pub fn event<F, Fut, E>(self, name: &str, f: F) -> App
    where
        F: Fn(Context, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<Event>, E>> + Send + 'static,
        E: Into<Error> + Send + 'static,
    {
        let known = self.problems.len();
        let app = self.add(name, HandlerKind::Event, Entry::Plain(Arc::new(EventFn::new(f))));
        // Only mark the function this call added: not a duplicate's first definition, and no second problem
        // for a name that was already refused.
        if app.problems.len() == known { app.requires(name, Capability::CloudEvents) } else { app }
    }

    /// Adds a `tower::Service` as a function.
    ///
    /// ```
    /// use faas_api::{App, Context, Error, HandlerKind, Payload, handler::Invocation};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let svc = tower::service_fn(|inv: Invocation| async move { Ok::<_, Error>(inv.payload) });
    /// let app = App::new().service("echo", svc);
    /// assert_eq!(app.manifest().functions[0].handler, HandlerKind::Service);
    /// let reply = app.call("echo", Context::builder("echo").build(), Payload::bytes("hi")).await.unwrap();
    /// assert_eq!(reply.body().as_ref(), b"hi");
    /// # }
    /// ```
    pub fn service<S>(self, name: &str, service: S) -> App
    where
        S: tower::Service<Invocation, Response = Payload> + Clone + Send + Sync + 'static,
        S::Error: Into<Error> + Send + 'static,
        S::Future: Send + 'static,
    {
        self.add(name, HandlerKind::Service, Entry::Plain(Arc::new(ServiceHandler::new(service))))
    }

    /// Adds any [`Handler`].
    ///
    /// `kind` is what the [`Manifest`] reports for it.
    ///
    /// ```
    /// use faas_api::handler::Raw;
    /// use faas_api::{App, Context, Error, HandlerKind, Payload};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let echo = Raw::new(|_cx: Context, p: Payload| async move { Ok::<_, Error>(p) });
    /// let app = App::new().handler("echo", HandlerKind::Raw, echo);
    /// let reply = app.call("echo", Context::builder("echo").build(), Payload::bytes("x")).await.unwrap();
    /// assert_eq!(reply.body().as_ref(), b"x");
    /// # }
    /// ```
    pub fn handler(self, name: &str, kind: HandlerKind, handler: impl Handler) -> App {
        self.add(name, kind, Entry::Plain(Arc::new(handler)))
    }

    /// Adds a composition: `handler` runs it, given this app (so it can run the app's own
    /// functions in the same invocation), and `program` is its portable JSON form, published in
    /// the manifest. `faas_composition`'s `App::composition` (its `AppExt` trait, also
    /// `faas::AppExt`) is the way to declare one; this is the hook it uses.
    ///
    /// ```
    /// use faas_api::handler::{AppHandler, Invocation};
    /// use faas_api::{App, Context, Error, HandlerKind, Payload};
    /// use futures::future::{BoxFuture, FutureExt};
    /// # async fn double(_cx: Context, n: i64) -> Result<i64, Error> { Ok(n * 2) }
    /// /// Calls `double` twice, in the same invocation.
    /// struct Twice;
    /// impl AppHandler for Twice {
    ///     fn call(&self, app: &App, inv: Invocation) -> BoxFuture<'static, Result<Payload, Error>> {
    ///         let app = app.clone();
    ///         async move {
    ///             let once = app.call("double", inv.cx.step("double", "1"), inv.payload).await?;
    ///             app.call("double", inv.cx.step("double", "2"), once).await
    ///         }
    ///         .boxed()
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let program = serde_json::json!({"faas": "composition/v1", "program": {"op": "seq", "steps": [
    ///     {"op": "call", "function": "double"}, {"op": "call", "function": "double"}]}});
    /// let app = App::new().function("double", double).composed("quadruple", program.clone(), Twice);
    /// let described = &app.manifest().functions[1];
    /// assert_eq!((described.handler, described.composition.as_ref()), (HandlerKind::Composition, Some(&program)));
    /// assert_eq!(app.call_json("quadruple", &3).await.unwrap(), 12);
    /// # }
    /// ```
    pub fn composed(self, name: &str, program: serde_json::Value, handler: impl AppHandler) -> App {
        let before = self.functions.len();
        let mut app = self.add(name, HandlerKind::Composition, Entry::WithApp(Arc::new(handler)));
        if app.functions.len() > before {
            // Added (not refused as a duplicate or a bad name): describe it.
            if let Some(d) = app.describe_mut(name) {
                d.composition = Some(program);
            }
        }
        app
    }

    /// Records a mistake in a declaration made outside this crate (a composition whose program
    /// does not read back, say); [`App::validate`] reports it with the others.
    ///
    /// ```
    /// let app = faas_api::App::new().with_problem("composition `c`: /program/op: unknown");
    /// assert_eq!(app.problems(), ["composition `c`: /program/op: unknown"]);
    /// assert!(app.validate().is_err());
    /// ```
    pub fn with_problem(mut self, problem: impl Into<String>) -> App {
        self.problems.push(problem.into());
        self
    }

    fn describe_mut(&mut self, name: &str) -> Option<&mut FunctionDescription> {
        Arc::make_mut(&mut self.functions).get_mut(name).map(|f| &mut f.description)
    }

    fn with_description(mut self, name: &str, what: &str, edit: impl FnOnce(&mut FunctionDescription)) -> App {
        match self.describe_mut(name) {
            Some(d) => edit(d),
            None => self.problems.push(format!("{what} names `{name}`, which is not a function of this app")),
        }
        self
    }

    /// Declares an HTTP route for function `name`; `method` `"*"` or `""` means any method.
    ///
    /// ```
    /// use faas_api::{App, Trigger};
    /// # use serde_json::Value;
    /// # async fn echo(_cx: faas_api::Context, v: Value) -> Result<Value, faas_api::Error> { Ok(v) }
    /// let app = App::new().function("echo", echo).route("echo", "post", "/echo").route("echo", "*", "/any");
    /// assert_eq!(app.manifest().functions[0].triggers, [
    ///     Trigger::Http { method: Some("POST".into()), route: "/echo".into() },
    ///     Trigger::Http { method: None, route: "/any".into() },
    /// ]);
    /// // Mistakes are recorded, not panicked on.
    /// let bad = App::new().function("echo", echo).route("echo", "GET", "echo");
    /// assert_eq!(bad.problems(), ["route `echo` of `echo` must start with `/`"]);
    /// ```
    pub fn route(self, name: &str, method: &str, route: &str) -> App {
        let method = match method.trim() {
            "" | "*" => None,
            m => Some(m.to_ascii_uppercase()),
        };
        if !route.starts_with('/') {
            let mut app = self;
            app.problems.push(format!("route `{route}` of `{name}` must start with `/`"));
            return app;
        }
        let trigger = Trigger::Http { method, route: route.to_string() };
        self.with_description(name, "route", |d| d.triggers.push(trigger))
    }

    /// Declares that function `name` receives the CloudEvents matching `filter`.
    ///
    /// ```
    /// use faas_api::{App, EventFilter, FunctionSpec, app::functions_matching};
    /// use faas_api::cloudevents::{Event, EventBuilder, EventBuilderV10};
    /// # async fn on_order(_cx: faas_api::Context, _e: Event) -> Result<Option<Event>, faas_api::Error> { Ok(None) }
    /// let app = App::new()
    ///     .event("on_order", on_order)
    ///     .subscribe("on_order", EventFilter::new().event_type("order.*"));
    /// let specs: Vec<FunctionSpec> = app.manifest().functions.iter().map(FunctionSpec::from_description).collect();
    /// let e = EventBuilderV10::new().id("1").source("/shop").ty("order.created").build().unwrap();
    /// assert_eq!(functions_matching(&specs, &e), ["on_order"]);
    /// ```
    pub fn subscribe(self, name: &str, filter: EventFilter) -> App {
        self.with_description(name, "subscription", |d| d.triggers.push(Trigger::Event { filter }))
    }

    /// Declares that function `name` needs `capability` from its backend. A runner that does not
    /// claim it refuses to deploy the function.
    ///
    /// ```
    /// use faas_api::{App, Capability};
    /// # use serde_json::Value;
    /// # async fn echo(_cx: faas_api::Context, v: Value) -> Result<Value, faas_api::Error> { Ok(v) }
    /// let app = App::new()
    ///     .function("echo", echo)
    ///     .requires("echo", Capability::Async)
    ///     .requires("echo", Capability::Async); // recorded once
    /// assert_eq!(app.manifest().functions[0].requires, [Capability::Async]);
    /// ```
    pub fn requires(self, name: &str, capability: Capability) -> App {
        self.with_description(name, "capability", |d| {
            if !d.requires.contains(&capability) {
                d.requires.push(capability)
            }
        })
    }

    /// Function names in declaration order.
    ///
    /// ```
    /// use faas_api::App;
    /// # use serde_json::Value;
    /// # async fn echo(_cx: faas_api::Context, v: Value) -> Result<Value, faas_api::Error> { Ok(v) }
    /// assert_eq!(App::new().function("z", echo).function("a", echo).names(), ["z", "a"]);
    /// ```
    pub fn names(&self) -> Vec<&str> {
        self.order.iter().map(String::as_str).collect()
    }

    /// Whether the app has a function called `name`.
    ///
    /// ```
    /// use faas_api::App;
    /// # use serde_json::Value;
    /// # async fn echo(_cx: faas_api::Context, v: Value) -> Result<Value, faas_api::Error> { Ok(v) }
    /// let app = App::new().function("echo", echo);
    /// assert!(app.contains("echo"));
    /// assert!(!app.contains("other"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// Mistakes made while building the app (bad names, duplicates, triggers for unknown
    /// functions). Hosts refuse to start an app that has any.
    ///
    /// ```
    /// use faas_api::App;
    /// # use serde_json::Value;
    /// # async fn echo(_cx: faas_api::Context, v: Value) -> Result<Value, faas_api::Error> { Ok(v) }
    /// let app = App::new().function("echo", echo).function("echo", echo).route("missing", "GET", "/m");
    /// assert_eq!(app.problems(), [
    ///     "function `echo` is defined twice",
    ///     "route names `missing`, which is not a function of this app",
    /// ]);
    /// ```
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Checks that the app was built without mistakes.
    ///
    /// The error lists every entry of [`App::problems`].
    ///
    /// ```
    /// use faas_api::{App, ErrorKind};
    /// # use serde_json::Value;
    /// # async fn echo(_cx: faas_api::Context, v: Value) -> Result<Value, faas_api::Error> { Ok(v) }
    /// assert!(App::new().function("echo", echo).validate().is_ok());
    /// let err = App::new().function("bad name", echo).validate().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::BadInput);
    /// let msg = err.message();
    /// assert!(msg.starts_with("the app is invalid: function name `bad name` contains ` `"), "{msg}");
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(Error::bad_input(format!("the app is invalid: {}", self.problems.join("; "))))
        }
    }

    /// The app's manifest.
    ///
    /// ```
    /// use faas_api::{App, HandlerKind};
    /// # use serde_json::Value;
    /// # async fn echo(_cx: faas_api::Context, v: Value) -> Result<Value, faas_api::Error> { Ok(v) }
    /// let m = App::new().function("echo", echo).manifest();
    /// assert_eq!(m.functions.len(), 1);
    /// assert_eq!((m.functions[0].name.as_str(), m.functions[0].handler), ("echo", HandlerKind::Typed));
    /// ```
    pub fn manifest(&self) -> Manifest {
        Manifest {
            faas_version: env!("CARGO_PKG_VERSION").to_string(),
            functions: self.order.iter().map(|n| self.functions[n].description.clone()).collect(),
        }
    }

    /// The handler of function `name`.
    ///
    /// ```
    /// use faas_api::handler::Invocation;
    /// use faas_api::{App, Context, Payload};
    /// # use serde_json::Value;
    /// # async fn echo(_cx: faas_api::Context, v: Value) -> Result<Value, faas_api::Error> { Ok(v) }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let app = App::new().function("echo", echo);
    /// assert!(app.handler_of("missing").is_none());
    /// let h = app.handler_of("echo").unwrap();
    /// let inv = Invocation { cx: Context::builder("echo").build(), payload: Payload::json(&[1, 2]).unwrap() };
    /// assert_eq!(h.call(inv).await.unwrap().body().as_ref(), b"[1,2]");
    /// # }
    /// ```
    pub fn handler_of(&self, name: &str) -> Option<BoxHandler> {
        self.functions.get(name).map(|f| match &f.handler {
            Entry::Plain(handler) => handler.clone(),
            Entry::WithApp(handler) => Arc::new(Bound { app: self.clone(), handler: handler.clone() }) as BoxHandler,
        })
    }

    /// A not-found error for `name` that lists the known functions.
    ///
    /// ```
    /// use faas_api::{App, ErrorKind};
    /// # use serde_json::Value;
    /// # async fn echo(_cx: faas_api::Context, v: Value) -> Result<Value, faas_api::Error> { Ok(v) }
    /// let err = App::new().function("a", echo).function("b", echo).not_found("c");
    /// assert_eq!(err.kind(), ErrorKind::NotFound);
    /// assert_eq!(err.message(), "no function named `c`; known functions: a, b");
    /// ```
    pub fn not_found(&self, name: &str) -> Error {
        not_found_error(name, self.names())
    }

    /// Runs function `name` with panics turned into crash errors. No deadline is enforced here;
    /// hosts do that.
    ///
    /// ```
    /// use faas_api::{App, Context, Error, ErrorKind, Payload};
    /// async fn boom(_cx: Context, _p: Payload) -> Result<Payload, Error> {
    ///     panic!("out of cheese")
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let app = App::new().raw("boom", boom);
    /// let err = app.call("boom", Context::builder("boom").build(), Payload::empty()).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Crash);
    /// assert!(err.message().contains("out of cheese"));
    /// let err = app.call("nope", Context::builder("nope").build(), Payload::empty()).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::NotFound);
    /// # }
    /// ```
    pub async fn call(&self, name: &str, cx: Context, payload: Payload) -> Result<Payload, Error> {
        let handler = self.handler_of(name).ok_or_else(|| self.not_found(name))?;
        crate::handler::call_catching_panics(handler.as_ref(), Invocation { cx, payload }).await
    }

    /// Convenience for tests: calls `name` with a JSON value and decodes the JSON reply.
    ///
    /// An empty reply decodes as `null`; the context is a default one from [`Context::builder`].
    ///
    /// ```
    /// use faas_api::{App, Context, Error};
    /// async fn count(_cx: Context, words: Vec<String>) -> Result<usize, Error> {
    ///     Ok(words.len())
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let app = App::new().function("count", count);
    /// assert_eq!(app.call_json("count", &["a", "b", "c"]).await.unwrap(), 3);
    /// # }
    /// ```
    pub async fn call_json<T: Serialize>(&self, name: &str, input: &T) -> Result<serde_json::Value, Error> {
        let payload = Payload::json(input)?;
        let cx = Context::builder(name).build();
        let reply = self.call(name, cx, payload).await?;
        if reply.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        reply.json_as()
    }
}

/// The functions among `specs` whose event triggers match `event`, in order, each once.
///
/// ```
/// use faas_api::{app::functions_matching, EventFilter, FunctionSpec, Trigger};
/// use faas_api::cloudevents::{EventBuilder, EventBuilderV10};
/// let mut f = FunctionSpec::new("on_order");
/// f.triggers.push(Trigger::Event { filter: EventFilter::new().event_type("order.*") });
/// let e = EventBuilderV10::new().id("1").source("/shop").ty("order.created").build().unwrap();
/// assert_eq!(functions_matching(&[f], &e), vec!["on_order".to_string()]);
/// ```
pub fn functions_matching(specs: &[crate::FunctionSpec], event: &Event) -> Vec<String> {
    specs
        .iter()
        .filter(|s| s.triggers.iter().any(|t| matches!(t, Trigger::Event { filter } if filter.matches(event))))
        .map(|s| s.name.clone())
        .collect()
}

/// A not-found error for function `name` listing `known`.
///
/// ```
/// use faas_api::{ErrorKind, app::not_found_error};
/// let err = not_found_error("x", ["a", "b"]);
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert_eq!(err.message(), "no function named `x`; known functions: a, b");
/// assert_eq!(not_found_error("x", []).message(), "no function named `x`; known functions: none");
/// ```
pub fn not_found_error<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Error {
    let known: Vec<&str> = known.into_iter().collect();
    let list = if known.is_empty() { "none".to_string() } else { known.join(", ") };
    Error::not_found(format!("no function named `{name}`; known functions: {list}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn hello(_cx: Context, v: serde_json::Value) -> Result<serde_json::Value, Error> {
        Ok(v)
    }

    #[test]
    fn duplicate_and_bad_names_and_dangling_triggers_are_reported() {
        let app = App::new()
            .function("a", hello)
            .function("a", hello)
            .function("b/c", hello)
            .route("missing", "GET", "/x")
            .route("a", "GET", "nope");
        let problems = app.problems().join("\n");
        assert!(problems.contains("`a` is defined twice"), "{problems}");
        assert!(problems.contains("contains `/`"), "{problems}");
        assert!(problems.contains("`missing`"), "{problems}");
        assert!(problems.contains("must start with `/`"), "{problems}");
        assert!(app.validate().is_err());
    }

    #[test]
    fn a_long_non_ascii_name_is_refused_for_its_characters_not_its_byte_length() {
        // 40 characters but 80 bytes: the message must not claim it is over a 64-character limit.
        let err = validate_function_name(&"é".repeat(40)).unwrap_err();
        assert!(err.message().contains("contains `é`"), "{}", err.message());
        let err = validate_function_name(&"é".repeat(65)).unwrap_err();
        assert!(err.message().contains("is 65 characters long; the limit is 64"), "{}", err.message());
    }

    #[test]
    fn a_refused_event_function_reports_one_problem_and_leaves_the_first_definition_alone() {
        async fn on(_cx: Context, _e: Event) -> Result<Option<Event>, Error> {
            Ok(None)
        }
        let app = App::new().event("b/c", on);
        assert_eq!(app.problems().len(), 1, "{:?}", app.problems());
        assert!(app.problems()[0].contains("contains `/`"), "{:?}", app.problems());

        let app = App::new().function("a", hello).event("a", on);
        assert_eq!(app.problems(), ["function `a` is defined twice"]);
        let a = app.manifest().functions.into_iter().find(|f| f.name == "a").unwrap();
        assert_eq!(a.handler, HandlerKind::Typed);
        assert!(a.requires.is_empty(), "{:?}", a.requires);

        let ok = App::new().event("on", on);
        assert_eq!(ok.manifest().functions[0].requires, [Capability::CloudEvents]);
    }

    #[tokio::test]
    async fn unknown_function_lists_known_ones() {
        let app = App::new().function("a", hello).function("b", hello);
        let err = app.call("zzz", Context::builder("zzz").build(), Payload::empty()).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NotFound);
        assert!(err.message().contains("known functions: a, b"), "{}", err.message());
    }

    #[tokio::test]
    async fn malformed_json_is_bad_input_naming_the_parse_error() {
        let app = App::new().function("a", hello);
        let err =
            app.call("a", Context::builder("a").build(), Payload::new(&b"{\"x\": }"[..], None)).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::BadInput);
        assert!(err.message().starts_with("malformed JSON: expected value at line 1 column 7"), "{}", err.message());
    }

    #[test]
    fn manifest_lists_functions_in_declaration_order_with_triggers() {
        let app = App::new()
            .function("z", hello)
            .function("a", hello)
            .route("a", "post", "/a")
            .subscribe("z", EventFilter::new().event_type("t"));
        let m = app.manifest();
        assert_eq!(m.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), vec!["z", "a"]);
        assert_eq!(
            m.function("a").unwrap().triggers,
            vec![Trigger::Http { method: Some("POST".into()), route: "/a".into() }]
        );
        let back: Manifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
