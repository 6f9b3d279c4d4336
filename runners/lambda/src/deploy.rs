//! [`LambdaRunner`]: the faas runner SPI over aws-sdk-lambda.
//!
//! A backend profile in `faas.toml`:
//!
//! ```toml
//! [backends.prod]
//! kind = "lambda"
//! region = "eu-west-1"                                  # required
//! role = "arn:aws:iam::123456789012:role/faas-lambda"   # execution role; required unless `endpoint` is set
//! arch = "arm64"                                        # x86_64 (default) | arm64
//! libc = "gnu"                                          # gnu (default) | musl — used by the build step
//! aws_profile = "work"                                  # a named profile of ~/.aws/config
//! prefix = "shop-"                                      # Lambda function name = prefix + faas function name
//! # endpoint = "http://127.0.0.1:9001"                  # the local Lambda emulator
//! ```
//!
//! Credentials come from the standard AWS chain (environment, profile, SSO, `credential_process`,
//! container and instance roles); none are read from `faas.toml`. Against the local emulator (a
//! loopback `endpoint`) no chain is walked: see [`crate::credentials`].
//!
//! Every AWS error keeps its AWS error code as the portable `errorType` (see `aws_errors.rs`).
//!
//! Each faas function becomes one Lambda function running the same `bootstrap`, with
//! `Runtime = provided.al2023`, `Handler` = the faas function name (the host serves the function
//! `_HANDLER` names) and the tag `faas:app` = the app name.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, Environment, FunctionCode, FunctionConfiguration, LastUpdateStatus, Runtime, State,
};
use aws_sdk_lambda::Client;
use faas_api::{
    Activation, ActivationQuery, AppSpec, BackendProfile, Capabilities, Capability, DeployReport, Error, FunctionInfo,
    FunctionSpec, InvokeRequest, Invoked, Package, Progress, Runner,
};

use faas_api::backend::is_loopback_url;
use faas_packaging::{check_arch, code_sha256, strip_debug_copy, Arch};

use crate::package::package_zip;

mod activations;
mod invoke;

pub use crate::settings::{LambdaSettings, EMULATOR_ROLE, PROFILE_KEYS};
pub use activations::{LOGS_ID_WINDOW, LOGS_WINDOW};

/// Lambda's synchronous payload limit (request and response): 6 MB = 6,291,456 bytes.
pub const MAX_SYNC_PAYLOAD: usize = 6_291_456;
/// Lambda's asynchronous (`Event`) payload limit: 1 MB = 1,048,576 bytes.
pub const MAX_ASYNC_PAYLOAD: usize = 1_048_576;
/// Lambda's longest function timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(900);
/// Largest zip Lambda accepts in a direct upload (`ZipFile`): 50 MB.
pub const MAX_ZIP: u64 = 50 * 1024 * 1024;
/// The tag marking a Lambda function as part of a faas app; its value is the app name.
pub const APP_TAG: &str = "faas:app";

/// How long a deploy waits for a function to become `Active` with a `Successful` last update.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// The AWS Lambda backend: packages an app as a `bootstrap` zip and manages one Lambda function
/// per faas function through aws-sdk-lambda.
pub struct LambdaRunner {
    client: Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    settings: LambdaSettings,
}

impl std::fmt::Debug for LambdaRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaRunner").field("settings", &self.settings).finish()
    }
}

/// What a runner with `settings` talks to, for messages.
fn where_of(settings: &LambdaSettings) -> String {
    match &settings.endpoint {
        Some(e) => format!("the Lambda endpoint {e}"),
        None => format!("AWS Lambda in {}", settings.region),
    }
}

impl LambdaRunner {
    /// Builds the runner from a `lambda` backend profile (see the module docs for the keys),
    /// loading the AWS configuration and credential chain.
    pub async fn from_profile(profile: &BackendProfile) -> Result<Arc<LambdaRunner>, Error> {
        LambdaRunner::new(LambdaSettings::from_profile(profile)?).await
    }

