//! CloudEvents 1.0 helpers: validation that names the offending attribute, and the structured
//! JSON form events take between hosts (the CloudEvents JSON event format,
//! https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md).
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

/// Where an event's attributes were read from: messages about a binary-mode event also name the
/// HTTP header that carried the attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A structured-mode JSON object.
    Json,
    /// Binary mode: `ce-` headers and `Content-Type`.
    Headers,
}

impl Origin {
    /// `` CloudEvent attribute `time` ``, plus `` (header `ce-time`) `` in binary mode.
    fn attribute(self, name: &str) -> String {
        let noun = match name {
            "data" | "data_base64" => "CloudEvent",
            _ if ATTRIBUTES.iter().any(|(known, _)| *known == name) => "CloudEvent attribute",
            _ => "CloudEvent extension attribute",
        };
        match (self, name) {
            (Origin::Json, _) => format!("{noun} `{name}`"),
            (Origin::Headers, "data" | "data_base64") => format!("{noun} `{name}` (the request body)"),
            (Origin::Headers, "datacontenttype") => format!("{noun} `{name}` (header `Content-Type`)"),
            (Origin::Headers, _) => format!("{noun} `{name}` (header `ce-{name}`)"),
        }
    }
}

/// What the value of a context attribute must be (CloudEvents 1.0 type system, JSON event format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// `specversion`: the string `1.0`.
    SpecVersion,
    /// `id`, `type`, `subject`: a non-empty string.
    NonEmptyString,
    /// `source`: a non-empty URI-reference.
    UriReference,
    /// `datacontenttype`: an RFC 2046 media type.
    MediaType,
    /// `dataschema`: an absolute URI.
    AbsoluteUri,
    /// `time`: an RFC 3339 timestamp.
    Timestamp,
    /// `data_base64`: base64 with padding (RFC 4648 §4).
    Base64,
}

impl Rule {
    fn describe(self) -> &'static str {
        match self {
            Rule::SpecVersion => "the string `1.0`",
            Rule::NonEmptyString => "a non-empty string",
            Rule::UriReference => {
                "a non-empty URI-reference string (RFC 3986), such as `/shop/orders` or `https://example.com/shop`"
            }
            Rule::MediaType => "a media type string (RFC 2046), such as `application/json`",
            Rule::AbsoluteUri => "an absolute URI string (RFC 3986), such as `https://example.com/schema.json`",
            Rule::Timestamp => "an RFC 3339 timestamp string, such as `2018-04-05T17:31:00Z`",
            Rule::Base64 => "a base64 string (RFC 4648)",
        }
    }

    /// Why `value` breaks the rule, if it does (the empty string is reported before this is asked).
    fn problem(self, value: &str) -> Option<String> {
        use base64::Engine as _;
        use cloudevents::event::{TryIntoTime as _, TryIntoUrl as _};
        match self {
            Rule::SpecVersion | Rule::NonEmptyString => None,
            Rule::UriReference => uri_problem(value),
            Rule::MediaType => (!is_media_type(value)).then(|| "it is not `type/subtype`".to_string()),
            Rule::AbsoluteUri => uri_problem(value)
                .or_else(|| (!has_scheme(value)).then(|| "it has no scheme".to_string()))
                .or_else(|| match value.into_url() {
                    Err(e) => Some(e.to_string()),
                    // The event keeps the parsed URL, which decodes percent escapes in a host:
                    // `%22` comes back as `"`, which no URI may hold, so the event would not
                    // decode again once encoded (found by fuzz/cloudevents_http).
                    Ok(url) => uri_problem(url.as_str())
                        .map(|why| format!("as a URL it reads {}, where {why}", shown(url.as_str()))),
                }),
            Rule::Timestamp => value.into_time().err().map(|e| e.to_string()),
            Rule::Base64 => base64::engine::general_purpose::STANDARD
                .decode(value)
                .err()
                .map(|e| e.to_string().trim_end_matches('.').to_lowercase()),
        }
    }
}

/// The context attributes of CloudEvents 1.0, and `data_base64`, with the rule each value follows.
/// Every other member of a JSON event but `data` is an extension attribute.
const ATTRIBUTES: [(&str, Rule); 9] = [
    ("specversion", Rule::SpecVersion),
    ("id", Rule::NonEmptyString),
    ("source", Rule::UriReference),
    ("type", Rule::NonEmptyString),
    ("datacontenttype", Rule::MediaType),
    ("dataschema", Rule::AbsoluteUri),
    ("subject", Rule::NonEmptyString),
    ("time", Rule::Timestamp),
    ("data_base64", Rule::Base64),
];

