//! The custom-handler wire format of the default mode (AZURE-HOST.md §2 and §3): the invocation
//! request `{"Data": {...}, "Metadata": {...}}` the Functions host posts, the HTTP request object
//! of an HTTP trigger, and the answer `{"Outputs": {...}, "Logs": [...], "ReturnValue": null}`.
//!
//! ```
//! use faas_runner_azure::host::wire::{self, InvocationRequest};
//! let body = br#"{"Data":{"req":{"Url":"https://app.azurewebsites.net/api/hello?x=1","Method":"POST",
//!     "Query":{"x":"1"},"Headers":{"Content-Type":["application/json"],"Content-Length":["14"]},
//!     "Params":{},"Identities":[],"Body":"{\"name\":\"Ada\"}"}},
//!     "Metadata":{"name":"\"Ada\"","sys":{"MethodName":"hello"}}}"#;
//! let inv = InvocationRequest::parse(body).unwrap();
//! let (req, payload) = wire::http_request(inv.input("req").unwrap().clone(), "Data.req").unwrap();
//! assert_eq!((req.method.as_str(), req.query["x"].as_str()), ("POST", "1"));
//! assert_eq!(payload.content_type(), Some("application/json"));
//! assert_eq!(payload.body().as_ref(), br#"{"name":"Ada"}"#);
//! // Scalars in Metadata are JSON text inside a string.
//! assert_eq!(inv.metadata()["name"], "Ada");
//! ```

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use faas_api::{Error, ErrorKind, Payload};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// The invocation id header the Functions host sends with every invocation.
pub const INVOCATION_ID: &str = "x-azure-functions-invocationid";
/// The Functions host's version header.
pub const HOST_VERSION: &str = "x-azure-functions-hostversion";
/// The header of an HTTP output whose `body` is the base64 of the reply's bytes (a reply that is
/// not UTF-8, or is `application/octet-stream`): the Functions host writes a string body as it is.
pub const ENCODING: &str = "X-Faas-Encoding";

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A value as the host's encoding carries it, decoded: a string holding JSON text becomes that
/// JSON (`"\"Ada\""` → `"Ada"`, `"4"` → `4`); any other string (an ISO 8601 time, base64) and
/// any object stay as they are.
///
/// ```
/// use serde_json::json;
/// use faas_runner_azure::host::wire::decode_value;
/// assert_eq!(decode_value(&json!("\"Ada\"")), json!("Ada"));
/// assert_eq!(decode_value(&json!("4")), json!(4));
/// assert_eq!(decode_value(&json!("2025-06-01T10:00:00+00:00")), json!("2025-06-01T10:00:00+00:00"));
/// assert_eq!(decode_value(&json!({"a": 1})), json!({"a": 1}));
/// ```
pub fn decode_value(value: &Value) -> Value {
    match value {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| value.clone()),
        other => other.clone(),
    }
}

/// A member of `object` by name, the exact name first, then in any case (the Functions host's
/// binding data is case-insensitive).
fn member<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| object.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// [`member`], taken out of `object`.
fn take(object: &mut Map<String, Value>, name: &str) -> Option<Value> {
    if let Some(v) = object.remove(name) {
        return Some(v);
    }
    let key = object.keys().find(|k| k.eq_ignore_ascii_case(name))?.clone();
    object.remove(&key)
}

/// The body of a default-mode invocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvocationRequest {
    /// `Data`: one value per input binding, by binding name.
    pub data: Map<String, Value>,
    /// `Metadata`: the trigger's binding data, as sent (encoded).
    pub raw_metadata: Map<String, Value>,
}

