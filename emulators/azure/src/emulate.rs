//! The emulator as `faas dev --emulate azure` starts it: a [`faas_api::backend::Emulator`] for
//! the list of backends.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use faas_api::backend::{Emulator, EmulatorOptions};
//! let azure = faas_emulator_azure::emulate::LocalFunctionsHost;
//! assert_eq!((azure.name(), azure.platform(), azure.default_port()), ("azure", "Azure Functions", 7071));
//! let options = EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), state_dir: None, echo_logs: false };
//! let running = azure.start(options).await.unwrap();
//! let profile = running.profile();
//! assert_eq!(profile.kind, "azure");
//! assert_eq!(profile.str("endpoint").unwrap(), Some(running.url()));
//! assert_eq!(profile.str("resource_group").unwrap().as_deref(), Some("local"));
//! assert!(running.invoke_hint("hello").contains("/api/hello"));
//! running.shutdown().await;
//! # });
//! ```

use async_trait::async_trait;
use faas_api::backend::{Emulator, EmulatorOptions, RunningEmulator};
use faas_api::{BackendProfile, Error};

/// The port the emulator listens on by default: 7071, as `func start` does.
pub const DEFAULT_PORT: u16 = 7071;

/// The subscription the backend profile names (any subscription is accepted).
pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";

/// The resource group the backend profile names (any resource group is accepted; none needs to
/// exist first).
pub const RESOURCE_GROUP: &str = "local";

/// The region the backend profile names.
pub const REGION: &str = "westeurope";

/// A local Azure Functions host: sites whose custom handlers run as the Functions host runs
/// them, with ARM and Kudu on the same port.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFunctionsHost;

#[async_trait]
impl Emulator for LocalFunctionsHost {
    fn name(&self) -> &str {
        "azure"
    }

    fn platform(&self) -> &str {
        "Azure Functions"
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
        BackendProfile::new("emulator", "azure")
            .with("endpoint", crate::Emulator::url(self))
            .with("subscription", SUBSCRIPTION.to_string())
            .with("resource_group", RESOURCE_GROUP.to_string())
            .with("region", REGION.to_string())
    }

    fn empty_banner(&self) -> Vec<String> {
        let url = crate::Emulator::url(self);
        let port = self.local_addr().port();
        let arm =
            format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Web/sites");
        vec![
            format!("an empty local Azure Functions host at {url} (any subscription and resource group; region {REGION})"),
            format!("  ARM endpoint:           {url} (resource manager endpoint override; any bearer token)"),
            format!("  create a function app:  curl -X PUT -H 'Authorization: Bearer local' -H 'Content-Type: application/json' \\"),
            format!("                            -d '{{\"location\":\"{REGION}\",\"kind\":\"functionapp,linux\"}}' '{url}{arm}/<app>?api-version=2023-12-01'"),
            format!("  deploy a zip (Kudu):    curl -X POST -H 'Host: <app>.scm.azurewebsites.net' -H 'Authorization: Bearer local' \\"),
            format!("                            --data-binary @app.zip {url}/api/zipdeploy"),
            format!("  keys:                   curl -X POST -H 'Authorization: Bearer local' '{url}{arm}/<app>/host/default/listkeys?api-version=2023-12-01'"),
            format!("  call a function:        curl -H 'Host: <app>.azurewebsites.net' '{url}/api/<function>?code=<key>'"),
            format!("    (with one app, http://127.0.0.1:{port}/api/... and /admin/... reach it without a Host header)"),
        ]
    }

    fn invoke_hint(&self, name: &str) -> String {
        let url = crate::Emulator::url(self);
        let sites = self.sites();
        match sites.as_slice() {
            [app] => match self.function_key(app, name) {
                Some(key) => format!("curl '{url}/api/{name}?code={key}'"),
                None => format!("curl '{url}/api/{name}'"),
            },
            _ => format!("curl -H 'Host: <app>.azurewebsites.net' '{url}/api/{name}?code=<key>'"),
        }
    }

    async fn shutdown(self: Box<Self>) {
        crate::Emulator::shutdown(*self).await
    }
}
