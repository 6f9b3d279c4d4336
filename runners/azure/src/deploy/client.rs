//! The wire: ARM and Kudu through `azure_core`'s pipeline (its retries, its errors, bearer
//! tokens from `azure_identity`), and the function app's own host (`/api`, `/admin`) with its
//! keys.
//!
//! With a local `endpoint`, every request goes to that one address and names the host it is
//! meant for in its `Host` header, which is how the local Functions host tells ARM, a site's
//! Kudu and a site apart (as Azure's front ends do by DNS name).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{ClientOptions, Context, Method, Pipeline, PipelineSendOptions, Request, Url};
use faas_api::{Error, Progress};
use serde_json::Value;

use super::records::azure_error;
use crate::settings::{AzureSettings, API_VERSION};

/// The scope of ARM tokens (Kudu takes them too).
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// The bearer token sent to a local Functions host.
pub const DEVELOPMENT_TOKEN: &str = "faas-local-development";
/// How long a long-running ARM operation or an asynchronous zip deploy is followed.
pub const OPERATION_LIMIT: Duration = Duration::from_secs(600);

/// A status code and a JSON body (`Null` when there is none).
pub(crate) type Answer = (u16, Value);

/// Sets the development token on requests to a local Functions host (`azure_core`'s bearer
/// policy refuses plain `http://`, which a local host is).
#[derive(Debug)]
struct DevelopmentToken;

#[async_trait]
impl Policy for DevelopmentToken {
    async fn send(&self, ctx: &Context, request: &mut Request, next: &[Arc<dyn Policy>]) -> PolicyResult {
        request.insert_header("authorization", format!("Bearer {DEVELOPMENT_TOKEN}"));
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// The standard Azure credential chain: a service principal in the environment, workload
/// identity, a managed identity, then the Azure CLI; the first that gives a token wins, and
/// the error names what each said.
#[derive(Debug)]
pub struct CredentialChain {
    sources: Vec<(&'static str, Arc<dyn TokenCredential>)>,
}

impl CredentialChain {
    /// The chain for this process's environment (sources whose variables are missing are left
    /// out; the Azure CLI is always tried last).
    pub fn from_env() -> Result<CredentialChain, Error> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let failed = |what: &str, e: azure_core::Error| Error::unauthorized(format!("{what}: {e}"));
        let mut sources: Vec<(&'static str, Arc<dyn TokenCredential>)> = Vec::new();
        if let (Some(tenant), Some(client), Some(secret)) =
            (var("AZURE_TENANT_ID"), var("AZURE_CLIENT_ID"), var("AZURE_CLIENT_SECRET"))
        {
            let c = azure_identity::ClientSecretCredential::new(&tenant, client, secret.into(), None).map_err(|e| {
                failed("the service principal of AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET", e)
            })?;
            sources.push(("environment (service principal)", c));
        }
        if var("AZURE_FEDERATED_TOKEN_FILE").is_some() {
            let c = azure_identity::WorkloadIdentityCredential::new(None)
                .map_err(|e| failed("workload identity (AZURE_FEDERATED_TOKEN_FILE)", e))?;
            sources.push(("workload identity", c));
        }
        if var("IDENTITY_ENDPOINT").is_some() || var("MSI_ENDPOINT").is_some() {
            let c = azure_identity::ManagedIdentityCredential::new(None)
                .map_err(|e| failed("managed identity (IDENTITY_ENDPOINT)", e))?;
            sources.push(("managed identity", c));
        }
        let cli = azure_identity::AzureCliCredential::new(None).map_err(|e| failed("the Azure CLI", e))?;
        sources.push(("the Azure CLI (az login)", cli));
        Ok(CredentialChain { sources })
    }
}

#[async_trait]
impl TokenCredential for CredentialChain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let mut why = Vec::new();
        for (name, source) in &self.sources {
            match source.get_token(scopes, options.clone()).await {
                Ok(token) => return Ok(token),
                Err(e) => why.push(format!("{name}: {e}")),
            }
        }
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            format!("no Azure credential gave a token ({})", why.join("; ")),
        ))
    }
}

/// The clients of one profile.
pub(crate) struct Client {
    settings: AzureSettings,
    pipeline: Pipeline,
    http: reqwest::Client,
}

