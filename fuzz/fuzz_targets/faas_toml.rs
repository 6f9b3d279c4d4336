//! `faas.toml`: `Config::parse` (the app, functions, backends) and the gateway's own reading of the
//! same file (`GatewayConfig::parse_with_env`, the `[gateway]` section), on arbitrary text and on
//! TOML-ish documents built from the real section and key names.
//!
//! Invariants, besides "no panic":
//! - an error names the file (`faas.toml:LINE: ...`), a line inside the text, and says something;
//! - an accepted config keeps the promises `Config::parse` documents: a non-empty app name, valid
//!   function names, no zero memory / concurrency / timeout, routes starting with `/`, secrets only
//!   as references, a default backend that exists, every profile's origin in the file;
//! - parsing is deterministic (the same text gives the same answer twice).
#![no_main]

use arbitrary::{Result, Unstructured};
use faas_api::config::{Config, ConfigError};
use faas_fuzz::pick_string;
use libfuzzer_sys::fuzz_target;

const FILE: &str = "faas.toml";

const NAMES: &[&str] = &["hello", "api", "a", "my-fn", "Bad_Name", "", "x y", "local", "prod", "dev", "\"q\""];

const FUNCTION_KEYS: &[&str] =
    &["timeout", "memory_mb", "concurrency", "prewarm", "env", "http", "events", "requires", "bogus"];
const BACKEND_KEYS: &[&str] = &["kind", "region", "token", "client_secret", "password", "url", "role", "memory"];
const GATEWAY_KEYS: &[&str] = &[
    "port",
    "data_dir",
    "store",
    "nats_url",
    "token",
    "ingress_token",
    "max_event_bytes",
    "dedupe_window",
    "concurrency",
    "nope",
];
const DELIVERY_KEYS: &[&str] =
    &["retries", "backoffBase", "backoffMax", "attemptTimeout", "retryAfterMax", "deadletter", "extra"];
const SUBSCRIPTION_KEYS: &[&str] =
    &["id", "source", "types", "filters", "sink", "protocol", "protocolsettings", "delivery", "config", "origin"];

/// TOML values, valid for some key or other.
const VALUES: &[&str] = &[
    "\"greeter\"",
    "''",
    "\"  \"",
    "0",
    "1",
    "128",
    "-1",
    "4294967296",
    "65536",
    "99999999999999999999",
    "1.5",
    "true",
    "\"10s\"",
    "\"500ms\"",
    "\"2m\"",
    "\"1h\"",
    "\"0s\"",
    "\"10\"",
    "\"lambda\"",
    "\"local\"",
    "\"embedded\"",
    "\"nats\"",
    "\"env:TOKEN\"",
    "\"inline-secret\"",
    "\"nats://127.0.0.1:4222\"",
    "\"function:billing\"",
    "\"https://example.com/hook\"",
    "{ route = \"/hello\", method = \"POST\" }",
    "{ route = \"hello\" }",
    "{ type = \"com.example.greet\" }",
    "{ GREETING = \"Hello\" }",
    "[\"logs\"]",
    "[\"com.example.a\", \"\"]",
    "[{ prefix = { subject = \"eu/\" } }]",
    "[{ all = [] }]",
    "[{ not = { exact = { type = \"x\" } } }]",
    "{}",
    "[]",
    "1979-05-27T07:32:00Z",
];

fn key(u: &mut Unstructured<'_>, pool: &[&str]) -> Result<String> {
    let k = pick_string(u, pool)?;
    // Bare keys as written, anything else quoted.
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        Ok(k)
    } else {
        Ok(format!("{k:?}"))
    }
}

fn value(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 6)? {
        let s: String = u.arbitrary()?;
        return Ok(format!("{s:?}"));
    }
    pick_string(u, VALUES)
}

fn pairs(u: &mut Unstructured<'_>, out: &mut String, keys: &[&str]) -> Result<()> {
    for _ in 0..u.int_in_range(0..=4)? {
        let k = key(u, keys)?;
        let v = value(u)?;
        out.push_str(&format!("{k} = {v}\n"));
    }
    Ok(())
}

