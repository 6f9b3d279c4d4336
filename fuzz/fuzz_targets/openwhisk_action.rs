//! The OpenWhisk host's reading of what the platform hands an action: ActionLoop run bodies, one
//! JSON line per activation on stdin (`faas_host::lines::serve` with `ActionLoopLines`, as
//! `actionloop::serve` runs it, the web-action form included), and the wire forms a payload, a
//! result and an error take between the faas runner and the host.
//!
//! Invariants, besides "no panic":
//! - one answer line per request line that is not blank, each a JSON object or array (what the
//!   ActionLoop proxy accepts), never spanning lines;
//! - a run body that is not a JSON object with an object `value` is answered with a `bad_input`
//!   error result;
//! - an echo action given any payload (through `params_of`, as the runner sends it) answers a
//!   result the runner reads back as that payload (`payload_of_result`), with a web action's
//!   body as the exception it documents;
//! - every payload survives `params_of` → `payload_of_value` and `result_of` →
//!   `payload_of_result`, every portable error `error_result` → `error_of_result`.
#![no_main]

use arbitrary::{Result, Unstructured};
use faas_api::{App, Context, Error, ErrorKind, Payload};
use faas_fuzz::{json_value, pick_string, JsonShape};
use faas_host::{Env, Invoker};
use faas_runner_openwhisk::host::actionloop::ActionLoopLines;
use faas_runner_openwhisk::wire::{self, RunBody};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const KEYS: &[&str] = &[
    "value",
    "namespace",
    "action_name",
    "activation_id",
    "deadline",
    "api_key",
    "faas:payload",
    "contentType",
    "bodyBase64",
    "traceparent",
    "error",
    "__ow_method",
    "__ow_headers",
    "__ow_path",
    "__ow_body",
    "__ow_query",
    "name",
];
const STRINGS: &[&str] = &[
    "/guest/echo",
    "1700000060000",
    "18446744073709551616",
    "get",
    "post",
    "application/json",
    "text/plain",
    "AAEC",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "Ada",
    "",
];
const CONTENT_TYPES: &[&str] =
    &["application/json", "application/json; charset=utf-8", "text/plain", "application/octet-stream", "text/json"];

fn shape() -> JsonShape<'static> {
    JsonShape { keys: KEYS, strings: STRINGS, max_depth: 3 }
}

fn payload(u: &mut Unstructured<'_>) -> Result<Payload> {
    let content_type = if u.arbitrary()? { Some(pick_string(u, CONTENT_TYPES)?) } else { None };
    let body = if u.arbitrary()? {
        serde_json::to_vec(&json_value(u, &shape(), 0)?).unwrap()
    } else {
        let n = u.int_in_range(0..=24)?;
        u.bytes(n)?.to_vec()
    };
    Ok(Payload::new(body, content_type))
}

/// Two payloads are the same to a function when their bytes are, and their JSON-ness (a JSON
/// content type and no content type both read as JSON; the platform keeps no content type).
fn same(a: &Payload, b: &Payload) -> bool {
    a.body() == b.body() && (a.is_json_or_untyped() == b.is_json_or_untyped())
}

fn check_round_trips(u: &mut Unstructured<'_>) -> Result<()> {
    let p = payload(u)?;
    let back = wire::payload_of_value(&wire::params_of(&p));
    assert!(same(&back, &p), "params: {p:?} came back as {back:?}");
    let result = wire::result_of(Ok(p.clone()));
    let back = wire::payload_of_result(&result).expect("a success read back as an error");
    assert!(same(&back, &p), "result: {p:?} came back as {back:?}");
    assert!(
        wire::error_of_result(&result).is_none(),
        "a success reads as an error: {}",
        String::from_utf8_lossy(&result)
    );
    let kind = *u.choose(&[ErrorKind::BadInput, ErrorKind::Function, ErrorKind::Timeout, ErrorKind::NotFound])?;
    let e = Error::new(kind, pick_string(u, STRINGS)?);
    let result = wire::error_result(&e);
    assert_eq!(wire::error_of_result(&result).as_ref(), Some(&e));
    assert!(wire::payload_of_result(&result).is_none());
    Ok(())
}

