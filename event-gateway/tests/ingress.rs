//! Ingress: the three CloudEvents HTTP modes end to end, and every bad input refused with a status and a
//! message naming the problem, storing and delivering nothing.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;

fn config(sink: &str) -> String {
    format!(
        r#"
[gateway]
max_event_bytes = 65536
[gateway.delivery]
retries = 0
[[gateway.subscriptions]]
id = "everything"
sink = "{sink}"
protocol = "HTTP"
"#
    )
}

#[tokio::test]
async fn binary_structured_and_batch_arrive_in_binary_mode_with_the_same_attributes_and_data() {
    let sink = RecordingSink::ok().await;
    let gw = start_gateway(&config(&sink.url())).await;
    let http = client();

    // Binary mode, percent-encoded header, an extension, JSON data.
    let response = http
        .post(format!("{}/", gw.url))
        .header("ce-specversion", "1.0")
        .header("ce-id", "b-1")
        .header("ce-source", "/orders")
        .header("ce-type", "com.example.order.created")
        .header("ce-subject", "Euro%20%E2%82%AC")
        .header("ce-myext", "forty-two")
        .header("content-type", "application/json")
        .body(r#"{"total":12}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"accepted": 1, "duplicates": 0}));

    // Structured mode with data_base64 (binary data) and an extension.
    let raw = [0u8, 159, 146, 150, 255];
    let structured = serde_json::json!({
        "specversion": "1.0", "id": "s-1", "source": "/files", "type": "com.example.file",
        "datacontenttype": "application/octet-stream", "fileext": "bin",
        "data_base64": base64::engine::general_purpose::STANDARD.encode(raw),
    });
    let (status, _) = post_structured(&gw.url, &structured).await;
    assert_eq!(status, 202);

    // Batch mode: two events, text data and JSON data.
    let batch = serde_json::json!([
        {"specversion": "1.0", "id": "t-1", "source": "/batch", "type": "text", "datacontenttype": "text/plain", "data": "hello there"},
        {"specversion": "1.0", "id": "t-2", "source": "/batch", "type": "json", "data": {"n": [1, 2]}},
    ]);
    let response = http
        .post(format!("{}/", gw.url))
        .header("content-type", "application/cloudevents-batch+json; charset=utf-8")
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 2);

    let got = sink.wait_for(4, Duration::from_secs(20)).await;
    let by_id = |id: &str| got.iter().find(|r| r.ce_id() == id).unwrap_or_else(|| panic!("{id} not delivered"));

    let b = by_id("b-1");
    assert_eq!(b.header("ce-specversion"), Some("1.0"));
    assert_eq!(b.header("ce-source"), Some("/orders"));
    assert_eq!(b.header("ce-type"), Some("com.example.order.created"));
    assert_eq!(b.header("ce-subject"), Some("Euro%20%E2%82%AC"));
    assert_eq!(b.header("ce-myext"), Some("forty-two"));
    assert_eq!(b.header("content-type"), Some("application/json"));
    assert!(b.header("ce-datacontenttype").is_none(), "binary mode carries datacontenttype as Content-Type");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&b.body).unwrap(), serde_json::json!({"total": 12}));

    let s = by_id("s-1");
    assert_eq!(s.header("ce-source"), Some("/files"));
    assert_eq!(s.header("ce-fileext"), Some("bin"));
    assert_eq!(s.header("content-type"), Some("application/octet-stream"));
    assert_eq!(&s.body[..], &raw, "data_base64 arrives as the raw bytes");

    let t1 = by_id("t-1");
    assert_eq!(t1.header("content-type"), Some("text/plain"));
    assert_eq!(&t1.body[..], b"hello there");
    let t2 = by_id("t-2");
    assert_eq!(t2.header("ce-type"), Some("json"));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&t2.body).unwrap(), serde_json::json!({"n": [1, 2]}));

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 4, "each event delivered once");
    gw.gateway.shutdown().await;
}

struct Case {
    name: &'static str,
    content_type: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
    status: u16,
    says: &'static str,
}

