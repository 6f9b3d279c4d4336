//! A faas binary (fixture/main.rs, whose main is `faas::serve`) under each of the three ways
//! OpenWhisk runs a native action, driven by hand-written requests that follow the action
//! interface: the ActionLoop proxy's stdin and fd 3 (openwhisk-runtime-go `docs/ACTION.md`),
//! dockerskeleton's argv\[1\] and last stdout line (openwhisk-runtime-docker `actionproxy.py`),
//! and a Docker action's `/init` + `/run` on HTTP (apache/openwhisk `docs/actions-new.md`).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

mod common;
use common::fixture;

const SENTINEL: &str = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A run body as the invoker writes it: every key but `value` a string, `deadline` included.
fn run_body(action: &str, id: &str, value: Value, timeout_ms: u64) -> Value {
    json!({
        "value": value,
        "namespace": "guest",
        "action_name": format!("/guest/fixture/{action}"),
        "action_version": "0.0.1",
        "activation_id": id,
        "transaction_id": format!("tid-{id}"),
        "deadline": (now_ms() + timeout_ms).to_string(),
        "api_key": "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:secret",
    })
}

/// The fixture started as the ActionLoop proxy starts `exec`: a pipe on fd 3 for results (here
/// the shell's stdout), stdout and stderr to log files.
struct ActionLoop {
    child: Child,
    stdin: ChildStdin,
    results: BufReader<std::process::ChildStdout>,
    dir: tempfile::TempDir,
}

impl ActionLoop {
    fn start(ack: bool) -> ActionLoop {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(r#"exec "$0" 3>&1 1>"$1" 2>"$2""#)
            .arg(fixture())
            .arg(dir.path().join("stdout"))
            .arg(dir.path().join("stderr"))
            .env_clear()
            .env("__OW_PROXY_VERSION", "1.18.0")
            .env("__OW_API_HOST", "http://127.0.0.1:1")
            .env("GREETING", "from init")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if ack {
            cmd.env("__OW_WAIT_FOR_ACK", "1");
        }
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let results = BufReader::new(child.stdout.take().unwrap());
        ActionLoop { child, stdin, results, dir }
    }

    fn line(&mut self) -> Value {
        let mut line = String::new();
        self.results.read_line(&mut line).unwrap();
        assert!(line.ends_with('\n'), "a result is one line ending in a newline: {line:?}");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    }

    fn run(&mut self, action: &str, id: &str, value: Value) -> Value {
        self.send(&run_body(action, id, value, 60_000).to_string());
        self.line()
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }
}

impl Drop for ActionLoop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn actionloop_acknowledges_then_answers_one_line_per_request_in_one_warm_process() {
    let mut p = ActionLoop::start(true);
    assert_eq!(p.line(), json!({"ok": true}), "the acknowledgement comes first when __OW_WAIT_FOR_ACK is set");
    assert_eq!(p.run("hello", "a1", json!({"name": "Ada"})), json!({"greeting": "Hello, Ada!"}));
    let first = p.run("counter", "a2", json!({}));
    let second = p.run("counter", "a3", json!({}));
    assert_eq!(first["pid"], second["pid"], "one process serves every activation");
    assert_eq!((first["count"].as_u64(), second["count"].as_u64()), (Some(1), Some(2)));

    let facts = p.run("facts", "c7bb1339cb4f40e3a6ccead6c99f804e", json!({}));
    assert_eq!(facts["invocation_id"], "c7bb1339cb4f40e3a6ccead6c99f804e");
    assert_eq!(facts["function_name"], "facts", "the function comes from each request's action_name");
    assert_eq!(facts["backend"], "openwhisk");
    assert_eq!(facts["action_name"], "/guest/fixture/facts");
    assert_eq!(facts["namespace"], "guest");
    assert_eq!(facts["has_api_key"], true);
    assert_eq!(facts["greeting"], "from init", "init parameters are the process environment");
    let remaining = facts["remaining_ms"].as_u64().unwrap();
    assert!(remaining > 50_000 && remaining <= 60_000, "the deadline string is read: {remaining} ms left");

