//! The function app folder as the Functions host reads it (AZURE-HOST.md §1.1, azure-contract.md
//! §1): `host.json` at the root and one `<function>/function.json` per function.
//!
//! The handler reads it once at start, to learn each function's trigger (its binding type and
//! name), its HTTP output binding, its route, the route prefix, whether HTTP requests are
//! forwarded as they came, and the app's `functionTimeout`. A file that cannot be read as the
//! Functions host reads it is a start-up error naming the file and the key.
//!
//! ```
//! use faas_runner_azure::host::folder::{FunctionApp, TriggerKind};
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("host.json"), r#"{"version": "2.0", "functionTimeout": "00:05:00",
//!     "extensions": {"http": {"routePrefix": ""}}, "customHandler": {"enableForwardingHttpRequest": true}}"#).unwrap();
//! std::fs::create_dir(dir.path().join("orders")).unwrap();
//! std::fs::write(dir.path().join("orders/function.json"), r#"{"bindings": [
//!     {"type": "queueTrigger", "direction": "in", "name": "message", "queueName": "orders"}]}"#).unwrap();
//! let app = FunctionApp::read(dir.path()).unwrap();
//! assert_eq!((app.route_prefix.as_str(), app.forwarding), ("", true));
//! assert_eq!(app.function_timeout, Some(Some(std::time::Duration::from_secs(300))));
//! let orders = &app.functions["orders"];
//! assert_eq!((orders.trigger().kind(), orders.trigger().name.as_str()), (TriggerKind::Queue, "message"));
//! assert_eq!(orders.trigger().setting("queueName"), Some("orders"));
//!
//! std::fs::write(dir.path().join("host.json"), r#"{"functionTimeout": "five minutes"}"#).unwrap();
//! let err = FunctionApp::read(dir.path()).unwrap_err();
//! assert!(err.message().contains("host.json: `functionTimeout` must be"), "{}", err.message());
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use faas_api::Error;
use serde_json::{Map, Value};

/// The route prefix when host.json sets none (`extensions.http.routePrefix`).
pub const DEFAULT_ROUTE_PREFIX: &str = "api";

/// What the handler knows of its function app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionApp {
    /// `extensions.http.routePrefix`, without slashes (`api` by default, may be empty).
    pub route_prefix: String,
    /// `customHandler.enableForwardingHttpRequest` (or the later `enableProxyingHttpRequest`,
    /// which sends the same path): HTTP-in/out functions get the caller's request as it came.
    pub forwarding: bool,
    /// Only the legacy `httpWorker` section is there: HTTP-in/out functions are always forwarded,
    /// to `/{function name}` rather than the original path (AZURE-HOST.md §4).
    pub legacy_http_worker: bool,
    /// host.json's `functionTimeout`: `None` when not set, `Some(None)` for `-1` (no limit).
    pub function_timeout: Option<Option<Duration>>,
    /// The functions of `*/function.json`, by folder name.
    pub functions: BTreeMap<String, FunctionJson>,
}

impl Default for FunctionApp {
    /// No folder: route prefix `api`, no forwarding, no functions.
    ///
    /// ```
    /// let app = faas_runner_azure::host::folder::FunctionApp::default();
    /// assert_eq!(app.route_prefix, "api");
    /// assert!(!app.forwarding && app.functions.is_empty());
    /// ```
    fn default() -> FunctionApp {
        FunctionApp {
            route_prefix: DEFAULT_ROUTE_PREFIX.to_string(),
            forwarding: false,
            legacy_http_worker: false,
            function_timeout: None,
            functions: BTreeMap::new(),
        }
    }
}

/// The trigger types the handler turns into a function's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    /// `httpTrigger`.
    Http,
    /// `queueTrigger` (Storage queues).
    Queue,
    /// `timerTrigger`.
    Timer,
    /// `blobTrigger`.
    Blob,
    /// `eventGridTrigger`.
    EventGrid,
    /// Any other `*Trigger` (Service Bus, Cosmos DB, ...): a generic event.
    Other,
}

