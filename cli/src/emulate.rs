//! `faas dev --emulate lambda`: the app inside a local AWS Lambda. The emulator serves the Lambda
//! API that the AWS SDKs and `aws lambda` call; the project (if there is one) is built, packaged
//! as a `bootstrap` zip and deployed to it through the same runner `faas deploy` uses, and
//! redeployed on every change. With no project in the directory, the emulator starts empty and
//! anything can be deployed to it.

use std::net::SocketAddr;
use std::sync::Arc;

use faas_api::{AppSpec, BackendProfile, Runner};
use faas_emulator_lambda::{Emulator, EmulatorOptions};
use faas_runner_lambda::deploy::LambdaRunner;
use serde_json::json;

use crate::args::{DevArgs, GlobalArgs};
use crate::dev::{shutdown_signal, watch_sources, DEBOUNCE};
use crate::output::{render_failure, CliResult, Output};
use crate::progress::Spinner;
use crate::project::{self, Project};

/// The emulator's default port (the address the Lambda Runtime Interface Emulator documents).
pub const DEFAULT_LAMBDA_PORT: u16 = 9001;

/// The profile `faas dev --emulate lambda` deploys through.
pub fn emulator_profile(url: &str) -> BackendProfile {
    BackendProfile::new("emulator", "lambda").with("region", "us-east-1").with("endpoint", url)
}

/// Runs the Lambda emulator, with the project deployed to it, until Ctrl-C or SIGTERM.
pub async fn lambda(global: &GlobalArgs, args: DevArgs, out: Output) -> CliResult {
    let dir = args.project.clone().unwrap_or_else(|| global.dir.clone());
    let port = args.port.unwrap_or(DEFAULT_LAMBDA_PORT);
    let has_project = dir.join("Cargo.toml").is_file() || faas_api::Config::find(&dir).is_some();
    let project = if has_project { Some(project::load(&dir)?) } else { None };
    let options = EmulatorOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        state_dir: project.as_ref().map(|p| p.state_root().join("lambda")),
        echo_logs: true,
        ..Default::default()
    };
    let emulator = faas_emulator_lambda::start(options).await?;
    let url = emulator.url();
    out.json_line(json!({"event": "ready", "emulate": "lambda", "url": url}));
    let Some(project) = project else {
        out.note(format!("faas dev: an empty local AWS Lambda at {url} (no project in {})", dir.display()));
        out.note(format!("  deploy with any AWS SDK or CLI:  aws --endpoint-url {url} lambda create-function ..."));
        out.note("  (any region and credentials are accepted; runtimes provided.al2023 / provided.al2)");
        let why = shutdown_signal().await;
        out.note(format!("\n{why}: stopping"));
        emulator.shutdown().await;
        return Ok(());
    };
    let result = serve_project(&emulator, project, args.release, args.no_watch, &out).await;
    emulator.shutdown().await;
    result
}

async fn serve_project(
    emulator: &Emulator,
    project: Project,
    release: bool,
    no_watch: bool,
    out: &Output,
) -> CliResult {
    let url = emulator.url();
    let profile = emulator_profile(&url);
    let runner: Arc<dyn Runner> = LambdaRunner::from_profile(&profile).await?;
    let spinner = Spinner::new(out.is_json());
    out.note(format!("building `{}` in {}", project.config.app.name, project.root.display()));
    let app = deploy(&runner, &url, &project, release, &spinner).await?;
    spinner.finish();
    let names: Vec<&str> = app.functions.iter().map(|f| f.name.as_str()).collect();
    out.note(format!("faas dev: `{}` runs in a local AWS Lambda at {url}", app.app));
    for n in &names {
        out.note(format!(
            "  {n:<16} aws --endpoint-url {url} lambda invoke --function-name {n} --payload '{{}}' out.json"
        ));
    }
    out.note("  or add a profile to faas.toml and use `faas invoke NAME --backend emulator`:");
    out.note(format!(
        "    [backends.emulator]\n    kind = \"lambda\"\n    region = \"us-east-1\"\n    endpoint = \"{url}\""
    ));
    let mut shutdown = std::pin::pin!(shutdown_signal());
    if no_watch {
        let why = shutdown.await;
        out.note(format!("\n{why}: stopping"));
        return Ok(());
    }
    out.note("watching src/, Cargo.toml and faas.toml; Ctrl-C to stop");
    let (_watcher, mut rx) = watch_sources(&project.root)?;
    let mut project = project;
    loop {
        tokio::select! {
            why = &mut shutdown => {
                out.note(format!("\n{why}: stopping"));
                return Ok(());
            }
            changed = rx.recv() => {
                if changed.is_none() {
                    return Ok(());
                }
                while let Ok(Some(_)) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
                out.note("changed; rebuilding and redeploying");
                if let Some(path) = faas_api::Config::find(&project.root) {
                    match faas_api::Config::load(&path) {
                        Ok(c) => project.config = c,
                        Err(e) => {
                            out.note(format!("error: {e}; still serving the last good build"));
                            continue;
                        }
                    }
                }
                let spinner = Spinner::new(out.is_json());
                let result = deploy(&runner, &url, &project, release, &spinner).await;
                spinner.finish();
                match result {
                    Ok(app) => {
                        out.note("reloaded");
                        out.json_line(json!({"event": "reloaded", "functions": app.functions.iter().map(|f| &f.name).collect::<Vec<_>>()}));
                    }
                    Err(failure) => {
                        out.note(render_failure(&failure));
                        out.note("build failed; still serving the last good build");
                    }
                }
            }
        }
    }
}

async fn deploy(
    runner: &Arc<dyn Runner>,
    url: &str,
    project: &Project,
    release: bool,
    spinner: &Spinner,
) -> CliResult<AppSpec> {
    let profile = emulator_profile(url);
    let app = crate::backend::build_for_profile(project, &profile, None, release, spinner).await?;
    let package = runner.package(&app, spinner).await?;
    runner.deploy(&package, spinner).await?;
    Ok(app)
}
