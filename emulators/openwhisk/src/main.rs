//! `faas-openwhisk-emulator`: a local Apache OpenWhisk endpoint for `wsk` and the OpenWhisk clients.
//!
//! ```text
//! faas-openwhisk-emulator --port 3233 --state-dir /tmp/openwhisk
//! wsk property set --apihost http://127.0.0.1:3233 --auth 23bc46b1-...:123zO3x...
//! wsk action create hello exec.zip --native
//! ```

use std::path::PathBuf;

use clap::Parser;

/// A faithful local Apache OpenWhisk (native actions: dockerskeleton and ActionLoop).
#[derive(Debug, Parser)]
#[command(name = "faas-openwhisk-emulator", version)]
struct Args {
    /// Port to listen on, on 127.0.0.1.
    #[arg(long, default_value_t = faas_emulator_openwhisk::emulate::DEFAULT_PORT)]
    port: u16,
    /// The accepted credential, UUID:KEY (default: the well-known guest key).
    #[arg(long, value_name = "UUID:KEY", default_value = faas_emulator_openwhisk::GUEST_AUTH)]
    auth: String,
    /// The namespace the credential owns.
    #[arg(long, default_value = "guest")]
    namespace: String,
    /// Directory for unpacked code and logs (default: a temporary directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Activations in flight at once before invokes answer 429.
    #[arg(long, default_value_t = 100)]
    concurrent_limit: usize,
    /// Seconds an idle container lives before it is stopped (0: until the action changes).
    #[arg(long, value_name = "SECONDS", default_value_t = faas_emulator_openwhisk::DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout: u64,
    /// Do not print activation logs to stderr.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() {
    faas_emulator_kit::init_logging();
    let args = Args::parse();
    if args.concurrent_limit == 0 {
        eprintln!("error: --concurrent-limit must be at least 1");
        std::process::exit(2);
    }
    let options = faas_emulator_openwhisk::EmulatorOptions {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], args.port)),
        state_dir: args.state_dir,
        auth: args.auth,
        namespace: args.namespace,
        concurrent_limit: args.concurrent_limit,
        idle_timeout: (args.idle_timeout > 0).then(|| std::time::Duration::from_secs(args.idle_timeout)),
        echo_logs: !args.quiet,
        ..Default::default()
    };
    let emulator = match faas_emulator_openwhisk::start(options).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {}", e.message());
            std::process::exit(1);
        }
    };
    faas_emulator_kit::banner(&[
        format!("OpenWhisk emulator listening on {}", emulator.url()),
        format!("  wsk property set --apihost {} --auth {}", emulator.url(), emulator.auth()),
    ]);
    let _ = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
}
