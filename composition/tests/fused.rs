//! Compositions declared on an app and run inside their own invocation: the steps that are the
//! app's functions dispatched directly, each with its own context; the rest through the backend.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use faas_api::cloudevents::Event;
use faas_api::{App, Context, Error, ErrorKind, EventFilter, HandlerKind, Level, LogSink, Payload, Services};
use faas_composition::fused::MAX_NESTING;
use faas_composition::*;
use serde_json::{Value, json};

/// What every step saw: its function name, invocation id and trace id.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, String, String)>>>);

#[derive(Default)]
struct Lines(Mutex<Vec<(String, String)>>);

impl LogSink for Lines {
    fn write(&self, invocation_id: &str, _level: Level, line: &str) {
        self.0.lock().unwrap().push((invocation_id.to_string(), line.to_string()));
    }
}

/// Functions outside the app: `remote` answers `{"remote": <input>}`, anything else is not found.
#[derive(Default)]
struct Backend(Mutex<Vec<(String, Vec<u8>)>>);

#[async_trait]
impl Services for Backend {
    async fn invoke(&self, _caller: &Context, name: &str, payload: Payload) -> Result<Payload, Error> {
        self.0.lock().unwrap().push((name.to_string(), payload.body().to_vec()));
        match name {
            "remote" => Payload::json(&json!({"remote": payload.json_as::<Value>()?})),
            "small" if payload.len() > 16 => {
                Err(Error::payload_too_large("request payload of 20 bytes exceeds the limit of 16 bytes")
                    .with_type("RequestTooLarge"))
            }
            _ => Err(Error::not_found(format!("no function named `{name}`"))),
        }
    }
    async fn emit(&self, _caller: &Context, _event: Event) -> Result<(), Error> {
        Ok(())
    }
}

fn app(seen: &Seen) -> App {
    let s = seen.clone();
    let inc = move |cx: Context, mut v: Value| {
        let s = s.clone();
        async move {
            s.0.lock().unwrap().push((
                cx.function_name().to_string(),
                cx.invocation_id().to_string(),
                cx.trace().trace_id().to_string(),
            ));
            cx.logger().info(format!("n was {}", v["n"]));
            v["n"] = json!(v["n"].as_i64().unwrap_or(0) + 1);
            Ok::<_, Error>(v)
        }
    };
    App::new()
        .function("inc", inc)
        // Pretty-printed JSON with its keys out of order: answered on unchanged, byte for byte.
        .raw("pretty", |_cx: Context, _p: Payload| async {
            Ok::<_, Error>(Payload::new("{ \"b\": 1,\n  \"a\": 2 }", Some("application/json".into())))
        })
        .raw("echo", |_cx: Context, p: Payload| async move { Ok::<_, Error>(p) })
        .function("declined", |_cx: Context, _v: Value| async {
            Err::<Value, _>(Error::function("CardDeclined", "the card was declined"))
        })
}

#[tokio::test]
async fn fused_steps_run_in_the_invocation_each_with_its_own_context() {
    let seen = Seen::default();
    let app = app(&seen).composition("three", seq([call("inc"), call("inc"), call("inc")]));
    let lines = Arc::new(Lines::default());
    let cx = Context::builder("three").invocation_id("run-1").log_sink(lines.clone()).build();
    let trace = cx.trace().trace_id().to_string();
    let out = app.call("three", cx, Payload::json(&json!({"n": 0})).unwrap()).await.unwrap();
    assert_eq!(out.json_as::<Value>().unwrap(), json!({"n": 3}));
    let seen = seen.0.lock().unwrap().clone();
    let ids: Vec<&str> = seen.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(ids, ["run-1/1", "run-1/2", "run-1/3"]);
    assert!(seen.iter().all(|(f, _, t)| f == "inc" && *t == trace), "{seen:?}");
    // Each step's log lines carry the step's id, in the run's log.
    let lines = lines.0.lock().unwrap().clone();
    assert_eq!(lines[0], ("run-1/1".to_string(), "n was 0".to_string()));
    assert_eq!(lines.len(), 3);
}

