//! Legacy background events as CloudEvents: what a Functions Framework does when a CloudEvent
//! function receives a 1st-gen "background event" (`POST` of a JSON object with `eventId`,
//! `timestamp`, `eventType`, `resource` and `data`, at the top level or under `context`), or a
//! raw Pub/Sub push message (`{"subscription", "message"}`).
//!
//! The conversion follows the reference implementation, the Python Functions Framework
//! (`functions_framework/event_conversion.py`, `background_event_to_cloud_event`), which the
//! conformance tool's mapping (`functions-framework-conformance` `docs/mapping.md`) describes:
//!
//! - `id` = `eventId`, `time` = `timestamp`, `specversion` `1.0`, `datacontenttype`
//!   `application/json`, `data` = the event's data, `type` from the [table of types](TYPES);
//! - `source` = `//{service}/{resource}`: the service from `resource.service`, else from the
//!   event type's prefix ([`SERVICES`]); for some services the resource is split into a resource
//!   and a `subject` (Firebase Analytics `events/…`, Realtime Database `refs/…`, Firestore
//!   `documents/…`, Storage `objects/…`);
//! - Pub/Sub: `data` becomes `{"message": data}` with `messageId` and `publishTime` filled in
//!   from the event when missing;
//! - Firebase Auth: `subject` = `users/{uid}`, `metadata.createdAt` / `lastSignedInAt` renamed
//!   `createTime` / `lastSignInTime`;
//! - Realtime Database: the source carries the location read from the event's `domain`
//!   (`firebaseio.com` is `us-central1`, else the part before the first dot).
//!
//! Where the reference has a quirk, this module keeps it and says so: the Storage resource
//! pattern takes a one-character project (`projects/_`, which is what Storage sends); anything
//! else is refused rather than passed on unsplit.
//!
//! ```
//! use serde_json::json;
//! let legacy = json!({
//!     "eventId": "1215011316659232", "timestamp": "2020-05-18T12:13:19Z",
//!     "eventType": "google.pubsub.topic.publish",
//!     "resource": {"service": "pubsub.googleapis.com", "name": "projects/p/topics/t"},
//!     "data": {"data": "aGk="},
//! });
//! let event = faas_runner_gcf::legacy::to_cloudevent(&legacy, "/").unwrap();
//! assert_eq!(event["type"], "google.cloud.pubsub.topic.v1.messagePublished");
//! assert_eq!(event["source"], "//pubsub.googleapis.com/projects/p/topics/t");
//! assert_eq!(event["data"]["message"]["messageId"], "1215011316659232");
//! ```

use faas_api::Error;
use serde_json::{json, Map, Value};

/// Legacy event types and the CloudEvent types they become (`_BACKGROUND_TO_CE_TYPE`).
pub const TYPES: [(&str, &str); 18] = [
    ("google.pubsub.topic.publish", "google.cloud.pubsub.topic.v1.messagePublished"),
    ("providers/cloud.pubsub/eventTypes/topic.publish", "google.cloud.pubsub.topic.v1.messagePublished"),
    ("google.storage.object.finalize", "google.cloud.storage.object.v1.finalized"),
    ("google.storage.object.delete", "google.cloud.storage.object.v1.deleted"),
    ("google.storage.object.archive", "google.cloud.storage.object.v1.archived"),
    ("google.storage.object.metadataUpdate", "google.cloud.storage.object.v1.metadataUpdated"),
    ("providers/cloud.firestore/eventTypes/document.write", "google.cloud.firestore.document.v1.written"),
    ("providers/cloud.firestore/eventTypes/document.create", "google.cloud.firestore.document.v1.created"),
    ("providers/cloud.firestore/eventTypes/document.update", "google.cloud.firestore.document.v1.updated"),
    ("providers/cloud.firestore/eventTypes/document.delete", "google.cloud.firestore.document.v1.deleted"),
    ("providers/firebase.auth/eventTypes/user.create", "google.firebase.auth.user.v1.created"),
    ("providers/firebase.auth/eventTypes/user.delete", "google.firebase.auth.user.v1.deleted"),
    ("providers/google.firebase.analytics/eventTypes/event.log", "google.firebase.analytics.log.v1.written"),
    ("providers/google.firebase.database/eventTypes/ref.create", "google.firebase.database.ref.v1.created"),
    ("providers/google.firebase.database/eventTypes/ref.write", "google.firebase.database.ref.v1.written"),
    ("providers/google.firebase.database/eventTypes/ref.update", "google.firebase.database.ref.v1.updated"),
    ("providers/google.firebase.database/eventTypes/ref.delete", "google.firebase.database.ref.v1.deleted"),
    ("providers/cloud.storage/eventTypes/object.change", "google.cloud.storage.object.v1.finalized"),
];

