//! Handlers: the ways to write a function, all reduced to one [`Handler`] trait object.
//!
//! - typed JSON: `async fn(Context, Req) -> Result<Resp, E>` ([`crate::App::function`]);
//! - raw bytes: `async fn(Context, Payload) -> Result<Payload, E>` ([`crate::App::raw`]);
//! - CloudEvents: `async fn(Context, Event) -> Result<Option<Event>, E>` ([`crate::App::event`]);
//! - any `tower::Service<Invocation, Response = Payload>` ([`crate::App::service`]).
//!
//! ```
//! use faas_api::cloudevents::Event;
//! use faas_api::handler::Invocation;
//! use faas_api::{App, Context, Error, HandlerKind, Payload};
//!
//! async fn typed(_cx: Context, n: u32) -> Result<u32, Error> { Ok(n + 1) }
//! async fn raw(_cx: Context, p: Payload) -> Result<Payload, Error> { Ok(p) }
//! async fn event(_cx: Context, _e: Event) -> Result<Option<Event>, Error> { Ok(None) }
//! let service = tower::service_fn(|inv: Invocation| async move { Ok::<_, Error>(inv.payload) });
//!
//! let app = App::new().function("typed", typed).raw("raw", raw).event("event", event).service("svc", service);
//! let kinds: Vec<HandlerKind> = app.manifest().functions.iter().map(|f| f.handler).collect();
//! assert_eq!(kinds, [HandlerKind::Typed, HandlerKind::Raw, HandlerKind::Event, HandlerKind::Service]);
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use cloudevents::Event;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Context, Error, Payload};

/// One invocation as a handler sees it: the context and the input payload.
///
/// ```
/// use faas_api::handler::{Handler, Invocation, Raw};
/// use faas_api::{Context, Error, Payload};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let inv = Invocation { cx: Context::builder("echo").build(), payload: Payload::bytes("hi") };
/// let echo = Raw::new(|_cx: Context, p: Payload| async move { Ok::<_, Error>(p) });
/// assert_eq!(echo.call(inv).await.unwrap().body().as_ref(), b"hi");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The invocation context.
    pub cx: Context,
    /// The raw input.
    pub payload: Payload,
}

/// The single shape every function is reduced to. Implemented for the adapters in this module;
/// implement it directly only for something none of them covers.
///
/// ```
/// use faas_api::handler::{Handler, Invocation};
/// use faas_api::{App, Context, Error, HandlerKind, Payload};
/// use futures::future::{BoxFuture, FutureExt};
///
/// /// Replies with the length of its input, as text.
/// struct Len;
///
/// impl Handler for Len {
///     fn call(&self, inv: Invocation) -> BoxFuture<'static, Result<Payload, Error>> {
///         let n = inv.payload.len();
///         async move { Ok(Payload::new(n.to_string(), Some("text/plain".into()))) }.boxed()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let app = App::new().handler("len", HandlerKind::Raw, Len);
/// let reply = app.call("len", Context::builder("len").build(), Payload::bytes("four")).await.unwrap();
/// assert_eq!(reply.body().as_ref(), b"4");
/// # }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Runs one invocation.
    ///
    /// ```
    /// use faas_api::handler::{Handler, Invocation, Raw};
    /// use faas_api::{Context, Error, Payload};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let h = Raw::new(|_cx: Context, p: Payload| async move {
    ///     Ok::<_, Error>(Payload::bytes(p.body().to_ascii_uppercase()))
    /// });
    /// let inv = Invocation { cx: Context::builder("up").build(), payload: Payload::bytes("abc") };
    /// assert_eq!(h.call(inv).await.unwrap().body().as_ref(), b"ABC");
    /// # }
    /// ```
    fn call(&self, invocation: Invocation) -> BoxFuture<'static, Result<Payload, Error>>;
}

