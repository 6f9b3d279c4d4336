//! [`GcfRunner`]: the faas runner SPI over the Cloud Functions v2 API (2nd gen, on Cloud Run).
//!
//! Each faas function becomes one function, `projects/{project}/locations/{region}/functions/{name}`
//! (the id is the function's name, which must be lowercase letters, digits and hyphens, start
//! with a letter and have at most 63 characters; a name shorter than the 4 characters of the
//! shortest id gets `-fn` appended: [`function_id`]), built from the app's source archive
//! ([`crate::package`]):
//!
//! - `buildConfig`: the profile's `runtime` (`python312`), `entryPoint` = the function's name,
//!   `source.storageSource` from `generateUploadUrl` (the archive is `PUT` there with
//!   `content-type: application/zip` and no `Authorization`);
//! - `serviceConfig`: `timeoutSeconds` from the function's timeout (rounded up to whole seconds;
//!   1–3600 for an HTTP function, 1–540 for one with an event trigger), `availableMemory`
//!   `"{MB}M"` (128–32768), `maxInstanceRequestConcurrency` 1, `maxInstanceCount` the function's
//!   concurrency, and `environmentVariables`: the function's own, `FAAS_TIMEOUT_SECONDS`,
//!   `FAAS_CONCURRENCY` (1), `GOOGLE_CLOUD_PROJECT`, which the host reads ([`crate::host`]),
//!   `FAAS_EVENTS_URL` (the profile's `events`, for `cx.emit`) and, for a CloudEvent function
//!   without an Eventarc trigger, `FAAS_SIGNATURE_TYPE=cloudevent` (see [`ENV_SIGNATURE`]);
//! - `labels`: `faas-app`, `faas-function` and `faas-digest` (32 hex digits of the SHA-256 of the
//!   code and of all of the above), so a deploy that would change nothing reports the function
//!   unchanged and sends nothing (not even the archive);
//! - `eventTrigger`, for a subscription that maps to Eventarc ([`event_trigger`]): an exact
//!   `google.*` event type becomes `eventType` (retry policy: do not retry); a Pub/Sub source
//!   (`//pubsub.googleapis.com/projects/P/topics/T`) becomes `pubsubTopic`, a Cloud Storage one
//!   (`//storage.googleapis.com/projects/_/buckets/B`) the filter `bucket = B`. What does not map:
//!   other sources, subjects (Eventarc filters on event attributes, not on these) and a second
//!   `google.*` subscription (a function has one trigger) are refused; subscriptions to the app's
//!   own event types (not `google.*`) are no trigger at all: the faas event gateway delivers
//!   them, through [`GcfRunner`]'s invoke.
//!
//! A function of the same name that another app (or no faas app) labelled is never taken over;
//! the deploy is refused before anything is sent. Creating, updating and deleting are
//! long-running operations, followed to their end with the
//! stages of the build as progress. `list` lists the functions labelled `faas-function` in the
//! region (the runner SPI names no app).
//!
//! Invocations go to the function's URL (`serviceConfig.uri`): a POST of the payload with its
//! content type (a CloudEvent in binary mode, as Eventarc delivers it), with a
//! `Function-Execution-Id` and an `X-Cloud-Trace-Context` of the runner's own, so that the
//! activation can be found in the logs; on Google with an ID token for the URL. Answers are
//! mapped by [`outcome`]. Cloud Functions has no asynchronous invocation of an HTTP function, so
//! the runner does not claim `async` (an asynchronous invoke is refused); it claims `emit` when the
//! profile names the event gateway (`events`), not `invoke` (`cx.invoke` has no route to another
//! function's URL yet). A dry run reads the function. Activations and their logs are
//! rebuilt from Cloud Logging's `entries:list` ([`activations_of`]).

mod client;
mod records;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use faas_api::{
    Activation, ActivationQuery, AppSpec, BackendProfile, Capabilities, Capability, DeployReport, Error, EventFilter,
    FunctionInfo, FunctionSpec, InvokeMode, InvokeRequest, Invoked, Package, Payload, Progress, Runner, TraceContext,
    Trigger,
};
use google_cloud_functions_v2::model::Function;
use serde_json::{json, Value};

pub use records::{activations_of, billed_us, outcome, status_error};

use crate::settings::GcfSettings;
use client::Client;

