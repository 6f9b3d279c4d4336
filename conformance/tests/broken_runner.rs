//! The suite can fail: runners with deliberate bugs, wrapped around a correct local runner, get
//! exactly the corresponding cases marked as failures (and the rest still pass).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use faas_api::{
    Activation, ActivationQuery, AppSpec, Capabilities, Capability, DeployReport, Error, FunctionInfo, FunctionSpec,
    InvokeRequest, Invoked, NoProgress, Package, Payload, Progress, Runner,
};
use faas_conformance::matrix::{Mark, Matrix};
use faas_conformance::{fixture_app, fixture_spec, Harness, HarnessOptions};
use faas_front::backend::CONFORMANCE_RETRY_BASE as LOCAL_RETRY_BASE;
use faas_runner_local::{LocalOptions, LocalRunner};

/// The bugs a [`Broken`] runner can have.
#[derive(Clone, Copy, Default)]
struct Bugs {
    /// Forwards request bodies without their content type.
    drop_request_content_type: bool,
    /// Deploys every function with a 30 s timeout, whatever was configured.
    ignore_timeouts: bool,
    /// Claims one capability fewer than it has and accepts any function in `check`.
    never_refuse: bool,
    /// Answers `list` with every function twice.
    list_twice: bool,
}

struct Broken {
    inner: Arc<LocalRunner>,
    bugs: Bugs,
}

#[async_trait]
impl Runner for Broken {
    fn kind(&self) -> &str {
        self.inner.kind()
    }
    fn capabilities(&self) -> Capabilities {
        let mut caps = self.inner.capabilities();
        if self.bugs.never_refuse {
            caps.claims.remove(&Capability::WarmReuse);
        }
        caps
    }
    fn check(&self, spec: &[FunctionSpec]) -> Result<(), Error> {
        if self.bugs.never_refuse {
            Ok(())
        } else {
            self.inner.check(spec)
        }
    }
    async fn package(&self, app: &AppSpec, progress: &dyn Progress) -> Result<Package, Error> {
        let mut package = self.inner.package(app, progress).await?;
        if self.bugs.ignore_timeouts {
            for f in &mut package.functions {
                f.timeout = Duration::from_secs(30);
            }
        }
        Ok(package)
    }
    async fn deploy(&self, package: &Package, progress: &dyn Progress) -> Result<DeployReport, Error> {
        self.inner.deploy(package, progress).await
    }
    async fn invoke(&self, mut request: InvokeRequest) -> Result<Invoked, Error> {
        if self.bugs.drop_request_content_type {
            request.payload = Payload::new(request.payload.into_body(), None);
        }
        self.inner.invoke(request).await
    }
    async fn list(&self) -> Result<Vec<FunctionInfo>, Error> {
        let mut list = self.inner.list().await?;
        if self.bugs.list_twice {
            list.extend(list.clone());
        }
        Ok(list)
    }
    async fn remove(&self, function: &str) -> Result<(), Error> {
        self.inner.remove(function).await
    }
    async fn activations(&self, query: ActivationQuery) -> Result<Vec<Activation>, Error> {
        self.inner.activations(query).await
    }
}

/// Runs `cases` against an in-process local runner with `bugs`.
async fn run(bugs: Bugs, cases: &[&str]) -> Matrix {
    let options = LocalOptions { retry_base: LOCAL_RETRY_BASE, ..LocalOptions::default() };
    let inner = LocalRunner::in_process(fixture_app(), options).unwrap();
    let runner: Arc<dyn Runner> = Arc::new(Broken { inner: inner.clone(), bugs });
    let app = fixture_spec(env!("CARGO_BIN_EXE_faas-probe").into(), fixture_app().manifest());
    let harness = Harness::deploy(runner, "broken", app, HarnessOptions::default(), &NoProgress).await.unwrap();
    let wanted: BTreeSet<&str> = cases.iter().copied().collect();
    let matrix = harness.run_where(|c| wanted.contains(c.id), &NoProgress).await;
    harness.finish().await;
    inner.shutdown().await;
    assert_eq!(matrix.results.len(), cases.len());
    matrix
}

fn outcome(m: &Matrix, case: &str) -> (Mark, String) {
    let r = m.get("broken", case).unwrap();
    (r.outcome, r.note.clone())
}

#[tokio::test]
async fn a_faithful_wrapper_passes() {
    let m = run(Bugs::default(), &["INV-01", "INV-04", "ERR-03", "LIF-03", "CAP-01"]).await;
    assert!(!m.has_failures(), "{}", m.to_markdown());
}

#[tokio::test]
async fn dropping_the_request_content_type_fails_inv_04_only() {
    let m = run(Bugs { drop_request_content_type: true, ..Bugs::default() }, &["INV-01", "INV-03", "INV-04"]).await;
    let (mark, note) = outcome(&m, "INV-04");
    assert_eq!(mark, Mark::Fail, "{note}");
    assert!(note.contains("content type"), "{note}");
    assert_eq!(outcome(&m, "INV-01").0, Mark::Pass);
    assert_eq!(outcome(&m, "INV-03").0, Mark::Pass);
}

#[tokio::test]
async fn ignoring_timeouts_fails_err_03() {
    let m = run(Bugs { ignore_timeouts: true, ..Bugs::default() }, &["INV-01", "ERR-03"]).await;
    let (mark, note) = outcome(&m, "ERR-03");
    assert_eq!(mark, Mark::Fail, "{note}");
    assert!(note.contains("expected a timeout error, got success"), "{note}");
    assert_eq!(outcome(&m, "INV-01").0, Mark::Pass);
}

#[tokio::test]
async fn accepting_an_unclaimed_capability_fails_cap_01_and_skips_its_case() {
    let m = run(Bugs { never_refuse: true, ..Bugs::default() }, &["LIF-05", "CAP-01", "INV-01"]).await;
    let (mark, note) = outcome(&m, "CAP-01");
    assert_eq!(mark, Mark::Fail, "{note}");
    assert!(note.contains("warm-reuse"), "{note}");
    assert_eq!(outcome(&m, "LIF-05"), (Mark::NotSupported, "backend does not claim warm-reuse".to_string()));
    assert_eq!(outcome(&m, "INV-01").0, Mark::Pass, "the fixture was restored after the wrongly accepted deploy");
}

#[tokio::test]
async fn listing_functions_twice_fails_lif_03() {
    let m = run(Bugs { list_twice: true, ..Bugs::default() }, &["LIF-03"]).await;
    let (mark, note) = outcome(&m, "LIF-03");
    assert_eq!(mark, Mark::Fail, "{note}");
    assert!(note.contains("`typed` listed 2 times"), "{note}");
}
