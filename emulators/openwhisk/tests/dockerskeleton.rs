//! Native actions as the dockerskeleton runs them: shell-script `exec`s in zips, invoked over
//! the REST API; results, logs, the `__OW_*` variables, errors and timeouts.

mod common;

use common::*;
use serde_json::{json, Value};

const ECHO: &str = r#"#!/bin/sh
echo "first log line"
echo "to stderr" >&2
read -r stdin_params
echo "{\"argv\": $1, \"stdin\": $stdin_params, \"ns\": \"$__OW_NAMESPACE\", \"action\": \"$__OW_ACTION_NAME\", \"version\": \"$__OW_ACTION_VERSION\", \"activation\": \"$__OW_ACTIVATION_ID\", \"deadline\": \"$__OW_DEADLINE\", \"key\": \"$__OW_API_KEY\", \"host\": \"$__OW_API_HOST\", \"tx\": \"$__OW_TRANSACTION_ID\", \"cwd\": \"$(pwd)\"}"
"#;

#[tokio::test]
async fn a_shell_action_gets_its_parameters_and_the_ow_variables() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    let created = api.native("echo", &exec_zip(ECHO), json!({"timeout": 5000, "memory": 128})).await;
    assert_eq!(created["exec"]["kind"], "blackbox");
    assert_eq!(created["exec"]["binary"], true, "zip code is binary by its shape");
    assert_eq!(created["limits"], json!({"timeout": 5000, "memory": 128, "logs": 10, "concurrency": 1}));

    let before = chrono::Utc::now().timestamp_millis();
    let (status, record) = api.invoke("echo", &json!({"name": "Ada", "n": 1})).await;
    assert_eq!(status, 200, "{record}");
    let result = &record["response"]["result"];
    assert_eq!(result["argv"], json!({"name": "Ada", "n": 1}), "params as argv[1]");
    assert_eq!(result["stdin"], json!({"name": "Ada", "n": 1}), "and on stdin");
    assert_eq!(result["ns"], "guest");
    assert_eq!(result["action"], "/guest/echo");
    assert_eq!(result["version"], "0.0.1");
    assert_eq!(result["activation"], record["activationId"]);
    assert_eq!(result["key"], emulator.auth());
    assert_eq!(result["host"], emulator.url());
    assert_eq!(result["tx"].as_str().unwrap().len(), 32);
    let deadline: i64 = result["deadline"].as_str().unwrap().parse().unwrap();
    assert!(deadline >= before + 5000 && deadline <= chrono::Utc::now().timestamp_millis() + 5000, "{deadline}");
    assert_eq!(record["response"]["status"], "success");
    assert_eq!(record["response"]["success"], true);
    assert!(record["response"]["size"].as_u64().unwrap() > 10);
    assert_eq!(record["namespace"], "guest");
    assert_eq!(record["name"], "echo");
    assert_eq!(record["subject"], "guest");
    assert_eq!(record["duration"], json!(record["end"].as_i64().unwrap() - record["start"].as_i64().unwrap()));
    let logs: Vec<&str> = record["logs"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert!(logs[0].ends_with(" stdout: first log line") && logs[0].len() > 30, "{logs:?}");
    assert!(logs[1].ends_with(" stderr: to stderr"), "{logs:?}");
    assert!(logs[0].as_bytes()[10] == b'T' && logs[0][..31].ends_with("Z "), "ISO time first: {logs:?}");
    assert_eq!(annotation(&record, "path").unwrap(), "guest/echo");
    assert_eq!(annotation(&record, "kind").unwrap(), "blackbox");
    assert_eq!(annotation(&record, "limits").unwrap()["timeout"], 5000);
    assert_eq!(annotation(&record, "timeout").unwrap(), false);
    assert!(annotation(&record, "waitTime").unwrap().is_u64());
    assert!(annotation(&record, "initTime").is_some(), "the first activation is a cold start");

    // The second runs in the warm container: no initTime; ?result=true gives only the result.
    let (status, again) = api.invoke("echo", &json!({"n": 2})).await;
    assert_eq!(status, 200);
    assert!(annotation(&again, "initTime").is_none(), "warm: {again}");
    let (status, only, headers) =
        api.post("/namespaces/guest/actions/echo?blocking=true&result=true", &json!({"n": 3})).await;
    assert_eq!(status, 200);
    assert_eq!(only["argv"], json!({"n": 3}));
    assert_eq!(headers["x-openwhisk-activation-id"].to_str().unwrap().len(), 32);

    // /logs and /result of the record.
    let id = record["activationId"].as_str().unwrap();
    let (_, logs) = api.get(&format!("/namespaces/_/activations/{id}/logs")).await;
    assert_eq!(logs["logs"], record["logs"]);
    let (_, result) = api.get(&format!("/namespaces/_/activations/{id}/result")).await;
    assert_eq!(result, record["response"]);
    emulator.shutdown().await;
}

