//! What the tests share: the fixture app started as the Functions host starts its custom handler
//! (AZURE-HOST.md §1.2), a function app folder to point it at, and invocation requests built the
//! way the Functions host builds them (§2: chunked JSON body, its three headers, values in its
//! encoding).
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Map, Value};

/// The host version the requests claim (AZURE-HOST.md's snapshot).
pub const HOST_VERSION: &str = "4.1037.0.0";

/// host.json as the runner's package writes it (azure-contract.md §1).
pub const HOST_JSON: &str = r#"{"version": "2.0",
 "functionTimeout": "00:00:30",
 "logging": {"fileLoggingMode": "always"},
 "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"},
 "extensions": {"http": {"routePrefix": "api"}},
 "customHandler": {"description": {"defaultExecutablePath": "faas-app", "workingDirectory": "", "arguments": []},
                   "enableForwardingHttpRequest": false}}"#;

/// The same with forwarding on.
pub fn host_json_forwarding() -> String {
    HOST_JSON.replace(r#""enableForwardingHttpRequest": false"#, r#""enableForwardingHttpRequest": true"#)
}

/// function.json of an HTTP function (`route` omitted when `None`).
pub fn http_function(route: Option<&str>) -> String {
    let mut trigger = json!({"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function",
        "methods": ["get", "post", "put", "patch", "delete"]});
    if let Some(route) = route {
        trigger["route"] = json!(route);
    }
    json!({"bindings": [trigger, {"type": "http", "direction": "out", "name": "res"}]}).to_string()
}

/// function.json of a queue-triggered function.
pub fn queue_function(binding: &str, queue: &str) -> String {
    json!({"bindings": [{"type": "queueTrigger", "direction": "in", "name": binding, "queueName": queue,
        "connection": "AzureWebJobsStorage"}]})
    .to_string()
}

/// function.json of an Event Grid-triggered function.
pub fn event_grid_function() -> String {
    json!({"bindings": [{"type": "eventGridTrigger", "direction": "in", "name": "event"}]}).to_string()
}

/// A function app folder: host.json (when given) and `<name>/function.json` for each function.
pub fn app_folder(host_json: Option<&str>, functions: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if let Some(host_json) = host_json {
        std::fs::write(dir.path().join("host.json"), host_json).unwrap();
    }
    for (name, function_json) in functions {
        std::fs::create_dir_all(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join("function.json"), function_json).unwrap();
    }
    dir
}

/// Builds the fixture app once (an example target of this crate) and returns its path.
pub fn fixture() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        faas_packaging::build::build_example(dir, "faas-runner-azure", "faas-azure-fixture")
            .expect("the fixture builds")
    })
    .clone()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The fixture as a custom handler, with its stdout and stderr lines collected.
