//! What Google answers, as portable values: API errors ([`status_error`]), a function's HTTP
//! answer ([`outcome`]) and Cloud Logging entries as [`Activation`]s ([`activations_of`]).
//!
//! Errors keep Google's status in their type (`Google.NOT_FOUND`): `NOT_FOUND` is not_found;
//! `INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `OUT_OF_RANGE` and `ALREADY_EXISTS` (the portable
//! taxonomy has no conflict kind) are bad_input; `PERMISSION_DENIED` and `UNAUTHENTICATED` are
//! unauthorized; `RESOURCE_EXHAUSTED` is throttled; `DEADLINE_EXCEEDED` is timeout; the rest
//! (`UNAVAILABLE`, `INTERNAL`, `ABORTED`, ...) is backend_unavailable.
//!
//! A function's entries in Cloud Logging (`resource.type="cloud_run_revision"`, the service
//! named after the function): its stdout/stderr lines (`jsonPayload.message` or `textPayload`,
//! `labels.execution_id`, `trace`), which the host writes as structured JSON
//! ([`crate::host::logs`]), and one request entry per request (`logName` ending
//! `run.googleapis.com%2Frequests`, `httpRequest.status`, `httpRequest.latency` such as
//! `"0.123s"`, `trace`). An activation is a request entry joined by trace to the lines of one
//! execution id; lines whose request entry is not (yet) there are a pending activation.

use std::collections::BTreeMap;

use faas_api::{Activation, ActivationStatus, Error, ErrorKind, InvokeMode, Payload};
use serde_json::Value;

/// The portable error of a Google status `code` (`NOT_FOUND`, ...) with `message`.
///
/// ```
/// use faas_api::ErrorKind;
/// use faas_runner_gcf::deploy::status_error;
/// let e = status_error("NOT_FOUND", "function hello does not exist");
/// assert_eq!((e.kind(), e.error_type()), (ErrorKind::NotFound, "Google.NOT_FOUND"));
/// assert_eq!(status_error("PERMISSION_DENIED", "no").kind(), ErrorKind::Unauthorized);
/// ```
pub fn status_error(code: &str, message: &str) -> Error {
    let kind = match code {
        "NOT_FOUND" => ErrorKind::NotFound,
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" | "ALREADY_EXISTS" => ErrorKind::BadInput,
        "PERMISSION_DENIED" | "UNAUTHENTICATED" => ErrorKind::Unauthorized,
        "RESOURCE_EXHAUSTED" => ErrorKind::Throttled,
        "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
        _ => ErrorKind::BackendUnavailable,
    };
    Error::new(kind, message.to_string()).with_type(format!("Google.{code}"))
}

/// The error of a Google API answer `status` with JSON error `body`
/// (`{"error": {"code", "message", "status"}}`), for `what`.
pub(crate) fn http_error(what: &str, status: u16, body: &[u8]) -> Error {
    let json: Value = serde_json::from_slice(body).unwrap_or_default();
    let error = &json["error"];
    if let Some(code) = error["status"].as_str() {
        let message = error["message"].as_str().unwrap_or_default();
        return status_error(code, &format!("{what}: {message}"));
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(500)]).trim().to_string();
    let text = if text.is_empty() { format!("HTTP status {status}") } else { format!("HTTP status {status}: {text}") };
    Error::new(ErrorKind::from_status(status), format!("{what}: {text}")).with_type(format!("Google.HTTP{status}"))
}

