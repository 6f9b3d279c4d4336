//! Queue-triggered functions against a real Azurite (the npm package `azurite`, installed by
//! `scripts/azurite install`, or `FAAS_AZURITE_QUEUE`): a message put on the queue reaches the
//! handler with the queue trigger's data and metadata, and is deleted once it succeeded.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use faas_emulator_azure::queue::{QueueClient, DEVSTORE_ACCOUNT, DEVSTORE_KEY};
use serde_json::{json, Value};

fn azurite_queue() -> PathBuf {
    if let Ok(path) = std::env::var("FAAS_AZURITE_QUEUE") {
        return PathBuf::from(path);
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/azurite");
    let out = Command::new("bash")
        .arg(&script)
        .arg("install")
        .stdin(Stdio::null())
        .output()
        .expect("scripts/azurite install");
    assert!(
        out.status.success(),
        "scripts/azurite install failed (needs node and npm): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").trim())
}

struct Azurite {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Azurite {
    fn start() -> Azurite {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(azurite_queue())
            .args(["--queueHost", "127.0.0.1", "--queuePort", &port.to_string(), "--location"])
            .arg(dir.path())
            .args(["--silent", "--skipApiVersionCheck", "--disableTelemetry"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting azurite-queue");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "azurite-queue did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Azurite { child, port, _dir: dir }
    }

    fn connection(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={DEVSTORE_ACCOUNT};AccountKey={DEVSTORE_KEY};QueueEndpoint=http://127.0.0.1:{}/{DEVSTORE_ACCOUNT};",
            self.port
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_queue_message_runs_its_function_and_is_deleted() {
    let azurite = Azurite::start();
    let e = faas_emulator_azure::start(faas_emulator_azure::EmulatorOptions {
        azurite: Some(azurite.connection()),
        ..options()
    })
    .await
    .unwrap();
    let orders = json!({"bindings": [{"type": "queueTrigger", "direction": "in", "name": "message", "queueName": "orders",
                                      "connection": "AzureWebJobsStorage"}]});
    let dir = app_dir(&host_json(json!({})), &[("orders", orders)]);
    e.run_folder("queue-app", dir.path(), Default::default()).await.unwrap();
    let client = QueueClient::from_connection_string(&azurite.connection()).unwrap();
    client.create_queue("orders").await.unwrap();
    client.put("orders", r#"{"orderId":7}"#).await.unwrap();
    let lines = eventually("the queue invocation", Duration::from_secs(20), async || {
        let lines = function_log(&e, "queue-app", "orders").await;
        (lines.len() >= 3).then_some(lines)
    })
    .await;
    let (_, executing) = message(&lines[0]);
    assert!(
        executing.starts_with("Executing 'Functions.orders' (Reason='New queue message detected on 'orders'.', Id="),
        "{executing}"
    );
    let received: Value = serde_json::from_str(message(&lines[1]).1.strip_prefix("received ").unwrap()).unwrap();
    assert_eq!(received["Data"]["message"], "\"{\\\"orderId\\\":7}\"");
    let meta = &received["Metadata"];
    assert_eq!(meta["DequeueCount"], "1");
    assert_eq!(meta["orderId"], "\"7\"");
    let id = meta["Id"].as_str().unwrap();
    assert!(id.starts_with('"') && uuid::Uuid::parse_str(id.trim_matches('"')).is_ok(), "{id}");
    assert!(meta["PopReceipt"].as_str().unwrap().starts_with('"'));
    for t in ["InsertionTime", "ExpirationTime", "NextVisibleTime"] {
        let text = meta[t].as_str().unwrap();
        assert!(text.ends_with("+00:00") && chrono::DateTime::parse_from_rfc3339(text).is_ok(), "{t}: {text}");
    }
    assert!(meta.get("QueueTrigger").is_none(), "the trigger's own value is only in Data");
    assert_eq!(meta["sys"]["MethodName"], "orders");
    assert!(message(&lines[2]).1.starts_with("Executed 'Functions.orders' (Succeeded"));
    eventually("the message to be deleted", Duration::from_secs(10), async || {
        client.peek("orders", 32).await.unwrap().is_empty().then_some(())
    })
    .await;
    e.shutdown().await;
}
