//! The Apache OpenWhisk JavaScript client (npm `openwhisk`) against the emulator. The test
//! installs the client into a scratch directory under the target directory when it is not
//! there yet, and fails (never skips) when it cannot.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{json, Value};

/// The scratch directory holding `node_modules/openwhisk`.
fn client_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is under the target directory.
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("openwhisk-js-client")
}

fn install_client() -> PathBuf {
    let dir = client_dir();
    if dir.join("node_modules/openwhisk/package.json").is_file() {
        return dir;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--no-save", "--prefix"])
        .arg(&dir)
        .arg("openwhisk@3")
        .output()
        .expect("npm must be installed to run the OpenWhisk JS client test");
    assert!(
        out.status.success() && dir.join("node_modules/openwhisk/package.json").is_file(),
        "npm install openwhisk failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[tokio::test]
async fn the_openwhisk_js_client_drives_a_native_action() {
    let dir = install_client();
    let emulator = emulator().await;
    let script = "#!/bin/sh\necho \"hello from $__OW_ACTION_NAME\"\necho \"{\\\"greeting\\\": $1}\"\n";
    let zip_path = dir.join("exec.zip");
    std::fs::write(&zip_path, exec_zip(script)).unwrap();
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/driver.js");
    let url = emulator.url();
    let auth = emulator.auth().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(driver)
            .env("NODE_PATH", dir.join("node_modules"))
            .env("OW_APIHOST", url)
            .env("OW_AUTH", auth)
            .env("OW_ZIP", &zip_path)
            .output()
            .expect("node must be installed")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "driver failed: {}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the driver prints JSON");

    assert_eq!(seen["created"]["name"], "js-native");
    assert_eq!(seen["created"]["exec"]["binary"], true);
    let blocking = &seen["blocking"];
    assert_eq!(blocking["response"]["status"], "success");
    assert_eq!(blocking["response"]["result"], json!({"greeting": {"who": "js"}}));
    assert!(blocking["logs"][0].as_str().unwrap().ends_with("stdout: hello from /guest/js-native"));
    assert_eq!(seen["result"], json!({"greeting": {"who": "result"}}));
    let id = seen["queued"]["activationId"].as_str().unwrap();
    assert_eq!(seen["activation"]["activationId"], id);
    assert_eq!(seen["activation"]["response"]["result"], json!({"greeting": {"who": "async"}}));
    assert_eq!(seen["logs"]["logs"], seen["activation"]["logs"]);
    assert_eq!(seen["activationResult"]["result"], json!({"greeting": {"who": "async"}}));
    assert_eq!(seen["list"].as_array().unwrap().len(), 3);
    assert_eq!(seen["list"][0]["activationId"], id, "newest first");
    assert_eq!(seen["actions"][0]["name"], "js-native");
    assert_eq!(seen["got"]["exec"]["image"], "openwhisk/dockerskeleton");
    assert_eq!(seen["namespaces"], json!(["guest"]));
    assert_eq!(seen["deleted"]["name"], "js-native");
    assert_eq!(seen["afterDelete"]["statusCode"], 404);
    assert_eq!(seen["afterDelete"]["error"]["error"], "The requested resource does not exist.");
    assert_eq!(seen["wrongKey"]["statusCode"], 401);
    emulator.shutdown().await;
}
