//! Azure Functions packaging: the function app folder and its zip.
//!
//! A faas app becomes one function app whose functions are the app's functions, all served by
//! one custom handler, the app's binary. The folder (and the reproducible zip of it that Kudu's
//! zip deploy takes, made by the kit's zip builder) holds:
//!
//! - `faas-app`: the binary, debug info stripped, mode 0755;
//! - `host.json`: version 2.0; `customHandler.description.defaultExecutablePath = "faas-app"`;
//!   `enableForwardingHttpRequest` from the profile's `http_forwarding`; the extension bundle
//!   (`[4.*, 5.0.0)`, for the queue, blob and Event Grid bindings); `functionTimeout`, the largest
//!   timeout of the app's functions (each function's own is enforced by the handler, from the
//!   app setting `FAAS_FUNCTION_TIMEOUTS`); `logging.fileLoggingMode = "always"`, so that the
//!   functions' logs are written to the files `faas logs` and `faas activations` read; the
//!   route prefix `api`;
//! - `<function>/function.json` for each function: its trigger and, for an HTTP trigger, the
//!   `http` output `res`.
//!
//! The trigger of a function ([`function_json`]):
//!
//! | the function subscribes to | its trigger |
//! |---|---|
//! | nothing Azure (a typed or raw function, routes, or the app's own event types) | `httpTrigger` (`authLevel` from the profile, default `function`; the declared route, else the function's name; the declared methods, else all) + `http` output `res` |
//! | type `azure.storage.queue.v1.message`, source `queues/<queue>` | `queueTrigger` on `<queue>`, connection `AzureWebJobsStorage` |
//! | type `azure.storage.blob.v1.written`, source `blobs/<container>` | `blobTrigger` on `<container>/{name}`, connection `AzureWebJobsStorage` |
//! | type `azure.timer.v1.fired`, subject `<NCRONTAB schedule>` (six fields, seconds first) | `timerTrigger` with that schedule |
//! | an Event Grid type (`Microsoft.*`, such as `Microsoft.Storage.BlobCreated`) | `eventGridTrigger` (the Event Grid subscription that sends those events to the function is made outside faas) |
//!
//! A function has one trigger: two Azure subscriptions, or two different routes, are refused,
//! as is a source or a schedule that does not fit. Subscriptions to the app's own event types
//! are delivered by the faas event gateway through the function's HTTP trigger.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use faas_api::{Error, EventFilter, FunctionSpec, HandlerKind, Trigger};
use faas_packaging::zip::{write_app_zip, Entry, ZipInfo};
use faas_packaging::{check_arch, with_stripped_copy, Arch};
use serde_json::{json, Value};

use crate::settings::AzureSettings;

/// The binary's name in the function app.
pub const APP: &str = "faas-app";
/// Its mode.
pub const APP_MODE: u32 = 0o755;
/// The route prefix of the HTTP triggers.
pub const ROUTE_PREFIX: &str = "api";
/// The name of an HTTP function's trigger binding.
pub const HTTP_IN: &str = "req";
/// The name of an HTTP function's output binding.
pub const HTTP_OUT: &str = "res";
/// The extension bundle the bindings come from.
pub const EXTENSION_BUNDLE: &str = "[4.*, 5.0.0)";
/// The app setting with each function's own timeout, `name=seconds,...` (read by the handler).
pub const ENV_TIMEOUTS: &str = crate::host::ENV_TIMEOUTS;
/// The event type of a Storage queue message.
pub const QUEUE_EVENT: &str = "azure.storage.queue.v1.message";
/// The event type of a blob written to a container.
pub const BLOB_EVENT: &str = "azure.storage.blob.v1.written";
/// The event type of a timer's tick.
pub const TIMER_EVENT: &str = "azure.timer.v1.fired";
/// The longest timeout of an HTTP function: Azure's load balancer ends a request after 230 s.
pub const MAX_TIMEOUT_HTTP: Duration = Duration::from_secs(230);
/// The longest timeout of another function: the Consumption plan's 10 minutes.
pub const MAX_TIMEOUT_OTHER: Duration = Duration::from_secs(600);

