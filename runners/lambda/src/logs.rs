//! Activation records from a Lambda function's CloudWatch Logs.
//!
//! Lambda writes every invocation attempt to the log group `/aws/lambda/<function>` as a block of
//! lines: `START RequestId: <id> Version: $LATEST`, whatever the function printed, `END RequestId:
//! <id>`, and `REPORT RequestId: <id>\tDuration: 1.23 ms\t...\tInit Duration: 4.56 ms` (the last field
//! only on a cold start). The platform adds lines of its own for failures: `<time> <id> Task timed out
//! after 3.00 seconds`, `RequestId: <id> Error: Runtime exited ...` then `Runtime.ExitError`. A function
//! error reported through the Runtime API's `/error` leaves no platform line; the faas host prints one
//! itself, in the format of AWS's own Node.js runtime (`<time>\t<id>\tERROR\tInvoke Error \t<json>`), so
//! the error type and message can be read back here (see [`invoke_error_line`]).
//!
//! [`parse`] turns such log events into portable [`Activation`] records; `LambdaRunner::activations`
//! reads the events with CloudWatch Logs `FilterLogEvents`. Asynchronous retries keep the request id,
//! so each START of the same id is one more attempt.
//!
//! What Lambda's logs do not say is left at a neutral value: the invoke mode is `Sync` for a single
//! attempt and `Async` when an id was attempted more than once, and `result_size` is 0.

use std::collections::BTreeMap;

use faas_api::{Activation, ActivationStatus, Error, InvokeMode};

/// One CloudWatch Logs event, as FilterLogEvents returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// The log stream (one per execution environment on AWS).
    pub stream: String,
    /// Event time, Unix epoch milliseconds.
    pub timestamp_ms: u64,
    /// The line (a trailing newline is ignored).
    pub message: String,
}

/// The marker the faas Lambda host prints on a function error (AWS's Node.js runtime uses the same).
const INVOKE_ERROR: &str = "\tERROR\tInvoke Error \t";

/// The stderr line the faas Lambda host prints when an invocation ends with `error`: the format of
/// AWS's Node.js runtime, so CloudWatch Logs (and tools reading it) see the error.
///
/// ```
/// use faas_runner_lambda::logs::invoke_error_line;
/// let line = invoke_error_line("2026-11-22T10:00:00.000Z", "req-1", &faas_api::Error::function("Nope", "no"));
/// assert!(line.starts_with("2026-11-22T10:00:00.000Z\treq-1\tERROR\tInvoke Error \t{"), "{line}");
/// assert!(line.contains(r#""errorType":"Nope""#) && line.contains(r#""errorMessage":"no""#), "{line}");
/// ```
pub fn invoke_error_line(time: &str, request_id: &str, error: &Error) -> String {
    let body = serde_json::json!({
        "errorType": error.error_type(),
        "errorMessage": error.message(),
        "kind": error.kind().as_str(),
    });
    format!("{time}\t{request_id}{INVOKE_ERROR}{body}")
}

/// An attempt being read.
struct Open {
    id: String,
    start_ms: u64,
    logs: Vec<String>,
    error: Option<Error>,
}

