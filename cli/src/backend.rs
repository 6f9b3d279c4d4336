//! Runner selection: the registry of backend kinds this build of `faas` knows, and how the
//! `local` kind reaches a running `faas dev` server.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use faas_api::{BackendProfile, Config, Error, ErrorKind, Registry, Runner};
use faas_front::client::FrontClient;

use crate::output::{CliResult, Failure};
use crate::project::{pid_alive, read_dev_info, DevInfo, Project};

/// Backend kinds the project plans to support but this build does not include yet.
pub const PLANNED_KINDS: [&str; 3] = ["azure", "gcf", "openwhisk"];

/// Where `faas` looks for a dev server when nothing says otherwise.
pub use faas_front::target::DEFAULT_DEV_URL;

/// The runners of this build, by kind. `local` connects to the `faas dev` server of the project
/// at `project_root` (see [`local_target`]); the planned cloud kinds answer with a plain "not
/// available in this build yet" error; any other kind is refused by the registry, listing
/// these. `lambda` is AWS Lambda through aws-sdk-lambda (or the emulator at the profile's
/// `endpoint`).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let registry = faas_cli::backend::registry(std::path::Path::new("."));
/// let err = registry.create(faas_api::BackendProfile::new("prod", "azure")).await.err().unwrap();
/// assert_eq!(err.message(), "the `azure` backend is not available in this build yet");
/// let err = registry.create(faas_api::BackendProfile::new("x", "nimbus")).await.err().unwrap();
/// assert!(err.message().contains("unknown backend kind `nimbus`"));
/// # });
/// ```
pub fn registry(project_root: &Path) -> Registry {
    let mut registry = Registry::new();
    let root: PathBuf = project_root.to_path_buf();
    registry.register("local", move |profile: BackendProfile| {
        let root = root.clone();
        async move { connect_local(&root, &profile).await }
    });
    registry.register("lambda", |profile: BackendProfile| async move {
        let runner: Arc<dyn Runner> = faas_runner_lambda::deploy::LambdaRunner::from_profile(&profile).await?;
        Ok(runner)
    });
    for kind in PLANNED_KINDS {
        registry.register(kind, move |_profile: BackendProfile| async move {
            Err::<Arc<dyn Runner>, Error>(not_built(kind))
        });
    }
    registry
}

/// The error for a backend kind that is planned but not in this build.
pub fn not_built(kind: &str) -> Error {
    Error::unavailable(format!("the `{kind}` backend is not available in this build yet")).with_type("BackendNotBuilt")
}

pub use faas_front::target::LocalTarget;

/// Resolves a `local` profile to a server ([`faas_front::target::local_target`]), with the project's
/// `.faas/dev.json` as the server it knows of: the profile's `endpoint`, else its `port` on
/// 127.0.0.1, else the URL in `dev.json`, else [`DEFAULT_DEV_URL`]. The token: the profile's `token`
/// (a secret reference), else `FAAS_TOKEN`, else the token in `dev.json` when that file describes
/// the same server.
pub fn local_target(project_root: &Path, profile: &BackendProfile) -> Result<LocalTarget, Error> {
    let known = read_dev_info(project_root).map(|i| faas_front::target::KnownServer { url: i.url, token: i.token });
    faas_front::target::local_target(profile, known)
}

