//! The OpenWhisk emulator's controller REST API over a real socket, as `wsk` and the client
//! libraries call it: actions, packages, triggers and rules created, read, updated and deleted
//! with bodies built from the real member names (values of any JSON type, action zips valid or
//! not), names in every form (`pkg/action`, `_`, illegal characters), the list and activation
//! queries, and raw requests. Invocations and trigger fires are left out (they run actions). One
//! emulator serves every input; each starts from an empty namespace and removes what it made.
//!
//! Invariants, besides "no panic" in the emulator:
//! - no answer is a 5xx;
//! - every error is the controller's `{"error": "...", "code": "<transaction id>"}`;
//! - a refused request changes nothing: the entities listed before and after are the same.
#![no_main]

use std::io::Write as _;
use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use base64::Engine as _;
use bytes::Bytes;
use faas_fuzz::{json_value, percent_encode, pick_string, JsonShape, Live};
use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

const KINDS: &[&str] = &["actions", "packages", "triggers", "rules"];
const MEMBERS: &[&str] = &[
    "exec",
    "kind",
    "image",
    "code",
    "main",
    "binary",
    "components",
    "parameters",
    "annotations",
    "limits",
    "timeout",
    "memory",
    "logs",
    "concurrency",
    "key",
    "value",
    "publish",
    "version",
    "binding",
    "namespace",
    "name",
    "trigger",
    "action",
    "status",
];
const STRINGS: &[&str] = &[
    "blackbox",
    "openwhisk/dockerskeleton",
    "sequence",
    "native",
    "nodejs:20",
    "/guest/a",
    "/_/a",
    "/guest/t",
    "active",
    "inactive",
    "0.0.1",
    "web-export",
    "final",
    "",
];
const NAMES: &[&str] = &["a", "b", "t", "r", "p", "p/a", "p/b", "bad$name", "%20", "x..y", "_"];

struct Emulator {
    live: Live,
    auth: String,
    zip: String,
    _emulator: faas_emulator_openwhisk::Emulator,
}

fn emulator() -> &'static Emulator {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    EMULATOR.get_or_init(|| {
        let options =
            faas_emulator_openwhisk::EmulatorOptions { addr: ([127, 0, 0, 1], 0).into(), ..Default::default() };
        let (live, emulator) = Live::start(|| async {
            let emulator = faas_emulator_openwhisk::start(options).await.expect("the emulator starts");
            let url = emulator.url();
            (emulator, url)
        });
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("exec", zip::write::SimpleFileOptions::default().unix_permissions(0o755)).unwrap();
        zip.write_all(b"#!/bin/sh\necho '{}'\n").unwrap();
        let zip = base64::engine::general_purpose::STANDARD.encode(zip.finish().unwrap().into_inner());
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(emulator.auth()));
        Emulator { live, auth, zip, _emulator: emulator }
    })
}

impl Emulator {
    fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> (StatusCode, Bytes) {
        let (status, _, body) =
            self.live.send(method, &format!("/api/v1{path}"), &[("authorization", &self.auth)], body);
        (status, body)
    }

    /// Every entity of the namespace, by kind.
    fn all(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for kind in KINDS {
            let (status, body) = self.send(Method::GET, &format!("/namespaces/_/{kind}?limit=200"), None);
            assert_eq!(status, StatusCode::OK, "listing {kind}: {}", String::from_utf8_lossy(&body));
            for e in serde_json::from_slice::<Vec<Value>>(&body).expect("a list is an array") {
                out.push((kind.to_string(), e));
            }
        }
        out
    }

    fn clear(&self) {
        // Rules before triggers and actions, actions before their packages.
        for kind in ["rules", "triggers", "actions", "packages"] {
            for (k, e) in self.all() {
                if k != kind {
                    continue;
                }
                let name = e["name"].as_str().unwrap();
                let package = e["namespace"].as_str().and_then(|ns| ns.split_once('/')).map(|(_, p)| format!("{p}/"));
                let path = format!("/namespaces/_/{kind}/{}{name}", package.unwrap_or_default());
                let (status, body) = self.send(Method::DELETE, &path, None);
                assert_eq!(status, StatusCode::OK, "DELETE {path}: {}", String::from_utf8_lossy(&body));
            }
        }
        assert!(self.all().is_empty(), "the namespace was not emptied");
    }
}

fn shape() -> JsonShape<'static> {
    JsonShape { keys: MEMBERS, strings: STRINGS, max_depth: 3 }
}