    /// Builds the runner from parsed settings.
    pub async fn new(settings: LambdaSettings) -> Result<Arc<LambdaRunner>, Error> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()));
        if let Some(p) = &settings.aws_profile {
            loader = loader.profile_name(p);
        }
        if let Some(e) = &settings.endpoint {
            loader = loader.endpoint_url(e);
        }
        let emulator = settings.endpoint.as_deref().is_some_and(is_loopback_url);
        if emulator {
            // The emulator checks no signature: no credential chain (and none of its warnings).
            loader = loader.credentials_provider(crate::credentials::emulator_credentials());
        }
        let mut config = loader.load().await;
        if !emulator {
            if let Some(chain) = config.credentials_provider() {
                let quiet = crate::credentials::QuietChain::new(chain, where_of(&settings));
                config = config
                    .into_builder()
                    .credentials_provider(aws_sdk_lambda::config::SharedCredentialsProvider::new(quiet))
                    .build();
            }
        }
        // CloudWatch Logs is reached through the same endpoint override: the emulator (and LocalStack)
        // serve both APIs on one port.
        let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
        Ok(Arc::new(LambdaRunner { client: Client::new(&config), logs, settings }))
    }

    /// The parsed settings.
    pub fn settings(&self) -> &LambdaSettings {
        &self.settings
    }

    /// The Lambda function name of faas function `function`: the prefix plus the name.
    pub fn lambda_name(&self, function: &str) -> String {
        format!("{}{function}", self.settings.prefix)
    }

    fn where_(&self) -> String {
        where_of(&self.settings)
    }

    /// Maps an SDK error (of the Lambda or the CloudWatch Logs client) to the portable taxonomy,
    /// keeping the AWS error code as `errorType`.
    fn sdk_error<E>(
        &self,
        op: &str,
        target: &str,
        err: SdkError<E, aws_sdk_lambda::config::http::HttpResponse>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        crate::aws_errors::from_sdk(op, target, &self.where_(), err)
    }

    /// Where packages are written: `<cargo target dir>/faas/lambda` for a binary built by cargo,
    /// else a `faas-lambda` directory in the system temp dir.
    fn package_dir(binary: &Path) -> PathBuf {
        match binary.ancestors().find(|a| a.file_name().is_some_and(|n| n == "target")) {
            Some(target) => target.join("faas").join("lambda"),
            None => std::env::temp_dir().join("faas-lambda"),
        }
    }

    async fn get_configuration(&self, name: &str) -> Result<Option<FunctionConfiguration>, Error> {
        match self.client.get_function().function_name(name).send().await {
            Ok(out) => Ok(out.configuration),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(self.sdk_error("GetFunction", name, e)),
        }
    }

    /// Waits until `name` is `Active` and its last update `Successful`.
    async fn wait_ready(&self, name: &str, progress: &dyn Progress) -> Result<(), Error> {
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        let mut said = String::new();
        loop {
            let c = self.get_configuration(name).await?.ok_or_else(|| {
                Error::not_found(format!("function `{name}` disappeared from {} while deploying", self.where_()))
            })?;
            let state = c.state().cloned();
            let update = c.last_update_status().cloned();
            match (&state, &update) {
                (Some(State::Failed), _) => {
                    return Err(Error::unavailable(format!(
                        "function `{name}` failed to become active on {}: {}",
                        self.where_(),
                        c.state_reason().unwrap_or("no reason given")
                    ))
                    .with_type("DeployFailed"))
                }
                (_, Some(LastUpdateStatus::Failed)) => {
                    return Err(Error::unavailable(format!(
                        "the update of function `{name}` failed on {}: {}",
                        self.where_(),
                        c.last_update_status_reason().unwrap_or("no reason given")
                    ))
                    .with_type("DeployFailed"))
                }
                (None | Some(State::Active), None | Some(LastUpdateStatus::Successful)) => return Ok(()),
                _ => {}
            }
            let now = format!(
                "waiting for `{name}`: state {}, last update {}",
                state.as_ref().map(|s| s.as_str()).unwrap_or("?"),
                update.as_ref().map(|s| s.as_str()).unwrap_or("?")
            );
            if now != said {
                progress.step(&now);
                said = now;
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(Error::timeout(format!(
                    "function `{name}` was not ready after {} s on {}",
                    READY_TIMEOUT.as_secs(),
                    self.where_()
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    fn lambda_arch(&self) -> Architecture {
        match self.settings.arch {
            Arch::X86_64 => Architecture::X8664,
            Arch::Arm64 => Architecture::Arm64,
        }
    }

    async fn deploy_one(
        &self,
        app: &str,
        spec: &FunctionSpec,
        zip: &[u8],
        sha: &str,
        progress: &dyn Progress,
    ) -> Result<Outcome, Error> {
        let name = self.lambda_name(&spec.name);
        let desired = Desired::of(spec)?.with_platform_env(&self.settings);
        progress.step(&format!("checking `{name}`"));
        let Some(current) = self.get_configuration(&name).await? else {
            progress.step(&format!("creating `{name}`"));
            self.client
                .create_function()
                .function_name(&name)
                .runtime(Runtime::Providedal2023)
                .role(&self.settings.role)
                .handler(&spec.name)
                .code(FunctionCode::builder().zip_file(Blob::new(zip.to_vec())).build())
                .timeout(desired.timeout)
                .memory_size(desired.memory)
                .environment(desired.environment())
                .architectures(self.lambda_arch())
                .description(format!("faas function `{}` of app `{app}`", spec.name))
                .tags(APP_TAG, app)
                .send()
                .await
                .map_err(|e| self.sdk_error("CreateFunction", &name, e))?;
            self.wait_ready(&name, progress).await?;
            return Ok(Outcome::Created);
        };
        self.wait_ready(&name, progress).await?;
        let code_changed = current.code_sha256() != Some(sha) || current.architectures() != [self.lambda_arch()];
        if code_changed {
            progress.step(&format!("updating the code of `{name}`"));
            self.client
                .update_function_code()
                .function_name(&name)
                .zip_file(Blob::new(zip.to_vec()))
                .architectures(self.lambda_arch())
                .send()
                .await
                .map_err(|e| self.sdk_error("UpdateFunctionCode", &name, e))?;
            self.wait_ready(&name, progress).await?;
        }
        let current_env: BTreeMap<String, String> = current
            .environment()
            .and_then(|e| e.variables())
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let config_changed = current.timeout() != Some(desired.timeout)
            || current.memory_size() != Some(desired.memory)
            || current.handler() != Some(spec.name.as_str())
            || current.role() != Some(self.settings.role.as_str())
            || !matches!(current.runtime(), Some(Runtime::Providedal2023))
            || current_env != desired.env;
        if config_changed {
            progress.step(&format!("updating the configuration of `{name}`"));
            self.client
                .update_function_configuration()
                .function_name(&name)
                .runtime(Runtime::Providedal2023)
                .role(&self.settings.role)
                .handler(&spec.name)
                .timeout(desired.timeout)
                .memory_size(desired.memory)
                .environment(desired.environment())
                .send()
                .await
                .map_err(|e| self.sdk_error("UpdateFunctionConfiguration", &name, e))?;
            self.wait_ready(&name, progress).await?;
        }
        Ok(if code_changed || config_changed { Outcome::Updated } else { Outcome::Unchanged })
    }
}

enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// The variables the runner sets on every function from the profile, for the faas host's
/// `cx.invoke` and `cx.emit`: the name prefix (`prefix`), the Lambda endpoint (`endpoint`, as the
/// AWS SDKs' own `AWS_ENDPOINT_URL_LAMBDA`) and the event gateway (`events`). They are not part of
/// the function's own variables: `faas list` leaves them out.
pub const MANAGED_ENV: [&str; 3] = ["FAAS_LAMBDA_PREFIX", "AWS_ENDPOINT_URL_LAMBDA", "FAAS_EVENTS_URL"];

/// The configuration a spec asks Lambda for.
#[derive(Debug)]
struct Desired {
    timeout: i32,
    memory: i32,
    env: BTreeMap<String, String>,
}

impl Desired {
    fn of(spec: &FunctionSpec) -> Result<Desired, Error> {
        let millis = spec.timeout.as_millis();
        let timeout = millis.div_ceil(1000).max(1);
        if timeout > MAX_TIMEOUT.as_secs() as u128 {
            return Err(Error::bad_input(format!(
                "function `{}` has timeout {:?}; Lambda allows at most 900 s",
                spec.name, spec.timeout
            )));
        }
        if !(128..=10240).contains(&spec.memory_mb) {
            return Err(Error::bad_input(format!(
                "function `{}` has memory_mb = {}; Lambda allows 128 to 10240 MB",
                spec.name, spec.memory_mb
            )));
        }
        Ok(Desired { timeout: timeout as i32, memory: spec.memory_mb as i32, env: spec.env.clone() })
    }

    /// Adds the variables the faas host on Lambda reads for `cx.invoke` and `cx.emit` (see
    /// [`MANAGED_ENV`]); a variable the function's own spec sets wins.
    fn with_platform_env(mut self, settings: &LambdaSettings) -> Desired {
        let [prefix, endpoint, events] = MANAGED_ENV;
        if !settings.prefix.is_empty() {
            self.env.entry(prefix.to_string()).or_insert_with(|| settings.prefix.clone());
        }
        if let Some(e) = &settings.endpoint {
            self.env.entry(endpoint.to_string()).or_insert_with(|| e.clone());
        }
        if let Some(e) = &settings.events {
            self.env.entry(events.to_string()).or_insert_with(|| e.clone());
        }
        self
    }

    fn environment(&self) -> Environment {
        let vars: HashMap<String, String> = self.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Environment::builder().set_variables(Some(vars)).build()
    }
}

#[async_trait]
impl Runner for LambdaRunner {
    fn kind(&self) -> &str {
        "lambda"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            claims: [
                Capability::Async,
                Capability::AsyncRetry,
                Capability::WarmReuse,
                Capability::CloudEvents,
                Capability::Logs,
                Capability::Invoke,
            ]
            .into_iter()
            // `cx.emit` needs an event gateway to post to.
            .chain(self.settings.events.is_some().then_some(Capability::Emit))
            .collect(),
            max_sync_payload: MAX_SYNC_PAYLOAD,
            max_async_payload: MAX_ASYNC_PAYLOAD,
            max_timeout: MAX_TIMEOUT,
        }
    }

    async fn package(&self, app: &AppSpec, progress: &dyn Progress) -> Result<Package, Error> {
        self.check(&app.functions)?;
        for f in &app.functions {
            Desired::of(f)?;
        }
        check_arch(&app.binary, self.settings.arch)?;
        let out = Self::package_dir(&app.binary).join(format!("{}-{}.zip", app.app, self.settings.arch));
        progress.step(&format!("packaging {} as {}", app.binary.display(), out.display()));
        let binary = app.binary.clone();
        let out2 = out.clone();
        let info = tokio::task::spawn_blocking(move || {
            // Unique per call, like package_zip's temporary file: concurrent packagings do not collide.
            let stripped = out2.with_extension(format!("bootstrap.{}", uuid::Uuid::new_v4().simple()));
            let was_stripped = strip_debug_copy(&binary, &stripped)?;
            if !was_stripped {
                tracing::warn!("`strip` is not installed; packaging the binary with its debug info");
            }
            let info = package_zip(&stripped, &out2);
            let _ = std::fs::remove_file(&stripped);
            info
        })
        .await
        .map_err(|e| Error::unavailable(format!("packaging failed: {e}")))??;
        if info.size > MAX_ZIP {
            return Err(Error::payload_too_large(format!(
                "the package {} is {} bytes; Lambda accepts at most {MAX_ZIP} bytes (50 MB) in a direct upload. \
                 Build in release mode and strip debug info (`[profile.release] strip = true`)",
                info.path.display(),
                info.size
            ))
            .with_type("PackageTooLarge"));
        }
        Ok(Package { app: app.app.clone(), artifact: info.path, size: info.size, functions: app.functions.clone() })
    }

    async fn deploy(&self, package: &Package, progress: &dyn Progress) -> Result<DeployReport, Error> {
        self.check(&package.functions)?;
        let zip = tokio::fs::read(&package.artifact)
            .await
            .map_err(|e| Error::bad_input(format!("cannot read the package {}: {e}", package.artifact.display())))?;
        let sha = code_sha256(&zip);
        let mut report = DeployReport { created: vec![], updated: vec![], unchanged: vec![] };
        for spec in &package.functions {
            match self.deploy_one(&package.app, spec, &zip, &sha, progress).await? {
                Outcome::Created => report.created.push(spec.name.clone()),
                Outcome::Updated => report.updated.push(spec.name.clone()),
                Outcome::Unchanged => report.unchanged.push(spec.name.clone()),
            }
        }
        Ok(report)
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<Invoked, Error> {
        self.invoke_function(request).await
    }

    async fn list(&self) -> Result<Vec<FunctionInfo>, Error> {
        let mut found = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_functions()
                .set_marker(marker.clone())
                .max_items(50)
                .send()
                .await
                .map_err(|e| self.sdk_error("ListFunctions", "*", e))?;
            for c in out.functions() {
                if let Some(info) = self.info_of(c) {
                    found.push(info);
                }
            }
            match out.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        found.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(found)
    }

    async fn remove(&self, function: &str) -> Result<(), Error> {
        let name = self.lambda_name(function);
        match self.client.delete_function().function_name(&name).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Err(Error::not_found(format!(
                "no function named `{function}` (Lambda function `{name}`) on {}",
                self.where_()
            ))
            .with_type("ResourceNotFoundException")),
            Err(e) => Err(self.sdk_error("DeleteFunction", &name, e)),
        }
    }

    /// Activation records read from CloudWatch Logs, see [`crate::activations`].
    async fn activations(&self, query: ActivationQuery) -> Result<Vec<Activation>, Error> {
        self.activations_from_logs(query).await
    }
}

impl LambdaRunner {
    /// A listed Lambda function as a faas function, if it is one of ours: a `provided.*` runtime,
    /// our prefix, and a `Handler` equal to the rest of the name.
    fn info_of(&self, c: &FunctionConfiguration) -> Option<FunctionInfo> {
        let full = c.function_name()?;
        let name = full.strip_prefix(self.settings.prefix.as_str())?;
        let provided = c.runtime().is_some_and(|r| r.as_str().starts_with("provided"));
        if !provided || c.handler() != Some(name) || faas_api::validate_function_name(name).is_err() {
            return None;
        }
        let mut spec = FunctionSpec::new(name);
        if let Some(t) = c.timeout() {
            spec.timeout = Duration::from_secs(t.max(0) as u64);
        }
        if let Some(m) = c.memory_size() {
            spec.memory_mb = m.max(0) as u32;
        }
        if let Some(vars) = c.environment().and_then(|e| e.variables()) {
            spec.env = vars
                .iter()
                .filter(|(k, _)| !MANAGED_ENV.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        let state = c.state().map(|s| s.as_str().to_string()).unwrap_or_else(|| "Unknown".into());
        let state = match c.last_update_status() {
            Some(u) if *u != LastUpdateStatus::Successful => format!("{state} (last update {})", u.as_str()),
            _ => state,
        };
        Some(FunctionInfo { spec, state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faas_api::ErrorKind;

    fn profile() -> BackendProfile {
        BackendProfile::new("emu", "lambda").with("region", "us-east-1").with("endpoint", "http://127.0.0.1:1")
    }

    #[test]
    fn only_hosts_of_this_machine_are_loopback() {
        for url in [
            "http://127.0.0.1:9001",
            "http://localhost:1/x",
            "http://[::1]:9",
            "http://127.1.2.3",
            "http://u@127.0.0.1:1",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "https://lambda.eu-west-1.amazonaws.com",
            "http://127.example.com:9001",
            "http://localhost.evil:1",
            "http://10.0.0.1",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    #[test]
    fn xray_and_traceparent_map_both_ways() {
        let x = invoke::xray_header("00-5bef4de7ad49b0e87f6ef6c87fc2e700-9a9197af755a6419-01").unwrap();
        assert_eq!(x, "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1");
        assert!(invoke::xray_header("nope").is_none());
    }

    #[test]
    fn specs_outside_lambda_limits_are_refused_by_name() {
        let mut f = FunctionSpec::new("big");
        f.memory_mb = 64;
        assert!(Desired::of(&f).unwrap_err().message().contains("`big` has memory_mb = 64"));
        let mut f = FunctionSpec::new("t");
        f.timeout = Duration::from_millis(1500);
        assert_eq!(Desired::of(&f).unwrap().timeout, 2, "timeouts round up to whole seconds");
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_unavailable_and_named() {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let r = LambdaRunner::from_profile(&profile().with("endpoint", url.as_str())).await.unwrap();
        let err = r.list().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BackendUnavailable, "{err}");
        assert!(err.message().contains(&url), "{err}");
        let query = ActivationQuery { function: Some("f".into()), ..Default::default() };
        let err = r.activations(query).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BackendUnavailable);
        assert!(err.message().contains("CloudWatch Logs FilterLogEvents `/aws/lambda/f`"), "{err}");
        assert!(err.message().contains(&url), "{err}");
    }
}