/// A document of the real sections, keys from each section's own list, values from [`VALUES`].
fn document(u: &mut Unstructured<'_>) -> Result<String> {
    let mut out = String::new();
    if u.ratio(9, 10)? {
        out.push_str("[app]\n");
        if u.ratio(9, 10)? {
            out.push_str(&format!("name = {}\n", if u.ratio(3, 4)? { "\"greeter\"".to_string() } else { value(u)? }));
        }
        if u.ratio(1, 3)? {
            out.push_str(&format!("default_backend = {}\n", value(u)?));
        }
        if u.ratio(1, 4)? {
            out.push_str(&format!("bin = {}\n", value(u)?));
        }
        pairs(u, &mut out, &["name", "other"])?;
    }
    for _ in 0..u.int_in_range(0..=6)? {
        match u.int_in_range(0..=6)? {
            0 | 1 => {
                out.push_str(&format!("\n[functions.{}]\n", key(u, NAMES)?));
                pairs(u, &mut out, FUNCTION_KEYS)?;
            }
            2 | 3 => {
                out.push_str(&format!("\n[backends.{}]\n", key(u, NAMES)?));
                if u.ratio(4, 5)? {
                    out.push_str(&format!("kind = {}\n", pick_string(u, &["\"local\"", "\"lambda\"", "5"])?));
                }
                pairs(u, &mut out, BACKEND_KEYS)?;
            }
            4 => {
                out.push_str("\n[gateway]\n");
                pairs(u, &mut out, GATEWAY_KEYS)?;
            }
            5 => {
                out.push_str(pick_string(u, &["\n[gateway.delivery]\n", "\n[gateway.functions.billing]\n"])?.as_str());
                pairs(u, &mut out, DELIVERY_KEYS)?;
                pairs(u, &mut out, &["backend", "target"])?;
            }
            _ => {
                out.push_str("\n[[gateway.subscriptions]]\n");
                pairs(u, &mut out, SUBSCRIPTION_KEYS)?;
            }
        }
    }
    if u.ratio(1, 8)? {
        // A stray line: junk, a repeated header, a comment.
        out.push_str(&pick_string(u, &["[app]\n", "# comment\n", "= 1\n", "[functions]\n", "x = \n", "[[app]]\n"])?);
    }
    Ok(out)
}

fn check_error(e: &ConfigError, text: &str, what: &str) {
    assert_eq!(e.file, FILE, "{what}: the error names another file: {e:?}");
    let lines = text.lines().count().max(1) + 1;
    assert!(e.line >= 1 && e.line <= lines, "{what}: line {} outside the text ({lines} lines): {e}", e.line);
    let shown = e.to_string();
    assert!(shown.starts_with(&format!("{FILE}:{}: ", e.line)), "{what}: `{shown}`");
    assert!(!e.message.trim().is_empty(), "{what}: empty message: {e:?}");
}

fn check_config(c: &Config) {
    assert!(!c.app.name.trim().is_empty(), "accepted an empty app name");
    for (name, f) in &c.functions {
        faas_api::validate_function_name(name).expect("accepted an invalid function name");
        assert_ne!(f.memory_mb, Some(0));
        assert_ne!(f.concurrency, Some(0));
        assert_ne!(f.timeout, Some(std::time::Duration::ZERO));
        if let Some(h) = &f.http {
            assert!(h.route.starts_with('/'), "accepted route {:?}", h.route);
        }
    }
    for (name, b) in &c.backends {
        assert_eq!(&b.name, name);
        assert!(b.origin.starts_with(&format!("{FILE}:")), "origin {:?}", b.origin);
        for (k, v) in &b.settings {
            let lower = k.to_ascii_lowercase();
            if ["secret", "password", "token", "credentials"].iter().any(|w| lower.contains(w)) {
                let s = v.as_str().expect("accepted a non-string secret");
                assert!(s.starts_with("env:") || s.starts_with("file:"), "accepted an inline secret in `{k}`");
            }
        }
    }
    if let Some(d) = &c.app.default_backend {
        assert!(d == "local" || c.backends.contains_key(d), "default backend `{d}` is not defined");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let text = match u.ratio(1, 2) {
        Ok(true) => match document(&mut u) {
            Ok(doc) => doc,
            Err(_) => return,
        },
        _ => match std::str::from_utf8(u.take_rest()) {
            Ok(s) => s.to_string(),
            Err(_) => return,
        },
    };
    let first = Config::parse(&text, FILE);
    assert_eq!(first, Config::parse(&text, FILE), "not deterministic");
    match &first {
        Ok(c) => check_config(c),
        Err(e) => check_error(e, &text, "Config::parse"),
    }
    // `file:` secrets are read when the gateway section is parsed: keep the fuzzer off the disk.
    if !text.contains("file:") {
        let env = |name: &str| (name == "TOKEN").then(|| "s3cret".to_string());
        if let Err(e) = faas_gateway::config::GatewayConfig::parse_with_env(&text, FILE, &env) {
            check_error(&e, &text, "GatewayConfig::parse");
            assert!(!e.to_string().contains("s3cret"), "a secret value in an error: {e}");
        }
    }
});
