//! A function app's configuration as the Functions host reads it: `host.json` (version, timeout,
//! route prefix, the `customHandler` section) and one `<function>/function.json` per function
//! (its bindings, its trigger). Every error names the file and the key that is wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::keys::AuthLevel;
use crate::route::RouteTemplate;

/// The host's default `functionTimeout` outside the Consumption plan: 30 minutes.
pub(crate) const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// `HttpWorkerOptions.InitializationTimeout`'s default: 30 seconds.
pub(crate) const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A configuration problem: the file (relative to the app root), the key, what is wrong.
///
/// ```
/// let e = faas_emulator_azure::ConfigError {
///     file: "hello/function.json".into(),
///     key: "bindings[0].type".into(),
///     message: "is missing".into(),
/// };
/// assert_eq!(e.to_string(), "hello/function.json: bindings[0].type: is missing");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    /// The file, relative to the app root (`host.json`, `hello/function.json`).
    pub file: String,
    /// The key (`customHandler.description.defaultExecutablePath`, `bindings[0].type`), or `-`
    /// for the file as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(file: impl Into<String>, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { file: file.into(), key: key.into(), message: message.into() }
    }
}

/// How the host starts the custom handler (`customHandler`, or the legacy `httpWorker`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HandlerConfig {
    /// The section was the legacy `httpWorker` (forwarding to the function name's path).
    pub legacy: bool,
    pub executable: String,
    pub worker_path: Option<String>,
    pub arguments: Vec<String>,
    pub worker_arguments: Vec<String>,
    pub working_directory: Option<String>,
    pub forwarding: bool,
    pub init_timeout: Duration,
}

/// What `host.json` says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HostConfig {
    /// `None`: no limit (`"-1"`).
    pub function_timeout: Option<Duration>,
    /// The text the timeout was given as, for messages (`00:00:30`).
    pub function_timeout_text: String,
    pub route_prefix: String,
    pub custom_headers: Vec<(String, String)>,
    pub handler: HandlerConfig,
}

/// A binding's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    In,
    Out,
    InOut,
}

/// One binding of function.json.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Binding {
    pub name: String,
    pub kind: String,
    pub direction: Direction,
    pub data_type: Option<String>,
}

/// A timer schedule: NCRONTAB (6 fields) or a fixed interval (`hh:mm:ss`).
#[derive(Debug, Clone)]
pub(crate) enum Schedule {
    Cron(Box<croner::Cron>),
    Interval(Duration),
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        match (self, other) {
            (Schedule::Cron(a), Schedule::Cron(b)) => a.pattern.to_string() == b.pattern.to_string(),
            (Schedule::Interval(a), Schedule::Interval(b)) => a == b,
            _ => false,
        }
    }
}

/// What starts a function.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Trigger {
    Http { auth: AuthLevel, methods: Option<Vec<String>>, route: RouteTemplate, custom_route: bool },
    Timer { schedule: Schedule, run_on_startup: bool, use_monitor: bool },
    Queue { queue: String, connection: String },
    Blob { path: String },
    EventGrid,
    Other(String),
}

/// One function.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FunctionConfig {
    pub name: String,
    /// function.json as it was read.
    pub raw: Value,
    pub bindings: Vec<Binding>,
    /// Index of the trigger in `bindings`.
    pub trigger_index: usize,
    pub trigger: Trigger,
    /// `"disabled": true` in function.json (app settings can disable it too).
    pub disabled: bool,
}

impl FunctionConfig {
    /// The trigger binding.
    pub fn trigger_binding(&self) -> &Binding {
        &self.bindings[self.trigger_index]
    }

    /// The output bindings.
    pub fn outputs(&self) -> impl Iterator<Item = &Binding> {
        self.bindings.iter().filter(|b| b.direction != Direction::In)
    }

    /// `IsHttpInAndOutFunction`: one input, an `httpTrigger`, and one output, `http`.
    pub fn is_http_in_and_out(&self) -> bool {
        let inputs: Vec<&Binding> = self.bindings.iter().filter(|b| b.direction == Direction::In).collect();
        let outputs: Vec<&Binding> = self.outputs().collect();
        inputs.len() == 1
            && inputs[0].kind.eq_ignore_ascii_case("httpTrigger")
            && outputs.len() == 1
            && outputs[0].kind.eq_ignore_ascii_case("http")
    }
}

