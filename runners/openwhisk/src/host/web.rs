//! Web actions: a function with declared HTTP routes is deployed as a web action (annotations
//! `web-export` and `raw-http`), so OpenWhisk serves it without an API key at
//! `/api/v1/web/{namespace}/{package|default}/{action}` and hands it the HTTP request as
//! parameters (apache/openwhisk `docs/webactions.md`; `WebActions.scala`, `Context.toActionArgument`):
//!
//! - `__ow_method` (lower case), `__ow_headers` (lower-case names), `__ow_path` (what follows the
//!   action name) and, for a raw action, `__ow_query` (the query string as it came) and
//!   `__ow_body`: the body as a string, base64-encoded when its media type is binary (anything
//!   but text, JSON, XML, JavaScript and form data) or exactly `application/json`;
//! - for an action that is not raw, a JSON object body and the query are merged into the
//!   parameters instead, and `__ow_body` only carries other bodies.
//!
//! The host turns that into the request a faas function gets on the local backend's routes (the
//! body with its content type, `traceparent` from the headers) and answers with the HTTP
//! response OpenWhisk's `.http` transcoder reads: `{"statusCode", "headers", "body"}`, with a
//! binary body base64-encoded. A function error becomes its portable status and error body. A
//! method the function's routes do not take is refused with 405 and `allow`, without running
//! the function; the runner passes the routes' methods in `FAAS_WEB_METHODS`.
//!
//! ```
//! use faas_runner_openwhisk::host::web::{request_of, Methods};
//! let params = br#"{"__ow_method":"post","__ow_headers":{"content-type":"text/plain"},"__ow_path":"","__ow_body":"hi"}"#;
//! let web = request_of(params).unwrap().unwrap();
//! assert_eq!((web.method.as_str(), web.payload.body().as_ref()), ("POST", &b"hi"[..]));
//! assert!(Methods::parse(Some("POST")).allows("POST"));
//! assert!(!Methods::parse(Some("POST")).allows("GET"));
//! assert!(request_of(br#"{"name":"Ada"}"#).is_none());
//! ```

use base64::Engine as _;
use faas_api::{Error, Payload};
use serde_json::{json, Map, Value};

/// The variable with the methods a web action takes (`GET,POST`; `*` or absent for any).
pub const ENV_WEB_METHODS: &str = "FAAS_WEB_METHODS";

/// The parameter that marks an activation as a web action's.
const METHOD_PARAM: &str = "__ow_method";

/// The methods the routes of a function take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Methods(Option<Vec<String>>);

impl Methods {
    /// Parses `FAAS_WEB_METHODS`: absent, empty or containing `*` is any method.
    pub fn parse(value: Option<&str>) -> Methods {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else { return Methods(None) };
        let methods: Vec<String> = value.split(',').map(|m| m.trim().to_ascii_uppercase()).collect();
        Methods((!methods.iter().any(|m| m == "*")).then_some(methods))
    }

    /// Whether `method` (upper case) is taken.
    pub fn allows(&self, method: &str) -> bool {
        self.0.as_ref().is_none_or(|m| m.iter().any(|x| x == method))
    }

    fn refusal(&self, method: &str) -> Error {
        let allowed = self.0.as_deref().unwrap_or_default().join(", ");
        Error::bad_input(format!("method `{method}` is not allowed on this web action; use {allowed}"))
            .with_type("MethodNotAllowed")
    }

    fn allow_header(&self) -> String {
        self.0.as_deref().unwrap_or_default().join(", ")
    }
}

/// One web action request, as a faas function sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebRequest {
    /// The HTTP method, upper case.
    pub method: String,
    /// The body with the request's content type.
    pub payload: Payload,
    /// The caller's `traceparent` header.
    pub traceparent: Option<String>,
}

