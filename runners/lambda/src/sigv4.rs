//! AWS Signature Version 4 for the function side's few calls to AWS (`cx.invoke` calls Lambda's
//! Invoke API), following the published algorithm
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>).
//!
//! Written here rather than taken from the `aws-sigv4` crate because a function binary pays for
//! every byte it links: that crate brings the Smithy runtime types with it (about 380 KB in a
//! release `bootstrap`), while this is HMAC-SHA256 over a few strings. The tests check every
//! signature against `aws-sigv4` itself.
//!
//! ```
//! use faas_runner_lambda::sigv4::{Keys, sign};
//! let keys = Keys { access_key: "AKIDEXAMPLE".into(), secret_key: "secret".into(), session_token: None };
//! let mut req = http::Request::post("https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/f/invocations")
//!     .body(Vec::<u8>::new()).unwrap();
//! let at = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap().to_utc();
//! sign(&mut req, b"{}", &keys, "eu-west-1", "lambda", at);
//! let auth = req.headers()["authorization"].to_str().unwrap();
//! assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/eu-west-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature="));
//! assert_eq!(req.headers()["x-amz-date"], "20261201T100000Z");
//! ```

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use http::{HeaderValue, Request};
use sha2::{Digest, Sha256};

type HmacSha256 = hmac::Hmac<Sha256>;

/// The credentials a request is signed with.
#[derive(Clone)]
pub struct Keys {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_key: String,
    /// `AWS_SESSION_TOKEN`, for temporary credentials (what Lambda gives a function).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the token.
        f.debug_struct("Keys").field("access_key", &self.access_key).finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 encoding of everything but the unreserved characters (and `/` when `keep_slash`).
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `s` with its `%XX` escapes decoded (a URI holds its path and query encoded once).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The canonical query string: each name and value encoded, sorted by name then value.
fn canonical_query(query: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&percent_decode(k), false), uri_encode(&percent_decode(v), false))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Signs `req` (whose body is `body`) for `service` in `region` at time `at`: adds `host` when
/// missing, `x-amz-date`, `x-amz-security-token` with a session token, and `authorization`.
/// Every header of the request is signed. The path is encoded twice, as every service but S3
/// expects.
pub fn sign<B>(req: &mut Request<B>, body: &[u8], keys: &Keys, region: &str, service: &str, at: DateTime<Utc>) {
    let amz_date = at.format("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];
    let headers = req.headers_mut();
    headers.insert("x-amz-date", HeaderValue::from_str(&amz_date).expect("a date is a header value"));
    if let Some(token) = &keys.session_token {
        if let Ok(v) = HeaderValue::from_str(token) {
            headers.insert("x-amz-security-token", v);
        }
    }
    if !req.headers().contains_key(http::header::HOST) {
        if let Some(host) = req.uri().authority().map(|a| a.as_str().to_string()) {
            if let Ok(v) = HeaderValue::from_str(&host) {
                req.headers_mut().insert(http::header::HOST, v);
            }
        }
    }
    let mut signed: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "authorization")
        .map(|(k, v)| {
            let value = String::from_utf8_lossy(v.as_bytes());
            (k.as_str().to_ascii_lowercase(), value.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect();
    signed.sort();
    // Several values of one header are joined with commas, in their order.
    let mut merged: Vec<(String, String)> = Vec::new();
    for (k, v) in signed {
        match merged.last_mut() {
            Some((last, values)) if *last == k => {
                values.push(',');
                values.push_str(&v);
            }
            _ => merged.push((k, v)),
        }
    }
    let canonical_headers: String = merged.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = merged.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let path = if req.uri().path().is_empty() { "/" } else { req.uri().path() };
    let canonical_path = uri_encode(&uri_encode(&percent_decode(path), true), true);
    let canonical_request = format!(
        "{}\n{canonical_path}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        req.method().as_str(),
        canonical_query(req.uri().query()),
        hex(&Sha256::digest(body)),
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical_request.as_bytes())));
    let mut key = hmac(format!("AWS4{}", keys.secret_key).as_bytes(), date);
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex(&hmac(&key, &string_to_sign));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        keys.access_key
    );
    if let Ok(v) = HeaderValue::from_str(&authorization) {
        req.headers_mut().insert(http::header::AUTHORIZATION, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;

    /// The signature `aws-sigv4` computes for the same request, time and keys.
    fn reference(req: &Request<Vec<u8>>, keys: &Keys, region: &str, at: SystemTime) -> String {
        let identity = aws_credential_types::Credentials::new(
            keys.access_key.clone(),
            keys.secret_key.clone(),
            keys.session_token.clone(),
            None,
            "test",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("lambda")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers: Vec<(&str, &str)> = req.headers().iter().map(|(k, v)| (k.as_str(), v.to_str().unwrap())).collect();
        let uri = req.uri().to_string();
        let signable =
            SignableRequest::new(req.method().as_str(), &uri, headers.into_iter(), SignableBody::Bytes(req.body()))
                .unwrap();
        let (instructions, _) = aws_sigv4::http_request::sign(signable, &params).unwrap().into_parts();
        let mut signed = req.clone();
        instructions.apply_to_request_http1x(&mut signed);
        signed.headers()["authorization"].to_str().unwrap().to_string()
    }

    fn request(uri: &str, body: &[u8], extra: &[(&str, &str)]) -> Request<Vec<u8>> {
        let mut b = Request::post(uri);
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        let mut req = b.body(body.to_vec()).unwrap();
        let host = req.uri().authority().unwrap().as_str().to_string();
        req.headers_mut().insert(http::header::HOST, HeaderValue::from_str(&host).unwrap());
        req
    }

    #[test]
    fn signatures_match_the_aws_sigv4_crate() {
        let at_chrono = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:11:12Z").unwrap().to_utc();
        let at: SystemTime = at_chrono.into();
        let keys = [
            Keys {
                access_key: "AKIDEXAMPLE".into(),
                secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                session_token: None,
            },
            Keys {
                access_key: "ASIAEMULATOR00000000".into(),
                secret_key: "s3cr3t".into(),
                session_token: Some("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==".into()),
            },
        ];
        let cases = [
            request(
                "https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/shop-billing/invocations",
                b"{\"a\":1}",
                &[
                    ("x-amz-invocation-type", "RequestResponse"),
                    ("x-amz-client-context", "eyJjdXN0b20iOnt9fQ=="),
                    ("content-type", "application/json"),
                ],
            ),
            request("http://127.0.0.1:9001/2015-03-31/functions/f/invocations?Qualifier=%24LATEST", b"", &[]),
            request(
                "http://127.0.0.1:9001/2015-03-31/functions/a%20b/invocations",
                b"x",
                &[("x-custom", "  two   spaces ")],
            ),
        ];
        for k in &keys {
            for case in &cases {
                let mut ours = case.clone();
                let body = ours.body().clone();
                sign(&mut ours, &body, k, "eu-west-1", "lambda", at_chrono);
                let theirs = reference(case, k, "eu-west-1", at);
                assert_eq!(ours.headers()["authorization"].to_str().unwrap(), theirs, "{}", case.uri());
                assert_eq!(
                    ours.headers().get("x-amz-security-token").map(|v| v.to_str().unwrap().to_string()),
                    k.session_token.clone()
                );
            }
        }
    }

    #[test]
    fn keys_never_show_their_secret() {
        let k = Keys { access_key: "AKID".into(), secret_key: "hunter2".into(), session_token: Some("tok".into()) };
        let shown = format!("{k:?}");
        assert!(shown.contains("AKID") && !shown.contains("hunter2") && !shown.contains("tok"), "{shown}");
    }
}