/// The longest timeout of an HTTP function (Cloud Run's request timeout), in seconds.
pub const MAX_TIMEOUT_HTTP: u64 = 3600;
/// The longest timeout of a function with an event trigger, in seconds.
pub const MAX_TIMEOUT_EVENT: u64 = 540;
/// The smallest and largest memory, in MB.
pub const MEMORY_RANGE: (u32, u32) = (128, 32768);
/// The largest request body of a function (Cloud Functions' 32 MiB).
pub const MAX_PAYLOAD: usize = crate::host::MAX_REQUEST;
/// The label with the app's name.
pub const APP_LABEL: &str = "faas-app";
/// The label marking a function as a faas function; its value is the function's name.
pub const FUNCTION_LABEL: &str = "faas-function";
/// The label with the digest of what was deployed.
pub const DIGEST_LABEL: &str = "faas-digest";
/// The project variable of the function's environment.
pub const ENV_PROJECT: &str = "GOOGLE_CLOUD_PROJECT";
/// The event gateway variable (`cx.emit`).
pub const ENV_EVENTS: &str = faas_host::wire::ENV_EVENTS;
/// The signature of a CloudEvent function without an Eventarc trigger, which the platform starts
/// as an `http` one (`FUNCTION_SIGNATURE_TYPE` is reserved); the archive's `main.py` applies it.
pub const ENV_SIGNATURE: &str = "FAAS_SIGNATURE_TYPE";
/// Variables the runner itself sets on every function, left out of `list`.
pub const MANAGED_ENV: [&str; 5] =
    [crate::host::ENV_TIMEOUT, crate::host::ENV_CONCURRENCY, ENV_PROJECT, faas_host::wire::ENV_EVENTS, ENV_SIGNATURE];

/// The suffix of the id of a function whose name is shorter than a function id may be.
pub const SHORT_SUFFIX: &str = "-fn";

/// The Cloud Functions function id of the faas function `name`: the name itself, with
/// [`SHORT_SUFFIX`] appended to a name of fewer than 4 characters (function ids have 4–63). A
/// name that cannot be one (uppercase letters, `_`, a leading digit, a trailing hyphen, over 63
/// characters) is refused, naming the function and the rule.
///
/// ```
/// use faas_runner_gcf::deploy::function_id;
/// assert_eq!(function_id("hello-world2").unwrap(), "hello-world2");
/// assert_eq!(function_id("big").unwrap(), "big-fn");
/// let e = function_id("Hello_World").unwrap_err();
/// assert!(e.message().contains("`Hello_World`") && e.message().contains("lowercase"), "{e}");
/// assert!(function_id("2fast").is_err() && function_id(&"a".repeat(64)).is_err());
/// ```
pub fn function_id(name: &str) -> Result<String, Error> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(Error::bad_input(format!(
            "function `{name}` cannot be a Cloud Functions function: its name makes the function id, which must \
             be lowercase letters, digits and hyphens, start with a letter, not end with a hyphen, and have at \
             most 63 characters"
        ))
        .with_type("InvalidFunctionName"));
    }
    Ok(if name.len() < 4 { format!("{name}{SHORT_SUFFIX}") } else { name.to_string() })
}

/// Refuses two functions of `functions` with the same function id (`big` and `big-fn`).
fn check_ids(functions: &[FunctionSpec]) -> Result<(), Error> {
    let mut seen = BTreeMap::new();
    for f in functions {
        let id = function_id(&f.name)?;
        if let Some(other) = seen.insert(id.clone(), f.name.clone()) {
            return Err(Error::bad_input(format!(
                "functions `{other}` and `{}` would both be the Cloud Functions function `{id}`; rename one",
                f.name
            ))
            .with_type("InvalidFunctionName"));
        }
    }
    Ok(())
}

/// A label value made of `text`: lowercase letters, digits, `_` and `-`, at most 63 characters.
fn label_value(text: &str) -> String {
    let v: String = text
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' { c } else { '-' })
        .collect();
    v.chars().take(63).collect()
}

/// The `eventTrigger` of `spec`'s subscriptions, if one maps (see the [module docs](self)).
///
/// ```
/// use faas_api::{EventFilter, FunctionSpec, Trigger};
/// use faas_runner_gcf::deploy::event_trigger;
/// let mut spec = FunctionSpec::new("on-upload");
/// spec.triggers.push(Trigger::Event { filter: EventFilter::new()
///     .event_type("google.cloud.storage.object.v1.finalized")
///     .source("//storage.googleapis.com/projects/_/buckets/photos") });
/// let t = event_trigger(&spec).unwrap().unwrap();
/// assert_eq!(t["eventFilters"][0]["value"], "photos");
/// spec.triggers = vec![Trigger::Event { filter: EventFilter::new().event_type("order.created") }];
/// assert!(event_trigger(&spec).unwrap().is_none());
/// ```
pub fn event_trigger(spec: &FunctionSpec) -> Result<Option<Value>, Error> {
    let google: Vec<&EventFilter> = spec
        .triggers
        .iter()
        .filter_map(|t| match t {
            Trigger::Event { filter } => Some(filter),
            Trigger::Http { .. } => None,
        })
        .filter(|f| f.event_type.as_deref().is_some_and(|t| t.starts_with("google.")))
        .collect();
    let Some(filter) = google.first() else { return Ok(None) };
    let refuse =
        |why: String| Error::bad_input(format!("function `{}`: {why}", spec.name)).with_type("UnsupportedTrigger");
    if google.len() > 1 {
        return Err(refuse(
            "a Cloud Function has one event trigger; it subscribes to several Google event types".into(),
        ));
    }
    let event_type = filter.event_type.clone().unwrap_or_default();
    if event_type.ends_with('*') {
        return Err(refuse(format!("Eventarc takes an exact event type, not `{event_type}`")));
    }
    if filter.subject.is_some() {
        return Err(refuse("Eventarc filters on event attributes; a subject filter does not map".into()));
    }
    let mut trigger = json!({"eventType": event_type, "retryPolicy": "RETRY_POLICY_DO_NOT_RETRY"});
    if let Some(source) = &filter.source {
        if let Some(topic) = source.strip_prefix("//pubsub.googleapis.com/").filter(|t| t.contains("/topics/")) {
            trigger["pubsubTopic"] = json!(topic);
        } else if let Some(bucket) = source.strip_prefix("//storage.googleapis.com/projects/_/buckets/") {
            trigger["eventFilters"] = json!([{"attribute": "bucket", "value": bucket}]);
        } else {
            return Err(refuse(format!(
                "the source `{source}` does not map to an Eventarc filter (Pub/Sub topics and Cloud Storage buckets do)"
            )));
        }
    }
    Ok(Some(trigger))
}

