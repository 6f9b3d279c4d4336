//! Functions deployed and run: real Python functions under the real Functions Framework, the
//! launcher path (a `main.py` that execs a bundled server), events, logs, and the platform's
//! limits.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const HTTP_FUNCTION: &str = r#"
import json
import functions_framework

@functions_framework.http
def handler(request):
    print(json.dumps({"message": "hello " + request.args.get("name", "nobody"), "severity": "NOTICE",
                      "logging.googleapis.com/labels": {"who": request.args.get("name", "")}}), flush=True)
    return "Hello, %s!" % request.args.get("name", "nobody"), 201, {"x-answer": "42"}
"#;

const EVENT_FUNCTION: &str = r#"
import json
import functions_framework

@functions_framework.cloud_event
def on_event(event):
    print(json.dumps({"message": "got event " + event["id"], "type": event["type"], "data": event.get_data()}), flush=True)
"#;

#[tokio::test]
async fn python_functions_run_under_the_real_functions_framework() {
    let venv = reference_env();
    let emulator = emulator(Some(venv.join("bin/functions-framework"))).await;
    let url = emulator.url();

    let op = deploy(&url, "hello-http", zip(&[("main.py", HTTP_FUNCTION)]), json!({})).await;
    assert!(op.get("error").is_none(), "{op}");
    assert_eq!(op["response"]["state"], "ACTIVE");
    let uri = op["response"]["serviceConfig"]["uri"].as_str().unwrap().to_string();
    let r = http()
        .get(format!("{uri}/anything?name=Ada"))
        .header("x-cloud-trace-context", "0123456789abcdef0123456789abcdef/7;o=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-answer"], "42");
    assert_eq!(r.text().await.unwrap(), "Hello, Ada!");

    // The structured line, with its labels, and the request entry with the caller's trace.
    let service = "resource.labels.service_name=\"hello-http\"";
    let line = wait_entry(&url, service, |e| e["jsonPayload"]["message"] == "hello Ada").await;
    assert_eq!(line["severity"], "NOTICE");
    assert_eq!(line["labels"]["who"], "Ada");
    assert_eq!(line["logName"], "projects/test-project/logs/run.googleapis.com%2Fstdout");
    assert_eq!(line["resource"]["type"], "cloud_run_revision");
    assert!(line["resource"]["labels"]["revision_name"].as_str().unwrap().starts_with("hello-http-00001-"));
    let filter = format!("{service} AND logName=\"projects/test-project/logs/run.googleapis.com%2Frequests\"");
    let request = wait_entry(&url, &filter, |_| true).await;
    assert_eq!(request["httpRequest"]["status"], 201);
    assert_eq!(request["httpRequest"]["requestMethod"], "GET");
    assert!(request["httpRequest"]["requestUrl"].as_str().unwrap().ends_with("/anything?name=Ada"));
    assert!(request["httpRequest"]["latency"].as_str().unwrap().ends_with('s'));
    assert_eq!(request["trace"], "projects/test-project/traces/0123456789abcdef0123456789abcdef");
    assert_eq!(request["severity"], "INFO");
    // The Functions Framework's robots.txt rule holds: it is the framework that serves.
    let robots = http().get(format!("{uri}/robots.txt")).send().await.unwrap();
    assert_eq!(robots.status(), 404);

    // A CloudEvent function with a trigger, and an event delivered to it.
    let trigger = json!({"eventTrigger": {"eventType": "google.cloud.pubsub.topic.v1.messagePublished",
        "eventFilters": [{"attribute": "source", "value": "//pubsub.googleapis.com/projects/test-project/topics/t"}],
        "retryPolicy": "RETRY_POLICY_RETRY"},
        "buildConfig": {"entryPoint": "on_event"}});
    let op = deploy(&url, "on-event", zip(&[("main.py", EVENT_FUNCTION)]), trigger).await;
    assert!(op.get("error").is_none(), "{op}");
    assert_eq!(op["response"]["eventTrigger"]["retryPolicy"], "RETRY_POLICY_RETRY");
    let stages: Vec<Value> = op["metadata"]["stages"].as_array().unwrap().iter().map(|s| s["name"].clone()).collect();
    assert_eq!(stages, ["BUILD", "SERVICE", "TRIGGER"]);
    let event = json!({"specversion": "1.0", "id": "evt-1", "source": "//pubsub.googleapis.com/projects/test-project/topics/t",
        "type": "google.cloud.pubsub.topic.v1.messagePublished", "datacontenttype": "application/json",
        "data": {"message": {"data": "aGk="}}});
    let events = format!("{url}/emulator/v1/projects/test-project/locations/us-central1/events");
    let r: Value = http()
        .post(&events)
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["deliveries"], json!([{"function": format!("{PARENT}/functions/on-event"), "status": 200}]), "{r}");
    let got = wait_entry(&url, "resource.labels.function_name=\"on-event\"", |e| {
        e["jsonPayload"]["message"] == "got event evt-1"
    })
    .await;
    assert_eq!(got["jsonPayload"]["data"], json!({"message": {"data": "aGk="}}));
    // Another source: filtered out. Another type: nobody.
    let other = json!({"specversion": "1.0", "id": "evt-2", "source": "//elsewhere", "type": "google.cloud.pubsub.topic.v1.messagePublished"});
    let r: Value = http()
        .post(&events)
        .header("content-type", "application/cloudevents+json")
        .body(other.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["deliveries"], json!([]));
    // Binary mode in.
    let r: Value = http()
        .post(&events)
        .header("ce-specversion", "1.0")
        .header("ce-id", "evt-3")
        .header("ce-source", "//pubsub.googleapis.com/projects/test-project/topics/t")
        .header("ce-type", "google.cloud.pubsub.topic.v1.messagePublished")
        .header("content-type", "application/json")
        .body(r#"{"message": {}}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["deliveries"][0]["status"], 200, "{r}");
    let bad = http().post(&events).header("content-type", "application/json").body("{}").send().await.unwrap();
    assert_eq!(bad.status(), 400, "no ce- headers: not an event");
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_main_py_that_execs_a_bundled_server_runs_without_the_framework() {
    let emulator = emulator(None).await;
    assert!(emulator.functions_framework().is_none());
    let url = emulator.url();
    let function = json!({"serviceConfig": {"environmentVariables": {"GREETING": "hi"}, "availableMemory": "512M"}});
    let op = deploy(&url, "exec-probe", exec_zip(), function).await;
    assert!(op.get("error").is_none(), "{op}");
    let uri = uri(&url, "exec-probe").await;
    let r: Value = http().get(format!("{uri}/env")).send().await.unwrap().json().await.unwrap();
    let env = &r["env"];
    assert_eq!(env["K_SERVICE"], "exec-probe");
    assert_eq!(env["K_CONFIGURATION"], "exec-probe");
    let revision = env["K_REVISION"].as_str().unwrap();
    assert!(revision.starts_with("exec-probe-00001-") && revision.len() == "exec-probe-00001-abc".len(), "{revision}");
    assert_eq!(env["FUNCTION_TARGET"], "handler");
    assert_eq!(env["FUNCTION_SIGNATURE_TYPE"], "http");
    assert_eq!(env["LOG_EXECUTION_ID"], "true");
    assert_eq!(env["GREETING"], "hi");
    assert!(env["PORT"].as_str().unwrap().parse::<u16>().is_ok());
    assert!(env.get("CARGO_TARGET_TMPDIR").is_none() && env.get("CARGO").is_none(), "our environment does not leak in");
    assert!(r["cwd"].as_str().unwrap().ends_with(revision), "runs in the unpacked source: {}", r["cwd"]);
    // Cloud Run adds a trace header to a request without one.
    let trace = r["trace"].as_str().unwrap();
    assert!(trace.ends_with(";o=1") && trace.split('/').next().unwrap().len() == 32, "{trace}");

    // The instance's lines become entries: structured, plain and stderr.
    http().get(format!("{uri}/log")).send().await.unwrap();
    let service = "resource.labels.service_name=\"exec-probe\"";
    let structured = wait_entry(&url, service, |e| e["jsonPayload"]["message"] == "structured hello").await;
    assert_eq!(structured["severity"], "WARNING");
    assert_eq!(structured["labels"]["kind"], "probe");
    assert_eq!(structured["trace"], "projects/p/traces/0123456789abcdef0123456789abcdef");
    assert_eq!(structured["jsonPayload"], json!({"message": "structured hello", "component": "test"}));
    let plain = wait_entry(&url, service, |e| e["textPayload"] == "plain hello").await;
    assert_eq!(plain["severity"], "DEFAULT");
    let error = wait_entry(&url, service, |e| e["textPayload"] == "error hello").await;
    assert_eq!(error["logName"], "projects/test-project/logs/run.googleapis.com%2Fstderr");
    let since = structured["timestamp"].as_str().unwrap();
    let later = entries(&url, &format!("{service} AND timestamp>=\"{since}\" AND severity>=WARNING")).await;
    assert!(later.iter().any(|e| e["textPayload"] == "error hello"));
    assert!(later.iter().all(|e| e["textPayload"] != "plain hello"));

    // With an event trigger, the signature type is cloudevent.
    let trigger = json!({"eventTrigger": {"eventType": "google.cloud.storage.object.v1.finalized"}});
    let op = deploy(&url, "exec-event", exec_zip(), trigger).await;
    assert!(op.get("error").is_none(), "{op}");
    let event_uri = common::uri(&url, "exec-event").await;
    let r: Value = http().get(format!("{event_uri}/env")).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["env"]["FUNCTION_SIGNATURE_TYPE"], "cloudevent");

    // A main.py that returns from its import: the launcher says the framework is missing, and
    // the revision fails to listen.
    let op =
        deploy(&url, "no-framework", zip(&[("main.py", "def handler(request):\n    return 'hi'\n")]), json!({})).await;
    assert_eq!(op["error"]["code"], 3, "{op}");
    let message = op["error"]["message"].as_str().unwrap();
    assert!(message.contains("failed to start and listen on the port"), "{message}");
    let why = wait_entry(&url, "resource.labels.service_name=\"no-framework\"", |e| {
        e["textPayload"].as_str().is_some_and(|t| t.contains("Functions Framework"))
    })
    .await;
    assert_eq!(why["severity"], "ERROR");
    emulator.shutdown().await;
}

