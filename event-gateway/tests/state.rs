//! The state service (`/state/v1`): what `cx.state()` reaches, through the real client
//! (`faas_host::state::HttpState`) and raw HTTP, against a gateway on the embedded store.

use std::sync::Arc;
use std::time::Duration;

use faas_api::state::{SetOptions, State};
use faas_api::ErrorKind;
use faas_host::state::HttpState;
use serde_json::Value;

const TOKEN: &str = "management-token-for-tests";

async fn gateway(dir: &std::path::Path) -> faas_gateway::RunningGateway {
    let config = faas_gateway::config::GatewayConfig {
        data_dir: dir.to_path_buf(),
        token: Some(TOKEN.to_string()),
        ..Default::default()
    };
    faas_gateway::start(faas_gateway::GatewayOptions {
        config,
        backends: Default::default(),
        runners: faas_api::Registry::new(),
        bind: Some("127.0.0.1:0".parse().unwrap()),
    })
    .await
    .expect("gateway starts")
}

fn state_of(url: &str, app: &str) -> State {
    let token = faas_gateway::state::app_token(TOKEN, app);
    State::new(Arc::new(HttpState::new(format!("{url}/state/v1/{app}"), token)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_its_writes_conflicts_name_the_version_and_keys_expire() {
    let dir = tempfile::tempdir().unwrap();
    let running = gateway(dir.path()).await;
    let url = format!("http://{}", running.addr());
    let state = state_of(&url, "shop");

    let v1 = state.set_json("carts/ada", &serde_json::json!({"items": 1})).await.unwrap();
    let read = state.get_json::<Value>("carts/ada").await.unwrap().unwrap();
    assert_eq!((read.value["items"].as_u64(), read.version), (Some(1), v1));
    let v2 = state.set_json_if("carts/ada", &serde_json::json!({"items": 2}), Some(v1)).await.unwrap();
    let lost = state.set_json_if("carts/ada", &serde_json::json!({"items": 3}), Some(v1)).await.unwrap_err();
    assert_eq!(lost.kind(), ErrorKind::Conflict, "{lost}");
    assert_eq!(faas_api::state::conflict_version(&lost), Some(Some(v2)), "{lost}");
    let taken = state.set_if("carts/ada", "x", None).await.unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::Conflict);

    let brief = SetOptions { ttl: Some(Duration::from_millis(300)), ..Default::default() };
    state.set_with("session/1", "token", brief).await.unwrap();
    assert!(state.get("session/1").await.unwrap().unwrap().expires_at.is_some());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(state.get("session/1").await.unwrap().is_none(), "expired");

    for i in 0..5 {
        state.set(&format!("list/{i}"), format!("{i}")).await.unwrap();
    }
    let first = state.list("list/", None, 3).await.unwrap();
    let keys: Vec<&str> = first.entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["list/0", "list/1", "list/2"]);
    let rest = state.list("list/", first.next.as_deref(), 3).await.unwrap();
    assert_eq!((rest.entries.len(), rest.next), (2, None));
    assert_eq!(&rest.entries[1].1.value[..], b"4");
    assert!(state.delete("list/0").await.unwrap());
    assert!(!state.delete("list/0").await.unwrap());
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_increments_with_set_if_end_at_fifty() {
    let dir = tempfile::tempdir().unwrap();
    let running = gateway(dir.path()).await;
    let url = format!("http://{}", running.addr());
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let state = state_of(&url, "counter");
            tokio::spawn(async move {
                let mut conflicts = 0;
                loop {
                    let read = state.get_json::<u64>("n").await.unwrap();
                    let (n, version) = read.map_or((0, None), |r| (r.value, Some(r.version)));
                    match state.set_json_if("n", &(n + 1), version).await {
                        Ok(_) => return conflicts,
                        Err(e) if e.kind() == ErrorKind::Conflict => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let n = state_of(&url, "counter").get_json::<u64>("n").await.unwrap().unwrap().value;
    assert_eq!(n, 50, "no lost update ({conflicts} conflicts retried)");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart_on_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let running = gateway(dir.path()).await;
    let url = format!("http://{}", running.addr());
    let v = state_of(&url, "shop").set("k", "kept").await.unwrap();
    running.shutdown().await;
    let running = gateway(dir.path()).await;
    let url = format!("http://{}", running.addr());
    let read = state_of(&url, "shop").get("k").await.unwrap().unwrap();
    assert_eq!((&read.value[..], read.version), (&b"kept"[..], v));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let running = gateway(dir.path()).await;
    let url = format!("http://{}", running.addr());
    let shop = state_of(&url, "shop");
    shop.set("secret", "s").await.unwrap();
    let client = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();

    // No token, a wrong one, another app's, the management token for a write.
    let key = format!("{url}/state/v1/shop/secret");
    assert_eq!(status(client.get(&key).send().await.unwrap()), 401);
    assert_eq!(status(client.get(&key).bearer_auth("nope").send().await.unwrap()), 401);
    let blog = faas_gateway::state::app_token(TOKEN, "blog");
    let r = client.get(&key).bearer_auth(&blog).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("does not open the state of app `shop`"));
    assert_eq!(status(client.put(&key).bearer_auth(TOKEN).body("x").send().await.unwrap()), 401);
    // The management token lists an app's keys.
    let r = client.get(format!("{url}/state/v1/shop")).bearer_auth(TOKEN).send().await.unwrap();
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["entries"][0]["key"], "secret", "{page}");

    // Bad keys, an oversized value, bad conditions and TTLs: 400 or 413, naming the problem.
    let own = faas_gateway::state::app_token(TOKEN, "shop");
    // (`a%2F..%2Fb`: an HTTP client resolves a literal `/../` before sending it.)
    for (path, want) in [("a//b", "empty segment"), ("a%2F..%2Fb", "`..`"), ("tab%09x", "control character")] {
        let r = client.put(format!("{url}/state/v1/shop/{path}")).bearer_auth(&own).body("x").send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains(want), "{path}: {body}");
    }
    let big = vec![b'x'; faas_api::state::MAX_VALUE_BYTES + 1];
    let r = client.put(&key).bearer_auth(&own).body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let r = client.put(&key).bearer_auth(&own).header("if-match", "soon").body("x").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = client.put(&key).bearer_auth(&own).header("faas-state-ttl-ms", "0").body("x").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = client.put(&key).bearer_auth(&own).header("if-match", "999999").body("x").send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.headers().get("faas-state-version").is_some());
    assert_eq!(&shop.get("secret").await.unwrap().unwrap().value[..], b"s", "nothing changed");

    // Every request was counted, by operation and outcome.
    let metrics = client.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        r#"faas_gateway_state_operations_total{op="set",outcome="conflict"} 1"#,
        r#"faas_gateway_state_operations_total{op="set",outcome="refused"} 7"#,
        r#"faas_gateway_state_operations_total{op="get",outcome="refused"} 3"#,
        r#"faas_gateway_state_operations_total{op="list",outcome="ok"} 1"#,
        r#"faas_gateway_state_operations_total{op="get",outcome="ok"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert!(metrics.contains(r#"faas_gateway_state_operation_seconds_count{op="set"} 9"#), "{metrics}");
    running.shutdown().await;
}

/// The profile's `state` key reaches the functions of the local backend in both modes
/// (`faas_api::state::bind`, as `faas deploy` and `faas dev` apply it): 30 racing increments by the
/// probe's `set_if` loop, 15 in each mode, end at 30, and a value written in one mode is read in
/// the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_functions_in_both_modes_share_one_state_through_the_profile() {
    use faas_api::{AppSpec, BackendProfile, Config, InvokeRequest, NoProgress, Payload, Runner};
    use faas_runner_local::{LocalOptions, LocalRunner, Mode};

    let dir = tempfile::tempdir().unwrap();
    let running = gateway(dir.path()).await;
    let url = format!("http://{}", running.addr());
    let binary = faas_conformance::build_probe().unwrap();
    let manifest = faas_packaging::build::describe(&binary).await.unwrap();
    let mut spec = AppSpec::from_parts(&Config::default_for("probe"), binary, manifest).unwrap();
    let profile = BackendProfile::new("dev", "local").with("state", url.as_str());
    let env = |k: &str| (k == "FAAS_GATEWAY_TOKEN").then(|| TOKEN.to_string());
    assert!(faas_api::state::bind(&mut spec, &profile, &env).unwrap());

    let process = LocalRunner::new(LocalOptions::default()).unwrap();
    let in_process = LocalRunner::in_process(
        faas_conformance::fixture_app(),
        LocalOptions { mode: Mode::InProcess, ..Default::default() },
    )
    .unwrap();
    let runners: [std::sync::Arc<LocalRunner>; 2] = [process, in_process];
    for runner in &runners {
        let package = runner.package(&spec, &NoProgress).await.unwrap();
        runner.deploy(&package, &NoProgress).await.unwrap();
    }
    let op = |v: Value| Payload::json(&v).unwrap();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let runner = runners[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let req = InvokeRequest::new("state", op(serde_json::json!({"op": "incr", "key": "visits"})));
            runner.invoke(req).await
        }));
    }
    for t in tasks {
        let out = t.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert!(serde_json::from_slice::<Value>(out.payload.body()).unwrap()["value"].as_u64().is_some());
    }
    async fn read(runner: &LocalRunner, key: &str) -> Value {
        let get = serde_json::json!({"op": "get", "key": key});
        let out = runner.invoke(InvokeRequest::new("state", Payload::json(&get).unwrap())).await.unwrap();
        serde_json::from_slice(out.payload.body()).unwrap()
    }
    assert_eq!(read(&runners[0], "visits").await["value"], 30, "no increment lost");
    let set = InvokeRequest::new("state", op(serde_json::json!({"op": "set", "key": "greeting", "value": "hi"})));
    runners[1].invoke(set).await.unwrap();
    assert_eq!(read(&runners[0], "greeting").await["value"], "hi");
    // A lost compare-and-set is the portable conflict, from a process as from the app in-process.
    for runner in &runners {
        let stale = serde_json::json!({"op": "set", "key": "greeting", "value": "x", "if_version": 999_999});
        let err = runner.invoke(InvokeRequest::new("state", op(stale))).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    }
    // The same keys, seen through the app's own client.
    let visits = state_of(&url, "probe").get_json::<u64>("visits").await.unwrap().unwrap();
    assert_eq!(visits.value, 30);
    for runner in runners {
        runner.shutdown().await;
    }
    running.shutdown().await;
}