/// A function app: the host configuration and its functions, by name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AppConfig {
    pub root: PathBuf,
    pub host: HostConfig,
    pub functions: Vec<FunctionConfig>,
}

impl AppConfig {
    /// The function of that name (any case, as the host looks functions up).
    pub fn function(&self, name: &str) -> Option<&FunctionConfig> {
        self.functions.iter().find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// Parses a .NET `TimeSpan` text (`[d.]hh:mm[:ss[.fffffff]]`, or a number of days).
///
/// ```text
/// assert_eq!(parse_timespan("00:00:30"), Some(Duration::from_secs(30)));
/// assert_eq!(parse_timespan("1.00:00:00"), Some(Duration::from_secs(86400)));
/// ```
pub(crate) fn parse_timespan(text: &str) -> Option<Duration> {
    let t = text.trim();
    if t.starts_with('-') {
        return None;
    }
    if !t.contains(':') {
        let days: u64 = t.parse().ok()?;
        return Some(Duration::from_secs(days.checked_mul(86_400)?));
    }
    let (days, rest) = match t.split_once('.') {
        Some((d, r)) if !d.contains(':') => (d.parse::<u64>().ok()?, r),
        _ => (0, t),
    };
    let mut parts = rest.split(':');
    let hours: u64 = parts.next()?.parse().ok()?;
    let minutes: u64 = parts.next()?.parse().ok()?;
    let (seconds, nanos) = match parts.next() {
        None => (0, 0),
        Some(s) => match s.split_once('.') {
            Some((whole, frac)) => {
                if frac.is_empty() || frac.len() > 7 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let padded = format!("{frac:0<9}");
                (whole.parse::<u64>().ok()?, padded.parse::<u32>().ok()?)
            }
            None => (s.parse::<u64>().ok()?, 0),
        },
    };
    if parts.next().is_some() || hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    Some(Duration::new(days * 86_400 + hours * 3_600 + minutes * 60 + seconds, nanos))
}

/// Replaces `%NAME%` with the app setting `NAME`, as the host resolves binding expressions in
/// function.json (an unknown setting is an error).
fn resolve_settings(text: &str, settings: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let Some(len) = rest[start + 1..].find('%') else { break };
        let name = &rest[start + 1..start + 1 + len];
        let value = settings
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("'%{name}%' does not resolve to a value (no app setting {name})"))?;
        out.push_str(&rest[..start]);
        out.push_str(&value);
        rest = &rest[start + 2 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

fn read_json(root: &Path, file: &str) -> Result<Value, ConfigError> {
    let path = root.join(file);
    let text = std::fs::read(&path).map_err(|e| ConfigError::new(file, "-", format!("cannot be read: {e}")))?;
    let text = String::from_utf8_lossy(&text);
    let text = text.trim_start_matches('\u{feff}');
    serde_json::from_str(text).map_err(|e| ConfigError::new(file, "-", format!("is not valid JSON: {e}")))
}

fn string_list(file: &str, key: &str, v: Option<&Value>) -> Result<Vec<String>, ConfigError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(b) => Ok(b.to_string()),
                _ => Err(ConfigError::new(file, format!("{key}[{i}]"), "must be a string")),
            })
            .collect(),
        Some(_) => Err(ConfigError::new(file, key, "must be an array of strings")),
    }
}

fn optional_str<'a>(file: &str, key: &str, v: Option<&'a Value>) -> Result<Option<&'a str>, ConfigError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ConfigError::new(file, key, "must be a string")),
    }
}

fn flag(file: &str, key: &str, v: Option<&Value>) -> Result<bool, ConfigError> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(ConfigError::new(file, key, "must be true or false")),
    }
}

/// Looks a key up without regard to case (.NET configuration keys are case-insensitive).
fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

