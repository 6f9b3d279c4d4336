//! The conformance catalogue as data and code: one [`Case`] per id, each an async check that
//! drives a backend black-box through the runner SPI and explains any failure with what it sent,
//! what it expected and what it got. A case declares every capability it needs
//! ([`Case::needs`]); on a backend that does not claim one of them it is "not supported", and
//! everywhere else it must pass ([`Case::expected`]).

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use faas_api::cloudevents::{AttributesReader, Data, Event};
use faas_api::{
    ActivationQuery, ActivationStatus, Capabilities, Capability, ContextReport, Error, ErrorKind, InvokeMode,
    InvokeRequest, Invoked, Payload,
};
use futures::future::BoxFuture;

use crate::fixture::{big_body, EMITTED_TYPE, ORIGINAL_ID, REPLY_SOURCE, REPLY_TYPE};
use crate::harness::{Harness, PROBE_VAR, PROBE_VAR_VALUE};

/// What a case concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The backend did what the case expects.
    Pass,
    /// It did not: what was sent, what was expected, what came back.
    Fail(String),
    /// The case cannot be checked on this backend, and why.
    NotSupported(String),
}

/// The outcome of one case plus a remark (empty when there is nothing to say). A failure's or
/// a "not supported"'s reason is in the [`Outcome`]; the note repeats it for the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The outcome.
    pub outcome: Outcome,
    /// The note for the matrix.
    pub note: String,
}

impl CaseResult {
    pub(crate) fn from_check(check: Check) -> CaseResult {
        match check {
            Ok(note) => CaseResult { outcome: Outcome::Pass, note },
            Err(Outcome::Pass) => CaseResult { outcome: Outcome::Pass, note: String::new() },
            Err(Outcome::Fail(why)) => CaseResult { note: why.clone(), outcome: Outcome::Fail(why) },
            Err(Outcome::NotSupported(why)) => CaseResult { note: why.clone(), outcome: Outcome::NotSupported(why) },
        }
    }
}

/// What a case body returns: `Ok(note)` on a pass, `Err(outcome)` to stop with a failure or a
/// "not supported".
pub(crate) type Check = Result<String, Outcome>;

type CaseFn = for<'a> fn(&'a Harness) -> BoxFuture<'a, Check>;

/// One entry of the catalogue.
#[derive(Clone, Copy)]
pub struct Case {
    /// Catalogue id, e.g. `INV-01`.
    pub id: &'static str,
    /// The capabilities it needs: none for a `core` case, which must pass on every backend.
    pub needs: &'static [Capability],
    /// What it checks, in a few words.
    pub title: &'static str,
    run: CaseFn,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("id", &self.id).field("needs", &self.needs).field("title", &self.title).finish()
    }
}

impl Case {
    /// `core`, or `uses:` and the capabilities it needs joined with `+` (`uses:async+logs`).
    ///
    /// ```
    /// let cases = faas_conformance::cases::catalogue();
    /// assert_eq!(cases[0].tag(), "core");
    /// let asy02 = cases.iter().find(|c| c.id == "ASY-02").unwrap();
    /// assert_eq!(asy02.tag(), "uses:async+async-retry+logs");
    /// ```
    pub fn tag(&self) -> String {
        if self.needs.is_empty() {
            return "core".to_string();
        }
        format!("uses:{}", self.needs.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("+"))
    }

    /// The first capability it needs that `capabilities` does not claim.
    pub fn unclaimed(&self, capabilities: &Capabilities) -> Option<Capability> {
        self.needs.iter().copied().find(|c| !capabilities.claims(*c))
    }

    /// What a conforming backend that claims `capabilities` gives for this case: a pass when it
    /// claims every capability the case needs, else "not supported".
    pub fn expected(&self, capabilities: &Capabilities) -> crate::matrix::Mark {
        match self.unclaimed(capabilities) {
            None => crate::matrix::Mark::Pass,
            Some(_) => crate::matrix::Mark::NotSupported,
        }
    }

    /// Runs the body (no tag filtering, no panic capture: [`Harness::run_case`] does both).
    pub(crate) fn body<'a>(&self, h: &'a Harness) -> BoxFuture<'a, Check> {
        (self.run)(h)
    }
}

macro_rules! case {
    ($id:literal, $needs:expr, $title:literal, $f:ident) => {
        Case { id: $id, needs: $needs, title: $title, run: |h| Box::pin($f(h)) }
    };
}

/// Fails the case with a formatted message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(Outcome::Fail(format!($($arg)+)));
        }
    };
}

use Capability::{Async, AsyncRetry, CloudEvents, Emit, Invoke, Logs, WarmReuse};

/// The needs of a case that must pass on every backend.
const CORE: &[Capability] = &[];

