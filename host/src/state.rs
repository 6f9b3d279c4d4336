//! `cx.state()` over HTTP: the [`StateStore`] a function uses on any backend, talking to the event
//! gateway's state service (`/state/v1/<app>/<key>`, see `faas_gateway::state`).
//!
//! A runner puts the service's address for the function's app and the app's token into the
//! function's environment ([`ENV_STATE_URL`], [`ENV_STATE_TOKEN`]); [`HttpState::from_env`] reads
//! them. The token is sent as a bearer token and never logged.

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use faas_api::state::{Expect, Page, SetOptions, StateStore, Version, Versioned};
use faas_api::{Error, ErrorKind};
use http::{Method, Request};
use http_body_util::Full;
use std::time::{Duration, UNIX_EPOCH};

use crate::client::{HttpClient, SendError};

pub use faas_api::state::{ENV_STATE_TOKEN, ENV_STATE_URL};

use faas_api::state::{EXPIRES_HEADER as EXPIRES, TTL_HEADER as TTL, VERSION_HEADER as VERSION};

/// Largest answer read: a value at its limit, or a page of them in base64.
const MAX_ANSWER: usize = 64 << 20;

/// The state service of one app over HTTP.
pub struct HttpState {
    base: String,
    token: String,
    client: HttpClient,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState").field("base", &self.base).field("token", &"<redacted>").finish()
    }
}

impl HttpState {
    /// The service at `base` (the app's URL, `.../state/v1/<app>`) with the app's `token`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> HttpState {
        HttpState {
            base: base.into().trim_end_matches('/').to_string(),
            token: token.into(),
            client: HttpClient::new(),
        }
    }

    /// The service `env` names ([`ENV_STATE_URL`] and [`ENV_STATE_TOKEN`]), if it names one.
    ///
    /// ```
    /// use faas_host::state::HttpState;
    /// let env = |k: &str| (k == "FAAS_STATE_URL").then(|| "http://127.0.0.1:8090/state/v1/shop".to_string());
    /// assert!(HttpState::from_env(&env).is_none()); // no token: no state service
    /// let both = |k: &str| Some(if k == "FAAS_STATE_URL" { "http://127.0.0.1:8090/state/v1/shop" } else { "t" }.to_string());
    /// assert!(format!("{:?}", HttpState::from_env(&both).unwrap()).contains("<redacted>"));
    /// ```
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<HttpState> {
        let url = env(ENV_STATE_URL).filter(|u| !u.trim().is_empty())?;
        let token = env(ENV_STATE_TOKEN).filter(|t| !t.trim().is_empty())?;
        Some(HttpState::new(url, token))
    }

    /// [`HttpState::from_env`] as the store a context takes, what every host gives `cx.state()`.
    ///
    /// ```
    /// assert!(faas_host::state::HttpState::store_from_env(&|_| None).is_none());
    /// ```
    pub fn store_from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<std::sync::Arc<dyn StateStore>> {
        HttpState::from_env(env).map(|s| std::sync::Arc::new(s) as std::sync::Arc<dyn StateStore>)
    }

    fn url(&self, key: &str) -> String {
        let segments: Vec<String> = key
            .split('/')
            .map(|s| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string())
            .collect();
        format!("{}/{}", self.base, segments.join("/"))
    }

    async fn send(
        &self,
        method: Method,
        url: String,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
    ) -> Result<(http::response::Parts, Bytes), Error> {
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.token));
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let req = req.body(Full::new(body)).map_err(|e| Error::bad_input(format!("state request to {url}: {e}")))?;
        let (parts, body) = self.client.send(req, MAX_ANSWER).await.map_err(|e| match e {
            SendError::Request(e) => Error::unavailable(format!("cannot reach the state service at {url}: {e}")),
            SendError::Body(e) => Error::unavailable(format!("the state service's answer from {url}: {e}")),
        })?;
        if parts.status.is_success() {
            return Ok((parts, body));
        }
        // The service answers the portable error; anything else (a proxy's page) by its status.
        Err(Error::from_json(&body).unwrap_or_else(|| {
            Error::new(
                ErrorKind::from_status(parts.status.as_u16()),
                format!("the state service at {url} answered {}", parts.status),
            )
        }))
    }
}

fn header_u64(parts: &http::response::Parts, name: &str) -> Option<u64> {
    parts.headers.get(name)?.to_str().ok()?.parse().ok()
}

fn expect_headers(expect: Expect) -> Vec<(&'static str, String)> {
    match expect {
        Expect::Any => vec![],
        Expect::Absent => vec![("if-none-match", "*".to_string())],
        Expect::Version(v) => vec![("if-match", v.to_string())],
    }
}

fn json_of(body: &[u8], what: &str) -> Result<serde_json::Value, Error> {
    serde_json::from_slice(body).map_err(|e| Error::unavailable(format!("the state service's {what} is not JSON: {e}")))
}

#[async_trait]
impl StateStore for HttpState {
    async fn get(&self, key: &str) -> Result<Option<Versioned<Bytes>>, Error> {
        match self.send(Method::GET, self.url(key), vec![], Bytes::new()).await {
            Ok((parts, body)) => {
                let version = header_u64(&parts, VERSION)
                    .ok_or_else(|| Error::unavailable("the state service answered a read without its version"))?;
                let expires_at = header_u64(&parts, EXPIRES).map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
                Ok(Some(Versioned { value: body, version: Version(version), expires_at }))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<Version, Error> {
        let mut headers = expect_headers(options.expect);
        if let Some(ttl) = options.ttl {
            headers.push((TTL, ttl.as_millis().max(1).to_string()));
        }
        let (_, body) = self.send(Method::PUT, self.url(key), headers, value).await?;
        let v = json_of(&body, "answer to a write")?;
        v["version"]
            .as_u64()
            .map(Version)
            .ok_or_else(|| Error::unavailable("the state service answered a write without its version"))
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<bool, Error> {
        let (_, body) = self.send(Method::DELETE, self.url(key), expect_headers(expect), Bytes::new()).await?;
        Ok(json_of(&body, "answer to a delete")?["deleted"].as_bool().unwrap_or(false))
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page, Error> {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
        let mut query = format!("prefix={}&limit={limit}", enc(prefix));
        if let Some(a) = after {
            query.push_str(&format!("&after={}", enc(a)));
        }
        let (_, body) = self.send(Method::GET, format!("{}?{query}", self.base), vec![], Bytes::new()).await?;
        let v = json_of(&body, "page")?;
        let mut entries = Vec::new();
        for e in v["entries"].as_array().into_iter().flatten() {
            let (Some(key), Some(version), Some(value)) =
                (e["key"].as_str(), e["version"].as_u64(), e["value"].as_str())
            else {
                return Err(Error::unavailable(
                    "the state service sent a page entry without its key, version or value",
                ));
            };
            let value = base64::engine::general_purpose::STANDARD
                .decode(value)
                .map_err(|e| Error::unavailable(format!("the state service sent a value that is not base64: {e}")))?;
            let expires_at = e["expiresMs"].as_u64().map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
            entries.push((
                key.to_string(),
                Versioned { value: Bytes::from(value), version: Version(version), expires_at },
            ));
        }
        Ok(Page { entries, next: v["next"].as_str().map(str::to_string) })
    }
}