/// The Function resource (as its REST JSON, without `buildConfig.source`) of `spec` in `app`
/// with the code of digest `code_digest`, and its digest.
///
/// ```
/// use faas_api::{BackendProfile, FunctionSpec};
/// use faas_runner_gcf::settings::GcfSettings;
/// let s = GcfSettings::from_profile(&BackendProfile::new("gcp", "gcf").with("project", "my-project")).unwrap();
/// let (f, digest) = faas_runner_gcf::deploy::function_config(&s, "shop", &FunctionSpec::new("hello"), "c0de").unwrap();
/// assert_eq!(f["serviceConfig"]["timeoutSeconds"], 30);
/// assert_eq!(f["labels"]["faas-digest"], digest.as_str());
/// ```
pub fn function_config(
    settings: &GcfSettings,
    app: &str,
    spec: &FunctionSpec,
    code_digest: &str,
) -> Result<(Value, String), Error> {
    let id = function_id(&spec.name)?;
    let trigger = event_trigger(spec)?;
    let max = if trigger.is_some() { MAX_TIMEOUT_EVENT } else { MAX_TIMEOUT_HTTP };
    let seconds = spec.timeout.as_millis().div_ceil(1000) as u64;
    if seconds == 0 || seconds > max {
        return Err(Error::bad_input(format!(
            "function `{}` has timeout {} ms; Cloud Functions takes 1–{max} s for {} function",
            spec.name,
            spec.timeout.as_millis(),
            if trigger.is_some() { "an event-triggered" } else { "an HTTP" }
        )));
    }
    if spec.memory_mb < MEMORY_RANGE.0 || spec.memory_mb > MEMORY_RANGE.1 {
        return Err(Error::bad_input(format!(
            "function `{}` has memory_mb = {}; Cloud Functions takes {}–{} MB",
            spec.name, spec.memory_mb, MEMORY_RANGE.0, MEMORY_RANGE.1
        )));
    }
    let mut env: BTreeMap<String, String> = spec.env.clone();
    env.insert(crate::host::ENV_TIMEOUT.into(), seconds.to_string());
    env.insert(crate::host::ENV_CONCURRENCY.into(), "1".into());
    env.insert(ENV_PROJECT.into(), settings.project.clone());
    if let Some(events) = &settings.events {
        env.insert(ENV_EVENTS.into(), events.clone());
    }
    if spec.handler == faas_api::HandlerKind::Event && trigger.is_none() {
        env.insert(ENV_SIGNATURE.into(), "cloudevent".into());
    }
    let mut function = json!({
        "name": settings.function_name(&id),
        "description": format!("faas function `{}` of app `{app}`", spec.name),
        "environment": "GEN_2",
        "buildConfig": {"runtime": settings.runtime, "entryPoint": spec.name},
        "serviceConfig": {
            "timeoutSeconds": seconds,
            "availableMemory": format!("{}M", spec.memory_mb),
            "maxInstanceRequestConcurrency": 1,
            "maxInstanceCount": spec.concurrency.max(1),
            "environmentVariables": env,
        },
    });
    if let Some(t) = trigger {
        function["eventTrigger"] = t;
    }
    let input = json!({"code": code_digest, "function": function});
    let digest = faas_packaging::sha256_hex(input.to_string().as_bytes())[..32].to_string();
    function["labels"] = json!({APP_LABEL: label_value(app), FUNCTION_LABEL: spec.name, DIGEST_LABEL: digest});
    Ok((function, digest))
}

