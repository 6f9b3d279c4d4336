//! The custom-handler protocol as a [`HttpProtocol`] of the kit's serve loop: which function a
//! request is for and in which mode, its input, and the answer (see the [module docs](super)).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use faas_api::{App, Error, HandlerKind, Payload, TraceContext};
use faas_host::capture::{Capturing, LogCapture};
use faas_host::http::{Decoded, HttpProtocol, Input};
use faas_host::Facts;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Map, Value};

use super::folder::{FunctionJson, TriggerKind};
use super::route::{RouteTemplate, RouteValues};
use super::wire::{self, AzureRequest, InvocationRequest};
use super::{AzureContext, Settings, Timeouts};

/// How a request reached the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// `GET /`: the Functions host's readiness probe and health ping.
    Ready,
    /// `POST /{function}`: the default mode.
    Default(String),
    /// The caller's request, forwarded, for this function with these route values.
    Forward(String, RouteValues),
    /// `/{function}` with a method the default mode does not use.
    WrongMethod(String),
    /// Nothing the handler serves.
    Unknown,
}

/// How an invocation is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Form {
    /// Default mode, the reply in `Outputs.<binding>` as an HTTP response object.
    HttpOutput(String),
    /// Default mode, the HTTP output binding is `$return`: the response object is `ReturnValue`.
    ReturnValue,
    /// Default mode without an HTTP output (a native trigger): `Outputs: {}`, a failure is a 500.
    Trigger,
    /// Forwarding mode: the reply as it is.
    Forwarded,
}

/// The header of an HTTP output naming the invocation (the id of `X-Azure-Functions-InvocationId`).
pub const INVOCATION_HEADER: &str = "X-Faas-Invocation-Id";
/// The line that ends the `Logs` of a failed invocation, followed by the portable error as JSON.
pub const ERROR_LINE: &str = "faas-error: ";

/// What decoding keeps for the answer.
pub struct Pending {
    form: Form,
    function: String,
    invocation_id: Option<String>,
    capturing: Capturing,
}

/// The custom-handler protocol of one function app (see the [module docs](super)).
pub struct CustomHandlerProtocol {
    /// Azure's functions (function.json, else one HTTP function per app function), by name.
    functions: BTreeMap<String, FunctionJson>,
    /// The app's functions and their kinds.
    kinds: BTreeMap<String, HandlerKind>,
    /// Forwarded routes, in the order they are tried.
    forward: Vec<(RouteTemplate, String)>,
    /// Legacy `httpWorker`: HTTP-in/out functions are forwarded to `/{name}`.
    legacy: bool,
    timeouts: Timeouts,
    capture: Arc<LogCapture>,
    max_payload: usize,
    /// The app settings, for `%NAME%` in binding settings.
    app_settings: BTreeMap<String, String>,
    worker_id: Option<String>,
}

impl CustomHandlerProtocol {
    /// The protocol for `app` with `settings`; invocations log into `capture`, `app_settings`
    /// resolve `%NAME%` in bindings.
    pub fn new(
        app: &App,
        settings: &Settings,
        capture: Arc<LogCapture>,
        app_settings: BTreeMap<String, String>,
    ) -> CustomHandlerProtocol {
        let manifest = app.manifest();
        let kinds: BTreeMap<String, HandlerKind> =
            manifest.functions.iter().map(|f| (f.name.clone(), f.handler)).collect();
        let mut functions = settings.folder.functions.clone();
        for f in &manifest.functions {
            if !functions.keys().any(|k| k.eq_ignore_ascii_case(&f.name)) {
                let route = f.triggers.iter().find_map(|t| match t {
                    faas_api::Trigger::Http { route, .. } => Some(route.trim_start_matches('/').to_string()),
                    _ => None,
                });
                functions.insert(f.name.clone(), FunctionJson::http_default(route.as_deref()));
            }
        }
        for name in settings.folder.functions.keys() {
            if !kinds.keys().any(|k| k.eq_ignore_ascii_case(name)) {
                tracing::warn!(function = %name, "function.json names a function this app does not define");
            }
        }
        let legacy = settings.folder.legacy_http_worker;
        let mut forward = Vec::new();
        if settings.folder.forwarding && !legacy {
            for (name, config) in functions.iter().filter(|(_, c)| c.is_http_in_and_out()) {
                let route = config.trigger().setting("route").unwrap_or(name).trim_matches('/').to_string();
                let prefix = &settings.folder.route_prefix;
                let template = if prefix.is_empty() { route } else { format!("{prefix}/{route}") };
                forward.push((RouteTemplate::parse(&template), name.clone()));
            }
            forward.sort_by(|a, b| RouteTemplate::precedence(&a.0, &b.0));
        }
        CustomHandlerProtocol {
            functions,
            kinds,
            forward,
            legacy,
            timeouts: settings.timeouts.clone(),
            capture,
            max_payload: settings.max_request,
            app_settings,
            worker_id: settings.worker_id.clone(),
        }
    }

