//! A site (function app): its record (`site.json`), keys (`keys.json`), content (`wwwroot/`),
//! logs (`LogFiles/`), and at run time its handler process, its triggers and the invocations
//! that go through them.
//!
//! The handler follows the host's rules: it is started when the site's content is deployed or
//! the site (re)starts, and started again when it exits; three failures to start or exits within
//! 30 minutes put the site in an error state (the host's "Exceeded http worker restart retry
//! count"), in which invocations answer 503 naming why, until the next deployment, settings
//! change or restart.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::config::{self, AppConfig, ConfigError, FunctionConfig, Trigger};
use crate::invoke::{self, Answer, Call, Failure};
use crate::json::{self, Obj, J};
use crate::keys::Keys;
use crate::logs::{Level, SiteLogs};
use crate::worker::{self, Client, Worker};

/// `ErrorEventsThreshold`: this many handler errors within [`ERROR_WINDOW`] stop the site.
const ERROR_THRESHOLD: usize = 3;

/// `WorkerRestartErrorIntervalThresholdInMinutes`.
const ERROR_WINDOW: Duration = Duration::from_secs(30 * 60);

/// The reason of an HTTP or admin invocation.
pub(crate) const HOST_API_REASON: &str = "This function was programmatically called via the host APIs.";

/// Writes a file through a temporary file and a rename, so that a reader never sees half of it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// What `site.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SiteRecord {
    pub name: String,
    pub subscription: String,
    #[serde(rename = "resourceGroup")]
    pub resource_group: String,
    pub location: String,
    pub kind: String,
    #[serde(default)]
    pub tags: Map<String, Value>,
    #[serde(rename = "appSettings", default)]
    pub app_settings: BTreeMap<String, String>,
    /// `WEBSITE_INSTANCE_ID`: 64 hex digits.
    #[serde(rename = "instanceId")]
    pub instance_id: String,
    pub created: String,
    #[serde(rename = "lastModified")]
    pub last_modified: String,
}

impl SiteRecord {
    /// A new record.
    pub fn new(name: &str, subscription: &str, resource_group: &str, location: &str, kind: &str) -> SiteRecord {
        let now = Utc::now().to_rfc3339();
        SiteRecord {
            name: name.to_string(),
            subscription: subscription.to_string(),
            resource_group: resource_group.to_string(),
            location: location.to_string(),
            kind: kind.to_string(),
            tags: Map::new(),
            app_settings: BTreeMap::new(),
            instance_id: format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()),
            created: now.clone(),
            last_modified: now,
        }
    }
}

/// The state of a site's content.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// Nothing deployed yet.
    Empty,
    Loaded(Arc<AppConfig>),
    /// The content on disk does not load (its error).
    Broken(String),
}

enum SlotState {
    Stopped,
    Running(Arc<Worker>),
    Failed(String),
}

struct Slot {
    state: SlotState,
    errors: Vec<Instant>,
}

impl Slot {
    /// Records a handler error as the host's error bucket does; whether the threshold is reached.
    fn error(&mut self) -> bool {
        let now = Instant::now();
        if self.errors.last().is_some_and(|last| now.duration_since(*last) > ERROR_WINDOW) {
            self.errors.clear();
        }
        self.errors.push(now);
        self.errors.len() >= ERROR_THRESHOLD
    }
}

/// Why a site cannot run an invocation now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unavailable(pub String);

/// A timer's schedule status, as the timer extension's monitor keeps it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TimerStatus {
    pub last: Option<String>,
    pub next: Option<String>,
    #[serde(rename = "lastUpdated")]
    pub last_updated: Option<String>,
}

/// One invocation in progress (between its `Executing` and `Executed` lines).
pub(crate) struct Invocation {
    pub id: String,
    pub function: String,
    /// The caller's `traceparent`, when it sent a valid one: ASP.NET Core's request activity
    /// continues it, so the host's request to the handler carries a child of it.
    pub parent: Option<String>,
    started: Instant,
}

