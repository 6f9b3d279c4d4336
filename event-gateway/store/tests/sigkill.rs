//! SIGKILL in the middle of a load loses nothing that was acknowledged.
//!
//! This test binary re-executes itself as the writer child (selected by an environment variable): the child
//! opens the store, appends events from 64 concurrent tasks and prints `S <id>` for every append that
//! returned, while 4 worker tasks claim and ack deliveries (`A <id> <target>` just before each ack) so
//! the log also compacts, and 8 tasks increment one key–value counter each with compare-and-set (`K <task>
//! <n>` once the put of `n` returned). The parent SIGKILLs it mid-load, reopens the store and checks that
//! every stored event's every delivery is either still pending or was acked, that every stored id is still
//! a duplicate, and that every counter holds its last acknowledged value (or the one after it, whose put
//! was durable but not yet answered). Three rounds on the same directory (each replays what the previous
//! kills left).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
use faas_gateway_store::{Appended, EventStore, Expect, KvStore, NewEvent};

const CHILD_DIR: &str = "FAAS_STORE_SIGKILL_CHILD_DIR";
const CHILD_ROUND: &str = "FAAS_STORE_SIGKILL_ROUND";
const TARGETS: [&str; 2] = ["a", "b"];
const APPENDERS: usize = 64;
const COUNTERS: usize = 8;
const ROUNDS: usize = 3;

fn options() -> EmbeddedOptions {
    EmbeddedOptions { compact_min_bytes: 128 << 10, ..Default::default() }
}

fn new_event(id: &str) -> NewEvent {
    NewEvent {
        source: "/sigkill".into(),
        id: id.into(),
        body: Bytes::from(format!(r#"{{"id":"{id}","pad":"{}"}}"#, "p".repeat(300))),
        targets: TARGETS.iter().map(|t| t.to_string()).collect(),
    }
}

fn id_of(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).expect("event body is JSON");
    v["id"].as_str().expect("id").to_owned()
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    // One write per line (a pipe write under 4 KiB is atomic): a kill never leaves half a line.
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

fn child(dir: &Path, round: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let store = EmbeddedStore::open(dir, options()).await.expect("child opens the store");
        for task in 0..APPENDERS {
            let store = store.clone();
            let round = round.to_owned();
            tokio::spawn(async move {
                for i in 0.. {
                    // Every fourth task appends batches of three.
                    let ids: Vec<String> = if task % 4 == 0 {
                        (0..3).map(|k| format!("r{round}-t{task}-{i}-{k}")).collect()
                    } else {
                        vec![format!("r{round}-t{task}-{i}")]
                    };
                    let got = store.append(ids.iter().map(|id| new_event(id)).collect()).await.expect("append");
                    for (id, result) in ids.iter().zip(got) {
                        assert_eq!(result, Appended::Stored { deliveries: TARGETS.len() });
                        say(format!("S {id}"));
                    }
                }
            });
        }
        for task in 0..COUNTERS {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("counters/{task}");
                loop {
                    let (n, expect) = match store.kv_get(&key).await.expect("kv get") {
                        Some(e) => (counter_value(&e.value), Expect::Revision(e.revision)),
                        None => (0, Expect::Absent),
                    };
                    let put = store.kv_put(&key, Bytes::from((n + 1).to_string()), expect, None).await;
                    put.expect("only this task writes its counter");
                    say(format!("K {task} {}", n + 1));
                }
            });
        }
        for _ in 0..4 {
            let store = store.clone();
            tokio::spawn(async move {
                loop {
                    let claimed =
                        store.claim(64, Duration::from_secs(60), Duration::from_millis(100)).await.expect("claim");
                    // Say so before acking: an ack that completes just before the kill must not be
                    // mistaken for a lost delivery.
                    futures::future::join_all(claimed.into_iter().map(|d| {
                        say(format!("A {} {}", id_of(&d.body), d.target));
                        let store = store.clone();
                        async move { store.ack(&d.key).await.expect("ack") }
                    }))
                    .await;
                }
            });
        }
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            say(format!("C {}", store.log_stats().compactions));
        }
    });
}

fn counter_value(value: &[u8]) -> u64 {
    std::str::from_utf8(value).expect("UTF-8").parse().expect("a number")
}

/// What the child acknowledged, accumulated over the rounds.
#[derive(Default)]
struct Acknowledged {
    stored: HashSet<String>,
    acked: HashSet<(String, String)>,
    /// Highest acknowledged value of each counter.
    counters: HashMap<usize, u64>,
}

