//! The JSON form: what each combinator writes (the goldens a non-Rust tool can rely on), that
//! it reads back to the same program, and the bad-input catalogue with the JSON path each error
//! names.

use faas_api::{ErrorKind, EventFilter};
use faas_composition::*;
use serde_json::{Value, json};

fn program(c: &Node) -> Value {
    Composition::new(c.clone()).to_json()["program"].clone()
}

fn read(program: Value) -> Result<Composition, CompositionError> {
    Composition::from_json(json!({"faas": "composition/v1", "program": program}).to_string().as_bytes())
}

#[test]
fn every_combinator_has_its_json_form() {
    let cases: Vec<(Node, Value)> = vec![
        (call("f"), json!({"op": "call", "function": "f"})),
        (
            call("f").input(pointer("/a")).output("/r"),
            json!({"op": "call", "function": "f", "input": {"pointer": "/a"}, "output": "/r"}),
        ),
        (
            seq([call("a"), call("b")]),
            json!({"op": "seq", "steps": [{"op": "call", "function": "a"}, {"op": "call", "function": "b"}]}),
        ),
        (
            when(at("/n").gt(100), call("big")).otherwise(call("small")),
            json!({"op": "if", "test": {"compare": {"pointer": "/n", "op": "gt", "value": 100}},
                   "then": {"op": "call", "function": "big"}, "else": {"op": "call", "function": "small"}}),
        ),
        (
            while_(at("/more").truthy(), call("page")),
            json!({"op": "while", "test": {"truthy": "/more"}, "body": {"op": "call", "function": "page"}}),
        ),
        (
            do_while(call("poll"), !at("/done").exists()),
            json!({"op": "do_while", "body": {"op": "call", "function": "poll"}, "test": {"not": {"exists": "/done"}}}),
        ),
        (repeat(3, call("tick")), json!({"op": "repeat", "times": 3, "body": {"op": "call", "function": "tick"}})),
        (
            call("pay").catch([ErrorKind::Timeout], call("refund")).finally(call("log")),
            json!({"op": "try", "body": {"op": "call", "function": "pay"},
                   "catch": [{"kinds": ["timeout"], "handler": {"op": "call", "function": "refund"}}],
                   "finally": {"op": "call", "function": "log"}}),
        ),
        (
            call("flaky").retry(4),
            json!({"op": "retry", "body": {"op": "call", "function": "flaky"}, "attempts": 4, "base_ms": 100, "rate": 2.0}),
        ),
        (
            let_([("t", pointer("/token"))], mask(call("mid"))),
            json!({"op": "let", "vars": {"t": {"pointer": "/token"}}, "body": {"op": "mask", "body": {"op": "call", "function": "mid"}}}),
        ),
        (literal(json!({"a": 1})), json!({"op": "value", "value": {"literal": {"a": 1}}})),
        (
            parallel([call("a"), call("b")]).fail_fast(),
            json!({"op": "parallel", "branches": [{"op": "call", "function": "a"}, {"op": "call", "function": "b"}], "fail_fast": true}),
        ),
        (
            map("/items", call("each")).max_concurrency(8),
            json!({"op": "map", "items": "/items", "body": {"op": "call", "function": "each"}, "max_concurrency": 8}),
        ),
        (wait(3000), json!({"op": "wait", "ms": 3000})),
        (
            await_event(EventFilter::new().event_type("order.paid"), 60_000),
            json!({"op": "await_event", "filter": {"type": "order.paid"}, "timeout_ms": 60000}),
        ),
        (
            when(Cond::call("is_vip").or(at("/n").le(1.5)), literal(true)),
            json!({"op": "if", "test": {"any": [{"call": {"function": "is_vip"}}, {"compare": {"pointer": "/n", "op": "le", "value": 1.5}}]},
                   "then": {"op": "value", "value": {"literal": true}}}),
        ),
    ];
    for (node, want) in cases {
        assert_eq!(program(&node), want);
        let back = read(want.clone()).unwrap_or_else(|e| panic!("{e}: {want}"));
        assert_eq!(back.program, node, "{want}");
    }
}

#[test]
fn a_composition_reads_back_as_it_was_written() {
    let checkout = Composition::new(let_(
        [("card", pointer("/card"))],
        seq([
            call("validate"),
            when(at("/amount").gt(100), call("review")),
            call("charge")
                .input(object([("amount", pointer("/amount")), ("card", var("card"))]))
                .output("/receipt")
                .retry(3)
                .catch([ErrorKind::Timeout, ErrorKind::BackendUnavailable], call("queue_for_later")),
            parallel([call("email"), mask(call("analytics"))]),
            map("/lines", call("ship")).max_concurrency(4).fail_fast(),
        ]),
    ))
    .description("checkout");
    let bytes = serde_json::to_vec(&checkout.to_json()).unwrap();
    assert_eq!(Composition::from_json(&bytes).unwrap(), checkout);
}

