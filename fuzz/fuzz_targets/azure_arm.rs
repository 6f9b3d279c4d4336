//! The local Azure Functions host's management surface over a real socket, as Azure's
//! management SDKs call it: ARM sites (create or update, get, list, delete), app settings,
//! keys, functions, restart and trigger sync, with bodies built from the real member names and
//! values of any JSON type, resource paths in any case, with and without `api-version`, and raw
//! requests. One host serves every input; each starts with no sites and removes what it made.
//!
//! Invariants, besides "no panic" in the host:
//! - no answer is a 5xx;
//! - every error is ARM's `{"error": {"code", "message"}}`;
//! - a refused request changes nothing: the sites and their app settings before and after are
//!   the same.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use bytes::Bytes;
use faas_fuzz::{json_value, percent_encode, pick_string, JsonShape, Live};
use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

const SUB: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites";
const MEMBERS: &[&str] = &[
    "location",
    "kind",
    "properties",
    "siteConfig",
    "appSettings",
    "name",
    "value",
    "serverFarmId",
    "httpsOnly",
    "tags",
    "identity",
    "type",
    "reserved",
    "linuxFxVersion",
    "properties.siteConfig",
];
const STRINGS: &[&str] = &[
    "westeurope",
    "functionapp",
    "functionapp,linux",
    "FUNCTIONS_WORKER_RUNTIME",
    "custom",
    "AzureWebJobsStorage",
    "WEBSITE_RUN_FROM_PACKAGE",
    "1",
    "",
];
const APPS: &[&str] = &["app", "App", "other", "a-b", "bad_name", "-x", "%20"];
const TAILS: &[&str] = &[
    "",
    "/config/appsettings/list",
    "/config/appsettings",
    "/functions",
    "/functions/hello",
    "/functions/hello/listkeys",
    "/host/default/listkeys",
    "/restart",
    "/syncfunctiontriggers",
    "/nothing",
];
const VERSIONS: &[&str] = &["?api-version=2023-12-01", "?api-version=2022-03-01", "", "?api-version="];

struct Host {
    live: Live,
    _host: faas_emulator_azure::Emulator,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let options = faas_emulator_azure::EmulatorOptions { addr: ([127, 0, 0, 1], 0).into(), ..Default::default() };
        let (live, host) = Live::start(|| async {
            let host = faas_emulator_azure::start(options).await.expect("the host starts");
            let url = host.url();
            (host, url)
        });
        Host { live, _host: host }
    })
}

impl Host {
    fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> (StatusCode, Bytes) {
        let (status, _, body) = self.live.send(method, path, &[("authorization", "Bearer dev")], body);
        (status, body)
    }

    /// Every site, with its app settings.
    fn all(&self) -> Vec<(Value, Value)> {
        let (status, body) =
            self.send(Method::GET, "/subscriptions/s/providers/Microsoft.Web/sites?api-version=2023-12-01", None);
        assert_eq!(status, StatusCode::OK, "listing: {}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        let mut out = Vec::new();
        for site in v["value"].as_array().cloned().unwrap_or_default() {
            let id = site["id"].as_str().unwrap().to_string();
            let (_, settings) =
                self.send(Method::POST, &format!("{id}/config/appsettings/list?api-version=2023-12-01"), None);
            out.push((site, serde_json::from_slice(&settings).unwrap_or(Value::Null)));
        }
        out
    }
}

fn shape() -> JsonShape<'static> {
    JsonShape { keys: MEMBERS, strings: STRINGS, max_depth: 3 }
}

fn body(u: &mut Unstructured<'_>, tail: &str) -> Result<Value> {
    let mut body = Map::new();
    if tail.is_empty() && u.ratio(3, 4)? {
        body.insert("location".into(), json!(pick_string(u, STRINGS)?));
        body.insert("kind".into(), json!(pick_string(u, STRINGS)?));
        let settings: Vec<Value> = (0..u.int_in_range(0..=2)?)
            .map(|_| Ok(json!({"name": pick_string(u, STRINGS)?, "value": pick_string(u, STRINGS)?})))
            .collect::<Result<_>>()?;
        body.insert("properties".into(), json!({"siteConfig": {"appSettings": settings}}));
    } else if tail == "/config/appsettings" && u.ratio(3, 4)? {
        body.insert("properties".into(), json!({pick_string(u, STRINGS)?: pick_string(u, STRINGS)?}));
    }
    for _ in 0..u.int_in_range(0..=2)? {
        body.insert(pick_string(u, MEMBERS)?, json_value(u, &shape(), 2)?);
    }
    Ok(Value::Object(body))
}

fn segment(s: &str) -> String {
    percent_encode(s, b"-._~%")
}

fn request(u: &mut Unstructured<'_>) -> Result<(Method, String, Option<Vec<u8>>)> {
    let app = segment(&pick_string(u, APPS)?);
    let tail = *u.choose(TAILS)?;
    let version = *u.choose(VERSIONS)?;
    let sub = if u.ratio(1, 8)? { SUB.to_lowercase() } else { SUB.to_string() };
    let method = match u.int_in_range(0..=5)? {
        0 | 1 => Method::PUT,
        2 => Method::GET,
        3 => Method::DELETE,
        4 => Method::POST,
        _ => Method::PATCH,
    };
    if u.ratio(1, 8)? {
        let p = pick_string(
            u,
            &["/subscriptions/s/providers/Microsoft.Web/sites", "/subscriptions", "/tenants", "/providers/x"],
        )?;
        let p = if p.starts_with('/') { segment(&p).replace("%2F", "/") } else { "/".into() };
        let n = u.int_in_range(0..=32)?;
        return Ok((method, format!("{p}{version}"), Some(u.bytes(n)?.to_vec())));
    }
    let raw = u.ratio(1, 8)?;
    let b = if raw {
        let n = u.int_in_range(0..=32)?;
        u.bytes(n)?.to_vec()
    } else {
        serde_json::to_vec(&body(u, tail)?).unwrap()
    };
    Ok((method, format!("{sub}/{app}{tail}{version}"), Some(b)))
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let h = host();
    assert!(h.all().is_empty(), "an input started with sites left over");
    let result = (|| -> Result<()> {
        for _ in 0..u.int_in_range(1..=6)? {
            let (method, p, body) = request(u)?;
            let what = format!("{method} {p}");
            let before = h.all();
            let (status, answer) = h.send(method, &p, body);
            assert!(status.as_u16() < 500, "{what}: {status} {}", String::from_utf8_lossy(&answer));
            if !status.is_success() {
                let v: Value = serde_json::from_slice(&answer).unwrap_or_else(|e| {
                    panic!("{what}: {status} body is not JSON ({e}): {}", String::from_utf8_lossy(&answer))
                });
                assert!(v["error"]["code"].as_str().is_some_and(|c| !c.is_empty()), "{what}: {v}");
                assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {v}");
                assert_eq!(h.all(), before, "{what} was refused ({status}) but changed the sites");
            }
        }
        Ok(())
    })();
    for (site, _) in h.all() {
        let id = site["id"].as_str().unwrap();
        let (status, body) = h.send(Method::DELETE, &format!("{id}?api-version=2023-12-01"), None);
        assert!(status.is_success(), "DELETE {id}: {status} {}", String::from_utf8_lossy(&body));
    }
    result
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
