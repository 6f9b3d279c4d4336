//! The Lambda backend end to end through the `faas` command: an empty local Lambda from
//! `faas dev --emulate lambda`, a project deployed to it through a `kind = "lambda"` profile
//! with aws-sdk-lambda, invoked with its log tail, listed and removed. Then, without building an
//! app: what `faas` prints about AWS credentials, how it reports an answer it cannot read, and
//! which `errorType` an AWS error keeps. Every server is on 127.0.0.1; no call leaves the machine.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn an_app_is_built_deployed_invoked_and_removed_on_the_local_lambda() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (_emulator, url) = start_emulator(faas_cmd(&empty, &[]), "lambda");

    let o = faas(tmp.path(), &["new", "greeter"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let project = tmp.path().join("greeter");
    let toml = project.join("faas.toml");
    let mut config = std::fs::read_to_string(&toml).unwrap();
    config.push_str(&format!("\n[backends.emu]\nkind = \"lambda\"\nregion = \"us-east-1\"\nendpoint = \"{url}\"\n"));
    std::fs::write(&toml, config).unwrap();

    // `faas build`: the bootstrap zip.
    let o = faas(&project, &["build", "--backend", "emu", "--json"]);
    let v = json(&o);
    assert_eq!(v["ok"], true, "{v}\n{}", stderr(&o));
    let zip = std::path::PathBuf::from(v["artifact"].as_str().unwrap());
    assert!(zip.extension().is_some_and(|e| e == "zip") && zip.is_file(), "{v}");

    // Deploy twice: created, then unchanged.
    let o = faas(&project, &["deploy", "--backend", "emu", "--json"]);
    let v = json(&o);
    assert_eq!(v["report"]["created"], serde_json::json!(["greeter"]), "{v}\n{}", stderr(&o));
    let o = faas(&project, &["deploy", "--backend", "emu", "--json"]);
    assert_eq!(json(&o)["report"]["unchanged"], serde_json::json!(["greeter"]));

    // Invoke with the log tail (Lambda's LogType Tail).
    let o =
        faas(&project, &["invoke", "greeter", "--backend", "emu", "--data", r#"{"name":"Ada"}"#, "--logs", "--json"]);
    let v = json(&o);
    assert_eq!(v["result"]["message"], "Hello, Ada!", "{v}\n{}", stderr(&o));
    let logs: Vec<String> = v["logs"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
    assert!(logs.iter().any(|l| l.starts_with("START RequestId:")), "{logs:?}");
    assert!(logs.iter().any(|l| l.starts_with("REPORT RequestId:")), "{logs:?}");

    let sync_id = v["activationId"].as_str().unwrap().to_string();

    // An asynchronous invocation (InvocationType Event) is accepted with an id and then runs;
    // `faas activations` and `faas logs` read both from the emulator's CloudWatch Logs.
    let o = faas(
        &project,
        &["invoke", "greeter", "--backend", "emu", "--data", r#"{"name":"Later"}"#, "--async", "--json"],
    );
    let v = json(&o);
    assert_eq!(v["mode"], "async", "{v}\n{}", stderr(&o));
    let async_id = v["activationId"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let o = faas(&project, &["activations", "--backend", "emu", "--json"]);
        let v = json(&o);
        assert_eq!(v["ok"], true, "{v}\n{}", stderr(&o));
        let done =
            |id: &str| v["activations"].as_array().unwrap().iter().any(|a| a["id"] == id && a["status"] == "success");
        if done(&sync_id) && done(&async_id) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "both activations should be listed: {v}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let o = faas(&project, &["logs", "greeter", "--backend", "emu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&sync_id) && stdout(&o).contains(&async_id), "{}", stdout(&o));
    assert!(stdout(&o).contains("greeting Later"), "the function's own log lines: {}", stdout(&o));

    // Malformed JSON reaches the function's decoder and comes back as bad input.
    let o = faas(&project, &["invoke", "greeter", "--backend", "emu", "--data", r#"{"name":"#, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["error"]["kind"], "bad_input", "{}", stdout(&o));

    let o = faas(&project, &["list", "--backend", "emu"]);
    assert!(o.status.success() && stdout(&o).contains("greeter"), "{}\n{}", stdout(&o), stderr(&o));

    let o = faas(&project, &["remove", "greeter", "--backend", "emu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = faas(&project, &["invoke", "greeter", "--backend", "emu", "--data", "{}", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["error"]["kind"], "not_found", "{}", stdout(&o));
}

/// A real HTTP/1.1 server on 127.0.0.1 that answers every request with `status` and `body`
/// (`Connection: close`), for as long as the test runs. Returns its port.
fn canned_http_server(status: &'static str, content_type: &'static str, body: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut request_body = vec![0u8; length.min(1 << 20)];
                let _ = reader.read_exact(&mut request_body);
                let mut stream = reader.into_inner();
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&body));
            });
        }
    });
    port
}

/// An instance-metadata service on 127.0.0.1 that refuses every request (403), as IMDS does where
/// a session token cannot be had: before the fix, walking the credential chain printed
/// `failed to load IMDS session token` warnings. Pointing the chain here keeps it on this machine.
fn refusing_imds() -> u16 {
    canned_http_server("403 Forbidden", "text/plain", b"forbidden".to_vec())
}

/// A `faas` command with no AWS configuration at all: AWS_* cleared, HOME an empty directory (no
/// ~/.aws), and the instance-metadata endpoint at `imds` on 127.0.0.1.
fn faas_without_aws(dir: &Path, home: &Path, imds: u16, args: &[&str]) -> Command {
    let mut cmd = faas_cmd(dir, args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home)
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://127.0.0.1:{imds}"))
        .env_remove("FAAS_LOG");
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("run faas")
}

/// A directory with a faas.toml naming `backends` (TOML tables after `[app]`).
fn project(root: &Path, backends: &str) -> std::path::PathBuf {
    let dir = root.join("proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("faas.toml"), format!("[app]\nname = \"proj\"\n\n{backends}")).unwrap();
    dir
}

