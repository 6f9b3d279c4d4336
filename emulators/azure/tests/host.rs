//! The Functions host's rules, as a real handler process sees them over real sockets: the
//! invocation request, the answer rules, timeouts, keys, the admin API, routing, readiness and
//! restarts, the handler's environment and command line, forwarding, the size limit, timers.

mod common;

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const APP: &str = "rules-app";

fn host() -> String {
    site_host(APP)
}

/// The handler's observed request, from an `echo` answer.
async fn echo(e: &faas_emulator_azure::Emulator, request: reqwest::RequestBuilder) -> (Value, reqwest::StatusCode) {
    let _ = e;
    let r = request.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")), status)
}

#[tokio::test]
async fn the_invocation_request_is_built_as_the_host_builds_it() {
    let functions = [("echo", http_function("function", Some("items/{id}/{rest?}")))];
    let (e, _dir) = running(APP, &host_json(json!({})), &functions, &[]).await;
    let key = e.function_key(APP, "echo").unwrap();
    let body = r#"{"name":"Ada","n":5}"#;
    let (seen, status) = echo(
        &e,
        to(&e, Method::POST, &host(), &format!("/api/items/7?x=1&x=2&code={key}"))
            .header("content-type", "application/json")
            .header("x-multi", "a")
            .header("x-multi", "b")
            .body(body),
    )
    .await;
    assert_eq!(status, 200);
    // The request line and the host's headers, in the order .NET writes them.
    assert_eq!(seen["path"], "/echo");
    assert_eq!(seen["method"], "POST");
    let headers: Vec<(String, String)> = serde_json::from_value(seen["headers"].clone()).unwrap();
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "host",
            "x-azure-functions-hostversion",
            "x-azure-functions-invocationid",
            "user-agent",
            "transfer-encoding",
            "traceparent",
            "content-type"
        ]
    );
    let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
    assert!(header("host").starts_with("127.0.0.1:"));
    assert_eq!(header("x-azure-functions-hostversion"), "4.1037.0.0");
    assert_eq!(header("user-agent"), "Azure-Functions-Host/4.1037.0.0");
    assert_eq!(header("transfer-encoding"), "chunked");
    assert_eq!(header("content-type"), "application/json; charset=utf-8");
    let tp = header("traceparent");
    assert!(tp.len() == 55 && tp.starts_with("00-") && tp.ends_with("-00"), "{tp}");
    let invocation_id = header("x-azure-functions-invocationid");
    assert!(uuid::Uuid::parse_str(&invocation_id).is_ok());
    // The body: compact, Data then Metadata, the request object's members in order.
    let raw = seen["raw"].as_str().unwrap();
    assert!(
        raw.starts_with(r#"{"Data":{"req":{"Url":"http://rules-app.azurewebsites.net/api/items/7?x=1&x=2&code="#),
        "{raw}"
    );
    let order = [
        "\"Url\"",
        "\"Method\"",
        "\"Query\"",
        "\"Headers\"",
        "\"Params\"",
        "\"Identities\"",
        "\"Body\"",
        "\"Metadata\"",
    ];
    let positions: Vec<usize> =
        order.iter().map(|k| raw.find(k).unwrap_or_else(|| panic!("{k} missing in {raw}"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "members out of order: {raw}");
    let req = &seen["body"]["Data"]["req"];
    let identity = json!([{
        "AuthenticationType": "WebJobsAuthLevel", "IsAuthenticated": true, "Actor": null, "BootstrapContext": null,
        "Claims": [
            {"Issuer": "LOCAL AUTHORITY", "OriginalIssuer": "LOCAL AUTHORITY", "Properties": {},
             "Type": "http://schemas.microsoft.com/2017/07/functions/claims/authlevel", "Value": "Function",
             "ValueType": "http://www.w3.org/2001/XMLSchema#string"},
            {"Issuer": "LOCAL AUTHORITY", "OriginalIssuer": "LOCAL AUTHORITY", "Properties": {},
             "Type": "http://schemas.microsoft.com/2017/07/functions/claims/invoke", "Value": "true",
             "ValueType": "http://www.w3.org/2001/XMLSchema#string"},
            {"Issuer": "LOCAL AUTHORITY", "OriginalIssuer": "LOCAL AUTHORITY", "Properties": {},
             "Type": "http://schemas.microsoft.com/2017/07/functions/claims/keyid", "Value": "default",
             "ValueType": "http://www.w3.org/2001/XMLSchema#string"}
        ],
        "Label": null, "Name": null,
        "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    }]);
    let expected_req = json!({
        "Url": format!("http://rules-app.azurewebsites.net/api/items/7?x=1&x=2&code={key}"),
        "Method": "POST",
        "Query": {"x": "1,2", "code": key},
        "Headers": {
            "Host": ["rules-app.azurewebsites.net"],
            "Content-Type": ["application/json"],
            "x-multi": ["a", "b"],
            "Accept": ["*/*"],
            "Content-Length": ["20"]
        },
        "Params": {"id": "7", "rest": null},
        "Identities": identity,
        "Body": body
    });
    assert_eq!(req, &expected_req);
    let meta = &seen["body"]["Metadata"];
    let sys = &meta["sys"];
    assert_eq!(sys["MethodName"], "echo");
    assert!(sys["UtcNow"].as_str().unwrap().ends_with('Z'));
    assert!(uuid::Uuid::parse_str(sys["RandGuid"].as_str().unwrap()).is_ok());
    let expected_meta = json!({
        "name": "\"Ada\"",
        "n": "\"5\"",
        "x": "\"2\"",
        "id": "\"7\"",
        "Query": {"x": "2", "code": key},
        "Headers": {
            "Host": "rules-app.azurewebsites.net",
            "Content-Type": "application/json",
            "x-multi": "a,b",
            "Accept": "*/*",
            "Content-Length": "20"
        },
        "sys": sys.clone()
    });
    assert_eq!(meta, &expected_meta);
    // The platform's record of it, with the same invocation id.
    let lines = function_log(&e, APP, "echo").await;
    let messages: Vec<(String, String)> = lines.iter().map(|l| message(l)).map(|(a, b)| (a.into(), b.into())).collect();
    assert_eq!(messages.len(), 3, "{lines:?}");
    assert_eq!(
        messages[0],
        ("Information".into(), format!("Executing 'Functions.echo' (Reason='This function was programmatically called via the host APIs.', Id={invocation_id})"))
    );
    assert_eq!(messages[1], ("Information".into(), "echo called".into()));
    let prefix = format!("Executed 'Functions.echo' (Succeeded, Id={invocation_id}, Duration=");
    assert!(messages[2].1.starts_with(&prefix) && messages[2].1.ends_with("ms)"), "{:?}", messages[2]);
    e.shutdown().await;
}

/// Sends a raw HTTP/1.1 request and returns the status line and the whole response.
fn raw_request(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_chunked_call_has_no_body_and_an_anonymous_caller_an_empty_identity() {
    let functions = [("echo", http_function("anonymous", None))];
    let (e, _dir) = running(APP, &host_json(json!({})), &functions, &[]).await;
    let addr = e.local_addr();
    let response = tokio::task::spawn_blocking(move || {
        raw_request(
            addr,
            "POST /api/echo HTTP/1.1\r\nHost: rules-app.azurewebsites.net\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let body = if body.contains('{') { &body[body.find('{').unwrap()..body.rfind('}').unwrap() + 1] } else { body };
    let seen: Value = serde_json::from_str(body).unwrap();
    let req = &seen["body"]["Data"]["req"];
    assert!(req.get("Body").is_none(), "a request without Content-Length has no Body: {req}");
    assert_eq!(req["Params"], json!({}));
    assert_eq!(req["Headers"]["Transfer-Encoding"], json!(["chunked"]));
    assert_eq!(
        req["Identities"],
        json!([{"AuthenticationType": null, "IsAuthenticated": false, "Actor": null, "BootstrapContext": null, "Claims": [],
                "Label": null, "Name": null,
                "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
                "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}])
    );
    // An anonymous function called with a wrong key still runs, anonymously.
    let (seen, status) = echo(&e, to(&e, Method::GET, &host(), "/api/echo?code=wrong")).await;
    assert_eq!(status, 200);
    assert_eq!(seen["body"]["Data"]["req"]["Identities"][0]["IsAuthenticated"], false);
    e.shutdown().await;
}

#[tokio::test]
async fn answers_follow_the_hosts_rules() {
    let names = [
        "fail500",
        "textplain",
        "nocontenttype",
        "badjson",
        "statusonly",
        "statuscode",
        "statusnum",
        "object",
        "plainres",
        "nores",
        "nooutputs",
        "logs",
    ];
    let functions: Vec<(&str, Value)> = names.iter().map(|n| (*n, http_function("anonymous", None))).collect();
    let (e, _dir) = running(APP, &host_json(json!({})), &functions, &[]).await;
    // With one app, 127.0.0.1 reaches it without a Host header.
    let call = |name: &str| {
        let url = format!("{}/api/{name}", e.url());
        async move { http().get(url).send().await.unwrap() }
    };
    for failing in ["fail500", "textplain", "nocontenttype", "badjson"] {
        let r = call(failing).await;
        assert_eq!(r.status(), 500, "{failing}");
        assert_eq!(r.text().await.unwrap(), "", "{failing}: a failed invocation has an empty body");
    }
    async fn check(r: reqwest::Response, status: u16, ct: Option<&str>, body: &str) {
        assert_eq!(r.status(), status);
        assert_eq!(r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).as_deref(), ct);
        assert_eq!(r.text().await.unwrap(), body);
    }
    let plain = Some("text/plain; charset=utf-8");
    check(call("statusonly").await, 200, plain, "status alone").await;
    let r = call("statuscode").await;
    assert_eq!(r.headers()["x-custom"], "yes");
    check(r, 201, Some("text/markdown"), "created").await;
    check(call("statusnum").await, 202, plain, "accepted").await;
    check(call("object").await, 200, plain, "{\n  \"a\": 1,\n  \"b\": [\n    true,\n    null\n  ]\n}").await;
    check(call("plainres").await, 200, plain, "just text").await;
    check(call("nores").await, 200, plain, "{}").await;
    check(call("nooutputs").await, 200, None, "").await;
    check(call("logs").await, 200, plain, "logged").await;
    assert_eq!(call("nothing-here").await.status(), 404);
    let logs = function_log(&e, APP, "logs").await;
    let messages: Vec<&str> = logs.iter().map(|l| message(l).1).collect();
    assert_eq!(messages[1..3], ["first line", "second line"]);
    assert!(messages[3].starts_with("Executed 'Functions.logs' (Succeeded"));
    let failed = function_log(&e, APP, "fail500").await;
    assert_eq!(failed.len(), 3, "{failed:?}");
    let (level, msg) = message(&failed[1]);
    assert_eq!(level, "Error");
    assert!(msg.starts_with("Executed 'Functions.fail500' (Failed, Id="), "{msg}");
    assert_eq!(failed[2], "Response status code does not indicate success: 500 (Internal Server Error).");
    let text_logs = function_log(&e, APP, "textplain").await;
    assert!(text_logs[2].contains("media type 'text/plain'"), "{text_logs:?}");
    e.shutdown().await;
}

#[tokio::test]
async fn the_function_timeout_fails_the_call_and_restarts_the_handler() {
    let functions: Vec<(&str, Value)> =
        ["empty", "sleep", "pid"].iter().map(|n| (*n, http_function("anonymous", None))).collect();
    let (e, _dir) = running(APP, &host_json(json!({"functionTimeout": "00:00:01"})), &functions, &[]).await;
    let pid = || async { to(&e, Method::GET, &host(), "/api/pid").send().await.unwrap().text().await.unwrap() };
    let first = pid().await;
    let started = Instant::now();
    let r = to(&e, Method::GET, &host(), "/api/empty").send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(started.elapsed() >= Duration::from_millis(950), "an empty answer waits for the timeout");
    assert_eq!(r.text().await.unwrap(), "");
    let second = pid().await;
    assert_ne!(first, second, "the handler was restarted after the timeout");
    let started = Instant::now();
    let r = to(&e, Method::GET, &host(), "/api/sleep?ms=5000").send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(started.elapsed() < Duration::from_secs(4));
    let third = pid().await;
    assert_ne!(second, third);
    let logs = function_log(&e, APP, "sleep").await;
    assert!(
        logs.iter().any(|l| message(l)
            .1
            .starts_with("Timeout value of 00:00:01 exceeded by function 'Functions.sleep' (Id: '")),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|l| l == "Timeout value of 00:00:01 was exceeded by function: Functions.sleep"),
        "{logs:?}"
    );
    e.shutdown().await;
}

#[tokio::test]
async fn keys_are_checked_as_the_host_checks_them() {
    let functions = [
        ("echo", http_function("function", None)),
        ("env", http_function("admin", None)),
        ("plainres", http_function("anonymous", None)),
    ];
    let (e, _dir) = running(APP, &host_json(json!({})), &functions, &[]).await;
    let own = e.function_key(APP, "echo").unwrap();
    let master = e.master_key(APP).unwrap();
    let status = |path: String, header: Option<String>| {
        let mut r = to(&e, Method::GET, &host(), &path);
        if let Some(h) = header {
            r = r.header("x-functions-key", h);
        }
        async move {
            let r = r.send().await.unwrap();
            let s = r.status().as_u16();
            let body = r.text().await.unwrap();
            (s, body)
        }
    };
    let (s, body) = status("/api/echo".into(), None).await;
    assert_eq!((s, body.as_str()), (401, ""));
    assert_eq!(status("/api/echo?code=wrong".into(), None).await.0, 401);
    assert_eq!(status(format!("/api/echo?code={own}"), None).await.0, 200);
    assert_eq!(status(format!("/api/echo?code={master}"), None).await.0, 200);
    // The header wins over the query parameter.
    assert_eq!(status(format!("/api/echo?code={own}"), Some("wrong".into())).await.0, 401);
    assert_eq!(status("/api/echo?code=wrong".into(), Some(own.clone())).await.0, 200);
    // Admin level: the master key only.
    assert_eq!(status(format!("/api/env?code={own}"), None).await.0, 401);
    assert_eq!(status("/api/env".into(), Some(master.clone())).await.0, 200);
    assert_eq!(status("/api/plainres".into(), None).await.0, 200);
    // The master key's claims.
    let (seen, _) = echo(&e, to(&e, Method::GET, &host(), "/api/echo").header("x-functions-key", &master)).await;
    let claims = &seen["body"]["Data"]["req"]["Identities"][0]["Claims"];
    assert_eq!(claims[0]["Value"], "Admin");
    assert_eq!(claims[2]["Value"], "_master");
    e.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_lists_and_starts_functions() {
    let grid = json!({"bindings": [{"type": "eventGridTrigger", "direction": "in", "name": "event"}]});
    let functions = [("echo", http_function("function", Some("things/{id?}"))), ("grid", grid)];
    let (e, _dir) = running(APP, &host_json(json!({})), &functions, &[]).await;
    let master = e.master_key(APP).unwrap();
    let admin = |m: Method, path: &str| to(&e, m, &host(), path).header("x-functions-key", &master);
    assert_eq!(to(&e, Method::GET, &host(), "/admin/functions").send().await.unwrap().status(), 401);
    let own = e.function_key(APP, "echo").unwrap();
    assert_eq!(
        to(&e, Method::GET, &host(), &format!("/admin/functions?code={own}")).send().await.unwrap().status(),
        401
    );
    let list: Value = admin(Method::GET, "/admin/functions").send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["echo", "grid"]);
    let one: Value = admin(Method::GET, "/admin/functions/echo").send().await.unwrap().json().await.unwrap();
    assert_eq!(one["invoke_url_template"], "http://rules-app.azurewebsites.net/api/things/{id?}");
    assert_eq!(one["config"]["bindings"][0]["type"], "httpTrigger");
    assert_eq!(one["isDisabled"], false);
    assert!(list[1]["invoke_url_template"].is_null());
    assert_eq!(admin(Method::GET, "/admin/functions/nope").send().await.unwrap().status(), 404);
    // POST: 202 and a call through the trigger binding, in the background.
    let event = json!({"id": "1", "eventType": "test", "subject": "s", "data": {"a": 1}});
    let r =
        admin(Method::POST, "/admin/functions/grid").json(&json!({"input": event.to_string()})).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.text().await.unwrap(), "");
    let lines = eventually("the admin call", Duration::from_secs(10), async || {
        let lines = function_log(&e, APP, "grid").await;
        (lines.len() >= 3).then_some(lines)
    })
    .await;
    let (_, executing) = message(&lines[0]);
    assert!(executing.starts_with(
        "Executing 'Functions.grid' (Reason='This function was programmatically called via the host APIs.'"
    ));
    let received: Value = serde_json::from_str(message(&lines[1]).1.strip_prefix("received ").unwrap()).unwrap();
    assert_eq!(received["Data"]["event"], event);
    assert_eq!(received["Metadata"]["subject"], "\"s\"");
    assert_eq!(received["Metadata"]["sys"]["MethodName"], "grid");
    // An HTTP function does not bind a string input: the invocation fails, the handler is not called.
    assert_eq!(
        admin(Method::POST, "/admin/functions/echo").json(&json!({"input": "x"})).send().await.unwrap().status(),
        202
    );
    let lines = eventually("the failed admin call", Duration::from_secs(10), async || {
        let lines = function_log(&e, APP, "echo").await;
        (lines.len() >= 3).then_some(lines)
    })
    .await;
    assert!(message(&lines[1]).1.starts_with("Executed 'Functions.echo' (Failed"));
    assert_eq!(lines[2], "An HttpRequest is required");
    assert_eq!(admin(Method::POST, "/admin/functions/grid").send().await.unwrap().status(), 415);
    assert_eq!(
        admin(Method::POST, "/admin/functions/grid")
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        admin(Method::POST, "/admin/functions/nope").json(&json!({"input": "x"})).send().await.unwrap().status(),
        404
    );
    let status: Value = admin(Method::GET, "/admin/host/status").send().await.unwrap().json().await.unwrap();
    assert_eq!(status["state"], "Running");
    assert_eq!(status["version"], "4.1037.0.0");
    e.shutdown().await;
}

#[tokio::test]
async fn requests_are_routed_by_their_host_header() {
    let e = emulator().await;
    let a = app_dir(&host_json(json!({})), &[("plainres", http_function("anonymous", None))]);
    let b = app_dir(
        &host_json(json!({"extensions": {"http": {"routePrefix": ""}}})),
        &[("nores", http_function("anonymous", None))],
    );
    e.run_folder("app-a", a.path(), Default::default()).await.unwrap();
    e.run_folder("app-b", b.path(), Default::default()).await.unwrap();
    let r = to(&e, Method::GET, "app-a.azurewebsites.net", "/api/plainres").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "just text");
    let r = to(&e, Method::GET, "APP-B.azurewebsites.net:443", "/nores").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "{}");
    let r = http().get(format!("{}/api/plainres", e.url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let text = r.text().await.unwrap();
    assert!(text.contains("app-a.azurewebsites.net") && text.contains("app-b.azurewebsites.net"), "{text}");
    assert_eq!(to(&e, Method::GET, "nope.azurewebsites.net", "/api/plainres").send().await.unwrap().status(), 404);
    // Anything else is ARM.
    let r = to(
        &e,
        Method::GET,
        "management.azure.com",
        "/subscriptions/s/resourceGroups/local/providers/Microsoft.Web/sites?api-version=2023-12-01",
    )
    .bearer_auth("t")
    .send()
    .await
    .unwrap();
    let sites: Value = r.json().await.unwrap();
    assert_eq!(sites["value"].as_array().unwrap().len(), 0, "run_folder puts sites in the emulator's own subscription");
    e.shutdown().await;
}

#[tokio::test]
async fn the_handler_is_waited_for_restarted_and_given_up_on() {
    let functions: Vec<(&str, Value)> =
        ["env", "pid", "crash"].iter().map(|n| (*n, http_function("anonymous", None))).collect();
    // A handler that listens late is waited for.
    let started = Instant::now();
    let (e, _dir) = running(APP, &host_json(json!({})), &functions, &[("HANDLER_BIND_DELAY_MS", "500")]).await;
    assert!(started.elapsed() >= Duration::from_millis(500));
    let env: Value =
        serde_json::from_str(&to(&e, Method::GET, &host(), "/api/env").send().await.unwrap().text().await.unwrap())
            .unwrap();
    let first_ping: Vec<(String, String)> = serde_json::from_value(env["first_ping"].clone()).unwrap();
    assert_eq!(
        first_ping.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["host"],
        "the readiness ping is a bare GET /"
    );
    // A handler that exits is started again.
    let pid = || async { to(&e, Method::GET, &host(), "/api/pid").send().await.unwrap().text().await.unwrap() };
    let before = pid().await;
    assert_eq!(to(&e, Method::GET, &host(), "/api/crash").send().await.unwrap().status(), 500);
    let after = eventually("a new handler", Duration::from_secs(10), async || {
        let p = pid().await;
        (!p.is_empty() && p != before).then_some(p)
    })
    .await;
    assert_ne!(before, after);
    e.shutdown().await;

    // One that never listens: three tries, then the site is in its error state.
    let e = emulator().await;
    let dir = app_dir(&host_json(json!({"customHandler": {"initializationTimeout": "00:00:00.300"}})), &functions);
    let settings = [("HANDLER_NEVER_BIND".to_string(), "1".to_string())].into_iter().collect();
    let started = Instant::now();
    let err = e.run_folder(APP, dir.path(), settings).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(900), "three tries of 300 ms");
    assert!(err.message().contains("Exceeded http worker restart retry count"), "{}", err.message());
    assert!(err.message().contains("Initializing HttpWorker timed out"), "{}", err.message());
    let r = to(&e, Method::GET, &host(), "/api/pid").send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("Exceeded http worker restart retry count"));
    let master = e.master_key(APP).unwrap();
    let status: Value = to(&e, Method::GET, &host(), "/admin/host/status")
        .header("x-functions-key", master)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "Error");
    // One that exits at once says how.
    let settings = [("HANDLER_EXIT_AT_START".to_string(), "7".to_string())].into_iter().collect();
    let err = e.run_folder(APP, dir.path(), settings).await.unwrap_err();
    assert!(err.message().contains("exit status 7"), "{}", err.message());
    e.shutdown().await;
}

#[tokio::test]
async fn the_handler_gets_the_hosts_environment_and_command_line() {
    let functions = [("env", http_function("anonymous", None))];
    let host = host_json(json!({"customHandler": {"description": {
        "arguments": ["--port=%FUNCTIONS_CUSTOMHANDLER_PORT%", "%MY_SETTING%", "%UNKNOWN%x", "two words"],
        "workingDirectory": "sub"
    }}}));
    let e = emulator().await;
    let dir = app_dir(&host, &functions);
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let settings = [("MY_SETTING".to_string(), "hello".to_string())].into_iter().collect();
    e.run_folder(APP, dir.path(), settings).await.unwrap();
    let text = to(&e, Method::GET, &site_host(APP), "/api/env").send().await.unwrap().text().await.unwrap();
    let seen: Value = serde_json::from_str(&text).unwrap();
    let env = seen["env"].as_object().unwrap();
    let port = env["FUNCTIONS_CUSTOMHANDLER_PORT"].as_str().unwrap();
    assert_eq!(seen["args"], json!([format!("--port={port}"), "hello", "x", "two", "words"]));
    let wwwroot = e.state_dir().join("sites").join(APP).join("wwwroot");
    assert_eq!(seen["cwd"], wwwroot.join("sub").display().to_string());
    assert_eq!(env["FUNCTIONS_HTTPWORKER_PORT"], port);
    assert_eq!(env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"], env["FUNCTIONS_HTTPWORKER_ID"]);
    assert!(uuid::Uuid::parse_str(env["FUNCTIONS_HTTPWORKER_ID"].as_str().unwrap()).is_ok());
    assert_eq!(env["FUNCTIONS_APP_ROOT_PATH"], wwwroot.display().to_string());
    assert_eq!(env["FUNCTIONS_WORKER_RUNTIME"], "custom");
    assert_eq!(env["AzureWebJobsStorage"], "UseDevelopmentStorage=true");
    assert_eq!(env["MY_SETTING"], "hello");
    assert_eq!(env["WEBSITE_SITE_NAME"], APP);
    assert_eq!(env["WEBSITE_HOSTNAME"], "rules-app.azurewebsites.net");
    assert!(!env.contains_key("CARGO_MANIFEST_DIR"), "our own environment does not leak in");
    let handler_vars: Vec<&String> = env
        .keys()
        .filter(|k| k.starts_with("FUNCTIONS_CUSTOMHANDLER") || k.starts_with("FUNCTIONS_HTTPWORKER"))
        .collect();
    assert_eq!(handler_vars.len(), 4);
    // stdout lines are information, stderr lines errors, in the host log.
    let list: Value = to(&e, Method::GET, &scm_host(APP), "/api/vfs/LogFiles/Application/Functions/Host/")
        .bearer_auth("t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let href = list[0]["href"].as_str().unwrap().split_once("/api/vfs/").unwrap().1.to_string();
    let text = eventually("the handler's output", Duration::from_secs(5), async || {
        let t = to(&e, Method::GET, &scm_host(APP), &format!("/api/vfs/{href}"))
            .bearer_auth("t")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        t.contains("stderr line").then_some(t)
    })
    .await;
    assert!(
        text.lines().any(|l| message(l) == ("Information", &format!("test handler listening on {port}"))),
        "{text}"
    );
    assert!(text.lines().any(|l| message(l) == ("Error", "test handler stderr line")), "{text}");
    e.shutdown().await;
}

#[tokio::test]
async fn forwarding_passes_http_in_and_out_functions_through() {
    let functions = [("fwd", http_function("anonymous", Some("fwd/{*rest}")))];
    let (e, _dir) =
        running(APP, &host_json(json!({"customHandler": {"enableForwardingHttpRequest": true}})), &functions, &[])
            .await;
    let r = to(&e, Method::POST, &host(), "/api/fwd/a/b?x=1&x=2")
        .header("user-agent", "probe/1")
        .header("content-type", "text/plain")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 418, "the handler's status goes back as it is");
    assert_eq!(r.headers()["x-handler"], "forwarded");
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/api/fwd/a/b");
    assert_eq!(seen["query"], "x=1%2C2");
    assert_eq!(seen["body"], "payload");
    let headers: Vec<(String, String)> = serde_json::from_value(seen["headers"].clone()).unwrap();
    let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(header("host").as_deref(), Some("rules-app.azurewebsites.net"));
    assert_eq!(header("user-agent").as_deref(), Some("probe/1 Azure-Functions-Host/4.1037.0.0"));
    assert_eq!(header("x-azure-functions-hostversion").as_deref(), Some("4.1037.0.0"));
    assert_eq!(header("content-length").as_deref(), Some("7"));
    assert!(header("x-azure-functions-invocationid").is_some());
    e.shutdown().await;
}

#[tokio::test]
async fn requests_over_the_size_limit_answer_413() {
    let functions = [("plainres", http_function("anonymous", None))];
    let (e, _dir) =
        running(APP, &host_json(json!({})), &functions, &[("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", "1000")]).await;
    let post = |n: usize| to(&e, Method::POST, &host(), "/api/plainres").body(vec![b'x'; n]).send();
    assert_eq!(post(1000).await.unwrap().status(), 200);
    assert_eq!(post(1001).await.unwrap().status(), 413);
    e.shutdown().await;
    // The default: 100 MiB, refused from the Content-Length alone.
    let (e, _dir) = running(APP, &host_json(json!({})), &functions, &[]).await;
    let addr = e.local_addr();
    let response = tokio::task::spawn_blocking(move || {
        raw_request(addr, "POST /api/plainres HTTP/1.1\r\nHost: rules-app.azurewebsites.net\r\nContent-Length: 104857601\r\nConnection: close\r\n\r\n")
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    e.shutdown().await;
}

#[tokio::test]
async fn timers_fire_on_their_schedule() {
    let tick = json!({"bindings": [{"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "*/1 * * * * *"}]});
    let (e, _dir) = running(APP, &host_json(json!({})), &[("tick", tick)], &[]).await;
    let lines = eventually("a timer firing", Duration::from_secs(5), async || {
        let lines = function_log(&e, APP, "tick").await;
        (lines.len() >= 3).then_some(lines)
    })
    .await;
    let (_, executing) = message(&lines[0]);
    let reason = executing.strip_prefix("Executing 'Functions.tick' (Reason='Timer fired at ").unwrap();
    assert!(chrono::DateTime::parse_from_str(&reason[..33], "%Y-%m-%dT%H:%M:%S%.f%:z").is_ok(), "{executing}");
    let received: Value = serde_json::from_str(message(&lines[1]).1.strip_prefix("received ").unwrap()).unwrap();
    assert_eq!(
        received["Data"]["timer"],
        json!({"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false})
    );
    assert_eq!(received["Metadata"].as_object().unwrap().keys().collect::<Vec<_>>(), ["sys"]);
    assert!(message(&lines[2]).1.starts_with("Executed 'Functions.tick' (Succeeded"));
    e.shutdown().await;
}