/// Where the packages of `binary` go: `target/faas/azure` of the binary's target directory.
pub fn package_dir(binary: &Path) -> PathBuf {
    match binary.ancestors().find(|a| a.file_name().is_some_and(|n| n == "target")) {
        Some(target) => target.join("faas").join("azure"),
        None => std::env::temp_dir().join("faas-azure"),
    }
}

/// The zip's file name for `app`: `{app}-azure.zip`.
///
/// ```
/// assert_eq!(faas_runner_azure::package::archive_name("shop"), "shop-azure.zip");
/// ```
pub fn archive_name(app: &str) -> String {
    format!("{app}-azure.zip")
}

/// Whether `name` can be an Azure function's name (its folder): a letter, then letters, digits,
/// `_` and `-`, at most 127 characters.
///
/// ```
/// use faas_runner_azure::package::check_function_name;
/// assert!(check_function_name("hello_world-2").is_ok());
/// assert!(check_function_name("2fast").unwrap_err().message().contains("`2fast`"));
/// ```
pub fn check_function_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 127
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::bad_input(format!(
            "function `{name}` cannot be an Azure function: its name is its folder in the function app, a letter \
             followed by letters, digits, `_` and `-`, at most 127 characters"
        ))
        .with_type("InvalidFunctionName"))
    }
}

fn refuse(spec: &FunctionSpec, why: String) -> Error {
    Error::bad_input(format!("function `{}`: {why}", spec.name)).with_type("UnsupportedTrigger")
}

/// The Azure subscriptions (event filters) of `spec`: those that are a native trigger.
fn azure_filters(spec: &FunctionSpec) -> Vec<&EventFilter> {
    spec.triggers
        .iter()
        .filter_map(|t| match t {
            Trigger::Event { filter } => Some(filter),
            Trigger::Http { .. } => None,
        })
        .filter(|f| {
            f.event_type
                .as_deref()
                .is_some_and(|t| [QUEUE_EVENT, BLOB_EVENT, TIMER_EVENT].contains(&t) || t.starts_with("Microsoft."))
        })
        .collect()
}

/// A Storage queue's name: 3–63 lowercase letters, digits and single hyphens.
fn valid_queue(q: &str) -> bool {
    (3..=63).contains(&q.len())
        && q.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !q.starts_with('-')
        && !q.ends_with('-')
        && !q.contains("--")
}

/// The native trigger binding of `spec`, when one of its subscriptions is an Azure event (see
/// the [module docs](self)).
///
/// ```
/// use faas_api::{EventFilter, FunctionSpec, HandlerKind, Trigger};
/// use faas_runner_azure::package::native_trigger;
/// let mut spec = FunctionSpec::new("on-order");
/// spec.handler = HandlerKind::Event;
/// spec.triggers.push(Trigger::Event { filter: EventFilter::new()
///     .event_type("azure.storage.queue.v1.message").source("queues/orders") });
/// let t = native_trigger(&spec).unwrap().unwrap();
/// assert_eq!((t["type"].as_str(), t["queueName"].as_str()), (Some("queueTrigger"), Some("orders")));
/// spec.triggers = vec![Trigger::Event { filter: EventFilter::new().event_type("order.created") }];
/// assert!(native_trigger(&spec).unwrap().is_none());
/// ```
pub fn native_trigger(spec: &FunctionSpec) -> Result<Option<Value>, Error> {
    let filters = azure_filters(spec);
    let Some(filter) = filters.first() else { return Ok(None) };
    if filters.len() > 1 {
        return Err(refuse(
            spec,
            "an Azure function has one trigger; it subscribes to several Azure event types".into(),
        ));
    }
    if spec.handler != HandlerKind::Event {
        return Err(refuse(spec, "an Azure trigger delivers CloudEvents: make it an event function".into()));
    }
    let event_type = filter.event_type.as_deref().unwrap_or_default();
    let source = filter.source.as_deref();
    let binding = match event_type {
        QUEUE_EVENT => {
            let queue = source.and_then(|s| s.strip_prefix("queues/")).filter(|q| valid_queue(q)).ok_or_else(|| {
                refuse(
                    spec,
                    format!(
                        "a queue subscription names its queue as the source `queues/<name>` (3–63 lowercase \
                         letters, digits and hyphens), not {}",
                        source.map_or("nothing".to_string(), |s| format!("`{s}`"))
                    ),
                )
            })?;
            json!({"type": "queueTrigger", "direction": "in", "name": "message", "queueName": queue,
                   "connection": "AzureWebJobsStorage"})
        }
        BLOB_EVENT => {
            let container =
                source.and_then(|s| s.strip_prefix("blobs/")).filter(|c| valid_queue(c)).ok_or_else(|| {
                    refuse(spec, "a blob subscription names its container as the source `blobs/<container>`".into())
                })?;
            json!({"type": "blobTrigger", "direction": "in", "name": "blob", "path": format!("{container}/{{name}}"),
                   "connection": "AzureWebJobsStorage"})
        }
        TIMER_EVENT => {
            let schedule =
                filter.subject.as_deref().filter(|s| s.split_whitespace().count() == 6).ok_or_else(|| {
                    refuse(
                        spec,
                        "a timer subscription gives its NCRONTAB schedule (six fields, seconds first, such as \
                     `0 */5 * * * *`) as the subject"
                            .into(),
                    )
                })?;
            json!({"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": schedule})
        }
        t if t.ends_with('*') => {
            return Err(refuse(spec, format!("an Event Grid subscription takes exact event types, not `{t}`")));
        }
        _ => json!({"type": "eventGridTrigger", "direction": "in", "name": "event"}),
    };
    Ok(Some(binding))
}

