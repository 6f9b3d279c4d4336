//! The `gcf` backend kind: Google Cloud Functions (2nd gen) through the Cloud Functions v2 API,
//! or the local Cloud Functions at the profile's `endpoint` (`faas dev --emulate gcf`).
//!
//! ```
//! use faas_api::backend::Backend;
//! use faas_runner_gcf::backend::GcfBackend;
//! assert_eq!(GcfBackend.kind(), "gcf");
//! let local = faas_api::BackendProfile::new("gcp", "gcf").with("endpoint", "http://127.0.0.1:8090");
//! assert_eq!(GcfBackend.label(&local), "gcf (emulator)");
//! assert!(GcfBackend.check_profile(&local).is_ok());
//! assert!(GcfBackend.check_profile(&faas_api::BackendProfile::new("gcp", "gcf")).is_err());
//! let implicit = GcfBackend.implicit_profile(&|v| (v == "GOOGLE_CLOUD_PROJECT").then(|| "my-project".to_string()));
//! assert_eq!(implicit.str("project").unwrap().as_deref(), Some("my-project"));
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use faas_api::backend::{Artifact, Backend, BackendEnv, BuildRequest, ConformanceSetup, ConformanceTarget};
use faas_api::{AppSpec, BackendProfile, Error, ErrorKind, Progress, Runner};
use faas_packaging::{package_artifact, Arch, Target};

use crate::deploy::GcfRunner;
use crate::settings::{GcfSettings, PROFILE_KEYS};

/// Google Cloud Functions (2nd gen).
#[derive(Debug, Clone, Copy, Default)]
pub struct GcfBackend;

#[async_trait]
impl Backend for GcfBackend {
    fn kind(&self) -> &str {
        "gcf"
    }

    fn about(&self) -> &str {
        "Google Cloud Functions, 2nd gen (or a local one: `faas dev --emulate gcf`)"
    }

    fn profile_keys(&self) -> &[&str] {
        PROFILE_KEYS
    }

    fn check_profile(&self, profile: &BackendProfile) -> Result<(), Error> {
        GcfSettings::from_profile(profile).map(|_| ())
    }

    /// The project and region as `gcloud` takes them from the environment
    /// (`CLOUDSDK_CORE_PROJECT`, else `GOOGLE_CLOUD_PROJECT`; `CLOUDSDK_FUNCTIONS_REGION`).
    fn implicit_profile(&self, env: &dyn Fn(&str) -> Option<String>) -> BackendProfile {
        let get = |names: &[&str]| names.iter().find_map(|v| env(v).filter(|s| !s.is_empty()));
        let mut profile = BackendProfile::implicit(self.kind());
        if let Some(project) = get(&["CLOUDSDK_CORE_PROJECT", "GOOGLE_CLOUD_PROJECT"]) {
            profile = profile.with("project", project);
        }
        if let Some(region) = get(&["CLOUDSDK_FUNCTIONS_REGION"]) {
            profile = profile.with("region", region);
        }
        profile
    }

    async fn runner(&self, profile: &BackendProfile, _env: &BackendEnv) -> Result<Arc<dyn Runner>, Error> {
        let runner: Arc<dyn Runner> = GcfRunner::from_profile(profile)?;
        Ok(runner)
    }

    async fn build(&self, request: &BuildRequest<'_>, progress: &dyn Progress) -> Result<AppSpec, Error> {
        let settings = GcfSettings::for_packaging(request.profile)?;
        let arch = match request.arch {
            Some(a) => Arch::parse(a)?,
            None => settings.arch,
        };
        if arch != Arch::X86_64 {
            return Err(Error::bad_input(format!("--arch {arch}: Cloud Functions (Cloud Run) runs x86_64 only")));
        }
        faas_packaging::build::build_for_target(
            request.root,
            request.config,
            Target::new(arch, settings.libc),
            request.release,
            progress,
        )
        .await
    }

    /// The source archive, named after its runtime (`{app}-gcf-{runtime}.zip`).
    async fn artifact(
        &self,
        profile: &BackendProfile,
        app: &AppSpec,
        progress: &dyn Progress,
    ) -> Result<Artifact, Error> {
        let runner = GcfRunner::new(GcfSettings::for_packaging(profile)?)?;
        let package = runner.package(app, progress).await?;
        package_artifact(&package, Some(runner.settings().runtime.clone()))
    }

    async fn conformance(
        &self,
        profile: &BackendProfile,
        setup: &ConformanceSetup,
    ) -> Result<Vec<ConformanceTarget>, Error> {
        // ASY-01 needs emitted events routed: without `events`, a gateway of the suite's own.
        setup
            .with_events(self.label(profile), profile, |p: BackendProfile| async move {
                let runner: Arc<dyn Runner> = GcfRunner::from_profile(&p)?;
                Ok(runner)
            })
            .await
    }

    fn hint(&self, profile: &BackendProfile, error: &Error) -> Option<String> {
        let local = profile.settings.contains_key("endpoint");
        match error.kind() {
            ErrorKind::Unauthorized if local => {
                Some("is the local Cloud Functions running? start a local one with `faas dev --emulate gcf`".into())
            }
            ErrorKind::Unauthorized => Some(
                "check the Google credentials: GOOGLE_APPLICATION_CREDENTIALS, or `gcloud auth application-default \
                 login`; and that they may deploy to the project (roles/cloudfunctions.developer)"
                    .into(),
            ),
            ErrorKind::BackendUnavailable if local => Some(
                "is the local Cloud Functions running? start a local one with `faas dev --emulate gcf`".to_string(),
            ),
            _ => None,
        }
    }
}
