//! The Runtime API side: a function built with the official `lambda_runtime` crate (errors, timeouts, crashes,
//! concurrency), and the protocol's edge cases driven by a tiny hand-rolled runtime over HTTP.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, LogType, Runtime};
use base64::Engine;
use common::*;
use serde_json::{json, Value};

fn body(out: &aws_sdk_lambda::operation::invoke::InvokeOutput) -> Value {
    serde_json::from_slice(out.payload().expect("payload").as_ref()).expect("json payload")
}

fn event(value: Value) -> Blob {
    Blob::new(serde_json::to_vec(&value).unwrap())
}

#[tokio::test]
async fn lambda_runtime_function_errors_timeouts_and_crashes() {
    let emulator = emulator(10).await;
    let client = client(&emulator);
    create_fixture(&client, "fixture", 1).await;

    let out =
        client.invoke().function_name("fixture").payload(event(json!({"op": "echo", "n": 1}))).send().await.unwrap();
    assert_eq!(out.function_error(), None);
    let echoed = body(&out);
    assert_eq!(echoed["event"]["n"], 1);
    let deadline = echoed["deadlineMs"].as_u64().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(deadline > now - 5_000 && deadline <= now + 1_000, "deadline {deadline} vs now {now}");

    // A function error: 200 + X-Amz-Function-Error, the runtime's error JSON as the body.
    let out = client
        .invoke()
        .function_name("fixture")
        .payload(event(json!({"op": "error", "message": "it broke"})))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.function_error(), Some("Unhandled"));
    let err = body(&out);
    assert_eq!(err["errorType"], "FixtureError");
    assert_eq!(err["errorMessage"], "it broke");
    let last = emulator.invocations("fixture").pop().unwrap();
    assert_eq!(last.function_error.as_deref(), Some("FixtureError"));

    // Past the 1 s timeout: Sandbox.Timeout, and the next call gets a fresh environment that works.
    let before_pid = body(&client.invoke().function_name("fixture").send().await.unwrap())["pid"].clone();
    let out = client
        .invoke()
        .function_name("fixture")
        .payload(event(json!({"op": "sleep", "ms": 5000})))
        .log_type(LogType::Tail)
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), Some("Unhandled"));
    let err = body(&out);
    assert_eq!(err["errorType"], "Sandbox.Timeout");
    assert!(err["errorMessage"].as_str().unwrap().ends_with("Task timed out after 1.00 seconds"), "{err}");
    let log = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(out.log_result().unwrap()).unwrap())
        .unwrap();
    assert!(log.contains("Task timed out after 1.00 seconds") && log.contains("END RequestId"), "{log}");
    let after =
        body(&client.invoke().function_name("fixture").payload(event(json!({"op": "echo"}))).send().await.unwrap());
    assert_eq!(after["env"]["AWS_LAMBDA_FUNCTION_NAME"], "fixture");
    assert_ne!(after["pid"], before_pid, "the timed-out environment was replaced");

    // A crash: Runtime.ExitError naming the exit status; the next call works on a fresh environment.
    let out =
        client.invoke().function_name("fixture").payload(event(json!({"op": "exit", "code": 3}))).send().await.unwrap();
    let err = body(&out);
    assert_eq!(err["errorType"], "Runtime.ExitError");
    assert!(err["errorMessage"].as_str().unwrap().starts_with("RequestId: "));
    assert!(err["errorMessage"].as_str().unwrap().ends_with("Error: Runtime exited with error: exit status 3"));
    let out = client.invoke().function_name("fixture").payload(event(json!({"op": "echo"}))).send().await.unwrap();
    assert_eq!(out.function_error(), None);

    // A response over 6 MiB + 100 B: the caller gets Function.ResponseSizeTooLarge.
    let out = client
        .invoke()
        .function_name("fixture")
        .payload(event(json!({"op": "big", "bytes": 6 * 1024 * 1024 + 200})))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), Some("Unhandled"));
    assert_eq!(body(&out)["errorType"], "Function.ResponseSizeTooLarge");
    emulator.shutdown().await;
}

