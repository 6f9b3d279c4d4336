//! [`OpenWhiskRunner`]: the faas runner SPI over the OpenWhisk controller's REST API.
//!
//! Each faas function becomes one native action, `[package/]function`, in the profile's
//! namespace ([`crate::settings`] for the keys):
//!
//! - `exec`: kind `blackbox`, the profile's `image` (by default `openwhisk/actionloop-v2`, the
//!   ActionLoop base image, which starts the zip's `exec` once per container and keeps it warm),
//!   `binary: true` and the base64 of the app's reproducible zip, which holds the function binary
//!   as `exec` at its root ([`crate::package`]);
//! - `limits`: the function's timeout (100 ms to 300 s) and memory (128 to 512 MB), concurrency 1;
//! - `parameters`: the function's variables as `init` parameters (OpenWhisk passes them to the
//!   action's `/init`, which the ActionLoop proxy makes the process environment), and
//!   `FAAS_EVENTS_URL` from the profile's `events`;
//! - `annotations`: `faas:app`, `faas:function` and `faas:digest` (a digest of all of the above,
//!   so a deploy that would change nothing reports the function unchanged and sends nothing).
//! - a function with declared HTTP routes is a raw web action (`web-export`, `raw-http`,
//!   `final`) with the routes' methods in `FAAS_WEB_METHODS` ([`crate::host::web`]);
//! - the app's CloudEvent subscriptions become triggers and rules ([`trigger_name`]; a deploy
//!   makes the namespace hold exactly the app's, and never takes over an entity of another).
//!
//! The runner claims `async` (a non-blocking invoke answers 202 with the activation id) but not
//! `async-retry`: OpenWhisk runs a non-blocking invoke once and never retries it.
//!
//! Invocations are blocking invokes (`?blocking=true`); OpenWhisk answers 202 when an activation
//! outlives its blocking wait (60 s by default), and the runner then polls the activation until
//! the function's timeout has passed. Asynchronous invocations are non-blocking invokes. OpenWhisk
//! has no dry run: one checks that the action exists. Activations and their logs come from
//! `/activations`.

mod client;
mod records;
mod triggers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use faas_api::{
    Activation, ActivationQuery, AppSpec, BackendProfile, Capabilities, Capability, DeployReport, Error, FunctionInfo,
    FunctionSpec, InvokeMode, InvokeRequest, Invoked, Package, Payload, Progress, Runner,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub use records::log_message;
pub use triggers::{trigger_name, FILTER_ANNOTATION};

use crate::settings::OpenWhiskSettings;
use crate::wire;
use client::Client;

/// OpenWhisk's shortest and longest action timeouts (`docs/reference.md`).
pub const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(300));
/// OpenWhisk's smallest and largest action memory, in MB.
pub const MEMORY_RANGE: (u32, u32) = (128, 512);
/// OpenWhisk's largest action code (`codeSize`): 48 MB.
pub const MAX_CODE: u64 = 48 * 1024 * 1024;
/// The largest payload that fits OpenWhisk's 1 MB limit whatever its shape: a reply that is not
/// a JSON object travels base64-encoded in the envelope (4/3 of its size, plus the envelope).
/// JSON objects up to 1 MB travel as they are.
pub const MAX_CARRIED: usize = (wire::MAX_PAYLOAD - 256) / 4 * 3;
/// The annotation marking an action as a faas function; its value is the function's name.
pub const FUNCTION_ANNOTATION: &str = "faas:function";
/// The annotation with the app's name.
pub const APP_ANNOTATION: &str = "faas:app";
/// The annotation with the digest of what was deployed.
pub const DIGEST_ANNOTATION: &str = "faas:digest";
/// Variables the runner itself sets on every action, left out of `list`.
pub const MANAGED_ENV: [&str; 2] = [crate::services::ENV_EVENTS, crate::host::web::ENV_WEB_METHODS];

/// The Apache OpenWhisk backend (see the [module docs](self)).
pub struct OpenWhiskRunner {
    client: Client,
    /// Whether each action invoked so far is a faas function (`faas:function` annotation): only
    /// those read the envelope a caller's `traceparent` travels in.
    faas_actions: std::sync::Mutex<std::collections::HashMap<String, bool>>,
}

impl std::fmt::Debug for OpenWhiskRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenWhiskRunner").field("settings", self.client.settings()).finish()
    }
}

impl OpenWhiskRunner {
    /// A runner for `profile` (see [`crate::settings`]).
    pub fn from_profile(profile: &BackendProfile) -> Result<Arc<OpenWhiskRunner>, Error> {
        OpenWhiskRunner::new(OpenWhiskSettings::from_profile(profile)?)
    }

