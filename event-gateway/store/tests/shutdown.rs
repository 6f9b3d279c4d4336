//! `EmbeddedStore::shutdown` leaves no writer thread behind (alone in its own test binary, so the
//! threads of this process are only the ones it starts).
//!
//! Found by `fuzz/embedded_store`: LeakSanitizer reported the writer thread's handle as leaked after
//! an input whose stores had all been shut down, because `shutdown` returned when the writer answered,
//! before its thread had ended (a race, so the fuzzer's input does not replay it; this test checks
//! the guarantee right after each of many shutdowns instead).

use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};

/// Threads of this process named like the store's writer (`faas-store-writer`, which Linux cuts
/// to 15 bytes).
fn writer_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "faas-store-writ")
        .count()
}

#[tokio::test(flavor = "current_thread")]
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
        assert_eq!(writer_threads(), 0, "round {round}: the writer thread outlived shutdown");
        // A second shutdown has nothing left to wait for.
        store.shutdown().await;
    }
}
