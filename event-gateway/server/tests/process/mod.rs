//! The `faas-gateway` binary as a child process, for the tests of this package.
#![allow(dead_code)]

use std::time::Duration;

/// The `faas-gateway` binary running as a child process.
pub struct GatewayProcess {
    pub child: tokio::process::Child,
    pub url: String,
}

impl GatewayProcess {
    /// Starts the binary with `--config config --port 0` (plus `args`) and waits for its "listening" line.
    pub async fn start(config: &std::path::Path, args: &[&str]) -> GatewayProcess {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_faas-gateway"));
        cmd.arg("--config").arg(config).args(["--port", "0"]).args(args).env("RUST_LOG", "warn");
        GatewayProcess::spawn(cmd).await
    }

    /// Spawns `cmd` (the `faas-gateway` binary with whatever arguments, directory and environment the
    /// test sets) and waits for its "listening" line.
    pub async fn spawn(mut cmd: tokio::process::Command) -> GatewayProcess {
        use tokio::io::AsyncBufReadExt as _;
        let mut child =
            cmd.stdout(std::process::Stdio::piped()).kill_on_drop(true).spawn().expect("faas-gateway starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("faas-gateway printed its address in time")
            .unwrap()
            .expect("faas-gateway printed a line");
        let url = line.strip_prefix("faas-gateway listening on ").expect("listening line").trim().to_string();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        GatewayProcess { child, url }
    }

    /// SIGKILL.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}