/// One binding of a function.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// `type`, as written (`httpTrigger`, `http`, `queueTrigger`, ...).
    pub binding_type: String,
    /// `direction`: `in`, `out` or `inout`.
    pub direction: String,
    /// `name`: the key of its value in `Data` (input) or `Outputs` (output).
    pub name: String,
    /// The whole binding object (`route`, `queueName`, `path`, `dataType`, ...).
    pub settings: Map<String, Value>,
}

impl Binding {
    /// An HTTP trigger named `name` (what a function without function.json has).
    ///
    /// ```
    /// use faas_runner_azure::host::folder::{Binding, TriggerKind};
    /// let b = Binding::http_trigger("req", Some("users/{id}"));
    /// assert_eq!((b.kind(), b.setting("route")), (TriggerKind::Http, Some("users/{id}")));
    /// ```
    pub fn http_trigger(name: &str, route: Option<&str>) -> Binding {
        let mut settings = Map::new();
        settings.insert("type".into(), "httpTrigger".into());
        settings.insert("direction".into(), "in".into());
        settings.insert("name".into(), name.into());
        if let Some(route) = route {
            settings.insert("route".into(), route.into());
        }
        Binding { binding_type: "httpTrigger".into(), direction: "in".into(), name: name.into(), settings }
    }

    /// The kind of trigger this binding is (meaningful for the trigger binding).
    ///
    /// ```
    /// use faas_runner_azure::host::folder::{Binding, TriggerKind};
    /// let mut b = Binding::http_trigger("e", None);
    /// b.binding_type = "EventGridTrigger".into(); // types are case-insensitive
    /// assert_eq!(b.kind(), TriggerKind::EventGrid);
    /// ```
    pub fn kind(&self) -> TriggerKind {
        match self.binding_type.to_ascii_lowercase().as_str() {
            "httptrigger" => TriggerKind::Http,
            "queuetrigger" => TriggerKind::Queue,
            "timertrigger" => TriggerKind::Timer,
            "blobtrigger" => TriggerKind::Blob,
            "eventgridtrigger" => TriggerKind::EventGrid,
            _ => TriggerKind::Other,
        }
    }

    /// Whether it is a trigger (its type ends in `Trigger`, any case).
    ///
    /// ```
    /// assert!(faas_runner_azure::host::folder::Binding::http_trigger("req", None).is_trigger());
    /// ```
    pub fn is_trigger(&self) -> bool {
        self.binding_type.to_ascii_lowercase().ends_with("trigger")
    }

    /// A string setting (`route`, `queueName`, `path`, `dataType`); keys match in any case, as
    /// the Functions host reads them.
    ///
    /// ```
    /// let b = faas_runner_azure::host::folder::Binding::http_trigger("req", Some("hello"));
    /// assert_eq!(b.setting("Route"), Some("hello"));
    /// assert_eq!(b.setting("queueName"), None);
    /// ```
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).and_then(|(_, v)| v.as_str())
    }

    fn is_in(&self) -> bool {
        self.direction.eq_ignore_ascii_case("in")
    }

    fn is_out(&self) -> bool {
        self.direction.eq_ignore_ascii_case("out")
    }
}

/// One function.json: its bindings, the trigger among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionJson {
    /// The bindings, in order.
    pub bindings: Vec<Binding>,
    trigger: usize,
}

impl FunctionJson {
    /// What a function has when there is no function.json: an HTTP trigger `req` (with `route`,
    /// if given) and an HTTP output `res`.
    ///
    /// ```
    /// let f = faas_runner_azure::host::folder::FunctionJson::http_default(None);
    /// assert_eq!(f.trigger().name, "req");
    /// assert_eq!(f.http_output().map(|b| b.name.as_str()), Some("res"));
    /// assert!(f.is_http_in_and_out());
    /// ```
    pub fn http_default(route: Option<&str>) -> FunctionJson {
        let mut res = Map::new();
        res.insert("type".into(), "http".into());
        res.insert("direction".into(), "out".into());
        res.insert("name".into(), "res".into());
        let res = Binding { binding_type: "http".into(), direction: "out".into(), name: "res".into(), settings: res };
        FunctionJson { bindings: vec![Binding::http_trigger("req", route), res], trigger: 0 }
    }

