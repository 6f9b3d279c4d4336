//! Runner selection: the list of backends this `faas` runs with ([`install`], [`list`]), and how
//! a command gets from `--backend NAME` to a runner, a build and a hint.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use faas_api::backend::{BackendEnv, Backends, BuildRequest};
use faas_api::{BackendProfile, Config, Error, ErrorKind, Registry, Runner};
use faas_front::client::FrontClient;

use crate::output::{CliResult, Failure};
use crate::project::{pid_alive, read_dev_info, DevInfo, Project};

pub use faas_api::backend::not_built;
pub use faas_front::backend::{dev_server_not_running, DEV_SERVER_NOT_RUNNING};
pub use faas_front::target::LocalTarget;
/// Where `faas` looks for a dev server when nothing says otherwise.
pub use faas_front::target::DEFAULT_DEV_URL;

static BACKENDS: OnceLock<Backends> = OnceLock::new();

/// Sets the backends this process's commands use (once, before the first command; later calls
/// are ignored). [`crate::main_with`] calls it with the list it is given.
pub fn install(backends: Backends) {
    let _ = BACKENDS.set(backends);
}

/// The backends the commands use: those [`install`]ed, else every backend of this workspace
/// ([`faas_backends::all`]).
///
/// ```
/// let kinds = faas_cli::backend::list().kinds();
/// assert!(kinds.contains(&"local") && kinds.contains(&"lambda"), "{kinds:?}");
/// ```
pub fn list() -> &'static Backends {
    BACKENDS.get_or_init(faas_backends::all)
}

/// The runners of this build, by kind, for a project at `project_root`: `local` connects to the
/// project's `faas dev` server (see [`local_target`]); a planned kind (one a build lists but does
/// not include) answers with a plain "not available in this build yet" error; any other kind is
/// refused, listing the kinds.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let registry = faas_cli::backend::registry(std::path::Path::new("."));
/// let err = registry.create(faas_api::BackendProfile::new("prod", "azure")).await.err().unwrap();
/// assert!(err.message().contains("key `backends.prod.subscription`: required"), "{}", err.message());
/// let err = registry.create(faas_api::BackendProfile::new("x", "nimbus")).await.err().unwrap();
/// assert!(err.message().contains("unknown backend kind `nimbus`"));
/// # });
/// ```
pub fn registry(project_root: &Path) -> Registry {
    list().registry(env_for(project_root))
}

fn env_for(project_root: &Path) -> BackendEnv {
    BackendEnv { project_root: Some(project_root.to_path_buf()) }
}

/// Resolves a `local` profile to a server ([`faas_front::target::local_target`]), with the project's
/// `.faas/dev.json` as the server it knows of: the profile's `endpoint`, else its `port` on
/// 127.0.0.1, else the URL in `dev.json`, else [`DEFAULT_DEV_URL`]. The token: the profile's `token`
/// (a secret reference), else `FAAS_TOKEN`, else the token in `dev.json` when that file describes
/// the same server.
pub fn local_target(project_root: &Path, profile: &BackendProfile) -> Result<LocalTarget, Error> {
    let known = read_dev_info(project_root).map(|i| faas_front::target::KnownServer { url: i.url, token: i.token });
    faas_front::target::local_target(profile, known)
}

/// What the project's `.faas/dev.json` says about a `faas dev` server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedServer {
    /// There is no (readable) `dev.json`.
    None,
    /// The recorded process is alive and its server answers with the recorded token.
    Running(DevInfo),
    /// The file is stale: the recorded server is gone (the reason says how we know).
    Gone(DevInfo, String),
}

/// Checks the server `.faas/dev.json` under `project_root` records: is its pid alive (and not this
/// process), and does its URL answer `GET /_faas/capabilities` with its token?
pub async fn recorded_server(project_root: &Path) -> RecordedServer {
    let Some(info) = read_dev_info(project_root) else { return RecordedServer::None };
    if info.pid == std::process::id() {
        let why = format!("pid {} is now this process", info.pid);
        return RecordedServer::Gone(info, why);
    }
    if !pid_alive(info.pid) {
        let why = format!("no process {} exists", info.pid);
        return RecordedServer::Gone(info, why);
    }
    match FrontClient::connect(&info.url, Some(info.token.clone())).await {
        Ok(_) => RecordedServer::Running(info),
        Err(e) => {
            let why = format!("process {} does not answer at {}: {}", info.pid, info.url, e.message());
            RecordedServer::Gone(info, why)
        }
    }
}

/// The selected profile and a runner for it; an error comes with its backend's hint.
pub async fn open(project: &Project, flag: Option<&str>) -> CliResult<(BackendProfile, Arc<dyn Runner>)> {
    let profile = select(&project.config, flag)?;
    let backend = list().for_profile(&profile)?;
    let runner = backend.runner(&profile, &env_for(&project.root)).await.map_err(|e| with_hint(&profile, e))?;
    Ok((profile, runner))
}