fn parse_host(root: &Path) -> Result<HostConfig, ConfigError> {
    const FILE: &str = "host.json";
    if !root.join(FILE).is_file() {
        return Err(ConfigError::new(FILE, "-", "is missing: a function app needs host.json at its root"));
    }
    let value = read_json(root, FILE)?;
    let Value::Object(host) = value else {
        return Err(ConfigError::new(FILE, "-", "must be a JSON object"));
    };
    if !host.is_empty() {
        match get_ci(&host, "version") {
            None | Some(Value::Null) => {
                return Err(ConfigError::new(
                    FILE,
                    "version",
                    "The host.json file is missing the required 'version' property. See \
                     https://aka.ms/functions-hostjson for steps to migrate the configuration file.",
                ))
            }
            Some(Value::String(v)) if v == "2.0" => {}
            Some(other) => {
                let text = other.as_str().map(str::to_string).unwrap_or_else(|| other.to_string());
                return Err(ConfigError::new(
                    FILE,
                    "version",
                    format!(
                        "'{text}' is an invalid value for host.json 'version' property. We recommend you set the \
                         'version' property to '2.0'."
                    ),
                ));
            }
        }
    }
    let (function_timeout, function_timeout_text) = match get_ci(&host, "functionTimeout") {
        None | Some(Value::Null) => (Some(DEFAULT_FUNCTION_TIMEOUT), "00:30:00".to_string()),
        Some(Value::String(s)) if s.trim() == "-1" || s.trim() == "-1.00:00:00" => (None, s.clone()),
        Some(Value::String(s)) => match parse_timespan(s) {
            Some(d) if d >= Duration::from_secs(1) => (Some(d), s.trim().to_string()),
            Some(_) => {
                return Err(ConfigError::new(
                    FILE,
                    "functionTimeout",
                    "FunctionTimeout must be greater than 00:00:01 and less than 10675199.02:48:05.4775807.",
                ))
            }
            None => {
                return Err(ConfigError::new(
                    FILE,
                    "functionTimeout",
                    format!("\"{s}\" is not a time span ([d.]hh:mm:ss, or \"-1\" for no limit)"),
                ))
            }
        },
        Some(_) => return Err(ConfigError::new(FILE, "functionTimeout", "must be a time span string (hh:mm:ss)")),
    };
    let http = get_ci(&host, "extensions").and_then(Value::as_object).and_then(|e| get_ci(e, "http"));
    let http = match http {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err(ConfigError::new(FILE, "extensions.http", "must be an object")),
    };
    let route_prefix = match http.and_then(|h| get_ci(h, "routePrefix")) {
        None | Some(Value::Null) => "api".to_string(),
        Some(Value::String(p)) => p.trim_matches('/').to_string(),
        Some(_) => return Err(ConfigError::new(FILE, "extensions.http.routePrefix", "must be a string")),
    };
    let custom_headers = match http.and_then(|h| get_ci(h, "customHeaders")) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(ConfigError::new(FILE, format!("extensions.http.customHeaders.{k}"), "must be a string")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ConfigError::new(FILE, "extensions.http.customHeaders", "must be an object")),
    };
    let custom = get_ci(&host, "customHandler").filter(|v| !v.is_null());
    let legacy = get_ci(&host, "httpWorker").filter(|v| !v.is_null());
    let (section_name, section, is_legacy) = match (custom, legacy) {
        (Some(s), _) => ("customHandler", s, false),
        (None, Some(s)) => ("httpWorker", s, true),
        (None, None) => {
            return Err(ConfigError::new(
                FILE,
                "customHandler",
                "is missing: this host runs custom handlers (add a customHandler section with a description whose \
                 defaultExecutablePath names the handler)",
            ))
        }
    };
    let Value::Object(section) = section else {
        return Err(ConfigError::new(FILE, section_name, "must be an object"));
    };
    let description = match get_ci(section, "description") {
        Some(Value::Object(d)) => d,
        None | Some(Value::Null) => {
            return Err(ConfigError::new(FILE, format!("{section_name}.description"), "Missing worker Description."))
        }
        Some(_) => return Err(ConfigError::new(FILE, format!("{section_name}.description"), "must be an object")),
    };
    let key = |k: &str| format!("{section_name}.description.{k}");
    let executable = optional_str(FILE, &key("defaultExecutablePath"), get_ci(description, "defaultExecutablePath"))?
        .unwrap_or("")
        .trim()
        .to_string();
    if executable.is_empty() {
        return Err(ConfigError::new(
            FILE,
            key("defaultExecutablePath"),
            "WorkerDescription DefaultExecutablePath cannot be empty",
        ));
    }
    let worker_path = optional_str(FILE, &key("defaultWorkerPath"), get_ci(description, "defaultWorkerPath"))?
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let arguments = string_list(FILE, &key("arguments"), get_ci(description, "arguments"))?;
    let worker_arguments = string_list(FILE, &key("workerArguments"), get_ci(description, "workerArguments"))?;
    let working_directory = optional_str(FILE, &key("workingDirectory"), get_ci(description, "workingDirectory"))?
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let forwarding = flag(
        FILE,
        &format!("{section_name}.enableForwardingHttpRequest"),
        get_ci(section, "enableForwardingHttpRequest"),
    )?;
    let init_timeout = match get_ci(section, "initializationTimeout") {
        None | Some(Value::Null) => DEFAULT_INIT_TIMEOUT,
        Some(Value::String(s)) => parse_timespan(s).filter(|d| !d.is_zero()).ok_or_else(|| {
            ConfigError::new(
                FILE,
                format!("{section_name}.initializationTimeout"),
                format!("\"{s}\" is not a time span (hh:mm:ss)"),
            )
        })?,
        Some(_) => {
            return Err(ConfigError::new(
                FILE,
                format!("{section_name}.initializationTimeout"),
                "must be a time span string (hh:mm:ss)",
            ))
        }
    };
    Ok(HostConfig {
        function_timeout,
        function_timeout_text,
        route_prefix,
        custom_headers,
        handler: HandlerConfig {
            legacy: is_legacy,
            executable,
            worker_path,
            arguments,
            worker_arguments,
            working_directory,
            forwarding,
            init_timeout,
        },
    })
}

