//! `faas dev --emulate NAME`: the app inside a local stand-in for a platform (an emulator from the
//! list of backends, e.g. `lambda`). The emulator serves the platform's API that its own SDKs and
//! CLI call; the project (if there is one) is built and deployed to it through the same runner
//! `faas deploy` uses, and redeployed on every change. With no project in the directory, the
//! emulator starts empty and anything can be deployed to it.

use std::net::SocketAddr;
use std::sync::Arc;

use faas_api::backend::{Backend, EmulatorOptions, RunningEmulator};
use faas_api::{AppSpec, BackendProfile, Runner};
use serde_json::json;

use crate::args::{DevArgs, GlobalArgs};
use crate::dev::{shutdown_signal, watch_sources, DEBOUNCE};
use crate::output::{render_failure, CliResult, Output};
use crate::progress::Spinner;
use crate::project::{self, Project};

/// Runs the emulator `name`, with the project deployed to it, until Ctrl-C or SIGTERM.
pub async fn emulate(name: &str, global: &GlobalArgs, args: DevArgs, out: Output) -> CliResult {
    let (backend, emulator) = crate::backend::list().emulator(name)?;
    let dir = args.project.clone().unwrap_or_else(|| global.dir.clone());
    let port = args.port.unwrap_or(emulator.default_port());
    let has_project = dir.join("Cargo.toml").is_file() || faas_api::Config::find(&dir).is_some();
    let project = if has_project { Some(project::load(&dir)?) } else { None };
    let options = EmulatorOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        state_dir: project.as_ref().map(|p| p.state_root().join(name)),
        echo_logs: true,
    };
    let shutdown = shutdown_signal();
    let running = emulator.start(options).await?;
    let url = running.url();
    out.json_line(json!({"event": "ready", "emulate": name, "url": url}));
    let Some(project) = project else {
        let mut banner = running.empty_banner().into_iter();
        if let Some(first) = banner.next() {
            out.note(format!("faas dev: {first} (no project in {})", dir.display()));
        }
        for line in banner {
            out.note(line);
        }
        let why = shutdown.await;
        out.note(format!("\n{why}: stopping"));
        running.shutdown().await;
        return Ok(());
    };
    let platform = emulator.platform().to_string();
    let result = serve_project(backend.as_ref(), running.as_ref(), &platform, project, &args, shutdown, &out).await;
    running.shutdown().await;
    result
}

/// The lines of a `faas.toml` profile table.
fn profile_toml(profile: &BackendProfile) -> String {
    let mut table = toml::Table::new();
    table.insert("kind".into(), toml::Value::String(profile.kind.clone()));
    table.extend(profile.settings.clone());
    let body = toml::to_string(&table).unwrap_or_default();
    let mut text = format!("    [backends.{}]", profile.name);
    for line in body.lines() {
        text.push_str("\n    ");
        text.push_str(line);
    }
    text
}

async fn serve_project(
    backend: &dyn Backend,
    emulator: &dyn RunningEmulator,
    platform: &str,
    project: Project,
    args: &DevArgs,
    shutdown: impl std::future::Future<Output = &'static str>,
    out: &Output,
) -> CliResult {
    let (release, no_watch, no_fuse) = (args.release, args.no_watch, args.no_fuse);
    let url = emulator.url();
    let profile = emulator.profile();
    let runner: Arc<dyn Runner> = backend.runner(&profile, &Default::default()).await?;
    let spinner = Spinner::new(out.is_json());
    out.note(format!("building `{}` in {}", project.config.app.name, project.root.display()));
    let app = deploy(&runner, &profile, &project, release, no_fuse, &spinner).await?;
    spinner.finish();
    let names: Vec<&str> = app.functions.iter().map(|f| f.name.as_str()).collect();
    out.json_line(json!({"event": "deployed", "app": app.app, "functions": names, "profile": profile.settings}));
    out.note(format!("faas dev: `{}` runs in a local {} at {url}", app.app, platform));
    for n in &names {
        out.note(format!("  {n:<16} {}", emulator.invoke_hint(n)));
    }
    out.note(format!("  or add a profile to faas.toml and use `faas invoke NAME --backend {}`:", profile.name));
    out.note(profile_toml(&profile));
    let mut shutdown = std::pin::pin!(shutdown);
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
                let result = deploy(&runner, &profile, &project, release, no_fuse, &spinner).await;
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
    profile: &BackendProfile,
    project: &Project,
    release: bool,
    no_fuse: bool,
    spinner: &Spinner,
) -> CliResult<AppSpec> {
    let mut app = crate::backend::build_to_deploy(project, profile, release, spinner).await?;
    if no_fuse {
        faas_composition::fused::unfuse(&mut app.functions);
    }
    let package = runner.package(&app, spinner).await?;
    runner.deploy(&package, spinner).await?;
    Ok(app)
}