    // Results OpenWhisk cannot carry as they are travel in the envelope; errors are `{"error":..}`.
    let text =
        p.run("text", "a4", json!({"faas:payload": {"contentType": "application/json", "bodyBase64": "IkFkYSI="}}));
    assert_eq!(text["faas:payload"]["contentType"], "application/json", "{text}");
    let fail = p.run("fail", "a5", json!({"message": "nope"}));
    assert_eq!(fail, json!({"error": {"kind": "function", "errorType": "ProbeError", "errorMessage": "nope"}}));
    let panic = p.run("panics", "a6", json!({}));
    assert_eq!(panic["error"]["kind"], "crash", "{panic}");

    // A line that is no run body gets an error line and the loop goes on.
    p.send("this is not JSON");
    assert_eq!(p.line()["error"]["kind"], "bad_input");
    p.send(&json!({"value": "not an object", "action_name": "/guest/fixture/hello"}).to_string());
    assert_eq!(p.line()["error"]["kind"], "bad_input");
    p.send(&run_body("nope", "a7", json!({}), 60_000).to_string());
    let unknown = p.line();
    assert_eq!(unknown["error"]["kind"], "not_found", "{unknown}");
    assert_eq!(p.run("hello", "a8", json!({"name": "again"})), json!({"greeting": "Hello, again!"}));