/// A site.
pub(crate) struct Site {
    pub name: String,
    pub dir: PathBuf,
    pub record: Mutex<SiteRecord>,
    pub keys: Mutex<Keys>,
    content: Mutex<Content>,
    slot: tokio::sync::Mutex<Slot>,
    triggers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Held while a deployment runs.
    pub deploying: Arc<tokio::sync::Mutex<()>>,
    pub logs: Arc<SiteLogs>,
    pub client: Client,
    /// The storage connection queue triggers use instead of their app setting.
    azurite: Option<String>,
    closed: watch::Sender<bool>,
    pub(crate) timer_status: Mutex<HashMap<String, TimerStatus>>,
    me: Weak<Site>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Site {
    /// A site object for `record` in `dir` (which is created), with its keys (generated when
    /// `keys.json` does not exist).
    pub fn open(
        dir: PathBuf,
        record: SiteRecord,
        client: Client,
        echo: bool,
        azurite: Option<String>,
    ) -> std::io::Result<Arc<Site>> {
        std::fs::create_dir_all(dir.join("wwwroot"))?;
        let keys_path = dir.join("keys.json");
        let keys = match Keys::load(&keys_path) {
            Some(k) => k,
            None => {
                let k = Keys::generate();
                k.save(&keys_path)?;
                k
            }
        };
        write_atomic(&dir.join("site.json"), &serde_json::to_vec_pretty(&record).unwrap_or_default())?;
        let logs = Arc::new(SiteLogs::new(&dir, &record.instance_id, echo.then(|| record.name.clone())));
        let (closed, _) = watch::channel(false);
        let name = record.name.clone();
        Ok(Arc::new_cyclic(|me| Site {
            name,
            dir,
            record: Mutex::new(record),
            keys: Mutex::new(keys),
            content: Mutex::new(Content::Empty),
            slot: tokio::sync::Mutex::new(Slot { state: SlotState::Stopped, errors: Vec::new() }),
            triggers: Mutex::new(Vec::new()),
            deploying: Arc::new(tokio::sync::Mutex::new(())),
            logs,
            client,
            azurite,
            closed,
            timer_status: Mutex::new(HashMap::new()),
            me: me.clone(),
        }))
    }

    fn arc(&self) -> Arc<Site> {
        self.me.upgrade().expect("a site in use is alive")
    }

    /// `wwwroot`, the app root.
    pub fn wwwroot(&self) -> PathBuf {
        self.dir.join("wwwroot")
    }

    /// The record, copied.
    pub fn record(&self) -> SiteRecord {
        self.record.lock().expect("site record").clone()
    }

    /// Replaces the record and writes `site.json`.
    pub fn save_record(&self, record: SiteRecord) -> std::io::Result<()> {
        write_atomic(&self.dir.join("site.json"), &serde_json::to_vec_pretty(&record).unwrap_or_default())?;
        *self.record.lock().expect("site record") = record;
        Ok(())
    }

    /// The keys, copied.
    pub fn keys(&self) -> Keys {
        self.keys.lock().expect("keys").clone()
    }

    /// The app settings.
    pub fn settings(&self) -> BTreeMap<String, String> {
        self.record.lock().expect("site record").app_settings.clone()
    }

    /// The content state.
    pub fn content(&self) -> Content {
        self.content.lock().expect("content").clone()
    }

    /// The loaded app, if any.
    pub fn app(&self) -> Option<Arc<AppConfig>> {
        match &*self.content.lock().expect("content") {
            Content::Loaded(app) => Some(app.clone()),
            _ => None,
        }
    }

    /// Whether a function is disabled (function.json `disabled`, or the app setting
    /// `AzureWebJobs.<name>.Disabled`).
    pub fn is_disabled(&self, function: &FunctionConfig) -> bool {
        let setting = format!("AzureWebJobs.{}.Disabled", function.name);
        function.disabled
            || self
                .settings()
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case(&setting) && (v.eq_ignore_ascii_case("true") || v.trim() == "1"))
    }