/// Whether a media type (without parameters, lower case) is carried as text.
fn is_text(media: &str) -> bool {
    media.starts_with("text/")
        || media == "application/json"
        || media.ends_with("+json")
        || media == "application/xml"
        || media.ends_with("+xml")
        || media == "application/javascript"
        || media == "application/x-www-form-urlencoded"
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// The `body` of a JSON reply, as `interpretHttpResponse` reads it back byte for byte: an
/// object, array, number or boolean as the JSON value itself; other text as a string, unless it
/// looks like base64 (`null`, say), which the transcoder would decode ("for legacy"), so it
/// travels base64-encoded on purpose.
fn json_body(bytes: &[u8]) -> Value {
    let looks_base64 = |t: &str| {
        !t.trim().is_empty()
            && t.trim().len().is_multiple_of(4)
            && t.trim().bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
    };
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ (Value::Object(_) | Value::Array(_) | Value::Number(_) | Value::Bool(_))) => v,
        _ => match std::str::from_utf8(bytes) {
            Ok(text) if !looks_base64(text) => Value::String(text.to_string()),
            _ => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        },
    }
}

fn media_of(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// The web request that the parameters `params` carry; `None` when they are not a web action's.
pub fn request_of(params: &[u8]) -> Option<Result<WebRequest, Error>> {
    // A cheap look before parsing: most activations are not web calls.
    if !params.windows(METHOD_PARAM.len()).any(|w| w == METHOD_PARAM.as_bytes()) {
        return None;
    }
    let Ok(Value::Object(mut params)) = serde_json::from_slice::<Value>(params) else { return None };
    let method = params.remove(METHOD_PARAM)?.as_str()?.to_ascii_uppercase();
    let headers = params.remove("__ow_headers").unwrap_or_default();
    let header = |name: &str| headers.get(name).and_then(Value::as_str).map(str::to_string);
    let content_type = header("content-type");
    let traceparent = header("traceparent");
    let body = params.remove("__ow_body");
    params.retain(|k, _| !k.starts_with("__ow_"));
    let payload = match body {
        Some(Value::String(text)) => {
            // `extractEntityAndProcessRequest`: a binary body is base64, and so, "for legacy", is
            // exactly `application/json` (other JSON types come as text).
            let binary = content_type.as_deref().map(media_of).is_none_or(|m| !is_text(&m) || m == "application/json");
            let bytes = if binary {
                match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
                    Ok(b) => b,
                    Err(e) => {
                        return Some(Err(Error::bad_input(format!(
                            "the web request's `__ow_body` is not base64, as a binary body must be: {e}"
                        ))))
                    }
                }
            } else {
                text.into_bytes()
            };
            Payload::new(bytes, content_type)
        }
        Some(other) => Payload::new(other.to_string(), Some(faas_api::payload::JSON.to_string())),
        // Not raw: a JSON body and the query were merged into the parameters.
        None if !params.is_empty() => {
            Payload::new(Value::Object(params).to_string(), Some(faas_api::payload::JSON.to_string()))
        }
        None => Payload::empty(),
    };
    Some(Ok(WebRequest { method, payload, traceparent }))
}

/// What the host does with a web request: run it, or refuse it (the error is the answer).
pub(crate) fn admit(request: &WebRequest, methods: &Methods) -> Result<(), Error> {
    if methods.allows(&request.method) {
        Ok(())
    } else {
        Err(methods.refusal(&request.method))
    }
}

