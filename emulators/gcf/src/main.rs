//! `faas-gcf-emulator`: a local Google Cloud Functions (2nd gen) for `gcloud` and the Google
//! client libraries.
//!
//! ```text
//! faas-gcf-emulator --port 8070 --state-dir /tmp/gcf --functions-framework ~/venv/bin/functions-framework
//! gcloud config set api_endpoint_overrides/cloudfunctions http://127.0.0.1:8070/
//! ```

use std::path::PathBuf;

use clap::Parser;

/// A faithful local Google Cloud Functions (2nd gen; Python functions).
#[derive(Debug, Parser)]
#[command(name = "faas-gcf-emulator", version)]
struct Args {
    /// Port to listen on, on 127.0.0.1.
    #[arg(long, default_value_t = faas_emulator_gcf::emulate::DEFAULT_PORT)]
    port: u16,
    /// Directory for uploads and unpacked sources (default: a temporary directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The functions-framework executable Python functions run with (default: the one on PATH).
    #[arg(long, value_name = "PATH")]
    functions_framework: Option<PathBuf>,
    /// Seconds an idle instance lives before it is stopped (0: until the function changes).
    #[arg(long, value_name = "SECONDS", default_value_t = faas_emulator_gcf::DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout: u64,
    /// Do not print the functions' log lines to stderr.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() {
    faas_emulator_kit::init_logging();
    let args = Args::parse();
    let options = faas_emulator_gcf::EmulatorOptions {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], args.port)),
        state_dir: args.state_dir,
        functions_framework: args.functions_framework,
        idle_timeout: (args.idle_timeout > 0).then(|| std::time::Duration::from_secs(args.idle_timeout)),
        echo_logs: !args.quiet,
        ..Default::default()
    };
    let emulator = match faas_emulator_gcf::start(options).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {}", e.message());
            std::process::exit(1);
        }
    };
    faas_emulator_kit::banner(&[
        format!("Cloud Functions emulator listening on {}", emulator.url()),
        format!("  gcloud config set api_endpoint_overrides/cloudfunctions {}/", emulator.url()),
        match emulator.functions_framework() {
            Some(ff) => format!("  Python functions run with {}", ff.display()),
            None => "  no functions-framework found: main.py is imported by a launcher".to_string(),
        },
    ]);
    let _ = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
}