/// A request line: a run body around an echo payload, a run body with any value, or bytes.
enum Line {
    Echo(Payload),
    Other,
}

fn line(u: &mut Unstructured<'_>, out: &mut Vec<u8>) -> Result<Line> {
    Ok(match u.int_in_range(0..=3)? {
        0 | 1 => {
            let p = payload(u)?;
            let value: Value = serde_json::from_slice(&wire::params_of(&p)).expect("params are JSON");
            let body = json!({"value": value, "action_name": "/guest/echo", "activation_id": "a1", "deadline": "4102444800000"});
            out.extend_from_slice(&serde_json::to_vec(&body).unwrap());
            Line::Echo(p)
        }
        2 => {
            let mut body = serde_json::Map::new();
            for _ in 0..u.int_in_range(0..=4)? {
                body.insert(pick_string(u, KEYS)?, json_value(u, &shape(), 1)?);
            }
            out.extend_from_slice(&serde_json::to_vec(&body).unwrap());
            Line::Other
        }
        _ => {
            let n = u.int_in_range(0..=40)?;
            out.extend(u.bytes(n)?.iter().filter(|b| **b != b'\n'));
            Line::Other
        }
    })
}

fn check_action_loop(u: &mut Unstructured<'_>) -> Result<()> {
    let mut input = Vec::new();
    let mut lines = Vec::new();
    for _ in 0..u.int_in_range(1..=6)? {
        let start = input.len();
        let kind = line(u, &mut input)?;
        lines.push((input[start..].to_vec(), kind));
        input.extend_from_slice(if u.ratio(1, 8)? { b"\r\n" } else { b"\n" });
    }
    let app = App::new().raw("echo", |_: Context, p: Payload| async move { Ok::<_, Error>(p) });
    let env = Env::from_pairs([("__OW_ACTION_NAME", "/guest/echo")]);
    let invoker = Invoker::new(app.clone(), "openwhisk");
    let protocol = ActionLoopLines::new(app, env);
    let mut output = Vec::new();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(faas_host::lines::serve(&input[..], &mut output, invoker, protocol, 1 << 20))
        .expect("serving from memory fails only if writing does");
    let answers: Vec<&[u8]> = output.split(|b| *b == b'\n').collect();
    assert_eq!(answers.last(), Some(&&b""[..]), "the last answer is not terminated");
    let answers = &answers[..answers.len() - 1];
    let asked: Vec<_> =
        lines.iter().filter(|(l, _)| !l.strip_suffix(b"\r").unwrap_or(l).iter().all(u8::is_ascii_whitespace)).collect();
    assert_eq!(answers.len(), asked.len(), "one answer per request line:\n{}", String::from_utf8_lossy(&output));
    for ((request, kind), answer) in asked.iter().zip(answers) {
        let v: Value = serde_json::from_slice(answer).expect("an answer is JSON");
        assert!(v.is_object() || v.is_array(), "an answer is an object or an array: {v}");
        let request = request.strip_suffix(b"\r").unwrap_or(request);
        let Ok(run) = RunBody::parse(request) else {
            let e = wire::error_of_result(answer).expect("a bad run body is answered with an error");
            assert_eq!(e.kind(), ErrorKind::BadInput, "{e:?}");
            continue;
        };
        if let Line::Echo(p) = kind {
            if faas_runner_openwhisk::host::web::request_of(run.value()).is_some() {
                continue; // A web action answers an HTTP response of its own.
            }
            let back = wire::payload_of_result(answer).unwrap_or_else(|| {
                panic!(
                    "the echo failed: request {} answered {}",
                    String::from_utf8_lossy(request),
                    String::from_utf8_lossy(answer)
                )
            });
            assert!(same(&back, p), "echo: {p:?} came back as {back:?}");
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = match u.int_in_range(0..=1u8) {
        Ok(0) => check_round_trips(&mut u),
        _ => check_action_loop(&mut u),
    };
});
