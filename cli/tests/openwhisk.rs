//! The OpenWhisk backend end to end through the `faas` command: an empty local OpenWhisk from
//! `faas dev --emulate openwhisk`, a new project deployed to it through a `kind = "openwhisk"`
//! profile with a loopback endpoint and no key (so the local OpenWhisk's guest key), invoked
//! blocking with its logs and non-blocking, its activations and logs read, listed and removed.
//! Every server is on 127.0.0.1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A new project with a profile `ow` (`kind = "openwhisk"` and `settings`), run with a HOME of
/// its own: no ~/.wskprops to fall back on, so a loopback endpoint alone means the guest key.
struct OwProject {
    dir: PathBuf,
    home: PathBuf,
}

impl OwProject {
    fn new(parent: &Path, name: &str, settings: &str) -> OwProject {
        let dir = new_project(parent, name);
        let toml = dir.join("faas.toml");
        let config = std::fs::read_to_string(&toml).unwrap();
        std::fs::write(&toml, format!("{config}\n[backends.ow]\nkind = \"openwhisk\"\n{settings}")).unwrap();
        let home = parent.join(format!("{name}-home"));
        std::fs::create_dir(&home).unwrap();
        OwProject { dir, home }
    }

    fn faas(&self, args: &[&str]) -> Command {
        let mut cmd = faas_cmd(&self.dir, args);
        cmd.env("HOME", &self.home).env_remove("WSK_CONFIG_FILE");
        cmd
    }
}

#[test]
fn an_app_is_built_deployed_invoked_and_removed_on_the_local_openwhisk() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (_emulator, url) = start_emulator(faas_cmd(&empty, &[]), "openwhisk");

    let ow = OwProject::new(tmp.path(), "greeter", &format!("endpoint = \"{url}\"\npackage = \"shop\"\n"));
    let faas = |args: &[&str]| ow.faas(args).output().expect("run faas");

    let o = faas(&["build", "--backend", "ow", "--json"]);
    let v = json(&o);
    assert_eq!(v["ok"], true, "{v}\n{}", stderr(&o));
    assert!(v["artifact"].as_str().unwrap().ends_with(".zip"), "{v}");

    let o = faas(&["deploy", "--backend", "ow", "--json"]);
    let v = json(&o);
    assert_eq!(v["report"]["created"], serde_json::json!(["greeter"]), "{v}\n{}", stderr(&o));
    let o = faas(&["deploy", "--backend", "ow", "--json"]);
    assert_eq!(json(&o)["report"]["unchanged"], serde_json::json!(["greeter"]), "{}", stderr(&o));

    let o = faas(&["invoke", "greeter", "--backend", "ow", "--data", r#"{"name":"Ada"}"#, "--logs", "--json"]);
    let v = json(&o);
    assert_eq!(v["result"]["message"], "Hello, Ada!", "{v}\n{}", stderr(&o));
    let logs = v["logs"].to_string();
    assert!(logs.contains("greeting Ada"), "the function's own log line: {logs}");
    let sync_id = v["activationId"].as_str().unwrap().to_string();

    // Non-blocking: the activation id at once; the record follows.
    let o = faas(&["invoke", "greeter", "--backend", "ow", "--data", r#"{"name":"Later"}"#, "--async", "--json"]);
    let v = json(&o);
    assert_eq!(v["mode"], "async", "{v}\n{}", stderr(&o));
    let async_id = v["activationId"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let o = faas(&["activations", "--backend", "ow", "--json"]);
        let v = json(&o);
        assert_eq!(v["ok"], true, "{v}\n{}", stderr(&o));
        let done =
            |id: &str| v["activations"].as_array().unwrap().iter().any(|a| a["id"] == id && a["status"] == "success");
        if done(&sync_id) && done(&async_id) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "both activations should be listed: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = faas(&["logs", "greeter", "--backend", "ow"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("greeting Later"), "the async activation's log lines: {}", stdout(&o));

    let o = faas(&["invoke", "greeter", "--backend", "ow", "--data", r#"{"name":"#, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["error"]["kind"], "bad_input", "{}", stdout(&o));

    let o = faas(&["list", "--backend", "ow", "--json"]);
    let v = json(&o);
    assert_eq!(v["functions"][0]["name"], "greeter", "{v}\n{}", stderr(&o));

    let o = faas(&["remove", "greeter", "--backend", "ow"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = faas(&["invoke", "greeter", "--backend", "ow", "--data", "{}", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["error"]["kind"], "not_found", "{}", stdout(&o));
}

#[test]
fn faas_dev_emulate_openwhisk_deploys_the_project_and_redeploys_on_change() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let ow = OwProject::new(tmp.path(), "welcomer", &format!("endpoint = \"http://127.0.0.1:{port}\"\n"));
    let project = ow.dir.clone();
    let faas = |args: &[&str]| ow.faas(args);
    let mut dev = DevServer::spawn(faas(&["dev", "--emulate", "openwhisk", "--port", &port.to_string(), "--json"]));
    let event = |dev: &DevServer, name: &str| {
        dev.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == name)
            .count()
    };
    wait_for("the first deploy", Duration::from_secs(600), &mut dev, |d| (event(d, "deployed") > 0).then_some(()));
    let invoke = || {
        let o =
            faas(&["invoke", "welcomer", "--backend", "ow", "--data", r#"{"name":"Ada"}"#, "--json"]).output().unwrap();
        json(&o)["result"]["message"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(invoke(), "Hello, Ada!", "{}", dev.output());

    let main_rs = project.join("src/main.rs");
    let source = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(&main_rs, source.replace("format!(\"Hello, {}!\"", "format!(\"Howdy, {}!\"")).unwrap();
    wait_for("the redeploy", Duration::from_secs(600), &mut dev, |d| (event(d, "reloaded") > 0).then_some(()));
    assert_eq!(invoke(), "Howdy, Ada!", "{}", dev.output());
}