/// A handler that is given its app with each invocation, so it can run the app's other
/// functions in the same invocation: how a composition fused into one invocation runs its steps.
/// Added with [`crate::App::composed`]; [`crate::App::handler_of`] hands it out bound to the app.
pub trait AppHandler: Send + Sync + 'static {
    /// Runs one invocation inside `app`.
    fn call(&self, app: &crate::App, invocation: Invocation) -> BoxFuture<'static, Result<Payload, Error>>;
}

/// A shareable handler.
///
/// ```
/// use faas_api::handler::{BoxHandler, Invocation};
/// use faas_api::{App, Context, Error, Payload};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let app = App::new().raw("echo", |_cx: Context, p: Payload| async move { Ok::<_, Error>(p) });
/// let h: BoxHandler = app.handler_of("echo").unwrap();
/// let h2 = h.clone(); // cheap: shares the handler
/// let inv = Invocation { cx: Context::builder("echo").build(), payload: Payload::bytes("x") };
/// assert_eq!(h2.call(inv).await.unwrap().body().as_ref(), b"x");
/// # }
/// ```
pub type BoxHandler = Arc<dyn Handler>;

/// Adapter for typed JSON handlers. Built by [`crate::App::function`].
///
/// The input is decoded from JSON into the request type (a failure is a bad-input error naming
/// the problem) and the reply is encoded as `application/json`.
///
/// ```
/// use faas_api::handler::{Handler, Invocation, Typed};
/// use faas_api::{Context, Error, ErrorKind, Payload};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let double = Typed::new(|_cx: Context, n: u32| async move { Ok::<_, Error>(n * 2) });
/// let inv = |p: Payload| Invocation { cx: Context::builder("double").build(), payload: p };
/// let reply = double.call(inv(Payload::json(&21).unwrap())).await.unwrap();
/// assert_eq!((reply.body().as_ref(), reply.content_type()), (&b"42"[..], Some("application/json")));
/// // Input that does not decode into the request type never reaches the function.
/// let err = double.call(inv(Payload::json(&"twenty").unwrap())).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::BadInput);
/// # }
/// ```
pub struct Typed<F, Req, Resp, E> {
    f: F,
    _types: PhantomData<fn(Req) -> (Resp, E)>,
}

impl<F, Req, Resp, E> Typed<F, Req, Resp, E> {
    /// Wraps `f`.
    ///
    /// ```
    /// use faas_api::handler::{Handler, Invocation, Typed};
    /// use faas_api::{Context, Error, Payload};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let greet = Typed::new(|_cx: Context, name: String| async move { Ok::<_, Error>(format!("Hello, {name}!")) });
    /// let inv = Invocation { cx: Context::builder("greet").build(), payload: Payload::json("Ada").unwrap() };
    /// assert_eq!(greet.call(inv).await.unwrap().json_as::<String>().unwrap(), "Hello, Ada!");
    /// # }
    /// ```
    pub fn new(f: F) -> Self {
        Typed { f, _types: PhantomData }
    }
}

impl<F, Fut, Req, Resp, E> Handler for Typed<F, Req, Resp, E>
where
    F: Fn(Context, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    E: Into<Error> + Send + 'static,
{
    fn call(&self, inv: Invocation) -> BoxFuture<'static, Result<Payload, Error>> {
        let req: Req = match inv.payload.json_as() {
            Ok(r) => r,
            Err(e) => return futures::future::ready(Err(e)).boxed(),
        };
        let fut = (self.f)(inv.cx, req);
        async move {
            let resp = fut.await.map_err(Into::into)?;
            Payload::json(&resp)
        }
        .boxed()
    }
}

/// Adapter for raw-bytes handlers. Built by [`crate::App::raw`].
///
/// ```
/// use faas_api::handler::{Handler, Invocation, Raw};
/// use faas_api::{Context, Error, Payload};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // The body and content type reach the function as they came; nothing is decoded.
/// let echo = Raw::new(|_cx: Context, p: Payload| async move { Ok::<_, Error>(p) });
/// let input = Payload::new(&b"\xff\x00"[..], Some("image/png".into()));
/// let inv = Invocation { cx: Context::builder("echo").build(), payload: input.clone() };
/// assert_eq!(echo.call(inv).await.unwrap(), input);
/// # }
/// ```
pub struct Raw<F, E> {
    f: F,
    _e: PhantomData<fn() -> E>,
}

