//! The `lambda` backend kind: AWS Lambda through aws-sdk-lambda, or the emulator at the
//! profile's `endpoint`.
//!
//! ```
//! use faas_api::backend::Backend;
//! use faas_runner_lambda::backend::LambdaBackend;
//! let env = |name: &str| (name == "AWS_DEFAULT_REGION").then(|| "eu-west-1".to_string());
//! let p = LambdaBackend.implicit_profile(&env);
//! assert_eq!(p.str("region").unwrap().as_deref(), Some("eu-west-1"));
//! assert!(p.is_implicit());
//! let emulator = faas_api::BackendProfile::new("emu", "lambda").with("endpoint", "http://127.0.0.1:9001");
//! assert_eq!(LambdaBackend.label(&emulator), "lambda (emulator)");
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use faas_api::backend::{Artifact, Backend, BackendEnv, BuildRequest, ConformanceSetup, ConformanceTarget};
use faas_api::{AppSpec, BackendProfile, Error, ErrorKind, Progress, Runner};

use crate::credentials::MISSING_CREDENTIALS;
use crate::deploy::{LambdaRunner, LambdaSettings, PROFILE_KEYS};
use faas_packaging::{package_artifact, Arch};

use crate::package::build_for;

/// The `lambda` backend (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct LambdaBackend;

#[async_trait]
impl Backend for LambdaBackend {
    fn kind(&self) -> &str {
        "lambda"
    }

    fn about(&self) -> &str {
        "AWS Lambda (or a local one: `faas dev --emulate lambda`)"
    }

    fn profile_keys(&self) -> &[&str] {
        PROFILE_KEYS
    }

    fn check_profile(&self, profile: &BackendProfile) -> Result<(), Error> {
        LambdaSettings::from_profile(profile).map(|_| ())
    }

    /// The region is `AWS_REGION`, else `AWS_DEFAULT_REGION`, as the AWS CLI takes it
    /// (credentials come from the standard AWS chain, as for any `lambda` profile).
    fn implicit_profile(&self, env: &dyn Fn(&str) -> Option<String>) -> BackendProfile {
        let profile = BackendProfile::implicit(self.kind());
        match ["AWS_REGION", "AWS_DEFAULT_REGION"].iter().find_map(|v| env(v).filter(|r| !r.is_empty())) {
            Some(region) => profile.with("region", region),
            None => profile,
        }
    }

    async fn runner(&self, profile: &BackendProfile, _env: &BackendEnv) -> Result<Arc<dyn Runner>, Error> {
        let runner: Arc<dyn Runner> = LambdaRunner::from_profile(profile).await?;
        Ok(runner)
    }

    async fn build(&self, request: &BuildRequest<'_>, progress: &dyn Progress) -> Result<AppSpec, Error> {
        let settings = LambdaSettings::for_packaging(request.profile)?;
        let arch = match request.arch {
            Some(a) => Arch::parse(a)?,
            None => settings.arch,
        };
        build_for(request.root, request.config, arch, settings.libc, request.release, progress).await
    }

    /// The `bootstrap` zip, and its `CodeSha256` (what `aws lambda get-function` reports once it
    /// is deployed).
    async fn artifact(
        &self,
        profile: &BackendProfile,
        app: &AppSpec,
        progress: &dyn Progress,
    ) -> Result<Artifact, Error> {
        progress.step("packaging the bootstrap zip");
        let runner = LambdaRunner::new(LambdaSettings::for_packaging(profile)?).await?;
        let package = runner.package(app, progress).await?;
        package_artifact(&package, Some("provided.al2023".into()))
    }

    /// One column. Without an `events` key the suite's own event gateway is started and the
    /// functions emit to it, so that `cx.emit` is checked too (ASY-01); with one, the profile's
    /// gateway is used as it is.
    async fn conformance(
        &self,
        profile: &BackendProfile,
        setup: &ConformanceSetup,
    ) -> Result<Vec<ConformanceTarget>, Error> {
        setup
            .with_events(self.label(profile), profile, |p: BackendProfile| async move {
                let runner: Arc<dyn Runner> = LambdaRunner::from_profile(&p).await?;
                Ok(runner)
            })
            .await
    }

    fn hint(&self, profile: &BackendProfile, error: &Error) -> Option<String> {
        match error.kind() {
            // Its message already says how to provide credentials.
            ErrorKind::Unauthorized if error.error_type() == MISSING_CREDENTIALS => None,
            ErrorKind::Unauthorized => Some(format!(
                "set AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, `aws sso login`, or `aws_profile` in [backends.{}])",
                profile.name
            )),
            ErrorKind::BackendUnavailable if profile.settings.contains_key("endpoint") => {
                Some("is the emulator running? start one with `faas dev --emulate lambda`".to_string())
            }
            ErrorKind::BadInput if profile.is_implicit() => Some(
                "without a [backends.lambda] profile the region comes from AWS_REGION or AWS_DEFAULT_REGION and \
                 there is no execution role; define [backends.lambda] in faas.toml with `region` and `role` (or \
                 `endpoint` for the emulator, `faas dev --emulate lambda`)"
                    .to_string(),
            ),
            _ => None,
        }
    }
}
