//! The CloudEvent each native trigger's invocation becomes for the app's event function
//! (azure-contract.md §2): `Data.<trigger binding name>` and `Metadata`, read in the host's value
//! encoding (AZURE-HOST.md §2.2, §2.5).
//!
//! | trigger | `type` | `source` | `id` | `subject` | `data` |
//! |---|---|---|---|---|---|
//! | `queueTrigger` | `azure.storage.queue.v1.message` | `queues/<queueName>` | `Metadata.Id` | | the message text, JSON when it parses |
//! | `timerTrigger` | `azure.timer.v1.fired` | `timers/<function>` | the invocation id | the `schedule` | the timer object |
//! | `blobTrigger` | `azure.storage.blob.v1.written` | `blobs/<container>` | the invocation id | `Metadata.BlobTrigger`, else `Metadata.name` | the content |
//! | `eventGridTrigger` | the event's | the event's (`topic`) | the event's | the event's | the event's |
//! | any other | `azure.functions.v1.<binding type>` | `functions/<function>` | the invocation id | | the value |
//!
//! A queue message's `time` is its `InsertionTime`, its `DequeueCount` the extension
//! `dequeuecount`; a timer's `time` is `Metadata.sys.UtcNow`. An Event Grid event in the Event
//! Grid schema maps `eventType` to `type`, `topic` to `source`, `eventTime` to `time` and
//! `dataVersion` to the extension `dataversion`; one in the CloudEvents schema is taken as is.
//! `%NAME%` in a binding's `queueName` or `path` is the app setting `NAME`, as the Functions host
//! resolves it.
//!
//! ```
//! use std::collections::BTreeMap;
//! use faas_api::cloudevents::AttributesReader;
//! use faas_runner_azure::host::folder::FunctionJson;
//! use faas_runner_azure::host::triggers::trigger_event;
//! use faas_runner_azure::host::wire::InvocationRequest;
//! let f = FunctionJson::parse(r#"{"bindings":[{"type":"queueTrigger","direction":"in","name":"myQueueItem",
//!     "queueName":"%ORDERS%"}]}"#, "orders/function.json").unwrap();
//! let body = br#"{"Data":{"myQueueItem":"\"{\\\"orderId\\\":7}\""},
//!     "Metadata":{"DequeueCount":"1","Id":"\"5b1c\"","InsertionTime":"2025-06-01T10:00:00+00:00"}}"#;
//! let settings = BTreeMap::from([("ORDERS".to_string(), "orders".to_string())]);
//! let e = trigger_event("orders", &f, &InvocationRequest::parse(body).unwrap(), "inv-1", &settings).unwrap();
//! assert_eq!((e.id(), e.ty(), e.source().to_string().as_str()), ("5b1c", "azure.storage.queue.v1.message", "queues/orders"));
//! assert_eq!(e.data(), Some(&faas_api::cloudevents::Data::Json(serde_json::json!({"orderId": 7}))));
//! ```

use std::collections::BTreeMap;

use base64::Engine as _;
use faas_api::cloudevents::Event;
use faas_api::{Error, Payload};
use serde_json::{json, Map, Value};

use super::folder::{FunctionJson, TriggerKind};
use super::wire::{decode_value, InvocationRequest};

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const TEXT: &str = "text/plain; charset=utf-8";

