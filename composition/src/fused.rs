//! A composition as a function of its app, its steps run inside its own invocation.
//!
//! [`AppExt::composition`] adds a composition to an [`App`] as a function of that name (handler
//! kind `composition`, its JSON form in the manifest). Invoking it drives the [`machine`]
//! in the invocation itself: a step that is a function of the same app is dispatched to that
//! function's handler directly (fused: no second invocation, nothing billed waits), with a
//! context of its own ([`Context::step`]: invocation id `{run}/{n}`, a child span of the run's
//! trace, the run's deadline and log sink). A step that is not a function of the app is invoked
//! through the backend (`cx.invoke`), and this invocation waits for it: the planner
//! ([`crate::plan`]) reports those steps, which the durable conductor will take over. With
//! [`ENV_FUSE`]` = off` in the composition's deployed environment (`--no-fuse`), every step is
//! invoked so: the unfused baseline, each step its own invocation on the backend.
//!
//! Payloads: an empty one is `null`; a body that parses as JSON (under a JSON content type, none,
//! or the text types a typed function reads as JSON) is its JSON value; anything else is its
//! text as a JSON string (base64 when it is not UTF-8). A step given exactly the value the
//! previous step answered (or the run's input) receives the very bytes and content type it came
//! with, and a run that ends on such a value answers those bytes: `seq([call("f")])` answers
//! exactly what `f` answers, a refusal of malformed input included.
//!
//! ```
//! use faas_api::{App, Context, Error};
//! use faas_composition::{AppExt, at, call, seq, when};
//! async fn double(_cx: Context, n: i64) -> Result<i64, Error> { Ok(n * 2) }
//! async fn label(cx: Context, n: i64) -> Result<String, Error> {
//!     Ok(format!("{n} from {}", cx.function_name()))
//! }
//! let app = App::new()
//!     .function("double", double)
//!     .function("label", label)
//!     .composition("grow", seq([call("double"), when(at("").lt(10), call("double")), call("label")]));
//! assert!(app.validate().is_ok());
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! assert_eq!(app.call_json("grow", &3).await.unwrap(), "12 from label"); // 3 → 6 → 12
//! assert_eq!(app.call_json("grow", &6).await.unwrap(), "12 from label"); // 6 → 12
//! # });
//! ```

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use faas_api::handler::{AppHandler, Invocation};
use faas_api::{App, Error, Payload};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::Composition;
use crate::machine::{Action, Event, Program, State, advance};

/// The variable of a composition's deployment that turns fusion off: with `FAAS_FUSE=off` every
/// step, the app's own functions included, is invoked through the backend (`cx.invoke`) while
/// the composition's invocation waits, as the planner shows with `faas plan --no-fuse`. It is
/// what `faas deploy --no-fuse` and `faas dev --no-fuse` set on each composition, and what
/// `[functions.NAME] env = { FAAS_FUSE = "off" }` in `faas.toml` sets for one; `on`, or no
/// variable, is fusion.
pub const ENV_FUSE: &str = "FAAS_FUSE";

/// Whether the value of [`ENV_FUSE`] turns fusion on (none, `on`, `true`, `1`) or off (`off`,
/// `false`, `0`); anything else is refused with a message naming the variable.
///
/// ```
/// use faas_composition::fused::fusion;
/// assert_eq!(fusion(None), Ok(true));
/// assert_eq!(fusion(Some("off")), Ok(false));
/// assert_eq!(fusion(Some("no thanks")).unwrap_err(), "FAAS_FUSE is `no thanks`: give `on` or `off`");
/// ```
pub fn fusion(value: Option<&str>) -> Result<bool, String> {
    match value.map(str::trim) {
        None | Some("on" | "true" | "1") => Ok(true),
        Some("off" | "false" | "0") => Ok(false),
        Some(other) => Err(format!("{ENV_FUSE} is `{other}`: give `on` or `off`")),
    }
}

