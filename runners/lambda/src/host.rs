//! The function side on AWS Lambda: the Runtime API loop of a custom runtime
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>).
//!
//! [`LambdaHost`] is the `faas` facade's `lambda` host adapter: it recognises
//! `AWS_LAMBDA_RUNTIME_API` and calls [`serve_with`]. The loop picks the function named by
//! `_HANDLER` (the rule of [`faas_host::choose_function`]), then repeatedly long-polls
//! `GET /2018-06-01/runtime/invocation/next`, runs the function through the shared
//! [`faas_host::Invoker`] (panics become crash errors; the handler is stopped
//! [`DEADLINE_MARGIN`] before its deadline with a timeout error, so the error reaches the caller
//! before Lambda ends the environment; replies over 6 MiB are refused), and posts the reply to
//! `/response` or the error to `/error`. One HTTP/1.1 keep-alive connection to the Runtime API is
//! reused for the whole life of the environment. Logs (the tracing subscriber's and the error
//! lines) go to stderr, which Lambda sends to CloudWatch Logs; `AWS_LAMBDA_LOG_FORMAT=JSON` makes
//! them JSON lines and `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`) sets the level.
//!
//! ## The X-Ray trace header
//!
//! AWS's own runtimes set `_X_AMZN_TRACE_ID` in the process environment for each invocation,
//! for the X-Ray SDKs. This host does not: changing the environment while other threads of the
//! multi-threaded runtime may read it is undefined behaviour in Rust 2024 (`set_var` is unsafe).
//! The header of the current invocation travels in the context instead:
//! [`LambdaContext::xray_trace_id`] (through [`Context::extension`]), and as the portable W3C
//! trace ([`Context::trace`]) when no `traceparent` came with the event. Code that calls AWS with
//! X-Ray propagation passes that value on explicitly (the AWS SDK for Rust takes it as the
//! `X-Amzn-Trace-Id` header of a request).
//!
//! ## Errors on the wire
//!
//! Lambda passes the body of `/error` to the caller unchanged, so the body carries the portable
//! error and the `faas` client maps it back:
//!
//! | portable error | `errorType` in the body | `kind` in the body | `Lambda-Runtime-Function-Error-Type` |
//! |---|---|---|---|
//! | function error `Error::function("ProbeError", ..)` | `ProbeError` | `function` | `Function.ProbeError` |
//! | bad input (e.g. malformed JSON) | `BadInput` | `bad_input` | `Function.BadInput` |
//! | any other kind | [`Error::error_type`] | [`faas_api::ErrorKind::as_str`] | `Function.<errorType>` |
//! | panic in the handler | `Panic` | `crash` | `Function.Panic` |
//! | reply over 6 MiB | `PayloadTooLarge` | `payload_too_large` | `Function.PayloadTooLarge` |
//! | still running [`DEADLINE_MARGIN`] before the deadline | `Timeout` | `timeout` | `Function.Timeout` |
//! | `_HANDLER` names no function (`/runtime/init/error`) | `NotFound` | `not_found` | `Runtime.HandlerNotFound` |
//!
//! The header value must match `(Runtime|Function)\.[A-Z][a-zA-Z]+` or Lambda replaces it with
//! `Function.Unknown`/`Runtime.Unknown` (the Runtime API normalises it). We choose `Function.<errorType>`
//! because the error came from the function; an `errorType` that is not letters-only (e.g.
//! `My_Error`) is reduced to its letters, and an empty result becomes `Function.Unknown`. The
//! header only feeds Lambda's metrics and logs; callers read the body, which is exact.
//! The body's `stackTrace` is always an empty list (Rust has no portable stack trace to offer).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
#[cfg(any(doc, test))]
use faas_api::Context;
use faas_api::{App, Error, Payload, TraceContext};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// Env var with the Runtime API: `host:port` on Lambda, or a URL `http://host:port[/base]` (as
/// `cargo lambda watch` sets it); see [`runtime_api_base`].
pub const ENV_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
/// Env var naming the function to serve (the `Handler` of the Lambda function).
pub const ENV_HANDLER: &str = "_HANDLER";
/// Env var AWS's own runtimes set to the X-Ray trace header of the current invocation. This host
/// leaves it alone and carries the header in [`LambdaContext::xray_trace_id`] (see the module docs).
pub const ENV_TRACE_ID: &str = "_X_AMZN_TRACE_ID";
/// How long before an invocation's deadline the host stops a handler that is still running, to
/// post its timeout error while Lambda still accepts it.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// Runtime API path prefix.
const API: &str = "/2018-06-01/runtime";
/// Lambda's synchronous payload limit (request and response), 6 MiB.
pub const MAX_PAYLOAD: usize = 6 * 1024 * 1024;
/// Most bytes of an event we read from `/next`: the limit plus the Runtime API's own slack.
const MAX_EVENT: usize = MAX_PAYLOAD + 100;
/// Most bytes of a Runtime API reply to `/response` or `/error` we read.
const MAX_REPLY: usize = 64 * 1024;