/// The CloudEvent of a native trigger's invocation of `function` (see the [module docs](self));
/// `settings` resolves `%NAME%` in binding settings. What cannot be read is a bad-input error.
pub fn trigger_event(
    function: &str,
    config: &FunctionJson,
    invocation: &InvocationRequest,
    invocation_id: &str,
    settings: &BTreeMap<String, String>,
) -> Result<Event, Error> {
    let binding = config.trigger();
    let value = invocation.input(&binding.name).ok_or_else(|| {
        Error::bad_input(format!(
            "the invocation's `Data` has no `{}`, the {} binding of function `{function}`",
            binding.name, binding.binding_type
        ))
    })?;
    let binary = binding.setting("dataType").is_some_and(|t| t.eq_ignore_ascii_case("binary"));
    let setting = |key: &str| binding.setting(key).map(|v| resolve(v, settings));
    let mut event = Map::new();
    event.insert("specversion".into(), json!("1.0"));
    event.insert("id".into(), json!(invocation_id));
    match binding.kind() {
        TriggerKind::Queue => {
            event.insert("type".into(), json!("azure.storage.queue.v1.message"));
            let queue = setting("queueName").unwrap_or_else(|| function.to_string());
            event.insert("source".into(), json!(format!("queues/{queue}")));
            if let Some(id) = invocation.metadata_text("Id") {
                event.insert("id".into(), json!(id));
            }
            set_time(&mut event, invocation.metadata_text("InsertionTime"));
            if let Some(n) = decode_value(invocation.raw_metadata.get("DequeueCount").unwrap_or(&Value::Null)).as_i64()
            {
                event.insert("dequeuecount".into(), json!(n));
            }
            set_data(&mut event, value, binary);
        }
        TriggerKind::Timer => {
            event.insert("type".into(), json!("azure.timer.v1.fired"));
            event.insert("source".into(), json!(format!("timers/{function}")));
            if let Some(schedule) = setting("schedule") {
                event.insert("subject".into(), json!(schedule));
            }
            let now = invocation.raw_metadata.get("sys").and_then(|s| s.get("UtcNow")).and_then(Value::as_str);
            set_time(&mut event, Some(now.map(str::to_string).unwrap_or_else(|| chrono::Utc::now().to_rfc3339())));
            set_data(&mut event, value, binary);
        }
        TriggerKind::Blob => {
            event.insert("type".into(), json!("azure.storage.blob.v1.written"));
            let blob_path = invocation.metadata_text("BlobTrigger");
            let container = setting("path")
                .or_else(|| blob_path.clone())
                .and_then(|p| p.trim_start_matches('/').split('/').next().map(str::to_string))
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| function.to_string());
            event.insert("source".into(), json!(format!("blobs/{container}")));
            if let Some(subject) = blob_path.or_else(|| invocation.metadata_text("name")) {
                event.insert("subject".into(), json!(subject));
            }
            set_blob_data(&mut event, value, binary);
        }
        TriggerKind::EventGrid => return event_grid(value, invocation_id),
        TriggerKind::Http | TriggerKind::Other => {
            event.insert("type".into(), json!(format!("azure.functions.v1.{}", binding.binding_type)));
            event.insert("source".into(), json!(format!("functions/{function}")));
            set_data(&mut event, value, binary);
        }
    }
    faas_api::event::event_from_json(Value::Object(event))
}

/// The payload a function that is not an event function gets from a trigger: the event's data
/// (JSON, text or bytes, with its content type).
///
/// ```
/// use faas_api::cloudevents::{EventBuilder, EventBuilderV10};
/// let e = EventBuilderV10::new().id("1").source("/s").ty("t").data("application/json", serde_json::json!({"a": 1}))
///     .build().unwrap();
/// let p = faas_runner_azure::host::triggers::data_payload(&e).unwrap();
/// assert_eq!((p.content_type(), p.body().as_ref()), (Some("application/json"), br#"{"a":1}"#.as_ref()));
/// ```
pub fn data_payload(event: &Event) -> Result<Payload, Error> {
    use faas_api::cloudevents::{AttributesReader as _, Data};
    let ct = event.datacontenttype().map(str::to_string);
    Ok(match event.data() {
        None => Payload::empty(),
        Some(Data::Json(v)) => {
            Payload::new(serde_json::to_vec(v).expect("JSON serialises"), ct.or(Some(faas_api::payload::JSON.into())))
        }
        Some(Data::String(s)) => Payload::new(s.clone(), ct.or(Some(TEXT.into()))),
        Some(Data::Binary(b)) => Payload::new(b.clone(), ct.or(Some(faas_api::payload::OCTET_STREAM.into()))),
    })
}

