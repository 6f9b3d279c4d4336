//! The clients of one profile: the Cloud Functions v2 API through Google's SDK
//! (`google-cloud-functions-v2`), and plain HTTP (the code upload, the functions' own URLs and
//! Cloud Logging's `entries:list`) with the same credentials.
//!
//! Without an `endpoint`: Application Default Credentials (scope `cloud-platform`) for the APIs,
//! and for a function's URL an ID token for that URL (Cloud Run takes ID tokens only); where the
//! credentials cannot mint ID tokens (a user's `gcloud auth application-default login`), the
//! access token is sent instead, which Cloud Run refuses unless the function allows
//! unauthenticated calls. With an `endpoint` (a local Cloud Functions): anonymous credentials, no
//! `Authorization` header anywhere.

use std::time::Duration;

use faas_api::{Error, Progress};
use google_cloud_functions_v2::client::FunctionService;
use google_cloud_functions_v2::model::OperationMetadata;
use google_cloud_lro::{Poller, PollingResult};
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::records::google_error;
use crate::settings::GcfSettings;

/// The OAuth scope of the APIs.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Most bytes of an answer read.
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// One plain HTTP answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The clients of one profile.
pub(crate) struct Client {
    settings: GcfSettings,
    http: reqwest::Client,
    service: OnceCell<FunctionService>,
    credentials: OnceCell<Option<google_cloud_auth::credentials::Credentials>>,
    /// ID-token credentials by audience (`None`: these credentials mint none), kept so that
    /// their tokens are cached.
    id_tokens: std::sync::Mutex<std::collections::BTreeMap<String, Option<IdTokens>>>,
}

type IdTokens = google_cloud_auth::credentials::idtoken::IDTokenCredentials;

