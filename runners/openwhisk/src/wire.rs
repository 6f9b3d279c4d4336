//! OpenWhisk's wire format, written once for both halves of this crate: the body of each
//! activation (the action proxy's `/run` body and each ActionLoop stdin line), the result a host
//! gives back, the error body of the controller's REST API, and how portable errors and payloads
//! travel through them.
//!
//! Sources: the action interface (`docs/actions-new.md` of apache/openwhisk), how the invoker
//! builds the run body (`ContainerProxy.scala`, `Container.scala`: `{"value": params}` plus the
//! activation's environment, every value of which is a string, `deadline` included) and how it
//! reads the result (`ActivationResult.scala`, `processRunResponseContent`: a JSON object without
//! `error` is a success, with `error` an "application error"; an array is a success; anything
//! else a developer error).
//!
//! ## Payloads and results
//!
//! OpenWhisk only carries JSON objects (parameters) and objects or arrays (results). A faas
//! payload that is an object (or, as a result, an array) travels as it is; anything else (a
//! string, a number, bytes, an empty body) travels in the kit's envelope
//! ([`faas_host::envelope`]), an object, which the host and the runner unwrap. A successful reply
//! that is an object with a top-level `error` key is enveloped too, so that OpenWhisk does not
//! take it for a failure.
//!
//! A function error is the result `{"error": <portable error>}` (`{"kind","errorType",
//! "errorMessage"}`), which OpenWhisk records as an "application error"; the runner maps it back
//! exactly ([`error_of_result`]).
//!
//! ```
//! use faas_api::{Error, Payload};
//! use faas_runner_openwhisk::wire::{error_of_result, payload_of_result, result_of};
//! let ok = result_of(Ok(Payload::json(&serde_json::json!({"greeting": "Hello"})).unwrap()));
//! assert_eq!(ok, br#"{"greeting":"Hello"}"#);
//! let text = result_of(Ok(Payload::json(&"Hello, Ada!").unwrap()));
//! assert!(text.starts_with(br#"{"faas:payload":"#));
//! assert_eq!(payload_of_result(&text).unwrap().json_as::<String>().unwrap(), "Hello, Ada!");
//! let failed = result_of(Err(Error::function("ProbeError", "boom")));
//! assert_eq!(error_of_result(&failed), Some(Error::function("ProbeError", "boom")));
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use faas_api::{Error, ErrorKind, Payload};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The line the action proxy writes to stdout and stderr after each activation, so the invoker
/// can tell one activation's logs from the next (`OutputGuard` in openwhisk-runtime-go's
/// `executor.go`, `LOG_SENTINEL` in openwhisk-runtime-docker's `actionproxy.py`).
pub const SENTINEL: &str = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";

/// OpenWhisk's payload limit and result limit: 1 MB each (`docs/reference.md`).
pub const MAX_PAYLOAD: usize = 1_048_576;

/// The body of one activation: the action proxy's `POST /run` body, and one line of the
/// ActionLoop protocol's stdin.
///
/// Every key but `value` is a string on the wire (the invoker sends `deadline` as a string of
/// epoch milliseconds although the documentation says number); a number is accepted too.
///
/// ```
/// use faas_runner_openwhisk::wire::RunBody;
/// let line = br#"{"value":{"name":"Ada"},"namespace":"guest","action_name":"/guest/shop/hello",
///   "activation_id":"c7bb1339cb4f40e3a6ccead6c99f804e","deadline":"1700000060000","api_key":"u:k"}"#;
/// let run = RunBody::parse(line).unwrap();
/// assert_eq!(run.value(), br#"{"name":"Ada"}"#);
/// assert_eq!(run.action_name.as_deref(), Some("/guest/shop/hello"));
/// assert_eq!(run.deadline_ms(), Some(1_700_000_060_000));
/// assert!(RunBody::parse(b"[1]").unwrap_err().message().contains("run body"));
/// ```
#[derive(Debug, Default, Deserialize)]
pub struct RunBody {
    /// The action's parameters (a JSON object), exactly as sent.
    #[serde(default)]
    pub value: Option<Box<RawValue>>,
    /// The namespace of the activation.
    #[serde(default, deserialize_with = "string_or_number")]
    pub namespace: Option<String>,
    /// The fully qualified action name, `/namespace[/package]/action`.
    #[serde(default, deserialize_with = "string_or_number")]
    pub action_name: Option<String>,
    /// The action's version (`0.0.1`).
    #[serde(default, deserialize_with = "string_or_number")]
    pub action_version: Option<String>,
    /// The activation id.
    #[serde(default, deserialize_with = "string_or_number")]
    pub activation_id: Option<String>,
    /// The transaction id.
    #[serde(default, deserialize_with = "string_or_number")]
    pub transaction_id: Option<String>,
    /// When the activation ends: epoch milliseconds, as a string.
    #[serde(default, deserialize_with = "string_or_number")]
    pub deadline: Option<String>,
    /// The API key the action may call OpenWhisk with (`uuid:key`); absent when the action is
    /// annotated `provide-api-key: false`.
    #[serde(default, deserialize_with = "string_or_number")]
    pub api_key: Option<String>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    })
}

