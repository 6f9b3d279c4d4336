//! Web actions: `/api/v1/web/{ns}/{pkg}/{action}.{ext}` without the key, the HTTP context the
//! action receives, and its `{statusCode, headers, body}` as the response.

mod common;

use common::*;
use serde_json::{json, Value};

const ECHO_PARAMS: &str = "#!/bin/sh\necho \"{\\\"params\\\": $1}\"\n";

async fn web_action(api: &Api, name: &str, script: &str, annotations: Value) {
    let body = json!({
        "exec": {"kind": "blackbox", "image": "openwhisk/dockerskeleton", "code": b64(&exec_zip(script))},
        "annotations": annotations,
    });
    let (status, created) = api.put(&format!("/namespaces/_/actions/{name}?overwrite=true"), &body).await;
    assert_eq!(status, 200, "{created}");
}

#[tokio::test]
async fn web_actions_get_the_http_context_and_shape_the_response() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    let web = format!("{}/api/v1/web/guest", emulator.url());
    let http = reqwest::Client::new();
    web_action(&api, "echo", ECHO_PARAMS, json!([{"key": "web-export", "value": true}])).await;

    // .json, query parameters, no key needed.
    let response =
        http.get(format!("{web}/default/echo.json/some/path?name=Jane")).header("x-test", "1").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert!(response.headers().contains_key("x-openwhisk-activation-id"));
    let body: Value = response.json().await.unwrap();
    let p = &body["params"];
    assert_eq!(p["name"], "Jane");
    assert_eq!(p["__ow_method"], "get");
    assert_eq!(p["__ow_path"], "/some/path");
    assert_eq!(p["__ow_headers"]["x-test"], "1");
    assert!(p.get("__ow_query").is_none() && p.get("__ow_body").is_none());

    // A JSON body is merged; form data too; text and binary bodies come as __ow_body.
    let body: Value = http
        .post(format!("{web}/default/echo.json"))
        .json(&json!({"b": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((body["params"]["b"].as_i64(), body["params"]["__ow_method"].as_str()), (Some(2), Some("post")));
    let body: Value =
        http.post(format!("{web}/default/echo.json")).form(&[("f", "v")]).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["params"]["f"], "v");
    let body: Value = http
        .post(format!("{web}/default/echo.json"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["params"]["__ow_body"], "hello", "{body}");
    let body: Value = http
        .post(format!("{web}/default/echo.json"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 1, 2])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["params"]["__ow_body"], b64(&[0, 1, 2]));
    // Reserved parameters cannot be set.
    let response = http.get(format!("{web}/default/echo.json?__ow_method=put")).send().await.unwrap();
    assert_eq!(response.status(), 400);

    // raw-http: the query and body unparsed.
    web_action(
        &api,
        "raw",
        ECHO_PARAMS,
        json!([{"key": "web-export", "value": true}, {"key": "raw-http", "value": true}]),
    )
    .await;
    let body: Value = http
        .post(format!("{web}/default/raw.json?a=1&b=2"))
        .json(&json!({"j": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["params"]["__ow_query"], "a=1&b=2");
    assert_eq!(body["params"]["__ow_body"], b64(br#"{"j":1}"#), "a raw JSON body is base64, as upstream");

    // .http: statusCode, headers, a base64 body for a binary type.
    let png = "#!/bin/sh\necho '{\"statusCode\": 201, \"headers\": {\"content-type\": \"image/png\", \"x-custom\": [\"a\", \"b\"]}, \"body\": \"iVBORw0KGgo=\"}'\n";
    web_action(&api, "png", png, json!([{"key": "web-export", "value": true}])).await;
    let response = http.get(format!("{web}/default/png")).send().await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.headers().get_all("x-custom").iter().count(), 2);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"\x89PNG\r\n\x1a\n");
    let html = "#!/bin/sh\necho '{\"body\": \"<h1>hi</h1>\"}'\n";
    web_action(&api, "page", html, json!([{"key": "web-export", "value": true}])).await;
    let response = http.get(format!("{web}/default/page.http")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(response.text().await.unwrap(), "<h1>hi</h1>");
    let response = http.get(format!("{web}/default/page.html")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "<h1>hi</h1>");
    let response = http.get(format!("{web}/default/echo.http")).send().await.unwrap();
    assert_eq!(response.status(), 204, "no body: no content");

    // An application error's `error` is the response; a developer error is a 400.
    let apperr = "#!/bin/sh\necho '{\"error\": {\"statusCode\": 418, \"body\": \"teapot\"}}'\n";
    web_action(&api, "apperr", apperr, json!([{"key": "web-export", "value": true}])).await;
    let response = http.get(format!("{web}/default/apperr")).send().await.unwrap();
    assert_eq!(response.status(), 418);
    assert_eq!(response.text().await.unwrap(), "teapot");
    web_action(&api, "broken", "#!/bin/sh\necho nope\n", json!([{"key": "web-export", "value": true}])).await;
    let response = http.get(format!("{web}/default/broken")).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "There was an error processing your request.");

    // Not exported, unknown, in a package, with require-whisk-auth.
    web_action(&api, "private", ECHO_PARAMS, json!([])).await;
    assert_eq!(http.get(format!("{web}/default/private.json")).send().await.unwrap().status(), 404);
    assert_eq!(http.get(format!("{web}/default/nothing.json")).send().await.unwrap().status(), 404);
    assert_eq!(
        http.get(format!("{}/api/v1/web/other/default/echo.json", emulator.url())).send().await.unwrap().status(),
        404
    );
    api.put("/namespaces/_/packages/site", &json!({})).await;
    web_action(&api, "site/home", ECHO_PARAMS, json!([{"key": "web-export", "value": true}])).await;
    assert_eq!(http.get(format!("{web}/site/home.json")).send().await.unwrap().status(), 200);
    web_action(
        &api,
        "guarded",
        ECHO_PARAMS,
        json!([{"key": "web-export", "value": true}, {"key": "require-whisk-auth", "value": "s3cret"}]),
    )
    .await;
    assert_eq!(http.get(format!("{web}/default/guarded.json")).send().await.unwrap().status(), 401);
    let ok =
        http.get(format!("{web}/default/guarded.json")).header("x-require-whisk-auth", "s3cret").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let options = http.request(reqwest::Method::OPTIONS, format!("{web}/default/echo")).send().await.unwrap();
    assert_eq!(options.status(), 200);
    assert!(options.headers().contains_key("access-control-allow-methods"));
    emulator.shutdown().await;
}