/// Turns fusion off for every composition among `functions` (sets [`ENV_FUSE`] to `off` in its
/// deployed environment): what `--no-fuse` does before a deploy.
///
/// ```
/// use faas_api::{FunctionSpec, HandlerKind};
/// let mut specs = vec![FunctionSpec::new("inc"), FunctionSpec { handler: HandlerKind::Composition, ..FunctionSpec::new("twice") }];
/// faas_composition::fused::unfuse(&mut specs);
/// assert_eq!(specs[1].env.get("FAAS_FUSE").map(String::as_str), Some("off"));
/// assert!(specs[0].env.is_empty()); // a plain function keeps its environment
/// ```
pub fn unfuse(functions: &mut [faas_api::FunctionSpec]) {
    for f in functions.iter_mut().filter(|f| f.handler == faas_api::HandlerKind::Composition) {
        f.env.insert(ENV_FUSE.to_string(), "off".to_string());
    }
}

/// Whether composition `spec` is deployed fused ([`ENV_FUSE`] in its environment); a value that
/// is neither is `bad_input` naming the composition.
pub fn fused(spec: &faas_api::FunctionSpec) -> Result<bool, Error> {
    fusion(spec.env.get(ENV_FUSE).map(String::as_str))
        .map_err(|e| Error::bad_input(format!("composition `{}`: {e}", spec.name)))
}

/// How deep compositions of one app may call each other inside one invocation: a composition
/// that calls itself, directly or through another, is stopped there with a `bad_input` error.
pub const MAX_NESTING: u32 = 16;

/// Declaring compositions on an [`App`] (also `faas::AppExt`).
pub trait AppExt {
    /// Adds composition `name` running `program` (a [`crate::Node`] from the builder DSL, or a
    /// [`Composition`] read from its JSON form). A program that does not check (a bad function
    /// name, a variable out of scope, a JSON Pointer without its `/`) is a problem
    /// [`App::validate`] reports, naming the composition and the JSON path.
    ///
    /// ```
    /// use faas_api::App;
    /// use faas_composition::{AppExt, call};
    /// let app = App::new().composition("bad", call("no spaces allowed"));
    /// let err = app.validate().unwrap_err();
    /// assert!(err.message().contains("composition `bad`: /program/function"), "{}", err.message());
    /// ```
    fn composition(self, name: &str, program: impl Into<Composition>) -> App;
}

impl AppExt for App {
    fn composition(self, name: &str, program: impl Into<Composition>) -> App {
        let composition = program.into();
        let json = composition.to_json();
        // The builder builds any tree; the reader checks it. What runs is what reads back.
        match Composition::from_value(&json) {
            Ok(checked) => {
                let program = Arc::new(Program::compile(&checked.program));
                self.composed(name, json, Fused { program })
            }
            Err(e) => self.with_problem(format!(
                "composition `{name}`: {}{}",
                if e.path.is_empty() { String::new() } else { format!("{}: ", e.path) },
                e.message
            )),
        }
    }
}

impl From<crate::Node> for Composition {
    fn from(program: crate::Node) -> Composition {
        Composition::new(program)
    }
}

/// The handler of a composition fused into its invocation.
struct Fused {
    program: Arc<Program>,
}

/// How many fused compositions enclose this invocation (a context extension).
#[derive(Debug, Clone, Copy)]
struct Nesting(u32);

impl AppHandler for Fused {
    fn call(&self, app: &App, invocation: Invocation) -> BoxFuture<'static, Result<Payload, Error>> {
        let program = self.program.clone();
        let app = app.clone();
        async move { run(&program, &app, invocation).await }.boxed()
    }
}

/// The value the machine works on and the payload it came as, so that it can be handed on as
/// those same bytes.
struct Current {
    value: Value,
    payload: Payload,
}

impl Current {
    fn of(payload: Payload) -> Current {
        Current { value: value_of(&payload), payload }
    }

    /// What to send for `value`: the payload it came as when it is the current value.
    fn payload_for(&self, value: &Value) -> Result<Payload, Error> {
        if *value == self.value { Ok(self.payload.clone()) } else { Payload::json(value) }
    }
}

