//! A faas binary (fixture/main.rs, whose main is `faas::serve`) as Cloud Run starts a 2nd-gen
//! function: `PORT`, `K_SERVICE`, `FUNCTION_TARGET`; driven by hand-written requests that follow
//! the Functions Framework contract (GoogleCloudPlatform/functions-framework `README.md`): HTTP
//! functions, CloudEvent functions in binary and structured mode and from legacy events, the
//! paths that are never the function's, errors, the deadline, the concurrency limit and the logs.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{fixture, start};

use serde_json::{json, Value};

async fn json_of(resp: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap();
    (status, headers, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_function_on_every_path_but_two_with_its_logs_attributed() {
    let f = start("hello", &[("GOOGLE_CLOUD_PROJECT", "my-project")]);
    let http = reqwest::Client::new();
    let (status, headers, body) = json_of(
        http.post(format!("{}/any/path?x=1", f.url))
            .header("function-execution-id", "exec-42")
            .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .json(&json!({"name": "Ada"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["greeting"], "Hello, Ada!");
    assert_eq!((body["id"].as_str(), body["backend"].as_str()), (Some("exec-42"), Some("gcf")));
    assert_eq!(body["trace"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"));
    assert!(headers.get("etag").is_none(), "the contract: no ETag");
    for path in ["/robots.txt", "/favicon.ico"] {
        let resp = http.get(format!("{}{path}", f.url)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 404, "{path}");
    }
    // The function's log line: JSON on stdout, attributed to its request.
    let started = Instant::now();
    let line = loop {
        let found = f.stdout.lock().unwrap().iter().find(|l| l.contains("greeting Ada")).cloned();
        if let Some(l) = found {
            break l;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no log line: {:?}", f.stdout.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let entry: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(entry["severity"], "INFO");
    assert_eq!(entry["message"], "greeting Ada");
    assert_eq!(entry["logging.googleapis.com/labels"]["execution_id"], "exec-42");
    assert_eq!(entry["logging.googleapis.com/trace"], "projects/my-project/traces/4bf92f3577b34da6a3ce929d0e0e4736");
    // Bad JSON for a typed function: 400 with the portable error.
    let (status, _, body) =
        json_of(http.post(&f.url).header("content-type", "application/json").body("{").send().await.unwrap()).await;
    assert_eq!((status, body["kind"].as_str()), (400, Some("bad_input")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_function_gets_the_body_as_it_came() {
    let f = start("echo", &[]);
    let bytes: Vec<u8> = (0..=255u8).collect();
    let resp = reqwest::Client::new()
        .put(format!("{}/upload", f.url))
        .header("content-type", "image/png")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &bytes[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_have_the_framework_statuses() {
    let http = reqwest::Client::new();
    let fail = start("fail", &[]);
    let (status, headers, body) =
        json_of(http.post(&fail.url).json(&json!({"message": "boom"})).send().await.unwrap()).await;
    assert_eq!((status, headers["x-google-status"].to_str().unwrap()), (500, "error"));
    assert_eq!((body["errorType"].as_str(), body["errorMessage"].as_str()), (Some("ProbeError"), Some("boom")));
    let panics = start("panics", &[]);
    let (status, headers, body) = json_of(http.post(&panics.url).json(&json!({})).send().await.unwrap()).await;
    assert_eq!((status, headers["x-google-status"].to_str().unwrap()), (500, "crash"), "{body}");
    // The next request is served: a panic does not take the instance down.
    let (status, _, _) = json_of(http.post(&panics.url).json(&json!({})).send().await.unwrap()).await;
    assert_eq!(status, 500);
    // Stopped before its deadline (timeoutSeconds 1): 504.
    let slow = start("slow", &[("FAAS_TIMEOUT_SECONDS", "1")]);
    let started = Instant::now();
    let (status, _, body) = json_of(http.post(&slow.url).json(&json!({"ms": 5000})).send().await.unwrap()).await;
    assert_eq!((status, body["kind"].as_str()), (504, Some("timeout")), "{body}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_instance_concurrency_is_429() {
    let f = start("slow", &[("FAAS_CONCURRENCY", "2")]);
    let http = reqwest::Client::new();
    let call = || http.post(&f.url).json(&json!({"ms": 800})).send();
    let (a, b, c) = tokio::join!(call(), call(), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        call().await
    });
    let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16(), c.unwrap().status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 200, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudevent_function_takes_binary_structured_and_legacy_events() {
    let f = start("seen", &[]);
    let http = reqwest::Client::new();
    // Binary mode (as Eventarc delivers).
    let resp = http
        .post(&f.url)
        .header("ce-specversion", "1.0")
        .header("ce-id", "e-1")
        .header("ce-source", "//pubsub.googleapis.com/projects/p/topics/t")
        .header("ce-type", "google.cloud.pubsub.topic.v1.messagePublished")
        .header("ce-time", "2020-09-29T11:32:00Z")
        .header("content-type", "application/json")
        .body(r#"{"message":{"data":"aGk="}}"#)
        .send()
        .await
        .unwrap();
    let (status, headers, reply) = json_of(resp).await;
    assert_eq!(status, 200, "{reply}");
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/cloudevents+json"));
    assert_eq!(reply["type"], "google.cloud.pubsub.topic.v1.messagePublished.seen");
    assert_eq!(reply["data"]["id"], "e-1");
    assert_eq!(reply["data"]["data"], json!({"message": {"data": "aGk="}}));
    // Structured mode.
    let structured = json!({"specversion": "1.0", "id": "e-2", "source": "/s", "type": "t", "subject": "sub",
        "datacontenttype": "application/json", "data": {"a": 1}});
    let resp = http
        .post(format!("{}/x", f.url))
        .header("content-type", "application/cloudevents+json")
        .body(structured.to_string())
        .send()
        .await
        .unwrap();
    let (status, _, reply) = json_of(resp).await;
    assert_eq!((status, reply["data"]["subject"].as_str()), (200, Some("sub")), "{reply}");
    // A legacy background event, converted.
    let legacy = json!({"context": {"eventId": "1147091835525187", "timestamp": "2020-09-29T11:32:00.000Z",
        "eventType": "google.storage.object.finalize",
        "resource": {"service": "storage.googleapis.com", "name": "projects/_/buckets/b/objects/dir/f.txt"}},
        "data": {"bucket": "b", "name": "dir/f.txt"}});
    let (status, _, reply) = json_of(http.post(&f.url).json(&legacy).send().await.unwrap()).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["type"], "google.cloud.storage.object.v1.finalized.seen");
    assert_eq!(reply["data"]["source"], "//storage.googleapis.com/projects/_/buckets/b");
    assert_eq!(reply["data"]["subject"], "objects/dir/f.txt");
    // What is no CloudEvent: 400 naming the problem, the function not run.
    let resp = http.post(&f.url).header("ce-specversion", "1.0").header("ce-source", "/s").header("ce-type", "t");
    let (status, _, body) = json_of(resp.send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(body["errorMessage"].as_str().unwrap().contains("`id`"), "{body}");
    let (status, _, body) = json_of(http.post(&f.url).body("not json").send().await.unwrap()).await;
    assert_eq!(status, 415, "neither an event nor JSON: {body}");
    assert!(body["errorMessage"].as_str().unwrap().contains("no CloudEvent"), "{body}");
    let resp = http.post(&f.url).header("content-type", "application/json").body("{").send().await.unwrap();
    let (status, _, body) = json_of(resp).await;
    assert_eq!(status, 400, "JSON that does not parse: {body}");
}

#[test]
fn a_target_the_app_does_not_define_stops_the_binary_with_a_clear_error() {
    let out = Command::new(fixture())
        .env_clear()
        .env("K_SERVICE", "x")
        .env("FUNCTION_TARGET", "nope")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no function named `nope` (from FUNCTION_TARGET)"), "{stderr}");
}
