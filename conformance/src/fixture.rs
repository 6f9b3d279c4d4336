//! The fixture app: the probe functions every backend hosts while the suite runs.
//!
//! Each probe does one observable thing (echo bytes, fail, panic, sleep, report its context, count
//! warm invocations, return a large body, emit an event, read a variable, answer a CloudEvent, log
//! a marker), so a case can check one promise of the portable API through the runner SPI alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use faas_api::cloudevents::{AttributesReader, AttributesWriter, Event};
use faas_api::{App, Context, ContextReport, Error, EventFilter, Payload};
use faas_composition::{call as composition_call, seq, AppExt};
use serde::{Deserialize, Serialize};

/// The event type the `emit` probe is asked to emit in ASY-01, and the one `collect` subscribes to.
pub const EMITTED_TYPE: &str = "probe.emitted";
/// The type of the reply event of the `event` probe.
pub const REPLY_TYPE: &str = "probe.reply";
/// The source of the reply event of the `event` probe.
pub const REPLY_SOURCE: &str = "/faas/probe";
/// The extension of the reply event carrying the id of the event it answers.
pub const ORIGINAL_ID: &str = "originalid";
/// The largest body the `big` probe will produce (128 MiB, above every backend's synchronous
/// limit: Azure's is 100 MB), so a typo cannot exhaust memory.
pub const BIG_LIMIT: usize = 128 * 1024 * 1024;
/// The longest the `sleep` probe will sleep (15 minutes, the longest timeout any backend allows).
pub const SLEEP_LIMIT_MS: u64 = 15 * 60 * 1000;

/// Names of every probe function, in declaration order (the compositions last).
pub const PROBES: [&str; 18] = [
    "echo",
    "typed",
    "fail",
    "panic",
    "sleep",
    "context",
    "counter",
    "big",
    "emit",
    "env",
    "event",
    "log",
    "collect",
    "call",
    "state",
    "seq-echo",
    "seq-typed",
    "seq-fail",
];

/// The compositions of the fixture, each `seq([call(step)])` of one probe, and that probe: TRI-01
/// checks that each answers exactly what its step answers (COMPOSITION.md, substitution).
pub const COMPOSITIONS: [(&str, &str); 3] = [("seq-echo", "echo"), ("seq-typed", "typed"), ("seq-fail", "fail")];

/// Builds the fixture app.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let app = faas_conformance::fixture_app();
/// let reply = app.call_json("typed", &serde_json::json!({"name": "Ada"})).await.unwrap();
/// assert_eq!(reply, serde_json::json!({"message": "Hello, Ada!"}));
/// assert_eq!(app.names(), faas_conformance::fixture::PROBES);
/// # });
/// ```
pub fn fixture_app() -> App {
    let app = App::new()
        .raw("echo", echo)
        .function("typed", typed)
        .function("fail", fail)
        .function("panic", panic_probe)
        .function("sleep", sleep)
        .raw("context", context)
        .raw("counter", counter)
        .raw("big", big)
        .function("emit", emit)
        .function("env", env)
        .event("event", event)
        .function("log", log)
        .event("collect", collect)
        .subscribe("collect", EventFilter::new().event_type(EMITTED_TYPE))
        .function("call", call)
        .function("state", state);
    COMPOSITIONS.iter().fold(app, |app, (name, step)| app.composition(name, seq([composition_call(*step)])))
}

/// Bytes in, the same bytes and content type out.
async fn echo(_cx: Context, payload: Payload) -> Result<Payload, Error> {
    Ok(payload)
}

/// The input of the `typed` probe.
#[derive(Debug, Deserialize)]
struct Name {
    name: String,
}

/// The reply of the `typed` probe.
#[derive(Debug, Serialize)]
struct Greeting {
    message: String,
}

async fn typed(_cx: Context, req: Name) -> Result<Greeting, Error> {
    Ok(Greeting { message: format!("Hello, {}!", req.name) })
}

/// A function error of type `ProbeError` whose message is the input string.
async fn fail(_cx: Context, message: String) -> Result<(), Error> {
    Err(Error::function("ProbeError", message))
}

/// Panics with the input string as the panic message.
async fn panic_probe(_cx: Context, message: String) -> Result<(), Error> {
    std::panic::panic_any(message)
}

#[derive(Debug, Deserialize)]
struct Sleep {
    ms: u64,
}

async fn sleep(_cx: Context, req: Sleep) -> Result<serde_json::Value, Error> {
    if req.ms > SLEEP_LIMIT_MS {
        return Err(Error::bad_input(format!("`ms` is {}; the limit is {SLEEP_LIMIT_MS}", req.ms)));
    }
    tokio::time::sleep(Duration::from_millis(req.ms)).await;
    Ok(serde_json::json!({ "slept_ms": req.ms }))
}