async fn connect_local(project_root: &Path, profile: &BackendProfile) -> Result<Arc<dyn Runner>, Error> {
    let target = local_target(project_root, profile)?;
    tracing::debug!(url = %target.url, source = target.source, "connecting to the dev server");
    // When .faas/dev.json describes the server we are about to call, a dead pid or a server that
    // does not answer means that file is stale: say so, rather than "unreachable".
    let recorded = read_dev_info(project_root).filter(|i| i.url == target.url);
    if let Some(info) = &recorded {
        if !pid_alive(info.pid) {
            return Err(dev_server_not_running(info, &format!("no process {} exists", info.pid)));
        }
    }
    match FrontClient::connect(&target.url, target.token).await {
        Ok(client) => Ok(Arc::new(client)),
        Err(e) if e.kind() == ErrorKind::BackendUnavailable => match &recorded {
            Some(info) => Err(dev_server_not_running(info, &format!("nothing answers at {}", info.url))),
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// The `errorType` of [`dev_server_not_running`].
pub const DEV_SERVER_NOT_RUNNING: &str = "DevServerNotRunning";

/// The error for a `.faas/dev.json` left behind by a `faas dev` that is no longer running (killed,
/// crashed, or the machine restarted); `why` says how we know.
///
/// ```
/// let info = faas_cli::project::DevInfo { url: "http://127.0.0.1:8080".into(), token: "t".into(), pid: 42 };
/// let e = faas_cli::backend::dev_server_not_running(&info, "no process 42 exists");
/// assert_eq!(e.kind(), faas_api::ErrorKind::BackendUnavailable);
/// assert_eq!(e.message(), "the `faas dev` server recorded in .faas/dev.json (pid 42, http://127.0.0.1:8080) \
///     is not running (no process 42 exists); start it with `faas dev`");
/// ```
pub fn dev_server_not_running(info: &DevInfo, why: &str) -> Error {
    Error::unavailable(format!(
        "the `faas dev` server recorded in .faas/dev.json (pid {}, {}) is not running ({why}); start it with `faas dev`",
        info.pid, info.url
    ))
    .with_type(DEV_SERVER_NOT_RUNNING)
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

/// The selected profile and a runner for it; an unreachable local server gets the hint to
/// start `faas dev`.
pub async fn open(project: &Project, flag: Option<&str>) -> CliResult<(BackendProfile, Arc<dyn Runner>)> {
    let profile = select(&project.config, flag)?;
    let runner = registry(&project.root).create(profile.clone()).await.map_err(|e| with_hint(&profile, e))?;
    Ok((profile, runner))
}

/// Builds the project for `profile`'s platform: a plain host build for `local`; for `lambda`, the
/// profile's (or `arch_flag`'s) architecture and libc, cross-compiling when that is not the host.
pub async fn build_for_profile(
    project: &Project,
    profile: &BackendProfile,
    arch_flag: Option<&str>,
    release: bool,
    progress: &dyn faas_api::Progress,
) -> CliResult<faas_api::AppSpec> {
    match profile.kind.as_str() {
        "lambda" => {
            let settings = faas_runner_lambda::deploy::LambdaSettings::from_profile(&for_packaging(profile))?;
            let arch = match arch_flag {
                Some(a) => faas_packaging::Arch::parse(a).map_err(Error::from)?,
                None => settings.arch,
            };
            Ok(faas_runner_lambda::package::build_for(
                &project.root,
                &project.config,
                arch,
                settings.libc,
                release,
                progress,
            )
            .await?)
        }
        _ => {
            if let Some(a) = arch_flag {
                return Err(Error::bad_input(format!(
                    "--arch {a}: the `{}` backend builds for this machine only",
                    profile.kind
                ))
                .into());
            }
            Ok(faas_packaging::build::build_app(&project.root, &project.config, release, progress).await?)
        }
    }
}

/// Packages `app` as the bootstrap zip of a `lambda` profile; neither `region` nor `role` is needed.
pub async fn package_for_lambda(
    profile: &BackendProfile,
    app: &faas_api::AppSpec,
    progress: &dyn faas_api::Progress,
) -> CliResult<faas_api::Package> {
    let runner = faas_runner_lambda::deploy::LambdaRunner::from_profile(&for_packaging(profile))
        .await
        .map_err(|e| with_hint(profile, e))?;
    runner.package(app, progress).await.map_err(|e| with_hint(profile, e))
}

/// Selects the backend profile (see [`Config::select_backend`] for the precedence). A backend
/// kind of this build named where no profile of that name exists (`--backend lambda` in a project
/// without `[backends.lambda]`) is that kind with the platform's usual defaults
/// ([`implicit_profile`]); a planned kind that is not in this build is refused ([`not_built`]).
///
/// ```
/// let none = faas_api::Config::default_for("app");
/// let p = faas_cli::backend::select(&none, Some("lambda")).unwrap();
/// assert_eq!((p.name.as_str(), p.kind.as_str()), ("lambda", "lambda"));
/// let f = faas_cli::backend::select(&none, Some("azure")).unwrap_err();
/// assert_eq!(f.error.message(), "the `azure` backend is not available in this build yet");
/// let f = faas_cli::backend::select(&none, Some("nimbus")).unwrap_err();
/// assert!(f.error.message().contains("unknown backend profile `nimbus`"), "{}", f.error.message());
/// ```
pub fn select(config: &Config, flag: Option<&str>) -> CliResult<BackendProfile> {
    let registry = registry(Path::new("."));
    let profile = config.select_backend(flag, &registry.kinds()).map_err(Failure::from)?;
    if PLANNED_KINDS.contains(&profile.kind.as_str()) {
        return Err(not_built(&profile.kind).into());
    }
    if config.backends.contains_key(&profile.name) {
        return Ok(profile);
    }
    Ok(implicit_profile(&profile.kind, &|name| std::env::var(name).ok()))
}

/// The profile of a backend kind used without a profile in faas.toml: the kind's usual defaults,
/// taken from the environment as the platform's own CLI takes them. For `lambda`, the region is
/// `AWS_REGION`, else `AWS_DEFAULT_REGION` (credentials come from the standard AWS chain, as for
/// any `lambda` profile); `local` is the `faas dev` server of the project.
///
/// ```
/// let env = |name: &str| (name == "AWS_DEFAULT_REGION").then(|| "eu-west-1".to_string());
/// let p = faas_cli::backend::implicit_profile("lambda", &env);
/// assert_eq!(p.str("region").unwrap().as_deref(), Some("eu-west-1"));
/// assert!(faas_cli::backend::is_implicit(&p));
/// ```
pub fn implicit_profile(kind: &str, env: &dyn Fn(&str) -> Option<String>) -> BackendProfile {
    let mut profile = BackendProfile::new(kind, kind);
    profile.origin = implicit_origin(kind);
    if kind == "lambda" {
        if let Some(region) = ["AWS_REGION", "AWS_DEFAULT_REGION"].iter().find_map(|v| env(v).filter(|r| !r.is_empty()))
        {
            profile = profile.with("region", region);
        }
    }
    profile
}

fn implicit_origin(kind: &str) -> String {
    format!("the implicit `{kind}` profile (faas.toml has no [backends.{kind}])")
}

/// Whether `profile` is a kind used without a profile in faas.toml ([`implicit_profile`]).
pub fn is_implicit(profile: &BackendProfile) -> bool {
    profile.origin == implicit_origin(&profile.name)
}

/// The `lambda` profile `faas build` packages with. Building and packaging call no AWS service, so
/// the `region` and `role` only calls to Lambda need may be missing (as for `cargo lambda build`):
/// they are filled with values nothing reads. Every other key is checked as for a deploy.
fn for_packaging(profile: &BackendProfile) -> BackendProfile {
    let mut p = profile.clone();
    for (key, unused) in [("region", "us-east-1"), ("role", faas_runner_lambda::deploy::EMULATOR_ROLE)] {
        if !p.settings.contains_key(key) {
            p = p.with(key, unused);
        }
    }
    p
}

/// Adds the hint a user needs for an error from `profile`'s backend.
pub fn with_hint(profile: &BackendProfile, error: Error) -> Failure {
    let hint = match error.kind() {
        ErrorKind::BackendUnavailable if error.error_type() == DEV_SERVER_NOT_RUNNING => Some(
            "run `faas dev` in the project directory; it replaces the stale .faas/dev.json".to_string(),
        ),
        ErrorKind::BackendUnavailable if profile.kind == "local" && error.error_type() != "BackendNotBuilt" => {
            Some("start the dev server with `faas dev` (in the project directory), then try again".to_string())
        }
        ErrorKind::Unauthorized if profile.kind == "local" => Some(format!(
            "the dev server's token is in .faas/dev.json; or set FAAS_TOKEN, or `token = \"env:NAME\"` in [backends.{}]",
            profile.name
        )),
        // Its message already says how to provide credentials.
        ErrorKind::Unauthorized if error.error_type() == faas_runner_lambda::credentials::MISSING_CREDENTIALS => None,
        ErrorKind::Unauthorized if profile.kind == "lambda" => Some(format!(
            "set AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, `aws sso login`, or `aws_profile` in [backends.{}])",
            profile.name
        )),
        ErrorKind::BackendUnavailable if profile.kind == "lambda" && profile.settings.contains_key("endpoint") => {
            Some("is the emulator running? start one with `faas dev --emulate lambda`".to_string())
        }
        ErrorKind::BadInput if profile.kind == "lambda" && is_implicit(profile) => Some(
            "without a [backends.lambda] profile the region comes from AWS_REGION or AWS_DEFAULT_REGION and there is \
             no execution role; define [backends.lambda] in faas.toml with `region` and `role` (or `endpoint` for the \
             emulator, `faas dev --emulate lambda`)"
                .to_string(),
        ),
        ErrorKind::NotFound => Some("`faas list` shows the deployed functions".to_string()),
        _ => None,
    };
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
