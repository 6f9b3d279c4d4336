//! Logs as Cloud Logging reads them from a Cloud Run container: one JSON object per line on
//! stdout, with `severity` and `message`, the invocation's `execution_id` label and the
//! request's trace (`logging.googleapis.com/labels`, `logging.googleapis.com/trace` as
//! `projects/{project}/traces/{trace id}`: Cloud Logging's "special JSON fields" of structured
//! logging), so each line is attributed to the request that wrote it.
//!
//! ```
//! use faas_api::{Level, LogSink};
//! use faas_runner_gcf::host::logs::{line, CloudLoggingSink};
//! let v: serde_json::Value = serde_json::from_str(&line(Level::Warn, "low on disk", Some("exec-1"), None)).unwrap();
//! assert_eq!(v["severity"], "WARNING");
//! assert_eq!(v["logging.googleapis.com/labels"]["execution_id"], "exec-1");
//!
//! let sink = CloudLoggingSink::new(Some("my-project".into()));
//! sink.begin("exec-2", Some("4bf92f3577b34da6a3ce929d0e0e4736"));
//! assert_eq!(sink.trace_of("exec-2").unwrap(), "projects/my-project/traces/4bf92f3577b34da6a3ce929d0e0e4736");
//! sink.end("exec-2");
//! assert_eq!(sink.trace_of("exec-2"), None);
//! ```

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Mutex;

use faas_api::{Level, LogSink};
use serde_json::{json, Map, Value};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

const LABELS: &str = "logging.googleapis.com/labels";
const TRACE: &str = "logging.googleapis.com/trace";

fn severity(level: Level) -> &'static str {
    match level {
        Level::Info => "INFO",
        Level::Warn => "WARNING",
        Level::Error => "ERROR",
    }
}

/// One log line (without the newline).
pub fn line(level: Level, message: &str, execution_id: Option<&str>, trace: Option<&str>) -> String {
    let mut entry = Map::new();
    entry.insert("severity".into(), json!(severity(level)));
    entry.insert("message".into(), json!(message));
    if let Some(id) = execution_id {
        entry.insert(LABELS.into(), json!({ "execution_id": id }));
    }
    if let Some(trace) = trace {
        entry.insert(TRACE.into(), json!(trace));
    }
    Value::Object(entry).to_string()
}

/// The [`LogSink`] of `cx.logger()`: JSON lines on stdout, with the trace of the request each
/// invocation belongs to (the protocol registers it with [`CloudLoggingSink::begin`]).
#[derive(Debug, Default)]
pub struct CloudLoggingSink {
    project: Option<String>,
    traces: Mutex<HashMap<String, String>>,
}

impl CloudLoggingSink {
    /// A sink for `project` (without one, lines carry no trace field: it names the project).
    pub fn new(project: Option<String>) -> CloudLoggingSink {
        CloudLoggingSink { project, traces: Mutex::new(HashMap::new()) }
    }

    /// Invocation `execution_id` has begun, in the trace `trace_id` if there is one.
    pub fn begin(&self, execution_id: &str, trace_id: Option<&str>) {
        if let (Some(project), Some(trace)) = (&self.project, trace_id) {
            let field = format!("projects/{project}/traces/{trace}");
            self.traces.lock().expect("traces").insert(execution_id.to_string(), field);
        }
    }

    /// Invocation `execution_id` has ended.
    pub fn end(&self, execution_id: &str) {
        self.traces.lock().expect("traces").remove(execution_id);
    }

    /// The trace field of invocation `execution_id`'s lines.
    pub fn trace_of(&self, execution_id: &str) -> Option<String> {
        self.traces.lock().expect("traces").get(execution_id).cloned()
    }
}

impl LogSink for CloudLoggingSink {
    fn write(&self, invocation_id: &str, level: Level, message: &str) {
        let trace = self.trace_of(invocation_id);
        let text = line(level, message, Some(invocation_id).filter(|i| !i.is_empty()), trace.as_deref());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// The host's own `tracing` events, formatted as Cloud Logging JSON lines.
struct CloudFormat;

#[derive(Default)]
struct Fields(Map<String, Value>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_string(), json!(value));
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), json!(format!("{value:?}")));
    }
}

impl<S, N> FormatEvent<S, N> for CloudFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut entry = Map::new();
        let level = *event.metadata().level();
        let severity = match level {
            tracing::Level::ERROR => "ERROR",
            tracing::Level::WARN => "WARNING",
            tracing::Level::INFO => "INFO",
            _ => "DEBUG",
        };
        entry.insert("severity".into(), json!(severity));
        entry.insert("message".into(), fields.0.remove("message").unwrap_or_else(|| json!("")));
        entry.insert("target".into(), json!(event.metadata().target()));
        if !fields.0.is_empty() {
            entry.insert("fields".into(), Value::Object(fields.0));
        }
        writeln!(writer, "{}", Value::Object(entry))
    }
}

/// Installs the host's subscriber: `RUST_LOG` directives (default `info`), JSON lines on stdout.
/// `false` when one was installed already.
pub fn install(directives: Option<&str>) -> bool {
    let layer = tracing_subscriber::fmt::layer().event_format(CloudFormat).with_writer(std::io::stdout);
    tracing_subscriber::registry().with(faas_host::logging::filter(directives)).with(layer).try_init().is_ok()
}
