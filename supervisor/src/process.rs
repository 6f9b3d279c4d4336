//! Starting an instance's process and ending it: a cleared environment, resource limits, its own
//! process group (so killing it kills everything it started), readiness, and its exit.

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::process::ChildStdin;
use tokio::sync::watch;

use crate::exit::Exit;
use crate::logs::{FileCapture, FileLog, LineCapture, LineLog};

/// The variables [`ProcessSpec::inherit_base`] copies from our environment when they are set:
/// what a program needs to find programs, a home and a temporary directory, and to format text
/// and times. Nothing that names a platform, a credential or a port.
///
/// ```
/// assert_eq!(faas_supervisor::BASE_ENV, ["PATH", "HOME", "TMPDIR", "LANG", "TZ"]);
/// ```
pub const BASE_ENV: [&str; 5] = ["PATH", "HOME", "TMPDIR", "LANG", "TZ"];

/// A resource limit set in the child before it runs (`setrlimit(2)`, soft and hard).
///
/// ```
/// use faas_supervisor::{Limit, ProcessSpec};
/// let spec = ProcessSpec::new("/bin/true").limit(Limit::Data, 64 << 20).limit(Limit::OpenFiles, 256);
/// # drop(spec);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Bytes of data segment and heap (`RLIMIT_DATA`): how a memory size is applied.
    Data,
    /// Bytes of virtual address space (`RLIMIT_AS`).
    AddressSpace,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    OpenFiles,
    /// Seconds of CPU time (`RLIMIT_CPU`).
    CpuSeconds,
    /// Bytes of the largest file the process may write (`RLIMIT_FSIZE`).
    FileSize,
}

impl Limit {
    fn resource(self) -> libc::__rlimit_resource_t {
        match self {
            Limit::Data => libc::RLIMIT_DATA,
            Limit::AddressSpace => libc::RLIMIT_AS,
            Limit::OpenFiles => libc::RLIMIT_NOFILE,
            Limit::CpuSeconds => libc::RLIMIT_CPU,
            Limit::FileSize => libc::RLIMIT_FSIZE,
        }
    }
}

/// The child's standard input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Input {
    /// `/dev/null`.
    #[default]
    Null,
    /// A pipe kept open by the [`Process`] ([`Process::stdin`]); it closes when the `Process` is
    /// dropped, which lets a child that watches its stdin exit on its own.
    Pipe,
}