/// Headers and body of a request.
type BinaryRequest = (Vec<(String, String)>, Vec<u8>);

/// The binary-mode request (headers, body) of a structured CloudEvent payload, as Eventarc
/// sends events; `None` for any other payload (sent as it is).
fn binary_mode(payload: &Payload) -> Option<BinaryRequest> {
    let ct = payload.content_type()?.to_ascii_lowercase();
    if !ct.starts_with(faas_api::payload::CLOUDEVENTS_JSON) {
        return None;
    }
    let event: serde_json::Map<String, Value> = serde_json::from_slice(payload.body()).ok()?;
    if event.contains_key("data_base64") {
        return None;
    }
    let mut headers = Vec::new();
    let mut content_type = None;
    for (k, v) in &event {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        match k.as_str() {
            "data" => {}
            "datacontenttype" => content_type = Some(text),
            _ => headers.push((format!("ce-{k}"), faas_api::event::encode_header_value(&text))),
        }
    }
    let body = match event.get("data") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) if !content_type.as_deref().is_some_and(|c| c.contains("json")) => {
            s.clone().into_bytes()
        }
        Some(other) => {
            content_type.get_or_insert_with(|| "application/json".to_string());
            other.to_string().into_bytes()
        }
    };
    if let Some(ct) = content_type {
        headers.push(("content-type".into(), ct));
    }
    Some((headers, body))
}

/// Where and how a function is invoked.
#[derive(Debug, Clone)]
struct Endpoint {
    url: String,
    timeout: Duration,
    /// A CloudEvent function (sent events in binary mode).
    cloudevent: bool,
}

/// The Google Cloud Functions (2nd gen) backend (see the [module docs](self)).
pub struct GcfRunner {
    client: Client,
    /// Each function's endpoint, as last read.
    urls: Mutex<BTreeMap<String, Endpoint>>,
}

impl std::fmt::Debug for GcfRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcfRunner").field("settings", self.client.settings()).finish()
    }
}

impl GcfRunner {
    /// A runner for `profile` (see [`crate::settings`]).
    pub fn from_profile(profile: &BackendProfile) -> Result<Arc<GcfRunner>, Error> {
        GcfRunner::new(GcfSettings::from_profile(profile)?)
    }

    /// A runner with `settings` (nothing is contacted until it is used).
    pub fn new(settings: GcfSettings) -> Result<Arc<GcfRunner>, Error> {
        Ok(Arc::new(GcfRunner { client: Client::new(settings)?, urls: Mutex::new(BTreeMap::new()) }))
    }

    /// Its settings.
    pub fn settings(&self) -> &GcfSettings {
        self.client.settings()
    }

    fn where_(&self) -> String {
        let s = self.settings();
        match &s.endpoint {
            Some(e) => format!("the local Cloud Functions at {e} ({})", s.parent()),
            None => format!("Cloud Functions ({})", s.parent()),
        }
    }

    fn not_found(&self, function: &str) -> Error {
        Error::not_found(format!("no function named `{function}` on {}", self.where_())).with_type("Google.NOT_FOUND")
    }