/// Every case, in catalogue order.
///
/// ```
/// let ids: Vec<&str> = faas_conformance::cases::catalogue().iter().map(|c| c.id).collect();
/// assert_eq!(ids.len(), 35);
/// assert_eq!(ids[0], "INV-01");
/// assert_eq!(ids.last(), Some(&"STA-05"));
/// ```
pub fn catalogue() -> Vec<Case> {
    vec![
        case!("INV-01", CORE, "typed JSON reply", inv_01),
        case!("INV-02", CORE, "empty body echoed", inv_02),
        case!("INV-03", CORE, "unicode JSON byte-identical", inv_03),
        case!("INV-04", CORE, "binary body and content type", inv_04),
        case!("INV-05", CORE, "50 concurrent calls matched", inv_05),
        case!("INV-06", CORE, "context: id, name, deadline, backend", inv_06),
        case!("INV-07", CORE, "trace context propagated", inv_07),
        case!("INV-08", CORE, "deployed variable visible", inv_08),
        case!("INV-09", CORE, "response just under the sync limit", inv_09),
        case!("INV-10", &[Invoke], "cx.invoke by logical name", inv_10),
        case!("ERR-01", CORE, "function error type and message", err_01),
        case!("ERR-02", CORE, "panic is a crash; next call works", err_02),
        case!("ERR-03", CORE, "timeout enforced; next call works", err_03),
        case!("ERR-04", CORE, "malformed JSON is bad input", err_04),
        case!("ERR-05", CORE, "unknown function is not found", err_05),
        case!("ERR-06", CORE, "oversized request refused before running", err_06),
        case!("LIF-01", CORE, "deploy is idempotent", lif_01),
        case!("LIF-02", CORE, "redeploy with a changed variable", lif_02),
        case!("LIF-03", CORE, "list shows each function once", lif_03),
        case!("LIF-04", CORE, "removed function is not found", lif_04),
        case!("LIF-05", &[WarmReuse], "warm instance reused", lif_05),
        case!("ASY-01", &[Async, CloudEvents, Emit, Logs], "async emit observed", asy_01),
        case!("ASY-02", &[Async, AsyncRetry, Logs], "async failure retried and visible", asy_02),
        case!("EVT-01", &[CloudEvents], "binary-mode event answered", evt_01),
        case!("EVT-02", &[CloudEvents], "structured-mode event answered", evt_02),
        case!("EVT-03", &[CloudEvents], "extensions and data_base64 preserved", evt_03),
        case!("EVT-04", &[CloudEvents], "event without id is bad input", evt_04),
        case!("LOG-01", &[Logs], "logs attributed to the invocation", log_01),
        case!("CAP-01", CORE, "unclaimed capability refused", cap_01),
        case!("TRI-01", CORE, "a composition answers as its step", tri_01),
        case!("STA-01", CORE, "state: reads its writes", sta_01),
        case!("STA-02", CORE, "state: lost set_if is a conflict", sta_02),
        case!("STA-03", CORE, "state: a key expires after its TTL", sta_03),
        case!("STA-04", CORE, "state: 50 racing increments end at 50", sta_04),
        case!("STA-05", CORE, "state: kept across a gateway restart", sta_05),
    ]
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn fail<T>(why: impl Into<String>) -> Result<T, Outcome> {
    Err(Outcome::Fail(why.into()))
}

fn json(v: serde_json::Value) -> Payload {
    Payload::json(&v).expect("a JSON value always serialises")
}

fn show_error(e: &Error) -> String {
    format!("{} error `{}`: {}", e.kind(), e.error_type(), e.message())
}

fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).to_string();
    if bytes.len() > 200 {
        format!("{text:?}… ({} bytes)", bytes.len())
    } else {
        format!("{text:?}")
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Invokes and expects success.
async fn call(h: &Harness, req: InvokeRequest, sent: &str) -> Result<Invoked, Outcome> {
    let function = req.function.clone();
    h.runner()
        .invoke(req)
        .await
        .or_else(|e| fail(format!("sent {sent} to `{function}`: expected success, got {}", show_error(&e))))
}

/// Invokes with a JSON value and expects a JSON reply.
async fn call_json(h: &Harness, function: &str, input: serde_json::Value) -> Result<serde_json::Value, Outcome> {
    let sent = input.to_string();
    let out = call(h, InvokeRequest::new(function, json(input)), &sent).await?;
    serde_json::from_slice(out.payload.body()).or_else(|e| {
        fail(format!("sent {sent} to `{function}`: expected a JSON reply, got {} ({e})", preview(out.payload.body())))
    })
}

/// Invokes and expects an error of `kind`.
async fn call_err(h: &Harness, req: InvokeRequest, sent: &str, kind: ErrorKind) -> Result<Error, Outcome> {
    let function = req.function.clone();
    match h.runner().invoke(req).await {
        Ok(out) => fail(format!(
            "sent {sent} to `{function}`: expected a {kind} error, got success with {}",
            preview(out.payload.body())
        )),
        Err(e) if e.kind() == kind => Ok(e),
        Err(e) => fail(format!("sent {sent} to `{function}`: expected a {kind} error, got {}", show_error(&e))),
    }
}

/// Checks that `typed` still answers correctly (after a crash, a timeout, a removal...).
async fn typed_still_works(h: &Harness, after: &str) -> Result<(), Outcome> {
    let name = unique("after");
    match h.runner().invoke(InvokeRequest::new("typed", json(serde_json::json!({ "name": name })))).await {
        Ok(out) => {
            let want = serde_json::json!({ "message": format!("Hello, {name}!") });
            let got: Option<serde_json::Value> = serde_json::from_slice(out.payload.body()).ok();
            ensure!(
                got.as_ref() == Some(&want),
                "after {after}, `typed` answered {} instead of {want}",
                preview(out.payload.body())
            );
            Ok(())
        }
        Err(e) => fail(format!("after {after}, the next `typed` call failed: {}", show_error(&e))),
    }
}

/// Polls `probe` every 100 ms until it yields a value or `window` passes.
async fn poll<T, F, Fut>(window: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + window;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn decode_reply_event(out: &Invoked, sent: &str) -> Result<Event, Outcome> {
    faas_api::event::decode_structured(out.payload.body()).or_else(|e| {
        fail(format!(
            "sent {sent} to `event`: expected a structured reply CloudEvent, got {} ({})",
            preview(out.payload.body()),
            e.message()
        ))
    })
}

/// Checks the reply of the `event` probe to the event with id `original`.
fn check_reply(reply: &Event, original: &str, sent: &str) -> Result<(), Outcome> {
    ensure!(reply.ty() == REPLY_TYPE, "sent {sent}: reply type is `{}`, expected `{REPLY_TYPE}`", reply.ty());
    ensure!(
        reply.source() == REPLY_SOURCE,
        "sent {sent}: reply source is `{}`, expected `{REPLY_SOURCE}`",
        reply.source()
    );
    ensure!(!reply.id().is_empty(), "sent {sent}: reply has an empty id");
    ensure!(
        reply.specversion().to_string() == "1.0",
        "sent {sent}: reply specversion is `{}`, expected `1.0`",
        reply.specversion()
    );
    let got = reply.extension(ORIGINAL_ID).map(|v| v.to_string());
    ensure!(
        got.as_deref() == Some(original),
        "sent {sent}: reply extension `{ORIGINAL_ID}` is {got:?}, expected the original id `{original}`"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Invocation

async fn inv_01(h: &Harness) -> Check {
    let got = call_json(h, "typed", serde_json::json!({"name": "Ada"})).await?;
    let want = serde_json::json!({"message": "Hello, Ada!"});
    ensure!(got == want, "sent {{\"name\":\"Ada\"}} to `typed`: expected {want}, got {got}");
    Ok(String::new())
}

async fn inv_02(h: &Harness) -> Check {
    let out = call(h, InvokeRequest::new("echo", Payload::empty()), "an empty body").await?;
    ensure!(
        out.payload.is_empty(),
        "sent an empty body to `echo`: expected an empty reply, got {}",
        preview(out.payload.body())
    );
    Ok(String::new())
}

async fn inv_03(h: &Harness) -> Check {
    let value =
        serde_json::json!({"text": "Grüße 😀", "controls": "\u{0000}\u{0001}\u{001f}\n\t\"\\/", "bom": "\u{feff}"});
    let body = serde_json::to_vec(&value).expect("serialises");
    let sent = format!("{} bytes of JSON with unicode and escaped control characters", body.len());
    let out =
        call(h, InvokeRequest::new("echo", Payload::new(body.clone(), Some("application/json".into()))), &sent).await?;
    ensure!(
        out.payload.body().as_ref() == body.as_slice(),
        "sent {sent} to `echo`: expected the same bytes {}, got {}",
        preview(&body),
        preview(out.payload.body())
    );
    Ok(String::new())
}

async fn inv_04(h: &Harness) -> Check {
    let body: Vec<u8> = (0..=255u8).collect();
    let sent = "all 256 byte values as application/octet-stream";
    let out = call(h, InvokeRequest::new("echo", Payload::bytes(body.clone())), sent).await?;
    ensure!(
        out.payload.body().as_ref() == body.as_slice(),
        "sent {sent} to `echo`: the reply differs ({} bytes back, first difference at byte {:?})",
        out.payload.len(),
        out.payload.body().iter().zip(&body).position(|(a, b)| a != b)
    );
    match out.payload.content_type() {
        Some("application/octet-stream") => Ok(String::new()),
        Some(other) => {
            fail(format!("sent {sent} to `echo`: reply content type is `{other}`, expected `application/octet-stream`"))
        }
        None => {
            // Does the platform carry content types at all? A JSON reply tells.
            let typed =
                call(h, InvokeRequest::new("typed", json(serde_json::json!({"name": "ct"}))), "{\"name\":\"ct\"}")
                    .await?;
            if typed.payload.content_type().is_some() {
                fail(format!(
                    "sent {sent} to `echo`: the reply has no content type, although the backend carries content types (`typed` replied with `{}`)",
                    typed.payload.content_type().unwrap_or_default()
                ))
            } else {
                Ok("bytes identical; this backend does not carry content types".to_string())
            }
        }
    }
}

async fn inv_05(h: &Harness) -> Check {
    let calls = (0..50).map(|i| async move {
        let name = format!("caller-{i:02}-{}", uuid::Uuid::new_v4().simple());
        let req = InvokeRequest::new("typed", json(serde_json::json!({ "name": name })));
        (name, h.runner().invoke(req).await)
    });
    let results = futures::future::join_all(calls).await;
    let mut problems = vec![];
    for (name, result) in results {
        match result {
            Ok(out) => {
                let want = serde_json::json!({ "message": format!("Hello, {name}!") });
                let got: Option<serde_json::Value> = serde_json::from_slice(out.payload.body()).ok();
                if got.as_ref() != Some(&want) {
                    problems.push(format!("`{name}` got {}", preview(out.payload.body())));
                }
            }
            Err(e) => problems.push(format!("`{name}` failed: {}", show_error(&e))),
        }
    }
    ensure!(
        problems.is_empty(),
        "sent 50 concurrent `typed` calls with distinct names: {} wrong: {}",
        problems.len(),
        problems.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
    );
    Ok(String::new())
}

async fn context_report(
    h: &Harness,
    traceparent: Option<String>,
) -> Result<(ContextReport, Invoked, u64, u64), Outcome> {
    let before = now_ms();
    let req = InvokeRequest { traceparent, ..InvokeRequest::new("context", Payload::empty()) };
    let out = call(h, req, "an empty body").await?;
    let after = now_ms();
    let report: ContextReport = serde_json::from_slice(out.payload.body()).or_else(|e| {
        fail(format!("`context` replied {} which is not a context report: {e}", preview(out.payload.body())))
    })?;
    Ok((report, out, before, after))
}

async fn inv_06(h: &Harness) -> Check {
    let timeout = h.spec("context").map(|s| s.timeout).unwrap_or(faas_api::config::DEFAULT_TIMEOUT);
    let mut ids = BTreeSet::new();
    for i in 0..10 {
        let (r, _, before, after) = context_report(h, None).await?;
        ensure!(!r.invocation_id.is_empty(), "call {i} of `context`: the invocation id is empty");
        ensure!(
            ids.insert(r.invocation_id.clone()),
            "call {i} of `context`: invocation id `{}` was seen before",
            r.invocation_id
        );
        ensure!(
            r.function_name == "context",
            "`context` reports function name `{}`, expected `context`",
            r.function_name
        );
        ensure!(
            r.deadline_ms > before,
            "`context` reports deadline {} ms, which is not after the call started ({before} ms)",
            r.deadline_ms
        );
        let latest = after + timeout.as_millis() as u64 + 1000;
        ensure!(
            r.deadline_ms <= latest,
            "`context` reports deadline {} ms, later than the reply time {after} ms + the configured timeout {:?} + 1 s",
            r.deadline_ms,
            timeout
        );
        ensure!(
            r.backend == h.runner().kind(),
            "`context` reports backend `{}`, but the runner's kind is `{}`",
            r.backend,
            h.runner().kind()
        );
    }
    Ok(String::new())
}

async fn inv_07(h: &Harness) -> Check {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let traceparent = format!("00-{trace_id}-{}-01", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let (r, _, _, _) = context_report(h, Some(traceparent.clone())).await?;
    ensure!(
        r.trace_id == trace_id,
        "sent traceparent `{traceparent}` to `context`: it saw trace id `{}` (traceparent `{}`), expected `{trace_id}`",
        r.trace_id,
        r.traceparent
    );
    Ok(String::new())
}

async fn inv_08(h: &Harness) -> Check {
    let got = call_json(h, "env", serde_json::json!({ "key": PROBE_VAR })).await?;
    let want = serde_json::json!({ "value": PROBE_VAR_VALUE });
    ensure!(
        got == want,
        "deployed `env` with {PROBE_VAR}={PROBE_VAR_VALUE} and asked for it: expected {want}, got {got}"
    );
    Ok(String::new())
}

async fn inv_09(h: &Harness) -> Check {
    let n = h.capabilities().max_sync_payload.saturating_sub(1024);
    let out =
        call(h, InvokeRequest::new("big", json(serde_json::json!({ "n": n }))), &format!("{{\"n\":{n}}}")).await?;
    let want = big_body(n);
    ensure!(
        out.payload.body().as_ref() == want.as_slice(),
        "asked `big` for {n} bytes (the sync limit {} − 1 KiB): got {} bytes{}",
        h.capabilities().max_sync_payload,
        out.payload.len(),
        if out.payload.len() == n { " with different content" } else { "" }
    );
    Ok(String::new())
}

// ---------------------------------------------------------------------------------------------
// Errors

async fn err_01(h: &Harness) -> Check {
    let e = call_err(h, InvokeRequest::new("fail", json(serde_json::json!("boom"))), "\"boom\"", ErrorKind::Function)
        .await?;
    ensure!(
        e.error_type() == "ProbeError" && e.message() == "boom",
        "sent \"boom\" to `fail`: expected type `ProbeError` and message `boom`, got type `{}` and message `{}`",
        e.error_type(),
        e.message()
    );
    Ok(String::new())
}

async fn err_02(h: &Harness) -> Check {
    let message = unique("probe panic");
    let sent = format!("{message:?}");
    let e = call_err(h, InvokeRequest::new("panic", json(serde_json::json!(message))), &sent, ErrorKind::Crash).await?;
    ensure!(
        e.message().contains(&message),
        "sent {sent} to `panic`: the crash error does not name the panic message: {}",
        e.message()
    );
    typed_still_works(h, "a panic").await?;
    Ok(String::new())
}

async fn err_03(h: &Harness) -> Check {
    let timeout = match h.spec("sleep") {
        Some(s) => s.timeout,
        None => return fail("`sleep` is not deployed"),
    };
    let ms = (timeout.as_millis() as u64).saturating_mul(5).max(5000);
    let sent = format!("{{\"ms\":{ms}}}");
    let started = Instant::now();
    let e = call_err(h, InvokeRequest::new("sleep", json(serde_json::json!({ "ms": ms }))), &sent, ErrorKind::Timeout)
        .await?;
    let took = started.elapsed();
    ensure!(
        took <= timeout + Duration::from_secs(1),
        "sent {sent} to `sleep` (timeout {timeout:?}): the timeout error came after {took:?}, later than the timeout + 1 s ({})",
        e.message()
    );
    let again = call_json(h, "sleep", serde_json::json!({"ms": 10})).await?;
    ensure!(again == serde_json::json!({"slept_ms": 10}), "after a timeout, `sleep` {{\"ms\":10}} answered {again}");
    typed_still_works(h, "a timeout").await?;
    Ok(String::new())
}

async fn err_04(h: &Harness) -> Check {
    let body = br#"{"name": "Ada""#.to_vec();
    let sent = "`{\"name\": \"Ada\"` (unterminated JSON)";
    let req = InvokeRequest::new("typed", Payload::new(body, Some("application/json".into())));
    let e = call_err(h, req, sent, ErrorKind::BadInput).await?;
    let m = e.message().to_ascii_lowercase();
    ensure!(
        m.contains("json")
            && (m.contains("eof") || m.contains("line") || m.contains("parse") || m.contains("malformed")),
        "sent {sent} to `typed`: the bad-input error does not name the parse problem: {}",
        e.message()
    );
    typed_still_works(h, "malformed JSON").await?;
    Ok(String::new())
}

async fn err_05(h: &Harness) -> Check {
    let name = format!("no-such-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let e = call_err(h, InvokeRequest::new(&name, Payload::empty()), "an empty body", ErrorKind::NotFound).await?;
    ensure!(
        e.message().contains(&name),
        "invoked unknown `{name}`: the not-found error does not name it: {}",
        e.message()
    );
    Ok(String::new())
}

async fn err_06(h: &Harness) -> Check {
    let limit = h.capabilities().max_sync_payload;
    let before = h.activation_ids("echo").await;
    let sent = format!("{} bytes (the sync limit + 1)", limit + 1);
    let req = InvokeRequest::new("echo", Payload::bytes(vec![b'x'; limit + 1]));
    call_err(h, req, &sent, ErrorKind::PayloadTooLarge).await?;
    let after = h.activation_ids("echo").await;
    match (before, after) {
        (Ok(before), Ok(after)) => {
            let ran: Vec<&String> = after.difference(&before).collect();
            ensure!(
                ran.is_empty(),
                "sent {sent} to `echo`: refused, but the function ran anyway (activations {ran:?})"
            );
            Ok(String::new())
        }
        (Err(e), _) | (_, Err(e)) => Ok(format!(
            "refused; whether the function ran could not be checked: activations failed: {}",
            show_error(&e)
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

async fn lif_01(h: &Harness) -> Check {
    h.redeploy(h.app()).await.or_else(|e| fail(format!("first redeploy of the fixture failed: {}", show_error(&e))))?;
    let report = h
        .redeploy(h.app())
        .await
        .or_else(|e| fail(format!("second deploy of the fixture failed: {}", show_error(&e))))?;
    let mut unchanged = report.unchanged.clone();
    unchanged.sort();
    let mut all: Vec<String> = h.app().functions.iter().map(|f| f.name.clone()).collect();
    all.sort();
    ensure!(
        report.created.is_empty() && report.updated.is_empty() && unchanged == all,
        "deployed the same fixture twice: expected every function unchanged, got created {:?}, updated {:?}, unchanged {:?}",
        report.created,
        report.updated,
        report.unchanged
    );
    typed_still_works(h, "an idempotent redeploy").await?;
    Ok(String::new())
}

async fn lif_02(h: &Harness) -> Check {
    let mut changed = h.app().clone();
    let value = unique("two");
    for f in changed.functions.iter_mut().filter(|f| f.name == "env") {
        f.env.insert(PROBE_VAR.to_string(), value.clone());
    }
    let result = async {
        let report = h
            .redeploy(&changed)
            .await
            .or_else(|e| fail(format!("redeploy with {PROBE_VAR}={value} failed: {}", show_error(&e))))?;
        ensure!(
            report.updated.iter().any(|n| n == "env"),
            "redeployed with {PROBE_VAR}={value}: expected `env` in `updated`, got {report:?}"
        );
        let got = call_json(h, "env", serde_json::json!({ "key": PROBE_VAR })).await?;
        ensure!(
            got == serde_json::json!({ "value": value }),
            "redeployed `env` with {PROBE_VAR}={value}: the next call saw {got}"
        );
        Ok(String::new())
    }
    .await;
    let restored = h.redeploy(h.app()).await;
    let result = result?;
    restored.or_else(|e| fail(format!("restoring the fixture after LIF-02 failed: {}", show_error(&e))))?;
    let got = call_json(h, "env", serde_json::json!({ "key": PROBE_VAR })).await?;
    ensure!(
        got == serde_json::json!({ "value": PROBE_VAR_VALUE }),
        "redeployed `env` back to {PROBE_VAR}={PROBE_VAR_VALUE}: the next call saw {got}"
    );
    Ok(result)
}

async fn lif_03(h: &Harness) -> Check {
    let listed = h.runner().list().await.or_else(|e| fail(format!("list failed: {}", show_error(&e))))?;
    let mut problems = vec![];
    for f in &h.app().functions {
        let n = listed.iter().filter(|i| i.spec.name == f.name).count();
        if n != 1 {
            problems.push(format!("`{}` listed {n} times", f.name));
        }
    }
    ensure!(
        problems.is_empty(),
        "listed the deployed fixture: {} (listed: {:?})",
        problems.join(", "),
        listed.iter().map(|i| i.spec.name.as_str()).collect::<Vec<_>>()
    );
    Ok(String::new())
}

async fn lif_04(h: &Harness) -> Check {
    let victim = "big";
    let result = async {
        h.runner().remove(victim).await.or_else(|e| fail(format!("removing `{victim}` failed: {}", show_error(&e))))?;
        let e = call_err(
            h,
            InvokeRequest::new(victim, json(serde_json::json!({"n": 1}))),
            "{\"n\":1}",
            ErrorKind::NotFound,
        )
        .await
        .map_err(|o| match o {
            Outcome::Fail(why) => Outcome::Fail(format!("after removing `{victim}`: {why}")),
            o => o,
        })?;
        ensure!(
            e.message().contains(victim),
            "the not-found error for removed `{victim}` does not name it: {}",
            e.message()
        );
        let listed = h.runner().list().await.or_else(|e| fail(format!("list failed: {}", show_error(&e))))?;
        ensure!(!listed.iter().any(|i| i.spec.name == victim), "removed `{victim}` is still listed");
        typed_still_works(h, &format!("removing `{victim}`")).await?;
        Ok(String::new())
    }
    .await;
    let restored = h.redeploy(h.app()).await;
    let result = result?;
    restored
        .or_else(|e| fail(format!("redeploying the fixture after removing `{victim}` failed: {}", show_error(&e))))?;
    let out = call(h, InvokeRequest::new(victim, json(serde_json::json!({"n": 3}))), "{\"n\":3}").await?;
    ensure!(out.payload.len() == 3, "after redeploying, `{victim}` {{\"n\":3}} returned {} bytes", out.payload.len());
    Ok(result)
}

async fn lif_05(h: &Harness) -> Check {
    let count = |v: &serde_json::Value| v["count"].as_u64();
    let first = call_json(h, "counter", serde_json::json!({})).await?;
    let second = call_json(h, "counter", serde_json::json!({})).await?;
    match (count(&first), count(&second)) {
        (Some(a), Some(b)) if b > a => Ok(String::new()),
        _ => fail(format!("called `counter` twice on a backend claiming warm reuse: got {first} then {second}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Asynchronous invocation

async fn asy_01(h: &Harness) -> Check {
    // Observing the emitted event needs a route from `emit` to the subscribed `collect`, and the
    // activation log to see that `collect` ran (the case's needs).
    let id = unique("asy01");
    let event = serde_json::json!({"specversion": "1.0", "id": id, "source": "/faas/conformance", "type": EMITTED_TYPE,
        "datacontenttype": "application/json", "data": {"case": "ASY-01"}});
    let req = InvokeRequest { mode: InvokeMode::Async, ..InvokeRequest::new("emit", json(event)) };
    let accepted = call(h, req, &format!("an async request to emit event `{id}`")).await?;
    ensure!(!accepted.activation_id.is_empty(), "async `emit` was accepted without an activation id");
    let wanted = format!("collected {id}");
    let seen = poll(Duration::from_secs(10), || async {
        let q = ActivationQuery { function: Some("collect".into()), id: None, limit: Some(200) };
        let acts = h.runner().activations(q).await.ok()?;
        acts.into_iter().find(|a| a.logs.iter().any(|l| l.contains(&wanted)))
    })
    .await;
    match seen {
        Some(_) => Ok(String::new()),
        None => {
            let own = h
                .runner()
                .activations(ActivationQuery { id: Some(accepted.activation_id.clone()), ..Default::default() })
                .await;
            let state = match own.ok().and_then(|a| a.into_iter().next()) {
                Some(a) => format!(
                    "the `emit` activation is {:?}{}",
                    a.status,
                    a.error.map(|e| format!(": {}", show_error(&e))).unwrap_or_default()
                ),
                None => "the `emit` activation is not in the log".to_string(),
            };
            fail(format!("async `emit` of event `{id}` (type {EMITTED_TYPE}): `collect` did not log `{wanted}` within 10 s; {state}"))
        }
    }
}

async fn asy_02(h: &Harness) -> Check {
    // The failed attempts are observed in the activation log (the case's needs).
    let marker = unique("asy02");
    let req = InvokeRequest { mode: InvokeMode::Async, ..InvokeRequest::new("fail", json(serde_json::json!(marker))) };
    let accepted = call(h, req, &format!("an async request with {marker:?}")).await?;
    ensure!(!accepted.activation_id.is_empty(), "async `fail` was accepted without an activation id");
    let id = accepted.activation_id.clone();
    let last = std::sync::Mutex::new(None);
    let found = poll(h.options().async_window, || {
        let id = id.clone();
        let last = &last;
        async move {
            let acts = h.runner().activations(ActivationQuery { id: Some(id), ..Default::default() }).await.ok()?;
            let failed: Vec<_> = acts.into_iter().filter(|a| a.status == ActivationStatus::Error).collect();
            *last.lock().expect("last lock") = failed.first().cloned();
            failed.into_iter().find(|a| a.attempt >= 2)
        }
    })
    .await;
    let last = last.into_inner().expect("last lock");
    match (found, last) {
        (Some(a), _) => {
            let e = a.error.clone().unwrap_or_else(|| Error::function("", ""));
            ensure!(
                e.error_type() == "ProbeError" && e.message() == marker,
                "async `fail` {marker:?}: attempt {} is recorded with error {}, expected ProbeError `{marker}`",
                a.attempt,
                show_error(&e)
            );
            Ok(String::new())
        }
        (None, Some(a)) => fail(format!(
            "async `fail` {marker:?}: the failure is visible (attempt {}) but no retry was recorded within {:?}",
            a.attempt,
            h.options().async_window
        )),
        (None, None) => fail(format!(
            "async `fail` {marker:?} (activation `{id}`): no failed attempt visible in the activation log within {:?}",
            h.options().async_window
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Events

async fn evt_01(h: &Harness) -> Check {
    let id = unique("evt01");
    let mut headers = http::HeaderMap::new();
    for (k, v) in [
        ("ce-specversion", "1.0"),
        ("ce-id", id.as_str()),
        ("ce-source", "/faas/conformance"),
        ("ce-type", "probe.binary"),
        ("ce-subject", "Gr%C3%BC%C3%9Fe"),
        ("content-type", "application/json"),
    ] {
        headers.insert(k, http::HeaderValue::from_str(v).expect("valid header"));
    }
    let data = serde_json::json!({"mode": "binary", "n": 1});
    let event = faas_api::event::event_from_binary(&headers, data.to_string().as_bytes())
        .or_else(|e| fail(format!("the binary-mode event could not be read: {}", show_error(&e))))?;
    let payload = faas_api::event::encode_structured(&event).or_else(|e| fail(show_error(&e)))?;
    let sent = format!("binary-mode event `{id}`");
    let out = call(h, InvokeRequest::new("event", payload), &sent).await?;
    let reply = decode_reply_event(&out, &sent)?;
    check_reply(&reply, &id, &sent)?;
    ensure!(
        reply.subject() == Some("Grüße"),
        "sent {sent}: reply subject is {:?}, expected \"Grüße\"",
        reply.subject()
    );
    ensure!(
        reply.data() == Some(&Data::Json(data.clone())),
        "sent {sent}: reply data is {:?}, expected {data}",
        reply.data()
    );
    Ok("the runner SPI carries events as structured JSON; the binary-mode headers were converted with the portable \
        binding first (the HTTP binding itself is tested by each front)"
        .to_string())
}

async fn evt_02(h: &Harness) -> Check {
    let id = unique("evt02");
    let data = serde_json::json!({"mode": "structured", "text": "Grüße 😀"});
    let event = serde_json::json!({"specversion": "1.0", "id": id, "source": "/faas/conformance", "type": "probe.structured",
        "datacontenttype": "application/json", "data": data});
    let sent = format!("structured event `{id}`");
    let payload =
        Payload::new(serde_json::to_vec(&event).expect("serialises"), Some(faas_api::payload::CLOUDEVENTS_JSON.into()));
    let out = call(h, InvokeRequest::new("event", payload), &sent).await?;
    let reply = decode_reply_event(&out, &sent)?;
    check_reply(&reply, &id, &sent)?;
    ensure!(
        reply.data() == Some(&Data::Json(data.clone())),
        "sent {sent}: reply data is {:?}, expected {data}",
        reply.data()
    );
    Ok(String::new())
}

async fn evt_03(h: &Harness) -> Check {
    let id = unique("evt03");
    let bytes: Vec<u8> = (0..=255u8).rev().collect();
    let event = serde_json::json!({"specversion": "1.0", "id": id, "source": "/faas/conformance", "type": "probe.bytes",
        "probeext": "x-1", "comexamplelabel": "Grüße", "datacontenttype": "application/octet-stream",
        "data_base64": base64::engine::general_purpose::STANDARD.encode(&bytes)});
    let sent = format!("event `{id}` with extensions and data_base64");
    let payload =
        Payload::new(serde_json::to_vec(&event).expect("serialises"), Some(faas_api::payload::CLOUDEVENTS_JSON.into()));
    let out = call(h, InvokeRequest::new("event", payload), &sent).await?;
    let reply = decode_reply_event(&out, &sent)?;
    check_reply(&reply, &id, &sent)?;
    for (name, want) in [("probeext", "x-1"), ("comexamplelabel", "Grüße")] {
        let got = reply.extension(name).map(|v| v.to_string());
        ensure!(got.as_deref() == Some(want), "sent {sent}: reply extension `{name}` is {got:?}, expected {want:?}");
    }
    match reply.data() {
        Some(Data::Binary(got)) if got == &bytes => Ok(String::new()),
        other => fail(format!("sent {sent}: reply data is {other:?}, expected the same 256 bytes")),
    }
}

async fn evt_04(h: &Harness) -> Check {
    let event =
        serde_json::json!({"specversion": "1.0", "source": "/faas/conformance", "type": "probe.noid", "data": {}});
    let payload =
        Payload::new(serde_json::to_vec(&event).expect("serialises"), Some(faas_api::payload::CLOUDEVENTS_JSON.into()));
    let e = call_err(h, InvokeRequest::new("event", payload), "an event without `id`", ErrorKind::BadInput).await?;
    let m = e.message();
    ensure!(
        m.contains("`id`") || m.contains("\"id\"") || m.contains("'id'") || m.contains(" id "),
        "sent an event without `id` to `event`: the bad-input error does not name `id`: {m}"
    );
    Ok(String::new())
}

// ---------------------------------------------------------------------------------------------
// Logs

async fn log_01(h: &Harness) -> Check {
    let marker = unique("log01");
    let out = call_json_invoked(h, "log", serde_json::json!({ "marker": marker })).await?;
    let id = out.activation_id.clone();
    ensure!(!id.is_empty(), "`log` returned no activation id");
    let found = poll(Duration::from_secs(5), || {
        let id = id.clone();
        let marker = marker.clone();
        async move {
            let acts = h.runner().activations(ActivationQuery { id: Some(id), ..Default::default() }).await.ok()?;
            acts.into_iter().find(|a| a.logs.iter().any(|l| l.contains(&marker)))
        }
    })
    .await;
    match found {
        // Every backend's pricing rounds up, so a finished record bills at least its duration.
        Some(a) if a.function == "log" && a.status != ActivationStatus::Pending && a.billed_us < a.duration_us => {
            fail(format!(
                "activation `{id}` of `log` took {} µs but bills {} µs: the billed time comes from the backend's \
                 record, rounded up, never below the duration",
                a.duration_us, a.billed_us
            ))
        }
        Some(a) if a.function == "log" => Ok(String::new()),
        Some(a) => fail(format!(
            "the logs of activation `{id}` hold marker `{marker}` but the activation is attributed to `{}`",
            a.function
        )),
        None => {
            let acts = h.runner().activations(ActivationQuery { id: Some(id.clone()), ..Default::default() }).await;
            let logs = acts.ok().and_then(|a| a.into_iter().next()).map(|a| a.logs);
            fail(format!("`log` wrote marker `{marker}`: the logs of activation `{id}` do not show it within 5 s (logs: {logs:?})"))
        }
    }
}

async fn call_json_invoked(h: &Harness, function: &str, input: serde_json::Value) -> Result<Invoked, Outcome> {
    let sent = input.to_string();
    call(h, InvokeRequest::new(function, json(input)), &sent).await
}

async fn inv_10(h: &Harness) -> Check {
    // A JSON call and its reply, by the function's logical name.
    let got = call_json(h, "call", serde_json::json!({"function": "typed", "payload": {"name": "Ada"}})).await?;
    let want = serde_json::json!({"reply": {"message": "Hello, Ada!"}});
    ensure!(got == want, "`call` invoked `typed` with {{\"name\":\"Ada\"}}: expected {want}, got {got}");
    // A composition is called as the function it is.
    let got = call_json(h, "call", serde_json::json!({"function": "seq-typed", "payload": {"name": "Ada"}})).await?;
    ensure!(
        got == want,
        "`call` invoked the composition `seq-typed` with {{\"name\":\"Ada\"}}: expected {want}, got {got}"
    );
    // A body that is not JSON keeps its bytes and content type both ways.
    let got = call_json(h, "call", serde_json::json!({"function": "echo", "text": "plain ünïcode"})).await?;
    let want = serde_json::json!({"text": "plain ünïcode", "content_type": "text/plain"});
    ensure!(got == want, "`call` invoked `echo` with a text/plain body: expected {want}, got {got}");
    // The callee's error reaches the caller's caller unchanged.
    let marker = unique("inv10");
    let sent = serde_json::json!({"function": "fail", "payload": marker});
    let err =
        call_err(h, InvokeRequest::new("call", json(sent.clone())), &sent.to_string(), ErrorKind::Function).await?;
    ensure!(
        err.error_type() == "ProbeError" && err.message() == marker,
        "`call` invoked `fail` with {marker:?}: expected the function error ProbeError: {marker}, got {}",
        show_error(&err)
    );
    // An unknown name is not found, and the error names it.
    let sent = serde_json::json!({"function": "nosuchprobe", "payload": null});
    let err =
        call_err(h, InvokeRequest::new("call", json(sent.clone())), &sent.to_string(), ErrorKind::NotFound).await?;
    ensure!(
        err.message().contains("nosuchprobe"),
        "the not-found error does not name `nosuchprobe`: {}",
        show_error(&err)
    );
    Ok(String::new())
}

// ---------------------------------------------------------------------------------------------
// Capabilities

async fn cap_01(h: &Harness) -> Check {
    let caps = h.capabilities();
    let Some(missing) = Capability::ALL.into_iter().find(|c| !caps.claims(*c)) else {
        return Err(Outcome::NotSupported("the backend claims every capability; nothing to refuse".into()));
    };
    let before = h.runner().list().await.or_else(|e| fail(format!("list failed: {}", show_error(&e))))?;
    let mut app = h.app().clone();
    for f in app.functions.iter_mut().filter(|f| f.name == "typed") {
        f.requires.push(missing);
    }
    let names = |e: &Error| e.message().contains(missing.as_str());
    if let Err(e) = h.runner().check(&app.functions) {
        ensure!(
            names(&e),
            "check refused `typed` needing `{missing}`, but the error does not name it: {}",
            show_error(&e)
        );
    } else {
        return fail(format!("check accepted `typed` needing unclaimed capability `{missing}`"));
    }
    let refused = match h.runner().package(&app, &faas_api::NoProgress).await {
        Err(e) => Some(e),
        Ok(package) => match h.runner().deploy(&package, &faas_api::NoProgress).await {
            Err(e) => Some(e),
            Ok(report) => {
                let _ = h.redeploy(h.app()).await;
                return fail(format!(
                    "deployed `typed` needing unclaimed capability `{missing}`: accepted ({report:?})"
                ));
            }
        },
    };
    if let Some(e) = refused {
        ensure!(
            names(&e),
            "deploy refused `typed` needing `{missing}`, but the error does not name it: {}",
            show_error(&e)
        );
    }
    let after = h.runner().list().await.or_else(|e| fail(format!("list failed: {}", show_error(&e))))?;
    let specs = |l: &[faas_api::FunctionInfo]| {
        let mut v: Vec<String> = l.iter().map(|i| serde_json::to_string(&i.spec).unwrap_or_default()).collect();
        v.sort();
        v
    };
    ensure!(
        specs(&before) == specs(&after),
        "a refused deploy (`typed` needing `{missing}`) changed the deployed functions"
    );
    typed_still_works(h, "a refused deploy").await?;
    Ok(format!("refused `{missing}`"))
}

// ---------------------------------------------------------------------------------------------
// Compositions (COMPOSITION.md, category TRI)

/// Substitution: `seq([call(f)])` answers what `f` answers, byte for byte (body and content
/// type), errors included (kind, type, message; malformed JSON refused alike): a caller cannot
/// tell the composition from `f`.
async fn tri_01(h: &Harness) -> Check {
    let unicode = serde_json::to_vec(&serde_json::json!({"text": "Grüße 😀", "controls": "\u{0000}\n\t\"\\/"}))
        .expect("serialises");
    let inputs: [(&str, Payload, &str); 6] = [
        ("echo", Payload::empty(), "an empty body"),
        ("echo", Payload::new(unicode, Some("application/json".into())), "unicode JSON"),
        ("echo", Payload::bytes((0..=255u8).collect::<Vec<u8>>()), "all 256 byte values as application/octet-stream"),
        ("typed", json(serde_json::json!({"name": "Ada"})), "{\"name\":\"Ada\"}"),
        ("fail", json(serde_json::json!("boom")), "\"boom\""),
        ("typed", Payload::new(&b"{\"name\": "[..], Some("application/json".into())), "malformed JSON"),
    ];
    for (step, payload, sent) in inputs {
        let (composition, _) =
            crate::fixture::COMPOSITIONS.iter().find(|(_, s)| *s == step).expect("a composition of each probe");
        let direct = h.runner().invoke(InvokeRequest::new(step, payload.clone())).await;
        let composed = h.runner().invoke(InvokeRequest::new(*composition, payload)).await;
        match (direct, composed) {
            (Ok(d), Ok(c)) => ensure!(
                d.payload.body() == c.payload.body() && d.payload.content_type() == c.payload.content_type(),
                "sent {sent}: `{step}` answered {} ({:?}) but `{composition}` answered {} ({:?})",
                preview(d.payload.body()),
                d.payload.content_type(),
                preview(c.payload.body()),
                c.payload.content_type()
            ),
            (Err(d), Err(c)) => ensure!(
                (d.kind(), d.error_type(), d.message()) == (c.kind(), c.error_type(), c.message()),
                "sent {sent}: `{step}` failed with {} but `{composition}` with {}",
                show_error(&d),
                show_error(&c)
            ),
            (Ok(d), Err(c)) => {
                return fail(format!(
                    "sent {sent}: `{step}` answered {} but `{composition}` failed with {}",
                    preview(d.payload.body()),
                    show_error(&c)
                ));
            }
            (Err(d), Ok(c)) => {
                return fail(format!(
                    "sent {sent}: `{step}` failed with {} but `{composition}` answered {}",
                    show_error(&d),
                    preview(c.payload.body())
                ));
            }
        }
    }
    Ok(String::new())
}

// ---------------------------------------------------------------------------------------------
// STA: portable state (`cx.state()` through the `state` probe, against the suite's state gateway)

/// Sends `op` to the `state` probe and expects a JSON reply.
async fn state_op(h: &Harness, op: serde_json::Value) -> Result<serde_json::Value, Outcome> {
    call_json(h, "state", op).await
}

async fn sta_01(h: &Harness) -> Check {
    let key = unique("sta-01/cart");
    let value = serde_json::json!({"items": ["tea", "ü"], "n": 2});
    let set = serde_json::json!({"op": "set", "key": key, "value": value});
    let written = state_op(h, set.clone()).await?;
    let Some(version) = written["version"].as_u64() else {
        return fail(format!("sent {set} to `state`: expected {{\"version\": n}}, got {written}"));
    };
    let read = state_op(h, serde_json::json!({"op": "get", "key": key})).await?;
    ensure!(
        read["value"] == value && read["version"].as_u64() == Some(version),
        "wrote {value} to `{key}` (version {version}) then read it in another invocation: got {read}"
    );
    // The app's own client sees the same value and version (one store, not a per-instance cache).
    let seen = h.state().client(crate::harness::FIXTURE_APP).get_json::<serde_json::Value>(&key).await;
    match seen {
        Ok(Some(v)) => ensure!(
            v.value == value && v.version.0 == version,
            "the state gateway holds {} (version {}) for `{key}`, not what the function wrote",
            v.value,
            v.version
        ),
        other => {
            return fail(format!("the state gateway does not hold `{key}` after the function wrote it: {other:?}"))
        }
    }
    let absent = state_op(h, serde_json::json!({"op": "get", "key": unique("sta-01/never")})).await?;
    ensure!(absent["value"].is_null() && absent["version"].is_null(), "a key never written read as {absent}");
    Ok(String::new())
}

async fn sta_02(h: &Harness) -> Check {
    let key = unique("sta-02/doc");
    let first = state_op(h, serde_json::json!({"op": "set", "key": key, "value": 1, "if_version": null})).await?;
    let v1 = first["version"].as_u64().ok_or_else(|| Outcome::Fail(format!("a create answered {first}")))?;
    let second = state_op(h, serde_json::json!({"op": "set", "key": key, "value": 2, "if_version": v1})).await?;
    let v2 = second["version"].as_u64().ok_or_else(|| Outcome::Fail(format!("a set_if answered {second}")))?;
    ensure!(v2 != v1, "a write at version {v1} answered the same version");
    let stale = serde_json::json!({"op": "set", "key": key, "value": 3, "if_version": v1});
    let e =
        call_err(h, InvokeRequest::new("state", json(stale.clone())), &stale.to_string(), ErrorKind::Conflict).await?;
    ensure!(
        faas_api::state::conflict_version(&e) == Some(Some(faas_api::state::Version(v2))),
        "sent {stale} (key now at version {v2}): the conflict does not name the current version: {}",
        show_error(&e)
    );
    let create = serde_json::json!({"op": "set", "key": key, "value": 4, "if_version": null});
    call_err(h, InvokeRequest::new("state", json(create.clone())), &create.to_string(), ErrorKind::Conflict).await?;
    let read = state_op(h, serde_json::json!({"op": "get", "key": key})).await?;
    ensure!(read["value"] == 2, "after two refused writes `{key}` holds {read}, not the last accepted value 2");
    Ok(String::new())
}

async fn sta_03(h: &Harness) -> Check {
    let key = unique("sta-03/session");
    let ttl_ms = 1500;
    state_op(h, serde_json::json!({"op": "set", "key": key, "value": "token", "ttl_ms": ttl_ms})).await?;
    let written = Instant::now();
    let read = state_op(h, serde_json::json!({"op": "get", "key": key})).await?;
    if written.elapsed() < Duration::from_millis(ttl_ms) {
        ensure!(read["value"] == "token" && read["expires"] == true, "read `{key}` within its {ttl_ms} ms TTL: {read}");
    }
    tokio::time::sleep(Duration::from_millis(ttl_ms + 300).saturating_sub(written.elapsed())).await;
    let read = state_op(h, serde_json::json!({"op": "get", "key": key})).await?;
    ensure!(
        read["value"].is_null(),
        "read `{key}` {} ms after writing it with a {ttl_ms} ms TTL: {read}",
        written.elapsed().as_millis()
    );
    Ok(String::new())
}

async fn sta_04(h: &Harness) -> Check {
    let key = unique("sta-04/counter");
    let calls = (0..50).map(|_| state_op(h, serde_json::json!({"op": "incr", "key": key})));
    let mut values = vec![];
    let mut conflicts = 0;
    for reply in futures::future::join_all(calls).await {
        let reply = reply?;
        values.push(reply["value"].as_u64().unwrap_or(0));
        conflicts += reply["conflicts"].as_u64().unwrap_or(0);
    }
    values.sort_unstable();
    ensure!(
        values == (1..=50).collect::<Vec<u64>>(),
        "50 concurrent `incr` of `{key}` (a set_if retry loop) answered {values:?}, not each of 1..=50 once"
    );
    let read = state_op(h, serde_json::json!({"op": "get", "key": key})).await?;
    ensure!(read["value"] == 50, "after 50 increments `{key}` holds {read}");
    Ok(format!("{conflicts} conflicts retried"))
}

async fn sta_05(h: &Harness) -> Check {
    let key = unique("sta-05/kept");
    let written = state_op(h, serde_json::json!({"op": "set", "key": key, "value": "durable"})).await?;
    if let Err(e) = h.state().restart().await {
        return fail(format!("could not restart the suite's state gateway: {}", show_error(&e)));
    }
    let read = state_op(h, serde_json::json!({"op": "get", "key": key})).await?;
    ensure!(
        read["value"] == "durable" && read["version"] == written["version"],
        "wrote `{key}` ({written}), restarted the state gateway on its data, read {read}"
    );
    state_op(h, serde_json::json!({"op": "set", "key": key, "value": "again", "if_version": read["version"]})).await?;
    Ok(String::new())
}