#[tokio::test]
async fn async_events_are_retried_on_function_error() {
    let emulator = emulator(10).await;
    let client = client(&emulator);
    create_fixture(&client, "flaky", 3).await;
    let out = client
        .invoke()
        .function_name("flaky")
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(event(json!({"op": "error", "message": "always"})))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 202);
    let mut records = Vec::new();
    for _ in 0..400 {
        records = emulator.invocations("flaky");
        if records.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One attempt plus async_retries (2) retries, all with the same request id; then it stops.
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!(records.iter().map(|r| r.attempt).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(records.iter().all(|r| r.request_id == records[0].request_id));
    assert!(records.iter().all(|r| r.function_error.as_deref() == Some("FixtureError")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(emulator.invocations("flaky").len(), 3);

    // The logs are readable through CloudWatch Logs FilterLogEvents on the same port.
    let response = reqwest::Client::new()
        .post(format!("{}/", emulator.url()))
        .header("X-Amz-Target", "Logs_20140328.FilterLogEvents")
        .header("content-type", "application/x-amz-json-1.1")
        .body(json!({"logGroupName": "/aws/lambda/flaky", "filterPattern": "START"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let logs: Value = response.json().await.unwrap();
    assert_eq!(logs["events"].as_array().unwrap().len(), 3, "{logs}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn concurrency_beyond_max_environments_is_throttled() {
    let emulator = emulator(1).await;
    let client = client(&emulator);
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addr");
    create_hand_rolled(&client, "busy", &addr_file).await;
    let invoker = client.clone();
    let first = tokio::spawn(async move { invoker.invoke().function_name("busy").send().await });
    // Once the runtime holds the first invocation, the only environment is busy.
    let addr = runtime_addr(&addr_file).await;
    let http = reqwest::Client::new();
    let next = http.get(format!("http://{addr}/2018-06-01/runtime/invocation/next")).send().await.unwrap();
    let id = next.headers()["lambda-runtime-aws-request-id"].to_str().unwrap().to_string();

    let err = client.invoke().function_name("busy").send().await.unwrap_err();
    assert_eq!(status_and_code(&err), (429, "TooManyRequestsException".into()));
    assert!(err.raw_response().unwrap().headers().get("retry-after").is_some());
    match err.into_service_error() {
        aws_sdk_lambda::operation::invoke::InvokeError::TooManyRequestsException(e) => {
            assert_eq!(e.reason().map(|r| r.as_str()), Some("ConcurrentInvocationLimitExceeded"));
        }
        other => panic!("expected TooManyRequestsException, got {other:?}"),
    }

    let r = http
        .post(format!("http://{addr}/2018-06-01/runtime/invocation/{id}/response"))
        .body(r#""done""#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let out = first.await.unwrap().unwrap();
    assert_eq!(out.payload().unwrap().as_ref(), br#""done""#);
    // The environment is free again: the next invocation is accepted (and waits for the runtime).
    let invoker = client.clone();
    let again = tokio::spawn(async move { invoker.invoke().function_name("busy").send().await });
    let next = http.get(format!("http://{addr}/2018-06-01/runtime/invocation/next")).send().await.unwrap();
    let id = next.headers()["lambda-runtime-aws-request-id"].to_str().unwrap().to_string();
    http.post(format!("http://{addr}/2018-06-01/runtime/invocation/{id}/response")).body("1").send().await.unwrap();
    assert_eq!(again.await.unwrap().unwrap().payload().unwrap().as_ref(), b"1");
    emulator.shutdown().await;
}

/// A bootstrap that publishes its Runtime API address in a file and waits: the test is the runtime.
fn hand_rolled_zip() -> Vec<u8> {
    let script = b"#!/bin/sh\necho \"$AWS_LAMBDA_RUNTIME_API\" > \"$ADDR_FILE.tmp\"\nmv \"$ADDR_FILE.tmp\" \"$ADDR_FILE\"\nexec sleep 600\n";
    zip_of(&[("bootstrap", 0o755, script)])
}

async fn create_hand_rolled(client: &aws_sdk_lambda::Client, name: &str, addr_file: &Path) {
    client
        .create_function()
        .function_name(name)
        .role(ROLE)
        .runtime(Runtime::Providedal2)
        .handler("manual")
        .timeout(60)
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("ADDR_FILE", addr_file.display().to_string())
                .build(),
        )
        .code(FunctionCode::builder().zip_file(Blob::new(hand_rolled_zip())).build())
        .send()
        .await
        .unwrap();
}

async fn runtime_addr(file: &PathBuf) -> String {
    for _ in 0..400 {
        if let Ok(addr) = std::fs::read_to_string(file) {
            return addr.trim().to_string();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the bootstrap never published its runtime address");
}

#[tokio::test]
async fn runtime_api_edge_cases_over_http() {
    let emulator = emulator(10).await;
    let client = client(&emulator);
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addr");
    create_hand_rolled(&client, "manual", &addr_file).await;
    let http = reqwest::Client::new();

    let invoker = client.clone();
    let first = tokio::spawn(async move {
        invoker.invoke().function_name("manual").payload(event(json!({"hello": "runtime"}))).send().await
    });
    let addr = runtime_addr(&addr_file).await;
    assert!(addr.starts_with("127.0.0.1:") && !addr.contains("http"), "no scheme: {addr}");
    let base = format!("http://{addr}/2018-06-01/runtime");

    let next = http.get(format!("{base}/invocation/next")).send().await.unwrap();
    assert_eq!(next.status(), 200);
    let h = next.headers().clone();
    let id = h["lambda-runtime-aws-request-id"].to_str().unwrap().to_string();
    assert!(h["lambda-runtime-deadline-ms"].to_str().unwrap().parse::<u64>().is_ok());
    assert_eq!(h["lambda-runtime-invoked-function-arn"], "arn:aws:lambda:us-east-1:123456789012:function:manual");
    assert!(h["lambda-runtime-trace-id"].to_str().unwrap().starts_with("Root=1-"));
    assert!(h.get("lambda-runtime-client-context").is_none());
    assert_eq!(next.json::<Value>().await.unwrap(), json!({"hello": "runtime"}));

    // Unknown id → 400 InvalidRequestID.
    let r = http.post(format!("{base}/invocation/not-the-id/response")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["errorType"], "InvalidRequestID");
    // So is an id that does not percent-decode to UTF-8 (not axum's plain-text 400).
    for what in ["response", "error"] {
        let r = http.post(format!("{base}/invocation/%FF%FE/{what}")).body("{}").send().await.unwrap();
        assert_eq!(r.status(), 400, "{what}");
        assert_eq!(r.json::<Value>().await.unwrap()["errorType"], "InvalidRequestID", "{what}");
    }
    // The real response → 202 {"status":"OK"}; a second one → 403 InvalidStateTransition.
    let r = http.post(format!("{base}/invocation/{id}/response")).body(r#"{"answer":42}"#).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "OK"}));
    let r = http.post(format!("{base}/invocation/{id}/response")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["errorType"], "InvalidStateTransition");
    let out = first.await.unwrap().unwrap();
    assert_eq!(serde_json::from_slice::<Value>(out.payload().unwrap().as_ref()).unwrap(), json!({"answer": 42}));
    assert_eq!(aws_sdk_lambda::operation::RequestId::request_id(&out), Some(id.as_str()));

    // A response over 6 MiB + 100 B → 413 to the runtime, Function.ResponseSizeTooLarge to the caller.
    let invoker = client.clone();
    let second = tokio::spawn(async move { invoker.invoke().function_name("manual").send().await });
    let next = http.get(format!("{base}/invocation/next")).send().await.unwrap();
    let id2 = next.headers()["lambda-runtime-aws-request-id"].to_str().unwrap().to_string();
    assert_eq!(next.bytes().await.unwrap().as_ref(), b"{}");
    let r = http
        .post(format!("{base}/invocation/{id2}/response"))
        .body(vec![b'x'; 6 * 1024 * 1024 + 101])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["errorType"], "RequestEntityTooLarge");
    let out = second.await.unwrap().unwrap();
    assert_eq!(out.function_error(), Some("Unhandled"));
    assert_eq!(body(&out)["errorType"], "Function.ResponseSizeTooLarge");

    // An invocation error with a non-conforming type header: the body passes through, the type is normalised.
    let invoker = client.clone();
    let third = tokio::spawn(async move { invoker.invoke().function_name("manual").send().await });
    let next = http.get(format!("{base}/invocation/next")).send().await.unwrap();
    let id3 = next.headers()["lambda-runtime-aws-request-id"].to_str().unwrap().to_string();
    let r = http
        .post(format!("{base}/invocation/{id3}/error"))
        .header("Lambda-Runtime-Function-Error-Type", "unhandled")
        .body(r#"{"errorType":"MyError","errorMessage":"bad","stackTrace":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let out = third.await.unwrap().unwrap();
    assert_eq!(out.function_error(), Some("Unhandled"));
    assert_eq!(body(&out), json!({"errorType":"MyError","errorMessage":"bad","stackTrace":[]}));
    // init/error after invocations started is a wrong state transition.
    let r = http.post(format!("{base}/init/error")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 403);
    emulator.shutdown().await;
}

#[tokio::test]
async fn init_error_reaches_the_caller() {
    let emulator = emulator(10).await;
    let client = client(&emulator);
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addr");
    create_hand_rolled(&client, "initfail", &addr_file).await;
    let invoker = client.clone();
    let call = tokio::spawn(async move { invoker.invoke().function_name("initfail").send().await });
    let addr = runtime_addr(&addr_file).await;
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/2018-06-01/runtime/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")
        .body(r#"{"errorType":"Runtime.ConfigError","errorMessage":"missing setting X"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let out = call.await.unwrap().unwrap();
    assert_eq!(out.function_error(), Some("Unhandled"));
    assert_eq!(body(&out)["errorMessage"], "missing setting X");
    assert_eq!(emulator.invocations("initfail").pop().unwrap().function_error.as_deref(), Some("Runtime.ConfigError"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn idle_environments_expire_and_the_next_invocation_is_a_cold_start() {
    let emulator = faas_emulator_lambda::start(faas_emulator_lambda::EmulatorOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        idle_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = client(&emulator);
    create_fixture(&client, "idle", 5).await;
    let pid = |out: &aws_sdk_lambda::operation::invoke::InvokeOutput| body(out)["pid"].as_u64().expect("pid");
    let first = pid(&client.invoke().function_name("idle").send().await.unwrap());
    let again = pid(&client.invoke().function_name("idle").send().await.unwrap());
    assert_eq!(first, again, "a warm environment is reused within the idle timeout");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!Path::new(&format!("/proc/{first}")).exists(), "the idle environment's process was stopped");
    let later = pid(&client.invoke().function_name("idle").send().await.unwrap());
    assert_ne!(later, first, "after the idle timeout a new environment serves");
    let logs: Vec<String> = emulator.invocations("idle").into_iter().map(|r| r.log).collect();
    let cold: Vec<bool> = logs.iter().map(|l| l.contains("Init Duration")).collect();
    assert_eq!(cold, [true, false, true], "{logs:#?}");
    emulator.shutdown().await;
}
