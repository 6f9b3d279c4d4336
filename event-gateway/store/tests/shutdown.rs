//! `EmbeddedStore::shutdown` leaves no writer thread behind (alone in its own test binary, so the
//! threads of this process are only the ones it starts).
//!
//! Found by `fuzz/embedded_store`: LeakSanitizer reported the writer thread's handle as leaked after
//! an input whose stores had all been shut down, because `shutdown` returned when the writer answered,
//! before its thread had ended (a race, so the fuzzer's input does not replay it; this test checks
//! the guarantee right after each of many shutdowns instead).

//!
//! The same run of `fuzz/embedded_store` later found the same for the compaction helper thread
//! (`faas-store-compact`): the writer waited for the helper's result at shutdown, and during
//! compactions, but never joined the thread, which could still be ending, holding what it had,
//! after the store had released its directory. Input:
//! `AwIAEwL//z8AAAEBypo7AgEDAQDKmjsBAP/5v///AQHKAQD/////////AMqaOykBaABEaQNoLAAAAAAAAABoaQDKmjsDCQDk////+oEBAAAAmjvKAQA=`
//! (base64; a race again, checked below after many compactions and shutdowns).

use std::time::Duration;

use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
use faas_gateway_store::{EventStore, NewEvent};

/// Threads of this process whose name starts like `prefix` (Linux cuts names to 15 bytes).
fn threads(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == &prefix[..prefix.len().min(15)])
        .count()
}

/// [`threads`], looked at again 1 ms later when some are there: a thread that has been joined
/// can still be listed for a moment while the kernel releases it; one nobody joined is still
/// running its own code then.
fn settled(prefix: &str) -> usize {
    match threads(prefix) {
        0 => 0,
        _ => {
            std::thread::sleep(std::time::Duration::from_millis(1));
            threads(prefix)
        }
    }
}

/// Threads of this process named like the store's writer (`faas-store-writer`).
fn writer_threads() -> usize {
    threads("faas-store-writer")
}

/// One test, so that the two checks never run side by side: each counts the threads of this
/// process, which the other's stores would add to.
#[tokio::test(flavor = "current_thread")]
async fn no_store_thread_outlives_shutdown() {
    shutdown_waits_for_the_writer_thread_to_end().await;
    no_compaction_thread_outlives_a_compaction_or_a_shutdown().await;
}

async fn shutdown_waits_for_the_writer_thread_to_end() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for round in 0..50 {
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).await.unwrap();
        // The thread names itself once it runs: wait for that.
        let named = std::time::Instant::now();
        while writer_threads() == 0 && named.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(writer_threads(), 1, "round {round}: one writer while open");
        store.shutdown().await;
        assert_eq!(settled("faas-store-writer"), 0, "round {round}: the writer thread outlived shutdown");
        // A second shutdown has nothing left to wait for.
        store.shutdown().await;
    }
}

async fn no_compaction_thread_outlives_a_compaction_or_a_shutdown() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // Small enough that a few hundred acked events make the log mostly dead.
    let options = EmbeddedOptions { compact_min_bytes: 16 << 10, ..Default::default() };
    let mut compacting = 0;
    for round in 0..30 {
        let store = EmbeddedStore::open(dir.path(), options.clone()).await.unwrap();
        let events = (0..300)
            .map(|i| NewEvent {
                source: "/shutdown".into(),
                id: format!("{round}-{i}"),
                body: vec![b'x'; 100].into(),
                targets: vec!["t".into()],
            })
            .collect();
        store.append(events).await.unwrap();
        for delivery in store.claim(300, Duration::from_secs(60), Duration::ZERO).await.unwrap() {
            store.ack(&delivery.key).await.unwrap();
        }
        // The writer compacts the now dead log: wait until its helper runs (or is already done).
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(2) {
            if threads("faas-store-compact") > 0 || store.log_stats().compactions > 0 {
                compacting += 1;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // Shut down while it may still run: its thread is joined before shutdown returns.
        store.shutdown().await;
        assert_eq!(settled("faas-store-compact"), 0, "round {round}: a compaction thread outlived shutdown");
    }
    assert!(compacting > 0, "no round started a compaction: the test checked nothing");
    let left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    assert!(!left.iter().any(|n| n.ends_with(".tmp")), "a compaction's temporary file was left: {left:?}");
}