    /// A runner with `settings`.
    pub fn new(settings: OpenWhiskSettings) -> Result<Arc<OpenWhiskRunner>, Error> {
        Ok(Arc::new(OpenWhiskRunner { client: Client::new(settings)?, faas_actions: Default::default() }))
    }

    /// Its settings.
    pub fn settings(&self) -> &OpenWhiskSettings {
        self.client.settings()
    }

    fn where_(&self) -> String {
        format!("OpenWhisk at {} (namespace {})", self.settings().endpoint, self.settings().namespace)
    }

    fn action_path(&self, function: &str) -> String {
        format!("actions/{}", wire::url_path(&self.settings().action_name(function)))
    }

    /// Whether `function`'s action is a faas function (its `faas:function` annotation names it),
    /// read once per action and remembered. Any other action (made with `wsk`, in another
    /// language) takes its parameters as OpenWhisk gives them, so a payload must reach it as it is,
    /// not in the faas envelope. An action that cannot be read is taken for a faas one, unremembered.
    async fn is_faas_action(&self, function: &str) -> bool {
        if let Some(known) = self.faas_actions.lock().expect("faas actions lock").get(function) {
            return *known;
        }
        let path = format!("{}?code=false", self.action_path(function));
        match self.client.call(Method::GET, &path, None, Duration::from_secs(30)).await {
            Ok(answer) if answer.status == StatusCode::OK => {
                let ours = OpenWhiskRunner::annotation(&answer.json(), FUNCTION_ANNOTATION).is_some();
                self.faas_actions.lock().expect("faas actions lock").insert(function.to_string(), ours);
                ours
            }
            _ => true,
        }
    }

    fn remember(&self, function: &str, ours: Option<bool>) {
        let mut known = self.faas_actions.lock().expect("faas actions lock");
        match ours {
            Some(ours) => known.insert(function.to_string(), ours),
            None => known.remove(function),
        };
    }

    fn not_found(&self, function: &str) -> Error {
        Error::not_found(format!(
            "no function named `{function}` (action `{}`) on {}",
            self.settings().action_name(function),
            self.where_()
        ))
        .with_type("OpenWhisk.404")
    }

    /// The package the app's actions live in exists (created when missing).
    async fn ensure_package(&self) -> Result<(), Error> {
        let Some(package) = &self.settings().package else { return Ok(()) };
        let path = format!("packages/{}", wire::url_path(package));
        let answer = self.client.call(Method::GET, &path, None, Duration::from_secs(30)).await?;
        if answer.status == StatusCode::OK {
            return Ok(());
        }
        let body = serde_json::to_vec(&json!({"name": package, "publish": false})).expect("JSON");
        self.client.expect(Method::PUT, &path, Some(body), &format!("creating the package `{package}`")).await?;
        Ok(())
    }

    /// The action PUT body of `spec` with the code `zip`, and its digest.
    fn action_body(
        &self,
        app: &str,
        spec: &FunctionSpec,
        code: &str,
        code_digest: &str,
    ) -> Result<(Value, String), Error> {
        let (low, high) = TIMEOUT_RANGE;
        if spec.timeout < low || spec.timeout > high {
            return Err(Error::bad_input(format!(
                "function `{}` has timeout {} ms; OpenWhisk takes {}–{} ms",
                spec.name,
                spec.timeout.as_millis(),
                low.as_millis(),
                high.as_millis()
            )));
        }
        if spec.memory_mb < MEMORY_RANGE.0 || spec.memory_mb > MEMORY_RANGE.1 {
            return Err(Error::bad_input(format!(
                "function `{}` has memory_mb = {}; OpenWhisk takes {}–{} MB",
                spec.name, spec.memory_mb, MEMORY_RANGE.0, MEMORY_RANGE.1
            )));
        }
        let mut env: BTreeMap<String, String> = spec.env.clone();
        if let Some(events) = &self.settings().events {
            env.insert(crate::services::ENV_EVENTS.to_string(), events.clone());
        }
        let methods: Vec<Option<&str>> = spec
            .triggers
            .iter()
            .filter_map(|t| match t {
                faas_api::Trigger::Http { method, .. } => Some(method.as_deref()),
                faas_api::Trigger::Event { .. } => None,
            })
            .collect();
        let web = !methods.is_empty();
        if web {
            let any = methods.contains(&None);
            let mut named: Vec<&str> = methods.into_iter().flatten().collect();
            named.sort_unstable();
            named.dedup();
            let value = if any { "*".to_string() } else { named.join(",") };
            env.insert(crate::host::web::ENV_WEB_METHODS.to_string(), value);
        }
        let parameters: Vec<Value> = env.iter().map(|(k, v)| json!({"key": k, "value": v, "init": true})).collect();
        let limits = json!({"timeout": spec.timeout.as_millis() as u64, "memory": spec.memory_mb, "concurrency": 1});
        let image = &self.settings().image;
        let digest_input =
            json!({"code": code_digest, "image": image, "limits": limits, "parameters": parameters, "web": web});
        let digest = faas_packaging::sha256_hex(digest_input.to_string().as_bytes());
        let mut body = json!({
            "namespace": self.settings().namespace,
            "name": spec.name,
            "exec": {"kind": "blackbox", "image": image, "binary": true, "code": code},
            "limits": limits,
            "parameters": parameters,
            "annotations": [
                {"key": APP_ANNOTATION, "value": app},
                {"key": FUNCTION_ANNOTATION, "value": spec.name},
                {"key": DIGEST_ANNOTATION, "value": digest},
                {"key": "provide-api-key", "value": true},
            ],
            "publish": false,
        });
        if web {
            // Declared routes: a raw web action (the body as it came), whose parameters a request
            // cannot override (`final`).
            let annotations = body["annotations"].as_array_mut().expect("an array");
            for key in ["web-export", "raw-http", "final"] {
                annotations.push(json!({"key": key, "value": true}));
            }
        }
        Ok((body, digest))
    }