    /// Reads a function.json's text; `file` names it in errors.
    ///
    /// ```
    /// use faas_runner_azure::host::folder::FunctionJson;
    /// let f = FunctionJson::parse(r#"{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"0 */5 * * * *"}]}"#, "tick/function.json").unwrap();
    /// assert_eq!(f.trigger().name, "timer");
    /// let err = FunctionJson::parse(r#"{"bindings":[{"type":"queueTrigger","direction":"in"}]}"#, "q/function.json").unwrap_err();
    /// assert_eq!(err.message(), "q/function.json: `bindings[0].name` must be a string");
    /// ```
    pub fn parse(text: &str, file: &str) -> Result<FunctionJson, Error> {
        let bad = |what: String| Error::bad_input(format!("{file}: {what}"));
        let value: Value = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let Value::Object(root) = value else { return Err(bad("must be a JSON object with `bindings`".into())) };
        let Some(Value::Array(items)) = root.get("bindings") else {
            return Err(bad("`bindings` must be an array of binding objects".into()));
        };
        let mut bindings = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Value::Object(settings) = item else { return Err(bad(format!("`bindings[{i}]` must be an object"))) };
            let text = |key: &str| -> Result<String, Error> {
                match settings.get(key) {
                    Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                    _ => Err(bad(format!("`bindings[{i}].{key}` must be a string"))),
                }
            };
            let binding = Binding {
                binding_type: text("type")?,
                direction: text("direction")?,
                name: text("name")?,
                settings: settings.clone(),
            };
            if !["in", "out", "inout"].iter().any(|d| binding.direction.eq_ignore_ascii_case(d)) {
                return Err(bad(format!(
                    "`bindings[{i}].direction` must be `in`, `out` or `inout`, not `{}`",
                    binding.direction
                )));
            }
            for key in ["route", "queueName", "path", "dataType"] {
                if settings.get(key).is_some_and(|v| !v.is_string() && !v.is_null()) {
                    return Err(bad(format!("`bindings[{i}].{key}` must be a string")));
                }
            }
            if let Some(methods) = settings.get("methods").filter(|m| !m.is_null()) {
                if !methods.as_array().is_some_and(|m| m.iter().all(Value::is_string)) {
                    return Err(bad(format!("`bindings[{i}].methods` must be an array of strings")));
                }
            }
            bindings.push(binding);
        }
        let mut triggers = bindings.iter().enumerate().filter(|(_, b)| b.is_trigger()).map(|(i, _)| i);
        let Some(trigger) = triggers.next() else {
            return Err(bad("`bindings` has no trigger (a binding whose type ends in `Trigger`)".into()));
        };
        if let Some(second) = triggers.next() {
            return Err(bad(format!("`bindings[{second}]` is a second trigger; a function has exactly one")));
        }
        Ok(FunctionJson { bindings, trigger })
    }

    /// The trigger binding.
    ///
    /// ```
    /// let f = faas_runner_azure::host::folder::FunctionJson::http_default(Some("hello"));
    /// assert_eq!(f.trigger().setting("route"), Some("hello"));
    /// ```
    pub fn trigger(&self) -> &Binding {
        &self.bindings[self.trigger]
    }

    /// The first HTTP output binding (`type: http`, `direction: out`).
    ///
    /// ```
    /// use faas_runner_azure::host::folder::FunctionJson;
    /// let f = FunctionJson::parse(r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"}]}"#, "f").unwrap();
    /// assert!(f.http_output().is_none());
    /// ```
    pub fn http_output(&self) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.is_out() && b.binding_type.eq_ignore_ascii_case("http"))
    }

    /// Exactly one input, an HTTP trigger, and one output, `http`: the functions the Functions
    /// host forwards or proxies (`IsHttpInAndOutFunction`, AZURE-HOST.md §4).
    ///
    /// ```
    /// use faas_runner_azure::host::folder::FunctionJson;
    /// let two_outputs = r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},
    ///     {"type":"http","direction":"out","name":"res"},{"type":"queue","direction":"out","name":"q"}]}"#;
    /// assert!(!FunctionJson::parse(two_outputs, "f").unwrap().is_http_in_and_out());
    /// assert!(FunctionJson::http_default(None).is_http_in_and_out());
    /// ```
    pub fn is_http_in_and_out(&self) -> bool {
        let inputs: Vec<&Binding> = self.bindings.iter().filter(|b| !b.is_out()).collect();
        let outputs: Vec<&Binding> = self.bindings.iter().filter(|b| !b.is_in()).collect();
        inputs.len() == 1
            && inputs[0].kind() == TriggerKind::Http
            && outputs.len() == 1
            && outputs[0].binding_type.eq_ignore_ascii_case("http")
    }
}

