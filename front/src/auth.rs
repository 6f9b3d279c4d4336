//! The management token: generation, validation and the bearer check in front of `/_faas/*`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use faas_api::Error;
use http::HeaderMap;
use rand::Rng as _;

use crate::server::{Shared, error_response};

/// Longest token accepted (it travels in a header).
const MAX_TOKEN: usize = 256;

/// A fresh random token: 32 hex digits (128 bits).
pub(crate) fn random_token() -> String {
    let bytes: [u8; 16] = rand::thread_rng().r#gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A configured token must be usable in an `Authorization` header: 1 to 256 visible ASCII
/// characters, no spaces. The error never echoes the token.
pub(crate) fn validate_token(token: &str) -> Result<(), Error> {
    if token.is_empty() {
        return Err(Error::bad_input("the management token is empty"));
    }
    if token.len() > MAX_TOKEN {
        return Err(Error::bad_input(format!(
            "the management token is {} characters long; the limit is {MAX_TOKEN}",
            token.len()
        )));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::bad_input("the management token must be visible ASCII characters without spaces"));
    }
    Ok(())
}

/// Compares in time that depends only on the lengths, not on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// Checks `Authorization: Bearer <token>`; the error says what was wrong.
pub(crate) fn check(expected: &str, headers: &HeaderMap) -> Result<(), Error> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err(Error::unauthorized(
            "missing `Authorization: Bearer <token>` header; management endpoints need the token the faas dev server printed",
        ));
    };
    let value = value.as_bytes();
    let scheme_ok = value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer ");
    if !scheme_ok {
        return Err(Error::unauthorized("the `Authorization` header must be `Bearer <token>`"));
    }
    let given = value[7..].trim_ascii();
    if !constant_time_eq(given, expected.as_bytes()) {
        return Err(Error::unauthorized("wrong bearer token in the `Authorization` header"));
    }
    Ok(())
}

/// Middleware for the management routes: 401 with the portable error unless the token matches.
pub(crate) async fn require_token(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    match check(&shared.token, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::debug!(path = %req.uri().path(), "management call refused: {}", e.message());
            let mut resp = error_response(&e);
            resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn random_tokens_are_32_hex_digits_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(validate_token(&a).is_ok());
    }

    #[test]
    fn bearer_check_says_what_is_wrong() {
        assert!(check("s3cret", &HeaderMap::new()).unwrap_err().message().contains("missing"));
        assert!(check("s3cret", &with_auth("Basic czNjcmV0")).unwrap_err().message().contains("Bearer <token>"));
        assert!(check("s3cret", &with_auth("Bearer s3cre")).unwrap_err().message().contains("wrong"));
        assert!(check("s3cret", &with_auth("Bearer s3cretX")).unwrap_err().message().contains("wrong"));
        assert!(check("s3cret", &with_auth("Bearer s3cret")).is_ok());
        assert!(check("s3cret", &with_auth("bearer s3cret")).is_ok());
    }

    #[test]
    fn constant_time_eq_compares_whole_inputs() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn bad_configured_tokens_are_refused_without_echoing_them() {
        assert!(validate_token("").is_err());
        let err = validate_token("has space").unwrap_err();
        assert!(!err.message().contains("has space"));
        assert!(validate_token(&"x".repeat(300)).unwrap_err().message().contains("300"));
    }
}
