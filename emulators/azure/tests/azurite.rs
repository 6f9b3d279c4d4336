//! The queue client and queue trigger against a real Azurite (the npm package `azurite`), which
//! each test starts on a free port with a temporary workspace and kills at its end.
//!
//! Azurite is found through `FAAS_AZURITE_QUEUE` (the path of an `azurite-queue` executable) or
//! installed by `scripts/azurite install` (needs node and npm). These tests never skip: without
//! Azurite they fail, saying how to install it.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use faas_api::ErrorKind;
use faas_emulator_azure::queue::{
    canonicalized_resource, queue_handler, shared_key_signature, spawn_trigger_with, string_to_sign, QueueClient,
    QueueMessage, TriggerOptions, API_VERSION, DEVSTORE_ACCOUNT, DEVSTORE_KEY,
};

const HOW_TO_INSTALL: &str = "install Azurite with `scripts/azurite install` (needs node >= 18 and npm, e.g. \
     `apt-get install nodejs npm`), or set FAAS_AZURITE_QUEUE to the path of an `azurite-queue` executable";

/// The `azurite-queue` executable: `FAAS_AZURITE_QUEUE`, or what `scripts/azurite install` prints.
fn azurite_queue() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(path) = std::env::var("FAAS_AZURITE_QUEUE") {
            let path = PathBuf::from(path);
            assert!(path.is_file(), "FAAS_AZURITE_QUEUE={} is not a file; {HOW_TO_INSTALL}", path.display());
            return path;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/azurite");
        let out = Command::new("bash")
            .arg(&script)
            .arg("install")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {} install: {e}; {HOW_TO_INSTALL}", script.display()));
        assert!(
            out.status.success(),
            "{} install failed ({}):\n{}\n{HOW_TO_INSTALL}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let path = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
        assert!(
            path.is_file(),
            "scripts/azurite install printed `{}`, which is not a file; {HOW_TO_INSTALL}",
            path.display()
        );
        path
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running Azurite queue service; killed on drop.
struct Azurite {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Azurite {
    fn start() -> Azurite {
        Azurite::start_on(free_port())
    }

    fn start_on(port: u16) -> Azurite {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("azurite.log")).unwrap();
        let child = Command::new(azurite_queue())
            .args(["--queueHost", "127.0.0.1", "--queuePort", &port.to_string(), "--location"])
            .arg(dir.path())
            .args(["--silent", "--skipApiVersionCheck", "--disableTelemetry"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}; {HOW_TO_INSTALL}", azurite_queue().display()));
        let mut azurite = Azurite { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = azurite.child.try_wait().unwrap() {
                panic!("azurite-queue exited ({status}) before listening on {port}:\n{}", azurite.log());
            }
            assert!(
                Instant::now() < deadline,
                "azurite-queue did not listen on {port} within 30 s:\n{}",
                azurite.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        azurite
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("azurite.log")).unwrap_or_default()
    }

    fn endpoint(&self) -> String {
        endpoint_on(self.port)
    }

    fn client(&self) -> QueueClient {
        client_with_key(&self.endpoint(), DEVSTORE_KEY)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn endpoint_on(port: u16) -> String {
    format!("http://127.0.0.1:{port}/{DEVSTORE_ACCOUNT}")
}

fn client_with_key(endpoint: &str, key: &str) -> QueueClient {
    QueueClient::from_connection_string(&format!(
        "DefaultEndpointsProtocol=http;AccountName={DEVSTORE_ACCOUNT};AccountKey={key};QueueEndpoint={endpoint};"
    ))
    .unwrap()
}

async fn eventually<T>(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_iso8601(t: &str) {
    assert_eq!(t.len(), 25, "{t}");
    assert!(t.ends_with("+00:00") && t.as_bytes()[10] == b'T', "{t}");
    chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("{t}: {e}"));
}

#[tokio::test]
async fn put_receive_delete_round_trip() {
    let azurite = Azurite::start();
    let c = azurite.client();
    c.create_queue("roundtrip").await.unwrap();
    c.create_queue("roundtrip").await.expect("creating an existing queue (204) is Ok");

    let unicode = "héllo wörld — 日本語 😀 <&>";
    let json = serde_json::json!({"order": 42, "items": ["a", "b"], "note": "<tag> & \"quotes\""});
    c.put("roundtrip", unicode).await.unwrap();
    c.put("roundtrip", &json.to_string()).await.unwrap();

    // On the wire (a raw signed Peek Messages), the text is base64.
    let (status, xml) = c
        .signed_request("GET", "/roundtrip/messages", &[("peekonly", "true"), ("numofmessages", "32")], None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{xml}");
    let b64 = base64::engine::general_purpose::STANDARD;
    assert!(xml.contains(&format!("<MessageText>{}</MessageText>", b64.encode(unicode))), "{xml}");
    assert!(xml.contains(&format!("<MessageText>{}</MessageText>", b64.encode(json.to_string()))), "{xml}");
    assert!(!xml.contains("héllo"), "{xml}");

    let peeked = c.peek("roundtrip", 32).await.unwrap();
    assert_eq!(peeked.len(), 2);
    assert_eq!((peeked[0].text.as_str(), peeked[0].dequeue_count, peeked[0].pop_receipt.as_str()), (unicode, 0, ""));

    let got = c.receive("roundtrip", 32, Duration::from_secs(30)).await.unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].text, unicode);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&got[1].text).unwrap(), json);
    for m in &got {
        assert_eq!(m.dequeue_count, 1);
        assert!(!m.id.is_empty() && !m.pop_receipt.is_empty(), "{m:?}");
        assert_iso8601(&m.insertion_time);
        assert_iso8601(&m.expiration_time);
        assert_iso8601(&m.next_visible_time);
        assert!(m.next_visible_time > m.insertion_time && m.expiration_time > m.next_visible_time, "{m:?}");
    }
    // Hidden now.
    assert!(c.receive("roundtrip", 32, Duration::from_secs(30)).await.unwrap().is_empty());
    for m in &got {
        c.delete("roundtrip", m).await.unwrap();
    }
    let e = c.delete("roundtrip", &got[0]).await.unwrap_err();
    assert_eq!((e.kind(), e.error_type()), (ErrorKind::NotFound, "MessageNotFound"), "{e}");
    assert!(c.peek("roundtrip", 32).await.unwrap().is_empty());

    // A message stored as it is (not base64) is received as stored.
    c.put_raw("roundtrip", "plain & <text> é").await.unwrap();
    let got = c.receive("roundtrip", 1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got[0].text, "plain & <text> é");
    c.delete("roundtrip", &got[0]).await.unwrap();

    // The Storage limit: 64 KiB after base64, so 48 KiB of text.
    c.put("roundtrip", &"x".repeat(48 * 1024)).await.expect("48 KiB of text is 64 KiB base64: within the limit");
    let e = c.put("roundtrip", &"x".repeat(48 * 1024 + 1)).await.unwrap_err();
    assert_eq!((e.kind(), e.error_type()), (ErrorKind::BadInput, "MessageTooLarge"), "{e}");
    let got = c.receive("roundtrip", 32, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text.len(), 48 * 1024);

    // Storage errors keep their code as the error type.
    let e = c.receive("nosuchqueue", 1, Duration::from_secs(1)).await.unwrap_err();
    assert_eq!((e.kind(), e.error_type()), (ErrorKind::NotFound, "QueueNotFound"), "{e}");
    let e = c.create_queue("Bad_Name").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);

    c.clear("roundtrip").await.unwrap();
    c.delete_queue("roundtrip").await.unwrap();
    let e = c.peek("roundtrip", 1).await.unwrap_err();
    assert_eq!(e.error_type(), "QueueNotFound");
}

/// Azurite checks Shared Key signatures: a wrong key, a canonicalized resource without the
/// path-style account segment, or a signed query that differs from the one sent, are all refused.
#[tokio::test]
async fn shared_key_is_checked() {
    let azurite = Azurite::start();
    azurite.client().create_queue("signed").await.unwrap();

    let wrong_key = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
    let e = client_with_key(&azurite.endpoint(), &wrong_key)
        .receive("signed", 1, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.error_type()), (ErrorKind::Unauthorized, "AuthenticationFailed"), "{e}");
    assert!(e.message().contains("403"), "{e}");
    let e = client_with_key(&azurite.endpoint(), &wrong_key).put("signed", "x").await.unwrap_err();
    assert_eq!(e.error_type(), "AuthenticationFailed", "{e}");

    // Hand-signed requests with the public signing helpers.
    let key = base64::engine::general_purpose::STANDARD.decode(DEVSTORE_KEY).unwrap();
    let http = reqwest::Client::new();
    let get = |resource: String, sent_query: &'static str| {
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let sts = string_to_sign("GET", &[("x-ms-date", &date), ("x-ms-version", API_VERSION)], &resource);
        let auth = format!("SharedKey {DEVSTORE_ACCOUNT}:{}", shared_key_signature(&key, &sts));
        http.get(format!("{}/signed/messages?{sent_query}", azurite.endpoint()))
            .header("x-ms-date", date)
            .header("x-ms-version", API_VERSION)
            .header("Authorization", auth)
            .send()
    };
    let query = [("peekonly", "true"), ("numofmessages", "1")];
    let path = format!("/{DEVSTORE_ACCOUNT}/signed/messages");
    let right = canonicalized_resource(DEVSTORE_ACCOUNT, &path, &query);
    assert!(right.starts_with("/devstoreaccount1/devstoreaccount1/signed/messages\n"), "{right}");
    let r = get(right.clone(), "peekonly=true&numofmessages=1").await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // Without the account segment of the path (as for a virtual-host-style URL): refused.
    let single = canonicalized_resource(DEVSTORE_ACCOUNT, "/signed/messages", &query);
    let r = get(single, "peekonly=true&numofmessages=1").await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-ms-error-code"], "AuthenticationFailed");

    // The query is signed too.
    let r = get(right, "peekonly=true&numofmessages=2").await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn trigger_delivers_each_message_once_and_deletes_it() {
    let azurite = Azurite::start();
    let c = azurite.client();
    let seen: Arc<Mutex<Vec<QueueMessage>>> = Arc::default();
    let seen2 = seen.clone();
    let options = TriggerOptions {
        visibility: Duration::from_secs(1),
        max_poll_interval: Duration::from_millis(200),
        ..TriggerOptions::default()
    };
    let trigger = spawn_trigger_with(
        c.clone(),
        "orders".into(),
        options,
        queue_handler(move |m| {
            let seen = seen2.clone();
            async move {
                seen.lock().unwrap().push(m);
                Ok(())
            }
        }),
    );
    // The trigger creates the queue.
    eventually("the trigger to create the queue", Duration::from_secs(10), async || c.peek("orders", 1).await.ok())
        .await;
    let texts = ["first", "second ✓", r#"{"n":3}"#];
    for t in texts {
        c.put("orders", t).await.unwrap();
    }
    eventually("3 deliveries", Duration::from_secs(10), async || (seen.lock().unwrap().len() >= 3).then_some(())).await;
    // Longer than the visibility timeout: a message not deleted would be delivered again.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let seen = seen.lock().unwrap().clone();
    let mut got: Vec<&str> = seen.iter().map(|m| m.text.as_str()).collect();
    got.sort();
    let mut want = texts.to_vec();
    want.sort();
    assert_eq!(got, want, "each message exactly once");
    assert!(seen.iter().all(|m| m.dequeue_count == 1));
    assert!(c.peek("orders", 32).await.unwrap().is_empty(), "handled messages are deleted");
    trigger.abort();
}

#[tokio::test]
async fn trigger_retries_failures_and_moves_poison_messages() {
    let azurite = Azurite::start();
    let c = azurite.client();
    c.create_queue("work").await.unwrap();
    c.put("work", "flaky").await.unwrap();
    c.put("work", "always fails").await.unwrap();
    let seen: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let seen2 = seen.clone();
    let options = TriggerOptions {
        visibility: Duration::from_secs(1),
        max_dequeue: 3,
        max_poll_interval: Duration::from_millis(200),
        ..TriggerOptions::default()
    };
    let trigger = spawn_trigger_with(
        c.clone(),
        "work".into(),
        options,
        queue_handler(move |m| {
            let seen = seen2.clone();
            async move {
                seen.lock().unwrap().push((m.text.clone(), m.dequeue_count));
                if m.text == "flaky" && m.dequeue_count >= 2 {
                    Ok(())
                } else {
                    Err(faas_api::Error::function("Boom", format!("failing {}", m.text)))
                }
            }
        }),
    );
    let poisoned = eventually("the poison queue to get the message", Duration::from_secs(15), async || {
        c.peek("work-poison", 32).await.ok().filter(|ms| !ms.is_empty())
    })
    .await;
    trigger.abort();
    assert_eq!(poisoned.len(), 1);
    assert_eq!(poisoned[0].text, "always fails");
    // Copied as stored: still base64 on the wire.
    let (_, xml) = c.signed_request("GET", "/work-poison/messages", &[("peekonly", "true")], None).await.unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode("always fails");
    assert!(xml.contains(&format!("<MessageText>{b64}</MessageText>")), "{xml}");

    let seen = seen.lock().unwrap().clone();
    let counts = |text: &str| seen.iter().filter(|(t, _)| t == text).map(|(_, n)| *n).collect::<Vec<_>>();
    assert_eq!(counts("flaky"), [1, 2], "a failed message is seen again with dequeue_count 2");
    assert_eq!(counts("always fails"), [1, 2, 3], "moved after max_dequeue failures");
    assert!(c.peek("work", 32).await.unwrap().is_empty(), "{:?}", c.peek("work", 32).await);
}

#[tokio::test]
async fn unreachable_endpoint_is_backend_unavailable_and_the_trigger_recovers() {
    let port = free_port();
    let c = client_with_key(&endpoint_on(port), DEVSTORE_KEY);
    let e = c.receive("later", 1, Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BackendUnavailable, "{e}");
    assert!(e.message().contains(&format!("127.0.0.1:{port}")), "names the endpoint: {e}");
    assert_eq!(c.put("later", "x").await.unwrap_err().kind(), ErrorKind::BackendUnavailable);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let options = TriggerOptions { max_poll_interval: Duration::from_millis(200), ..TriggerOptions::default() };
    let trigger = spawn_trigger_with(
        c.clone(),
        "later".into(),
        options,
        queue_handler(move |m| {
            let tx = tx.clone();
            async move {
                tx.send(m.text).unwrap();
                Ok(())
            }
        }),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!trigger.is_finished(), "the trigger keeps retrying while the endpoint is down");
    let _azurite = Azurite::start_on(port);
    eventually("the trigger to create the queue", Duration::from_secs(10), async || c.peek("later", 1).await.ok())
        .await;
    c.put("later", "after the outage").await.unwrap();
    let text = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("delivered").unwrap();
    assert_eq!(text, "after the outage");
    trigger.abort();
}
