//! Google Cloud Functions legacy (background) events and raw Pub/Sub pushes, converted to
//! CloudEvents as the Functions Framework converts them (`faas_runner_gcf::legacy::to_cloudevent`),
//! then read as the host reads them (`event_from_json`, `encode_structured`, `decode_structured`):
//! on events built from the real member names, event types and resource shapes, with values of
//! any JSON type, and on arbitrary JSON.
//!
//! Invariants, besides "no panic":
//! - a refusal is a `bad_input` error, and so is a converted event the decoder refuses;
//! - a converted event is a CloudEvent 1.0 of the type the table maps the legacy type to, with a
//!   `//service/resource` source and JSON data, whose id and time are the legacy event's;
//! - what the host passes on (the structured encoding) decodes back to the same event.
#![no_main]

use arbitrary::{Result, Unstructured};
use faas_api::cloudevents::AttributesReader;
use faas_api::event::{decode_structured, encode_structured, event_from_json};
use faas_api::ErrorKind;
use faas_fuzz::{json_value, pick_string, JsonShape};
use faas_runner_gcf::legacy::{cloudevent_type, to_cloudevent, TYPES};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

const KEYS: &[&str] = &[
    "context",
    "eventId",
    "timestamp",
    "eventType",
    "resource",
    "service",
    "name",
    "type",
    "data",
    "domain",
    "subscription",
    "message",
    "messageId",
    "publishTime",
    "attributes",
    "uid",
    "metadata",
    "createdAt",
    "lastSignedInAt",
];
const STRINGS: &[&str] = &[
    "aaaaaa-1111-bbbb-2222-cccccccccccc",
    "2020-09-29T11:32:00.000Z",
    "yesterday",
    "projects/_/buckets/b/objects/dir/f.txt",
    "projects/p/topics/t",
    "projects/p/databases/(default)/documents/users/u1",
    "projects/_/instances/db/refs/a/b",
    "projects/p/events/e",
    "projects/_/buckets/b",
    "storage.googleapis.com",
    "pubsub.googleapis.com",
    "firestore.googleapis.com",
    "firebaseio.com",
    "europe-west1.firebasedatabase.app",
    "SGVsbG8=",
    "",
];
const PATHS: &[&str] =
    &["/", "/projects/p/topics/t", "/projects/p/topics/", "/x/projects/a/topics/b?y", "/projects//topics/t"];

fn shape() -> JsonShape<'static> {
    JsonShape { keys: KEYS, strings: STRINGS, max_depth: 3 }
}

fn string_or_any(u: &mut Unstructured<'_>) -> Result<Value> {
    if u.ratio(7, 8)? {
        Ok(Value::String(pick_string(u, STRINGS)?))
    } else {
        json_value(u, &shape(), 2)
    }
}

fn legacy_event(u: &mut Unstructured<'_>) -> Result<Value> {
    let event_type = if u.ratio(7, 8)? { u.choose(&TYPES)?.0.to_string() } else { pick_string(u, &["x.y", ""])? };
    let mut context = Map::new();
    context.insert("eventId".into(), string_or_any(u)?);
    context.insert("timestamp".into(), string_or_any(u)?);
    context.insert("eventType".into(), Value::String(event_type));
    let resource = match u.int_in_range(0..=2)? {
        0 => Value::String(pick_string(u, STRINGS)?),
        1 => json!({"service": pick_string(u, STRINGS)?, "name": string_or_any(u)?, "type": "storage#object"}),
        _ => json_value(u, &shape(), 2)?,
    };
    context.insert("resource".into(), resource);
    let mut event = Map::new();
    if u.arbitrary()? {
        event.insert("context".into(), Value::Object(context));
    } else {
        event.extend(context);
    }
    let data = match u.int_in_range(0..=2)? {
        0 => json!({"data": pick_string(u, STRINGS)?, "attributes": {"a": "1"}}),
        1 => json!({"uid": string_or_any(u)?, "metadata": {"createdAt": "2020-01-01T00:00:00Z"}}),
        _ => json_value(u, &shape(), 1)?,
    };
    event.insert("data".into(), data);
    if u.arbitrary()? {
        event.insert("domain".into(), string_or_any(u)?);
    }
    Ok(Value::Object(event))
}

fn raw_pubsub(u: &mut Unstructured<'_>) -> Result<Value> {
    let mut message = Map::new();
    message.insert("data".into(), string_or_any(u)?);
    message.insert("messageId".into(), string_or_any(u)?);
    if u.arbitrary()? {
        message.insert("publishTime".into(), string_or_any(u)?);
    }
    Ok(json!({"subscription": pick_string(u, &["projects/p/subscriptions/s"])?, "message": message}))
}

fn check(body: &Value, path: &str) {
    let converted = match to_cloudevent(body, path) {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::BadInput, "{e:?}");
            return;
        }
        Ok(v) => v,
    };
    let legacy_type = body
        .get("context")
        .and_then(|c| c.get("eventType"))
        .or_else(|| body.get("eventType"))
        .and_then(Value::as_str)
        .unwrap_or("google.pubsub.topic.publish");
    assert_eq!(converted["specversion"], "1.0");
    assert_eq!(converted["type"].as_str(), cloudevent_type(legacy_type), "type of `{legacy_type}`");
    assert!(converted["source"].as_str().is_some_and(|s| s.starts_with("//")), "source {}", converted["source"]);
    assert_eq!(converted["datacontenttype"], "application/json");
    let event = match event_from_json(converted.clone()) {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::BadInput, "{e:?}");
            return;
        }
        Ok(event) => event,
    };
    assert_eq!(Some(event.id()), converted["id"].as_str());
    assert_eq!(event.ty(), converted["type"].as_str().unwrap());
    let encoded = encode_structured(&event).expect("a decoded event encodes");
    let again = decode_structured(encoded.body()).expect("what the host passes on decodes");
    assert_eq!(again, event, "the structured encoding does not read back");
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(path) = pick_string(&mut u, PATHS) else { return };
    let body = match u.int_in_range(0..=3u8) {
        Ok(0) | Ok(1) => legacy_event(&mut u),
        Ok(2) => raw_pubsub(&mut u),
        _ => json_value(&mut u, &shape(), 0),
    };
    if let Ok(body) = body {
        check(&body, &path);
    }
});
