//! The emulator through `faas_api::backend::Emulator`, as `faas dev --emulate openwhisk` uses it,
//! and the `faas-openwhisk-emulator` binary.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use faas_api::backend::{Emulator, EmulatorOptions};
use faas_emulator_openwhisk::emulate::LocalOpenWhisk;
use serde_json::json;

#[tokio::test]
async fn local_openwhisk_through_the_emulator_trait() {
    let emulator = LocalOpenWhisk;
    assert_eq!(
        (emulator.name(), emulator.platform(), emulator.default_port()),
        ("openwhisk", "Apache OpenWhisk", 3233)
    );
    let state = tempfile::tempdir().unwrap();
    let options = EmulatorOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        state_dir: Some(state.path().to_path_buf()),
        echo_logs: false,
    };
    let running = emulator.start(options).await.unwrap();
    let url = running.url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let profile = running.profile();
    assert_eq!((profile.name.as_str(), profile.kind.as_str()), ("emulator", "openwhisk"));
    assert_eq!(profile.str("endpoint").unwrap(), Some(url.clone()));
    assert_eq!(profile.str("namespace").unwrap(), Some("guest".into()));
    // The key is referenced, never inline: profiles take secrets only as env:/file: references.
    let reference = profile.str("auth").unwrap().unwrap();
    let auth = std::fs::read_to_string(reference.strip_prefix("file:").expect("a file reference")).unwrap();
    assert_eq!(auth, faas_emulator_openwhisk::GUEST_AUTH);
    let banner = running.empty_banner().join("\n");
    assert!(banner.contains(&format!("wsk property set --apihost {url} --auth {auth}")), "{banner}");
    assert!(banner.contains("wsk action create hello exec.zip --native"), "{banner}");
    assert!(running.invoke_hint("hello").contains("action invoke hello"));

    // The profile reaches a working API.
    let (user, key) = auth.split_once(':').unwrap();
    let http = reqwest::Client::new();
    let zip = common::exec_zip("#!/bin/sh\necho '{\"ok\": true}'\n");
    let body = json!({"exec": {"kind": "blackbox", "image": "openwhisk/dockerskeleton", "code": common::b64(&zip)}});
    let response = http
        .put(format!("{url}/api/v1/namespaces/guest/actions/hello"))
        .basic_auth(user, Some(key))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = http
        .post(format!("{url}/api/v1/namespaces/guest/actions/hello?blocking=true&result=true"))
        .basic_auth(user, Some(key))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<serde_json::Value>().await.unwrap(), json!({"ok": true}));
    assert!(state.path().join("actions").read_dir().unwrap().count() == 1, "code lives in the state directory");
    running.shutdown().await;
}

#[tokio::test]
async fn the_binary_prints_a_working_endpoint() {
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_faas-openwhisk-emulator"))
        .args(["--port", "0", "--quiet", "--auth", "me:secret", "--state-dir"])
        .arg(state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn emulator binary");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let response = reqwest::Client::new()
        .get(format!("{url}/api/v1/namespaces"))
        .basic_auth("me", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap(), json!(["guest"]));
    child.kill().unwrap();
    child.wait().unwrap();

    let bad =
        Command::new(env!("CARGO_BIN_EXE_faas-openwhisk-emulator")).args(["--auth", "no-colon"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("UUID:KEY"), "{}", String::from_utf8_lossy(&bad.stderr));
}