    // Logs go to stdout and stderr; the sentinel is the proxy's to write, not the action's.
    assert_eq!(p.run("logs", "a9", json!({"lines": ["one", "two"]})), json!({"logged": true}));
    let stdout = p.stdout();
    assert!(stdout.contains("out: one\nout: two\n"), "{stdout}");
    assert!(!stdout.contains(SENTINEL), "{stdout}");
}

#[test]
fn actionloop_writes_no_acknowledgement_unless_asked() {
    let mut p = ActionLoop::start(false);
    // The first line on fd 3 is the first result: an unrequested ack would shift every result.
    assert_eq!(p.run("hello", "b1", json!({"name": "Ada"})), json!({"greeting": "Hello, Ada!"}));
}

#[test]
fn actionloop_stops_a_handler_at_its_deadline_and_refuses_results_over_1_mb() {
    let mut p = ActionLoop::start(true);
    p.line();
    let started = std::time::Instant::now();
    p.send(&run_body("slow", "d1", json!({"ms": 10_000}), 600).to_string());
    let late = p.line();
    let took = started.elapsed();
    assert_eq!(late["error"]["kind"], "timeout", "{late}");
    assert!(took < Duration::from_secs(3), "stopped at the deadline, not after the sleep: {took:?}");
    let big = p.run("big", "d2", json!({"bytes": 1_100_000}));
    assert_eq!(big["error"]["kind"], "payload_too_large", "{}", &big.to_string()[..200.min(big.to_string().len())]);
    assert!(big["error"]["errorMessage"].as_str().unwrap().contains("OpenWhisk's limit is 1048576 bytes"), "{big}");
    let fits = p.run("big", "d3", json!({"bytes": 1000}));
    assert_eq!(fits["data"].as_str().unwrap().len(), 1000);
}

/// Runs the fixture as the dockerskeleton proxy does for one activation: the parameters as
/// argv[1] (when given) and on stdin, the facts as `__OW_*` variables. Returns stdout and stderr.
fn skeleton(action: &str, params: &Value, with_arg: bool) -> (String, String) {
    let body = run_body(action, "s1", params.clone(), 60_000);
    let mut cmd = Command::new(fixture());
    cmd.env_clear().env("__OW_API_HOST", "http://127.0.0.1:1");
    for (k, v) in body.as_object().unwrap() {
        if k != "value" {
            cmd.env(format!("__OW_{}", k.to_uppercase()), v.as_str().unwrap());
        }
    }
    if with_arg {
        cmd.arg(params.to_string());
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    match child.stdin.take().unwrap().write_all(params.to_string().as_bytes()) {
        Ok(()) => {}
        // With argv[1] the process need not read stdin, and may be done before we write it.
        Err(e) if with_arg && e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => panic!("writing the parameters to stdin: {e}"),
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the process ends normally after its activation: {:?}", out.status);
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn last_line(stdout: &str) -> Value {
    let last = stdout.trim_end_matches('\n').rsplit('\n').next().unwrap();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("the last stdout line is no JSON ({e}): {stdout:?}"))
}

#[test]
fn dockerskeleton_reads_argv_or_stdin_and_answers_on_the_last_stdout_line() {
    let (stdout, _) = skeleton("hello", &json!({"name": "Ada"}), true);
    assert_eq!(last_line(&stdout), json!({"greeting": "Hello, Ada!"}));
    let (stdout, _) = skeleton("hello", &json!({"name": "stdin"}), false);
    assert_eq!(last_line(&stdout), json!({"greeting": "Hello, stdin!"}), "large parameters come on stdin only");

    let (stdout, stderr) = skeleton("logs", &json!({"lines": ["one", "two"]}), true);
    assert_eq!(stdout, "out: one\nout: two\n{\"logged\":true}\n", "logs before the result, nothing after it");
    assert!(stderr.contains("err: one\nerr: two\n"), "{stderr}");

    let (stdout, _) = skeleton("facts", &json!({}), true);
    let facts = last_line(&stdout);
    assert_eq!((facts["invocation_id"].as_str(), facts["function_name"].as_str()), (Some("s1"), Some("facts")));
    assert!(facts["remaining_ms"].as_u64().unwrap() > 50_000, "{facts}");

    let (stdout, _) = skeleton("fail", &json!({"message": "nope"}), true);
    assert_eq!(last_line(&stdout)["error"]["errorType"], "ProbeError");
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP/1.1 request; the status and body of the answer.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn a_docker_action_serves_init_once_then_run_with_a_sentinel_after_each_activation() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let stdout = dir.path().join("stdout");
    let mut child = Command::new(fixture())
        .env_clear()
        .env("__OW_API_HOST", "http://127.0.0.1:1")
        .env("FAAS_OPENWHISK_PORT", port.to_string())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the proxy never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let hello = run_body("hello", "p1", json!({"name": "Ada"}), 60_000).to_string();
    let (status, body) = http(port, "POST", "/run", &hello);
    assert_eq!((status, body.trim()), (500, r#"{"error":"no action defined yet"}"#));

    let init = json!({"value": {"name": "hello", "main": "main", "binary": true, "code": "",
        "env": {"GREETING": "from init", "__OW_NAMESPACE": "guest"}}});
    assert_eq!(http(port, "POST", "/init", &init.to_string()).0, 200);
    let (status, body) = http(port, "POST", "/init", &init.to_string());
    assert_eq!((status, body.trim()), (403, r#"{"error":"Cannot initialize the action more than once."}"#));

    let (status, body) = http(port, "POST", "/run", &hello);
    assert_eq!((status, serde_json::from_str::<Value>(&body).unwrap()), (200, json!({"greeting": "Hello, Ada!"})));
    let (status, body) = http(port, "POST", "/run", &run_body("facts", "p2", json!({}), 60_000).to_string());
    let facts: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, facts["invocation_id"].as_str()), (200, Some("p2")));
    assert_eq!(facts["init_greeting"], "from init", "the /init variables reach the handler");
    let (status, body) = http(port, "POST", "/run", &run_body("fail", "p3", json!({}), 60_000).to_string());
    let fail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, fail["error"]["kind"].as_str()),
        (200, Some("function")),
        "an application error is a 200 with `error`"
    );

    let (status, body) = http(port, "POST", "/run", "[1,2]");
    assert_eq!(status, 400, "{body}");
    let (status, _) = http(port, "GET", "/", "");
    assert_eq!(status, 404);
    let huge = format!(r#"{{"value":{{"data":"{}"}}}}"#, "x".repeat(1_200_000));
    let (status, body) = http(port, "POST", "/run", &huge);
    assert_eq!(status, 413, "{body}");

    let _ = child.kill();
    let _ = child.wait();
    let logs = std::fs::read_to_string(&stdout).unwrap();
    // One sentinel per /run: the refused one before /init, three activations, two refused bodies.
    assert_eq!(logs.matches(SENTINEL).count(), 6, "{logs}");
}
