//! The one portable error taxonomy, with its status codes and wire form.
//!
//! Every boundary (a host adapter, a runner client, the HTTP front) maps its native errors into
//! [`Error`] once, and back out once. The wire form is a small JSON object:
//!
//! ```json
//! {"kind": "function", "errorType": "ProbeError", "errorMessage": "boom"}
//! ```

use serde::{Deserialize, Serialize};

/// The class of a portable error. Each kind has one HTTP status code ([`ErrorKind::status`]) and
/// one snake_case wire name ([`ErrorKind::as_str`]).
///
/// ```
/// use faas_api::ErrorKind;
/// let kind = ErrorKind::PayloadTooLarge;
/// assert_eq!(kind.status(), 413);
/// assert_eq!(kind.to_string(), "payload_too_large");
/// assert_eq!(serde_json::to_string(&kind).unwrap(), r#""payload_too_large""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input could not be decoded or is of the wrong shape (400).
    BadInput,
    /// The caller is not allowed to do this (401).
    Unauthorized,
    /// The function, activation or resource does not exist (404).
    NotFound,
    /// A conditional write lost: what it was conditioned on has changed (409); a state
    /// `set_if` that lost the race, for instance (its message names the current version).
    Conflict,
    /// The request or response is over a size limit (413).
    PayloadTooLarge,
    /// Too many concurrent or queued invocations (429).
    Throttled,
    /// The function returned an error (500). `error_type` names it.
    Function,
    /// The function process crashed or panicked (502).
    Crash,
    /// The backend could not be reached or is not ready (503).
    BackendUnavailable,
    /// The function ran past its deadline (504).
    Timeout,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    ///
    /// ```
    /// use faas_api::ErrorKind;
    /// assert_eq!(ErrorKind::ALL.len(), 10);
    /// assert_eq!(ErrorKind::ALL[0], ErrorKind::BadInput);
    /// assert!(ErrorKind::ALL.iter().all(|k| ErrorKind::parse(k.as_str()) == Some(*k)));
    /// ```
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::BadInput,
        ErrorKind::Unauthorized,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::PayloadTooLarge,
        ErrorKind::Throttled,
        ErrorKind::Function,
        ErrorKind::Crash,
        ErrorKind::BackendUnavailable,
        ErrorKind::Timeout,
    ];

    /// The HTTP status code this kind maps to.
    ///
    /// ```
    /// use faas_api::ErrorKind;
    /// assert_eq!(ErrorKind::Timeout.status(), 504);
    /// assert_eq!(ErrorKind::NotFound.status(), 404);
    /// ```
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadInput => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Throttled => 429,
            ErrorKind::Function => 500,
            ErrorKind::Crash => 502,
            ErrorKind::BackendUnavailable => 503,
            ErrorKind::Timeout => 504,
        }
    }

    /// The snake_case name used on the wire and in the `faas-error` header.
    ///
    /// ```
    /// use faas_api::ErrorKind;
    /// assert_eq!(ErrorKind::BackendUnavailable.as_str(), "backend_unavailable");
    /// assert_eq!(ErrorKind::BadInput.as_str(), "bad_input");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadInput => "bad_input",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Function => "function",
            ErrorKind::Crash => "crash",
            ErrorKind::BackendUnavailable => "backend_unavailable",
            ErrorKind::Timeout => "timeout",
        }
    }

    /// Parses the wire name back into a kind; `None` for an unknown name.
    ///
    /// ```
    /// use faas_api::ErrorKind;
    /// assert_eq!(ErrorKind::parse("timeout"), Some(ErrorKind::Timeout));
    /// assert_eq!(ErrorKind::parse("Timeout"), None);
    /// ```
    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind a bare HTTP status code maps to (for peers that only give a status). Statuses
    /// with no closer match, such as 500, map to [`ErrorKind::Function`].
    ///
    /// ```
    /// use faas_api::ErrorKind;
    /// assert_eq!(ErrorKind::from_status(429), ErrorKind::Throttled);
    /// assert_eq!(ErrorKind::from_status(403), ErrorKind::Unauthorized);
    /// assert_eq!(ErrorKind::from_status(408), ErrorKind::Timeout);
    /// assert_eq!(ErrorKind::from_status(409), ErrorKind::Conflict);
    /// assert_eq!(ErrorKind::from_status(500), ErrorKind::Function);
    /// assert_eq!(ErrorKind::from_status(418), ErrorKind::Function);
    /// ```
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            400 | 405 | 415 | 422 => ErrorKind::BadInput,
            401 | 403 => ErrorKind::Unauthorized,
            404 | 410 => ErrorKind::NotFound,
            409 | 412 => ErrorKind::Conflict,
            413 => ErrorKind::PayloadTooLarge,
            429 => ErrorKind::Throttled,
            502 => ErrorKind::Crash,
            503 => ErrorKind::BackendUnavailable,
            408 | 504 => ErrorKind::Timeout,
            _ => ErrorKind::Function,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A portable error: a [`ErrorKind`], an error type name and a message.
