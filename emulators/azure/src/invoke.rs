//! The host ↔ handler protocol: the invocation request (`POST /{function}`, chunked, the host's
//! headers, `{"Data", "Metadata"}` with the host's value encoding), the rules that turn the
//! handler's answer into a result or a failure, the HTTP response a caller gets from an
//! `Outputs.res`, and the pass-through of HTTP-in/HTTP-out functions in forwarding mode.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Map, Value};

use crate::config::{Direction, FunctionConfig};
use crate::json::{self, Obj, J};
use crate::keys::AuthLevel;
use crate::worker::{Body, Client, Worker};

/// `ScriptHost.Version` of the host this emulates (release 4.1037.0): the
/// `X-Azure-Functions-HostVersion` header and the `User-Agent` product version.
///
/// ```
/// assert_eq!(faas_emulator_azure::HOST_VERSION, "4.1037.0.0");
/// ```
pub const HOST_VERSION: &str = "4.1037.0.0";

/// The largest answer read from a handler.
const MAX_ANSWER: usize = 256 << 20;

/// Kestrel's known request headers, in the spelling it enumerates them with.
const KNOWN_HEADERS: &[&str] = &[
    "Accept",
    "Accept-Charset",
    "Accept-Encoding",
    "Accept-Language",
    "Access-Control-Request-Headers",
    "Access-Control-Request-Method",
    "Allow",
    "Alt-Used",
    "Authorization",
    "baggage",
    "Cache-Control",
    "Connection",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Location",
    "Content-MD5",
    "Content-Range",
    "Content-Type",
    "Cookie",
    "Correlation-Context",
    "Date",
    "Expect",
    "Expires",
    "From",
    "Grpc-Accept-Encoding",
    "Grpc-Encoding",
    "Grpc-Timeout",
    "Host",
    "If-Match",
    "If-Modified-Since",
    "If-None-Match",
    "If-Range",
    "If-Unmodified-Since",
    "Keep-Alive",
    "Last-Modified",
    "Max-Forwards",
    "Origin",
    "Pragma",
    "Proxy-Authorization",
    "Range",
    "Referer",
    "Request-Id",
    "TE",
    "traceparent",
    "tracestate",
    "Trailer",
    "Transfer-Encoding",
    "Translate",
    "Upgrade",
    "Upgrade-Insecure-Requests",
    "User-Agent",
    "Via",
    "Warning",
];

/// A request header's name as ASP.NET Core enumerates it: a known header in its canonical
/// spelling, any other as received (HTTP/1 names arrive lower case here).
pub(crate) fn header_display_name(name: &str) -> String {
    KNOWN_HEADERS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| k.to_string())
        .unwrap_or_else(|| name.to_string())
}

/// The headers of a request, each name with its values, in the order received.
fn grouped_headers(headers: &HeaderMap) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match out.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name.as_str())) {
            Some((_, values)) => values.push(value),
            None => out.push((header_display_name(name.as_str()), vec![value])),
        }
    }
    out
}

/// The query of a request, each name (any case) with its values, in the order received.
pub(crate) fn grouped_query(query: Option<&str>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match out.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&k)) {
            Some((_, values)) => values.push(v.into_owned()),
            None => out.push((k.into_owned(), vec![v.into_owned()])),
        }
    }
    out
}

/// `sys` of every invocation's binding data.
pub(crate) fn sys(function: &str) -> J {
    let mut o = Obj::new();
    o.push("MethodName", J::s(function))
        .push("UtcNow", J::s(json::utc_roundtrip(&chrono::Utc::now())))
        .push("RandGuid", J::s(uuid::Uuid::new_v4().to_string()));
    J::O(o)
}