/// Response headers of `GET /runtime/invocation/next`.
pub mod headers {
    /// Invocation id.
    pub const REQUEST_ID: &str = "lambda-runtime-aws-request-id";
    /// Absolute deadline, Unix epoch milliseconds.
    pub const DEADLINE_MS: &str = "lambda-runtime-deadline-ms";
    /// ARN of the function as invoked.
    pub const FUNCTION_ARN: &str = "lambda-runtime-invoked-function-arn";
    /// X-Ray trace header.
    pub const TRACE_ID: &str = "lambda-runtime-trace-id";
    /// Client context JSON (mobile SDKs; faas puts the caller's `traceparent` in `custom`).
    pub const CLIENT_CONTEXT: &str = "lambda-runtime-client-context";
    /// Cognito identity JSON.
    pub const COGNITO_IDENTITY: &str = "lambda-runtime-cognito-identity";
    /// Tenant id (tenant isolation).
    pub const TENANT_ID: &str = "lambda-runtime-aws-tenant-id";
    /// Request header of `/error` and `/init/error`: the error type.
    pub const ERROR_TYPE: &str = "lambda-runtime-function-error-type";
}

/// Lambda-specific facts about an invocation, available to handlers through the typed extension
/// lookup [`Context::extension`].
///
/// ```
/// use faas_runner_lambda::host::LambdaContext;
/// async fn who(cx: faas_api::Context, _: serde_json::Value) -> Result<serde_json::Value, faas_api::Error> {
///     let arn = cx.extension::<LambdaContext>().map(|l| l.invoked_function_arn.clone());
///     Ok(serde_json::json!({ "arn": arn }))
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LambdaContext {
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// `Lambda-Runtime-Invoked-Function-Arn`, including a qualifier when invoked with one.
    pub invoked_function_arn: String,
    /// `Lambda-Runtime-Trace-Id` (X-Ray header `Root=..;Parent=..;Sampled=..`), when sent.
    pub xray_trace_id: Option<String>,
    /// `Lambda-Runtime-Client-Context` (JSON), when sent.
    pub client_context: Option<serde_json::Value>,
    /// `Lambda-Runtime-Cognito-Identity` (JSON), when sent.
    pub cognito_identity: Option<serde_json::Value>,
    /// `Lambda-Runtime-Aws-Tenant-Id`, when sent.
    pub tenant_id: Option<String>,
    /// `Lambda-Runtime-Deadline-Ms`.
    pub deadline_ms: u64,
    /// `AWS_LAMBDA_FUNCTION_NAME`: the Lambda function's name (may carry a prefix).
    pub function_name: String,
    /// `AWS_LAMBDA_FUNCTION_VERSION`.
    pub function_version: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB.
    pub memory_mb: u32,
    /// `AWS_LAMBDA_LOG_GROUP_NAME`.
    pub log_group: String,
    /// `AWS_LAMBDA_LOG_STREAM_NAME`.
    pub log_stream: String,
}

