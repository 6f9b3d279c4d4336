//! What a client of `faas dev` and of an app sees from the first moment: `faas dev` accepts
//! connections only once its app is deployed (a client that waits for the port is never told the
//! function does not exist); `faas invoke` prints the reply byte for byte on a pipe and ends the
//! line on a terminal; an app served with `cargo run` logs without colour to a pipe.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const ADA: &str = r#"{"name":"Ada"}"#;

/// Connects to 127.0.0.1:`port` the moment it accepts (trying every millisecond), sends one
/// invocation of `function` at once and returns the raw HTTP response.
fn invoke_at_first_connection(port: u16, function: &str, server: &mut DevServer) -> String {
    let start = Instant::now();
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) => {
                server.assert_running();
                // The first build of a project compiles every dependency: be generous.
                assert!(start.elapsed() < Duration::from_secs(40 * 60), "faas dev never listened\n{}", server.output());
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    };
    let request = format!(
        "POST /functions/{function} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{ADA}",
        ADA.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn a_client_of_faas_dev_gets_its_answer_from_the_first_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let project = new_project(tmp.path(), "hello");
    let port = free_port();
    let mut server = DevServer::start(&project, &["dev", "--port", &port.to_string(), "--no-watch", "--json"]);
    let response = invoke_at_first_connection(port, "hello", &mut server);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "the first request is answered by the function:\n{response}");
    assert_eq!(body, r#"{"message":"Hello, Ada!"}"#);
    // The ready event is printed once the server accepts (it may already be there).
    wait_for("the ready event", Duration::from_secs(30), &mut server, |s| {
        s.stdout.lock().unwrap().iter().any(|l| l.contains(r#""event":"ready""#)).then_some(())
    });

    // faas invoke on a pipe: exactly the reply's bytes, no newline added.
    let o = faas(&project, &["invoke", "hello", "--data", ADA]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, body.as_bytes(), "{:?}", stdout(&o));

    // On a terminal the line is ended, so the prompt starts on a line of its own.
    let (out, ok) = on_terminal(script_cmd(&project), faas_bin(), &["invoke", "hello", "--data", ADA]);
    assert!(ok, "{}", String::from_utf8_lossy(&out));
    assert_eq!(String::from_utf8_lossy(&out), format!("{body}\r\n"));

    // The app itself (`cargo run`: the local HTTP host) logs to a pipe without colour.
    let binary = test_target_dir().join("debug").join("hello");
    let app_port = free_port();
    let mut app = std::process::Command::new(&binary)
        .current_dir(&project)
        .env("FAAS_PORT", app_port.to_string())
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()));
    let mut lines = vec![];
    for line in BufReader::new(app.stderr.take().unwrap()).lines().map_while(Result::ok) {
        let serving = line.starts_with("faas: serving");
        lines.push(line);
        if serving {
            break;
        }
    }
    let _ = app.kill();
    let _ = app.wait();
    let logged = lines.join("\n");
    assert!(logged.contains("faas front listening on"), "a tracing line:\n{logged}");
    assert!(!logged.contains("\x1b["), "no colour on a pipe: {logged:?}");
}