fn structured_case(name: &'static str, body: serde_json::Value, says: &'static str) -> Case {
    Case {
        name,
        content_type: "application/cloudevents+json",
        headers: vec![],
        body: body.to_string(),
        status: 400,
        says,
    }
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_problem_and_nothing_is_stored_or_delivered() {
    let sink = RecordingSink::ok().await;
    let gw = start_gateway(&config(&sink.url())).await;
    let http = client();
    let full = |drop: &str| {
        let mut e = serde_json::json!({"specversion": "1.0", "id": "bad", "source": "/s", "type": "t"});
        e.as_object_mut().unwrap().remove(drop);
        e
    };
    let binary_headers = vec![("ce-specversion", "1.0"), ("ce-id", "bad-bin"), ("ce-source", "/s"), ("ce-type", "t")];
    let mut cases = vec![
        structured_case("missing id", full("id"), "`id`"),
        structured_case("missing source", full("source"), "`source`"),
        structured_case("missing type", full("type"), "`type`"),
        structured_case("missing specversion", full("specversion"), "`specversion`"),
        structured_case(
            "bad specversion",
            serde_json::json!({"specversion": "0.3", "id": "1", "source": "/s", "type": "t"}),
            "unsupported specversion `0.3`",
        ),
        structured_case(
            "upper-case attribute name",
            serde_json::json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "myExt": "x"}),
            "`myExt`",
        ),
        structured_case(
            "data and data_base64",
            serde_json::json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data": 1, "data_base64": "AA=="}),
            "both `data` and `data_base64`",
        ),
        Case {
            name: "batch mixing spec versions",
            content_type: "application/cloudevents-batch+json",
            headers: vec![],
            body: serde_json::json!([
                {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"},
                {"specversion": "0.3", "id": "2", "source": "/s", "type": "t"}
            ])
            .to_string(),
            status: 400,
            says: "mixes spec versions",
        },
        Case {
            name: "batch with one bad event",
            content_type: "application/cloudevents-batch+json",
            headers: vec![],
            body: serde_json::json!([
                {"specversion": "1.0", "id": "ok-in-bad-batch", "source": "/s", "type": "t"},
                {"specversion": "1.0", "id": "2", "source": "/s"}
            ])
            .to_string(),
            status: 400,
            says: "batch event 1",
        },
        Case {
            name: "bad percent-encoding",
            content_type: "text/plain",
            headers: [binary_headers.clone(), vec![("ce-subject", "50%ZZ")]].concat(),
            body: "x".into(),
            status: 400,
            says: "ce-subject",
        },
        Case {
            name: "binary missing ce-source",
            content_type: "text/plain",
            headers: vec![("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-type", "t")],
            body: "x".into(),
            status: 400,
            says: "`source`",
        },
        Case {
            name: "malformed JSON",
            content_type: "application/cloudevents+json",
            headers: vec![],
            body: "{not json".into(),
            status: 400,
            says: "malformed",
        },
        Case {
            name: "unsupported format",
            content_type: "application/cloudevents+avro",
            headers: vec![],
            body: "whatever".into(),
            status: 415,
            says: "unsupported CloudEvents format",
        },
        Case {
            name: "oversize (Content-Length)",
            content_type: "text/plain",
            headers: binary_headers.clone(),
            body: "x".repeat(70 * 1024),
            status: 413,
            says: "limit of 65536 bytes",
        },
    ];
    for case in cases.drain(..) {
        let mut request = http.post(format!("{}/", gw.url)).header("content-type", case.content_type).body(case.body);
        for (k, v) in &case.headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body["error"].as_str().unwrap_or_default().to_string();
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert!(message.contains(case.says), "{}: message {message:?} should mention {:?}", case.name, case.says);
    }

    // Oversize without Content-Length (chunked): refused once the limit is passed.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..80).map(|_| Ok(vec![b'x'; 1024])).collect();
    let mut request = http
        .post(format!("{}/", gw.url))
        .header("content-type", "text/plain")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)));
    for (k, v) in &binary_headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 413);

    // Nothing above was stored: the first event delivered is the good one posted now, and it is alone.
    let (status, _) = post_structured(&gw.url, &event("good", "t")).await;
    assert_eq!(status, 202);
    let got = sink.wait_for(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<String> = sink.received().iter().map(|r| r.ce_id()).collect();
    assert_eq!(ids, vec!["good".to_string()], "only the valid event was delivered (got {})", got.len());
    let metrics = http.get(format!("{}/metrics", gw.url)).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric(&metrics, "faas_gateway_events_received_total"), 1.0, "{metrics}");
    gw.gateway.shutdown().await;
}

/// One invalid attribute value and what the refusal must say (the attribute, and the rule it breaks).
struct BadValue {
    name: &'static str,
    /// Merged over a valid structured event.
    attributes: serde_json::Value,
    says: &'static [&'static str],
}