    /// Azure's function named `name` (any case).
    fn function(&self, name: &str) -> Option<(&String, &FunctionJson)> {
        self.functions.get_key_value(name).or_else(|| self.functions.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
    }

    /// The app function serving Azure's function `name` (same name, else the same in another case).
    fn app_function(&self, name: &str) -> String {
        if self.kinds.contains_key(name) {
            return name.to_string();
        }
        self.kinds.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned().unwrap_or_else(|| name.to_string())
    }

    fn kind_of(&self, app_function: &str) -> HandlerKind {
        self.kinds.get(app_function).copied().unwrap_or(HandlerKind::Typed)
    }

    /// Whether the Functions host sends this function's HTTP requests as they came.
    fn is_forwarded(&self, config: &FunctionJson) -> bool {
        config.is_http_in_and_out() && (self.legacy || !self.forward.is_empty())
    }

    fn classify(&self, head: &Parts) -> Route {
        let path = head.uri.path();
        if path == "/" && (head.method == Method::GET || head.method == Method::HEAD) {
            return Route::Ready;
        }
        let single = path.strip_prefix('/').filter(|n| !n.is_empty() && !n.contains('/'));
        let named = single.and_then(|n| self.function(n));
        // A default-mode call of a function that has no other mode comes first: a catch-all route
        // must not take it.
        if let Some((name, config)) = named {
            if self.legacy && config.is_http_in_and_out() {
                return Route::Forward(name.clone(), RouteValues::new());
            }
            if head.method == Method::POST && !self.is_forwarded(config) {
                return Route::Default(name.clone());
            }
        }
        if let Some((template, name)) = self.forward.iter().find(|(t, _)| t.matches(path).is_some()) {
            return Route::Forward(name.clone(), template.matches(path).unwrap_or_default());
        }
        match named {
            Some((name, _)) if head.method == Method::POST => Route::Default(name.clone()),
            Some((name, _)) => Route::WrongMethod(name.clone()),
            None => Route::Unknown,
        }
    }

    fn form_of(&self, name: &str) -> Form {
        match self.function(name).and_then(|(_, c)| c.http_output()) {
            Some(out) if out.name == "$return" => Form::ReturnValue,
            Some(out) => Form::HttpOutput(out.name.clone()),
            None => Form::Trigger,
        }
    }

    fn check_size(&self, payload: &Payload) -> Result<(), Error> {
        if payload.len() > self.max_payload {
            return Err(Error::payload_too_large(format!(
                "the request body is {} bytes; Azure Functions' limit is {} bytes",
                payload.len(),
                self.max_payload
            )));
        }
        Ok(())
    }

    fn facts(&self, app_function: String, trace: Option<TraceContext>, cx: AzureContext) -> Facts {
        let mut extensions = http::Extensions::new();
        let invocation_id = cx.invocation_id.clone();
        let deadline = self.timeouts.of(&cx.function_name).map(|t| SystemTime::now() + t);
        extensions.insert(cx);
        Facts { function: Some(app_function), invocation_id: Some(invocation_id), deadline, trace, extensions }
    }

    fn context(&self, name: &str, head: &Parts, trigger_type: &str, forwarded: bool) -> AzureContext {
        AzureContext {
            function_name: name.to_string(),
            invocation_id: header(&head.headers, wire::INVOCATION_ID)
                .map(str::to_string)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            host_version: header(&head.headers, wire::HOST_VERSION).map(str::to_string),
            trigger_type: trigger_type.to_string(),
            forwarded,
            request: None,
            metadata: Map::new(),
            worker_id: self.worker_id.clone(),
        }
    }

    /// A default-mode invocation's input: the facts and the payload.
    fn default_input(&self, name: &str, head: &Parts, body: &[u8]) -> Result<(Facts, Payload), Error> {
        let (name, config) = self.function(name).expect("classified");
        let mut invocation = InvocationRequest::parse(body)?;
        let app_function = self.app_function(name);
        let kind = self.kind_of(&app_function);
        let trigger = config.trigger();
        let mut cx = self.context(name, head, &trigger.binding_type, false);
        cx.metadata = invocation.metadata();
        let mut trace = faas_host::trace::from_headers(&head.headers);
        let payload = if trigger.kind() == TriggerKind::Http {
            let value = invocation.take_input(&trigger.name).ok_or_else(|| {
                Error::bad_input(format!(
                    "the invocation's `Data` has no `{}`, the httpTrigger binding of function `{name}`",
                    trigger.name
                ))
            })?;
            let (request, payload) = wire::http_request(value, &format!("Data.{}", trigger.name))?;
            if trace.is_none() {
                trace = request.header(faas_host::wire::TRACEPARENT).and_then(TraceContext::parse);
            }
            let payload = match kind {
                HandlerKind::Event => event_payload(&app_function, &request.header_map(), payload.body())?,
                _ => payload,
            };
            cx.request = Some(request);
            payload
        } else {
            let event =
                super::triggers::trigger_event(name, config, &invocation, &cx.invocation_id, &self.app_settings)?;
            match kind {
                HandlerKind::Event => faas_api::event::encode_structured(&event)?,
                _ => super::triggers::data_payload(&event)?,
            }
        };
        self.check_size(&payload)?;
        Ok((self.facts(app_function, trace, cx), payload))
    }

    /// A forwarded request's input.
    fn forwarded_input(
        &self,
        name: &str,
        params: RouteValues,
        head: &Parts,
        body: Bytes,
    ) -> Result<(Facts, Payload), Error> {
        let app_function = self.app_function(name);
        let payload = match self.kind_of(&app_function) {
            HandlerKind::Event => event_payload(&app_function, &head.headers, &body)?,
            _ => faas_host::wire::payload(&head.headers, body),
        };
        self.check_size(&payload)?;
        let mut cx = self.context(name, head, "httpTrigger", true);
        cx.request = Some(AzureRequest::forwarded(head, params));
        let trace = faas_host::trace::from_headers(&head.headers);
        Ok((self.facts(app_function, trace, cx), payload))
    }

    fn invoke(&self, form: Form, function: &str, input: Result<(Facts, Payload), Error>) -> Decoded<Pending> {
        match input {
            Ok((facts, payload)) => {
                let capturing = self.capture.begin(facts.invocation_id.clone().unwrap_or_default());
                let invocation_id = facts.invocation_id.clone();
                let pending = Pending { form, function: function.to_string(), invocation_id, capturing };
                Decoded::Invoke { facts, input: Input::Payload(payload), pending }
            }
            Err(e) => Decoded::Answer(answer(&form, function, None, Err(e), Vec::new())),
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// The request's one CloudEvent (binary or structured mode) as the payload an event function takes.
fn event_payload(function: &str, headers: &HeaderMap, body: &[u8]) -> Result<Payload, Error> {
    let mut events = faas_api::event::event_from_http(headers, body).map_err(|e| {
        Error::bad_input(format!("function `{function}` takes a CloudEvent: {}", e.message())).with_type(e.error_type())
    })?;
    if events.len() != 1 {
        return Err(Error::bad_input(format!(
            "function `{function}` takes one CloudEvent; this request is a batch of {}",
            events.len()
        )));
    }
    faas_api::event::encode_structured(&events.remove(0))
}

fn respond(status: StatusCode, content_type: Option<&str>, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(c).ok()) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, ct);
    }
    r
}

/// An error as the faas local HTTP host answers it (status by kind, the portable JSON body,
/// `faas-error`).
fn raw_error(error: &Error) -> Response<Full<Bytes>> {
    let (status, headers, body) = faas_host::wire::error_parts(error);
    let mut r = respond(status, None, body);
    r.headers_mut().extend(headers);
    r
}

/// The answer of an invocation in `form`. An HTTP output names the invocation in
/// [`INVOCATION_HEADER`] (the Functions host answers its caller no id of its own), and an error
/// ends the `Logs` with [`ERROR_LINE`] and the portable error: the Functions host counts an
/// invocation that answered an error status as succeeded, so that line is what its records
/// (the function's log file) say about the failure.
fn answer(
    form: &Form,
    function: &str,
    invocation_id: Option<&str>,
    result: Result<Payload, Error>,
    mut logs: Vec<String>,
) -> Response<Full<Bytes>> {
    if let Err(e) = &result {
        if !matches!(form, Form::Trigger | Form::Forwarded) {
            logs.push(format!("{ERROR_LINE}{}", String::from_utf8_lossy(&e.to_json())));
        }
    }
    let ok = |outputs: Map<String, Value>, return_value: Value| {
        respond(
            StatusCode::OK,
            Some("application/json; charset=utf-8"),
            wire::answer(outputs, logs.clone(), return_value),
        )
    };
    let res = |result: Result<Payload, Error>| {
        let mut res = match result {
            Ok(reply) => wire::http_output(reply),
            Err(e) => {
                tracing::debug!(function, error = %e, "answered with an error");
                wire::error_output(&e)
            }
        };
        if let Some(id) = invocation_id {
            res["headers"][INVOCATION_HEADER] = Value::String(id.to_string());
        }
        res
    };
    match form {
        Form::HttpOutput(binding) => ok(Map::from_iter([(binding.clone(), res(result))]), Value::Null),
        Form::ReturnValue => ok(Map::new(), res(result)),
        Form::Trigger => match result {
            Ok(reply) => {
                if !reply.is_empty() {
                    tracing::debug!(
                        function,
                        bytes = reply.len(),
                        "the reply of a function without an HTTP output is dropped"
                    );
                }
                ok(Map::new(), Value::Null)
            }
            Err(e) => {
                // A failed answer makes the Functions host count the invocation failed (and retry
                // a queue message); it reads neither its Logs nor its body, so the error goes to
                // stderr, which it logs as an error.
                tracing::error!(function, kind = %e.kind(), error = %e, "the invocation failed");
                for line in &logs {
                    tracing::info!(function, "{line}");
                }
                let mut r = respond(StatusCode::INTERNAL_SERVER_ERROR, Some(faas_api::payload::JSON), e.to_json());
                let (_, headers, _) = faas_host::wire::error_parts(&e);
                r.headers_mut().extend(headers);
                r
            }
        },
        Form::Forwarded => match result {
            Ok(reply) => {
                let ct = reply.content_type().map(str::to_string);
                respond(StatusCode::OK, ct.as_deref(), reply.into_body())
            }
            Err(e) => raw_error(&e),
        },
    }
}

impl HttpProtocol for CustomHandlerProtocol {
    type Pending = Pending;

