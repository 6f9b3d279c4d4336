//! # faas-cli
//!
//! The `faas` command: create a function project, serve it locally with hot reload, invoke it,
//! deploy it to any configured backend, inspect what ran, and run the conformance suite.
//!
//! The binary is a thin `main` over [`main_with_args`]; every command lives in a module here so
//! it can be read and tested on its own. Exit codes: 0 ok, 1 error, 2 usage.
//!
//! ```
//! // A usage error exits with 2 and changes nothing.
//! assert_eq!(faas_cli::main_with_args(["faas", "invoke"]), faas_cli::output::EXIT_USAGE);
//! ```
#![warn(missing_docs)]

pub mod args;
pub mod backend;
pub mod commands;
pub mod conformance;
pub mod dev;
pub mod emulate;
pub mod gateway;
pub mod output;
pub mod plan;
pub mod progress;
pub mod project;
pub mod runs;
pub mod scaffold;
pub mod state;

use std::ffi::OsString;

use clap::error::ErrorKind as ClapErrorKind;
use clap::Parser;

use args::{Cli, Command};
use output::{CliResult, Failure, Output, EXIT_ERROR, EXIT_OK, EXIT_USAGE};

/// Parses `args` (the first is the program name), runs the command with every backend of this
/// workspace ([`faas_backends::all`]) and returns the exit code.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    main_with(faas_backends::all(), args)
}

/// The `faas` command with the given list of backends: what a vendor's own `faas` binary calls,
/// with their backend added to the list (see `docs/adding-a-backend.md`).
///
/// ```no_run
/// // src/main.rs of a vendor's `faas`:
/// let backends = faas_backends::all(); // .with(my_cloud::MyBackend)
/// std::process::exit(faas_cli::main_with(backends, std::env::args_os()));
/// ```
pub fn main_with<I, T>(backends: faas_api::backend::Backends, args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    backend::install(backends);
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e, args.iter().any(|a| a == "--json")),
    };
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_ERROR;
        }
    };
    runtime.block_on(run(cli))
}

fn usage_error(e: clap::Error, json: bool) -> i32 {
    if matches!(e.kind(), ClapErrorKind::DisplayHelp | ClapErrorKind::DisplayVersion) {
        let _ = e.print();
        return EXIT_OK;
    }
    if json {
        let rendered = e.to_string();
        let message: Vec<&str> = rendered.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
        let message = message.join(" ").trim_start_matches("error: ").to_string();
        let failure =
            Failure::from(faas_api::Error::bad_input(message).with_type("Usage")).with_hint("see `faas --help`");
        Output::new(true).failure(&failure);
    } else {
        let _ = e.print();
    }
    EXIT_USAGE
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FAAS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(faas_api::terminal::use_colour(std::io::IsTerminal::is_terminal(&std::io::stderr())))
        .with_target(false)
        .try_init();
}

/// Runs a parsed command line, printing its output and any failure; returns the exit code.
pub async fn run(cli: Cli) -> i32 {
    let out = Output::new(cli.global.json);
    match dispatch(cli, out).await {
        Ok(()) => EXIT_OK,
        Err(failure) => {
            out.failure(&failure);
            EXIT_ERROR
        }
    }
}

async fn dispatch(cli: Cli, out: Output) -> CliResult {
    let global = cli.global;
    match cli.command {
        Command::New(args) => scaffold::new_project(args, out),
        Command::Dev(args) => dev::dev(&global, args, out).await,
        Command::Invoke(args) => commands::invoke(&global, args, out).await,
        Command::Build(args) => commands::build(&global, args, out).await,
        Command::Deploy(args) => commands::deploy(&global, args, out).await,
        Command::Remove(args) => commands::remove(&global, args, out).await,
        Command::List => commands::list(&global, out).await,
        Command::Logs(args) => commands::logs(&global, args, out).await,
        Command::Activations(args) => commands::activations(&global, args, out).await,
        Command::Plan(args) => plan::plan(&global, args, out).await,
        Command::Conformance(args) => conformance::conformance(&global, args, out).await,
        Command::Runs(args) => runs::runs(&global, args, out).await,
        Command::State(args) => state::state(&global, args, out).await,
        Command::Gateway(args) => gateway::gateway(&global, args, out).await,
    }
}
