//! The composition JSON form (`faas_composition::Composition::from_json`), on programs built from
//! the real combinators and member names with values of any JSON type, and on arbitrary bytes.
//!
//! Invariants, besides "no panic" (and no stack overflow: nesting is bounded):
//! - a program read writes back (`to_json`) to JSON that reads as the same program;
//! - compiled, it runs on the state machine (`machine::advance`) with steps answering what the
//!   input says, timers firing and events timing out, for up to 200 events, never refusing an
//!   event that answers what it asked for, and its continuation survives a JSON round trip;
//! - a refusal names a JSON Pointer that exists in the document (the member at fault, or the
//!   object missing one) and says what is wrong.
#![no_main]

use arbitrary::{Result, Unstructured};
use faas_api::Error;
use faas_composition::machine::{advance, Action, Event, Program, State};
use faas_composition::Composition;
use faas_fuzz::{json_value, pick_string, JsonShape};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

const OPS: &[&str] = &[
    "call",
    "seq",
    "if",
    "while",
    "do_while",
    "repeat",
    "try",
    "retry",
    "let",
    "mask",
    "value",
    "parallel",
    "map",
    "wait",
    "await_event",
    "sequence",
];
const KEYS: &[&str] = &[
    "function",
    "input",
    "output",
    "steps",
    "test",
    "then",
    "else",
    "body",
    "times",
    "catch",
    "finally",
    "kinds",
    "error_types",
    "handler",
    "attempts",
    "base_ms",
    "rate",
    "cap_ms",
    "jitter",
    "vars",
    "value",
    "branches",
    "fail_fast",
    "items",
    "max_concurrency",
    "ms",
    "filter",
    "timeout_ms",
    "pointer",
    "var",
    "literal",
    "object",
    "compare",
    "op",
    "exists",
    "truthy",
    "not",
    "all",
    "any",
    "type",
];
const STRINGS: &[&str] = &["f", "charge", "/a", "/a/0", "", "a~2", "timeout", "bad_input", "gt", "x", "order.*", "a b"];

fn shape() -> JsonShape<'static> {
    JsonShape { keys: KEYS, strings: STRINGS, max_depth: 2 }
}

fn expr(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    Ok(match u.int_in_range(0..=4)? {
        0 => json!({"pointer": pick_string(u, STRINGS)?}),
        1 => json!({"var": pick_string(u, &["x", "token", "1x"])?}),
        2 => json!({"literal": json_value(u, &shape(), 1)?}),
        3 if depth < 3 => json!({"object": {pick_string(u, STRINGS)?: expr(u, depth + 1)?}}),
        _ => json_value(u, &shape(), 1)?,
    })
}

fn cond(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    Ok(match u.int_in_range(0..=6)? {
        0 => {
            json!({"compare": {"pointer": pick_string(u, STRINGS)?, "op": pick_string(u, &["eq", "gt", "le", "big"])?, "value": json_value(u, &shape(), 1)?}})
        }
        1 => json!({"exists": pick_string(u, STRINGS)?}),
        2 => json!({"truthy": pick_string(u, STRINGS)?}),
        3 if depth < 3 => json!({"not": cond(u, depth + 1)?}),
        4 if depth < 3 => json!({pick_string(u, &["all", "any"])?: [cond(u, depth + 1)?, cond(u, depth + 1)?]}),
        5 => json!({"call": {"function": pick_string(u, STRINGS)?}}),
        _ => json_value(u, &shape(), 1)?,
    })
}

fn node(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    if depth > 6 || u.ratio(1, 16)? {
        return json_value(u, &shape(), 1);
    }
    let op = *u.choose(OPS)?;
    let mut obj = Map::new();
    obj.insert("op".into(), json!(op));
    let child = |u: &mut Unstructured<'_>| node(u, depth + 1);
    match op {
        "call" => {
            obj.insert("function".into(), json!(pick_string(u, STRINGS)?));
            if u.arbitrary()? {
                obj.insert("input".into(), expr(u, 0)?);
            }
        }
        "seq" | "parallel" => {
            let mut items = Vec::new();
            for _ in 0..u.int_in_range(0..=3)? {
                items.push(child(u)?);
            }
            obj.insert(if op == "seq" { "steps" } else { "branches" }.into(), Value::Array(items));
        }
        "if" | "while" | "do_while" => {
            obj.insert("test".into(), cond(u, 0)?);
            obj.insert(if op == "if" { "then" } else { "body" }.into(), child(u)?);
        }
        "try" => {
            obj.insert("body".into(), child(u)?);
            obj.insert("catch".into(), json!([{"kinds": [pick_string(u, STRINGS)?], "handler": child(u)?}]));
        }
        "let" => {
            obj.insert("vars".into(), json!({pick_string(u, &["x", "token", "1x"])?: expr(u, 0)?}));
            obj.insert("body".into(), child(u)?);
        }
        "value" => {
            obj.insert("value".into(), expr(u, 0)?);
        }
        _ => {
            obj.insert("body".into(), child(u)?);
        }
    }
    for _ in 0..u.int_in_range(0..=2)? {
        obj.insert(pick_string(u, KEYS)?, json_value(u, &shape(), 1)?);
    }
    Ok(Value::Object(obj))
}

/// Runs `c` on the machine, each step answering from `u`.
fn run(c: &Composition, u: &mut Unstructured<'_>) {
    let program = Program::compile(&c.program);
    let mut state = State::default();
    let mut event = Event::Start { input: json_value(u, &shape(), 0).unwrap_or(Value::Null), seed: 3 };
    for _ in 0..200 {
        let (next, action) = advance(&program, state, event).expect("an event that answers what was asked is taken");
        let bytes = serde_json::to_vec(&next).unwrap();
        state = serde_json::from_slice(&bytes).expect("a continuation reads back");
        assert_eq!(state, next, "a continuation changed through JSON");
        event = match action {
            Action::Invoke { .. } | Action::AwaitEvent { .. } => {
                Event::Answer(match u.int_in_range(0..=3u8).unwrap_or(0) {
                    0 => Err(Error::timeout("slow")),
                    1 => Err(Error::bad_input("no")),
                    _ => Ok(json_value(u, &shape(), 0).unwrap_or(Value::Null)),
                })
            }
            Action::Sleep { .. } => Event::Timer,
            Action::Finish(_) => return,
        };
    }
}

fn check(doc: &Value, bytes: &[u8], u: &mut Unstructured<'_>) {
    match Composition::from_json(bytes) {
        Ok(c) => {
            let again =
                Composition::from_json(&serde_json::to_vec(&c.to_json()).unwrap()).expect("what was read reads again");
            assert_eq!(again, c, "the JSON form does not read back");
            run(&c, u);
        }
        Err(e) => {
            assert!(!e.message.is_empty());
            if e.message.starts_with("not JSON") || e.message.contains("the limit is") {
                return;
            }
            assert!(doc.pointer(&e.path).is_some(), "the error's path `{}` is not in the document: {e}\n{doc}", e.path);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if u.ratio(1, 8).unwrap_or(false) {
        let bytes = u.take_rest().to_vec();
        let doc = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
        check(&doc, &bytes, &mut Unstructured::new(&[]));
        return;
    }
    let Ok(program) = node(&mut u, 0) else { return };
    let doc = json!({"faas": pick_string(&mut u, &["composition/v1"]).unwrap_or_default(), "program": program});
    check(&doc, &serde_json::to_vec(&doc).unwrap(), &mut u);
});