/// `` a number `1.5` ``: the JSON type of a value that should have been a string, and its text.
fn json_kind(value: &serde_json::Value) -> String {
    format!("{} {}", crate::json_kind(value), shown(&value.to_string()))
}

/// A value quoted in a message: in backticks, control characters escaped, cut after 64 characters.
fn shown(value: &str) -> String {
    const MAX: usize = 64;
    let mut out = String::new();
    for c in value.chars().take(MAX) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if value.chars().nth(MAX).is_some() {
        out.push('…');
    }
    format!("`{out}`")
}

/// Checks one attribute value against its rule.
fn check_attribute(name: &str, rule: Rule, value: &serde_json::Value, origin: Origin) -> Result<(), Error> {
    let attribute = origin.attribute(name);
    let must = rule.describe();
    let serde_json::Value::String(s) = value else {
        return Err(Error::bad_input(format!("{attribute} must be {must}, not {}", json_kind(value))));
    };
    if rule == Rule::SpecVersion && s != "1.0" {
        return Err(Error::bad_input(format!(
            "CloudEvent has unsupported specversion {}; only `1.0` is supported",
            shown(s)
        )));
    }
    if s.is_empty() && rule != Rule::Base64 {
        return Err(Error::bad_input(format!("{attribute} is empty; it must be {must}")));
    }
    match rule.problem(s) {
        Some(why) => Err(Error::bad_input(format!("{attribute} must be {must}, not {} ({why})", shown(s)))),
        None => Ok(()),
    }
}

/// Checks an extension attribute value: a string, a boolean or an integer in the CloudEvents
/// Integer range (a signed 32-bit integer). `null` means absent.
fn check_extension(name: &str, value: &serde_json::Value, origin: Origin) -> Result<(), Error> {
    let ok = match value {
        serde_json::Value::Null | serde_json::Value::String(_) | serde_json::Value::Bool(_) => true,
        serde_json::Value::Number(n) => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => false,
    };
    if ok {
        return Ok(());
    }
    Err(Error::bad_input(format!(
        "{} must be a string, a boolean or an integer (-2147483648 to 2147483647), not {}",
        origin.attribute(name),
        json_kind(value)
    )))
}

/// Why `s` is not an RFC 3986 URI-reference, if it is not: a character outside the URI character
/// set (it must be percent-encoded), a `%` without two hex digits, a bad scheme or a second `#`.
fn uri_problem(s: &str) -> Option<String> {
    const OTHER: &[u8] = b"-._~:/?#[]@!$&'()*+,;=";
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if !bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return Some(format!("the `%` at position {i} is not followed by two hex digits"));
            }
            i += 3;
            continue;
        }
        if !b.is_ascii_alphanumeric() && !OTHER.contains(&b) {
            // Every byte before `i` is ASCII, so `i` starts a character.
            let c = s[i..].chars().next().unwrap_or_default();
            return Some(format!("{} at position {i} must be percent-encoded", shown(&c.to_string())));
        }
        i += 1;
    }
    let head = &s[..s.find(['/', '?', '#']).unwrap_or(s.len())];
    if let Some((scheme, _)) = head.split_once(':') {
        let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !valid {
            return Some(format!(
                "{} is not a valid scheme (a letter, then letters, digits, `+`, `-` or `.`)",
                shown(scheme)
            ));
        }
    }
    if s.split('#').count() > 2 {
        return Some("it has more than one `#`".to_string());
    }
    None
}

/// Whether a URI (already checked by [`uri_problem`]) starts with a scheme.
fn has_scheme(s: &str) -> bool {
    s[..s.find(['/', '?', '#']).unwrap_or(s.len())].contains(':')
}

/// Whether `s` is `type/subtype[; parameters]`, both RFC 7230 tokens.
fn is_media_type(s: &str) -> bool {
    let token =
        |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let essence = s.split(';').next().unwrap_or("").trim();
    essence.split_once('/').is_some_and(|(ty, sub)| token(ty) && token(sub))
}

