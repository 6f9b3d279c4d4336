//! Shared helpers: run the built `faas` binary in a directory, with a clean environment.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `faas` binary under test.
pub fn faas_bin() -> &'static str {
    env!("CARGO_BIN_EXE_faas")
}

/// Where projects created by the tests are built: one shared target dir, so dependencies are
/// compiled once.
pub fn test_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d).join("cli-tests"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("cli-tests"),
    }
}

/// A `faas` command in `dir` with FAAS_* variables cleared.
pub fn faas_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(faas_bin());
    cmd.args(args)
        .current_dir(dir)
        .env_remove("FAAS_BACKEND")
        .env_remove("FAAS_TOKEN")
        .env("CARGO_TARGET_DIR", test_target_dir());
    cmd
}

/// Runs `faas` to completion.
pub fn faas(dir: &Path, args: &[&str]) -> Output {
    faas_cmd(dir, args).output().expect("run faas")
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stdout parsed as one JSON document.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", stdout(o), stderr(o)))
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