/// What the host reads from the environment. [`HostEnv::from_env`] for the real thing;
/// [`HostEnv::from_lookup`] to build one from any lookup (tests, embedding).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostEnv {
    /// `AWS_LAMBDA_RUNTIME_API`: `host:port` or `http://host:port[/base]` ([`runtime_api_base`]).
    pub runtime_api: String,
    /// `_HANDLER`.
    pub handler: Option<String>,
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub function_name: String,
    /// `AWS_LAMBDA_FUNCTION_VERSION` (default `$LATEST`).
    pub function_version: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (default 128).
    pub memory_mb: u32,
    /// `AWS_LAMBDA_LOG_GROUP_NAME`.
    pub log_group: String,
    /// `AWS_LAMBDA_LOG_STREAM_NAME`.
    pub log_stream: String,
    /// Variables visible through [`Context::var`] (the whole environment for [`HostEnv::from_env`]).
    pub vars: BTreeMap<String, String>,
}

impl HostEnv {
    /// Reads the process environment. Fails when `AWS_LAMBDA_RUNTIME_API` is unset, empty or
    /// malformed.
    pub fn from_env() -> Result<HostEnv, Error> {
        let mut env = HostEnv::from_lookup(|k| std::env::var(k).ok())?;
        env.vars = std::env::vars().collect();
        Ok(env)
    }

