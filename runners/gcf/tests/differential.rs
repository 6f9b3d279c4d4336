//! The faas Functions Framework host against the reference, the Python Functions Framework (PyPI
//! `functions-framework`), serving equivalent functions: the same requests must get the same
//! status codes, and a CloudEvent function must see the same event attributes and data. HTTP
//! bodies are compared for an echo function; content types are not (Flask answers `text/html`
//! for a plain string, faas keeps the request's).

mod common;

use common::{reference_env, start, start_reference, RECORD_EVENT};
use serde_json::{json, Value};

/// An HTTP function that answers with the request body (as the fixture's `echo` does).
const ECHO: &str = r#"
import functions_framework

@functions_framework.http
def echo(request):
    return request.get_data()
"#;

type Request = (&'static str, reqwest::Method, &'static str, Vec<(&'static str, &'static str)>, Vec<u8>);

fn http_cases() -> Vec<Request> {
    vec![
        ("POST /", reqwest::Method::POST, "/", vec![("content-type", "application/json")], br#"{"a":1}"#.to_vec()),
        (
            "PUT on a deep path",
            reqwest::Method::PUT,
            "/a/b/c?x=1",
            vec![("content-type", "text/plain")],
            b"hi".to_vec(),
        ),
        ("GET with no body", reqwest::Method::GET, "/anything", vec![], vec![]),
        ("robots.txt", reqwest::Method::GET, "/robots.txt", vec![], vec![]),
        ("favicon.ico", reqwest::Method::GET, "/favicon.ico", vec![], vec![]),
    ]
}

fn event_cases() -> Vec<Request> {
    let binary = vec![
        ("ce-specversion", "1.0"),
        ("ce-id", "e-1"),
        ("ce-source", "//pubsub.googleapis.com/projects/p/topics/t"),
        ("ce-type", "google.cloud.pubsub.topic.v1.messagePublished"),
        ("ce-subject", "sub/1"),
        ("ce-time", "2020-09-29T11:32:00.000Z"),
        ("content-type", "application/json"),
    ];
    let structured = json!({"specversion": "1.0", "id": "e-2", "source": "/s", "type": "t", "subject": "x",
        "time": "2021-01-02T03:04:05Z", "datacontenttype": "application/json", "data": {"a": [1, 2]}});
    let legacy = json!({"context": {"eventId": "1147091835525187", "timestamp": "2020-09-29T11:32:00.000Z",
        "eventType": "google.storage.object.finalize",
        "resource": {"service": "storage.googleapis.com", "name": "projects/_/buckets/b/objects/dir/f.txt"}},
        "data": {"bucket": "b", "name": "dir/f.txt"}});
    let pubsub = json!({"eventId": "42", "timestamp": "2020-09-29T11:32:00.000Z", "eventType": "google.pubsub.topic.publish",
        "resource": "projects/p/topics/t", "data": {"data": "aGk="}});
    let ct = |v: &'static str| vec![("content-type", v)];
    vec![
        ("binary mode", reqwest::Method::POST, "/", binary.clone(), br#"{"message":{"data":"aGk="}}"#.to_vec()),
        (
            "structured mode",
            reqwest::Method::POST,
            "/",
            ct("application/cloudevents+json"),
            structured.to_string().into_bytes(),
        ),
        ("legacy storage event", reqwest::Method::POST, "/", ct("application/json"), legacy.to_string().into_bytes()),
        ("legacy pubsub event", reqwest::Method::POST, "/", ct("application/json"), pubsub.to_string().into_bytes()),
        (
            "binary mode without id",
            reqwest::Method::POST,
            "/",
            binary.into_iter().filter(|(k, _)| *k != "ce-id").collect(),
            b"{}".to_vec(),
        ),
        (
            "structured without source",
            reqwest::Method::POST,
            "/",
            ct("application/cloudevents+json"),
            br#"{"specversion":"1.0","id":"1","type":"t"}"#.to_vec(),
        ),
        ("not JSON, not an event", reqwest::Method::POST, "/", ct("text/plain"), b"hello".to_vec()),
        (
            "an unknown legacy type",
            reqwest::Method::POST,
            "/",
            ct("application/json"),
            br#"{"eventId":"1","timestamp":"2020-01-01T00:00:00Z","eventType":"x.y","resource":"r","data":{}}"#
                .to_vec(),
        ),
    ]
}

async fn send(http: &reqwest::Client, base: &str, (_, method, path, headers, body): &Request) -> reqwest::Response {
    let mut req = http.request(method.clone(), format!("{base}{path}")).body(body.clone());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// An event's attributes as comparable values: `time` as an instant, whatever its notation.
fn attributes(event: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["id", "source", "type", "subject", "datacontenttype"] {
        out.insert(key.into(), event.get(key).cloned().unwrap_or(Value::Null));
    }
    let time = event.get("time").and_then(Value::as_str).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    out.insert("time".into(), json!(time.map(|t| t.timestamp_millis())));
    out.insert("data".into(), event.get("data").cloned().unwrap_or(Value::Null));
    Value::Object(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_answers_as_the_reference_does() {
    let venv = tokio::task::spawn_blocking(reference_env).await.unwrap();
    let http = reqwest::Client::new();

    let reference = start_reference(&venv, ECHO, "echo", "http");
    let ours = start("echo", &[]);
    for case in http_cases() {
        let theirs = send(&http, &reference.url, &case).await;
        let mine = send(&http, &ours.url, &case).await;
        assert_eq!(mine.status(), theirs.status(), "{}: status", case.0);
        if theirs.status().is_success() {
            assert_eq!(mine.bytes().await.unwrap(), theirs.bytes().await.unwrap(), "{}: body", case.0);
        }
    }

    let reference = start_reference(&venv, RECORD_EVENT, "record", "cloudevent");
    let ours = start("seen", &[]);
    for case in event_cases() {
        let _ = std::fs::remove_file(&reference.output);
        let theirs = send(&http, &reference.url, &case).await;
        let mine = send(&http, &ours.url, &case).await;
        assert_eq!(mine.status(), theirs.status(), "{}: status", case.0);
        if !theirs.status().is_success() {
            continue;
        }
        let recorded: Value = serde_json::from_slice(&std::fs::read(&reference.output).unwrap()).unwrap();
        let mut theirs = recorded["attributes"].clone();
        theirs["data"] = recorded["data"].clone();
        // The fixture's reply event carries what it received as its data.
        let reply: Value = mine.json().await.unwrap();
        assert_eq!(attributes(&reply["data"]), attributes(&theirs), "{}: the event the function saw", case.0);
    }
}
