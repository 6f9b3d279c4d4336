//! The emulator as `faas dev --emulate lambda` starts it: a [`faas_api::backend::Emulator`] for
//! the list of backends.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use faas_api::backend::{Emulator, EmulatorOptions};
//! let lambda = faas_emulator_lambda::emulate::LocalLambda;
//! assert_eq!((lambda.name(), lambda.default_port()), ("lambda", 9001));
//! let options = EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), state_dir: None, echo_logs: false };
//! let running = lambda.start(options).await.unwrap();
//! let profile = running.profile();
//! assert_eq!(profile.kind, "lambda");
//! assert_eq!(profile.str("endpoint").unwrap(), Some(running.url()));
//! running.shutdown().await;
//! # });
//! ```

use async_trait::async_trait;
use faas_api::backend::{Emulator, EmulatorOptions, RunningEmulator};
use faas_api::{BackendProfile, Error};

/// The port the emulator listens on by default (the address the Lambda Runtime Interface
/// Emulator documents).
pub const DEFAULT_PORT: u16 = 9001;

/// A local AWS Lambda: the Invoke/CRUD API for the AWS SDKs and a Runtime API per environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalLambda;

#[async_trait]
impl Emulator for LocalLambda {
    fn name(&self) -> &str {
        "lambda"
    }

    fn platform(&self) -> &str {
        "AWS Lambda"
    }

    fn default_port(&self) -> u16 {
        DEFAULT_PORT
    }

    async fn start(&self, options: EmulatorOptions) -> Result<Box<dyn RunningEmulator>, Error> {
        let emulator = crate::start(crate::EmulatorOptions {
            addr: options.addr,
            state_dir: options.state_dir,
            echo_logs: options.echo_logs,
            ..Default::default()
        })
        .await?;
        Ok(Box::new(emulator))
    }
}

#[async_trait]
impl RunningEmulator for crate::Emulator {
    fn url(&self) -> String {
        crate::Emulator::url(self)
    }

    fn profile(&self) -> BackendProfile {
        BackendProfile::new("emulator", "lambda")
            .with("region", self.region().to_string())
            .with("endpoint", crate::Emulator::url(self))
    }

    fn empty_banner(&self) -> Vec<String> {
        let url = crate::Emulator::url(self);
        vec![
            format!("an empty local AWS Lambda at {url}"),
            format!("  deploy with any AWS SDK or CLI:  aws --endpoint-url {url} lambda create-function ..."),
            "  (any region and credentials are accepted; runtimes provided.al2023 / provided.al2)".to_string(),
        ]
    }

    fn invoke_hint(&self, name: &str) -> String {
        let url = crate::Emulator::url(self);
        format!("aws --endpoint-url {url} lambda invoke --function-name {name} --payload '{{}}' out.json")
    }

    async fn shutdown(self: Box<Self>) {
        crate::Emulator::shutdown(*self).await
    }
}
