//! [`AzureRunner`]: the faas runner SPI over Azure Resource Manager, Kudu and the function
//! app's own host.
//!
//! A faas app is one function app (the site `app` of the profile, else the faas app's name), in
//! the profile's subscription and resource group, holding the app's functions
//! ([`crate::package`]):
//!
//! - **Deploy**: the site is created or updated with `PUT .../providers/Microsoft.Web/sites/{app}`
//!   (`kind: functionapp,linux`; the profile's region and plan; the app settings: the functions'
//!   own variables, `FUNCTIONS_WORKER_RUNTIME=custom`, `FUNCTIONS_EXTENSION_VERSION=~4`,
//!   `AzureWebJobsStorage` from the profile's `storage` (the local host gets Azurite's
//!   development storage), `FAAS_FUNCTION_TIMEOUTS` and `FAAS_EVENTS_URL`); a long-running
//!   answer (202) is followed to its end with progress. The zip then goes to Kudu's
//!   `POST /api/zipdeploy?isAsync=true` on the site's scm host (found in `hostNameSslStates`,
//!   `hostType: Repository`), whose deployment is polled until it is done. Last the site's tags
//!   get `faas-digest`, the digest of the zip and of everything above, so a deploy that would
//!   change nothing (same digest, every function still there) reports the functions unchanged
//!   and sends nothing. A site tagged for another faas app (`faas-app`) or for none is never
//!   taken over.
//! - **Invoke**: an HTTP function is called at `https://{defaultHostName}/api/{route}` with the
//!   payload and its content type, the function key (`host/default/listkeys`,
//!   `functionKeys.default`) as `x-functions-key`, and the caller's `traceparent`. Answers are
//!   mapped by [`outcome`]; the invocation id comes back in the handler's
//!   `X-Faas-Invocation-Id`. A function with another trigger (queue, timer, blob, Event Grid) is
//!   run through the admin API, `POST /admin/functions/{name}` `{"input": ...}` with the master
//!   key, which answers 202 and does not wait: its invocation has an empty reply. Azure has no
//!   asynchronous invocation of an HTTP function: `async` is not claimed.
//! - **List / remove**: `GET .../sites/{app}/functions`; `DELETE .../functions/{name}`.
//! - **Activations and logs**: the Functions host's function log files (host.json
//!   `logging.fileLoggingMode: always`), read from Kudu's VFS
//!   (`/api/vfs/LogFiles/Application/Functions/Function/{name}/`), parsed by
//!   [`activations_of`].

mod client;
mod records;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::http::Method;
use faas_api::{
    Activation, ActivationQuery, AppSpec, BackendProfile, Capabilities, Capability, DeployReport, Error, EventFilter,
    FunctionInfo, FunctionSpec, HandlerKind, InvokeMode, InvokeRequest, Invoked, Package, Payload, Progress, Runner,
    Trigger,
};
use serde_json::{json, Value};

pub use client::{CredentialChain, ARM_SCOPE, DEVELOPMENT_TOKEN};
pub use records::{
    activations_of, arm_status_error, azure_error, billed_us, kudu_error, outcome, ENCODING_HEADER, ERROR_LINE,
};

use crate::package::{self, ENV_TIMEOUTS};
use crate::settings::{AzureSettings, DEVELOPMENT_STORAGE};
use client::Client;

/// The largest request body: the Functions host's 100 MB (PROTOCOLS.md §2.6, UNCONFIRMED).
pub const MAX_PAYLOAD: usize = 100 * 1024 * 1024;
/// The tag with the faas app's name.
pub const APP_TAG: &str = "faas-app";
/// The tag with the digest of what was deployed.
pub const DIGEST_TAG: &str = "faas-digest";
/// The header the handler names the invocation id in.
pub use crate::host::INVOCATION_HEADER;
/// The event gateway variable (`cx.emit`).
pub const ENV_EVENTS: &str = faas_host::wire::ENV_EVENTS;
/// App settings the runner itself sets, left out of `list`.
pub const MANAGED_SETTINGS: [&str; 6] = [
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "AzureWebJobsStorage",
    ENV_TIMEOUTS,
    ENV_EVENTS,
    "WEBSITE_RUN_FROM_PACKAGE",
];
/// Where the Functions host writes a function's log files, under the site's home.
pub const FUNCTION_LOGS: &str = "LogFiles/Application/Functions/Function";
/// How many of a function's newest log files `activations` reads.
pub const LOG_FILES_READ: usize = 8;

