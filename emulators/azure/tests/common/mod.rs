//! What the tests share: the test handler (this crate's `test-handler` example, built when
//! missing), function app folders made of it, an emulator on a free port, zips, and calls with a
//! chosen `Host` header.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use faas_packaging::zip::{zip_bytes, Entry};
use serde_json::{json, Value};

/// The test handler executable.
pub fn handler() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        // tests run from target/<profile>/deps; examples are in target/<profile>/examples.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let path = profile_dir.join("examples").join("test-handler");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/test-handler.rs");
        let stale = match (
            std::fs::metadata(&path).and_then(|m| m.modified()),
            std::fs::metadata(&source).and_then(|m| m.modified()),
        ) {
            (Ok(built), Ok(src)) => built < src,
            _ => true,
        };
        if stale {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "-p", "faas-emulator-azure", "--example", "test-handler"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo build --example test-handler");
            assert!(status.success(), "building the test handler failed");
        }
        assert!(path.is_file(), "the test handler is not at {}", path.display());
        path
    })
}

/// A host.json for the test handler (by absolute path), with extra members merged in.
pub fn host_json(extra: Value) -> Value {
    let mut host = json!({
        "version": "2.0",
        "functionTimeout": "00:00:30",
        "logging": {"fileLoggingMode": "always"},
        "extensions": {"http": {"routePrefix": "api"}},
        "customHandler": {
            "description": {"defaultExecutablePath": handler().display().to_string(), "workingDirectory": "", "arguments": []},
            "enableForwardingHttpRequest": false
        }
    });
    merge(&mut host, extra);
    host
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// function.json of an HTTP function (`req`/`res`).
pub fn http_function(auth: &str, route: Option<&str>) -> Value {
    let mut trigger = json!({"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": auth,
                             "methods": ["get", "post", "put", "patch", "delete"]});
    if let Some(r) = route {
        trigger["route"] = json!(r);
    }
    json!({"bindings": [trigger, {"type": "http", "direction": "out", "name": "res"}]})
}

/// A function app folder: host.json and one folder per function.
pub fn app_dir(host: &Value, functions: &[(&str, Value)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("host.json"), serde_json::to_vec_pretty(host).unwrap()).unwrap();
    for (name, config) in functions {
        std::fs::create_dir_all(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join("function.json"), serde_json::to_vec_pretty(config).unwrap())
            .unwrap();
    }
    dir
}

/// The files of a folder as a zip (modes kept).
pub fn zip_dir(dir: &Path) -> Vec<u8> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<Entry>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push(Entry::bytes(rel, std::fs::read(&p).unwrap(), mode));
            }
        }
    }
    let mut entries = Vec::new();
    walk(dir, dir, &mut entries);
    zip_bytes(entries).unwrap()
}

/// A zip of named texts.
pub fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    zip_bytes(files.iter().map(|(p, c)| Entry::bytes(*p, c.as_bytes().to_vec(), 0o644)).collect()).unwrap()
}

pub fn options() -> faas_emulator_azure::EmulatorOptions {
    faas_emulator_azure::EmulatorOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        echo_logs: std::env::var_os("AZURE_TEST_ECHO").is_some(),
        ..Default::default()
    }
}

pub async fn emulator() -> faas_emulator_azure::Emulator {
    faas_emulator_azure::start(options()).await.expect("the emulator starts")
}

/// An emulator running one app made of `functions`, with `settings`.
pub async fn running(
    app: &str,
    host: &Value,
    functions: &[(&str, Value)],
    settings: &[(&str, &str)],
) -> (faas_emulator_azure::Emulator, tempfile::TempDir) {
    let e = emulator().await;
    let dir = app_dir(host, functions);
    let settings: BTreeMap<String, String> = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    e.run_folder(app, dir.path(), settings).await.expect("the app runs");
    (e, dir)
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

/// A request to the emulator with `Host: <host>`.
pub fn to(
    e: &faas_emulator_azure::Emulator,
    method: reqwest::Method,
    host: &str,
    path: &str,
) -> reqwest::RequestBuilder {
    http().request(method, format!("{}{path}", e.url())).header("host", host)
}

pub fn site_host(app: &str) -> String {
    format!("{app}.azurewebsites.net")
}

pub fn scm_host(app: &str) -> String {
    format!("{app}.scm.azurewebsites.net")
}

/// Polls `check` every 50 ms until it gives a value or `timeout` passes.
pub async fn eventually<T>(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lines of a function's log files, read through Kudu's VFS.
pub async fn function_log(e: &faas_emulator_azure::Emulator, app: &str, function: &str) -> Vec<String> {
    let dir = format!("/api/vfs/LogFiles/Application/Functions/Function/{function}/");
    let list = to(e, reqwest::Method::GET, &scm_host(app), &dir).bearer_auth("t").send().await.unwrap();
    if list.status() == 404 {
        return Vec::new();
    }
    assert_eq!(list.status(), 200, "listing {dir}");
    let entries: Value = list.json().await.unwrap();
    let mut lines = Vec::new();
    for entry in entries.as_array().unwrap() {
        let href = entry["href"].as_str().unwrap();
        let path = href.split_once("/api/vfs/").unwrap().1;
        let text = to(e, reqwest::Method::GET, &scm_host(app), &format!("/api/vfs/{path}"))
            .bearer_auth("t")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        lines.extend(text.lines().map(str::to_string));
    }
    lines
}

/// The message of a log line (after `yyyy-MM-ddTHH:mm:ss.fff [Level] `), checking its format.
pub fn message(line: &str) -> (&str, &str) {
    let (stamp, rest) = line.split_at(23);
    assert!(
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S%.3f").is_ok(),
        "`{line}` does not start with yyyy-MM-ddTHH:mm:ss.fff"
    );
    let rest = rest.strip_prefix(" [").unwrap_or_else(|| panic!("no level in `{line}`"));
    let (level, message) = rest.split_once("] ").unwrap();
    (level, message)
}
