//! The custom handler's process, started as the host's `HttpWorkerProcess` starts it: no shell,
//! the command line the `customHandler.description` gives (arguments `%VAR%`-expanded, joined and
//! split again as .NET splits a command line), the working directory, the host's environment plus
//! the five variables that tell the handler its port and id; stdout lines logged as information,
//! stderr lines as errors; ready once `GET /` gets any HTTP answer, polled every 25 ms.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use faas_supervisor::{ExitWatch, Pipe, Process, ProcessSpec, Wording};
use http_body_util::BodyExt as _;
use tokio::io::AsyncBufReadExt as _;

use crate::config::{resolve_executable, HandlerConfig};
use crate::logs::{Level, SiteLogs};

/// The body type of requests to the handler.
pub(crate) type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// The pooled keep-alive client the host talks to handlers with.
pub(crate) type Client = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

/// `WorkerConstants.WorkerReadyCheckPollingIntervalMilliseconds`.
const READY_POLL: Duration = Duration::from_millis(25);

/// A new client: keep-alive, header names written in title case (as .NET writes the names it
/// was given), no redirects followed.
pub(crate) fn client() -> Client {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .http1_title_case_headers(true)
        .build(connector)
}

/// An empty request body.
pub(crate) fn empty_body() -> Body {
    http_body_util::Empty::<Bytes>::new().map_err(|never| match never {}).boxed()
}

/// A running handler process.
#[derive(Debug)]
pub(crate) struct Worker {
    /// `FUNCTIONS_CUSTOMHANDLER_WORKER_ID`.
    pub id: String,
    /// `FUNCTIONS_CUSTOMHANDLER_PORT`.
    pub port: u16,
    /// Its process id.
    pub pid: u32,
    process: Process,
    /// Set when we stop it on purpose (a redeploy, a timeout, shutdown): its end is no error.
    stopping: AtomicBool,
}

impl Worker {
    /// Whether it is still running.
    pub fn alive(&self) -> bool {
        self.process.is_running()
    }

    /// Waits for its end from another task.
    pub fn exit_watch(&self) -> ExitWatch {
        self.process.watch_exit()
    }

    /// Whether we stopped it.
    pub fn stopped_on_purpose(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Stops it (and everything it started).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.process.kill();
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Splits a command line as .NET's `ProcessStartInfo.Arguments` is split on Unix (the Windows
/// rules): whitespace separates, double quotes group, `\"` is a quote, `""` inside quotes is a
/// quote, other backslashes are literal.
pub(crate) fn split_command_line(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut args = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let mut arg = String::new();
        let mut quoted = false;
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' {
                let start = i;
                while i < chars.len() && chars[i] == '\\' {
                    i += 1;
                }
                let n = i - start;
                if i < chars.len() && chars[i] == '"' {
                    arg.extend(std::iter::repeat_n('\\', n / 2));
                    if n % 2 == 1 {
                        arg.push('"');
                        i += 1;
                    }
                } else {
                    arg.extend(std::iter::repeat_n('\\', n));
                }
                continue;
            }
            if c == '"' {
                if quoted && i + 1 < chars.len() && chars[i + 1] == '"' {
                    arg.push('"');
                    i += 2;
                    continue;
                }
                quoted = !quoted;
                i += 1;
                continue;
            }
            if c.is_whitespace() && !quoted {
                break;
            }
            arg.push(c);
            i += 1;
        }
        args.push(arg);
    }
    args
}

/// `%NAME%` replaced by the variable's value (names in any case); what is left of `%...%` after
/// that is removed, as the host's `SanitizeExpandedArgument` removes unknown variables.
pub(crate) fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let Some(len) = rest[start + 1..].find('%') else { break };
        let name = &rest[start + 1..start + 1 + len];
        out.push_str(&rest[..start]);
        if let Some((_, v)) = env.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            out.push_str(v);
        } else if len == 0 {
            out.push('%');
            rest = &rest[start + 1..];
            continue;
        }
        rest = &rest[start + 2 + len..];
    }
    out.push_str(rest);
    out
}

/// What to start: the command line and environment of a handler.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub port: u16,
    pub id: String,
    pub init_timeout: Duration,
}

/// A free TCP port on 127.0.0.1 (`WorkerUtilities.GetUnusedTcpPort`).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// The command line and environment for `handler` of the app at `root`, with `env` the host's
/// environment (base variables, platform variables, app settings).
pub(crate) fn plan(root: &Path, handler: &HandlerConfig, mut env: Vec<(String, String)>) -> Result<Launch, String> {
    let port = free_port().map_err(|e| format!("cannot find a free port for the handler: {e}"))?;
    let id = uuid::Uuid::new_v4().to_string();
    let root_text = root.to_string_lossy().into_owned();
    for (k, v) in [
        ("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string()),
        ("FUNCTIONS_HTTPWORKER_PORT", port.to_string()),
        ("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", id.clone()),
        ("FUNCTIONS_HTTPWORKER_ID", id.clone()),
        ("FUNCTIONS_APP_ROOT_PATH", root_text),
    ] {
        env.retain(|(name, _)| name != k);
        env.push((k.to_string(), v));
    }
    let executable = expand(&handler.executable, &env);
    let path_env = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone());
    let program = resolve_executable(root, &executable, path_env.as_deref()).ok_or_else(|| {
        format!(
            "the handler `{executable}` (host.json customHandler.description.defaultExecutablePath) is neither a \
             file of the app nor a program on PATH"
        )
    })?;
    let mut line = String::new();
    for arg in &handler.arguments {
        line.push(' ');
        line.push_str(&expand(arg, &env));
    }
    if let Some(worker_path) = &handler.worker_path {
        line.push_str(&format!(" \"{}\"", expand(worker_path, &env)));
    }
    for arg in &handler.worker_arguments {
        line.push(' ');
        line.push_str(&expand(arg, &env));
    }
    let cwd = match &handler.working_directory {
        Some(dir) if Path::new(dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => root.join(dir),
        None => root.to_path_buf(),
    };
    Ok(Launch { program, args: split_command_line(&line), cwd, env, port, id, init_timeout: handler.init_timeout })
}

/// Reads one output stream line by line into the host log.
fn pump(stream: tokio::net::unix::pipe::Receiver, level: Level, logs: Arc<SiteLogs>) {
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if !line.trim().is_empty() {
                logs.host(level, &line);
            }
        }
    });
}

