//! OpenWhisk activation records (apache/openwhisk `WhiskActivation.scala`, `ActivationResult.scala`)
//! as portable [`Activation`]s and results.
//!
//! A record's `response.status` is one of `success`, `application error` (the action answered
//! `{"error": ...}`), `action developer error` (the action broke the interface: no result, a
//! result that is no object, a crash, a timeout) and `whisk internal error`. The first two are the
//! function's; the portable error inside a faas action's `{"error": ...}` is exact.

use faas_api::{Activation, ActivationStatus, Error, InvokeMode, Payload};
use serde_json::Value;

use crate::wire;

/// The outcome a finished record says: the result's payload, or the error.
pub(crate) fn outcome(function: &str, record: &Value) -> Result<Payload, Error> {
    let response = &record["response"];
    let result = serde_json::to_vec(&response["result"]).unwrap_or_default();
    let status = response["status"].as_str().unwrap_or_default();
    match status {
        "success" => wire::payload_of_result(&result)
            .ok_or_else(|| Error::crash(format!("`{function}` answered a result faas cannot read"))),
        "application error" => {
            Err(wire::error_of_result(&result).unwrap_or_else(|| Error::function("ActionError", preview(&result))))
        }
        _ => Err(platform_error(function, status, &response["result"])),
    }
}

/// The error of a developer or internal error: its message kept, timeouts as timeouts.
fn platform_error(function: &str, status: &str, result: &Value) -> Error {
    let message = match &result["error"] {
        Value::String(s) => s.clone(),
        Value::Null => preview(&serde_json::to_vec(result).unwrap_or_default()),
        other => other.to_string(),
    };
    let text = format!("`{function}` failed on OpenWhisk ({status}): {message}");
    match status {
        // The invoker's words when it destroys a container at the action's timeout
        // (`Messages.timedoutActivation`: "The action exceeded its time limits of N milliseconds.").
        _ if message.contains("exceeded its time limit") => Error::timeout(text).with_type("OpenWhisk.Timeout"),
        "whisk internal error" => Error::unavailable(text).with_type("OpenWhisk.InternalError"),
        _ => Error::crash(text).with_type("OpenWhisk.DeveloperError"),
    }
}

fn preview(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).to_string()
}

/// The value of annotation `key` of a record.
fn annotation<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    record["annotations"].as_array()?.iter().find(|a| a["key"] == key).map(|a| &a["value"])
}

/// A log line without OpenWhisk's `<time> stdout: ` / `<time> stderr: ` prefix.
///
/// ```
/// # use faas_runner_openwhisk::deploy::log_message;
/// assert_eq!(log_message("2024-05-02T16:53:47.589Z stdout: hello"), "hello");
/// assert_eq!(log_message("2024-05-02T16:53:47.589Z   stderr: oops"), "oops");
/// assert_eq!(log_message("no prefix here"), "no prefix here");
/// ```
pub fn log_message(line: &str) -> &str {
    let Some((time, rest)) = line.split_once(' ') else { return line };
    if !time.contains('T') || !time.ends_with('Z') {
        return line;
    }
    let rest = rest.trim_start();
    rest.strip_prefix("stdout: ")
        .or_else(|| rest.strip_prefix("stderr: "))
        .or_else(|| rest.strip_prefix("stdout:"))
        .or_else(|| rest.strip_prefix("stderr:"))
        .unwrap_or(line)
}

/// The portable activation of a record of the faas function `function`.
pub(crate) fn activation(function: &str, record: &Value) -> Activation {
    let response = &record["response"];
    let finished = record.get("end").is_some_and(|e| e.as_u64().unwrap_or(0) > 0) && !response.is_null();
    let (status, error) = if !finished {
        (ActivationStatus::Pending, None)
    } else {
        match outcome(function, record) {
            Ok(_) => (ActivationStatus::Success, None),
            Err(e) => (ActivationStatus::Error, Some(e)),
        }
    };
    let duration_us = record["duration"].as_u64().unwrap_or(0) * 1000;
    Activation {
        id: record["activationId"].as_str().unwrap_or_default().to_string(),
        function: function.to_string(),
        start_ms: record["start"].as_u64().unwrap_or(0),
        duration_us,
        // The record's `duration` is what a provider running OpenWhisk bills (in ms).
        billed_us: duration_us,
        cause: record["cause"].as_str().map(str::to_string),
        cold: annotation(record, "initTime").is_some(),
        status,
        error,
        result_size: response["size"].as_u64().map(|s| s as usize).unwrap_or_else(|| {
            if response["result"].is_null() {
                0
            } else {
                response["result"].to_string().len()
            }
        }),
        mode: InvokeMode::Sync,
        attempt: 1,
        logs: record["logs"]
            .as_array()
            .map(|lines| lines.iter().filter_map(Value::as_str).map(|l| log_message(l).to_string()).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faas_api::ErrorKind;
    use serde_json::json;

    fn record(status: &str, result: Value) -> Value {
        json!({"activationId": "a1", "name": "hello", "start": 1000, "end": 1003, "duration": 3,
            "response": {"status": status, "success": status == "success", "result": result},
            "logs": ["2024-05-02T16:53:47.589Z stdout: hi"],
            "annotations": [{"key": "initTime", "value": 12}, {"key": "waitTime", "value": 4}]})
    }

    #[test]
    fn records_map_to_portable_activations_and_errors() {
        let ok = activation("hello", &record("success", json!({"greeting": "hi"})));
        assert_eq!((ok.id.as_str(), ok.start_ms, ok.duration_us, ok.cold), ("a1", 1000, 3000, true));
        assert_eq!((ok.status, ok.logs.clone()), (ActivationStatus::Success, vec!["hi".to_string()]));
        let app =
            record("application error", json!({"error": {"kind": "function", "errorType": "E", "errorMessage": "m"}}));
        assert_eq!(activation("hello", &app).error, Some(Error::function("E", "m")));
        let slow = record(
            "action developer error",
            json!({"error": "The action exceeded its time limits of 100 milliseconds."}),
        );
        assert_eq!(activation("hello", &slow).error.unwrap().kind(), ErrorKind::Timeout);
        let broke =
            record("action developer error", json!({"error": "The action did not return a dictionary or array."}));
        let e = activation("hello", &broke).error.unwrap();
        assert_eq!((e.kind(), e.error_type()), (ErrorKind::Crash, "OpenWhisk.DeveloperError"));
        assert!(e.message().contains("did not return a dictionary"), "{e}");
        let running = json!({"activationId": "a2", "start": 5});
        assert_eq!(activation("hello", &running).status, ActivationStatus::Pending);
    }
}
