//! `run_for_profile`, the entry point `faas conformance --backend NAME` uses: profile handling,
//! probe discovery and both local modes from one call.

use faas_api::{BackendProfile, ErrorKind, NoProgress};
use faas_conformance::cases::catalogue;
use faas_conformance::matrix::Mark;
use faas_conformance::run_for_profile;
use faas_front::backend::LocalBackend;

#[test]
fn a_kind_without_a_backend_in_this_build_is_refused() {
    // Every kind once planned is built now; a list of backends can still name one it lacks.
    let backends = faas_backends::all().planned("knative");
    let err = backends.for_profile(&BackendProfile::new("prod", "knative")).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::BackendUnavailable);
    assert_eq!(err.message(), "the `knative` backend is not available in this build yet");
    let err = backends.for_profile(&BackendProfile::new("prod", "nimbus")).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    assert!(err.message().starts_with("backend `prod` has unknown backend kind `nimbus`"), "{}", err.message());
    for kind in ["local", "lambda", "openwhisk", "gcf", "azure"] {
        let found = faas_backends::all().for_profile(&BackendProfile::new("prod", kind)).map(|_| ());
        assert!(found.is_ok(), "`{kind}` is in this build: {:?}", found.err().map(|e| e.message().to_string()));
    }
}

#[tokio::test]
async fn an_invalid_local_profile_is_refused_naming_the_key() {
    let profile = BackendProfile::new("dev", "local").with("colour", "blue");
    let err = run_for_profile(&LocalBackend, profile, &NoProgress).await.unwrap_err();
    assert!(err.message().contains("colour"), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_local_profile_runs_both_modes_with_its_options_and_a_private_state() {
    let state = tempfile::tempdir().unwrap();
    let profile = BackendProfile::new("dev", "local")
        .with("state_dir", state.path().to_string_lossy().to_string())
        .with("memory_limit", true);
    let matrix = run_for_profile(&LocalBackend, profile, &NoProgress).await.expect("the suite ran");
    assert_eq!(matrix.backends(), vec!["local (in-process)", "local (process)"]);
    assert_eq!(matrix.results.len(), 2 * catalogue().len());
    assert!(!matrix.has_failures(), "{}", matrix.to_markdown());
    // The profile's memory_limit reached the process-mode runner: it now claims memory-limit, so
    // CAP-01 has to refuse the next unclaimed capability instead.
    assert_eq!(matrix.get("local (process)", "CAP-01").unwrap().note, "refused `response-streaming`");
    assert_eq!(matrix.get("local (process)", "CAP-01").unwrap().outcome, Mark::Pass);
    // The user's state directory is not touched by a conformance run.
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}
