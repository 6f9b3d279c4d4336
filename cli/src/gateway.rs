//! `faas gateway`: runs the CloudEvents gateway (crate `faas-gateway`) for the project: the
//! `[gateway]` section of faas.toml, overridden by flags, with function sinks reaching the
//! project's backend profiles through this build's runner registry.

use std::path::PathBuf;

use faas_api::Error;
use faas_gateway::config::{GatewayConfig, Overrides, StoreKind};
use serde_json::json;

use crate::args::{GatewayArgs, GlobalArgs};
use crate::output::{CliResult, Failure, Output};
use crate::project;

/// Where `faas gateway` records its URL and management token for other tools (owner-only file).
pub fn gateway_info_path(root: &std::path::Path) -> PathBuf {
    root.join(".faas").join("gateway.json")
}

/// Applies the command-line flags to the configuration.
///
/// ```
/// use faas_cli::args::GatewayArgs;
/// let mut c = faas_gateway::config::GatewayConfig::default();
/// let args = GatewayArgs { port: Some(0), data_dir: None, store: Some("nats".into()), nats_url: Some("nats://127.0.0.1:4222".into()) };
/// faas_cli::gateway::apply_flags(&mut c, &args).unwrap();
/// assert_eq!((c.port, c.store), (0, faas_gateway::config::StoreKind::Nats));
/// let bad = GatewayArgs { port: None, data_dir: None, store: Some("redis".into()), nats_url: None };
/// assert!(faas_cli::gateway::apply_flags(&mut c, &bad).unwrap_err().message().contains("`redis`"));
/// ```
pub fn apply_flags(config: &mut GatewayConfig, args: &GatewayArgs) -> Result<(), Error> {
    config
        .apply(&Overrides {
            port: args.port,
            data_dir: args.data_dir.clone(),
            store: args.store.clone(),
            nats_url: args.nats_url.clone(),
        })
        .map_err(Error::bad_input)
}

/// `faas gateway`.
pub async fn gateway(global: &GlobalArgs, args: GatewayArgs, out: Output) -> CliResult {
    let project = project::load(&global.dir)?;
    let mut config = match &project.config.path {
        Some(path) => GatewayConfig::from_file(path)?,
        // No faas.toml: the defaults, through the same parser, so that `FAAS_GATEWAY_TOKEN` applies as
        // it does with one.
        None => GatewayConfig {
            data_dir: project.root.join(".faas").join("gateway"),
            ..GatewayConfig::parse("", faas_api::config::FILE_NAME)?
        },
    };
    apply_flags(&mut config, &args)?;
    if config.data_dir.is_relative() {
        config.data_dir = std::env::current_dir().unwrap_or_default().join(&config.data_dir);
    }
    // Management needs a token: without one configured (`token` in [gateway], or
    // `FAAS_GATEWAY_TOKEN`), make one for this run and hand it over in an owner-only file, as
    // `faas dev` does (it is never printed).
    if config.token.is_none() {
        config.token = Some(uuid::Uuid::new_v4().simple().to_string());
    }
    let token = config.token.clone().unwrap_or_default();
    let store = match config.store {
        StoreKind::Embedded => format!("embedded log in {}", config.data_dir.display()),
        StoreKind::Nats => format!("NATS JetStream at {}", config.nats_url.as_deref().unwrap_or("?")),
    };
    let backends = project.config.backends.clone();
    let options =
        faas_gateway::GatewayOptions { config, backends, runners: crate::backend::registry(&project.root), bind: None };
    let running = faas_gateway::start(options)
        .await
        .map_err(|e| Failure::from(Error::unavailable(format!("the gateway could not start: {e}"))))?;
    // Caught from before the announcement: a SIGTERM right after it still stops gracefully.
    let stop = faas_gateway::server::stop_signal();
    let url = format!("http://{}", running.addr());
    let info_path = gateway_info_path(&project.root);
    project::write_private_json(&info_path, &json!({ "url": url, "token": token, "pid": std::process::id() }))?;
    out.json_line(json!({ "event": "listening", "url": url, "store": store, "info": info_path }));
    out.say(format!("faas gateway listening on {url}"));
    out.say(format!("  store: {store}"));
    out.say(format!("  ingress: POST {url}/ (CloudEvents: binary, structured or batch)"));
    out.say(format!("  management: {url}/subscriptions, {url}/functions (OpenAPI: {url}/openapi.json)"));
    out.say(format!("  metrics: {url}/metrics"));
    out.say(format!("management token: in {}", info_path.display()));
    out.say("Ctrl-C to stop");
    running.wait_until(stop).await;
    if std::fs::read_to_string(&info_path).is_ok_and(|t| t.contains(&format!("\"pid\": {}", std::process::id()))) {
        let _ = std::fs::remove_file(&info_path);
    }
    out.json_line(json!({ "event": "stopped" }));
    Ok(())
}
