//! Activation records and the bounded in-memory store of them, with the JSON the controller
//! answers (apache/openwhisk common/scala/src/main/scala/org/apache/openwhisk/core/entity/
//! WhiskActivation.scala `toExtendedJson`, `summaryAsJson`; ActivationResult.scala).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};

/// `response.status` of a record (`ActivationResponse.messageForCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Success = 0,
    ApplicationError = 1,
    DeveloperError = 2,
    WhiskError = 3,
}

impl Status {
    pub fn message(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::ApplicationError => "application error",
            Status::DeveloperError => "action developer error",
            Status::WhiskError => "whisk internal error",
        }
    }
}

/// An activation's response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Response {
    pub status: Status,
    pub result: Option<Value>,
    /// Bytes of the answer the result came from, when there was one.
    pub size: Option<usize>,
}

impl Response {
    /// A success with `result`.
    pub fn success(result: Value, size: Option<usize>) -> Response {
        Response { status: Status::Success, result: Some(result), size }
    }

    /// An error of `status` with result `{"error": error}`.
    pub fn error(status: Status, error: Value, size: Option<usize>) -> Response {
        Response { status, result: Some(json!({ "error": error })), size }
    }

    /// `ActivationResponse.toExtendedJson`: no numeric code, `success` and `status` added.
    pub fn json(&self) -> Value {
        let mut value = json!({
            "status": self.status.message(),
            "success": self.status == Status::Success,
        });
        if let Some(result) = &self.result {
            value["result"] = result.clone();
        }
        if let Some(size) = self.size {
            value["size"] = json!(size);
        }
        value
    }
}

/// One activation record.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub activation_id: String,
    /// `guest` or `guest/package`.
    pub namespace: String,
    pub name: String,
    /// `name` or `package/name`: what the `name` filter of a list matches.
    pub key: String,
    pub version: String,
    pub subject: String,
    pub start: i64,
    /// `None` while the record has no end (a trigger's).
    pub end: Option<i64>,
    pub duration: Option<i64>,
    pub cause: Option<String>,
    pub response: Response,
    pub logs: Vec<String>,
    pub annotations: Vec<Value>,
}

impl Record {
    /// The record as `GET /activations/{id}` answers it.
    pub fn json(&self) -> Value {
        let mut value = json!({
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "subject": self.subject,
            "activationId": self.activation_id,
            "start": self.start,
            "response": self.response.json(),
            "logs": self.logs,
            "annotations": self.annotations,
            "publish": false,
        });
        if let Some(end) = self.end {
            value["end"] = json!(end);
            value["duration"] = json!(self.duration.unwrap_or(end - self.start));
        }
        if let Some(cause) = &self.cause {
            value["cause"] = json!(cause);
        }
        value
    }

    /// A list entry: the entity summary plus `activationId`, `start`, `cause`, and once ended
    /// `end`, `duration` and the numeric `statusCode`.
    pub fn summary(&self) -> Value {
        let mut value = json!({
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "publish": false,
            "annotations": self.annotations,
            "activationId": self.activation_id,
            "start": self.start,
        });
        if let Some(cause) = &self.cause {
            value["cause"] = json!(cause);
        }
        if let Some(end) = self.end {
            value["end"] = json!(end);
            value["duration"] = json!(self.duration.unwrap_or(end - self.start));
            value["statusCode"] = json!(self.response.status as u8);
        }
        value
    }
}

/// A log line as OpenWhisk's log store formats it: the time padded to 30 characters, the
/// stream, the text (DockerToActivationLogStore.scala `LogLine.toFormattedString`).
pub(crate) fn log_line(time: chrono::DateTime<chrono::Utc>, stream: &str, text: &str) -> String {
    let time = time.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string();
    format!("{time:<30} {stream}: {}", text.trim_end_matches(['\n', '\r']))
}

/// The newest `max` records, by id and in order.
#[derive(Debug)]
pub(crate) struct Store {
    max: usize,
    order: VecDeque<Arc<Record>>,
    by_id: HashMap<String, Arc<Record>>,
}

/// A list query (`GET /activations`).
#[derive(Debug, Default)]
pub(crate) struct Query {
    pub name: Option<String>,
    pub since: Option<i64>,
    pub upto: Option<i64>,
    pub skip: usize,
    pub limit: usize,
}

impl Store {
    pub fn new(max: usize) -> Store {
        Store { max, order: VecDeque::new(), by_id: HashMap::new() }
    }

    pub fn insert(&mut self, record: Record) -> Arc<Record> {
        let record = Arc::new(record);
        if self.order.len() >= self.max {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old.activation_id);
            }
        }
        self.by_id.insert(record.activation_id.clone(), record.clone());
        self.order.push_back(record.clone());
        record
    }

    pub fn get(&self, id: &str) -> Option<Arc<Record>> {
        self.by_id.get(id).cloned()
    }

    /// Newest first, filtered, then `skip` and `limit` applied.
    pub fn list(&self, q: &Query) -> Vec<Arc<Record>> {
        self.order
            .iter()
            .rev()
            .filter(|r| q.name.as_ref().is_none_or(|n| &r.key == n))
            .filter(|r| q.since.is_none_or(|s| r.start >= s))
            .filter(|r| q.upto.is_none_or(|u| r.start <= u))
            .skip(q.skip)
            .take(q.limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, start: i64) -> Record {
        Record {
            activation_id: id.into(),
            namespace: "guest".into(),
            name: "a".into(),
            key: "a".into(),
            version: "0.0.1".into(),
            subject: "guest".into(),
            start,
            end: Some(start + 5),
            duration: None,
            cause: None,
            response: Response::success(json!({"ok": true}), Some(11)),
            logs: vec![],
            annotations: vec![],
        }
    }

    #[test]
    fn the_store_keeps_the_newest_and_lists_newest_first() {
        let mut store = Store::new(2);
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            store.insert(record(id, i as i64 * 10));
        }
        assert!(store.get("a").is_none());
        let all = store.list(&Query { limit: 10, ..Default::default() });
        assert_eq!(all.iter().map(|r| r.activation_id.as_str()).collect::<Vec<_>>(), ["c", "b"]);
        let since = store.list(&Query { limit: 10, since: Some(15), ..Default::default() });
        assert_eq!(since.len(), 1);
        let json = all[0].json();
        assert_eq!(json["duration"], 5);
        assert_eq!(json["response"], json!({"status": "success", "success": true, "result": {"ok": true}, "size": 11}));
        assert_eq!(all[0].summary()["statusCode"], 0);
    }

    #[test]
    fn log_lines_look_like_openwhisk_ones() {
        let t = chrono::DateTime::parse_from_rfc3339("2024-01-02T03:04:05.5Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(log_line(t, "stdout", "hi\n"), "2024-01-02T03:04:05.500000000Z stdout: hi");
    }
}