impl InvocationRequest {
    /// Reads the body; what is not `{"Data": {...}, "Metadata": {...}}` is a bad-input error
    /// saying what is wrong.
    ///
    /// ```
    /// use faas_runner_azure::host::wire::InvocationRequest;
    /// let err = InvocationRequest::parse(b"{").unwrap_err();
    /// assert!(err.message().starts_with("the invocation request is not JSON"), "{}", err.message());
    /// let err = InvocationRequest::parse(br#"{"Data": 5}"#).unwrap_err();
    /// assert_eq!(err.message(), "the invocation request's `Data` must be an object of input bindings, not 5");
    /// ```
    pub fn parse(body: &[u8]) -> Result<InvocationRequest, Error> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Error::bad_input(format!("the invocation request is not JSON: {e}")))?;
        let Value::Object(mut root) = value else {
            return Err(Error::bad_input(format!(
                "the invocation request must be an object {{\"Data\": ..., \"Metadata\": ...}}, not {}",
                shown(&value)
            )));
        };
        let mut object = |key: &str, what: &str| -> Result<Map<String, Value>, Error> {
            match take(&mut root, key) {
                None | Some(Value::Null) => Ok(Map::new()),
                Some(Value::Object(o)) => Ok(o),
                Some(other) => Err(Error::bad_input(format!(
                    "the invocation request's `{key}` must be an object of {what}, not {}",
                    shown(&other)
                ))),
            }
        };
        Ok(InvocationRequest {
            data: object("Data", "input bindings")?,
            raw_metadata: object("Metadata", "binding data")?,
        })
    }

    /// The value of input binding `name`, taken out of `Data`.
    ///
    /// ```
    /// let mut inv = faas_runner_azure::host::wire::InvocationRequest::parse(br#"{"Data":{"req":{}}}"#).unwrap();
    /// assert!(inv.take_input("req").is_some());
    /// assert!(inv.input("req").is_none());
    /// ```
    pub fn take_input(&mut self, name: &str) -> Option<Value> {
        take(&mut self.data, name)
    }

    /// The value of input binding `name`.
    ///
    /// ```
    /// let inv = faas_runner_azure::host::wire::InvocationRequest::parse(br#"{"Data":{"Req":{}}}"#).unwrap();
    /// assert!(inv.input("req").is_some());
    /// assert!(inv.input("message").is_none());
    /// ```
    pub fn input(&self, name: &str) -> Option<&Value> {
        member(&self.data, name)
    }

    /// `Metadata` with each top-level value decoded ([`decode_value`]).
    ///
    /// ```
    /// let inv = faas_runner_azure::host::wire::InvocationRequest::parse(
    ///     br#"{"Data":{},"Metadata":{"DequeueCount":"1","Id":"\"5b1c\""}}"#).unwrap();
    /// assert_eq!(inv.metadata()["DequeueCount"], 1);
    /// assert_eq!(inv.metadata()["Id"], "5b1c");
    /// ```
    pub fn metadata(&self) -> Map<String, Value> {
        self.raw_metadata.iter().map(|(k, v)| (k.clone(), decode_value(v))).collect()
    }

    /// A metadata value by name (any case), decoded, when it is a string.
    ///
    /// ```
    /// let inv = faas_runner_azure::host::wire::InvocationRequest::parse(br#"{"Metadata":{"Id":"\"m-1\""}}"#).unwrap();
    /// assert_eq!(inv.metadata_text("id").as_deref(), Some("m-1"));
    /// ```
    pub fn metadata_text(&self, name: &str) -> Option<String> {
        match decode_value(member(&self.raw_metadata, name)?) {
            Value::String(s) => Some(s),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

fn shown(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 60 {
        format!("{}…", &text[..text.char_indices().nth(60).map_or(text.len(), |(i, _)| i)])
    } else {
        text
    }
}

/// The HTTP request of an HTTP trigger, as the Functions host describes it in `Data.<req>` (or as
/// it came, in forwarding mode). Handlers read it through [`super::AzureContext::request`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AzureRequest {
    /// The URL the caller used, `https://<host><path>?<query>`.
    pub url: String,
    /// The method, e.g. `POST`.
    pub method: String,
    /// The query parameters (a repeated name: its values joined with `,`).
    pub query: BTreeMap<String, String>,
    /// The headers, each name with its values, names as sent.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The route values (`None` for an optional one the path left out).
    pub params: BTreeMap<String, Option<String>>,
    /// The caller's identities (ClaimsIdentity objects as the Functions host serialises them).
    pub identities: Value,
}

impl AzureRequest {
    /// The first value of header `name` (any case).
    ///
    /// ```
    /// let mut req = faas_runner_azure::host::wire::AzureRequest::default();
    /// req.headers.insert("Content-Type".into(), vec!["text/plain".into()]);
    /// assert_eq!(req.header("content-type"), Some("text/plain"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.first()).map(String::as_str)
    }

    /// The headers as an [`http::HeaderMap`] (names or values HTTP does not allow are left out).
    ///
    /// ```
    /// let mut req = faas_runner_azure::host::wire::AzureRequest::default();
    /// req.headers.insert("ce-id".into(), vec!["1".into()]);
    /// assert_eq!(req.header_map()["ce-id"], "1");
    /// ```
    pub fn header_map(&self) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, values) in &self.headers {
            let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) else { continue };
            for value in values {
                if let Ok(v) = http::HeaderValue::from_str(value) {
                    map.append(name.clone(), v);
                }
            }
        }
        map
    }

    /// The request of a forwarded call, from its head (`params`: the route values of its match).
    ///
    /// ```
    /// let head = http::Request::get("/api/items/7?x=1&x=2").header("host", "app.azurewebsites.net")
    ///     .body(()).unwrap().into_parts().0;
    /// let req = faas_runner_azure::host::wire::AzureRequest::forwarded(&head, Default::default());
    /// assert_eq!(req.url, "http://app.azurewebsites.net/api/items/7?x=1&x=2");
    /// assert_eq!(req.query["x"], "1,2");
    /// ```
    pub fn forwarded(head: &http::request::Parts, params: BTreeMap<String, Option<String>>) -> AzureRequest {
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in &head.headers {
            headers
                .entry(name.as_str().to_string())
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).into());
        }
        let host = head.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
        let scheme = head.headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
        let path_and_query = head.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut query: BTreeMap<String, String> = BTreeMap::new();
        for pair in head.uri.query().unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| super::route::percent_decode(&s.replace('+', " "));
            let (name, value) = (decode(name), decode(value));
            match query.get_mut(&name) {
                Some(v) => {
                    v.push(',');
                    v.push_str(&value);
                }
                None => {
                    query.insert(name, value);
                }
            }
        }
        AzureRequest {
            url: format!("{scheme}://{host}{path_and_query}"),
            method: head.method.to_string(),
            query,
            headers,
            params,
            identities: Value::Array(Vec::new()),
        }
    }
}