impl FunctionApp {
    /// Reads `root/host.json` (when there is one) and every `root/*/function.json`.
    pub fn read(root: &Path) -> Result<FunctionApp, Error> {
        let mut app = FunctionApp::default();
        let host_json = root.join("host.json");
        match std::fs::read_to_string(&host_json) {
            Ok(text) => app.apply_host_json(&text, &host_json.display().to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::bad_input(format!("{}: cannot be read: {e}", host_json.display()))),
        }
        let entries = match std::fs::read_dir(root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::bad_input(format!("the function app folder {} does not exist", root.display())));
            }
            Err(e) => {
                return Err(Error::bad_input(format!("cannot read the function app folder {}: {e}", root.display())))
            }
        };
        let mut folders: Vec<PathBuf> =
            entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        folders.sort();
        for folder in folders {
            let file = folder.join("function.json");
            let Ok(text) = std::fs::read_to_string(&file) else { continue };
            let Some(name) = folder.file_name().and_then(|n| n.to_str()) else { continue };
            app.functions.insert(name.to_string(), FunctionJson::parse(&text, &file.display().to_string())?);
        }
        Ok(app)
    }

    /// Applies a host.json's text (`file` names it in errors).
    ///
    /// ```
    /// use faas_runner_azure::host::folder::FunctionApp;
    /// let mut app = FunctionApp::default();
    /// app.apply_host_json(r#"{"httpWorker": {"description": {"defaultExecutablePath": "app"}}}"#, "host.json").unwrap();
    /// assert!(app.legacy_http_worker);
    /// let err = app.apply_host_json(r#"{"extensions": {"http": {"routePrefix": 5}}}"#, "host.json").unwrap_err();
    /// assert_eq!(err.message(), "host.json: `extensions.http.routePrefix` must be a string");
    /// ```
    pub fn apply_host_json(&mut self, text: &str, file: &str) -> Result<(), Error> {
        let bad = |what: String| Error::bad_input(format!("{file}: {what}"));
        let value: Value = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let Value::Object(root) = value else { return Err(bad("must be a JSON object".into())) };
        let object = |v: Option<&Value>, key: &str| -> Result<Option<Map<String, Value>>, Error> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(o)) => Ok(Some(o.clone())),
                Some(_) => Err(bad(format!("`{key}` must be an object"))),
            }
        };
        if let Some(http) = object(root.get("extensions"), "extensions")?
            .map(|e| object(e.get("http"), "extensions.http"))
            .transpose()?
            .flatten()
        {
            match http.get("routePrefix") {
                None | Some(Value::Null) => {}
                Some(Value::String(p)) => self.route_prefix = p.trim_matches('/').to_string(),
                Some(_) => return Err(bad("`extensions.http.routePrefix` must be a string".into())),
            }
        }
        let custom = object(root.get("customHandler"), "customHandler")?;
        let legacy = object(root.get("httpWorker"), "httpWorker")?;
        self.legacy_http_worker = custom.is_none() && legacy.is_some();
        let (section, name) = match (&custom, &legacy) {
            (Some(c), _) => (Some(c), "customHandler"),
            (None, Some(l)) => (Some(l), "httpWorker"),
            (None, None) => (None, "customHandler"),
        };
        if let Some(section) = section {
            for key in ["enableForwardingHttpRequest", "enableProxyingHttpRequest"] {
                match section.get(key) {
                    None | Some(Value::Null) => {}
                    Some(Value::Bool(on)) => self.forwarding |= *on,
                    Some(_) => return Err(bad(format!("`{name}.{key}` must be true or false"))),
                }
            }
        }
        match root.get("functionTimeout") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.trim() == "-1" => self.function_timeout = Some(None),
            Some(Value::String(s)) => match parse_timespan(s) {
                Some(d) if !d.is_zero() => self.function_timeout = Some(Some(d)),
                _ => {
                    return Err(bad(format!(
                        "`functionTimeout` must be a time span `hh:mm:ss` (or `d.hh:mm:ss`, or -1 for none), got `{s}`"
                    )));
                }
            },
            Some(other) => {
                return Err(bad(format!(
                    "`functionTimeout` must be a time span `hh:mm:ss` (or `d.hh:mm:ss`), got {other}"
                )));
            }
        }
        Ok(())
    }
}

