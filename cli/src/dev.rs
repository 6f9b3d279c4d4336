//! `faas dev`: build the project, serve it on 127.0.0.1 through the local backend in process
//! mode, and rebuild and redeploy whenever the sources change (hot reload).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use faas_api::{AppSpec, BackendProfile, Config, DeployReport, Error, HandlerKind, Runner, Trigger};
use faas_front::{Front, FrontOptions};
use faas_runner_local::{LocalOptions, LocalRunner, Mode};
use notify::{EventKind, RecursiveMode, Watcher};
use serde_json::json;
use tokio::sync::mpsc;

use crate::args::{DevArgs, GlobalArgs};
use crate::backend::{recorded_server, RecordedServer};
use crate::output::{render_failure, CliResult, Failure, Output};
use crate::progress::Spinner;
use crate::project::{self, DevInfo, Project};

/// Default port of `faas dev`.
pub const DEFAULT_PORT: u16 = 8080;

/// How long the sources must be quiet before a rebuild starts.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// The profile `faas dev` serves: the one named by `--backend`/`FAAS_BACKEND` (which must be of
/// kind `local`), else `[app] default_backend` when it is local, else the first local profile,
/// else the implicit `local` one.
///
/// ```
/// let c = faas_api::Config::parse("[app]\nname='a'\n[backends.prod]\nkind='lambda'\n[backends.dev]\nkind='local'\n", "faas.toml").unwrap();
/// assert_eq!(faas_cli::dev::dev_profile(&c, None).unwrap().name, "dev");
/// assert!(faas_cli::dev::dev_profile(&c, Some("prod")).unwrap_err().message().contains("`lambda`"));
/// ```
pub fn dev_profile(config: &Config, flag: Option<&str>) -> Result<BackendProfile, Error> {
    if let Some(name) = flag {
        let p = config.select_backend_with(Some(name), None, &crate::backend::list().kinds())?;
        if p.kind != "local" {
            return Err(Error::bad_input(format!(
                "`faas dev` serves the local backend, but profile `{name}` has kind `{}`; deploy to it with `faas deploy --backend {name}`",
                p.kind
            )));
        }
        return Ok(p);
    }
    if let Some(p) =
        config.app.default_backend.as_ref().and_then(|d| config.backends.get(d)).filter(|p| p.kind == "local")
    {
        return Ok(p.clone());
    }
    Ok(config
        .backends
        .values()
        .find(|p| p.kind == "local")
        .cloned()
        .unwrap_or_else(|| BackendProfile::new("local", "local")))
}

/// Watches the project's `src/` (recursively), `Cargo.toml`, `faas.toml` and `build.rs`; each
/// relevant change sends the changed paths.
pub fn watch_sources(root: &Path) -> CliResult<(notify::RecommendedWatcher, mpsc::UnboundedReceiver<Vec<PathBuf>>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let filter_root = root.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res {
            if is_relevant(&filter_root, &event) {
                let _ = tx.send(event.paths);
            }
        }
    })
    .map_err(|e| Error::unavailable(format!("cannot watch the sources: {e}")))?;
    watcher
        .watch(root, RecursiveMode::NonRecursive)
        .map_err(|e| Error::unavailable(format!("cannot watch {}: {e}", root.display())))?;
    let src = root.join("src");
    if src.is_dir() {
        watcher
            .watch(&src, RecursiveMode::Recursive)
            .map_err(|e| Error::unavailable(format!("cannot watch {}: {e}", src.display())))?;
    }
    Ok((watcher, rx))
}

