//! The [`Harness`]: deploys the fixture app through a runner and runs the catalogue against it,
//! one case at a time, turning every panic, error or hang of a case into a failure with a note.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use faas_api::{ActivationQuery, AppSpec, Capabilities, DeployReport, Error, FunctionSpec, Manifest, Progress, Runner};
use futures::FutureExt;

use crate::cases::{catalogue, Case, CaseResult, Outcome};
use crate::matrix::{Mark, Matrix, Row};

/// The variable the fixture's `env` function is deployed with (INV-08, LIF-02).
pub const PROBE_VAR: &str = "PROBE_VAR";
/// Its value in the fixture deployment.
pub const PROBE_VAR_VALUE: &str = "one";
/// The timeout the fixture's `sleep` function is deployed with (ERR-03).
pub const SLEEP_TIMEOUT: Duration = Duration::from_secs(1);
/// The app name the fixture is deployed under.
pub const FIXTURE_APP: &str = "faas-probe";

/// Knobs of a suite run.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// A case still running after this long fails (default 120 s).
    pub case_timeout: Duration,
    /// How long ASY-02 waits to see a retried failure in the activation log (default 15 s; keep
    /// the backend's retry delay short when testing).
    pub async_window: Duration,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        HarnessOptions { case_timeout: Duration::from_secs(120), async_window: Duration::from_secs(15) }
    }
}

/// The fixture as the suite deploys it: every function of `manifest` with its declared handler,
/// triggers and capabilities, `sleep` with a 1 s timeout, and `env` with `PROBE_VAR=one`.
///
/// ```
/// let app = faas_conformance::fixture_app();
/// let spec = faas_conformance::harness::fixture_spec("faas-probe".into(), app.manifest());
/// let sleep = spec.functions.iter().find(|f| f.name == "sleep").unwrap();
/// assert_eq!(sleep.timeout, std::time::Duration::from_secs(1));
/// ```
pub fn fixture_spec(binary: PathBuf, manifest: Manifest) -> AppSpec {
    let functions = manifest
        .functions
        .iter()
        .map(|d| {
            let mut spec = FunctionSpec::from_description(d);
            match d.name.as_str() {
                "sleep" => spec.timeout = SLEEP_TIMEOUT,
                "env" => {
                    spec.env.insert(PROBE_VAR.to_string(), PROBE_VAR_VALUE.to_string());
                }
                _ => {}
            }
            spec
        })
        .collect();
    AppSpec { app: FIXTURE_APP.to_string(), binary, manifest, functions }
}

/// A runner with the fixture deployed, ready to run cases.
pub struct Harness {
    runner: Arc<dyn Runner>,
    label: String,
    app: AppSpec,
    capabilities: Capabilities,
    options: HarnessOptions,
    state: crate::StateGateway,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").field("label", &self.label).field("kind", &self.runner.kind()).finish()
    }
}