    fn decode(&self, head: &Parts, body: Bytes) -> Result<Decoded<Pending>, Error> {
        Ok(match self.classify(head) {
            Route::Ready => Decoded::Answer(respond(StatusCode::OK, Some("text/plain; charset=utf-8"), "ready")),
            Route::Default(name) => {
                let input = self.default_input(&name, head, &body);
                self.invoke(self.form_of(&name), &name, input)
            }
            Route::Forward(name, params) => {
                let input = self.forwarded_input(&name, params, head, body);
                self.invoke(Form::Forwarded, &name, input)
            }
            Route::WrongMethod(name) => {
                let e = Error::bad_input(format!(
                    "{} /{name}: the Functions host calls function `{name}` with POST",
                    head.method
                ))
                .with_type("MethodNotAllowed");
                let mut r = raw_error(&e);
                *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                r.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("POST"));
                Decoded::Answer(r)
            }
            Route::Unknown => {
                let names: Vec<&str> = self.functions.keys().map(String::as_str).collect();
                let e = Error::not_found(format!(
                    "no function answers {} {}: the Functions host calls POST /{{function}}, and this app's functions \
                     are: {}",
                    head.method,
                    head.uri.path(),
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                ));
                Decoded::Answer(raw_error(&e))
            }
        })
    }