impl Client {
    pub(crate) fn new(settings: GcfSettings) -> Result<Client, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::unavailable(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            settings,
            http,
            service: OnceCell::new(),
            credentials: OnceCell::new(),
            id_tokens: Default::default(),
        })
    }

    pub(crate) fn settings(&self) -> &GcfSettings {
        &self.settings
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The Cloud Functions client, made on first use.
    pub(crate) async fn service(&self) -> Result<&FunctionService, Error> {
        self.service
            .get_or_try_init(|| async {
                let mut builder = FunctionService::builder();
                if let Some(endpoint) = &self.settings.endpoint {
                    builder = builder
                        .with_endpoint(endpoint.clone())
                        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build());
                }
                builder.build().await.map_err(|e| {
                    Error::unavailable(format!("cannot set up the Cloud Functions client: {e}"))
                        .with_type("Google.Credentials")
                })
            })
            .await
    }

    /// The default credentials (none for a local Cloud Functions), made on first use.
    async fn credentials(&self) -> Result<Option<&google_cloud_auth::credentials::Credentials>, Error> {
        let c = self
            .credentials
            .get_or_try_init(|| async {
                if self.settings.is_local() {
                    return Ok(None);
                }
                google_cloud_auth::credentials::Builder::default()
                    .with_scopes([SCOPE])
                    .build()
                    .map(Some)
                    .map_err(|e| credentials_error(&e.to_string()))
            })
            .await?;
        Ok(c.as_ref())
    }

    /// The headers that authenticate a call to a Google API (none for a local one).
    pub(crate) async fn api_headers(&self) -> Result<HeaderMap, Error> {
        let Some(credentials) = self.credentials().await? else { return Ok(HeaderMap::new()) };
        match credentials.headers(http::Extensions::new()).await {
            Ok(google_cloud_auth::credentials::CacheableResource::New { data, .. }) => Ok(data),
            Ok(google_cloud_auth::credentials::CacheableResource::NotModified) => Ok(HeaderMap::new()),
            Err(e) => Err(credentials_error(&e.to_string())),
        }
    }

    /// The headers that authenticate a call to the function at `url`: an ID token for it, else
    /// the API headers (see the [module docs](self)).
    pub(crate) async fn invoke_headers(&self, url: &str) -> Result<HeaderMap, Error> {
        if self.settings.is_local() {
            return Ok(HeaderMap::new());
        }
        let audience = url.trim_end_matches('/').to_string();
        let creds = self
            .id_tokens
            .lock()
            .expect("lock")
            .entry(audience.clone())
            .or_insert_with(|| google_cloud_auth::credentials::idtoken::Builder::new(audience).build().ok())
            .clone();
        if let Some(creds) = creds {
            if let Ok(token) = creds.id_token().await {
                let mut h = HeaderMap::new();
                if let Ok(v) = format!("Bearer {token}").parse() {
                    h.insert(reqwest::header::AUTHORIZATION, v);
                }
                return Ok(h);
            }
        }
        self.api_headers().await
    }

    /// Sends `request` and reads the answer (every status is an answer); `what` names it in errors.
    pub(crate) async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Answer, Error> {
        let mut resp = request.send().await.map_err(|e| {
            let why = if e.is_timeout() { "timed out".to_string() } else { without_url(&e) };
            Error::unavailable(format!("{what}: {why}"))
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Error::unavailable(format!("{what}: reading the answer: {}", without_url(&e))))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(Error::unavailable(format!("{what}: the answer is over {MAX_ANSWER} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, headers, body })
    }

    /// Uploads `zip` to a signed upload URL: `PUT`, `content-type: application/zip`, no
    /// `Authorization` (the URL itself grants the upload).
    pub(crate) async fn upload(&self, url: &str, zip: Vec<u8>) -> Result<(), Error> {
        let request = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/zip")
            .timeout(Duration::from_secs(600))
            .body(zip);
        let answer = self.send(request, "uploading the source archive").await?;
        if (200..300).contains(&answer.status) {
            return Ok(());
        }
        Err(super::records::http_error("uploading the source archive", answer.status, &answer.body))
    }

    /// Cloud Logging's `entries:list` with `body`.
    pub(crate) async fn list_entries(&self, body: &Value) -> Result<Value, Error> {
        let url = format!("{}/v2/entries:list", self.settings.logging_endpoint());
        let request =
            self.http.post(&url).headers(self.api_headers().await?).json(body).timeout(Duration::from_secs(60));
        let what = format!("reading the logs ({url})");
        let answer = self.send(request, &what).await?;
        if (200..300).contains(&answer.status) {
            return Ok(serde_json::from_slice(&answer.body).unwrap_or_default());
        }
        Err(super::records::http_error(&what, answer.status, &answer.body))
    }
}

/// Follows a long-running operation to its end, telling `progress` each stage as it changes.
pub(crate) async fn follow<P, R>(mut poller: P, what: &str, progress: &dyn Progress) -> Result<R, Error>
where
    P: Poller<R, OperationMetadata>,
{
    let mut told = String::new();
    let mut errors = 0;
    let mut wait = Duration::from_millis(250);
    loop {
        match poller.poll().await {
            Some(PollingResult::Completed(r)) => return r.map_err(|e| google_error(what, &e)),
            Some(PollingResult::InProgress(metadata)) => {
                errors = 0;
                if let Some(line) = metadata.as_ref().and_then(stages_line) {
                    if line != told {
                        progress.step(&format!("{what}: {line}"));
                        told = line;
                    }
                }
            }
            Some(PollingResult::PollingError(e)) => {
                errors += 1;
                if errors >= 5 {
                    return Err(google_error(what, &e));
                }
            }
            None => return Err(Error::unavailable(format!("{what}: the operation ended without a result"))),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// The stages of an operation in one line (`BUILD: IN_PROGRESS, SERVICE: NOT_STARTED`).
fn stages_line(metadata: &OperationMetadata) -> Option<String> {
    let stages: Vec<String> = metadata
        .stages
        .iter()
        .filter_map(|s| {
            let name = s.name.name()?;
            let state = s.state.name().unwrap_or("STATE_UNSPECIFIED");
            Some(match s.message.as_str() {
                "" => format!("{name}: {state}"),
                m => format!("{name}: {state} ({m})"),
            })
        })
        .collect();
    (!stages.is_empty()).then(|| stages.join(", "))
}

fn credentials_error(why: &str) -> Error {
    Error::unauthorized(format!(
        "no usable Google credentials ({why}); set GOOGLE_APPLICATION_CREDENTIALS to a service account key, or run \
         `gcloud auth application-default login`"
    ))
    .with_type("Google.Credentials")
}

/// A reqwest error's text without the URL (a signed URL must not be printed).
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