    /// Reads the variables through `var`. `vars` stays empty.
    ///
    /// ```
    /// use faas_runner_lambda::host::HostEnv;
    /// let env = HostEnv::from_lookup(|k| match k {
    ///     "AWS_LAMBDA_RUNTIME_API" => Some("127.0.0.1:9001".into()),
    ///     "_HANDLER" => Some("hello".into()),
    ///     _ => None,
    /// }).unwrap();
    /// assert_eq!(env.handler.as_deref(), Some("hello"));
    /// assert_eq!(env.function_version, "$LATEST");
    /// assert!(HostEnv::from_lookup(|_| None).unwrap_err().message().contains("AWS_LAMBDA_RUNTIME_API"));
    /// ```
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<HostEnv, Error> {
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        let runtime_api = get(ENV_RUNTIME_API).ok_or_else(|| {
            Error::bad_input(format!("{ENV_RUNTIME_API} is not set; this is not a Lambda environment"))
        })?;
        runtime_api_base(&runtime_api)?;
        Ok(HostEnv {
            runtime_api,
            handler: get(ENV_HANDLER),
            function_name: get("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
            function_version: get("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or_else(|| "$LATEST".into()),
            memory_mb: get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|m| m.parse().ok()).unwrap_or(128),
            log_group: get("AWS_LAMBDA_LOG_GROUP_NAME").unwrap_or_default(),
            log_stream: get("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_default(),
            vars: BTreeMap::new(),
        })
    }
}

/// The base URL of the Runtime API named by `value` (`AWS_LAMBDA_RUNTIME_API`), without a trailing
/// `/`; requests go to `<base>/2018-06-01/runtime/...`.
///
/// Lambda sets a bare `host:port`; `cargo lambda watch` sets a URL with a base path,
/// `http://127.0.0.1:9000/.rt`. Both are accepted, as AWS's `lambda_runtime` crate accepts them (it
/// parses the value as a URI, defaults the scheme to `http` and prefixes the base path). A scheme
/// other than `http` (the Runtime API is plain HTTP on the local host), a query or fragment, a
/// missing host, or text that is no URI is refused, naming the value.
///
/// ```
/// use faas_runner_lambda::host::runtime_api_base;
/// assert_eq!(runtime_api_base("127.0.0.1:9001").unwrap(), "http://127.0.0.1:9001");
/// assert_eq!(runtime_api_base("http://127.0.0.1:9000/.rt").unwrap(), "http://127.0.0.1:9000/.rt");
/// assert_eq!(runtime_api_base("http://localhost:9000/").unwrap(), "http://localhost:9000");
/// for bad in ["https://127.0.0.1:9001", "127.0.0.1:9001/.rt", "http://127.0.0.1:9001/?a=b", "http:///x", "a b"] {
///     let e = runtime_api_base(bad).unwrap_err();
///     assert!(e.message().contains("AWS_LAMBDA_RUNTIME_API must be") && e.message().contains(bad), "{e}");
/// }
/// ```
pub fn runtime_api_base(value: &str) -> Result<String, Error> {
    let refuse = || {
        Error::bad_input(format!(
            "{ENV_RUNTIME_API} must be `host:port` or an `http://host:port[/base-path]` URL, got `{value}`"
        ))
    };
    let uri: http::Uri = value.parse().map_err(|_| refuse())?;
    let authority = uri.authority().filter(|a| !a.host().is_empty()).ok_or_else(refuse)?;
    if authority.as_str().contains('@') || uri.query().is_some() || value.contains('#') {
        return Err(refuse());
    }
    let base = match uri.scheme_str() {
        // Authority form (`host:port`): no path at all.
        None if uri.path().is_empty() || value == authority.as_str() => String::new(),
        None => return Err(refuse()),
        Some("http") => uri.path().trim_end_matches('/').to_string(),
        Some(_) => return Err(refuse()),
    };
    Ok(format!("http://{authority}{base}"))
}

/// The `lambda` host adapter of the `faas` facade: recognises `AWS_LAMBDA_RUNTIME_API` and
/// serves the app on the Runtime API.
///
/// ```
/// use faas_host::{Env, HostAdapter};
/// use faas_runner_lambda::host::LambdaHost;
/// assert_eq!(LambdaHost.name(), "lambda");
/// assert!(LambdaHost.detect(&Env::from_pairs([("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")])));
/// assert!(!LambdaHost.detect(&Env::from_pairs([("AWS_LAMBDA_RUNTIME_API", "")])));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LambdaHost;

impl faas_host::HostAdapter for LambdaHost {
    fn name(&self) -> &'static str {
        "lambda"
    }

    fn detect(&self, env: &faas_host::Env) -> bool {
        env.get(ENV_RUNTIME_API).is_some()
    }

    fn serve(&self, app: App, env: faas_host::Env) -> faas_host::ServeFuture {
        Box::pin(async move {
            let mut host_env = HostEnv::from_lookup(|k| env.get(k).map(str::to_string))?;
            host_env.vars = env.vars().clone();
            serve_with(app, host_env).await
        })
    }
}

/// Serves `app` on the Lambda Runtime API named by the process environment, until the Runtime
/// API goes away (the environment is shutting down) — then returns the error saying so.
///
/// If `_HANDLER` names no function of the app (or is unset and the app has several), the error
/// is reported to `POST /runtime/init/error` and returned, so `main` exits non-zero.
pub async fn serve(app: App) -> Result<(), Error> {
    let env = HostEnv::from_env()?;
    serve_with(app, env).await
}

/// [`serve`] with an explicit environment. The process environment is never changed.
pub async fn serve_with(app: App, env: HostEnv) -> Result<(), Error> {
    app.validate()?;
    install_logging(&env.vars);
    let api = RuntimeApi::new(&runtime_api_base(&env.runtime_api)?);
    let invoker =
        faas_host::Invoker::new(app, "lambda").function(env.handler.clone(), ENV_HANDLER).limits(faas_host::Limits {
            max_reply: Some(MAX_PAYLOAD),
            abort_before: Some(DEADLINE_MARGIN),
            ..faas_host::Limits::new("Lambda")
        });
    let function = match invoker.choose(None) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the Lambda host");
            api.post_error("/init/error", "Runtime.HandlerNotFound", &e).await?;
            return Err(e);
        }
    };
    let services = crate::services::LambdaServices::from_env(&faas_host::Env::from_pairs(env.vars.clone()));
    let invoker = invoker
        .function(Some(function.clone()), ENV_HANDLER)
        .vars(env.vars.clone())
        .services(std::sync::Arc::new(services));
    tracing::debug!(function = %function, api = %env.runtime_api, "serving on the Lambda Runtime API");
    loop {
        let next = api.next().await?;
        let request_id = next.request_id.clone();
        let (facts, body) = next.facts(&env);
        // A faas caller sends non-JSON payloads in an envelope and gets the reply back in one.
        let result = invoker.invoke_json_only(facts, body).await;
        let path = format!("/invocation/{request_id}");
        match result {
            Ok(reply) => api.post_response(&format!("{path}/response"), reply).await?,
            Err(e) => {
                // Lambda logs nothing about an error posted to `/error`; like AWS's Node.js runtime,
                // print it, so CloudWatch Logs (and `faas activations`) show it.
                let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
                eprintln!("{}", crate::logs::invoke_error_line(&time, &request_id, &e));
                let header = format!("Function.{}", type_word(e.error_type()));
                api.post_error(&format!("{path}/error"), &header, &e).await?
            }
        }
    }
}