#[tokio::test]
async fn bad_sources_fail_the_build() {
    let emulator = emulator(None).await;
    let url = emulator.url();
    let op = deploy(&url, "no-main", zip(&[("app.py", "x = 1\n")]), json!({})).await;
    assert_eq!(op["error"]["code"], 3, "{op}");
    let message = op["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Build failed:") && message.contains("main.py"), "{message}");
    let f: Value =
        http().get(format!("{url}/v2/{PARENT}/functions/no-main")).send().await.unwrap().json().await.unwrap();
    assert_eq!(f["state"], "FAILED");
    assert_eq!(f["stateMessages"][0]["severity"], "ERROR");

    // An entry that would land outside the source directory.
    let mut escaping = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    escaping.start_file("main.py", options).unwrap();
    std::io::Write::write_all(&mut escaping, b"x = 1\n").unwrap();
    escaping.start_file("../escaped.py", options).unwrap();
    std::io::Write::write_all(&mut escaping, b"x = 1\n").unwrap();
    let escaping = escaping.finish().unwrap().into_inner();
    let op = deploy(&url, "escaping", escaping, json!({})).await;
    assert_eq!(op["error"]["code"], 3, "{op}");
    assert!(op["error"]["message"].as_str().unwrap().contains("../escaped.py"), "{op}");

    // Not a zip at all.
    let op = deploy(&url, "not-a-zip", b"plain text".to_vec(), json!({})).await;
    assert_eq!(op["error"]["code"], 3, "{op}");

    // A busy function refuses a second operation; a failed one can be updated and deleted.
    let del: Value =
        http().delete(format!("{url}/v2/{PARENT}/functions/no-main")).send().await.unwrap().json().await.unwrap();
    let again = http().delete(format!("{url}/v2/{PARENT}/functions/no-main")).send().await.unwrap();
    let status = again.status().as_u16();
    assert!(status == 409 || status == 404, "{status}");
    wait_operation(&url, del["name"].as_str().unwrap()).await;
    let gone = http().get(format!("{url}/v2/{PARENT}/functions/no-main")).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn requests_meet_the_platform_limits() {
    let emulator = emulator(None).await;
    let url = emulator.url();
    let function =
        json!({"serviceConfig": {"timeoutSeconds": 1, "maxInstanceCount": 1, "maxInstanceRequestConcurrency": 1}});
    let op = deploy(&url, "limits-probe", exec_zip(), function).await;
    assert!(op.get("error").is_none(), "{op}");
    let uri = uri(&url, "limits-probe").await;

    // 32 MiB + 1 is refused before it reaches the function; 32 MiB itself is not.
    let big = http().post(format!("{uri}/upload")).body(vec![b'x'; (32 << 20) + 1]).send().await.unwrap();
    assert_eq!(big.status(), 413);
    let fits: Value =
        http().post(format!("{uri}/upload")).body(vec![b'x'; 32 << 20]).send().await.unwrap().json().await.unwrap();
    assert_eq!(fits["size"], 32 << 20);

    // Past timeoutSeconds: 504.
    let slow = http().get(format!("{uri}/sleep?s=3")).send().await.unwrap();
    assert_eq!(slow.status(), 504);
    assert_eq!(slow.text().await.unwrap().trim(), "upstream request timeout");

    // One instance taking one request at a time: a second request at once finds no room
    // (a function of its own, with time enough to be sure the first one holds the instance).
    let function = json!({"serviceConfig": {"maxInstanceCount": 1, "maxInstanceRequestConcurrency": 1}});
    let op = deploy(&url, "busy-probe", exec_zip(), function).await;
    assert!(op.get("error").is_none(), "{op}");
    let busy_uri = common::uri(&url, "busy-probe").await;
    let busy = tokio::spawn({
        let uri = busy_uri.clone();
        async move { http().get(format!("{uri}/sleep?s=3")).send().await.unwrap().status() }
    });
    let held = "resource.labels.service_name=\"busy-probe\"";
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let refused = http().get(format!("{busy_uri}/env")).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.text().await.unwrap().contains("no available instance"));
    assert_eq!(busy.await.unwrap(), 200);
    let fine = http().get(format!("{busy_uri}/env")).send().await.unwrap();
    assert_eq!(fine.status(), 200);
    let logged = wait_entry(&url, &format!("{held} AND httpRequest.status=429"), |_| true).await;
    assert_eq!(logged["severity"], "WARNING");
    let timeouts = entries(&url, "resource.labels.service_name=\"limits-probe\" AND httpRequest.status=504").await;
    assert_eq!(timeouts.len(), 1);
    assert_eq!(timeouts[0]["severity"], "ERROR");
    emulator.shutdown().await;
}

