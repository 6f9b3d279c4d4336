//! `faas-azure-emulator`: a local Azure Functions host with ARM and Kudu, for Azure's clients.
//!
//! ```text
//! faas-azure-emulator --port 7071 --state-dir /tmp/azure
//! curl -X PUT -H 'Authorization: Bearer local' -H 'Content-Type: application/json' \
//!   -d '{"location":"westeurope"}' \
//!   'http://127.0.0.1:7071/subscriptions/0/resourceGroups/local/providers/Microsoft.Web/sites/my-app?api-version=2023-12-01'
//! ```

use std::path::PathBuf;

use clap::Parser;

/// A local Azure Functions host (custom handlers), with ARM and Kudu on the same port.
#[derive(Debug, Parser)]
#[command(name = "faas-azure-emulator", version)]
struct Args {
    /// Port to listen on, on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = faas_emulator_azure::emulate::DEFAULT_PORT)]
    port: u16,
    /// Directory the sites live in; they survive a restart with the same directory (default: a
    /// temporary directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The only bearer token ARM and Kudu accept (default: any).
    #[arg(long)]
    token: Option<String>,
    /// A storage connection string queue triggers use (e.g. Azurite's), instead of their
    /// connection app setting.
    #[arg(long, value_name = "CONNECTION_STRING")]
    azurite: Option<String>,
    /// Do not print the function and handler log lines to stderr.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() {
    faas_emulator_kit::init_logging();
    let args = Args::parse();
    let token_set = args.token.is_some();
    let options = faas_emulator_azure::EmulatorOptions {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], args.port)),
        state_dir: args.state_dir,
        echo_logs: !args.quiet,
        token: args.token,
        azurite: args.azurite,
    };
    let emulator = match faas_emulator_azure::start(options).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {}", e.message());
            std::process::exit(1);
        }
    };
    let mut lines = vec![
        format!("Azure Functions host listening on {}", emulator.url()),
        format!(
            "  ARM:   {}/subscriptions/... (Authorization: Bearer {})",
            emulator.url(),
            if token_set { "<the --token>" } else { "<any token>" }
        ),
        "  sites: Host: <app>.azurewebsites.net; Kudu: Host: <app>.scm.azurewebsites.net".to_string(),
        format!("  state: {}", emulator.state_dir().display()),
    ];
    for site in emulator.sites() {
        lines.push(format!(
            "  site {site}: http://{site}.azurewebsites.net (Host header) — master key {}",
            emulator.master_key(&site).unwrap_or_default()
        ));
    }
    faas_emulator_kit::banner(&lines);
    let _ = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
}