/// `%NAME%` replaced by the setting `NAME` (unknown names are left as they are).
fn resolve(text: &str, settings: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let Some(len) = rest[start + 1..].find('%') else { break };
        let name = &rest[start + 1..start + 1 + len];
        out.push_str(&rest[..start]);
        match settings.get(name) {
            Some(v) if !name.is_empty() => out.push_str(v),
            _ => out.push_str(&rest[start..start + len + 2]),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

fn set_time(event: &mut Map<String, Value>, time: Option<String>) {
    if let Some(t) = time.filter(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()) {
        event.insert("time".into(), json!(t));
    }
}

fn set_bytes(event: &mut Map<String, Value>, bytes: &[u8]) {
    event.insert("datacontenttype".into(), json!(faas_api::payload::OCTET_STREAM));
    event.insert("data_base64".into(), json!(BASE64.encode(bytes)));
}

/// Text is JSON data when it parses, else text; objects and other JSON values are JSON data;
/// with `dataType: binary` the value is the base64 of the bytes.
fn set_data(event: &mut Map<String, Value>, value: &Value, binary: bool) {
    if binary {
        if let Some(bytes) = value.as_str().and_then(|s| BASE64.decode(s.trim()).ok()) {
            return set_bytes(event, &bytes);
        }
    }
    let (ct, data) = match decode_value(value) {
        Value::Null => return,
        Value::String(text) => match serde_json::from_str::<Value>(&text) {
            Ok(json) => (faas_api::payload::JSON, json),
            Err(_) => (TEXT, Value::String(text)),
        },
        other => (faas_api::payload::JSON, other),
    };
    event.insert("datacontenttype".into(), json!(ct));
    event.insert("data".into(), data);
}

/// A blob's content: JSON text inside a string (the content as a string), else the base64 of its
/// bytes (a `byte[]`), else text.
fn set_blob_data(event: &mut Map<String, Value>, value: &Value, binary: bool) {
    if let Value::String(raw) = value {
        let encoded_text = serde_json::from_str::<Value>(raw).is_ok();
        if !encoded_text || binary {
            if let Ok(bytes) = BASE64.decode(raw.trim()) {
                return set_bytes(event, &bytes);
            }
        }
    }
    set_data(event, value, false)
}

/// An Event Grid event (Event Grid schema or CloudEvents schema) as a CloudEvent.
fn event_grid(value: &Value, invocation_id: &str) -> Result<Event, Error> {
    let mut v = decode_value(value);
    if let Value::String(s) = &v {
        v = serde_json::from_str(s).unwrap_or(v);
    }
    let obj = match v {
        Value::Object(o) => o,
        Value::Array(a) => {
            return Err(Error::bad_input(format!(
                "the Event Grid trigger's value is a batch of {} events; a function takes one (cardinality one)",
                a.len()
            )));
        }
        other => {
            return Err(Error::bad_input(format!("the Event Grid trigger's value is no event object: {other}")));
        }
    };
    if obj.contains_key("specversion") {
        return faas_api::event::event_from_json(Value::Object(obj));
    }
    let text = |key: &str| obj.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let ty = text("eventType").ok_or_else(|| {
        Error::bad_input("the Event Grid event has no `eventType` (and no `specversion`: it is in neither schema)")
    })?;
    let mut event = Map::new();
    event.insert("specversion".into(), json!("1.0"));
    event.insert("id".into(), json!(text("id").unwrap_or_else(|| invocation_id.to_string())));
    event.insert("source".into(), json!(text("topic").unwrap_or_else(|| "eventgrid".to_string())));
    event.insert("type".into(), json!(ty));
    if let Some(subject) = text("subject") {
        event.insert("subject".into(), json!(subject));
    }
    set_time(&mut event, text("eventTime"));
    if let Some(version) = text("dataVersion") {
        event.insert("dataversion".into(), json!(version));
    }
    if let Some(data) = obj.get("data").filter(|d| !d.is_null()) {
        event.insert("datacontenttype".into(), json!(faas_api::payload::JSON));
        event.insert("data".into(), data.clone());
    }
    faas_api::event::event_from_json(Value::Object(event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use faas_api::cloudevents::{AttributesReader, Data};

    fn function(binding: Value) -> FunctionJson {
        FunctionJson::parse(&json!({"bindings": [binding]}).to_string(), "f/function.json").unwrap()
    }

    fn event(config: &FunctionJson, body: Value) -> Result<Event, Error> {
        let inv = InvocationRequest::parse(body.to_string().as_bytes()).unwrap();
        trigger_event("fn", config, &inv, "inv-1", &BTreeMap::new())
    }

    #[test]
    fn a_text_queue_message_and_its_attributes() {
        let q = function(json!({"type": "queueTrigger", "direction": "in", "name": "m", "queueName": "work"}));
        let e = event(
            &q,
            json!({"Data": {"m": "\"hello\""}, "Metadata": {"DequeueCount": "3",
            "InsertionTime": "2025-06-01T10:00:00+00:00", "Id": "\"m-1\""}}),
        )
        .unwrap();
        assert_eq!(e.data(), Some(&Data::String("hello".into())));
        assert_eq!(e.datacontenttype(), Some(TEXT));
        assert_eq!(e.time().unwrap().to_rfc3339(), "2025-06-01T10:00:00+00:00");
        assert_eq!(e.extension("dequeuecount").map(|v| v.to_string()).as_deref(), Some("3"));
        // Without an Id, the invocation's.
        let e = event(&q, json!({"Data": {"m": "\"x\""}})).unwrap();
        assert_eq!(e.id(), "inv-1");
        let err = event(&q, json!({"Data": {}})).unwrap_err();
        assert!(err.message().contains("has no `m`, the queueTrigger binding of function `fn`"), "{}", err.message());
    }

    #[test]
    fn a_timer_fires_with_its_schedule_status() {
        let t =
            function(json!({"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "0 */5 * * * *"}));
        let e = event(
            &t,
            json!({"Data": {"timer": {"Schedule": {"AdjustForDST": true}, "IsPastDue": false}},
            "Metadata": {"sys": {"MethodName": "fn", "UtcNow": "2026-12-01T19:22:58.907293Z"}}}),
        )
        .unwrap();
        assert_eq!((e.ty(), e.source().to_string().as_str()), ("azure.timer.v1.fired", "timers/fn"));
        assert_eq!(e.id(), "inv-1");
        assert_eq!(e.subject(), Some("0 */5 * * * *"), "the schedule, as a timer subscription names it");
        assert!(e.time().is_some());
        assert_eq!(e.data(), Some(&Data::Json(json!({"Schedule": {"AdjustForDST": true}, "IsPastDue": false}))));
    }

    #[test]
    fn a_blob_as_text_or_bytes() {
        let b = function(json!({"type": "blobTrigger", "direction": "in", "name": "blob", "path": "uploads/{name}"}));
        let e = event(&b, json!({"Data": {"blob": "\"some text\""}, "Metadata": {"name": "\"a.txt\""}})).unwrap();
        assert_eq!((e.ty(), e.source().to_string().as_str()), ("azure.storage.blob.v1.written", "blobs/uploads"));
        assert_eq!(e.subject(), Some("a.txt"));
        assert_eq!(e.data(), Some(&Data::String("some text".into())));
        let e = event(&b, json!({"Data": {"blob": "AAH/"}, "Metadata": {"BlobTrigger": "\"uploads/b.bin\""}})).unwrap();
        assert_eq!(e.subject(), Some("uploads/b.bin"));
        assert_eq!(e.data(), Some(&Data::Binary(vec![0, 1, 255])));
    }

    #[test]
    fn event_grid_events_in_both_schemas() {
        let g = function(json!({"type": "eventGridTrigger", "direction": "in", "name": "event"}));
        let grid = json!({"id": "eg-1", "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a",
            "subject": "/blobServices/default/containers/c/blobs/f.txt", "eventType": "Microsoft.Storage.BlobCreated",
            "eventTime": "2017-06-26T18:41:00.9584103Z", "data": {"api": "PutBlob"}, "dataVersion": "1", "metadataVersion": "1"});
        let e = event(&g, json!({"Data": {"event": grid}})).unwrap();
        assert_eq!((e.id(), e.ty()), ("eg-1", "Microsoft.Storage.BlobCreated"));
        assert!(e.source().to_string().ends_with("storageAccounts/a"));
        assert_eq!(e.subject(), Some("/blobServices/default/containers/c/blobs/f.txt"));
        assert_eq!(e.data(), Some(&Data::Json(json!({"api": "PutBlob"}))));
        // As JSON text, the way the host encodes a value it does not see as an object.
        let e = event(&g, json!({"Data": {"event": grid.to_string()}})).unwrap();
        assert_eq!(e.id(), "eg-1");
        let cloud = json!({"specversion": "1.0", "id": "ce-1", "source": "/s", "type": "t", "data": {"n": 1}});
        let e = event(&g, json!({"Data": {"event": cloud}})).unwrap();
        assert_eq!((e.id(), e.ty()), ("ce-1", "t"));
        let err = event(&g, json!({"Data": {"event": {"id": "x"}}})).unwrap_err();
        assert!(err.message().contains("no `eventType`"), "{}", err.message());
    }

    #[test]
    fn other_triggers_and_settings() {
        let s = function(json!({"type": "serviceBusTrigger", "direction": "in", "name": "msg", "queueName": "q"}));
        let e = event(&s, json!({"Data": {"msg": "\"{\\\"a\\\":1}\""}})).unwrap();
        assert_eq!((e.ty(), e.source().to_string().as_str()), ("azure.functions.v1.serviceBusTrigger", "functions/fn"));
        assert_eq!(e.data(), Some(&Data::Json(json!({"a": 1}))));
        let settings = BTreeMap::from([("A".to_string(), "x".to_string())]);
        assert_eq!(resolve("%A%-%B%-%%-50%", &settings), "x-%B%-%%-50%");
    }
}