fn entity(u: &mut Unstructured<'_>, kind: &str, emu: &Emulator) -> Result<Value> {
    let mut body = Map::new();
    match kind {
        "actions" => {
            let exec = match u.int_in_range(0..=3)? {
                0 | 1 => json!({"kind": "blackbox", "image": "openwhisk/dockerskeleton", "code": emu.zip}),
                2 => json!({"kind": "sequence", "components": [pick_string(u, &["/_/a", "/guest/b", "nope"])?]}),
                _ => json_value(u, &shape(), 2)?,
            };
            body.insert("exec".into(), exec);
        }
        "rules" => {
            body.insert("trigger".into(), json!(pick_string(u, &["/_/t", "/guest/t", "t", ""])?));
            body.insert("action".into(), json!(pick_string(u, &["/_/a", "/guest/p/a", "a", ""])?));
        }
        _ => {}
    }
    for _ in 0..u.int_in_range(0..=3)? {
        let key = pick_string(u, &["parameters", "annotations", "limits", "publish", "binding", "version"])?;
        let value = match key.as_str() {
            "parameters" | "annotations" if u.ratio(2, 3)? => {
                json!([{"key": pick_string(u, STRINGS)?, "value": json_value(u, &shape(), 1)?}])
            }
            "limits" if u.ratio(2, 3)? => {
                json!({"timeout": u.int_in_range(0..=400_000)?, "memory": u.int_in_range(0..=1024)?})
            }
            _ => json_value(u, &shape(), 2)?,
        };
        body.insert(key, value);
    }
    Ok(Value::Object(body))
}

/// `s` as path segments: bytes a URI cannot hold percent-encoded (`/` and `%` kept).
fn path(s: &str) -> String {
    percent_encode(s, b"-._~/%$")
}

fn request(u: &mut Unstructured<'_>, emu: &Emulator) -> Result<(Method, String, Option<Vec<u8>>)> {
    let kind = *u.choose(KINDS)?;
    let name = path(&pick_string(u, NAMES)?);
    Ok(match u.int_in_range(0..=6)? {
        0 | 1 | 2 => {
            let overwrite = pick_string(u, &["", "?overwrite=true", "?overwrite=false", "?overwrite=maybe"])?;
            // A fuzzed tail is encoded as a query (a raw `\n` is no URI a client can send).
            let overwrite = path(&overwrite).replace("%3F", "?").replace("%3D", "=");
            let body = serde_json::to_vec(&entity(u, kind, emu)?).unwrap();
            (Method::PUT, format!("/namespaces/_/{kind}/{name}{overwrite}"), Some(body))
        }
        3 => (Method::GET, format!("/namespaces/_/{kind}/{name}"), None),
        4 => (Method::DELETE, format!("/namespaces/_/{kind}/{name}"), None),
        5 => {
            let query =
                pick_string(u, &["?limit=0", "?limit=201", "?skip=-1", "?limit=x", "?since=yesterday", "?docs=true"])?;
            let what = pick_string(u, &["actions", "packages", "triggers", "rules", "activations"])?;
            (Method::GET, format!("/namespaces/_/{what}{}", path(&query).replace("%3F", "?").replace("%3D", "=")), None)
        }
        _ => {
            let method = u.choose(&[Method::GET, Method::PUT, Method::DELETE, Method::PATCH])?.clone();
            let p = pick_string(
                u,
                &[
                    "/namespaces",
                    "/namespaces/_",
                    "/namespaces/other/actions",
                    "/namespaces/_/limits",
                    "/namespaces/_/nothing",
                ],
            )?;
            let p = if p.starts_with('/') { path(&p) } else { "/".into() };
            let n = u.int_in_range(0..=64)?;
            (method, p, Some(u.bytes(n)?.to_vec()))
        }
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let emu = emulator();
    let result = (|| -> Result<()> {
        for _ in 0..u.int_in_range(1..=6)? {
            let (method, p, body) = request(u, emu)?;
            let what = format!("{method} {p}");
            let before = emu.all();
            let (status, answer) = emu.send(method, &p, body);
            assert!(status.as_u16() < 500, "{what}: {status} {}", String::from_utf8_lossy(&answer));
            if !status.is_success() {
                let v: Value = serde_json::from_slice(&answer)
                    .unwrap_or_else(|e| panic!("{what}: {status} body is not JSON ({e})"));
                assert!(
                    v["error"].as_str().is_some_and(|m| !m.is_empty()),
                    "{what}: {status} without an error message: {v}"
                );
                assert!(v["code"].is_string(), "{what}: {status} without a transaction id: {v}");
                assert_eq!(emu.all(), before, "{what} was refused ({status}) but changed the namespace");
            }
        }
        Ok(())
    })();
    emu.clear();
    result
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
