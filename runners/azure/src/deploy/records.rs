//! What Azure answers, read back: errors mapped onto the portable kinds (the Azure error code
//! kept as the type, `Azure.<Code>`), invocation answers, and the activations the Functions
//! host's function log files record.

use faas_api::{Activation, ActivationStatus, Error, ErrorKind, InvokeMode, Payload};
use serde_json::Value;

pub use crate::host::ERROR_LINE;

/// An `azure_core` error of `what`, on `place`.
pub fn azure_error(what: &str, e: &azure_core::Error, place: &str) -> Error {
    use azure_core::error::ErrorKind as K;
    match e.kind() {
        K::HttpResponse { status, error_code, .. } => {
            let status = u16::from(*status);
            let code = error_code.clone().unwrap_or_else(|| format!("Http{status}"));
            kind_of(status, format!("{what}: {place} answered {status} {code}: {e}")).with_type(format!("Azure.{code}"))
        }
        K::Connection | K::Io => {
            Error::unavailable(format!("{what}: cannot reach {place}: {e}")).with_type("Azure.ConnectionFailed")
        }
        K::Credential => Error::unauthorized(format!("{what}: {e}")).with_type("Azure.CredentialUnavailable"),
        _ => Error::unavailable(format!("{what}: {e}")),
    }
}

/// The portable kind of an HTTP status of Azure's, with `message`.
fn kind_of(status: u16, message: String) -> Error {
    match status {
        400 | 409 | 412 | 422 => Error::bad_input(message),
        401 | 403 => Error::unauthorized(message),
        404 => Error::not_found(message),
        413 => Error::payload_too_large(message),
        429 => Error::throttled(message),
        _ => Error::unavailable(message),
    }
}

/// An ARM error answer (`{"error":{"code","message"}}`, or the older `{"Code","Message"}`) of
/// `what`.
///
/// ```
/// use faas_runner_azure::deploy::arm_status_error;
/// let e = arm_status_error("reading function app `shop`", 404,
///     br#"{"error":{"code":"ResourceNotFound","message":"The Resource 'Microsoft.Web/sites/shop' was not found."}}"#);
/// assert_eq!((e.kind(), e.error_type()), (faas_api::ErrorKind::NotFound, "Azure.ResourceNotFound"));
/// assert!(e.message().contains("was not found"));
/// ```
pub fn arm_status_error(what: &str, status: u16, body: &[u8]) -> Error {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let inner = if v["error"].is_object() { &v["error"] } else { &v };
    let field = |a: &str, b: &str| inner[a].as_str().or(inner[b].as_str()).map(str::to_string);
    let code = field("code", "Code").unwrap_or_else(|| format!("Http{status}"));
    let message = field("message", "Message").unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let message = if message.is_empty() { format!("status {status}") } else { message };
    kind_of(status, format!("{what}: {code}: {message}")).with_type(format!("Azure.{code}"))
}

