//! Event delivery, standing in for Eventarc: `POST
//! /emulator/v1/projects/{project}/locations/{location}/events` takes one CloudEvent, in
//! structured mode (`content-type: application/cloudevents+json`) or binary mode (`ce-*`
//! headers, the body as data), and delivers it in binary mode, as Eventarc does, to each active
//! function of the project and location (`-`: any) whose `eventTrigger.eventType` is the
//! event's `type` and whose `eventFilters` all match. It answers 200 with
//! `{"deliveries": [{"function": NAME, "status": HTTP_STATUS}]}` (an empty list when nothing
//! matched), or 400 for an event that is not one.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::Shared;

/// A CloudEvent in its binary-mode form: attributes and the data bytes with their type.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    attributes: Map<String, Value>,
    content_type: Option<String>,
    data: Bytes,
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Characters a `ce-` header value must percent-encode (CloudEvents HTTP binding §3.1.3.2).
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse(headers: &HeaderMap, body: Bytes) -> Result<Event, ApiError> {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let structured = content_type.as_deref().is_some_and(|c| c.starts_with("application/cloudevents+json"));
    let event = if structured {
        let Value::Object(mut object) = serde_json::from_slice::<Value>(&body)
            .map_err(|e| ApiError::invalid(format!("the event is not valid JSON: {e}")))?
        else {
            return Err(ApiError::invalid("a structured CloudEvent is a JSON object"));
        };
        let data_type = object.get("datacontenttype").and_then(Value::as_str).map(str::to_string);
        let data = match (object.remove("data"), object.remove("data_base64")) {
            (Some(_), Some(_)) => return Err(ApiError::invalid("an event has data or data_base64, not both")),
            (None, Some(Value::String(b64))) => Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|e| ApiError::invalid(format!("data_base64: {e}")))?,
            ),
            (None, Some(_)) => return Err(ApiError::invalid("data_base64: must be a string")),
            (Some(Value::String(s)), None) if !data_type.as_deref().unwrap_or("application/json").contains("json") => {
                Bytes::from(s)
            }
            (Some(v), None) => Bytes::from(serde_json::to_vec(&v).expect("JSON")),
            (None, None) => Bytes::new(),
        };
        let content_type = data_type.or_else(|| (!data.is_empty()).then(|| "application/json".to_string()));
        object.remove("datacontenttype");
        Event { attributes: object, content_type, data }
    } else {
        let mut attributes = Map::new();
        for (name, value) in headers {
            if let Some(attr) = name.as_str().strip_prefix("ce-") {
                let value = value.to_str().map_err(|_| ApiError::invalid(format!("{name}: not text")))?;
                attributes.insert(attr.to_string(), percent_decode(value).into());
            }
        }
        Event { attributes, content_type, data: body }
    };
    for required in ["id", "source", "specversion", "type"] {
        if event.attributes.get(required).and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(ApiError::invalid(format!("the event has no `{required}` attribute")));
        }
    }
    Ok(event)
}

/// Eventarc's `match-path-pattern`: `*` one path segment, `**` any number of them.
fn path_matches(pattern: &str, value: &str) -> bool {
    fn go(p: &[&str], v: &[&str]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some(&"**"), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some(ps), Some(vs)) => segment(ps, vs) && go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    fn segment(p: &str, v: &str) -> bool {
        match p.split_once('*') {
            None => p == v,
            Some((pre, post)) => v.len() >= pre.len() + post.len() && v.starts_with(pre) && v.ends_with(post),
        }
    }
    let p: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let v: Vec<&str> = value.trim_matches('/').split('/').collect();
    go(&p, &v)
}

fn matches(trigger: &Value, event: &Event) -> bool {
    let ty = event.attributes.get("type").and_then(Value::as_str).unwrap_or("");
    if trigger["eventType"].as_str() != Some(ty) {
        return false;
    }
    trigger["eventFilters"].as_array().into_iter().flatten().all(|f| {
        let (Some(attr), Some(want)) = (f["attribute"].as_str(), f["value"].as_str()) else { return false };
        let have = match event.attributes.get(attr) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => return false,
        };
        match f["operator"].as_str().unwrap_or("") {
            "match-path-pattern" => path_matches(want, &have),
            _ => have == want,
        }
    })
}