/// Builds the project for `profile`'s backend (its targets: for `lambda`, the profile's or
/// `arch_flag`'s architecture and libc, cross-compiling when that is not this machine).
pub async fn build_for_profile(
    project: &Project,
    profile: &BackendProfile,
    arch_flag: Option<&str>,
    release: bool,
    progress: &dyn faas_api::Progress,
) -> CliResult<faas_api::AppSpec> {
    let backend = list().for_profile(profile)?;
    let request = BuildRequest { root: &project.root, config: &project.config, profile, arch: arch_flag, release };
    backend.build(&request, progress).await.map_err(|e| with_hint(profile, e))
}

/// [`build_for_profile`] for a deployment: the profile's `state` key then reaches every
/// function's environment, whatever the backend ([`faas_api::state::bind`]).
pub async fn build_to_deploy(
    project: &Project,
    profile: &BackendProfile,
    release: bool,
    progress: &dyn faas_api::Progress,
) -> CliResult<faas_api::AppSpec> {
    let mut app = build_for_profile(project, profile, None, release, progress).await?;
    faas_api::state::bind(&mut app, profile, &|k| std::env::var(k).ok())?;
    Ok(app)
}

/// Selects the backend profile ([`Backends::select`]: [`Config::select_backend`]'s precedence;
/// a backend kind named where no profile of that name exists, `--backend lambda` in a project
/// without `[backends.lambda]`, is that kind with the platform's usual defaults; a planned kind
/// that is not in this build is refused).
///
/// ```
/// let none = faas_api::Config::default_for("app");
/// let p = faas_cli::backend::select(&none, Some("lambda")).unwrap();
/// assert_eq!((p.name.as_str(), p.kind.as_str()), ("lambda", "lambda"));
/// assert!(p.is_implicit());
/// let az = faas_cli::backend::select(&none, Some("azure")).unwrap();
/// assert_eq!((az.kind.as_str(), az.is_implicit()), ("azure", true));
/// let f = faas_cli::backend::select(&none, Some("nimbus")).unwrap_err();
/// assert!(f.error.message().contains("unknown backend profile `nimbus`"), "{}", f.error.message());
/// ```
pub fn select(config: &Config, flag: Option<&str>) -> CliResult<BackendProfile> {
    Ok(list().select(config, flag, &|name| std::env::var(name).ok())?)
}

/// Adds the hint a user needs for an error from `profile`'s backend: the backend's own
/// ([`faas_api::backend::Backend::hint`]), else a generic one.
pub fn with_hint(profile: &BackendProfile, error: Error) -> Failure {
    let hint = list().for_profile(profile).ok().and_then(|b| b.hint(profile, &error)).or_else(|| {
        (error.kind() == ErrorKind::NotFound).then(|| "`faas list` shows the deployed functions".to_string())
    });
    Failure { error, hint }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::{write_dev_info, DevInfo};

    #[test]
    fn local_target_precedence_is_endpoint_then_port_then_dev_json_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let plain = BackendProfile::new("dev", "local");
        assert_eq!(local_target(dir.path(), &plain).unwrap().url, DEFAULT_DEV_URL);

        write_dev_info(dir.path(), &DevInfo { url: "http://127.0.0.1:4000".into(), token: "tok".into(), pid: 1 })
            .unwrap();
        let t = local_target(dir.path(), &plain).unwrap();
        assert_eq!((t.url.as_str(), t.source), ("http://127.0.0.1:4000", "dev.json"));
        if std::env::var("FAAS_TOKEN").is_err() {
            assert_eq!(t.token.as_deref(), Some("tok"));
        }

        let t = local_target(dir.path(), &plain.clone().with("port", 4100)).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:4100");
        if std::env::var("FAAS_TOKEN").is_err() {
            assert_eq!(t.token, None, "dev.json's token belongs to another server");
        }

        let t = local_target(dir.path(), &plain.clone().with("endpoint", "http://127.0.0.1:4200/")).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:4200");
    }

    #[test]
    fn bad_local_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = local_target(dir.path(), &BackendProfile::new("dev", "local").with("port", 70000)).unwrap_err();
        assert!(err.message().contains("key `backends.dev.port`"), "{}", err.message());
        let err =
            local_target(dir.path(), &BackendProfile::new("dev", "local").with("endpoint", "ftp://x")).unwrap_err();
        assert!(err.message().contains("not an http:// URL"), "{}", err.message());
        let err = local_target(dir.path(), &BackendProfile::new("dev", "local").with("colour", "blue")).unwrap_err();
        assert!(err.message().contains("key `backends.dev.colour`"), "{}", err.message());
    }
}