/// One round: run the child, kill it mid-load, collect what it acknowledged.
fn run_child(dir: &Path, round: usize, seen: &mut Acknowledged) -> u64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_DIR, dir)
        .env(CHILD_ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the writer child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut stored_now = 0usize;
    let mut compactions = 0u64;
    let mut handle = |line: String, stored_now: &mut usize, compactions: &mut u64| {
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("S"), Some(id), None) => {
                seen.stored.insert(id.to_owned());
                *stored_now += 1;
            }
            (Some("A"), Some(id), Some(target)) => {
                seen.acked.insert((id.to_owned(), target.to_owned()));
            }
            (Some("K"), Some(task), Some(n)) => {
                let n: u64 = n.parse().unwrap();
                let max = seen.counters.entry(task.parse().unwrap()).or_default();
                *max = (*max).max(n);
            }
            (Some("C"), Some(n), None) => *compactions = n.parse().unwrap(),
            _ => panic!("unexpected child output {line:?}"),
        }
    };
    // Load until enough events were acknowledged and the log compacted at least once (or 30 s passed).
    while stored_now < 3000 || (compactions == 0 && started.elapsed() < Duration::from_secs(30)) {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => handle(line, &mut stored_now, &mut compactions),
            Err(e) => panic!("child stopped answering: {e}; status {:?}", child.try_wait()),
        }
    }
    // Kill at a varying moment, in the middle of the load.
    let jitter = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos() % 30;
    std::thread::sleep(Duration::from_millis(jitter as u64));
    child.kill().expect("SIGKILL the child");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed: {status:?}");
    reader.join().unwrap();
    for line in rx.try_iter() {
        handle(line, &mut stored_now, &mut compactions);
    }
    println!("round {round}: {stored_now} events acknowledged before SIGKILL, {compactions} compactions");
    compactions
}

fn parent() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut seen = Acknowledged::default();
    let mut compactions = 0;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for round in 0..ROUNDS {
        compactions += run_child(dir.path(), round, &mut seen);
        let Acknowledged { stored, acked, counters } = &seen;
        rt.block_on(async {
            let store = EmbeddedStore::open(dir.path(), options()).await.expect("reopen after SIGKILL");
            let pending: BTreeSet<(String, String)> = store
                .claim(usize::MAX, Duration::from_secs(600), Duration::ZERO)
                .await
                .unwrap()
                .into_iter()
                .map(|d| (id_of(&d.body), d.target))
                .collect();
            let mut lost = Vec::new();
            for id in stored {
                for target in TARGETS {
                    let key = (id.clone(), target.to_owned());
                    if !pending.contains(&key) && !acked.contains(&key) {
                        lost.push(key);
                    }
                }
            }
            lost.sort();
            assert!(
                lost.is_empty(),
                "round {round}: {} acknowledged deliveries lost, e.g. {:?}",
                lost.len(),
                &lost[..lost.len().min(5)]
            );
            // Every acknowledged id is still known to de-duplication (acked ones included).
            let ids: Vec<&String> = stored.iter().collect();
            for chunk in ids.chunks(500) {
                let got = store.append(chunk.iter().map(|id| new_event(id)).collect()).await.unwrap();
                let fresh: Vec<_> =
                    chunk.iter().zip(&got).filter(|(_, r)| **r != Appended::Duplicate).map(|(id, _)| id).collect();
                assert!(
                    fresh.is_empty(),
                    "round {round}: ids stored again after restart: {:?}",
                    &fresh[..fresh.len().min(5)]
                );
            }
            for task in 0..COUNTERS {
                let acknowledged = counters.get(&task).copied().unwrap_or(0);
                let value =
                    store.kv_get(&format!("counters/{task}")).await.unwrap().map_or(0, |e| counter_value(&e.value));
                assert!(
                    value == acknowledged || value == acknowledged + 1,
                    "round {round}: counter {task} holds {value} after the kill, but {acknowledged} was acknowledged"
                );
            }
            println!(
                "round {round}: reopened; {} pending deliveries, none of {} acknowledged events lost; counters at {:?}",
                pending.len(),
                stored.len(),
                (0..COUNTERS).map(|t| counters.get(&t).copied().unwrap_or(0)).collect::<Vec<_>>()
            );
            store.shutdown().await;
        });
    }
    assert!(compactions > 0, "the log never compacted under load; the test did not exercise compaction");
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let round = std::env::var(CHILD_ROUND).unwrap_or_default();
        child(Path::new(&dir), &round);
        return;
    }
    // `cargo test -- --list` and filters: this binary holds one test.
    let args: Vec<String> = std::env::args().skip(1).collect();
    const NAME: &str = "sigkill_loses_no_acknowledged_event";
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        println!("running 0 tests");
        return;
    }
    println!("running 1 test");
    parent();
    println!("test {NAME} ... ok");
}