/// Installs the tracing subscriber as Lambda's log settings ask: JSON lines when
/// `AWS_LAMBDA_LOG_FORMAT` is `JSON`, the level of `AWS_LAMBDA_LOG_LEVEL` (Lambda's `FATAL` is
/// `error`), else `RUST_LOG`. Lines go to stderr, which Lambda sends to CloudWatch Logs.
fn install_logging(vars: &BTreeMap<String, String>) {
    let get = |k: &str| vars.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let style = match get("AWS_LAMBDA_LOG_FORMAT") {
        Some(f) if f.eq_ignore_ascii_case("json") => faas_host::logging::LogStyle::Json,
        _ => faas_host::logging::LogStyle::Plain,
    };
    let level = get("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_ascii_lowercase().replace("fatal", "error"));
    faas_host::logging::install(style, level.as_deref().or(get("RUST_LOG")));
}

/// The function to serve: the one `_HANDLER` names, or the only one when `_HANDLER` is unset
/// (the rule of [`faas_host::choose_function`]).
///
/// ```
/// use faas_runner_lambda::host::select_function;
/// async fn f(_: faas_api::Context, v: serde_json::Value) -> Result<serde_json::Value, faas_api::Error> { Ok(v) }
/// let app = faas_api::App::new().function("a", f).function("b", f);
/// assert_eq!(select_function(&app, Some("b")).unwrap(), "b");
/// assert!(select_function(&app, None).unwrap_err().message().contains("a, b"));
/// ```
pub fn select_function(app: &App, handler: Option<&str>) -> Result<String, Error> {
    faas_host::choose_function(app, handler, ENV_HANDLER)
}

/// The letters of `error_type`, starting upper-case, for the `Function.<Type>` header.
fn type_word(error_type: &str) -> String {
    let letters: String = error_type.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    let mut chars = letters.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => "Unknown".into(),
    }
}

