//! Cloud Logging as Cloud Run writes it for a 2nd gen function: each line an instance writes on
//! stdout or stderr becomes a `LogEntry` (a JSON object line is a structured log), each request
//! a request log entry; `POST /v2/entries:list` reads them back.

use std::collections::VecDeque;

use serde_json::{json, Map, Value};

use crate::error::ApiError;

/// The `resource.labels` of a revision's entries, and the project they belong to.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub project: String,
    pub location: String,
    pub service: String,
    pub revision: String,
}

impl Resource {
    fn json(&self) -> Value {
        json!({
            "type": "cloud_run_revision",
            "labels": {
                "service_name": self.service,
                "revision_name": self.revision,
                "location": self.location,
                "project_id": self.project,
                "configuration_name": self.service,
            }
        })
    }

    fn log_name(&self, log: &str) -> String {
        format!("projects/{}/logs/run.googleapis.com%2F{log}", self.project)
    }
}

/// `LogSeverity` names by number (google/logging/type/log_severity.proto).
const SEVERITIES: [(&str, i64); 9] = [
    ("DEFAULT", 0),
    ("DEBUG", 100),
    ("INFO", 200),
    ("NOTICE", 300),
    ("WARNING", 400),
    ("ERROR", 500),
    ("CRITICAL", 600),
    ("ALERT", 700),
    ("EMERGENCY", 800),
];