#[tokio::test]
async fn a_composition_of_one_step_answers_exactly_what_the_step_answers() {
    let app = app(&Seen::default())
        .composition("pretty_too", seq([call("pretty")]))
        .composition("echo_too", seq([call("echo")]))
        .composition("declined_too", seq([call("declined")]));
    let direct = app.call("pretty", Context::builder("pretty").build(), Payload::empty()).await.unwrap();
    let composed = app.call("pretty_too", Context::builder("pretty_too").build(), Payload::empty()).await.unwrap();
    assert_eq!(composed.body(), direct.body());
    assert_eq!(composed.content_type(), Some("application/json"));
    // Bytes that are not JSON reach the step, and come back, as they were.
    let bytes = Payload::new(vec![0u8, 0xff, 0x10, b'{'], Some("application/octet-stream".into()));
    let out = app.call("echo_too", Context::builder("echo_too").build(), bytes.clone()).await.unwrap();
    assert_eq!((out.body(), out.content_type()), (bytes.body(), bytes.content_type()));
    let empty = app.call("echo_too", Context::builder("echo_too").build(), Payload::empty()).await.unwrap();
    assert!(empty.is_empty());
    // Malformed JSON reaches the step as it was, which refuses it as it would refuse it directly.
    let app = app.composition("inc_too", seq([call("inc")]));
    let bad = || Payload::new("{\"n\": ", Some("application/json".into()));
    let direct = app.call("inc", Context::builder("inc").build(), bad()).await.unwrap_err();
    let composed = app.call("inc_too", Context::builder("inc_too").build(), bad()).await.unwrap_err();
    assert_eq!((composed.kind(), composed.message()), (direct.kind(), direct.message()));
    assert_eq!(direct.kind(), ErrorKind::BadInput);
    // The step's error is the composition's, kind and type unchanged.
    let err = app.call("declined_too", Context::builder("d").build(), Payload::json(&1).unwrap()).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.error_type(), err.message()),
        (ErrorKind::Function, "CardDeclined", "the card was declined")
    );
}