#[tokio::test]
async fn results_that_are_not_objects_errors_and_arrays() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    api.native("scalar", &exec_zip("#!/bin/sh\necho log\necho 42\n"), json!({})).await;
    let (status, record) = api.invoke("scalar", &json!({})).await;
    assert_eq!(status, 502);
    assert_eq!(record["response"]["status"], "action developer error");
    assert_eq!(record["response"]["result"], json!({"error": "The action did not return a dictionary or array."}));
    let logs = record["logs"].as_array().unwrap();
    assert!(logs[0].as_str().unwrap().ends_with("stdout: log"));
    assert!(logs.last().unwrap().as_str().unwrap().ends_with("stdout: 42"), "the bad line is printed: {logs:?}");

    api.native("silent", &exec_zip("#!/bin/sh\nexit 0\n"), json!({})).await;
    let (status, record) = api.invoke("silent", &json!({})).await;
    assert_eq!((status, record["response"]["status"].as_str()), (502, Some("action developer error")));

    api.native("apperror", &exec_zip("#!/bin/sh\necho '{\"error\": {\"why\": \"no\"}}'\n"), json!({})).await;
    let (status, record) = api.invoke("apperror", &json!({})).await;
    assert_eq!(status, 502);
    assert_eq!(record["response"]["status"], "application error");
    assert_eq!(record["response"]["success"], false);
    assert_eq!(record["response"]["result"], json!({"error": {"why": "no"}}));
    let (status, only, _) = api.post("/namespaces/_/actions/apperror?blocking=true&result=true", &json!({})).await;
    assert_eq!((status, only), (502, json!({"error": {"why": "no"}})));

    api.native("array", &exec_zip("#!/bin/sh\necho '[1, 2, 3]'\n"), json!({})).await;
    let (status, body) = api.invoke("array", &json!({})).await;
    assert_eq!((status, body), (200, json!([1, 2, 3])), "arrays are answered bare");

    // A text script as the code (wsk action create NAME script.sh --native).
    let body = json!({"exec": {"kind": "blackbox", "image": "openwhisk/dockerskeleton", "code": "#!/bin/sh\necho '{\"text\": true}'\n"}});
    let (status, created) = api.put("/namespaces/_/actions/text", &body).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["exec"]["binary"], false);
    let (status, body) = api.invoke("text", &json!({})).await;
    assert_eq!((status, &body["response"]["result"]), (200, &json!({"text": true})));
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_timeout_destroys_the_container_and_is_a_developer_error() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    let script =
        "#!/bin/sh\necho started\nif [ \"$1\" = '{\"sleep\":true}' ]; then sleep 30; fi\necho '{\"done\": true}'\n";
    api.native("slow", &exec_zip(script), json!({"timeout": 300})).await;
    let started = std::time::Instant::now();
    let (status, record) = api.invoke("slow", &json!({"sleep": true})).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "killed at the timeout");
    assert_eq!(status, 502, "{record}");
    assert_eq!(record["response"]["status"], "action developer error");
    assert_eq!(record["response"]["result"]["error"], "The action exceeded its time limits of 300 milliseconds.");
    assert_eq!(annotation(&record, "timeout").unwrap(), true);
    let logs: Vec<String> =
        record["logs"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
    assert!(logs.last().unwrap().ends_with("Log data might be missing."), "{logs:?}");
    // The next activation is a cold start again and works.
    let (status, record) = api.invoke("slow", &json!({})).await;
    assert_eq!((status, &record["response"]["result"]), (200, &json!({"done": true})));
    assert!(annotation(&record, "initTime").is_some());
    emulator.shutdown().await;
}

#[tokio::test]
async fn large_parameters_go_on_stdin_only_and_large_results_are_truncated() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    // argc tells whether argv[1] was given; the size of stdin what came there.
    let script = "#!/bin/sh\nsize=$(wc -c)\necho \"{\\\"argc\\\": $#, \\\"stdin\\\": $size}\"\n";
    api.native("argc", &exec_zip(script), json!({})).await;
    let big = "y".repeat(200_000);
    let (status, body) = api.invoke("argc", &json!({"big": big})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["result"]["argc"], 0, "over MAX_ARG_STRLEN: stdin only");
    assert!(body["response"]["result"]["stdin"].as_u64().unwrap() > 200_000);
    let (_, body) = api.invoke("argc", &json!({"small": 1})).await;
    assert_eq!(body["response"]["result"]["argc"], 1);

    let script = "#!/bin/sh\nprintf '{\"x\": \"'\nhead -c 1100000 /dev/zero | tr '\\0' 'a'\necho '\"}'\n";
    api.native("huge", &exec_zip(script), json!({})).await;
    let (status, body) = api.invoke("huge", &json!({})).await;
    assert_eq!(status, 502);
    // ActivationResult.scala: a truncated answer is an application error.
    assert_eq!(body["response"]["status"], "application error");
    let error = body["response"]["result"]["error"].as_str().unwrap();
    assert!(
        error.starts_with("The action produced a response that exceeded the allowed length: 1100009 > 1048576 bytes."),
        "{}",
        &error[..200]
    );
    assert_eq!(body["response"]["size"], 1100009);
    emulator.shutdown().await;
}

#[tokio::test]
async fn logs_are_limited_and_annotated_when_truncated() {
    let emulator = emulator().await;
    let api = Api::new(&emulator);
    // 0 MB of logs: any output is cut with OpenWhisk's notice.
    api.native("chatty", &exec_zip("#!/bin/sh\necho one\necho two\necho '{}'\n"), json!({"logs": 0})).await;
    let (status, body) = api.invoke("chatty", &json!({})).await;
    assert_eq!(status, 200);
    let logs: Vec<Value> = body["logs"].as_array().unwrap().clone();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0]
        .as_str()
        .unwrap()
        .ends_with("Logs were truncated because the total bytes size exceeds the limit of 0 bytes."));
    emulator.shutdown().await;
}
