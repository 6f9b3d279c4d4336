//! Log lines of the `faas` command are coloured only on a terminal: stderr to a pipe or a file (CI
//! logs, `2> file`) carries no ANSI escapes, and `NO_COLOR` (any non-empty value) turns colour off
//! on a terminal too. The terminal is a real pseudo-terminal (util-linux `script`).

mod common;

use common::*;

const ESC: &str = "\x1b[";
/// A debug line `faas list` logs before it finds no dev server.
const LOG_LINE: &str = "connecting to the dev server";

#[test]
fn log_lines_on_a_pipe_carry_no_colour() {
    let tmp = tempfile::tempdir().unwrap();
    let o = faas_cmd(tmp.path(), &["list"]).env("FAAS_LOG", "debug").env_remove("NO_COLOR").output().unwrap();
    let err = stderr(&o);
    let line = err.lines().find(|l| l.contains(LOG_LINE)).unwrap_or_else(|| panic!("no log line:\n{err}"));
    assert!(!err.contains(ESC), "escapes in piped stderr: {line:?}");
}

#[test]
fn log_lines_on_a_terminal_are_coloured_unless_no_color_is_set() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |no_color: Option<&str>| {
        let mut cmd = script_cmd(tmp.path());
        cmd.env("FAAS_LOG", "debug");
        match no_color {
            Some(v) => cmd.env("NO_COLOR", v),
            None => cmd.env_remove("NO_COLOR"),
        };
        let (out, _) = on_terminal(cmd, faas_bin(), &["list"]);
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(text.contains(LOG_LINE), "no log line:\n{text}");
        text
    };
    assert!(run(None).contains(ESC), "a terminal gets colour");
    assert!(run(Some("")).contains(ESC), "an empty NO_COLOR does not count");
    let text = run(Some("1"));
    assert!(!text.contains(ESC), "NO_COLOR=1: {text:?}");
}
