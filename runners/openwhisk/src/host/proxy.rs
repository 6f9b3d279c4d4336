//! The action proxy a Docker action's image must be (`docs/actions-docker.md` and
//! `docs/actions-new.md` of apache/openwhisk): an HTTP server on port 8080 with
//!
//! - `POST /init`, once per container: `200 {"ok":true}`; a second one is refused with `403
//!   {"error":"Cannot initialize the action more than once."}`, as the runtimes' proxies do. The
//!   code in the body is ignored (the code is this binary); `value.env` (the action's `init`
//!   parameters and the `__OW_*` facts) is kept and shown to handlers as
//!   [`super::OpenWhiskContext::init_env`].
//! - `POST /run` per activation ([`crate::wire::RunBody`]): `200` with the result, an object or
//!   an array, a function error as `{"error": ...}` (an "application error"). A run before `/init`
//!   is `500 {"error":"no action defined yet"}`, as openwhisk-runtime-go answers it.
//! - after each activation the sentinel line on stdout and stderr, so the invoker can split the
//!   logs (here the binary is the proxy, so it writes them).
//!
//! Anything else is `404 {"error": ...}`; bodies over [`super::MAX_REQUEST`] are `413`. Errors of
//! the proxy itself are `{"error": "<message>"}` with `Content-Type: application/json`, the
//! format of the runtimes' proxies (openwhisk-runtime-go, `runHandler.go`, `sendError`).
//! Activations run concurrently when the action's concurrency limit lets OpenWhisk send several.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Mutex;

use bytes::Bytes;
use faas_api::{App, Error, Payload};
use faas_host::http::{Bind, Decoded, HttpOptions, HttpProtocol, Listener};
use faas_host::Env;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::wire::{RunBody, SENTINEL};

/// The Docker action's `/init` + `/run` protocol.
pub struct ProxyProtocol {
    app: App,
    env: Env,
    init: Mutex<Option<BTreeMap<String, String>>>,
}

impl ProxyProtocol {
    /// The protocol for `app` in `env`, not initialised yet.
    pub fn new(app: App, env: Env) -> ProxyProtocol {
        ProxyProtocol { app, env, init: Mutex::new(None) }
    }

    fn init(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let mut init = self.init.lock().expect("init state");
        if init.is_some() {
            tracing::warn!("refused a second /init");
            return json(StatusCode::FORBIDDEN, &proxy_error("Cannot initialize the action more than once."));
        }
        let env = init_env(body);
        *init = Some(env);
        json(StatusCode::OK, br#"{"ok":true}"#)
    }
}

/// The `value.env` of an `/init` body as strings (the invoker stringifies them already; other
/// JSON is kept as compact JSON text). A body that is no JSON object has no variables.
fn init_env(body: &[u8]) -> BTreeMap<String, String> {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let Some(env) = parsed.get("value").and_then(|v| v.get("env")).and_then(|e| e.as_object()) else {
        return BTreeMap::new();
    };
    env.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect()
}

fn proxy_error(message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": message })).expect("JSON serialises")
}

fn json(status: StatusCode, body: &[u8]) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::copy_from_slice(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// Writes the end-of-activation sentinel to stdout and stderr.
fn sentinel() {
    let _ = writeln!(std::io::stdout().lock(), "{SENTINEL}").and_then(|_| std::io::stdout().flush());
    let _ = writeln!(std::io::stderr().lock(), "{SENTINEL}");
}

impl HttpProtocol for ProxyProtocol {
    type Pending = super::Reply;

    fn decode(&self, head: &Parts, body: Bytes) -> Result<Decoded<super::Reply>, Error> {
        match (&head.method, head.uri.path()) {
            (&Method::POST, "/init") => Ok(Decoded::Answer(self.init(&body))),
            (&Method::POST, "/run") => {
                let Some(init_env) = self.init.lock().expect("init state").clone() else {
                    sentinel();
                    return Ok(Decoded::Answer(json(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &proxy_error("no action defined yet"),
                    )));
                };
                let run = RunBody::parse(&body)?;
                let (facts, input, pending) = super::activation(&self.app, &run, &self.env, init_env);
                Ok(Decoded::Invoke { facts, input, pending })
            }
            (method, path) => Ok(Decoded::Answer(json(
                StatusCode::NOT_FOUND,
                &proxy_error(&format!("no route {method} {path}: an action proxy serves POST /init and POST /run")),
            ))),
        }
    }

    fn encode(&self, reply: super::Reply, result: Result<Payload, Error>) -> Response<Full<Bytes>> {
        let body = super::answer(&reply, result);
        sentinel();
        json(StatusCode::OK, &body)
    }

    fn refuse(&self, head: Option<&Parts>, error: &Error) -> Response<Full<Bytes>> {
        if head.is_some_and(|h| h.uri.path() == "/run") {
            sentinel();
        }
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
        json(status, &proxy_error(error.message()))
    }
}

/// Serves `app` as a Docker action's proxy on `bind` (`0.0.0.0:8080` in a container).
pub async fn serve(app: App, env: &Env, bind: Bind) -> Result<(), Error> {
    let listener = Listener::bind(&bind).await?;
    serve_on(app, env, listener).await
}

/// [`serve`] on a bound listener (the tests bind port 0).
pub async fn serve_on(app: App, env: &Env, listener: Listener) -> Result<(), Error> {
    app.validate()?;
    tracing::debug!(at = %listener.local_addr(), functions = ?app.names(), "serving the OpenWhisk action proxy");
    let invoker = super::invoker(app.clone(), env);
    let protocol = ProxyProtocol::new(app, env.clone());
    faas_host::http::serve(listener, invoker, protocol, HttpOptions { max_body: super::MAX_REQUEST }).await
}