/// The claims identities of a caller as Newtonsoft serialises `ClaimsIdentity`: one
/// `WebJobsAuthLevel` identity for a key caller, ASP.NET Core's empty unauthenticated identity
/// otherwise.
pub(crate) fn identities(key: Option<&(AuthLevel, String)>) -> J {
    let claim = |kind: &str, value: &str| {
        let mut c = Obj::new();
        c.push("Issuer", J::s("LOCAL AUTHORITY"))
            .push("OriginalIssuer", J::s("LOCAL AUTHORITY"))
            .push("Properties", J::O(Obj::new()))
            .push("Type", J::s(kind))
            .push("Value", J::s(value))
            .push("ValueType", J::s("http://www.w3.org/2001/XMLSchema#string"));
        J::O(c)
    };
    let mut identity = Obj::new();
    match key {
        Some((level, name)) => {
            let mut claims = vec![
                claim("http://schemas.microsoft.com/2017/07/functions/claims/authlevel", level.claim()),
                claim("http://schemas.microsoft.com/2017/07/functions/claims/invoke", "true"),
            ];
            if !name.is_empty() {
                claims.push(claim("http://schemas.microsoft.com/2017/07/functions/claims/keyid", name));
            }
            identity.push("AuthenticationType", J::s("WebJobsAuthLevel")).push("IsAuthenticated", J::V(true.into()));
            identity.push("Actor", J::null()).push("BootstrapContext", J::null()).push("Claims", J::A(claims));
        }
        None => {
            identity.push("AuthenticationType", J::null()).push("IsAuthenticated", J::V(false.into()));
            identity.push("Actor", J::null()).push("BootstrapContext", J::null()).push("Claims", J::A(Vec::new()));
        }
    }
    identity
        .push("Label", J::null())
        .push("Name", J::null())
        .push("NameClaimType", J::s("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"))
        .push("RoleClaimType", J::s("http://schemas.microsoft.com/ws/2008/06/identity/claims/role"));
    J::A(vec![J::O(identity)])
}

/// Whether a content type is `application/octet-stream` or `multipart/*` (body sent as base64).
fn is_octet_or_multipart(content_type: Option<&str>) -> bool {
    let media = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    media == "application/octet-stream" || media.starts_with("multipart/")
}

/// A body read as text the way `ReadAsStringAsync` does: UTF-8 unless a byte order mark says
/// otherwise.
fn body_text(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    let utf16 = |rest: &[u8], le: bool| {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| if le { u16::from_le_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], c[1]]) })
            .collect();
        String::from_utf16_lossy(&units)
    };
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, true);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, false);
    }
    String::from_utf8_lossy(bytes).into_owned()
}

/// The request an HTTP trigger fires with, as the host sees it.
#[derive(Debug, Clone)]
pub(crate) struct HttpCall {
    pub url: String,
    pub method: Method,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The route values, in template order (`None`: an optional one left out).
    pub params: Vec<(String, Option<String>)>,
    /// The key the caller authenticated with, when one was checked.
    pub key: Option<(AuthLevel, String)>,
    /// The body, only when the request had `Content-Length` > 0.
    pub body: Option<Bytes>,
}

impl HttpCall {
    fn content_type(&self) -> Option<&str> {
        self.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
    }

    /// `Data.<req>`: `{Url, Method, Query, Headers, Params, Identities, Body}`.
    pub fn trigger_value(&self) -> J {
        let mut req = Obj::new();
        req.push("Url", J::s(&self.url)).push("Method", J::s(self.method.as_str()));
        let mut query = Obj::new();
        for (k, values) in grouped_query(self.query.as_deref()) {
            query.push(k, J::s(values.join(",")));
        }
        req.push("Query", J::O(query));
        let mut headers = Obj::new();
        for (k, values) in grouped_headers(&self.headers) {
            headers.push(k, J::A(values.into_iter().map(J::s).collect()));
        }
        req.push("Headers", J::O(headers));
        let mut params = Obj::new();
        for (k, v) in &self.params {
            params.push(k.clone(), v.as_ref().map(J::s).unwrap_or_else(J::null));
        }
        req.push("Params", J::O(params));
        req.push("Identities", identities(self.key.as_ref()));
        if let Some(body) = &self.body {
            let text = if is_octet_or_multipart(self.content_type()) {
                base64::engine::general_purpose::STANDARD.encode(body)
            } else {
                body_text(body)
            };
            req.push("Body", J::s(text));
        }
        J::O(req)
    }

