//! Reading request bodies under a size limit: a `Content-Length` over the limit is refused
//! before a byte of the body is read; otherwise the body is read with a cap.

use axum::body::Body;
use bytes::Bytes;
use faas_api::Error;
use http::HeaderMap;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

/// Reads `body` completely, refusing more than `limit` bytes with a 413 naming the size and
/// the limit.
pub(crate) async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Error> {
    if let Some(len) = declared_length(headers)?
        && len > limit as u64
    {
        return Err(Error::payload_too_large(format!(
            "the request body is {len} bytes ({}); the limit is {limit} bytes ({})",
            human(len),
            human(limit as u64)
        )));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(Error::payload_too_large(format!(
            "the request body is over the limit of {limit} bytes ({})",
            human(limit as u64)
        ))),
        Err(e) => Err(Error::bad_input(format!("cannot read the request body: {e}"))),
    }
}

fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    match headers.get(http::header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| Error::bad_input("the `Content-Length` header is not a number")),
    }
}

/// `6291456` → `6.0 MiB`.
fn human(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else if b >= KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_header(n: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_LENGTH, n.parse().unwrap());
        h
    }

    #[tokio::test]
    async fn declared_length_over_the_limit_is_refused_with_size_and_limit() {
        let err = read_limited(&len_header("100000000"), Body::from("tiny"), 1024).await.unwrap_err();
        assert_eq!(err.kind(), faas_api::ErrorKind::PayloadTooLarge);
        assert!(err.message().contains("100000000 bytes"), "{}", err.message());
        assert!(err.message().contains("limit is 1024 bytes"), "{}", err.message());
    }

    #[tokio::test]
    async fn undeclared_body_over_the_limit_is_refused_and_one_at_the_limit_is_read() {
        let err = read_limited(&HeaderMap::new(), Body::from(vec![0u8; 11]), 10).await.unwrap_err();
        assert!(err.message().contains("over the limit of 10 bytes"), "{}", err.message());
        let ok = read_limited(&HeaderMap::new(), Body::from(vec![7u8; 10]), 10).await.unwrap();
        assert_eq!(ok.len(), 10);
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human(6 * 1024 * 1024), "6.0 MiB");
        assert_eq!(human(2048), "2.0 KiB");
        assert_eq!(human(12), "12 B");
    }
}
