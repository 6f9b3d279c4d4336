//! Process mode end to end: the fixture binary as real child processes over Unix sockets.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faas_api::{
    ActivationQuery, ActivationStatus, AppSpec, Config, ErrorKind, FunctionSpec, InvokeMode, InvokeRequest, NoProgress,
    Payload, Runner,
};
use faas_runner_local::{LocalOptions, LocalRunner};
use serde_json::{Value, json};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_faas-local-fixture"))
}

async fn runner_with(options: LocalOptions, edit: impl Fn(&mut FunctionSpec)) -> Arc<LocalRunner> {
    let runner = LocalRunner::new(options).unwrap();
    let manifest = faas_packaging::build::describe(&fixture()).await.unwrap();
    let mut spec = AppSpec::from_parts(&Config::default_for("fixture"), fixture(), manifest).unwrap();
    for f in &mut spec.functions {
        edit(f);
    }
    let package = runner.package(&spec, &NoProgress).await.unwrap();
    runner.deploy(&package, &NoProgress).await.unwrap();
    runner
}

async fn call(runner: &LocalRunner, name: &str, input: Value) -> Result<Value, faas_api::Error> {
    let out = runner.invoke(InvokeRequest::new(name, Payload::json(&input).unwrap())).await?;
    Ok(serde_json::from_slice(out.payload.body()).unwrap_or(Value::Null))
}

#[tokio::test]
async fn warm_instances_are_reused_and_cold_starts_are_recorded() {
    let runner = runner_with(LocalOptions::default(), |_| {}).await;
    let a = call(&runner, "counter", json!({})).await.unwrap();
    let b = call(&runner, "counter", json!({})).await.unwrap();
    assert_eq!(a["pid"], b["pid"], "the second call must reuse the warm process");
    assert_eq!(b["count"].as_u64().unwrap(), a["count"].as_u64().unwrap() + 1);
    let acts =
        runner.activations(ActivationQuery { function: Some("counter".into()), ..Default::default() }).await.unwrap();
    assert_eq!(acts.len(), 2);
    assert!(!acts[0].cold && acts[1].cold, "newest first: warm then cold: {acts:?}");
    runner.shutdown().await;
}

#[tokio::test]
async fn timeout_answers_within_the_deadline_and_the_pool_recovers() {
    let runner = runner_with(LocalOptions::default(), |f| f.timeout = Duration::from_millis(500)).await;
    let first = call(&runner, "counter", json!({})).await.unwrap();
    let started = Instant::now();
    let err = call(&runner, "sleep", json!({"ms": 10_000})).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.message().contains("timed out after 500ms"), "{err}");
    assert!(took < Duration::from_millis(500 + 1000), "took {took:?}");
    // `counter` runs in its own pool and is unaffected.
    let again = call(&runner, "counter", json!({})).await.unwrap();
    assert_eq!(again["pid"], first["pid"]);
    // `sleep` works again.
    assert_eq!(call(&runner, "sleep", json!({"ms": 1})).await.unwrap(), json!({"slept": 1}));
    runner.shutdown().await;
}

#[tokio::test]
async fn a_handler_past_its_deadline_is_stopped_in_the_child_and_the_process_stays_warm() {
    let runner = runner_with(LocalOptions::default(), |f| f.timeout = Duration::from_millis(500)).await;
    let before = call(&runner, "nap", json!({"ms": 1})).await.unwrap();
    let started = Instant::now();
    let err = call(&runner, "nap", json!({"ms": 10_000})).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(err.message(), "function `nap` timed out after 500ms");
    // The child answered at the deadline, before the pool's kill would have.
    assert!(took < Duration::from_millis(500) + faas_runner_local::pool::KILL_GRACE, "took {took:?}");
    // The same process serves the next call, warm.
    let after = call(&runner, "nap", json!({"ms": 1})).await.unwrap();
    assert_eq!(after["pid"], before["pid"], "the timed-out process was not reused");
    let acts =
        runner.activations(ActivationQuery { function: Some("nap".into()), ..Default::default() }).await.unwrap();
    assert_eq!(acts.iter().map(|a| a.cold).collect::<Vec<_>>(), [false, false, true], "newest first: {acts:?}");
    // The child's log of the abort is the timed-out invocation's.
    let timed_out = &acts[1];
    assert!(timed_out.logs.iter().any(|l| l.contains("stopped a function at its deadline")), "{:?}", timed_out.logs);
    runner.shutdown().await;
}