    /// The HTTP trigger's binding data, encoded for `Metadata`: the JSON body's properties,
    /// the query parameters but `code`, the route values, `Query`, `Headers`.
    pub fn metadata(&self, function: &str) -> Obj {
        let mut m = Obj::new();
        if let Some(body) = &self.body {
            for (k, v) in json::json_properties(&body_text(body)) {
                m.set_ci(&k, v);
            }
        }
        let query = grouped_query(self.query.as_deref());
        for (k, values) in &query {
            if k.eq_ignore_ascii_case("code") {
                continue;
            }
            m.set_ci(k, json::text_value(values.last().map(String::as_str).unwrap_or("")));
        }
        for (k, v) in &self.params {
            match v {
                Some(v) => m.set_ci(k, json::text_value(v)),
                None => m.0.retain(|(name, _)| !name.eq_ignore_ascii_case(k)),
            }
        }
        if !m.contains_ci("Query") {
            let mut q = Obj::new();
            for (k, values) in &query {
                q.push(k.clone(), J::s(values.last().cloned().unwrap_or_default()));
            }
            m.push("Query", J::O(q));
        }
        if !m.contains_ci("Headers") {
            let mut h = Obj::new();
            for (k, values) in grouped_headers(&self.headers) {
                h.push(k, J::s(values.join(",")));
            }
            m.push("Headers", J::O(h));
        }
        m.set_ci("sys", sys(function));
        m
    }
}

/// One invocation request.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub invocation_id: String,
    pub function: String,
    /// The caller's `traceparent` (see [`crate::site::Invocation`]).
    pub parent: Option<String>,
    pub data: Obj,
    pub metadata: Obj,
}

impl Call {
    /// The body: `{"Data": {...}, "Metadata": {...}}`, compact.
    pub fn body(&self) -> Vec<u8> {
        let mut o = Obj::new();
        o.push("Data", J::O(self.data.clone())).push("Metadata", J::O(self.metadata.clone()));
        serde_json::to_vec(&o).unwrap_or_default()
    }
}

/// What a handler answered, read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    /// `None`: no `Outputs` member (or `null`).
    pub outputs: Option<Map<String, Value>>,
    pub logs: Vec<String>,
    pub return_value: Value,
}

/// Why an invocation failed: the message the host's log would show (the innermost exception).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// The handler's answer broke a rule (or could not be had).
    Error(String),
    /// The handler answered an empty body with a JSON type: the host waits for the timeout.
    Hang,
    /// The function timeout passed.
    Timeout,
}

/// A W3C `traceparent` the way .NET's `ActivityContext.TryParse` accepts it (version `00`,
/// lower-case hex, neither id all zeros), normalised; `None` for anything else, which .NET
/// ignores and starts a new trace.
pub(crate) fn valid_traceparent(value: &str) -> Option<String> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let zeros = |s: &str| s.bytes().all(|b| b == b'0');
    match parts.as_slice() {
        [version, trace, span, flags]
            if *version == "00"
                && hex(trace, 32)
                && hex(span, 16)
                && hex(flags, 2)
                && !zeros(trace)
                && !zeros(span) =>
        {
            Some(format!("{version}-{trace}-{span}-{flags}"))
        }
        _ => None,
    }
}

/// The `traceparent` of the host's request to the handler: a new span of the caller's trace
/// (its flags kept) when the caller sent one, else a new unsampled trace. HttpClient's
/// diagnostics handler writes the current activity, which ASP.NET Core started as a child of
/// the incoming request's context.
fn traceparent(parent: Option<&str>) -> String {
    let hex = |n: usize| -> String {
        use rand::Rng as _;
        let mut rng = rand::thread_rng();
        (0..n).map(|_| format!("{:x}", rng.gen_range(0..16u8))).collect()
    };
    match parent.and_then(|p| p.split('-').nth(1).zip(p.split('-').nth(3))) {
        Some((trace, flags)) => format!("00-{trace}-{}-{flags}", hex(16)),
        None => format!("00-{}-{}-00", hex(32), hex(16)),
    }
}

fn chunked(bytes: Vec<u8>) -> Body {
    // A stream of unknown length: hyper sends it chunked, as .NET sends an ObjectContent.
    let frames =
        futures::stream::once(async move { Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from(bytes))) });
    http_body_util::StreamBody::new(frames).boxed()
}

/// Reads a response body, at most `MAX_ANSWER` bytes.
async fn read_body(body: hyper::body::Incoming) -> Result<Bytes, String> {
    let limited = http_body_util::Limited::new(body, MAX_ANSWER);
    limited.collect().await.map(|c| c.to_bytes()).map_err(|e| format!("reading the handler's answer failed: {e}"))
}

