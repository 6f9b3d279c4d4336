//! A real `nats-server` for tests: started on a free 127.0.0.1 port with JetStream enabled and a private
//! store directory, killed when dropped.
//!
//! [`NatsServer::start`] returns `Ok(None)` when no `nats-server` binary is installed (looked up on `PATH`,
//! then in `/usr/sbin`, `/usr/local/bin`, `/usr/local/sbin`) so tests can skip, unless the environment
//! variable `FAAS_REQUIRE_NATS` is set (to anything but `0` or the empty string): then a missing binary is an
//! error and the test fails. Starting and stopping use only `std`, so any test (sync or async) can use them;
//! [`messages_in`] and [`consumer_backlog`] look into the server from an async test.
//!
//! ```no_run
//! use faas_gateway_nats::testing::NatsServer;
//!
//! let Some(mut server) = NatsServer::start().expect("nats-server") else {
//!     eprintln!("skipped: nats-server not found");
//!     return;
//! };
//! println!("JetStream at {}", server.url());
//! server.kill(); // SIGKILL, like a crash
//! server.restart().expect("restart"); // same port, same store directory
//! ```

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Name of the environment variable that turns a missing `nats-server` into an error.
pub const REQUIRE_ENV: &str = "FAAS_REQUIRE_NATS";

/// How long [`NatsServer::start`] and [`NatsServer::restart`] wait for the server to accept clients.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A `nats-server -js` child process with its own store directory (deleted on drop).
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts `nats-server -js -a 127.0.0.1 -p PORT -sd DIR` on a free port and waits until it accepts
    /// client connections.
    ///
    /// `Ok(None)`: the binary is not installed and `FAAS_REQUIRE_NATS` is unset (the caller skips).
    /// `Err`: the binary is required but missing, or the server did not start (the message says why,
    /// with the end of the server's log).
    pub fn start() -> Result<Option<NatsServer>, String> {
        let Some(binary) = find_binary() else {
            if required() {
                return Err(format!(
                    "nats-server not found on PATH or in /usr/sbin, and {REQUIRE_ENV} is set: \
                     install it (Debian/Ubuntu: apt-get install nats-server)"
                ));
            }
            return Ok(None);
        };
        let dir = unique_dir()?;
        let mut server = NatsServer { binary, port: 0, dir, child: None };
        let mut last_error = String::new();
        // The free port found by binding port 0 can be taken by someone else before the server binds it:
        // try a few ports.
        for _ in 0..3 {
            server.port = free_port().map_err(|e| format!("no free port on 127.0.0.1: {e}"))?;
            match server.spawn() {
                Ok(()) => return Ok(Some(server)),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (kept across [`restart`](Self::restart), deleted on drop).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("jetstream")
    }

    /// Whether the child process is running (started and not killed).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server with SIGKILL (no clean shutdown, like a crash) and waits for it to exit.
    /// Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store directory (killing it first if it is
    /// still running), and waits until it accepts clients.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log_path = self.log_path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let child = Command::new(&self.binary)
            .arg("-js")
            .args(["-a", "127.0.0.1"])
            .args(["-p", &self.port.to_string()])
            .arg("-sd")
            .arg(self.store_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "nats-server exited with {status} before accepting clients on port {}; log:\n{}",
                        self.port,
                        log_tail(&log_path)
                    ));
                }
            }
            if accepts_clients(self.port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "nats-server did not accept clients on 127.0.0.1:{} within {READY_TIMEOUT:?}; log:\n{}",
                    self.port,
                    log_tail(&log_path)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// How many messages the stream `stream` holds on the server at `url` (for example `FAAS_GATEWAY_BODIES`,
/// the parts of large bodies: 0 once every large event is delivered).
///
/// ```no_run
/// # async fn run() -> Result<(), String> {
/// let parts = faas_gateway_nats::testing::messages_in("nats://127.0.0.1:4222", "FAAS_GATEWAY_BODIES").await?;
/// assert_eq!(parts, 0);
/// # Ok(()) }
/// ```
pub async fn messages_in(url: &str, stream: &str) -> Result<u64, String> {
    let context = inspect(url).await?;
    let mut stream = context.get_stream(stream).await.map_err(|e| format!("stream {stream}: {e}"))?;
    let info = stream.info().await.map_err(|e| format!("stream info: {e}"))?;
    Ok(info.state.messages)
}

/// Deliveries of the durable consumer `consumer` on stream `stream` not yet acknowledged (due, or handed
/// out and awaiting their ack), on the server at `url`.
///
/// ```no_run
/// # async fn run() -> Result<(), String> {
/// use faas_gateway_nats::testing::consumer_backlog;
/// let backlog = consumer_backlog("nats://127.0.0.1:4222", "FAAS_GATEWAY", "faas-gateway").await?;
/// println!("{backlog} deliveries not acknowledged");
/// # Ok(()) }
/// ```
pub async fn consumer_backlog(url: &str, stream: &str, consumer: &str) -> Result<u64, String> {
    let context = inspect(url).await?;
    let stream = context.get_stream(stream).await.map_err(|e| format!("stream {stream}: {e}"))?;
    let info = stream.consumer_info(consumer).await.map_err(|e| format!("consumer {consumer}: {e}"))?;
    Ok(info.num_pending + info.num_ack_pending as u64)
}

async fn inspect(url: &str) -> Result<async_nats::jetstream::Context, String> {
    let connect = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(2)).connect(url);
    let client = tokio::time::timeout(Duration::from_secs(3), connect)
        .await
        .map_err(|_| format!("cannot connect to {url}: no answer"))?
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    Ok(async_nats::jetstream::new(client))
}