    /// The environment the handler runs with: our base variables, the platform's, the app
    /// settings (with the defaults a function app has).
    pub fn handler_env(&self) -> Vec<(String, String)> {
        let record = self.record();
        let mut env: Vec<(String, String)> = faas_supervisor::BASE_ENV
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect();
        let host = format!("{}.azurewebsites.net", record.name);
        env.extend([
            ("WEBSITE_SITE_NAME".to_string(), record.name.clone()),
            ("WEBSITE_HOSTNAME".to_string(), host),
            ("WEBSITE_INSTANCE_ID".to_string(), record.instance_id.clone()),
            ("WEBSITE_RESOURCE_GROUP".to_string(), record.resource_group.clone()),
            (
                "WEBSITE_OWNER_NAME".to_string(),
                format!("{}+{}-{}webspace", record.subscription, record.resource_group, record.location),
            ),
            ("REGION_NAME".to_string(), record.location.clone()),
        ]);
        let storage = self.azurite.clone().unwrap_or_else(|| "UseDevelopmentStorage=true".to_string());
        for (k, v) in [
            ("FUNCTIONS_WORKER_RUNTIME", "custom".to_string()),
            ("FUNCTIONS_EXTENSION_VERSION", "~4".to_string()),
            ("AzureWebJobsStorage", storage),
        ] {
            if !record.app_settings.contains_key(k) {
                env.push((k.to_string(), v));
            }
        }
        for (k, v) in &record.app_settings {
            env.retain(|(name, _)| name != k);
            env.push((k.clone(), v.clone()));
        }
        env
    }

    /// Reads the content of `wwwroot` into the site (`Empty` when there is no host.json).
    pub fn load_content(&self) -> Content {
        let root = self.wwwroot();
        let content = if !root.join("host.json").is_file() {
            Content::Empty
        } else {
            match config::load_app(&root, &self.settings()) {
                Ok(app) => {
                    let mut keys = self.keys.lock().expect("keys");
                    if keys.ensure_functions(app.functions.iter().map(|f| f.name.as_str())) {
                        if let Err(e) = keys.save(&self.dir.join("keys.json")) {
                            tracing::warn!(site = %self.name, error = %e, "cannot write keys.json");
                        }
                    }
                    Content::Loaded(Arc::new(app))
                }
                Err(e) => Content::Broken(e.to_string()),
            }
        };
        if let Content::Broken(why) = &content {
            self.logs.host(Level::Error, &format!("The function app does not load: {why}"));
        }
        *self.content.lock().expect("content") = content.clone();
        content
    }

    /// The state the host reports (`Running`, `Error`, ...) and its errors.
    pub async fn host_state(&self) -> (&'static str, Vec<String>) {
        match self.content() {
            Content::Broken(why) => return ("Error", vec![why]),
            Content::Empty => return ("Running", Vec::new()),
            Content::Loaded(_) => {}
        }
        let slot = self.slot.lock().await;
        match &slot.state {
            SlotState::Failed(why) => ("Error", vec![why.clone()]),
            SlotState::Running(w) if w.alive() => ("Running", Vec::new()),
            _ => ("Initialized", Vec::new()),
        }
    }

    /// The running handler, started (and waited for) if it is not running. Fails when the site
    /// has no content, its content does not load, or it is in its error state.
    pub async fn ensure_worker(&self) -> Result<Arc<Worker>, Unavailable> {
        let mut slot = self.slot.lock().await;
        loop {
            match &slot.state {
                SlotState::Running(w) if w.alive() => return Ok(w.clone()),
                SlotState::Failed(why) => return Err(Unavailable(why.clone())),
                _ => {}
            }
            if *self.closed.borrow() {
                return Err(Unavailable("the site is shutting down".into()));
            }
            let app = match self.content() {
                Content::Loaded(app) => app,
                Content::Empty => {
                    return Err(Unavailable(format!(
                        "the function app {} has no content: deploy it first (Kudu zipdeploy)",
                        self.name
                    )))
                }
                Content::Broken(why) => return Err(Unavailable(format!("the function app does not load: {why}"))),
            };
            let started = match worker::plan(&app.root, &app.host.handler, self.handler_env()) {
                Ok(launch) => worker::start(launch, self.logs.clone(), &self.client, self.closed.subscribe()).await,
                Err(why) => Err(why),
            };
            match started {
                Ok(w) => {
                    slot.state = SlotState::Running(w.clone());
                    self.watch_worker(w.clone());
                    return Ok(w);
                }
                Err(why) => {
                    self.logs.host(Level::Error, &format!("The custom handler failed to start: {why}"));
                    if *self.closed.borrow() {
                        return Err(Unavailable(why));
                    }
                    if slot.error() {
                        let message = format!(
                            "Exceeded http worker restart retry count. Shutting down Functions Host (the custom \
                             handler failed {ERROR_THRESHOLD} times; last: {why})"
                        );
                        self.logs.host(Level::Error, &message);
                        slot.state = SlotState::Failed(message.clone());
                        return Err(Unavailable(message));
                    }
                    slot.state = SlotState::Stopped;
                }
            }
        }
    }