/// Sends an invocation request and reads the answer.
pub(crate) async fn post(
    client: &Client,
    worker: &Worker,
    call: &Call,
) -> Result<(StatusCode, HeaderMap, Bytes), Failure> {
    let mut request = http::Request::post(format!("{}/{}", worker.base(), call.function));
    let headers = request.headers_mut().expect("a fresh request");
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.append(HeaderName::from_static(name), v);
        }
    };
    put("host", format!("127.0.0.1:{}", worker.port));
    put("x-azure-functions-hostversion", HOST_VERSION.to_string());
    put("x-azure-functions-invocationid", call.invocation_id.clone());
    put("user-agent", format!("Azure-Functions-Host/{HOST_VERSION}"));
    put("transfer-encoding", "chunked".to_string());
    put("traceparent", traceparent(call.parent.as_deref()));
    put("content-type", "application/json; charset=utf-8".to_string());
    let request = request.body(chunked(call.body())).map_err(|e| Failure::Error(e.to_string()))?;
    let response = client.request(request).await.map_err(|e| Failure::Error(send_error(&e)))?;
    let (parts, body) = response.into_parts();
    let bytes = read_body(body).await.map_err(Failure::Error)?;
    Ok((parts.status, parts.headers, bytes))
}

fn send_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut message = format!("An error occurred while sending the request. ({e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    message.push(')');
    message
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Unknown")
}

/// Applies the host's rules to a handler's answer.
pub(crate) fn read_answer(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Result<Answer, Failure> {
    if !status.is_success() {
        return Err(Failure::Error(format!(
            "Response status code does not indicate success: {} ({}).",
            status.as_u16(),
            reason(status)
        )));
    }
    let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if media != "application/json" && media != "text/json" {
        let shown = if media.is_empty() { "application/octet-stream".to_string() } else { media };
        return Err(Failure::Error(format!(
            "No MediaTypeFormatter is available to read an object of type 'HttpScriptInvocationResult' from content \
             with media type '{shown}'."
        )));
    }
    let text = body_text(body);
    if text.trim().is_empty() {
        return Err(Failure::Hang);
    }
    let value: Value =
        serde_json::from_str(&text).map_err(|e| Failure::Error(format!("Invalid HttpResponseMessage: {e}")))?;
    let object = match value {
        Value::Null => return Err(Failure::Hang),
        Value::Object(o) => o,
        other => {
            return Err(Failure::Error(format!(
                "Invalid HttpResponseMessage: cannot deserialize the current JSON {} into type \
                 'HttpScriptInvocationResult' because the type requires a JSON object",
                match other {
                    Value::Array(_) => "array",
                    Value::String(_) => "string",
                    _ => "value",
                }
            )))
        }
    };
    let mut answer = Answer { outputs: None, logs: Vec::new(), return_value: Value::Null };
    for (key, value) in object {
        if key.eq_ignore_ascii_case("outputs") {
            answer.outputs = match value {
                Value::Null => None,
                Value::Object(m) => Some(m),
                _ => return Err(Failure::Error("Invalid HttpResponseMessage: Outputs must be an object".into())),
            };
        } else if key.eq_ignore_ascii_case("logs") {
            answer.logs = match value {
                Value::Null => Vec::new(),
                Value::Array(items) => {
                    let mut logs = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        match item {
                            Value::Null => {}
                            Value::Array(_) | Value::Object(_) => {
                                return Err(Failure::Error(format!(
                                    "Invalid HttpResponseMessage: Unexpected character encountered while parsing \
                                     value. Path 'Logs[{i}]'"
                                )))
                            }
                            scalar => logs.push(json::dotnet_text(scalar).unwrap_or_default()),
                        }
                    }
                    logs
                }
                _ => {
                    return Err(Failure::Error("Invalid HttpResponseMessage: Logs must be an array of strings".into()))
                }
            };
        } else if key.eq_ignore_ascii_case("returnvalue") {
            answer.return_value = value;
        }
    }
    Ok(answer)
}

/// The content an HTTP output binding ends up with.
#[derive(Debug, Clone, PartialEq)]
enum Content {
    /// The `ExpandoObject` made from `Outputs.res`: `None` members were absent (no `res`).
    Expando(Option<(Value, Value, Value, Value)>),
    /// A value given another way (`ReturnValue`, `$return`).
    Value(Value),
}

/// The response an HTTP caller gets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HttpReply {
    /// No HTTP output was produced: `OkResult` (200, empty, no content type).
    Ok,
    /// A response.
    Raw { status: u16, headers: Vec<(String, String)>, content_type: Option<String>, body: Vec<u8> },
}

