//! What the tests share: an emulator on a free port, source archives, the reference Functions
//! Framework (PyPI `functions-framework`, installed into a scratch virtualenv when missing), and
//! deployments over the raw API.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use faas_packaging::zip::{zip_bytes, Entry};
use serde_json::{json, Value};

/// The reference's version the tests pin (the same virtualenv as runners/gcf's tests).
const REFERENCE: &str = "functions-framework==3.10.2";

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

/// Options for a test emulator: a free port, no echo, no Functions Framework unless given
/// (`functions_framework: None` would search PATH; tests say which they want).
pub fn options(framework: Option<PathBuf>) -> faas_emulator_gcf::EmulatorOptions {
    faas_emulator_gcf::EmulatorOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        search_path: false,
        functions_framework: framework,
        max_pending_wait: Duration::from_millis(300),
        startup_timeout: Duration::from_secs(30),
        echo_logs: std::env::var_os("GCF_TEST_ECHO").is_some(),
        ..Default::default()
    }
}

pub async fn emulator(framework: Option<PathBuf>) -> faas_emulator_gcf::Emulator {
    faas_emulator_gcf::start(options(framework)).await.expect("the emulator starts")
}

pub fn zip(files: &[(&str, &str)]) -> Vec<u8> {
    zip_bytes(files.iter().map(|(p, c)| Entry::bytes(*p, c.as_bytes().to_vec(), 0o644)).collect()).unwrap()
}

/// A `main.py` that replaces its process by `server.py` (what faas's archives do with their
/// bundled binary): it works with or without the Functions Framework.
pub const EXEC_MAIN: &str = r#"
import os, sys
here = os.path.dirname(os.path.abspath(__file__))
os.execv(sys.executable, [sys.executable, os.path.join(here, "server.py")])
"#;

/// A small HTTP server on $PORT: `/env` answers its environment and the request's trace header,
/// `/sleep?s=N` sleeps, `/log` writes a structured and a plain line, anything else echoes.
pub const SERVER: &str = r#"
import http.server, json, os, sys, time, urllib.parse

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/env":
            self.answer(200, {"env": dict(os.environ), "trace": self.headers.get("x-cloud-trace-context"), "cwd": os.getcwd()})
        elif url.path == "/sleep":
            time.sleep(float(q.get("s", ["1"])[0]))
            self.answer(200, {"slept": True})
        elif url.path == "/alloc":
            try:
                block = bytearray(int(q["mb"][0]) * 1024 * 1024)
                self.answer(200, {"allocated": len(block)})
            except MemoryError:
                self.answer(500, {"error": "MemoryError"})
        elif url.path == "/log":
            print(json.dumps({"message": "structured hello", "severity": "WARNING", "component": "test",
                              "logging.googleapis.com/labels": {"kind": "probe"},
                              "logging.googleapis.com/trace": "projects/p/traces/0123456789abcdef0123456789abcdef"}), flush=True)
            print("plain hello", flush=True)
            print("error hello", file=sys.stderr, flush=True)
            self.answer(200, {"logged": True})
        else:
            self.answer(200, {"path": self.path})
    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(n)
        self.answer(200, {"path": self.path, "size": len(body)})
    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

pub fn exec_zip() -> Vec<u8> {
    zip(&[("main.py", EXEC_MAIN), ("server.py", SERVER)])
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

pub const PARENT: &str = "projects/test-project/locations/us-central1";

/// Uploads an archive as gcloud does: generateUploadUrl, then PUT. Returns the storageSource.
pub async fn upload(url: &str, archive: Vec<u8>) -> Value {
    let c = http();
    let r: Value = c
        .post(format!("{url}/v2/{PARENT}/functions:generateUploadUrl"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let put = c
        .put(r["uploadUrl"].as_str().unwrap())
        .header("content-type", "application/zip")
        .body(archive)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    r["storageSource"].clone()
}

/// Polls an operation until it is done; returns it.
pub async fn wait_operation(url: &str, name: &str) -> Value {
    let started = Instant::now();
    loop {
        let op: Value = http().get(format!("{url}/v2/{name}")).send().await.unwrap().json().await.unwrap();
        if op["done"] == true {
            return op;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "operation {name} not done: {op}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a function (its body merged with a Python build of `archive`) and waits for the
/// operation; returns the finished operation.
pub async fn deploy(url: &str, id: &str, archive: Vec<u8>, mut function: Value) -> Value {
    let source = upload(url, archive).await;
    let build = function["buildConfig"].as_object().cloned().unwrap_or_default();
    let mut b = json!({"runtime": "python312", "entryPoint": "handler", "source": {"storageSource": source}});
    for (k, v) in build {
        b[k] = v;
    }
    function["buildConfig"] = b;
    let r = http().post(format!("{url}/v2/{PARENT}/functions?functionId={id}")).json(&function).send().await.unwrap();
    let status = r.status();
    let op: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["done"], false);
    wait_operation(url, op["name"].as_str().unwrap()).await
}

/// The function's `serviceConfig.uri`.
pub async fn uri(url: &str, id: &str) -> String {
    let f: Value = http().get(format!("{url}/v2/{PARENT}/functions/{id}")).send().await.unwrap().json().await.unwrap();
    f["serviceConfig"]["uri"].as_str().unwrap_or_else(|| panic!("no uri: {f}")).to_string()
}

/// `entries:list` with a filter, oldest first.
pub async fn entries(url: &str, filter: &str) -> Vec<Value> {
    let r: Value = http()
        .post(format!("{url}/v2/entries:list"))
        .json(&json!({"resourceNames": ["projects/test-project"], "filter": filter, "orderBy": "timestamp asc", "pageSize": 1000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["entries"].as_array().cloned().unwrap_or_default()
}

/// Waits until `entries:list` with `filter` holds an entry for which `pred` holds.
pub async fn wait_entry(url: &str, filter: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        if let Some(e) = entries(url, filter).await.into_iter().find(|e| pred(e)) {
            return e;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no such entry for {filter}: {:#?}",
            entries(url, filter).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
