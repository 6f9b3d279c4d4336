//! The emulator as `faas dev --emulate gcf` starts it: a [`faas_api::backend::Emulator`] for
//! the list of backends.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use faas_api::backend::{Emulator, EmulatorOptions};
//! let gcf = faas_emulator_gcf::emulate::LocalCloudFunctions;
//! assert_eq!((gcf.name(), gcf.default_port()), ("gcf", 8070));
//! let options = EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), state_dir: None, echo_logs: false };
//! let running = gcf.start(options).await.unwrap();
//! let profile = running.profile();
//! assert_eq!(profile.kind, "gcf");
//! assert_eq!(profile.str("endpoint").unwrap(), Some(running.url()));
//! assert_eq!(profile.str("project").unwrap(), Some("local-project".to_string()));
//! running.shutdown().await;
//! # });
//! ```

use async_trait::async_trait;
use faas_api::backend::{Emulator, EmulatorOptions, RunningEmulator};
use faas_api::{BackendProfile, Error};

/// The port the emulator listens on by default (no official Cloud Functions emulator port
/// exists; 8070 sits beside the Functions Framework's 8080).
pub const DEFAULT_PORT: u16 = 8070;

/// The project the backend profile names (any project is accepted).
pub const PROJECT: &str = "local-project";

/// The region the backend profile names (any location is accepted).
pub const REGION: &str = "us-central1";

/// A local Google Cloud Functions (2nd gen): the v2 API, uploads, Cloud Logging's
/// `entries:list`, and Python functions run as processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalCloudFunctions;

#[async_trait]
impl Emulator for LocalCloudFunctions {
    fn name(&self) -> &str {
        "gcf"
    }

    fn platform(&self) -> &str {
        "Google Cloud Functions"
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
        BackendProfile::new("emulator", "gcf")
            .with("endpoint", crate::Emulator::url(self))
            .with("project", PROJECT.to_string())
            .with("region", REGION.to_string())
    }

    fn empty_banner(&self) -> Vec<String> {
        let url = crate::Emulator::url(self);
        let mut lines = vec![
            format!("an empty local Google Cloud Functions (2nd gen) at {url} (any project; region {REGION})"),
            format!("  point gcloud at it:     gcloud config set api_endpoint_overrides/cloudfunctions {url}/"),
            format!("    (or CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDFUNCTIONS={url}/)"),
            format!("  client libraries:       endpoint override {url}, anonymous credentials"),
            format!("  logs:                   POST {url}/v2/entries:list"),
            format!("  events:                 POST {url}/emulator/v1/projects/{PROJECT}/locations/{REGION}/events"),
        ];
        lines.push(match self.functions_framework() {
            Some(ff) => format!("  (Python functions; Functions Framework {})", ff.display()),
            None => {
                "  (Python functions; no functions-framework on PATH: main.py is imported by a launcher)".to_string()
            }
        });
        lines
    }

    fn invoke_hint(&self, name: &str) -> String {
        let url = crate::Emulator::url(self);
        format!(
            "curl \"$(curl -s {url}/v2/projects/{PROJECT}/locations/{REGION}/functions/{name} | sed -n 's/.*\"uri\": *\"\\([^\"]*\\)\".*/\\1/p')\""
        )
    }

    async fn shutdown(self: Box<Self>) {
        crate::Emulator::shutdown(*self).await
    }
}
