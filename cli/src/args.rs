//! The command line: global flags and one struct per subcommand (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `faas`: write a serverless function once, run it locally with hot reload, deploy it to any backend.
#[derive(Debug, Parser)]
#[command(name = "faas", version, about, propagate_version = true)]
pub struct Cli {
    /// Flags every command accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Machine-readable output on stdout: one JSON document (`faas dev`: one per line). Errors are
    /// `{"ok":false,"error":{"kind","errorType","errorMessage"}}`.
    #[arg(long, global = true)]
    pub json: bool,
    /// The backend profile (a `[backends.NAME]` table of faas.toml). Precedence: this flag, then
    /// FAAS_BACKEND, then `[app] default_backend`, then the only profile, then the implicit `local`.
    #[arg(long, global = true, env = "FAAS_BACKEND", value_name = "NAME")]
    pub backend: Option<String>,
    /// The project directory; faas.toml is looked up here and in its parents.
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new function project.
    New(NewArgs),
    /// Build the project and serve it locally, rebuilding and reloading on every change.
    Dev(DevArgs),
    /// Invoke a function (a W3C trace context in the TRACEPARENT environment variable is propagated).
    Invoke(InvokeArgs),
    /// Build the project and package it for the selected backend (e.g. a Lambda `bootstrap` zip).
    Build(BuildArgs),
    /// Build, package and deploy the project to the selected backend.
    Deploy(DeployArgs),
    /// Remove a deployed function.
    Remove(NameArgs),
    /// List deployed functions.
    List,
    /// Show the log lines of a function's recent activations.
    Logs(LogsArgs),
    /// Show recent activations (invocations).
    Activations(ActivationsArgs),
    /// Show where each step of a composition runs: fused into its invocation, or invoked through
    /// the backend while it waits.
    Plan(PlanArgs),
    /// Run the conformance suite against a backend and print its capability matrix.
    Conformance(ConformanceArgs),
    /// Durable runs of compositions conducted by the project's gateway: list (the default), start,
    /// show, cancel.
    Runs(RunsArgs),
    /// The app's portable state, kept by the project's gateway (what `cx.state()` reads and
    /// writes): get, set, delete, list.
    State(StateArgs),
    /// Run the CloudEvents gateway: ingress at `POST /`, subscriptions, durable delivery to functions
    /// on any backend and to HTTP sinks, management API, `/metrics`.
    Gateway(GatewayArgs),
}

/// `faas gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Port on 127.0.0.1 (0 picks a free one). Default: `[gateway] port`, else 8090.
    #[arg(long)]
    pub port: Option<u16>,
    /// Directory of the embedded store. Default: `[gateway] data_dir`, else `.faas/gateway`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The event store: `embedded` (default) or `nats` (NATS JetStream, shared by replicas).
    #[arg(long, value_name = "KIND")]
    pub store: Option<String>,
    /// NATS URL for `--store nats` (e.g. nats://127.0.0.1:4222).
    #[arg(long, value_name = "URL")]
    pub nats_url: Option<String>,
}

/// `faas state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The app whose keys these are (default: `[app] name` of faas.toml).
    #[arg(long, global = true)]
    pub app: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: StateCommand,
}

/// The subcommands of `faas state`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Print a key's value (and, on stderr, its version).
    Get(StateKeyArgs),
    /// Write a key's value (from the argument, `--file`, or standard input with `--file -`).
    Set(StateSetArgs),
    /// Delete a key.
    Delete(StateDeleteArgs),
    /// List keys (by prefix), with their versions, sizes and expiry.
    List(StateListArgs),
}

/// A `faas state` command that takes one key.
#[derive(Debug, Args)]
pub struct StateKeyArgs {
    /// The key.
    pub key: String,
}

/// `faas state set`.
#[derive(Debug, Args)]
pub struct StateSetArgs {
    /// The key.
    pub key: String,
    /// The value (text).
    #[arg(conflicts_with = "file", required_unless_present = "file")]
    pub value: Option<String>,
    /// Read the value from a file (`-` for standard input).
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Write only if the key is at this version (what a read returned); otherwise fail with
    /// `conflict`, naming the current version.
    #[arg(long, value_name = "VERSION", conflicts_with = "if_absent")]
    pub if_version: Option<u64>,
    /// Write only if the key does not exist.
    #[arg(long)]
    pub if_absent: bool,
    /// The key expires after this long (`30s`, `10m`, `1h`, at most a year).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
}

/// `faas state delete`.
#[derive(Debug, Args)]
pub struct StateDeleteArgs {
    /// The key.
    pub key: String,
    /// Delete only if the key is at this version.
    #[arg(long, value_name = "VERSION")]
    pub if_version: Option<u64>,
}

/// `faas state list`.
#[derive(Debug, Args)]
pub struct StateListArgs {
    /// Only keys starting with this.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Show at most this many.
    #[arg(long, short = 'n', default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,
}

/// `faas runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// What to do (default: `list`).
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
}

/// The subcommands of `faas runs`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, the most recently started first.
    List(RunsListArgs),
    /// Start a run of a composition registered with the gateway (`faas deploy` registers an app's
    /// compositions while the gateway runs) and follow it to its end.
    Start(RunsStartArgs),
    /// Show one run: its status, current step, the last steps, its result or error.
    Show(RunsShowArgs),
    /// Cancel a running run: no step starts after this.
    Cancel(RunIdArgs),
}

