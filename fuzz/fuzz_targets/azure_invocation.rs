//! Azure custom-handler payloads: `InvocationRequest::parse` on the body the Functions host posts,
//! then `wire::http_request(value, "Data.req")` on each input binding, on raw bytes and on
//! invocations built from the real member names (in any case) with values of any JSON type.
//!
//! Invariants, besides "no panic":
//! - errors are bad-input errors naming what is wrong: `http_request`'s name the binding
//!   (`Data.req`), `parse`'s the invocation request;
//! - an HTTP request read from the wire reads back the same from its own JSON form (what
//!   `AzureRequest` serializes is what `http_request` understands), with the same payload;
//! - the payload's content type is the request's `Content-Type` header; a string body that is not
//!   base64 on the wire is the payload's bytes as sent;
//! - `header_map`, `metadata` and `metadata_text` answer for whatever was parsed.
#![no_main]

use arbitrary::{Result, Unstructured};
use faas_api::ErrorKind;
use faas_fuzz::{json_object, json_value, pick_string, JsonShape};
use faas_runner_azure::host::wire::{self, InvocationRequest};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const MEMBERS: &[&str] =
    &["Url", "url", "URL", "Method", "method", "Query", "Headers", "headers", "Params", "Body", "body", "Identities"];
const HEADERS: &[&str] =
    &["Content-Type", "content-type", "Content-Length", "ce-id", "X-Forwarded-Proto", "bad header", "Host"];
const STRINGS: &[&str] = &[
    "https://app.azurewebsites.net/api/hello?x=1",
    "POST",
    "get",
    "application/json",
    "application/octet-stream",
    "multipart/form-data; boundary=x",
    "text/plain",
    "AAH/",
    "not base64!",
    "{\"Method\":\"PUT\",\"Body\":\"x\"}",
    "\"Ada\"",
    "4",
    "",
    "\u{7f}",
];

fn shape() -> JsonShape<'static> {
    JsonShape { keys: MEMBERS, strings: STRINGS, max_depth: 3 }
}

/// An HTTP trigger value: the request object, usually with a few headers.
fn http_value(u: &mut Unstructured<'_>) -> Result<Value> {
    let mut obj = json_object(u, &shape(), 1)?;
    if u.ratio(2, 3)? {
        let mut headers = Map::new();
        for _ in 0..u.int_in_range(0..=3)? {
            let value = match u.int_in_range(0..=2)? {
                0 => Value::Array(vec![Value::String(pick_string(u, STRINGS)?)]),
                1 => Value::String(pick_string(u, STRINGS)?),
                _ => json_value(u, &shape(), 2)?,
            };
            headers.insert(pick_string(u, HEADERS)?, value);
        }
        obj.insert(pick_string(u, &["Headers", "headers"])?, Value::Object(headers));
    }
    if u.ratio(1, 2)? {
        obj.insert("Body".into(), Value::String(pick_string(u, STRINGS)?));
    }
    if u.ratio(1, 8)? {
        // The Functions host sometimes hands the request as JSON text.
        return Ok(Value::String(Value::Object(obj).to_string()));
    }
    Ok(Value::Object(obj))
}

fn invocation(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut root = Map::new();
    let mut data = Map::new();
    data.insert(pick_string(u, &["req", "Req", "message"])?, http_value(u)?);
    root.insert(
        pick_string(u, &["Data", "data", "DATA"])?,
        if u.ratio(9, 10)? { Value::Object(data) } else { json_value(u, &shape(), 1)? },
    );
    if u.ratio(3, 4)? {
        root.insert(pick_string(u, &["Metadata", "metadata"])?, Value::Object(json_object(u, &shape(), 1)?));
    }
    Ok(Value::Object(root).to_string().into_bytes())
}

fn check_request(value: Value) {
    // The body as sent, when exactly one member is `Body` in some case and it is a string.
    let sent_body = match &value {
        Value::Object(o) => Some(o.clone()),
        Value::String(s) => serde_json::from_str::<Map<String, Value>>(s).ok(),
        _ => None,
    }
    .and_then(|o| {
        let mut bodies = o.iter().filter(|(k, _)| k.eq_ignore_ascii_case("body"));
        match (bodies.next(), bodies.next()) {
            (Some((_, Value::String(s))), None) => Some(s.clone()),
            _ => None,
        }
    });
    match wire::http_request(value, "Data.req") {
        Ok((req, payload)) => {
            let _ = req.header_map();
            assert_eq!(payload.content_type(), req.header("content-type"), "payload content type");
            let ct =
                req.header("content-type").unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            let base64 = ct == "application/octet-stream" || ct.starts_with("multipart/");
            if let (Some(text), false) = (&sent_body, base64) {
                assert_eq!(payload.body().as_ref(), text.as_bytes(), "a string body is the bytes as sent");
            }
            // Its own JSON form (plus the body as sent back) reads back the same.
            let mut json = serde_json::to_value(&req).unwrap();
            let body = if base64 {
                use base64::Engine as _;
                Value::String(base64::engine::general_purpose::STANDARD.encode(payload.body()))
            } else {
                Value::String(String::from_utf8(payload.body().to_vec()).unwrap_or_default())
            };
            let utf8 = base64 || std::str::from_utf8(payload.body()).is_ok();
            json.as_object_mut().unwrap().insert("Body".into(), body);
            let (again, payload2) = wire::http_request(json.clone(), "Data.req")
                .unwrap_or_else(|e| panic!("the request's own JSON form does not read back: {}: {json}", e.message()));
            assert_eq!(again, req, "round trip through the request's JSON form: {json}");
            if utf8 {
                assert_eq!(payload2.body(), payload.body());
            }
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::BadInput);
            assert!(e.message().contains("`Data.req"), "error does not name the binding: {}", e.message());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let body = match u.int_in_range(0..=2u8) {
        Ok(0) => u.take_rest().to_vec(),
        Ok(1) => {
            // A trigger value on its own.
            if let Ok(v) = http_value(&mut u) {
                check_request(v);
            }
            return;
        }
        _ => match invocation(&mut u) {
            Ok(b) => b,
            Err(_) => return,
        },
    };
    match InvocationRequest::parse(&body) {
        Ok(mut inv) => {
            let metadata = inv.metadata();
            assert_eq!(metadata.len(), inv.raw_metadata.len());
            for name in inv.raw_metadata.keys().cloned().collect::<Vec<_>>() {
                let _ = inv.metadata_text(&name);
                let _ = inv.metadata_text(&name.to_ascii_uppercase());
            }
            let names: Vec<String> = inv.data.keys().cloned().collect();
            for name in names {
                assert!(inv.input(&name).is_some());
                let Some(value) = inv.take_input(&name) else { continue };
                check_request(value);
            }
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::BadInput);
            assert!(e.message().starts_with("the invocation request"), "{}", e.message());
        }
    }
});
