//! The Lambda host's reading of what the platform hands it, as far as it is public:
//! `trace_from_xray` on the `Lambda-Runtime-Trace-Id` header (the X-Ray `Root=..;Parent=..;Sampled=..`
//! form), `runtime_api_base` on `AWS_LAMBDA_RUNTIME_API`, `read_invocation` on the headers and body
//! of a `GET /runtime/invocation/next` answer, and the CloudWatch Logs parser that rebuilds
//! activations (`logs::parse`), on log lines the input picks.
//!
//! Invariants, besides "no panic":
//! - a trace read from X-Ray is a valid W3C trace context whose `traceparent` parses back to it,
//!   whose trace id is the Root's epoch and unique parts, lower-cased, and which is sampled
//!   exactly when the header says `Sampled=1`;
//! - `logs::parse` gives one activation per `START` line, oldest first, attempts numbered 1..n per
//!   request id (asynchronous exactly when n > 1), no platform marker line among the function's
//!   logs, no error on a pending attempt;
//! - an invocation is read exactly when it has a non-empty request id and a numeric deadline (else
//!   the error names the header); its facts carry that id and deadline, the Lambda context the
//!   headers, and the trace of the first valid source: the event, the client context, X-Ray;
//! - a Runtime API base is an `http://` URL without a trailing `/`, query or fragment, which
//!   `runtime_api_base` maps to itself; a refusal names the variable and quotes the value.
#![no_main]

use arbitrary::{Result, Unstructured};
use faas_api::TraceContext;
use faas_fuzz::pick_string;
use faas_runner_lambda::host::{read_invocation, runtime_api_base, trace_from_xray, HostEnv, LambdaContext};
use faas_runner_lambda::logs::{self, LogEvent};
use libfuzzer_sys::fuzz_target;

const FIELDS: &[&str] = &[
    "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700",
    "Root=1-5BEF4DE7-AD49B0E87F6EF6C87FC2E700",
    "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e70",
    "Root=2-5bef4de7-ad49b0e87f6ef6c87fc2e700",
    "Root=1-00000000-000000000000000000000000",
    "Root=1-5bef4de7",
    "Parent=9a9197af755a6419",
    "Parent=0000000000000000",
    "Parent=9A9197AF755A6419",
    "Sampled=1",
    "Sampled=0",
    "Sampled=?",
    "Lineage=a87bd80c:1",
    " Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700 ",
    "",
];

const BASES: &[&str] = &[
    "127.0.0.1:9001",
    "http://127.0.0.1:9000/.rt",
    "http://localhost:9000/",
    "https://127.0.0.1:9001",
    "http://[::1]:9001",
    "http://user@host:1",
    "http:///x",
    "host:99999",
    "a b",
    "http://h/p?q",
    "http://h/p#f",
    "//h:1",
    "h:1/",
];

const LINES: &[&str] = &[
    "START RequestId: r1 Version: $LATEST",
    "START RequestId: r2 Version: $LATEST",
    "START RequestId: ",
    "END RequestId: r1",
    "END RequestId: r2",
    "REPORT RequestId: r1\tDuration: 1.50 ms\tBilled Duration: 2 ms\tInit Duration: 3.00 ms",
    "REPORT RequestId: r2\tDuration: 1e400 ms",
    "REPORT RequestId: r1\tDuration: -7 ms",
    "REPORT RequestId: r2\tDuration: NaN ms\tInit Duration: x ms",
    "2026-01-01T00:00:03.000Z r1 Task timed out after 3.00 seconds",
    "RequestId: r2 Error: Runtime exited with error: signal: killed",
    "Runtime.ExitError",
    "INIT_REPORT Init Duration: 1.00 ms",
    "2026-01-01T00:00:00.000Z\tr1\tERROR\tInvoke Error \t{\"errorType\":\"E\",\"errorMessage\":\"m\",\"kind\":\"function\"}",
    "2026-01-01T00:00:00.000Z\tr1\tERROR\tInvoke Error \t{",
    "hello",
    "",
];