/// `JsonConvert.DeserializeObject<HttpOutputBindingResponse>(value.ToString())`: members
/// `statusCode`, `status`, `body`, `headers` (any case).
fn output_binding_response(value: &Value) -> Result<(Value, Value, Value, Value), String> {
    const NOT_EXPECTED: &str =
        "Failed while trying to Deserialize to httpOutputBindingResponse. Output is not in expected format";
    let object = match value {
        Value::Object(m) => m.clone(),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            _ => return Err(NOT_EXPECTED.into()),
        },
        _ => return Err(NOT_EXPECTED.into()),
    };
    let mut fields = (Value::Null, Value::Null, Value::Null, Value::Null);
    for (k, v) in object {
        let as_text = |v: &Value| -> Result<Value, String> {
            match v {
                Value::Null => Ok(Value::Null),
                Value::Array(_) | Value::Object(_) => Err(NOT_EXPECTED.into()),
                scalar => Ok(Value::String(json::dotnet_text(scalar).unwrap_or_default())),
            }
        };
        match k.to_ascii_lowercase().as_str() {
            "statuscode" => fields.0 = as_text(&v)?,
            "status" => fields.1 = as_text(&v)?,
            "body" => fields.2 = v,
            "headers" => match v {
                Value::Null | Value::Object(_) => fields.3 = v,
                _ => return Err(NOT_EXPECTED.into()),
            },
            _ => {}
        }
    }
    Ok(fields)
}

/// `HttpBinding.TryParseStatusCode`: `statusCode` first (present, even null, it wins), then
/// `status`; an integer or an integer's text.
fn parse_status(status_code: Option<&Value>, status: Option<&Value>) -> u16 {
    let value = match (status_code, status) {
        (Some(v), _) => v,
        (None, Some(v)) => v,
        (None, None) => return 200,
    };
    let parsed = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match parsed {
        Some(n) => u16::try_from(n).unwrap_or(0),
        None => 200,
    }
}

/// The text a header value is written with (`value.ToString()`).
fn header_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Array(_) | Value::Object(_) => Some(serde_json::to_string_pretty(v).unwrap_or_default()),
        scalar => json::dotnet_text(scalar),
    }
}

/// The bytes a body is written as (`RawScriptResult`): a string as is, an object or array as
/// indented JSON, a scalar as its .NET text, null as nothing.
fn body_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::Null => Vec::new(),
        Value::String(s) => s.clone().into_bytes(),
        Value::Array(_) | Value::Object(_) => serde_json::to_string_pretty(v).unwrap_or_default().into_bytes(),
        scalar => json::dotnet_text(scalar).unwrap_or_default().into_bytes(),
    }
}

fn raw_result(status: u16, headers: Option<&Value>, body: Vec<u8>) -> Result<HttpReply, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut content_type = None;
    if let Some(Value::Object(map)) = headers {
        for (k, v) in map {
            if k.eq_ignore_ascii_case("content-type") {
                content_type = Some(header_text(v).ok_or("content-type header cannot be null")?);
            } else if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(k)) {
                // A duplicate: dropped (logged as such by the host).
            } else {
                let text = header_text(v).ok_or("Object reference not set to an instance of an object.")?;
                out.push((k.clone(), text));
            }
        }
    }
    if !(100..=999).contains(&status) {
        return Err(format!("The status code {status} is not valid"));
    }
    Ok(HttpReply::Raw { status, headers: out, content_type, body })
}

/// `HttpBinding.CreateResult` for a value: a JSON text is parsed; an object with a `body`
/// member is a response object (`statusCode`/`status`, `headers`, `body`); anything else is
/// the body.
fn create_result(value: &Value) -> Result<HttpReply, String> {
    let parsed = match value {
        Value::String(s) => {
            serde_json::from_str::<Value>(s).ok().filter(|v| v.is_object()).unwrap_or_else(|| value.clone())
        }
        other => other.clone(),
    };
    if let Value::Object(map) = &parsed {
        let get = |name: &str| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        if let Some(body) = get("body") {
            let status = parse_status(get("statusCode"), get("status"));
            let headers = get("headers").filter(|h| h.is_object());
            return raw_result(status, headers, body_bytes(body));
        }
    }
    raw_result(200, None, body_bytes(value))
}