/// Two gateway replicas on one JetStream serve one state: 40 racing `set_if` increments split
/// across them end at exactly 40; with one replica gone the other serves every key; a SIGKILL of
/// nats-server loses nothing acknowledged, and the state is served again once it is back (until
/// then an operation is `backend_unavailable`, never a wrong answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_jetstream_share_one_state_through_the_loss_of_one() {
    let mut nats = match faas_gateway_nats::testing::NatsServer::start() {
        Ok(Some(server)) => server,
        Ok(None) => {
            assert!(std::env::var_os("FAAS_REQUIRE_NATS").is_none(), "nats-server is required (FAAS_REQUIRE_NATS)");
            eprintln!("skipped: nats-server not found");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let replica = |side: &str| {
        let config = faas_gateway::config::GatewayConfig {
            data_dir: dir.path().join(side),
            token: Some(TOKEN.to_string()),
            store: faas_gateway::config::StoreKind::Nats,
            nats_url: Some(nats.url()),
            ..Default::default()
        };
        faas_gateway::start(faas_gateway::GatewayOptions {
            config,
            backends: Default::default(),
            runners: faas_api::Registry::new(),
            bind: Some("127.0.0.1:0".parse().unwrap()),
        })
    };
    let a = replica("a").await.unwrap();
    let b = replica("b").await.unwrap();
    let (url_a, url_b) = (format!("http://{}", a.addr()), format!("http://{}", b.addr()));
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let state = state_of(if i % 2 == 0 { &url_a } else { &url_b }, "shop");
            tokio::spawn(async move {
                loop {
                    let read = state.get_json::<u64>("visits").await.unwrap();
                    let (n, version) = read.map_or((0, None), |r| (r.value, Some(r.version)));
                    match state.set_json_if("visits", &(n + 1), version).await {
                        Ok(_) => return,
                        Err(e) if e.kind() == ErrorKind::Conflict => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let on_b = state_of(&url_b, "shop");
    let v = on_b.set("written-on-b", "b").await.unwrap();
    assert_eq!(state_of(&url_a, "shop").get("written-on-b").await.unwrap().unwrap().version, v, "read on the other");
    a.shutdown().await;
    assert_eq!(on_b.get_json::<u64>("visits").await.unwrap().unwrap().value, 40, "no increment lost");

    nats.kill(); // SIGKILL
    let down = on_b.get("visits").await.unwrap_err();
    assert_eq!(down.kind(), ErrorKind::BackendUnavailable, "{down}");
    nats.restart().expect("restart nats-server on the same store directory");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let visits = loop {
        match on_b.get_json::<u64>("visits").await {
            Ok(v) => break v.unwrap().value,
            Err(e) => assert!(std::time::Instant::now() < deadline, "not back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(visits, 40, "kept across a SIGKILL of nats-server");
    b.shutdown().await;
}