fn bad_values() -> Vec<BadValue> {
    use serde_json::json;
    let case = |name, attributes, says| BadValue { name, attributes, says };
    vec![
        case("data_base64 not base64", json!({"data_base64": "%%%"}), &["`data_base64`", "base64", "RFC 4648"]),
        case("data_base64 a number", json!({"data_base64": 5}), &["`data_base64`", "base64"]),
        case("time not a timestamp", json!({"time": "yesterday"}), &["`time`", "RFC 3339", "`yesterday`"]),
        case("time a number", json!({"time": 1700000000}), &["`time`", "RFC 3339"]),
        case("dataschema not a URI", json!({"dataschema": "not a uri"}), &["`dataschema`", "absolute URI"]),
        case("dataschema relative", json!({"dataschema": "/schema.json"}), &["`dataschema`", "absolute URI"]),
        case("extension an object", json!({"myext": {"a": 1}}), &["`myext`", "a string, a boolean or an integer"]),
        case("extension a fraction", json!({"myext": 1.5}), &["`myext`", "a string, a boolean or an integer"]),
        case("extension over int32", json!({"myext": 3_000_000_000_i64}), &["`myext`", "2147483647"]),
        case("datacontenttype a number", json!({"datacontenttype": 5}), &["`datacontenttype`", "string"]),
        case(
            "datacontenttype not a media type",
            json!({"datacontenttype": "json"}),
            &["`datacontenttype`", "media type"],
        ),
        case("id a number", json!({"id": 5}), &["`id`", "non-empty string"]),
        case("type a boolean", json!({"type": true}), &["`type`", "non-empty string"]),
        case("source a number", json!({"source": 5}), &["`source`", "URI-reference"]),
        case("source with a space", json!({"source": "/my shop"}), &["`source`", "URI-reference"]),
        case("specversion a number", json!({"specversion": 1.0}), &["`specversion`", "`1.0`"]),
        case("subject empty", json!({"subject": ""}), &["`subject`", "non-empty string"]),
        case("subject an array", json!({"subject": ["a"]}), &["`subject`", "string"]),
        case(
            "object data with a text datacontenttype",
            json!({"datacontenttype": "text/plain", "data": {"a": 1}}),
            &["`data`", "string", "text/plain"],
        ),
    ]
}

