//! The `local` backend kind: functions on this machine, served by `faas dev`.
//!
//! Commands reach a running `faas dev` server through its HTTP front ([`FrontClient`]), found as
//! [`crate::target::local_target`] says (the profile's `endpoint` or `port`, else the server the
//! project's `.faas/dev.json` records, else 127.0.0.1:8080). The conformance suite runs its
//! catalogue against both local modes instead, each a fresh [`LocalRunner`] behind a front of its
//! own: `local (in-process)` and `local (process)`.
//!
//! ```
//! use faas_api::backend::Backend;
//! let local = faas_front::backend::LocalBackend;
//! assert_eq!(local.kind(), "local");
//! let bad = faas_api::BackendProfile::new("dev", "local").with("colour", "blue");
//! assert!(local.check_profile(&bad).unwrap_err().message().contains("key `backends.dev.colour`"));
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use faas_api::backend::{Backend, BackendEnv, BuildRequest, ConformanceSetup, ConformanceTarget, NOT_BUILT};
use faas_api::{AppSpec, BackendProfile, Error, ErrorKind, Progress, Runner};
use faas_runner_local::{LocalOptions, LocalRunner, Mode};

use crate::client::FrontClient;
use crate::dev_record::{DevInfo, pid_alive, read_dev_info};
use crate::target::{KnownServer, local_target};

/// Async retry delay of the local runners the conformance suite checks, so that retries are seen
/// quickly.
pub const CONFORMANCE_RETRY_BASE: Duration = Duration::from_millis(100);

/// The `errorType` of [`dev_server_not_running`].
pub const DEV_SERVER_NOT_RUNNING: &str = "DevServerNotRunning";

/// The `local` backend (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalBackend;

#[async_trait]
impl Backend for LocalBackend {
    fn kind(&self) -> &str {
        "local"
    }

    fn about(&self) -> &str {
        "this machine: the `faas dev` server of the project"
    }

    fn profile_keys(&self) -> &[&str] {
        LocalOptions::PROFILE_KEYS
    }

    fn check_profile(&self, profile: &BackendProfile) -> Result<(), Error> {
        local_target(profile, None).map(|_| ())
    }

    async fn runner(&self, profile: &BackendProfile, env: &BackendEnv) -> Result<Arc<dyn Runner>, Error> {
        let recorded = env.project_root.as_deref().and_then(read_dev_info);
        let known = recorded.as_ref().map(|i| KnownServer { url: i.url.clone(), token: i.token.clone() });
        let target = local_target(profile, known)?;
        tracing::debug!(url = %target.url, source = target.source, "connecting to the dev server");
        // When .faas/dev.json describes the server we are about to call, a dead pid or a server
        // that does not answer means that file is stale: say so, rather than "unreachable".
        let recorded = recorded.filter(|i| i.url == target.url);
        if let Some(info) = recorded.as_ref().filter(|i| !pid_alive(i.pid)) {
            return Err(dev_server_not_running(info, &format!("no process {} exists", info.pid)));
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

    async fn build(&self, request: &BuildRequest<'_>, progress: &dyn Progress) -> Result<AppSpec, Error> {
        request.refuse_arch()?;
        faas_packaging::build::build_app(request.root, request.config, request.release, progress).await
    }

    fn hint(&self, profile: &BackendProfile, error: &Error) -> Option<String> {
        match error.kind() {
            ErrorKind::BackendUnavailable if error.error_type() == DEV_SERVER_NOT_RUNNING => {
                Some("run `faas dev` in the project directory; it replaces the stale .faas/dev.json".to_string())
            }
            ErrorKind::BackendUnavailable if error.error_type() != NOT_BUILT => {
                Some("start the dev server with `faas dev` (in the project directory), then try again".to_string())
            }
            ErrorKind::Unauthorized => Some(format!(
                "the dev server's token is in .faas/dev.json; or set FAAS_TOKEN, or `token = \"env:NAME\"` in [backends.{}]",
                profile.name
            )),
            _ => None,
        }
    }

    async fn conformance(
        &self,
        profile: &BackendProfile,
        setup: &ConformanceSetup,
    ) -> Result<Vec<ConformanceTarget>, Error> {
        let mut options = LocalOptions::from_profile(profile)?;
        options.state_dir = None;
        options.retry_base = CONFORMANCE_RETRY_BASE;
        options.echo_logs = false;
        let in_process = LocalRunner::in_process((setup.fixture)(), options.clone())?;
        let process = LocalRunner::new(LocalOptions { mode: Mode::Process, ..options })?;
        Ok(vec![with_front(in_process, "local (in-process)").await?, with_front(process, "local (process)").await?])
    }
}

/// A local runner behind an HTTP front bound on 127.0.0.1 (so that `emit` and `invoke` from
/// function processes reach it), stopped together.
async fn with_front(runner: Arc<LocalRunner>, label: &str) -> Result<ConformanceTarget, Error> {
    let options =
        crate::FrontOptions { addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), ..crate::FrontOptions::default() };
    let front = crate::bind(runner.clone(), options).await?;
    runner.set_services_url(front.url());
    let stopping = runner.clone();
    Ok(ConformanceTarget {
        label: label.to_string(),
        runner,
        stop: Some(Box::pin(async move {
            stopping.shutdown().await;
            front.shutdown().await;
        })),
    })
}

/// The error for a `.faas/dev.json` left behind by a `faas dev` that is no longer running (killed,
/// crashed, or the machine restarted); `why` says how we know.
///
/// ```
/// let info = faas_front::dev_record::DevInfo { url: "http://127.0.0.1:8080".into(), token: "t".into(), pid: 42 };
/// let e = faas_front::backend::dev_server_not_running(&info, "no process 42 exists");
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
