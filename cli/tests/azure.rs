//! The Azure Functions backend end to end through the `faas` command: an empty local Functions
//! host from `faas dev --emulate azure`, a new project deployed to it through a `kind = "azure"`
//! profile whose `endpoint` points at it (a development token), invoked with its logs, its
//! activations and logs read, listed and removed; and `faas dev --emulate azure` deploying the
//! project and redeploying it on change. Every server is on 127.0.0.1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// A new project with a profile `az` (`kind = "azure"` and `settings`).
struct AzureProject {
    dir: PathBuf,
}

impl AzureProject {
    fn new(parent: &Path, name: &str, settings: &str) -> AzureProject {
        let dir = new_project(parent, name);
        let toml = dir.join("faas.toml");
        let config = std::fs::read_to_string(&toml).unwrap();
        std::fs::write(&toml, format!("{config}\n[backends.az]\nkind = \"azure\"\n{settings}")).unwrap();
        AzureProject { dir }
    }

    fn faas(&self, args: &[&str]) -> Command {
        faas_cmd(&self.dir, args)
    }
}

#[test]
fn an_app_is_built_deployed_invoked_and_removed_on_the_local_functions_host() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (_emulator, url) = start_emulator(faas_cmd(&empty, &[]), "azure");

    let az = AzureProject::new(tmp.path(), "greeter", &format!("endpoint = \"{url}\"\nresource_group = \"shop-rg\"\n"));
    let faas = |args: &[&str]| az.faas(args).output().expect("run faas");

    let o = faas(&["build", "--backend", "az", "--json"]);
    let v = json(&o);
    assert_eq!(v["ok"], true, "{v}\n{}", stderr(&o));
    let artifact = v["artifact"].as_str().unwrap();
    assert!(artifact.ends_with("greeter-azure.zip"), "{v}");
    assert_eq!(v["runtime"], "custom", "a custom handler: {v}");

    let o = faas(&["deploy", "--backend", "az", "--json"]);
    let v = json(&o);
    assert_eq!(v["report"]["created"], serde_json::json!(["greeter"]), "{v}\n{}", stderr(&o));
    let o = faas(&["deploy", "--backend", "az", "--json"]);
    let v = json(&o);
    assert_eq!(v["report"]["unchanged"], serde_json::json!(["greeter"]), "{v}\n{}", stderr(&o));

    let o = faas(&["invoke", "greeter", "--backend", "az", "--data", r#"{"name":"Ada"}"#, "--logs", "--json"]);
    let v = json(&o);
    assert_eq!(v["result"]["message"], "Hello, Ada!", "{v}\n{}", stderr(&o));
    assert!(v["logs"].to_string().contains("greeting Ada"), "the function's own log line: {v}");
    let id = v["activationId"].as_str().unwrap().to_string();

    let o = faas(&["activations", "--backend", "az", "--json"]);
    let v = json(&o);
    assert_eq!(v["ok"], true, "{v}\n{}", stderr(&o));
    assert!(
        v["activations"].as_array().unwrap().iter().any(|a| a["id"] == id.as_str() && a["status"] == "success"),
        "the invocation is an activation: {v}"
    );
    let o = faas(&["logs", "greeter", "--backend", "az"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("greeting Ada"), "the activation's log lines: {}", stdout(&o));

    let o = faas(&["invoke", "greeter", "--backend", "az", "--data", r#"{"name":"#, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["error"]["kind"], "bad_input", "{}", stdout(&o));

    let o = faas(&["list", "--backend", "az", "--json"]);
    let v = json(&o);
    assert_eq!(v["functions"][0]["name"], "greeter", "{v}\n{}", stderr(&o));

    let o = faas(&["remove", "greeter", "--backend", "az"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = faas(&["invoke", "greeter", "--backend", "az", "--data", "{}", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["error"]["kind"], "not_found", "{}", stdout(&o));
}

#[test]
fn faas_dev_emulate_azure_deploys_the_project_and_redeploys_on_change() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let az = AzureProject::new(tmp.path(), "welcomer", &format!("endpoint = \"http://127.0.0.1:{port}\"\n"));
    let project = az.dir.clone();
    let faas = |args: &[&str]| az.faas(args);
    let mut dev = DevServer::spawn(faas(&["dev", "--emulate", "azure", "--port", &port.to_string(), "--json"]));
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
            faas(&["invoke", "welcomer", "--backend", "az", "--data", r#"{"name":"Ada"}"#, "--json"]).output().unwrap();
        json(&o)["result"]["message"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(invoke(), "Hello, Ada!", "{}", dev.output());

    let main_rs = project.join("src/main.rs");
    let source = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(&main_rs, source.replace("format!(\"Hello, {}!\"", "format!(\"Howdy, {}!\"")).unwrap();
    wait_for("the redeploy", Duration::from_secs(600), &mut dev, |d| (event(d, "reloaded") > 0).then_some(()));
    assert_eq!(invoke(), "Howdy, Ada!", "{}", dev.output());
}
