//! The Lambda emulator's control plane (`/2015-03-31/functions…`) over a real socket, as the AWS
//! SDKs and the CLI call it: CreateFunction, GetFunction, GetFunctionConfiguration,
//! UpdateFunctionConfiguration, UpdateFunctionCode, DeleteFunction and ListFunctions with bodies
//! built from the real member names (values of any JSON type, code zips valid or not), function
//! references in every form the API takes, and raw requests on any route. One emulator serves
//! every input; each input starts from no functions and removes what it created.
//!
//! Invariants, besides "no panic" in the emulator:
//! - no answer is a 5xx: bad input is the caller's error;
//! - every error has Lambda's shape: `x-amzn-ErrorType`, a JSON body with `Type` and a message,
//!   and a request id;
//! - a refused request changes nothing: the functions listed before and after are the same;
//! - ListFunctions' pages list each function once, in name order.
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

const MEMBERS: &[&str] = &[
    "FunctionName",
    "Role",
    "Runtime",
    "Handler",
    "Description",
    "Timeout",
    "MemorySize",
    "Environment",
    "Variables",
    "Code",
    "ZipFile",
    "S3Bucket",
    "ImageUri",
    "PackageType",
    "Architectures",
    "RevisionId",
];
const STRINGS: &[&str] = &[
    "f",
    "g",
    "arn:aws:iam::123456789012:role/lambda",
    "arn:aws:iam::999:role/x",
    "provided.al2023",
    "provided.al2",
    "python3.12",
    "bootstrap",
    "x86_64",
    "arm64",
    "Zip",
    "Image",
    "AWS_REGION",
    "",
];
const REFS: &[&str] = &[
    "f",
    "g",
    "f:$LATEST",
    "f:1",
    "arn:aws:lambda:us-east-1:123456789012:function:f",
    "arn:aws:lambda:us-east-1:999999999999:function:f",
    "123456789012:function:g",
    "a%2Fb",
    "%ZZ",
    "",
];

struct Emulator {
    live: Live,
    zip: String,
    _emulator: faas_emulator_lambda::Emulator,
}

fn emulator() -> &'static Emulator {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    EMULATOR.get_or_init(|| {
        let options = faas_emulator_lambda::EmulatorOptions {
            addr: ([127, 0, 0, 1], 0).into(),
            idle_timeout: None,
            ..Default::default()
        };
        let (live, emulator) = Live::start(|| async {
            let emulator = faas_emulator_lambda::start(options).await.expect("the emulator starts");
            let url = emulator.url();
            (emulator, url)
        });
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        zip.start_file("bootstrap", options).unwrap();
        zip.write_all(b"#!/bin/sh\nexit 0\n").unwrap();
        let zip = base64::engine::general_purpose::STANDARD.encode(zip.finish().unwrap().into_inner());
        Emulator { live, zip, _emulator: emulator }
    })
}

impl Emulator {
    fn send(&self, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, http::HeaderMap, Bytes) {
        self.live.send(method, path, &[], Some(body))
    }

    /// Every function's configuration, by name, through ListFunctions' pages.
    fn all(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut marker = String::new();
        loop {
            let (status, _, body) = self.send(
                Method::GET,
                &format!("/2015-03-31/functions?MaxItems=2&Marker={}", segment(&marker)),
                vec![],
            );
            assert_eq!(status, StatusCode::OK, "ListFunctions: {}", String::from_utf8_lossy(&body));
            let page: Value = serde_json::from_slice(&body).unwrap();
            out.extend(page["Functions"].as_array().unwrap().iter().cloned());
            match page["NextMarker"].as_str() {
                Some(next) => marker = next.to_string(),
                None => break,
            }
        }
        let names: Vec<_> = out.iter().map(|f| f["FunctionName"].as_str().unwrap().to_string()).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "pages out of order or repeated: {names:?}");
        out
    }
}

fn shape() -> JsonShape<'static> {
    JsonShape { keys: MEMBERS, strings: STRINGS, max_depth: 3 }
}

fn config(u: &mut Unstructured<'_>, body: &mut Map<String, Value>) -> Result<()> {
    for (key, good) in [
        ("Role", json!("arn:aws:iam::123456789012:role/lambda")),
        ("Runtime", json!("provided.al2023")),
        ("Handler", json!("bootstrap")),
        ("Timeout", json!(3)),
        ("MemorySize", json!(128)),
        ("Environment", json!({"Variables": {"A": "1"}})),
        ("Description", json!("d")),
    ] {
        match u.int_in_range(0..=5)? {
            0 | 1 | 2 => {
                body.insert(key.into(), good);
            }
            3 => {
                body.insert(key.into(), json_value(u, &shape(), 1)?);
            }
            _ => {}
        }
    }
    Ok(())
}

