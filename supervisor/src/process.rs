//! Starting an instance's process and ending it: a cleared environment, resource limits, its own
//! process group (so killing it kills everything it started), readiness, and its exit.

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::unix::pipe;
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
    /// stdout appended to one file ([`Process::output_file`]), stderr to another
    /// ([`Process::error_file`]): the streams apart, with no race between output and reply.
    Files {
        /// Where stdout goes.
        stdout: FileCapture,
        /// Where stderr goes.
        stderr: FileCapture,
    },
}

/// An extra pipe between us and the child, on a file descriptor number the child expects it on
/// ([`ProcessSpec::pipe`]). A protocol that talks over more than stdin and stdout uses one (the
/// OpenWhisk ActionLoop child writes its results on fd 3); on fd 0, 1 or 2 a pipe takes that
/// stream's place, whatever [`Input`] or [`Output`] say for it (the other streams stay as they
/// say), which gives a child's stdout apart from its stderr, or a stdin the parent can close.
///
/// ```
/// use faas_supervisor::Pipe;
/// assert_eq!(Pipe::FromChild(3).fd(), 3);
/// assert_eq!(Pipe::ToChild(0).fd(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipe {
    /// The child writes on this descriptor; we read ([`Process::take_reader`]).
    FromChild(RawFd),
    /// The child reads on this descriptor; we write ([`Process::take_writer`]), and dropping our
    /// end is the child's end of file.
    ToChild(RawFd),
}

impl Pipe {
    /// The child's descriptor number.
    pub fn fd(self) -> RawFd {
        match self {
            Pipe::FromChild(fd) | Pipe::ToChild(fd) => fd,
        }
    }
}

