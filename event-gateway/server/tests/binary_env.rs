//! The `faas-gateway` binary started where there is no `faas.toml`: the environment still configures it.

#[path = "../../tests/common/mod.rs"]
mod common;
mod process;

use process::GatewayProcess;

/// `FAAS_GATEWAY_TOKEN=abc faas-gateway` in an empty directory: `Bearer abc` is the management token.
/// (Before, the binary used `GatewayConfig::default()` there, which reads no environment, and
/// refused every management call.)
#[tokio::test]
async fn without_faas_toml_faas_gateway_token_is_the_management_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_faas-gateway"));
    cmd.current_dir(dir.path()).args(["--port", "0"]).env("FAAS_GATEWAY_TOKEN", "abc").env("RUST_LOG", "warn");
    let mut gateway = GatewayProcess::spawn(cmd).await;

    let http = reqwest::Client::new();
    let with = |token: &str| http.get(format!("{}/subscriptions", gateway.url)).bearer_auth(token.to_string()).send();
    assert_eq!(with("abc").await.unwrap().status(), 200, "the variable's token is accepted");
    assert_eq!(with("other").await.unwrap().status(), 403, "another token is refused");
    gateway.kill().await;
}