impl Client {
    pub fn new(settings: AzureSettings) -> Result<Client, Error> {
        let auth: Arc<dyn Policy> = if settings.is_local() {
            Arc::new(DevelopmentToken)
        } else {
            let credential: Arc<dyn TokenCredential> = Arc::new(CredentialChain::from_env()?);
            Arc::new(BearerTokenAuthorizationPolicy::new(credential, [ARM_SCOPE]))
        };
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            ClientOptions::default(),
            Vec::new(),
            vec![auth],
            None,
        );
        // The function app's host: no retries (a retried invocation would run twice), and
        // no overall timeout (each call sets its own, from the function's).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::unavailable(format!("cannot make an HTTP client: {e}")))?;
        Ok(Client { settings, pipeline, http })
    }

    pub fn settings(&self) -> &AzureSettings {
        &self.settings
    }

    /// The URL of `path` on `host`, and the `Host` header to send (with a local endpoint).
    pub fn url_on(&self, host: &str, path: &str) -> (String, Option<String>) {
        match &self.settings.endpoint {
            Some(e) => (format!("{e}{path}"), Some(host.to_string())),
            None => (format!("https://{host}{path}"), None),
        }
    }

    /// Sends an ARM or Kudu request; `host` is the Kudu host for Kudu, `None` for ARM.
    async fn send(
        &self,
        method: Method,
        url: &str,
        host: Option<&str>,
        body: Option<(&'static str, Vec<u8>)>,
        what: &str,
    ) -> Result<(u16, azure_core::http::headers::Headers, Vec<u8>), Error> {
        let url: Url = url.parse().map_err(|e| Error::bad_input(format!("{what}: bad URL {url}: {e}")))?;
        let mut request = Request::new(url, method);
        if let Some(h) = host {
            request.insert_header("host", h.to_string());
        }
        request.insert_header("accept", "application/json");
        if let Some((content_type, bytes)) = body {
            request.insert_header("content-type", content_type);
            request.set_body(bytes);
        }
        let options = PipelineSendOptions { skip_checks: true, ..Default::default() };
        let response = self
            .pipeline
            .send(&Context::new(), &mut request, Some(options))
            .await
            .map_err(|e| azure_error(what, &e, self.where_()))?;
        let (status, headers, body) = response.deconstruct();
        Ok((u16::from(status), headers, body.to_vec()))
    }

    fn where_(&self) -> &str {
        if self.settings.is_local() {
            "the local Functions host"
        } else {
            "Azure"
        }
    }

    /// An ARM request to `path` (under the subscription; `api-version` added), its answer
    /// checked: a 2xx is returned, anything else is the mapped error.
    pub async fn arm(&self, method: Method, path: &str, body: Option<&Value>, what: &str) -> Result<Answer, Error> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{path}{sep}api-version={API_VERSION}", self.settings.arm_endpoint());
        self.arm_url(method, &url, body, what).await.map(|(status, _, v)| (status, v))
    }

    async fn arm_url(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<(u16, azure_core::http::headers::Headers, Value), Error> {
        let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
        let (status, headers, bytes) = self.send(method, url, None, body, what).await?;
        if !(200..300).contains(&status) {
            return Err(super::records::arm_status_error(what, status, &bytes));
        }
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok((status, headers, value))
    }

    /// A PUT that may be a long-running operation: a 202 (or 201) is followed through its
    /// `Azure-AsyncOperation` or `Location` header to its end; the resource is read again then.
    pub async fn put_resource(
        &self,
        path: &str,
        body: &Value,
        what: &str,
        progress: &dyn Progress,
    ) -> Result<Value, Error> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{path}{sep}api-version={API_VERSION}", self.settings.arm_endpoint());
        let (status, headers, value) = self.arm_url(Method::Put, &url, Some(body), what).await?;
        if status == 200 {
            return Ok(value);
        }
        let header = |name: &'static str| headers.get_optional_string(&name.into());
        let started = Instant::now();
        if let Some(op) = header("azure-asyncoperation") {
            loop {
                let (_, _, v) = self.arm_url(Method::Get, &op, None, what).await?;
                match v["status"].as_str().unwrap_or("InProgress") {
                    "Succeeded" => break,
                    "Failed" | "Canceled" => {
                        return Err(Error::unavailable(format!(
                            "{what}: the operation ended {}: {}",
                            v["status"].as_str().unwrap_or_default(),
                            v["error"]["message"].as_str().unwrap_or("no reason given")
                        ))
                        .with_type(format!("Azure.{}", v["error"]["code"].as_str().unwrap_or("OperationFailed"))));
                    }
                    other => progress.step(&format!("{what}: {other}")),
                }
                self.wait(&started, what, retry_after(&header("retry-after"))).await?;
            }
        } else if let Some(location) = header("location") {
            loop {
                let (s, _, v) = self.arm_url(Method::Get, &location, None, what).await?;
                if s != 202 {
                    if v.is_object() && v.get("id").is_some() {
                        return Ok(v);
                    }
                    break;
                }
                progress.step(&format!("{what}: in progress"));
                self.wait(&started, what, retry_after(&header("retry-after"))).await?;
            }
        }
        self.arm(Method::Get, path, None, what).await.map(|(_, v)| v)
    }

    async fn wait(&self, started: &Instant, what: &str, pause: Duration) -> Result<(), Error> {
        if started.elapsed() > OPERATION_LIMIT {
            return Err(Error::timeout(format!("{what}: not done after {} s", OPERATION_LIMIT.as_secs())));
        }
        tokio::time::sleep(pause).await;
        Ok(())
    }

    /// The site `app`, or `None` when there is none.
    pub async fn get_site(&self, app: &str) -> Result<Option<Value>, Error> {
        match self.arm(Method::Get, &self.settings.site_id(app), None, &format!("reading function app `{app}`")).await {
            Ok((_, v)) => Ok(Some(v)),
            Err(e) if e.kind() == faas_api::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A Kudu request on `scm` (the site's Kudu host).
    pub async fn kudu(
        &self,
        method: Method,
        scm: &str,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
        what: &str,
    ) -> Result<(u16, Vec<u8>, Option<String>), Error> {
        let (url, host) = self.url_on(scm, path);
        let (status, headers, bytes) = self.send(method, &url, host.as_deref(), body, what).await?;
        let location = headers.get_optional_string(&"location".into());
        Ok((status, bytes, location))
    }

    /// Deploys `zip` to the site whose Kudu host is `scm`: an asynchronous zip deploy, polled
    /// until it is done, with its status as progress.
    pub async fn zip_deploy(&self, scm: &str, zip: Vec<u8>, progress: &dyn Progress) -> Result<(), Error> {
        let what = format!("zip deploy to {scm}");
        progress.step(&format!("uploading the function app ({} bytes)", zip.len()));
        let (status, body, location) =
            self.kudu(Method::Post, scm, "/api/zipdeploy?isAsync=true", Some(("application/zip", zip)), &what).await?;
        match status {
            200 => return Ok(()),
            202 => {}
            _ => return Err(super::records::kudu_error(&what, status, &body)),
        }
        let path = location
            .map(|l| match l.find("/api/") {
                Some(i) => l[i..].to_string(),
                None => l,
            })
            .unwrap_or_else(|| "/api/deployments/latest".to_string());
        let started = Instant::now();
        let mut last = String::new();
        loop {
            let (status, body, _) = self.kudu(Method::Get, scm, &path, None, &what).await?;
            if !(200..300).contains(&status) {
                return Err(super::records::kudu_error(&what, status, &body));
            }
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            // Kudu's DeployStatus: 0 pending, 1 building, 2 deploying, 3 failed, 4 success.
            let code = v["status"].as_i64().unwrap_or(0);
            let text = v["status_text"].as_str().filter(|t| !t.is_empty()).unwrap_or(match code {
                0 => "pending",
                1 => "building",
                2 => "deploying",
                _ => "",
            });
            if code == 4 && v["complete"].as_bool().unwrap_or(true) {
                return Ok(());
            }
            if code == 3 {
                return Err(Error::bad_input(format!(
                    "{what} failed: {}",
                    v["message"].as_str().or(v["status_text"].as_str()).unwrap_or("no reason given")
                ))
                .with_type("Azure.DeploymentFailed"));
            }
            if text != last && !text.is_empty() {
                progress.step(&format!("deployment {text}"));
                last = text.to_string();
            }
            self.wait(&started, &what, Duration::from_millis(500)).await?;
        }
    }

    /// A request to the function app's own host `host` (`/api`, `/admin`), with `key` as
    /// `x-functions-key`.
    pub fn site_request(
        &self,
        method: reqwest::Method,
        host: &str,
        path: &str,
        key: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let (url, host_header) = self.url_on(host, path);
        let mut request = self.http.request(method, url);
        if let Some(h) = host_header {
            request = request.header(reqwest::header::HOST, h);
        }
        if let Some(k) = key {
            request = request.header("x-functions-key", k);
        }
        request
    }
}

/// The pause a `Retry-After` header asks for (seconds), between 0.2 and 10 s; 1 s without one.
fn retry_after(header: &Option<String>) -> Duration {
    let secs = header.as_deref().and_then(|h| h.trim().parse::<f64>().ok()).unwrap_or(1.0);
    Duration::from_secs_f64(secs.clamp(0.2, 10.0))
}