impl RunBody {
    /// Parses a run body; it must be a JSON object whose `value`, when present, is an object.
    pub fn parse(bytes: &[u8]) -> Result<RunBody, Error> {
        let body: RunBody = serde_json::from_slice(bytes)
            .map_err(|e| Error::bad_input(format!("the run body is not a JSON object of the action interface: {e}")))?;
        if let Some(v) = &body.value {
            if !v.get().trim_start().starts_with('{') {
                return Err(Error::bad_input("the run body's `value` is not a JSON object"));
            }
        }
        Ok(body)
    }

    /// The parameters' JSON text (`{}` when absent).
    pub fn value(&self) -> &[u8] {
        self.value.as_ref().map(|v| v.get().as_bytes()).unwrap_or(b"{}")
    }

    /// The deadline in epoch milliseconds, when it is one.
    pub fn deadline_ms(&self) -> Option<u64> {
        self.deadline.as_deref().and_then(|d| d.trim().parse().ok())
    }

    /// The deadline as a time.
    pub fn deadline_time(&self) -> Option<SystemTime> {
        self.deadline_ms().map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
    }
}

/// The base URL of an OpenWhisk API host: `wsk` takes a bare host name and then uses https
/// (and so does `__OW_API_HOST` in some deployments).
///
/// ```
/// use faas_runner_openwhisk::wire::api_base_url;
/// assert_eq!(api_base_url("ow.example.com/"), "https://ow.example.com");
/// assert_eq!(api_base_url("http://127.0.0.1:3233"), "http://127.0.0.1:3233");
/// ```
pub fn api_base_url(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.starts_with("http://") || host.starts_with("https://") {
        host.to_string()
    } else {
        format!("https://{host}")
    }
}

/// An entity path (`shop/hello`, a namespace like `me@example.com_dev`) escaped for a URL
/// path: each `/`-separated segment percent-encodes `%`, spaces and `@`.
///
/// ```
/// assert_eq!(faas_runner_openwhisk::wire::url_path("a b/me@x"), "a%20b/me%40x");
/// ```
pub fn url_path(name: &str) -> String {
    name.split('/').map(|s| s.replace('%', "%25").replace(' ', "%20").replace('@', "%40")).collect::<Vec<_>>().join("/")
}

/// The faas function an OpenWhisk action name stands for: its last segment
/// (`/guest/shop/hello` → `hello`).
///
/// ```
/// use faas_runner_openwhisk::wire::function_of_action;
/// assert_eq!(function_of_action("/guest/shop/hello"), "hello");
/// assert_eq!(function_of_action("hello"), "hello");
/// ```
pub fn function_of_action(action_name: &str) -> &str {
    action_name.rsplit('/').next().unwrap_or(action_name)
}