/// Parses log events (in any order across streams, in time order within a stream) of function
/// `function` into activation records, oldest first. An attempt without its END/REPORT yet is
/// `Pending`; lines outside START…END are ignored.
///
/// ```
/// use faas_runner_lambda::logs::{parse, LogEvent};
/// let ev = |t, m: &str| LogEvent { stream: "s".into(), timestamp_ms: t, message: m.into() };
/// let acts = parse("hello", vec![
///     ev(10, "START RequestId: r1 Version: $LATEST"),
///     ev(11, "hi there"),
///     ev(12, "END RequestId: r1"),
///     ev(12, "REPORT RequestId: r1\tDuration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 9 MB\tInit Duration: 3.00 ms"),
/// ]);
/// assert_eq!(acts.len(), 1);
/// assert_eq!(acts[0].id, "r1");
/// assert_eq!(acts[0].logs, vec!["hi there".to_string()]);
/// assert_eq!(acts[0].duration_us, 1500);
/// assert_eq!(acts[0].billed_us, 2000); // REPORT's `Billed Duration`
/// assert!(acts[0].cold);
/// assert_eq!(acts[0].status, faas_api::ActivationStatus::Success);
/// ```
pub fn parse(function: &str, events: Vec<LogEvent>) -> Vec<Activation> {
    let mut streams: BTreeMap<String, Vec<LogEvent>> = BTreeMap::new();
    for e in events {
        streams.entry(e.stream.clone()).or_default().push(e);
    }
    let mut out: Vec<Activation> = Vec::new();
    for events in streams.into_values() {
        let mut open: Option<Open> = None;
        for event in events {
            for line in event.message.lines() {
                if let Some(rest) = line.strip_prefix("START RequestId: ") {
                    if let Some(previous) = open.take() {
                        // A START before the previous END: the environment died mid-invocation.
                        out.push(finish(function, previous, None, false));
                    }
                    let id = rest.split_whitespace().next().unwrap_or_default().to_string();
                    open = Some(Open { id, start_ms: event.timestamp_ms, logs: vec![], error: None });
                } else if let Some(rest) = line.strip_prefix("END RequestId: ") {
                    if open.as_ref().is_some_and(|o| o.id == rest.trim()) {
                        // Keep it open for the REPORT line that follows.
                        continue;
                    }
                } else if let Some(rest) = line.strip_prefix("REPORT RequestId: ") {
                    let id = rest.split('\t').next().unwrap_or_default().trim();
                    if let Some(o) = open.take_if(|o| o.id == id) {
                        let duration = field_ms(rest, "Duration: ");
                        let billed = field_ms(rest, "Billed Duration: ");
                        let cold = field_ms(rest, "Init Duration: ").is_some();
                        let mut a = finish(function, o, duration, cold);
                        // Lambda bills whole milliseconds; a REPORT without its figure is rounded so.
                        a.billed_us = match billed {
                            Some(ms) => (ms * 1000.0).round() as u64,
                            // Saturating: a damaged REPORT can claim any duration.
                            None => a.duration_us.div_ceil(1000).saturating_mul(1000),
                        };
                        out.push(a);
                    }
                } else if let Some(o) = open.as_mut() {
                    if o.error.is_none() {
                        o.error = platform_error(&o.id, line);
                    }
                    if !is_platform_line(line) {
                        o.logs.push(line.to_string());
                    }
                }
            }
        }
        if let Some(o) = open {
            let mut a = finish(function, o, None, false);
            a.status = ActivationStatus::Pending;
            a.error = None;
            out.push(a);
        }
    }
    out.sort_by_key(|a| a.start_ms);
    let mut attempts: BTreeMap<String, u32> = BTreeMap::new();
    for a in &mut out {
        let n = attempts.entry(a.id.clone()).or_insert(0);
        *n += 1;
        a.attempt = *n;
    }
    for a in &mut out {
        if attempts.get(&a.id).is_some_and(|n| *n > 1) {
            a.mode = InvokeMode::Async;
        }
    }
    out
}

fn finish(function: &str, o: Open, duration_ms: Option<f64>, cold: bool) -> Activation {
    let status = if o.error.is_some() { ActivationStatus::Error } else { ActivationStatus::Success };
    Activation {
        id: o.id,
        function: function.to_string(),
        start_ms: o.start_ms,
        duration_us: duration_ms.map(|ms| (ms * 1000.0).round() as u64).unwrap_or(0),
        billed_us: 0,
        cause: None,
        cold,
        status,
        error: o.error,
        result_size: 0,
        mode: InvokeMode::Sync,
        attempt: 1,
        logs: o.logs,
    }
}

/// `Duration: 1.50 ms` → 1.5, from a tab-separated REPORT line.
fn field_ms(report: &str, name: &str) -> Option<f64> {
    report.split('\t').find_map(|f| f.trim().strip_prefix(name)?.strip_suffix(" ms")?.trim().parse().ok())
}

/// The error an attempt ended with, from a line Lambda (or the faas host) wrote about it.
fn platform_error(id: &str, line: &str) -> Option<Error> {
    if let Some(at) = line.find(INVOKE_ERROR) {
        return Error::from_json(&line.as_bytes()[at + INVOKE_ERROR.len()..]);
    }
    if line.contains(&format!("{id} Task timed out after ")) {
        let message = line.split_once(&format!("{id} ")).map(|(_, m)| m).unwrap_or(line);
        return Some(Error::timeout(message.trim().to_string()).with_type("Sandbox.Timeout"));
    }
    if line.starts_with(&format!("RequestId: {id} Error: ")) {
        return Some(Error::crash(line.to_string()).with_type("Runtime.ExitError"));
    }
    None
}

