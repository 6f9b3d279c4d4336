//! The function side on Apache OpenWhisk: one faas binary serves a native action in each of the
//! three ways OpenWhisk runs one.
//!
//! | mode | who starts the binary | how it is recognised | protocol |
//! |---|---|---|---|
//! | [`Mode::ActionLoop`] | the Go/Rust/`actionloop-v2` runtimes' proxy, once per container | `__OW_PROXY_VERSION` or `__OW_WAIT_FOR_ACK` | [`actionloop`]: requests on stdin, results on fd 3 |
//! | [`Mode::Skeleton`] | `openwhisk/dockerskeleton` (`wsk action create --native`), once per activation | `__OW_ACTIVATION_ID` | [`skeleton`]: the parameters as argv\[1\] or stdin, the result as the last stdout line |
//! | [`Mode::Proxy`] | Docker, as the image's entrypoint (`wsk action create --docker`) | `__OW_API_HOST` alone | [`proxy`]: `POST /init` and `POST /run` on port 8080 |
//!
//! [`OpenWhiskHost`] is the `faas` facade's `openwhisk` host adapter. In every mode:
//!
//! - the function is chosen by the kit's rule ([`faas_host::choose_function`]): the app's only
//!   function, else the last segment of the activation's `action_name` (under ActionLoop it
//!   arrives only with each request), else `FAAS_FUNCTION`;
//! - the [`faas_api::Context`] comes from the activation (`activation_id` is the invocation id,
//!   `deadline` the deadline) and handlers see the rest as an [`OpenWhiskContext`];
//! - the handler is stopped [`DEADLINE_MARGIN`] before the deadline with a timeout error, before
//!   OpenWhisk destroys the container; replies over 1 MB are refused;
//! - payloads and results travel as [`crate::wire`] says; an error is `{"error": ...}`, which
//!   OpenWhisk records as an "application error";
//! - logs (the tracing subscriber's) go to stderr, which OpenWhisk collects; `RUST_LOG` sets the
//!   level;
//! - `cx.invoke` calls the app's other actions through the controller's REST API with the
//!   activation's own API key, and `cx.emit` posts to `FAAS_EVENTS_URL` ([`crate::services`]).
//! - an activation of a web action (its parameters carry `__ow_method`) is the HTTP request of a
//!   declared route and is answered with an HTTP response ([`web`]).

pub mod actionloop;
pub mod proxy;
pub mod skeleton;
pub mod web;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use faas_api::{App, Error};
use faas_host::invoke::Input;
use faas_host::{Env, Facts, Invoker, Limits};

use crate::wire::{self, RunBody};

/// Set by the ActionLoop proxy for the process it starts (openwhisk-runtime-go, `actionProxy.go`).
pub const ENV_PROXY_VERSION: &str = "__OW_PROXY_VERSION";
/// Set (non-empty) when the ActionLoop proxy waits for the `{"ok":true}` acknowledgement on fd 3.
pub const ENV_WAIT_FOR_ACK: &str = "__OW_WAIT_FOR_ACK";
/// Set per activation by the dockerskeleton proxy (`actionproxy.py`, `env()`).
pub const ENV_ACTIVATION_ID: &str = "__OW_ACTIVATION_ID";
/// The controller's address, set in every action container by the invoker.
pub const ENV_API_HOST: &str = "__OW_API_HOST";
/// The function to serve when the app has several and the action name does not say.
pub const ENV_FUNCTION: &str = "FAAS_FUNCTION";
/// The port the [`Mode::Proxy`] server listens on instead of 8080 (to try an image's binary
/// outside Docker).
pub const ENV_PROXY_PORT: &str = "FAAS_OPENWHISK_PORT";
/// The action proxy's port in an OpenWhisk container.
pub const PROXY_PORT: u16 = 8080;
/// How long before the activation's deadline the host stops a handler that is still running.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(50);
/// Longest request line or body the host reads: the payload limit plus room for the rest of the
/// run body.
pub const MAX_REQUEST: usize = wire::MAX_PAYLOAD + 64 * 1024;

/// How OpenWhisk started this process.
///
/// ```
/// use faas_host::Env;
/// use faas_runner_openwhisk::host::Mode;
/// assert_eq!(Mode::detect(&Env::from_pairs([("__OW_PROXY_VERSION", "1.18")])), Some(Mode::ActionLoop));
/// assert_eq!(Mode::detect(&Env::from_pairs([("__OW_ACTIVATION_ID", "a1")])), Some(Mode::Skeleton));
/// assert_eq!(Mode::detect(&Env::from_pairs([("__OW_API_HOST", "https://ow")])), Some(Mode::Proxy));
/// assert_eq!(Mode::detect(&Env::default()), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Started once by the ActionLoop proxy; requests on stdin, results on fd 3.
    ActionLoop,
    /// Started per activation by the dockerskeleton proxy.
    Skeleton,
    /// The container's own `/init` + `/run` server (a Docker action).
    Proxy,
}