/// Runs `faas dev` until Ctrl-C or SIGTERM.
pub async fn dev(global: &GlobalArgs, args: DevArgs, out: Output) -> CliResult {
    if let Some(name) = args.emulate.clone() {
        return crate::emulate::emulate(&name, global, args, out).await;
    }
    let dir = args.project.clone().unwrap_or_else(|| global.dir.clone());
    let project = project::load(&dir)?;
    let profile = dev_profile(&project.config, global.backend.as_deref())?;
    let mut options = LocalOptions::from_profile(&profile)?;
    if options.mode == Mode::InProcess {
        out.note("note: `faas dev` runs the app binary as child processes; `mode = \"in-process\"` is ignored here");
        options.mode = Mode::Process;
    }
    options.state_dir = Some(match options.state_dir.take() {
        Some(p) if p.is_relative() => project.root.join(p),
        Some(p) => p,
        None => project.state_root().join("state"),
    });
    options.echo_logs = true;
    let port = match args.port {
        Some(p) => p,
        None => match profile.int("port")? {
            Some(p) => u16::try_from(p).map_err(|_| {
                Error::bad_input(format!(
                    "{}: key `backends.{}.port`: {p} is not a port number",
                    profile.origin, profile.name
                ))
            })?,
            None => DEFAULT_PORT,
        },
    };
    let token = profile.secret("token")?;
    let max_body = options.max_body;
    // Refuse before the (slow) build when this project's server is already up, or its port taken.
    let noted_stale = check_recorded_server(&project.root, None, out).await?;
    let port = ReservedPort::new(SocketAddr::from(([127, 0, 0, 1], port)))?;

    let spinner = Spinner::new(out.is_json());
    out.note(format!("building `{}` in {}", project.config.app.name, project.root.display()));
    let app = build(&project.root, &project.config, &profile, args.release, args.no_fuse, &spinner).await?;

    let runner = LocalRunner::new(options)?;
    runner.set_services_url(format!("http://{}", port.addr));
    // Another `faas dev` may have started while this one was building: check again just before
    // taking over dev.json.
    if let Err(failure) = check_recorded_server(&project.root, noted_stale, out).await {
        runner.shutdown().await;
        return Err(failure);
    }
    let front_options = FrontOptions { addr: port.addr, token, max_body };
    let mut server = Server {
        project,
        profile,
        runner,
        front: None,
        release: args.release,
        no_fuse: args.no_fuse,
        out,
        info_written: false,
    };
    let result = server.run(app, &spinner, args.no_watch, port, front_options).await;
    spinner.finish();
    server.stop().await;
    result
}

/// The port `faas dev` will serve on, held from before the build until the app is deployed: bound
/// (so no other server takes it, and port 0 becomes a real port the function processes can be
/// told) but not listening, so connections are refused rather than answered by a server that has
/// no functions yet. The front then binds the same address (both sockets set `SO_REUSEADDR`,
/// which Linux and macOS allow while neither listens) and the reservation is dropped.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let port = faas_cli::dev::ReservedPort::new("127.0.0.1:0".parse().unwrap()).unwrap();
/// assert_ne!(port.addr.port(), 0);
/// assert!(std::net::TcpStream::connect(port.addr).is_err(), "nothing accepts yet");
/// # });
/// ```
pub struct ReservedPort {
    /// The address, with the real port when port 0 was asked for.
    pub addr: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

impl ReservedPort {
    /// Binds `addr` without listening; a port in use is an error saying to choose another.
    pub fn new(addr: SocketAddr) -> CliResult<ReservedPort> {
        let bound = tokio::net::TcpSocket::new_v4().and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            Ok((s.local_addr()?, s))
        });
        match bound {
            Ok((addr, socket)) => Ok(ReservedPort { addr, _socket: socket }),
            Err(e) => {
                let why = match e.kind() {
                    std::io::ErrorKind::AddrInUse => "it is in use (another `faas dev`, or another server?)".into(),
                    _ => e.to_string(),
                };
                Err(Error::unavailable(format!("cannot serve on {addr}: {why}; choose another port with `--port`"))
                    .into())
            }
        }
    }
}

