//! Raw payloads: bytes with an optional content type.
//!
//! ```
//! use faas_api::payload::{self, Payload};
//! let p = Payload::new(&b"hi"[..], Some(payload::OCTET_STREAM.to_string()));
//! assert_eq!(p.len(), 2);
//! assert!(!p.is_json_or_untyped());
//! ```

use bytes::Bytes;

/// The content type of JSON payloads.
///
/// ```
/// let p = faas_api::Payload::json(&1).unwrap();
/// assert_eq!(p.content_type(), Some(faas_api::payload::JSON));
/// assert_eq!(faas_api::payload::JSON, "application/json");
/// ```
pub const JSON: &str = "application/json";
/// The content type of structured-mode CloudEvents.
///
/// ```
/// assert_eq!(faas_api::payload::CLOUDEVENTS_JSON, "application/cloudevents+json");
/// assert!(faas_api::payload::is_json_media_type(faas_api::payload::CLOUDEVENTS_JSON));
/// ```
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";
/// The content type of opaque bytes.
///
/// ```
/// let p = faas_api::Payload::bytes(&b"\x00\x01"[..]);
/// assert_eq!(p.content_type(), Some(faas_api::payload::OCTET_STREAM));
/// assert_eq!(faas_api::payload::OCTET_STREAM, "application/octet-stream");
/// ```
pub const OCTET_STREAM: &str = "application/octet-stream";

/// A request or response body with its content type, the unit every backend carries.
///
/// ```
/// use faas_api::Payload;
/// let p = Payload::json(&serde_json::json!({"name": "Ada"})).unwrap();
/// assert_eq!(p.content_type(), Some("application/json"));
/// assert_eq!(p.body().as_ref(), br#"{"name":"Ada"}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payload {
    body: Bytes,
    content_type: Option<String>,
}

impl Payload {
    /// A payload of `body` with the given content type.
    ///
    /// ```
    /// use faas_api::Payload;
    /// let p = Payload::new("hello", Some("text/plain".to_string()));
    /// assert_eq!(p.body().as_ref(), b"hello");
    /// assert_eq!(p.content_type(), Some("text/plain"));
    /// assert_eq!(Payload::new(vec![1u8, 2], None).content_type(), None);
    /// ```
    pub fn new(body: impl Into<Bytes>, content_type: Option<String>) -> Payload {
        Payload { body: body.into(), content_type }
    }

    /// A payload with no body and no content type.
    ///
    /// ```
    /// let p = faas_api::Payload::empty();
    /// assert!(p.is_empty());
    /// assert_eq!(p.content_type(), None);
    /// ```
    pub fn empty() -> Payload {
        Payload::default()
    }

    /// Opaque bytes (`application/octet-stream`).
    ///
    /// ```
    /// let p = faas_api::Payload::bytes(vec![0xde, 0xad]);
    /// assert_eq!(p.body().as_ref(), &[0xde, 0xad]);
    /// assert_eq!(p.content_type(), Some("application/octet-stream"));
    /// ```
    pub fn bytes(body: impl Into<Bytes>) -> Payload {
        Payload::new(body, Some(OCTET_STREAM.to_string()))
    }

    /// A serialised JSON value (`application/json`). Fails with a function error of type
    /// `SerializationError` when `value` cannot be serialised.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// let p = faas_api::Payload::json(&vec![1, 2, 3]).unwrap();
    /// assert_eq!(p.body().as_ref(), b"[1,2,3]");
    /// assert_eq!(p.content_type(), Some("application/json"));
    /// // JSON object keys must be strings.
    /// let bad: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
    /// assert_eq!(faas_api::Payload::json(&bad).unwrap_err().error_type(), "SerializationError");
    /// ```
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Payload, crate::Error> {
        let body = serde_json::to_vec(value)
            .map_err(|e| crate::Error::function("SerializationError", format!("cannot serialise the reply: {e}")))?;
        Ok(Payload::new(body, Some(JSON.to_string())))
    }