/// A temporary directory with an empty HOME in it, and a refusing instance-metadata service.
struct Bare {
    tmp: tempfile::TempDir,
    home: PathBuf,
    imds: u16,
}

impl Bare {
    fn new() -> Bare {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir(&home).unwrap();
        Bare { tmp, home, imds: refusing_imds() }
    }

    /// `faas ARGS` in `dir` without AWS configuration ([`faas_without_aws`]).
    fn faas(&self, dir: &Path, args: &[&str]) -> Command {
        faas_without_aws(dir, &self.home, self.imds, args)
    }

    /// `faas dev --emulate lambda` without AWS configuration, and a project with a profile `emu` for it.
    fn emulator_project(&self) -> (Kill, PathBuf) {
        let empty = self.tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let (emulator, url) = start_emulator(self.faas(&empty, &[]), "lambda");
        let backend = format!("[backends.emu]\nkind = \"lambda\"\nregion = \"us-east-1\"\nendpoint = \"{url}\"\n");
        (emulator, project(self.tmp.path(), &backend))
    }
}

fn assert_no_credential_noise(o: &Output) {
    let err = stderr(o);
    for word in ["IMDS", "credential", "provider failed"] {
        assert!(!err.contains(word), "stderr mentions `{word}`:\n{err}");
    }
}

