//! The line protocol between the pipes runner and a function process, shared by both halves.
//!
//! The runner starts the function binary with [`ENV_PIPES`] set and writes one [`Request`] per
//! line on its stdin. The process answers each request, in order, with one [`Answer`] line on
//! stdout; whatever else the function writes (its logs, on stderr and stdout) is the
//! invocation's log. After each answer the process writes the end marker [`END`] and the
//! request's id to both streams (on stdout it ends the answer line itself), so the runner knows
//! when it has every line of the invocation:
//!
//! ```text
//! stdin   {"id":"3f2c…","function":"hello","deadline_ms":1767225600000,"content_type":"application/json","body_base64":"IkFkYSI="}
//! stderr  2026-01-01T00:00:00Z  INFO hello: greeting Ada
//! stderr  __FAAS_PIPES_END__ 3f2c…
//! stdout  {"answer":"3f2c…","reply":{"content_type":"application/json","body_base64":"IkhlbGxvLCBBZGEhIg=="}}__FAAS_PIPES_END__ 3f2c…
//! ```
//!
//! A failed invocation answers with the portable error instead of a reply:
//! `{"answer":"3f2c…","error":{"kind":"function","errorType":"ProbeError","errorMessage":"boom"}}`.
//! The process exits when its stdin closes.

use base64::Engine as _;
use faas_api::{Error, Payload};
use serde::{Deserialize, Serialize};

/// The variable the runner sets in a function process (to [`VERSION`]); the host adapter
/// recognises its environment by it.
pub const ENV_PIPES: &str = "FAAS_PIPES";
/// The protocol version, the value of [`ENV_PIPES`].
pub const VERSION: &str = "1";
/// The end-of-invocation marker; the rest of its line is the invocation id.
pub const END: &str = "__FAAS_PIPES_END__";
/// The largest request or reply body, in bytes (1 MiB).
pub const MAX_PAYLOAD: usize = 1 << 20;
/// The longest line either side reads: a [`MAX_PAYLOAD`] body in base64, plus room for the rest.
pub const MAX_LINE: usize = MAX_PAYLOAD / 3 * 4 + 64 * 1024;

/// A body on the wire: its content type and its bytes in base64, so any payload fits on a line.
///
/// ```
/// use faas_api::Payload;
/// use faas_pipes::protocol::Body;
/// let body = Body::from(&Payload::bytes(vec![0u8, 1, 2]));
/// assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"content_type":"application/octet-stream","body_base64":"AAEC"}"#);
/// assert_eq!(body.into_payload().unwrap().body().as_ref(), [0u8, 1, 2]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    /// The payload's content type, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The payload's bytes, base64 (standard alphabet, padded).
    pub body_base64: String,
}

impl Body {
    /// The payload again; an error when `body_base64` is not base64.
    ///
    /// ```
    /// let bad = faas_pipes::protocol::Body { content_type: None, body_base64: "not base64!".into() };
    /// assert_eq!(bad.into_payload().unwrap_err().kind(), faas_api::ErrorKind::BadInput);
    /// ```
    pub fn into_payload(self) -> Result<Payload, Error> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.body_base64)
            .map_err(|e| Error::bad_input(format!("the body is not base64: {e}")))?;
        Ok(Payload::new(bytes, self.content_type))
    }
}

impl From<&Payload> for Body {
    fn from(payload: &Payload) -> Body {
        Body {
            content_type: payload.content_type().map(str::to_string),
            body_base64: base64::engine::general_purpose::STANDARD.encode(payload.body()),
        }
    }
}

/// One invocation, as the runner writes it on the process's stdin.
///
/// ```
/// use faas_pipes::protocol::{Body, Request};
/// let line = r#"{"id":"a1","function":"hello","deadline_ms":5,"body_base64":""}"#;
/// let request: Request = serde_json::from_str(line).unwrap();
/// assert_eq!((request.id.as_str(), request.function.as_str(), request.traceparent), ("a1", "hello", None));
/// assert!(request.body.into_payload().unwrap().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The invocation (activation) id.
    pub id: String,
    /// The function to run.
    pub function: String,
    /// When the runner kills the process if it has not answered, Unix epoch milliseconds.
    pub deadline_ms: u64,
    /// The caller's W3C `traceparent`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The input.
    #[serde(flatten)]
    pub body: Body,
}

/// The answer to the request with id `answer`: a reply, or the portable error.
///
/// ```
/// use faas_api::{Error, Payload};
/// use faas_pipes::protocol::Answer;
/// let ok = Answer::new("a1", Ok(Payload::bytes("hi")));
/// let line = serde_json::to_string(&ok).unwrap();
/// assert!(line.starts_with(&Answer::prefix("a1")), "{line}");
/// assert_eq!(ok.into_result().unwrap().body().as_ref(), b"hi");
///
/// let failed = Answer::new("a2", Err(Error::function("ProbeError", "boom")));
/// assert_eq!(failed.into_result().unwrap_err().error_type(), "ProbeError");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The id of the request answered. It comes first, so an answer line starts with
    /// [`Answer::prefix`].
    pub answer: String,
    /// The reply, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Body>,
    /// The error, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Error>,
}

impl Answer {
    /// The answer to request `id` with `result`.
    pub fn new(id: &str, result: Result<Payload, Error>) -> Answer {
        match result {
            Ok(reply) => Answer { answer: id.to_string(), reply: Some(Body::from(&reply)), error: None },
            Err(error) => Answer { answer: id.to_string(), reply: None, error: Some(error) },
        }
    }

    /// How the answer line to request `id` starts.
    ///
    /// ```
    /// assert_eq!(faas_pipes::protocol::Answer::prefix("a1"), r#"{"answer":"a1""#);
    /// ```
    pub fn prefix(id: &str) -> String {
        format!("{{\"answer\":{}", serde_json::Value::String(id.to_string()))
    }

    /// The invocation's result. An answer with neither a reply nor an error is a crash.
    pub fn into_result(self) -> Result<Payload, Error> {
        match (self.reply, self.error) {
            (_, Some(error)) => Err(error),
            (Some(reply), None) => reply.into_payload(),
            (None, None) => {
                Err(Error::crash(format!("the answer to `{}` has neither a reply nor an error", self.answer)))
            }
        }
    }
}