const PUBSUB: &str = "pubsub.googleapis.com";
const STORAGE: &str = "storage.googleapis.com";
const FIRESTORE: &str = "firestore.googleapis.com";
const FIREBASE: &str = "firebase.googleapis.com";
const FIREBASE_AUTH: &str = "firebaseauth.googleapis.com";
const FIREBASE_DB: &str = "firebasedatabase.googleapis.com";
/// The legacy event type of a Pub/Sub message, and the `@type` of its data.
const PUBSUB_EVENT_TYPE: &str = "google.pubsub.topic.publish";
const PUBSUB_MESSAGE_TYPE: &str = "type.googleapis.com/google.pubsub.v1.PubsubMessage";

/// Event type prefixes and the service they stand for, when the resource names none
/// (`_SERVICE_BACKGROUND_TO_CE`, tried in this order).
pub const SERVICES: [(&str, &str); 8] = [
    ("providers/cloud.firestore/", FIRESTORE),
    ("providers/google.firebase.analytics/", FIREBASE),
    ("providers/firebase.auth/", FIREBASE_AUTH),
    ("providers/google.firebase.database/", FIREBASE_DB),
    ("providers/cloud.pubsub/", PUBSUB),
    ("providers/cloud.storage/", STORAGE),
    ("google.pubsub", PUBSUB),
    ("google.storage", STORAGE),
];

/// The CloudEvent type of a legacy event type.
///
/// ```
/// use faas_runner_gcf::legacy::cloudevent_type;
/// assert_eq!(cloudevent_type("google.storage.object.finalize"), Some("google.cloud.storage.object.v1.finalized"));
/// assert_eq!(cloudevent_type("google.storage.object.nope"), None);
/// ```
pub fn cloudevent_type(legacy: &str) -> Option<&'static str> {
    TYPES.iter().find(|(from, _)| *from == legacy).map(|(_, to)| *to)
}

/// Whether `body` is a raw Pub/Sub push message (`_is_raw_pubsub_payload`): no `context`, a
/// `subscription`, and a `message` with `data` and `messageId`.
pub fn is_raw_pubsub(body: &Value) -> bool {
    body.get("context").is_none()
        && body.get("subscription").is_some()
        && body.get("message").is_some_and(|m| m.get("data").is_some() && m.get("messageId").is_some())
}

fn bad(message: impl Into<String>) -> Error {
    Error::bad_input(message).with_type("EventConversionError")
}

/// A raw Pub/Sub push message as the legacy event it stands for (`marshal_background_event_data`):
/// the topic comes from the request path (`…/projects/{p}/topics/{t}…`), empty when the path
/// does not name one; a missing `publishTime` is now.
fn from_raw_pubsub(body: &Value, path: &str) -> Value {
    let message = &body["message"];
    let timestamp = message
        .get("publishTime")
        .cloned()
        .unwrap_or_else(|| json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)));
    json!({
        "context": {
            "eventId": message["messageId"],
            "timestamp": timestamp,
            "eventType": PUBSUB_EVENT_TYPE,
            "resource": {"service": PUBSUB, "type": PUBSUB_MESSAGE_TYPE, "name": topic_of_path(path)},
        },
        "data": {
            "@type": PUBSUB_MESSAGE_TYPE,
            "data": message["data"],
            "attributes": message.get("attributes").cloned().unwrap_or_else(|| json!({})),
        },
    })
}

