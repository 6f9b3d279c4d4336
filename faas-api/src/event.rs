//! CloudEvents 1.0 helpers: validation that names the offending attribute, and the structured
//! JSON form events take between hosts (PROTOCOLS.md §5).
//!
//! ```
//! use faas_api::cloudevents::AttributesReader;
//! use faas_api::event::{decode_structured, encode_structured};
//! let event = decode_structured(br#"{"specversion":"1.0","id":"1","source":"/shop","type":"order.created"}"#).unwrap();
//! assert_eq!(event.ty(), "order.created");
//! let payload = encode_structured(&event).unwrap();
//! assert_eq!(decode_structured(payload.body()).unwrap(), event);
//! ```

use cloudevents::Event;
use http::HeaderMap;

use crate::{Error, Payload};

/// Required context attributes, in the order they are checked.
///
/// ```
/// assert_eq!(faas_api::event::REQUIRED_ATTRIBUTES, ["specversion", "id", "source", "type"]);
/// ```
pub const REQUIRED_ATTRIBUTES: [&str; 4] = ["specversion", "id", "source", "type"];

/// Checks a context attribute or extension name: lower-case `[a-z0-9]`, 1 to 20 characters as the
/// spec recommends (we accept longer names up to 64, since the spec only says SHOULD).
///
/// ```
/// assert!(faas_api::event::validate_attribute_name("traceparent").is_ok());
/// assert!(faas_api::event::validate_attribute_name("Bad-Name").is_err());
/// ```
pub fn validate_attribute_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::bad_input("CloudEvent attribute name is empty"));
    }
    if name.len() > 64 || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(Error::bad_input(format!(
            "CloudEvent attribute name `{name}` is invalid: names are lower-case letters and digits only"
        )));
    }
    Ok(())
}

fn check_specversion(value: Option<&str>) -> Result<(), Error> {
    match value {
        None => Err(Error::bad_input("CloudEvent is missing required attribute `specversion`")),
        Some("1.0") => Ok(()),
        Some(other) => {
            Err(Error::bad_input(format!("CloudEvent has unsupported specversion `{other}`; only `1.0` is supported")))
        }
    }
}

fn check_required(name: &str, value: Option<&str>) -> Result<(), Error> {
    match value {
        None => Err(Error::bad_input(format!("CloudEvent is missing required attribute `{name}`"))),
        Some("") => Err(Error::bad_input(format!("CloudEvent attribute `{name}` is empty"))),
        Some(_) => Ok(()),
    }
}

/// Validates one structured-mode JSON event (already parsed) and converts it: `specversion` must
/// be `1.0`, `id`, `source` and `type` must be non-empty strings, attribute names must be valid and
/// at most one of `data` and `data_base64` may be present. Errors name the attribute.
///
/// ```
/// use faas_api::cloudevents::AttributesReader;
/// use faas_api::event::event_from_json;
/// use serde_json::json;
/// let e = event_from_json(json!({"specversion": "1.0", "id": "7", "source": "/s", "type": "t", "data": {"n": 1}}))
///     .unwrap();
/// assert_eq!((e.id(), e.ty()), ("7", "t"));
///
/// let err = event_from_json(json!({"specversion": "1.0", "id": "", "source": "/s", "type": "t"})).unwrap_err();
/// assert_eq!(err.message(), "CloudEvent attribute `id` is empty");
/// let err = event_from_json(json!({"specversion": "0.3", "id": "7", "source": "/s", "type": "t"})).unwrap_err();
/// assert!(err.message().contains("unsupported specversion `0.3`"));
/// ```
pub fn event_from_json(value: serde_json::Value) -> Result<Event, Error> {
    let obj = value.as_object().ok_or_else(|| Error::bad_input("a structured CloudEvent must be a JSON object"))?;
    let attr = |name: &str| -> Result<Option<&str>, Error> {
        match obj.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Error::bad_input(format!("CloudEvent attribute `{name}` must be a string"))),
        }
    };
    check_specversion(attr("specversion")?)?;
    for name in ["id", "source", "type"] {
        check_required(name, attr(name)?)?;
    }
    if obj.get("data").is_some() && obj.get("data_base64").is_some() {
        return Err(Error::bad_input("CloudEvent has both `data` and `data_base64`; use one"));
    }
    for key in obj.keys() {
        if key != "data_base64" {
            validate_attribute_name(key)?;
        }
    }
    serde_json::from_value(value).map_err(|e| Error::bad_input(format!("invalid CloudEvent: {e}")))
}