#[tokio::test]
async fn a_handler_stuck_in_blocking_code_is_killed_after_the_grace() {
    let runner = runner_with(LocalOptions::default(), |f| f.timeout = Duration::from_millis(500)).await;
    let before = call(&runner, "spin", json!({"ms": 0})).await.unwrap();
    let started = Instant::now();
    let err = call(&runner, "spin", json!({"ms": 10_000})).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(err.message(), "function `spin` timed out after 500ms");
    // No answer came from the child: the pool killed it once the grace had passed.
    let grace = faas_runner_local::pool::KILL_GRACE;
    assert!(took >= Duration::from_millis(500) + grace, "took {took:?}");
    assert!(took < Duration::from_millis(500) + grace + Duration::from_millis(1000), "took {took:?}");
    // The next call gets a fresh process.
    let after = call(&runner, "spin", json!({"ms": 0})).await.unwrap();
    assert_ne!(after["pid"], before["pid"], "the stuck process was reused");
    runner.shutdown().await;
}

#[tokio::test]
async fn a_crash_reports_exit_status_and_last_lines_and_the_next_call_gets_a_fresh_process() {
    let runner = runner_with(LocalOptions::default(), |_| {}).await;
    let err = call(&runner, "exit", json!({"code": 7})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Crash, "{err}");
    assert!(err.message().contains("exited with status 7"), "{err}");
    assert!(err.message().contains("going down with code 7"), "{err}");
    // Same function, next call: a new process answers.
    let err2 = call(&runner, "exit", json!({"code": 9})).await.unwrap_err();
    assert!(err2.message().contains("status 9"), "{err2}");
    assert_eq!(call(&runner, "hello", json!({"name": "Ada"})).await.unwrap(), json!({"message": "Hello, Ada!"}));
    runner.shutdown().await;
}