#[tokio::test]
async fn steps_outside_the_app_go_through_the_backend() {
    let backend = Arc::new(Backend::default());
    let app = app(&Seen::default()).composition("mixed", seq([call("inc"), call("remote"), call("missing")]));
    let cx = Context::builder("mixed").services(backend.clone()).build();
    let err = app.call("mixed", cx, Payload::json(&json!({"n": 1})).unwrap()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let calls = backend.0.lock().unwrap().clone();
    assert_eq!(calls[0], ("remote".to_string(), br#"{"n":2}"#.to_vec()));
    assert_eq!(calls[1].0, "missing");
    assert_eq!(String::from_utf8(calls[1].1.clone()).unwrap(), r#"{"remote":{"n":2}}"#);
}

#[tokio::test]
async fn unfused_every_step_goes_through_the_backend() {
    let backend = Arc::new(Backend::default());
    let seen = Seen::default();
    let app = app(&seen).composition("twice", seq([call("echo"), call("remote")]));
    let cx = Context::builder("twice").services(backend.clone()).var("FAAS_FUSE", "off").build();
    let err = app.call("twice", cx, Payload::json(&json!({"n": 1})).unwrap()).await.unwrap_err();
    // `echo` is the app's, yet invoked as a function of its own (the test backend has no `echo`).
    assert_eq!((err.kind(), err.message()), (ErrorKind::NotFound, "no function named `echo`"));
    assert_eq!(backend.0.lock().unwrap().clone(), [("echo".to_string(), br#"{"n":1}"#.to_vec())]);
    // `on` is fusion, as no variable is; anything else is refused, naming the composition.
    let cx = Context::builder("twice").services(backend.clone()).var("FAAS_FUSE", "on").build();
    let answer = app.call("twice", cx, Payload::json(&json!({"n": 1})).unwrap()).await.unwrap();
    assert_eq!(answer.json_as::<Value>().unwrap(), json!({"remote": {"n": 1}}));
    let cx = Context::builder("twice").services(backend.clone()).var("FAAS_FUSE", "sometimes").build();
    let err = app.call("twice", cx, Payload::empty()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    assert_eq!(err.message(), "composition `twice`: FAAS_FUSE is `sometimes`: give `on` or `off`");
}

#[tokio::test]
async fn a_step_over_its_backends_limit_is_named_with_the_size_sent() {
    let backend = Arc::new(Backend::default());
    let app = app(&Seen::default()).composition("big", seq([call("inc"), call("small")]));
    let cx = Context::builder("big").services(backend.clone()).build();
    let err = app.call("big", cx, Payload::json(&json!({"n": 1, "pad": "xxxx"})).unwrap()).await.unwrap_err();
    assert_eq!((err.kind(), err.error_type()), (ErrorKind::PayloadTooLarge, "RequestTooLarge"));
    assert_eq!(
        err.message(),
        "step `small` of composition `big` was sent 20 bytes: request payload of 20 bytes exceeds the limit of 16 bytes"
    );
}

#[tokio::test]
async fn catch_retry_and_a_secret_the_steps_never_see() {
    let app = app(&Seen::default())
        .composition(
            "guarded",
            seq([call("declined")
                .retry_with(Retry {
                    body: Box::new(seq([])),
                    attempts: 3,
                    base_ms: 1,
                    rate: 2.0,
                    cap_ms: None,
                    jitter: false,
                    kinds: vec![ErrorKind::Function],
                })
                .catch([ErrorKind::Function], value(pointer("/errorType")))]),
        )
        .composition(
            "secret",
            let_(
                [("token", pointer("/token"))],
                seq([call("echo").input(pointer("/order")), call("echo").input(object([("token", var("token"))]))]),
            ),
        );
    let out = app.call_json("guarded", &json!(1)).await.unwrap();
    assert_eq!(out, "CardDeclined");
    let out = app.call_json("secret", &json!({"order": 7, "token": "s3cret"})).await.unwrap();
    assert_eq!(out, json!({"token": "s3cret"}));
}

#[tokio::test]
async fn compositions_nest_and_one_calling_itself_is_stopped() {
    let app = app(&Seen::default())
        .composition("twice", seq([call("inc"), call("inc")]))
        .composition("four", seq([call("twice"), call("twice")]))
        .composition("forever", seq([call("inc"), call("forever")]));
    assert_eq!(app.call_json("four", &json!({"n": 0})).await.unwrap(), json!({"n": 4}));
    let err = app.call_json("forever", &json!({"n": 0})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    assert!(err.message().contains(&format!("nested {MAX_NESTING} compositions deep")), "{}", err.message());
}

#[tokio::test]
async fn parallel_and_map_over_the_apps_functions() {
    let app = app(&Seen::default())
        .composition("both", parallel([call("inc"), seq([call("inc"), call("inc")])]))
        .composition("each", map("/items", call("inc")));
    assert_eq!(app.call_json("both", &json!({"n": 0})).await.unwrap(), json!([{"n": 1}, {"n": 2}]));
    let out = app.call_json("each", &json!({"items": [{"n": 1}, {"n": 5}]})).await.unwrap();
    assert_eq!(out, json!([{"n": 2}, {"n": 6}]));
    // A map 1,000 items wide (TRI-08).
    let items: Vec<Value> = (0..1000).map(|n| json!({"n": n})).collect();
    let out = app.call_json("each", &json!({"items": items})).await.unwrap();
    assert_eq!(out.as_array().map(Vec::len), Some(1000));
    assert!(out.as_array().unwrap().iter().enumerate().all(|(i, v)| v["n"] == json!(i + 1)), "{out}");
}

#[tokio::test]
async fn waiting_for_an_event_inside_one_invocation_is_refused_clearly() {
    let app = app(&Seen::default())
        .composition("waits", seq([call("inc"), await_event(EventFilter::new().event_type("paid"), 1000)]));
    let err = app.call_json("waits", &json!({"n": 0})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BackendUnavailable);
    assert!(err.message().contains("event gateway's conductor"), "{}", err.message());
}

#[test]
fn the_manifest_describes_a_composition_by_its_json_form() {
    let program = seq([call("inc"), when(at("/n").gt(3), call("echo"))]);
    let app = app(&Seen::default()).composition("described", program.clone());
    let d = app.manifest().function("described").cloned().unwrap();
    assert_eq!(d.handler, HandlerKind::Composition);
    let json = d.composition.expect("the program");
    assert_eq!(Composition::from_value(&json).unwrap(), Composition::new(program));
    // A name taken twice stays one function, and the problem is reported.
    let twice = app.composition("described", call("inc"));
    assert!(twice.validate().unwrap_err().message().contains("`described` is defined twice"));
}