/// Parses a .NET time span as host.json writes it: `[d.]hh:mm[:ss[.fraction]]`.
///
/// ```
/// use std::time::Duration;
/// use faas_runner_azure::host::folder::parse_timespan;
/// assert_eq!(parse_timespan("00:00:30"), Some(Duration::from_secs(30)));
/// assert_eq!(parse_timespan("1.02:00:00"), Some(Duration::from_secs(26 * 3600)));
/// assert_eq!(parse_timespan("00:10"), Some(Duration::from_secs(600)));
/// assert_eq!(parse_timespan("00:00:01.5"), Some(Duration::from_millis(1500)));
/// assert_eq!(parse_timespan("00:61:00"), None);
/// assert_eq!(parse_timespan("30s"), None);
/// ```
pub fn parse_timespan(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (days, clock) = match text.split_once('.') {
        Some((d, rest)) if !d.contains(':') => (d.parse::<u64>().ok()?, rest),
        _ => (0, text),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let whole = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    let hours = whole(parts[0])?;
    let minutes = whole(parts[1]).filter(|m| *m < 60)?;
    let (seconds, fraction) = match parts.get(2) {
        None => (0, Duration::ZERO),
        Some(s) => {
            let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
            let fraction = if frac.is_empty() {
                Duration::ZERO
            } else {
                whole(frac)?;
                Duration::from_secs_f64(format!("0.{frac}").parse().ok()?)
            };
            (whole(secs).filter(|s| *s < 60)?, fraction)
        }
    };
    if days > 0 && hours >= 24 {
        return None;
    }
    Some(Duration::from_secs(((days * 24 + hours) * 60 + minutes) * 60 + seconds) + fraction)
}

/// Reads `FAAS_FUNCTION_TIMEOUTS` (`name=seconds,...`, each function's own timeout, which the
/// runner writes into the app settings); a bad entry is an error naming the variable and it.
///
/// ```
/// use std::time::Duration;
/// use faas_runner_azure::host::folder::parse_timeouts;
/// let t = parse_timeouts("hello=30, sleep=2,").unwrap();
/// assert_eq!((t["hello"], t["sleep"]), (Duration::from_secs(30), Duration::from_secs(2)));
/// let err = parse_timeouts("hello=30,sleep=soon").unwrap_err();
/// assert_eq!(err.message(), "FAAS_FUNCTION_TIMEOUTS: `sleep=soon` is not `name=seconds` with whole seconds of at least 1");
/// ```
pub fn parse_timeouts(text: &str) -> Result<BTreeMap<String, Duration>, Error> {
    let mut timeouts = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let parsed = entry
            .split_once('=')
            .map(|(n, s)| (n.trim(), s.trim()))
            .filter(|(n, _)| !n.is_empty())
            .and_then(|(n, s)| Some((n, s.parse::<u64>().ok().filter(|s| *s >= 1)?)));
        let Some((name, seconds)) = parsed else {
            return Err(Error::bad_input(format!(
                "{}: `{entry}` is not `name=seconds` with whole seconds of at least 1",
                super::ENV_TIMEOUTS
            )));
        };
        timeouts.insert(name.to_string(), Duration::from_secs(seconds));
    }
    Ok(timeouts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_files_name_the_file_and_the_key() {
        let cases = [
            (r#"{"bindings": {}}"#, "`bindings` must be an array"),
            (r#"{"bindings": [7]}"#, "`bindings[0]` must be an object"),
            (
                r#"{"bindings": [{"type": "httpTrigger", "direction": "sideways", "name": "req"}]}"#,
                "`bindings[0].direction`",
            ),
            (
                r#"{"bindings": [{"type": "httpTrigger", "direction": "in", "name": "req", "route": 5}]}"#,
                "`bindings[0].route`",
            ),
            (
                r#"{"bindings": [{"type": "httpTrigger", "direction": "in", "name": "req", "methods": "get"}]}"#,
                "`bindings[0].methods`",
            ),
            (r#"{"bindings": [{"type": "http", "direction": "out", "name": "res"}]}"#, "no trigger"),
            (
                r#"{"bindings": [{"type": "httpTrigger", "direction": "in", "name": "a"}, {"type": "queueTrigger", "direction": "in", "name": "b"}]}"#,
                "`bindings[1]` is a second trigger",
            ),
            ("{", "not valid JSON"),
        ];
        for (text, expected) in cases {
            let err = FunctionJson::parse(text, "/app/f/function.json").unwrap_err();
            assert!(err.message().starts_with("/app/f/function.json: "), "{}", err.message());
            assert!(err.message().contains(expected), "{text}: {}", err.message());
        }
        let host = [
            (
                r#"{"customHandler": {"enableForwardingHttpRequest": "yes"}}"#,
                "`customHandler.enableForwardingHttpRequest`",
            ),
            (r#"{"customHandler": []}"#, "`customHandler` must be an object"),
            (r#"{"functionTimeout": 300}"#, "`functionTimeout`"),
            (r#"{"extensions": {"http": []}}"#, "`extensions.http` must be an object"),
            ("[]", "must be a JSON object"),
        ];
        for (text, expected) in host {
            let err = FunctionApp::default().apply_host_json(text, "/app/host.json").unwrap_err();
            assert!(err.message().starts_with("/app/host.json: "), "{}", err.message());
            assert!(err.message().contains(expected), "{text}: {}", err.message());
        }
    }

    #[test]
    fn the_folder_is_read_with_its_functions_and_without_host_json() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("hello")).unwrap();
        std::fs::write(
            dir.path().join("hello/function.json"),
            r#"{"bindings": [{"type": "httpTrigger", "direction": "in", "name": "request", "route": "greet/{who}"},
                {"type": "http", "direction": "out", "name": "$return"}]}"#,
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("not-a-function")).unwrap();
        let app = FunctionApp::read(dir.path()).unwrap();
        assert_eq!(app.route_prefix, "api");
        assert_eq!(app.functions.keys().collect::<Vec<_>>(), ["hello"]);
        let hello = &app.functions["hello"];
        assert_eq!(hello.trigger().name, "request");
        assert_eq!(hello.http_output().unwrap().name, "$return");
        assert!(hello.is_http_in_and_out());
        let missing = FunctionApp::read(&dir.path().join("nope")).unwrap_err();
        assert!(missing.message().contains("does not exist"), "{}", missing.message());
    }

    #[test]
    fn the_unlimited_timeout_and_the_proxying_switch() {
        let mut app = FunctionApp::default();
        app.apply_host_json(r#"{"functionTimeout": "-1", "customHandler": {"enableProxyingHttpRequest": true}}"#, "h")
            .unwrap();
        assert_eq!(app.function_timeout, Some(None));
        assert!(app.forwarding && !app.legacy_http_worker);
    }
}