impl Mode {
    /// The mode `env` says, if it is an OpenWhisk action's environment. The ActionLoop proxy's
    /// variables win (it also passes the container's `__OW_*` on), then the per-activation ones.
    pub fn detect(env: &Env) -> Option<Mode> {
        if env.get(ENV_PROXY_VERSION).is_some() || env.get(ENV_WAIT_FOR_ACK).is_some() {
            Some(Mode::ActionLoop)
        } else if env.get(ENV_ACTIVATION_ID).is_some() {
            Some(Mode::Skeleton)
        } else if env.get(ENV_API_HOST).is_some() {
            Some(Mode::Proxy)
        } else {
            None
        }
    }
}

/// OpenWhisk's facts about an activation, available to handlers through
/// [`faas_api::Context::extension`]. The API key is never printed by `Debug`.
///
/// ```
/// use faas_runner_openwhisk::host::OpenWhiskContext;
/// async fn who(cx: faas_api::Context, _: serde_json::Value) -> Result<serde_json::Value, faas_api::Error> {
///     let action = cx.extension::<OpenWhiskContext>().map(|o| o.action_name.clone());
///     Ok(serde_json::json!({ "action": action }))
/// }
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OpenWhiskContext {
    /// The activation's namespace.
    pub namespace: String,
    /// The fully qualified action name, `/namespace[/package]/action`.
    pub action_name: String,
    /// The action's version.
    pub action_version: String,
    /// The activation id.
    pub activation_id: String,
    /// The transaction id.
    pub transaction_id: String,
    /// The deadline, epoch milliseconds (0 when none was given).
    pub deadline_ms: u64,
    /// The activation's API key (`uuid:key`), when OpenWhisk provides one.
    pub api_key: Option<String>,
    /// The controller's address (`__OW_API_HOST`).
    pub api_host: Option<String>,
    /// The variables of the action's `/init` (its `init` parameters), for the [`Mode::Proxy`]
    /// server; the other modes have them in the process environment.
    pub init_env: BTreeMap<String, String>,
}

impl std::fmt::Debug for OpenWhiskContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenWhiskContext")
            .field("namespace", &self.namespace)
            .field("action_name", &self.action_name)
            .field("action_version", &self.action_version)
            .field("activation_id", &self.activation_id)
            .field("transaction_id", &self.transaction_id)
            .field("deadline_ms", &self.deadline_ms)
            .field("api_key", &self.api_key.as_ref().map(|_| "<hidden>"))
            .field("api_host", &self.api_host)
            .finish_non_exhaustive()
    }
}

impl OpenWhiskContext {
    /// The package of the action, if it is in one (`/guest/shop/hello` → `shop`).
    ///
    /// ```
    /// let mut cx = faas_runner_openwhisk::host::OpenWhiskContext::default();
    /// cx.action_name = "/guest/shop/hello".into();
    /// assert_eq!(cx.package(), Some("shop"));
    /// cx.action_name = "/guest/hello".into();
    /// assert_eq!(cx.package(), None);
    /// ```
    pub fn package(&self) -> Option<&str> {
        let parts: Vec<&str> = self.action_name.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            [_, package, _] => Some(package),
            _ => None,
        }
    }
}

/// The `openwhisk` host adapter of the `faas` facade (see the [module docs](self)).
///
/// ```
/// use faas_host::{Env, HostAdapter};
/// use faas_runner_openwhisk::host::OpenWhiskHost;
/// assert_eq!(OpenWhiskHost.name(), "openwhisk");
/// assert!(OpenWhiskHost.detect(&Env::from_pairs([("__OW_API_HOST", "https://ow.example")])));
/// assert!(!OpenWhiskHost.detect(&Env::from_pairs([("PORT", "8080")])));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenWhiskHost;

impl faas_host::HostAdapter for OpenWhiskHost {
    fn name(&self) -> &'static str {
        "openwhisk"
    }

    fn detect(&self, env: &Env) -> bool {
        Mode::detect(env).is_some()
    }

    fn serve(&self, app: App, env: Env) -> faas_host::ServeFuture {
        Box::pin(async move {
            faas_host::logging::install(faas_host::logging::LogStyle::Plain, env.get("RUST_LOG"));
            match Mode::detect(&env) {
                Some(Mode::ActionLoop) => actionloop::serve(app, &env).await,
                Some(Mode::Skeleton) => skeleton::serve(app, &env).await,
                Some(Mode::Proxy) => {
                    let port = match env.get(ENV_PROXY_PORT) {
                        Some(p) => p.parse().map_err(|_| {
                            Error::bad_input(format!("{ENV_PROXY_PORT} must be a port number, got `{p}`"))
                        })?,
                        None => PROXY_PORT,
                    };
                    proxy::serve(app, &env, faas_host::http::Bind::all_interfaces(port)).await
                }
                None => Err(Error::bad_input("this is not an OpenWhisk action's environment")),
            }
        })
    }
}

