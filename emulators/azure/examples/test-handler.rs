//! A custom handler made to test the local Functions host (raw axum; no faas crates): each
//! function name makes it behave in one of the ways the host has a rule for.
//!
//! Start-up, from its environment: `HANDLER_EXIT_AT_START=<code>` exits at once,
//! `HANDLER_NEVER_BIND=1` never listens, `HANDLER_BIND_DELAY_MS=<ms>` listens late. It writes
//! one line on stdout and one on stderr when it starts, and counts the `GET /` readiness pings.
//!
//! Invocations (`POST /<function>`), by function name:
//! `echo` (the request as received, in `res.body`), `env` (environment, arguments, directory,
//! pings), `fail500`, `textplain`, `nocontenttype`, `badjson`, `empty`, `statusonly`,
//! `statuscode`, `statusnum`, `object`, `plainres`, `nores`, `nooutputs`, `logs`, `sleep`
//! (`?ms=`), `pid`, `crash`; any other name records its request in `Logs` (timers, queues,
//! the admin API) and fails when the name starts with `fail`.
//! Any other request (forwarding mode) is answered 418 with what was received.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{HeaderMap, Request, Response};
use serde_json::{json, Value};

#[derive(Default)]
struct State {
    pings: AtomicUsize,
    first_ping: Mutex<Option<Vec<(String, String)>>>,
}

fn headers_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers.iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

fn reply(status: u16, content_type: Option<&str>, body: impl Into<Body>) -> Response<Body> {
    let mut builder = Response::builder().status(status);
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(body.into()).unwrap()
}

fn json_reply(value: Value) -> Response<Body> {
    reply(200, Some("application/json"), value.to_string())
}

fn res(res: Value, logs: &[&str]) -> Response<Body> {
    json_reply(json!({"Outputs": {"res": res}, "Logs": logs, "ReturnValue": null}))
}

async fn handle(state: Arc<State>, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, 512 << 20).await.unwrap_or_default();
    let path = parts.uri.path().to_string();
    if parts.method == "GET" && path == "/" {
        if state.pings.fetch_add(1, Ordering::SeqCst) == 0 {
            *state.first_ping.lock().unwrap() = Some(headers_list(&parts.headers));
        }
        return reply(404, None, "not a function");
    }
    let name = path.trim_start_matches('/');
    if parts.method != "POST" || name.contains('/') {
        // Forwarding mode: the caller's request as it arrived.
        let seen = json!({
            "method": parts.method.as_str(),
            "path": path,
            "query": parts.uri.query(),
            "headers": headers_list(&parts.headers),
            "body": String::from_utf8_lossy(&body),
        });
        return Response::builder()
            .status(418)
            .header("content-type", "application/json")
            .header("x-handler", "forwarded")
            .body(Body::from(seen.to_string()))
            .unwrap();
    }
    let request_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match name {
        "echo" => {
            let seen = json!({
                "path": path,
                "method": parts.method.as_str(),
                "headers": headers_list(&parts.headers),
                "raw": String::from_utf8_lossy(&body),
                "body": request_json,
            });
            res(
                json!({"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": seen.to_string()}),
                &["echo called"],
            )
        }
        "env" => {
            let env: serde_json::Map<String, Value> = std::env::vars().map(|(k, v)| (k, Value::String(v))).collect();
            let seen = json!({
                "env": env,
                "args": std::env::args().skip(1).collect::<Vec<_>>(),
                "cwd": std::env::current_dir().unwrap().display().to_string(),
                "pings": state.pings.load(Ordering::SeqCst),
                "first_ping": *state.first_ping.lock().unwrap(),
                "pid": std::process::id(),
            });
            res(
                json!({"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": seen.to_string()}),
                &[],
            )
        }
        "fail500" => reply(
            500,
            Some("application/json"),
            json!({"Outputs": {"res": {"body": "not seen"}}, "Logs": ["not seen"]}).to_string(),
        ),
        "textplain" => reply(200, Some("text/plain"), json!({"Outputs": {"res": {"body": "not seen"}}}).to_string()),
        "nocontenttype" => reply(200, None, json!({"Outputs": {"res": {"body": "not seen"}}}).to_string()),
        "badjson" => reply(200, Some("application/json"), "{not json"),
        "empty" => reply(200, Some("application/json"), ""),
        "statusonly" => res(json!({"status": 201, "body": "status alone"}), &[]),
        "statuscode" => res(
            json!({"statusCode": "201", "body": "created", "headers": {"Content-Type": "text/markdown", "X-Custom": "yes"}}),
            &[],
        ),
        "statusnum" => res(json!({"statusCode": 202, "body": "accepted"}), &[]),
        "object" => res(json!({"body": {"a": 1, "b": [true, null]}}), &[]),
        "plainres" => res(json!({"body": "just text"}), &[]),
        "nores" => json_reply(json!({"Outputs": {}, "Logs": ["no res"]})),
        "nooutputs" => json_reply(json!({"Logs": ["no outputs"]})),
        "logs" => res(json!({"body": "logged"}), &["first line", "second line"]),
        "sleep" => {
            let ms = request_json["Data"]["req"]["Query"]["ms"].as_str().and_then(|m| m.parse().ok()).unwrap_or(5_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            res(json!({"body": "slept"}), &[])
        }
        "pid" => res(json!({"body": std::process::id().to_string()}), &[]),
        "crash" => std::process::exit(3),
        other => {
            let line = format!("received {}", String::from_utf8_lossy(&body));
            if other.starts_with("fail") {
                return reply(500, Some("application/json"), "{}");
            }
            json_reply(json!({"Outputs": {}, "Logs": [line], "ReturnValue": null}))
        }
    }
}

#[tokio::main]
async fn main() {
    if let Ok(code) = std::env::var("HANDLER_EXIT_AT_START") {
        eprintln!("exiting at start as told");
        std::process::exit(code.parse().unwrap_or(1));
    }
    if std::env::var("HANDLER_NEVER_BIND").is_ok() {
        println!("never binding");
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
    if let Some(ms) = std::env::var("HANDLER_BIND_DELAY_MS").ok().and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let port: u16 =
        std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT").expect("FUNCTIONS_CUSTOMHANDLER_PORT").parse().unwrap();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    println!("test handler listening on {port}");
    eprintln!("test handler stderr line");
    let state = Arc::new(State::default());
    let app = axum::Router::new().fallback(move |request: Request<Body>| handle(state.clone(), request));
    axum::serve(listener, app).await.unwrap();
}