    /// Restarts the handler when it exits on its own (an error, counted).
    fn watch_worker(&self, worker: Arc<Worker>) {
        let site = self.me.clone();
        tokio::spawn(async move {
            let exit = worker.exit_watch().wait().await;
            if worker.stopped_on_purpose() {
                return;
            }
            let Some(site) = site.upgrade() else { return };
            let why = format!(
                "the custom handler (pid {}) exited: {}",
                worker.pid,
                exit.describe(faas_supervisor::Wording::Go)
            );
            site.logs.host(Level::Error, &why);
            let restart = {
                let mut slot = site.slot.lock().await;
                match &slot.state {
                    SlotState::Running(w) if w.id == worker.id => {}
                    _ => return,
                }
                if slot.error() {
                    let message = format!(
                        "Exceeded http worker restart retry count. Shutting down Functions Host (the custom handler \
                         failed {ERROR_THRESHOLD} times; last: {why})"
                    );
                    site.logs.host(Level::Error, &message);
                    slot.state = SlotState::Failed(message);
                    false
                } else {
                    slot.state = SlotState::Stopped;
                    true
                }
            };
            if restart && !*site.closed.borrow() {
                let _ = site.ensure_worker().await;
            }
        });
    }

    /// Stops the handler that ran a timed-out invocation and starts a new one (not counted as an
    /// error, as the host's `RestartWorkerWithInvocationIdAsync`).
    async fn restart_after_timeout(&self, worker: &Arc<Worker>) {
        {
            let mut slot = self.slot.lock().await;
            if let SlotState::Running(w) = &slot.state {
                if w.id == worker.id {
                    w.stop();
                    slot.state = SlotState::Stopped;
                }
            }
        }
        let site = self.arc();
        tokio::spawn(async move {
            let _ = site.ensure_worker().await;
        });
    }

    /// Stops the triggers and the handler, and forgets the error state.
    pub async fn stop(&self) {
        for t in self.triggers.lock().expect("triggers").drain(..) {
            t.abort();
        }
        let mut slot = self.slot.lock().await;
        if let SlotState::Running(w) = &slot.state {
            w.stop();
        }
        slot.state = SlotState::Stopped;
        slot.errors.clear();
    }

    /// Loads the content and starts the handler and the triggers, in the background.
    pub async fn restart(&self) {
        self.stop().await;
        self.load_content();
        self.start_triggers();
        let site = self.arc();
        tokio::spawn(async move {
            let _ = site.ensure_worker().await;
        });
    }

    /// Shuts the site down for good (the emulator stops or the site is deleted).
    pub async fn close(&self) {
        let _ = self.closed.send(true);
        self.stop().await;
    }

    /// Starts the timer and queue triggers of the loaded app.
    pub fn start_triggers(&self) {
        let Some(app) = self.app() else { return };
        let mut tasks = Vec::new();
        for function in &app.functions {
            if self.is_disabled(function) {
                continue;
            }
            match &function.trigger {
                Trigger::Timer { .. } => tasks.push(crate::triggers::spawn(self.arc(), function.clone())),
                Trigger::Queue { queue, connection } => {
                    if let Some(task) = self.queue_trigger(function, queue, connection) {
                        tasks.push(task);
                    }
                }
                _ => {}
            }
        }
        self.triggers.lock().expect("triggers").extend(tasks);
    }