/// Whether cloudevents-sdk 0.9 reads `data` as JSON for this content type (its crate-private
/// `is_json_content_type`). It misses JSON types with parameters such as
/// `application/vnd.api+json; charset=utf-8`, which [`event_from_object`] works around.
fn sdk_reads_json(ct: &str) -> bool {
    ct.starts_with("application/json") || ct.starts_with("text/json") || ct.ends_with("+json")
}

/// Validates one structured-mode JSON event (already parsed) and converts it. Every attribute is
/// checked before the event is built, and an error names the attribute and the rule it breaks:
/// `specversion` must be `1.0`; `id`, `type` and `subject` non-empty strings; `source` a
/// URI-reference; `datacontenttype` a media type; `dataschema` an absolute URI; `time` an RFC 3339
/// timestamp; `data_base64` base64; an extension a string, a boolean or a 32-bit integer; with a
/// non-JSON `datacontenttype`, `data` a string. Attribute names must be valid, at most one of `data`
/// and `data_base64` may be present, and `null` means absent.
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
/// assert_eq!(err.message(), "CloudEvent attribute `id` is empty; it must be a non-empty string");
/// let err = event_from_json(json!({"specversion": "0.3", "id": "7", "source": "/s", "type": "t"})).unwrap_err();
/// assert!(err.message().contains("unsupported specversion `0.3`"));
/// let err = event_from_json(json!({"specversion": "1.0", "id": "7", "source": "/s", "type": "t", "time": "yesterday"}))
///     .unwrap_err();
/// assert!(err.message().starts_with("CloudEvent attribute `time` must be an RFC 3339 timestamp"), "{}", err.message());
/// let err = event_from_json(json!({"specversion": "1.0", "id": "7", "source": "/s", "type": "t", "ext": {"a": 1}}))
///     .unwrap_err();
/// assert!(err.message().starts_with("CloudEvent extension attribute `ext` must be a string, a boolean or an integer"));
/// ```
pub fn event_from_json(value: serde_json::Value) -> Result<Event, Error> {
    match value {
        serde_json::Value::Object(obj) => event_from_object(obj, Origin::Json),
        _ => Err(Error::bad_input("a structured CloudEvent must be a JSON object")),
    }
}