///
/// ```
/// use faas_api::{Error, ErrorKind};
/// let e = Error::function("ProbeError", "boom");
/// assert_eq!(e.kind(), ErrorKind::Function);
/// assert_eq!(e.error_type(), "ProbeError");
/// assert_eq!(e.to_string(), "ProbeError: boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{error_type}: {message}")]
pub struct Error {
    kind: ErrorKind,
    #[serde(rename = "errorType")]
    error_type: String,
    #[serde(rename = "errorMessage")]
    message: String,
}

impl Error {
    /// An error of `kind` with the kind's default type name (`FunctionError` for
    /// [`ErrorKind::Function`], the kind in CamelCase otherwise).
    ///
    /// ```
    /// use faas_api::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::Throttled, "queue full");
    /// assert_eq!((e.kind(), e.error_type(), e.message()), (ErrorKind::Throttled, "Throttled", "queue full"));
    /// assert_eq!(Error::new(ErrorKind::Function, "x").error_type(), "FunctionError");
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        let error_type = match kind {
            ErrorKind::BadInput => "BadInput",
            ErrorKind::Unauthorized => "Unauthorized",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::PayloadTooLarge => "PayloadTooLarge",
            ErrorKind::Throttled => "Throttled",
            ErrorKind::Function => "FunctionError",
            ErrorKind::Crash => "Crash",
            ErrorKind::BackendUnavailable => "BackendUnavailable",
            ErrorKind::Timeout => "Timeout",
        };
        Error { kind, error_type: error_type.to_string(), message: message.into() }
    }

    /// A function (application) error with an explicit type name (500).
    ///
    /// ```
    /// use faas_api::{Error, ErrorKind};
    /// let e = Error::function("OutOfStock", "no more widgets");
    /// assert_eq!(e.kind(), ErrorKind::Function);
    /// assert_eq!(e.status(), 500);
    /// assert_eq!(e.to_string(), "OutOfStock: no more widgets");
    /// ```
    pub fn function(error_type: impl Into<String>, message: impl Into<String>) -> Error {
        Error { kind: ErrorKind::Function, error_type: error_type.into(), message: message.into() }
    }

    /// Bad input (400).
    ///
    /// ```
    /// use faas_api::{Error, ErrorKind};
    /// let e = Error::bad_input("details");
    /// assert_eq!((e.kind(), e.status(), e.error_type()), (ErrorKind::BadInput, 400, "BadInput"));
    /// ```
    pub fn bad_input(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::BadInput, message)
    }

    /// Conflict (409): a conditional write whose condition no longer holds.
    ///
    /// ```
    /// let e = faas_api::Error::conflict("key `n` is at version 8, not 7");
    /// assert_eq!((e.kind().status(), e.error_type()), (409, "Conflict"));
    /// ```
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Conflict, message)
    }

    /// Not found (404).
    ///
    /// ```
    /// use faas_api::{Error, ErrorKind};
    /// let e = Error::not_found("details");
    /// assert_eq!((e.kind(), e.status(), e.error_type()), (ErrorKind::NotFound, 404, "NotFound"));
    /// ```
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }

    /// Payload too large (413).
    ///
    /// ```
    /// use faas_api::{Error, ErrorKind};
    /// let e = Error::payload_too_large("details");
    /// assert_eq!((e.kind(), e.status(), e.error_type()), (ErrorKind::PayloadTooLarge, 413, "PayloadTooLarge"));
    /// ```
    pub fn payload_too_large(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::PayloadTooLarge, message)
    }

    /// Timeout (504).
    ///
    /// ```
    /// use faas_api::{Error, ErrorKind};
    /// let e = Error::timeout("details");
    /// assert_eq!((e.kind(), e.status(), e.error_type()), (ErrorKind::Timeout, 504, "Timeout"));
    /// ```
    pub fn timeout(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Timeout, message)
    }

    /// Crash (502).
    ///
    /// ```
    /// use faas_api::{Error, ErrorKind};
    /// let e = Error::crash("details");
    /// assert_eq!((e.kind(), e.status(), e.error_type()), (ErrorKind::Crash, 502, "Crash"));
    /// ```
    pub fn crash(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Crash, message)
    }

    /// Throttled (429).
    ///
    /// ```
    /// use faas_api::{Error, ErrorKind};
    /// let e = Error::throttled("details");
    /// assert_eq!((e.kind(), e.status(), e.error_type()), (ErrorKind::Throttled, 429, "Throttled"));
    /// ```
    pub fn throttled(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Throttled, message)
    }

    /// Backend unavailable (503).
    ///
    /// ```
    /// use faas_api::{Error, ErrorKind};
    /// let e = Error::unavailable("details");
    /// assert_eq!((e.kind(), e.status(), e.error_type()), (ErrorKind::BackendUnavailable, 503, "BackendUnavailable"));
    /// ```
    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::BackendUnavailable, message)
    }

    /// Unauthorized (401).
    ///
    /// ```
    /// use faas_api::{Error, ErrorKind};
    /// let e = Error::unauthorized("details");
    /// assert_eq!((e.kind(), e.status(), e.error_type()), (ErrorKind::Unauthorized, 401, "Unauthorized"));
    /// ```
    pub fn unauthorized(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unauthorized, message)
    }

    /// Replaces the error type name; the kind and message stay.
    ///
    /// ```
    /// use faas_api::{Error, ErrorKind};
    /// let e = Error::bad_input("missing `name`").with_type("ValidationError");
    /// assert_eq!(e.kind(), ErrorKind::BadInput);
    /// assert_eq!(e.to_string(), "ValidationError: missing `name`");
    /// ```
    pub fn with_type(mut self, error_type: impl Into<String>) -> Error {
        self.error_type = error_type.into();
        self
    }

    /// The kind of error.
    ///
    /// ```
    /// use faas_api::{Error, ErrorKind};
    /// assert_eq!(Error::timeout("took 31s").kind(), ErrorKind::Timeout);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The error type name (for function errors, the one the function chose).
    ///
    /// ```
    /// use faas_api::Error;
    /// assert_eq!(Error::function("ProbeError", "boom").error_type(), "ProbeError");
    /// assert_eq!(Error::not_found("gone").error_type(), "NotFound");
    /// ```
    pub fn error_type(&self) -> &str {
        &self.error_type
    }

    /// The human-readable message, without the type name.
    ///
    /// ```
    /// use faas_api::Error;
    /// assert_eq!(Error::function("ProbeError", "boom").message(), "boom");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status code of this error's kind.
    ///
    /// ```
    /// use faas_api::Error;
    /// assert_eq!(Error::crash("exit code 101").status(), 502);
    /// assert_eq!(Error::function("E", "m").status(), 500);
    /// ```
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The JSON wire form: `{"kind","errorType","errorMessage"}`.
    ///
    /// ```
    /// use faas_api::Error;
    /// let wire = Error::not_found("no function named `x`").to_json();
    /// assert_eq!(Error::from_json(&wire).unwrap(), Error::not_found("no function named `x`"));
    /// ```
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an error always serialises")
    }

    /// Parses the JSON wire form; `None` when `bytes` is not one.
    ///
    /// ```
    /// use faas_api::{Error, ErrorKind};
    /// let e = Error::from_json(br#"{"kind":"function","errorType":"ProbeError","errorMessage":"boom"}"#).unwrap();
    /// assert_eq!((e.kind(), e.error_type(), e.message()), (ErrorKind::Function, "ProbeError", "boom"));
    /// assert_eq!(Error::from_json(b"Internal Server Error"), None);
    /// ```
    pub fn from_json(bytes: &[u8]) -> Option<Error> {
        serde_json::from_slice(bytes).ok()
    }

    /// Builds an error from an HTTP status and body of a peer that speaks our wire form, falling
    /// back to the status's kind ([`ErrorKind::from_status`]) and the body (its first 4 KiB,
    /// trimmed) as message, or `HTTP status N` when the body is empty.
    ///
    /// ```
    /// use faas_api::{Error, ErrorKind};
    /// let ours = Error::throttled("queue full");
    /// assert_eq!(Error::from_http(500, &ours.to_json()), ours);
    ///
    /// let foreign = Error::from_http(503, b"  upstream down\n");
    /// assert_eq!((foreign.kind(), foreign.message()), (ErrorKind::BackendUnavailable, "upstream down"));
    /// assert_eq!(Error::from_http(504, b"").message(), "HTTP status 504");
    /// ```
    pub fn from_http(status: u16, body: &[u8]) -> Error {
        if let Some(e) = Error::from_json(body) {
            return e;
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).trim().to_string();
        let message = if text.is_empty() { format!("HTTP status {status}") } else { text };
        Error::new(ErrorKind::from_status(status), message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::bad_input(format!("invalid JSON: {e}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::function("IoError", e.to_string())
    }
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::function("FunctionError", message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error::function("FunctionError", message)
    }
}

impl From<Box<dyn std::error::Error + Send + Sync>> for Error {
    fn from(e: Box<dyn std::error::Error + Send + Sync>) -> Error {
        match e.downcast::<Error>() {
            Ok(e) => *e,
            Err(e) => Error::function("FunctionError", e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_wire_name_and_has_a_distinct_status() {
        let mut statuses = std::collections::HashSet::new();
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(k.as_str()), Some(k));
            assert!(statuses.insert(k.status()), "{k} shares a status");
            assert_eq!(ErrorKind::from_status(k.status()), k);
        }
    }

    #[test]
    fn wire_form_uses_lambda_style_field_names() {
        let v: serde_json::Value = serde_json::from_slice(&Error::function("ProbeError", "boom").to_json()).unwrap();
        assert_eq!(v["kind"], "function");
        assert_eq!(v["errorType"], "ProbeError");
        assert_eq!(v["errorMessage"], "boom");
    }

    #[test]
    fn foreign_http_errors_map_by_status() {
        let e = Error::from_http(429, b"slow down");
        assert_eq!(e.kind(), ErrorKind::Throttled);
        assert_eq!(e.message(), "slow down");
    }
}