    fn queue_trigger(
        &self,
        function: &FunctionConfig,
        queue: &str,
        connection: &str,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let settings = self.settings();
        let setting = |name: &str| settings.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let conn = self
            .azurite
            .clone()
            .or_else(|| setting(connection))
            .or_else(|| setting(&format!("AzureWebJobs{connection}")))
            .or_else(|| (connection == "AzureWebJobsStorage").then(|| "UseDevelopmentStorage=true".to_string()));
        let Some(conn) = conn else {
            self.logs.host(
                Level::Error,
                &format!(
                    "The function '{}' has no storage connection: the app setting '{connection}' is missing",
                    function.name
                ),
            );
            return None;
        };
        let client = match crate::queue::QueueClient::from_connection_string(&conn) {
            Ok(c) => c,
            Err(e) => {
                self.logs.host(
                    Level::Error,
                    &format!("The function '{}' cannot use its storage connection: {}", function.name, e.message()),
                );
                return None;
            }
        };
        let site = self.me.clone();
        let function = Arc::new(function.clone());
        let queue_name = queue.to_string();
        let handler = crate::queue::queue_handler(move |m: crate::queue::QueueMessage| {
            let site = site.clone();
            let function = function.clone();
            let queue_name = queue_name.clone();
            async move {
                let Some(site) = site.upgrade() else {
                    return Err(faas_api::Error::unavailable("the site is gone"));
                };
                site.queue_message(&function, &queue_name, &m).await
            }
        });
        Some(crate::queue::spawn_trigger(client, queue.to_string(), handler))
    }

    /// Runs a queue-triggered function for one message.
    async fn queue_message(
        &self,
        function: &FunctionConfig,
        queue: &str,
        m: &crate::queue::QueueMessage,
    ) -> Result<(), faas_api::Error> {
        let binding = function.trigger_binding();
        let mut data = Obj::new();
        data.push(binding.name.clone(), json::text_value(&m.text));
        let mut meta = Obj::new();
        meta.set_ci("DequeueCount", json::number_value(m.dequeue_count));
        for (k, v) in [
            ("ExpirationTime", &m.expiration_time),
            ("Id", &m.id),
            ("InsertionTime", &m.insertion_time),
            ("NextVisibleTime", &m.next_visible_time),
            ("PopReceipt", &m.pop_receipt),
        ] {
            if v.is_empty() {
                continue;
            }
            if k.ends_with("Time") {
                meta.set_ci(k, J::s(v.clone()));
            } else {
                meta.set_ci(k, json::text_value(v));
            }
        }
        for (k, v) in json::json_properties(&m.text) {
            meta.set_ci(&k, v);
        }
        meta.set_ci("sys", invoke::sys(&function.name));
        let reason = format!("New queue message detected on '{queue}'.");
        match self.run(function, data, meta, &reason).await {
            Ok(_) => Ok(()),
            Err(why) => Err(faas_api::Error::function("FunctionInvocationException", why)),
        }
    }

    /// Writes the `Executing` line of a new invocation.
    pub fn begin(&self, function: &str, reason: &str) -> Invocation {
        let id = uuid::Uuid::new_v4().to_string();
        self.logs.function(
            function,
            Level::Information,
            &format!("Executing 'Functions.{function}' (Reason='{reason}', Id={id})"),
        );
        Invocation { id, function: function.to_string(), parent: None, started: Instant::now() }
    }

    /// Writes the handler's `Logs` lines and the `Executed` line of an invocation.
    pub fn end(&self, inv: &Invocation, logs: &[String], failure: Option<&str>) {
        for line in logs {
            self.logs.function(&inv.function, Level::Information, line);
        }
        let ms = inv.started.elapsed().as_millis();
        match failure {
            None => self.logs.function(
                &inv.function,
                Level::Information,
                &format!("Executed 'Functions.{}' (Succeeded, Id={}, Duration={ms}ms)", inv.function, inv.id),
            ),
            Some(why) => self.logs.function(
                &inv.function,
                Level::Error,
                &format!("Executed 'Functions.{}' (Failed, Id={}, Duration={ms}ms)\n{why}", inv.function, inv.id),
            ),
        }
    }