/// The W3C trace of an X-Ray header `Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>`: the
/// trace id is the root's two hex parts joined (the standard X-Ray ↔ W3C mapping). Without a
/// `Parent` a new span id is made.
///
/// ```
/// use faas_runner_lambda::host::trace_from_xray;
/// let t = trace_from_xray("Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1").unwrap();
/// assert_eq!(t.traceparent(), "00-5bef4de7ad49b0e87f6ef6c87fc2e700-9a9197af755a6419-01");
/// assert!(trace_from_xray("Root=garbage").is_none());
/// ```
pub fn trace_from_xray(header: &str) -> Option<TraceContext> {
    let field = |name: &str| {
        header.split(';').map(str::trim).find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
    };
    let root = field("Root")?.to_ascii_lowercase();
    let mut parts = root.split('-');
    let (Some("1"), Some(epoch), Some(unique), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let trace_id = format!("{epoch}{unique}");
    let sampled = if field("Sampled") == Some("1") { "01" } else { "00" };
    match field("Parent") {
        Some(parent) => TraceContext::parse(&format!("00-{trace_id}-{}-{sampled}", parent.to_ascii_lowercase())),
        None => TraceContext::parse(&format!("00-{trace_id}-0000000000000001-{sampled}")).map(|t| t.child()),
    }
}

/// What the host hands the invoker for one answer of `GET /runtime/invocation/next`: the
/// `Lambda-Runtime-*` headers read into [`faas_host::Facts`] (the request id as the invocation id,
/// the deadline, the trace: a `traceparent` in the event, else one in the client context's `custom`
/// map, else the X-Ray header, else none) and the event body. A missing request id or a deadline
/// that is not a number is an `unavailable` error naming the header; unreadable optional headers
/// (a client context that is not JSON) are left out.
///
/// ```
/// use faas_runner_lambda::host::{read_invocation, HostEnv, LambdaContext};
/// let env = HostEnv::from_lookup(|k| match k {
///     "AWS_LAMBDA_RUNTIME_API" => Some("127.0.0.1:9001".into()),
///     "AWS_LAMBDA_FUNCTION_NAME" => Some("hello".into()),
///     _ => None,
/// }).unwrap();
/// let mut h = http::HeaderMap::new();
/// h.insert("lambda-runtime-aws-request-id", "8476a536".parse().unwrap());
/// h.insert("lambda-runtime-deadline-ms", "1700000000000".parse().unwrap());
/// let (facts, body) = read_invocation(&h, bytes::Bytes::from_static(b"{}"), &env).unwrap();
/// assert_eq!(facts.invocation_id.as_deref(), Some("8476a536"));
/// assert_eq!(facts.extensions.get::<LambdaContext>().unwrap().function_name, "hello");
/// assert_eq!(&body[..], b"{}");
///
/// h.remove("lambda-runtime-deadline-ms");
/// let err = read_invocation(&h, bytes::Bytes::new(), &env).unwrap_err();
/// assert!(err.message().contains("Lambda-Runtime-Deadline-Ms"));
/// ```
pub fn read_invocation(
    headers: &http::HeaderMap,
    body: Bytes,
    env: &HostEnv,
) -> Result<(faas_host::Facts, Bytes), Error> {
    Ok(Next::from_parts(headers, body)?.facts(env))
}

/// One invocation as handed out by `/next`.
struct Next {
    request_id: String,
    lambda: LambdaContext,
    body: Bytes,
}

impl Next {
    /// Reads the `Lambda-Runtime-*` headers of a `GET /runtime/invocation/next` answer.
    fn from_parts(h: &http::HeaderMap, body: Bytes) -> Result<Next, Error> {
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()).map(str::to_string);
        let request_id = get(headers::REQUEST_ID).ok_or_else(|| {
            Error::unavailable("GET /runtime/invocation/next answered without Lambda-Runtime-Aws-Request-Id")
        })?;
        let deadline_ms = get(headers::DEADLINE_MS).and_then(|d| d.parse::<u64>().ok()).ok_or_else(|| {
            Error::unavailable("GET /runtime/invocation/next answered without a numeric Lambda-Runtime-Deadline-Ms")
        })?;
        let json = |name: &str| get(name).and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok());
        let lambda = LambdaContext {
            request_id: request_id.clone(),
            invoked_function_arn: get(headers::FUNCTION_ARN).unwrap_or_default(),
            xray_trace_id: get(headers::TRACE_ID),
            client_context: json(headers::CLIENT_CONTEXT),
            cognito_identity: json(headers::COGNITO_IDENTITY),
            tenant_id: get(headers::TENANT_ID),
            deadline_ms,
            ..Default::default()
        };
        Ok(Next { request_id, lambda, body })
    }

    /// The platform's facts and the event body. Trace precedence: a `traceparent` in the event,
    /// then one in the client context's `custom` map (how the faas Lambda runner propagates the
    /// caller's trace), then the X-Ray header, else a fresh trace.
    fn facts(self, env: &HostEnv) -> (faas_host::Facts, Bytes) {
        let trace = faas_host::trace::from_event(&self.body)
            .or_else(|| {
                let cc = self.lambda.client_context.as_ref()?;
                cc.pointer("/custom/traceparent").and_then(|t| t.as_str()).and_then(TraceContext::parse)
            })
            .or_else(|| self.lambda.xray_trace_id.as_deref().and_then(trace_from_xray));
        let mut lambda = self.lambda;
        lambda.function_name = env.function_name.clone();
        lambda.function_version = env.function_version.clone();
        lambda.memory_mb = env.memory_mb;
        lambda.log_group = env.log_group.clone();
        lambda.log_stream = env.log_stream.clone();
        let mut extensions = http::Extensions::new();
        let deadline = std::time::UNIX_EPOCH + Duration::from_millis(lambda.deadline_ms);
        extensions.insert(lambda);
        let facts = faas_host::Facts {
            function: None,
            invocation_id: Some(self.request_id),
            deadline: Some(deadline),
            trace,
            extensions,
        };
        (facts, self.body)
    }
}

