//! The controller API over HTTP: CRUD of actions and packages, lists and activations, the
//! invoke modes, sequences, triggers and rules, and the catalogue of bad input.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const OK_SCRIPT: &str = "#!/bin/sh\necho \"{\\\"got\\\": $1}\"\n";

fn error_of(body: &Value) -> &str {
    assert_eq!(body["code"].as_str().map(str::len), Some(32), "error bodies carry a transaction id: {body}");
    body["error"].as_str().unwrap()
}

#[tokio::test]
async fn authentication_and_namespaces() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    let (status, body) = api.get("/namespaces").await;
    assert_eq!((status, body), (200, json!(["guest"])));
    let raw = reqwest::Client::new();
    let response = raw.get(format!("{}/namespaces", api.base)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_of(&body), "The resource requires authentication, which was not supplied with the request");
    let response = raw
        .get(format!("{}/namespaces/_/actions", api.base))
        .basic_auth("23bc46b1-71f6-4ed5-8c54-816aa4f8c502", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_of(&body), "The supplied authentication is invalid");
    let (status, body) = api.get("/namespaces/someone-else/actions").await;
    assert_eq!(status, 403);
    assert_eq!(error_of(&body), "The supplied authentication is not authorized to access this resource.");
    let (status, limits) = api.get("/namespaces/_/limits").await;
    assert_eq!(status, 200);
    assert_eq!(limits["concurrentInvocations"], 100);
    assert_eq!(limits["maxActionTimeout"], 300000);
    // Another key, another namespace.
    let other = emulator_with(|o| {
        o.auth = "abc:def".into();
        o.namespace = "team".into();
    })
    .await;
    let api2 = Api::new(&other);
    assert_eq!(api2.get("/namespaces").await, (200, json!(["team"])));
    let wrong = reqwest::Client::new().get(format!("{}/namespaces", api2.base)).basic_auth("abc", Some("x"));
    assert_eq!(wrong.send().await.unwrap().status(), 401);
    let guest_key = api.request(reqwest::Method::GET, "/namespaces");
    drop(guest_key);
    other.shutdown().await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn actions_crud_lists_and_packages() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    let zip = exec_zip(OK_SCRIPT);
    api.native("one", &zip, json!({})).await;
    let (status, body) = api
        .put(
            "/namespaces/_/actions/one",
            &json!({"exec": {"kind": "blackbox", "image": "openwhisk/dockerskeleton", "code": b64(&zip)}}),
        )
        .await;
    assert_eq!(status, 409, "no overwrite: conflict");
    assert_eq!(error_of(&body), "resource already exists");
    let (status, updated) =
        api.put("/namespaces/_/actions/one?overwrite=true", &json!({"parameters": [{"key": "p", "value": 1}]})).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["version"], "0.0.2");
    assert_eq!(updated["exec"]["image"], "openwhisk/dockerskeleton", "an update keeps the code");
    let (_, body) = api.invoke("one", &json!({"q": 2})).await;
    assert_eq!(body["response"]["result"]["got"], json!({"p": 1, "q": 2}), "attached parameters are merged");

    let (status, got) = api.get("/namespaces/_/actions/one?code=false").await;
    assert_eq!(status, 200);
    assert!(got["exec"].get("code").is_none());
    let (_, got) = api.get("/namespaces/guest/actions/one").await;
    assert_eq!(got["exec"]["code"], b64(&zip));
    assert_eq!(common::annotation(&got, "exec").unwrap(), "blackbox");

    // Packages hold actions: pkg/name.
    let (status, p) =
        api.put("/namespaces/_/packages/tools", &json!({"parameters": [{"key": "from", "value": "package"}]})).await;
    assert_eq!(status, 200, "{p}");
    api.native("tools/two", &zip, json!({})).await;
    let (_, body) = api.invoke("tools/two", &json!({})).await;
    assert_eq!(body["response"]["result"]["got"], json!({"from": "package"}));
    assert_eq!(body["namespace"], "guest/tools");
    assert_eq!(annotation(&body, "path").unwrap(), "guest/tools/two");
    let (_, pkg) = api.get("/namespaces/_/packages/tools").await;
    assert_eq!(pkg["actions"][0]["name"], "two");
    let (_, listed) = api.get("/namespaces/_/actions/tools/").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (status, body) = api.delete("/namespaces/_/packages/tools").await;
    assert_eq!(status, 409);
    assert!(error_of(&body).starts_with("Package not empty (contains 1 entity)."));
    let (status, _) = api
        .put(
            "/namespaces/_/actions/nopkg/x",
            &json!({"exec": {"kind": "blackbox", "image": "openwhisk/dockerskeleton", "code": b64(&zip)}}),
        )
        .await;
    assert_eq!(status, 404, "no such package");

    for name in ["three", "four"] {
        api.native(name, &zip, json!({})).await;
    }
    let (_, all) = api.get("/namespaces/_/actions").await;
    let names: Vec<&str> = all.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3, "top-level only: {names:?}");
    let (_, page) = api.get("/namespaces/_/actions?limit=1&skip=1").await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["name"], names[1]);
    let (status, _) = api.get("/namespaces/_/actions?").await;
    assert_eq!(status, 200, "an empty query is fine");

    let (status, deleted) = api.delete("/namespaces/_/actions/three").await;
    assert_eq!((status, deleted["name"].as_str()), (200, Some("three")));
    let (status, body) = api.delete("/namespaces/_/actions/three").await;
    assert_eq!((status, error_of(&body)), (404, "The requested resource does not exist."));
    let (status, _) = api.invoke("three", &json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = api.delete("/namespaces/_/packages/tools?force=true").await;
    assert_eq!(status, 200);
    assert_eq!(api.get("/namespaces/_/actions/tools/two").await.0, 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_bad_input_catalogue() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_path_buf();
    let emulator = emulator_with(|o| {
        o.state_dir = Some(state_dir);
        o.max_unzipped = 8 << 20;
    })
    .await;
    let api = Api::new(&emulator);
    let put = |name: &str, body: Value| {
        let api = &api;
        let path = format!("/namespaces/_/actions/{name}");
        async move { api.put(&path, &body).await }
    };
    let skeleton =
        |code: String| json!({"exec": {"kind": "blackbox", "image": "openwhisk/dockerskeleton", "code": code}});
    let check = |status: u16, body: &Value, want: u16, contains: &str| {
        assert_eq!(status, want, "{body}");
        assert!(error_of(body).contains(contains), "{contains:?} not in {body}");
    };

    // Malformed JSON and shapes.
    let (s, b, _) = api.send(api.request(reqwest::Method::PUT, "/namespaces/_/actions/x").body("{not json")).await;
    check(s, &b, 400, "The request content was malformed");
    let (s, b) = put("x", json!([1])).await;
    check(s, &b, 400, "expected a JSON object");
    let (s, b) = put("x", json!({})).await;
    check(s, &b, 400, "exec undefined");
    let (s, b) = put("x", json!({"exec": {"kind": "nodejs:20", "code": "function main(){}"}})).await;
    check(s, &b, 400, "The specified runtime 'nodejs:20' is not supported");
    let (s, b) = put("x", json!({"exec": {"kind": "blackbox", "image": "someone/image"}})).await;
    check(s, &b, 400, "runs no Docker images");
    let (s, b) = put("x", skeleton("UEsDBA==".into()).merge_limits(json!({"timeout": 50}))).await;
    check(s, &b, 400, "timeout 50 milliseconds below allowed threshold of 100 milliseconds");
    let (s, b) = put("x", skeleton(b64(&exec_zip(OK_SCRIPT))).merge_limits(json!({"timeout": 300001}))).await;
    check(s, &b, 400, "timeout 300001 milliseconds exceeds allowed threshold of 300000 milliseconds");
    let (s, b) = put("x", skeleton(b64(&exec_zip(OK_SCRIPT))).merge_limits(json!({"memory": 64}))).await;
    check(s, &b, 400, "memory size 64 MB below allowed threshold of 128 MB");
    let (s, b) = put("x", skeleton(b64(&exec_zip(OK_SCRIPT))).merge_limits(json!({"memory": 1024}))).await;
    check(s, &b, 400, "memory size 1024 MB exceeds allowed threshold of 512 MB");
    let (s, b) = put("x", skeleton(b64(&exec_zip(OK_SCRIPT))).merge_limits(json!({"logs": 11}))).await;
    check(s, &b, 400, "log size 11 MB exceeds allowed threshold of 10 MB");
    let (s, b) = put("x", json!({"exec": {"kind": "blackbox", "image": "openwhisk/dockerskeleton", "code": b64(&exec_zip(OK_SCRIPT))}, "parameters": {"a": 1}})).await;
    check(s, &b, 400, "parameters must be an array");
    let (s, b) = put("bad$name", skeleton(b64(&exec_zip(OK_SCRIPT)))).await;
    check(s, &b, 400, "illegal characters");
    // A path that does not percent-decode to UTF-8 is refused in the controller's shape too (not
    // axum's plain-text 400), wherever the segment is.
    let (s, b) = put("bad%FFname", skeleton(b64(&exec_zip(OK_SCRIPT)))).await;
    check(s, &b, 400, "illegal characters");
    for path in ["/namespaces/%C3/actions", "/namespaces/_/activations/%FF%FE", "/namespaces/_/packages/a%E2%82"] {
        let (s, b) = api.get(path).await;
        check(s, &b, 400, "illegal characters");
    }

    // Zips: not a zip, escaping entries, no exec, a bomb.
    let (s, b) = put("x", skeleton(b64(b"this is not a zip file"))).await;
    check(s, &b, 400, "not of a zip archive");
    let corrupt = {
        let mut z = exec_zip(OK_SCRIPT);
        let n = z.len();
        z.truncate(n - 10);
        z
    };
    let (s, b) = put("x", skeleton(b64(&corrupt))).await;
    check(s, &b, 400, "the action's zip was refused");
    let escaping = zip_of(&[("exec", 0o755, OK_SCRIPT.as_bytes()), ("../evil", 0o644, b"x")]);
    let (s, b) = put("x", skeleton(b64(&escaping))).await;
    check(s, &b, 400, "would be extracted outside the target directory");
    let absolute = zip_of(&[("exec", 0o755, OK_SCRIPT.as_bytes()), ("/tmp/evil", 0o644, b"x")]);
    let (s, b) = put("x", skeleton(b64(&absolute))).await;
    check(s, &b, 400, "outside the target directory");
    let no_exec = zip_of(&[("bin/exec", 0o755, OK_SCRIPT.as_bytes())]);
    let (s, b) = put("x", skeleton(b64(&no_exec))).await;
    check(s, &b, 400, "no file `exec` at its top level");
    let bomb = {
        use std::io::Write;
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        out.start_file("exec", zip::write::SimpleFileOptions::default().unix_permissions(0o755)).unwrap();
        out.write_all(OK_SCRIPT.as_bytes()).unwrap();
        out.start_file("zeros", zip::write::SimpleFileOptions::default()).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..10 {
            out.write_all(&chunk).unwrap();
        }
        out.finish().unwrap().into_inner()
    };
    assert!(bomb.len() < 100 << 10);
    let (s, b) = put("x", skeleton(b64(&bomb))).await;
    check(s, &b, 400, "the unzipped files are larger than");
    assert_eq!(api.get("/namespaces/_/actions/x").await.0, 404, "nothing was stored");
    let left = std::fs::read_dir(state.path().join("actions")).unwrap().count();
    assert_eq!(left, 0, "no code directory left behind");

    // Too large: code over 48 MB (413), payload over 1 MB (413).
    let big_code = "A".repeat(48 * 1024 * 1024 + 4);
    let (s, b) = put("x", skeleton(big_code)).await;
    check(s, &b, 413, "exec larger than allowed: 50331652 > 50331648 bytes.");
    api.native("ok", &exec_zip(OK_SCRIPT), json!({})).await;
    let (s, b, _) = api.post("/namespaces/_/actions/ok?blocking=true", &json!({"big": "z".repeat(1024 * 1024)})).await;
    check(s, &b, 413, "Request larger than allowed");
    let (s, b, _) = api.send(api.request(reqwest::Method::POST, "/namespaces/_/actions/ok").body("[1,2]")).await;
    check(s, &b, 400, "expected a JSON object");
    let (s, b, _) = api.send(api.request(reqwest::Method::POST, "/namespaces/_/actions/ok").body("{oops")).await;
    check(s, &b, 400, "not valid JSON");
    let (s, b, _) = api.post("/namespaces/_/actions/ok?blocking=maybe", &json!({})).await;
    check(s, &b, 400, "The query parameter 'blocking' was malformed");
    let (s, b, _) = api.post("/namespaces/_/actions/ok?blocking=true&timeout=60001", &json!({})).await;
    check(s, &b, 400, "Timeout must be number of milliseconds up to 60000.");
    let (s, b, _) = api.post("/namespaces/_/actions/missing?blocking=true", &json!({})).await;
    check(s, &b, 404, "The requested resource does not exist.");
    let (s, b) = api.get("/namespaces/_/activations/not-an-id").await;
    check(s, &b, 400, "The activation id is not valid.");
    let (s, b) = api.get(&format!("/namespaces/_/activations/{}", "0".repeat(32))).await;
    check(s, &b, 404, "does not exist");
    let (s, b) = api.get("/namespaces/_/activations?limit=500").await;
    check(s, &b, 400, "is not in the range of 0 to 200 for activations");
    let (s, b) = api.get("/namespaces/_/activations?since=yesterday").await;
    check(s, &b, 400, "not a valid value for epoch");
    let (s, b) = api.get("/nowhere").await;
    check(s, &b, 404, "could not be found");
    // A known path with a method it does not take: Pekko's 405 in the controller's error body.
    let (s, b, h) = api.send(api.request(reqwest::Method::POST, "/namespaces/_/activations")).await;
    check(s, &b, 405, "HTTP method not allowed, supported methods: GET");
    assert_eq!(h["allow"], "GET");
    assert!(b["code"].is_string(), "{b}");
    // A final parameter cannot be overridden.
    let body = json!({"exec": {"kind": "blackbox", "image": "openwhisk/dockerskeleton", "code": b64(&exec_zip(OK_SCRIPT))},
                      "parameters": [{"key": "fixed", "value": 1}], "annotations": [{"key": "final", "value": true}]});
    assert_eq!(put("final", body).await.0, 200);
    let (s, b, _) = api.post("/namespaces/_/actions/final?blocking=true", &json!({"fixed": 2})).await;
    check(s, &b, 400, "Request defines parameters that are not allowed");
    emulator.shutdown().await;
}

trait MergeLimits {
    fn merge_limits(self, limits: Value) -> Value;
}

impl MergeLimits for Value {
    fn merge_limits(mut self, limits: Value) -> Value {
        self["limits"] = limits;
        self
    }
}

#[tokio::test]
async fn invoke_modes_and_activation_lists() {
    let emulator = emulator_with(|o| o.max_blocking_wait = Duration::from_millis(1500)).await;
    let api = Api::new(&emulator);
    api.native("ok", &exec_zip(OK_SCRIPT), json!({})).await;
    let (status, body, headers) = api.post("/namespaces/_/actions/ok", &json!({"a": 1})).await;
    assert_eq!(status, 202, "non-blocking by default");
    let id = body["activationId"].as_str().unwrap().to_string();
    assert_eq!(headers["x-openwhisk-activation-id"], id.as_str());
    let record = api.activation(&id).await;
    assert_eq!(record["response"]["result"]["got"], json!({"a": 1}));

    // A blocking invoke that does not finish within its wait answers 202; the activation goes on.
    let sleeper = "#!/bin/sh\nsleep 3\necho '{\"slept\": true}'\n";
    api.native("sleeper", &exec_zip(sleeper), json!({"timeout": 10000})).await;
    let started = std::time::Instant::now();
    let (status, body, _) = api.post("/namespaces/_/actions/sleeper?blocking=true&timeout=500", &json!({})).await;
    assert_eq!(status, 202);
    assert!(started.elapsed() < Duration::from_secs(2));
    let late = body["activationId"].as_str().unwrap().to_string();
    let (status, body, _) = api.post("/namespaces/_/actions/sleeper?blocking=true", &json!({})).await;
    assert_eq!(status, 202, "the emulator's own max wait (1.5 s here) applies too: {body}");
    let record = api.activation(&late).await;
    assert_eq!(record["response"]["result"], json!({"slept": true}));

    // Lists: newest first, summaries with statusCode, filters, docs.
    let (_, list) = api.get("/namespaces/_/activations?name=ok").await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["activationId"], id.as_str());
    assert_eq!(list[0]["statusCode"], 0);
    assert!(list[0].get("response").is_none() && list[0].get("logs").is_none());
    let (_, docs) = api.get("/namespaces/_/activations?name=ok&docs=true").await;
    assert_eq!(docs[0]["response"]["status"], "success");
    let start = record["start"].as_i64().unwrap();
    let (_, since) = api.get(&format!("/namespaces/_/activations?since={}", start + 1)).await;
    assert!(since.as_array().unwrap().iter().all(|a| a["start"].as_i64().unwrap() > start));
    let (_, upto) = api.get(&format!("/namespaces/_/activations?upto={}&limit=1", start)).await;
    assert_eq!(upto.as_array().unwrap().len(), 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_namespace_concurrency_limit_answers_429() {
    let emulator = emulator_with(|o| o.concurrent_limit = 2).await;
    let api = Api::new(&emulator);
    api.native("hold", &exec_zip("#!/bin/sh\nsleep 2\necho '{}'\n"), json!({})).await;
    for _ in 0..2 {
        assert_eq!(api.post("/namespaces/_/actions/hold", &json!({})).await.0, 202);
    }
    let (status, body, _) = api.post("/namespaces/_/actions/hold", &json!({})).await;
    assert_eq!(status, 429);
    assert_eq!(error_of(&body), "Too many concurrent requests in flight (count: 3, allowed: 2).");
    emulator.shutdown().await;
}

#[tokio::test]
async fn sequences_chain_results_and_record_their_components() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    api.native(
        "add",
        &exec_zip("#!/bin/sh\nsleep 0.2\nn=$(echo \"$1\" | sed 's/[^0-9]//g')\necho \"{\\\"n\\\": $((n + 1))}\"\n"),
        json!({}),
    )
    .await;
    api.native("fail", &exec_zip("#!/bin/sh\necho '{\"error\": \"stop here\"}'\n"), json!({})).await;
    let seq = json!({"exec": {"kind": "sequence", "components": ["/_/add", "/guest/add", "/_/add"]}});
    let (status, created) = api.put("/namespaces/_/actions/plus3", &seq).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["exec"]["components"], json!(["/guest/add", "/guest/add", "/guest/add"]));
    let (status, record) = api.invoke("plus3", &json!({"n": 1})).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["response"]["result"], json!({"n": 4}));
    assert_eq!(annotation(&record, "kind").unwrap(), "sequence");
    assert_eq!(annotation(&record, "topmost").unwrap(), true);
    let ids: Vec<String> = record["logs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 3);
    let mut spans = Vec::new();
    let mut total = 0;
    for id in &ids {
        let c = api.activation(id).await;
        assert_eq!(c["cause"], record["activationId"]);
        assert_eq!(annotation(&c, "causedBy").unwrap(), "sequence");
        spans.push((c["start"].as_i64().unwrap(), c["end"].as_i64().unwrap()));
        total += c["duration"].as_i64().unwrap();
    }
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "components do not overlap: {spans:?}");
    }
    assert_eq!(record["duration"].as_i64().unwrap(), total, "the sequence bills its components' time");
    assert!(record["start"].as_i64().unwrap() <= spans[0].0 && record["end"].as_i64().unwrap() >= spans[2].1);

    let seq = json!({"exec": {"kind": "sequence", "components": ["/_/add", "/_/fail", "/_/add"]}});
    api.put("/namespaces/_/actions/broken", &seq).await;
    let (status, record) = api.invoke("broken", &json!({"n": 1})).await;
    assert_eq!(status, 502);
    assert_eq!(record["response"]["result"], json!({"error": "stop here"}));
    assert_eq!(record["logs"].as_array().unwrap().len(), 2, "the error stops it");

    let (status, body) =
        api.put("/namespaces/_/actions/bad", &json!({"exec": {"kind": "sequence", "components": ["/_/nope"]}})).await;
    assert_eq!((status, error_of(&body)), (400, "Sequence component does not exist."));
    let (status, body) =
        api.put("/namespaces/_/actions/bad", &json!({"exec": {"kind": "sequence", "components": []}})).await;
    assert_eq!((status, error_of(&body)), (400, "No component specified for the sequence."));
    let (status, body) = api
        .put(
            "/namespaces/_/actions/plus3?overwrite=true",
            &json!({"exec": {"kind": "sequence", "components": ["/_/plus3"]}}),
        )
        .await;
    assert_eq!((status, error_of(&body)), (400, "Sequence may not refer to itself."));
    emulator.shutdown().await;
}

