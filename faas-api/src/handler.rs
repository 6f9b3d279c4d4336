//! Handlers: the ways to write a function, all reduced to one [`Handler`] trait object.
//!
//! - typed JSON: `async fn(Context, Req) -> Result<Resp, E>` ([`crate::App::function`]);
//! - raw bytes: `async fn(Context, Payload) -> Result<Payload, E>` ([`crate::App::raw`]);
//! - CloudEvents: `async fn(Context, Event) -> Result<Option<Event>, E>` ([`crate::App::event`]);
//! - any `tower::Service<Invocation, Response = Payload>` ([`crate::App::service`]).

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
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The invocation context.
    pub cx: Context,
    /// The raw input.
    pub payload: Payload,
}

/// The single shape every function is reduced to. Implemented for the adapters in this module;
/// implement it directly only for something none of them covers.
pub trait Handler: Send + Sync + 'static {
    /// Runs one invocation.
    fn call(&self, invocation: Invocation) -> BoxFuture<'static, Result<Payload, Error>>;
}

/// A shareable handler.
pub type BoxHandler = Arc<dyn Handler>;

/// Adapter for typed JSON handlers. Built by [`crate::App::function`].
pub struct Typed<F, Req, Resp, E> {
    f: F,
    _types: PhantomData<fn(Req) -> (Resp, E)>,
}

impl<F, Req, Resp, E> Typed<F, Req, Resp, E> {
    /// Wraps `f`.
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
pub struct Raw<F, E> {
    f: F,
    _e: PhantomData<fn() -> E>,
}

impl<F, E> Raw<F, E> {
    /// Wraps `f`.
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
pub struct EventFn<F, E> {
    f: F,
    _e: PhantomData<fn() -> E>,
}

impl<F, E> EventFn<F, E> {
    /// Wraps `f`.
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
pub struct ServiceHandler<S> {
    service: S,
}

impl<S> ServiceHandler<S> {
    /// Wraps `service`; it is cloned for each invocation, as tower services expect.
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
