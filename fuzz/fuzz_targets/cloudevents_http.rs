//! CloudEvents over HTTP, as the front and the gateway decode it: `event_from_http` on arbitrary
//! headers (`content-type`, `ce-*`, others) and bodies in binary, structured and batch mode, and
//! `decode_structured` / `decode_batch` on raw bytes.
//!
//! Invariants, besides "no panic":
//! - every decoded event re-encodes (`encode_structured`) and decodes to the same event;
//! - the mode follows the content type: structured and batch answer exactly what
//!   `decode_structured` / `decode_batch` answer for the body, a batch one event per array item;
//! - every error is a bad-input error whose message says what is wrong (one of the decoder's own
//!   sentences, never a bare serde message or an empty one);
//! - differential: where cloudevents-sdk 0.9 also accepts the request, it decodes the same event
//!   (structured mode: equal events; binary mode: equal attributes and data, for header values
//!   without percent-encoding or quotes, which the SDK does not decode).
#![no_main]

use arbitrary::{Result, Unstructured};
use cloudevents::event::Data;
use cloudevents::{AttributesReader, Event};
use faas_api::event::{decode_batch, decode_structured, encode_structured, event_from_http};
use faas_api::{cloudevents, Error, ErrorKind};
use faas_fuzz::{json_object, json_value, pick_string, JsonShape};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const ATTRIBUTES: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
    "data",
    "data_base64",
    "traceparent",
    "myext",
    "Bad-Name",
    "",
];

const VALUES: &[&str] = &[
    "1.0",
    "0.3",
    "",
    "1",
    "/shop",
    "https://example.com/shop?x=1#f",
    "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
    "order.created",
    "application/json",
    "application/vnd.api+json; charset=utf-8",
    "text/plain",
    "application/octet-stream",
    "https://example.com/schema.json",
    "2018-04-05T17:31:00Z",
    "2018-04-05T17:31:00.123456789+01:00",
    "1985-04-12T23:20:50.52Z",
    "SGVsbG8=",
    "a%20b",
    "%E2%82%AC",
    "\"quoted\"",
    "%",
    "#",
    "a b",
];

const CONTENT_TYPES: &[&str] = &[
    "application/cloudevents+json",
    "application/cloudevents+json; charset=utf-8",
    "Application/CloudEvents+JSON",
    "application/cloudevents-batch+json",
    "application/cloudevents+avro",
    "application/cloudevents-batch+xml",
    "application/json",
    "application/json; charset=utf-8",
    "application/vnd.api+json",
    "text/plain",
    "text/json",
    "application/octet-stream",
    "application/xml",
];

fn shape() -> JsonShape<'static> {
    JsonShape { keys: ATTRIBUTES, strings: VALUES, max_depth: 4 }
}

/// A JSON event object: usually every required attribute, valid most of the time, then extras.
fn event_object(u: &mut Unstructured<'_>) -> Result<Map<String, Value>> {
    let mut obj = Map::new();
    let required = [("specversion", "1.0"), ("id", "1"), ("source", "/shop"), ("type", "order.created")];
    for (name, good) in required {
        match u.int_in_range(0..=9)? {
            0 => {}
            1 => {
                obj.insert(name.into(), json_value(u, &shape(), 2)?);
            }
            2 => {
                obj.insert(name.into(), Value::String(pick_string(u, VALUES)?));
            }
            _ => {
                obj.insert(name.into(), Value::String(good.into()));
            }
        }
    }
    for (k, v) in json_object(u, &shape(), 1)? {
        obj.insert(k, v);
    }
    Ok(obj)
}

fn header_name(u: &mut Unstructured<'_>) -> Result<Option<HeaderName>> {
    let text = match u.int_in_range(0..=5)? {
        0 => "content-type".to_string(),
        1 => format!("CE-{}", pick_string(u, ATTRIBUTES)?),
        2 => pick_string(u, &["ce-", "content-length", "traceparent", "x-other", "ce-ce-id"])?,
        _ => format!("ce-{}", pick_string(u, ATTRIBUTES)?),
    };
    Ok(HeaderName::from_bytes(text.as_bytes()).ok())
}

fn header_value(u: &mut Unstructured<'_>) -> Result<Option<HeaderValue>> {
    if u.ratio(1, 5)? {
        let raw: Vec<u8> = u.arbitrary()?;
        return Ok(HeaderValue::from_bytes(&raw).ok());
    }
    Ok(HeaderValue::from_str(&pick_string(u, VALUES)?).ok())
}