fn log_events(u: &mut Unstructured<'_>) -> Result<Vec<LogEvent>> {
    let mut events = Vec::new();
    for _ in 0..u.int_in_range(0..=12)? {
        let mut message = pick_string(u, LINES)?;
        if u.ratio(1, 4)? {
            message.push('\n');
            message.push_str(&pick_string(u, LINES)?);
        }
        events.push(LogEvent { stream: pick_string(u, &["a", "b"])?, timestamp_ms: u.int_in_range(0..=20)?, message });
    }
    Ok(events)
}

fn check_logs(events: Vec<LogEvent>) {
    let starts = events.iter().flat_map(|e| e.message.lines()).filter(|l| l.starts_with("START RequestId: ")).count();
    let acts = logs::parse("f", events);
    assert_eq!(acts.len(), starts, "one activation per START line");
    assert!(acts.windows(2).all(|w| w[0].start_ms <= w[1].start_ms), "not oldest first");
    let mut seen: std::collections::BTreeMap<&str, u32> = Default::default();
    for a in &acts {
        let n = seen.entry(a.id.as_str()).or_insert(0);
        *n += 1;
        assert_eq!(a.attempt, *n, "attempt numbers of `{}`", a.id);
        for line in &a.logs {
            for marker in ["START RequestId: ", "END RequestId: ", "REPORT RequestId: ", "RequestId: "] {
                assert!(!line.starts_with(marker), "platform line among the logs: {line:?}");
            }
        }
        if a.status == faas_api::ActivationStatus::Pending {
            assert!(a.error.is_none());
        }
    }
    for a in &acts {
        let async_ = seen[a.id.as_str()] > 1;
        assert_eq!(a.mode == faas_api::InvokeMode::Async, async_, "mode of `{}`", a.id);
    }
}

const INVOCATION_HEADERS: &[&str] = &[
    "lambda-runtime-aws-request-id",
    "lambda-runtime-deadline-ms",
    "lambda-runtime-invoked-function-arn",
    "lambda-runtime-trace-id",
    "lambda-runtime-client-context",
    "lambda-runtime-cognito-identity",
    "lambda-runtime-aws-tenant-id",
];

const HEADER_VALUES: &[&str] = &[
    "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
    "1700000000000",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "0",
    "arn:aws:lambda:us-east-1:123456789012:function:hello:prod",
    "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
    r#"{"custom":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}"#,
    r#"{"custom":{"traceparent":"00-zz"}}"#,
    r#"{"cognitoIdentityId":"i","cognitoIdentityPoolId":"p"}"#,
    "{",
    "",
];

const BODIES: &[&str] = &[
    "{}",
    r#"{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}"#,
    r#"{"headers":{"TraceParent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}}"#,
    r#"{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"}"#,
    "[1]",
    "",
];

fn check_invocation(u: &mut Unstructured<'_>) -> Result<()> {
    let mut h = http::HeaderMap::new();
    for _ in 0..u.int_in_range(0..=8)? {
        let name = *u.choose(INVOCATION_HEADERS)?;
        let value =
            if u.ratio(7, 8)? { pick_string(u, HEADER_VALUES)?.into_bytes() } else { u.arbitrary::<Vec<u8>>()? };
        let Ok(value) = http::HeaderValue::from_bytes(&value) else { continue };
        if u.arbitrary()? {
            h.append(name, value);
        } else {
            h.insert(name, value);
        }
    }
    let body = pick_string(u, BODIES)?;
    let env = HostEnv::from_lookup(|k| match k {
        "AWS_LAMBDA_RUNTIME_API" => Some("127.0.0.1:9001".into()),
        "AWS_LAMBDA_FUNCTION_NAME" => Some("hello".into()),
        _ => None,
    })
    .unwrap();
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
    let id = get("lambda-runtime-aws-request-id");
    let deadline = get("lambda-runtime-deadline-ms").and_then(|d| d.parse::<u64>().ok());
    match read_invocation(&h, bytes::Bytes::from(body.clone()), &env) {
        Err(e) => {
            assert!(id.is_none() || deadline.is_none(), "refused a readable invocation: {}", e.message());
            let named = if id.is_none() { "Lambda-Runtime-Aws-Request-Id" } else { "Lambda-Runtime-Deadline-Ms" };
            assert!(e.message().contains(named), "the error does not name {named}: {}", e.message());
        }
        Ok((facts, got)) => {
            let (id, deadline) = (id.expect("read without a request id"), deadline.expect("read without a deadline"));
            assert_eq!(&got[..], body.as_bytes());
            assert_eq!(facts.invocation_id.as_deref(), Some(id));
            assert_eq!(facts.deadline, Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(deadline)));
            let lambda = facts.extensions.get::<LambdaContext>().expect("no Lambda context");
            assert_eq!((lambda.request_id.as_str(), lambda.deadline_ms), (id, deadline));
            assert_eq!(lambda.function_name, "hello");
            assert_eq!(lambda.xray_trace_id.as_deref(), get("lambda-runtime-trace-id"));
            let from_context = lambda
                .client_context
                .as_ref()
                .and_then(|c| c.pointer("/custom/traceparent"))
                .and_then(|t| t.as_str())
                .and_then(TraceContext::parse);
            let want = faas_host_trace_from_event(body.as_bytes())
                .or(from_context)
                .or_else(|| lambda.xray_trace_id.as_deref().and_then(trace_from_xray));
            assert_eq!(facts.trace.map(|t| t.traceparent()), want.map(|t| t.traceparent()), "trace precedence");
        }
    }
    Ok(())
}