    /// Sends one invocation request and applies the answer rules, within the function timeout:
    /// at the timeout the invocation fails and the handler that ran it is restarted.
    pub async fn call(
        &self,
        worker: &Arc<Worker>,
        inv: &Invocation,
        data: Obj,
        metadata: Obj,
    ) -> Result<Answer, String> {
        let app = self.app();
        let (timeout, timeout_text) = match &app {
            Some(a) => (a.host.function_timeout, a.host.function_timeout_text.clone()),
            None => (Some(config::DEFAULT_FUNCTION_TIMEOUT), "00:30:00".to_string()),
        };
        let call = Call {
            invocation_id: inv.id.clone(),
            function: inv.function.clone(),
            parent: inv.parent.clone(),
            data,
            metadata,
        };
        let limit = invoke::deadline(timeout);
        let started = Instant::now();
        let outcome = match tokio::time::timeout(limit, invoke::post(&self.client, worker, &call)).await {
            Err(_) => Err(Failure::Timeout),
            Ok(Err(e)) => Err(e),
            Ok(Ok((status, headers, body))) => invoke::read_answer(status, &headers, &body),
        };
        let outcome = match outcome {
            Err(Failure::Hang) => {
                // The host never completes such an invocation: it waits for the timeout.
                tokio::time::sleep(limit.saturating_sub(started.elapsed())).await;
                Err(Failure::Timeout)
            }
            other => other,
        };
        match outcome {
            Ok(answer) => Ok(answer),
            Err(Failure::Timeout) => Err(self.timed_out(worker, inv, &timeout_text).await),
            Err(Failure::Error(why)) => Err(why),
            Err(Failure::Hang) => Err("the handler answered with an empty body".into()),
        }
    }

    /// The timeout's log line and restart; the failure message.
    pub async fn timed_out(&self, worker: &Arc<Worker>, inv: &Invocation, timeout_text: &str) -> String {
        self.logs.function(
            &inv.function,
            Level::Error,
            &format!(
                "Timeout value of {timeout_text} exceeded by function 'Functions.{}' (Id: '{}'). Initiating cancellation.",
                inv.function, inv.id
            ),
        );
        self.restart_after_timeout(worker).await;
        format!("Timeout value of {timeout_text} was exceeded by function: Functions.{}", inv.function)
    }

    /// Runs a non-HTTP invocation from start to end: the handler, the `Executing` line, the
    /// call, the `Logs` and `Executed` lines. The answer, or why it failed.
    pub async fn run(
        &self,
        function: &FunctionConfig,
        data: Obj,
        metadata: Obj,
        reason: &str,
    ) -> Result<Answer, String> {
        let worker = self.ensure_worker().await.map_err(|u| u.0)?;
        let inv = self.begin(&function.name, reason);
        match self.call(&worker, &inv, data, metadata).await {
            Ok(answer) => {
                self.end(&inv, &answer.logs, None);
                Ok(answer)
            }
            Err(why) => {
                self.end(&inv, &[], Some(&why));
                Err(why)
            }
        }
    }

    /// What the admin API's `POST /admin/functions/{name}` starts: the function called through
    /// its trigger binding with `input` (a string), in the background.
    pub fn invoke_from_admin(&self, function: FunctionConfig, input: Option<String>) {
        let site = self.arc();
        tokio::spawn(async move {
            let binding = function.trigger_binding().clone();
            let mut data = Obj::new();
            let mut meta = Obj::new();
            let input_text = input.clone().unwrap_or_default();
            match &function.trigger {
                Trigger::Http { .. } => {
                    // The HTTP trigger binding takes only an HttpRequest: a string input fails to
                    // bind, and the handler is never called.
                    let inv = site.begin(&function.name, HOST_API_REASON);
                    site.end(&inv, &[], Some("An HttpRequest is required"));
                    return;
                }
                Trigger::Timer { .. } => {
                    data.push(binding.name.clone(), crate::triggers::timer_value(None, false));
                }
                Trigger::Queue { .. } => {
                    data.push(binding.name.clone(), input.as_deref().map(json::text_value).unwrap_or_else(J::null));
                    meta.set_ci("DequeueCount", json::number_value(0));
                }
                Trigger::EventGrid => {
                    let value = serde_json::from_str::<Value>(&input_text)
                        .ok()
                        .filter(Value::is_object)
                        .map(J::V)
                        .unwrap_or_else(|| json::text_value(&input_text));
                    data.push(binding.name.clone(), value);
                }
                Trigger::Blob { path } => {
                    data.push(binding.name.clone(), json::text_value(&input_text));
                    for (k, v) in crate::triggers::blob_path_values(path, &input_text) {
                        meta.set_ci(&k, json::text_value(&v));
                    }
                }
                Trigger::Other(_) => {
                    data.push(binding.name.clone(), input.as_deref().map(json::text_value).unwrap_or_else(J::null));
                }
            }
            // The host adds a JSON string input's top-level properties to the binding data.
            for (k, v) in json::json_properties(&input_text) {
                meta.set_ci(&k, v);
            }
            meta.set_ci("sys", invoke::sys(&function.name));
            let _ = site.run(&function, data, meta, HOST_API_REASON).await;
        });
    }
}