/// `projects/{p}/topics/{t}` found in `path` (segments without `/` or `?`), else empty.
fn topic_of_path(path: &str) -> String {
    let mut from = 0;
    while let Some(at) = path[from..].find("projects/") {
        let start = from + at;
        let rest = &path[start + "projects/".len()..];
        let segment = |s: &str| s.find(['/', '?']).map(|e| &s[..e]).unwrap_or(s).to_string();
        let project = segment(rest);
        let after = &rest[project.len()..];
        if !project.is_empty() {
            if let Some(topics) = after.strip_prefix("/topics/") {
                let topic = segment(topics);
                if !topic.is_empty() {
                    return format!("projects/{project}/topics/{topic}");
                }
            }
        }
        from = start + 1;
    }
    String::new()
}

/// The legacy event's context: from `context`, else the top-level fields (`BackgroundEvent`).
fn context_of(event: &Map<String, Value>) -> Map<String, Value> {
    match event.get("context") {
        Some(Value::Object(c)) if !c.is_empty() => c.clone(),
        _ => ["eventId", "timestamp", "eventType", "resource"]
            .iter()
            .map(|k| (k.to_string(), event.get(*k).cloned().unwrap_or_else(|| json!(""))))
            .collect(),
    }
}

/// Splits a resource at its first `/{subject}/` segment after exactly `head` segments, the
/// subject starting with `subject` (`…/events/x`, `…/refs/a/b`).
fn split_after(resource: &str, head: usize, subject: &str, rest_one_segment: bool) -> Option<(String, String)> {
    let parts: Vec<&str> = resource.split('/').collect();
    if parts.len() < head + 2 || parts[head] != subject || parts[..head].iter().any(|p| p.is_empty()) {
        return None;
    }
    let tail = &parts[head..];
    if tail[1..].iter().any(|p| p.is_empty()) || (rest_one_segment && tail.len() != 2) {
        return None;
    }
    Some((parts[..head].join("/"), tail.join("/")))
}

/// The resource and subject of `resource` for `service` (`_CE_SERVICE_TO_RESOURCE_RE`); `None`
/// for a service whose resources are not split; an error when the resource does not have the
/// shape the service's pattern wants.
fn split_resource(service: &str, resource: &str) -> Result<Option<(String, String)>, Error> {
    let split = match service {
        // ^(projects/[^/]+)/(events/[^/]+)$
        FIREBASE => split_after(resource, 2, "events", true).filter(|(r, _)| r.starts_with("projects/")),
        // ^projects/_/(instances/[^/]+)/(refs/.+)$
        FIREBASE_DB => resource
            .strip_prefix("projects/_/")
            .and_then(|r| split_after(r, 2, "refs", false))
            .filter(|(r, _)| r.starts_with("instances/")),
        // ^(projects/[^/]+/databases/\(default\))/(documents/.+)$
        FIRESTORE => split_after(resource, 4, "documents", false)
            .filter(|(r, _)| r.starts_with("projects/") && r.ends_with("/databases/(default)")),
        // ^(projects/[^/]/buckets/[^/]+)/(objects/.+)$: the reference's pattern takes a
        // one-character project only (`projects/_`, as Storage sends it); kept as it is.
        STORAGE => split_after(resource, 4, "objects", false).filter(|(r, _)| {
            let p: Vec<&str> = r.split('/').collect();
            p[0] == "projects" && p[1].chars().count() == 1 && p[2] == "buckets"
        }),
        _ => return Ok(None),
    };
    match split {
        Some(s) => Ok(Some(s)),
        None => Err(bad(format!("the event's resource `{resource}` does not have the shape {service} resources have"))),
    }
}

