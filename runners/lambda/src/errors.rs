//! Lambda's own error wire format, written once for both halves of this crate: the body a
//! runtime posts to `/runtime/invocation/{id}/error` (which Lambda hands to the caller of Invoke
//! unchanged, with `X-Amz-Function-Error: Unhandled`), and the AWS error codes of the Lambda API.
//!
//! Lambda's body is `{"errorType","errorMessage","stackTrace"}` (the Runtime API reference,
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html#runtimes-api-invokeerror>).
//! The faas host adds the portable `kind`, which Lambda passes through untouched, so a faas caller
//! gets the exact portable error back; bodies written by other runtimes (no `kind`) are mapped by
//! their `errorType`.
//!
//! ```
//! use faas_api::{Error, ErrorKind};
//! use faas_runner_lambda::errors::{error_body, error_from_body};
//! let body = error_body(&Error::timeout("ran past 3s"));
//! let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(v, serde_json::json!({"errorType": "Timeout", "errorMessage": "ran past 3s", "stackTrace": [], "kind": "timeout"}));
//! assert_eq!(error_from_body("f", &body), Error::timeout("ran past 3s"));
//! // A Python runtime's error: no `kind`, the type names a function error.
//! let e = error_from_body("f", br#"{"errorType":"ValueError","errorMessage":"nope","stackTrace":[]}"#);
//! assert_eq!((e.kind(), e.error_type()), (ErrorKind::Function, "ValueError"));
//! ```

use faas_api::{Error, ErrorKind};
use serde::{Deserialize, Serialize};

/// The error body of Lambda's Runtime API and Invoke responses, with the portable `kind` faas
/// adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LambdaError {
    /// `errorType`: the function's error type (`ProbeError`), or Lambda's (`Runtime.ExitError`).
    #[serde(rename = "errorType", default)]
    pub error_type: String,
    /// `errorMessage`.
    #[serde(rename = "errorMessage", default)]
    pub error_message: String,
    /// `stackTrace`: always empty from the faas host (Rust has no portable stack trace to offer).
    #[serde(rename = "stackTrace", default)]
    pub stack_trace: Vec<String>,
    /// The portable kind, when a faas host wrote the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The body a faas host posts to `/error` for `e`: Lambda's fields plus the portable `kind`.
pub fn error_body(e: &Error) -> Vec<u8> {
    let body = LambdaError {
        error_type: e.error_type().to_string(),
        error_message: e.message().to_string(),
        stack_trace: vec![],
        kind: Some(e.kind().as_str().to_string()),
    };
    serde_json::to_vec(&body).expect("an error body serialises")
}

/// The portable error of a failed invocation of `function` whose Invoke answer carried
/// `X-Amz-Function-Error` and `body`: exact when a faas host wrote it (`kind`), else by Lambda's
/// error types (`Sandbox.Timeout` is a timeout, `Runtime.*` a crash, anything else a function
/// error of that type); a body that is no JSON becomes its own message.
pub fn error_from_body(function: &str, body: &[u8]) -> Error {
    let parsed: Option<LambdaError> = serde_json::from_slice(body).ok();
    let (error_type, message, kind) = match parsed {
        Some(b) => (b.error_type, b.error_message, b.kind),
        None => (String::new(), String::from_utf8_lossy(&body[..body.len().min(4096)]).trim().to_string(), None),
    };
    if let Some(kind) = kind.as_deref().and_then(ErrorKind::parse) {
        let error = Error::new(kind, message);
        return if error_type.is_empty() { error } else { error.with_type(error_type) };
    }
    let message = if message.is_empty() { format!("function `{function}` failed") } else { message };
    match error_type.as_str() {
        "Sandbox.Timeout" => Error::timeout(message).with_type(error_type),
        _ if message.contains("Task timed out after") => Error::timeout(message),
        "Function.ResponseSizeTooLarge" => Error::payload_too_large(message).with_type(error_type),
        t if t.starts_with("Runtime.") || t.starts_with("Sandbox.") || t.starts_with("Extension.") => {
            Error::crash(message).with_type(error_type)
        }
        "" => Error::function("Unhandled", message),
        _ => Error::function(error_type, message),
    }
}

/// The kind an AWS error code of the Lambda (or CloudWatch Logs) API maps to; `None` for a code
/// this table does not know.
///
/// ```
/// use faas_api::ErrorKind;
/// use faas_runner_lambda::errors::kind_of_code;
/// assert_eq!(kind_of_code("ResourceNotFoundException"), Some(ErrorKind::NotFound));
/// assert_eq!(kind_of_code("TooManyRequestsException"), Some(ErrorKind::Throttled));
/// assert_eq!(kind_of_code("SomethingNew"), None);
/// ```
pub fn kind_of_code(code: &str) -> Option<ErrorKind> {
    Some(match code {
        "ResourceNotFoundException" => ErrorKind::NotFound,
        "TooManyRequestsException" | "ThrottlingException" | "LimitExceededException" => ErrorKind::Throttled,
        "RequestTooLargeException" => ErrorKind::PayloadTooLarge,
        "InvalidParameterValueException"
        | "InvalidParameterException"
        | "InvalidRequestContentException"
        | "UnsupportedMediaTypeException"
        | "ValidationException"
        | "CodeStorageExceededException"
        | "ResourceConflictException" => ErrorKind::BadInput,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "AccessDeniedException"
        | "ExpiredTokenException"
        | "MissingAuthenticationTokenException"
        | "IncompleteSignatureException"
        | "KMSAccessDeniedException" => ErrorKind::Unauthorized,
        "ResourceNotReadyException" | "ServiceException" | "ServiceUnavailableException" | "EC2ThrottledException" => {
            ErrorKind::BackendUnavailable
        }
        _ => return None,
    })
}

/// `text` on one line (control characters become spaces, runs of spaces one), cut to `max`
/// characters with `…` when longer.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() { ' ' } else { c };
        if c == ' ' && last_space {
            continue;
        }
        if count == max {
            out.push('…');
            return out.trim_end().to_string();
        }
        last_space = c == ' ';
        out.push(c);
        count += 1;
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_error_bodies_map_back_to_portable_errors() {
        let e = error_from_body("f", br#"{"errorType":"ProbeError","errorMessage":"boom","kind":"function"}"#);
        assert_eq!((e.kind(), e.error_type(), e.message()), (ErrorKind::Function, "ProbeError", "boom"));
        let e = error_from_body("f", br#"{"errorType":"Panic","errorMessage":"x","kind":"crash"}"#);
        assert_eq!((e.kind(), e.error_type()), (ErrorKind::Crash, "Panic"));
        let e = error_from_body(
            "f",
            br#"{"errorType":"Sandbox.Timeout","errorMessage":"Task timed out after 1.00 seconds"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Timeout);
        let e = error_from_body("f", br#"{"errorType":"Runtime.ExitError","errorMessage":"exit status 3"}"#);
        assert_eq!((e.kind(), e.error_type()), (ErrorKind::Crash, "Runtime.ExitError"));
        let e = error_from_body("f", br#"{"errorType":"ValueError","errorMessage":"nope"}"#);
        assert_eq!((e.kind(), e.error_type()), (ErrorKind::Function, "ValueError"));
        let e = error_from_body("f", b"not json");
        assert_eq!((e.kind(), e.message()), (ErrorKind::Function, "not json"));
        let e = error_from_body("f", b"");
        assert_eq!(e.message(), "function `f` failed");
    }

    #[test]
    fn one_line_folds_and_cuts() {
        assert_eq!(one_line("a\n\n  b\tc", 10), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
