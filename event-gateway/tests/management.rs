//! The management API over real HTTP on 127.0.0.1, backed by a real embedded store in a temporary directory.

use std::path::Path;
use std::sync::Arc;

use faas_gateway::management::{router, ManagementState};
use faas_gateway::registry::{Declared, FunctionRoute, RegistryHandle};
use faas_gateway::subscription::SubscriptionRequest;
use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
use reqwest::StatusCode;
use serde_json::{json, Value};

const TOKEN: &str = "test-management-token";

struct Server {
    base: String,
    store: Arc<EmbeddedStore>,
    task: tokio::task::JoinHandle<()>,
    client: reqwest::Client,
}

fn declared() -> Declared {
    let sub: SubscriptionRequest =
        serde_json::from_value(json!({"types": ["com.example.order.created"], "sink": "function:billing"})).unwrap();
    Declared {
        backends: ["dev".to_string(), "prod".to_string()].into_iter().collect(),
        functions: vec![FunctionRoute { name: "billing".into(), backend: "prod".into(), target: None }],
        subscriptions: vec![sub.validate("orders-to-billing".into()).unwrap()],
        file: "faas.toml".into(),
    }
}

async fn start(dir: &Path, declared: Declared, token: Option<&str>) -> Server {
    let store = EmbeddedStore::open(dir, EmbeddedOptions::default()).await.unwrap();
    let registry = RegistryHandle::open(store.clone(), declared).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(ManagementState { registry, token: token.map(str::to_string), addr });
    let base = format!("http://{addr}");
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server { base, store, task, client: reqwest::Client::new() }
}

impl Server {
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        self.store.shutdown().await;
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.client.get(self.url(path)).bearer_auth(TOKEN).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn send(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let r = self.client.delete(self.url(path)).bearer_auth(TOKEN).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn raw(&self, method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path)).bearer_auth(TOKEN).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn list(&self) -> Value {
        let (status, body) = self.get("/subscriptions").await;
        assert_eq!(status, StatusCode::OK);
        body
    }
}