/// `Utility.IsValidFunctionName`: a letter, then letters, digits, `_` or `-`, at most 128, not `host`.
pub(crate) fn is_valid_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.eq_ignore_ascii_case("host")
}

fn is_valid_binding_name(name: &str) -> bool {
    if name == "$return" {
        return true;
    }
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric())
}

fn parse_schedule(text: &str) -> Result<Schedule, String> {
    if let Some(interval) = parse_timespan(text).filter(|_| text.contains(':')) {
        if interval.is_zero() {
            return Err(format!("\"{text}\": an interval schedule must be longer than zero"));
        }
        return Ok(Schedule::Interval(interval));
    }
    let fields = text.split_whitespace().count();
    if fields != 6 {
        return Err(format!(
            "\"{text}\" has {fields} fields; an NCRONTAB expression has 6 ({{second}} {{minute}} {{hour}} {{day}} \
             {{month}} {{day-of-week}}), or use a time span (hh:mm:ss)"
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .year(croner::parser::Year::Disallowed)
        .dom_and_dow(true)
        .sloppy_ranges(true)
        .build()
        .parse(text)
        .map(|c| Schedule::Cron(Box::new(c)))
        .map_err(|e| format!("\"{text}\" is not a valid NCRONTAB expression: {e}"))
}

fn parse_function(root: &Path, name: &str, settings: &BTreeMap<String, String>) -> Result<FunctionConfig, ConfigError> {
    let file = format!("{name}/function.json");
    let raw = read_json(root, &file)?;
    let Value::Object(obj) = &raw else {
        return Err(ConfigError::new(&file, "-", "must be a JSON object"));
    };
    let bindings_value = match get_ci(obj, "bindings") {
        Some(Value::Array(b)) => b,
        None | Some(Value::Null) => {
            return Err(ConfigError::new(&file, "bindings", "At least one binding must be declared."))
        }
        Some(_) => return Err(ConfigError::new(&file, "bindings", "must be an array of bindings")),
    };
    if bindings_value.is_empty() {
        return Err(ConfigError::new(&file, "bindings", "At least one binding must be declared."));
    }
    let mut bindings = Vec::new();
    let mut trigger = None;
    for (i, b) in bindings_value.iter().enumerate() {
        let at = |k: &str| format!("bindings[{i}].{k}");
        let Value::Object(b) = b else {
            return Err(ConfigError::new(&file, format!("bindings[{i}]"), "must be an object"));
        };
        let kind = match get_ci(b, "type") {
            Some(Value::String(t)) if !t.trim().is_empty() => t.trim().to_string(),
            None | Some(Value::Null) => return Err(ConfigError::new(&file, at("type"), "is missing")),
            Some(_) => return Err(ConfigError::new(&file, at("type"), "must be a non-empty string")),
        };
        let name_value = optional_str(&file, &at("name"), get_ci(b, "name"))?.unwrap_or("");
        if !is_valid_binding_name(name_value) {
            return Err(ConfigError::new(
                &file,
                at("name"),
                format!("The binding name {name_value} is invalid. Please assign a valid name to the binding."),
            ));
        }
        if bindings.iter().any(|x: &Binding| x.name.eq_ignore_ascii_case(name_value)) {
            return Err(ConfigError::new(
                &file,
                at("name"),
                format!("Multiple bindings with name '{name_value}' discovered. Binding names must be unique."),
            ));
        }
        let direction = match optional_str(&file, &at("direction"), get_ci(b, "direction"))? {
            None => Direction::In,
            Some(d) if d.eq_ignore_ascii_case("in") => Direction::In,
            Some(d) if d.eq_ignore_ascii_case("out") => Direction::Out,
            Some(d) if d.eq_ignore_ascii_case("inout") => Direction::InOut,
            Some(d) => {
                return Err(ConfigError::new(&file, at("direction"), format!("\"{d}\" is not in, out or inout")))
            }
        };
        if name_value == "$return" && direction != Direction::Out {
            return Err(ConfigError::new(
                &file,
                at("direction"),
                "$return bindings must specify a direction of 'out'.",
            ));
        }
        let data_type = optional_str(&file, &at("dataType"), get_ci(b, "dataType"))?.map(str::to_string);
        let is_trigger = kind.to_ascii_lowercase().ends_with("trigger");
        if is_trigger && direction == Direction::In && trigger.is_none() {
            let resolve = |key: &str, text: &str| {
                resolve_settings(text, settings).map_err(|m| ConfigError::new(&file, at(key), m))
            };
            let t = match kind.to_ascii_lowercase().as_str() {
                "httptrigger" => {
                    let auth = match optional_str(&file, &at("authLevel"), get_ci(b, "authLevel"))? {
                        None => AuthLevel::Function,
                        Some(level) => AuthLevel::parse(level).ok_or_else(|| {
                            ConfigError::new(
                                &file,
                                at("authLevel"),
                                format!("\"{level}\" is not anonymous, function, system or admin"),
                            )
                        })?,
                    };
                    let methods = match get_ci(b, "methods") {
                        None | Some(Value::Null) => None,
                        v => {
                            let list = string_list(&file, &at("methods"), v)?;
                            (!list.is_empty()).then(|| list.iter().map(|m| m.to_ascii_uppercase()).collect())
                        }
                    };
                    let custom = optional_str(&file, &at("route"), get_ci(b, "route"))?.filter(|r| !r.is_empty());
                    let route = RouteTemplate::parse(custom.unwrap_or(name))
                        .map_err(|m| ConfigError::new(&file, at("route"), m))?;
                    Trigger::Http { auth, methods, route, custom_route: custom.is_some() }
                }
                "timertrigger" => {
                    let text = match get_ci(b, "schedule") {
                        Some(Value::String(s)) if !s.trim().is_empty() => resolve("schedule", s.trim())?,
                        None | Some(Value::Null) => {
                            return Err(ConfigError::new(&file, at("schedule"), "is missing"));
                        }
                        Some(_) => return Err(ConfigError::new(&file, at("schedule"), "must be a string")),
                    };
                    let schedule = parse_schedule(&text).map_err(|m| ConfigError::new(&file, at("schedule"), m))?;
                    let run_on_startup = flag(&file, &at("runOnStartup"), get_ci(b, "runOnStartup"))?;
                    let use_monitor = match get_ci(b, "useMonitor") {
                        None | Some(Value::Null) => true,
                        v => flag(&file, &at("useMonitor"), v)?,
                    };
                    Trigger::Timer { schedule, run_on_startup, use_monitor }
                }
                "queuetrigger" => {
                    let queue = match get_ci(b, "queueName") {
                        Some(Value::String(q)) if !q.trim().is_empty() => resolve("queueName", q.trim())?,
                        None | Some(Value::Null) => return Err(ConfigError::new(&file, at("queueName"), "is missing")),
                        Some(_) => return Err(ConfigError::new(&file, at("queueName"), "must be a string")),
                    };
                    let connection = optional_str(&file, &at("connection"), get_ci(b, "connection"))?
                        .filter(|c| !c.is_empty())
                        .unwrap_or("AzureWebJobsStorage")
                        .to_string();
                    Trigger::Queue { queue: queue.to_ascii_lowercase(), connection }
                }
                "blobtrigger" => {
                    let path = optional_str(&file, &at("path"), get_ci(b, "path"))?.unwrap_or("").to_string();
                    if path.is_empty() {
                        return Err(ConfigError::new(&file, at("path"), "is missing"));
                    }
                    Trigger::Blob { path: resolve("path", &path)? }
                }
                "eventgridtrigger" => Trigger::EventGrid,
                _ => Trigger::Other(kind.clone()),
            };
            trigger = Some((bindings.len(), t));
        }
        bindings.push(Binding { name: name_value.to_string(), kind, direction, data_type });
    }
    let Some((trigger_index, trigger)) = trigger else {
        return Err(ConfigError::new(
            &file,
            "bindings",
            "No trigger binding specified. A function must have a trigger input binding.",
        ));
    };
    let disabled = flag(&file, "disabled", get_ci(obj, "disabled"))?;
    Ok(FunctionConfig { name: name.to_string(), raw: raw.clone(), bindings, trigger_index, trigger, disabled })
}

/// Reads a function app folder: host.json and every `*/function.json`, with `settings` (the app
/// settings) resolving `%NAME%` references.
pub(crate) fn load_app(root: &Path, settings: &BTreeMap<String, String>) -> Result<AppConfig, ConfigError> {
    let host = parse_host(root)?;
    let mut names = Vec::new();
    let entries = std::fs::read_dir(root).map_err(|e| ConfigError::new(".", "-", format!("cannot be read: {e}")))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && path.join("function.json").is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let mut functions = Vec::new();
    for name in names {
        if !is_valid_function_name(&name) {
            return Err(ConfigError::new(
                format!("{name}/function.json"),
                "-",
                format!("'{name}' is not a valid function name."),
            ));
        }
        functions.push(parse_function(root, &name, settings)?);
    }
    Ok(AppConfig { root: root.to_path_buf(), host, functions })
}

/// Where the handler's executable is: under the app root when that file exists, else the name
/// as given (a program on `PATH`); `None` when it is neither.
pub(crate) fn resolve_executable(root: &Path, executable: &str, path_env: Option<&str>) -> Option<PathBuf> {
    let given = Path::new(executable);
    if given.is_absolute() {
        return given.is_file().then(|| given.to_path_buf());
    }
    let under_root = root.join(given);
    if under_root.is_file() {
        return Some(under_root);
    }
    if executable.contains('/') {
        return None;
    }
    let path = path_env?;
    std::env::split_paths(path).map(|d| d.join(executable)).find(|p| {
        use std::os::unix::fs::PermissionsExt as _;
        p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    const HOST: &str = r#"{"version":"2.0","functionTimeout":"00:00:30","customHandler":{"description":{"defaultExecutablePath":"faas-app"}}}"#;

    #[test]
    fn timespans_parse_as_dotnet_parses_them() {
        assert_eq!(parse_timespan("00:00:30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_timespan("00:05"), Some(Duration::from_secs(300)));
        assert_eq!(parse_timespan("1.02:00:00"), Some(Duration::from_secs(93_600)));
        assert_eq!(parse_timespan("00:00:01.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_timespan("2"), Some(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse_timespan("00:61:00"), None);
        assert_eq!(parse_timespan("abc"), None);
    }

    #[test]
    fn an_app_loads_with_its_functions_and_triggers() {
        let dir = app(&[
            ("host.json", HOST),
            (
                "hello/function.json",
                r#"{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"hi/{name?}"},{"type":"http","direction":"out","name":"res"}]}"#,
            ),
            (
                "tick/function.json",
                r#"{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"*/5 * * * * *"}]}"#,
            ),
            (
                "orders/function.json",
                r#"{"bindings":[{"type":"queueTrigger","direction":"in","name":"message","queueName":"%Q%"}]}"#,
            ),
            ("not-a-function/readme.txt", "x"),
        ]);
        let settings = BTreeMap::from([("Q".to_string(), "Orders".to_string())]);
        let app = load_app(dir.path(), &settings).unwrap();
        assert_eq!(app.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["hello", "orders", "tick"]);
        assert_eq!(app.host.function_timeout, Some(Duration::from_secs(30)));
        assert_eq!(app.host.route_prefix, "api");
        let hello = app.function("HELLO").unwrap();
        assert!(hello.is_http_in_and_out());
        assert!(matches!(&hello.trigger, Trigger::Http { auth: AuthLevel::Function, custom_route: true, .. }));
        assert!(
            matches!(&app.function("orders").unwrap().trigger, Trigger::Queue { queue, connection } if queue == "orders" && connection == "AzureWebJobsStorage")
        );
        assert!(matches!(&app.function("tick").unwrap().trigger, Trigger::Timer { use_monitor: true, .. }));
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let check = |files: &[(&str, &str)], expected: &str| {
            let dir = app(files);
            let e = load_app(dir.path(), &BTreeMap::new()).unwrap_err().to_string();
            assert!(e.starts_with(expected), "{e} should start with {expected}");
        };
        check(&[], "host.json: -: is missing");
        check(&[("host.json", "{nope")], "host.json: -: is not valid JSON");
        check(&[("host.json", r#"{"version":"3.0"}"#)], "host.json: version: '3.0' is an invalid value");
        check(
            &[("host.json", r#"{"functionTimeout":"00:00:30"}"#)],
            "host.json: version: The host.json file is missing",
        );
        check(&[("host.json", r#"{"version":"2.0"}"#)], "host.json: customHandler: is missing");
        check(
            &[("host.json", r#"{"version":"2.0","customHandler":{}}"#)],
            "host.json: customHandler.description: Missing worker Description.",
        );
        check(
            &[("host.json", r#"{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":""}}}"#)],
            "host.json: customHandler.description.defaultExecutablePath: WorkerDescription DefaultExecutablePath cannot be empty",
        );
        check(
            &[(
                "host.json",
                r#"{"version":"2.0","functionTimeout":"soon","customHandler":{"description":{"defaultExecutablePath":"x"}}}"#,
            )],
            "host.json: functionTimeout: \"soon\" is not a time span",
        );
        check(&[("host.json", HOST), ("f/function.json", "[")], "f/function.json: -: is not valid JSON");
        check(
            &[("host.json", HOST), ("f/function.json", r#"{"bindings":[{"name":"req"}]}"#)],
            "f/function.json: bindings[0].type: is missing",
        );
        check(
            &[
                ("host.json", HOST),
                ("f/function.json", r#"{"bindings":[{"type":"http","direction":"out","name":"res"}]}"#),
            ],
            "f/function.json: bindings: No trigger binding specified",
        );
        check(
            &[
                ("host.json", HOST),
                ("f/function.json", r#"{"bindings":[{"type":"timerTrigger","name":"t","schedule":"* * * * *"}]}"#),
            ],
            "f/function.json: bindings[0].schedule: \"* * * * *\" has 5 fields",
        );
        check(
            &[
                ("host.json", HOST),
                ("f/function.json", r#"{"bindings":[{"type":"httpTrigger","name":"r","direction":"sideways"}]}"#),
            ],
            "f/function.json: bindings[0].direction: \"sideways\" is not in, out or inout",
        );
        check(
            &[
                ("host.json", HOST),
                ("f/function.json", r#"{"bindings":[{"type":"httpTrigger","name":"r","route":"a/{*x}/b"}]}"#),
            ],
            "f/function.json: bindings[0].route: the catch-all",
        );
    }

    #[test]
    fn an_empty_host_json_is_a_default_one_but_still_needs_a_handler() {
        let dir = app(&[("host.json", "{}")]);
        let e = load_app(dir.path(), &BTreeMap::new()).unwrap_err();
        assert_eq!(e.key, "customHandler");
    }

    #[test]
    fn executables_resolve_under_the_root_then_on_path() {
        let dir = app(&[("bin/app", "x")]);
        assert_eq!(resolve_executable(dir.path(), "bin/app", None), Some(dir.path().join("bin/app")));
        assert_eq!(resolve_executable(dir.path(), "nope", Some("/nonexistent")), None);
        assert!(resolve_executable(dir.path(), "sh", Some("/bin:/usr/bin")).is_some());
    }
}