/// Reports the context it received; the input is ignored.
async fn context(cx: Context, _payload: Payload) -> Result<Payload, Error> {
    Payload::json(&ContextReport::from(&cx))
}

/// Process-global: survives across invocations only where an instance is reused.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Increments the process-global counter and returns `{"count": n}`; the input is ignored.
async fn counter(_cx: Context, _payload: Payload) -> Result<Payload, Error> {
    let count = COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
    Payload::json(&serde_json::json!({ "count": count }))
}

#[derive(Debug, Deserialize)]
struct Big {
    n: usize,
}

/// `{"n": n}` in, `n` bytes (`application/octet-stream`) out. Byte `i` is `i % 251`, so a
/// truncated or shifted body does not compare equal.
async fn big(_cx: Context, payload: Payload) -> Result<Payload, Error> {
    let req: Big = payload.json_as()?;
    if req.n > BIG_LIMIT {
        return Err(Error::bad_input(format!("`n` is {}; the limit is {BIG_LIMIT}", req.n)));
    }
    Ok(Payload::bytes(big_body(req.n)))
}

/// The body the `big` probe returns for `n`.
pub fn big_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Emits the structured CloudEvent given as input.
async fn emit(cx: Context, input: serde_json::Value) -> Result<serde_json::Value, Error> {
    let event = faas_api::event::event_from_json(input)?;
    let id = event.id().to_string();
    cx.emit(event).await?;
    Ok(serde_json::json!({ "emitted": id }))
}

#[derive(Debug, Deserialize)]
struct Key {
    key: String,
}

/// `{"key": k}` in, `{"value": <the variable k, or null>}` out.
async fn env(cx: Context, req: Key) -> Result<serde_json::Value, Error> {
    Ok(serde_json::json!({ "value": cx.var(&req.key) }))
}

/// Answers a CloudEvent with a `probe.reply` event from `/faas/probe` that carries the original
/// id in the `originalid` extension, the original extensions and the same data.
async fn event(_cx: Context, original: Event) -> Result<Option<Event>, Error> {
    let mut reply = original.clone();
    reply.set_id(uuid::Uuid::new_v4().to_string());
    reply.set_type(REPLY_TYPE);
    reply.set_source(REPLY_SOURCE);
    reply.set_extension(ORIGINAL_ID, original.id().to_string());
    Ok(Some(reply))
}

#[derive(Debug, Deserialize)]
struct Marker {
    marker: String,
}

/// Writes the marker through the context logger and to standard output.
async fn log(cx: Context, req: Marker) -> Result<serde_json::Value, Error> {
    cx.logger().info(format!("logger {}", req.marker));
    println!("stdout {}", req.marker);
    Ok(serde_json::json!({ "ok": true }))
}

/// Subscribed to `probe.emitted`: logs `collected <event id>` so the suite can observe delivery.
async fn collect(cx: Context, event: Event) -> Result<Option<Event>, Error> {
    cx.logger().info(format!("collected {}", event.id()));
    Ok(None)
}

/// What the `call` probe is asked to do: invoke `function` of the app with a JSON `payload`, or
/// with `text` as a `text/plain` body.
#[derive(Debug, Deserialize)]
pub struct Call {
    /// The logical name of the function to invoke.
    pub function: String,
    /// A JSON payload.
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
    /// A `text/plain` payload, instead of `payload`.
    #[serde(default)]
    pub text: Option<String>,
}

/// Invokes another function of the app by its logical name (`cx.invoke`) and returns its reply:
/// `{"reply": <JSON>}` for a JSON reply, else `{"text": <body>, "content_type": <type>}`. An error
/// of the callee is returned as this probe's own error, unchanged.
async fn call(cx: Context, req: Call) -> Result<serde_json::Value, Error> {
    let payload = match (req.text, req.payload) {
        (Some(text), _) => Payload::new(text, Some("text/plain".to_string())),
        (None, payload) => Payload::json(&payload.unwrap_or(serde_json::Value::Null))?,
    };
    let reply = cx.invoke(&req.function, payload).await?;
    let json = reply.content_type().is_some_and(|t| t.starts_with("application/json"));
    Ok(match serde_json::from_slice::<serde_json::Value>(reply.body()) {
        Ok(v) if json => serde_json::json!({ "reply": v }),
        _ => serde_json::json!({
            "text": String::from_utf8_lossy(reply.body()),
            "content_type": reply.content_type(),
        }),
    })
}

/// What the `state` probe is asked to do with `cx.state()`.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum StateOp {
    /// Read `key`: `{"value": <JSON or null>, "version": <n or null>, "expires": <bool>}`.
    Get { key: String },
    /// Write `value` to `key` (only at `version`, or only if absent with `version: null`, when
    /// `if_version` is given; for `ttl_ms` when given): `{"version": n}`.
    Set {
        key: String,
        value: serde_json::Value,
        #[serde(default, with = "serde_with_double_option")]
        if_version: Option<Option<u64>>,
        ttl_ms: Option<u64>,
    },
    /// Adds one to the number at `key` with a `set_if` retry loop: `{"value": n, "conflicts": c}`.
    Incr { key: String },
}