    /// The annotation `key` of an action (as the REST API returns it).
    fn annotation<'a>(action: &'a Value, key: &str) -> Option<&'a Value> {
        action["annotations"].as_array()?.iter().find(|a| a["key"] == key).map(|a| &a["value"])
    }

    /// Waits for activation `id` of `function` to be recorded, until `until`.
    async fn poll(&self, function: &str, id: &str, until: Instant) -> Result<Value, Error> {
        let path = format!("activations/{id}");
        loop {
            let answer = self.client.call(Method::GET, &path, None, Duration::from_secs(30)).await?;
            match answer.status {
                StatusCode::OK => return Ok(answer.json()),
                StatusCode::NOT_FOUND if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                StatusCode::NOT_FOUND => {
                    return Err(Error::timeout(format!(
                        "`{function}` (activation {id}) had not finished when its timeout had passed"
                    )));
                }
                s => return Err(wire::api_error(&format!("reading activation {id}"), s.as_u16(), &answer.body)),
            }
        }
    }

    /// The faas function an action listed by the REST API is, if it is one of ours: annotated,
    /// and in our package.
    fn info_of(&self, action: &Value) -> Option<FunctionInfo> {
        let function = OpenWhiskRunner::annotation(action, FUNCTION_ANNOTATION)?.as_str()?;
        let namespace = action["namespace"].as_str().unwrap_or_default();
        let in_package = namespace.split_once('/').map(|(_, p)| p);
        if in_package != self.settings().package.as_deref() || action["name"].as_str() != Some(function) {
            return None;
        }
        let mut spec = FunctionSpec::new(function);
        if let Some(t) = action["limits"]["timeout"].as_u64() {
            spec.timeout = Duration::from_millis(t);
        }
        if let Some(m) = action["limits"]["memory"].as_u64() {
            spec.memory_mb = m as u32;
        }
        spec.env = action["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p["key"].as_str()?.to_string(), p["value"].as_str()?.to_string())))
            .filter(|(k, _)| !MANAGED_ENV.contains(&k.as_str()))
            .collect();
        Some(FunctionInfo { spec, state: "active".to_string() })
    }
}

#[async_trait]
impl Runner for OpenWhiskRunner {
    fn kind(&self) -> &str {
        "openwhisk"
    }

    fn capabilities(&self) -> Capabilities {
        let mut claims: std::collections::BTreeSet<Capability> = [
            Capability::WarmReuse,
            Capability::Async,
            Capability::CloudEvents,
            Capability::Logs,
            Capability::HttpRoutes,
            Capability::ProcessIsolation,
            Capability::Invoke,
        ]
        .into();
        if self.settings().events.is_some() {
            claims.insert(Capability::Emit);
        }
        Capabilities {
            claims,
            max_sync_payload: MAX_CARRIED,
            max_async_payload: MAX_CARRIED,
            max_timeout: TIMEOUT_RANGE.1,
        }
    }