/// The payload the parameters `value` stand for: the enveloped payload, or the parameters as
/// JSON.
///
/// ```
/// use faas_runner_openwhisk::wire::payload_of_value;
/// assert_eq!(payload_of_value(br#"{"name":"Ada"}"#).body().as_ref(), br#"{"name":"Ada"}"#);
/// ```
pub fn payload_of_value(value: &[u8]) -> Payload {
    traced_payload_of_value(value).0
}

/// [`payload_of_value`] and the caller's trace context, which travels in the envelope (OpenWhisk
/// passes an action nothing of the caller's but its parameters).
///
/// ```
/// use faas_api::Payload;
/// use faas_runner_openwhisk::wire::{params_of_traced, traced_payload_of_value};
/// let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
/// let params = params_of_traced(&Payload::json(&serde_json::json!({"a": 1})).unwrap(), Some(tp));
/// let (payload, trace) = traced_payload_of_value(&params);
/// assert_eq!((payload.body().as_ref(), trace.unwrap().traceparent()), (&br#"{"a":1}"#[..], tp.to_string()));
/// ```
pub fn traced_payload_of_value(value: &[u8]) -> (Payload, Option<faas_api::TraceContext>) {
    match faas_host::envelope::unwrap_traced(value) {
        Some((payload, trace)) => (payload, trace.as_deref().and_then(faas_api::TraceContext::parse)),
        None => (Payload::new(value.to_vec(), None), None),
    }
}

/// The parameters that carry `payload`: the payload itself when it is a JSON object, else the
/// envelope around it.
///
/// ```
/// use faas_api::Payload;
/// use faas_runner_openwhisk::wire::{params_of, payload_of_value};
/// let p = Payload::json(&serde_json::json!({"name": "Ada"})).unwrap();
/// assert_eq!(params_of(&p), br#"{"name":"Ada"}"#);
/// let s = Payload::json(&"Ada").unwrap();
/// assert_eq!(payload_of_value(&params_of(&s)), s);
/// ```
pub fn params_of(payload: &Payload) -> Vec<u8> {
    params_of_traced(payload, None)
}

/// [`params_of`], with the caller's `traceparent` when there is one (then always in the
/// envelope, the only place it can travel).
pub fn params_of_traced(payload: &Payload, traceparent: Option<&str>) -> Vec<u8> {
    if traceparent.is_none() && payload.is_json_or_untyped() && is_object_without(payload.body(), None) {
        payload.body().to_vec()
    } else {
        faas_host::envelope::wrap_traced(payload, traceparent)
    }
}

/// The result a host answers for `result`: the reply as it is when OpenWhisk can carry it as a
/// success (an object without `error`, or an array, on one line), else the reply in the envelope;
/// an error as `{"error": <portable error>}`. JSON spread over several lines goes in the envelope,
/// which keeps its bytes: an ActionLoop answer is one line.
pub fn result_of(result: Result<Payload, Error>) -> Vec<u8> {
    match result {
        Ok(reply) => {
            let body = reply.body();
            let as_is = reply.is_json_or_untyped()
                && !body.contains(&b'\n')
                && (is_object_without(body, Some("error")) || is_array(body));
            if as_is {
                body.to_vec()
            } else {
                faas_host::envelope::wrap(&reply)
            }
        }
        Err(e) => error_result(&e),
    }
}

/// `{"error": <portable error>}`.
///
/// ```
/// let r = faas_runner_openwhisk::wire::error_result(&faas_api::Error::timeout("late"));
/// let v: serde_json::Value = serde_json::from_slice(&r).unwrap();
/// assert_eq!(v, serde_json::json!({"error": {"kind": "timeout", "errorType": "Timeout", "errorMessage": "late"}}));
/// ```
pub fn error_result(e: &Error) -> Vec<u8> {
    let inner: serde_json::Value = serde_json::from_slice(&e.to_json()).expect("an error is JSON");
    serde_json::to_vec(&serde_json::json!({ "error": inner })).expect("JSON serialises")
}

/// Whether `body` is a JSON object that is not an envelope and has no top-level key `without`.
fn is_object_without(body: &[u8], without: Option<&str>) -> bool {
    object_keys(body).is_some_and(|keys| without.is_none_or(|k| !keys.contains_key(k)))
}