/// `faas runs list`.
#[derive(Debug, Default, Args)]
pub struct RunsListArgs {
    /// Only the runs of this composition.
    #[arg(long)]
    pub composition: Option<String>,
    /// Only runs with this status: running, succeeded, failed or cancelled.
    #[arg(long, value_parser = ["running", "succeeded", "failed", "cancelled"])]
    pub status: Option<String>,
    /// Show at most this many.
    #[arg(long, short = 'n', default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
}

/// `faas runs start`.
#[derive(Debug, Args)]
pub struct RunsStartArgs {
    /// The composition.
    pub name: String,
    /// The run's input, JSON.
    #[arg(long, short = 'd', conflicts_with = "file")]
    pub data: Option<String>,
    /// Read the input (JSON) from a file (`-` for standard input).
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The run's id (default: a fresh one). Starting a run with an id already used fails.
    #[arg(long)]
    pub id: Option<String>,
    /// Print the run's id and return at once instead of following it to its end.
    #[arg(long)]
    pub no_wait: bool,
}

/// `faas runs show`.
#[derive(Debug, Args)]
pub struct RunsShowArgs {
    /// The run's id.
    pub id: String,
    /// Follow the run until it ends.
    #[arg(long)]
    pub wait: bool,
}

/// A command that takes a run id.
#[derive(Debug, Args)]
pub struct RunIdArgs {
    /// The run's id.
    pub id: String,
}

/// `faas new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// Project, package and function name: letters, digits, `-` and `_`, starting with a letter.
    pub name: String,
    /// Create the project directory inside DIR instead of the current directory.
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// The `faas` crate to depend on (default: the checkout this command was built from).
    #[arg(long, value_name = "DIR")]
    pub faas_path: Option<PathBuf>,
}

/// `faas dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// The project directory (overrides --dir).
    pub project: Option<PathBuf>,
    /// Port on 127.0.0.1 (0 picks a free one). Default: the profile's `port`, else 8080.
    #[arg(long)]
    pub port: Option<u16>,
    /// Do not watch the sources for changes.
    #[arg(long)]
    pub no_watch: bool,
    /// Build in release mode.
    #[arg(long)]
    pub release: bool,
    /// Run the app inside a local emulator of this platform instead of the local backend. With no
    /// project in the directory, starts an empty emulator that any SDK can deploy to.
    #[arg(long, value_name = "PLATFORM", value_parser = emulator_name)]
    pub emulate: Option<String>,
    /// Run every composition unfused: each step, the app's own functions included, is invoked
    /// as a function of its own while the composition waits (`FAAS_FUSE=off`).
    #[arg(long)]
    pub no_fuse: bool,
}

/// `faas invoke`.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The function.
    pub name: String,
    /// The request body (content type application/json unless --content-type says otherwise).
    #[arg(long, short = 'd', conflicts_with = "file")]
    pub data: Option<String>,
    /// Read the request body from a file (`-` for standard input).
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The request content type. Default: application/json for --data and `.json` files,
    /// else application/octet-stream.
    #[arg(long, value_name = "CT")]
    pub content_type: Option<String>,
    /// Queue the invocation and print its activation id instead of waiting for the result.
    #[arg(long = "async", conflicts_with = "dry_run")]
    pub run_async: bool,
    /// Only check that the function exists and would accept the request.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the invocation's log lines to stderr.
    #[arg(long)]
    pub logs: bool,
}

/// `faas deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Build in release mode.
    #[arg(long)]
    pub release: bool,
    /// Deploy every composition unfused: each step, the app's own functions included, is
    /// invoked through the backend while the composition waits (`FAAS_FUSE=off`).
    #[arg(long)]
    pub no_fuse: bool,
}

/// `faas plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The composition.
    pub name: String,
    /// Show the plan as `faas deploy --no-fuse` would deploy it: every step invoked.
    #[arg(long)]
    pub no_fuse: bool,
}

/// `faas build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Build in release mode.
    #[arg(long)]
    pub release: bool,
    /// CPU architecture for backends that take one: `x86_64` or `arm64` (default: the profile's
    /// `arch`, else x86_64).
    #[arg(long)]
    pub arch: Option<String>,
}

/// Checks a `--emulate` value against the emulators of the list of backends.
fn emulator_name(value: &str) -> Result<String, String> {
    let names = crate::backend::list().emulator_names();
    if names.contains(&value) {
        Ok(value.to_string())
    } else {
        Err(format!("emulators in this build: {}", if names.is_empty() { "none".into() } else { names.join(", ") }))
    }
}

/// A command that takes a function name.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The function.
    pub name: String,
}

/// `faas logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The function.
    pub name: String,
    /// Show at most this many activations, newest first.
    #[arg(long, short = 'n', default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
}

/// `faas activations`.
#[derive(Debug, Args)]
pub struct ActivationsArgs {
    /// Only this function's activations.
    #[arg(long)]
    pub function: Option<String>,
    /// Show at most this many, newest first.
    #[arg(long, short = 'n', default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
}

/// `faas conformance`.
#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// Where to write matrix.json and matrix.md.
    #[arg(long, default_value = "target/conformance", value_name = "DIR")]
    pub out: PathBuf,
}
