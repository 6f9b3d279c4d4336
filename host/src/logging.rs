//! The tracing subscriber every host installs before serving, so `tracing` events of the app and
//! of faas reach the place the platform reads logs from.
//!
//! Every platform faas serves captures a function's standard error (Lambda sends it to
//! CloudWatch Logs, the local pool attributes it to the invocation, Azure logs each stderr line
//! as an error, Cloud Run and OpenWhisk collect it), so events go to stderr, one line each, in
//! the [`LogStyle`] the host asks for. Which events are written is decided by directives such as
//! `info` or `info,hyper=warn,my_app=debug` ([`tracing_subscriber::filter::Targets`] syntax).
//!
//! ```
//! use faas_host::logging::{self, LogStyle};
//! assert_eq!(logging::filter(Some("debug,hyper=warn")).to_string(), "hyper=warn,debug");
//! // Unreadable directives fall back to `info`.
//! assert_eq!(logging::filter(Some("=== nonsense")).to_string(), "info");
//! assert!(logging::install(LogStyle::Plain, None)); // the first subscriber wins
//! assert!(!logging::install(LogStyle::Json, None));
//! tracing::info!("written to stderr without colour");
//! ```

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    /// Human-readable, coloured when stderr is a terminal (and `NO_COLOR` is not set).
    Terminal,
    /// Human-readable, never coloured (stderr captured by a platform).
    Plain,
    /// One JSON object per line (platforms that parse structured logs).
    Json,
}

/// The filter for `directives` (e.g. the value of `RUST_LOG`); `None` or unreadable directives
/// mean `info`.
///
/// ```
/// use tracing_subscriber::filter::LevelFilter;
/// assert_eq!(faas_host::logging::filter(None).default_level(), Some(LevelFilter::INFO));
/// assert_eq!(faas_host::logging::filter(Some("warn")).default_level(), Some(LevelFilter::WARN));
/// ```
pub fn filter(directives: Option<&str>) -> Targets {
    directives
        .and_then(|d| d.trim().parse::<Targets>().ok())
        .filter(|t| t.default_level().is_some() || t.iter().next().is_some())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// Installs the process-wide subscriber writing to stderr in `style`, filtered by `directives`
/// (see [`filter`]). Returns `false` when a subscriber was already installed (the app's own, or
/// an earlier call), which is then left in place.
///
/// ```
/// // A second call keeps the first subscriber.
/// faas_host::logging::install(faas_host::logging::LogStyle::Plain, Some("info"));
/// assert!(!faas_host::logging::install(faas_host::logging::LogStyle::Terminal, Some("debug")));
/// ```
pub fn install(style: LogStyle, directives: Option<&str>) -> bool {
    let filter = filter(directives);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match style {
        LogStyle::Terminal => {
            let colour = faas_api::terminal::use_colour(std::io::IsTerminal::is_terminal(&std::io::stderr()));
            registry.with(fmt.with_ansi(colour)).try_init().is_ok()
        }
        LogStyle::Plain => registry.with(fmt.with_ansi(false)).try_init().is_ok(),
        LogStyle::Json => registry.with(fmt.json().with_ansi(false)).try_init().is_ok(),
    }
}
