//! ActionLoop actions: a Python `exec` speaking the protocol (ack and results on fd 3, one
//! request line on stdin per activation), run in warm containers.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn the_same_process_takes_warm_activations_with_the_run_facts() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    let zip = exec_zip(&actionloop_script());
    api.actionloop("loop", &zip, json!({"timeout": 10000})).await;

    let before = chrono::Utc::now().timestamp_millis();
    let (status, first) = api.invoke("loop", &json!({"greeting": "hi"})).await;
    assert_eq!(status, 200, "{first}");
    let r1 = &first["response"]["result"];
    assert_eq!(r1["value"], json!({"greeting": "hi"}));
    assert_eq!(r1["count"], 1);
    let request = &r1["request"];
    assert_eq!(request["namespace"], "guest");
    assert_eq!(request["action_name"], "/guest/loop");
    assert_eq!(request["action_version"], "0.0.1");
    assert_eq!(request["activation_id"], first["activationId"]);
    assert_eq!(request["api_key"], emulator.auth());
    assert_eq!(request["transaction_id"].as_str().unwrap().len(), 32);
    let deadline = request["deadline"].as_str().expect("the deadline is a string");
    let deadline: i64 = deadline.parse().unwrap();
    assert!(deadline >= before + 10_000 && deadline <= chrono::Utc::now().timestamp_millis() + 10_000);
    // The child's environment: only __OW_* (the Go proxy passes no PATH), with the ack flag and
    // the init facts of the first activation.
    let env = r1["env"].as_object().unwrap();
    assert_eq!(env["__OW_WAIT_FOR_ACK"], "1");
    assert_eq!(env["__OW_API_HOST"], emulator.url());
    assert_eq!(env["__OW_NAMESPACE"], "guest");
    assert_eq!(env["__OW_ACTION_NAME"], "/guest/loop");
    assert_eq!(env["__OW_ACTIVATION_ID"], first["activationId"]);
    assert_eq!(env["__OW_API_KEY"], emulator.auth());
    assert!(env.contains_key("__OW_PROXY_VERSION") && !env.contains_key("PATH"), "{env:?}");
    assert!(annotation(&first, "initTime").is_some());
    let logs = first["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert!(logs.iter().any(|l| l.as_str().unwrap().ends_with("stdout: log line 1 to stdout")), "{logs:?}");
    // Each line tagged with the stream it was written to.
    assert!(logs.iter().any(|l| l.as_str().unwrap().ends_with("stderr: log line 1 to stderr")), "{logs:?}");

    let (status, second) = api.invoke("loop", &json!({"n": 2})).await;
    assert_eq!(status, 200);
    let r2 = &second["response"]["result"];
    assert_eq!(r2["pid"], r1["pid"], "warm reuse: the same process");
    assert_eq!(r2["count"], 2);
    assert_ne!(r2["request"]["activation_id"], r1["request"]["activation_id"]);
    assert!(annotation(&second, "initTime").is_none());
    let logs = second["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2, "only this activation's lines: {logs:?}");
    assert!(logs.iter().all(|l| l.as_str().unwrap().contains("log line 2")), "{logs:?}");

    // Application error, non-object answer.
    let (status, body) = api.invoke("loop", &json!({"op": "error"})).await;
    assert_eq!((status, body["response"]["status"].as_str()), (502, Some("application error")));
    assert_eq!(body["response"]["result"], json!({"error": "bad thing"}));
    let (status, body) = api.invoke("loop", &json!({"op": "scalar"})).await;
    assert_eq!(status, 502);
    assert_eq!(body["response"]["result"], json!({"error": "The action did not return a dictionary or array."}));
    let (status, body) = api.invoke("loop", &json!({"op": "big"})).await;
    assert_eq!(status, 502);
    assert_eq!(body["response"]["status"], "application error");
    assert!(body["response"]["result"]["error"].as_str().unwrap().contains("exceeded the allowed length"));
    let (_, body) = api.invoke("loop", &json!({})).await;
    assert_eq!(body["response"]["result"]["pid"], r1["pid"], "still the same process");
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_exit_is_command_exited_and_the_next_activation_starts_a_new_process() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    api.actionloop("quitter", &exec_zip(&actionloop_script()), json!({})).await;
    let (_, first) = api.invoke("quitter", &json!({})).await;
    let pid = first["response"]["result"]["pid"].clone();
    let (status, body) = api.invoke("quitter", &json!({"op": "exit"})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["response"]["status"], "action developer error");
    assert_eq!(body["response"]["result"], json!({"error": "command exited"}));
    let (status, body) = api.invoke("quitter", &json!({})).await;
    assert_eq!(status, 200);
    assert_ne!(body["response"]["result"]["pid"], pid, "a new container");
    assert!(annotation(&body, "initTime").is_some());
    emulator.shutdown().await;
}

#[tokio::test]
async fn timeouts_kill_the_container_and_bad_acks_fail_the_init() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    api.actionloop("sleepy", &exec_zip(&actionloop_script()), json!({"timeout": 500})).await;
    let (_, first) = api.invoke("sleepy", &json!({})).await;
    let pid = first["response"]["result"]["pid"].as_i64().unwrap();
    let (status, body) = api.invoke("sleepy", &json!({"op": "sleep", "seconds": 30})).await;
    assert_eq!(status, 502);
    assert_eq!(body["response"]["result"]["error"], "The action exceeded its time limits of 500 milliseconds.");
    assert_eq!(annotation(&body, "timeout").unwrap(), true);
    // The process (group) is gone.
    let alive = || {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
    };
    for _ in 0..100 {
        if !alive() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        !alive(),
        "the timed-out container's process was killed: {}",
        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default()
    );
    let (status, body) = api.invoke("sleepy", &json!({})).await;
    assert_eq!(status, 200);
    assert_ne!(body["response"]["result"]["pid"].as_i64().unwrap(), pid);

    // ok:false and an early exit are init failures (developer errors) with the reason in the logs.
    let nack =
        format!("#!{}\nimport os\nos.write(3, b'{{\"ok\": false}}\\n')\nimport time\ntime.sleep(5)\n", python3());
    api.actionloop("nack", &exec_zip(&nack), json!({})).await;
    let (status, body) = api.invoke("nack", &json!({})).await;
    assert_eq!(status, 502);
    assert_eq!(body["response"]["status"], "action developer error");
    assert_eq!(body["response"]["result"]["error"], "Cannot start action. Check logs for details.");
    assert!(
        body["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().ends_with("The action did not initialize properly.")),
        "{body}"
    );
    assert!(annotation(&body, "initTime").is_some());

    api.actionloop("dies", &exec_zip("#!/bin/sh\necho dying\nexit 1\n"), json!({})).await;
    let (status, body) = api.invoke("dies", &json!({})).await;
    assert_eq!(status, 502);
    let logs = body["logs"].as_array().unwrap();
    assert!(logs.iter().any(|l| l.as_str().unwrap().ends_with("stdout: dying")), "{logs:?}");
    assert!(
        logs.iter().any(|l| l.as_str().unwrap().ends_with("Command exited abruptly during initialization.")),
        "{logs:?}"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn go_and_rust_kinds_run_a_prebuilt_exec_and_refuse_source() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    for kind in ["go:1.24", "rust:1.34"] {
        let body = json!({"exec": {"kind": kind, "code": b64(&exec_zip(&actionloop_script())), "binary": true}});
        let (status, created) = api.put("/namespaces/_/actions/native-kind", &body).await;
        assert_eq!(status, 200, "{created}");
        let (status, body) = api.invoke("native-kind", &json!({"k": kind})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["response"]["result"]["value"]["k"], kind);
        assert_eq!(annotation(&body, "kind").unwrap(), kind);
        api.delete("/namespaces/_/actions/native-kind").await;
    }
    let (status, body) =
        api.put("/namespaces/_/actions/src", &json!({"exec": {"kind": "go:1.24", "code": "package main"}})).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("compiles no source code"), "{body}");
    emulator.shutdown().await;
}

/// Concurrent activations of a warm action with `concurrency` 1 need a container each; with a
/// higher limit they share the warm one, which the ActionLoop proxy hands one activation at a
/// time. (Activations that arrive while a container is still starting start their own: this
/// emulator offers a container to others only once it is up.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_lets_activations_share_a_container() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    let zip = exec_zip(&actionloop_script());
    let run = |name: &'static str| {
        let api = &api;
        async move {
            let params = json!({"op": "sleep", "seconds": 0.3});
            // Started 50 ms apart, so they overlap in the container (each sleeps 300 ms) without
            // racing for the shelf.
            let params = &params;
            let calls = (0..3u64).map(|i| async move {
                tokio::time::sleep(std::time::Duration::from_millis(50 * i)).await;
                api.invoke(name, params).await
            });
            let records = futures::future::join_all(calls).await;
            let pids: std::collections::BTreeSet<String> =
                records.iter().map(|(_, r)| r["response"]["result"]["pid"].to_string()).collect();
            let cold = records.iter().filter(|(_, r)| annotation(r, "initTime").is_some()).count();
            assert!(records.iter().all(|(s, _)| *s == 200), "{records:?}");
            (pids.len(), cold)
        }
    };
    api.actionloop("single", &zip, json!({"timeout": 10000, "concurrency": 1})).await;
    api.invoke("single", &json!({})).await;
    assert_eq!(run("single").await, (3, 2), "the warm container and two more");
    api.actionloop("shared", &zip, json!({"timeout": 10000, "concurrency": 3})).await;
    api.invoke("shared", &json!({})).await;
    assert_eq!(run("shared").await, (1, 0), "the warm container for all three");
    emulator.shutdown().await;
}