/// The one decoder behind every mode: checks each member of a JSON event (for binary mode, the
/// object built from the headers), then lets cloudevents-sdk build the event.
fn event_from_object(mut obj: serde_json::Map<String, serde_json::Value>, origin: Origin) -> Result<Event, Error> {
    use cloudevents::AttributesWriter as _;
    // `null` means absent, except for `data`, where it is an explicit null payload.
    obj.retain(|name, value| name == "data" || !value.is_null());
    for (name, rule) in ATTRIBUTES.iter().filter(|(name, _)| REQUIRED_ATTRIBUTES.contains(name)) {
        let Some(value) = obj.get(*name) else {
            let header = if origin == Origin::Headers { format!(" (header `ce-{name}`)") } else { String::new() };
            return Err(Error::bad_input(format!("CloudEvent is missing required attribute `{name}`{header}")));
        };
        check_attribute(name, *rule, value, origin)?;
    }
    if obj.contains_key("data") && obj.contains_key("data_base64") {
        return Err(Error::bad_input("CloudEvent has both `data` and `data_base64`; use one"));
    }
    for (name, value) in &obj {
        if name == "data_base64" {
            check_attribute(name, Rule::Base64, value, origin)?;
            continue;
        }
        validate_attribute_name(name)?;
        match ATTRIBUTES.iter().find(|(known, _)| known == name) {
            Some((_, rule)) => check_attribute(name, *rule, value, origin)?,
            None if name == "data" => {}
            None => check_extension(name, value, origin)?,
        }
    }
    let content_type = obj.get("datacontenttype").and_then(serde_json::Value::as_str).map(str::to_string);
    let mut restore_content_type = None;
    if let (Some(data), Some(ct)) = (obj.get("data"), content_type.as_deref())
        && !sdk_reads_json(ct)
    {
        match data {
            serde_json::Value::Null => {
                obj.remove("data");
            }
            _ if crate::payload::is_json_media_type(ct) => {
                // A JSON type the SDK does not recognise: build the event as JSON data, then set the type.
                // Strings too: `"a"` is the JSON string, not the text `a` (its bytes keep their quotes).
                restore_content_type = obj.remove("datacontenttype");
            }
            serde_json::Value::String(_) => {}
            other => {
                return Err(Error::bad_input(format!(
                    "{} must be a string when `datacontenttype` is {} (not a JSON type), not {}; send bytes as `data_base64`",
                    origin.attribute("data"),
                    shown(ct),
                    json_kind(other)
                )));
            }
        }
    }
    let mut event: Event = serde_json::from_value(serde_json::Value::Object(obj))
        .map_err(|e| Error::bad_input(format!("invalid CloudEvent: {e}")))?;
    if let Some(serde_json::Value::String(ct)) = restore_content_type {
        event.set_datacontenttype(Some(ct));
    }
    Ok(event)
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

/// How an HTTP request carries a CloudEvent, from its `Content-Type` (CloudEvents HTTP binding §3,
/// https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/http-protocol-binding.md); see
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

/// Percent-decodes a `ce-` header value (CloudEvents HTTP binding §3.1.3.2): RFC 7230 quoted strings are
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
/// missing required attributes, bad names, bad percent-encoding and invalid values (checked as in
/// [`event_from_json`]) are errors naming the attribute and its header.
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
    let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if let Some(ct) = content_type {
        obj.insert("datacontenttype".into(), ct.into());
    }
    // An empty body is an event without data, whatever the content type says. (cloudevents-sdk
    // reads an empty body under a JSON type as the JSON `null`; the HTTP binding, §3.1, makes the
    // body the data, and no bytes are no data, which is how the structured form says it too.)
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
    event_from_object(obj, Origin::Headers)
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

    fn with(attributes: serde_json::Value) -> serde_json::Value {
        let mut e = serde_json::json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"});
        for (k, v) in attributes.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    }

    #[test]
    fn invalid_attribute_values_name_the_attribute_and_the_rule() {
        use serde_json::json;
        let cases = [
            (
                json!({"data_base64": "%%%"}),
                "CloudEvent `data_base64` must be a base64 string (RFC 4648), not `%%%` (invalid symbol 37, offset 0)",
            ),
            (
                json!({"time": "yesterday"}),
                "CloudEvent attribute `time` must be an RFC 3339 timestamp string, such as `2018-04-05T17:31:00Z`, not `yesterday` (premature end of input)",
            ),
            (
                json!({"dataschema": "not a uri"}),
                "CloudEvent attribute `dataschema` must be an absolute URI string (RFC 3986), such as `https://example.com/schema.json`, not `not a uri` (` ` at position 3 must be percent-encoded)",
            ),
            (
                json!({"dataschema": "/relative"}),
                "CloudEvent attribute `dataschema` must be an absolute URI string (RFC 3986), such as `https://example.com/schema.json`, not `/relative` (it has no scheme)",
            ),
            (
                json!({"myext": {"a": 1}}),
                "CloudEvent extension attribute `myext` must be a string, a boolean or an integer (-2147483648 to 2147483647), not an object `{\"a\":1}`",
            ),
            (
                json!({"datacontenttype": 5}),
                "CloudEvent attribute `datacontenttype` must be a media type string (RFC 2046), such as `application/json`, not a number `5`",
            ),
            (
                json!({"datacontenttype": "json"}),
                "CloudEvent attribute `datacontenttype` must be a media type string (RFC 2046), such as `application/json`, not `json` (it is not `type/subtype`)",
            ),
            (json!({"id": 5}), "CloudEvent attribute `id` must be a non-empty string, not a number `5`"),
            (
                json!({"specversion": 1.0}),
                "CloudEvent attribute `specversion` must be the string `1.0`, not a number `1.0`",
            ),
            (json!({"subject": ""}), "CloudEvent attribute `subject` is empty; it must be a non-empty string"),
            (
                json!({"source": "1x:y"}),
                "CloudEvent attribute `source` must be a non-empty URI-reference string (RFC 3986), such as `/shop/orders` or `https://example.com/shop`, not `1x:y` (`1x` is not a valid scheme (a letter, then letters, digits, `+`, `-` or `.`))",
            ),
            (
                json!({"source": "/a%2"}),
                "CloudEvent attribute `source` must be a non-empty URI-reference string (RFC 3986), such as `/shop/orders` or `https://example.com/shop`, not `/a%2` (the `%` at position 2 is not followed by two hex digits)",
            ),
            (
                json!({"datacontenttype": "text/plain", "data": [1]}),
                "CloudEvent `data` must be a string when `datacontenttype` is `text/plain` (not a JSON type), not an array `[1]`; send bytes as `data_base64`",
            ),
        ];
        for (attributes, want) in cases {
            let err = event_from_json(with(attributes.clone())).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::BadInput);
            assert_eq!(err.message(), want, "{attributes}");
        }
        // In a batch, the event is named by its index.
        let batch = serde_json::Value::Array(vec![with(json!({})), with(json!({"time": "noon"}))]).to_string();
        let err = decode_batch(batch.as_bytes()).unwrap_err();
        assert!(err.message().starts_with("batch event 1: CloudEvent attribute `time` must be"), "{}", err.message());
    }

    #[test]
    fn valid_attribute_values_are_accepted_and_kept() {
        use serde_json::json;
        let e = event_from_json(with(json!({
            "source": "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", "subject": "a b", "time": "2018-04-05T17:31:00+02:00",
            "dataschema": "https://example.com/s.json#v1", "datacontenttype": "application/vnd.api+json; charset=utf-8",
            "data": {"n": 1}, "small": -2147483648_i64, "flag": true, "text": "", "gone": null,
        })))
        .unwrap();
        assert_eq!(e.datacontenttype(), Some("application/vnd.api+json; charset=utf-8"));
        assert_eq!(e.data(), Some(&cloudevents::Data::Json(json!({"n": 1}))));
        assert_eq!(e.time().unwrap().to_rfc3339(), "2018-04-05T15:31:00+00:00");
        assert_eq!(e.extension("small").unwrap().to_string(), "-2147483648");
        assert!(e.extension("gone").is_none());
        // The structured form it encodes to decodes to the same event.
        assert_eq!(decode_structured(encode_structured(&e).unwrap().body()).unwrap(), e);
        // `null` data with a text type is no data; a base64 payload with a JSON type stays as the SDK reads it.
        let e = event_from_json(with(json!({"datacontenttype": "text/plain", "data": null}))).unwrap();
        assert_eq!(e.data(), None);
        let e = event_from_json(with(json!({"datacontenttype": "application/json", "data_base64": "eyJhIjoxfQ=="})))
            .unwrap();
        assert_eq!(e.data(), Some(&cloudevents::Data::Json(json!({"a": 1}))));
    }

    /// Decided while fuzzing against cloudevents-sdk, which reads this as the JSON `null`: an
    /// empty body is no data under any content type, and stays so through the structured form.
    #[test]
    fn an_empty_binary_body_is_no_data() {
        let mut h = HeaderMap::new();
        for (name, value) in [("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t")] {
            h.insert(name, value.parse().unwrap());
        }
        for ct in [None, Some("application/json"), Some("text/plain")] {
            if let Some(ct) = ct {
                h.insert("content-type", ct.parse().unwrap());
            }
            let e = event_from_binary(&h, b"").unwrap();
            assert_eq!(e.data(), None, "{ct:?}");
            assert_eq!(e.datacontenttype(), ct);
            assert_eq!(decode_structured(encode_structured(&e).unwrap().body()).unwrap(), e);
        }
    }

    #[test]
    fn binary_mode_value_errors_name_the_header() {
        let mut h = HeaderMap::new();
        for (k, v) in [("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t")] {
            h.insert(k, v.parse().unwrap());
        }
        h.insert("ce-time", "yesterday".parse().unwrap());
        let err = event_from_binary(&h, b"").unwrap_err();
        assert!(
            err.message().starts_with("CloudEvent attribute `time` (header `ce-time`) must be an RFC 3339"),
            "{}",
            err.message()
        );
        h.remove("ce-time");
        h.insert("content-type", "nonsense".parse().unwrap());
        let err = event_from_binary(&h, b"x").unwrap_err();
        assert!(
            err.message()
                .starts_with("CloudEvent attribute `datacontenttype` (header `Content-Type`) must be a media type"),
            "{}",
            err.message()
        );
        h.insert("content-type", "application/problem+json; charset=utf-8".parse().unwrap());
        let e = event_from_binary(&h, br#"{"ok":true}"#).unwrap();
        assert_eq!(e.data(), Some(&cloudevents::Data::Json(serde_json::json!({"ok": true}))));
    }

    #[test]
    fn percent_escapes_must_be_two_hex_digits() {
        assert_eq!(decode_header_value("ce-subject", b"%41%6a").unwrap(), "Aj");
        for bad in [&b"%+1"[..], b"%-1", b"% 1", b"%4"] {
            let err = decode_header_value("ce-subject", bad).unwrap_err();
            assert!(err.message().contains("`%` not followed by two hex digits"), "{}", err.message());
        }
    }

    /// Found by `fuzz/cloudevents_http`: serde_json's default float parser can land one ulp off, so a
    /// number in the data changed when the event was re-encoded and decoded (a binary-mode request
    /// with these headers and body, as the fuzzer sent it). Decoding now parses floats exactly.
    #[test]
    fn float_data_survives_a_round_trip() {
        let mut h = HeaderMap::new();
        for (name, value) in [("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/shop"), ("ce-type", "t")] {
            h.insert(name, value.parse().unwrap());
        }
        for body in [
            &br#"{"source":4.266154458992878e+180,"specversion\u0000":null}"#[..],
            b"4.266154458992877e180",
            b"[1.7976931348623157e308, 5e-324, 0.1]",
        ] {
            let event = event_from_http(&h, body).unwrap().remove(0);
            let encoded = encode_structured(&event).unwrap();
            assert_eq!(decode_structured(encoded.body()).unwrap(), event, "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(serde_json::from_str::<f64>("4.266154458992878e+180").unwrap(), 4.266154458992878e180);
    }

    /// Found by `fuzz/cloudevents_http` (differential against cloudevents-sdk): with a JSON content
    /// type the SDK does not recognise (parameters, upper case), JSON string data was taken as text:
    /// the body `""` became empty data, `"hi"` the text `hi`, losing the quotes its content type needs.
    #[test]
    fn json_string_data_stays_json_under_any_json_content_type() {
        use cloudevents::Data;
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "https://example.com/schema.json"),
            ("ce-type", "t"),
            ("content-type", "application/vnd.api+json; charset=utf-8"),
        ] {
            h.insert(name, value.parse().unwrap());
        }
        for (body, data) in [(&b"\"\""[..], ""), (b"\"hi\"", "hi")] {
            let event = event_from_http(&h, body).unwrap().remove(0);
            assert_eq!(event.data(), Some(&Data::Json(serde_json::json!(data))), "{}", String::from_utf8_lossy(body));
            assert_eq!(event.datacontenttype(), Some("application/vnd.api+json; charset=utf-8"));
            let encoded = encode_structured(&event).unwrap();
            assert_eq!(decode_structured(encoded.body()).unwrap(), event);
        }
        let structured = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"Application/JSON","data":"hi"}"#;
        let event = decode_structured(structured).unwrap();
        assert_eq!(event.data(), Some(&Data::Json(serde_json::json!("hi"))));
        // A string under a type that is not JSON is still text.
        let text =
            br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"hi"}"#;
        assert_eq!(decode_structured(text).unwrap().data(), Some(&Data::String("hi".into())));
    }

    /// Found by `fuzz/cloudevents_http`: a `dataschema` whose host held a percent escape
    /// (`https://a%22b/s.json`) was accepted, then kept as the URL `https://a"b/s.json`, which
    /// the structured encoding wrote and no decoder (ours included) accepts.
    #[test]
    fn a_dataschema_must_stay_a_uri_once_parsed() {
        let event = |schema: &str| serde_json::json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "dataschema": schema});
        let err = event_from_json(event("https://0exa2%22b&com/s.json")).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::BadInput);
        assert!(
            err.message().starts_with("CloudEvent attribute `dataschema` must be an absolute URI"),
            "{}",
            err.message()
        );
        assert!(err.message().contains("as a URL it reads"), "{}", err.message());
        let ok = event_from_json(event("https://Example.com/a%22b.json")).unwrap();
        let again = decode_structured(encode_structured(&ok).unwrap().body()).unwrap();
        assert_eq!(again, ok);
    }

    #[test]
    fn modes_are_detected_case_insensitively() {
        assert_eq!(detect_mode(Some("Application/CloudEvents+JSON; charset=utf-8")).unwrap(), Mode::Structured);
        assert_eq!(detect_mode(Some("application/cloudevents-batch+json")).unwrap(), Mode::Batch);
        assert_eq!(detect_mode(Some("text/plain")).unwrap(), Mode::Binary);
        assert!(detect_mode(Some("application/cloudevents+avro")).is_err());
    }
}