#[tokio::test]
async fn the_token_is_required_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), declared(), Some(TOKEN)).await;
    for path in ["/subscriptions", "/subscriptions/orders-to-billing", "/functions", "/functions/billing"] {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("Authorization: Bearer"), "{body}");

        let r = s.client.get(s.url(path)).bearer_auth("wrong-token").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "wrong management token");
        assert!(!body.to_string().contains(TOKEN), "the token is never echoed");

        let r = s.client.get(s.url(path)).header("authorization", format!("Basic {TOKEN}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}: not a bearer token");

        let r = s.client.get(s.url(path)).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    // A write without the token changes nothing.
    let r = s.client.post(s.url("/subscriptions")).json(&json!({"sink": "http://127.0.0.1:9/"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.list().await.as_array().unwrap().len(), 1);

    let r = s.client.get(s.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the OpenAPI document is public");
    let doc: Value = r.json().await.unwrap();
    assert!(doc["paths"]["/subscriptions/{id}"]["put"].is_object());
    s.stop().await;
}

#[tokio::test]
async fn without_a_configured_token_the_api_is_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), declared(), None).await;
    let (status, body) = s.get("/subscriptions").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"].as_str().unwrap().contains("FAAS_GATEWAY_TOKEN"), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn subscriptions_are_created_read_listed_updated_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), declared(), Some(TOKEN)).await;

    let r = s
        .client
        .post(s.url("/subscriptions"))
        .bearer_auth(TOKEN)
        .json(&json!({
            "id": "ignored-on-create",
            "source": "https://example.com/shop",
            "types": ["com.example.refund"],
            "filters": [{"all": [{"prefix": {"subject": "eu/"}}, {"not": {"exact": {"region": "test"}}}]}],
            "sink": "https://hooks.example.com/refunds",
            "protocolsettings": {"headers": {"x-team": "payments"}},
            "delivery": {"retries": 3, "backoffBase": "500ms"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_ne!(id, "ignored-on-create");
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "ids are UUIDs: {id}");
    assert_eq!(location, format!("/subscriptions/{id}"));
    assert_eq!(created["origin"], "api");
    assert_eq!(created["protocol"], "HTTP");
    assert_eq!(created["delivery"], json!({"retries": 3, "backoffBase": "500ms"}));
    assert_eq!(created["filters"][0]["all"][1], json!({"not": {"exact": {"region": "test"}}}));

    let (status, fetched) = s.get(&location).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, created);

    let list = s.list().await;
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap()).collect();
    let mut want = vec![id.as_str(), "orders-to-billing"];
    want.sort();
    assert_eq!(ids, want);

    // Query filters.
    let (_, by_type) = s.get("/subscriptions?type=com.example.refund").await;
    assert_eq!(by_type.as_array().unwrap().len(), 1);
    assert_eq!(by_type[0]["id"], id.as_str());
    let (_, by_source) = s.get("/subscriptions?source=https://example.com/shop&type=com.example.order.created").await;
    assert_eq!(by_source, json!([]));
    let (status, body) = s.get("/subscriptions?kind=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("unknown query parameter `kind`"));

    // A retrieved subscription can be sent back as an update (id and origin are accepted).
    let mut changed = fetched.clone();
    changed["types"] = json!(["com.example.refund", "com.example.chargeback"]);
    let (status, updated) = s.send("PUT", &location, changed).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["id"], id.as_str());
    assert_eq!(updated["types"], json!(["com.example.refund", "com.example.chargeback"]));
    assert_eq!(s.get(&location).await.1, updated);

    let (status, body) = s.send("PUT", &location, json!({"id": "another", "sink": "function:billing"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "id");

    let (status, body) = s.delete(&location).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = s.get(&location).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], format!("no subscription `{id}`"));
    assert_eq!(s.delete(&location).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        s.send("PUT", "/subscriptions/nope", json!({"sink": "function:billing"})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(s.list().await.as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn bad_subscriptions_get_a_400_naming_the_problem_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), declared(), Some(TOKEN)).await;
    let (_, existing) =
        s.send("POST", "/subscriptions", json!({"types": ["a"], "sink": "http://127.0.0.1:9/hook"})).await;
    let existing_path = format!("/subscriptions/{}", existing["id"].as_str().unwrap());
    let before = s.list().await;

    // (body, expected field, expected message fragment)
    let cases: Vec<(Value, Option<&str>, &str)> = vec![
        (
            json!({"sink": "function:billing", "filters": [{"regex": {"type": ".*"}}]}),
            Some("filters[0]"),
            "unsupported filter dialect `regex`",
        ),
        (
            json!({"sink": "function:billing", "filters": [{"sql": "type = 'x'"}]}),
            Some("filters[0]"),
            "the `sql` (CESQL) dialect is not supported yet",
        ),
        (
            json!({"sink": "function:billing", "filters": [{"exact": {"type": "a"}}, {"exact": {"": "x"}}]}),
            Some("filters[1].exact"),
            "attribute name is empty",
        ),
        (
            json!({"sink": "function:billing", "filters": [{"all": []}]}),
            Some("filters[0].all"),
            "must hold at least one filter",
        ),
        (
            json!({"sink": "function:billing", "filters": [{"all": [{"any": []}]}]}),
            Some("filters[0].all[0].any"),
            "must hold at least one filter",
        ),
        (json!({"sink": "/relative/path"}), Some("sink"), "not an absolute URI"),
        (json!({"sink": "hooks.example.com"}), Some("sink"), "not an absolute URI"),
        (json!({"types": ["a"]}), Some("sink"), "is required"),
        (json!({"sink": "function:nope"}), Some("sink"), "function `nope` is not registered"),
        (json!({"sink": "function:billing", "protocol": "MQTT5"}), Some("protocol"), "not supported by this gateway"),
        (json!({"sink": "function:billing", "types": [""]}), Some("types[0]"), "must not be empty"),
        (json!({"sink": "function:billing", "filter": []}), Some("filter"), "unknown field `filter`"),
        (json!({"sink": "function:billing", "delivery": {"retries": 1000}}), Some("delivery.retries"), "limit of 100"),
        (json!({"sink": 42}), Some("sink"), "invalid type"),
        (json!(["not", "an", "object"]), None, "expected a JSON subscription object"),
    ];
    for (body, field, message) in &cases {
        for (method, path) in [("POST", "/subscriptions"), ("PUT", existing_path.as_str())] {
            let (status, answer) = s.send(method, path, body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {body}: {answer}");
            assert!(answer["error"].as_str().unwrap().contains(message), "{method} {body}: {answer}");
            assert_eq!(answer["field"].as_str(), *field, "{method} {body}: {answer}");
        }
    }

    let (status, answer) = s.raw("POST", "/subscriptions", Some("application/json"), b"{\"sink\": ".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().starts_with("malformed JSON"), "{answer}");
    let (status, answer) = s.raw("POST", "/subscriptions", Some("application/json"), Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("request body is empty"), "{answer}");
    let (status, answer) = s.raw("POST", "/subscriptions", Some("text/plain"), b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(answer["error"].as_str().unwrap().contains("text/plain"), "{answer}");
    let huge =
        serde_json::to_vec(&json!({"sink": "function:billing", "config": {"pad": "x".repeat(70 * 1024)}})).unwrap();
    let (status, answer) = s.raw("POST", "/subscriptions", Some("application/json"), huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer["error"].as_str().unwrap().contains("65536"), "{answer}");

    assert_eq!(s.list().await, before, "no bad request changed anything");
    s.stop().await;
}

#[tokio::test]
async fn functions_are_managed_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), declared(), Some(TOKEN)).await;

    let r = s
        .client
        .post(s.url("/functions"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "audit", "backend": "dev"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["location"], "/functions/audit");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"name": "audit", "backend": "dev", "origin": "api"}));

    let (status, body) = s.send("POST", "/functions", json!({"name": "audit", "backend": "dev"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().unwrap().contains("already exists"), "{body}");
    let (status, body) = s.send("POST", "/functions", json!({"name": "x", "backend": "azure"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "unknown backend profile `azure`; known profiles: dev, prod", "field": "backend"})
    );
    let (status, body) = s.send("POST", "/functions", json!({"name": "a/b", "backend": "dev"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "name");
    assert!(body["error"].as_str().unwrap().contains("contains `/`"), "{body}");
    let (status, body) = s.send("POST", "/functions", json!({"name": "y"})).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("backend")));

    let (status, body) = s.send("PUT", "/functions/audit", json!({"backend": "prod", "target": "audit-v2"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        s.get("/functions/audit").await.1,
        json!({"name": "audit", "backend": "prod", "target": "audit-v2", "origin": "api"})
    );

    let (status, sub) = s.send("POST", "/subscriptions", json!({"sink": "function:audit"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = s.delete("/functions/audit").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().unwrap().contains(sub["id"].as_str().unwrap()), "{body}");

    s.delete(&format!("/subscriptions/{}", sub["id"].as_str().unwrap())).await;
    assert_eq!(s.delete("/functions/audit").await.0, StatusCode::NO_CONTENT);
    assert_eq!(s.get("/functions/audit").await.0, StatusCode::NOT_FOUND);
    let (_, list) = s.get("/functions").await;
    assert_eq!(list, json!([{"name": "billing", "backend": "prod", "origin": "config"}]));
    s.stop().await;
}

#[tokio::test]
async fn changes_survive_a_reopen_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), declared(), Some(TOKEN)).await;
    let (_, f) = s.send("POST", "/functions", json!({"name": "audit", "backend": "dev", "target": "audit-fn"})).await;
    let (_, kept) = s
        .send("POST", "/subscriptions", json!({"sink": "function:audit", "filters": [{"suffix": {"type": ".x"}}]}))
        .await;
    let (_, gone) = s.send("POST", "/subscriptions", json!({"sink": "http://127.0.0.1:9/"})).await;
    s.delete(&format!("/subscriptions/{}", gone["id"].as_str().unwrap())).await;
    let before = s.list().await;
    s.stop().await;

    let s = start(dir.path(), declared(), Some(TOKEN)).await;
    assert_eq!(s.list().await, before);
    assert_eq!(s.get(&format!("/subscriptions/{}", kept["id"].as_str().unwrap())).await.1, kept);
    assert_eq!(s.get(&format!("/subscriptions/{}", gone["id"].as_str().unwrap())).await.0, StatusCode::NOT_FOUND);
    assert_eq!(s.get("/functions/audit").await.1, f);
    s.stop().await;
}

#[tokio::test]
async fn entries_declared_in_faas_toml_cannot_be_changed_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), declared(), Some(TOKEN)).await;
    let (status, sub) = s.get("/subscriptions/orders-to-billing").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sub["origin"], "config");
    let before = s.list().await;

    let (status, body) = s.delete("/subscriptions/orders-to-billing").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("declared in faas.toml") && message.contains("id = \"orders-to-billing\""), "{message}");
    let (status, _) = s.send("PUT", "/subscriptions/orders-to-billing", json!({"sink": "http://127.0.0.1:9/"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = s.send("PUT", "/subscriptions/orders-to-billing", json!({"sink": "not a uri"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a declared entry answers 409 whatever the body");
    let (status, body) = s.delete("/functions/billing").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().unwrap().contains("[gateway.functions.billing]"), "{body}");
    let (status, _) = s.send("PUT", "/functions/billing", json!({"backend": "dev"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = s.send("POST", "/functions", json!({"name": "billing", "backend": "dev"})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    assert_eq!(s.list().await, before);
    assert_eq!(s.get("/functions/billing").await.1["backend"], "prod");
    s.stop().await;

    // Declared entries are not written to the store: without them after a restart, they are gone.
    let s = start(dir.path(), Declared { backends: declared().backends, ..Default::default() }, Some(TOKEN)).await;
    assert_eq!(s.list().await, json!([]));
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------------------
// The OpenAPI document and the server agree on every request body.
//
// A real gateway (`faas_gateway::start`, every route, a real store) serves its document; the test walks the
// request-body schemas of the management operations and, for each property, builds bodies that satisfy or
// violate each of its rules (boundary lengths, strings generated from and mutated away from its pattern,
// out-of-range numbers, wrong types, `null`, missing, unknown fields, maps and arrays at their limits). The
// document itself is the oracle: a small JSON Schema validator says whether each body is valid, and the server
// must accept exactly those (2xx) and refuse the others (400). The only exceptions are the rules the document
// states in words because they depend on state (a `function:NAME` sink must name a registered function, an
// update's `id`/`name` must equal the path, a taken name is a 409). A rule added to one side only makes the
// two disagree on some generated body, and the test lists those bodies. A keyword the validator does not know
// fails the test, so a new kind of rule in the document cannot go unchecked.

mod conformance {
    use std::collections::BTreeSet;

    use rand::rngs::StdRng;
    use rand::Rng;
    use regex_syntax::hir::{Class, Hir, HirKind};
    use serde_json::{json, Map, Value};

    /// Keywords that only annotate.
    const ANNOTATIONS: [&str; 7] =
        ["description", "examples", "default", "title", "format", "contentEncoding", "readOnly"];

    pub struct Doc<'a>(pub &'a Value);

    impl Doc<'_> {
        pub fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    let target =
                        self.0.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling $ref {r}"));
                    self.resolve(target)
                }
                None => schema,
            }
        }

        /// JSON Schema 2020-12 validation, for the keywords the gateway's document uses.
        pub fn valid(&self, schema: &Value, v: &Value) -> bool {
            let schema = self.resolve(schema);
            let Some(obj) = schema.as_object() else { return schema.as_bool().unwrap_or(true) };
            obj.iter().all(|(k, s)| self.keyword(k, s, obj, v))
        }

        fn keyword(&self, key: &str, s: &Value, obj: &Map<String, Value>, v: &Value) -> bool {
            let chars = |v: &Value| v.as_str().map(|t| t.chars().count());
            let num = |s: &Value| s.as_f64().unwrap();
            match key {
                k if ANNOTATIONS.contains(&k) => true,
                "type" => match s {
                    Value::String(t) => type_is(t, v),
                    Value::Array(ts) => ts.iter().any(|t| type_is(t.as_str().unwrap(), v)),
                    _ => panic!("bad type {s}"),
                },
                "enum" => s.as_array().unwrap().contains(v),
                "const" => s == v,
                "not" => !self.valid(s, v),
                "anyOf" => s.as_array().unwrap().iter().any(|b| self.valid(b, v)),
                "oneOf" => s.as_array().unwrap().iter().filter(|b| self.valid(b, v)).count() == 1,
                "if" => !self.valid(s, v) || obj.get("then").is_none_or(|t| self.valid(t, v)),
                "then" => true,
                "minLength" => chars(v).is_none_or(|n| n as f64 >= num(s)),
                "maxLength" => chars(v).is_none_or(|n| n as f64 <= num(s)),
                "pattern" => v.as_str().is_none_or(|t| regex::Regex::new(s.as_str().unwrap()).unwrap().is_match(t)),
                "minimum" => v.as_f64().is_none_or(|n| n >= num(s)),
                "maximum" => v.as_f64().is_none_or(|n| n <= num(s)),
                "minItems" => v.as_array().is_none_or(|a| a.len() as f64 >= num(s)),
                "maxItems" => v.as_array().is_none_or(|a| a.len() as f64 <= num(s)),
                "items" => v.as_array().is_none_or(|a| a.iter().all(|i| self.valid(s, i))),
                "minProperties" => v.as_object().is_none_or(|o| o.len() as f64 >= num(s)),
                "maxProperties" => v.as_object().is_none_or(|o| o.len() as f64 <= num(s)),
                "required" => v
                    .as_object()
                    .is_none_or(|o| s.as_array().unwrap().iter().all(|r| o.contains_key(r.as_str().unwrap()))),
                "properties" => v.as_object().is_none_or(|o| {
                    s.as_object().unwrap().iter().all(|(p, ps)| o.get(p).is_none_or(|pv| self.valid(ps, pv)))
                }),
                "propertyNames" => {
                    v.as_object().is_none_or(|o| o.keys().all(|k| self.valid(s, &Value::String(k.clone()))))
                }
                "additionalProperties" => v.as_object().is_none_or(|o| {
                    let declared = obj.get("properties").and_then(Value::as_object);
                    o.iter()
                        .filter(|(k, _)| declared.is_none_or(|d| !d.contains_key(*k)))
                        .all(|(_, pv)| self.valid(s, pv))
                }),
                other => panic!("the conformance test does not know the JSON Schema keyword `{other}`: teach it"),
            }
        }
    }

    fn type_is(t: &str, v: &Value) -> bool {
        match t {
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            "string" => v.is_string(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            "number" => v.is_number(),
            "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
            other => panic!("unknown type {other}"),
        }
    }

    /// A random string matching `pattern`; `long` favours the longest repetitions.
    pub fn from_pattern(pattern: &str, rng: &mut StdRng, long: bool) -> String {
        let hir = regex_syntax::Parser::new().parse(pattern).unwrap();
        let mut out = String::new();
        generate(&hir, rng, long, &mut out);
        out
    }

    fn generate(h: &Hir, rng: &mut StdRng, long: bool, out: &mut String) {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) => {}
            HirKind::Literal(l) => out.push_str(std::str::from_utf8(&l.0).unwrap()),
            HirKind::Class(Class::Unicode(c)) => {
                let r = c.ranges()[rng.gen_range(0..c.ranges().len())];
                let (lo, hi) = (r.start() as u32, r.end() as u32);
                loop {
                    // Favour the ASCII part of wide classes, so that generated strings stay readable.
                    let hi = if hi > 0x7f && lo < 0x7f && rng.gen_bool(0.7) { 0x7f } else { hi };
                    if let Some(ch) = char::from_u32(rng.gen_range(lo..=hi)) {
                        out.push(ch);
                        break;
                    }
                }
            }
            HirKind::Class(Class::Bytes(c)) => {
                let r = c.ranges()[rng.gen_range(0..c.ranges().len())];
                out.push(char::from(rng.gen_range(r.start()..=r.end())));
            }
            HirKind::Repetition(r) => {
                let max = r.max.unwrap_or(r.min + 6);
                let n = if long || rng.gen_bool(0.25) { max } else { rng.gen_range(r.min..=max) };
                for _ in 0..n {
                    generate(&r.sub, rng, long, out);
                }
            }
            HirKind::Capture(c) => generate(&c.sub, rng, long, out),
            HirKind::Concat(v) => v.iter().for_each(|h| generate(h, rng, long, out)),
            HirKind::Alternation(v) => generate(&v[rng.gen_range(0..v.len())], rng, long, out),
        }
    }

    /// Strings near `s` that a careless pattern might let through.
    fn mutations(s: &str, rng: &mut StdRng) -> Vec<String> {
        const ODD: [&str; 16] =
            [" ", "\n", "\t", "\0", "/", "@", "%", "é", "_", "-", ":", ".", "A", "0", "[", "\u{7f}"];
        let mut out = vec![format!("{s} "), format!(" {s}"), format!("{s}\n"), s.to_uppercase(), String::new()];
        let chars: Vec<char> = s.chars().collect();
        out.push(chars[..chars.len() / 2].iter().collect());
        for _ in 0..6 {
            if chars.is_empty() {
                break;
            }
            let at = rng.gen_range(0..chars.len());
            let odd = ODD[rng.gen_range(0..ODD.len())];
            let mut m: String = chars[..at].iter().collect();
            m.push_str(odd);
            m.extend(&chars[at + usize::from(rng.gen_bool(0.5))..]);
            out.push(m);
        }
        out
    }

    /// Values to try for a property with schema `schema`: some valid, some not; the validator decides which.
    pub fn candidates(doc: &Doc, schema: &Value, rng: &mut StdRng, depth: usize) -> Vec<Value> {
        let schema = doc.resolve(schema);
        let mut out = vec![Value::Null, json!(7), json!(true), json!("x"), json!([]), json!({})];
        out.extend(schema.get("examples").and_then(Value::as_array).cloned().unwrap_or_default());
        if depth > 3 {
            return out;
        }
        for key in ["anyOf", "oneOf"] {
            for branch in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
                out.extend(candidates(doc, branch, rng, depth + 1));
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            out.extend(values.iter().cloned());
            out.push(json!("NOT-A-MEMBER"));
            out.extend(values.iter().filter_map(Value::as_str).map(|v| json!(v.to_lowercase())));
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if types.contains(&"string") {
            out.extend(strings(schema, rng).into_iter().map(Value::String));
        }
        if types.contains(&"integer") {
            let lo = schema["minimum"].as_i64().unwrap_or(-5);
            let hi = schema["maximum"].as_i64().unwrap_or(1000);
            out.extend([lo - 1, lo, hi, hi + 1, rng.gen_range(lo..=hi), -1].map(|n| json!(n)));
            out.extend([json!(2.5), json!("3"), json!(u64::MAX)]);
        }
        if types.contains(&"array") {
            let items = candidates(doc, &schema["items"], rng, depth + 1);
            let good: Vec<Value> = items.iter().filter(|i| doc.valid(&schema["items"], i)).cloned().collect();
            let max = schema["maxItems"].as_u64().unwrap_or(4) as usize;
            if let Some(g) = good.first() {
                out.push(json!(good.clone()));
                out.push(Value::Array(vec![g.clone(); max]));
                out.push(Value::Array(vec![g.clone(); max + 1]));
            }
            for bad in items.iter().filter(|i| !doc.valid(&schema["items"], i)).take(6) {
                out.push(json!([good.first().cloned().unwrap_or(Value::Null), bad]));
            }
        }
        if types.contains(&"object") {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, ps) in props {
                    for c in candidates(doc, ps, rng, depth + 1) {
                        out.push(json!({ name: c }));
                    }
                }
            }
            out.push(json!({"zz_unknown_field": "x"}));
            if let Some(names) = schema.get("propertyNames") {
                let values = schema.get("additionalProperties").filter(|a| a.is_object()).cloned().unwrap_or(json!({}));
                let value_candidates = candidates(doc, &values, rng, depth + 1);
                let good_value = value_candidates.iter().find(|c| doc.valid(&values, c)).cloned().unwrap_or(json!("v"));
                let mut keys = strings(names, rng);
                keys.extend(
                    ["content-type", "Content-Length", "ce-id", "CE-Source", "TraceParent", "x-team", ""]
                        .map(String::from),
                );
                for key in &keys {
                    out.push(json!({ key: good_value.clone() }));
                }
                let good_key = keys.iter().find(|k| doc.valid(names, &json!(k))).cloned().unwrap_or("k".into());
                for v in value_candidates {
                    out.push(json!({ good_key.clone(): v }));
                }
                let max = schema["maxProperties"].as_u64().unwrap_or(4) as usize;
                for n in [max, max + 1] {
                    let m: Map<String, Value> =
                        (0..n).map(|i| (format!("{good_key}{i}"), good_value.clone())).collect();
                    out.push(Value::Object(m));
                }
            }
        }
        out
    }

    fn strings(schema: &Value, rng: &mut StdRng) -> Vec<String> {
        let min = schema["minLength"].as_u64().map(|n| n as usize);
        let max = schema["maxLength"].as_u64().map(|n| n as usize);
        let mut out = Vec::new();
        let mut base = vec!["a".to_string(), "é".to_string()];
        if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
            base = (0..6).map(|i| from_pattern(p, rng, i == 0)).collect();
            base.extend(
                schema["examples"].as_array().into_iter().flatten().filter_map(Value::as_str).map(String::from),
            );
            for s in base.clone() {
                out.extend(mutations(&s, rng));
            }
        }
        out.extend(base.iter().cloned());
        for n in [min, max].into_iter().flatten().flat_map(|n| [n.saturating_sub(1), n, n + 1]) {
            for s in base.iter().take(3) {
                let pad = if s.contains("://") && !s.get(8..).unwrap_or("/").contains('/') { "/" } else { "" };
                let mut t: String = format!("{s}{pad}");
                let fill = if s.ends_with('é') { 'é' } else { 'a' };
                while t.chars().count() < n {
                    t.push(fill);
                }
                if t.chars().count() > n {
                    t = t.chars().take(n).collect();
                }
                out.push(t);
            }
        }
        out
    }

    /// The state rules the document states in words: why the server refuses a body the schema allows.
    pub fn refused_by_state(body: &Value, registered: &BTreeSet<String>, path_key: Option<(&str, &str)>) -> bool {
        let unregistered = |v: &Value| {
            v.as_str().and_then(|s| s.strip_prefix("function:")).is_some_and(|name| !registered.contains(name))
        };
        let mismatch = path_key.is_some_and(|(field, value)| body[field].as_str().is_some_and(|given| given != value));
        unregistered(&body["sink"]) || unregistered(&body["delivery"]["deadletter"]) || mismatch
    }
}

#[tokio::test]
async fn the_server_accepts_exactly_the_request_bodies_its_openapi_document_allows() {
    use conformance::{candidates, refused_by_state, Doc};
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    let dir = tempfile::tempdir().unwrap();
    let mut config = faas_gateway::config::GatewayConfig {
        data_dir: dir.path().to_path_buf(),
        token: Some(TOKEN.into()),
        ..Default::default()
    };
    config.functions = vec![FunctionRoute { name: "billing".into(), backend: "dev".into(), target: None }];
    let backends =
        ["dev", "prod"].map(|n| (n.to_string(), faas_api::BackendProfile::new(n, "local"))).into_iter().collect();
    let gateway = faas_gateway::start(faas_gateway::GatewayOptions {
        config,
        backends,
        runners: faas_api::Registry::new(),
        bind: Some("127.0.0.1:0".parse().unwrap()),
    })
    .await
    .unwrap();
    let base = format!("http://{}", gateway.addr());
    let client = reqwest::Client::new();
    let doc: Value = client.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["servers"][0]["url"], base, "the document names the address the gateway is bound to");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["BackendName"]["enum"], json!(["dev", "local", "prod"]), "the gateway's backend profiles");
    let validator = Doc(&doc);

    let seed: u64 = std::env::var("FAAS_CONFORMANCE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let send = |method: &str, path: &str, body: &Value| {
        client.request(method.parse().unwrap(), format!("{base}{path}")).bearer_auth(TOKEN).json(body).send()
    };
    // A subscription and a function to replace with PUT.
    let (status, sub) = {
        let r = send("POST", "/subscriptions", &json!({"sink": "function:billing"})).await.unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, StatusCode::CREATED);
    let sub_id = sub["id"].as_str().unwrap().to_string();
    assert_eq!(send("POST", "/functions", &json!({"name": "conf", "backend": "dev"})).await.unwrap().status(), 201);

    // (method, path, the operation's schema, the body field bound to the path)
    let sub_path = format!("/subscriptions/{sub_id}");
    let operations = [
        ("POST", "/subscriptions".to_string(), "/paths/~1subscriptions/post", None),
        ("PUT", sub_path.clone(), "/paths/~1subscriptions~1{id}/put", Some(("id", sub_id.as_str()))),
        ("POST", "/functions".to_string(), "/paths/~1functions/post", None),
        ("PUT", "/functions/conf".to_string(), "/paths/~1functions~1{name}/put", Some(("name", "conf"))),
    ];
    let (mut checked, mut accepted) = (0usize, 0usize);
    let mut disagreements = Vec::new();
    for (method, path, pointer, path_key) in &operations {
        let op = doc.pointer(pointer).unwrap_or_else(|| panic!("{pointer} is not documented"));
        let schema = validator.resolve(&op["requestBody"]["content"]["application/json"]["schema"]).clone();
        let examples = schema["examples"].as_array().expect("each request schema has examples").clone();
        let mut bases = examples.clone();
        if schema["properties"].get("sink").is_some() {
            bases.push(json!({"sink": "function:billing"}));
        }
        let mut bodies: Vec<Value> = examples.clone();
        for base_body in &bases {
            assert!(validator.valid(&schema, base_body), "{pointer}: example {base_body} is invalid");
            for (name, property) in schema["properties"].as_object().unwrap() {
                let mut without = base_body.clone();
                without.as_object_mut().unwrap().remove(name);
                bodies.push(without);
                for candidate in candidates(&validator, property, &mut rng, 0) {
                    let mut body = base_body.clone();
                    body[name] = candidate;
                    bodies.push(body);
                }
            }
            let mut extra = base_body.clone();
            extra["zz_unknown_field"] = json!(1);
            bodies.push(extra);
        }
        let registered: BTreeSet<String> = ["billing", "conf"].map(String::from).into();
        for body in bodies {
            let documented = validator.valid(&schema, &body);
            let expected = documented && !refused_by_state(&body, &registered, *path_key);
            let name_taken = *method == "POST"
                && *path == "/functions"
                && body["name"].as_str().is_some_and(|n| registered.contains(n));
            let response = send(method, path, &body).await.unwrap();
            let status = response.status();
            let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_string());
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            checked += 1;
            let agrees = match status.as_u16() {
                200 | 201 => expected,
                409 => expected && name_taken,
                400 => !expected && answer["error"].as_str().is_some_and(|e| !e.is_empty()),
                _ => false,
            };
            if !agrees {
                disagreements.push(format!(
                    "{method} {path} {body}: document says {}, server answered {status} {answer}",
                    if documented { "valid" } else { "invalid" }
                ));
            }
            if let (Some(location), true) = (location, *method == "POST") {
                accepted += 1;
                let r = client.delete(format!("{base}{location}")).bearer_auth(TOKEN).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::NO_CONTENT, "{location}");
            } else if status.is_success() {
                accepted += 1;
            }
            // Leave the PUT targets as the next body expects them.
            if *method == "PUT" && status.is_success() && *path == "/functions/conf" {
                send("PUT", path, &json!({"backend": "dev"})).await.unwrap();
            }
        }
    }
    eprintln!("seed {seed}: {checked} bodies checked, {accepted} accepted, {} disagreements", disagreements.len());
    assert!(accepted > 50 && checked - accepted > 200, "both sides are exercised: {accepted} of {checked} accepted");
    assert!(
        disagreements.is_empty(),
        "{} of {checked} bodies: the server and its OpenAPI document disagree:\n{}",
        disagreements.len(),
        disagreements.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
    gateway.shutdown().await;
}