#[tokio::test]
async fn concurrency_shares_an_instance_and_idle_instances_stop() {
    let mut options = options(None);
    options.idle_timeout = Some(Duration::from_millis(600));
    let emulator = faas_emulator_gcf::start(options).await.unwrap();
    let url = emulator.url();
    let function = json!({"serviceConfig": {"maxInstanceCount": 1, "maxInstanceRequestConcurrency": 4}});
    let op = deploy(&url, "shared-probe", exec_zip(), function).await;
    assert!(op.get("error").is_none(), "{op}");
    let uri = uri(&url, "shared-probe").await;
    let pid = |uri: String| async move {
        let r: Value = http().get(format!("{uri}/env")).send().await.unwrap().json().await.unwrap();
        r["env"]["PORT"].as_str().unwrap().to_string()
    };
    let first = pid(uri.clone()).await;
    // Four at once fit on the one instance.
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let uri = uri.clone();
            tokio::spawn(async move { http().get(format!("{uri}/sleep?s=0.5")).send().await.unwrap().status() })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 200);
    }
    assert_eq!(pid(uri.clone()).await, first, "the same instance");
    // Idle past the timeout: the next request is a cold start on a new instance.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = pid(uri.clone()).await;
    assert_ne!(after, first, "a new instance after scale-down");
    emulator.shutdown().await;
}

