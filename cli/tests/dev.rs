//! The developer loop, end to end with real processes: `faas new` → `faas dev` (a cargo build,
//! child function processes, an HTTP front on 127.0.0.1) → `faas invoke` / `list` /
//! `activations` / `logs` / `deploy` → edit the source (a broken build keeps the last good one
//! serving; a fixed one is hot-reloaded) → `faas remove` → SIGTERM stops it cleanly.
//!
//! One project and one `faas dev` for the whole flow, because cargo builds are slow.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn invoke_ada(project: &Path) -> std::process::Output {
    faas(project, &["invoke", "greeter", "--data", r#"{"name":"Ada"}"#])
}

#[test]
fn new_dev_invoke_inspect_reload_remove_and_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let o = faas(tmp.path(), &["new", "greeter"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let project = tmp.path().join("greeter");

    let mut server = DevServer::start(&project, &["dev", "--port", "0"]);
    // The first build compiles every dependency: be generous.
    let info_path = project.join(".faas").join("dev.json");
    let info: serde_json::Value = wait_for("dev.json", Duration::from_secs(40 * 60), &mut server, |_| {
        std::fs::read(&info_path).ok().and_then(|b| serde_json::from_slice(&b).ok())
    });
    let url = info["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "{url}");
    assert_eq!(info["pid"].as_u64(), Some(server.child.id() as u64));
    assert_eq!(info["token"].as_str().map(str::len), Some(32));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&info_path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let banner = wait_for("the banner", Duration::from_secs(30), &mut server, |server| {
        let out = server.stdout.lock().unwrap().join("\n");
        out.contains("watching").then_some(out)
    });
    assert!(banner.contains(&format!("serving `greeter` on {url}")), "{banner}");
    assert!(banner.contains(&format!("POST {url}/functions/greeter")), "{banner}");
    assert!(banner.contains("curl -s -X POST"), "{banner}");
    assert!(!banner.contains(info["token"].as_str().unwrap()), "the token is not printed");

    // Invoke: the reply body on stdout.
    let o = invoke_ada(&project);
    assert!(o.status.success(), "{}\n{}", stderr(&o), server.output());
    assert_eq!(stdout(&o).trim(), r#"{"message":"Hello, Ada!"}"#);

    // --json with --logs: activation id, parsed result, the function's log lines.
    let o = faas(&project, &["invoke", "greeter", "--data", r#"{"name":"Grace"}"#, "--logs", "--json"]);
    let v = json(&o);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["result"]["message"], "Hello, Grace!");
    let activation = v["activationId"].as_str().unwrap().to_string();
    assert!(!activation.is_empty());
    assert!(v["logs"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("greeting Grace")), "{v}");

    // Bad input reaches the function's typed decoder and comes back as a 400, naming the problem.
    let o = faas(&project, &["invoke", "greeter", "--data", "{oops"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("error: bad_input:"), "{}", stderr(&o));
    assert!(stderr(&o).contains("malformed JSON"), "{}", stderr(&o));
    let o = faas(&project, &["invoke", "nobody"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("error: not_found:"), "{}", stderr(&o));
    assert!(stderr(&o).contains("hint: `faas list`"), "{}", stderr(&o));

    // An async invocation is accepted with an id and then runs.
    let o = faas(&project, &["invoke", "greeter", "--data", r#"{"name":"Async"}"#, "--async", "--json"]);
    let async_id = json(&o)["activationId"].as_str().unwrap().to_string();

    // list / activations / logs.
    let o = faas(&project, &["list", "--json"]);
    let v = json(&o);
    let names: Vec<&str> = v["functions"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["greeter"]);
    assert_eq!(v["functions"][0]["timeout"], 10_000, "faas.toml's timeout applies: {v}");
    let o = faas(&project, &["list"]);
    assert!(stdout(&o).lines().nth(1).unwrap().starts_with("greeter"), "{}", stdout(&o));

    let o = faas(&project, &["activations", "--json"]);
    let v = json(&o);
    let ids: Vec<&str> = v["activations"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&activation.as_str()), "{v}");
    wait_for("the async activation to succeed", Duration::from_secs(60), &mut server, |_| {
        let o = faas(&project, &["activations", "--function", "greeter", "--json"]);
        json(&o)["activations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == async_id.as_str() && a["status"] == "success")
            .then_some(())
    });
    let o = faas(&project, &["activations", "--limit", "2"]);
    let table = stdout(&o);
    assert!(table.starts_with("ID"), "{table}");
    assert_eq!(table.lines().count(), 3, "header + 2 rows: {table}");
    assert!(table.contains("greeter") && table.contains("success"), "{table}");

    let o = faas(&project, &["logs", "greeter"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&activation), "{}", stdout(&o));
    assert!(stdout(&o).contains("greeting Grace"), "{}", stdout(&o));
    let o = faas(&project, &["logs", "greeter", "--limit", "1", "--json"]);
    let v = json(&o);
    assert_eq!(v["activations"].as_array().unwrap().len(), 1);

    // deploy through the running server: same binary, so nothing changes.
    let o = faas(&project, &["deploy", "--json"]);
    let v = json(&o);
    assert_eq!(v["ok"], true, "{v}");
    let report = &v["report"];
    let mentioned: Vec<&serde_json::Value> =
        ["created", "updated", "unchanged"].iter().flat_map(|k| report[k].as_array().unwrap()).collect();
    assert_eq!(mentioned, vec!["greeter"], "{v}");

    // A broken edit: the build fails, the last good build keeps serving.
    let main_rs = project.join("src").join("main.rs");
    let good = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(&main_rs, format!("{good}\nfn broken( {{\n")).unwrap();
    wait_for("the failed rebuild", Duration::from_secs(15 * 60), &mut server, |server| {
        (server.stderr_count("still serving the last good build") >= 1).then_some(())
    });
    assert!(server.output().contains("error"), "compiler errors are shown\n{}", server.output());
    let o = invoke_ada(&project);
    assert_eq!(stdout(&o).trim(), r#"{"message":"Hello, Ada!"}"#, "{}", stderr(&o));

    // A fixed edit with a new reply: hot reload, same `faas dev` process.
    std::fs::write(&main_rs, good.replace("format!(\"Hello, {}!\"", "format!(\"Howdy, {}!\"")).unwrap();
    wait_for("the reloaded reply", Duration::from_secs(15 * 60), &mut server, |_| {
        let o = invoke_ada(&project);
        (stdout(&o).trim() == r#"{"message":"Howdy, Ada!"}"#).then_some(())
    });
    server.assert_running();

    // remove: the function is gone.
    let o = faas(&project, &["remove", "greeter"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = invoke_ada(&project);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("error: not_found:"), "{}", stderr(&o));

    // SIGTERM: graceful stop, dev.json removed, exit 0.
    let pid = server.child.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "faas dev did not stop\n{}", server.output());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}\n{}", server.output());
    assert!(!info_path.exists(), "dev.json is removed on shutdown");
    let o = invoke_ada(&project);
    assert!(stderr(&o).contains("backend_unavailable"), "{}", stderr(&o));
}
