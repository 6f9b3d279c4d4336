//! `faas-lambda-emulator`: a local AWS Lambda endpoint for the AWS CLI and SDKs.
//!
//! ```text
//! faas-lambda-emulator --port 9001 --state-dir /tmp/lambda
//! AWS_ENDPOINT_URL=http://127.0.0.1:9001 aws lambda list-functions
//! ```

use std::path::PathBuf;

use clap::Parser;

/// A faithful local AWS Lambda (provided.al2023 / provided.al2 runtimes).
#[derive(Debug, Parser)]
#[command(name = "faas-lambda-emulator", version)]
struct Args {
    /// Port to listen on, on 127.0.0.1.
    #[arg(long, default_value_t = 9001)]
    port: u16,
    /// Directory for unpacked code and logs (default: a temporary directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Region used in ARNs and AWS_REGION.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Execution environments per function before invocations are throttled (429).
    #[arg(long, default_value_t = 64)]
    max_environments: usize,
    /// Do not print function logs to stderr.
    #[arg(long)]
    quiet: bool,
    /// Serve each function's Runtime API under this path and pass it as a URL
    /// (`AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:PORT/.rt`), as `cargo lambda watch` does.
    #[arg(long, value_name = "PATH")]
    runtime_api_base: Option<String>,
    /// Seconds an idle execution environment lives before it is stopped (0: until the code changes).
    #[arg(long, value_name = "SECONDS", default_value_t = faas_emulator_lambda::DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout: u64,
}

#[tokio::main]
async fn main() {
    faas_emulator_kit::init_logging();
    let args = Args::parse();
    if args.max_environments == 0 {
        eprintln!("error: --max-environments must be at least 1");
        std::process::exit(2);
    }
    let options = faas_emulator_lambda::EmulatorOptions {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], args.port)),
        state_dir: args.state_dir,
        region: args.region,
        max_environments: args.max_environments,
        echo_logs: !args.quiet,
        runtime_api_base: args.runtime_api_base,
        idle_timeout: (args.idle_timeout > 0).then(|| std::time::Duration::from_secs(args.idle_timeout)),
        ..Default::default()
    };
    let emulator = match faas_emulator_lambda::start(options).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {}", e.message());
            std::process::exit(1);
        }
    };
    faas_emulator_kit::banner(&[
        format!("Lambda emulator listening on {}", emulator.url()),
        format!("  AWS_ENDPOINT_URL={} aws lambda list-functions", emulator.url()),
    ]);
    let _ = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
}