/// The CloudEvent (structured JSON) that the legacy event `body` stands for; `path` is the
/// request path, where a raw Pub/Sub push names its topic.
///
/// ```
/// use serde_json::json;
/// let storage = json!({"context": {
///         "eventId": "aaaa", "timestamp": "2020-09-29T11:32:00.000Z", "eventType": "google.storage.object.finalize",
///         "resource": {"service": "storage.googleapis.com", "name": "projects/_/buckets/b/objects/dir/f.txt"}},
///     "data": {"bucket": "b", "name": "dir/f.txt"}});
/// let event = faas_runner_gcf::legacy::to_cloudevent(&storage, "/").unwrap();
/// assert_eq!(event["source"], "//storage.googleapis.com/projects/_/buckets/b");
/// assert_eq!(event["subject"], "objects/dir/f.txt");
/// let unknown = json!({"eventId": "a", "timestamp": "t", "eventType": "x.y", "resource": "r", "data": {}});
/// assert!(faas_runner_gcf::legacy::to_cloudevent(&unknown, "/").unwrap_err().message().contains("`x.y`"));
/// ```
pub fn to_cloudevent(body: &Value, path: &str) -> Result<Value, Error> {
    let raw;
    let body = if is_raw_pubsub(body) {
        raw = from_raw_pubsub(body, path);
        &raw
    } else {
        body
    };
    let Value::Object(event) = body else {
        return Err(bad("a legacy event is a JSON object; this body is not one"));
    };
    let context = context_of(event);
    let event_type = context.get("eventType").and_then(Value::as_str).unwrap_or_default();
    let Some(new_type) = cloudevent_type(event_type) else {
        return Err(bad(format!("no CloudEvent type is known for the legacy event type `{event_type}`")));
    };
    let (mut service, mut resource) = match context.get("resource") {
        Some(Value::Object(r)) => (
            r.get("service").and_then(Value::as_str).unwrap_or_default().to_string(),
            match r.get("name") {
                Some(Value::String(n)) => n.clone(),
                _ => return Err(bad("the event's `resource` object has no `name`")),
            },
        ),
        Some(Value::String(r)) => (String::new(), r.clone()),
        _ => (String::new(), String::new()),
    };
    if service.is_empty() {
        match SERVICES.iter().find(|(prefix, _)| event_type.starts_with(prefix)) {
            Some((_, s)) => service = s.to_string(),
            None => return Err(bad(format!("no CloudEvent service is known for the event type `{event_type}`"))),
        }
    }
    let mut subject = None;
    if let Some((r, s)) = split_resource(&service, &resource)? {
        resource = r;
        subject = Some(s);
    }
    let mut data = event.get("data").cloned().unwrap_or_else(|| json!(""));
    match service.as_str() {
        PUBSUB => {
            let Value::Object(message) = &mut data else {
                return Err(bad("a Pub/Sub event's `data` must be an object (a PubsubMessage)"));
            };
            message.entry("messageId").or_insert_with(|| context.get("eventId").cloned().unwrap_or_default());
            message.entry("publishTime").or_insert_with(|| context.get("timestamp").cloned().unwrap_or_default());
            data = json!({ "message": data });
        }
        FIREBASE_AUTH => {
            if let Some(Value::Object(metadata)) = data.get_mut("metadata") {
                for (old, new) in [("createdAt", "createTime"), ("lastSignedInAt", "lastSignInTime")] {
                    if let Some(v) = metadata.remove(old) {
                        metadata.insert(new.to_string(), v);
                    }
                }
            }
            if let Some(uid) = data.get("uid") {
                let uid = uid.as_str().map(str::to_string).unwrap_or_else(|| uid.to_string());
                subject = Some(format!("users/{uid}"));
            }
        }
        FIREBASE_DB => {
            let Some(domain) = event.get("domain") else {
                return Err(bad("a Firebase Realtime Database event needs `domain`, which names its location"));
            };
            let domain = domain.as_str().unwrap_or_default();
            let location =
                if domain == "firebaseio.com" { "us-central1" } else { domain.split('.').next().unwrap_or("") };
            resource = format!("projects/_/locations/{location}/{resource}");
        }
        _ => {}
    }
    let mut out = Map::new();
    out.insert("specversion".into(), json!("1.0"));
    out.insert("id".into(), context.get("eventId").cloned().unwrap_or_default());
    out.insert("time".into(), context.get("timestamp").cloned().unwrap_or_default());
    out.insert("type".into(), json!(new_type));
    out.insert("source".into(), json!(format!("//{service}/{resource}")));
    if let Some(s) = subject.filter(|s| !s.is_empty()) {
        out.insert("subject".into(), json!(s));
    }
    out.insert("datacontenttype".into(), json!("application/json"));
    out.insert("data".into(), data);
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "aaaaaa-1111-bbbb-2222-cccccccccccc";
    const TIME: &str = "2020-09-29T11:32:00.000Z";

    fn legacy(event_type: &str, resource: Value, data: Value) -> Value {
        json!({"eventId": ID, "timestamp": TIME, "eventType": event_type, "resource": resource, "data": data})
    }

    fn convert(v: &Value) -> Value {
        to_cloudevent(v, "/").unwrap_or_else(|e| panic!("{e}: {v}"))
    }

    #[test]
    fn every_type_row_converts() {
        // One resource per service, each of the shape that service's events carry.
        let resource_of = |t: &str| -> (Value, Value) {
            if t.contains("pubsub") {
                (json!("projects/p/topics/t"), json!({"data": "aGk="}))
            } else if t.contains("storage") {
                (json!("projects/_/buckets/b/objects/o.txt"), json!({"kind": "storage#object"}))
            } else if t.contains("firestore") {
                (json!("projects/p/databases/(default)/documents/c/d"), json!({}))
            } else if t.contains("auth") {
                (json!("projects/p"), json!({"uid": "u1"}))
            } else if t.contains("analytics") {
                (json!("projects/p/events/session_start"), json!({}))
            } else {
                (json!("projects/_/instances/i/refs/a/b"), json!({}))
            }
        };
        for (from, to) in TYPES {
            let (resource, data) = resource_of(from);
            let mut event = legacy(from, resource, data);
            event["domain"] = json!("firebaseio.com");
            let ce = convert(&event);
            assert_eq!(ce["type"], to, "{from}");
            assert_eq!((ce["id"].as_str(), ce["time"].as_str()), (Some(ID), Some(TIME)));
            assert_eq!(
                (ce["specversion"].as_str(), ce["datacontenttype"].as_str()),
                (Some("1.0"), Some("application/json"))
            );
        }
    }

    #[test]
    fn pubsub_data_is_wrapped_in_a_message_with_id_and_time() {
        let nested = json!({
            "context": {"eventId": ID, "timestamp": TIME, "eventType": "google.pubsub.topic.publish",
                "resource": {"service": "pubsub.googleapis.com", "name": "projects/sample-project/topics/gcf-test",
                    "type": "type.googleapis.com/google.pubsub.v1.PubsubMessage"}},
            "data": {"@type": "type.googleapis.com/google.pubsub.v1.PubsubMessage", "attributes": {"attr1": "attr1-value"},
                "data": "dGVzdCBtZXNzYWdlIDM="}});
        let ce = convert(&nested);
        assert_eq!(ce["source"], "//pubsub.googleapis.com/projects/sample-project/topics/gcf-test");
        assert!(ce.get("subject").is_none());
        assert_eq!(
            ce["data"],
            json!({"message": {"@type": "type.googleapis.com/google.pubsub.v1.PubsubMessage",
                "attributes": {"attr1": "attr1-value"}, "data": "dGVzdCBtZXNzYWdlIDM=",
                "messageId": ID, "publishTime": TIME}})
        );
        // The 1st-gen form: service from the type's prefix, the resource a string; an id the
        // message carries already is kept.
        let old = legacy(
            "providers/cloud.pubsub/eventTypes/topic.publish",
            json!("projects/p/topics/t"),
            json!({"data": "aGk=", "messageId": "m-1"}),
        );
        let ce = convert(&old);
        assert_eq!(ce["source"], "//pubsub.googleapis.com/projects/p/topics/t");
        assert_eq!(ce["data"]["message"]["messageId"], "m-1");
        let bad = legacy("google.pubsub.topic.publish", json!("projects/p/topics/t"), json!("text"));
        assert!(to_cloudevent(&bad, "/").unwrap_err().message().contains("must be an object"));
    }

    #[test]
    fn a_raw_pubsub_push_is_a_message_published_on_the_topic_of_the_path() {
        let push = json!({"subscription": "projects/p/subscriptions/s",
            "message": {"data": "aGk=", "messageId": "42", "publishTime": TIME, "attributes": {"a": "1"}}});
        let ce = to_cloudevent(&push, "/projects/p/topics/orders?pubsub_trigger=true").unwrap();
        assert_eq!(ce["type"], "google.cloud.pubsub.topic.v1.messagePublished");
        assert_eq!(ce["source"], "//pubsub.googleapis.com/projects/p/topics/orders");
        assert_eq!((ce["id"].as_str(), ce["time"].as_str()), (Some("42"), Some(TIME)));
        assert_eq!(
            ce["data"]["message"],
            json!({"@type": PUBSUB_MESSAGE_TYPE, "data": "aGk=", "attributes": {"a": "1"}, "messageId": "42", "publishTime": TIME})
        );
        // No topic in the path: an empty name, as the reference gives; no attributes: `{}`.
        let bare = json!({"subscription": "s", "message": {"data": "", "messageId": "1"}});
        let ce = to_cloudevent(&bare, "/").unwrap();
        assert_eq!(ce["source"], "//pubsub.googleapis.com/");
        assert_eq!(ce["data"]["message"]["attributes"], json!({}));
        assert!(ce["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(topic_of_path("/a/projects/p/topics/t/b"), "projects/p/topics/t");
        assert_eq!(topic_of_path("/projects//topics/t"), "");
    }

    #[test]
    fn storage_has_the_bucket_as_source_and_the_object_as_subject() {
        let event = legacy(
            "google.storage.object.finalize",
            json!({"service": "storage.googleapis.com", "name": "projects/_/buckets/some-bucket/objects/folder/Test.cs",
                "type": "storage#object"}),
            json!({"bucket": "some-bucket", "name": "folder/Test.cs"}),
        );
        let ce = convert(&event);
        assert_eq!(ce["source"], "//storage.googleapis.com/projects/_/buckets/some-bucket");
        assert_eq!(ce["subject"], "objects/folder/Test.cs");
        assert_eq!(ce["data"], json!({"bucket": "some-bucket", "name": "folder/Test.cs"}));
        // The reference's pattern: a one-character project only.
        let named = legacy("google.storage.object.finalize", json!("projects/abc/buckets/b/objects/o"), json!({}));
        assert!(to_cloudevent(&named, "/").unwrap_err().message().contains("does not have the shape"));
        let change = legacy(
            "providers/cloud.storage/eventTypes/object.change",
            json!("projects/_/buckets/b/objects/o"),
            json!({}),
        );
        assert_eq!(convert(&change)["type"], "google.cloud.storage.object.v1.finalized");
    }

    #[test]
    fn firestore_splits_the_document_off_the_database() {
        let event = legacy(
            "providers/cloud.firestore/eventTypes/document.write",
            json!("projects/project-id/databases/(default)/documents/gcf-test/2Vm2mI1d0wIaK2Waj5to"),
            json!({"oldValue": {}, "value": {"name": "x"}}),
        );
        let ce = convert(&event);
        assert_eq!(ce["source"], "//firestore.googleapis.com/projects/project-id/databases/(default)");
        assert_eq!(ce["subject"], "documents/gcf-test/2Vm2mI1d0wIaK2Waj5to");
        let other_db = legacy(
            "providers/cloud.firestore/eventTypes/document.write",
            json!("projects/p/databases/mine/documents/c/d"),
            json!({}),
        );
        assert!(to_cloudevent(&other_db, "/").is_err());
    }

    #[test]
    fn firebase_auth_gets_the_user_subject_and_renamed_metadata() {
        let event = legacy(
            "providers/firebase.auth/eventTypes/user.create",
            json!("projects/my-project-id"),
            json!({"email": "test@nowhere.com", "metadata": {"createdAt": "2020-05-26T10:42:27Z", "lastSignedInAt": "2020-10-24T11:00:00Z"},
                "uid": "UUpby3s4spZre6kHsgVSPetzQ8l2"}),
        );
        let ce = convert(&event);
        assert_eq!(ce["source"], "//firebaseauth.googleapis.com/projects/my-project-id");
        assert_eq!(ce["subject"], "users/UUpby3s4spZre6kHsgVSPetzQ8l2");
        assert_eq!(
            ce["data"]["metadata"],
            json!({"createTime": "2020-05-26T10:42:27Z", "lastSignInTime": "2020-10-24T11:00:00Z"})
        );
        // Without a uid there is no subject.
        let anonymous = legacy("providers/firebase.auth/eventTypes/user.delete", json!("projects/p"), json!({}));
        assert!(convert(&anonymous).get("subject").is_none());
    }

    #[test]
    fn realtime_database_takes_its_location_from_the_domain() {
        let mut event = legacy(
            "providers/google.firebase.database/eventTypes/ref.write",
            json!("projects/_/instances/my-project-id/refs/gcf-test/xyz"),
            json!({"data": null, "delta": {"grandchild": "other"}}),
        );
        event["domain"] = json!("firebaseio.com");
        let ce = convert(&event);
        assert_eq!(
            ce["source"],
            "//firebasedatabase.googleapis.com/projects/_/locations/us-central1/instances/my-project-id"
        );
        assert_eq!(ce["subject"], "refs/gcf-test/xyz");
        event["domain"] = json!("europe-west1.firebasedatabase.app");
        assert_eq!(
            convert(&event)["source"],
            "//firebasedatabase.googleapis.com/projects/_/locations/europe-west1/instances/my-project-id"
        );
        event.as_object_mut().unwrap().remove("domain");
        assert!(to_cloudevent(&event, "/").unwrap_err().message().contains("`domain`"));
    }

    #[test]
    fn analytics_splits_the_event_name_off() {
        let event = legacy(
            "providers/google.firebase.analytics/eventTypes/event.log",
            json!("projects/my-project-id/events/session_start"),
            json!({"eventDim": []}),
        );
        let ce = convert(&event);
        assert_eq!(ce["source"], "//firebase.googleapis.com/projects/my-project-id");
        assert_eq!(ce["subject"], "events/session_start");
    }

    #[test]
    fn what_cannot_be_converted_is_refused_by_name() {
        let e = to_cloudevent(&json!([1]), "/").unwrap_err();
        assert!(e.message().contains("not one"), "{e}");
        let e = to_cloudevent(
            &legacy("google.pubsub.topic.publish", json!({"service": "pubsub.googleapis.com"}), json!({})),
            "/",
        )
        .unwrap_err();
        assert!(e.message().contains("no `name`"), "{e}");
        let e = to_cloudevent(&json!({"data": {}}), "/").unwrap_err();
        assert!(e.message().contains("legacy event type ``"), "{e}");
        assert_eq!(e.error_type(), "EventConversionError");
    }
}