/// A Kudu error answer of `what` (Kudu answers plain text or JSON).
///
/// ```
/// let e = faas_runner_azure::deploy::kudu_error("zip deploy", 409, b"There is a deployment currently in progress.");
/// assert_eq!(e.kind(), faas_api::ErrorKind::BadInput);
/// assert!(e.message().contains("in progress"));
/// ```
pub fn kudu_error(what: &str, status: u16, body: &[u8]) -> Error {
    let text = String::from_utf8_lossy(body);
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let message = v["Message"]
        .as_str()
        .or(v["message"].as_str())
        .or(v["error"]["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| text.trim().chars().take(2000).collect());
    let message = if message.is_empty() { format!("status {status}") } else { message };
    let code = match status {
        409 => "DeploymentInProgress".to_string(),
        403 => "ScmDisabled".to_string(),
        _ => v["Code"].as_str().or(v["code"].as_str()).map(str::to_string).unwrap_or_else(|| format!("Http{status}")),
    };
    kind_of(status, format!("{what}: {message}")).with_type(format!("Azure.{code}"))
}

/// The header the handler marks a base64 body with (the Functions host writes a string body as
/// it is, so bytes that are not UTF-8 travel as base64).
pub const ENCODING_HEADER: &str = "x-faas-encoding";

/// The outcome of an invocation answered `status`, with `content_type`, `encoding` (the
/// [`ENCODING_HEADER`]) and `body`, by the function app's host.
///
/// ```
/// use faas_runner_azure::deploy::outcome;
/// let ok = outcome("hello", 200, Some("application/json"), None, br#"{"message":"hi"}"#.to_vec()).unwrap();
/// assert_eq!(ok.content_type(), Some("application/json"));
/// let bytes = outcome("echo", 200, Some("application/octet-stream"), Some("base64"), b"AAH/".to_vec()).unwrap();
/// assert_eq!(bytes.body().as_ref(), &[0u8, 1, 255][..]);
/// let failed = outcome("fail", 500, Some("application/json"), None,
///     br#"{"kind":"function","errorType":"ProbeError","errorMessage":"boom"}"#.to_vec()).unwrap_err();
/// assert_eq!((failed.kind(), failed.error_type()), (faas_api::ErrorKind::Function, "ProbeError"));
/// let lost = outcome("hello", 500, None, None, vec![]).unwrap_err();
/// assert_eq!(lost.kind(), faas_api::ErrorKind::Crash);
/// ```
pub fn outcome(
    function: &str,
    status: u16,
    content_type: Option<&str>,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> Result<Payload, Error> {
    let body = if encoding.is_some_and(|e| e.eq_ignore_ascii_case("base64")) {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(&body).map_err(|e| {
            Error::unavailable(format!("function `{function}` answered a base64 body that is not base64: {e}"))
        })?
    } else {
        body
    };
    if (200..300).contains(&status) {
        return Ok(Payload::new(body, content_type.map(str::to_string)));
    }
    if let Some(e) = Error::from_json(&body) {
        return Err(e);
    }
    Err(match status {
        401 => Error::unauthorized(format!(
            "function `{function}`: the function app refused the key (401); its keys may have changed: deploy again"
        ))
        .with_type("Azure.Unauthorized"),
        404 => {
            Error::not_found(format!("no function named `{function}` in the function app")).with_type("Azure.NotFound")
        }
        500 if body.is_empty() => Error::crash(format!(
            "function `{function}`: the Functions host answered 500 with no body: the invocation failed (the \
             handler crashed, ran past the function timeout, or answered what the host cannot read); `faas logs \
             {function}` shows the host's record"
        ))
        .with_type("Azure.InvocationFailed"),
        _ => Error::from_http(status, &body),
    })
}

/// One parsed line of a function log file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    at_ms: u64,
    level: String,
    message: String,
}

/// Splits a function log file into lines `yyyy-MM-ddTHH:mm:ss.fff [Level] message`; a line that
/// does not start so continues the one before (an exception's text).
fn lines(text: &str) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::new();
    for raw in text.lines() {
        let parsed = raw.get(..23).and_then(|ts| {
            let at = chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%S%.3f").ok()?;
            let rest = raw[23..].strip_prefix(" [")?;
            let (level, message) = rest.split_once("] ")?;
            let level = level.split(',').next().unwrap_or(level).to_string();
            Some(Line { at_ms: at.and_utc().timestamp_millis().max(0) as u64, level, message: message.to_string() })
        });
        match (parsed, out.last_mut()) {
            (Some(line), _) => out.push(line),
            (None, Some(last)) if !raw.trim().is_empty() => {
                last.message.push('\n');
                last.message.push_str(raw);
            }
            _ => {}
        }
    }
    out
}

/// `Id=<id>` in an Executing/Executed message.
fn id_in(message: &str) -> Option<String> {
    let start = message.find("Id=")? + 3;
    let rest = &message[start..];
    let end = rest.find([',', ')']).unwrap_or(rest.len());
    Some(rest[..end].trim().to_string())
}

/// The activations of `function` that the host's function log files (their text, oldest first)
/// record: each `Executing 'Functions.<fn>' (..., Id=<id>)` / `Executed 'Functions.<fn>'
/// (<Succeeded|Failed>, Id=<id>, Duration=<ms>ms)` pair, with the lines written in between
/// attributed to the invocation whose `Executed` comes next among those running when the line
/// was written (the handler's `Logs` are written just before it). An invocation the handler
/// marked failed ([`ERROR_LINE`]) is an error with that error; one the host marked `Failed` is
/// a crash with the host's reason. The first invocation of each file (one host instance) is
/// the cold one. Newest first.
///
/// ```
/// use faas_runner_azure::deploy::activations_of;
/// let log = "\
/// 2026-12-03T08:30:00.123 [Information] Executing 'Functions.hello' (Reason='This function was programmatically called via the host APIs.', Id=a1)
/// 2026-12-03T08:30:00.130 [Information] greeting Ada
/// 2026-12-03T08:30:00.131 [Information] Executed 'Functions.hello' (Succeeded, Id=a1, Duration=8ms)
/// ";
/// let a = activations_of("hello", &[log.to_string()]);
/// assert_eq!((a[0].id.as_str(), a[0].duration_us, a[0].cold), ("a1", 8000, true));
/// assert_eq!(a[0].logs, ["greeting Ada"]);
/// ```
pub fn activations_of(function: &str, files: &[String]) -> Vec<Activation> {
    let executing = format!("Executing 'Functions.{function}'");
    let executed = format!("Executed 'Functions.{function}'");
    let mut done: Vec<Activation> = Vec::new();
    for text in files {
        let mut open: Vec<(String, u64)> = Vec::new();
        // Lines not yet attributed, with the invocations running when each was written.
        let mut pending: Vec<(String, Vec<String>)> = Vec::new();
        // The first invocation the file records (one host instance's first) is the cold one.
        let mut first: Option<String> = None;
        for line in lines(text) {
            if line.message.starts_with(&executing) {
                if let Some(id) = id_in(&line.message) {
                    first.get_or_insert_with(|| id.clone());
                    open.push((id, line.at_ms));
                }
            } else if line.message.starts_with(&executed) {
                let Some(id) = id_in(&line.message) else { continue };
                let start = open.iter().position(|(o, _)| *o == id).map(|i| open.remove(i).1);
                let mut logs = Vec::new();
                pending.retain(|(text, running)| {
                    if running.contains(&id) {
                        logs.push(text.clone());
                        false
                    } else {
                        true
                    }
                });
                let duration_ms = line
                    .message
                    .split("Duration=")
                    .nth(1)
                    .and_then(|d| d.trim_end_matches(|c: char| !c.is_ascii_digit()).parse::<u64>().ok())
                    .unwrap_or(0);
                let host_failed = line.message.contains("(Failed,");
                let marked = logs
                    .iter()
                    .rev()
                    .find_map(|l| l.strip_prefix(ERROR_LINE).and_then(|j| Error::from_json(j.as_bytes())));
                logs.retain(|l| !l.starts_with(ERROR_LINE));
                let error = match (marked, host_failed) {
                    (Some(e), _) => Some(e),
                    (None, true) => {
                        let reason = line.message.split_once('\n').map(|(_, r)| r.trim().to_string());
                        Some(
                            Error::crash(format!(
                                "the Functions host counted the invocation failed{}",
                                reason.map(|r| format!(": {r}")).unwrap_or_default()
                            ))
                            .with_type("Azure.InvocationFailed"),
                        )
                    }
                    (None, false) => None,
                };
                done.push(Activation {
                    cold: first.as_ref() == Some(&id),
                    id,
                    function: function.to_string(),
                    start_ms: start.unwrap_or(line.at_ms.saturating_sub(duration_ms)),
                    duration_us: duration_ms * 1000,
                    billed_us: billed_us(duration_ms),
                    cause: None,
                    status: if error.is_some() { ActivationStatus::Error } else { ActivationStatus::Success },
                    error,
                    result_size: 0,
                    mode: InvokeMode::Sync,
                    attempt: 1,
                    logs,
                });
            } else if !open.is_empty() {
                pending.push((line.message.clone(), open.iter().map(|(id, _)| id.clone()).collect()));
            }
        }
        // Still running when the file was read.
        for (id, start) in open {
            let logs = pending.iter().filter(|(_, r)| r.contains(&id)).map(|(t, _)| t.clone()).collect();
            done.push(Activation {
                cold: first.as_ref() == Some(&id),
                id,
                function: function.to_string(),
                start_ms: start,
                duration_us: 0,
                billed_us: 0,
                cause: None,
                status: ActivationStatus::Pending,
                error: None,
                result_size: 0,
                mode: InvokeMode::Sync,
                attempt: 1,
                logs,
            });
        }
    }
    done.sort_by_key(|a| std::cmp::Reverse(a.start_ms));
    done
}

/// What the Consumption plan bills for an execution of `duration_ms`: rounded up to the next
/// millisecond (the host logs whole ones) with a minimum of 100 ms (Azure Functions pricing:
/// "minimum execution time and memory for a single function execution is 100 ms and 128 mb").
///
/// ```
/// use faas_runner_azure::deploy::billed_us;
/// assert_eq!(billed_us(3), 100_000);
/// assert_eq!(billed_us(250), 250_000);
/// ```
pub fn billed_us(duration_ms: u64) -> u64 {
    duration_ms.max(100) * 1000
}

/// Whether `e` says the resource is not there.
pub fn is_not_found(e: &Error) -> bool {
    e.kind() == ErrorKind::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_invocations_get_their_own_lines_and_failures_their_errors() {
        let log = "\
2026-12-03T08:30:00.000 [Information] Executing 'Functions.f' (Reason='x', Id=a)
2026-12-03T08:30:00.010 [Information] Executing 'Functions.f' (Reason='x', Id=b)
2026-12-03T08:30:00.020 [Information] line of b
2026-12-03T08:30:00.021 [Information] Executed 'Functions.f' (Succeeded, Id=b, Duration=11ms)
2026-12-03T08:30:00.030 [Information] line of a
2026-12-03T08:30:00.031 [Information] faas-error: {\"kind\":\"function\",\"errorType\":\"ProbeError\",\"errorMessage\":\"boom\"}
2026-12-03T08:30:00.032 [Information] Executed 'Functions.f' (Succeeded, Id=a, Duration=32ms)
2026-12-03T08:30:01.000 [Information] Executing 'Functions.f' (Reason='x', Id=c)
2026-12-03T08:30:01.100 [Error] Executed 'Functions.f' (Failed, Id=c, Duration=100ms)
Result: Failure
Exception: handler exited
2026-12-03T08:30:02.000 [Information] Executing 'Functions.other' (Reason='x', Id=d)
";
        let a = activations_of("f", &[log.to_string()]);
        let by = |id: &str| a.iter().find(|x| x.id == id).unwrap();
        assert_eq!(a.len(), 3, "{a:?}");
        assert_eq!(by("b").logs, ["line of b"]);
        assert_eq!(by("a").logs, ["line of a"]);
        assert_eq!(by("a").error.as_ref().map(|e| e.error_type()), Some("ProbeError"));
        assert_eq!(by("b").status, ActivationStatus::Success);
        let c = by("c");
        assert_eq!((c.status, c.duration_us), (ActivationStatus::Error, 100_000));
        assert!(c.error.as_ref().unwrap().message().contains("handler exited"), "{c:?}");
        assert!(by("a").cold && !by("b").cold && !c.cold);
        assert_eq!(a[0].id, "c", "newest first");
    }

    #[test]
    fn arm_and_kudu_errors_keep_the_azure_code() {
        let e = arm_status_error(
            "x",
            409,
            br#"{"Code":"Conflict","Message":"Website with given name shop already exists."}"#,
        );
        assert_eq!((e.kind(), e.error_type()), (ErrorKind::BadInput, "Azure.Conflict"));
        let e = arm_status_error("x", 401, b"");
        assert_eq!((e.kind(), e.error_type()), (ErrorKind::Unauthorized, "Azure.Http401"));
        assert_eq!(kudu_error("x", 403, b"").error_type(), "Azure.ScmDisabled");
        assert_eq!(arm_status_error("x", 503, b"busy").kind(), ErrorKind::BackendUnavailable);
    }
}