async fn run(program: &Program, app: &App, invocation: Invocation) -> Result<Payload, Error> {
    let Invocation { cx, payload } = invocation;
    let nesting = cx.extension::<Nesting>().map_or(0, |n| n.0);
    if nesting >= MAX_NESTING {
        return Err(Error::bad_input(format!(
            "composition `{}` is nested {MAX_NESTING} compositions deep in one invocation; does it call itself?",
            cx.function_name()
        )));
    }
    let fuse = fusion(cx.var(ENV_FUSE).as_deref())
        .map_err(|e| Error::bad_input(format!("composition `{}`: {e}", cx.function_name())))?;
    let mut current = Current::of(payload);
    let mut state = State::default();
    let mut event = Event::Start { input: current.value.clone(), seed: seed_of(cx.invocation_id()) };
    loop {
        let (next, action) = advance(program, state, event)?;
        state = next;
        event = match action {
            Action::Invoke { function, input } => {
                let payload = current.payload_for(&input)?;
                let answer = if fuse && app.contains(&function) {
                    let step = cx.step(&function, &state.seq.to_string()).with_extension(Nesting(nesting + 1));
                    app.call(&function, step, payload).await
                } else {
                    let sent = payload.len();
                    cx.invoke(&function, payload).await.map_err(|e| step_limit(e, cx.function_name(), &function, sent))
                };
                Event::Answer(answer.map(|reply| {
                    current = Current::of(reply);
                    current.value.clone()
                }))
            }
            Action::Sleep { ms } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Event::Timer
            }
            Action::AwaitEvent { .. } => Event::Answer(Err(Error::unavailable(format!(
                "composition `{}` waits for an event, which needs the event gateway's conductor; \
                 a composition run inside one invocation cannot receive events",
                cx.function_name()
            )))),
            Action::Finish(result) => return current.payload_for(&result?),
        };
    }
}

/// A step's backend refusing what it was sent as too large names the step and the size, so the
/// caller of the composition can tell which step's limit it hit (the backend's message keeps the
/// limit); every other error is the step's own, unchanged.
fn step_limit(e: Error, composition: &str, function: &str, sent: usize) -> Error {
    if e.kind() != faas_api::ErrorKind::PayloadTooLarge {
        return e;
    }
    let error_type = e.error_type().to_string();
    Error::new(
        e.kind(),
        format!("step `{function}` of composition `{composition}` was sent {sent} bytes: {}", e.message()),
    )
    .with_type(error_type)
}

/// A payload's value: empty is `null`; a body that parses as JSON, under a JSON content type,
/// none, or one of the text types a typed function also reads as JSON (`text/plain`, a form,
/// what `curl -d` sends), is that JSON; anything else is its text as a JSON string (base64 when
/// it is not UTF-8). Nothing is refused here: a body that does not parse still reaches the step
/// as the bytes it is, and the step answers it as it would answer a direct call.
pub fn value_of(payload: &Payload) -> Value {
    let body = payload.body();
    if body.is_empty() {
        return Value::Null;
    }
    if payload.may_hold_json()
        && let Ok(value) = serde_json::from_slice(body)
    {
        return value;
    }
    Value::String(match std::str::from_utf8(body) {
        Ok(text) => text.to_string(),
        Err(_) => base64::engine::general_purpose::STANDARD.encode(body),
    })
}

/// FNV-1a of the run's id: retry jitter differs between runs and repeats within one.
fn seed_of(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_values() {
        assert_eq!(value_of(&Payload::empty()), Value::Null);
        assert_eq!(value_of(&Payload::new("{\"a\":1}", None)), serde_json::json!({"a": 1}));
        assert_eq!(value_of(&Payload::new("hi", Some("text/plain".into()))), "hi");
        assert_eq!(value_of(&Payload::new(vec![0xff, 0], Some("application/octet-stream".into()))), "/wA=");
        assert_eq!(value_of(&Payload::new("[1]", Some("text/plain".into()))), serde_json::json!([1]));
        assert_eq!(value_of(&Payload::new("[1]", Some("image/svg".into()))), "[1]");
        // Not JSON after all: the text, and the step gets the bytes to refuse as it would.
        assert_eq!(value_of(&Payload::new("{", Some("application/json".into()))), "{");
    }
}
