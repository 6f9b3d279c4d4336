//! [`PipesBackend`]: what the `faas` command, the gateway and the conformance suite see of the
//! pipes backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use faas_api::backend::{Backend, BackendEnv, BuildRequest};
use faas_api::{AppSpec, BackendProfile, Error, ErrorKind, Progress, Runner};

use crate::{PipesRunner, KIND};

/// The settings a `pipes` profile takes.
const PROFILE_KEYS: &[&str] = &["dir"];

/// The state directory used when a profile names none, under the project directory.
pub const DEFAULT_DIR: &str = ".faas/pipes";

/// The pipes backend, `kind = "pipes"` in `faas.toml`. Its one setting, `dir`, is the state
/// directory (relative paths are taken from the project directory); by default
/// [`DEFAULT_DIR`].
///
/// ```
/// use faas_api::backend::Backend;
/// use faas_api::BackendProfile;
/// use faas_pipes::PipesBackend;
/// let profile = BackendProfile::new("dev", "pipes").with("dir", "/tmp/pipes");
/// assert!(PipesBackend.check_profile(&profile).is_ok());
/// assert_eq!(PipesBackend.state_dir(&profile, Some("/src/app".as_ref())).unwrap(), std::path::Path::new("/tmp/pipes"));
/// let implicit = BackendProfile::implicit("pipes");
/// assert_eq!(PipesBackend.state_dir(&implicit, Some("/src/app".as_ref())).unwrap(), std::path::Path::new("/src/app/.faas/pipes"));
/// let typo = BackendProfile::new("dev", "pipes").with("dri", "/tmp/pipes");
/// assert!(PipesBackend.check_profile(&typo).unwrap_err().message().contains("key `backends.dev.dri`"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PipesBackend;

impl PipesBackend {
    /// The state directory of `profile` for a project in `project` (the current directory when
    /// there is none).
    pub fn state_dir(&self, profile: &BackendProfile, project: Option<&Path>) -> Result<PathBuf, Error> {
        let base = project.unwrap_or(Path::new("."));
        let dir = profile.str("dir")?.map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        Ok(base.join(dir))
    }
}

#[async_trait]
impl Backend for PipesBackend {
    fn kind(&self) -> &str {
        KIND
    }

    fn about(&self) -> &str {
        "child processes on this machine speaking JSON lines (the vendor guide's example)"
    }

    fn profile_keys(&self) -> &[&str] {
        PROFILE_KEYS
    }

    fn check_profile(&self, profile: &BackendProfile) -> Result<(), Error> {
        profile.deny_unknown(PROFILE_KEYS)?;
        profile.str("dir").map(|_| ())
    }

    async fn runner(&self, profile: &BackendProfile, env: &BackendEnv) -> Result<Arc<dyn Runner>, Error> {
        self.check_profile(profile)?;
        let dir = self.state_dir(profile, env.project_root.as_deref())?;
        Ok(Arc::new(PipesRunner::open(dir)?))
    }

    /// The functions run on this machine: a plain `cargo build` of the project.
    async fn build(&self, request: &BuildRequest<'_>, progress: &dyn Progress) -> Result<AppSpec, Error> {
        request.refuse_arch()?;
        faas_packaging::build::build_app(request.root, request.config, request.release, progress).await
    }

    fn hint(&self, _profile: &BackendProfile, error: &Error) -> Option<String> {
        match error.kind() {
            ErrorKind::NotFound => Some("deploy it with `faas deploy`; `faas list` shows what is deployed".into()),
            ErrorKind::Timeout => Some("raise `timeout` in [functions.NAME] of faas.toml".into()),
            _ => None,
        }
    }
}