/// A client of the Runtime API over one reused keep-alive connection.
struct RuntimeApi {
    base: String,
    client: faas_host::client::HttpClient,
}

impl RuntimeApi {
    /// A client of the Runtime API at `base` (from [`runtime_api_base`]).
    fn new(base: &str) -> RuntimeApi {
        RuntimeApi { base: format!("{base}{API}"), client: faas_host::client::HttpClient::new() }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        limit: usize,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), Error> {
        use faas_host::client::SendError;
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).map_err(|e| Error::bad_input(format!("bad request to {url}: {e}")))?;
        let (parts, body) = self.client.send(req, limit).await.map_err(|e| match e {
            SendError::Request(e) => Error::unavailable(format!("the Lambda Runtime API at {url} is unreachable: {e}")),
            SendError::Body(e) => {
                Error::unavailable(format!("reading the reply of {url} failed (limit {limit} bytes): {e}"))
            }
        })?;
        Ok((parts.status, parts.headers, body))
    }

    /// Long-polls for the next invocation (no timeout, as the Runtime API docs require).
    async fn next(&self) -> Result<Next, Error> {
        let (status, h, body) = self.send(Method::GET, "/invocation/next", &[], Bytes::new(), MAX_EVENT).await?;
        if status != StatusCode::OK {
            return Err(Error::unavailable(format!(
                "GET /runtime/invocation/next answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(1024)])
            )));
        }
        Next::from_parts(&h, body)
    }

    async fn post_response(&self, path: &str, reply: Payload) -> Result<(), Error> {
        let ct = reply.content_type().unwrap_or(faas_api::payload::JSON).to_string();
        let (status, _, body) =
            self.send(Method::POST, path, &[("content-type", &ct)], reply.into_body(), MAX_REPLY).await?;
        self.check_accepted(path, status, &body)
    }

    async fn post_error(&self, path: &str, error_type_header: &str, e: &Error) -> Result<(), Error> {
        let headers = [("content-type", "application/json"), (headers::ERROR_TYPE, error_type_header)];
        let (status, _, body) =
            self.send(Method::POST, path, &headers, crate::errors::error_body(e).into(), MAX_REPLY).await?;
        self.check_accepted(path, status, &body)
    }

    /// 202 is success. A 4xx about this one invocation (bad id, state) is logged and the loop goes
    /// on; anything else means the environment is broken.
    fn check_accepted(&self, path: &str, status: StatusCode, body: &[u8]) -> Result<(), Error> {
        let text = String::from_utf8_lossy(&body[..body.len().min(1024)]);
        if status.is_success() {
            Ok(())
        } else if status.is_client_error() {
            tracing::warn!(%status, path, body = %text, "the Lambda Runtime API refused a post");
            Ok(())
        } else {
            Err(Error::unavailable(format!("POST /runtime{path} answered {status}: {text}")))
        }
    }
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