/// Decodes a structured-mode JSON event body (`application/cloudevents+json`).
///
/// ```
/// let e = faas_api::event::decode_structured(br#"{"specversion":"1.0","source":"/s","type":"t"}"#);
/// assert_eq!(e.unwrap_err().message(), "CloudEvent is missing required attribute `id`");
/// ```
pub fn decode_structured(body: &[u8]) -> Result<Event, Error> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Error::bad_input(format!("malformed structured CloudEvent JSON: {e}")))?;
    event_from_json(value)
}

/// Decodes a batch-mode body (`application/cloudevents-batch+json`): a JSON array of events, which
/// must all share one `specversion` (checked before each event is validated).
///
/// ```
/// let body = br#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"0.3","id":"2","source":"/s","type":"t"}]"#;
/// let err = faas_api::event::decode_batch(body).unwrap_err();
/// assert!(err.message().contains("mixes spec versions"), "{}", err.message());
/// ```
pub fn decode_batch(body: &[u8]) -> Result<Vec<Event>, Error> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Error::bad_input(format!("malformed CloudEvents batch JSON: {e}")))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        _ => return Err(Error::bad_input("a CloudEvents batch must be a JSON array")),
    };
    // Events without a string `specversion` are reported below, naming the attribute.
    let versions = items.iter().enumerate().filter_map(|(i, item)| Some((i, item.get("specversion")?.as_str()?)));
    let mut first: Option<(usize, &str)> = None;
    for (i, version) in versions {
        match first {
            None => first = Some((i, version)),
            Some((j, v)) if v != version => {
                return Err(Error::bad_input(format!(
                    "CloudEvents batch mixes spec versions: event {j} has specversion `{v}`, event {i} has `{version}`"
                )));
            }
            Some(_) => {}
        }
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| event_from_json(v).map_err(|e| Error::bad_input(format!("batch event {i}: {}", e.message()))))
        .collect()
}

/// Encodes an event as a structured-mode JSON payload (`application/cloudevents+json`).
///
/// ```
/// use faas_api::cloudevents::{EventBuilder, EventBuilderV10};
/// let event = EventBuilderV10::new().id("1").source("/shop").ty("order.created").build().unwrap();
/// let payload = faas_api::event::encode_structured(&event).unwrap();
/// assert_eq!(payload.content_type(), Some("application/cloudevents+json"));
/// let json: serde_json::Value = serde_json::from_slice(payload.body()).unwrap();
/// assert_eq!((json["specversion"].as_str(), json["type"].as_str()), (Some("1.0"), Some("order.created")));
/// ```
pub fn encode_structured(event: &Event) -> Result<Payload, Error> {
    let body = serde_json::to_vec(event)
        .map_err(|e| Error::function("SerializationError", format!("cannot encode the CloudEvent: {e}")))?;
    Ok(Payload::new(body, Some(crate::payload::CLOUDEVENTS_JSON.to_string())))
}

/// How an HTTP request carries a CloudEvent, from its `Content-Type` (PROTOCOLS.md §5.2); see
/// [`detect_mode`].
///
/// ```
/// use faas_api::event::{Mode, detect_mode};
/// assert_eq!(detect_mode(Some("application/cloudevents+json")).unwrap(), Mode::Structured);
/// assert_eq!(detect_mode(Some("application/json")).unwrap(), Mode::Binary);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Attributes in `ce-` headers, data in the body.
    Binary,
    /// `application/cloudevents+json`.
    Structured,
    /// `application/cloudevents-batch+json`.
    Batch,
}

/// Detects the mode by content-type prefix, case-insensitively; any other content type, or none,
/// means binary mode. An unknown structured format (e.g. `application/cloudevents+avro`) is a
/// bad-input error of type `UnsupportedMediaType`, to be answered with 415.
///
/// ```
/// use faas_api::event::{Mode, detect_mode};
/// assert_eq!(detect_mode(Some("Application/CloudEvents+JSON; charset=utf-8")).unwrap(), Mode::Structured);
/// assert_eq!(detect_mode(Some("application/cloudevents-batch+json")).unwrap(), Mode::Batch);
/// assert_eq!(detect_mode(None).unwrap(), Mode::Binary);
/// let err = detect_mode(Some("application/cloudevents+avro")).unwrap_err();
/// assert_eq!(err.error_type(), "UnsupportedMediaType");
/// ```
pub fn detect_mode(content_type: Option<&str>) -> Result<Mode, Error> {
    let ct = content_type.unwrap_or("").trim().to_ascii_lowercase();
    if ct.starts_with("application/cloudevents-batch") {
        if ct.starts_with("application/cloudevents-batch+json") {
            Ok(Mode::Batch)
        } else {
            Err(Error::bad_input(format!("unsupported CloudEvents batch format `{ct}`"))
                .with_type("UnsupportedMediaType"))
        }
    } else if ct.starts_with("application/cloudevents") {
        if ct.starts_with("application/cloudevents+json") {
            Ok(Mode::Structured)
        } else {
            Err(Error::bad_input(format!("unsupported CloudEvents format `{ct}`")).with_type("UnsupportedMediaType"))
        }
    } else {
        Ok(Mode::Binary)
    }
}