    fn encode(&self, pending: Pending, result: Result<Payload, Error>) -> Response<Full<Bytes>> {
        let logs = pending.capturing.finish().into_iter().map(|(_, line)| line).collect();
        answer(&pending.form, &pending.function, pending.invocation_id.as_deref(), result, logs)
    }

    fn refuse(&self, head: Option<&Parts>, error: &Error) -> Response<Full<Bytes>> {
        match head.map(|h| self.classify(h)) {
            Some(Route::Default(name)) => {
                let id = head.and_then(|h| header(&h.headers, wire::INVOCATION_ID)).map(str::to_string);
                answer(&self.form_of(&name), &name, id.as_deref(), Err(error.clone()), Vec::new())
            }
            _ => raw_error(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::folder::FunctionApp;
    use faas_api::Context;
    use serde_json::json;

    async fn typed(_cx: Context, v: Value) -> Result<Value, Error> {
        Ok(v)
    }

    fn protocol(host_json: &str, functions: &[(&str, &str)], max_request: usize) -> CustomHandlerProtocol {
        let mut folder = FunctionApp::default();
        folder.apply_host_json(host_json, "host.json").unwrap();
        for (name, json) in functions {
            folder.functions.insert(name.to_string(), FunctionJson::parse(json, name).unwrap());
        }
        let settings =
            Settings { port: 0, folder, timeouts: Timeouts::new(BTreeMap::new(), None), worker_id: None, max_request };
        let app = App::new().function("hello", typed).function("orders", typed).function("items", typed);
        CustomHandlerProtocol::new(&app, &settings, Arc::new(LogCapture::new(1024)), BTreeMap::new())
    }

    fn head(method: &str, path: &str) -> Parts {
        http::Request::builder().method(method).uri(path).body(()).unwrap().into_parts().0
    }

    const QUEUE: &str = r#"{"bindings":[{"type":"queueTrigger","direction":"in","name":"m","queueName":"q"}]}"#;
    const CATCH_ALL: &str = r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"{*path}"},
        {"type":"http","direction":"out","name":"res"}]}"#;

