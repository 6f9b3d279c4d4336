//! The gateway management API's subscription input: a JSON body deserialized (with the offending
//! path, as `management::json_body` does) into `SubscriptionRequest` and validated into a
//! `Subscription`; and filters on their own (`Filter::from_json`).
//!
//! Invariants, besides "no panic":
//! - an error is a 400 that says something, and its field (when it names one) is a path into the
//!   request: a top-level member of the subscription shape;
//! - a valid subscription survives its own round trips: `to_request().validate()` gives it back,
//!   its JSON form deserializes to it, each filter's `to_json` parses to the same filter;
//! - `matches` agrees with its definition (source, types, every filter) on a few events;
//! - a filter deeper than `MAX_DEPTH` is refused.
#![no_main]

use arbitrary::{Result, Unstructured};
use faas_api::cloudevents::{self, AttributesReader, EventBuilder};
use faas_fuzz::{json_value, pick_string, JsonShape};
use faas_gateway::filter::{Filter, MAX_DEPTH};
use faas_gateway::subscription::{Subscription, SubscriptionRequest};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const TOP: &[&str] =
    &["id", "origin", "source", "types", "config", "filters", "sink", "protocol", "protocolsettings", "delivery"];

const KEYS: &[&str] = &[
    "exact",
    "prefix",
    "suffix",
    "all",
    "any",
    "not",
    "sql",
    "type",
    "source",
    "subject",
    "id",
    "time",
    "myext",
    "Bad",
    "method",
    "headers",
    "retries",
    "backoffBase",
    "backoffMax",
    "attemptTimeout",
    "retryAfterMax",
    "deadletter",
    "x-api-key",
    "content-type",
    "ce-id",
];

const STRINGS: &[&str] = &[
    "function:billing",
    "function:",
    "function:Bad Name",
    "https://example.com/hook",
    "http://127.0.0.1:8080/x?y#z",
    "ftp://example.com",
    "HTTP",
    "MQTT",
    "POST",
    "put",
    "com.example.order.created",
    "/shop",
    "eu/",
    "",
    "10s",
    "0s",
    "25h",
    "86400000ms",
    "200ms",
    "api",
    "config",
];

fn shape() -> JsonShape<'static> {
    JsonShape { keys: KEYS, strings: STRINGS, max_depth: 5 }
}

/// A filter expression, nested up to `depth` (sometimes past `MAX_DEPTH`).
fn filter(u: &mut Unstructured<'_>, depth: usize) -> Result<Value> {
    let dialect = if depth > MAX_DEPTH + 2 { u.int_in_range(0..=2)? } else { u.int_in_range(0..=7)? };
    let mut obj = Map::new();
    match dialect {
        0..=2 => {
            let mut attrs = Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                attrs.insert(pick_string(u, KEYS)?, Value::String(pick_string(u, STRINGS)?));
            }
            obj.insert(["exact", "prefix", "suffix"][dialect as usize].into(), Value::Object(attrs));
        }
        3 | 4 => {
            let mut items = Vec::new();
            for _ in 0..u.int_in_range(0..=3)? {
                items.push(filter(u, depth + 1)?);
            }
            obj.insert(if dialect == 3 { "all" } else { "any" }.into(), Value::Array(items));
        }
        5 => {
            obj.insert("not".into(), filter(u, depth + 1)?);
        }
        6 => {
            // A deep chain of `not`, around the depth limit.
            let mut f = filter(u, MAX_DEPTH + 3)?;
            for _ in 0..u.int_in_range(MAX_DEPTH - 2..=MAX_DEPTH + 2)? {
                let mut o = Map::new();
                o.insert("not".into(), f);
                f = Value::Object(o);
            }
            return Ok(f);
        }
        _ => return json_value(u, &shape(), 3),
    }
    if u.ratio(1, 10)? {
        obj.insert(pick_string(u, KEYS)?, json_value(u, &shape(), 4)?);
    }
    Ok(Value::Object(obj))
}