#[tokio::test]
async fn panics_and_function_errors_keep_the_instance_and_report_portably() {
    let runner = runner_with(LocalOptions::default(), |_| {}).await;
    let err = call(&runner, "fail", json!("boom")).await.unwrap_err();
    assert_eq!((err.kind(), err.error_type(), err.message()), (ErrorKind::Function, "ProbeError", "boom"));
    let err = call(&runner, "panics", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Crash);
    assert!(err.message().contains("fixture panic"), "{err}");
    let err = runner.invoke(InvokeRequest::new("hello", Payload::new(&b"{nope"[..], None))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    assert!(err.message().contains("line 1 column 2"), "{err}");
    runner.shutdown().await;
}

#[tokio::test]
async fn stdout_stderr_and_logger_lines_are_attributed_to_their_invocation() {
    let runner = runner_with(LocalOptions::default(), |_| {}).await;
    let mut req = InvokeRequest::new("log", Payload::json(&json!({"marker": "m-1"})).unwrap());
    req.with_logs = true;
    let out = runner.invoke(req).await.unwrap();
    let logs = out.logs.unwrap();
    for want in ["stdout m-1", "stderr m-1", "INFO logger m-1"] {
        assert!(logs.iter().any(|l| l == want), "missing {want:?} in {logs:?}");
    }
    call(&runner, "log", json!({"marker": "m-2"})).await.unwrap();
    let acts =
        runner.activations(ActivationQuery { function: Some("log".into()), ..Default::default() }).await.unwrap();
    assert!(
        acts[0].logs.iter().all(|l| !l.contains("m-1")),
        "second invocation must not carry the first one's lines: {:?}",
        acts[0].logs
    );
    assert!(acts[0].logs.iter().any(|l| l.contains("m-2")));
    runner.shutdown().await;
}

#[tokio::test]
async fn the_concurrency_limit_queues_calls_and_throttles_past_the_wait_queue() {
    let options = LocalOptions { max_waiting: 1, ..Default::default() };
    let runner = runner_with(options, |f| f.concurrency = 1).await;
    let r1 = runner.clone();
    let slow = tokio::spawn(async move { call(&r1, "sleep", json!({"ms": 600})).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r2 = runner.clone();
    let queued = tokio::spawn(async move { call(&r2, "sleep", json!({"ms": 1})).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = call(&runner, "sleep", json!({"ms": 1})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled, "{err}");
    assert_eq!(slow.await.unwrap().unwrap(), json!({"slept": 600}));
    assert_eq!(queued.await.unwrap().unwrap(), json!({"slept": 1}));
    runner.shutdown().await;
}

#[tokio::test]
async fn idle_instances_expire() {
    let options = LocalOptions { idle_timeout: Duration::from_millis(200), ..Default::default() };
    let runner = runner_with(options, |_| {}).await;
    let a = call(&runner, "counter", json!({})).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let b = call(&runner, "counter", json!({})).await.unwrap();
    assert_ne!(a["pid"], b["pid"], "the idle process should have been stopped");
    assert_eq!(b["count"], 1);
    runner.shutdown().await;
}

#[tokio::test]
async fn the_memory_limit_turns_an_oversized_allocation_into_a_crash() {
    let options = LocalOptions { memory_limit: true, ..Default::default() };
    let runner = runner_with(options, |f| f.memory_mb = 64).await;
    assert_eq!(call(&runner, "alloc", json!({"mb": 8})).await.unwrap(), json!({"allocated_mb": 8}));
    let err = call(&runner, "alloc", json!({"mb": 256})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Crash, "{err}");
    assert!(err.message().contains("memory allocation"), "{err}");
    assert_eq!(call(&runner, "alloc", json!({"mb": 1})).await.unwrap(), json!({"allocated_mb": 1}));
    runner.shutdown().await;
}

#[tokio::test]
async fn deployed_variables_reach_the_process_and_redeploy_replaces_it() {
    let runner = runner_with(LocalOptions::default(), |f| {
        f.env.insert("GREETING".into(), "one".into());
    })
    .await;
    assert_eq!(call(&runner, "env", json!({"key": "GREETING"})).await.unwrap(), json!({"value": "one"}));
    let manifest = faas_packaging::build::describe(&fixture()).await.unwrap();
    let mut spec = AppSpec::from_parts(&Config::default_for("fixture"), fixture(), manifest).unwrap();
    for f in &mut spec.functions {
        f.env.insert("GREETING".into(), "two".into());
    }
    let package = runner.package(&spec, &NoProgress).await.unwrap();
    let report = runner.deploy(&package, &NoProgress).await.unwrap();
    assert!(report.updated.contains(&"env".to_string()));
    assert_eq!(call(&runner, "env", json!({"key": "GREETING"})).await.unwrap(), json!({"value": "two"}));
    let again = runner.deploy(&package, &NoProgress).await.unwrap();
    assert!(again.created.is_empty() && again.updated.is_empty(), "{again:?}");
    runner.shutdown().await;
}

#[tokio::test]
async fn oversized_requests_are_refused_before_any_process_runs() {
    let options = LocalOptions { max_body: 1024, ..Default::default() };
    let runner = runner_with(options, |_| {}).await;
    let err = runner.invoke(InvokeRequest::new("echo", Payload::bytes(vec![0u8; 1025]))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);
    assert!(err.message().contains("1025 bytes; the limit is 1024"), "{err}");
    assert!(runner.activations(ActivationQuery::default()).await.unwrap().is_empty());
    let out = runner.invoke(InvokeRequest::new("echo", Payload::bytes(vec![7u8; 1024]))).await.unwrap();
    assert_eq!(out.payload.len(), 1024);
    assert_eq!(out.payload.content_type(), Some("application/octet-stream"));
    runner.shutdown().await;
}

#[tokio::test]
async fn async_invocations_are_journaled_retried_and_resumed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let options = LocalOptions {
        state_dir: Some(dir.path().to_path_buf()),
        retry_base: Duration::from_millis(50),
        ..Default::default()
    };
    let runner = runner_with(options.clone(), |_| {}).await;
    let mut req = InvokeRequest::new("fail", Payload::json(&json!("async boom")).unwrap());
    req.mode = InvokeMode::Async;
    let id = runner.invoke(req).await.unwrap().activation_id;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = runner.activations(ActivationQuery { id: Some(id.clone()), ..Default::default() }).await.unwrap();
        if a.first().is_some_and(|a| a.attempt == 3 && a.status == ActivationStatus::Error) {
            assert_eq!(a[0].error.as_ref().unwrap().message(), "async boom");
            break;
        }
        assert!(Instant::now() < deadline, "three attempts expected, got {a:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    runner.shutdown().await;
    drop(runner);

    // A job acknowledged but never run (journaled, no completion record) runs after a restart.
    let journal = dir.path().join("async-journal.jsonl");
    let job = faas_runner_local::queue::Job {
        id: "left-over".into(),
        function: "hello".into(),
        body: br#"{"name":"Ada"}"#.to_vec(),
        content_type: Some("application/json".into()),
        traceparent: None,
        cause: Some("runs/order-7".into()),
        attempt: 1,
    };
    let line = serde_json::to_string(&json!({"op": "enqueue", "job": job})).unwrap();
    std::fs::write(&journal, format!("{line}\n")).unwrap();
    let runner = runner_with(options, |_| {}).await;
    assert_eq!(runner.resume_async(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a =
            runner.activations(ActivationQuery { id: Some("left-over".into()), ..Default::default() }).await.unwrap();
        if a.first().is_some_and(|a| a.status == ActivationStatus::Success) {
            // What caused it survives in the journal.
            assert_eq!(a[0].cause.as_deref(), Some("runs/order-7"));
            break;
        }
        assert!(Instant::now() < deadline, "the recovered job did not run: {a:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    runner.shutdown().await;
}

#[tokio::test]
async fn unknown_functions_list_the_known_ones() {
    let runner = runner_with(LocalOptions::default(), |_| {}).await;
    let err = call(&runner, "nope", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("known functions: alloc, counter, echo"), "{err}");
    let err = call(&runner, "../etc", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    runner.shutdown().await;
}
