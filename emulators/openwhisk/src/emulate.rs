//! The emulator as `faas dev --emulate openwhisk` starts it: a [`faas_api::backend::Emulator`]
//! for the list of backends.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use faas_api::backend::{Emulator, EmulatorOptions};
//! let openwhisk = faas_emulator_openwhisk::emulate::LocalOpenWhisk;
//! assert_eq!((openwhisk.name(), openwhisk.default_port()), ("openwhisk", 3233));
//! let options = EmulatorOptions { addr: "127.0.0.1:0".parse().unwrap(), state_dir: None, echo_logs: false };
//! let running = openwhisk.start(options).await.unwrap();
//! let profile = running.profile();
//! assert_eq!(profile.kind, "openwhisk");
//! assert_eq!(profile.str("endpoint").unwrap(), Some(running.url()));
//! assert_eq!(profile.str("namespace").unwrap(), Some("guest".to_string()));
//! running.shutdown().await;
//! # });
//! ```

use async_trait::async_trait;
use faas_api::backend::{Emulator, EmulatorOptions, RunningEmulator};
use faas_api::{BackendProfile, Error};

/// The port the emulator listens on by default: the standalone OpenWhisk's (`wsk` talks to
/// `http://localhost:3233` after `java -jar openwhisk-standalone.jar`).
pub const DEFAULT_PORT: u16 = 3233;

/// A local Apache OpenWhisk: the controller REST API for `wsk` and the OpenWhisk clients, and an
/// invoker for native actions.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOpenWhisk;

#[async_trait]
impl Emulator for LocalOpenWhisk {
    fn name(&self) -> &str {
        "openwhisk"
    }

    fn platform(&self) -> &str {
        "Apache OpenWhisk"
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
        BackendProfile::new("emulator", "openwhisk")
            .with("endpoint", crate::Emulator::url(self))
            .with("namespace", self.namespace().to_string())
            .with("auth", format!("file:{}", self.auth_file().display()))
    }

    fn empty_banner(&self) -> Vec<String> {
        let url = crate::Emulator::url(self);
        vec![
            format!("an empty local Apache OpenWhisk at {url} (namespace {})", self.namespace()),
            format!("  point wsk at it:      wsk property set --apihost {url} --auth {}", self.auth()),
            "  deploy a native action: wsk action create hello exec.zip --native".to_string(),
            "  (native actions: dockerskeleton and ActionLoop executables; no Docker images)".to_string(),
        ]
    }

    fn invoke_hint(&self, name: &str) -> String {
        let url = crate::Emulator::url(self);
        format!("wsk --apihost {url} --auth {} action invoke {name} --result", self.auth())
    }

    async fn shutdown(self: Box<Self>) {
        crate::Emulator::shutdown(*self).await
    }
}