/// One `GET /` as the host sends it (a bare request): `Some(true)` an answer, `Some(false)` a
/// socket error (keep waiting), `None` the time ran out.
async fn ping(client: &Client, port: u16, limit: Duration) -> Option<bool> {
    let request = http::Request::get(format!("http://127.0.0.1:{port}/")).body(empty_body()).ok()?;
    match tokio::time::timeout(limit, client.request(request)).await {
        Err(_) => None,
        Ok(Ok(response)) => {
            // Drain it so that the connection goes back to the pool.
            let _ = tokio::time::timeout(Duration::from_secs(1), response.into_body().collect()).await;
            Some(true)
        }
        // A connection that cannot be made: keep waiting; any other failure counts as ready
        // (the host's rule for an HttpRequestException without a SocketException).
        Ok(Err(e)) => Some(!e.is_connect()),
    }
}

/// Starts the handler and waits for it to be ready. `closed` cancels (the site is going away).
pub(crate) async fn start(
    launch: Launch,
    logs: Arc<SiteLogs>,
    client: &Client,
    mut closed: tokio::sync::watch::Receiver<bool>,
) -> Result<Arc<Worker>, String> {
    let spec = ProcessSpec::new(&launch.program)
        .args(&launch.args)
        .current_dir(&launch.cwd)
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .pipe(Pipe::FromChild(1))
        .pipe(Pipe::FromChild(2));
    let mut process = spec.spawn().map_err(|e| format!("the handler could not be started: {e}"))?;
    if let Some(out) = process.take_reader(1) {
        pump(out, Level::Information, logs.clone());
    }
    if let Some(err) = process.take_reader(2) {
        pump(err, Level::Error, logs.clone());
    }
    logs.host(
        Level::Information,
        &format!(
            "Starting the custom handler (pid {}): {} {} on port {}",
            process.id(),
            launch.program.display(),
            launch.args.join(" "),
            launch.port
        ),
    );
    let started = Instant::now();
    let mut exit = process.watch_exit();
    loop {
        if *closed.borrow() {
            process.kill_and_wait().await;
            return Err("the site is shutting down".into());
        }
        let left = launch.init_timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            process.kill_and_wait().await;
            return Err(format!(
                "Initializing HttpWorker timed out. (the handler did not answer GET / on port {} within {:?})",
                launch.port, launch.init_timeout
            ));
        }
        tokio::select! {
            ready = ping(client, launch.port, left) => match ready {
                Some(true) => break,
                Some(false) => {}
                None => continue,
            },
            code = exit.wait() => {
                return Err(format!(
                    "the handler exited ({}) before it answered GET / on port {}",
                    code.describe(Wording::Go), launch.port
                ));
            }
            _ = closed.changed() => {
                process.kill_and_wait().await;
                return Err("the site is shutting down".into());
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(READY_POLL) => {}
            code = exit.wait() => {
                return Err(format!(
                    "the handler exited ({}) before it answered GET / on port {}",
                    code.describe(Wording::Go), launch.port
                ));
            }
        }
    }
    logs.host(
        Level::Information,
        &format!("The custom handler is ready (pid {}, port {}).", process.id(), launch.port),
    );
    Ok(Arc::new(Worker {
        id: launch.id,
        port: launch.port,
        pid: process.id(),
        process,
        stopping: AtomicBool::new(false),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_split_as_dotnet_splits_them() {
        assert_eq!(split_command_line(" a  b"), ["a", "b"]);
        assert_eq!(split_command_line(r#" "a b" c"#), ["a b", "c"]);
        assert_eq!(split_command_line(r#" a\"b "c""d""#), ["a\"b", "c\"d"]);
        assert_eq!(split_command_line(r#" \\server\share "x\\""#), ["\\\\server\\share", "x\\"]);
        assert!(split_command_line("   ").is_empty());
    }

    #[test]
    fn variables_expand_and_unknown_ones_go() {
        let env = vec![("PORT".to_string(), "7".to_string()), ("Name".to_string(), "x y".to_string())];
        assert_eq!(expand("--port=%PORT% %name% %NOPE%!", &env), "--port=7 x y !");
        assert_eq!(expand("100%", &env), "100%");
        assert_eq!(expand("%%", &env), "%%");
    }
}