fn with(attributes: &serde_json::Value, id: &str) -> serde_json::Value {
    let mut e = serde_json::json!({"specversion": "1.0", "id": id, "source": "/s", "type": "t"});
    for (k, v) in attributes.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

async fn refusal(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["error"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn invalid_attribute_values_are_refused_naming_the_attribute_and_the_rule_in_every_mode() {
    let sink = RecordingSink::ok().await;
    let gw = start_gateway(&config(&sink.url())).await;
    let http = client();
    let post = |content_type: &'static str, body: String| {
        http.post(format!("{}/", gw.url)).header("content-type", content_type).body(body).send()
    };
    for case in bad_values() {
        // Structured mode.
        let (status, message) =
            refusal(post("application/cloudevents+json", with(&case.attributes, "bad").to_string()).await.unwrap())
                .await;
        assert_eq!(status, 400, "structured, {}: {message}", case.name);
        for says in case.says {
            assert!(message.contains(says), "structured, {}: {message:?} should mention {says:?}", case.name);
        }
        // Batch mode: the third event is the bad one, and its index is named.
        let batch = serde_json::json!([
            with(&serde_json::json!({}), "ok-0"),
            with(&serde_json::json!({}), "ok-1"),
            with(&case.attributes, "bad")
        ]);
        let (status, message) =
            refusal(post("application/cloudevents-batch+json", batch.to_string()).await.unwrap()).await;
        assert_eq!(status, 400, "batch, {}: {message}", case.name);
        assert!(message.contains("batch event 2"), "batch, {}: {message:?} should name the event", case.name);
        for says in case.says {
            assert!(message.contains(says), "batch, {}: {message:?} should mention {says:?}", case.name);
        }
    }

    // Binary mode: the header is named along with the attribute.
    let binary: Vec<(&str, (&str, &str), &[&str])> = vec![
        ("ce-time", ("ce-time", "yesterday"), &["`time`", "`ce-time`", "RFC 3339"]),
        ("ce-dataschema", ("ce-dataschema", "not%20a%20uri"), &["`dataschema`", "`ce-dataschema`", "absolute URI"]),
        ("ce-source", ("ce-source", "my%20shop"), &["`source`", "`ce-source`", "URI-reference"]),
        ("empty ce-subject", ("ce-subject", ""), &["`subject`", "`ce-subject`", "non-empty string"]),
        ("bad escape in an extension", ("ce-myext", "50%ZZ"), &["`ce-myext`", "percent-encoding"]),
        ("overlong UTF-8 in an extension", ("ce-myext", "%C0%A0"), &["`ce-myext`", "UTF-8"]),
        (
            "Content-Type not a media type",
            ("content-type", "json"),
            &["`datacontenttype`", "`Content-Type`", "media type"],
        ),
    ];
    for (name, (header, value), says) in binary {
        let mut request = http.post(format!("{}/", gw.url)).body("{}");
        let mut headers = vec![
            ("ce-specversion", "1.0"),
            ("ce-id", "bad-bin"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
            ("content-type", "application/json"),
        ];
        headers.retain(|(k, _)| *k != header);
        for (k, v) in headers.iter().chain([&(header, value)]) {
            request = request.header(*k, *v);
        }
        let (status, message) = refusal(request.send().await.unwrap()).await;
        assert_eq!(status, 400, "binary, {name}: {message}");
        for s in says {
            assert!(message.contains(s), "binary, {name}: {message:?} should mention {s:?}");
        }
    }

    // Nothing above was stored or delivered.
    let (status, _) = post_structured(&gw.url, &event("good", "t")).await;
    assert_eq!(status, 202);
    sink.wait_for(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<String> = sink.received().iter().map(|r| r.ce_id()).collect();
    assert_eq!(ids, vec!["good".to_string()], "only the valid event was delivered");
    gw.gateway.shutdown().await;
}

#[tokio::test]
async fn json_data_with_a_structured_suffix_media_type_and_parameters_is_accepted() {
    let sink = RecordingSink::ok().await;
    let gw = start_gateway(&config(&sink.url())).await;
    let ct = "application/vnd.api+json; charset=utf-8";
    let structured = serde_json::json!({
        "specversion": "1.0", "id": "sfx-s", "source": "/s", "type": "t", "datacontenttype": ct, "data": {"n": 1},
        "time": "2018-04-05T17:31:00Z", "dataschema": "https://example.com/schema.json", "myint": 42, "mybool": true,
    });
    let (status, body) = post_structured(&gw.url, &structured).await;
    assert_eq!(status, 202, "{body}");
    let response = client()
        .post(format!("{}/", gw.url))
        .header("ce-specversion", "1.0")
        .header("ce-id", "sfx-b")
        .header("ce-source", "/s")
        .header("ce-type", "t")
        .header("content-type", ct)
        .body(r#"{"n":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let got = sink.wait_for(2, Duration::from_secs(20)).await;
    for (id, n) in [("sfx-s", 1), ("sfx-b", 2)] {
        let r = got.iter().find(|r| r.ce_id() == id).unwrap_or_else(|| panic!("{id} not delivered"));
        assert_eq!(r.header("content-type"), Some(ct));
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&r.body).unwrap(), serde_json::json!({"n": n}));
    }
    gw.gateway.shutdown().await;
}

#[tokio::test]
async fn ingress_token_is_required_when_configured() {
    let sink = RecordingSink::ok().await;
    let mut config = faas_gateway::config::GatewayConfig::parse(&config(&sink.url()), "faas.toml").unwrap();
    config.ingress_token = Some("ingress-secret".into());
    let gw = start_gateway_with(config, tempfile::tempdir().unwrap()).await;
    let url = format!("{}/", gw.url);
    let http = client();
    let send = |auth: Option<&'static str>| {
        let mut r =
            http.post(&url).header("content-type", "application/cloudevents+json").body(event("tok", "t").to_string());
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let missing = send(None).await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(missing.text().await.unwrap().contains("Authorization"));
    let wrong = send(Some("Bearer nope")).await.unwrap();
    assert_eq!(wrong.status(), 403);
    assert!(wrong.text().await.unwrap().contains("wrong ingress token"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count(), 0, "refused events are not delivered");
    let ok = send(Some("Bearer ingress-secret")).await.unwrap();
    assert_eq!(ok.status(), 202);
    let got = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].ce_id(), "tok");
    // Health and metrics stay public.
    assert_eq!(http.get(format!("{}/healthz", gw.url)).send().await.unwrap().status(), 200);
    gw.gateway.shutdown().await;
}
