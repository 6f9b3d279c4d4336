//! A slice of CloudWatch Logs on the emulator's port: `FilterLogEvents` (JSON 1.1, `POST /` with
//! `X-Amz-Target: Logs_20140328.FilterLogEvents`) over log group `/aws/lambda/<name>`, built from the
//! invocation records, so aws-sdk-cloudwatchlogs pointed at the emulator can read function logs.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::control::read_body;
use crate::Shared;

const MAX_EVENTS: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterInput {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    filter_pattern: Option<String>,
    limit: Option<usize>,
    next_token: Option<String>,
}

fn logs_error(status: StatusCode, name: &str, message: &str) -> Response {
    let body = serde_json::to_vec(&json!({ "__type": name, "message": message })).unwrap_or_default();
    (status, [("content-type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", name)], body).into_response()
}

/// Terms of a filter pattern: bare words or `"quoted phrases"`, all of which must occur in a message.
fn pattern_terms(pattern: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut rest = pattern.trim();
    while !rest.is_empty() {
        if let Some(stripped) = rest.strip_prefix('"') {
            let end = stripped.find('"').unwrap_or(stripped.len());
            terms.push(stripped[..end].to_string());
            rest = stripped.get(end + 1..).unwrap_or("").trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            terms.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    terms.retain(|t| !t.is_empty());
    terms
}

/// `POST /`: the CloudWatch Logs JSON 1.1 entry point (only FilterLogEvents is served).
pub(crate) async fn logs_api(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    if target != "Logs_20140328.FilterLogEvents" {
        return logs_error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("Operation '{target}' is not served by this emulator (only Logs_20140328.FilterLogEvents)"),
        );
    }
    let bytes = match read_body(&headers, body, 64 * 1024, "FilterLogEvents").await {
        Ok(b) => b,
        Err(e) => return logs_error(StatusCode::BAD_REQUEST, "InvalidParameterException", &e.message),
    };
    let input: FilterInput = match serde_json::from_slice(&bytes) {
        Ok(i) => i,
        Err(e) => return logs_error(StatusCode::BAD_REQUEST, "SerializationException", &e.to_string()),
    };
    let group = input.log_group_name.or(input.log_group_identifier).unwrap_or_default();
    let Some(name) = group.strip_prefix("/aws/lambda/") else {
        return logs_error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "The specified log group does not exist.",
        );
    };
    let exists =
        shared.functions.lock().unwrap().contains_key(name) || shared.records.lock().unwrap().contains_key(name);
    if !exists {
        return logs_error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "The specified log group does not exist.",
        );
    }
    let terms = pattern_terms(input.filter_pattern.as_deref().unwrap_or(""));
    let limit = input.limit.unwrap_or(MAX_EVENTS).clamp(1, MAX_EVENTS);
    let skip: usize = input.next_token.as_deref().and_then(|t| t.parse().ok()).unwrap_or(0);
    let mut events = Vec::new();
    let mut index = 0usize;
    let mut more = false;
    for record in crate::invoke::records_of(&shared, name) {
        let ts = record.started_at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
        if input.start_time.is_some_and(|s| ts < s) || input.end_time.is_some_and(|e| ts > e) {
            continue;
        }
        let stream = format!(
            "{}/[$LATEST]{}",
            chrono::DateTime::<chrono::Utc>::from(record.started_at).format("%Y/%m/%d"),
            record.request_id.replace('-', "")
        );
        for line in record.log.lines() {
            if !terms.iter().all(|t| line.contains(t.as_str())) {
                continue;
            }
            index += 1;
            if index <= skip {
                continue;
            }
            if events.len() == limit {
                more = true;
                break;
            }
            events.push(json!({
                "logStreamName": stream,
                "timestamp": ts,
                "message": format!("{line}\n"),
                "ingestionTime": ts,
                "eventId": format!("{ts}{index:08}"),
            }));
        }
        if more {
            break;
        }
    }
    let mut body = json!({ "events": events, "searchedLogStreams": [] });
    if more {
        body["nextToken"] = json!((skip + limit).to_string());
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    (StatusCode::OK, [("content-type", "application/x-amz-json-1.1")], bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::pattern_terms;

    #[test]
    fn filter_pattern_terms() {
        assert_eq!(pattern_terms(r#"START "Version: $LATEST" x"#), vec!["START", "Version: $LATEST", "x"]);
        assert!(pattern_terms("  ").is_empty());
    }
}
