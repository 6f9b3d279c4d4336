//! How a process ended, described in words: one table of signal names for every caller, in two
//! wordings (plain English for faas' own errors, Go's for emulators of Go-written platforms).

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// How a process ended: an exit code, a signal, or neither known.
///
/// ```
/// use std::os::unix::process::ExitStatusExt;
/// use faas_supervisor::{Exit, Wording};
///
/// let exit = Exit::from(std::process::ExitStatus::from_raw(9)); // killed by SIGKILL
/// assert_eq!(exit, Exit::Signal(9));
/// assert_eq!(exit.to_string(), "the process was killed by signal 9 (SIGKILL)");
/// assert_eq!(exit.describe(Wording::Go), "signal: killed");
/// assert_eq!(Exit::Code(3).describe(Wording::Go), "exit status 3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The process exited with this status.
    Code(i32),
    /// A signal ended the process.
    Signal(i32),
    /// The status could not be read (`wait` failed).
    Unknown,
}

/// Which words [`Exit::describe`] uses.
///
/// ```
/// use faas_supervisor::{Exit, Wording};
/// assert_eq!(Exit::Code(1).describe(Wording::Plain), "the process exited with status 1");
/// assert_eq!(Exit::Signal(11).describe(Wording::Go), "signal: segmentation fault");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wording {
    /// `the process exited with status 1`, `the process was killed by signal 11 (SIGSEGV)`.
    Plain,
    /// Go's `os.ProcessState` strings, as the Lambda Runtime Interface Emulator prints them:
    /// `exit status 1`, `signal: segmentation fault`.
    Go,
}

/// Signal numbers with their C name and Go's description (`syscall.Signal.String`).
const SIGNALS: [(i32, &str, &str); 18] = [
    (libc::SIGHUP, "SIGHUP", "hangup"),
    (libc::SIGINT, "SIGINT", "interrupt"),
    (libc::SIGQUIT, "SIGQUIT", "quit"),
    (libc::SIGILL, "SIGILL", "illegal instruction"),
    (libc::SIGTRAP, "SIGTRAP", "trace/breakpoint trap"),
    (libc::SIGABRT, "SIGABRT", "aborted"),
    (libc::SIGBUS, "SIGBUS", "bus error"),
    (libc::SIGFPE, "SIGFPE", "floating point exception"),
    (libc::SIGKILL, "SIGKILL", "killed"),
    (libc::SIGUSR1, "SIGUSR1", "user defined signal 1"),
    (libc::SIGSEGV, "SIGSEGV", "segmentation fault"),
    (libc::SIGUSR2, "SIGUSR2", "user defined signal 2"),
    (libc::SIGPIPE, "SIGPIPE", "broken pipe"),
    (libc::SIGALRM, "SIGALRM", "alarm clock"),
    (libc::SIGTERM, "SIGTERM", "terminated"),
    (libc::SIGXCPU, "SIGXCPU", "CPU time limit exceeded"),
    (libc::SIGXFSZ, "SIGXFSZ", "file size limit exceeded"),
    (libc::SIGSYS, "SIGSYS", "bad system call"),
];

/// The C name of a signal (`SIGKILL`), when it is one of the common ones.
///
/// ```
/// assert_eq!(faas_supervisor::signal_name(libc::SIGSEGV), Some("SIGSEGV"));
/// assert_eq!(faas_supervisor::signal_name(64), None);
/// ```
pub fn signal_name(signal: i32) -> Option<&'static str> {
    SIGNALS.iter().find(|(n, ..)| *n == signal).map(|(_, name, _)| *name)
}

impl Exit {
    /// The description in the given wording.
    ///
    /// ```
    /// use faas_supervisor::{Exit, Wording};
    /// assert_eq!(Exit::Signal(64).describe(Wording::Plain), "the process was killed by signal 64");
    /// assert_eq!(Exit::Signal(64).describe(Wording::Go), "signal: 64");
    /// assert_eq!(Exit::Unknown.describe(Wording::Go), "exit status unknown");
    /// assert_eq!(Exit::Unknown.describe(Wording::Plain), "the process ended");
    /// ```
    pub fn describe(&self, wording: Wording) -> String {
        let known = |sig: i32| SIGNALS.iter().find(|(n, ..)| *n == sig);
        match (wording, *self) {
            (Wording::Plain, Exit::Code(code)) => format!("the process exited with status {code}"),
            (Wording::Plain, Exit::Signal(sig)) => match known(sig) {
                Some((_, name, _)) => format!("the process was killed by signal {sig} ({name})"),
                None => format!("the process was killed by signal {sig}"),
            },
            (Wording::Plain, Exit::Unknown) => "the process ended".into(),
            (Wording::Go, Exit::Code(code)) => format!("exit status {code}"),
            (Wording::Go, Exit::Signal(sig)) => match known(sig) {
                Some((_, _, words)) => format!("signal: {words}"),
                None => format!("signal: {sig}"),
            },
            (Wording::Go, Exit::Unknown) => "exit status unknown".into(),
        }
    }

    /// Whether the process exited with status 0.
    ///
    /// ```
    /// assert!(faas_supervisor::Exit::Code(0).success());
    /// assert!(!faas_supervisor::Exit::Signal(9).success());
    /// ```
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }
}

impl From<ExitStatus> for Exit {
    fn from(status: ExitStatus) -> Exit {
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            _ => Exit::Unknown,
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(Wording::Plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wording_of_the_signals_the_callers_named_before() {
        for (sig, plain, go) in [
            (libc::SIGABRT, "SIGABRT", "aborted"),
            (libc::SIGKILL, "SIGKILL", "killed"),
            (libc::SIGSEGV, "SIGSEGV", "segmentation fault"),
            (libc::SIGTERM, "SIGTERM", "terminated"),
            (libc::SIGBUS, "SIGBUS", "bus error"),
        ] {
            assert_eq!(Exit::Signal(sig).to_string(), format!("the process was killed by signal {sig} ({plain})"));
            assert_eq!(Exit::Signal(sig).describe(Wording::Go), format!("signal: {go}"));
        }
        assert_eq!(Exit::from(ExitStatus::from_raw(3 << 8)), Exit::Code(3));
    }
}
