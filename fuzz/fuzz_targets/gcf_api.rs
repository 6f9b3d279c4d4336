//! The Cloud Functions emulator's API over a real socket, as Google's clients call it: the v2
//! functions API (create, get, patch, delete, list with page tokens, upload URLs, operations)
//! with bodies built from the real member names and values of any JSON type, and Cloud
//! Logging's `entries:list` with filters built from the language's tokens (fields, operators,
//! quotes, `AND`/`OR`/`NOT`, parentheses). One emulator serves every input; each starts with no
//! functions and removes what it made.
//!
//! Invariants, besides "no panic" in the emulator:
//! - no answer is a 5xx;
//! - every error is a `google.rpc.Status`: `{"error": {"code", "message", "status"}}`, its code
//!   the HTTP status (Cloud Storage's XML `<Error>` for the signed upload URLs);
//! - a refused request changes nothing: the functions listed before and after are the same.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use bytes::Bytes;
use faas_fuzz::{json_value, percent_encode, pick_string, JsonShape, Live};
use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

const BASE: &str = "/v2/projects/p/locations/us-central1";
const MEMBERS: &[&str] = &[
    "name",
    "description",
    "buildConfig",
    "runtime",
    "entryPoint",
    "source",
    "storageSource",
    "bucket",
    "object",
    "environmentVariables",
    "serviceConfig",
    "timeoutSeconds",
    "availableMemory",
    "maxInstanceCount",
    "maxInstanceRequestConcurrency",
    "eventTrigger",
    "eventType",
    "pubsubTopic",
    "retryPolicy",
    "labels",
    "resourceNames",
    "filter",
    "orderBy",
    "pageSize",
    "pageToken",
];
const STRINGS: &[&str] = &[
    "python312",
    "nodejs20",
    "main",
    "256Mi",
    "1Gi",
    "projects/p",
    "projects/p/topics/t",
    "google.cloud.pubsub.topic.v1.messagePublished",
    "RETRY_POLICY_RETRY",
    "timestamp desc",
    "",
];
const FILTER_TOKENS: &[&str] = &[
    "resource.type",
    "=",
    "\"cloud_run_revision\"",
    "labels.execution_id",
    "!=",
    ">=",
    "<",
    ":",
    "severity",
    "ERROR",
    "timestamp",
    "\"2026-01-01T00:00:00Z\"",
    "AND",
    "OR",
    "NOT",
    "-",
    "(",
    ")",
    "logName",
    "\"",
    "\\",
    "textPayload",
    "\"a \\\"quoted\\\" b\"",
    " ",
    "resource.labels.function_name=\"f\"",
];
const IDS: &[&str] = &["f", "g", "F", "f_1", "-f", "a%2Fb", ""];

struct Emulator {
    live: Live,
    _emulator: faas_emulator_gcf::Emulator,
}

fn emulator() -> &'static Emulator {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    EMULATOR.get_or_init(|| {
        let options = faas_emulator_gcf::EmulatorOptions {
            addr: ([127, 0, 0, 1], 0).into(),
            search_path: false,
            ..Default::default()
        };
        let (live, emulator) = Live::start(|| async {
            let emulator = faas_emulator_gcf::start(options).await.expect("the emulator starts");
            let url = emulator.url();
            (emulator, url)
        });
        Emulator { live, _emulator: emulator }
    })
}

impl Emulator {
    fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> (StatusCode, Bytes) {
        let (status, _, body) = self.live.send(method, path, &[], body);
        (status, body)
    }

    fn names(&self) -> Vec<String> {
        let (status, body) = self.send(Method::GET, &format!("{BASE}/functions?pageSize=1000"), None);
        assert_eq!(status, StatusCode::OK, "listing: {}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        v["functions"]
            .as_array()
            .map_or(vec![], |fs| fs.iter().map(|f| f["name"].as_str().unwrap().to_string()).collect())
    }

    fn all(&self) -> Vec<Value> {
        let (_, body) = self.send(Method::GET, &format!("{BASE}/functions?pageSize=1000"), None);
        let v: Value = serde_json::from_slice(&body).unwrap();
        v["functions"].as_array().cloned().unwrap_or_default()
    }
}

fn shape() -> JsonShape<'static> {
    JsonShape { keys: MEMBERS, strings: STRINGS, max_depth: 3 }
}

fn segment(s: &str) -> String {
    percent_encode(s, b"-._~%:")
}

fn function_body(u: &mut Unstructured<'_>) -> Result<Value> {
    let mut body = Map::new();
    if u.ratio(3, 4)? {
        let mut build = json!({"runtime": pick_string(u, STRINGS)?, "entryPoint": pick_string(u, STRINGS)?});
        if u.arbitrary()? {
            build["source"] =
                json!({"storageSource": {"bucket": pick_string(u, STRINGS)?, "object": pick_string(u, STRINGS)?}});
        }
        body.insert("buildConfig".into(), build);
    }
    for _ in 0..u.int_in_range(0..=3)? {
        body.insert(pick_string(u, MEMBERS)?, json_value(u, &shape(), 2)?);
    }
    Ok(Value::Object(body))
}