/// The error `faas dev` gives when the project's `.faas/dev.json` names a live server.
///
/// ```
/// let info = faas_cli::project::DevInfo { url: "http://127.0.0.1:8080".into(), token: "t".into(), pid: 42 };
/// let f = faas_cli::dev::already_running(&info);
/// assert!(f.error.message().starts_with("a `faas dev` server for this project is already running (pid 42, http://127.0.0.1:8080;"));
/// assert!(f.hint.unwrap().contains("kill 42"));
/// ```
pub fn already_running(info: &DevInfo) -> Failure {
    Failure::from(
        Error::bad_input(format!(
            "a `faas dev` server for this project is already running (pid {}, {}; recorded in .faas/dev.json); \
             a second one would fight it over that file, so none was started",
            info.pid, info.url
        ))
        .with_type("DevServerRunning"),
    )
    .with_hint(format!(
        "use the running server (`faas invoke`, `faas list`, ...), or stop it first (Ctrl-C in its terminal, or `kill {}`)",
        info.pid
    ))
}

/// Refuses when `.faas/dev.json` names a live server; notes (once: `noted` is the pid already
/// reported) that a stale one will be replaced. Returns the pid of the stale record, if any.
async fn check_recorded_server(root: &Path, noted: Option<u32>, out: Output) -> CliResult<Option<u32>> {
    match recorded_server(root).await {
        RecordedServer::None => Ok(noted),
        RecordedServer::Running(info) => Err(already_running(&info)),
        RecordedServer::Gone(info, why) => {
            if noted != Some(info.pid) {
                out.note(format!(
                    "replacing .faas/dev.json: the `faas dev` server it records (pid {}, {}) is not running ({why})",
                    info.pid, info.url
                ));
                out.json_line(json!({"event": "stale_dev_info", "pid": info.pid, "url": info.url, "reason": why}));
            }
            Ok(Some(info.pid))
        }
    }
}

struct Server {
    project: Project,
    /// The local profile served (its `state` key reaches every function, see `faas_api::state::bind`).
    profile: BackendProfile,
    runner: Arc<LocalRunner>,
    front: Option<Front>,
    release: bool,
    /// `--no-fuse`: every composition deployed unfused.
    no_fuse: bool,
    out: Output,
    info_written: bool,
}