impl Harness {
    /// Packages and deploys `app` (normally [`fixture_spec`]) through `runner`. Functions needing
    /// a capability the runner does not claim are left out: the cases using them are then "not
    /// supported", and CAP-01 checks the refusal separately.
    pub async fn deploy(
        runner: Arc<dyn Runner>,
        label: &str,
        mut app: AppSpec,
        options: HarnessOptions,
        progress: &dyn Progress,
    ) -> Result<Harness, Error> {
        let capabilities = runner.capabilities();
        let skipped: Vec<String> = app
            .functions
            .iter()
            .filter(|f| f.requires.iter().any(|c| !capabilities.claims(*c)))
            .map(|f| f.name.clone())
            .collect();
        if !skipped.is_empty() {
            progress.step(&format!("{label}: not deploying {} (capabilities not claimed)", skipped.join(", ")));
            app.functions.retain(|f| !skipped.contains(&f.name));
        }
        progress.step(&format!("{label}: starting the state gateway the fixture's `cx.state()` uses"));
        let state = crate::StateGateway::start().await?;
        state.bind(&mut app)?;
        progress.step(&format!("{label}: packaging the fixture app"));
        let deployed = match runner.package(&app, progress).await {
            Ok(package) => {
                progress.step(&format!("{label}: deploying {} probe functions", package.functions.len()));
                runner.deploy(&package, progress).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        if let Err(e) = deployed {
            state.stop().await;
            return Err(e);
        }
        Ok(Harness { runner, label: label.to_string(), app, capabilities, options, state })
    }

    /// The state gateway the fixture's functions use (the STA cases).
    pub fn state(&self) -> &crate::StateGateway {
        &self.state
    }

    /// Stops what the harness started (its state gateway), once its cases ran.
    pub async fn finish(self) {
        self.state.stop().await;
    }

    /// The runner under test.
    pub fn runner(&self) -> &Arc<dyn Runner> {
        &self.runner
    }

    /// The backend label used in the matrix.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The fixture as deployed.
    pub fn app(&self) -> &AppSpec {
        &self.app
    }

    /// The deployed spec of function `name`.
    pub fn spec(&self, name: &str) -> Option<&FunctionSpec> {
        self.app.functions.iter().find(|f| f.name == name)
    }

    /// What the runner claimed when the fixture was deployed.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// The run's options.
    pub fn options(&self) -> &HarnessOptions {
        &self.options
    }

    /// Packages and deploys `app` through the runner.
    pub async fn redeploy(&self, app: &AppSpec) -> Result<DeployReport, Error> {
        let package = self.runner.package(app, &faas_api::NoProgress).await?;
        self.runner.deploy(&package, &faas_api::NoProgress).await
    }

    /// Ids of the recorded activations of `function` (the latest 10 000).
    pub async fn activation_ids(&self, function: &str) -> Result<BTreeSet<String>, Error> {
        let q = ActivationQuery { function: Some(function.to_string()), id: None, limit: Some(10_000) };
        Ok(self.runner.activations(q).await?.into_iter().map(|a| a.id).collect())
    }

    /// Runs one case: "not supported" when it needs a capability the runner does not claim; a panic, or a
    /// case still running after [`HarnessOptions::case_timeout`], is a failure.
    pub async fn run_case(&self, case: &Case) -> CaseResult {
        if let Some(c) = case.unclaimed(&self.capabilities) {
            let why = format!("backend does not claim {c}");
            return CaseResult { note: why.clone(), outcome: Outcome::NotSupported(why) };
        }
        let body = AssertUnwindSafe(case.body(self)).catch_unwind();
        match tokio::time::timeout(self.options.case_timeout, body).await {
            Ok(Ok(check)) => CaseResult::from_check(check),
            Ok(Err(panic)) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic payload".to_string());
                let why = format!("the case panicked: {message}");
                CaseResult { note: why.clone(), outcome: Outcome::Fail(why) }
            }
            Err(_) => {
                let why = format!("the case did not finish within {:?}", self.options.case_timeout);
                CaseResult { note: why.clone(), outcome: Outcome::Fail(why) }
            }
        }
    }

    /// Runs every case of the catalogue, in order.
    pub async fn run_all(&self, progress: &dyn Progress) -> Matrix {
        self.run_where(|_| true, progress).await
    }

    /// Runs the cases for which `select` is true, in catalogue order.
    pub async fn run_where(&self, select: impl Fn(&Case) -> bool, progress: &dyn Progress) -> Matrix {
        let mut rows = vec![];
        for case in catalogue().iter().filter(|c| select(c)) {
            progress.step(&format!("{}: {} {}", self.label, case.id, case.title));
            let result = self.run_case(case).await;
            let outcome = match &result.outcome {
                Outcome::Pass => Mark::Pass,
                Outcome::Fail(_) => Mark::Fail,
                Outcome::NotSupported(_) => Mark::NotSupported,
            };
            tracing::info!(backend = %self.label, case = case.id, ?outcome, note = %result.note, "conformance case");
            rows.push(Row {
                backend: self.label.clone(),
                case: case.id.to_string(),
                title: case.title.to_string(),
                tag: case.tag(),
                outcome,
                note: result.note,
            });
        }
        Matrix::new(rows)
    }
}
