//! Differential test of the legacy-event conversion against the reference implementation: the
//! Python Functions Framework (PyPI `functions-framework`, installed by this test into a scratch
//! virtualenv when missing) serves a CloudEvent function that records the event it gets; every
//! legacy event below is posted to it, and the CloudEvent it records must equal what
//! `faas_runner_gcf::legacy::to_cloudevent` makes of the same request, or both must refuse it.

mod common;

use common::{reference_env, start_reference, RECORD_EVENT};
use faas_runner_gcf::legacy::{to_cloudevent, TYPES};
use serde_json::{json, Value};

const ID: &str = "aaaaaa-1111-bbbb-2222-cccccccccccc";
const TIME: &str = "2020-09-29T11:32:00.000Z";

fn legacy(event_type: &str, resource: Value, data: Value) -> Value {
    json!({"eventId": ID, "timestamp": TIME, "eventType": event_type, "resource": resource, "data": data})
}

/// (name, request path, body) of every case.
fn cases() -> Vec<(String, &'static str, Value)> {
    let mut cases = Vec::new();
    for (from, _) in TYPES {
        let (resource, data) = if from.contains("pubsub") {
            (json!("projects/p/topics/t"), json!({"data": "aGk="}))
        } else if from.contains("storage") {
            (json!("projects/_/buckets/b/objects/o.txt"), json!({"kind": "storage#object", "name": "o.txt"}))
        } else if from.contains("firestore") {
            (json!("projects/p/databases/(default)/documents/c/d"), json!({"value": {"fields": {}}}))
        } else if from.contains("auth") {
            (json!("projects/p"), json!({"uid": "u1", "metadata": {"createdAt": TIME}}))
        } else if from.contains("analytics") {
            (json!("projects/p/events/session_start"), json!({"eventDim": [{"name": "session_start"}]}))
        } else {
            (json!("projects/_/instances/i/refs/a/b"), json!({"data": null, "delta": {"x": 1}}))
        };
        let mut event = legacy(from, resource, data);
        event["domain"] = json!("firebaseio.com");
        cases.push((format!("type row {from}"), "/", event));
    }
    let nested = json!({
        "context": {"eventId": ID, "timestamp": TIME, "eventType": "google.pubsub.topic.publish",
            "resource": {"service": "pubsub.googleapis.com", "name": "projects/sample-project/topics/gcf-test",
                "type": "type.googleapis.com/google.pubsub.v1.PubsubMessage"}},
        "data": {"@type": "type.googleapis.com/google.pubsub.v1.PubsubMessage", "attributes": {"attr1": "attr1-value"},
            "data": "dGVzdCBtZXNzYWdlIDM="}});
    cases.push(("pubsub, context nested".into(), "/", nested));
    let push = json!({"subscription": "projects/p/subscriptions/s",
        "message": {"data": "aGk=", "messageId": "42", "publishTime": TIME, "attributes": {"a": "1"}}});
    cases.push(("raw pubsub push, topic in the path".into(), "/projects/p/topics/orders", push.clone()));
    cases.push(("raw pubsub push, no topic".into(), "/", push));
    let storage = legacy(
        "google.storage.object.finalize",
        json!({"service": "storage.googleapis.com", "name": "projects/_/buckets/some-bucket/objects/folder/Test.cs",
            "type": "storage#object"}),
        json!({"bucket": "some-bucket", "name": "folder/Test.cs", "kind": "storage#object"}),
    );
    cases.push(("storage object with a folder".into(), "/", storage));
    let auth = legacy(
        "providers/firebase.auth/eventTypes/user.create",
        json!("projects/my-project-id"),
        json!({"email": "test@nowhere.com", "uid": "UUpby3s4spZre6kHsgVSPetzQ8l2",
            "metadata": {"createdAt": "2020-05-26T10:42:27Z", "lastSignedInAt": "2020-10-24T11:00:00Z"}}),
    );
    cases.push(("firebase auth metadata".into(), "/", auth));
    let mut db = legacy(
        "providers/google.firebase.database/eventTypes/ref.write",
        json!("projects/_/instances/my-project-id/refs/gcf-test/xyz"),
        json!({"data": null, "delta": {"grandchild": "other"}}),
    );
    db["domain"] = json!("europe-west1.firebasedatabase.app");
    cases.push(("realtime database outside us-central1".into(), "/", db.clone()));
    db.as_object_mut().unwrap().remove("domain");
    cases.push(("realtime database without domain".into(), "/", db));
    cases.push(("unknown type".into(), "/", legacy("google.nothing.happened", json!("projects/p"), json!({}))));
    cases.push((
        "storage, project not `_`".into(),
        "/",
        legacy("google.storage.object.finalize", json!("projects/abc/buckets/b/objects/o"), json!({})),
    ));
    cases.push((
        "firestore, not the default database".into(),
        "/",
        legacy(
            "providers/cloud.firestore/eventTypes/document.write",
            json!("projects/p/databases/x/documents/c/d"),
            json!({}),
        ),
    ));
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversion_agrees_with_the_reference_functions_framework() {
    let venv = tokio::task::spawn_blocking(reference_env).await.unwrap();
    let reference = start_reference(&venv, RECORD_EVENT, "record", "cloudevent");
    let http = reqwest::Client::new();
    let mut checked = 0;
    for (name, path, body) in cases() {
        let _ = std::fs::remove_file(&reference.output);
        let resp = http.post(format!("{}{path}", reference.url)).json(&body).send().await.unwrap();
        let status = resp.status().as_u16();
        let ours = to_cloudevent(&body, path);
        match status {
            200 => {
                let recorded: Value = serde_json::from_slice(&std::fs::read(&reference.output).unwrap()).unwrap();
                let ours = ours.unwrap_or_else(|e| panic!("{name}: the reference converts it, we refuse: {e}"));
                for attribute in ["specversion", "id", "source", "subject", "type", "time", "datacontenttype"] {
                    assert_eq!(
                        ours.get(attribute),
                        recorded["attributes"].get(attribute),
                        "{name}: attribute `{attribute}`\nours: {ours}\nreference: {recorded}"
                    );
                }
                assert_eq!(ours["data"], recorded["data"], "{name}: data\nours: {ours}\nreference: {recorded}");
            }
            400 => assert!(ours.is_err(), "{name}: the reference refuses it (400), we convert it: {ours:?}"),
            s => panic!("{name}: the reference answered {s}"),
        }
        checked += 1;
    }
    assert_eq!(checked, TYPES.len() + 10);
}