fn into_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Reads the HTTP trigger's value (`what` names it in errors, e.g. `Data.req`): the request and
/// its payload. The payload is `Body` (absent: empty) with the `Content-Type` header; for
/// `application/octet-stream` and `multipart/*` the Functions host sends the bytes as base64.
///
/// ```
/// use serde_json::json;
/// use faas_runner_azure::host::wire::http_request;
/// let v = json!({"Method": "PUT", "Headers": {"content-type": ["application/octet-stream"]}, "Body": "AAH/"});
/// let (_, payload) = http_request(v, "Data.req").unwrap();
/// assert_eq!(payload.body().as_ref(), [0, 1, 255]);
/// let err = http_request(json!(7), "Data.req").unwrap_err();
/// assert_eq!(err.message(), "`Data.req` must be the HTTP request object, not 7");
/// ```
pub fn http_request(value: Value, what: &str) -> Result<(AzureRequest, Payload), Error> {
    let mut object = match value {
        Value::Object(o) => o,
        Value::String(_) => match decode_value(&value) {
            Value::Object(o) => o,
            _ => {
                return Err(Error::bad_input(format!(
                    "`{what}` must be the HTTP request object, not {}",
                    shown(&value)
                )))
            }
        },
        other => {
            return Err(Error::bad_input(format!("`{what}` must be the HTTP request object, not {}", shown(&other))))
        }
    };
    let text = |object: &mut Map<String, Value>, key: &str| take(object, key).filter(|v| !v.is_null()).map(into_text);
    let mut strings = |key: &str| -> Result<Map<String, Value>, Error> {
        match take(&mut object, key) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(o)) => Ok(o),
            Some(other) => Err(Error::bad_input(format!("`{what}.{key}` must be an object, not {}", shown(&other)))),
        }
    };
    let headers = strings("Headers")?
        .into_iter()
        .map(|(name, v)| {
            let values = match v {
                Value::Array(items) => items.into_iter().map(into_text).collect(),
                Value::Null => Vec::new(),
                other => vec![into_text(other)],
            };
            (name, values)
        })
        .collect();
    let query = strings("Query")?.into_iter().map(|(k, v)| (k, into_text(v))).collect();
    let params =
        strings("Params")?.into_iter().map(|(k, v)| (k, if v.is_null() { None } else { Some(into_text(v)) })).collect();
    let request = AzureRequest {
        url: text(&mut object, "Url").unwrap_or_default(),
        method: text(&mut object, "Method").unwrap_or_else(|| "POST".to_string()),
        query,
        headers,
        params,
        identities: take(&mut object, "Identities").unwrap_or(Value::Null),
    };
    let content_type = request.header("content-type").map(str::to_string);
    let body = match take(&mut object, "Body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if content_type.as_deref().is_some_and(is_base64_on_the_wire) => {
            Bytes::from(BASE64.decode(s.trim()).map_err(|e| {
                Error::bad_input(format!(
                    "`{what}.Body` is not base64, which the Functions host sends for content type {}: {e}",
                    content_type.as_deref().unwrap_or_default()
                ))
            })?)
        }
        Some(Value::String(s)) => Bytes::from(s),
        Some(other) => Bytes::from(other.to_string()),
    };
    Ok((request, Payload::new(body, content_type)))
}