/// The invoker every mode shares: the backend name `openwhisk`, OpenWhisk's result limit and
/// deadline margin, the environment's variables and the OpenWhisk services.
pub(crate) fn invoker(app: App, env: &Env) -> Invoker {
    Invoker::new(app, "openwhisk")
        .function(env.get(ENV_FUNCTION).map(str::to_string), ENV_FUNCTION)
        .limits(Limits {
            max_reply: Some(wire::MAX_PAYLOAD),
            abort_before: Some(DEADLINE_MARGIN),
            ..Limits::new("OpenWhisk")
        })
        .vars(env.vars().clone())
        .services(Arc::new(crate::services::OpenWhiskServices::from_env(env)))
}

/// How an activation is answered: what the hosts' protocols keep between reading a request and
/// writing its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// As an action's result ([`wire::result_of`]).
    Result,
    /// As a web action's HTTP response ([`web::response_of`]).
    Web(web::Methods),
}

/// The result text for `result`, answered as `reply` says, within OpenWhisk's result limit.
pub(crate) fn answer(reply: &Reply, result: Result<faas_api::Payload, Error>) -> Vec<u8> {
    match reply {
        Reply::Result => actionloop::bounded(wire::result_of(result)),
        Reply::Web(methods) => {
            let body = web::response_of(result, methods);
            if body.len() > wire::MAX_PAYLOAD {
                web::response_of(Err(actionloop::too_large(body.len())), methods)
            } else {
                body
            }
        }
    }
}

/// The facts, the input and the way to answer of one activation. The function comes from the
/// action name only when the app has several (a single-function app serves whatever the action
/// is called); the caller's trace from the envelope, or from a web call's `traceparent` header.
pub(crate) fn activation(
    app: &App,
    run: &RunBody,
    env: &Env,
    init_env: BTreeMap<String, String>,
) -> (Facts, Input, Reply) {
    let (input, trace, reply) = match web::request_of(run.value()) {
        None => {
            let (payload, trace) = wire::traced_payload_of_value(run.value());
            (Input::Payload(payload), trace, Reply::Result)
        }
        Some(request) => {
            let methods = web::Methods::parse(
                init_env.get(web::ENV_WEB_METHODS).map(String::as_str).or(env.get(web::ENV_WEB_METHODS)),
            );
            let (input, trace) = match request.and_then(|r| web::admit(&r, &methods).map(|()| r)) {
                Ok(r) => (Input::Payload(r.payload), r.traceparent.as_deref().and_then(faas_api::TraceContext::parse)),
                Err(e) => (Input::Refused(e), None),
            };
            (input, trace, Reply::Web(methods))
        }
    };
    let action_name = run.action_name.clone().unwrap_or_default();
    let function = (app.names().len() > 1 && !action_name.is_empty())
        .then(|| wire::function_of_action(&action_name).to_string())
        .filter(|f| app.contains(f) || env.get(ENV_FUNCTION).is_none());
    let ow = OpenWhiskContext {
        namespace: run.namespace.clone().unwrap_or_default(),
        action_name,
        action_version: run.action_version.clone().unwrap_or_default(),
        activation_id: run.activation_id.clone().unwrap_or_default(),
        transaction_id: run.transaction_id.clone().unwrap_or_default(),
        deadline_ms: run.deadline_ms().unwrap_or(0),
        api_key: run.api_key.clone(),
        api_host: env.get(ENV_API_HOST).map(str::to_string),
        init_env,
    };
    let mut extensions = http::Extensions::new();
    extensions.insert(ow);
    let facts = Facts {
        function,
        invocation_id: run.activation_id.clone().filter(|id| !id.is_empty()),
        deadline: run.deadline_time(),
        trace,
        extensions,
    };
    (facts, input, reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faas_api::Context;

    async fn hello(_cx: Context, _v: serde_json::Value) -> Result<String, Error> {
        Ok("hi".into())
    }

    #[test]
    fn the_function_comes_from_the_action_name_only_when_the_app_has_several() {
        let run = RunBody::parse(br#"{"action_name":"/guest/shop/bye","activation_id":"a"}"#).unwrap();
        let one = App::new().function("hello", hello);
        assert_eq!(activation(&one, &run, &Env::default(), BTreeMap::new()).0.function, None);
        let two = App::new().function("hello", hello).function("bye", hello);
        assert_eq!(activation(&two, &run, &Env::default(), BTreeMap::new()).0.function.as_deref(), Some("bye"));
        // An action named after no function falls back to FAAS_FUNCTION when that is set.
        let env = Env::from_pairs([(ENV_FUNCTION, "hello")]);
        let other = RunBody::parse(br#"{"action_name":"/guest/greeter"}"#).unwrap();
        assert_eq!(activation(&two, &other, &env, BTreeMap::new()).0.function, None);
        assert_eq!(activation(&two, &other, &Env::default(), BTreeMap::new()).0.function.as_deref(), Some("greeter"));
    }

    #[test]
    fn the_api_key_is_never_printed() {
        let cx = OpenWhiskContext { api_key: Some("uuid:secret".into()), ..Default::default() };
        assert!(!format!("{cx:?}").contains("secret"));
    }
}
