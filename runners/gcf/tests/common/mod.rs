//! What the tests share: the fixture app started as Cloud Run starts a function, and the
//! reference Functions Framework (PyPI `functions-framework`), installed into a scratch
//! virtualenv when missing and started on a free port.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The reference's version the test pins.
const REFERENCE: &str = "functions-framework==3.10.2";

/// A CloudEvent function recording the event it gets in `$OUTPUT_FILE`.
pub const RECORD_EVENT: &str = r#"
import json, os
import functions_framework

@functions_framework.cloud_event
def record(event):
    with open(os.environ["OUTPUT_FILE"], "w") as f:
        json.dump({"attributes": dict(event.get_attributes()), "data": event.get_data()}, f)
"#;

/// A virtualenv with the reference installed (made once per target directory).
pub fn reference_env() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("functions-framework-venv");
    let bin = venv.join("bin/functions-framework");
    if bin.is_file() {
        return venv;
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e} (python3 with venv and pip is needed)"));
        assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv");
    run(Command::new(venv.join("bin/pip")).args(["install", "-q", REFERENCE]), "pip install functions-framework");
    assert!(bin.is_file(), "the reference is not installed at {}", bin.display());
    venv
}

pub struct Reference {
    child: Child,
    pub url: String,
    pub output: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The reference serving `target` of the Python `source` with `signature`.
pub fn start_reference(venv: &Path, source: &str, target: &str, signature: &str) -> Reference {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.py"), source).unwrap();
    let output = dir.path().join("event.json");
    let port = free_port();
    let child = Command::new(venv.join("bin/functions-framework"))
        .args(["--target", target, "--signature-type", signature, "--host", "127.0.0.1"])
        .args(["--port", &port.to_string(), "--source"])
        .arg(dir.path().join("main.py"))
        .env("OUTPUT_FILE", &output)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the reference Functions Framework");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the reference did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Reference { child, url: format!("http://127.0.0.1:{port}"), output, _dir: dir }
}

/// Builds the fixture app once (an example target of this crate) and returns its path.
pub fn fixture() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        faas_packaging::build::build_example(dir, "faas-runner-gcf", "faas-gcf-fixture").expect("the fixture builds")
    })
    .clone()
}

/// The fixture serving `target` as Cloud Run starts it, with its stdout lines collected.
pub struct Function {
    child: Child,
    pub url: String,
    pub stdout: Arc<Mutex<Vec<String>>>,
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(target: &str, extra: &[(&str, &str)]) -> Function {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(fixture())
        .env_clear()
        .env("PORT", port.to_string())
        .env("K_SERVICE", target)
        .env("K_REVISION", format!("{target}-00001-abc"))
        .env("K_CONFIGURATION", target)
        .env("FUNCTION_TARGET", target)
        .envs(extra.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the fixture");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "the fixture exited");
        assert!(started.elapsed() < Duration::from_secs(30), "the fixture did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Function { child, url: format!("http://127.0.0.1:{port}"), stdout: lines }
}