/// The HTTP response of a default-mode invocation of `function` that answered `answer`.
pub(crate) fn http_reply(function: &FunctionConfig, answer: &Answer) -> Result<HttpReply, String> {
    let has_return_binding = function.bindings.iter().any(|b| b.name == "$return" && b.direction == Direction::Out);
    let http_output =
        function.outputs().find(|b| b.kind.eq_ignore_ascii_case("http") && b.name != "$return").map(|b| b.name.clone());
    // Outputs, as ToScriptInvocationResult builds them.
    let mut http_content: Option<Content> = None;
    if let (Some(name), Some(outputs)) = (&http_output, &answer.outputs) {
        http_content = Some(match outputs.get(name) {
            Some(v) => Content::Expando(Some(output_binding_response(v)?)),
            None => Content::Expando(None),
        });
    }
    // ReturnValue: to `$return`, else each member of an object overwrites the output of that name.
    let mut return_content = None;
    if !answer.return_value.is_null() {
        if has_return_binding {
            return_content = Some(answer.return_value.clone());
        } else if let (Some(name), Value::Object(members)) = (&http_output, &answer.return_value) {
            if let Some(v) = members.get(name) {
                if !v.is_null() {
                    http_content = Some(Content::Value(v.clone()));
                }
            }
        }
    }
    match (http_content, return_content) {
        (Some(Content::Expando(None)), _) => raw_result(200, None, b"{}".to_vec()),
        (Some(Content::Expando(Some((status_code, status, body, headers)))), _) => {
            let status = parse_status(Some(&status_code), Some(&status));
            raw_result(status, Some(&headers).filter(|h| h.is_object()), body_bytes(&body))
        }
        (Some(Content::Value(v)), _) => create_result(&v),
        (None, Some(v))
            if function.bindings.iter().any(|b| b.name == "$return" && b.kind.eq_ignore_ascii_case("http")) =>
        {
            create_result(&v)
        }
        _ => Ok(HttpReply::Ok),
    }
}

/// The request forwarded to an HTTP-in/HTTP-out function's handler (forwarding mode).
pub(crate) struct Forward<'a> {
    pub path: String,
    pub query: Option<&'a str>,
    pub method: Method,
    pub headers: &'a HeaderMap,
    pub body: Option<Bytes>,
    pub invocation_id: &'a str,
}

/// Headers that belong to one connection, not to the message.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade" | "proxy-connection"
    )
}

/// The query re-added as `QueryHelpers.AddQueryString` writes it: each name once, its values
/// joined with `,`, URL-encoded.
fn requery(query: Option<&str>) -> String {
    let grouped = grouped_query(query);
    if grouped.is_empty() {
        return String::new();
    }
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    let parts: Vec<String> = grouped
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                percent_encoding::utf8_percent_encode(k, SET),
                percent_encoding::utf8_percent_encode(&v.join(","), SET)
            )
        })
        .collect();
    format!("?{}", parts.join("&"))
}

/// Forwards a request to the handler and returns its raw response.
pub(crate) async fn forward(client: &Client, worker: &Worker, f: Forward<'_>) -> Result<http::Response<Bytes>, String> {
    let uri = format!("{}{}{}", worker.base(), f.path, requery(f.query));
    let mut builder = http::Request::builder().method(f.method.clone()).uri(uri);
    let headers = builder.headers_mut().expect("a fresh request");
    for (name, value) in f.headers {
        let lower = name.as_str();
        if hop_by_hop(lower) || lower == "content-length" || lower == "content-type" {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    let user_agent = match f.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()) {
        Some(ua) => format!("{ua} Azure-Functions-Host/{HOST_VERSION}"),
        None => format!("Azure-Functions-Host/{HOST_VERSION}"),
    };
    headers.insert("x-azure-functions-hostversion", HeaderValue::from_static(HOST_VERSION));
    if let Ok(v) = HeaderValue::from_str(f.invocation_id) {
        headers.insert("x-azure-functions-invocationid", v);
    }
    if let Ok(v) = HeaderValue::from_str(&user_agent) {
        headers.insert(http::header::USER_AGENT, v);
    }
    let body = match f.body {
        Some(bytes) => {
            if let Some(ct) = f.headers.get(http::header::CONTENT_TYPE) {
                headers.insert(http::header::CONTENT_TYPE, ct.clone());
            }
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed()
        }
        None => crate::worker::empty_body(),
    };
    let request = builder.body(body).map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| send_error(&e))?;
    let (mut parts, body) = response.into_parts();
    let bytes = read_body(body).await?;
    let names: Vec<HeaderName> = parts.headers.keys().filter(|n| hop_by_hop(n.as_str())).cloned().collect();
    for n in names {
        parts.headers.remove(&n);
    }
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Ok(http::Response::from_parts(parts, bytes))
}