/// A binary-mode request: the four required `ce-` headers (mostly valid), extra headers, a body.
fn binary_request(u: &mut Unstructured<'_>, headers: &mut HeaderMap) -> Result<Vec<u8>> {
    for (name, good) in [("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/shop"), ("ce-type", "t")] {
        if u.ratio(9, 10)? {
            let value = if u.ratio(5, 6)? { Some(HeaderValue::from_static(good)) } else { header_value(u)? };
            if let Some(value) = value {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
    }
    let extra = u.int_in_range(0..=5)?;
    for _ in 0..extra {
        if let (Some(name), Some(value)) = (header_name(u)?, header_value(u)?) {
            if u.ratio(1, 4)? {
                headers.append(name, value);
            } else {
                headers.insert(name, value);
            }
        }
    }
    if u.ratio(1, 2)? {
        let ct = pick_string(u, CONTENT_TYPES)?;
        if let Ok(v) = HeaderValue::from_str(&ct) {
            headers.insert(http::header::CONTENT_TYPE, v);
        }
    }
    Ok(match u.int_in_range(0..=2)? {
        0 => Vec::new(),
        1 => serde_json::to_vec(&json_value(u, &shape(), 0)?).unwrap(),
        _ => u.arbitrary::<Vec<u8>>()?,
    })
}

/// The sentences the decoder's errors start with: anything else is a message that does not say
/// what is wrong in our words.
const ERROR_STARTS: &[&str] = &[
    "CloudEvent ",
    "CloudEvents batch mixes",
    "a structured CloudEvent must be a JSON object",
    "a CloudEvents batch must be a JSON array",
    "malformed structured CloudEvent JSON: ",
    "malformed CloudEvents batch JSON: ",
    "batch event ",
    "header `",
    "unsupported CloudEvents",
    "invalid CloudEvent: ",
];

fn check_error(e: &Error, what: &str) {
    assert_eq!(e.kind(), ErrorKind::BadInput, "{what}: not a bad-input error: {e:?}");
    let message = e.message();
    let message = message.strip_prefix("batch event ").map_or(message, |rest| {
        // `batch event N: <the event's own error>`
        let (index, inner) = rest.split_once(": ").unwrap_or_else(|| panic!("{what}: `{message}`"));
        assert!(index.parse::<usize>().is_ok(), "{what}: batch error without an index: `{message}`");
        inner
    });
    assert!(
        ERROR_STARTS.iter().any(|start| message.starts_with(start)),
        "{what}: error does not say what is wrong in the decoder's words: `{message}`"
    );
}

/// Encodes and decodes `event` again; it must come back unchanged.
fn check_round_trip(event: &Event) {
    let payload = encode_structured(event).expect("a decoded event encodes");
    let again = decode_structured(payload.body()).unwrap_or_else(|e| {
        panic!(
            "re-encoded event does not decode: {}\nevent: {event:?}\njson: {}",
            e.message(),
            String::from_utf8_lossy(payload.body())
        )
    });
    assert_eq!(&again, event, "round trip changed the event; json: {}", String::from_utf8_lossy(payload.body()));
}

/// Data as JSON, for comparing two decoders that may hold the same bytes differently (JSON,
/// text, bytes): bytes that are JSON compare as that JSON.
fn data_view(event: &Event) -> Option<Value> {
    let bytes = |b: &[u8]| {
        serde_json::from_slice(b).unwrap_or_else(|_| Value::Array(b.iter().map(|x| Value::from(*x)).collect()))
    };
    match event.data()? {
        Data::Json(v) => Some(v.clone()),
        Data::String(s) => Some(bytes(s.as_bytes())),
        Data::Binary(b) => Some(bytes(b)),
    }
}

fn differential(headers: &HeaderMap, body: &[u8], ours: &[Event]) {
    let [ours] = ours else { return };
    let ct = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let structured = ct.to_ascii_lowercase().starts_with("application/cloudevents+json");
    if !structured {
        // The SDK neither percent-decodes nor unquotes header values, and treats repeated headers
        // differently: compare only where neither matters.
        let plain = headers.iter().filter(|(n, _)| n.as_str().starts_with("ce-")).all(|(n, v)| {
            !v.as_bytes().iter().any(|b| *b == b'%' || *b == b'"') && headers.get_all(n).iter().count() == 1
        });
        // `ce-datacontenttype` and `ce-data` are not attributes in binary mode (the content type
        // is `Content-Type`, the data the body): we ignore them, the SDK takes them.
        let sdk_only = ["ce-datacontenttype", "ce-data"].iter().any(|h| headers.contains_key(*h));
        if !plain || sdk_only || ct.is_empty() != headers.get(http::header::CONTENT_TYPE).is_none() {
            return;
        }
    }
    if structured && !ct.starts_with("application/cloudevents+json") {
        return; // The SDK matches the structured content type case-sensitively.
    }
    let Ok(theirs) = cloudevents::binding::http::to_event(headers, body.to_vec()) else { return };
    if structured {
        // We drop `null` attributes and fix the content type of JSON data the SDK does not
        // recognise; otherwise the events are equal.
        if theirs.datacontenttype() == ours.datacontenttype() {
            let mut theirs = theirs;
            // A JSON type with parameters (`application/vnd.api+json; charset=utf-8`): the SDK
            // reads a string `data` as text, we keep it JSON as for every other JSON type
            // (faas-api's `json_string_data_stays_json_under_any_json_content_type`).
            let json_type = theirs.datacontenttype().is_some_and(faas_api::payload::is_json_media_type);
            if let (true, Some(Data::String(s))) = (json_type, theirs.data()) {
                let json = Data::Json(Value::String(s.clone()));
                theirs.set_data_unchecked(json);
            }
            assert_eq!(&theirs, ours, "cloudevents-sdk decodes this structured event differently");
        }
        return;
    }
    assert_eq!(theirs.id(), ours.id(), "id");
    assert_eq!(theirs.source(), ours.source(), "source");
    assert_eq!(theirs.ty(), ours.ty(), "type");
    assert_eq!(theirs.subject(), ours.subject(), "subject");
    assert_eq!(theirs.time(), ours.time(), "time");
    assert_eq!(theirs.dataschema(), ours.dataschema(), "dataschema");
    assert_eq!(theirs.datacontenttype(), ours.datacontenttype(), "datacontenttype");
    for (name, value) in ours.iter_extensions() {
        let theirs = theirs.extension(name).map(|v| v.to_string());
        assert_eq!(theirs, Some(value.to_string()), "extension `{name}`");
    }
    assert_eq!(theirs.iter_extensions().count(), ours.iter_extensions().count(), "extensions");
    // A JSON `null` body is no data for us, `null` for the SDK.
    let no_null = |d: Option<Value>| d.filter(|v| !v.is_null());
    assert_eq!(
        no_null(data_view(&theirs)),
        no_null(data_view(ours)),
        "data; headers {headers:?}, body {:?}\nours {ours:?}\ntheirs {theirs:?}",
        String::from_utf8_lossy(body)
    );
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(mode) = u.int_in_range(0..=5u8) else { return };
    let mut headers = HeaderMap::new();
    let body = match mode {
        // Raw bytes straight into the structured and batch decoders.
        0 => {
            let body = u.take_rest();
            match decode_structured(body) {
                Ok(event) => check_round_trip(&event),
                Err(e) => check_error(&e, "decode_structured"),
            }
            match decode_batch(body) {
                Ok(events) => events.iter().for_each(check_round_trip),
                Err(e) => check_error(&e, "decode_batch"),
            }
            return;
        }
        // A structured-mode request built from attributes.
        1 => {
            let Ok(obj) = event_object(&mut u) else { return };
            let ct = pick_string(&mut u, &CONTENT_TYPES[..3]).unwrap_or_default();
            if let Ok(v) = HeaderValue::from_str(&ct) {
                headers.insert(http::header::CONTENT_TYPE, v);
            }
            serde_json::to_vec(&Value::Object(obj)).unwrap()
        }
        // A batch of built events.
        2 => {
            let n = u.int_in_range(0..=4).unwrap_or(0);
            let mut items = Vec::new();
            for _ in 0..n {
                match event_object(&mut u) {
                    Ok(obj) => items.push(Value::Object(obj)),
                    Err(_) => break,
                }
            }
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/cloudevents-batch+json"));
            serde_json::to_vec(&Value::Array(items)).unwrap()
        }
        // Binary mode.
        3 | 4 => match binary_request(&mut u, &mut headers) {
            Ok(body) => body,
            Err(_) => return,
        },
        // Arbitrary headers, then the raw rest as the body.
        _ => {
            let n = u.int_in_range(0..=8).unwrap_or(0);
            for _ in 0..n {
                if let (Ok(Some(name)), Ok(Some(value))) = (header_name(&mut u), header_value(&mut u)) {
                    headers.append(name, value);
                }
            }
            u.take_rest().to_vec()
        }
    };

    let result = event_from_http(&headers, &body);
    let ct = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let mode = faas_api::event::detect_mode(ct);
    match (&result, mode) {
        (_, Err(e)) => {
            assert_eq!(e.error_type(), "UnsupportedMediaType");
            assert!(result.is_err());
        }
        (_, Ok(faas_api::event::Mode::Structured)) => {
            assert_eq!(result.as_ref().ok(), decode_structured(&body).ok().map(|e| vec![e]).as_ref());
        }
        (_, Ok(faas_api::event::Mode::Batch)) => {
            assert_eq!(result.as_ref().ok(), decode_batch(&body).ok().as_ref());
            if let Ok(events) = &result {
                let items = serde_json::from_slice::<Value>(&body).unwrap();
                assert_eq!(items.as_array().map(Vec::len), Some(events.len()), "one event per batch item");
            }
        }
        (_, Ok(faas_api::event::Mode::Binary)) => {}
    }
    match result {
        Ok(events) => {
            events.iter().for_each(check_round_trip);
            differential(&headers, &body, &events);
        }
        Err(e) => check_error(&e, "event_from_http"),
    }
});
