//! The official aws-sdk-lambda against the emulator: CRUD, Invoke in all three modes, and the error cases.

mod common;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, InvocationType, LogType, Runtime};
use base64::Engine;
use common::*;
use serde_json::{json, Value};

fn payload_json(out: &aws_sdk_lambda::operation::invoke::InvokeOutput) -> Value {
    serde_json::from_slice(out.payload().expect("payload").as_ref()).expect("json payload")
}

#[tokio::test]
async fn crud_and_invoke_with_the_official_sdk() {
    let emulator = emulator(10).await;
    let client = client(&emulator);

    let created = client
        .create_function()
        .function_name("echo")
        .role(ROLE)
        .runtime(Runtime::Providedal2023)
        .handler("greet")
        .memory_size(256)
        .environment(Environment::builder().variables("GREETING", "hello").build())
        .code(FunctionCode::builder().zip_file(Blob::new(fixture_zip())).build())
        .send()
        .await
        .expect("create");
    assert_eq!(created.function_name(), Some("echo"));
    assert_eq!(created.function_arn(), Some("arn:aws:lambda:us-east-1:123456789012:function:echo"));
    assert_eq!(created.timeout(), Some(3));
    assert_eq!(created.memory_size(), Some(256));
    assert_eq!(created.state().map(|s| s.as_str()), Some("Active"));
    assert!(created.code_size() > 0);

    let got = client.get_function().function_name("echo").send().await.expect("get");
    let config = got.configuration().unwrap();
    assert_eq!(config.handler(), Some("greet"));
    assert_eq!(got.code().unwrap().repository_type(), Some("S3"));
    let location = got.code().unwrap().location().unwrap().to_string();
    let zip = reqwest::get(&location).await.unwrap().bytes().await.unwrap();
    assert_eq!(zip.as_ref(), fixture_zip().as_slice(), "code download returns the uploaded zip");

    // Sync invoke with Tail logs: the lambda_runtime fixture sees the payload, env vars and headers.
    let out = client
        .invoke()
        .function_name("echo")
        .payload(Blob::new(serde_json::to_vec(&json!({"op": "print", "text": "tail-me"})).unwrap()))
        .log_type(LogType::Tail)
        .client_context(base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"k":"v"},"env":{}}"#))
        .send()
        .await
        .expect("invoke");
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.function_error(), None);
    assert_eq!(out.executed_version(), Some("$LATEST"));
    let body = payload_json(&out);
    assert_eq!(body["event"]["text"], "tail-me");
    assert_eq!(body["env"]["AWS_LAMBDA_FUNCTION_NAME"], "echo");
    assert_eq!(body["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(body["env"]["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(body["env"]["_HANDLER"], "greet");
    assert_eq!(body["env"]["GREETING"], "hello");
    assert_eq!(body["env"]["TZ"], ":UTC");
    assert_eq!(body["env"]["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/echo");
    assert_eq!(body["env"]["AWS_EXECUTION_ENV"], "AWS_Lambda_provided.al2023");
    assert_eq!(body["env"]["LAMBDA_TASK_ROOT"], body["cwd"]);
    assert_eq!(body["invokedFunctionArn"], "arn:aws:lambda:us-east-1:123456789012:function:echo");
    assert_eq!(body["clientContext"]["custom"]["k"], "v");
    assert!(body["xrayTraceId"].as_str().unwrap().starts_with("Root=1-"));
    let log = base64::engine::general_purpose::STANDARD.decode(out.log_result().expect("log result")).unwrap();
    let log = String::from_utf8(log).unwrap();
    let request_id = body["requestId"].as_str().unwrap();
    assert!(log.contains(&format!("START RequestId: {request_id} Version: $LATEST")), "{log}");
    assert!(log.contains("stdout: tail-me") && log.contains("stderr: tail-me"), "{log}");
    assert!(log.contains(&format!("END RequestId: {request_id}")), "{log}");
    assert!(log.contains(&format!("REPORT RequestId: {request_id}")) && log.contains("Memory Size: 256 MB"), "{log}");

    // The warm environment is reused.
    let again = payload_json(&client.invoke().function_name("echo").send().await.unwrap());
    assert_eq!(again["pid"], body["pid"]);

    // Full ARN and $LATEST qualifier resolve; another qualifier does not.
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:echo";
    let out = client.invoke().function_name(arn).qualifier("$LATEST").send().await.expect("arn invoke");
    assert_eq!(out.status_code(), 200);
    let err = client.invoke().function_name("echo").qualifier("prod").send().await.unwrap_err();
    assert_eq!(status_and_code(&err), (404, "ResourceNotFoundException".into()));

    // DryRun → 204; Event → 202 and the run is recorded.
    let out = client.invoke().function_name("echo").invocation_type(InvocationType::DryRun).send().await.unwrap();
    assert_eq!(out.status_code(), 204);
    let out = client
        .invoke()
        .function_name("echo")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(br#"{"op":"echo","tag":"async-1"}"#.to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 202);
    let record = wait_for(&emulator, "echo", |r| {
        r.invocation_type == faas_emulator_lambda::InvocationType::Event
            && String::from_utf8_lossy(&r.response).contains("async-1")
    })
    .await;
    assert_eq!(record.function_error, None);

    // List with paging.
    create_fixture(&client, "second", 3).await;
    let page = client.list_functions().max_items(1).send().await.unwrap();
    assert_eq!(page.functions().len(), 1);
    assert_eq!(page.functions()[0].function_name(), Some("echo"));
    let marker = page.next_marker().expect("next marker").to_string();
    let page2 = client.list_functions().marker(marker).max_items(1).send().await.unwrap();
    assert_eq!(page2.functions()[0].function_name(), Some("second"));
    assert!(page2.next_marker().is_none());

    // UpdateFunctionConfiguration changes env vars and the running environment is replaced.
    let updated = client
        .update_function_configuration()
        .function_name("echo")
        .timeout(10)
        .environment(Environment::builder().variables("GREETING", "changed").build())
        .send()
        .await
        .unwrap();
    assert_eq!(updated.timeout(), Some(10));
    let body2 = payload_json(&client.invoke().function_name("echo").send().await.unwrap());
    assert_eq!(body2["env"]["GREETING"], "changed");
    assert_ne!(body2["pid"], body["pid"]);

    // UpdateFunctionCode: new code is what runs next.
    let script = b"#!/bin/sh\necho not-a-runtime\nexit 7\n";
    let updated = client
        .update_function_code()
        .function_name("echo")
        .zip_file(Blob::new(zip_of(&[("bootstrap", 0o755, script)])))
        .send()
        .await
        .unwrap();
    assert_ne!(updated.code_sha256(), config.code_sha256());
    let out = client.invoke().function_name("echo").log_type(LogType::Tail).send().await.unwrap();
    assert_eq!(out.function_error(), Some("Unhandled"));
    let err = payload_json(&out);
    assert_eq!(err["errorType"], "Runtime.ExitError");
    assert!(err["errorMessage"].as_str().unwrap().contains("Runtime exited with error: exit status 7"), "{err}");
    let log = base64::engine::general_purpose::STANDARD.decode(out.log_result().unwrap()).unwrap();
    assert!(String::from_utf8_lossy(&log).contains("not-a-runtime"));

    // Delete, then everything is 404.
    client.delete_function().function_name("echo").send().await.expect("delete");
    let err = client.invoke().function_name("echo").send().await.unwrap_err();
    assert_eq!(status_and_code(&err), (404, "ResourceNotFoundException".into()));
    assert!(err.into_service_error().is_resource_not_found_exception());
    let err = client.get_function().function_name("echo").send().await.unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    assert_eq!(client.list_functions().send().await.unwrap().functions().len(), 1);
    emulator.shutdown().await;
}

async fn wait_for(
    emulator: &faas_emulator_lambda::Emulator,
    function: &str,
    pred: impl Fn(&faas_emulator_lambda::InvocationRecord) -> bool,
) -> faas_emulator_lambda::InvocationRecord {
    for _ in 0..400 {
        if let Some(r) = emulator.invocations(function).into_iter().find(|r| pred(r)) {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no matching invocation record for {function}: {:?}", emulator.invocations(function));
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let state = tempfile::tempdir().unwrap();
    let emulator = faas_emulator_lambda::start(faas_emulator_lambda::EmulatorOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        state_dir: Some(state.path().to_path_buf()),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = client(&emulator);
    let create = |name: &str, zip: Vec<u8>| {
        client
            .create_function()
            .function_name(name)
            .role(ROLE)
            .runtime(Runtime::Providedal2023)
            .handler("h")
            .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
            .send()
    };

    let err = create("notzip", b"this is not a zip".to_vec()).await.unwrap_err();
    let (status, code) = status_and_code(&err);
    assert_eq!((status, code.as_str()), (400, "InvalidParameterValueException"));

    let evil = zip_of(&[("bootstrap", 0o755, b"#!/bin/sh\n"), ("../evil", 0o644, b"gotcha")]);
    let err = create("traversal", evil).await.unwrap_err();
    assert_eq!(status_and_code(&err).0, 400);
    assert!(format!("{:?}", err.into_service_error()).contains("../evil"));
    let written = files_under(state.path());
    assert!(written.is_empty(), "nothing may be written for refused packages: {written:?}");

    let err = create("nobootstrap", zip_of(&[("main", 0o755, b"#!/bin/sh\n")])).await.unwrap_err();
    let service = err.into_service_error();
    assert!(service.is_invalid_parameter_value_exception());
    assert!(format!("{service:?}").contains("bootstrap"));

    let err = create("bad name!", fixture_zip()).await.unwrap_err();
    assert_eq!(status_and_code(&err).0, 400);

    let err = client
        .create_function()
        .function_name("node")
        .role(ROLE)
        .runtime(Runtime::Nodejs20x)
        .handler("index.handler")
        .code(FunctionCode::builder().zip_file(Blob::new(fixture_zip())).build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_and_code(&err), (400, "InvalidParameterValueException".into()));
    assert!(format!("{:?}", err.into_service_error()).contains("nodejs20.x"));

    let err = client
        .create_function()
        .function_name("badrole")
        .role("not-an-arn")
        .runtime(Runtime::Providedal2023)
        .handler("h")
        .code(FunctionCode::builder().zip_file(Blob::new(fixture_zip())).build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_and_code(&err).0, 400);

    // Nothing above was created, nor written.
    assert!(client.list_functions().send().await.unwrap().functions().is_empty());
    assert!(files_under(state.path()).is_empty(), "{:?}", files_under(state.path()));

    create_fixture(&client, "dup", 3).await;
    let err = create("dup", fixture_zip()).await.unwrap_err();
    assert_eq!(status_and_code(&err), (409, "ResourceConflictException".into()));
    assert!(err.into_service_error().is_resource_conflict_exception());

    let err = client.invoke().function_name("missing").send().await.unwrap_err();
    assert_eq!(status_and_code(&err), (404, "ResourceNotFoundException".into()));

    // Payload limits: 6 MB sync, 1 MB async.
    let big = vec![b' '; 6 * 1024 * 1024 + 1];
    let err = client.invoke().function_name("dup").payload(Blob::new(big)).send().await.unwrap_err();
    assert_eq!(status_and_code(&err), (413, "RequestTooLargeException".into()));
    let err = client
        .invoke()
        .function_name("dup")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(vec![b' '; 1024 * 1024 + 1]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_and_code(&err).0, 413);
    // Payloads must be JSON documents, as on Lambda.
    let err = client.invoke().function_name("dup").payload(Blob::new(&b"not json"[..])).send().await.unwrap_err();
    assert_eq!(status_and_code(&err), (400, "InvalidRequestContentException".into()));
    assert!(emulator.invocations("dup").is_empty());

    let err = client.update_function_configuration().function_name("dup").timeout(901).send().await.unwrap_err();
    assert_eq!(status_and_code(&err).0, 400);
    let err = client
        .update_function_configuration()
        .function_name("dup")
        .environment(Environment::builder().variables("AWS_REGION", "x").build())
        .send()
        .await
        .unwrap_err();
    assert!(format!("{:?}", err.into_service_error()).contains("AWS_REGION"));
    let config = client.get_function_configuration().function_name("dup").send().await.unwrap();
    assert_eq!(config.timeout(), Some(3));
    emulator.shutdown().await;
}

/// Every file and non-empty directory under `dir` except the emulator's own top-level folders.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            let inner = files_under(&path);
            if inner.is_empty() && path.parent() != Some(dir) {
                found.push(path);
            }
            found.extend(inner);
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn raw_http_errors_have_lambda_shape() {
    let emulator = emulator(10).await;
    let http = reqwest::Client::new();
    let response = http.get(format!("{}/2015-03-31/functions/nope", emulator.url())).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-amzn-errortype"], "ResourceNotFoundException");
    assert!(response.headers().contains_key("x-amzn-requestid"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["Type"], "User");
    assert!(body["Message"].as_str().unwrap().contains("function:nope"));

    let response =
        http.post(format!("{}/2015-03-31/functions", emulator.url())).body("{not json").send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-amzn-errortype"], "InvalidRequestContentException");

    // A known path with a method it does not take (found by fuzz/lambda_control: an empty 405).
    for (method, path) in
        [(reqwest::Method::DELETE, "/2015-03-31/functions/"), (reqwest::Method::PATCH, "/2015-03-31/functions/f/code")]
    {
        let response = http.request(method.clone(), format!("{}{path}", emulator.url())).send().await.unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
        assert_eq!(response.headers()["x-amzn-errortype"], "UnknownOperationException", "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["message"], "Unknown operation");
    }

    // A name that does not percent-decode to UTF-8 (found by fuzz/lambda_control: axum's plain-text
    // 400, with no x-amzn-ErrorType) is refused as any name off Lambda's pattern is.
    for (method, path) in [
        (reqwest::Method::DELETE, "/2015-03-31/functions/%00~%0A.ff%ffff"),
        (reqwest::Method::GET, "/2015-03-31/functions/%FF/configuration"),
        (reqwest::Method::POST, "/2015-03-31/functions/a%C3/invocations"),
    ] {
        let response = http.request(method.clone(), format!("{}{path}", emulator.url())).send().await.unwrap();
        assert_eq!(response.status(), 400, "{method} {path}");
        assert_eq!(response.headers()["x-amzn-errortype"], "ValidationException", "{method} {path}");
        let body: Value = response.json().await.unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("at 'functionName' failed to satisfy constraint"), "{method} {path}: {message}");
    }
    emulator.shutdown().await;
}
