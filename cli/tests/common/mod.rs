//! Shared helpers: run the built `faas` binary in a directory, with a clean environment.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `faas` binary under test.
pub fn faas_bin() -> &'static str {
    env!("CARGO_BIN_EXE_faas")
}

/// Where projects created by the tests are built: one shared target dir, so dependencies are
/// compiled once.
pub fn test_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d).join("cli-tests"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("cli-tests"),
    }
}

/// A `faas` command in `dir` with FAAS_* variables cleared.
pub fn faas_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(faas_bin());
    cmd.args(args);
    test_env(&mut cmd, dir);
    cmd
}

/// Runs `cmd` in `dir` with FAAS_* variables cleared and the tests' cargo target dir.
fn test_env(cmd: &mut Command, dir: &Path) {
    cmd.current_dir(dir).env_remove("FAAS_BACKEND").env_remove("FAAS_TOKEN").env("CARGO_TARGET_DIR", test_target_dir());
}

/// Runs `faas` to completion.
pub fn faas(dir: &Path, args: &[&str]) -> Output {
    faas_cmd(dir, args).output().expect("run faas")
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stdout parsed as one JSON document.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", stdout(o), stderr(o)))
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills `faas dev` if the test fails half-way.
pub struct DevServer {
    pub child: Child,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl DevServer {
    /// Runs `faas ARGS` (a `dev` command line) in `dir`, collecting its output.
    pub fn start(dir: &Path, args: &[&str]) -> DevServer {
        DevServer::spawn(faas_cmd(dir, args))
    }

    /// Runs `cmd` (a `faas dev` command), collecting its output.
    pub fn spawn(mut cmd: Command) -> DevServer {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start faas dev");
        let collect = |pipe: Box<dyn std::io::Read + Send>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
            lines
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        DevServer { child, stdout, stderr }
    }

    pub fn output(&self) -> String {
        format!(
            "--- faas dev stdout:\n{}\n--- faas dev stderr:\n{}",
            self.stdout.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap().join("\n")
        )
    }

    pub fn stderr_count(&self, needle: &str) -> usize {
        self.stderr.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("faas dev exited with {status}\n{}", self.output());
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Stops `child` as a user would, with SIGTERM, so that it removes what it made (an emulator's
/// temporary state directory, `.faas/dev.json`); SIGKILL after 10 s if it has not exited.
pub fn stop(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    // SAFETY: kill(2) on the pid of a child this process started and has not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls `check` every 250 ms until it returns `Some`, or fails after `limit`.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    server: &mut DevServer,
    mut check: impl FnMut(&DevServer) -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check(server) {
            return v;
        }
        server.assert_running();
        assert!(start.elapsed() < limit, "timed out waiting for {what}\n{}", server.output());
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `faas new NAME` in `parent`; returns the project directory.
pub fn new_project(parent: &Path, name: &str) -> PathBuf {
    let o = faas(parent, &["new", name]);
    assert!(o.status.success(), "faas new {name}: {}", stderr(&o));
    parent.join(name)
}

/// Quotes `word` for `sh`.
pub fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Runs `program ARGS` in `dir` on a pseudo-terminal (util-linux `script`), with `cmd`'s
/// environment changes applied; returns everything it wrote to the terminal (stdout and stderr;
/// the terminal turns `\n` into `\r\n`) and whether it succeeded.
pub fn on_terminal(mut cmd: Command, program: &str, args: &[&str]) -> (Vec<u8>, bool) {
    let line: Vec<String> = std::iter::once(program).chain(args.iter().copied()).map(sh_quote).collect();
    let o = cmd
        .arg("-qec")
        .arg(line.join(" "))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("util-linux `script` runs a command on a pseudo-terminal");
    (o.stdout, o.status.success())
}

/// A `script` command (see [`on_terminal`]) in `dir` with the environment of [`faas_cmd`].
pub fn script_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new("script");
    test_env(&mut cmd, dir);
    cmd
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Kill(pub std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

/// Runs `cmd` (a `faas` command in an empty directory) as `faas dev --emulate KIND` on a free
/// port; returns it, with its URL, once the port answers.
pub fn start_emulator(mut cmd: Command, kind: &str) -> (Kill, String) {
    let port = free_port();
    let child = cmd
        .args(["dev", "--emulate", kind, "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start faas dev --emulate");
    let mut emulator = Kill(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(emulator.0.try_wait().unwrap().is_none(), "the emulator exited");
        assert!(started.elapsed() < Duration::from_secs(60), "the emulator did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (emulator, format!("http://127.0.0.1:{port}"))
}