    #[test]
    fn requests_are_told_apart_by_path_and_method() {
        let p = protocol(
            r#"{"customHandler":{"enableForwardingHttpRequest":true},"extensions":{"http":{"routePrefix":""}}}"#,
            &[("orders", QUEUE), ("items", CATCH_ALL)],
            1024,
        );
        assert_eq!(p.classify(&head("GET", "/")), Route::Ready);
        // The queue function's default-mode call wins over the catch-all route.
        assert_eq!(p.classify(&head("POST", "/orders")), Route::Default("orders".into()));
        assert_eq!(p.classify(&head("POST", "/Orders")), Route::Default("orders".into()));
        // `hello` has no function.json: an HTTP function (req/res) whose route is its name.
        assert!(matches!(p.classify(&head("GET", "/hello")), Route::Forward(f, _) if f == "hello"));
        match p.classify(&head("GET", "/a/b")) {
            Route::Forward(f, values) => assert_eq!((f.as_str(), values["path"].as_deref()), ("items", Some("a/b"))),
            other => panic!("{other:?}"),
        }
        let plain = protocol("{}", &[("orders", QUEUE)], 1024);
        assert_eq!(plain.classify(&head("POST", "/hello")), Route::Default("hello".into()));
        assert_eq!(plain.classify(&head("GET", "/hello")), Route::WrongMethod("hello".into()));
        assert_eq!(plain.classify(&head("POST", "/api/hello")), Route::Unknown);
        assert_eq!(plain.classify(&head("POST", "/nope")), Route::Unknown);
        let legacy = protocol(r#"{"httpWorker":{}}"#, &[], 1024);
        assert!(matches!(legacy.classify(&head("GET", "/hello")), Route::Forward(f, _) if f == "hello"));
    }

    fn body_json(r: Response<Full<Bytes>>) -> (u16, Value) {
        use http_body_util::BodyExt as _;
        let status = r.status().as_u16();
        let bytes = block_on(r.into_body().collect()).unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn over_the_size_limit_is_a_413_in_the_answer_of_the_function() {
        let p = protocol("{}", &[("orders", QUEUE)], 16);
        let req = json!({"Data": {"req": {"Headers": {"Content-Type": ["text/plain"]}, "Body": "x".repeat(17)}}});
        let decoded = p.decode(&head("POST", "/hello"), Bytes::from(req.to_string())).unwrap();
        let Decoded::Answer(r) = decoded else { panic!("answered at once") };
        let (status, answer) = body_json(r);
        assert_eq!(status, 200);
        assert_eq!(answer["Outputs"]["res"]["statusCode"], 413);
        assert!(answer["Outputs"]["res"]["body"].as_str().unwrap().contains("limit is 16 bytes"));
        // The serve loop's own refusal of a body too large: the same form.
        let (status, answer) = body_json(p.refuse(Some(&head("POST", "/hello")), &Error::payload_too_large("too big")));
        assert_eq!((status, answer["Outputs"]["res"]["statusCode"].as_u64()), (200, Some(413)));
        // A native trigger's failure is a 500.
        let (status, body) = body_json(p.refuse(Some(&head("POST", "/orders")), &Error::payload_too_large("too big")));
        assert_eq!((status, body["kind"].as_str()), (500, Some("payload_too_large")));
    }

    #[test]
    fn a_return_binding_answers_in_return_value() {
        let p = protocol(
            "{}",
            &[(
                "hello",
                r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"http","direction":"out","name":"$return"}]}"#,
            )],
            1024,
        );
        let (status, answer) = body_json(p.refuse(Some(&head("POST", "/hello")), &Error::bad_input("no")));
        assert_eq!(status, 200);
        assert_eq!(answer["Outputs"], json!({}));
        assert_eq!(answer["ReturnValue"]["statusCode"], 400);
    }
}