/// What the runner knows of the deployed function app.
#[derive(Debug, Clone)]
struct Site {
    host: String,
    scm: String,
    function_key: Option<String>,
    master_key: Option<String>,
    /// Each function's function.json.
    functions: BTreeMap<String, Value>,
}

/// The Azure Functions backend (see the [module docs](self)).
pub struct AzureRunner {
    client: Client,
    /// The function app, when known (the profile's `app`, the project's app, the last deploy's).
    app: Mutex<Option<String>>,
    site: Mutex<Option<Site>>,
}

impl std::fmt::Debug for AzureRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureRunner").field("settings", self.client.settings()).finish()
    }
}

/// The host name of `site`'s entry of `hostNameSslStates` with `host_type`.
fn host_of(site: &Value, host_type: &str) -> Option<String> {
    site["properties"]["hostNameSslStates"]
        .as_array()?
        .iter()
        .find(|h| h["hostType"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(host_type)))
        .and_then(|h| h["name"].as_str())
        .map(str::to_string)
}

impl AzureRunner {
    /// A runner for `profile` (see [`crate::settings`]).
    pub fn from_profile(profile: &BackendProfile) -> Result<Arc<AzureRunner>, Error> {
        AzureRunner::new(AzureSettings::from_profile(profile)?)
    }

    /// A runner with `settings` (nothing is contacted until it is used).
    pub fn new(settings: AzureSettings) -> Result<Arc<AzureRunner>, Error> {
        let app = settings.app.clone();
        Ok(Arc::new(AzureRunner { client: Client::new(settings)?, app: Mutex::new(app), site: Mutex::new(None) }))
    }