fn zip_member(u: &mut Unstructured<'_>, emu: &Emulator) -> Result<Value> {
    Ok(match u.int_in_range(0..=4)? {
        0 | 1 => json!(emu.zip),
        2 => json!("bm90IGEgemlw"),
        3 => json!("not base64!"),
        _ => json_value(u, &shape(), 2)?,
    })
}

/// `s` as a path segment: bytes a URI cannot hold percent-encoded (`%` itself is kept, so
/// malformed escapes reach the emulator).
fn segment(s: &str) -> String {
    percent_encode(s, b"-._~:$%")
}

fn request(u: &mut Unstructured<'_>, emu: &Emulator) -> Result<(Method, String, Vec<u8>)> {
    let name = segment(&pick_string(u, REFS)?);
    Ok(match u.int_in_range(0..=7)? {
        0 | 1 => {
            let mut body = Map::new();
            body.insert("FunctionName".into(), json!(pick_string(u, REFS)?));
            config(u, &mut body)?;
            if u.ratio(7, 8)? {
                body.insert("Code".into(), json!({"ZipFile": zip_member(u, emu)?}));
            }
            if u.ratio(1, 4)? {
                body.insert(pick_string(u, &["PackageType", "Architectures"])?, json_value(u, &shape(), 1)?);
            }
            (Method::POST, "/2015-03-31/functions".into(), serde_json::to_vec(&body).unwrap())
        }
        2 => (Method::GET, format!("/2015-03-31/functions/{name}"), vec![]),
        3 => (Method::GET, format!("/2015-03-31/functions/{name}/configuration"), vec![]),
        4 => {
            let mut body = Map::new();
            config(u, &mut body)?;
            if u.arbitrary()? {
                body.insert("RevisionId".into(), json_value(u, &shape(), 1)?);
            }
            (Method::PUT, format!("/2015-03-31/functions/{name}/configuration"), serde_json::to_vec(&body).unwrap())
        }
        5 => {
            let body = json!({"ZipFile": zip_member(u, emu)?});
            (Method::PUT, format!("/2015-03-31/functions/{name}/code"), serde_json::to_vec(&body).unwrap())
        }
        6 => (Method::DELETE, format!("/2015-03-31/functions/{name}"), vec![]),
        _ => {
            let method = u.choose(&[Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH])?.clone();
            let path = pick_string(
                u,
                &[
                    "/2015-03-31/functions",
                    "/2015-03-31/functions/f/code",
                    "/2015-03-31/functions?MaxItems=0",
                    "/2015-03-31/functions?MaxItems=x&Marker=%FF",
                ],
            )?;
            let path = faas_fuzz::sendable_path(path);
            let n = u.int_in_range(0..=64)?;
            (method, path, u.bytes(n)?.to_vec())
        }
    })
}

fn check_error(status: StatusCode, headers: &http::HeaderMap, body: &[u8], what: &str) {
    assert!(headers.contains_key("x-amzn-errortype"), "{what}: {status} without x-amzn-ErrorType");
    assert!(headers.contains_key("x-amzn-requestid"), "{what}: {status} without a request id");
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e})"));
    // `POST /` is the CloudWatch Logs API the emulator also serves (awsJson1.1: `__type`).
    let type_member = if what == "POST /" { "__type" } else { "Type" };
    assert!(v[type_member].is_string(), "{what}: error body without {type_member}: {v}");
    let message = v.get("message").or_else(|| v.get("Message"));
    assert!(
        message.and_then(Value::as_str).is_some_and(|m| !m.is_empty()),
        "{what}: error body without a message: {v}"
    );
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let emu = emulator();
    assert!(emu.all().is_empty(), "an input started with functions left over");
    let result = (|| -> Result<()> {
        for _ in 0..u.int_in_range(1..=6)? {
            let (method, path, body) = request(u, emu)?;
            let what = format!("{method} {path}");
            let before = emu.all();
            let (status, headers, answer) = emu.send(method, &path, body);
            assert!(status.as_u16() < 500, "{what}: {status} {}", String::from_utf8_lossy(&answer));
            if !status.is_success() {
                check_error(status, &headers, &answer, &what);
                assert_eq!(emu.all(), before, "{what} was refused ({status}) but changed the functions");
            }
        }
        Ok(())
    })();
    for f in emu.all() {
        let name = f["FunctionName"].as_str().unwrap();
        let (status, _, _) = emu.send(Method::DELETE, &format!("/2015-03-31/functions/{}", segment(name)), vec![]);
        assert_eq!(status, StatusCode::NO_CONTENT, "DeleteFunction {name}");
    }
    result
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