/// Validates a staged app folder and makes it the site's content: the triggers and handler are
/// stopped, the folder replaces `wwwroot`, and the new handler is started and waited for.
pub(crate) async fn activate(site: &Site, staged: &Path) -> Result<(), DeployError> {
    let settings = site.settings();
    let app = config::load_app(staged, &settings).map_err(DeployError::Config)?;
    let env = site.handler_env();
    let executable = worker::expand(&app.host.handler.executable, &env);
    let path_env = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone());
    if config::resolve_executable(staged, &executable, path_env.as_deref()).is_none() {
        return Err(DeployError::Config(ConfigError::new(
            "host.json",
            if app.host.handler.legacy {
                "httpWorker.description.defaultExecutablePath"
            } else {
                "customHandler.description.defaultExecutablePath"
            },
            format!("the handler `{executable}` is neither a file of the app nor a program on PATH"),
        )));
    }
    site.stop().await;
    let root = site.wwwroot();
    let old = site.dir.join("wwwroot.old");
    let _ = std::fs::remove_dir_all(&old);
    if root.exists() {
        std::fs::rename(&root, &old).map_err(|e| DeployError::Io(format!("cannot move the old content away: {e}")))?;
    }
    if let Err(e) = std::fs::rename(staged, &root) {
        let _ = std::fs::rename(&old, &root);
        return Err(DeployError::Io(format!("cannot put the new content in place: {e}")));
    }
    let _ = std::fs::remove_dir_all(&old);
    site.logs.host(Level::Information, "New content deployed: restarting the host.");
    if let Content::Broken(why) = site.load_content() {
        return Err(DeployError::NotReady(why));
    }
    site.start_triggers();
    site.ensure_worker().await.map_err(|u| DeployError::NotReady(u.0))?;
    Ok(())
}

/// Why a deployment failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum DeployError {
    /// The package is not a usable function app (400).
    #[error("{0}")]
    Package(String),
    /// Its configuration is wrong (400).
    #[error("{0}")]
    Config(ConfigError),
    /// It was deployed but its handler did not become ready (500).
    #[error("the app was deployed but its custom handler is not ready: {0}")]
    NotReady(String),
    /// Writing it failed (500).
    #[error("{0}")]
    Io(String),
}

impl DeployError {
    /// Whether it is the package's fault (a 400).
    pub fn is_bad_package(&self) -> bool {
        matches!(self, DeployError::Package(_) | DeployError::Config(_))
    }
}

/// Copies a folder (files and directories, permissions kept; symbolic links followed).
pub(crate) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let meta = std::fs::metadata(entry.path())?;
        if meta.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if meta.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The staging directory a deployment unpacks into (inside the site, so that it can be renamed
/// into place).
pub(crate) fn staging_dir(site: &Site) -> PathBuf {
    site.dir.join("deploy").join("staged")
}

/// The time a deployment record shows (`2026-12-03T08:30:00.1234567Z`).
pub(crate) fn now_text() -> String {
    let t = Utc::now();
    json::utc_roundtrip(&t)
}