/// A new pipe, both ends close-on-exec (so no other child inherits them): (read, write).
fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2(2) writes two descriptors into the array we own; on success we are their
    // only owner.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
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
    pipes: Vec<Pipe>,
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
            pipes: Vec::new(),
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

    /// Adds a pipe on one of the child's file descriptors (see [`Pipe`]); a later pipe on the
    /// same descriptor replaces an earlier one. A negative descriptor is refused by
    /// [`ProcessSpec::spawn`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use faas_supervisor::{Pipe, ProcessSpec};
    ///
    /// // The child reads a line on stdin and answers on fd 3; its stdout stays on /dev/null.
    /// let script = "read line; echo \"got $line\" >&3; echo chatter";
    /// let spec = ProcessSpec::new("/bin/sh").args(["-c", script]).pipe(Pipe::ToChild(0)).pipe(Pipe::FromChild(3));
    /// let mut process = spec.spawn().unwrap();
    /// let mut stdin = process.take_writer(0).unwrap();
    /// stdin.write_all(b"hello\n").await.unwrap();
    /// drop(stdin); // end of file for the child
    /// let mut answer = String::new();
    /// process.take_reader(3).unwrap().read_to_string(&mut answer).await.unwrap();
    /// assert_eq!(answer, "got hello\n");
    /// assert!(process.wait().await.success());
    /// # }
    /// ```
    pub fn pipe(mut self, pipe: Pipe) -> ProcessSpec {
        self.pipes.retain(|p| p.fd() != pipe.fd());
        self.pipes.push(pipe);
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
            Output::Files { stdout, stderr } => {
                command.stdout(Stdio::from(output_file(stdout)?)).stderr(Stdio::from(output_file(stderr)?));
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
        let start_error = |source| SpawnError::Start { program: self.program.clone(), source };
        // Extra pipes: our ends stay here, the child's ends are placed on their descriptors
        // between fork and exec.
        let mut ours: Vec<(Pipe, OwnedFd)> = Vec::with_capacity(self.pipes.len());
        let mut theirs: Vec<OwnedFd> = Vec::with_capacity(self.pipes.len());
        for pipe in &self.pipes {
            if pipe.fd() < 0 {
                let message = format!("cannot give the child a pipe on descriptor {}", pipe.fd());
                return Err(start_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, message)));
            }
            let (read, write) = cloexec_pipe().map_err(start_error)?;
            match pipe {
                Pipe::FromChild(_) => {
                    ours.push((*pipe, read));
                    theirs.push(write);
                }
                Pipe::ToChild(_) => {
                    ours.push((*pipe, write));
                    theirs.push(read);
                }
            }
        }
        if !theirs.is_empty() {
            // (child end, target descriptor); the first is rewritten in the child.
            let mut placements: Vec<(RawFd, RawFd)> =
                theirs.iter().zip(&self.pipes).map(|(fd, pipe)| (fd.as_raw_fd(), pipe.fd())).collect();
            let floor = placements.iter().map(|(_, target)| *target).max().unwrap_or(2).max(2) + 1;
            // SAFETY: the closure runs in the child between fork and exec, after the standard
            // streams are set up; it only calls fcntl(2) and dup2(2), which are
            // async-signal-safe, and writes into memory allocated before the fork.
            unsafe {
                command.pre_exec(move || {
                    // First move every child end above all targets, so that placing one end
                    // cannot close another that happens to sit on its target.
                    for (fd, _) in placements.iter_mut() {
                        let high = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, floor);
                        if high < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        *fd = high;
                    }
                    // dup2 leaves the target without close-on-exec: it survives the exec.
                    for (fd, target) in placements.iter() {
                        if libc::dup2(*fd, *target) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().map_err(start_error)?;
        // The child has its copies now; ours of its ends must close, or a reader never sees
        // the end of file.
        drop(theirs);
        let mut readers = Vec::new();
        let mut writers = Vec::new();
        for (pipe, fd) in ours {
            match pipe {
                Pipe::FromChild(n) => readers.push((n, pipe::Receiver::from_owned_fd(fd).map_err(start_error)?)),
                Pipe::ToChild(n) => writers.push((n, pipe::Sender::from_owned_fd(fd).map_err(start_error)?)),
            }
        }
        let pid = child.id().unwrap_or(0);
        let stdin = child.stdin.take();
        let (lines, file, error_file) = match self.output {
            Output::Null => (None, None, None),
            Output::Lines(capture) => match (child.stdout.take(), child.stderr.take()) {
                (Some(out), Some(err)) => (Some(LineLog::start(out, err, capture)), None, None),
                _ => (None, None, None),
            },
            Output::File(capture) => (None, Some(FileLog::new(capture)), None),
            Output::Files { stdout, stderr } => (None, Some(FileLog::new(stdout)), Some(FileLog::new(stderr))),
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
        Ok(Process {
            pid,
            exit: exit_rx,
            stdin,
            lines,
            file,
            error_file,
            readers,
            writers,
            group_killed,
            started: Instant::now(),
        })
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
    error_file: Option<FileLog>,
    readers: Vec<(RawFd, pipe::Receiver)>,
    writers: Vec<(RawFd, pipe::Sender)>,
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

    /// Our end of the [`Pipe::FromChild`] pipe on descriptor `fd`, once (later calls: `None`).
    /// It reads the end of file when every process holding the child's end has closed it.
    pub fn take_reader(&mut self, fd: RawFd) -> Option<pipe::Receiver> {
        let at = self.readers.iter().position(|(n, _)| *n == fd)?;
        Some(self.readers.swap_remove(at).1)
    }

    /// Our end of the [`Pipe::ToChild`] pipe on descriptor `fd`, once (later calls: `None`).
    /// Dropping it closes the pipe: the child reads the end of file.
    pub fn take_writer(&mut self, fd: RawFd) -> Option<pipe::Sender> {
        let at = self.writers.iter().position(|(n, _)| *n == fd)?;
        Some(self.writers.swap_remove(at).1)
    }

    /// The output file, with [`Output::File`]; the stdout file, with [`Output::Files`].
    pub fn output_file(&self) -> Option<&FileLog> {
        self.file.as_ref()
    }

    /// The stderr file, with [`Output::Files`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use faas_supervisor::{FileCapture, Output, ProcessSpec};
    /// let dir = tempfile::tempdir().unwrap();
    /// let files = Output::Files {
    ///     stdout: FileCapture::new(dir.path().join("out.log")),
    ///     stderr: FileCapture::new(dir.path().join("err.log")),
    /// };
    /// let process = ProcessSpec::new("/bin/sh").args(["-c", "echo out; echo err >&2"]).output(files).spawn().unwrap();
    /// process.wait().await;
    /// assert_eq!(process.output_file().unwrap().take(), "out\n");
    /// assert_eq!(process.error_file().unwrap().take(), "err\n");
    /// # }
    /// ```
    pub fn error_file(&self) -> Option<&FileLog> {
        self.error_file.as_ref()
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn read_all(mut reader: pipe::Receiver) -> String {
        let mut text = String::new();
        reader.read_to_string(&mut text).await.unwrap();
        text
    }

    #[tokio::test]
    async fn pipes_on_stdin_stdout_and_fd_3_keep_stderr_apart() {
        let script = "cat; echo out; echo err >&2; echo result >&3";
        let spec = ProcessSpec::new("/bin/sh")
            .args(["-c", script])
            .inherit_base()
            .pipe(Pipe::ToChild(0))
            .pipe(Pipe::FromChild(1))
            .pipe(Pipe::FromChild(3))
            .output(Output::Lines(LineCapture::default()));
        let mut process = spec.spawn().unwrap();
        let mut stdin = process.take_writer(0).unwrap();
        assert!(process.take_writer(0).is_none(), "taken once");
        stdin.write_all(b"echoed\n").await.unwrap();
        drop(stdin);
        let (stdout, fd3) = (process.take_reader(1).unwrap(), process.take_reader(3).unwrap());
        let (stdout, fd3) = tokio::join!(read_all(stdout), read_all(fd3));
        assert_eq!(stdout, "echoed\nout\n");
        assert_eq!(fd3, "result\n");
        let stderr = process.lines().unwrap().until_closed(Duration::from_secs(5)).await;
        assert_eq!(stderr, ["err"], "only stderr is left to the line capture");
        assert!(process.wait().await.success());
    }

    #[tokio::test]
    async fn a_child_end_on_a_low_descriptor_is_not_clobbered_and_bad_descriptors_are_refused() {
        // Several pipes at once, whichever descriptors their ends get here: each arrives where asked.
        let script = "echo four >&4; echo three >&3; echo five >&5";
        let spec = ProcessSpec::new("/bin/sh")
            .args(["-c", script])
            .pipe(Pipe::FromChild(5))
            .pipe(Pipe::FromChild(3))
            .pipe(Pipe::FromChild(4));
        let mut process = spec.spawn().unwrap();
        let (a, b, c) =
            (process.take_reader(3).unwrap(), process.take_reader(4).unwrap(), process.take_reader(5).unwrap());
        assert_eq!(
            tokio::join!(read_all(a), read_all(b), read_all(c)),
            ("three\n".into(), "four\n".into(), "five\n".into())
        );
        assert!(process.wait().await.success());

        let err = ProcessSpec::new("/bin/true").pipe(Pipe::FromChild(-1)).spawn().unwrap_err();
        assert_eq!(err.io().kind(), std::io::ErrorKind::InvalidInput);
    }
}
