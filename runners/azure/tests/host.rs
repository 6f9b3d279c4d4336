//! A faas binary (fixture/main.rs, whose main is `faas::serve`) as the Functions host starts its
//! custom handler (AZURE-HOST.md §1.2: its app settings plus the five variables, the app folder
//! with host.json and function.json), driven by requests built as the Functions host builds them
//! (§2) and checked against what it reads back (§3) or relays (§4): one test per rule.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_a_bare_get_and_other_paths_are_a_portable_404() {
    let h = start(None, &[]).await;
    // §1.3: a bare request, no User-Agent, no invocation headers.
    let started = Instant::now();
    let resp = reqwest::Client::builder().build().unwrap().get(format!("{}/", h.url)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.bytes().await.unwrap();
    assert!(!body.is_empty() && body.len() <= 16, "a tiny body: {body:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    for (method, path) in [("GET", "/nope/deeper"), ("POST", "/api/hello"), ("DELETE", "/")] {
        let resp =
            reqwest::Client::new().request(method.parse().unwrap(), format!("{}{path}", h.url)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 404, "{method} {path}");
        let error: Value = resp.json().await.unwrap();
        assert_eq!(error["kind"], "not_found", "{error}");
        assert!(error["errorMessage"].as_str().unwrap().contains(path), "{error}");
    }
    // Nothing was invoked, nothing was printed.
    assert!(h.stdout.lock().unwrap().is_empty(), "{:?}", h.stdout.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_port_variable_alone_is_enough() {
    let port = free_port();
    let mut cmd = std::process::Command::new(fixture());
    cmd.env_clear().env("FUNCTIONS_HTTPWORKER_PORT", port.to_string());
    let h = start_command(cmd, port).await;
    let call = HttpCall::new("POST", "http://localhost:7071/api/hello").body("application/json", r#"{"name":"Ada"}"#);
    let answer = invoke(&h, "hello", &call.invocation("hello"), &[]).await;
    assert_eq!(answer.res_json()["greeting"], "Hello, Ada!");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_http_function_in_the_default_mode() {
    let folder = app_folder(Some(HOST_JSON), &[("hello", &http_function(None))]);
    let h = start(Some(folder.path()), &[("FAAS_FUNCTION_TIMEOUTS", "hello=30")]).await;
    let call = HttpCall::new("POST", "https://myapp.azurewebsites.net/api/hello")
        .header("x-functions-key", "secret")
        .body("application/json", r#"{"name":"Ada"}"#);
    let answer = invoke(&h, "hello", &call.invocation("hello"), &[("traceparent", TRACEPARENT)]).await;
    assert_eq!(answer.status_code(), 200);
    let res = answer.res();
    assert_eq!(res["headers"]["Content-Type"], "application/json");
    assert!(res["headers"].get("X-Faas-Encoding").is_none(), "{res}");
    let reply = answer.res_json();
    assert_eq!(reply["greeting"], "Hello, Ada!");
    assert_eq!(reply["id"], answer.invocation_id.as_str(), "the invocation id is X-Azure-Functions-InvocationId");
    assert_eq!(res["headers"]["X-Faas-Invocation-Id"], answer.invocation_id.as_str(), "named to the caller: {res}");
    assert_eq!((reply["function"].as_str(), reply["backend"].as_str()), (Some("hello"), Some("azure")));
    assert_eq!(reply["trace"], "4bf92f3577b34da6a3ce929d0e0e4736");
    let remaining = reply["remaining_ms"].as_u64().unwrap();
    assert!((25_000..=30_000).contains(&remaining), "the deadline is the function's 30 s: {remaining} ms left");
    assert_eq!(answer.logs(), ["greeting Ada"]);
    assert_eq!(answer.json["ReturnValue"], Value::Null);
    // The Logs are not printed too: the Functions host would log them twice.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!h.stdout.lock().unwrap().iter().any(|l| l.contains("greeting Ada")), "{:?}", h.stdout.lock().unwrap());
    // The caller's own traceparent, inside the request object, when the Functions host sent none.
    let call = HttpCall::new("POST", "https://myapp.azurewebsites.net/api/hello")
        .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        .body("application/json", r#"{"name":"Bo"}"#);
    let answer = invoke(&h, "hello", &call.invocation("hello"), &[]).await;
    assert_eq!(answer.res_json()["trace"], "0af7651916cd43dd8448eb211c80319c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_function_sees_the_query_the_headers_and_the_route_params() {
    let folder = app_folder(Some(HOST_JSON), &[("request", &http_function(Some("items/{id}")))]);
    let h = start(Some(folder.path()), &[]).await;
    let call = HttpCall::new("PUT", "https://myapp.azurewebsites.net/api/items/42?x=1&tag=a&tag=b")
        .header("X-Custom", "one")
        .header("X-Custom", "two")
        .param("id", "42")
        .body("text/plain", "hello");
    let answer = invoke(&h, "request", &call.invocation("request"), &[]).await;
    let seen = answer.res_json();
    assert_eq!((seen["len"].as_u64(), seen["content_type"].as_str()), (Some(5), Some("text/plain")));
    assert_eq!(seen["body"], "hello");
    let azure = &seen["azure"];
    assert_eq!(azure["function_name"], "request");
    assert_eq!(azure["trigger_type"], "httpTrigger");
    assert_eq!(azure["host_version"], HOST_VERSION);
    assert_eq!(azure["invocation_id"], answer.invocation_id.as_str());
    assert_eq!(azure["forwarded"], false);
    let req = &azure["request"];
    assert_eq!(req["method"], "PUT");
    assert_eq!(req["url"], "https://myapp.azurewebsites.net/api/items/42?x=1&tag=a&tag=b");
    assert_eq!(req["query"], json!({"x": "1", "tag": "a,b"}));
    assert_eq!(req["params"], json!({"id": "42"}));
    assert_eq!(req["headers"]["X-Custom"], json!(["one", "two"]));
    assert_eq!(req["identities"][0]["AuthenticationType"], "WebJobsAuthLevel");
    // Metadata, decoded from the host's encoding.
    assert_eq!(azure["metadata"]["id"], "42");
    assert_eq!(azure["metadata"]["sys"]["MethodName"], "request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_body_the_payload_is_empty() {
    let h = start(None, &[]).await;
    // No Content-Length, so no Body (§2.3), as for a GET.
    let call = HttpCall::new("GET", "https://myapp.azurewebsites.net/api/request");
    assert!(call.invocation("request")["Data"]["req"].get("Body").is_none());
    let answer = invoke(&h, "request", &call.invocation("request"), &[]).await;
    let seen = answer.res_json();
    assert_eq!((seen["len"].as_u64(), &seen["content_type"]), (Some(0), &Value::Null));
    // The raw echo of nothing: an empty text body, still with a Content-Type.
    let answer =
        invoke(&h, "echo", &HttpCall::new("GET", "https://myapp.azurewebsites.net/api/echo").invocation("echo"), &[])
            .await;
    assert_eq!(answer.status_code(), 200);
    assert_eq!(answer.res()["body"], "");
    assert_eq!(answer.res()["headers"]["Content-Type"], "text/plain; charset=utf-8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octet_stream_is_base64_both_ways_and_every_byte_survives() {
    let h = start(None, &[]).await;
    let all: Vec<u8> = (0..=255u8).collect();
    let call =
        HttpCall::new("POST", "https://myapp.azurewebsites.net/api/echo").body("application/octet-stream", all.clone());
    let invocation = call.invocation("echo");
    assert_eq!(invocation["Data"]["req"]["Body"], b64(&all), "the Functions host sends these bytes as base64");
    let answer = invoke(&h, "echo", &invocation, &[]).await;
    let res = answer.res();
    assert_eq!(res["headers"]["Content-Type"], "application/octet-stream");
    assert_eq!(res["headers"]["X-Faas-Encoding"], "base64");
    let back = base64::engine::general_purpose::STANDARD.decode(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(back, all);
    // A reply that is not UTF-8, of another type: base64 too, its type kept.
    let answer = invoke(
        &h,
        "bytes",
        &HttpCall::new("GET", "https://myapp.azurewebsites.net/api/bytes").invocation("bytes"),
        &[],
    )
    .await;
    let res = answer.res();
    assert_eq!(
        (res["headers"]["Content-Type"].as_str(), res["headers"]["X-Faas-Encoding"].as_str()),
        (Some("image/png"), Some("base64"))
    );
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(res["body"].as_str().unwrap()).unwrap(), all);
    // Text stays text.
    let call =
        HttpCall::new("POST", "https://myapp.azurewebsites.net/api/echo").body("text/plain; charset=utf-8", "grüße");
    let answer = invoke(&h, "echo", &call.invocation("echo"), &[]).await;
    assert_eq!(answer.res()["body"], "grüße");
    assert!(answer.res()["headers"].get("X-Faas-Encoding").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_http_outputs_with_their_status_and_the_portable_error() {
    let h = start(None, &[]).await;
    let post = |name: &str, body: &str| {
        HttpCall::new("POST", &format!("https://myapp.azurewebsites.net/api/{name}"))
            .body("application/json", body)
            .invocation(name)
    };
    let answer = invoke(&h, "fail", &post("fail", r#"{"message":"boom"}"#), &[]).await;
    assert_eq!(answer.status_code(), 500);
    assert_eq!(answer.res()["headers"]["Content-Type"], "application/json");
    assert_eq!(answer.res()["headers"]["faas-error"], "function");
    let error = answer.res_json();
    assert_eq!((error["kind"].as_str(), error["errorType"].as_str()), (Some("function"), Some("ProbeError")));
    assert_eq!(error["errorMessage"], "boom");
    // A panic is a crash; the next call is served.
    let answer = invoke(&h, "panics", &post("panics", "{}"), &[]).await;
    assert_eq!((answer.status_code(), answer.res_json()["kind"].as_str()), (500, Some("crash")));
    let answer = invoke(&h, "hello", &post("hello", r#"{"name":"Ada"}"#), &[]).await;
    assert_eq!(answer.res_json()["greeting"], "Hello, Ada!");
    // Bad JSON for a typed function: 400 with the parse error.
    let answer = invoke(&h, "hello", &post("hello", "{"), &[]).await;
    assert_eq!((answer.status_code(), answer.res_json()["kind"].as_str()), (400, Some("bad_input")));
    // A request body that is not an invocation at all is still answered in the form the
    // Functions host reads, naming the problem.
    for (body, expected) in [
        (&b"not json"[..], "the invocation request is not JSON"),
        (br#"{"Data": 5}"#, "`Data` must be an object"),
        (br#"{"Data": {"request": {}}}"#, "has no `req`"),
        (br#"{"Data": {"req": 7}}"#, "`Data.req` must be the HTTP request object"),
    ] {
        let answer = invoke_raw(&h, "hello", body.to_vec(), &[]).await;
        assert_eq!(answer.status_code(), 400, "{}", String::from_utf8_lossy(body));
        let message = answer.res_json()["errorMessage"].as_str().unwrap().to_string();
        assert!(message.contains(expected), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_function_is_a_404_with_the_portable_error() {
    let h = start(None, &[]).await;
    let call = HttpCall::new("POST", "https://myapp.azurewebsites.net/api/nope").body("application/json", "{}");
    let answer = invoke(&h, "nope", &call.invocation("nope"), &[]).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.content_type, "application/json");
    assert_eq!(answer.json["kind"], "not_found");
    let message = answer.json["errorMessage"].as_str().unwrap();
    assert!(message.contains("/nope") && message.contains("hello"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_past_its_own_timeout_is_answered_504_before_its_deadline() {
    let folder = app_folder(Some(HOST_JSON), &[]);
    let h = start(Some(folder.path()), &[("FAAS_FUNCTION_TIMEOUTS", "hello=30,slow=1")]).await;
    let call =
        HttpCall::new("POST", "https://myapp.azurewebsites.net/api/slow").body("application/json", r#"{"ms":5000}"#);
    let started = Instant::now();
    let answer = invoke(&h, "slow", &call.invocation("slow"), &[]).await;
    let took = started.elapsed();
    assert_eq!(answer.status_code(), 504);
    let error = answer.res_json();
    assert_eq!(error["kind"], "timeout", "{error}");
    assert!(took >= Duration::from_millis(600) && took < Duration::from_secs(1), "answered after {took:?}");
    // The log lines, then the error the Functions host's records keep of a failure.
    let logs = answer.logs();
    assert_eq!(logs[0], "going to sleep");
    let marked = logs[1].strip_prefix("faas-error: ").expect("the error line ends the Logs");
    assert_eq!(serde_json::from_str::<serde_json::Value>(marked).unwrap()["kind"], "timeout", "{logs:?}");
    assert_eq!(logs.len(), 2);
    // Within its time it runs to the end.
    let call =
        HttpCall::new("POST", "https://myapp.azurewebsites.net/api/slow").body("application/json", r#"{"ms":10}"#);
    assert_eq!(invoke(&h, "slow", &call.invocation("slow"), &[]).await.res_json()["slept"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_each_get_their_own_logs() {
    let h = start(None, &[]).await;
    let call = |tag: &str| {
        let body = json!({"tag": tag, "count": 10, "pause_ms": 20}).to_string();
        HttpCall::new("POST", "https://myapp.azurewebsites.net/api/chatty")
            .body("application/json", body)
            .invocation("chatty")
    };
    let bodies: Vec<Value> = ["a", "b", "c", "d"].into_iter().map(call).collect();
    let started = Instant::now();
    let answers = futures::future::join_all(bodies.iter().map(|b| invoke(&h, "chatty", b, &[]))).await;
    let took = started.elapsed();
    for (answer, tag) in answers.iter().zip(["a", "b", "c", "d"]) {
        let expected: Vec<String> = (0..10).map(|n| format!("{tag} {n}")).collect();
        assert_eq!(answer.logs(), expected);
        assert_eq!(answer.res_json()["tag"], tag);
    }
    // Four calls of 200 ms each, served at once, not one after the other.
    assert!(took < Duration::from_millis(700), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_message_becomes_a_cloudevent_for_the_event_function() {
    let folder = app_folder(Some(HOST_JSON), &[("seen", &queue_function("myQueueItem", "orders"))]);
    let h = start(Some(folder.path()), &[]).await;
    // The body of AZURE-HOST.md §2.5.
    let body = json!({"Data": {"myQueueItem": "\"{\\\"orderId\\\":7}\""},
        "Metadata": {"DequeueCount": "1", "ExpirationTime": "2025-06-08T10:00:00+00:00",
            "Id": "\"5b1c2f6e-7a3d-4a8e-9f00-0123456789ab\"", "InsertionTime": "2025-06-01T10:00:00+00:00",
            "NextVisibleTime": "2025-06-01T10:10:00+00:00", "PopReceipt": "\"AgAAAAMAAAAAAAAA\"", "orderId": "\"7\"",
            "sys": sys("seen")}});
    // Check the §2.5 encoding is what is sent: the message is JSON text inside JSON text.
    assert_eq!(serde_json::to_string(&body["Data"]).unwrap(), r#"{"myQueueItem":"\"{\\\"orderId\\\":7}\""}"#);
    let answer = invoke(&h, "seen", &body, &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "application/json; charset=utf-8");
    assert_eq!(answer.json["Outputs"], json!({}));
    assert_eq!(answer.json["ReturnValue"], Value::Null);
    let logs = answer.logs();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let event: Value = serde_json::from_str(&logs[0]).unwrap();
    assert_eq!(event["id"], "5b1c2f6e-7a3d-4a8e-9f00-0123456789ab", "the id is Metadata.Id");
    assert_eq!(event["type"], "azure.storage.queue.v1.message");
    assert_eq!(event["source"], "queues/orders");
    assert_eq!(event["data"], json!({"orderId": 7}), "the message, JSON since it parses");
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["time"], "2025-06-01T10:00:00+00:00");
    assert_eq!(event["dequeuecount"], "1");
    // A text message is text.
    let body = json!({"Data": {"myQueueItem": "\"hello\""}, "Metadata": {"Id": "\"m-2\"", "sys": sys("seen")}});
    let event: Value = serde_json::from_str(&invoke(&h, "seen", &body, &[]).await.logs()[0]).unwrap();
    assert_eq!((event["id"].as_str(), event["data"].as_str()), (Some("m-2"), Some("hello")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_grid_event_becomes_the_same_cloudevent() {
    let folder = app_folder(Some(HOST_JSON), &[("seen", &event_grid_function())]);
    let h = start(Some(folder.path()), &[]).await;
    let grid = json!({"id": "831e1650-001e-001b-66ab-eeb76e069631",
        "topic": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
        "subject": "/blobServices/default/containers/c/blobs/f.txt", "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2017-06-26T18:41:00.9584103Z", "data": {"api": "PutBlockList", "contentLength": 524288},
        "dataVersion": "", "metadataVersion": "1"});
    let answer = invoke(&h, "seen", &json!({"Data": {"event": grid}, "Metadata": {"sys": sys("seen")}}), &[]).await;
    assert_eq!((answer.status, &answer.json["Outputs"]), (200, &json!({})));
    let event: Value = serde_json::from_str(&answer.logs()[0]).unwrap();
    assert_eq!(event["id"], "831e1650-001e-001b-66ab-eeb76e069631");
    assert_eq!(event["type"], "Microsoft.Storage.BlobCreated");
    assert_eq!(
        event["source"],
        "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"
    );
    assert_eq!(event["subject"], "/blobServices/default/containers/c/blobs/f.txt");
    assert_eq!(event["data"], json!({"api": "PutBlockList", "contentLength": 524288}));
    assert!(event["time"].as_str().unwrap().starts_with("2017-06-26T18:41:00.958"), "{event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_queue_function_answers_500_so_the_message_is_retried() {
    let folder = app_folder(Some(HOST_JSON), &[("reject", &queue_function("message", "orders"))]);
    let h = start(Some(folder.path()), &[]).await;
    let body = json!({"Data": {"message": "\"{\\\"orderId\\\":8}\""},
        "Metadata": {"DequeueCount": "2", "Id": "\"m-8\"", "sys": sys("reject")}});
    let answer = invoke(&h, "reject", &body, &[]).await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.json["kind"], "function");
    assert_eq!(answer.json["errorType"], "Rejected");
    // The error on stderr, which the Functions host logs as an error of the worker.
    let started = Instant::now();
    while !h.stderr.lock().unwrap().iter().any(|l| l.contains("event m-8 is not wanted")) {
        assert!(started.elapsed() < Duration::from_secs(5), "no error on stderr: {:?}", h.stderr.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_mode_answers_raw_and_other_triggers_keep_the_default_mode() {
    let folder = app_folder(
        Some(&host_json_forwarding()),
        &[
            ("hello", &http_function(Some("hello"))),
            ("request", &http_function(Some("items/{id:int}"))),
            ("fail", &http_function(None)),
            ("seen", &queue_function("message", "orders")),
        ],
    );
    let h = start(Some(folder.path()), &[]).await;
    let http = reqwest::Client::new();
    // The caller's request as the Functions host forwards it: original path, method, headers and
    // body, plus its three headers.
    let forward = |method: &str, path: &str| {
        http.request(method.parse().unwrap(), format!("{}{path}", h.url))
            .header("Host", "myapp.azurewebsites.net")
            .header("X-Azure-Functions-HostVersion", HOST_VERSION)
            .header("X-Azure-Functions-InvocationId", "11111111-2222-3333-4444-555555555555")
            .header("User-Agent", format!("curl/8.5.0 Azure-Functions-Host/{HOST_VERSION}"))
    };
    let resp = forward("POST", "/api/hello")
        .header("content-type", "application/json")
        .header("traceparent", TRACEPARENT)
        .body(r#"{"name":"Ada"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let reply: Value = resp.json().await.unwrap();
    assert_eq!(reply["greeting"], "Hello, Ada!");
    assert_eq!(reply["id"], "11111111-2222-3333-4444-555555555555");
    assert_eq!(reply["trace"], "4bf92f3577b34da6a3ce929d0e0e4736");
    // Route values from the route template, the query and the headers as they came.
    let resp = forward("GET", "/api/items/42?x=1").header("X-Custom", "yes").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["azure"]["forwarded"], true);
    assert_eq!(seen["azure"]["request"]["params"], json!({"id": "42"}));
    assert_eq!(seen["azure"]["request"]["query"], json!({"x": "1"}));
    assert_eq!(seen["azure"]["request"]["headers"]["x-custom"], json!(["yes"]));
    assert_eq!(seen["azure"]["request"]["url"], "http://myapp.azurewebsites.net/api/items/42?x=1");
    // `{id:int}` does not take letters.
    let resp = forward("GET", "/api/items/forty-two").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    // Errors raw, as the faas local HTTP host answers them.
    let resp = forward("POST", "/api/fail")
        .header("content-type", "application/json")
        .body(r#"{"message":"boom"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    assert_eq!(resp.headers()["faas-error"], "function");
    let error: Value = resp.json().await.unwrap();
    assert_eq!((error["errorType"].as_str(), error["errorMessage"].as_str()), (Some("ProbeError"), Some("boom")));
    // The queue function of the same app: default mode.
    let body = json!({"Data": {"message": "\"hi\""}, "Metadata": {"Id": "\"q-1\"", "sys": sys("seen")}});
    let answer = invoke(&h, "seen", &body, &[]).await;
    assert_eq!((answer.status, &answer.json["Outputs"]), (200, &json!({})));
    let event: Value = serde_json::from_str(&answer.logs()[0]).unwrap();
    assert_eq!((event["id"].as_str(), event["data"].as_str()), (Some("q-1"), Some("hi")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_function_over_http_takes_binary_and_structured_cloudevents() {
    let h = start(None, &[]).await;
    let binary = HttpCall::new("POST", "https://myapp.azurewebsites.net/api/seen")
        .header("ce-specversion", "1.0")
        .header("ce-id", "e-1")
        .header("ce-source", "/shop")
        .header("ce-type", "order.created")
        .header("ce-subject", "order%2042")
        .body("application/json", r#"{"n":1}"#);
    let answer = invoke(&h, "seen", &binary.invocation("seen"), &[]).await;
    assert_eq!(answer.status_code(), 200);
    assert_eq!(answer.res()["headers"]["Content-Type"], "application/cloudevents+json");
    let reply = answer.res_json();
    assert_eq!((reply["type"].as_str(), reply["id"].as_str()), (Some("order.created.seen"), Some("e-1-seen")));
    assert_eq!(reply["data"]["subject"], "order 42");
    assert_eq!(reply["data"]["data"], json!({"n": 1}));
    let structured = json!({"specversion": "1.0", "id": "e-2", "source": "/s", "type": "t", "data": {"a": 1}});
    let call = HttpCall::new("POST", "https://myapp.azurewebsites.net/api/seen")
        .body("application/cloudevents+json; charset=utf-8", structured.to_string());
    let reply = invoke(&h, "seen", &call.invocation("seen"), &[]).await.res_json();
    assert_eq!((reply["data"]["id"].as_str(), &reply["data"]["data"]), (Some("e-2"), &json!({"a": 1})));
    // Neither: 400 naming what is missing.
    let call = HttpCall::new("POST", "https://myapp.azurewebsites.net/api/seen").body("application/json", "{}");
    let answer = invoke(&h, "seen", &call.invocation("seen"), &[]).await;
    assert_eq!(answer.status_code(), 400);
    assert!(answer.res_json()["errorMessage"].as_str().unwrap().contains("specversion"), "{}", answer.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cx_emit_posts_to_the_gateway_of_faas_events_url() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let gateway = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingress", gateway.local_addr().unwrap());
    let received = tokio::spawn(async move {
        let (mut conn, _) = gateway.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&request).contains("fixture.announced") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "the request ended early: {}", String::from_utf8_lossy(&request));
            request.extend_from_slice(&buf[..n]);
        }
        conn.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await.unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    let h = start(None, &[("FAAS_EVENTS_URL", &url)]).await;
    let call =
        HttpCall::new("POST", "https://myapp.azurewebsites.net/api/announce").body("application/json", r#"{"n":7}"#);
    let answer = invoke(&h, "announce", &call.invocation("announce"), &[("traceparent", TRACEPARENT)]).await;
    assert_eq!(answer.res_json()["emitted"], true, "{}", answer.json);
    let request = received.await.unwrap();
    assert!(request.starts_with("POST /ingress HTTP/1.1"), "{request}");
    assert!(request.to_ascii_lowercase().contains("content-type: application/cloudevents+json"), "{request}");
    assert!(request.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "the invocation's trace goes on: {request}");
    assert!(request.contains(&format!("{}-announced", answer.invocation_id)), "{request}");
}

/// Starts the handler on a folder of `host_json` and `functions` with `env`; it must stop at once,
/// with a message naming each of `expected`.
fn stops_naming(host_json: &str, functions: &[(&str, &str)], env: &[(&str, &str)], expected: &[&str]) {
    let folder = app_folder(Some(host_json), functions);
    let (status, stderr) = run_to_exit(handler_command(free_port(), Some(folder.path()), env), Duration::from_secs(20));
    assert!(!status.success(), "{expected:?}: {status}");
    for part in expected {
        assert!(stderr.contains(part), "{part} in: {stderr}");
    }
}

#[test]
fn malformed_app_files_and_settings_stop_the_handler_naming_them() {
    stops_naming(r#"{"version": "2.0", "functionTimeout": 30}"#, &[], &[], &["host.json", "`functionTimeout`"]);
    stops_naming(
        r#"{"customHandler": {"enableForwardingHttpRequest": "yes"}}"#,
        &[],
        &[],
        &["host.json", "`customHandler.enableForwardingHttpRequest`"],
    );
    stops_naming(
        HOST_JSON,
        &[("hello", r#"{"bindings": [{"type": "httpTrigger", "direction": "in"}]}"#)],
        &[],
        &["hello/function.json", "`bindings[0].name`"],
    );
    stops_naming(
        HOST_JSON,
        &[],
        &[("FAAS_FUNCTION_TIMEOUTS", "hello=30,slow=soon")],
        &["FAAS_FUNCTION_TIMEOUTS", "`slow=soon`"],
    );
}