/// The web action result for `result`: `{"statusCode", "headers", "body"}`.
///
/// ```
/// use faas_api::{Error, Payload};
/// use faas_runner_openwhisk::host::web::{response_of, Methods};
/// let ok: serde_json::Value = serde_json::from_slice(&response_of(Ok(Payload::json(&"hi").unwrap()), &Methods::parse(None))).unwrap();
/// assert_eq!(ok, serde_json::json!({"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "\"hi\""}));
/// let object: serde_json::Value = serde_json::from_slice(&response_of(Ok(Payload::json(&serde_json::json!({"a": 1})).unwrap()), &Methods::parse(None))).unwrap();
/// assert_eq!(object["body"], serde_json::json!({"a": 1}));
/// let bytes: serde_json::Value = serde_json::from_slice(&response_of(Ok(Payload::bytes(vec![0u8, 255])), &Methods::parse(None))).unwrap();
/// assert_eq!(bytes["body"], "AP8=");
/// let e: serde_json::Value = serde_json::from_slice(&response_of(Err(Error::not_found("gone")), &Methods::parse(None))).unwrap();
/// assert_eq!(e["statusCode"], 404);
/// ```
pub fn response_of(result: Result<Payload, Error>, methods: &Methods) -> Vec<u8> {
    let reply = match result {
        Ok(payload) => {
            let content_type = payload.content_type().unwrap_or("application/octet-stream").to_string();
            let media = media_of(&content_type);
            let body = if is_json(&media) {
                json_body(payload.body())
            } else if is_text(&media) {
                Value::String(String::from_utf8_lossy(payload.body()).into_owned())
            } else {
                Value::String(base64::engine::general_purpose::STANDARD.encode(payload.body()))
            };
            json!({"statusCode": 200, "headers": {"content-type": content_type}, "body": body})
        }
        Err(e) => {
            let mut headers = Map::new();
            headers.insert("content-type".into(), json!(faas_api::payload::JSON));
            if e.error_type() == "MethodNotAllowed" {
                headers.insert("allow".into(), json!(methods.allow_header()));
            }
            let status = if e.error_type() == "MethodNotAllowed" { 405 } else { e.status() };
            json!({"statusCode": status, "headers": headers, "body": String::from_utf8_lossy(&e.to_json())})
        }
    };
    serde_json::to_vec(&reply).expect("JSON serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_body_is_base64_and_a_text_body_is_as_is() {
        let p = br#"{"__ow_method":"put","__ow_headers":{"content-type":"image/png","traceparent":"00-x"},"__ow_body":"AAE="}"#;
        let web = request_of(p).unwrap().unwrap();
        assert_eq!(web.payload.body().as_ref(), &[0u8, 1]);
        assert_eq!(web.payload.content_type(), Some("image/png"));
        assert_eq!(web.traceparent.as_deref(), Some("00-x"));
        let bad = br#"{"__ow_method":"put","__ow_headers":{"content-type":"image/png"},"__ow_body":"%%"}"#;
        assert!(request_of(bad).unwrap().unwrap_err().message().contains("not base64"));
        // Exactly application/json is base64 too; other JSON types are text.
        let json =
            br#"{"__ow_method":"post","__ow_headers":{"content-type":"application/json"},"__ow_body":"eyJhIjoxfQ=="}"#;
        assert_eq!(request_of(json).unwrap().unwrap().payload.body().as_ref(), br#"{"a":1}"#);
        let ld =
            br#"{"__ow_method":"post","__ow_headers":{"content-type":"application/ld+json"},"__ow_body":"{\"a\":1}"}"#;
        assert_eq!(request_of(ld).unwrap().unwrap().payload.body().as_ref(), br#"{"a":1}"#);
    }

    #[test]
    fn a_json_reply_survives_the_transcoder() {
        let body = |text: &str| json_body(text.as_bytes());
        assert_eq!(body(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(body("42"), json!(42));
        assert_eq!(body(r#""text""#), json!("\"text\""));
        assert_eq!(body("null"), json!("bnVsbA=="), "would be taken for base64");
    }

    #[test]
    fn a_non_raw_call_gets_the_merged_parameters() {
        let p = br#"{"__ow_method":"get","__ow_headers":{},"__ow_path":"","name":"Ada"}"#;
        let web = request_of(p).unwrap().unwrap();
        assert_eq!(web.payload.body().as_ref(), br#"{"name":"Ada"}"#);
        let empty = request_of(br#"{"__ow_method":"get","__ow_headers":{}}"#).unwrap().unwrap();
        assert!(empty.payload.body().is_empty());
    }

    #[test]
    fn a_method_the_routes_do_not_take_is_refused_with_allow() {
        let methods = Methods::parse(Some("post, put"));
        let get = WebRequest { method: "GET".into(), payload: Payload::empty(), traceparent: None };
        let e = admit(&get, &methods).unwrap_err();
        let v: Value = serde_json::from_slice(&response_of(Err(e), &methods)).unwrap();
        assert_eq!((v["statusCode"].as_u64(), v["headers"]["allow"].as_str()), (Some(405), Some("POST, PUT")));
        assert!(Methods::parse(Some("GET,*")).allows("DELETE"));
    }
}
