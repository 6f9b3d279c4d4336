//! Progress of long work (build, package, deploy, conformance) as an indicatif spinner on stderr.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner implementing [`faas_api::Progress`]: each step replaces the message. Hidden with
/// `--json` or when stderr is not a terminal, so scripts and logs stay clean.
///
/// ```
/// use faas_api::Progress;
/// let spinner = faas_cli::progress::Spinner::new(true); // hidden, as with --json
/// spinner.step("compiling");
/// spinner.finish();
/// ```
pub struct Spinner {
    bar: ProgressBar,
}

impl Spinner {
    /// A spinner; `hidden` (or a non-terminal stderr) draws nothing.
    pub fn new(hidden: bool) -> Spinner {
        let bar = if hidden || !std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
        } else {
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner:.cyan} [{elapsed}] {wide_msg}").expect("template"));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        };
        Spinner { bar }
    }

    /// Stops and clears the spinner.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Prints a line above the spinner (or plainly when it is hidden), on stderr.
    pub fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

impl faas_api::Progress for Spinner {
    fn step(&self, message: &str) {
        let line = message.lines().next().unwrap_or_default().trim();
        self.bar.set_message(line.to_string());
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