    async fn package(&self, app: &AppSpec, progress: &dyn Progress) -> Result<Package, Error> {
        self.check(&app.functions)?;
        progress.step("packaging the native action zip");
        let out = crate::package::package_dir(&app.binary).join(format!("{}-openwhisk.zip", app.app));
        let info = crate::package::package_app(&app.binary, self.settings().arch, &out)?;
        if info.size > MAX_CODE {
            return Err(Error::payload_too_large(format!(
                "the action zip {} is {} bytes; OpenWhisk's code limit is {MAX_CODE} bytes (build in release mode)",
                out.display(),
                info.size
            )));
        }
        Ok(Package { app: app.app.clone(), artifact: info.path, size: info.size, functions: app.functions.clone() })
    }

    async fn deploy(&self, package: &Package, progress: &dyn Progress) -> Result<DeployReport, Error> {
        let zip = std::fs::read(&package.artifact)
            .map_err(|e| Error::unavailable(format!("cannot read {}: {e}", package.artifact.display())))?;
        let code = base64::engine::general_purpose::STANDARD.encode(&zip);
        let code_digest = faas_packaging::code_sha256(&zip);
        // Every body is checked before anything is sent.
        let mut bodies = Vec::new();
        for spec in &package.functions {
            bodies.push((spec, self.action_body(&package.app, spec, &code, &code_digest)?));
        }
        let declared = triggers::Declared::of(&package.app, &package.functions);
        let existing = triggers::Existing::read(&self.client).await?;
        existing.check(&package.app, &declared)?;
        self.ensure_package().await?;
        let mut report = DeployReport { created: vec![], updated: vec![], unchanged: vec![] };
        for (spec, (body, digest)) in bodies {
            let path = self.action_path(&spec.name);
            let existing =
                self.client.call(Method::GET, &format!("{path}?code=false"), None, Duration::from_secs(30)).await?;
            let created = match existing.status {
                StatusCode::OK => {
                    let current = existing.json();
                    if OpenWhiskRunner::annotation(&current, DIGEST_ANNOTATION).and_then(Value::as_str) == Some(&digest)
                    {
                        report.unchanged.push(spec.name.clone());
                        self.remember(&spec.name, Some(true));
                        continue;
                    }
                    false
                }
                StatusCode::NOT_FOUND => true,
                s => {
                    return Err(wire::api_error(
                        &format!("reading the action of `{}`", spec.name),
                        s.as_u16(),
                        &existing.body,
                    ))
                }
            };
            progress.step(&format!(
                "{} action {}",
                if created { "creating" } else { "updating" },
                self.settings().action_name(&spec.name)
            ));
            let what = format!("deploying `{}` to {}", spec.name, self.where_());
            self.client
                .expect(
                    Method::PUT,
                    &format!("{path}?overwrite=true"),
                    Some(serde_json::to_vec(&body).expect("JSON")),
                    &what,
                )
                .await?;
            self.remember(&spec.name, Some(true));
            if created {
                report.created.push(spec.name.clone())
            } else {
                report.updated.push(spec.name.clone())
            }
        }
        triggers::sync(&self.client, &package.app, &declared, &existing, progress).await?;
        Ok(report)
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<Invoked, Error> {
        let function = request.function.clone();
        // The trace context travels in the faas envelope, which only a faas action unwraps.
        let traceparent = match request.traceparent.as_deref() {
            Some(t) if self.is_faas_action(&function).await => Some(t),
            _ => None,
        };
        let params = wire::params_of_traced(&request.payload, traceparent);
        let enveloped = params.as_slice() != request.payload.body().as_ref();
        if params.len() > wire::MAX_PAYLOAD || (enveloped && request.payload.len() > MAX_CARRIED) {
            return Err(Error::payload_too_large(format!(
                "the request to `{function}` is {} bytes; OpenWhisk's limit is {} bytes ({MAX_CARRIED} for a \
                 payload that is not a JSON object, which travels base64-encoded)",
                request.payload.len(),
                wire::MAX_PAYLOAD
            )));
        }
        let path = self.action_path(&function);
        let what = format!("invoking `{function}` on {}", self.where_());
        match request.mode {
            InvokeMode::DryRun => {
                let answer =
                    self.client.call(Method::GET, &format!("{path}?code=false"), None, Duration::from_secs(30)).await?;
                return match answer.status {
                    StatusCode::OK => {
                        Ok(Invoked { activation_id: String::new(), payload: Payload::empty(), logs: None })
                    }
                    StatusCode::NOT_FOUND => Err(self.not_found(&function)),
                    s => Err(wire::api_error(&what, s.as_u16(), &answer.body)),
                };
            }
            InvokeMode::Async => {
                let answer = self.client.call(Method::POST, &path, Some(params), Duration::from_secs(60)).await?;
                return match answer.status {
                    StatusCode::ACCEPTED => {
                        let id = answer.json()["activationId"].as_str().unwrap_or_default().to_string();
                        Ok(Invoked { activation_id: id, payload: Payload::empty(), logs: None })
                    }
                    StatusCode::NOT_FOUND => Err(self.not_found(&function)),
                    s => Err(wire::api_error(&what, s.as_u16(), &answer.body)),
                };
            }
            InvokeMode::Sync => {}
        }
        let started = Instant::now();
        // How long to wait in all: the action's own timeout, which OpenWhisk enforces, plus slack
        // for a cold start; the REST call itself waits at most OpenWhisk's blocking wait.
        let answer = self
            .client
            .call(Method::POST, &format!("{path}?blocking=true"), Some(params), Duration::from_secs(70))
            .await?;
        let record = match answer.status {
            StatusCode::OK | StatusCode::BAD_GATEWAY if answer.json().get("activationId").is_some() => answer.json(),
            StatusCode::ACCEPTED => {
                let id = answer.json()["activationId"].as_str().unwrap_or_default().to_string();
                let limit = TIMEOUT_RANGE.1 + Duration::from_secs(60);
                self.poll(&function, &id, started + limit).await?
            }
            StatusCode::NOT_FOUND => return Err(self.not_found(&function)),
            s => return Err(wire::api_error(&what, s.as_u16(), &answer.body)),
        };
        let activation_id = record["activationId"].as_str().unwrap_or_default().to_string();
        let payload = records::outcome(&function, &record)?;
        let logs = request.with_logs.then(|| records::activation(&function, &record).logs);
        Ok(Invoked { activation_id, payload, logs })
    }

    async fn list(&self) -> Result<Vec<FunctionInfo>, Error> {
        // The actions of the package, as `wsk action list PACKAGE` lists them (`actions/{package}/`).
        let collection = match &self.settings().package {
            Some(p) => format!("actions/{}/", wire::url_path(p)),
            None => "actions".to_string(),
        };
        let actions = self.client.list_all(&collection).await?;
        let mut found: Vec<FunctionInfo> = actions.iter().filter_map(|a| self.info_of(a)).collect();
        found.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        found.dedup_by(|a, b| a.spec.name == b.spec.name);
        Ok(found)
    }

    async fn remove(&self, function: &str) -> Result<(), Error> {
        let answer =
            self.client.call(Method::DELETE, &self.action_path(function), None, Duration::from_secs(30)).await?;
        self.remember(function, None);
        match answer.status {
            s if s.is_success() => triggers::remove_function(&self.client, function).await,
            StatusCode::NOT_FOUND => Err(self.not_found(function)),
            s => {
                Err(wire::api_error(&format!("removing `{function}` from {}", self.where_()), s.as_u16(), &answer.body))
            }
        }
    }

    async fn activations(&self, query: ActivationQuery) -> Result<Vec<Activation>, Error> {
        let limit = query.limit.unwrap_or(50).clamp(1, 200);
        if let Some(id) = &query.id {
            let answer =
                self.client.call(Method::GET, &format!("activations/{id}"), None, Duration::from_secs(30)).await?;
            return match answer.status {
                StatusCode::OK => {
                    let record = answer.json();
                    let function = record["name"].as_str().unwrap_or_default().to_string();
                    if query.function.as_ref().is_some_and(|f| f != &function) {
                        return Ok(vec![]);
                    }
                    Ok(vec![records::activation(&function, &record)])
                }
                StatusCode::NOT_FOUND => Ok(vec![]),
                s => Err(wire::api_error(&format!("reading activation {id}"), s.as_u16(), &answer.body)),
            };
        }
        let functions: Vec<String> = match &query.function {
            Some(f) => vec![f.clone()],
            None => self.list().await?.into_iter().map(|f| f.spec.name).collect(),
        };
        let mut all = Vec::new();
        for function in functions {
            let name = wire::url_path(&self.settings().action_name(&function));
            let answer = self
                .client
                .expect(
                    Method::GET,
                    &format!("activations?name={name}&limit={limit}&docs=true"),
                    None,
                    &format!("listing the activations of `{function}`"),
                )
                .await?;
            let list = answer.json();
            all.extend(list.as_array().into_iter().flatten().map(|r| records::activation(&function, r)));
        }
        all.sort_by_key(|a| std::cmp::Reverse(a.start_ms));
        all.truncate(limit);
        Ok(all)
    }
}