fn severity_number(name: &str) -> Option<i64> {
    SEVERITIES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// The kept entries, newest last, at most `max`.
#[derive(Debug)]
pub(crate) struct Store {
    entries: VecDeque<Value>,
    max: usize,
    next_id: u64,
}

/// What a request log entry records.
#[derive(Debug, Clone)]
pub(crate) struct RequestLog {
    pub method: String,
    pub url: String,
    pub status: u16,
    pub latency: std::time::Duration,
    pub request_size: u64,
    pub response_size: u64,
    pub user_agent: Option<String>,
    pub trace: Option<String>,
    pub span: Option<String>,
}

impl Store {
    pub fn new(max: usize) -> Store {
        Store { entries: VecDeque::new(), max: max.max(1), next_id: 0 }
    }

    fn push(&mut self, mut entry: Map<String, Value>) {
        self.next_id += 1;
        let now = crate::wire::now();
        entry.entry("timestamp").or_insert_with(|| now.clone().into());
        entry.insert("receiveTimestamp".into(), now.into());
        entry.entry("insertId").or_insert_with(|| format!("{:016x}", self.next_id).into());
        entry.entry("severity").or_insert_with(|| "DEFAULT".into());
        if self.entries.len() >= self.max {
            self.entries.pop_front();
        }
        self.entries.push_back(Value::Object(entry));
    }

    /// One line an instance wrote.
    pub fn line(&mut self, resource: &Resource, instance: &str, stream: Stream, line: &str) {
        let mut entry = Map::new();
        entry.insert("resource".into(), resource.json());
        let log = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        entry.insert("logName".into(), resource.log_name(log).into());
        let mut labels = Map::new();
        labels.insert("instanceId".into(), instance.into());
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(mut payload)) => {
                // Cloud Logging's special fields of a structured log line
                // (cloud.google.com/logging/docs/structured-logging).
                if let Some(Value::String(s)) = payload.remove("severity") {
                    entry.insert("severity".into(), s.to_ascii_uppercase().into());
                }
                if let Some(Value::Object(l)) = payload.remove("logging.googleapis.com/labels") {
                    labels.extend(l);
                }
                for (field, to) in [
                    ("logging.googleapis.com/trace", "trace"),
                    ("logging.googleapis.com/spanId", "spanId"),
                    ("logging.googleapis.com/trace_sampled", "traceSampled"),
                    ("logging.googleapis.com/insertId", "insertId"),
                    ("logging.googleapis.com/sourceLocation", "sourceLocation"),
                    ("logging.googleapis.com/operation", "operation"),
                    ("httpRequest", "httpRequest"),
                ] {
                    if let Some(v) = payload.remove(field) {
                        entry.insert(to.into(), v);
                    }
                }
                for field in ["time", "timestamp"] {
                    if let Some(Value::String(t)) = payload.remove(field) {
                        entry.insert("timestamp".into(), t.into());
                    }
                }
                entry.insert("jsonPayload".into(), Value::Object(payload));
            }
            _ => {
                entry.insert("textPayload".into(), line.into());
                // UNCONFIRMED: we give a plain stderr line severity ERROR (as Cloud Functions
                // 1st gen did), a plain stdout line DEFAULT (Cloud Run's documented default).
                if stream == Stream::Stderr {
                    entry.insert("severity".into(), "ERROR".into());
                }
            }
        }
        entry.insert("labels".into(), Value::Object(labels));
        self.push(entry);
    }

    /// One request served (`run.googleapis.com/requests`).
    pub fn request(&mut self, resource: &Resource, instance: Option<&str>, request: &RequestLog) {
        let mut entry = Map::new();
        entry.insert("resource".into(), resource.json());
        entry.insert("logName".into(), resource.log_name("requests").into());
        // UNCONFIRMED: Cloud Run's request logs are ERROR for 5xx and WARNING for 4xx.
        let severity = match request.status {
            500.. => "ERROR",
            400..=499 => "WARNING",
            _ => "INFO",
        };
        entry.insert("severity".into(), severity.into());
        let mut http = json!({
            "requestMethod": request.method,
            "requestUrl": request.url,
            "requestSize": request.request_size.to_string(),
            "status": request.status,
            "responseSize": request.response_size.to_string(),
            "remoteIp": "127.0.0.1",
            "serverIp": "127.0.0.1",
            "latency": format!("{:.9}s", request.latency.as_secs_f64()),
            "protocol": "HTTP/1.1",
        });
        if let Some(agent) = &request.user_agent {
            http["userAgent"] = agent.clone().into();
        }
        entry.insert("httpRequest".into(), http);
        if let Some(trace) = &request.trace {
            entry.insert("trace".into(), format!("projects/{}/traces/{trace}", resource.project).into());
            entry.insert("traceSampled".into(), true.into());
        }
        if let Some(span) = &request.span {
            entry.insert("spanId".into(), span.clone().into());
        }
        if let Some(instance) = instance {
            entry.insert("labels".into(), json!({ "instanceId": instance }));
        }
        self.push(entry);
    }

    /// `entries:list`: the entries of `projects` that match `filter`, ordered, one page.
    pub fn list(&self, request: &Value, int_enums: bool) -> Result<Value, ApiError> {
        let projects: Vec<String> = match request.get("resourceNames") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(names)) => names
                .iter()
                .map(|n| {
                    let n = n.as_str().ok_or_else(|| ApiError::invalid("resourceNames: must be strings"))?;
                    match n.strip_prefix("projects/") {
                        Some(p) if !p.is_empty() && !p.contains('/') => Ok(p.to_string()),
                        _ => Err(ApiError::invalid(format!(
                            "resourceNames: '{n}' is not a supported resource name (projects/PROJECT_ID)"
                        ))),
                    }
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(ApiError::invalid("resourceNames: must be an array of strings")),
        };
        let filter = match request.get("filter") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(f)) => parse_filter(f)?,
            Some(_) => return Err(ApiError::invalid("filter: must be a string")),
        };
        let descending = match request.get("orderBy").and_then(Value::as_str).map(str::trim) {
            None | Some("") | Some("timestamp asc") | Some("timestamp") => false,
            Some("timestamp desc") => true,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "orderBy: '{other}' is not supported (only 'timestamp asc' or 'timestamp desc')"
                )))
            }
        };
        let page_size = match request.get("pageSize") {
            None | Some(Value::Null) => 50,
            Some(v) => match v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
                Some(n) if n > 0 => n.min(1000) as usize,
                Some(0) => 50,
                _ => return Err(ApiError::invalid("pageSize: must be a positive integer")),
            },
        };
        let offset = match request.get("pageToken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            None => 0,
            Some(t) => t.parse::<usize>().map_err(|_| ApiError::invalid("pageToken: invalid page token"))?,
        };
        let mut matching: Vec<&Value> = self
            .entries
            .iter()
            .filter(|e| {
                projects.is_empty() || projects.iter().any(|p| e["resource"]["labels"]["project_id"] == p.as_str())
            })
            .filter(|e| filter.iter().all(|t| t.matches(e)))
            .collect();
        matching.sort_by(|a, b| {
            let (ta, tb) = (a["timestamp"].as_str().and_then(parse_time), b["timestamp"].as_str().and_then(parse_time));
            ta.cmp(&tb)
        });
        if descending {
            matching.reverse();
        }
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(page_size)
            .map(|e| {
                let mut e = (*e).clone();
                if int_enums {
                    if let Some(n) = e["severity"].as_str().and_then(severity_number) {
                        e["severity"] = n.into();
                    }
                }
                e
            })
            .collect();
        let mut response = json!({ "entries": page });
        if offset + page_size < matching.len() {
            response["nextPageToken"] = (offset + page_size).to_string().into();
        }
        Ok(response)
    }
}

fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// One comparison of a filter: `FIELD OP VALUE`.
#[derive(Debug, Clone, PartialEq)]
struct Term {
    field: String,
    op: &'static str,
    value: String,
    negated: bool,
}

/// Parses the subset of the Logging query language the emulator understands: comparisons
/// (`=`, `!=`, `>`, `>=`, `<`, `<=`, `:` for "has") joined by `AND` (or by plain juxtaposition),
/// each optionally preceded by `NOT` or `-`, values quoted or not. Anything else (`OR`,
/// parentheses, functions) is refused with 400 rather than misread.
fn parse_filter(filter: &str) -> Result<Vec<Term>, ApiError> {
    let tokens = tokenize(filter)?;
    let mut terms = Vec::new();
    let mut i = 0;
    let mut negated = false;
    while i < tokens.len() {
        let t = &tokens[i];
        if t == "AND" {
            i += 1;
            continue;
        }
        if t == "OR" || t == "(" || t == ")" {
            return Err(ApiError::invalid(format!("filter: '{t}' is not supported by the emulator; use AND")));
        }
        if t == "NOT" {
            negated = !negated;
            i += 1;
            continue;
        }
        // A term is `field op value`, possibly written without spaces.
        let (field, op, value, used) = split_term(&tokens[i..])
            .ok_or_else(|| ApiError::invalid(format!("filter: cannot parse the expression at '{t}'")))?;
        let (field, neg) = match field.strip_prefix('-') {
            Some(f) => (f.to_string(), !negated),
            None => (field, negated),
        };
        terms.push(Term { field, op, value, negated: neg });
        negated = false;
        i += used;
    }
    Ok(terms)
}

const OPS: [&str; 7] = [">=", "<=", "!=", "=", ">", "<", ":"];

fn split_term(tokens: &[String]) -> Option<(String, &'static str, String, usize)> {
    let first = tokens.first()?;
    // `field op value` in three tokens, `field op` `value`, or one token `field=value`.
    for op in OPS {
        if let Some(at) = first.find(op) {
            if first.starts_with('"') {
                break;
            }
            let field = first[..at].to_string();
            let rest = &first[at + op.len()..];
            if !rest.is_empty() {
                return Some((field, op, unquote(rest), 1));
            }
            let value = tokens.get(1)?;
            return Some((field, op, unquote(value), 2));
        }
    }
    let op = OPS.iter().find(|o| tokens.get(1).map(String::as_str) == Some(**o))?;
    let value = tokens.get(2)?;
    Some((first.clone(), op, unquote(value), 3))
}

fn unquote(text: &str) -> String {
    let t = text.trim();
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        t[1..t.len() - 1].replace("\\\"", "\"").replace("\\\\", "\\")
    } else {
        t.to_string()
    }
}

fn tokenize(text: &str) -> Result<Vec<String>, ApiError> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                current.push(c);
                loop {
                    match chars.next() {
                        Some('\\') => {
                            current.push('\\');
                            if let Some(n) = chars.next() {
                                current.push(n);
                            }
                        }
                        Some('"') => {
                            current.push('"');
                            break;
                        }
                        Some(n) => current.push(n),
                        None => return Err(ApiError::invalid("filter: unterminated string")),
                    }
                }
            }
            c if c.is_whitespace() => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            '(' | ')' => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
                tokens.push(c.to_string());
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    Ok(tokens)
}

impl Term {
    fn matches(&self, entry: &Value) -> bool {
        let is = self.matches_plain(entry);
        is != self.negated
    }

