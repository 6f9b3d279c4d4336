//! Whether output to a stream may carry colour: the one decision every faas binary (the `faas`
//! command, an app's local HTTP host, the gateway, the Lambda emulator) makes for its log lines.

/// Whether to colour output to a stream: only when the stream is a terminal, and never when
/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>). Log lines written to a file or
/// a pipe (CI logs, `2> file`) stay free of ANSI escapes.
///
/// ```
/// use std::io::IsTerminal;
/// let ansi = faas_api::terminal::use_colour(std::io::stderr().is_terminal());
/// assert!(!faas_api::terminal::use_colour(false), "never on a file or a pipe");
/// # let _ = ansi;
/// ```
pub fn use_colour(stream_is_terminal: bool) -> bool {
    use_colour_with(stream_is_terminal, std::env::var_os("NO_COLOR").as_deref())
}

/// [`use_colour`] with the value of `NO_COLOR` passed in.
///
/// ```
/// use faas_api::terminal::use_colour_with;
/// assert!(use_colour_with(true, None));
/// assert!(use_colour_with(true, Some("".as_ref())), "an empty NO_COLOR does not count");
/// assert!(!use_colour_with(true, Some("1".as_ref())));
/// assert!(!use_colour_with(false, None));
/// ```
pub fn use_colour_with(stream_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stream_is_terminal && no_color.is_none_or(|v| v.is_empty())
}