impl<F, E> Raw<F, E> {
    /// Wraps `f`.
    ///
    /// ```
    /// use faas_api::handler::{Handler, Invocation, Raw};
    /// use faas_api::{Context, Error, Payload};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let size = Raw::new(|_cx: Context, p: Payload| async move {
    ///     Ok::<_, Error>(Payload::bytes(p.len().to_string()))
    /// });
    /// let inv = Invocation { cx: Context::builder("size").build(), payload: Payload::bytes(vec![0u8; 10]) };
    /// assert_eq!(size.call(inv).await.unwrap().body().as_ref(), b"10");
    /// # }
    /// ```
    pub fn new(f: F) -> Self {
        Raw { f, _e: PhantomData }
    }
}

impl<F, Fut, E> Handler for Raw<F, E>
where
    F: Fn(Context, Payload) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Payload, E>> + Send + 'static,
    E: Into<Error> + Send + 'static,
{
    fn call(&self, inv: Invocation) -> BoxFuture<'static, Result<Payload, Error>> {
        let fut = (self.f)(inv.cx, inv.payload);
        async move { fut.await.map_err(Into::into) }.boxed()
    }
}

/// Adapter for CloudEvent handlers. Built by [`crate::App::event`].
///
/// The input must be a structured-mode JSON event (`application/cloudevents+json`); hosts convert
/// binary-mode HTTP events to that form before invoking. A returned event is encoded the same way;
/// `None` becomes an empty payload.
///
/// ```
/// use faas_api::cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
/// use faas_api::handler::{EventFn, Handler, Invocation};
/// use faas_api::{Context, Error, ErrorKind, Payload, event};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // Answers each order with an `order.confirmed` event.
/// let confirm = EventFn::new(|_cx: Context, e: Event| async move {
///     let reply = EventBuilderV10::new().id(format!("{}-ok", e.id())).source("/billing").ty("order.confirmed");
///     Ok::<_, Error>(Some(reply.build().map_err(|e| Error::function("EventError", e.to_string()))?))
/// });
/// let order = EventBuilderV10::new().id("42").source("/shop").ty("order.created").build().unwrap();
/// let cx = || Context::builder("confirm").build();
/// let inv = Invocation { cx: cx(), payload: event::encode_structured(&order).unwrap() };
/// let reply = confirm.call(inv).await.unwrap();
/// assert_eq!(reply.content_type(), Some("application/cloudevents+json"));
/// let back = event::decode_structured(reply.body()).unwrap();
/// assert_eq!((back.id(), back.ty()), ("42-ok", "order.confirmed"));
/// // A body that is not a CloudEvent is refused, naming what is missing.
/// let bad = Invocation { cx: cx(), payload: Payload::json(&serde_json::json!({})).unwrap() };
/// let err = confirm.call(bad).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::BadInput);
/// assert!(err.message().contains("`specversion`"), "{}", err.message());
/// # }
/// ```
pub struct EventFn<F, E> {
    f: F,
    _e: PhantomData<fn() -> E>,
}

impl<F, E> EventFn<F, E> {
    /// Wraps `f`.
    ///
    /// ```
    /// use faas_api::cloudevents::Event;
    /// use faas_api::handler::{EventFn, Handler, Invocation};
    /// use faas_api::{Context, Error, Payload};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let ignore = EventFn::new(|_cx: Context, _e: Event| async move { Ok::<_, Error>(None) });
    /// let body = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t"}"#;
    /// let inv = Invocation { cx: Context::builder("ignore").build(), payload: Payload::new(body, None) };
    /// assert!(ignore.call(inv).await.unwrap().is_empty());
    /// # }
    /// ```
    pub fn new(f: F) -> Self {
        EventFn { f, _e: PhantomData }
    }
}

