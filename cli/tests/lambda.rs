//! The Lambda backend end to end through the `faas` command: an empty local Lambda from
//! `faas dev --emulate lambda`, a project deployed to it through a `kind = "lambda"` profile
//! with aws-sdk-lambda, invoked with its log tail, listed and removed.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_app_is_built_deployed_invoked_and_removed_on_the_local_lambda() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let port = free_port();
    let child = faas_cmd(&empty, &["dev", "--emulate", "lambda", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start faas dev --emulate lambda");
    let mut emulator = Kill(child);
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(emulator.0.try_wait().unwrap().is_none(), "the emulator exited");
        assert!(started.elapsed() < Duration::from_secs(60), "the emulator did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

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
