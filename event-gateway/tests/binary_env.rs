//! The `faas-gateway` binary started where there is no `faas.toml`: the environment still configures it.

use std::time::Duration;

use tokio::io::AsyncBufReadExt as _;

/// `FAAS_GATEWAY_TOKEN=abc faas-gateway` in an empty directory: `Bearer abc` is the management token.
/// (Before, the binary used `GatewayConfig::default()` there, which reads no environment, and
/// refused every management call.)
#[tokio::test]
async fn without_faas_toml_faas_gateway_token_is_the_management_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_faas-gateway"))
        .current_dir(dir.path())
        .args(["--port", "0"])
        .env("FAAS_GATEWAY_TOKEN", "abc")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("faas-gateway starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("faas-gateway printed its address in time")
        .unwrap()
        .expect("faas-gateway printed a line");
    let url = line.strip_prefix("faas-gateway listening on ").expect("listening line").trim().to_string();

    let http = reqwest::Client::new();
    let with = |token: &str| http.get(format!("{url}/subscriptions")).bearer_auth(token.to_string()).send();
    assert_eq!(with("abc").await.unwrap().status(), 200, "the variable's token is accepted");
    assert_eq!(with("other").await.unwrap().status(), 403, "another token is refused");
    child.kill().await.unwrap();
}
