//! `faas-gateway`: the faas CloudEvents gateway as a standalone server.
//!
//! ```text
//! faas-gateway [--config faas.toml] [--port N] [--data-dir DIR] [--store embedded|nats] [--nats-url URL]
//! ```
//!
//! Reads `[gateway]` and `[backends.*]` from the config file (defaults when the default `faas.toml` does not
//! exist), logs to stderr (`RUST_LOG`), and prints `faas-gateway listening on http://127.0.0.1:PORT` on stdout
//! once it accepts requests. Ctrl-C or SIGTERM shuts it down gracefully. Function sinks reach every
//! backend of this build ([`faas_backends::all`]): `local` is a running `faas dev` server (its
//! profile's `endpoint`, else `port`, else 127.0.0.1:8080; `token`, else `FAAS_TOKEN`), `lambda` is
//! AWS Lambda or its emulator at the profile's `endpoint`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use faas_api::BackendProfile;
use faas_gateway::config::{GatewayConfig, Overrides};

/// The faas CloudEvents gateway.
#[derive(Debug, Parser)]
#[command(name = "faas-gateway", version, about)]
struct Args {
    /// The project configuration: `[gateway]` and `[backends.*]` are read from it.
    #[arg(long, default_value = "faas.toml")]
    config: PathBuf,
    /// Port on 127.0.0.1 (overrides `gateway.port`; 0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
    /// Directory of the embedded store (overrides `gateway.data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Event store: `embedded` or `nats` (overrides `gateway.store`).
    #[arg(long, value_parser = ["embedded", "nats"])]
    store: Option<String>,
    /// NATS URL for `--store nats` (overrides `gateway.nats_url`).
    #[arg(long)]
    nats_url: Option<String>,
}

fn load(args: &Args) -> Result<(GatewayConfig, BTreeMap<String, BackendProfile>), String> {
    let explicit = args.config != std::path::Path::new("faas.toml");
    let (mut config, backends) = if args.config.exists() {
        let config = GatewayConfig::from_file(&args.config).map_err(|e| e.to_string())?;
        let project = faas_api::Config::load(&args.config).map_err(|e| e.to_string())?;
        (config, project.backends)
    } else if explicit {
        return Err(format!("config file {} does not exist", args.config.display()));
    } else {
        // No faas.toml: the defaults through the same parser, so `FAAS_GATEWAY_TOKEN` applies as it
        // does with one (`GatewayConfig::default()` reads no environment).
        (GatewayConfig::parse("", "faas.toml").map_err(|e| e.to_string())?, BTreeMap::new())
    };
    config.apply(&Overrides {
        port: args.port,
        data_dir: args.data_dir.clone(),
        store: args.store.clone(),
        nats_url: args.nats_url.clone(),
    })?;
    Ok((config, backends))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(faas_api::terminal::use_colour(std::io::IsTerminal::is_terminal(&std::io::stderr())))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let (config, backends) = match load(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("faas-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
    let options = faas_gateway::GatewayOptions {
        config,
        backends,
        runners: faas_backends::all().registry(Default::default()),
        bind: Some(bind),
    };
    let gateway = match faas_gateway::start(options).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("faas-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = faas_gateway::server::stop_signal();
    println!("faas-gateway listening on http://{}", gateway.addr());
    let _ = std::io::stdout().flush();
    gateway.wait_until(stop).await;
    ExitCode::SUCCESS
}
