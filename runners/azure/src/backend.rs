//! The `azure` backend kind: Azure Functions through Azure Resource Manager and Kudu, or the
//! local Functions host at the profile's `endpoint` (`faas dev --emulate azure`).
//!
//! ```
//! use faas_api::backend::Backend;
//! use faas_runner_azure::backend::AzureBackend;
//! assert_eq!(AzureBackend.kind(), "azure");
//! let local = faas_api::BackendProfile::new("az", "azure").with("endpoint", "http://127.0.0.1:7071");
//! assert_eq!(AzureBackend.label(&local), "azure (emulator)");
//! assert!(AzureBackend.check_profile(&local).is_ok());
//! assert!(AzureBackend.check_profile(&faas_api::BackendProfile::new("az", "azure")).is_err());
//! let implicit = AzureBackend.implicit_profile(&|v| (v == "AZURE_SUBSCRIPTION_ID").then(|| "sub".to_string()));
//! assert_eq!(implicit.str("subscription").unwrap().as_deref(), Some("sub"));
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use faas_api::backend::{Artifact, Backend, BackendEnv, BuildRequest, ConformanceSetup, ConformanceTarget};
use faas_api::{AppSpec, BackendProfile, Error, ErrorKind, Progress, Runner};
use faas_packaging::{package_artifact, Arch, Target};

use crate::deploy::AzureRunner;
use crate::settings::{AzureSettings, PROFILE_KEYS};

/// Azure Functions.
#[derive(Debug, Clone, Copy, Default)]
pub struct AzureBackend;

impl AzureBackend {
    fn runner_for(profile: &BackendProfile, env: Option<&BackendEnv>) -> Result<Arc<AzureRunner>, Error> {
        let runner = AzureRunner::from_profile(profile)?;
        // With no `app` in the profile, the function app is the project's app.
        if let Some(root) = env.and_then(|e| e.project_root.as_ref()) {
            if let Ok(config) = faas_api::Config::load(&root.join("faas.toml")) {
                runner.set_default_app(&config.app.name);
            }
        }
        Ok(runner)
    }
}

#[async_trait]
impl Backend for AzureBackend {
    fn kind(&self) -> &str {
        "azure"
    }

    fn about(&self) -> &str {
        "Azure Functions, as custom handlers (or a local Functions host: `faas dev --emulate azure`)"
    }

    fn profile_keys(&self) -> &[&str] {
        PROFILE_KEYS
    }

    fn check_profile(&self, profile: &BackendProfile) -> Result<(), Error> {
        AzureSettings::from_profile(profile).map(|_| ())
    }

    /// The subscription and resource group as the Azure CLI's environment names them
    /// (`AZURE_SUBSCRIPTION_ID`, `AZURE_RESOURCE_GROUP`), and the region (`AZURE_LOCATION`).
    fn implicit_profile(&self, env: &dyn Fn(&str) -> Option<String>) -> BackendProfile {
        let mut profile = BackendProfile::implicit(self.kind());
        for (var, key) in [
            ("AZURE_SUBSCRIPTION_ID", "subscription"),
            ("AZURE_RESOURCE_GROUP", "resource_group"),
            ("AZURE_LOCATION", "region"),
        ] {
            if let Some(v) = env(var).filter(|v| !v.is_empty()) {
                profile = profile.with(key, v);
            }
        }
        profile
    }

    async fn runner(&self, profile: &BackendProfile, env: &BackendEnv) -> Result<Arc<dyn Runner>, Error> {
        let runner: Arc<dyn Runner> = AzureBackend::runner_for(profile, Some(env))?;
        Ok(runner)
    }

    async fn build(&self, request: &BuildRequest<'_>, progress: &dyn Progress) -> Result<AppSpec, Error> {
        let settings = AzureSettings::for_packaging(request.profile)?;
        let arch = match request.arch {
            Some(a) => Arch::parse(a)?,
            None => settings.arch,
        };
        if arch != Arch::X86_64 {
            return Err(Error::bad_input(format!("--arch {arch}: faas deploys Azure Functions on Linux x86_64 only")));
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

    /// The function app's zip (`{app}-azure.zip`).
    async fn artifact(
        &self,
        profile: &BackendProfile,
        app: &AppSpec,
        progress: &dyn Progress,
    ) -> Result<Artifact, Error> {
        let runner = AzureRunner::new(AzureSettings::for_packaging(profile)?)?;
        let package = runner.package(app, progress).await?;
        package_artifact(&package, Some("custom".to_string()))
    }

    async fn conformance(
        &self,
        profile: &BackendProfile,
        setup: &ConformanceSetup,
    ) -> Result<Vec<ConformanceTarget>, Error> {
        setup
            .with_events(self.label(profile), profile, |p: BackendProfile| async move {
                let runner: Arc<dyn Runner> = AzureBackend::runner_for(&p, None)?;
                Ok(runner)
            })
            .await
    }

    fn hint(&self, profile: &BackendProfile, error: &Error) -> Option<String> {
        let local = profile.settings.contains_key("endpoint");
        match error.kind() {
            ErrorKind::Unauthorized if !local => Some(
                "check the Azure credentials: AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, or `az login`; and \
                 that they may manage the resource group (the Website Contributor role)"
                    .into(),
            ),
            ErrorKind::BackendUnavailable if local => {
                Some("is the local Functions host running? start one with `faas dev --emulate azure`".into())
            }
            _ => None,
        }
    }
}