fn request(u: &mut Unstructured<'_>) -> Result<Value> {
    let mut obj = Map::new();
    if u.ratio(9, 10)? {
        obj.insert("sink".into(), Value::String(pick_string(u, STRINGS)?));
    }
    for _ in 0..u.int_in_range(0..=6)? {
        let key = pick_string(u, TOP)?;
        let value = match key.as_str() {
            "filters" => {
                let mut items = Vec::new();
                for _ in 0..u.int_in_range(0..=3)? {
                    items.push(filter(u, 1)?);
                }
                Value::Array(items)
            }
            "types" => Value::Array(
                (0..u.int_in_range(0..=3)?)
                    .map(|_| pick_string(u, STRINGS).map(Value::String))
                    .collect::<Result<_>>()?,
            ),
            "protocolsettings" | "delivery" | "config" => {
                let mut o = Map::new();
                for _ in 0..u.int_in_range(0..=3)? {
                    let k = pick_string(u, KEYS)?;
                    let v = if k == "headers" {
                        let mut h = Map::new();
                        h.insert(pick_string(u, KEYS)?, Value::String(pick_string(u, STRINGS)?));
                        Value::Object(h)
                    } else if k == "retries" {
                        Value::from(u.int_in_range(-2i64..=200)?)
                    } else if u.ratio(3, 4)? {
                        Value::String(pick_string(u, STRINGS)?)
                    } else {
                        json_value(u, &shape(), 3)?
                    };
                    o.insert(k, v);
                }
                Value::Object(o)
            }
            _ if u.ratio(3, 4)? => Value::String(pick_string(u, STRINGS)?),
            _ => json_value(u, &shape(), 2)?,
        };
        obj.insert(key, value);
    }
    Ok(Value::Object(obj))
}

fn depth_of(f: &Filter) -> usize {
    match f {
        Filter::Exact(_) | Filter::Prefix(_) | Filter::Suffix(_) => 1,
        Filter::All(v) | Filter::Any(v) => 1 + v.iter().map(depth_of).max().unwrap_or(0),
        Filter::Not(f) => 1 + depth_of(f),
    }
}

fn events() -> Vec<cloudevents::Event> {
    let base = || cloudevents::EventBuilderV10::new().id("1").source("/shop").ty("com.example.order.created");
    vec![
        base().build().unwrap(),
        base().subject("eu/42").extension("myext", "api").time("2018-04-05T17:31:00Z").build().unwrap(),
        base().source("https://example.com/hook").ty("HTTP").extension("myext", 5i64).build().unwrap(),
    ]
}

fn check_subscription(sub: &Subscription) {
    let again = sub.to_request().validate(sub.id.clone()).expect("a valid subscription's request validates");
    assert_eq!(&again, sub, "to_request().validate() changed the subscription");
    let json = serde_json::to_value(sub).unwrap();
    let back: Subscription = serde_json::from_value(json.clone()).expect("its JSON form deserializes");
    assert_eq!(&back, sub, "JSON round trip changed the subscription: {json}");
    sub.sink().expect("a valid subscription's sink parses");
    for f in &sub.filters {
        assert_eq!(Filter::from_json(&f.to_json()).as_ref(), Ok(f), "filter round trip");
        assert!(depth_of(f) <= MAX_DEPTH, "accepted a filter {} deep", depth_of(f));
    }
    for event in events() {
        let by_definition = sub.source.as_ref().is_none_or(|s| event.source().as_str() == s)
            && (sub.types.is_empty() || sub.types.iter().any(|t| t == event.ty()))
            && sub.filters.iter().all(|f| f.matches(&event));
        assert_eq!(sub.matches(&event), by_definition);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(mode) = u.int_in_range(0..=3u8) else { return };
    let json = match mode {
        0 => match serde_json::from_slice::<Value>(u.take_rest()) {
            Ok(v) => v,
            Err(_) => return,
        },
        1 => {
            // A filter on its own.
            let Ok(value) = filter(&mut u, 1) else { return };
            match Filter::from_json(&value) {
                Ok(f) => {
                    assert_eq!(Filter::from_json(&f.to_json()).as_ref(), Ok(&f));
                    assert!(depth_of(&f) <= MAX_DEPTH);
                    for event in events() {
                        let _ = f.matches(&event);
                    }
                }
                Err(e) => assert!(!e.message.is_empty(), "filter error without a message: {e:?}"),
            }
            return;
        }
        _ => match request(&mut u) {
            Ok(v) => v,
            Err(_) => return,
        },
    };
    if !json.is_object() {
        return; // json_body answers "expected a JSON subscription object" before deserializing.
    }
    let request: SubscriptionRequest = match serde_path_to_error::deserialize(json.clone()) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.inner().to_string().is_empty());
            return;
        }
    };
    match request.validate("s1".into()) {
        Ok(sub) => {
            assert_eq!(sub.id, "s1");
            check_subscription(&sub);
        }
        Err(e) => {
            assert_eq!(e.status, http::StatusCode::BAD_REQUEST, "{e}");
            assert!(!e.message.trim().is_empty(), "error without a message: {e:?}");
            if let Some(field) = &e.field {
                let top = field.split(['.', '[']).next().unwrap_or_default();
                assert!(TOP.contains(&top), "error names field `{field}`, not a member of a subscription: {e}");
            }
        }
    }
});
