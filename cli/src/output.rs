//! How commands print: human text, or one JSON document with `--json`; errors with a hint.

use std::io::{IsTerminal, Write};

use faas_api::{ConfigError, Error, ErrorKind};
use serde_json::{json, Map, Value};

/// Exit code of a successful command.
pub const EXIT_OK: i32 = 0;
/// Exit code of a command that failed.
pub const EXIT_ERROR: i32 = 1;
/// Exit code of a command line that could not be parsed.
pub const EXIT_USAGE: i32 = 2;

/// Why a command failed: a portable error plus, where we know what to do about it, a hint.
///
/// ```
/// use faas_cli::output::Failure;
/// let f = Failure::from(faas_api::Error::not_found("no function named `x`")).with_hint("run `faas list`");
/// assert_eq!(f.hint.as_deref(), Some("run `faas list`"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub error: Error,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl Failure {
    /// Adds (or replaces) the hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure { error, hint: None }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Failure {
        Failure { error: e.into(), hint: None }
    }
}

/// The result of a command.
pub type CliResult<T = ()> = Result<T, Failure>;

/// Where and how a command prints.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    /// Human output, or JSON when `json` is set.
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    /// Whether `--json` was given.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints a success document: `{"ok":true, ...fields}` (pretty) with `--json`; nothing otherwise.
    pub fn json_ok(&self, fields: Value) {
        if !self.json {
            return;
        }
        let mut doc = Map::new();
        doc.insert("ok".into(), Value::Bool(true));
        if let Value::Object(m) = fields {
            doc.extend(m);
        }
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&Value::Object(doc)).expect("JSON value")));
    }

    /// Prints one compact JSON line (for streams of events, as `faas dev --json` prints).
    pub fn json_line(&self, fields: Value) {
        if self.json {
            print_stdout(&format!("{fields}\n"));
        }
    }

    /// Prints a line of human output on stdout (nothing with `--json`).
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.json {
            print_stdout(&format!("{}\n", text.as_ref()));
        }
    }

    /// Prints a note on stderr (nothing with `--json`).
    pub fn note(&self, text: impl AsRef<str>) {
        if !self.json {
            eprintln!("{}", text.as_ref());
        }
    }

    /// Prints a failure: `error: <kind>: <message>` and `hint: ...` on stderr, or
    /// `{"ok":false,"error":{...},"hint":...}` on stdout with `--json`.
    pub fn failure(&self, failure: &Failure) {
        if self.json {
            print_stdout(&format!("{}\n", failure_json(failure)));
        } else {
            eprintln!("{}", render_failure(failure));
        }
    }
}

/// The JSON form of a failure.
///
/// ```
/// use faas_cli::output::{failure_json, Failure};
/// let v = failure_json(&Failure::from(faas_api::Error::timeout("too slow")));
/// assert_eq!(v["ok"], false);
/// assert_eq!(v["error"]["kind"], "timeout");
/// assert_eq!(v["error"]["errorMessage"], "too slow");
/// ```
pub fn failure_json(failure: &Failure) -> Value {
    let error: Value = serde_json::from_slice(&failure.error.to_json()).expect("error JSON");
    let mut doc = json!({ "ok": false, "error": error });
    if let Some(h) = &failure.hint {
        doc["hint"] = Value::String(h.clone());
    }
    doc
}

/// The human form of a failure: `error: <kind>: <message>` (function errors also show their
/// type), then `hint: ...` when there is one.
///
/// ```
/// use faas_cli::output::{render_failure, Failure};
/// let text = render_failure(&Failure::from(faas_api::Error::function("ProbeError", "boom")));
/// assert_eq!(text, "error: function: ProbeError: boom");
/// ```
pub fn render_failure(failure: &Failure) -> String {
    let e = &failure.error;
    let mut text = if e.kind() == ErrorKind::Function {
        format!("error: {}: {}: {}", e.kind(), e.error_type(), e.message())
    } else {
        format!("error: {}: {}", e.kind(), e.message())
    };
    if let Some(h) = &failure.hint {
        text.push_str("\nhint: ");
        text.push_str(h);
    }
    text
}

/// Writes to stdout, ignoring a closed pipe (`faas list | head`).
pub fn print_stdout(text: &str) {
    write_stdout(text.as_bytes());
}

/// Writes raw bytes to stdout, ignoring a closed pipe.
pub fn write_stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|_| out.flush());
}

/// Whether stdout is a terminal.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}