pub struct Handler {
    child: Child,
    pub port: u16,
    pub url: String,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(out: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// The command the Functions host runs: the environment of AZURE-HOST.md §1.2 (its app settings
/// plus exactly five variables), `FUNCTIONS_APP_ROOT_PATH` pointing at `folder` when given.
pub fn handler_command(port: u16, folder: Option<&Path>, extra: &[(&str, &str)]) -> Command {
    let worker = uuid::Uuid::new_v4().to_string();
    let mut cmd = Command::new(fixture());
    cmd.env_clear()
        .env("FUNCTIONS_WORKER_RUNTIME", "custom")
        .env("FUNCTIONS_EXTENSION_VERSION", "~4")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
        .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", &worker)
        .env("FUNCTIONS_HTTPWORKER_ID", &worker)
        .envs(extra.iter().copied());
    if let Some(folder) = folder {
        cmd.env("FUNCTIONS_APP_ROOT_PATH", folder).current_dir(folder);
    }
    cmd
}

/// Starts the handler and waits until it is ready the way the Functions host finds out: a bare
/// `GET /` every 25 ms until any HTTP answer.
pub async fn start(folder: Option<&Path>, extra: &[(&str, &str)]) -> Handler {
    let port = free_port();
    start_command(handler_command(port, folder, extra), port).await
}

pub async fn start_command(mut cmd: Command, port: u16) -> Handler {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the fixture");
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let url = format!("http://127.0.0.1:{port}");
    let mut handler = Handler { child, port, url, stdout, stderr };
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if http.get(format!("{}/", handler.url)).send().await.is_ok() {
            return handler;
        }
        if let Some(status) = handler.child.try_wait().unwrap() {
            panic!("the handler exited ({status}): {:?}", handler.stderr.lock().unwrap());
        }
        assert!(started.elapsed() < Duration::from_secs(30), "Initializing HttpWorker timed out.");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs the handler until it exits (at most `limit`): its exit status and stderr.
pub fn run_to_exit(mut cmd: Command, limit: Duration) -> (std::process::ExitStatus, String) {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start the fixture");
    let stderr = collect(child.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the handler did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_millis(50)); // the reader thread's last lines
    let text = stderr.lock().unwrap().join("\n");
    (status, text)
}

/// The value of an HTTP trigger as the Functions host builds it (`GetRequestAsJObject`,
/// AZURE-HOST.md §2.3), and the invocation body around it with the HTTP trigger's Metadata (§2.4).
pub struct HttpCall {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub params: Map<String, Value>,
}

impl HttpCall {
    pub fn new(method: &str, url: &str) -> HttpCall {
        HttpCall {
            method: method.into(),
            url: url.into(),
            headers: vec![("Accept".into(), "*/*".into())],
            body: None,
            params: Map::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> HttpCall {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A body, with its Content-Type and Content-Length.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> HttpCall {
        let body = body.into();
        self.headers.push(("Content-Type".into(), content_type.into()));
        self.headers.push(("Content-Length".into(), body.len().to_string()));
        self.body = Some(body);
        self
    }

    pub fn param(mut self, name: &str, value: &str) -> HttpCall {
        self.params.insert(name.into(), json!(value));
        self
    }

    /// `{"Data": {"req": ...}, "Metadata": {...}}` for function `function`.
    pub fn invocation(&self, function: &str) -> Value {
        let url = reqwest::Url::parse(&self.url).unwrap();
        let mut query = Map::new();
        for (k, v) in url.query_pairs() {
            let joined = match query.get(k.as_ref()).and_then(Value::as_str) {
                Some(prev) => format!("{prev},{v}"),
                None => v.to_string(),
            };
            query.insert(k.to_string(), json!(joined));
        }
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap()),
            None => url.host_str().unwrap().to_string(),
        };
        let mut headers: Map<String, Value> = Map::new();
        headers.insert("Host".into(), json!([host]));
        for (name, value) in &self.headers {
            let entry = headers.entry(name.clone()).or_insert_with(|| json!([]));
            entry.as_array_mut().unwrap().push(json!(value));
        }
        let mut req = Map::new();
        req.insert("Url".into(), json!(self.url));
        req.insert("Method".into(), json!(self.method));
        req.insert("Query".into(), Value::Object(query.clone()));
        req.insert("Headers".into(), Value::Object(headers.clone()));
        req.insert("Params".into(), Value::Object(self.params.clone()));
        // A call with a function key: one identity of AuthenticationType WebJobsAuthLevel.
        req.insert(
            "Identities".into(),
            json!([{"AuthenticationType": "WebJobsAuthLevel", "IsAuthenticated": true, "Actor": null,
                "BootstrapContext": null, "Claims": [
                    {"Issuer": "LOCAL AUTHORITY", "OriginalIssuer": "LOCAL AUTHORITY", "Properties": {},
                     "Type": "http://schemas.microsoft.com/2017/07/functions/claims/authlevel", "Value": "Function",
                     "ValueType": "http://www.w3.org/2001/XMLSchema#string"},
                    {"Issuer": "LOCAL AUTHORITY", "OriginalIssuer": "LOCAL AUTHORITY", "Properties": {},
                     "Type": "http://schemas.microsoft.com/2017/07/functions/claims/keyid", "Value": "default",
                     "ValueType": "http://www.w3.org/2001/XMLSchema#string"}],
                "Label": null, "Name": null, "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
                "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}]),
        );
        let content_type = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.to_ascii_lowercase());
        let mut metadata = Map::new();
        if let Some(body) = self.body.as_ref().filter(|b| !b.is_empty()) {
            let binary = content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/octet-stream") || c.starts_with("multipart/"));
            let text = if binary {
                base64::engine::general_purpose::STANDARD.encode(body)
            } else {
                String::from_utf8_lossy(body).into_owned()
            };
            // The binding data of a JSON object body: its top-level members in the host's encoding.
            if let Ok(Value::Object(members)) = serde_json::from_str::<Value>(&text) {
                for (k, v) in members {
                    match v {
                        Value::Object(_) => metadata.insert(k, v),
                        Value::Array(_) | Value::Null => continue,
                        Value::String(s) => metadata.insert(k, json!(json!(s).to_string())),
                        Value::Bool(b) => {
                            metadata.insert(k, json!(json!(if b { "True" } else { "False" }).to_string()))
                        }
                        other => metadata.insert(k, json!(json!(other.to_string()).to_string())),
                    };
                }
            }
            req.insert("Body".into(), json!(text));
        }
        for (k, v) in &query {
            if k != "code" {
                metadata.insert(k.clone(), json!(v.to_string()));
            }
        }
        for (k, v) in &self.params {
            metadata.insert(k.clone(), json!(v.to_string()));
        }
        metadata.insert("Query".into(), Value::Object(query));
        let joined: Map<String, Value> = headers
            .into_iter()
            .map(|(k, v)| {
                let values: Vec<String> =
                    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
                (k, json!(values.join(",")))
            })
            .collect();
        metadata.insert("Headers".into(), Value::Object(joined));
        metadata.insert("sys".into(), sys(function));
        json!({"Data": {"req": Value::Object(req)}, "Metadata": Value::Object(metadata)})
    }
}

/// The `sys` binding data of every invocation.
pub fn sys(function: &str) -> Value {
    json!({"MethodName": function, "UtcNow": "2026-12-01T19:22:58.907293Z", "RandGuid": uuid::Uuid::new_v4().to_string()})
}

/// What the handler answered.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
    pub json: Value,
    pub invocation_id: String,
}

impl Answer {
    /// The HTTP output `Outputs.res`, checked to be what the Functions host reads: the answer is
    /// 200 `application/json`, non-empty, with `Outputs`, `Logs` and `ReturnValue: null`; `res`
    /// has a numeric `statusCode` (never `status`) and a Content-Type header.
    pub fn res(&self) -> &Value {
        assert_eq!(self.status, 200, "{}", self.json);
        assert_eq!(self.content_type, "application/json; charset=utf-8");
        assert!(self.json["Logs"].is_array() && self.json["ReturnValue"].is_null(), "{}", self.json);
        let outputs = self.json["Outputs"].as_object().unwrap_or_else(|| panic!("no Outputs: {}", self.json));
        assert_eq!(outputs.keys().collect::<Vec<_>>(), ["res"], "{}", self.json);
        let res = &self.json["Outputs"]["res"];
        assert!(res["statusCode"].is_u64(), "statusCode must be a number: {res}");
        assert!(res.get("status").is_none(), "never `status`: {res}");
        assert!(res["headers"]["Content-Type"].is_string(), "always a Content-Type: {res}");
        assert!(res["body"].is_string(), "{res}");
        res
    }

    pub fn status_code(&self) -> u64 {
        self.res()["statusCode"].as_u64().unwrap()
    }

    /// `res.body` as JSON.
    pub fn res_json(&self) -> Value {
        let body = self.res()["body"].as_str().unwrap();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("res.body is not JSON ({e}): {body}"))
    }

    pub fn logs(&self) -> Vec<String> {
        self.json["Logs"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect()
    }
}

/// Posts `body` to `/{function}` as the Functions host does: chunked (no Content-Length), its
/// Content-Type, `X-Azure-Functions-InvocationId`, `X-Azure-Functions-HostVersion` and
/// `User-Agent`, plus `extra` headers (a `traceparent`).
pub async fn invoke_raw(handler: &Handler, function: &str, body: Vec<u8>, extra: &[(&str, &str)]) -> Answer {
    let invocation_id = uuid::Uuid::new_v4().to_string();
    let half = body.len() / 2;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(body[..half].to_vec()), Ok(body[half..].to_vec())];
    let mut request = reqwest::Client::new()
        .post(format!("{}/{function}", handler.url))
        .header("Content-Type", "application/json; charset=utf-8")
        .header("X-Azure-Functions-HostVersion", HOST_VERSION)
        .header("X-Azure-Functions-InvocationId", &invocation_id)
        .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)));
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let resp = request.send().await.unwrap();
    answer_of(resp, invocation_id).await
}

pub async fn invoke(handler: &Handler, function: &str, body: &Value, extra: &[(&str, &str)]) -> Answer {
    invoke_raw(handler, function, serde_json::to_vec(body).unwrap(), extra).await
}

pub async fn answer_of(resp: reqwest::Response, invocation_id: String) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let content_type = headers.get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = resp.bytes().await.unwrap().to_vec();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Answer { status, content_type, headers, body, json, invocation_id }
}
