//! The Lambda host's reading of what the platform hands it, as far as it is public:
//! `trace_from_xray` on the `Lambda-Runtime-Trace-Id` header (the X-Ray `Root=..;Parent=..;Sampled=..`
//! form) and `runtime_api_base` on `AWS_LAMBDA_RUNTIME_API`. (The other `Lambda-Runtime-*` headers
//! are read inside the private Runtime API client and are not reachable from here.) And the
//! CloudWatch Logs parser that rebuilds activations (`logs::parse`), on log lines the input picks.
//!
//! Invariants, besides "no panic":
//! - a trace read from X-Ray is a valid W3C trace context whose `traceparent` parses back to it,
//!   whose trace id is the Root's epoch and unique parts, lower-cased, and which is sampled
//!   exactly when the header says `Sampled=1`;
//! - `logs::parse` gives one activation per `START` line, oldest first, attempts numbered 1..n per
//!   request id (asynchronous exactly when n > 1), no platform marker line among the function's
//!   logs, no error on a pending attempt;
//! - a Runtime API base is an `http://` URL without a trailing `/`, query or fragment, which
//!   `runtime_api_base` maps to itself; a refusal names the variable and quotes the value.
#![no_main]

use arbitrary::{Result, Unstructured};
use faas_api::TraceContext;
use faas_fuzz::pick_string;
use faas_runner_lambda::host::{runtime_api_base, trace_from_xray};
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
    match u.int_in_range(0..=4u8) {
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
