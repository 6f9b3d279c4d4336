//! # faas-emulator-kit
//!
//! What every platform emulator (`emulators/*` in this workspace, or a crate of your own) starts with,
//! so that each writes only its platform:
//!
//! - [`StateDir`]: the directory it keeps code and logs in, given or temporary (removed when
//!   dropped), with its subdirectories made;
//! - [`listen`] and [`Server`]: its listener (an address that cannot be bound is
//!   `BackendUnavailable` naming it) and the task serving an axum router on it;
//! - [`Tasks`]: the background work (asynchronous invocations, deployments) shutdown stops;
//! - [`init_logging`]: the emulator binary's logs on stderr, `RUST_LOG` to filter them.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use faas_emulator_kit::{listen, Server, StateDir, Tasks};
//!
//! let state = StateDir::open(None, "faas-demo-emulator-", &["functions", "logs"]).unwrap();
//! assert!(state.path().join("functions").is_dir());
//! let listener = listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
//! let addr = listener.local_addr().unwrap();
//! let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
//! let server = Server::start(listener, app, "demo emulator");
//! let tasks = Tasks::default();
//! tasks.track(tokio::spawn(std::future::pending()));
//! assert_eq!(tasks.len(), 1);
//! let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
//! # drop(stream);
//! tasks.abort_all();
//! server.stop().await;
//! let kept = state.path().to_path_buf();
//! drop(state);
//! assert!(!kept.exists(), "a temporary state directory goes with it");
//! # }
//! ```
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use faas_api::Error;
use tokio::task::JoinHandle;

/// An emulator's state directory: the one it was given, or a temporary one removed when this
/// is dropped.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl StateDir {
    /// `dir`, or a new temporary directory named `prefix...`, with `subdirs` made in it.
    ///
    /// Fails with `BackendUnavailable` naming the directory when it cannot be made.
    ///
    /// ```
    /// let root = tempfile::tempdir().unwrap();
    /// let given = root.path().join("state");
    /// let state = faas_emulator_kit::StateDir::open(Some(&given), "x-", &["code"]).unwrap();
    /// assert_eq!(state.path(), given);
    /// drop(state);
    /// assert!(given.join("code").is_dir(), "a given directory is kept");
    /// let err = faas_emulator_kit::StateDir::open(Some(std::path::Path::new("/proc/no")), "x-", &["a"]).unwrap_err();
    /// assert!(err.message().contains("/proc/no"), "{}", err.message());
    /// ```
    pub fn open(dir: Option<&Path>, prefix: &str, subdirs: &[&str]) -> Result<StateDir, Error> {
        let (temp, path) = match dir {
            Some(dir) => (None, dir.to_path_buf()),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix(prefix)
                    .tempdir()
                    .map_err(|e| Error::unavailable(format!("cannot create a state directory: {e}")))?;
                let path = temp.path().to_path_buf();
                (Some(temp), path)
            }
        };
        for sub in subdirs {
            std::fs::create_dir_all(path.join(sub))
                .map_err(|e| Error::unavailable(format!("cannot create state directory {}: {e}", path.display())))?;
        }
        Ok(StateDir { path, _temp: temp })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Binds `addr` (port 0 picks a free one); an address that cannot be bound is
/// `BackendUnavailable` naming it.
pub async fn listen(addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::unavailable(format!("cannot listen on {addr}: {e}")))
}

/// The task serving an emulator's router.
#[derive(Debug)]
pub struct Server {
    task: JoinHandle<()>,
}

impl Server {
    /// Serves `app` on `listener` in a task of its own; `what` names it in the log line written
    /// if serving ever fails.
    pub fn start(listener: tokio::net::TcpListener, app: axum::Router, what: &'static str) -> Server {
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "{what} server stopped");
            }
        });
        Server { task }
    }

    /// Stops serving (connections in progress are dropped).
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Waits until serving stops (only a fatal accept error stops it).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Background tasks an emulator's shutdown stops.
#[derive(Debug, Default)]
pub struct Tasks(Mutex<Vec<JoinHandle<()>>>);

impl Tasks {
    /// Keeps `task` (and forgets those that have finished).
    pub fn track(&self, task: JoinHandle<()>) {
        let mut tasks = self.0.lock().expect("tasks");
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// How many are kept and not finished.
    pub fn len(&self) -> usize {
        self.0.lock().expect("tasks").iter().filter(|t| !t.is_finished()).count()
    }

    /// Whether none is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Aborts every one.
    pub fn abort_all(&self) {
        for task in self.0.lock().expect("tasks").drain(..) {
            task.abort();
        }
    }
}

/// Prints an emulator binary's start-up banner (its first line says where it listens) on stdout in
/// one write, and carries on if nobody reads it. A supervisor or a test that reads the first line
/// and closes the pipe (`faas-lambda-emulator | head -1`) must not kill the emulator: `println!`
/// panics on a closed stdout, and a banner written line by line can meet the closed pipe halfway.
///
/// ```
/// faas_emulator_kit::banner(&[
///     "Example emulator listening on http://127.0.0.1:9000".to_string(),
///     "  try: curl http://127.0.0.1:9000/".to_string(),
/// ]);
/// ```
pub fn banner(lines: &[String]) {
    use std::io::Write;
    let mut text = lines.join("\n");
    text.push('\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Logs of an emulator binary: on stderr, coloured on a terminal (unless `NO_COLOR`), filtered
/// by `RUST_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(faas_api::terminal::use_colour(std::io::IsTerminal::is_terminal(&std::io::stderr())))
        .init();
}