    /// Names the function app to use when the profile names none (the project's app).
    pub fn set_default_app(&self, app: &str) {
        let mut current = self.app.lock().expect("lock");
        if current.is_none() && crate::settings::valid_app_name(app) {
            *current = Some(app.to_string());
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &AzureSettings {
        self.client.settings()
    }

    fn where_(&self, app: &str) -> String {
        let s = self.settings();
        match &s.endpoint {
            Some(e) => format!("function app `{app}` on the local Functions host at {e}"),
            None => {
                format!("function app `{app}` (resource group {}, subscription {})", s.resource_group, s.subscription)
            }
        }
    }

    /// The function app: the known one, else the only site of the resource group tagged as a
    /// faas app.
    async fn app(&self) -> Result<String, Error> {
        if let Some(a) = self.app.lock().expect("lock").clone() {
            return Ok(a);
        }
        let s = self.settings();
        let path = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Web/sites",
            s.subscription, s.resource_group
        );
        let (_, sites) = self.client.arm(Method::Get, &path, None, "listing the function apps").await?;
        let ours: Vec<String> = sites["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|site| site["tags"][APP_TAG].is_string())
            .filter_map(|site| site["name"].as_str().map(str::to_string))
            .collect();
        match ours.as_slice() {
            [one] => {
                *self.app.lock().expect("lock") = Some(one.clone());
                Ok(one.clone())
            }
            [] => Err(Error::not_found(format!(
                "no faas function app in resource group {} (deploy first, or name it: key `app` of the profile)",
                s.resource_group
            ))),
            many => Err(Error::bad_input(format!(
                "resource group {} holds several faas function apps ({}); name one with the profile's key `app`",
                s.resource_group,
                many.join(", ")
            ))),
        }
    }

    /// The site, its keys and its functions, as last read (read when unknown).
    async fn site(&self, app: &str) -> Result<Site, Error> {
        if let Some(s) = self.site.lock().expect("lock").clone() {
            return Ok(s);
        }
        let site = self.client.get_site(app).await?.ok_or_else(|| {
            Error::not_found(format!("no {} (deploy first)", self.where_(app))).with_type("Azure.ResourceNotFound")
        })?;
        let host = site["properties"]["defaultHostName"]
            .as_str()
            .map(str::to_string)
            .or_else(|| host_of(&site, "Standard"))
            .ok_or_else(|| Error::unavailable(format!("{} has no host name yet", self.where_(app))))?;
        let scm = host_of(&site, "Repository").unwrap_or_else(|| match host.split_once('.') {
            Some((name, rest)) => format!("{name}.scm.{rest}"),
            None => format!("{host}.scm"),
        });
        let id = self.settings().site_id(app);
        let (_, keys) = self
            .client
            .arm(Method::Post, &format!("{id}/host/default/listkeys"), None, &format!("reading the keys of `{app}`"))
            .await?;
        let functions = self.functions(app).await?;
        let site = Site {
            host,
            scm,
            function_key: keys["functionKeys"]["default"].as_str().map(str::to_string),
            master_key: keys["masterKey"].as_str().map(str::to_string),
            functions,
        };
        *self.site.lock().expect("lock") = Some(site.clone());
        Ok(site)
    }

    /// Each function of `app` and its function.json.
    async fn functions(&self, app: &str) -> Result<BTreeMap<String, Value>, Error> {
        let path = format!("{}/functions", self.settings().site_id(app));
        let (_, list) = self.client.arm(Method::Get, &path, None, &format!("listing the functions of `{app}`")).await?;
        Ok(list["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                let name = f["properties"]["name"]
                    .as_str()
                    .or_else(|| f["name"].as_str().map(|n| n.rsplit('/').next().unwrap_or(n)))?;
                Some((name.to_string(), f["properties"]["config"].clone()))
            })
            .collect())
    }

    /// The app settings of a deployment of `package`.
    fn app_settings(&self, package: &Package) -> Result<BTreeMap<String, String>, Error> {
        let s = self.settings();
        let mut settings = package::function_variables(&package.functions)?;
        for managed in MANAGED_SETTINGS {
            if settings.contains_key(managed) {
                return Err(Error::bad_input(format!(
                    "the variable `{managed}` is set by faas on Azure; rename yours"
                )));
            }
        }
        settings.insert("FUNCTIONS_WORKER_RUNTIME".into(), "custom".into());
        settings.insert("FUNCTIONS_EXTENSION_VERSION".into(), "~4".into());
        match (&s.storage, s.is_local()) {
            (Some(conn), _) => {
                settings.insert("AzureWebJobsStorage".into(), conn.clone());
            }
            (None, true) => {
                settings.insert("AzureWebJobsStorage".into(), DEVELOPMENT_STORAGE.into());
            }
            (None, false) => {
                return Err(Error::bad_input(
                    "an Azure function app needs a storage account: set the profile's key `storage` to a secret \
                     reference holding its connection string (such as `env:AZURE_STORAGE_CONNECTION_STRING`)",
                )
                .with_type("InvalidConfig"));
            }
        }
        settings.insert(ENV_TIMEOUTS.into(), package::timeouts(&package.functions));
        if let Some(events) = &s.events {
            settings.insert(ENV_EVENTS.into(), events.clone());
        }
        Ok(settings)
    }

    /// The site resource to PUT.
    fn site_body(
        &self,
        existing: Option<&Value>,
        app: &str,
        settings: &BTreeMap<String, String>,
        digest: Option<&str>,
    ) -> Value {
        let s = self.settings();
        let mut tags = existing.and_then(|e| e["tags"].as_object().cloned()).unwrap_or_default();
        tags.insert(APP_TAG.into(), json!(app));
        match digest {
            Some(d) => tags.insert(DIGEST_TAG.into(), json!(d)),
            None => tags.remove(DIGEST_TAG),
        };
        let app_settings: Vec<Value> = settings.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
        let location = existing.and_then(|e| e["location"].as_str()).unwrap_or(&s.region);
        let mut body = json!({
            "location": location,
            "kind": "functionapp,linux",
            "tags": tags,
            "properties": {"reserved": true, "httpsOnly": true, "siteConfig": {"appSettings": app_settings}},
        });
        if let Some(plan) = &s.plan {
            body["properties"]["serverFarmId"] = json!(plan);
        }
        body
    }

    /// The function log files of `function` (their text, oldest first, the newest few only).
    async fn log_files(&self, site: &Site, function: &str) -> Result<Vec<String>, Error> {
        let dir = format!("/api/vfs/{FUNCTION_LOGS}/{function}/");
        let what = format!("reading the log files of `{function}`");
        let (status, body, _) = self.client.kudu(Method::Get, &site.scm, &dir, None, &what).await?;
        if status == 404 {
            return Ok(vec![]);
        }
        if !(200..300).contains(&status) {
            return Err(kudu_error(&what, status, &body));
        }
        let entries: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
        let mut names: Vec<String> = entries
            .iter()
            .filter(|e| e["mime"].as_str() != Some("inode/directory"))
            .filter_map(|e| e["name"].as_str().map(str::to_string))
            .filter(|n| n.ends_with(".log"))
            .collect();
        names.sort();
        let newest = names.split_off(names.len().saturating_sub(LOG_FILES_READ));
        let mut files = Vec::new();
        for name in newest {
            let (status, body, _) =
                self.client.kudu(Method::Get, &site.scm, &format!("{dir}{name}"), None, &what).await?;
            if (200..300).contains(&status) {
                files.push(String::from_utf8_lossy(&body).into_owned());
            }
        }
        Ok(files)
    }

    /// The log lines of invocation `id` of `function` (the host writes them as it ends the
    /// invocation; Azure's file logs arrive after a while).
    async fn logs_of(&self, site: &Site, function: &str, id: &str) -> Result<Vec<String>, Error> {
        let tries = if self.settings().is_local() { 20 } else { 30 };
        for _ in 0..tries {
            let files = self.log_files(site, function).await?;
            if let Some(a) = activations_of(function, &files).into_iter().find(|a| a.id == id) {
                return Ok(a.logs);
            }
            tokio::time::sleep(Duration::from_millis(if self.settings().is_local() { 100 } else { 1000 })).await;
        }
        Ok(vec![])
    }

    fn forget_site(&self) {
        *self.site.lock().expect("lock") = None;
    }
}

/// The trigger binding (the first binding whose type ends `Trigger`) of a function.json.
fn trigger_of(config: &Value) -> Option<&Value> {
    config["bindings"].as_array()?.iter().find(|b| b["type"].as_str().is_some_and(|t| t.ends_with("Trigger")))
}

/// The path of an HTTP trigger: `/api/{route}`, optional parameters left out; a required
/// parameter cannot be filled in.
fn http_path(function: &str, trigger: &Value) -> Result<String, Error> {
    let route = trigger["route"].as_str().unwrap_or(function);
    let mut segments = Vec::new();
    for segment in route.split('/').filter(|s| !s.is_empty()) {
        if segment.starts_with('{') {
            if segment.ends_with("?}") || segment.starts_with("{*") {
                continue;
            }
            return Err(Error::bad_input(format!(
                "function `{function}` has the route `{route}`, whose parameter {segment} faas cannot fill in: call \
                 it at its URL"
            )));
        }
        segments.push(segment);
    }
    Ok(format!("/{}/{}", package::ROUTE_PREFIX, segments.join("/")))
}

/// The faas spec of a deployed function (its function.json and the app settings).
fn spec_of(name: &str, config: &Value, settings: &BTreeMap<String, String>) -> FunctionSpec {
    let mut spec = FunctionSpec::new(name);
    if let Some(seconds) = settings.get(ENV_TIMEOUTS).and_then(|t| {
        t.split(',')
            .find_map(|p| p.split_once('=').filter(|(n, _)| *n == name).and_then(|(_, s)| s.parse::<u64>().ok()))
    }) {
        spec.timeout = Duration::from_secs(seconds);
    }
    spec.env = settings
        .iter()
        .filter(|(k, _)| !MANAGED_SETTINGS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(t) = trigger_of(config) {
        match t["type"].as_str().unwrap_or_default() {
            "httpTrigger" => {
                if let Some(route) = t["route"].as_str() {
                    spec.triggers.push(Trigger::Http { method: None, route: format!("/{route}") });
                }
            }
            "queueTrigger" => {
                spec.handler = HandlerKind::Event;
                let filter = EventFilter::new()
                    .event_type(package::QUEUE_EVENT)
                    .source(format!("queues/{}", t["queueName"].as_str().unwrap_or_default()));
                spec.triggers.push(Trigger::Event { filter });
            }
            "timerTrigger" => {
                spec.handler = HandlerKind::Event;
                let filter = EventFilter::new()
                    .event_type(package::TIMER_EVENT)
                    .subject(t["schedule"].as_str().unwrap_or_default());
                spec.triggers.push(Trigger::Event { filter });
            }
            "blobTrigger" => {
                spec.handler = HandlerKind::Event;
                let container =
                    t["path"].as_str().unwrap_or_default().split('/').next().unwrap_or_default().to_string();
                let filter = EventFilter::new().event_type(package::BLOB_EVENT).source(format!("blobs/{container}"));
                spec.triggers.push(Trigger::Event { filter });
            }
            _ => spec.handler = HandlerKind::Event,
        }
    }
    spec
}

#[async_trait]
impl Runner for AzureRunner {
    fn kind(&self) -> &str {
        "azure"
    }

    fn capabilities(&self) -> Capabilities {
        let mut claims: std::collections::BTreeSet<Capability> =
            [Capability::WarmReuse, Capability::CloudEvents, Capability::Logs, Capability::HttpRoutes].into();
        // `emit` when the profile names the event gateway the functions post to.
        if self.settings().events.is_some() {
            claims.insert(Capability::Emit);
        }
        Capabilities {
            claims,
            max_sync_payload: MAX_PAYLOAD,
            max_async_payload: 0,
            max_timeout: package::MAX_TIMEOUT_HTTP,
        }
    }

    async fn package(&self, app: &AppSpec, progress: &dyn Progress) -> Result<Package, Error> {
        self.check(&app.functions)?;
        progress.step("packaging the function app");
        let out = package::package_dir(&app.binary).join(package::archive_name(&app.app));
        let info = package::package_app(&app.binary, self.settings().arch, &out, self.settings(), &app.functions)?;
        Ok(Package { app: app.app.clone(), artifact: info.path, size: info.size, functions: app.functions.clone() })
    }

    async fn deploy(&self, package: &Package, progress: &dyn Progress) -> Result<DeployReport, Error> {
        let app = match self.settings().app.clone() {
            Some(a) => a,
            None if crate::settings::valid_app_name(&package.app) => package.app.clone(),
            None => {
                return Err(Error::bad_input(format!(
                    "the app name `{}` cannot be a function app name (2–60 letters, digits and hyphens): name the \
                     function app with the profile's key `app`",
                    package.app
                )))
            }
        };
        let zip = std::fs::read(&package.artifact)
            .map_err(|e| Error::unavailable(format!("cannot read {}: {e}", package.artifact.display())))?;
        // Everything is checked before anything is sent.
        package::app_files(self.settings(), &package.functions)?;
        let settings = self.app_settings(package)?;
        let digest_input = json!({"code": faas_packaging::sha256_hex(&zip), "settings": settings,
                                  "functions": package.functions, "region": self.settings().region,
                                  "plan": self.settings().plan});
        let digest = faas_packaging::sha256_hex(digest_input.to_string().as_bytes())[..32].to_string();
        let existing = self.client.get_site(&app).await?;
        if let Some(site) = &existing {
            let owner = site["tags"][APP_TAG].as_str();
            if owner != Some(package.app.as_str()) {
                return Err(Error::bad_input(format!(
                    "{} already exists and is not faas app `{}`'s (its tag {APP_TAG} is {}); remove it or name \
                     another function app with the profile's key `app`",
                    self.where_(&app),
                    package.app,
                    owner.map_or("missing".to_string(), |o| format!("`{o}`"))
                ))
                .with_type("Azure.Conflict"));
            }
        }
        *self.app.lock().expect("lock") = Some(app.clone());
        self.forget_site();
        let before: BTreeMap<String, Value> = match &existing {
            Some(_) => self.functions(&app).await?,
            None => BTreeMap::new(),
        };
        let all_there = package.functions.iter().all(|f| before.contains_key(&f.name));
        if existing.as_ref().is_some_and(|s| s["tags"][DIGEST_TAG].as_str() == Some(digest.as_str())) && all_there {
            return Ok(DeployReport {
                created: vec![],
                updated: vec![],
                unchanged: package.functions.iter().map(|f| f.name.clone()).collect(),
            });
        }
        let id = self.settings().site_id(&app);
        let what = format!("{} {}", if existing.is_some() { "updating" } else { "creating" }, self.where_(&app));
        progress.step(&what);
        let body = self.site_body(existing.as_ref(), &package.app, &settings, None);
        let site = self.client.put_resource(&id, &body, &what, progress).await?;
        let scm = host_of(&site, "Repository").ok_or_else(|| {
            Error::unavailable(format!("{} has no Kudu (scm) host in hostNameSslStates", self.where_(&app)))
        })?;
        self.client.zip_deploy(&scm, zip, progress).await?;
        // Only a deployment that finished gets the digest that makes the next one a no-op.
        let body = self.site_body(Some(&site), &package.app, &settings, Some(&digest));
        self.client.put_resource(&id, &body, &format!("tagging {}", self.where_(&app)), progress).await?;
        let mut report = DeployReport { created: vec![], updated: vec![], unchanged: vec![] };
        for f in &package.functions {
            if before.contains_key(&f.name) {
                report.updated.push(f.name.clone());
            } else {
                report.created.push(f.name.clone());
            }
        }
        Ok(report)
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<Invoked, Error> {
        let function = request.function.clone();
        if request.payload.len() > MAX_PAYLOAD {
            return Err(Error::payload_too_large(format!(
                "the request to `{function}` is {} bytes; Azure Functions takes at most {MAX_PAYLOAD}",
                request.payload.len()
            )));
        }
        let app = self.app().await?;
        let mut site = self.site(&app).await?;
        if !site.functions.contains_key(&function) {
            // Deployed since the functions were read?
            self.forget_site();
            site = self.site(&app).await?;
        }
        let config = site
            .functions
            .get(&function)
            .ok_or_else(|| Error::not_found(format!("no function named `{function}` in {}", self.where_(&app))))?;
        let trigger = trigger_of(config).cloned().unwrap_or(Value::Null);
        let http = trigger["type"].as_str() == Some("httpTrigger");
        match request.mode {
            InvokeMode::DryRun => return Ok(Invoked::default()),
            InvokeMode::Async => {
                return Err(Error::bad_input(format!(
                    "`{function}`: Azure Functions has no asynchronous invocation of a function (deliver events \
                     through the event gateway, or a queue trigger, instead)"
                ))
                .with_type("UnsupportedCapability"));
            }
            InvokeMode::Sync => {}
        }
        if !http {
            // The admin API runs it through its trigger and does not wait.
            let input = String::from_utf8_lossy(request.payload.body()).into_owned();
            let answer = self
                .client
                .site_request(
                    reqwest::Method::POST,
                    &site.host,
                    &format!("/admin/functions/{function}"),
                    site.master_key.as_deref(),
                )
                .json(&json!({"input": input}))
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .map_err(|e| Error::unavailable(format!("invoking `{function}` through the admin API: {e}")))?;
            let status = answer.status().as_u16();
            let body = answer.bytes().await.unwrap_or_default();
            if status != 202 {
                return Err(outcome(&function, status, None, None, body.to_vec()).err().unwrap_or_else(|| {
                    Error::unavailable(format!("the admin API answered {status} for `{function}`"))
                }));
            }
            return Ok(Invoked { activation_id: String::new(), payload: Payload::empty(), logs: None });
        }
        let path = http_path(&function, &trigger)?;
        let methods: Vec<String> = trigger["methods"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().map(str::to_ascii_uppercase))
            .collect();
        let method = if methods.is_empty() || methods.iter().any(|m| m == "POST") {
            reqwest::Method::POST
        } else {
            reqwest::Method::from_bytes(methods[0].as_bytes()).unwrap_or(reqwest::Method::POST)
        };
        // The Functions host enforces each function's timeout; this only bounds a lost connection.
        let timeout = package::MAX_TIMEOUT_HTTP + Duration::from_secs(30);
        let mut call =
            self.client.site_request(method, &site.host, &path, site.function_key.as_deref()).timeout(timeout);
        if let Some(ct) = request.payload.content_type() {
            call = call.header(reqwest::header::CONTENT_TYPE, ct);
        }
        if let Some(tp) = &request.traceparent {
            call = call.header("traceparent", tp);
        }
        let answer =
            call.body(request.payload.body().clone()).send().await.map_err(|e| {
                Error::unavailable(format!("invoking `{function}` at https://{}{path}: {e}", site.host))
            })?;
        let status = answer.status().as_u16();
        let header = |name: &str| answer.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (content_type, encoding, activation_id) =
            (header("content-type"), header(ENCODING_HEADER), header(INVOCATION_HEADER).unwrap_or_default());
        let body =
            answer.bytes().await.map_err(|e| Error::unavailable(format!("reading the answer of `{function}`: {e}")))?;
        if status == 404 && Error::from_json(&body).is_none() {
            self.forget_site();
        }
        let payload = outcome(&function, status, content_type.as_deref(), encoding.as_deref(), body.to_vec())?;
        let logs = match (request.with_logs, activation_id.is_empty()) {
            (true, false) => Some(self.logs_of(&site, &function, &activation_id).await?),
            _ => None,
        };
        Ok(Invoked { activation_id, payload, logs })
    }

    async fn list(&self) -> Result<Vec<FunctionInfo>, Error> {
        let app = match self.app().await {
            Ok(a) => a,
            Err(e) if records::is_not_found(&e) => return Ok(vec![]),
            Err(e) => return Err(e),
        };
        if self.client.get_site(&app).await?.is_none() {
            return Ok(vec![]);
        }
        let id = self.settings().site_id(&app);
        let (_, listed) = self
            .client
            .arm(
                Method::Post,
                &format!("{id}/config/appsettings/list"),
                None,
                &format!("reading the settings of `{app}`"),
            )
            .await?;
        let settings: BTreeMap<String, String> = listed["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        let functions = self.functions(&app).await?;
        Ok(functions
            .iter()
            .map(|(name, config)| FunctionInfo { spec: spec_of(name, config, &settings), state: "active".into() })
            .collect())
    }

    async fn remove(&self, function: &str) -> Result<(), Error> {
        let app = self.app().await?;
        let functions = self.functions(&app).await?;
        if !functions.contains_key(function) {
            return Err(Error::not_found(format!("no function named `{function}` in {}", self.where_(&app))));
        }
        let path = format!("{}/functions/{function}", self.settings().site_id(&app));
        self.client
            .arm(Method::Delete, &path, None, &format!("removing `{function}` from {}", self.where_(&app)))
            .await?;
        self.forget_site();
        Ok(())
    }

    async fn activations(&self, query: ActivationQuery) -> Result<Vec<Activation>, Error> {
        let app = self.app().await?;
        let site = self.site(&app).await?;
        let names: Vec<String> = match &query.function {
            Some(f) => vec![f.clone()],
            None => site.functions.keys().cloned().collect(),
        };
        let mut all = Vec::new();
        for name in names {
            let files = self.log_files(&site, &name).await?;
            all.extend(activations_of(&name, &files));
        }
        if let Some(id) = &query.id {
            all.retain(|a| &a.id == id);
        }
        all.sort_by_key(|a| std::cmp::Reverse(a.start_ms));
        all.truncate(query.limit.unwrap_or(50));
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_paths_and_specs_read_back() {
        let t = json!({"type": "httpTrigger", "route": "items/{id?}"});
        assert_eq!(http_path("items", &t).unwrap(), "/api/items");
        assert_eq!(http_path("hello", &json!({"type": "httpTrigger"})).unwrap(), "/api/hello");
        assert!(http_path("user", &json!({"route": "users/{id}"})).unwrap_err().message().contains("{id}"));
        let settings: BTreeMap<String, String> =
            [("FAAS_FUNCTION_TIMEOUTS", "hello=5,q=60"), ("GREETING", "hi"), ("FUNCTIONS_WORKER_RUNTIME", "custom")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into();
        let spec = spec_of("hello", &json!({"bindings": [{"type": "httpTrigger"}]}), &settings);
        assert_eq!((spec.timeout.as_secs(), spec.env.len()), (5, 1));
        let q = spec_of("q", &json!({"bindings": [{"type": "queueTrigger", "queueName": "orders"}]}), &settings);
        assert_eq!(q.handler, HandlerKind::Event);
        assert!(
            matches!(&q.triggers[0], Trigger::Event { filter } if filter.source.as_deref() == Some("queues/orders"))
        );
    }
}