/// Lines Lambda adds on its own, kept out of the function's log lines.
fn is_platform_line(line: &str) -> bool {
    line == "Runtime.ExitError" || line.starts_with("INIT_REPORT ") || line.starts_with("RequestId: ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(stream: &str, t: u64, m: &str) -> LogEvent {
        LogEvent { stream: stream.into(), timestamp_ms: t, message: format!("{m}\n") }
    }

    fn block(stream: &str, t: u64, id: &str, body: &[&str], cold: bool) -> Vec<LogEvent> {
        let mut v = vec![ev(stream, t, &format!("START RequestId: {id} Version: $LATEST"))];
        v.extend(body.iter().map(|l| ev(stream, t, l)));
        v.push(ev(stream, t, &format!("END RequestId: {id}")));
        let init = if cold { "\tInit Duration: 2.00 ms" } else { "" };
        v.push(ev(stream, t, &format!("REPORT RequestId: {id}\tDuration: 0.25 ms\tBilled Duration: 1 ms{init}")));
        v
    }

    #[test]
    fn billed_time_is_the_reports_or_the_duration_rounded_up() {
        let ev = |m: &str| LogEvent { stream: "s".into(), timestamp_ms: 1, message: m.into() };
        let report = |id: &str, fields: &str| {
            vec![
                ev(&format!("START RequestId: {id} Version: $LATEST")),
                ev(&format!("END RequestId: {id}")),
                ev(&format!("REPORT RequestId: {id}\t{fields}")),
            ]
        };
        let billed = |fields: &str| parse("f", report("r", fields))[0].billed_us;
        assert_eq!(billed("Duration: 12.70 ms\tBilled Duration: 13 ms"), 13_000);
        assert_eq!(billed("Duration: 12.70 ms"), 13_000);
        // A damaged REPORT claiming an absurd duration saturates instead of overflowing (a fuzz find).
        assert_eq!(billed("Duration: 1e30 ms"), u64::MAX);
    }

    #[test]
    fn function_errors_printed_by_the_host_are_read_back() {
        let line = invoke_error_line("2026-01-01T00:00:00.000Z", "r1", &Error::function("ProbeError", "m\n2"));
        let acts = parse("fail", block("s", 5, "r1", &["before", &line], false));
        assert_eq!(acts.len(), 1);
        assert_eq!(acts[0].status, ActivationStatus::Error);
        let e = acts[0].error.clone().unwrap();
        assert_eq!((e.kind(), e.error_type(), e.message()), (faas_api::ErrorKind::Function, "ProbeError", "m\n2"));
        assert_eq!(acts[0].logs.len(), 2, "the error line stays visible in the logs");
        assert!(!acts[0].cold);
    }

    #[test]
    fn async_retries_share_the_id_and_count_attempts() {
        let mut events = block("a", 10, "r9", &["x"], true);
        events.extend(block("b", 20, "r9", &["y"], true));
        events.extend(block("a", 15, "other", &[], false));
        let acts = parse("f", events);
        let ids: Vec<_> = acts.iter().map(|a| (a.id.as_str(), a.attempt, a.mode)).collect();
        assert_eq!(
            ids,
            vec![("r9", 1, InvokeMode::Async), ("other", 1, InvokeMode::Sync), ("r9", 2, InvokeMode::Async)]
        );
    }

    #[test]
    fn timeouts_crashes_and_unfinished_attempts() {
        let mut events = block("s", 1, "t1", &["2026-01-01T00:00:03.000Z t1 Task timed out after 3.00 seconds"], false);
        events.extend(block(
            "s",
            2,
            "c1",
            &["RequestId: c1 Error: Runtime exited with error: exit status 3", "Runtime.ExitError"],
            false,
        ));
        events.push(ev("s", 3, "START RequestId: p1 Version: $LATEST"));
        events.push(ev("s", 3, "working"));
        let acts = parse("f", events);
        assert_eq!(acts[0].error.as_ref().unwrap().kind(), faas_api::ErrorKind::Timeout);
        assert_eq!(acts[0].error.as_ref().unwrap().message(), "Task timed out after 3.00 seconds");
        assert_eq!(acts[1].error.as_ref().unwrap().kind(), faas_api::ErrorKind::Crash);
        assert!(acts[1].logs.is_empty(), "platform lines are not function output: {:?}", acts[1].logs);
        assert_eq!(acts[2].status, ActivationStatus::Pending);
        assert_eq!(acts[2].logs, vec!["working".to_string()]);
    }
}