/// Whether `FAAS_REQUIRE_NATS` asks for a real server.
fn required() -> bool {
    is_required(std::env::var_os(REQUIRE_ENV))
}

fn is_required(value: Option<std::ffi::OsString>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0")
}

/// Directories searched after `PATH`.
const FALLBACK_DIRS: [&str; 4] = ["/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/usr/bin"];

/// Finds `nats-server` on `PATH`, then in the usual system directories.
fn find_binary() -> Option<PathBuf> {
    find_binary_in(std::env::var_os("PATH"), &FALLBACK_DIRS)
}

fn find_binary_in(path: Option<std::ffi::OsString>, fallbacks: &[&str]) -> Option<PathBuf> {
    let path = path.unwrap_or_default();
    std::env::split_paths(&path)
        .chain(fallbacks.iter().map(PathBuf::from))
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A new empty directory under the system temp dir.
fn unique_dir() -> Result<PathBuf, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let dir = std::env::temp_dir().join(format!(
        "faas-nats-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// A NATS server greets every client with an `INFO {...}` line once it accepts clients (after JetStream
/// has recovered its streams).
fn accepts_clients(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    let ok = BufReader::new(&stream).read_line(&mut line).is_ok() && line.starts_with("INFO ");
    let _ = stream.shutdown(Shutdown::Both);
    ok
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_require_variable_is_read_as_documented() {
        assert!(!is_required(None));
        assert!(!is_required(Some("".into())));
        assert!(!is_required(Some("0".into())));
        assert!(is_required(Some("1".into())));
        assert!(is_required(Some("yes".into())));
    }

    #[cfg(unix)]
    #[test]
    fn the_binary_is_found_on_path_first_and_only_if_executable() {
        use std::os::unix::fs::PermissionsExt;
        let root = unique_dir().unwrap();
        let (first, second) = (root.join("a"), root.join("b"));
        fs::create_dir_all(&first).unwrap();
        fs::create_dir_all(&second).unwrap();
        let path = std::env::join_paths([&first, &second]).unwrap();
        assert_eq!(find_binary_in(Some(path.clone()), &[]), None);

        fs::write(first.join("nats-server"), "not executable").unwrap();
        fs::write(second.join("nats-server"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(second.join("nats-server"), fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_binary_in(Some(path), &[]), Some(second.join("nats-server")));
        assert_eq!(
            find_binary_in(None, &[second.to_str().unwrap()]),
            Some(second.join("nats-server")),
            "fallback directories are searched after PATH"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn start_reports_a_server_that_cannot_start() {
        // A "nats-server" that exits at once: start fails with its exit status and log, not a hang.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let root = unique_dir().unwrap();
            let fake = root.join("nats-server");
            fs::write(&fake, "#!/bin/sh\necho 'bad flag' >&2\nexit 3\n").unwrap();
            fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
            let dir = unique_dir().unwrap();
            let mut server = NatsServer { binary: fake, port: free_port().unwrap(), dir, child: None };
            let err = server.spawn().unwrap_err();
            assert!(err.contains("exited") && err.contains("bad flag"), "{err}");
            drop(server);
            fs::remove_dir_all(&root).unwrap();
        }
    }
}