    fn matches_plain(&self, entry: &Value) -> bool {
        let mut at = entry;
        // A 2nd gen function's entries are its Cloud Run service's; the 1st gen label name
        // (`cloud_function` resources) is taken as the service's, so that either query works.
        let field = match self.field.as_str() {
            "resource.labels.function_name" => "resource.labels.service_name",
            other => other,
        };
        for part in field.split('.') {
            match at.get(part) {
                Some(v) => at = v,
                None => return self.op == "!=",
            }
        }
        let have = match at {
            Value::String(s) => s.clone(),
            Value::Null => return self.op == "!=",
            other => other.to_string(),
        };
        if self.field == "timestamp" || self.field == "receiveTimestamp" {
            let (Some(a), Some(b)) = (parse_time(&have), parse_time(&self.value)) else { return false };
            return compare(self.op, a.cmp(&b));
        }
        if self.field == "severity" {
            let (Some(a), Some(b)) = (severity_number(&have), severity_number(&self.value)) else { return false };
            return compare(self.op, a.cmp(&b));
        }
        if self.op == ":" {
            return have.to_lowercase().contains(&self.value.to_lowercase());
        }
        if let (Ok(a), Ok(b)) = (have.parse::<f64>(), self.value.parse::<f64>()) {
            return compare(self.op, a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Less));
        }
        compare(self.op, have.as_str().cmp(self.value.as_str()))
    }
}

fn compare(op: &str, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        "=" | ":" => ordering == Equal,
        "!=" => ordering != Equal,
        ">" => ordering == Greater,
        ">=" => ordering != Less,
        "<" => ordering == Less,
        "<=" => ordering != Greater,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource() -> Resource {
        Resource { project: "p".into(), location: "l".into(), service: "svc".into(), revision: "svc-00001-abc".into() }
    }

    #[test]
    fn lines_become_entries() {
        let mut store = Store::new(10);
        store.line(&resource(), "i1", Stream::Stdout, "plain");
        store.line(
            &resource(),
            "i1",
            Stream::Stdout,
            r#"{"message":"hi","severity":"warning","logging.googleapis.com/labels":{"k":"v"},"logging.googleapis.com/trace":"projects/p/traces/abc","extra":1}"#,
        );
        store.line(&resource(), "i1", Stream::Stderr, "oops");
        let all = store.list(&json!({}), false).unwrap();
        let entries = all["entries"].as_array().unwrap();
        assert_eq!(entries[0]["textPayload"], "plain");
        assert_eq!(entries[0]["severity"], "DEFAULT");
        assert_eq!(entries[1]["jsonPayload"], json!({"message": "hi", "extra": 1}));
        assert_eq!(entries[1]["severity"], "WARNING");
        assert_eq!(entries[1]["labels"]["k"], "v");
        assert_eq!(entries[1]["trace"], "projects/p/traces/abc");
        assert_eq!(entries[2]["severity"], "ERROR");
        assert_eq!(entries[2]["logName"], "projects/p/logs/run.googleapis.com%2Fstderr");
        let ints = store.list(&json!({"filter": "severity>=WARNING"}), true).unwrap();
        assert_eq!(ints["entries"].as_array().unwrap().len(), 2);
        assert_eq!(ints["entries"][0]["severity"], 400);
    }

    #[test]
    fn filters_order_and_pages() {
        let mut store = Store::new(3);
        for i in 0..4 {
            let mut r = resource();
            r.service = if i % 2 == 0 { "even".into() } else { "odd".into() };
            store.line(&r, "i", Stream::Stdout, &format!("line {i}"));
        }
        let odd = store
            .list(
                &json!({"filter": "resource.labels.service_name=\"odd\" AND timestamp>=\"2000-01-01T00:00:00Z\""}),
                false,
            )
            .unwrap();
        let texts: Vec<_> = odd["entries"].as_array().unwrap().iter().map(|e| e["textPayload"].clone()).collect();
        assert_eq!(texts, [json!("line 1"), json!("line 3")]);
        let page = store.list(&json!({"orderBy": "timestamp desc", "pageSize": 2}), false).unwrap();
        assert_eq!(page["entries"][0]["textPayload"], "line 3");
        assert_eq!(page["nextPageToken"], "2");
        let rest = store.list(&json!({"orderBy": "timestamp desc", "pageSize": 2, "pageToken": "2"}), false).unwrap();
        assert_eq!(rest["entries"].as_array().unwrap().len(), 1, "the oldest was dropped: only 3 kept");
        assert!(rest.get("nextPageToken").is_none());
        assert!(store.list(&json!({"filter": "a=1 OR b=2"}), false).is_err());
        assert!(store.list(&json!({"resourceNames": ["folders/1"]}), false).is_err());
        let none = store.list(&json!({"resourceNames": ["projects/other"]}), false).unwrap();
        assert_eq!(none["entries"], json!([]));
    }
}
