//! The `openwhisk` backend kind: Apache OpenWhisk through its REST API, or the local OpenWhisk
//! at the profile's `endpoint` (`faas dev --emulate openwhisk`).
//!
//! ```
//! use faas_api::backend::Backend;
//! use faas_runner_openwhisk::backend::OpenWhiskBackend;
//! assert_eq!(OpenWhiskBackend.kind(), "openwhisk");
//! let local = faas_api::BackendProfile::new("ow", "openwhisk").with("endpoint", "http://127.0.0.1:3233");
//! assert_eq!(OpenWhiskBackend.label(&local), "openwhisk (emulator)");
//! assert!(OpenWhiskBackend.check_profile(&local).is_ok());
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use faas_api::backend::{Artifact, Backend, BackendEnv, BuildRequest, ConformanceSetup, ConformanceTarget};
use faas_api::{AppSpec, BackendProfile, Error, ErrorKind, Progress, Runner};
use faas_packaging::{package_artifact, Arch, Target};

use crate::deploy::OpenWhiskRunner;
use crate::settings::{OpenWhiskSettings, PROFILE_KEYS};

/// Apache OpenWhisk.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenWhiskBackend;

#[async_trait]
impl Backend for OpenWhiskBackend {
    fn kind(&self) -> &str {
        "openwhisk"
    }

    fn about(&self) -> &str {
        "Apache OpenWhisk (or a local one: `faas dev --emulate openwhisk`)"
    }

    fn profile_keys(&self) -> &[&str] {
        PROFILE_KEYS
    }

    fn check_profile(&self, profile: &BackendProfile) -> Result<(), Error> {
        OpenWhiskSettings::from_profile(profile).map(|_| ())
    }

    async fn runner(&self, profile: &BackendProfile, _env: &BackendEnv) -> Result<Arc<dyn Runner>, Error> {
        let runner: Arc<dyn Runner> = OpenWhiskRunner::from_profile(profile)?;
        Ok(runner)
    }

    async fn build(&self, request: &BuildRequest<'_>, progress: &dyn Progress) -> Result<AppSpec, Error> {
        let settings = OpenWhiskSettings::for_packaging(request.profile)?;
        let arch = match request.arch {
            Some(a) => Arch::parse(a)?,
            None => settings.arch,
        };
        faas_packaging::build::build_for_target(
            request.root,
            request.config,
            Target::new(arch, settings.libc),
            request.release,
            progress,
        )
        .await
    }

    async fn artifact(
        &self,
        profile: &BackendProfile,
        app: &AppSpec,
        progress: &dyn Progress,
    ) -> Result<Artifact, Error> {
        let runner = OpenWhiskRunner::new(OpenWhiskSettings::for_packaging(profile)?)?;
        let package = runner.package(app, progress).await?;
        let docker = package.artifact.with_extension("docker");
        progress.step(&format!("writing the Docker action's build context {}", docker.display()));
        crate::package::docker_context(&app.binary, runner.settings().libc, &docker)?;
        package_artifact(&package, Some(runner.settings().image.clone()))
    }

    async fn conformance(
        &self,
        profile: &BackendProfile,
        setup: &ConformanceSetup,
    ) -> Result<Vec<ConformanceTarget>, Error> {
        setup
            .with_events(self.label(profile), profile, |p: BackendProfile| async move {
                let runner: Arc<dyn Runner> = OpenWhiskRunner::from_profile(&p)?;
                Ok(runner)
            })
            .await
    }

    fn hint(&self, profile: &BackendProfile, error: &Error) -> Option<String> {
        match error.kind() {
            ErrorKind::Unauthorized => Some(format!(
                "check the API key: `auth` in [backends.{}] (a reference such as \"env:OW_AUTH\" to `uuid:key`), or \
                 AUTH in ~/.wskprops",
                profile.name
            )),
            ErrorKind::BackendUnavailable if profile.settings.contains_key("endpoint") => {
                Some("is OpenWhisk running? start a local one with `faas dev --emulate openwhisk`".to_string())
            }
            _ => None,
        }
    }
}