/// Each bad program: the JSON path of the problem and a part of the message.
#[test]
fn bad_programs_are_refused_naming_the_path() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!([]), "/program", "must be a JSON object"),
        (json!({"op": "seq"}), "/program", "`seq` needs `steps`"),
        (json!({"op": "sequence", "steps": []}), "/program/op", "unknown combinator `sequence`"),
        (json!({"steps": []}), "/program", "needs `op`"),
        (json!({"op": 7}), "/program/op", "must be a string"),
        (
            json!({"op": "seq", "steps": [{"op": "call", "function": "ok"}, {"op": "call"}]}),
            "/program/steps/1",
            "`call` needs `function`",
        ),
        (
            json!({"op": "seq", "steps": [{"op": "call", "function": ""}]}),
            "/program/steps/0/function",
            "function name is empty",
        ),
        (json!({"op": "call", "function": "f", "retries": 3}), "/program/retries", "unknown member `retries`"),
        (json!({"op": "call", "function": "f", "output": "a/b"}), "/program/output", "must be empty or start with `/`"),
        (
            json!({"op": "call", "function": "f", "input": {"pointer": "/a~2"}}),
            "/program/input/pointer",
            "`~` must be followed",
        ),
        (
            json!({"op": "call", "function": "f", "input": {"pointer": "/a", "var": "x"}}),
            "/program/input",
            "exactly one member",
        ),
        (
            json!({"op": "call", "function": "f", "input": {"var": "secret"}}),
            "/program/input/var",
            "no variable `secret`",
        ),
        (
            json!({"op": "let", "vars": {"secret": {"pointer": "/s"}}, "body": {"op": "mask", "body": {"op": "call", "function": "f", "input": {"var": "secret"}}}}),
            "/program/body/body/input/var",
            "outside any `mask`",
        ),
        (
            json!({"op": "let", "vars": {"1x": {"literal": 1}}, "body": {"op": "seq", "steps": []}}),
            "/program/vars/1x",
            "not a variable name",
        ),
        (
            json!({"op": "if", "test": {"compare": {"pointer": "/a", "op": "bigger", "value": 1}}, "then": {"op": "seq", "steps": []}}),
            "/program/test/compare/op",
            "not a comparison",
        ),
        (
            json!({"op": "if", "test": {"maybe": "/a"}, "then": {"op": "seq", "steps": []}}),
            "/program/test/maybe",
            "unknown condition `maybe`",
        ),
        (json!({"op": "if", "then": {"op": "seq", "steps": []}}), "/program", "`if` needs `test`"),
        (json!({"op": "try", "body": {"op": "seq", "steps": []}}), "/program", "needs `catch` handlers, `finally`"),
        (
            json!({"op": "try", "body": {"op": "seq", "steps": []}, "catch": [{"kinds": ["oops"], "handler": {"op": "seq", "steps": []}}]}),
            "/program/catch/0/kinds/0",
            "not an error kind",
        ),
        (
            json!({"op": "retry", "body": {"op": "seq", "steps": []}, "attempts": 0}),
            "/program/attempts",
            "from 1 to 1000",
        ),
        (
            json!({"op": "retry", "body": {"op": "seq", "steps": []}, "attempts": 2, "rate": 0.5}),
            "/program/rate",
            "from 1 to 10",
        ),
        (
            json!({"op": "retry", "body": {"op": "seq", "steps": []}, "attempts": 2, "base_ms": 500, "cap_ms": 100}),
            "/program/cap_ms",
            "from 500",
        ),
        (
            json!({"op": "repeat", "times": -1, "body": {"op": "seq", "steps": []}}),
            "/program/times",
            "must be an integer",
        ),
        (json!({"op": "parallel", "branches": []}), "/program/branches", "1 to 1000 branches"),
        (
            json!({"op": "map", "body": {"op": "seq", "steps": []}, "max_concurrency": 0}),
            "/program/max_concurrency",
            "from 1 to 1000",
        ),
        (json!({"op": "wait", "ms": 1e30}), "/program/ms", "must be an integer"),
        (
            json!({"op": "await_event", "filter": {"kind": "x"}, "timeout_ms": 5}),
            "/program/filter",
            "unknown field `kind`",
        ),
        (json!({"op": "await_event", "filter": {}, "timeout_ms": 0}), "/program/timeout_ms", "from 1"),
    ];
    for (bad, path, message) in cases {
        let err = read(bad.clone()).expect_err(&bad.to_string());
        assert_eq!(err.path, path, "{bad} → {err}");
        assert!(err.message.contains(message), "{bad} → {err}");
    }
}

#[test]
fn the_document_itself_is_checked() {
    let err = Composition::from_json(b"{oops").unwrap_err();
    assert_eq!(err.path, "");
    assert!(err.message.starts_with("not JSON"), "{err}");
    let err = Composition::from_json(br#"{"program": {"op": "seq", "steps": []}}"#).unwrap_err();
    assert!(err.message.contains(r#""faas": "composition/v1""#), "{err}");
    let err = Composition::from_json(br#"{"faas": "composition/v1", "program": {"op": "seq", "steps": []}, "x": 1}"#)
        .unwrap_err();
    assert_eq!(err.path, "/x");
    let big = vec![b' '; MAX_JSON_BYTES + 1];
    assert!(Composition::from_json(&big).unwrap_err().message.contains("the limit is 1048576"));
}

#[test]
fn size_and_depth_are_bounded() {
    let mut deep = json!({"op": "seq", "steps": []});
    for _ in 0..MAX_DEPTH {
        deep = json!({"op": "mask", "body": deep});
    }
    let err = Composition::from_value(&json!({"faas": "composition/v1", "program": deep})).unwrap_err();
    assert!(err.message.contains("nested too deeply"), "{err}");
    let wide: Vec<Value> = (0..=MAX_NODES).map(|_| json!({"op": "call", "function": "f"})).collect();
    let err = read(json!({"op": "seq", "steps": wide})).unwrap_err();
    assert!(err.message.contains("more than 10000 nodes"), "{err}");
}