#[tokio::test]
async fn triggers_fire_their_active_rules() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    api.native("hello", &exec_zip(OK_SCRIPT), json!({})).await;
    let (status, t) =
        api.put("/namespaces/_/triggers/events", &json!({"parameters": [{"key": "type", "value": "webhook"}]})).await;
    assert_eq!(status, 200, "{t}");
    let (status, _, _) = api.post("/namespaces/_/triggers/events", &json!({"x": 1})).await;
    assert_eq!(status, 204, "no rule: nothing fires");

    let (status, rule) =
        api.put("/namespaces/_/rules/t2a", &json!({"trigger": "/_/events", "action": "/_/hello"})).await;
    assert_eq!(status, 200, "{rule}");
    assert_eq!(rule["status"], "active");
    assert_eq!(rule["trigger"], json!({"name": "events", "path": "guest"}));
    assert_eq!(rule["action"], json!({"name": "hello", "path": "guest"}));
    let (_, trigger) = api.get("/namespaces/_/triggers/events").await;
    assert_eq!(trigger["rules"]["guest/t2a"]["status"], "active");

    let (status, fired, headers) = api.post("/namespaces/_/triggers/events", &json!({"x": 1})).await;
    assert_eq!(status, 202);
    let trigger_id = fired["activationId"].as_str().unwrap();
    assert_eq!(headers["x-openwhisk-activation-id"], trigger_id);
    let record = api.activation(trigger_id).await;
    assert_eq!(record["name"], "events");
    assert_eq!(record["response"]["result"], json!({"x": 1}));
    let log: Value = serde_json::from_str(record["logs"][0].as_str().unwrap()).unwrap();
    assert_eq!(log["rule"], "guest/t2a");
    assert_eq!(log["action"], "guest/hello");
    assert_eq!(log["success"], true);
    let action_record = api.activation(log["activationId"].as_str().unwrap()).await;
    assert!(action_record.get("cause").is_none(), "rules invoke as ordinary invokes");
    let got = &action_record["response"]["result"]["got"];
    assert_eq!((got["type"].as_str(), got["x"].as_i64()), (Some("webhook"), Some(1)));
    assert!(got["__ow_headers"].is_object());

    let (status, _, _) = api.post("/namespaces/_/rules/t2a", &json!({"status": "inactive"})).await;
    assert_eq!(status, 200);
    assert_eq!(api.get("/namespaces/_/rules/t2a").await.1["status"], "inactive");
    assert_eq!(api.post("/namespaces/_/triggers/events", &json!({})).await.0, 204);
    let (status, body, _) = api.post("/namespaces/_/rules/t2a", &json!({"status": "sleepy"})).await;
    assert_eq!(status, 400, "{body}");
    let (_, rules) = api.get("/namespaces/_/rules").await;
    assert_eq!(rules.as_array().unwrap().len(), 1);
    let (status, body) = api.put("/namespaces/_/rules/r2", &json!({"trigger": "/_/nope", "action": "/_/hello"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = api.put("/namespaces/_/triggers/hello", &json!({})).await;
    assert_eq!(status, 409, "an action has that name");
    assert_eq!(api.delete("/namespaces/_/rules/t2a").await.0, 200);
    assert_eq!(api.delete("/namespaces/_/triggers/events").await.0, 200);
    let (_, list) = api.get("/namespaces/_/triggers").await;
    assert_eq!(list, json!([]));
    emulator.shutdown().await;
}
