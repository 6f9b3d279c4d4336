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
    let app = router(ManagementState { registry, token: token.map(str::to_string) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
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
