//! Helpers shared by the integration tests: an emulator on 127.0.0.1:0, a REST client with the
//! guest key, zips of `exec` scripts, and the ActionLoop script in Python.
#![allow(dead_code)]

use std::io::Write;
use std::time::Duration;

use base64::Engine;
use faas_emulator_openwhisk::{Emulator, EmulatorOptions};
use serde_json::{json, Value};

pub async fn emulator() -> Emulator {
    emulator_with(|_| {}).await
}

pub async fn emulator_with(change: impl FnOnce(&mut EmulatorOptions)) -> Emulator {
    let mut options = EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
    change(&mut options);
    faas_emulator_openwhisk::start(options).await.expect("emulator starts")
}

/// A REST client of the emulator's `/api/v1`, with the guest key.
pub struct Api {
    pub base: String,
    pub auth: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(emulator: &Emulator) -> Api {
        Api {
            base: format!("{}/api/v1", emulator.url()),
            auth: emulator.auth().to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let (user, key) = self.auth.split_once(':').unwrap();
        self.http.request(method, format!("{}{path}", self.base)).basic_auth(user, Some(key))
    }

    /// Sends and returns the status and the JSON body (`Null` when empty or not JSON).
    pub async fn send(&self, builder: reqwest::RequestBuilder) -> (u16, Value, reqwest::header::HeaderMap) {
        let response = builder.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), headers)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self.send(self.request(reqwest::Method::GET, path)).await;
        (s, v)
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self.send(self.request(reqwest::Method::DELETE, path)).await;
        (s, v)
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let (s, v, _) = self.send(self.request(reqwest::Method::PUT, path).json(body)).await;
        (s, v)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value, reqwest::header::HeaderMap) {
        self.send(self.request(reqwest::Method::POST, path).json(body)).await
    }

    /// Creates (or overwrites) a native action from a zip.
    pub async fn native(&self, name: &str, zip: &[u8], limits: Value) -> Value {
        let body = json!({
            "exec": { "kind": "blackbox", "image": "openwhisk/dockerskeleton", "code": b64(zip) },
            "limits": limits,
        });
        let (status, value) = self.put(&format!("/namespaces/_/actions/{name}?overwrite=true"), &body).await;
        assert_eq!(status, 200, "create {name}: {value}");
        value
    }

    /// Creates (or overwrites) an ActionLoop action (image `openwhisk/actionloop-v2`) from a zip.
    pub async fn actionloop(&self, name: &str, zip: &[u8], limits: Value) -> Value {
        let body = json!({
            "exec": { "kind": "blackbox", "image": "openwhisk/actionloop-v2", "code": b64(zip), "binary": true },
            "limits": limits,
        });
        let (status, value) = self.put(&format!("/namespaces/_/actions/{name}?overwrite=true"), &body).await;
        assert_eq!(status, 200, "create {name}: {value}");
        value
    }

    /// A blocking invoke: (status, body).
    pub async fn invoke(&self, name: &str, params: &Value) -> (u16, Value) {
        let (s, v, _) = self.post(&format!("/namespaces/_/actions/{name}?blocking=true"), params).await;
        (s, v)
    }

    /// Polls an activation until it is recorded.
    pub async fn activation(&self, id: &str) -> Value {
        for _ in 0..200 {
            let (status, value) = self.get(&format!("/namespaces/_/activations/{id}")).await;
            if status == 200 {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("activation {id} never recorded");
    }
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A zip of `(name, mode, contents)` entries.
pub fn zip_of(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, mode, data) in entries {
        out.start_file(*name, zip::write::SimpleFileOptions::default().unix_permissions(*mode)).unwrap();
        out.write_all(data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// A zip holding one `exec` script (mode 0644: the emulator must set the execute bit).
pub fn exec_zip(script: &str) -> Vec<u8> {
    zip_of(&[("exec", 0o644, script.as_bytes())])
}

/// The annotation `key` of a record.
pub fn annotation<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    record["annotations"].as_array()?.iter().find(|kv| kv["key"] == key).map(|kv| &kv["value"])
}

/// The real python3 binary (an ActionLoop child gets no PATH, so its shebang must be absolute).
pub fn python3() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed by the ActionLoop tests");
    assert!(out.status.success(), "python3 does not run");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// An ActionLoop `exec` in Python: acknowledges on fd 3 when `__OW_WAIT_FOR_ACK` is set, then
/// answers each stdin line with one line on fd 3. The parameters steer it: `op` = `facts`
/// (the default: pid, environment, the request's other fields), `sleep`, `exit`, `error`,
/// `big`, `scalar`.
pub fn actionloop_script() -> String {
    format!(
        r#"#!{python}
import json, os, sys, time
out = os.fdopen(3, "w")
if os.environ.get("__OW_WAIT_FOR_ACK"):
    out.write(json.dumps({{"ok": True}}) + "\n"); out.flush()
count = 0
for line in sys.stdin:
    count += 1
    req = json.loads(line)
    value = req.get("value", {{}})
    op = value.get("op", "facts")
    print("log line %d to stdout" % count, flush=True)
    print("log line %d to stderr" % count, file=sys.stderr, flush=True)
    if op == "sleep":
        time.sleep(value.get("seconds", 10))
    if op == "exit":
        sys.exit(3)
    if op == "error":
        result = {{"error": "bad thing"}}
    elif op == "big":
        result = {{"big": "x" * (1100 * 1024)}}
    elif op == "scalar":
        out.write("42\n"); out.flush(); continue
    else:
        env = {{k: v for k, v in os.environ.items() if k.startswith("__OW_") or k == "PATH"}}
        result = {{"pid": os.getpid(), "count": count, "env": env, "request": {{k: v for k, v in req.items() if k != "value"}}, "value": value}}
    out.write(json.dumps(result) + "\n"); out.flush()
"#,
        python = python3()
    )
}