fn filter(u: &mut Unstructured<'_>) -> Result<String> {
    let mut out = String::new();
    for _ in 0..u.int_in_range(0..=8)? {
        out.push_str(&pick_string(u, FILTER_TOKENS)?);
        if u.ratio(3, 4)? {
            out.push(' ');
        }
    }
    Ok(out)
}

fn request(u: &mut Unstructured<'_>) -> Result<(Method, String, Option<Vec<u8>>)> {
    let id = segment(&pick_string(u, IDS)?);
    Ok(match u.int_in_range(0..=7)? {
        0 | 1 => {
            let query = if u.ratio(7, 8)? { format!("?functionId={id}") } else { String::new() };
            (Method::POST, format!("{BASE}/functions{query}"), Some(serde_json::to_vec(&function_body(u)?).unwrap()))
        }
        2 => {
            let mask = pick_string(u, &["buildConfig.runtime", "serviceConfig", "description", "nope", ""])?;
            (
                Method::PATCH,
                format!("{BASE}/functions/{id}?updateMask={}", segment(&mask)),
                Some(serde_json::to_vec(&function_body(u)?).unwrap()),
            )
        }
        3 => (Method::GET, format!("{BASE}/functions/{id}"), None),
        4 => (Method::DELETE, format!("{BASE}/functions/{id}"), None),
        5 => {
            let q = pick_string(
                u,
                &["pageSize=0", "pageSize=-1", "pageSize=x", "pageToken=zz", "filter=name%3Df", "orderBy=name"],
            )?;
            let q = percent_encode(&q, b"-._~=&%:+,");
            (Method::GET, format!("{BASE}/functions?{q}"), None)
        }
        6 => {
            let mut body = Map::new();
            if u.ratio(7, 8)? {
                body.insert(
                    "resourceNames".into(),
                    json!([pick_string(u, &["projects/p", "projects/", "folders/x", "projects/a/b"])?]),
                );
            }
            body.insert("filter".into(), json!(filter(u)?));
            for _ in 0..u.int_in_range(0..=2)? {
                body.insert(pick_string(u, &["orderBy", "pageSize", "pageToken"])?, json_value(u, &shape(), 1)?);
            }
            (Method::POST, "/v2/entries:list".into(), Some(serde_json::to_vec(&body).unwrap()))
        }
        _ => {
            let method = u.choose(&[Method::GET, Method::POST, Method::PUT, Method::DELETE])?.clone();
            let p = pick_string(
                u,
                &[
                    "/v2/projects/p/locations",
                    "/v2/projects/p/locations/us-central1/functions:generateUploadUrl",
                    "/v2/projects/p/locations/us-central1/operations",
                    "/v2/projects/p/locations/us-central1/operations/op-1",
                    "/v2/projects/p/locations/us-central1/runtimes",
                    "/upload/nope",
                    "/emulator/v1/projects/p/locations/l/nothing",
                ],
            )?;
            let p = faas_fuzz::sendable_path(p);
            let n = u.int_in_range(0..=64)?;
            (method, p, Some(u.bytes(n)?.to_vec()))
        }
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let emu = emulator();
    let result = (|| -> Result<()> {
        for _ in 0..u.int_in_range(1..=6)? {
            let (method, p, body) = request(u)?;
            let what = format!("{method} {p}");
            let before = emu.all();
            let (status, answer) = emu.send(method, &p, body);
            assert!(status.as_u16() < 500, "{what}: {status} {}", String::from_utf8_lossy(&answer));
            if !status.is_success() && p.starts_with("/upload/") {
                // A signed Cloud Storage URL answers as Cloud Storage does: XML.
                let text = String::from_utf8_lossy(&answer);
                assert!(text.contains("<Error><Code>") && text.contains("<Message>"), "{what}: {status} {text}");
            } else if !status.is_success() {
                let v: Value = serde_json::from_slice(&answer)
                    .unwrap_or_else(|e| panic!("{what}: {status} body is not JSON ({e})"));
                let e = &v["error"];
                assert_eq!(e["code"].as_u64(), Some(u64::from(status.as_u16())), "{what}: {v}");
                assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {v}");
                assert!(e["status"].as_str().is_some_and(|s| !s.is_empty()), "{what}: {v}");
                assert_eq!(emu.all(), before, "{what} was refused ({status}) but changed the functions");
            }
        }
        Ok(())
    })();
    for name in emu.names() {
        let (status, body) = emu.send(Method::DELETE, &format!("/v2/{name}"), None);
        assert!(status.is_success(), "DELETE {name}: {status} {}", String::from_utf8_lossy(&body));
    }
    result
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
