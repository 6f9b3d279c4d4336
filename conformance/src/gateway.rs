//! The event gateway the suite runs for targets whose functions emit through one
//! ([`faas_api::backend::ConformanceSetup::gateway`]): a real `faas-gateway` on 127.0.0.1 with an
//! embedded store in a temporary directory, one function sink and one subscription per event
//! trigger of the fixture app, delivering to the target's own runner.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use faas_api::backend::ConformanceGateway;
use faas_api::{BackendProfile, Error, Registry, Runner, Trigger};
use futures::future::BoxFuture;

use crate::fixture::fixture_app;

/// The backend profile name function sinks use inside the suite's gateway.
const PROFILE: &str = "conformance";
/// The kind the suite's gateway knows that profile by (its registry has this one kind).
const KIND: &str = "conformance-target";

/// The `[gateway]` configuration for the fixture app: a function sink per function with an event
/// trigger, and a subscription for each trigger with its type, source and subject as exact
/// filters.
fn config_toml() -> String {
    let mut toml = format!("[backends.{PROFILE}]\nkind = \"{KIND}\"\n");
    for f in fixture_app().manifest().functions {
        for (i, trigger) in f.triggers.iter().enumerate() {
            let Trigger::Event { filter } = trigger else { continue };
            if i == 0 {
                toml += &format!("\n[gateway.functions.{0}]\nbackend = \"{PROFILE}\"\ntarget = \"{0}\"\n", f.name);
            }
            toml += &format!(
                "\n[[gateway.subscriptions]]\nid = \"conformance-{}-{i}\"\nsink = \"function:{}\"\n",
                f.name, f.name
            );
            if let Some(t) = &filter.event_type {
                toml += &format!("types = [{t:?}]\n");
            }
            let exact: Vec<String> = [("source", &filter.source), ("subject", &filter.subject)]
                .into_iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{{ exact = {{ {k} = {v:?} }} }}")))
                .collect();
            if !exact.is_empty() {
                toml += &format!("filters = [{}]\n", exact.join(", "));
            }
        }
    }
    toml
}

struct SuiteGateway {
    url: String,
    runner: Arc<OnceLock<Arc<dyn Runner>>>,
    running: faas_gateway::RunningGateway,
    dir: PathBuf,
}

impl ConformanceGateway for SuiteGateway {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn deliver_to(&self, runner: Arc<dyn Runner>) {
        let _ = self.runner.set(runner);
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.running.shutdown().await;
            let _ = std::fs::remove_dir_all(&self.dir);
        })
    }
}

/// Starts a gateway for one target (see the module docs).
pub(crate) async fn start() -> Result<Box<dyn ConformanceGateway>, Error> {
    let text = config_toml();
    let mut config = faas_gateway::config::GatewayConfig::parse_with_env(&text, "conformance gateway", &|_| None)
        .map_err(|e| Error::bad_input(format!("the suite's gateway configuration is invalid: {e}")))?;
    let dir = std::env::temp_dir().join(format!("faas-conformance-gateway-{}", uuid::Uuid::new_v4().simple()));
    config.data_dir = dir.clone();
    let runner: Arc<OnceLock<Arc<dyn Runner>>> = Arc::default();
    let mut runners = Registry::new();
    let late = runner.clone();
    runners.register(KIND, move |_profile: BackendProfile| {
        let late = late.clone();
        async move { late.get().cloned().ok_or_else(|| Error::unavailable("the conformance target has no runner yet")) }
    });
    let running = faas_gateway::start(faas_gateway::GatewayOptions {
        config,
        backends: [(PROFILE.to_string(), BackendProfile::new(PROFILE, KIND))].into(),
        runners,
        bind: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
    })
    .await
    .map_err(|e| Error::unavailable(format!("cannot start the suite's event gateway: {e}")))?;
    let url = format!("http://{}/", running.addr());
    Ok(Box::new(SuiteGateway { url, runner, running, dir }))
}

/// The state service the suite gives the fixture app for the STA cases: a gateway of its own on
/// 127.0.0.1 with an embedded store in a temporary directory and a fresh management token. The
/// fixture is deployed with its address and the app's token in every function's environment, as
/// `faas deploy` does for a profile's `state` key ([`faas_api::state::bind`]).
pub struct StateGateway {
    addr: std::net::SocketAddr,
    token: String,
    dir: PathBuf,
    running: tokio::sync::Mutex<Option<faas_gateway::RunningGateway>>,
}

impl std::fmt::Debug for StateGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateGateway").field("addr", &self.addr).field("token", &"<redacted>").finish()
    }
}

impl StateGateway {
    /// Starts one (see the type's docs).
    pub async fn start() -> Result<StateGateway, Error> {
        let dir = std::env::temp_dir().join(format!("faas-conformance-state-{}", uuid::Uuid::new_v4().simple()));
        let token = uuid::Uuid::new_v4().simple().to_string();
        let running = Self::launch(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), &dir, &token).await?;
        let addr = running.addr();
        Ok(StateGateway { addr, token, dir, running: tokio::sync::Mutex::new(Some(running)) })
    }

    async fn launch(
        addr: std::net::SocketAddr,
        dir: &std::path::Path,
        token: &str,
    ) -> Result<faas_gateway::RunningGateway, Error> {
        let config = faas_gateway::config::GatewayConfig {
            data_dir: dir.to_path_buf(),
            token: Some(token.to_string()),
            ..Default::default()
        };
        faas_gateway::start(faas_gateway::GatewayOptions {
            config,
            backends: Default::default(),
            runners: Registry::new(),
            bind: Some(addr),
        })
        .await
        .map_err(|e| Error::unavailable(format!("cannot start the suite's state gateway on {addr}: {e}")))
    }

    /// Its base URL (`http://127.0.0.1:PORT`), what a profile's `state` key names.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The profile the fixture is bound with (`state` naming this gateway) and the token lookup
    /// [`faas_api::state::bind`] takes.
    pub fn bind(&self, app: &mut faas_api::AppSpec) -> Result<(), Error> {
        let profile = BackendProfile::new("conformance-state", "conformance").with("state", self.url());
        let token = self.token.clone();
        faas_api::state::bind(app, &profile, &move |k| {
            (k == faas_api::state::ENV_GATEWAY_TOKEN).then(|| token.clone())
        })?;
        Ok(())
    }

    /// The app's keys as the app's own client sees them.
    pub fn client(&self, app: &str) -> faas_api::state::State {
        faas_api::state::State::new(Arc::new(faas_host::state::HttpState::new(
            format!("{}{}/{app}", self.url(), faas_gateway::state::PREFIX),
            faas_api::state::app_token(&self.token, app),
        )))
    }

    /// Stops it and starts it again on the same address and data (STA-05).
    pub async fn restart(&self) -> Result<(), Error> {
        let mut running = self.running.lock().await;
        if let Some(r) = running.take() {
            r.shutdown().await;
        }
        *running = Some(Self::launch(self.addr, &self.dir, &self.token).await?);
        Ok(())
    }

    /// Stops it and removes its data.
    pub async fn stop(&self) {
        if let Some(r) = self.running.lock().await.take() {
            r.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fixture_subscription_becomes_a_sink_and_a_subscription() {
        let toml = super::config_toml();
        assert!(
            toml.contains("[gateway.functions.collect]\nbackend = \"conformance\"\ntarget = \"collect\""),
            "{toml}"
        );
        assert!(toml.contains("sink = \"function:collect\"\ntypes = [\"probe.emitted\"]"), "{toml}");
        faas_gateway::config::GatewayConfig::parse_with_env(&toml, "t", &|_| None).unwrap();
    }
}
