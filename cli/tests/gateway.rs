//! `faas gateway`: starts on 127.0.0.1 with the embedded store from faas.toml's `[gateway]`
//! section, announces itself (`--json`), hands its management token over in an owner-only
//! `.faas/gateway.json`, accepts CloudEvents and serves the token-protected management API.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use common::*;

/// One HTTP/1.1 request with `Connection: close`; returns the status and the body.
fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut s = TcpStream::connect(host).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Spawns `cmd` (a `faas gateway --json` command line) and returns it with its first event,
/// which must be `listening`; the rest of its stdout is drained in the background.
fn start_gateway(cmd: &mut std::process::Command) -> (std::process::Child, serde_json::Value) {
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "listening", "{first}");
    std::thread::spawn(move || lines.for_each(drop));
    (child, first)
}

#[test]
fn gateway_serves_ingress_and_a_token_protected_management_api() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("faas.toml"),
        "[app]\nname = \"gw\"\n\n[gateway]\ndata_dir = \"events\"\n\n[[gateway.subscriptions]]\nid = \"audit\"\ntypes = [\"com.example.audit\"]\nsink = \"http://127.0.0.1:9/never\"\n",
    )
    .unwrap();
    let mut cmd = faas_cmd(tmp.path(), &["gateway", "--port", "0", "--json"]);
    let (mut child, first) = start_gateway(cmd.stderr(std::process::Stdio::null()));
    let url = first["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(first["store"].as_str().unwrap().contains("embedded"), "{first}");

    let info_path = tmp.path().join(".faas").join("gateway.json");
    let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&info_path).unwrap()).unwrap();
    assert_eq!(info["url"], url.as_str());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&info_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the token file is private: {mode:o}");
    }
    let token = info["token"].as_str().unwrap();
    let bearer = format!("Bearer {token}");

    // Ingress: a valid event is accepted once durable; an invalid one names the attribute.
    let event = r#"{"specversion":"1.0","id":"e1","source":"/cli","type":"com.example.audit","data":{"a":1}}"#;
    let (status, body) = http("POST", &format!("{url}/"), &[("content-type", "application/cloudevents+json")], event);
    assert_eq!(status, 202, "{body}");
    let (status, body) = http(
        "POST",
        &format!("{url}/"),
        &[("content-type", "application/cloudevents+json")],
        r#"{"specversion":"1.0","source":"/cli","type":"t"}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("id"), "{body}");
    assert!(tmp.path().join("events").is_dir(), "data_dir is relative to faas.toml");

    // Management: the declared subscription is listed with the token, refused without it.
    let (status, _) = http("GET", &format!("{url}/subscriptions"), &[], "");
    assert_eq!(status, 401);
    let (status, body) = http("GET", &format!("{url}/subscriptions"), &[("authorization", &bearer)], "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"audit\""), "{body}");
    let (status, body) = http("GET", &format!("{url}/metrics"), &[], "");
    assert_eq!(status, 200);
    assert!(body.contains("faas_gateway_events_received_total"), "{body}");

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    assert!(!info_path.exists(), "the token file is removed on a clean stop");
}