/// How long a call may take: the function timeout (none: a day at a time).
pub(crate) fn deadline(timeout: Option<Duration>) -> Duration {
    timeout.unwrap_or(Duration::from_secs(365 * 86_400))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_handlers_traceparent_continues_a_valid_callers_trace() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(valid_traceparent(&format!(" {parent} ")).as_deref(), Some(parent));
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-01",
        ] {
            assert_eq!(valid_traceparent(bad), None, "{bad}");
        }
        let child = traceparent(Some(parent));
        assert!(child.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && child.ends_with("-01"), "{child}");
        assert_ne!(child, parent, "a new span");
        let fresh = traceparent(None);
        assert!(valid_traceparent(&fresh).is_some() && !fresh.contains("0af7651916cd43dd"), "{fresh}");
    }

    fn function(json: Value) -> FunctionConfig {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("host.json"),
            r#"{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"x"}}}"#,
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("f")).unwrap();
        std::fs::write(dir.path().join("f/function.json"), json.to_string()).unwrap();
        crate::config::load_app(dir.path(), &Default::default()).unwrap().functions.remove(0)
    }

    fn http_fn() -> FunctionConfig {
        function(
            json!({"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"http","direction":"out","name":"res"}]}),
        )
    }

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json; charset=utf-8"));
        h
    }

    fn answer(v: Value) -> Answer {
        read_answer(StatusCode::OK, &json_headers(), v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn answers_that_break_a_rule_fail() {
        let fail = |status: u16, ct: Option<&str>, body: &str| {
            let mut h = HeaderMap::new();
            if let Some(ct) = ct {
                h.insert("content-type", HeaderValue::from_str(ct).unwrap());
            }
            read_answer(StatusCode::from_u16(status).unwrap(), &h, body.as_bytes()).unwrap_err()
        };
        assert!(
            matches!(fail(500, Some("application/json"), "{}"), Failure::Error(m) if m.contains("500 (Internal Server Error)"))
        );
        assert!(matches!(fail(200, Some("text/plain"), "{}"), Failure::Error(m) if m.contains("'text/plain'")));
        assert!(matches!(fail(200, None, "{}"), Failure::Error(m) if m.contains("'application/octet-stream'")));
        assert!(matches!(fail(200, Some("application/json"), "{nope"), Failure::Error(_)));
        assert!(matches!(fail(200, Some("application/json"), "[1]"), Failure::Error(_)));
        assert_eq!(fail(200, Some("application/json"), ""), Failure::Hang);
        assert_eq!(fail(200, Some("text/json"), "null"), Failure::Hang);
        let a = answer(json!({"outputs": {"res": {}}, "LOGS": ["a", 5], "returnValue": 1}));
        assert_eq!(a.logs, ["a", "5"]);
        assert_eq!(a.return_value, json!(1));
    }

    #[test]
    fn res_becomes_the_response_as_the_host_writes_it() {
        let f = http_fn();
        let reply = |v: Value| http_reply(&f, &answer(v)).unwrap();
        let raw = |status: u16, ct: Option<&str>, body: &str| HttpReply::Raw {
            status,
            headers: Vec::new(),
            content_type: ct.map(str::to_string),
            body: body.as_bytes().to_vec(),
        };
        assert_eq!(reply(json!({"Outputs": {"res": {"statusCode": 201, "body": "made"}}})), raw(201, None, "made"));
        assert_eq!(reply(json!({"Outputs": {"res": {"statusCode": "202", "body": "x"}}})), raw(202, None, "x"));
        assert_eq!(reply(json!({"Outputs": {"res": {"status": 201, "body": "x"}}})), raw(200, None, "x"));
        assert_eq!(
            reply(json!({"Outputs": {"res": {"body": {"a": [1]}}}})),
            raw(200, None, "{\n  \"a\": [\n    1\n  ]\n}")
        );
        assert_eq!(reply(json!({"Outputs": {}})), raw(200, None, "{}"));
        assert_eq!(reply(json!({"Logs": []})), HttpReply::Ok);
        assert_eq!(reply(json!({"Outputs": {"res": {"body": true}}})), raw(200, None, "True"));
        assert_eq!(reply(json!({"Outputs": {"res": "{\"statusCode\":204,\"body\":\"\"}"}})), raw(204, None, ""));
        let with_headers = reply(
            json!({"Outputs": {"res": {"body": "x", "headers": {"Content-Type": "application/json", "X-A": 1}}}}),
        );
        assert_eq!(
            with_headers,
            HttpReply::Raw {
                status: 200,
                headers: vec![("X-A".into(), "1".into())],
                content_type: Some("application/json".into()),
                body: b"x".to_vec()
            }
        );
        // ReturnValue's members overwrite the outputs of their name, as a response object.
        assert_eq!(
            reply(json!({"Outputs": {"res": {"body": "a"}}, "ReturnValue": {"res": {"status": 201, "body": "b"}}})),
            raw(201, None, "b")
        );
        assert!(http_reply(&f, &answer(json!({"Outputs": {"res": 5}})))
            .unwrap_err()
            .contains("not in expected format"));
        assert!(http_reply(&f, &answer(json!({"Outputs": {"res": {"statusCode": 1000, "body": ""}}}))).is_err());
        assert!(http_reply(&f, &answer(json!({"Outputs": {"res": {"body": "", "headers": {"Content-Type": null}}}})))
            .is_err());
    }

    #[test]
    fn the_trigger_value_and_metadata_are_encoded_as_the_host_encodes_them() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("app.azurewebsites.net"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        let call = HttpCall {
            url: "http://app.azurewebsites.net/api/hello?x=1&x=2&code=k".into(),
            method: Method::POST,
            query: Some("x=1&x=2&code=k".into()),
            headers,
            params: vec![("id".into(), Some("7".into())), ("rest".into(), None)],
            key: Some((AuthLevel::Function, "default".into())),
            body: Some(Bytes::from_static(br#"{"name":"Ada","n":5}"#)),
        };
        let value = call.trigger_value().to_value();
        assert_eq!(value["Query"], json!({"x": "1,2", "code": "k"}));
        assert_eq!(value["Headers"]["Host"], json!(["app.azurewebsites.net"]));
        assert_eq!(value["Headers"]["x-multi"], json!(["a", "b"]));
        assert_eq!(value["Params"], json!({"id": "7", "rest": null}));
        assert_eq!(value["Body"], json!("{\"name\":\"Ada\",\"n\":5}"));
        assert_eq!(value["Identities"][0]["Claims"][0]["Value"], json!("Function"));
        let text = serde_json::to_string(&call.trigger_value()).unwrap();
        assert!(
            text.starts_with(
                r#"{"Url":"http://app.azurewebsites.net/api/hello?x=1&x=2&code=k","Method":"POST","Query""#
            ),
            "{text}"
        );
        let meta = J::O(call.metadata("hello")).to_value();
        assert_eq!(meta["name"], json!("\"Ada\""));
        assert_eq!(meta["n"], json!("\"5\""));
        assert_eq!(meta["x"], json!("\"2\""));
        assert_eq!(meta["id"], json!("\"7\""));
        assert!(meta.get("code").is_none() && meta.get("rest").is_none());
        assert_eq!(meta["Query"], json!({"x": "2", "code": "k"}));
        assert_eq!(meta["Headers"]["x-multi"], json!("a,b"));
        assert_eq!(meta["sys"]["MethodName"], json!("hello"));
        let anonymous = identities(None).to_value();
        assert_eq!(anonymous[0]["IsAuthenticated"], json!(false));
        assert_eq!(anonymous[0]["Claims"], json!([]));
    }

    #[test]
    fn octet_stream_bodies_are_base64_and_queries_are_rewritten_for_forwarding() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/octet-stream"));
        let call = HttpCall {
            url: "u".into(),
            method: Method::POST,
            query: None,
            headers,
            params: vec![],
            key: None,
            body: Some(Bytes::from_static(&[0, 159, 146, 150])),
        };
        assert_eq!(call.trigger_value().to_value()["Body"], json!("AJ+Slg=="));
        assert_eq!(requery(Some("a=1&a=2&b=x%20y")), "?a=1%2C2&b=x%20y");
        assert_eq!(requery(None), "");
        assert_eq!(header_display_name("content-type"), "Content-Type");
        assert_eq!(header_display_name("x-functions-key"), "x-functions-key");
    }
}