/// Where the child's stdout and stderr go.
#[derive(Debug, Clone, Default)]
pub enum Output {
    /// `/dev/null`.
    #[default]
    Null,
    /// Read line by line ([`Process::lines`]).
    Lines(LineCapture),
    /// Appended to a file ([`Process::output_file`]).
    File(FileCapture),
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The program could not be executed (missing, not executable, a limit could not be set).
    #[error("cannot start {}: {source}", program.display())]
    Start {
        /// The program.
        program: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The output file could not be opened.
    #[error("cannot open the output file {}: {source}", path.display())]
    OutputFile {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

impl SpawnError {
    /// What the OS said.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let err = faas_supervisor::ProcessSpec::new("/nonexistent/bootstrap").spawn().unwrap_err();
    /// assert_eq!(err.io().kind(), std::io::ErrorKind::NotFound);
    /// assert!(err.to_string().starts_with("cannot start /nonexistent/bootstrap: "), "{err}");
    /// # }
    /// ```
    pub fn io(&self) -> &std::io::Error {
        match self {
            SpawnError::Start { source, .. } | SpawnError::OutputFile { source, .. } => source,
        }
    }

    /// What the OS said, owned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let err = faas_supervisor::ProcessSpec::new("/nonexistent/bootstrap").spawn().unwrap_err();
    /// assert_eq!(err.into_io().kind(), std::io::ErrorKind::NotFound);
    /// # }
    /// ```
    pub fn into_io(self) -> std::io::Error {
        match self {
            SpawnError::Start { source, .. } | SpawnError::OutputFile { source, .. } => source,
        }
    }
}

/// Why [`Process::ready`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The process ended before the check succeeded.
    #[error("{0}")]
    Exited(Exit),
    /// The check did not succeed within this time; the process is still running.
    #[error("not ready within {0:?}")]
    TimedOut(Duration),
}

/// What to start: the program, its arguments and directory, the whole environment it gets, its
/// limits and its standard streams. The environment starts empty: the child sees only what is
/// set here (and, with [`ProcessSpec::inherit_base`], [`BASE_ENV`]), so a variable of ours, such
/// as a platform's `AWS_LAMBDA_RUNTIME_API` or `PORT`, never leaks into it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use faas_supervisor::{LineCapture, Output, ProcessSpec};
///
/// let spec = ProcessSpec::new("/bin/sh")
///     .args(["-c", "echo \"$GREETING ${HOME:+with a home}\""])
///     .inherit_base()
///     .env("GREETING", "hi")
///     .output(Output::Lines(LineCapture::default()));
/// let mut process = spec.spawn().unwrap();
/// let lines = process.lines().unwrap().until_closed(Duration::from_secs(5)).await;
/// # let expected = if std::env::var_os("HOME").is_some() { "hi with a home" } else { "hi " };
/// assert_eq!(lines, [expected]);
/// assert!(process.wait().await.success());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    program: PathBuf,
    args: Vec<OsString>,
    dir: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    limits: Vec<(Limit, u64)>,
    input: Input,
    output: Output,
}

impl ProcessSpec {
    /// Runs `program` with no arguments, no environment, stdin and output on `/dev/null`.
    pub fn new(program: impl Into<PathBuf>) -> ProcessSpec {
        ProcessSpec {
            program: program.into(),
            args: Vec::new(),
            dir: None,
            env: Vec::new(),
            limits: Vec::new(),
            input: Input::Null,
            output: Output::Null,
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> ProcessSpec {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> ProcessSpec
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The working directory (default: ours).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> ProcessSpec {
        self.dir = Some(dir.into());
        self
    }

    /// Sets a variable (a later value for the same name wins).
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> ProcessSpec {
        self.env.push((name.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Sets variables.
    pub fn envs<I, K, V>(mut self, vars: I) -> ProcessSpec
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.env.extend(vars.into_iter().map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())));
        self
    }

    /// Copies our value of `name`, when we have one.
    ///
    /// ```
    /// let spec = faas_supervisor::ProcessSpec::new("/bin/true").inherit("SURELY_NOT_SET_ANYWHERE");
    /// assert!(spec.get_env("SURELY_NOT_SET_ANYWHERE").is_none());
    /// ```
    pub fn inherit(self, name: &str) -> ProcessSpec {
        match std::env::var_os(name) {
            Some(value) => self.env(name, value),
            None => self,
        }
    }

    /// Copies our values of [`BASE_ENV`] that are set.
    pub fn inherit_base(self) -> ProcessSpec {
        BASE_ENV.iter().fold(self, |spec, name| spec.inherit(name))
    }

    /// The value `name` will have in the child, if any.
    ///
    /// ```
    /// let spec = faas_supervisor::ProcessSpec::new("/bin/true").env("A", "1").env("A", "2");
    /// assert_eq!(spec.get_env("A").unwrap(), "2");
    /// ```
    pub fn get_env(&self, name: &str) -> Option<&OsStr> {
        self.env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_os_str())
    }

    /// Sets a resource limit.
    pub fn limit(mut self, limit: Limit, value: u64) -> ProcessSpec {
        self.limits.push((limit, value));
        self
    }

    /// Sets the standard input.
    pub fn input(mut self, input: Input) -> ProcessSpec {
        self.input = input;
        self
    }

    /// Sets where stdout and stderr go.
    pub fn output(mut self, output: Output) -> ProcessSpec {
        self.output = output;
        self
    }

    /// Starts the process in a new process group of its own. Needs a tokio runtime (a task reaps
    /// the process and records its [`Exit`]).
    pub fn spawn(self) -> Result<Process, SpawnError> {
        let mut command = tokio::process::Command::new(&self.program);
        command.args(&self.args).env_clear().envs(self.env.iter().map(|(k, v)| (k, v))).process_group(0);
        command.kill_on_drop(true);
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command.stdin(match self.input {
            Input::Null => Stdio::null(),
            Input::Pipe => Stdio::piped(),
        });
        let output_file = |capture: &FileCapture| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&capture.path)
                .map_err(|source| SpawnError::OutputFile { path: capture.path.clone(), source })
        };
        match &self.output {
            Output::Null => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
            Output::Lines(_) => {
                command.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
            Output::File(capture) => {
                let file = output_file(capture)?;
                let copy =
                    file.try_clone().map_err(|source| SpawnError::OutputFile { path: capture.path.clone(), source })?;
                command.stdout(Stdio::from(copy)).stderr(Stdio::from(file));
            }
        }
        if !self.limits.is_empty() {
            let limits: Vec<(libc::__rlimit_resource_t, libc::rlim_t)> =
                self.limits.iter().map(|(l, v)| (l.resource(), *v as libc::rlim_t)).collect();
            // SAFETY: the closure runs in the child between fork and exec; it only calls
            // setrlimit(2), which is async-signal-safe, on memory allocated before the fork.
            unsafe {
                command.pre_exec(move || {
                    for (resource, value) in &limits {
                        let lim = libc::rlimit { rlim_cur: *value, rlim_max: *value };
                        if libc::setrlimit(*resource, &lim) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let mut child =
            command.spawn().map_err(|source| SpawnError::Start { program: self.program.clone(), source })?;
        let pid = child.id().unwrap_or(0);
        let stdin = child.stdin.take();
        let (lines, file) = match self.output {
            Output::Null => (None, None),
            Output::Lines(capture) => match (child.stdout.take(), child.stderr.take()) {
                (Some(out), Some(err)) => (Some(LineLog::start(out, err, capture)), None),
                _ => (None, None),
            },
            Output::File(capture) => (None, Some(FileLog::new(capture))),
        };
        let (exit_tx, exit_rx) = watch::channel(None);
        let group_killed = std::sync::Arc::new(AtomicBool::new(false));
        let waiter_killed = group_killed.clone();
        tokio::spawn(async move {
            let exit = match child.wait().await {
                Ok(status) => Exit::from(status),
                Err(e) => {
                    tracing::warn!(pid, error = %e, "waiting for a process failed");
                    Exit::Unknown
                }
            };
            // What the process started dies with it. The group id stays reserved while any member
            // lives, so this cannot reach another process group.
            if !waiter_killed.swap(true, Ordering::SeqCst) {
                kill_group(pid);
            }
            tracing::debug!(pid, %exit, "process ended");
            let _ = exit_tx.send(Some(exit));
        });
        tracing::debug!(pid, program = %self.program.display(), "process started");
        Ok(Process { pid, exit: exit_rx, stdin, lines, file, group_killed, started: Instant::now() })
    }
}

fn kill_group(pid: u32) {
    if pid > 0 {
        // SAFETY: kill(2) with a negative pid signals the process group the child leads
        // (process_group(0) made its pid the group id); no memory is involved.
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
    }
}

/// A running (or ended) process, the leader of its own process group. Dropping it kills the
/// whole group.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use faas_supervisor::{Exit, ProcessSpec};
///
/// let process = ProcessSpec::new("/bin/sh").args(["-c", "sleep 30"]).spawn().unwrap();
/// assert!(process.is_running());
/// assert_eq!(process.kill_and_wait().await, Exit::Signal(libc::SIGKILL));
/// assert!(!process.is_running());
/// # }
/// ```
#[derive(Debug)]
pub struct Process {
    pid: u32,
    exit: watch::Receiver<Option<Exit>>,
    stdin: Option<ChildStdin>,
    lines: Option<LineLog>,
    file: Option<FileLog>,
    group_killed: std::sync::Arc<AtomicBool>,
    started: Instant,
}

impl Process {
    /// The process id (also its process group id).
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// When it was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// How it ended, once it has.
    pub fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Whether it has not ended yet.
    pub fn is_running(&self) -> bool {
        self.exit().is_none()
    }

    /// A handle that waits for the end, usable from another task.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let process = faas_supervisor::ProcessSpec::new("/bin/sh").args(["-c", "exit 4"]).spawn().unwrap();
    /// let mut watch = process.watch_exit();
    /// let ended = tokio::spawn(async move { watch.wait().await });
    /// assert_eq!(ended.await.unwrap(), faas_supervisor::Exit::Code(4));
    /// # }
    /// ```
    pub fn watch_exit(&self) -> ExitWatch {
        ExitWatch(self.exit.clone())
    }

    /// Waits for the end.
    pub async fn wait(&self) -> Exit {
        self.watch_exit().wait().await
    }

    /// Waits for the end, for at most `limit`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// let process = faas_supervisor::ProcessSpec::new("/bin/sh").args(["-c", "sleep 30"]).spawn().unwrap();
    /// assert_eq!(process.wait_timeout(Duration::from_millis(20)).await, None);
    /// # }
    /// ```
    pub async fn wait_timeout(&self, limit: Duration) -> Option<Exit> {
        tokio::time::timeout(limit, self.wait()).await.ok()
    }

    /// Sends SIGKILL to the whole process group: the process and everything it started that
    /// did not leave the group. Does nothing once the group has been killed.
    pub fn kill(&self) {
        if !self.group_killed.swap(true, Ordering::SeqCst) {
            kill_group(self.pid);
            tracing::debug!(pid = self.pid, "killed a process group");
        }
    }

    /// [`Process::kill`], then waits for the end.
    pub async fn kill_and_wait(&self) -> Exit {
        self.kill();
        self.wait().await
    }

    /// Waits until `check` answers `Some` (the process is ready), polling with a short back-off
    /// (200 µs doubling to 10 ms). Gives up when the process ends or `timeout` passes; the
    /// process is left running then, for the caller to kill.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use faas_supervisor::{Exit, NotReady, ProcessSpec};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let flag = dir.path().join("ready");
    /// let script = format!("sleep 0.05; touch '{}'; sleep 30", flag.display());
    /// let process = ProcessSpec::new("/bin/sh").args(["-c", &script]).inherit_base().spawn().unwrap();
    /// let check = || async { flag.exists().then_some(()) };
    /// assert_eq!(process.ready(Duration::from_secs(5), check).await, Ok(()));
    ///
    /// let quitter = ProcessSpec::new("/bin/sh").args(["-c", "exit 2"]).spawn().unwrap();
    /// let never = || async { None::<()> };
    /// assert_eq!(quitter.ready(Duration::from_secs(5), never).await, Err(NotReady::Exited(Exit::Code(2))));
    /// # }
    /// ```
    pub async fn ready<T, F, Fut>(&self, timeout: Duration, mut check: F) -> Result<T, NotReady>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let started = Instant::now();
        let mut pause = Duration::from_micros(200);
        loop {
            if let Some(exit) = self.exit() {
                return Err(NotReady::Exited(exit));
            }
            if let Some(ready) = check().await {
                return Ok(ready);
            }
            if started.elapsed() > timeout {
                return Err(NotReady::TimedOut(timeout));
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                exit = self.wait() => return Err(NotReady::Exited(exit)),
            }
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// The stdin pipe, with [`Input::Pipe`].
    pub fn stdin(&mut self) -> Option<&mut ChildStdin> {
        self.stdin.as_mut()
    }

    /// The captured lines, with [`Output::Lines`].
    pub fn lines(&mut self) -> Option<&mut LineLog> {
        self.lines.as_mut()
    }

    /// The output file, with [`Output::File`].
    pub fn output_file(&self) -> Option<&FileLog> {
        self.file.as_ref()
    }

    /// Peak resident memory so far, in KiB (`VmHWM` of `/proc/<pid>/status`); `None` once the
    /// process has ended or where `/proc` does not tell.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let process = faas_supervisor::ProcessSpec::new("/bin/sh").args(["-c", "sleep 30"]).spawn().unwrap();
    /// assert!(process.peak_memory_kib().unwrap() > 0);
    /// # }
    /// ```
    pub fn peak_memory_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits for a [`Process`] to end, from any task ([`Process::watch_exit`]).
#[derive(Debug, Clone)]
pub struct ExitWatch(watch::Receiver<Option<Exit>>);

impl ExitWatch {
    /// Waits for the end. A process whose reaper is gone (the runtime shut down) counts as
    /// [`Exit::Unknown`].
    pub async fn wait(&mut self) -> Exit {
        let waited = self.0.wait_for(Option::is_some).await.map(|exit| *exit);
        match waited {
            Ok(exit) => exit.unwrap_or(Exit::Unknown),
            Err(_) => self.0.borrow().unwrap_or(Exit::Unknown),
        }
    }

    /// How it ended, once it has.
    pub fn get(&self) -> Option<Exit> {
        *self.0.borrow()
    }
}