/// The media type of `content_type` (no parameters), lower case.
fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// The content types whose request bodies the Functions host sends as base64.
fn is_base64_on_the_wire(content_type: &str) -> bool {
    let e = essence(content_type);
    e == faas_api::payload::OCTET_STREAM || e.starts_with("multipart/")
}

/// The status an error answers with in the default mode: its kind's, except 500 for a crash
/// (the status the other hosts give a handler that panicked), 415 for an unsupported media type
/// and 405 for a method not allowed.
///
/// ```
/// use faas_api::Error;
/// use faas_runner_azure::host::wire::status_of;
/// assert_eq!(status_of(&Error::crash("panic")), 500);
/// assert_eq!(status_of(&Error::timeout("late")), 504);
/// assert_eq!(status_of(&Error::bad_input("x").with_type("UnsupportedMediaType")), 415);
/// ```
pub fn status_of(error: &Error) -> u16 {
    match (error.kind(), error.error_type()) {
        (ErrorKind::Crash, _) => 500,
        (_, "UnsupportedMediaType") => 415,
        (_, "MethodNotAllowed") => 405,
        (kind, _) => kind.status(),
    }
}

/// An HTTP output binding's value for a reply: `statusCode` 200 as a number, `Content-Type`
/// always set (the payload's, else `text/plain; charset=utf-8` for UTF-8 text and
/// `application/octet-stream` for other bytes), the body as text, or as base64 with
/// `X-Faas-Encoding: base64` when it is not UTF-8 or is `application/octet-stream`.
///
/// ```
/// use faas_api::Payload;
/// use faas_runner_azure::host::wire::http_output;
/// let res = http_output(Payload::bytes(vec![0, 1, 255]));
/// assert_eq!(res["statusCode"], 200);
/// assert_eq!(res["headers"]["Content-Type"], "application/octet-stream");
/// assert_eq!(res["headers"]["X-Faas-Encoding"], "base64");
/// assert_eq!(res["body"], "AAH/");
/// assert_eq!(http_output(Payload::new("hi", None))["headers"]["Content-Type"], "text/plain; charset=utf-8");
/// ```
pub fn http_output(reply: Payload) -> Value {
    let text = std::str::from_utf8(reply.body()).ok().map(str::to_string);
    let content_type = match reply.content_type() {
        Some(ct) => ct.to_string(),
        None if text.is_some() => "text/plain; charset=utf-8".to_string(),
        None => faas_api::payload::OCTET_STREAM.to_string(),
    };
    let mut headers = Map::new();
    headers.insert("Content-Type".into(), json!(content_type));
    let body = match text {
        Some(t) if essence(&content_type) != faas_api::payload::OCTET_STREAM => t,
        _ => {
            headers.insert(ENCODING.into(), json!("base64"));
            BASE64.encode(reply.body())
        }
    };
    json!({"statusCode": 200, "headers": headers, "body": body})
}