impl<F, Fut, E> Handler for EventFn<F, E>
where
    F: Fn(Context, Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Event>, E>> + Send + 'static,
    E: Into<Error> + Send + 'static,
{
    fn call(&self, inv: Invocation) -> BoxFuture<'static, Result<Payload, Error>> {
        let event = match crate::event::decode_structured(inv.payload.body()) {
            Ok(e) => e,
            Err(e) => return futures::future::ready(Err(e)).boxed(),
        };
        let fut = (self.f)(inv.cx, event);
        async move {
            match fut.await.map_err(Into::into)? {
                Some(reply) => crate::event::encode_structured(&reply),
                None => Ok(Payload::empty()),
            }
        }
        .boxed()
    }
}

/// Adapter for `tower::Service`s. Built by [`crate::App::service`].
///
/// ```
/// use faas_api::handler::{Handler, Invocation, ServiceHandler};
/// use faas_api::{Context, Error, Payload};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let svc = tower::service_fn(|inv: Invocation| async move {
///     Ok::<_, Error>(Payload::bytes(inv.cx.function_name().to_string()))
/// });
/// let h = ServiceHandler::new(svc);
/// let inv = Invocation { cx: Context::builder("who").build(), payload: Payload::empty() };
/// assert_eq!(h.call(inv).await.unwrap().body().as_ref(), b"who");
/// # }
/// ```
pub struct ServiceHandler<S> {
    service: S,
}

impl<S> ServiceHandler<S> {
    /// Wraps `service`; it is cloned for each invocation, as tower services expect.
    ///
    /// ```
    /// use faas_api::handler::{Handler, Invocation, ServiceHandler};
    /// use faas_api::{Context, Error, Payload};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let h = ServiceHandler::new(tower::service_fn(|inv: Invocation| async move { Ok::<_, Error>(inv.payload) }));
    /// for word in ["one", "two"] {
    ///     let inv = Invocation { cx: Context::builder("echo").build(), payload: Payload::bytes(word) };
    ///     assert_eq!(h.call(inv).await.unwrap().body().as_ref(), word.as_bytes());
    /// }
    /// # }
    /// ```
    pub fn new(service: S) -> Self {
        ServiceHandler { service }
    }
}

impl<S> Handler for ServiceHandler<S>
where
    S: tower::Service<Invocation, Response = Payload> + Clone + Send + Sync + 'static,
    S::Error: Into<Error> + Send + 'static,
    S::Future: Send + 'static,
{
    fn call(&self, inv: Invocation) -> BoxFuture<'static, Result<Payload, Error>> {
        use tower::ServiceExt;
        let svc = self.service.clone();
        async move { svc.oneshot(inv).await.map_err(Into::into) }.boxed()
    }
}

/// Runs `handler` on `invocation`, turning a panic into a [`crate::ErrorKind::Crash`] error that
/// names the panic message. Every host calls handlers through this.
///
/// ```
/// use faas_api::{handler::{call_catching_panics, Invocation, Raw}, Context, Error, ErrorKind, Payload};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let h = Raw::new(|_cx: Context, _p: Payload| async move {
///     if true { panic!("kaboom") }
///     Ok::<_, Error>(Payload::empty())
/// });
/// let inv = Invocation { cx: Context::builder("p").build(), payload: Payload::empty() };
/// let err = call_catching_panics(&h, inv).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Crash);
/// assert!(err.message().contains("kaboom"));
/// # });
/// ```
pub async fn call_catching_panics(handler: &dyn Handler, invocation: Invocation) -> Result<Payload, Error> {
    let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(invocation))) {
        Ok(fut) => fut,
        Err(panic) => return Err(panic_error(panic)),
    };
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(panic_error(panic)),
    }
}

fn panic_error(panic: Box<dyn std::any::Any + Send>) -> Error {
    let message = if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    };
    Error::crash(format!("the function panicked: {message}")).with_type("Panic")
}