/// The event's own `traceparent` (top level, or in an API Gateway event's headers).
fn faas_host_trace_from_event(body: &[u8]) -> Option<TraceContext> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let top = v.get("traceparent").and_then(|t| t.as_str()).and_then(TraceContext::parse);
    top.or_else(|| {
        let headers = v.get("headers")?.as_object()?;
        let (_, t) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("traceparent"))?;
        t.as_str().and_then(TraceContext::parse)
    })
}

fn xray(u: &mut Unstructured<'_>) -> Result<String> {
    let n = u.int_in_range(0..=4)?;
    let mut fields = Vec::new();
    for _ in 0..n {
        fields.push(pick_string(u, FIELDS)?);
    }
    Ok(fields.join(if u.ratio(7, 8)? { ";" } else { "; " }))
}

fn check_trace(header: &str) {
    let Some(t) = trace_from_xray(header) else { return };
    let again = TraceContext::parse(&t.traceparent()).expect("a trace from X-Ray is a valid traceparent");
    assert_eq!(again.traceparent(), t.traceparent());
    let field = |name: &str| {
        header.split(';').map(str::trim).find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
    };
    let root = field("Root").expect("a trace without a Root").to_ascii_lowercase();
    let id: String = root.splitn(2, '-').nth(1).unwrap().replace('-', "");
    assert_eq!(t.trace_id(), id, "trace id from Root `{root}`");
    let sampled = t.traceparent().ends_with("-01");
    assert_eq!(sampled, field("Sampled") == Some("1"), "sampled flag of `{header}`");
}

fn check_base(value: &str) {
    match runtime_api_base(value) {
        Ok(base) => {
            assert!(base.starts_with("http://"), "{value} → {base}");
            assert!(!base.ends_with('/') && !base.contains('?') && !base.contains('#'), "{value} → {base}");
            assert_eq!(
                runtime_api_base(&base).ok().as_deref(),
                Some(base.as_str()),
                "not a fixed point: {value} → {base}"
            );
        }
        Err(e) => {
            assert!(e.message().contains("AWS_LAMBDA_RUNTIME_API must be"), "{}", e.message());
            assert!(e.message().contains(value), "the refusal does not quote the value: {}", e.message());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    match u.int_in_range(0..=5u8) {
        Ok(0) => {
            if let Ok(s) = std::str::from_utf8(u.take_rest()) {
                check_trace(s);
                check_base(s);
            }
        }
        Ok(3) => {
            if let Ok(events) = log_events(&mut u) {
                check_logs(events);
            }
        }
        Ok(5) => {
            let _ = check_invocation(&mut u);
        }
        Ok(1) => {
            if let Ok(h) = xray(&mut u) {
                check_trace(&h);
            }
        }
        _ => {
            if let Ok(b) = pick_string(&mut u, BASES) {
                check_base(&b);
            }
        }
    }
});