/// The function.json of `spec` (see the [module docs](self)).
///
/// ```
/// use faas_api::{FunctionSpec, Trigger};
/// let p = faas_api::BackendProfile::new("az", "azure").with("endpoint", "http://127.0.0.1:7071");
/// let s = faas_runner_azure::settings::AzureSettings::from_profile(&p).unwrap();
/// let mut spec = FunctionSpec::new("user");
/// spec.triggers.push(Trigger::Http { method: Some("GET".into()), route: "/users/{id}".into() });
/// let f = faas_runner_azure::package::function_json(&s, &spec).unwrap();
/// assert_eq!(f["bindings"][0]["route"], "users/{id}");
/// assert_eq!(f["bindings"][0]["methods"], serde_json::json!(["get"]));
/// assert_eq!(f["bindings"][1], serde_json::json!({"type": "http", "direction": "out", "name": "res"}));
/// ```
pub fn function_json(settings: &AzureSettings, spec: &FunctionSpec) -> Result<Value, Error> {
    check_function_name(&spec.name)?;
    let native = native_trigger(spec)?;
    let max = if native.is_some() { MAX_TIMEOUT_OTHER } else { MAX_TIMEOUT_HTTP };
    if spec.timeout.is_zero() || spec.timeout > max {
        return Err(Error::bad_input(format!(
            "function `{}` has timeout {} ms; Azure Functions takes up to {} s for {} function",
            spec.name,
            spec.timeout.as_millis(),
            max.as_secs(),
            if native.is_some() { "a queue, blob, timer or Event Grid" } else { "an HTTP" }
        )));
    }
    if let Some(binding) = native {
        return Ok(json!({"bindings": [binding]}));
    }
    let routes: Vec<(&Option<String>, &String)> = spec
        .triggers
        .iter()
        .filter_map(|t| match t {
            Trigger::Http { method, route } => Some((method, route)),
            Trigger::Event { .. } => None,
        })
        .collect();
    let mut distinct: Vec<&String> = routes.iter().map(|(_, r)| *r).collect();
    distinct.sort();
    distinct.dedup();
    if distinct.len() > 1 {
        return Err(refuse(
            spec,
            format!(
                "an Azure function has one route; it declares {} ({}): make one function per route",
                distinct.len(),
                distinct.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let all_methods = routes.is_empty() || routes.iter().any(|(m, _)| m.is_none());
    let methods: Vec<String> = if all_methods {
        ["get", "post", "put", "patch", "delete", "head", "options"].map(String::from).to_vec()
    } else {
        let mut m: Vec<String> =
            routes.iter().filter_map(|(m, _)| m.as_ref().map(|m| m.to_ascii_lowercase())).collect();
        m.sort();
        m.dedup();
        m
    };
    let mut trigger = json!({"type": "httpTrigger", "direction": "in", "name": HTTP_IN,
                             "authLevel": settings.auth_level.as_str(), "methods": methods});
    if let Some(route) = distinct.first() {
        trigger["route"] = json!(route.trim_start_matches('/'));
    }
    Ok(json!({"bindings": [trigger, {"type": "http", "direction": "out", "name": HTTP_OUT}]}))
}

/// `hh:mm:ss` of `d`, rounded up to whole seconds.
fn timespan(d: Duration) -> String {
    let s = d.as_millis().div_ceil(1000) as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The host.json of an app with `functions` (see the [module docs](self)).
///
/// ```
/// use faas_api::FunctionSpec;
/// let p = faas_api::BackendProfile::new("az", "azure").with("endpoint", "http://127.0.0.1:7071");
/// let s = faas_runner_azure::settings::AzureSettings::from_profile(&p).unwrap();
/// let mut slow = FunctionSpec::new("slow");
/// slow.timeout = std::time::Duration::from_secs(90);
/// let h = faas_runner_azure::package::host_json(&s, &[FunctionSpec::new("hello"), slow]);
/// assert_eq!((h["version"].as_str(), h["functionTimeout"].as_str()), (Some("2.0"), Some("00:01:30")));
/// assert_eq!(h["customHandler"]["description"]["defaultExecutablePath"], "faas-app");
/// ```
pub fn host_json(settings: &AzureSettings, functions: &[FunctionSpec]) -> Value {
    let longest = functions.iter().map(|f| f.timeout).max().unwrap_or(Duration::from_secs(30));
    json!({
        "version": "2.0",
        "functionTimeout": timespan(longest),
        "logging": {"fileLoggingMode": "always"},
        "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": EXTENSION_BUNDLE},
        "extensions": {"http": {"routePrefix": ROUTE_PREFIX}},
        "customHandler": {
            "description": {"defaultExecutablePath": APP, "workingDirectory": "", "arguments": []},
            "enableForwardingHttpRequest": settings.http_forwarding,
        },
    })
}

/// The value of [`ENV_TIMEOUTS`] for `functions`: `name=seconds,...` (rounded up).
///
/// ```
/// use faas_api::FunctionSpec;
/// let mut quick = FunctionSpec::new("quick");
/// quick.timeout = std::time::Duration::from_millis(1500);
/// assert_eq!(faas_runner_azure::package::timeouts(&[FunctionSpec::new("hello"), quick]), "hello=30,quick=2");
/// ```
pub fn timeouts(functions: &[FunctionSpec]) -> String {
    functions
        .iter()
        .map(|f| format!("{}={}", f.name, f.timeout.as_millis().div_ceil(1000)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The app settings the functions' own variables make: Azure has one environment per function
/// app, so a variable two functions set to different values is refused, naming both.
///
/// ```
/// use faas_api::FunctionSpec;
/// let mut a = FunctionSpec::new("a");
/// a.env.insert("GREETING".into(), "hi".into());
/// let mut b = FunctionSpec::new("b");
/// b.env.insert("GREETING".into(), "hello".into());
/// let e = faas_runner_azure::package::function_variables(&[a, b]).unwrap_err();
/// assert!(e.message().contains("`GREETING`") && e.message().contains("`a`") && e.message().contains("`b`"));
/// ```
pub fn function_variables(functions: &[FunctionSpec]) -> Result<BTreeMap<String, String>, Error> {
    let mut vars: BTreeMap<String, (String, &str)> = BTreeMap::new();
    for f in functions {
        for (k, v) in &f.env {
            match vars.get(k) {
                Some((other, who)) if other != v => {
                    return Err(Error::bad_input(format!(
                        "functions `{who}` and `{}` set the variable `{k}` to different values; an Azure function \
                         app has one environment for all its functions",
                        f.name
                    )));
                }
                _ => {
                    vars.insert(k.clone(), (v.clone(), &f.name));
                }
            }
        }
    }
    Ok(vars.into_iter().map(|(k, (v, _))| (k, v)).collect())
}

/// The files of the function app besides the binary: `host.json` and each `function.json`, as
/// (path, text) pairs. Every function is checked first.
pub fn app_files(settings: &AzureSettings, functions: &[FunctionSpec]) -> Result<Vec<(String, String)>, Error> {
    let mut files = vec![("host.json".to_string(), pretty(&host_json(settings, functions)))];
    let mut seen = std::collections::BTreeSet::new();
    for f in functions {
        if !seen.insert(f.name.to_ascii_lowercase()) {
            return Err(Error::bad_input(format!(
                "two functions are named `{}` (Azure function names are not case-sensitive)",
                f.name
            )));
        }
        files.push((format!("{}/function.json", f.name), pretty(&function_json(settings, f)?)));
    }
    Ok(files)
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Writes the function app folder into `dir`: `binary` as `faas-app` (mode 0755), host.json and
/// the function.json files.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let p = faas_api::BackendProfile::new("az", "azure").with("endpoint", "http://127.0.0.1:7071");
/// let s = faas_runner_azure::settings::AzureSettings::from_profile(&p).unwrap();
/// let me = std::env::current_exe().unwrap();
/// faas_runner_azure::package::write_folder(&me, dir.path(), &s, &[faas_api::FunctionSpec::new("hello")]).unwrap();
/// assert!(dir.path().join("faas-app").exists() && dir.path().join("hello/function.json").exists());
/// ```
pub fn write_folder(
    binary: &Path,
    dir: &Path,
    settings: &AzureSettings,
    functions: &[FunctionSpec],
) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let files = app_files(settings, functions)?;
    let io = |what: &Path, e: std::io::Error| Error::unavailable(format!("cannot write {}: {e}", what.display()));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let app = dir.join(APP);
    std::fs::copy(binary, &app)
        .map_err(|e| Error::bad_input(format!("cannot read the app binary {}: {e}", binary.display())))?;
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(APP_MODE)).map_err(|e| io(&app, e))?;
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    Ok(())
}

/// The function app's zip, holding `binary` as `faas-app`, written to `out`.
pub fn package_zip(
    binary: &Path,
    out: &Path,
    settings: &AzureSettings,
    functions: &[FunctionSpec],
) -> Result<ZipInfo, Error> {
    let mut entries = vec![Entry::file(APP, binary, APP_MODE)];
    for (path, text) in app_files(settings, functions)? {
        entries.push(Entry::bytes(path, text.into_bytes(), 0o644));
    }
    write_app_zip(entries, out)
}

/// The zip of `binary` (debug info stripped), checked to be for `arch`, written to `out`.
pub fn package_app(
    binary: &Path,
    arch: Arch,
    out: &Path,
    settings: &AzureSettings,
    functions: &[FunctionSpec],
) -> Result<ZipInfo, Error> {
    check_arch(binary, arch)?;
    app_files(settings, functions)?;
    with_stripped_copy(binary, out, |stripped| package_zip(stripped, out, settings, functions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use faas_api::BackendProfile;

    fn settings() -> AzureSettings {
        AzureSettings::from_profile(&BackendProfile::new("az", "azure").with("endpoint", "http://127.0.0.1:7071"))
            .unwrap()
    }

    fn event(name: &str, filter: EventFilter) -> FunctionSpec {
        let mut f = FunctionSpec::new(name);
        f.handler = HandlerKind::Event;
        f.triggers.push(Trigger::Event { filter });
        f
    }

    #[test]
    fn the_zip_holds_the_binary_host_json_and_each_function_json_and_is_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("app");
        std::fs::write(&bin, b"\x7fELF not really").unwrap();
        let functions = [FunctionSpec::new("hello"), FunctionSpec::new("bye")];
        let a = package_zip(&bin, &dir.path().join("a.zip"), &settings(), &functions).unwrap();
        let b = package_zip(&bin, &dir.path().join("b.zip"), &settings(), &functions).unwrap();
        assert_eq!(std::fs::read(&a.path).unwrap(), std::fs::read(&b.path).unwrap());
        let limits = faas_packaging::unpack::Limits { max_zipped: 1 << 20, max_unzipped: 1 << 20, max_entries: 10 };
        let bytes = std::fs::read(&a.path).unwrap();
        let archive = faas_packaging::unpack::Archive::open(&bytes, limits).unwrap();
        let mut entries: Vec<_> =
            archive.entries().iter().map(|e| (e.path.display().to_string(), e.mode.map(|m| m & 0o777))).collect();
        entries.sort();
        assert_eq!(
            entries,
            [
                ("bye/function.json".to_string(), Some(0o644)),
                (APP.to_string(), Some(0o755)),
                ("hello/function.json".to_string(), Some(0o644)),
                ("host.json".to_string(), Some(0o644)),
            ]
        );
    }

    #[test]
    fn native_triggers_map_and_what_does_not_fit_is_refused_by_name() {
        let queue = event("q", EventFilter::new().event_type(QUEUE_EVENT).source("queues/orders"));
        assert_eq!(function_json(&settings(), &queue).unwrap()["bindings"][0]["connection"], "AzureWebJobsStorage");
        let timer = event("t", EventFilter::new().event_type(TIMER_EVENT).subject("0 */5 * * * *"));
        assert_eq!(function_json(&settings(), &timer).unwrap()["bindings"][0]["schedule"], "0 */5 * * * *");
        let blob = event("b", EventFilter::new().event_type(BLOB_EVENT).source("blobs/photos"));
        assert_eq!(function_json(&settings(), &blob).unwrap()["bindings"][0]["path"], "photos/{name}");
        let grid = event("g", EventFilter::new().event_type("Microsoft.Storage.BlobCreated"));
        assert_eq!(function_json(&settings(), &grid).unwrap()["bindings"][0]["type"], "eventGridTrigger");
        // The app's own events come through the gateway: an HTTP trigger.
        let own = event("o", EventFilter::new().event_type("order.created"));
        assert_eq!(function_json(&settings(), &own).unwrap()["bindings"][0]["type"], "httpTrigger");
        for (spec, needle) in [
            (event("q", EventFilter::new().event_type(QUEUE_EVENT).source("orders")), "queues/<name>"),
            (event("q", EventFilter::new().event_type(QUEUE_EVENT).source("queues/Orders")), "queues/<name>"),
            (event("t", EventFilter::new().event_type(TIMER_EVENT).subject("*/5 * * * *")), "six fields"),
            (event("b", EventFilter::new().event_type(BLOB_EVENT)), "blobs/<container>"),
            (event("g", EventFilter::new().event_type("Microsoft.Storage.*")), "exact event types"),
        ] {
            let e = function_json(&settings(), &spec).unwrap_err();
            assert!(e.message().contains(needle), "{needle}: {e}");
            assert!(e.message().starts_with(&format!("function `{}`", spec.name)), "{e}");
        }
        let mut two = queue.clone();
        two.triggers.push(Trigger::Event { filter: EventFilter::new().event_type(TIMER_EVENT).subject("0 * * * * *") });
        assert!(function_json(&settings(), &two).unwrap_err().message().contains("one trigger"));
        let mut typed = queue.clone();
        typed.handler = HandlerKind::Typed;
        assert!(function_json(&settings(), &typed).unwrap_err().message().contains("event function"));
    }

    #[test]
    fn routes_methods_timeouts_and_names() {
        let mut f = FunctionSpec::new("items");
        f.triggers.push(Trigger::Http { method: Some("GET".into()), route: "/items/{id?}".into() });
        f.triggers.push(Trigger::Http { method: Some("POST".into()), route: "/items/{id?}".into() });
        let j = function_json(&settings(), &f).unwrap();
        assert_eq!(j["bindings"][0]["methods"], json!(["get", "post"]));
        assert_eq!(j["bindings"][0]["authLevel"], "function");
        f.triggers.push(Trigger::Http { method: None, route: "/other".into() });
        assert!(function_json(&settings(), &f).unwrap_err().message().contains("one route"));
        let plain = function_json(&settings(), &FunctionSpec::new("hello")).unwrap();
        assert!(plain["bindings"][0].get("route").is_none(), "the default route is the function's name");
        let mut slow = FunctionSpec::new("slow");
        slow.timeout = Duration::from_secs(231);
        assert!(function_json(&settings(), &slow).unwrap_err().message().contains("230 s"));
        assert!(check_function_name("has space").is_err() && check_function_name(&"a".repeat(128)).is_err());
        let dup = app_files(&settings(), &[FunctionSpec::new("Hello"), FunctionSpec::new("hello")]).unwrap_err();
        assert!(dup.message().contains("not case-sensitive"));
        assert_eq!(timespan(Duration::from_millis(3_723_001)), "01:02:04");
    }
}