/// `if_version` absent (write whatever the version), `null` (only if absent) or a number.
mod serde_with_double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
        Option::<u64>::deserialize(d).map(Some)
    }
}

/// Reads and writes the app's portable state (`cx.state()`), as `op` says (see [`StateOp`]); a
/// write whose condition fails is the portable `conflict` error, unchanged.
async fn state(cx: Context, op: StateOp) -> Result<serde_json::Value, Error> {
    use faas_api::state::{Expect, SetOptions, Version};
    let state = cx.state();
    match op {
        StateOp::Get { key } => {
            let read = state.get_json::<serde_json::Value>(&key).await?;
            Ok(serde_json::json!({
                "value": read.as_ref().map(|r| r.value.clone()),
                "version": read.as_ref().map(|r| r.version.0),
                "expires": read.as_ref().is_some_and(|r| r.expires_at.is_some()),
            }))
        }
        StateOp::Set { key, value, if_version, ttl_ms } => {
            let expect = match if_version {
                None => Expect::Any,
                Some(v) => Expect::read(v.map(Version)),
            };
            let bytes = serde_json::to_vec(&value).map_err(|e| Error::bad_input(e.to_string()))?;
            let options = SetOptions { expect, ttl: ttl_ms.map(Duration::from_millis) };
            let version = state.set_with(&key, bytes, options).await?;
            Ok(serde_json::json!({ "version": version.0 }))
        }
        StateOp::Incr { key } => {
            let mut conflicts = 0u64;
            loop {
                let current = state.get_json::<u64>(&key).await?;
                let (n, version) = current.map_or((0, None), |c| (c.value, Some(c.version)));
                match state.set_json_if(&key, &(n + 1), version).await {
                    Ok(_) => return Ok(serde_json::json!({ "value": n + 1, "conflicts": conflicts })),
                    Err(e) if e.kind() == faas_api::ErrorKind::Conflict => conflicts += 1,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probes_behave_in_process() {
        let app = fixture_app();
        assert!(app.validate().is_ok());
        let err = app.call_json("fail", &"boom").await.unwrap_err();
        assert_eq!(
            (err.kind(), err.error_type(), err.message()),
            (faas_api::ErrorKind::Function, "ProbeError", "boom")
        );
        let err = app.call_json("panic", &"kaboom").await.unwrap_err();
        assert_eq!(err.kind(), faas_api::ErrorKind::Crash);
        assert!(err.message().contains("kaboom"), "{}", err.message());
        let cx = Context::builder("big").build();
        let out = app.call("big", cx, Payload::json(&serde_json::json!({"n": 1000})).unwrap()).await.unwrap();
        assert_eq!(out.body().as_ref(), big_body(1000).as_slice());
        let cx = Context::builder("env").var("PROBE_VAR", "one").build();
        let out = app.call("env", cx, Payload::json(&serde_json::json!({"key": "PROBE_VAR"})).unwrap()).await.unwrap();
        assert_eq!(out.json_as::<serde_json::Value>().unwrap(), serde_json::json!({"value": "one"}));
    }

    #[tokio::test]
    async fn event_probe_replies_with_original_id_and_data() {
        let app = fixture_app();
        let input = serde_json::json!({"specversion": "1.0", "id": "e1", "source": "/t", "type": "t.x",
            "myext": "v", "datacontenttype": "application/json", "data": {"a": 1}});
        let out = app.call("event", Context::builder("event").build(), Payload::json(&input).unwrap()).await.unwrap();
        let reply = faas_api::event::decode_structured(out.body()).unwrap();
        assert_eq!(reply.ty(), REPLY_TYPE);
        assert_eq!(reply.source(), REPLY_SOURCE);
        assert_ne!(reply.id(), "e1");
        assert_eq!(reply.extension(ORIGINAL_ID).unwrap().to_string(), "e1");
        assert_eq!(reply.extension("myext").unwrap().to_string(), "v");
        assert_eq!(reply.data(), Some(&faas_api::cloudevents::Data::Json(serde_json::json!({"a": 1}))));
    }

    #[tokio::test]
    async fn limits_are_enforced() {
        let app = fixture_app();
        let err = app.call_json("sleep", &serde_json::json!({"ms": SLEEP_LIMIT_MS + 1})).await.unwrap_err();
        assert!(err.message().contains("`ms`"), "{}", err.message());
        let cx = Context::builder("big").build();
        let err =
            app.call("big", cx, Payload::json(&serde_json::json!({"n": BIG_LIMIT + 1})).unwrap()).await.unwrap_err();
        assert!(err.message().contains("`n`"), "{}", err.message());
    }
}