    /// The body bytes.
    ///
    /// ```
    /// let p = faas_api::Payload::bytes("abc");
    /// assert_eq!(p.body().as_ref(), b"abc");
    /// ```
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Consumes the payload, returning the body.
    ///
    /// ```
    /// let body: bytes::Bytes = faas_api::Payload::bytes("abc").into_body();
    /// assert_eq!(body, "abc");
    /// ```
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// The content type, if known.
    ///
    /// ```
    /// use faas_api::Payload;
    /// assert_eq!(Payload::new("x", Some("text/plain".into())).content_type(), Some("text/plain"));
    /// assert_eq!(Payload::new("x", None).content_type(), None);
    /// ```
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// Body length in bytes.
    ///
    /// ```
    /// assert_eq!(faas_api::Payload::bytes("héllo").len(), 6);
    /// ```
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether the body is empty (the content type is not looked at).
    ///
    /// ```
    /// use faas_api::Payload;
    /// assert!(Payload::empty().is_empty());
    /// assert!(Payload::new("", Some("application/json".into())).is_empty());
    /// assert!(!Payload::bytes("x").is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// Whether the content type is JSON (`*/json`, `*/*+json`) or absent.
    ///
    /// ```
    /// use faas_api::Payload;
    /// assert!(Payload::new("{}", None).is_json_or_untyped());
    /// assert!(Payload::new("{}", Some("application/json; charset=utf-8".into())).is_json_or_untyped());
    /// assert!(Payload::new("{}", Some("application/cloudevents+json".into())).is_json_or_untyped());
    /// assert!(!Payload::new("{}", Some("text/plain".into())).is_json_or_untyped());
    /// ```
    pub fn is_json_or_untyped(&self) -> bool {
        match self.content_type() {
            None => true,
            Some(ct) => is_json_media_type(ct),
        }
    }

    /// Whether a body of this content type may be decoded as JSON by a typed function: JSON
    /// types, no type, and the text types tools send by default (`text/plain`, and
    /// `application/x-www-form-urlencoded`, which is what `curl -d` sends). Like Lambda, a typed
    /// function does not insist on the header; it refuses only types that are clearly not text.
    ///
    /// ```
    /// use faas_api::Payload;
    /// let with = |ct: &str| Payload::new("{}", Some(ct.to_string()));
    /// assert!(Payload::new("{}", None).may_hold_json());
    /// assert!(with("application/json").may_hold_json());
    /// assert!(with("Text/Plain; charset=utf-8").may_hold_json());
    /// assert!(with("application/x-www-form-urlencoded").may_hold_json());
    /// assert!(!with("image/png").may_hold_json());
    /// assert!(!with("application/octet-stream").may_hold_json());
    /// ```
    pub fn may_hold_json(&self) -> bool {
        match self.content_type() {
            None => true,
            Some(ct) => {
                let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                is_json_media_type(&essence)
                    || essence.is_empty()
                    || essence == "text/plain"
                    || essence == "application/x-www-form-urlencoded"
            }
        }
    }

    /// Decodes the body as JSON into `T`, mapping failures to a bad-input error naming the problem.
    ///
    /// ```
    /// use faas_api::{ErrorKind, Payload};
    /// let err = Payload::new(&b"{oops"[..], None).json_as::<serde_json::Value>().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::BadInput);
    /// assert!(err.message().contains("line 1 column 2"), "{}", err.message());
    /// let png = Payload::new(&b"{}"[..], Some("image/png".into())).json_as::<serde_json::Value>().unwrap_err();
    /// assert_eq!(png.error_type(), "UnsupportedMediaType");
    /// let curl = Payload::new(&b"{}"[..], Some("application/x-www-form-urlencoded".into()));
    /// assert!(curl.json_as::<serde_json::Value>().is_ok());
    /// ```
    pub fn json_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::Error> {
        if !self.may_hold_json() {
            return Err(crate::Error::bad_input(format!(
                "expected a JSON body, got content type `{}`",
                self.content_type().unwrap_or_default()
            ))
            .with_type("UnsupportedMediaType"));
        }
        if self.body.is_empty() {
            return Err(crate::Error::bad_input("expected a JSON body, got an empty body"));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            let what = if e.is_data() { "JSON of the wrong shape" } else { "malformed JSON" };
            crate::Error::bad_input(format!("{what}: {e}"))
        })
    }
}

/// Whether a media type is JSON: `application/json`, `text/json` or any `*/*+json`, parameters ignored.
///
/// ```
/// assert!(faas_api::payload::is_json_media_type("application/json; charset=utf-8"));
/// assert!(faas_api::payload::is_json_media_type("application/cloudevents+json"));
/// assert!(!faas_api::payload::is_json_media_type("text/plain"));
/// ```
pub fn is_json_media_type(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.split_once('/') {
        Some((_, sub)) => sub == "json" || sub.ends_with("+json"),
        None => false,
    }
}

/// How an error message names the JSON type of a value: `null`, `a boolean`, `a number`,
/// `a string`, `an array`, `an object` ("expected a string, got an array").
///
/// ```
/// assert_eq!(faas_api::json_kind(&serde_json::json!([1])), "an array");
/// assert_eq!(faas_api::json_kind(&serde_json::Value::Null), "null");
/// ```
pub fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