#[tokio::test]
async fn available_memory_bounds_the_instance() {
    let emulator = emulator(None).await;
    let url = emulator.url();
    let op = deploy(&url, "memory-probe", exec_zip(), json!({"serviceConfig": {"availableMemory": "256M"}})).await;
    assert!(op.get("error").is_none(), "{op}");
    let uri = uri(&url, "memory-probe").await;
    let small = http().get(format!("{uri}/alloc?mb=16")).send().await.unwrap();
    assert_eq!(small.status(), 200);
    let large = http().get(format!("{uri}/alloc?mb=512")).send().await.unwrap();
    assert_eq!(large.status(), 500, "512 MiB does not fit in 256M");
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_binary_serves_the_api() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let state = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_faas-gcf-emulator"))
        .args(["--port", &port.to_string(), "--quiet", "--state-dir"])
        .arg(state.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let listed = loop {
        match http().get(format!("{url}/v2/{PARENT}/functions")).send().await {
            Ok(r) => break r,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("the binary does not answer: {e}"),
        }
    };
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.json::<Value>().await.unwrap(), json!({"functions": []}));
    let source = upload(&url, exec_zip()).await;
    assert!(state
        .path()
        .join("uploads")
        .join(source["bucket"].as_str().unwrap())
        .join(source["object"].as_str().unwrap())
        .is_file());
    let runtimes: Value = http().get(format!("{url}/v2/{PARENT}/runtimes")).send().await.unwrap().json().await.unwrap();
    assert!(runtimes["runtimes"].as_array().unwrap().iter().any(|r| r["name"] == "python312"));
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn a_failed_update_keeps_the_previous_revision_serving() {
    let emulator = emulator(None).await;
    let url = emulator.url();
    let op = deploy(&url, "update-probe", exec_zip(), json!({})).await;
    assert!(op.get("error").is_none(), "{op}");
    let uri = uri(&url, "update-probe").await;
    let source = upload(&url, zip(&[("other.py", "x = 1\n")])).await;
    let body =
        json!({"buildConfig": {"runtime": "python312", "entryPoint": "handler", "source": {"storageSource": source}}});
    let r = http().patch(format!("{url}/v2/{PARENT}/functions/update-probe")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let op: Value = r.json().await.unwrap();
    assert_eq!(op["metadata"]["operationType"], "UPDATE_FUNCTION");
    let busy = http().patch(format!("{url}/v2/{PARENT}/functions/update-probe")).json(&body).send().await.unwrap();
    let busy_status = busy.status().as_u16();
    let done = wait_operation(&url, op["name"].as_str().unwrap()).await;
    assert_eq!(done["error"]["code"], 3, "{done}");
    if busy_status != 200 {
        let e: Value = busy.json().await.unwrap();
        assert_eq!((busy_status, e["error"]["status"].as_str()), (409, Some("ABORTED")));
    }
    let f: Value =
        http().get(format!("{url}/v2/{PARENT}/functions/update-probe")).send().await.unwrap().json().await.unwrap();
    assert_eq!(f["state"], "FAILED");
    assert_eq!(f["serviceConfig"]["uri"], uri.as_str(), "the same address across revisions");
    let r: Value = http().get(format!("{uri}/env")).send().await.unwrap().json().await.unwrap();
    assert!(r["env"]["K_REVISION"].as_str().unwrap().starts_with("update-probe-00001-"), "the first revision serves");
    emulator.shutdown().await;
}