/// Percent-decodes a `ce-` header value (PROTOCOLS.md §5.2): RFC 7230 quoted strings are
/// unquoted first; invalid escapes and invalid UTF-8 are errors naming the header.
///
/// ```
/// use faas_api::event::decode_header_value;
/// assert_eq!(decode_header_value("ce-subject", b"Euro%20%E2%82%AC%20%F0%9F%98%80").unwrap(), "Euro € 😀");
/// assert!(decode_header_value("ce-subject", b"%C0%A0").is_err());
/// assert!(decode_header_value("ce-subject", b"50%").is_err());
/// ```
pub fn decode_header_value(header: &str, raw: &[u8]) -> Result<String, Error> {
    let bad = |why: &str| Error::bad_input(format!("header `{header}` has invalid percent-encoding: {why}"));
    let mut raw = raw;
    if raw.len() >= 2 && raw[0] == b'"' && raw[raw.len() - 1] == b'"' {
        raw = &raw[1..raw.len() - 1];
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            // Checked byte by byte: `from_str_radix` alone would also accept a sign (`%+1`).
            let hex = raw
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .ok_or_else(|| bad("`%` not followed by two hex digits"))?;
            let s = std::str::from_utf8(hex).map_err(|_| bad("`%` not followed by two hex digits"))?;
            out.push(u8::from_str_radix(s, 16).map_err(|_| bad("`%` not followed by two hex digits"))?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad("the decoded bytes are not valid UTF-8"))
}

/// Percent-encodes a `ce-` header value: space, `"`, `%` and anything outside U+0021–U+007E.
///
/// ```
/// assert_eq!(faas_api::event::encode_header_value("Euro € 😀"), "Euro%20%E2%82%AC%20%F0%9F%98%80");
/// ```
pub fn encode_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Converts a binary-mode HTTP request (headers + body) into an event, validating as it goes:
/// missing required attributes, bad names and bad percent-encoding are errors naming them.
/// `ce-` headers become attributes (percent-decoded), `Content-Type` becomes `datacontenttype`,
/// and a JSON body becomes JSON data (any other body is kept as bytes).
///
/// ```
/// use faas_api::cloudevents::AttributesReader;
/// use faas_api::event::event_from_binary;
/// use http::HeaderMap;
/// let mut headers = HeaderMap::new();
/// for (name, value) in [("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/shop"), ("ce-type", "t")] {
///     headers.insert(name, value.parse().unwrap());
/// }
/// headers.insert("ce-subject", "order%2042".parse().unwrap());
/// headers.insert("content-type", "application/json".parse().unwrap());
/// let event = event_from_binary(&headers, br#"{"n":1}"#).unwrap();
/// assert_eq!(event.subject(), Some("order 42"));
/// assert_eq!(event.datacontenttype(), Some("application/json"));
///
/// headers.remove("ce-type");
/// let err = event_from_binary(&headers, b"").unwrap_err();
/// assert_eq!(err.message(), "CloudEvent is missing required attribute `type` (header `ce-type`)");
/// ```
pub fn event_from_binary(headers: &HeaderMap, body: &[u8]) -> Result<Event, Error> {
    use base64::Engine as _;
    let mut obj = serde_json::Map::new();
    for (name, value) in headers {
        let Some(attr) = name.as_str().strip_prefix("ce-") else { continue };
        validate_attribute_name(attr)?;
        if attr == "datacontenttype" || attr == "data" {
            continue;
        }
        let decoded = decode_header_value(name.as_str(), value.as_bytes())?;
        obj.insert(attr.to_string(), serde_json::Value::String(decoded));
    }
    for name in REQUIRED_ATTRIBUTES {
        if !obj.contains_key(name) {
            return Err(Error::bad_input(format!(
                "CloudEvent is missing required attribute `{name}` (header `ce-{name}`)"
            )));
        }
    }
    let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if let Some(ct) = content_type {
        obj.insert("datacontenttype".into(), ct.into());
    }
    if !body.is_empty() {
        let json_data = content_type.map(crate::payload::is_json_media_type).unwrap_or(true);
        match (json_data, serde_json::from_slice::<serde_json::Value>(body)) {
            (true, Ok(v)) => {
                obj.insert("data".into(), v);
            }
            _ => {
                obj.insert("data_base64".into(), base64::engine::general_purpose::STANDARD.encode(body).into());
            }
        }
    }
    event_from_json(serde_json::Value::Object(obj))
}

/// Converts an HTTP request carrying events in any mode ([`detect_mode`] on its `Content-Type`)
/// into events: one for structured and binary mode, all of them for batch mode.
///
/// ```
/// use faas_api::event::event_from_http;
/// use http::HeaderMap;
/// let mut headers = HeaderMap::new();
/// headers.insert("content-type", "application/cloudevents-batch+json".parse().unwrap());
/// let body = br#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"},
///                 {"specversion":"1.0","id":"2","source":"/s","type":"t"}]"#;
/// assert_eq!(event_from_http(&headers, body).unwrap().len(), 2);
///
/// headers.insert("content-type", "application/cloudevents+json".parse().unwrap());
/// let err = event_from_http(&headers, b"{}").unwrap_err();
/// assert_eq!(err.message(), "CloudEvent is missing required attribute `specversion`");
/// ```
pub fn event_from_http(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Event>, Error> {
    let ct = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    match detect_mode(ct)? {
        Mode::Structured => Ok(vec![decode_structured(body)?]),
        Mode::Batch => decode_batch(body),
        Mode::Binary => Ok(vec![event_from_binary(headers, body)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::AttributesReader;

    #[test]
    fn binary_mode_round_trip_with_extension_and_json_data() {
        let mut h = HeaderMap::new();
        h.insert("ce-specversion", "1.0".parse().unwrap());
        h.insert("ce-id", "1".parse().unwrap());
        h.insert("ce-source", "/s".parse().unwrap());
        h.insert("ce-type", "t".parse().unwrap());
        h.insert("ce-subject", "a%20b".parse().unwrap());
        h.insert("ce-myext", "x".parse().unwrap());
        h.insert("content-type", "application/json".parse().unwrap());
        let e = event_from_binary(&h, br#"{"a":1}"#).unwrap();
        assert_eq!(e.id(), "1");
        assert_eq!(e.subject(), Some("a b"));
        assert_eq!(e.extension("myext").unwrap().to_string(), "x");
    }

    #[test]
    fn binary_mode_errors_name_the_problem() {
        let mut h = HeaderMap::new();
        h.insert("ce-specversion", "1.0".parse().unwrap());
        h.insert("ce-source", "/s".parse().unwrap());
        h.insert("ce-type", "t".parse().unwrap());
        assert!(event_from_binary(&h, b"").unwrap_err().message().contains("`id`"));
        h.insert("ce-id", "1".parse().unwrap());
        h.insert("ce-specversion", "0.3".parse().unwrap());
        assert!(event_from_binary(&h, b"").unwrap_err().message().contains("unsupported specversion `0.3`"));
        h.insert("ce-specversion", "1.0".parse().unwrap());
        h.insert("ce-subject", "%ZZ".parse().unwrap());
        assert!(event_from_binary(&h, b"").unwrap_err().message().contains("ce-subject"));
    }

    #[test]
    fn structured_mode_rejects_both_data_forms_and_bad_names() {
        let both = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"AA=="}"#;
        assert!(decode_structured(both).unwrap_err().message().contains("both `data` and `data_base64`"));
        let upper = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","Foo":"x"}"#;
        assert!(decode_structured(upper).unwrap_err().message().contains("`Foo`"));
    }

    #[test]
    fn percent_escapes_must_be_two_hex_digits() {
        assert_eq!(decode_header_value("ce-subject", b"%41%6a").unwrap(), "Aj");
        for bad in [&b"%+1"[..], b"%-1", b"% 1", b"%4"] {
            let err = decode_header_value("ce-subject", bad).unwrap_err();
            assert!(err.message().contains("`%` not followed by two hex digits"), "{}", err.message());
        }
    }

    #[test]
    fn modes_are_detected_case_insensitively() {
        assert_eq!(detect_mode(Some("Application/CloudEvents+JSON; charset=utf-8")).unwrap(), Mode::Structured);
        assert_eq!(detect_mode(Some("application/cloudevents-batch+json")).unwrap(), Mode::Batch);
        assert_eq!(detect_mode(Some("text/plain")).unwrap(), Mode::Binary);
        assert!(detect_mode(Some("application/cloudevents+avro")).is_err());
    }
}