/// The top-level keys of `body` when it is a JSON object that is not an envelope (values are
/// checked, not kept).
fn object_keys(body: &[u8]) -> Option<std::collections::BTreeMap<String, serde::de::IgnoredAny>> {
    if body.starts_with(b"{\"faas:payload\":") {
        return None;
    }
    serde_json::from_slice(body).ok()
}

fn is_array(body: &[u8]) -> bool {
    let trimmed = body.iter().position(|b| !b.is_ascii_whitespace()).map(|i| &body[i..]).unwrap_or_default();
    trimmed.starts_with(b"[") && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

/// The payload a successful result carries (the enveloped payload, or the result as JSON).
/// `None` when the result is an error (`{"error": ...}`).
pub fn payload_of_result(result: &[u8]) -> Option<Payload> {
    if let Some(p) = faas_host::envelope::unwrap(result) {
        return Some(p);
    }
    if object_keys(result).is_some_and(|keys| keys.contains_key("error")) {
        return None;
    }
    Some(Payload::new(result.to_vec(), Some(faas_api::payload::JSON.to_string())))
}

/// The portable error of a result `{"error": ...}`: exact when a faas host wrote it, else a
/// function error (`errorType` `ActionError`) with the error's text as message. `None` when the
/// result is no error.
///
/// ```
/// use faas_api::ErrorKind;
/// use faas_runner_openwhisk::wire::error_of_result;
/// let e = error_of_result(br#"{"error":"bad things"}"#).unwrap();
/// assert_eq!((e.kind(), e.error_type(), e.message()), (ErrorKind::Function, "ActionError", "bad things"));
/// assert_eq!(error_of_result(br#"{"ok":true}"#), None);
/// assert_eq!(error_of_result(br#"["an array result"]"#), None);
/// ```
pub fn error_of_result(result: &[u8]) -> Option<Error> {
    // Only an object's `error` member: a derived struct would also read the array `["x"]` as
    // `{"error": "x"}`, turning an action's array result into an error (found by fuzzing).
    let serde_json::Value::Object(mut parsed) = serde_json::from_slice(result).ok()? else { return None };
    let error = parsed.remove("error")?;
    if let Ok(e) = serde_json::from_value::<Error>(error.clone()) {
        return Some(e);
    }
    let message = match error {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    Some(Error::function("ActionError", message))
}

/// The error body of the controller's REST API: `{"error": "<message>", "code": "<transaction id>"}`
/// (`ErrorResponse.scala`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The message.
    #[serde(default)]
    pub error: String,
    /// The transaction id, to quote to an operator.
    #[serde(default)]
    pub code: String,
}

/// The portable error for a REST API answer with `status` and `body` to the request `what`
/// (`invoking \`hello\``): the kind from the status, OpenWhisk's message kept, its name of the
/// failure as the error type (`OpenWhisk.<status>`) so users can search for it.
///
/// ```
/// use faas_api::ErrorKind;
/// use faas_runner_openwhisk::wire::api_error;
/// let e = api_error("invoking `hello`", 404, br#"{"error":"The requested resource does not exist.","code":"abc"}"#);
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// assert_eq!(e.message(), "invoking `hello` failed (HTTP 404): The requested resource does not exist. (transaction abc)");
/// assert_eq!(api_error("listing", 401, b"").kind(), ErrorKind::Unauthorized);
/// ```
pub fn api_error(what: &str, status: u16, body: &[u8]) -> Error {
    let parsed: Option<ApiError> = serde_json::from_slice(body).ok();
    let text = match parsed {
        Some(ApiError { error, code }) if !code.is_empty() => format!("{error} (transaction {code})"),
        Some(ApiError { error, .. }) if !error.is_empty() => error,
        _ => {
            let t = String::from_utf8_lossy(&body[..body.len().min(512)]).trim().to_string();
            if t.is_empty() {
                "no message".to_string()
            } else {
                t
            }
        }
    };
    let kind = match status {
        400 | 409 => ErrorKind::BadInput,
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        413 => ErrorKind::PayloadTooLarge,
        429 => ErrorKind::Throttled,
        _ => ErrorKind::from_status(status),
    };
    Error::new(kind, format!("{what} failed (HTTP {status}): {text}")).with_type(format!("OpenWhisk.{status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `fuzz/openwhisk_action`: an echo of the payload `\n\n[\n\n\n\n\n\n]` (an array
    /// spread over lines) was answered as it was, so the ActionLoop answer spanned several lines and
    /// the host replaced it by a `crash` error.
    #[test]
    fn json_over_several_lines_is_answered_on_one_line_with_its_bytes() {
        for body in [&b"\n\n[\n\n\n\n\n\n]"[..], b"{\n  \"a\": 1\n}"] {
            let reply = Payload::new(body.to_vec(), Some("application/json".into()));
            let result = result_of(Ok(reply));
            assert!(!result.contains(&b'\n'), "{}", String::from_utf8_lossy(&result));
            assert_eq!(payload_of_result(&result).unwrap().body().as_ref(), body, "the bytes come back");
        }
    }

    /// Found by `fuzz/openwhisk_action`: `error_of_result` read any JSON array whose first item
    /// could be an error (`["/guest/echo"]`) as `{"error": ...}`, so an action answering an array
    /// failed for its caller with `ActionError`.
    #[test]
    fn an_array_result_is_a_success_for_the_caller() {
        for result in [&br#"["/guest/echo"]"#[..], br#"[{"kind":"timeout","errorType":"Timeout","errorMessage":"x"}]"#]
        {
            assert_eq!(error_of_result(result), None, "{}", String::from_utf8_lossy(result));
            assert_eq!(payload_of_result(result).unwrap().body().as_ref(), result);
        }
    }

    #[test]
    fn replies_travel_as_is_only_when_openwhisk_takes_them_for_a_success() {
        let obj = Payload::json(&serde_json::json!({"a": 1})).unwrap();
        assert_eq!(result_of(Ok(obj.clone())), obj.body().as_ref());
        let arr = Payload::json(&serde_json::json!([1, 2])).unwrap();
        assert_eq!(result_of(Ok(arr.clone())), arr.body().as_ref());
        for p in [
            Payload::json(&serde_json::json!({"error": "not really"})).unwrap(),
            Payload::json(&"text").unwrap(),
            Payload::json(&42).unwrap(),
            Payload::empty(),
            Payload::bytes(vec![0u8, 159, 146, 150]),
            Payload::new(&b"{\"a\":1}"[..], Some("text/plain".into())),
        ] {
            let r = result_of(Ok(p.clone()));
            assert!(r.starts_with(br#"{"faas:payload":"#), "{p:?}");
            assert_eq!(payload_of_result(&r), Some(p));
        }
    }

    #[test]
    fn foreign_results_and_errors_map_back() {
        assert_eq!(payload_of_result(br#"{"a":1}"#).unwrap().body().as_ref(), br#"{"a":1}"#);
        assert_eq!(payload_of_result(br#"[1]"#).unwrap().body().as_ref(), br#"[1]"#);
        assert_eq!(payload_of_result(br#"{"error":"x"}"#), None);
        let e = error_of_result(br#"{"error":{"code":7}}"#).unwrap();
        assert_eq!(e.message(), r#"{"code":7}"#);
        let exact = Error::bad_input("malformed JSON").with_type("BadInput");
        assert_eq!(error_of_result(&error_result(&exact)), Some(exact));
    }

    #[test]
    fn run_bodies_are_read_as_the_invoker_writes_them() {
        let run = RunBody::parse(br#"{"value":{},"deadline":1700000000000,"activation_id":"a1"}"#).unwrap();
        assert_eq!(run.deadline_ms(), Some(1_700_000_000_000));
        assert_eq!(RunBody::parse(b"{}").unwrap().value(), b"{}");
        assert!(RunBody::parse(br#"{"value":"x"}"#).is_err());
        assert!(RunBody::parse(b"not json").unwrap_err().message().contains("run body"));
    }
}
