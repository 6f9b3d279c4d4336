//! In-process mode: handlers called directly, with deadlines, panics, logs, invoke and emit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use faas_api::cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
use faas_api::{
    ActivationQuery, ActivationStatus, App, Context, Error, ErrorKind, EventFilter, FunctionSpec, InvokeMode,
    InvokeRequest, NoProgress, Package, Payload, Runner,
};
use faas_runner_local::{LocalOptions, LocalRunner};
use serde_json::{Value, json};

static SEEN: AtomicUsize = AtomicUsize::new(0);

async fn sleep(_cx: Context, v: Value) -> Result<Value, Error> {
    tokio::time::sleep(Duration::from_millis(v["ms"].as_u64().unwrap_or(0))).await;
    Ok(json!("done"))
}

async fn boom(_cx: Context, _v: Value) -> Result<Value, Error> {
    panic!("in-process kaboom")
}

async fn hello(cx: Context, v: Value) -> Result<Value, Error> {
    cx.logger().info(format!("hello {}", v["name"]));
    Ok(json!({"message": format!("Hello, {}!", v["name"].as_str().unwrap_or("?"))}))
}

async fn chain(cx: Context, v: Value) -> Result<Value, Error> {
    let reply = cx.invoke("hello", Payload::json(&v)?).await?;
    let inner: Value = reply.json_as()?;
    Ok(json!({"via": "chain", "inner": inner, "trace": cx.trace().trace_id()}))
}

async fn emitter(cx: Context, v: Value) -> Result<Value, Error> {
    let event = EventBuilderV10::new()
        .id(v["id"].as_str().unwrap_or("x"))
        .source("/tests")
        .ty("test.emitted")
        .build()
        .map_err(|e| Error::bad_input(e.to_string()))?;
    cx.emit(event).await?;
    Ok(json!("emitted"))
}

async fn on_event(cx: Context, e: Event) -> Result<Option<Event>, Error> {
    SEEN.fetch_add(1, Ordering::SeqCst);
    cx.logger().info(format!("got {}", e.id()));
    Ok(None)
}

fn app() -> App {
    App::new()
        .function("sleep", sleep)
        .function("boom", boom)
        .function("hello", hello)
        .function("chain", chain)
        .function("emitter", emitter)
        .event("on_event", on_event)
        .subscribe("on_event", EventFilter::new().event_type("test.*"))
}

async fn runner() -> Arc<LocalRunner> {
    let runner = LocalRunner::in_process(app(), LocalOptions::default()).unwrap();
    let mut functions: Vec<FunctionSpec> = runner.list().await.unwrap().into_iter().map(|f| f.spec).collect();
    for f in &mut functions {
        if f.name == "sleep" {
            f.timeout = Duration::from_millis(300);
        }
    }
    let package = Package { app: "t".into(), artifact: "in-process".into(), size: 0, functions };
    runner.deploy(&package, &NoProgress).await.unwrap();
    runner
}

async fn call(r: &LocalRunner, name: &str, v: Value) -> Result<Value, Error> {
    let out = r.invoke(InvokeRequest::new(name, Payload::json(&v).unwrap())).await?;
    if out.payload.is_empty() {
        return Ok(Value::Null);
    }
    out.payload.json_as()
}

#[tokio::test]
async fn a_function_past_its_deadline_times_out_within_100ms_and_others_are_unaffected() {
    let r = runner().await;
    let r2 = r.clone();
    let concurrent = tokio::spawn(async move { call(&r2, "hello", json!({"name": "Ada"})).await });
    let started = Instant::now();
    let err = call(&r, "sleep", json!({"ms": 5_000})).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.status(), 504);
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(400), "{took:?}");
    assert_eq!(concurrent.await.unwrap().unwrap(), json!({"message": "Hello, Ada!"}));
    assert_eq!(call(&r, "sleep", json!({"ms": 1})).await.unwrap(), json!("done"));
}

#[tokio::test]
async fn a_panic_is_a_crash_and_the_host_keeps_serving() {
    let r = runner().await;
    let err = call(&r, "boom", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Crash);
    assert!(err.message().contains("in-process kaboom"), "{err}");
    assert_eq!(call(&r, "hello", json!({"name": "Bo"})).await.unwrap()["message"], "Hello, Bo!");
    let acts = r.activations(ActivationQuery { function: Some("boom".into()), ..Default::default() }).await.unwrap();
    assert_eq!(acts[0].status, ActivationStatus::Error);
    assert_eq!(acts[0].error.as_ref().unwrap().kind(), ErrorKind::Crash);
}

#[tokio::test]
async fn functions_invoke_each_other_by_name_and_keep_the_trace() {
    let r = runner().await;
    let mut req = InvokeRequest::new("chain", Payload::json(&json!({"name": "Cy"})).unwrap());
    req.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    let invoked = r.invoke(req).await.unwrap();
    let out: Value = invoked.payload.json_as().unwrap();
    assert_eq!(out["inner"]["message"], "Hello, Cy!");
    assert_eq!(out["trace"], "4bf92f3577b34da6a3ce929d0e0e4736");
    // The callee's record names the activation that invoked it; the outer one has no cause.
    let query = |f: &str| ActivationQuery { function: Some(f.into()), limit: Some(1), ..Default::default() };
    let hello = r.activations(query("hello")).await.unwrap();
    assert_eq!(hello[0].cause.as_deref(), Some(invoked.activation_id.as_str()));
    assert_eq!(r.activations(query("chain")).await.unwrap()[0].cause, None);
}

#[tokio::test]
async fn emitted_events_reach_subscribed_functions_asynchronously() {
    let r = runner().await;
    let before = SEEN.load(Ordering::SeqCst);
    call(&r, "emitter", json!({"id": "evt-42"})).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let acts =
            r.activations(ActivationQuery { function: Some("on_event".into()), ..Default::default() }).await.unwrap();
        if let Some(a) = acts.iter().find(|a| a.logs.iter().any(|l| l.contains("got evt-42"))) {
            assert_eq!(a.mode, InvokeMode::Async);
            assert_eq!(a.status, ActivationStatus::Success);
            break;
        }
        assert!(Instant::now() < deadline, "the event never arrived: {acts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(SEEN.load(Ordering::SeqCst) > before);
}

#[tokio::test]
async fn logger_lines_are_captured_per_invocation() {
    let r = runner().await;
    let mut req = InvokeRequest::new("hello", Payload::json(&json!({"name": "Di"})).unwrap());
    req.with_logs = true;
    let out = r.invoke(req).await.unwrap();
    assert_eq!(out.logs.unwrap(), vec!["INFO hello \"Di\"".to_string()]);
}

#[tokio::test]
async fn deploying_a_function_the_app_lacks_is_refused_and_changes_nothing() {
    let r = runner().await;
    let before = r.list().await.unwrap();
    let package =
        Package { app: "t".into(), artifact: "x".into(), size: 0, functions: vec![FunctionSpec::new("ghost")] };
    let err = r.deploy(&package, &NoProgress).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("ghost"));
    assert_eq!(r.list().await.unwrap(), before);
}