/// An HTTP output binding's value for an error: [`status_of`], the portable error JSON as the
/// body, and the headers the other hosts send with it (`Content-Type: application/json`, the
/// `faas-error` kind).
///
/// ```
/// use faas_api::Error;
/// let res = faas_runner_azure::host::wire::error_output(&Error::not_found("no function named `x`"));
/// assert_eq!(res["statusCode"], 404);
/// assert_eq!(res["headers"]["Content-Type"], "application/json");
/// let body: serde_json::Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
/// assert_eq!(body["kind"], "not_found");
/// ```
pub fn error_output(error: &Error) -> Value {
    let (_, parts, body) = faas_host::wire::error_parts(error);
    let mut headers = Map::new();
    headers.insert("Content-Type".into(), json!(faas_api::payload::JSON));
    for (name, value) in &parts {
        if name != http::header::CONTENT_TYPE {
            headers.insert(name.as_str().to_string(), json!(String::from_utf8_lossy(value.as_bytes())));
        }
    }
    json!({"statusCode": status_of(error), "headers": headers, "body": String::from_utf8_lossy(&body)})
}

/// The answer body: `{"Outputs": outputs, "Logs": logs, "ReturnValue": return_value}`.
///
/// ```
/// let body = faas_runner_azure::host::wire::answer(serde_json::Map::new(), vec!["hello".into()], serde_json::Value::Null);
/// assert_eq!(body, br#"{"Outputs":{},"Logs":["hello"],"ReturnValue":null}"#);
/// ```
pub fn answer(outputs: Map<String, Value>, logs: Vec<String>, return_value: Value) -> Vec<u8> {
    // Written member by member to keep this order (a JSON object built with `json!` sorts its keys).
    let mut out = b"{\"Outputs\":".to_vec();
    serde_json::to_writer(&mut out, &outputs).expect("JSON values serialise");
    out.extend_from_slice(b",\"Logs\":");
    serde_json::to_writer(&mut out, &logs).expect("strings serialise");
    out.extend_from_slice(b",\"ReturnValue\":");
    serde_json::to_writer(&mut out, &return_value).expect("JSON values serialise");
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_object_reads_in_any_case_and_without_a_body() {
        let v = json!({"url": "http://x/api/f", "method": "GET", "query": {"a": "1"},
            "headers": {"Accept": ["*/*"], "X-Many": ["a", "b"]}, "params": {"id": "5", "opt": null}});
        let (req, payload) = http_request(v.clone(), "Data.req").unwrap();
        assert_eq!((req.url.as_str(), req.method.as_str()), ("http://x/api/f", "GET"));
        assert_eq!(req.headers["X-Many"], ["a", "b"]);
        assert_eq!(req.params["id"].as_deref(), Some("5"));
        assert_eq!(req.params["opt"], None);
        assert!(payload.is_empty());
        assert_eq!(payload.content_type(), None);
        // The request object may itself be sent as JSON text.
        let (req, _) = http_request(json!(v.to_string()), "Data.req").unwrap();
        assert_eq!(req.method, "GET");
    }

    #[test]
    fn a_multipart_body_is_base64_and_bad_base64_is_named() {
        let v = json!({"Headers": {"Content-Type": ["multipart/form-data; boundary=x"]}, "Body": "aGk="});
        assert_eq!(http_request(v, "Data.req").unwrap().1.body().as_ref(), b"hi");
        let v = json!({"Headers": {"Content-Type": ["application/octet-stream"]}, "Body": "not base64!"});
        let err = http_request(v, "Data.req").unwrap_err();
        assert!(err.message().starts_with("`Data.req.Body` is not base64"), "{}", err.message());
    }

    #[test]
    fn replies_that_are_not_utf8_are_base64_with_their_content_type() {
        let res = http_output(Payload::new(vec![0xff, 0xfe], Some("image/png".into())));
        assert_eq!(res["headers"]["Content-Type"], "image/png");
        assert_eq!(res["headers"][ENCODING], "base64");
        assert_eq!(res["body"], "//4=");
        let res = http_output(Payload::json(&json!({"a": 1})).unwrap());
        assert_eq!(res["body"], r#"{"a":1}"#);
        assert!(res["headers"].get(ENCODING).is_none());
        assert!(res.get("status").is_none());
    }

    #[test]
    fn forwarded_queries_are_decoded_and_repeated_names_joined() {
        let head = http::Request::get("/api/f?q=a+b&q=%C3%A9&empty").body(()).unwrap().into_parts().0;
        let req = AzureRequest::forwarded(&head, BTreeMap::new());
        assert_eq!(req.query["q"], "a b,é");
        assert_eq!(req.query["empty"], "");
    }
}