#[test]
fn an_emulator_profile_needs_no_credentials_and_prints_nothing_about_them() {
    let bare = Bare::new();
    let (_emulator, dir) = bare.emulator_project();

    let o = run(bare.faas(&dir, &["list", "--backend", "emu", "--json"]));
    assert_eq!(json(&o)["ok"], true, "{}\n{}", stdout(&o), stderr(&o));
    assert_no_credential_noise(&o);
    let o = run(bare.faas(&dir, &["activations", "--backend", "emu"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_no_credential_noise(&o);
}

#[test]
fn without_credentials_real_aws_fails_in_one_line_that_says_how_to_provide_them() {
    let bare = Bare::new();
    // No endpoint: AWS itself. The credentials are missing, so nothing is sent.
    let dir = project(
        bare.tmp.path(),
        "[backends.prod]\nkind = \"lambda\"\nregion = \"eu-west-1\"\nrole = \"arn:aws:iam::123456789012:role/r\"\n",
    );
    // Once with the instance-metadata lookup disabled (the chain finds nothing), once with it
    // refused (a provider in the chain fails): both are one line, without the chain's warnings.
    for disabled in [true, false] {
        let mut cmd = bare.faas(&dir, &["list", "--backend", "prod", "--json"]);
        if disabled {
            cmd.env("AWS_EC2_METADATA_DISABLED", "true");
        }
        let o = run(cmd);
        assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
        let v = json(&o);
        let message = v["error"]["errorMessage"].as_str().unwrap();
        assert_eq!(v["error"]["kind"], "unauthorized", "{v}");
        assert_eq!(v["error"]["errorType"], "MissingCredentials", "{v}");
        assert!(!message.contains('\n') && message.len() < 600, "one short line: {message}");
        for how in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "aws_profile",
            "AWS_PROFILE",
            "aws configure",
            "aws sso login",
        ] {
            assert!(message.contains(how), "the message names `{how}`: {message}");
        }
        assert!(message.contains("eu-west-1"), "{message}");
        assert_no_credential_noise(&o);

        // The human form: the one line, and no second line repeating it.
        let mut cmd = bare.faas(&dir, &["list", "--backend", "prod"]);
        if disabled {
            cmd.env("AWS_EC2_METADATA_DISABLED", "true");
        }
        let o = run(cmd);
        let err = stderr(&o);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.starts_with("error: unauthorized: ") && err.contains("aws sso login"), "{err}");
    }
}

/// A FilterLogEvents answer as a third-party Lambda-compatible server sent it: 200, with the
/// timestamps as floats, which CloudWatch Logs' model (epoch milliseconds, integers) cannot read.
fn float_timestamp_log_events(n: usize) -> Vec<u8> {
    let events: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "logStreamName": "2026/01/01/[$LATEST]abc",
                "timestamp": 1767225600000.5 + i as f64,
                "ingestionTime": 1767225600001.5 + i as f64,
                "message": format!("START RequestId: {i:08} Version: $LATEST"),
                "eventId": i.to_string(),
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"events": events, "searchedLogStreams": []})).unwrap()
}

#[test]
fn an_answer_that_cannot_be_read_is_named_briefly_and_is_not_an_unreachable_backend() {
    let bare = Bare::new();
    let body = float_timestamp_log_events(2000);
    assert!(body.len() > 200_000, "{}", body.len());
    let port = canned_http_server("200 OK", "application/x-amz-json-1.1", body);
    let dir = project(
        bare.tmp.path(),
        &format!(
            "[backends.other]\nkind = \"lambda\"\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:{port}\"\n"
        ),
    );
    let o = run(bare.faas(&dir, &["logs", "greeter", "--backend", "other", "--json"]));
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    let v = json(&o);
    let message = v["error"]["errorMessage"].as_str().unwrap();
    let start: String = message.chars().take(400).collect();
    assert!(message.len() < 1000, "{} characters: {start}…", message.len());
    assert!(message.contains("could not be read") && message.contains("FilterLogEvents"), "{message}");
    assert!(message.contains("HTTP 200"), "{message}");
    assert_ne!(v["error"]["kind"], "backend_unavailable", "{v}");
    assert_eq!(v["error"]["errorType"], "UnreadableResponse", "{v}");
    let hint = v["hint"].as_str().unwrap_or_default();
    assert!(!hint.contains("emulator"), "the server answered; no hint to start one: {hint}");

    let o = run(bare.faas(&dir, &["logs", "greeter", "--backend", "other"]));
    let err = stderr(&o);
    let start: String = err.chars().take(400).collect();
    assert!(err.len() < 1000 && !err.contains("emulator"), "{} characters: {start}…", err.len());
}

#[test]
fn removing_a_missing_function_keeps_the_aws_error_code() {
    let bare = Bare::new();
    let (_emulator, dir) = bare.emulator_project();
    for args in [
        &["remove", "nope", "--backend", "emu", "--json"][..],
        &["invoke", "nope", "--backend", "emu", "--data", "{}", "--json"],
    ] {
        let o = run(bare.faas(&dir, args));
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}\n{}", stdout(&o), stderr(&o));
        let v = json(&o);
        assert_eq!(v["error"]["kind"], "not_found", "{args:?}: {v}");
        assert_eq!(v["error"]["errorType"], "ResourceNotFoundException", "{args:?}: {v}");
    }
}