pub(crate) async fn deliver(shared: &Arc<Shared>, p: &str, l: &str, headers: &HeaderMap, body: Bytes) -> Response {
    let event = match parse(headers, body) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let prefix =
        if l == "-" { format!("projects/{p}/locations/") } else { format!("projects/{p}/locations/{l}/functions/") };
    let targets: Vec<(String, String)> = {
        let state = shared.state.lock().unwrap();
        state
            .functions
            .iter()
            .filter(|(n, f)| n.starts_with(&prefix) && f.resource["state"] == "ACTIVE")
            .filter(|(_, f)| f.resource.get("eventTrigger").is_some_and(|t| matches(t, &event)))
            .map(|(n, f)| (n.clone(), f.service.uri()))
            .collect()
    };
    let mut deliveries = Vec::new();
    for (name, uri) in targets {
        let status = match send(shared, &uri, &event).await {
            Ok(status) => json!(status.as_u16()),
            Err(e) => json!(format!("not delivered: {e}")),
        };
        deliveries.push(json!({ "function": name, "status": status }));
    }
    (StatusCode::OK, axum::Json(json!({ "deliveries": deliveries }))).into_response()
}

async fn send(shared: &Shared, uri: &str, event: &Event) -> Result<StatusCode, String> {
    let mut request = Request::builder().method(Method::POST).uri(format!("{uri}/"));
    for (name, value) in &event.attributes {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let header =
            HeaderName::from_bytes(format!("ce-{name}").to_ascii_lowercase().as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_str(&percent_encode(&text)).map_err(|e| e.to_string())?;
        request = request.header(header, value);
    }
    if let Some(ct) = &event.content_type {
        request = request.header("content-type", ct);
    }
    request = request.header("user-agent", "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)");
    let request = request.body(axum::body::Body::from(event.data.clone())).map_err(|e| e.to_string())?;
    let response = shared.client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let _ = http_body_util::BodyExt::collect(response.into_body()).await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_parse() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/cloudevents+json"));
        let body = r#"{"specversion":"1.0","id":"1","source":"//x","type":"t","datacontenttype":"application/json","data":{"a":1}}"#;
        let e = parse(&h, Bytes::from(body)).unwrap();
        assert_eq!(e.data, Bytes::from(r#"{"a":1}"#));
        assert_eq!(e.content_type.as_deref(), Some("application/json"));
        let mut b = HeaderMap::new();
        for (k, v) in
            [("ce-specversion", "1.0"), ("ce-id", "2"), ("ce-source", "//y"), ("ce-type", "t"), ("ce-subject", "a%20b")]
        {
            b.insert(k, HeaderValue::from_static(v));
        }
        let e = parse(&b, Bytes::from_static(b"raw")).unwrap();
        assert_eq!(e.attributes["subject"], "a b");
        b.remove("ce-id");
        assert!(parse(&b, Bytes::new()).unwrap_err().message.contains("`id`"));
        assert_eq!(percent_encode("a b\"%"), "a%20b%22%25");
    }

    #[test]
    fn filters_match() {
        let event = Event {
            attributes: serde_json::from_value(json!({"type": "t", "bucket": "b", "subject": "objects/a/b.txt"}))
                .unwrap(),
            content_type: None,
            data: Bytes::new(),
        };
        assert!(matches(&json!({"eventType": "t", "eventFilters": [{"attribute": "bucket", "value": "b"}]}), &event));
        assert!(!matches(&json!({"eventType": "t", "eventFilters": [{"attribute": "bucket", "value": "c"}]}), &event));
        assert!(!matches(&json!({"eventType": "u"}), &event));
        let pattern = json!({"eventType": "t", "eventFilters": [{"attribute": "subject", "value": "objects/**/*.txt", "operator": "match-path-pattern"}]});
        assert!(matches(&pattern, &event));
        assert!(path_matches("objects/*", "objects/x") && !path_matches("objects/*", "objects/x/y"));
    }
}
