//! The REST client of the OpenWhisk controller (`/api/v1`, apache/openwhisk
//! `docs/rest_api.md`): HTTP Basic auth with the `uuid:key`, JSON bodies, and OpenWhisk's errors
//! as portable ones ([`crate::wire::api_error`]).

use std::time::Duration;

use faas_api::Error;
use reqwest::{Method, StatusCode};

use crate::settings::OpenWhiskSettings;
use crate::wire;

/// Most bytes of an answer read (an activation record holds a result of up to 1 MB, logs of up
/// to 10 MB).
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// One answer: its status and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// The controller of one profile.
#[derive(Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    settings: OpenWhiskSettings,
}

impl Client {
    pub(crate) fn new(settings: OpenWhiskSettings) -> Result<Client, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::unavailable(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client { http, settings })
    }

    pub(crate) fn settings(&self) -> &OpenWhiskSettings {
        &self.settings
    }

    /// `method` on `<namespace URL>/<path>` (`path` may carry a query), with a JSON body. Fails
    /// only when the controller cannot be reached or its answer read; every status is an answer.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Answer, Error> {
        let url = format!("{}/{path}", self.settings.namespace_url());
        let (user, key) = self.settings.auth.split_once(':').unwrap_or((&self.settings.auth, ""));
        let mut req = self.http.request(method.clone(), &url).basic_auth(user, Some(key)).timeout(timeout);
        if let Some(body) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        let what = format!("{method} {url}");
        let mut resp = req.send().await.map_err(|e| {
            let why = if e.is_timeout() { "timed out".to_string() } else { without_url(&e) };
            Error::unavailable(format!("cannot reach the OpenWhisk API at {}: {what}: {why}", self.settings.endpoint))
        })?;
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Error::unavailable(format!("reading the answer of {what}: {}", without_url(&e))))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(Error::unavailable(format!("the answer of {what} is over {MAX_ANSWER} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, body })
    }

    /// [`Client::call`] that must answer 2xx; anything else is the portable error for `what`.
    pub(crate) async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        what: &str,
    ) -> Result<Answer, Error> {
        let answer = self.call(method, path, body, Duration::from_secs(120)).await?;
        if answer.status.is_success() {
            Ok(answer)
        } else {
            Err(wire::api_error(what, answer.status.as_u16(), &answer.body))
        }
    }
}

impl Client {
    /// Every entity of `collection` (`actions`, `triggers`, `rules`), page by page (OpenWhisk
    /// lists at most 200 at a time).
    pub(crate) async fn list_all(&self, collection: &str) -> Result<Vec<serde_json::Value>, Error> {
        const PAGE: usize = 200;
        let mut all = Vec::new();
        for skip in (0..).step_by(PAGE) {
            let what =
                format!("listing {collection} on {} (namespace {})", self.settings.endpoint, self.settings.namespace);
            let answer =
                self.expect(Method::GET, &format!("{collection}?limit={PAGE}&skip={skip}"), None, &what).await?;
            let page = match answer.json() {
                serde_json::Value::Array(page) => page,
                _ => vec![],
            };
            let last = page.len() < PAGE;
            all.extend(page);
            if last {
                break;
            }
        }
        Ok(all)
    }
}

/// A reqwest error's text without the URL (which the caller names already).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}