    /// The function of the faas function `function`, or `None` when there is none.
    async fn get(&self, function: &str) -> Result<Option<Function>, Error> {
        let id = function_id(function)?;
        let service = self.client.service().await?;
        match service.get_function().set_name(self.settings().function_name(&id)).send().await {
            Ok(f) => Ok(Some(f)),
            Err(e) => {
                let e = records::google_error(&format!("reading function `{function}` on {}", self.where_()), &e);
                if e.kind() == faas_api::ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The endpoint of function `id`.
    async fn endpoint_of(&self, id: &str) -> Result<Endpoint, Error> {
        if let Some(found) = self.urls.lock().expect("lock").get(id) {
            return Ok(found.clone());
        }
        let f = self.get(id).await?.ok_or_else(|| self.not_found(id))?;
        let json = serde_json::to_value(&f).unwrap_or_default();
        let uri = json["serviceConfig"]["uri"].as_str().or(json["url"].as_str()).unwrap_or_default().to_string();
        if uri.is_empty() {
            let state = f.state.name().unwrap_or("UNKNOWN");
            return Err(Error::unavailable(format!("function `{id}` has no URL yet (state {state})"))
                .with_type("Google.FAILED_PRECONDITION"));
        }
        let timeout = Duration::from_secs(json["serviceConfig"]["timeoutSeconds"].as_u64().unwrap_or(60));
        let cloudevent = json["eventTrigger"].is_object()
            || json["serviceConfig"]["environmentVariables"][ENV_SIGNATURE].as_str() == Some("cloudevent");
        let endpoint = Endpoint { url: uri, timeout, cloudevent };
        self.urls.lock().expect("lock").insert(id.to_string(), endpoint.clone());
        Ok(endpoint)
    }

    /// The faas function a Cloud Function is, if it is one.
    fn info_of(function: &Function) -> Option<FunctionInfo> {
        let json = serde_json::to_value(function).ok()?;
        let name = json["labels"][FUNCTION_LABEL].as_str()?;
        let mut spec = FunctionSpec::new(name);
        let service = &json["serviceConfig"];
        if let Some(t) = service["timeoutSeconds"].as_u64() {
            spec.timeout = Duration::from_secs(t);
        }
        if let Some(m) = service["availableMemory"].as_str().and_then(memory_mb) {
            spec.memory_mb = m;
        }
        if let Some(n) = service["maxInstanceCount"].as_u64() {
            spec.concurrency = n as u32;
        }
        spec.env = service["environmentVariables"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !MANAGED_ENV.contains(&k.as_str()))
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        if let Some(t) = json["eventTrigger"]["eventType"].as_str() {
            spec.triggers.push(Trigger::Event { filter: EventFilter::new().event_type(t) });
        }
        // (The SDK serializes enums as their numbers.)
        let state = function.state.name().unwrap_or("UNKNOWN").to_ascii_lowercase();
        Some(FunctionInfo { spec, state })
    }

    /// Cloud Logging entries of the faas function `function` matching `extra` (a filter clause),
    /// newest first.
    async fn entries(&self, function: &str, extra: Option<&str>, max: usize) -> Result<Vec<Value>, Error> {
        let id = function_id(function)?;
        let mut filter = format!("resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"{id}\"");
        if let Some(x) = extra {
            filter = format!("{filter} AND {x}");
        }
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..5 {
            let mut body = json!({
                "resourceNames": [format!("projects/{}", self.settings().project)],
                "filter": filter,
                "orderBy": "timestamp desc",
                "pageSize": max.min(1000),
            });
            if let Some(t) = &token {
                body["pageToken"] = json!(t);
            }
            let page = self.client.list_entries(&body).await?;
            all.extend(page["entries"].as_array().into_iter().flatten().cloned());
            token = page["nextPageToken"].as_str().filter(|t| !t.is_empty()).map(str::to_string);
            if token.is_none() || all.len() >= max {
                break;
            }
        }
        Ok(all)
    }

    /// The log lines of execution `execution_id` of function `id`.
    async fn logs_of(&self, id: &str, execution_id: &str) -> Result<Vec<String>, Error> {
        // Google's logs arrive after a while; the local Cloud Functions has them at once.
        let tries = if self.settings().is_local() { 1 } else { 10 };
        for attempt in 0..tries {
            let entries = self.entries(id, Some(&format!("labels.execution_id=\"{execution_id}\"")), 1000).await?;
            let found = activations_of(id, &entries).into_iter().find(|a| a.id == execution_id);
            if let Some(a) = found.filter(|a| !a.logs.is_empty()) {
                return Ok(a.logs);
            }
            if attempt + 1 < tries {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Ok(vec![])
    }
}

/// `"256M"`, `"1Gi"`, `"512Mi"`, `"2G"` in MB.
fn memory_mb(text: &str) -> Option<u32> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mb = match unit {
        "" => n / 1_000_000,
        "k" => n / 1000,
        "Ki" => n / 1024,
        "M" | "Mi" => n,
        "G" | "Gi" => n * 1024,
        _ => return None,
    };
    u32::try_from(mb).ok()
}

#[async_trait]
impl Runner for GcfRunner {
    fn kind(&self) -> &str {
        "gcf"
    }

    fn capabilities(&self) -> Capabilities {
        let mut claims: std::collections::BTreeSet<Capability> = [
            Capability::WarmReuse,
            Capability::CloudEvents,
            Capability::Logs,
            Capability::ProcessIsolation,
            Capability::MemoryLimit,
        ]
        .into();
        // `emit` when the profile names the event gateway the functions post to (the host gives
        // `cx.emit` the gateway of `FAAS_EVENTS_URL`); not `invoke`: `cx.invoke` has no route
        // to another function's URL yet.
        if self.settings().events.is_some() {
            claims.insert(Capability::Emit);
        }
        Capabilities {
            claims,
            max_sync_payload: MAX_PAYLOAD,
            max_async_payload: 0,
            max_timeout: Duration::from_secs(MAX_TIMEOUT_HTTP),
        }
    }

    async fn package(&self, app: &AppSpec, progress: &dyn Progress) -> Result<Package, Error> {
        self.check(&app.functions)?;
        check_ids(&app.functions)?;
        let runtime = &self.settings().runtime;
        progress.step(&format!("packaging the source archive for runtime {runtime}"));
        let out = crate::package::package_dir(&app.binary).join(crate::package::archive_name(&app.app, runtime));
        let info = crate::package::package_app(&app.binary, self.settings().arch, &out)?;
        Ok(Package { app: app.app.clone(), artifact: info.path, size: info.size, functions: app.functions.clone() })
    }

    async fn deploy(&self, package: &Package, progress: &dyn Progress) -> Result<DeployReport, Error> {
        let zip = std::fs::read(&package.artifact)
            .map_err(|e| Error::unavailable(format!("cannot read {}: {e}", package.artifact.display())))?;
        let code_digest = faas_packaging::sha256_hex(&zip);
        // Every function is checked before anything is sent.
        check_ids(&package.functions)?;
        let mut configs = Vec::new();
        for spec in &package.functions {
            configs.push((spec, function_config(self.settings(), &package.app, spec, &code_digest)?));
        }
        let service = self.client.service().await?;
        let parent = self.settings().parent();
        // A function of the same name that is not this app's is never taken over: refused before
        // anything is sent.
        let mut found = Vec::new();
        for (spec, config) in configs {
            let existing = self.get(&spec.name).await?;
            if let Some(current) = &existing {
                let ours = current.labels.get(FUNCTION_LABEL) == Some(&spec.name)
                    && current.labels.get(APP_LABEL) == Some(&label_value(&package.app));
                if !ours {
                    return Err(Error::bad_input(format!(
                        "function `{}` already exists on {} and is not app `{}`'s (its labels {APP_LABEL} and \
                         {FUNCTION_LABEL} say otherwise); remove it or rename the faas function",
                        spec.name,
                        self.where_(),
                        package.app
                    ))
                    .with_type("Google.ALREADY_EXISTS"));
                }
            }
            found.push((spec, config, existing));
        }
        let mut report = DeployReport { created: vec![], updated: vec![], unchanged: vec![] };
        let mut source: Option<Value> = None;
        for (spec, (mut config, digest), existing) in found {
            if let Some(current) = &existing {
                if current.labels.get(DIGEST_LABEL) == Some(&digest) {
                    report.unchanged.push(spec.name.clone());
                    continue;
                }
            }
            if source.is_none() {
                progress.step(&format!("uploading the source archive ({} bytes)", zip.len()));
                let upload =
                    service.generate_upload_url().set_parent(parent.clone()).send().await.map_err(|e| {
                        records::google_error(&format!("getting an upload URL from {}", self.where_()), &e)
                    })?;
                self.client.upload(&upload.upload_url, zip.clone()).await?;
                let storage = upload.storage_source.ok_or_else(|| {
                    Error::unavailable("generateUploadUrl answered no storageSource").with_type("Google.INTERNAL")
                })?;
                source = Some(serde_json::to_value(&storage).unwrap_or_default());
            }
            config["buildConfig"]["source"] = json!({"storageSource": source.clone().unwrap_or_default()});
            let function: Function = serde_json::from_value(config)
                .map_err(|e| Error::bad_input(format!("function `{}`: cannot make its Function: {e}", spec.name)))?;
            self.urls.lock().expect("lock").remove(&spec.name);
            let what = format!(
                "{} function `{}` on {}",
                if existing.is_some() { "updating" } else { "creating" },
                spec.name,
                self.where_()
            );
            progress.step(&what);
            if existing.is_some() {
                let op = service.update_function().set_function(function).poller();
                client::follow(op, &what, progress).await?;
                report.updated.push(spec.name.clone());
            } else {
                let op = service
                    .create_function()
                    .set_parent(parent.clone())
                    .set_function_id(function_id(&spec.name)?)
                    .set_function(function)
                    .poller();
                client::follow(op, &what, progress).await?;
                report.created.push(spec.name.clone());
            }
        }
        Ok(report)
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<Invoked, Error> {
        let function = request.function.clone();
        if request.payload.len() > MAX_PAYLOAD {
            return Err(Error::payload_too_large(format!(
                "the request to `{function}` is {} bytes; Cloud Functions takes at most {MAX_PAYLOAD}",
                request.payload.len()
            )));
        }
        match request.mode {
            InvokeMode::DryRun => {
                return match self.get(&function).await? {
                    Some(_) => Ok(Invoked { activation_id: String::new(), payload: Payload::empty(), logs: None }),
                    None => Err(self.not_found(&function)),
                };
            }
            InvokeMode::Async => {
                return Err(Error::bad_input(format!(
                    "`{function}`: Cloud Functions has no asynchronous invocation of a function (deliver events \
                     through the event gateway instead)"
                ))
                .with_type("UnsupportedCapability"));
            }
            InvokeMode::Sync => {}
        }
        let Endpoint { url, timeout, cloudevent } = self.endpoint_of(&function).await?;
        let trace = request.traceparent.as_deref().and_then(TraceContext::parse).unwrap_or_else(TraceContext::random);
        let span = u64::from_str_radix(&trace.traceparent()[36..52], 16).unwrap_or(1).max(1);
        let execution_id = TraceContext::random().trace_id()[..16].to_string();
        let mut http = self
            .client
            .http()
            .post(&url)
            .headers(self.client.invoke_headers(&url).await?)
            .header("function-execution-id", &execution_id)
            .header("x-cloud-trace-context", format!("{}/{span};o=1", trace.trace_id()))
            .header("traceparent", trace.traceparent())
            .timeout(timeout + Duration::from_secs(60));
        http = match binary_mode(&request.payload).filter(|_| cloudevent) {
            Some((headers, body)) => {
                for (k, v) in headers {
                    http = http.header(k, v);
                }
                http.body(body)
            }
            None => {
                if let Some(ct) = request.payload.content_type() {
                    http = http.header(reqwest::header::CONTENT_TYPE, ct);
                }
                http.body(request.payload.body().clone())
            }
        };
        let answer = self.client.send(http, &format!("invoking `{function}` at {url}")).await?;
        let header = |name: &str| answer.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let activation_id = header("function-execution-id").unwrap_or(execution_id);
        if answer.status == 404 && Error::from_json(&answer.body).is_none() {
            self.urls.lock().expect("lock").remove(&function);
        }
        let payload = outcome(
            &function,
            answer.status,
            header("x-google-status").as_deref(),
            header("content-type").as_deref(),
            answer.body,
        )?;
        let logs = if request.with_logs { Some(self.logs_of(&function, &activation_id).await?) } else { None };
        Ok(Invoked { activation_id, payload, logs })
    }

    async fn list(&self) -> Result<Vec<FunctionInfo>, Error> {
        let service = self.client.service().await?;
        let mut found = Vec::new();
        let mut token = String::new();
        loop {
            let page = service
                .list_functions()
                .set_parent(self.settings().parent())
                .set_page_size(1000)
                .set_page_token(token.clone())
                .send()
                .await
                .map_err(|e| records::google_error(&format!("listing the functions on {}", self.where_()), &e))?;
            found.extend(page.functions.iter().filter_map(GcfRunner::info_of));
            if page.next_page_token.is_empty() || page.next_page_token == token {
                break;
            }
            token = page.next_page_token.clone();
        }
        found.sort_by(|a: &FunctionInfo, b| a.spec.name.cmp(&b.spec.name));
        found.dedup_by(|a, b| a.spec.name == b.spec.name);
        Ok(found)
    }

    async fn remove(&self, function: &str) -> Result<(), Error> {
        if self.get(function).await?.is_none() {
            return Err(self.not_found(function));
        }
        let service = self.client.service().await?;
        let what = format!("removing function `{function}` from {}", self.where_());
        let id = function_id(function)?;
        let op = service.delete_function().set_name(self.settings().function_name(&id)).poller();
        self.urls.lock().expect("lock").remove(function);
        client::follow(op, &what, &faas_api::NoProgress).await.map(|_| ())
    }

    async fn activations(&self, query: ActivationQuery) -> Result<Vec<Activation>, Error> {
        let limit = query.limit.unwrap_or(50).clamp(1, 200);
        let functions: Vec<String> = match &query.function {
            Some(f) => vec![f.clone()],
            None => self.list().await?.into_iter().map(|f| f.spec.name).collect(),
        };
        let mut all = Vec::new();
        for function in functions {
            let extra = query.id.as_ref().map(|id| format!("labels.execution_id=\"{id}\""));
            let entries = self.entries(&function, extra.as_deref(), limit * 20).await?;
            let mut found = activations_of(&function, &entries);
            if let Some(id) = &query.id {
                found.retain(|a| &a.id == id);
            }
            all.extend(found);
        }
        all.sort_by_key(|a| std::cmp::Reverse(a.start_ms));
        all.truncate(limit);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GcfSettings {
        GcfSettings::from_profile(
            &BackendProfile::new("gcp", "gcf")
                .with("project", "my-project")
                .with("events", "https://gw.example.com/events"),
        )
        .unwrap()
    }

    #[test]
    fn a_function_spec_becomes_a_function_resource() {
        let mut spec = FunctionSpec::new("hello");
        spec.timeout = Duration::from_millis(2500);
        spec.memory_mb = 512;
        spec.concurrency = 4;
        spec.env.insert("GREETING".into(), "hi".into());
        let (f, digest) = function_config(&settings(), "Shop.App", &spec, "abc").unwrap();
        assert_eq!(f["name"], "projects/my-project/locations/us-central1/functions/hello");
        assert_eq!(f["buildConfig"], json!({"runtime": "python312", "entryPoint": "hello"}));
        let service = &f["serviceConfig"];
        assert_eq!((service["timeoutSeconds"].as_u64(), service["availableMemory"].as_str()), (Some(3), Some("512M")));
        assert_eq!(
            (service["maxInstanceRequestConcurrency"].as_u64(), service["maxInstanceCount"].as_u64()),
            (Some(1), Some(4))
        );
        assert_eq!(
            service["environmentVariables"],
            json!({"GREETING": "hi", "FAAS_TIMEOUT_SECONDS": "3", "FAAS_CONCURRENCY": "1",
                   "GOOGLE_CLOUD_PROJECT": "my-project", "FAAS_EVENTS_URL": "https://gw.example.com/events"})
        );
        assert_eq!(f["labels"], json!({"faas-app": "shop-app", "faas-function": "hello", "faas-digest": digest}));
        assert_eq!(digest.len(), 32);
        assert!(f.get("eventTrigger").is_none());
        // The same input, the same digest; other code or config, another.
        assert_eq!(function_config(&settings(), "Shop.App", &spec, "abc").unwrap().1, digest);
        assert_ne!(function_config(&settings(), "Shop.App", &spec, "abd").unwrap().1, digest);
        spec.memory_mb = 256;
        assert_ne!(function_config(&settings(), "Shop.App", &spec, "abc").unwrap().1, digest);
        // The SDK takes it.
        let mut with_source = f.clone();
        with_source["buildConfig"]["source"] = json!({"storageSource": {"bucket": "b", "object": "o"}});
        let typed: Function = serde_json::from_value(with_source).unwrap();
        assert_eq!(typed.labels.get(DIGEST_LABEL), Some(&digest));
        let info = GcfRunner::info_of(&typed).unwrap();
        assert_eq!(
            (info.spec.name.as_str(), info.spec.memory_mb, info.spec.timeout),
            ("hello", 512, Duration::from_secs(3))
        );
        assert_eq!(info.spec.env, BTreeMap::from([("GREETING".to_string(), "hi".to_string())]));
    }

    #[test]
    fn out_of_range_specs_and_bad_names_are_refused() {
        let refuse = |spec: FunctionSpec| function_config(&settings(), "app", &spec, "c").unwrap_err();
        let mut long = FunctionSpec::new("slow");
        long.timeout = Duration::from_secs(3601);
        let e = refuse(long);
        assert!(e.message().contains("`slow`") && e.message().contains("1–3600 s"), "{e}");
        let mut event = FunctionSpec::new("on-msg");
        event.timeout = Duration::from_secs(600);
        event.triggers.push(Trigger::Event {
            filter: EventFilter::new()
                .event_type("google.cloud.pubsub.topic.v1.messagePublished")
                .source("//pubsub.googleapis.com/projects/p/topics/orders"),
        });
        assert!(refuse(event.clone()).message().contains("1–540 s"));
        event.timeout = Duration::from_secs(60);
        let (f, _) = function_config(&settings(), "app", &event, "c").unwrap();
        assert_eq!(f["eventTrigger"]["pubsubTopic"], "projects/p/topics/orders");
        assert_eq!(f["eventTrigger"]["eventType"], "google.cloud.pubsub.topic.v1.messagePublished");
        let mut big = FunctionSpec::new("big");
        big.memory_mb = 64;
        assert!(refuse(big).message().contains("128–32768 MB"));
        assert_eq!(refuse(FunctionSpec::new("Hello")).error_type(), "InvalidFunctionName");
        let (short, _) = function_config(&settings(), "app", &FunctionSpec::new("big"), "c").unwrap();
        assert_eq!(short["name"], "projects/my-project/locations/us-central1/functions/big-fn");
        assert_eq!(
            (short["buildConfig"]["entryPoint"].as_str(), short["labels"]["faas-function"].as_str()),
            (Some("big"), Some("big"))
        );
        let e = check_ids(&[FunctionSpec::new("big"), FunctionSpec::new("big-fn")]).unwrap_err();
        assert!(e.message().contains("`big` and `big-fn`"), "{e}");
        let mut subject = FunctionSpec::new("s");
        subject.triggers.push(Trigger::Event {
            filter: EventFilter::new().event_type("google.cloud.storage.object.v1.finalized").subject("objects/a"),
        });
        assert_eq!(refuse(subject).error_type(), "UnsupportedTrigger");
    }

    #[test]
    fn structured_cloudevents_are_sent_in_binary_mode() {
        let event = json!({"specversion": "1.0", "id": "1", "source": "/shop", "type": "order.created",
                           "datacontenttype": "application/json", "data": {"n": 1}});
        let payload = Payload::new(event.to_string().into_bytes(), Some("application/cloudevents+json".into()));
        let (headers, body) = binary_mode(&payload).unwrap();
        let get = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.as_str());
        assert_eq!(
            (get("ce-id"), get("ce-type"), get("ce-specversion")),
            (Some("1"), Some("order.created"), Some("1.0"))
        );
        assert_eq!(get("content-type"), Some("application/json"));
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!({"n": 1}));
        assert!(binary_mode(&Payload::json(&json!({"a": 1})).unwrap()).is_none());
        assert_eq!(memory_mb("1Gi"), Some(1024));
        assert_eq!(memory_mb("256M"), Some(256));
    }
}
