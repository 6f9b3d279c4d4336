//! `faas dev` and the `.faas/dev.json` it leaves behind, with real processes: a server killed with
//! SIGKILL leaves a stale file, and every command that targets it says so plainly (the pid, the
//! URL, and to start `faas dev`); a new `faas dev` replaces the stale file and serves; a second
//! `faas dev` while the first is alive is refused and changes nothing. Along the way: `faas dev
//! DIR`, its `--json` event stream, `invoke --file` / `--async` / `--backend`, and the `--json`
//! shapes of `list`, `activations`, `logs`, `remove`.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn dev_json(project: &Path) -> Option<Value> {
    std::fs::read(project.join(".faas").join("dev.json")).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// Waits until dev.json names `pid`; returns its URL.
fn wait_for_dev_json(project: &Path, server: &mut DevServer) -> String {
    let pid = server.child.id() as u64;
    // The first build of a project compiles every dependency: be generous.
    wait_for("dev.json", Duration::from_secs(40 * 60), server, |_| {
        dev_json(project).filter(|v| v["pid"].as_u64() == Some(pid)).map(|v| v["url"].as_str().unwrap().to_string())
    })
}

fn invoke_ada(project: &Path) -> std::process::Output {
    faas(project, &["invoke", "greeter", "--data", r#"{"name":"Ada"}"#])
}

#[test]
fn a_killed_dev_server_is_reported_and_replaced_and_a_live_one_is_not_doubled() {
    let tmp = tempfile::tempdir().unwrap();
    let o = faas(tmp.path(), &["new", "greeter"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let project = tmp.path().join("greeter");

    // `faas dev DIR` from the parent directory, with the --json event stream.
    let mut first = DevServer::start(tmp.path(), &["dev", "greeter", "--port", "0", "--no-watch", "--json"]);
    let url = wait_for_dev_json(&project, &mut first);
    let ready: Value = wait_for("the ready event", Duration::from_secs(60), &mut first, |s| {
        s.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == "ready")
    });
    assert_eq!(ready["url"], url.as_str(), "{ready}");
    assert_eq!(ready["pid"].as_u64(), Some(first.child.id() as u64), "{ready}");
    assert_eq!(ready["app"], "greeter");
    assert_eq!(ready["functions"][0]["name"], "greeter");
    assert_eq!(ready["functions"][0]["url"], format!("{url}/functions/greeter").as_str());
    assert!(
        first.stdout.lock().unwrap().iter().all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "{}",
        first.output()
    );

    // invoke --file (a .json file is sent as JSON), --file - (standard input), --backend NAME.
    let request = tmp.path().join("ada.json");
    std::fs::write(&request, r#"{"name":"File"}"#).unwrap();
    let o = faas(&project, &["invoke", "greeter", "--file", request.to_str().unwrap()]);
    assert!(o.status.success(), "{}\n{}", stderr(&o), first.output());
    assert_eq!(stdout(&o).trim(), r#"{"message":"Hello, File!"}"#);
    let mut child = faas_cmd(&project, &["invoke", "greeter", "--file", "-", "--content-type", "application/json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(br#"{"name":"Stdin"}"#).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o).trim(), r#"{"message":"Hello, Stdin!"}"#, "{}", stderr(&o));
    let o = faas(&project, &["invoke", "greeter", "--backend", "dev", "--data", r#"{"name":"Dev"}"#, "--json"]);
    let v = json(&o);
    assert_eq!(v["result"]["message"], "Hello, Dev!", "{v}");
    assert_eq!(v["function"], "greeter");
    assert_eq!(v["contentType"], "application/json");
    // A missing file is named, and nothing is sent.
    let o = faas(&project, &["invoke", "greeter", "--file", "missing.json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--file missing.json: cannot read it"), "{}", stderr(&o));

    // --async: an activation id now; `faas activations` shows it.
    let o = faas(&project, &["invoke", "greeter", "--data", r#"{"name":"Later"}"#, "--async"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().strip_prefix("accepted: activation ").expect("the activation id").to_string();
    assert!(stderr(&o).contains("faas activations --function greeter"), "{}", stderr(&o));
    wait_for("the async activation", Duration::from_secs(60), &mut first, |_| {
        let table = stdout(&faas(&project, &["activations"]));
        table.lines().find(|l| l.starts_with(&id) && l.contains("success")).map(|_| ())
    });

    // SIGKILL: no clean-up runs, dev.json stays behind.
    let old_pid = first.child.id();
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let stale = std::fs::read(project.join(".faas").join("dev.json")).expect("dev.json is left behind");

    let expected = format!(
        "the `faas dev` server recorded in .faas/dev.json (pid {old_pid}, {url}) is not running (no process {old_pid} exists); start it with `faas dev`"
    );
    let o = invoke_ada(&project);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&expected), "{}", stderr(&o));
    assert!(stderr(&o).contains("hint: run `faas dev`"), "{}", stderr(&o));
    for args in [
        &["invoke", "greeter", "--data", "{}", "--json"][..],
        &["list", "--json"],
        &["logs", "greeter", "--json"],
        &["activations", "--json"],
        &["remove", "greeter", "--json"],
        &["deploy", "--json"],
    ] {
        let o = faas(&project, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let v = json(&o);
        assert_eq!(v["ok"], false, "{args:?}: {v}");
        assert_eq!(v["error"]["kind"], "backend_unavailable", "{args:?}: {v}");
        assert_eq!(v["error"]["errorType"], "DevServerNotRunning", "{args:?}: {v}");
        assert_eq!(v["error"]["errorMessage"], expected.as_str(), "{args:?}: {v}");
        assert!(v["hint"].as_str().unwrap().contains("faas dev"), "{args:?}: {v}");
    }
    assert_eq!(std::fs::read(project.join(".faas").join("dev.json")).unwrap(), stale, "the commands change nothing");

    // A new `faas dev` says it replaces the stale file, then serves.
    let mut second = DevServer::start(&project, &["dev", "--port", "0", "--no-watch"]);
    let url = wait_for_dev_json(&project, &mut second);
    assert_eq!(
        second.stderr_count(&format!("replacing .faas/dev.json: the `faas dev` server it records (pid {old_pid},")),
        1,
        "{}",
        second.output()
    );
    let o = invoke_ada(&project);
    assert!(o.status.success(), "{}\n{}", stderr(&o), second.output());
    assert_eq!(stdout(&o).trim(), r#"{"message":"Hello, Ada!"}"#);

    // A third `faas dev` while the second is alive: refused, before building, naming pid and URL.
    let live = std::fs::read(project.join(".faas").join("dev.json")).unwrap();
    let new_pid = second.child.id();
    let o = faas(&project, &["dev", "--port", "0", "--no-watch"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("a `faas dev` server for this project is already running (pid {new_pid}, {url};")),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains(&format!("kill {new_pid}")), "{}", stderr(&o));
    assert!(!stderr(&o).contains("building"), "refused before building: {}", stderr(&o));
    let o = faas(tmp.path(), &["dev", "greeter", "--port", "0", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["error"]["errorType"], "DevServerRunning", "{v}");
    assert_eq!(std::fs::read(project.join(".faas").join("dev.json")).unwrap(), live, "dev.json is untouched");
    second.assert_running();

    // --json shapes of list, logs, activations and remove on the live server.
    let v = json(&faas(&project, &["list", "--json"]));
    assert_eq!((v["ok"].clone(), v["backend"].clone(), v["kind"].clone()), (true.into(), "dev".into(), "local".into()));
    assert_eq!(v["functions"][0]["name"], "greeter", "{v}");
    let v = json(&faas(&project, &["activations", "--function", "greeter", "--limit", "1", "--json"]));
    let a = &v["activations"][0];
    for key in ["id", "function", "status", "cold"] {
        assert!(!a[key].is_null(), "activation record has `{key}`: {v}");
    }
    let v = json(&faas(&project, &["logs", "greeter", "--json"]));
    assert_eq!(v["function"], "greeter");
    let entry = &v["activations"].as_array().unwrap().last().unwrap().clone();
    assert!(entry["id"].is_string() && entry["logs"].is_array() && entry["status"] == "success", "{v}");
    let o = faas(&project, &["remove", "greeter", "--json"]);
    assert_eq!(json(&o), serde_json::json!({"ok": true, "backend": "dev", "removed": "greeter"}));
    let o = faas(&project, &["list"]);
    assert_eq!(stdout(&o).trim(), "no functions are deployed on `dev`");
}