impl Server {
    async fn run(
        &mut self,
        app: AppSpec,
        spinner: &Spinner,
        no_watch: bool,
        port: ReservedPort,
        front_options: FrontOptions,
    ) -> CliResult {
        let report = deploy(&self.runner, &app, spinner).await?;
        // Only now, with the app deployed, does the port accept connections: a client that waits
        // for it (a script, an editor) never meets a server that does not know the functions yet.
        let shutdown = shutdown_signal();
        let front = faas_front::bind(self.runner.clone(), front_options).await?;
        drop(port);
        let info = DevInfo { url: front.url(), token: front.token().to_string(), pid: std::process::id() };
        self.front = Some(front);
        let resumed = self.runner.resume_async();
        let info_path = project::write_dev_info(&self.project.root, &info)?;
        self.info_written = true;
        spinner.finish();
        self.banner(&app, &info, &info_path, &report, resumed, no_watch);

        let mut shutdown = std::pin::pin!(shutdown);
        if no_watch {
            let why = shutdown.await;
            self.out.note(format!("\n{why}: stopping"));
            return Ok(());
        }
        let (_watcher, mut rx) = watch_sources(&self.project.root)?;

        loop {
            tokio::select! {
                why = &mut shutdown => {
                    self.out.note(format!("\n{why}: stopping"));
                    self.out.json_line(json!({"event": "stopping", "reason": why}));
                    return Ok(());
                }
                changed = rx.recv() => {
                    let Some(mut paths) = changed else { return Ok(()) };
                    // Debounce: wait until the sources have been quiet for a while.
                    while let Ok(Some(more)) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                        paths.extend(more);
                    }
                    paths.sort();
                    paths.dedup();
                    let names: Vec<String> = paths.iter().map(|p| p.strip_prefix(&self.project.root).unwrap_or(p).display().to_string()).collect();
                    self.out.note(format!("changed: {}; rebuilding", names.join(", ")));
                    self.out.json_line(json!({"event": "rebuilding", "changed": names}));
                    let spinner = Spinner::new(self.out.is_json());
                    tokio::select! {
                        why = &mut shutdown => {
                            self.out.note(format!("\n{why}: stopping"));
                            return Ok(());
                        }
                        result = self.reload(&spinner) => {
                            spinner.finish();
                            match result {
                                Ok((app, report)) => {
                                    self.out.note(format!("reloaded: {}", summary(&report)));
                                    self.out.json_line(json!({"event": "reloaded", "functions": names_of(&app), "report": report}));
                                }
                                Err(failure) => {
                                    self.out.note(render_failure(&failure));
                                    self.out.note("build failed; still serving the last good build");
                                    self.out.json_line(json!({"event": "build_failed", "error": crate::output::failure_json(&failure)["error"]}));
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Rebuilds with the current `faas.toml` and redeploys; functions gone from the app are removed.
    async fn reload(&mut self, spinner: &Spinner) -> CliResult<(AppSpec, DeployReport)> {
        let config = match Config::find(&self.project.root) {
            Some(path) => Config::load(&path)?,
            None => Config::default_for(self.project.config.app.name.clone()),
        };
        let app = build(&self.project.root, &config, &self.profile, self.release, self.no_fuse, spinner).await?;
        let report = deploy(&self.runner, &app, spinner).await?;
        for f in self.runner.list().await? {
            if !app.functions.iter().any(|s| s.name == f.spec.name) {
                self.runner.remove(&f.spec.name).await?;
                self.out.note(format!("removed `{}`: the app no longer defines it", f.spec.name));
            }
        }
        self.project.config = config;
        Ok((app, report))
    }

    fn banner(
        &self,
        app: &AppSpec,
        info: &DevInfo,
        info_path: &Path,
        report: &DeployReport,
        resumed: usize,
        no_watch: bool,
    ) {
        let url = &info.url;
        let functions: Vec<serde_json::Value> = app
            .functions
            .iter()
            .map(|f| {
                let routes: Vec<String> = f
                    .triggers
                    .iter()
                    .filter_map(|t| match t {
                        Trigger::Http { method, route } => {
                            Some(format!("{} {url}{route}", method.as_deref().unwrap_or("*")))
                        }
                        Trigger::Event { .. } => None,
                    })
                    .collect();
                json!({"name": f.name, "url": format!("{url}/functions/{}", f.name), "routes": routes})
            })
            .collect();
        self.out.json_line(json!({
            "event": "ready",
            "url": url,
            "app": app.app,
            "pid": info.pid,
            "devInfo": info_path,
            "functions": functions,
            "report": report,
        }));
        if self.out.is_json() {
            return;
        }
        let out = &self.out;
        out.say(format!("faas dev: serving `{}` on {url} (local backend, process mode)", app.app));
        for (f, j) in app.functions.iter().zip(&functions) {
            out.say(format!("  {:<16} POST {url}/functions/{}", f.name, f.name));
            for r in j["routes"].as_array().into_iter().flatten() {
                out.say(format!("  {:<16} {}", "", r.as_str().unwrap_or_default()));
            }
        }
        out.say(format!("  {:<16} POST {url}/events", "(CloudEvents)"));
        if let Some(f) = app.functions.first() {
            let (ct, data) = match f.handler {
                HandlerKind::Typed | HandlerKind::Composition => ("application/json", r#"{"name":"Ada"}"#),
                _ => ("text/plain", "hello"),
            };
            out.say("try:");
            out.say(format!("  curl -s -X POST {url}/functions/{} -H 'content-type: {ct}' -d '{data}'", f.name));
            out.say(format!("  faas invoke {} --data '{data}'", f.name));
        }
        if resumed > 0 {
            out.say(format!("resumed {resumed} queued asynchronous invocation(s) from the last run"));
        }
        out.say(format!("management token: in {}", info_path.display()));
        if no_watch {
            out.say("not watching for changes; Ctrl-C to stop");
        } else {
            out.say("watching src/, Cargo.toml and faas.toml; Ctrl-C to stop");
        }
    }

    async fn stop(&mut self) {
        if self.info_written {
            project::remove_dev_info(&self.project.root, std::process::id());
        }
        if let Some(front) = self.front.take() {
            front.shutdown().await;
        }
        self.runner.shutdown().await;
        self.out.note("stopped");
        self.out.json_line(json!({"event": "stopped"}));
    }
}

async fn build(
    root: &Path,
    config: &Config,
    profile: &BackendProfile,
    release: bool,
    no_fuse: bool,
    spinner: &Spinner,
) -> CliResult<AppSpec> {
    faas_api::Progress::step(spinner, "building");
    let mut app = faas_packaging::build::build_app(root, config, release, spinner).await.map_err(Failure::from)?;
    if no_fuse {
        faas_composition::fused::unfuse(&mut app.functions);
    }
    faas_api::state::bind(&mut app, profile, &|k| std::env::var(k).ok())?;
    Ok(app)
}

async fn deploy(runner: &Arc<LocalRunner>, app: &AppSpec, spinner: &Spinner) -> CliResult<DeployReport> {
    let package = runner.package(app, spinner).await?;
    Ok(runner.deploy(&package, spinner).await?)
}

fn names_of(app: &AppSpec) -> Vec<&str> {
    app.functions.iter().map(|f| f.name.as_str()).collect()
}

fn summary(report: &DeployReport) -> String {
    let mut parts = vec![];
    for (what, names) in [("created", &report.created), ("updated", &report.updated), ("unchanged", &report.unchanged)]
    {
        if !names.is_empty() {
            parts.push(format!("{what} {}", names.join(", ")));
        }
    }
    if parts.is_empty() {
        "no functions".into()
    } else {
        parts.join("; ")
    }
}

/// Whether a file-system event should trigger a rebuild: a change (not a read) to a file under
/// `src/` or to `Cargo.toml`, `faas.toml` or `build.rs` at the root; editor swap and backup files
/// are ignored.
pub fn is_relevant(root: &Path, event: &notify::Event) -> bool {
    if matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
        return false;
    }
    event.paths.iter().any(|p| relevant_path(root, p))
}

fn relevant_path(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else { return false };
    let Some(name) = rel.file_name().and_then(|n| n.to_str()) else { return false };
    if name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp") || name.ends_with(".swx") {
        return false;
    }
    let mut parts = rel.components();
    match (parts.next(), parts.next()) {
        (Some(first), None) => matches!(name, "Cargo.toml" | "faas.toml" | "build.rs") && first.as_os_str() == name,
        (Some(first), Some(_)) => first.as_os_str() == "src",
        _ => false,
    }
}

/// Catches Ctrl-C (`"interrupted"`) and SIGTERM (`"terminated"`) from this call on, and resolves
/// on the first; take it before announcing that a server is ready
/// ([`faas_gateway::server::stop_signal`]).
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = &'static str> + Send + 'static {
    faas_gateway::server::stop_signal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, ModifyKind};
    use std::path::PathBuf;

    fn event(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_source_and_manifest_changes_trigger_a_rebuild() {
        let root = Path::new("/p");
        let modify = EventKind::Modify(ModifyKind::Any);
        assert!(is_relevant(root, &event(modify, "/p/src/main.rs")));
        assert!(is_relevant(root, &event(modify, "/p/src/nested/mod.rs")));
        assert!(is_relevant(root, &event(EventKind::Create(CreateKind::File), "/p/faas.toml")));
        assert!(is_relevant(root, &event(modify, "/p/Cargo.toml")));
        assert!(!is_relevant(root, &event(modify, "/p/Cargo.lock")));
        assert!(!is_relevant(root, &event(modify, "/p/target/debug/app")));
        assert!(!is_relevant(root, &event(modify, "/p/.faas/dev.json")));
        assert!(!is_relevant(root, &event(modify, "/p/src/.main.rs.swp")));
        assert!(!is_relevant(root, &event(modify, "/p/src/main.rs~")));
        assert!(!is_relevant(root, &event(EventKind::Access(AccessKind::Any), "/p/src/main.rs")));
        assert!(!is_relevant(root, &event(modify, "/elsewhere/src/main.rs")));
    }
}