#[test]
fn gateway_refuses_bad_flags_and_config_with_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let o = faas(tmp.path(), &["gateway", "--store", "redis"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown store `redis`"), "{}", stderr(&o));
    std::fs::write(tmp.path().join("faas.toml"), "[app]\nname = \"gw\"\n\n[gateway]\nmax_event_bytes = 10\n").unwrap();
    let o = faas(tmp.path(), &["gateway", "--port", "0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("faas.toml:5: key `gateway.max_event_bytes`"), "{}", stderr(&o));
}

#[test]
fn without_faas_toml_faas_gateway_token_is_the_management_token() {
    let tmp = tempfile::tempdir().unwrap();
    let token = "abc-from-the-environment";
    let mut cmd = faas_cmd(tmp.path(), &["gateway", "--port", "0", "--json"]);
    cmd.env("FAAS_GATEWAY_TOKEN", token).env("FAAS_LOG", "debug").stderr(std::process::Stdio::piped());
    let (mut child, first) = start_gateway(&mut cmd);
    let url = first["url"].as_str().unwrap().to_string();

    let (status, body) =
        http("GET", &format!("{url}/subscriptions"), &[("authorization", &format!("Bearer {token}"))], "");
    assert_eq!(status, 200, "FAAS_GATEWAY_TOKEN is the management token: {body}");
    let (status, _) = http("GET", &format!("{url}/subscriptions"), &[("authorization", "Bearer other")], "");
    assert_eq!(status, 403, "another token is refused");
    let info_path = tmp.path().join(".faas").join("gateway.json");
    let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&info_path).unwrap()).unwrap();
    assert_eq!(info["token"], token, "no generated token replaces it: {info}");
    assert!(!tmp.path().join("faas.toml").exists(), "nothing writes a faas.toml");

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(child.wait().unwrap().success(), "{err}");
    assert!(!err.contains(token), "the token is never logged: {err}");
}

/// `faas state` against the project's running `faas gateway` (found through `.faas/gateway.json`):
/// set, get, a lost compare-and-set naming the current version, list, delete, with `--json`;
/// bad input refused, naming it; the keys survive a restart of the gateway.
#[test]
fn faas_state_reads_and_writes_the_apps_keys_on_the_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("faas.toml"), "[app]\nname = \"shop\"\n\n[gateway]\ndata_dir = \"events\"\n")
        .unwrap();
    let mut cmd = faas_cmd(tmp.path(), &["gateway", "--port", "0", "--json"]);
    let (mut child, _) = start_gateway(cmd.stderr(std::process::Stdio::null()));

    let o = faas(tmp.path(), &["--json", "state", "set", "carts/ada", "{\"items\":1}"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v1 = json(&o)["version"].as_u64().unwrap();
    let o = faas(tmp.path(), &["state", "get", "carts/ada"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "{\"items\":1}");
    assert!(stderr(&o).contains(&format!("version {v1}")), "{}", stderr(&o));
    let o = faas(tmp.path(), &["--json", "state", "get", "carts/ada"]);
    let entry = &json(&o)["entry"];
    assert_eq!((entry["value"].as_str(), entry["version"].as_u64()), (Some("{\"items\":1}"), Some(v1)), "{entry}");
    assert_eq!(json(&o)["app"], "shop");

    let o = faas(tmp.path(), &["state", "set", "carts/ada", "two", "--if-version", &v1.to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = faas(tmp.path(), &["--json", "state", "set", "carts/ada", "three", "--if-version", &v1.to_string()]);
    assert!(!o.status.success());
    let failure = json(&o);
    assert_eq!(failure["error"]["kind"], "conflict", "{failure}");
    assert!(failure["error"]["errorMessage"].as_str().unwrap().contains("current version"), "{failure}");
    let o = faas(tmp.path(), &["state", "set", "carts/ada", "x", "--if-absent"]);
    assert!(stderr(&o).contains("conflict"), "{}", stderr(&o));
    let o = faas(tmp.path(), &["state", "set", "session/1", "t", "--ttl", "1h"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = faas(tmp.path(), &["--json", "state", "list"]);
    let keys: Vec<String> =
        json(&o)["entries"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys, ["carts/ada", "session/1"]);
    let o = faas(tmp.path(), &["state", "list", "--prefix", "session/"]);
    let table = stdout(&o);
    assert!(table.contains("session/1") && !table.contains("carts/ada") && table.contains("in 3"), "{table}");

    // Bad input: a key with `..`, a value over the limit, a bad TTL, another app's name.
    let o = faas(tmp.path(), &["state", "set", "a/../b", "x"]);
    assert!(stderr(&o).contains("`..`"), "{}", stderr(&o));
    let big = tmp.path().join("big");
    std::fs::write(&big, vec![b'x'; faas_api::state::MAX_VALUE_BYTES + 1]).unwrap();
    let o = faas(tmp.path(), &["state", "set", "big", "--file", big.to_str().unwrap()]);
    assert!(stderr(&o).contains("limit of 262144 bytes"), "{}", stderr(&o));
    let o = faas(tmp.path(), &["state", "set", "k", "v", "--ttl", "soon"]);
    assert!(stderr(&o).contains("--ttl soon"), "{}", stderr(&o));
    let o = faas(tmp.path(), &["state", "--app", "no/such", "get", "k"]);
    assert!(stderr(&o).contains("not an app name"), "{}", stderr(&o));
    let o = faas(tmp.path(), &["state", "--app", "blog", "get", "carts/ada"]);
    assert!(stderr(&o).contains("is absent"), "another app's keys are its own: {}", stderr(&o));

    let o = faas(tmp.path(), &["--json", "state", "delete", "carts/ada"]);
    assert_eq!(json(&o)["deleted"], true);
    let o = faas(tmp.path(), &["state", "get", "carts/ada"]);
    assert!(!o.status.success() && stderr(&o).contains("is absent"), "{}", stderr(&o));

    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let _ = std::fs::remove_file(tmp.path().join(".faas").join("gateway.json"));
    let mut cmd = faas_cmd(tmp.path(), &["gateway", "--port", "0", "--json"]);
    let (mut child, _) = start_gateway(cmd.stderr(std::process::Stdio::null()));
    let o = faas(tmp.path(), &["state", "get", "session/1"]);
    assert_eq!(stdout(&o), "t", "kept across a SIGKILL of the gateway: {}", stderr(&o));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
}
