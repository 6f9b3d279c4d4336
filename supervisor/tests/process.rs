//! Real child processes (`/bin/sh -c` scripts): what the supervisor promises about the
//! environment, limits, process groups, readiness and output.

use std::path::Path;
use std::time::Duration;

use faas_supervisor::{Exit, FileCapture, Limit, LineCapture, NotReady, Output, ProcessSpec};

fn sh(script: &str) -> ProcessSpec {
    ProcessSpec::new("/bin/sh").args(["-c", script]).inherit_base()
}

fn lines() -> Output {
    Output::Lines(LineCapture::default())
}

/// Whether `pid` is a live process (not a zombie).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

async fn read_pid(file: &Path) -> i32 {
    for _ in 0..500 {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no pid written to {}", file.display());
}

async fn gone(pid: i32) -> bool {
    for _ in 0..300 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn killing_an_instance_kills_its_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("grandchild.pid");
    let script = format!("sleep 300 & echo $! > '{}'; wait", file.display());
    let process = sh(&script).spawn().unwrap();
    let grandchild = read_pid(&file).await;
    assert!(alive(grandchild));
    assert_eq!(process.kill_and_wait().await, Exit::Signal(libc::SIGKILL));
    assert!(gone(grandchild).await, "the grandchild {grandchild} survived the kill");
}

#[tokio::test]
async fn what_an_instance_started_dies_when_it_exits_or_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("left.pid");
    let script = format!("sleep 300 & echo $! > '{}'; exit 0", file.display());
    let process = sh(&script).spawn().unwrap();
    let left = read_pid(&file).await;
    assert_eq!(process.wait().await, Exit::Code(0));
    assert!(gone(left).await, "the background child {left} outlived its instance");

    let file = dir.path().join("dropped.pid");
    let script = format!("sleep 300 & echo $! > '{}'; wait", file.display());
    let process = sh(&script).spawn().unwrap();
    let grandchild = read_pid(&file).await;
    drop(process);
    assert!(gone(grandchild).await, "the grandchild {grandchild} survived dropping its instance");
}

#[tokio::test]
async fn the_child_sees_only_the_environment_it_is_given() {
    // Every test process has PATH; the child gets it only through inherit_base.
    assert!(std::env::var_os("PATH").is_some());
    let mut bare = ProcessSpec::new("/usr/bin/env").output(lines()).spawn().unwrap();
    assert!(bare.lines().unwrap().until_closed(Duration::from_secs(5)).await.is_empty());

    let spec = ProcessSpec::new("/usr/bin/env").inherit_base().env("FAAS_LOCAL_SOCKET", "/tmp/x.sock");
    let mut process = spec.output(lines()).spawn().unwrap();
    let vars = process.lines().unwrap().until_closed(Duration::from_secs(5)).await;
    assert!(vars.contains(&"FAAS_LOCAL_SOCKET=/tmp/x.sock".to_string()), "{vars:?}");
    assert!(vars.iter().any(|v| v.starts_with("PATH=")), "{vars:?}");
    let allowed = ["FAAS_LOCAL_SOCKET", "PATH", "HOME", "TMPDIR", "LANG", "TZ"];
    for var in &vars {
        let name = var.split('=').next().unwrap_or_default();
        assert!(allowed.contains(&name), "unexpected variable {var} in {vars:?}");
    }
}

#[tokio::test]
async fn limits_are_set_before_the_program_runs() {
    let spec = sh("ulimit -d; ulimit -n").limit(Limit::Data, 64 << 20).limit(Limit::OpenFiles, 123);
    let mut process = spec.output(lines()).spawn().unwrap();
    let got = process.lines().unwrap().until_closed(Duration::from_secs(5)).await;
    assert_eq!(got, [(64 << 10).to_string(), "123".to_string()]); // `ulimit -d` counts KiB
}

#[tokio::test]
async fn readiness_times_out_and_leaves_the_process_to_the_caller() {
    let process = sh("sleep 30").spawn().unwrap();
    let never = || async { None::<()> };
    let err = process.ready(Duration::from_millis(50), never).await.unwrap_err();
    assert_eq!(err, NotReady::TimedOut(Duration::from_millis(50)));
    assert!(process.is_running());
    assert_eq!(process.kill_and_wait().await, Exit::Signal(libc::SIGKILL));
    let dead = process.ready(Duration::from_secs(1), never).await.unwrap_err();
    assert_eq!(dead.to_string(), "the process was killed by signal 9 (SIGKILL)");
}

#[tokio::test]
async fn markers_split_lines_per_invocation_and_long_lines_are_cut() {
    let capture = LineCapture { marker: Some("__END__".into()), max_line: 8, max_lines: 2, echo: None };
    let script = "echo first; echo second; echo third; printf 'tail__END__ one\\n'; echo '__END__ one' >&2; sleep 0.3; \
                  echo 0123456789abc; echo '__END__ two'; echo '__END__ two' >&2; sleep 30";
    let mut process = sh(script).output(Output::Lines(capture)).spawn().unwrap();
    let log = process.lines().unwrap();
    assert_eq!(log.until_marker("one", Duration::from_secs(5)).await, ["third", "tail"]); // at most 2 lines
    assert_eq!(log.until_marker("two", Duration::from_secs(5)).await, ["01234567"]);
    assert!(log.until_marker("three", Duration::from_millis(50)).await.is_empty());
}

#[tokio::test]
async fn a_file_log_keeps_the_newest_bytes_and_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    let capture = FileCapture { path: path.clone(), keep: 6, truncate_at: 10 };
    let process = sh("echo 0123456789; echo more >&2").output(Output::File(capture)).spawn().unwrap();
    process.wait().await;
    let file = process.output_file().unwrap();
    assert_eq!(file.take(), "\nmore\n");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "emptied past truncate_at");
    drop(process);
    assert!(!path.exists(), "removed with its process");
}

#[tokio::test]
async fn a_missing_program_is_a_start_error() {
    let err = ProcessSpec::new("/nonexistent/bootstrap").spawn().unwrap_err();
    assert_eq!(err.io().kind(), std::io::ErrorKind::NotFound);
}