/// The portable error of an SDK error, for `what`.
pub(crate) fn google_error(what: &str, e: &google_cloud_gax::error::Error) -> Error {
    if let Some(status) = e.status() {
        return status_error(status.code.name(), &format!("{what}: {}", status.message));
    }
    if let Some(code) = e.http_status_code() {
        let body = e.http_payload().map(|b| b.to_vec()).unwrap_or_default();
        return http_error(what, code, &body);
    }
    if e.is_timeout() {
        return Error::timeout(format!("{what}: timed out")).with_type("Google.DEADLINE_EXCEEDED");
    }
    if e.is_authentication() {
        return Error::unauthorized(format!(
            "{what}: {e} (set GOOGLE_APPLICATION_CREDENTIALS, or run `gcloud auth application-default login`)"
        ))
        .with_type("Google.UNAUTHENTICATED");
    }
    Error::unavailable(format!("{what}: {}", chain(e))).with_type("Google.UNAVAILABLE")
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// The outcome of a function's HTTP answer: `status`, its `X-Google-Status` header, content
/// type and body. A 2xx is the reply; otherwise the portable error the host wrote in the body,
/// else one from the status: `X-Google-Status: crash` is a crash, `error` a function error, 504 a
/// timeout, 429 throttled, 413 too large, 401/403 unauthorized, 404 not found.
///
/// ```
/// use faas_api::ErrorKind;
/// use faas_runner_gcf::deploy::outcome;
/// let ok = outcome("hello", 200, None, Some("application/json"), b"{\"a\":1}".to_vec()).unwrap();
/// assert_eq!(ok.content_type(), Some("application/json"));
/// assert_eq!(outcome("hello", 504, None, None, b"upstream request timeout".to_vec()).unwrap_err().kind(), ErrorKind::Timeout);
/// assert_eq!(outcome("hello", 500, Some("crash"), None, b"".to_vec()).unwrap_err().kind(), ErrorKind::Crash);
/// ```
pub fn outcome(
    function: &str,
    status: u16,
    google_status: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<Payload, Error> {
    if (200..300).contains(&status) {
        return Ok(Payload::new(body, content_type.map(str::to_string)));
    }
    if let Some(e) = Error::from_json(&body) {
        return Err(e);
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(2000)]).trim().to_string();
    let text = if text.is_empty() { format!("HTTP status {status}") } else { text };
    let message = format!("`{function}` answered {status}: {text}");
    Err(match (google_status, status) {
        (Some("crash"), _) => Error::crash(message).with_type("Google.crash"),
        (Some("error"), _) => Error::function("FunctionError", message),
        (_, 504 | 408) => Error::timeout(message),
        (_, 429) => Error::throttled(message),
        (_, 413) => Error::payload_too_large(message),
        (_, 401 | 403) => Error::unauthorized(message),
        (_, 404) => Error::not_found(message),
        (_, 503) => Error::unavailable(message),
        (_, 500 | 502) => Error::crash(message),
        (_, s) => Error::new(ErrorKind::from_status(s), message),
    })
}

/// The trace id of a `trace` field (`projects/P/traces/ID`).
fn trace_id(entry: &Value) -> Option<&str> {
    let trace = entry["trace"].as_str()?;
    Some(trace.rsplit_once("/traces/").map_or(trace, |(_, id)| id)).filter(|t| !t.is_empty())
}

/// An RFC 3339 timestamp in milliseconds since the epoch.
fn millis(entry: &Value) -> u64 {
    entry["timestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis().max(0) as u64)
        .unwrap_or(0)
}

/// A duration such as `"0.123s"` in microseconds.
fn latency_us(text: &str) -> u64 {
    text.trim().strip_suffix('s').and_then(|s| s.parse::<f64>().ok()).map(|s| (s * 1e6).round() as u64).unwrap_or(0)
}

/// Whether `entry` is Cloud Run's request entry.
fn is_request(entry: &Value) -> bool {
    entry["logName"].as_str().is_some_and(|n| n.ends_with("run.googleapis.com%2Frequests"))
        || entry.get("httpRequest").is_some_and(|h| h.is_object())
}

/// The text of a line entry.
fn message(entry: &Value) -> Option<String> {
    if let Some(t) = entry["textPayload"].as_str() {
        return Some(t.trim_end_matches('\n').to_string());
    }
    let json = &entry["jsonPayload"];
    match &json["message"] {
        Value::String(s) => Some(s.clone()),
        Value::Null if json.is_object() => Some(json.to_string()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The activations of the faas function `function` in Cloud Logging `entries` (in any order),
/// newest first.
pub fn activations_of(function: &str, entries: &[Value]) -> Vec<Activation> {
    let mut entries: Vec<&Value> = entries.iter().collect();
    entries.sort_by_key(|e| millis(e));
    // Lines by execution id, in time order, with the trace they carry.
    let mut lines: BTreeMap<String, (Option<String>, u64, Vec<String>)> = BTreeMap::new();
    let mut by_trace: BTreeMap<String, String> = BTreeMap::new();
    for e in entries.iter().filter(|e| !is_request(e)) {
        let id = e["labels"]["execution_id"].as_str().map(str::to_string);
        let trace = trace_id(e).map(str::to_string);
        let Some(id) = id.or_else(|| trace.clone()) else { continue };
        let slot = lines.entry(id.clone()).or_insert_with(|| (None, millis(e), vec![]));
        if let Some(t) = trace {
            by_trace.entry(t.clone()).or_insert_with(|| id.clone());
            slot.0.get_or_insert(t);
        }
        if let Some(m) = message(e) {
            slot.2.push(m);
        }
    }
    let mut out = Vec::new();
    let mut joined = std::collections::BTreeSet::new();
    for e in entries.iter().filter(|e| is_request(e)) {
        let http = &e["httpRequest"];
        let status = http["status"].as_u64().unwrap_or(0) as u16;
        let trace = trace_id(e).map(str::to_string);
        let execution = e["labels"]["execution_id"]
            .as_str()
            .map(str::to_string)
            .or_else(|| trace.as_ref().and_then(|t| by_trace.get(t).cloned()));
        let id = execution
            .clone()
            .or_else(|| trace.clone())
            .or_else(|| e["insertId"].as_str().map(str::to_string))
            .unwrap_or_default();
        let logs = execution.as_ref().and_then(|x| lines.get(x)).map(|l| l.2.clone()).unwrap_or_default();
        if let Some(x) = execution {
            joined.insert(x);
        }
        let duration_us = http["latency"].as_str().map(latency_us).unwrap_or(0);
        let end_ms = millis(e);
        let (status_, error) = match status {
            200..=299 => (ActivationStatus::Success, None),
            0 => (ActivationStatus::Pending, None),
            s => {
                let e = outcome(function, s, None, None, vec![]).err();
                (ActivationStatus::Error, e)
            }
        };
        out.push(Activation {
            id,
            function: function.to_string(),
            // Cloud Run stamps the request entry when the request arrived (UNCONFIRMED: it may be
            // the time the answer was sent).
            start_ms: end_ms,
            duration_us,
            billed_us: billed_us(duration_us),
            cause: None,
            cold: false,
            status: status_,
            error,
            result_size: http["responseSize"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| http["responseSize"].as_u64().map(|n| n as usize))
                .unwrap_or(0),
            mode: InvokeMode::Sync,
            attempt: 1,
            logs,
        });
    }
    for (id, (_, start_ms, logs)) in lines {
        if joined.contains(&id) {
            continue;
        }
        out.push(Activation {
            id,
            function: function.to_string(),
            start_ms,
            duration_us: 0,
            billed_us: 0,
            cause: None,
            cold: false,
            status: ActivationStatus::Pending,
            error: None,
            result_size: 0,
            mode: InvokeMode::Sync,
            attempt: 1,
            logs,
        });
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.start_ms));
    out
}

/// What Cloud Functions bills for a request that took `duration_us`: its time rounded up to the
/// next 100 ms (the pricing page's rounding for Cloud Functions and Cloud Run request billing;
/// UNCONFIRMED whether 2nd gen bills the latency the request log shows or the instance's busy
/// time, which differ by the front's own overhead: we bill the logged latency).
///
/// ```
/// use faas_runner_gcf::deploy::billed_us;
/// assert_eq!(billed_us(1), 100_000);
/// assert_eq!(billed_us(100_000), 100_000);
/// assert_eq!(billed_us(100_001), 200_000);
/// assert_eq!(billed_us(0), 0); // nothing ran
/// ```
pub fn billed_us(duration_us: u64) -> u64 {
    duration_us.div_ceil(100_000) * 100_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(ts: &str, exec: &str, trace: &str, msg: &str) -> Value {
        json!({
            "insertId": format!("{exec}-{ts}"),
            "logName": "projects/p/logs/run.googleapis.com%2Fstdout",
            "resource": {"type": "cloud_run_revision", "labels": {"service_name": "hello"}},
            "timestamp": ts, "severity": "INFO",
            "jsonPayload": {"message": msg},
            "labels": {"execution_id": exec, "instanceId": "00f4"},
            "trace": format!("projects/p/traces/{trace}"),
        })
    }

    fn request(ts: &str, trace: &str, status: u16, latency: &str) -> Value {
        json!({
            "insertId": format!("req-{trace}"),
            "logName": "projects/p/logs/run.googleapis.com%2Frequests",
            "resource": {"type": "cloud_run_revision", "labels": {"service_name": "hello"}},
            "timestamp": ts, "severity": if status < 400 { "INFO" } else { "ERROR" },
            "httpRequest": {"requestMethod": "POST", "status": status, "latency": latency, "responseSize": "17"},
            "trace": format!("projects/p/traces/{trace}"),
        })
    }

    #[test]
    fn entries_become_activations_joined_by_trace() {
        let entries = vec![
            request("2026-01-02T03:04:05.100Z", "t1", 200, "0.250s"),
            line("2026-01-02T03:04:05.200Z", "e1", "t1", "hello Ada"),
            line("2026-01-02T03:04:05.150Z", "e1", "t1", "starting"),
            request("2026-01-02T03:04:06.000Z", "t2", 504, "30.001s"),
            line("2026-01-02T03:04:06.010Z", "e2", "t2", "slow"),
            json!({"timestamp": "2026-01-02T03:04:07.000Z", "textPayload": "running\n",
                   "labels": {"execution_id": "e3"}, "trace": "projects/p/traces/t3"}),
        ];
        let acts = activations_of("hello", &entries);
        let ids: Vec<&str> = acts.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["e3", "e2", "e1"]);
        let e1 = &acts[2];
        assert_eq!((e1.status, e1.duration_us, e1.result_size), (ActivationStatus::Success, 250_000, 17));
        assert_eq!(e1.logs, ["starting", "hello Ada"]);
        assert_eq!(e1.start_ms, 1_767_323_045_100);
        let e2 = &acts[1];
        assert_eq!(
            (e2.status, e2.error.as_ref().map(Error::kind)),
            (ActivationStatus::Error, Some(ErrorKind::Timeout))
        );
        assert_eq!(e2.logs, ["slow"]);
        let e3 = &acts[0];
        assert_eq!((e3.status, e3.logs.clone()), (ActivationStatus::Pending, vec!["running".to_string()]));
    }

    #[test]
    fn google_statuses_map_to_portable_kinds() {
        for (code, kind) in [
            ("NOT_FOUND", ErrorKind::NotFound),
            ("ALREADY_EXISTS", ErrorKind::BadInput),
            ("INVALID_ARGUMENT", ErrorKind::BadInput),
            ("FAILED_PRECONDITION", ErrorKind::BadInput),
            ("PERMISSION_DENIED", ErrorKind::Unauthorized),
            ("UNAUTHENTICATED", ErrorKind::Unauthorized),
            ("RESOURCE_EXHAUSTED", ErrorKind::Throttled),
            ("UNAVAILABLE", ErrorKind::BackendUnavailable),
            ("DEADLINE_EXCEEDED", ErrorKind::Timeout),
        ] {
            let e = status_error(code, "m");
            assert_eq!((e.kind(), e.error_type()), (kind, format!("Google.{code}").as_str()), "{code}");
        }
        let body = br#"{"error":{"code":403,"message":"Permission 'x' denied","status":"PERMISSION_DENIED"}}"#;
        let e = http_error("listing", 403, body);
        assert_eq!((e.kind(), e.error_type()), (ErrorKind::Unauthorized, "Google.PERMISSION_DENIED"));
        assert!(e.message().contains("listing: Permission 'x' denied"), "{e}");
        assert_eq!(http_error("x", 503, b"down").kind(), ErrorKind::BackendUnavailable);
    }

    #[test]
    fn function_answers_map_to_outcomes() {
        let ours = Error::function("Oops", "bad thing");
        assert_eq!(outcome("f", 500, Some("error"), None, ours.to_json()).unwrap_err(), ours);
        let kind = |s, g, b: &[u8]| outcome("f", s, g, None, b.to_vec()).unwrap_err().kind();
        assert_eq!(kind(500, Some("error"), b"x"), ErrorKind::Function);
        assert_eq!(kind(500, Some("crash"), b"x"), ErrorKind::Crash);
        assert_eq!(kind(429, None, b"Rate exceeded."), ErrorKind::Throttled);
        assert_eq!(kind(413, None, b""), ErrorKind::PayloadTooLarge);
        assert_eq!(kind(403, None, b"<html>Forbidden</html>"), ErrorKind::Unauthorized);
        assert_eq!(latency_us("1.5s"), 1_500_000);
    }
}
