//! The backend SPI: what a platform plugs into faas.
//!
//! A [`Backend`] is one kind of `[backends.NAME]` profile (`local`, `lambda`, ...): how to check
//! a profile of that kind, build a project for it, get a [`Runner`] for it, explain its errors,
//! and run it under the conformance suite. It may come with an [`Emulator`] that `faas dev
//! --emulate NAME` starts. [`Backends`] is the list a build of faas knows; the `faas` command, the
//! event gateway's server and the conformance suite all take their backends from one such list,
//! so a new backend is one line in it (the `faas-backends` crate holds the list of this
//! workspace; a vendor adds theirs to it in their own `main.rs`).
//!
//! ```
//! use std::sync::Arc;
//! use faas_api::backend::{Backend, BackendEnv, Backends, BuildRequest};
//! use faas_api::{AppSpec, BackendProfile, Error, Progress, Runner};
//!
//! struct Nimbus;
//!
//! #[async_trait::async_trait]
//! impl Backend for Nimbus {
//!     fn kind(&self) -> &str { "nimbus" }
//!     fn about(&self) -> &str { "Nimbus Functions" }
//!     fn profile_keys(&self) -> &[&str] { &["region"] }
//!     async fn runner(&self, profile: &BackendProfile, _: &BackendEnv) -> Result<Arc<dyn Runner>, Error> {
//!         self.check_profile(profile)?;
//!         Err(Error::unavailable("no Nimbus account in a doc test"))
//!     }
//!     async fn build(&self, request: &BuildRequest<'_>, _: &dyn Progress) -> Result<AppSpec, Error> {
//!         Err(Error::unavailable(format!("cannot build {} in a doc test", request.root.display())))
//!     }
//! }
//!
//! let backends = Backends::new().with(Nimbus).planned("azure");
//! assert_eq!(backends.kinds(), ["azure", "nimbus"]);
//! assert_eq!(backends.get("nimbus").unwrap().about(), "Nimbus Functions");
//! let err = backends.get("azure").err().unwrap();
//! assert_eq!(err.message(), "the `azure` backend is not available in this build yet");
//! let bad = BackendProfile::new("prod", "nimbus").with("colour", "blue");
//! assert!(backends.get("nimbus").unwrap().check_profile(&bad).unwrap_err().message().contains("backends.prod.colour"));
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::App;
use crate::config::{BackendProfile, Config};
use crate::error::{Error, ErrorKind};
use crate::runner::{AppSpec, Progress, Registry, Runner};

/// What a backend may need to know about where it is used from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendEnv {
    /// The project directory, when there is one (the `local` kind finds the project's `faas dev`
    /// server through the record it leaves there).
    pub project_root: Option<PathBuf>,
}

/// A build of a project for one backend profile (`faas build`, `faas deploy`, `faas dev
/// --emulate`).
#[derive(Debug, Clone, Copy)]
pub struct BuildRequest<'a> {
    /// The project directory (holding `Cargo.toml` and `faas.toml`).
    pub root: &'a Path,
    /// The project's configuration.
    pub config: &'a Config,
    /// The profile the build is for (its architecture, libc, ...).
    pub profile: &'a BackendProfile,
    /// `--arch`, for backends that take one; others refuse it.
    pub arch: Option<&'a str>,
    /// Build in release mode.
    pub release: bool,
}

impl BuildRequest<'_> {
    /// The error for `--arch` given to a backend that builds for this machine only.
    ///
    /// ```
    /// use faas_api::backend::BuildRequest;
    /// let config = faas_api::Config::default_for("app");
    /// let profile = faas_api::BackendProfile::new("dev", "local");
    /// let request = BuildRequest { root: std::path::Path::new("."), config: &config, profile: &profile, arch: Some("arm64"), release: false };
    /// assert_eq!(request.refuse_arch().unwrap_err().message(), "--arch arm64: the `local` backend builds for this machine only");
    /// let request = BuildRequest { arch: None, ..request };
    /// assert!(request.refuse_arch().is_ok());
    /// ```
    pub fn refuse_arch(&self) -> Result<(), Error> {
        match self.arch {
            Some(a) => Err(Error::bad_input(format!(
                "--arch {a}: the `{}` backend builds for this machine only",
                self.profile.kind
            ))),
            None => Ok(()),
        }
    }
}

/// What `faas build` produced for a backend: the file that would be uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The artifact (a binary, a zip, ...).
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The digest the platform reports for it once deployed, when it reports one (Lambda's
    /// `CodeSha256`: the base64 SHA-256 of the zip), so the two can be compared.
    pub digest: Option<String>,
    /// The platform runtime it is built for, when the platform names one (Lambda's
    /// `provided.al2023`, OpenWhisk's image, Cloud Functions' `python312`).
    pub runtime: Option<String>,
}

/// What the conformance suite gives a backend to set itself up with.
pub struct ConformanceSetup {
    /// The fixture app, for backends that run functions inside this process.
    pub fixture: Box<dyn Fn() -> App + Send + Sync>,
    /// The fixture app built as a binary (`faas-probe`).
    pub probe: PathBuf,
    /// Starts an event gateway of the suite's own, for a backend whose functions emit through
    /// one (a profile's `events` key): the target points its functions at
    /// [`ConformanceGateway::url`] and hands its runner to [`ConformanceGateway::deliver_to`],
    /// and the gateway then delivers the events the fixture app subscribes to (ASY-01).
    pub gateway: GatewayStarter,
}

impl ConformanceSetup {
    /// The one target of a backend whose functions emit events through the gateway its
    /// profile's `events` key names (the Lambda, OpenWhisk and Cloud Functions runners put it in
    /// each function's environment): with `events` set, the runner `make` gives for `profile` as
    /// it is; without, a gateway of the suite's own is started, `make` gets the profile with
    /// `events` pointing at it, and the gateway delivers the fixture's subscriptions to that
    /// runner until the target stops.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Arc;
    /// use faas_api::backend::ConformanceSetup;
    /// use faas_api::{BackendProfile, Error, Runner};
    /// # let setup = ConformanceSetup {
    /// #     fixture: Box::new(faas_api::App::new),
    /// #     probe: "faas-probe".into(),
    /// #     gateway: Box::new(|| Box::pin(async { Err(Error::unavailable("no gateway in a doc test")) })),
    /// # };
    /// let profile = BackendProfile::new("ow", "openwhisk");
    /// let err = setup
    ///     .with_events("openwhisk".into(), &profile, |p: BackendProfile| async move {
    ///         Err::<Arc<dyn Runner>, _>(Error::unavailable(format!("events at {:?}", p.str("events"))))
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.message(), "no gateway in a doc test"); // it starts the gateway first
    /// # }
    /// ```
    pub async fn with_events<F, Fut>(
        &self,
        label: String,
        profile: &BackendProfile,
        make: F,
    ) -> Result<Vec<ConformanceTarget>, Error>
    where
        F: Fn(BackendProfile) -> Fut,
        Fut: std::future::Future<Output = Result<Arc<dyn Runner>, Error>>,
    {
        if profile.settings.contains_key("events") {
            let runner = make(profile.clone()).await?;
            return Ok(vec![ConformanceTarget { label, runner, stop: None }]);
        }
        let gateway = (self.gateway)().await?;
        let runner = match make(profile.clone().with("events", gateway.url())).await {
            Ok(runner) => runner,
            Err(e) => {
                gateway.stop().await;
                return Err(e);
            }
        };
        gateway.deliver_to(runner.clone());
        Ok(vec![ConformanceTarget { label, runner, stop: Some(gateway.stop()) }])
    }
}

/// Starts a [`ConformanceGateway`] (see [`ConformanceSetup::gateway`]).
pub type GatewayStarter = Box<dyn Fn() -> BoxFuture<'static, Result<Box<dyn ConformanceGateway>, Error>> + Send + Sync>;

/// An event gateway the conformance suite runs for one target (see [`ConformanceSetup::gateway`]).
pub trait ConformanceGateway: Send + Sync {
    /// The ingress URL functions post their events to.
    fn url(&self) -> String;
    /// Delivers the events the fixture app's functions subscribe to, to those functions on
    /// `runner`, from now on.
    fn deliver_to(&self, runner: Arc<dyn Runner>);
    /// Stops the gateway and removes its data.
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// One runner the conformance suite runs its catalogue against, as one matrix column.
pub struct ConformanceTarget {
    /// The column label (`local (process)`, `lambda (emulator)`).
    pub label: String,
    /// The runner under test.
    pub runner: Arc<dyn Runner>,
    /// Stops what the target started (servers, processes) once its cases ran.
    pub stop: Option<BoxFuture<'static, ()>>,
}

impl std::fmt::Debug for ConformanceTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConformanceTarget").field("label", &self.label).finish_non_exhaustive()
    }
}

/// A kind of backend profile: the SPI a platform implements to plug into the `faas` command, the
/// event gateway and the conformance suite. See the [module docs](self) for an example.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The `kind` of its profiles in `faas.toml`.
    fn kind(&self) -> &str;

    /// One line naming the platform, for help texts.
    fn about(&self) -> &str;

    /// The settings a profile of this kind accepts (besides `kind`).
    fn profile_keys(&self) -> &[&str];

    /// Checks `profile` as [`Backend::runner`] would use it, without contacting anything; an error
    /// names the offending key. The default refuses keys outside [`Backend::profile_keys`].
    fn check_profile(&self, profile: &BackendProfile) -> Result<(), Error> {
        profile.deny_unknown(self.profile_keys())
    }

    /// The profile used when `--backend KIND` names this kind and `faas.toml` has no profile of
    /// that name: the platform's usual defaults, from the environment (`env`) as the platform's
    /// own CLI takes them. The default has no settings.
    fn implicit_profile(&self, env: &dyn Fn(&str) -> Option<String>) -> BackendProfile {
        let _ = env;
        BackendProfile::implicit(self.kind())
    }

    /// A runner for `profile`.
    async fn runner(&self, profile: &BackendProfile, env: &BackendEnv) -> Result<Arc<dyn Runner>, Error>;

    /// Builds the project for `request.profile` (its targets: architecture, libc).
    async fn build(&self, request: &BuildRequest<'_>, progress: &dyn Progress) -> Result<AppSpec, Error>;

    /// What `faas build` reports for the built `app`: by default the binary itself; backends that
    /// upload a package build it here (without contacting the platform).
    async fn artifact(
        &self,
        profile: &BackendProfile,
        app: &AppSpec,
        progress: &dyn Progress,
    ) -> Result<Artifact, Error> {
        let _ = (profile, progress);
        let size = std::fs::metadata(&app.binary)
            .map_err(|e| Error::unavailable(format!("cannot read {}: {e}", app.binary.display())))?
            .len();
        Ok(Artifact { path: app.binary.clone(), size, digest: None, runtime: None })
    }

    /// The hint shown with `error` from this backend (what to run or set), if any.
    fn hint(&self, profile: &BackendProfile, error: &Error) -> Option<String> {
        let _ = (profile, error);
        None
    }

    /// The conformance matrix column for `profile`: by default the kind, with ` (emulator)` when
    /// the profile's `endpoint` is on this machine.
    fn label(&self, profile: &BackendProfile) -> String {
        match profile.settings.get("endpoint").and_then(|v| v.as_str()) {
            Some(e) if is_loopback_url(e) => format!("{} (emulator)", self.kind()),
            _ => self.kind().to_string(),
        }
    }

    /// The runners the conformance suite checks for `profile`: by default one, [`Backend::runner`]
    /// labelled [`Backend::label`].
    async fn conformance(
        &self,
        profile: &BackendProfile,
        setup: &ConformanceSetup,
    ) -> Result<Vec<ConformanceTarget>, Error> {
        let _ = setup;
        let runner = self.runner(profile, &BackendEnv::default()).await?;
        Ok(vec![ConformanceTarget { label: self.label(profile), runner, stop: None }])
    }
}

/// Where and how `faas dev --emulate NAME` runs an emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorOptions {
    /// The address to listen on (127.0.0.1 unless the user asks otherwise).
    pub addr: SocketAddr,
    /// Where it keeps state (code, logs) between runs; `None` for a temporary directory.
    pub state_dir: Option<PathBuf>,
    /// Copy the functions' log lines to stderr.
    pub echo_logs: bool,
}

/// A local stand-in for a platform, which the platform's own clients can talk to.
#[async_trait]
pub trait Emulator: Send + Sync + 'static {
    /// The name `faas dev --emulate` takes.
    fn name(&self) -> &str;

    /// The platform it stands in for, as users call it (`AWS Lambda`).
    fn platform(&self) -> &str;

    /// The port it listens on unless `--port` says otherwise.
    fn default_port(&self) -> u16;

    /// Starts it; it serves until [`RunningEmulator::shutdown`].
    async fn start(&self, options: EmulatorOptions) -> Result<Box<dyn RunningEmulator>, Error>;
}

/// A started [`Emulator`].
#[async_trait]
pub trait RunningEmulator: Send + Sync {
    /// Its base URL.
    fn url(&self) -> String;

    /// The backend profile that reaches it (named `emulator`), which `faas dev --emulate` deploys
    /// through and prints for `faas.toml`.
    fn profile(&self) -> BackendProfile;

    /// What to tell a user when it runs with no project: how to deploy to it with the platform's
    /// own tools.
    fn empty_banner(&self) -> Vec<String>;

    /// How to invoke the deployed function `name` with the platform's own tools.
    fn invoke_hint(&self, name: &str) -> String;

    /// Stops it, waiting for what it started to end.
    async fn shutdown(self: Box<Self>);
}

/// An [`Emulator`] and the [`Backend`] it stands in for ([`Backends::emulator`]).
pub type EmulatedBackend = (Arc<dyn Backend>, Arc<dyn Emulator>);

struct Entry {
    backend: Arc<dyn Backend>,
    emulator: Option<Arc<dyn Emulator>>,
}

/// The backends one build of faas knows: the [`Backend`]s it includes (each perhaps with its
/// [`Emulator`]) and the kinds it plans but does not include yet, which answer "not available in
/// this build yet". See the [module docs](self) for an example.
#[derive(Default)]
pub struct Backends {
    entries: Vec<Entry>,
    planned: Vec<String>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends").field("kinds", &self.kinds()).finish()
    }
}

/// The error for a backend kind that is planned but not in this build.
///
/// ```
/// let e = faas_api::backend::not_built("azure");
/// assert_eq!((e.kind(), e.error_type()), (faas_api::ErrorKind::BackendUnavailable, "BackendNotBuilt"));
/// ```
pub fn not_built(kind: &str) -> Error {
    Error::unavailable(format!("the `{kind}` backend is not available in this build yet")).with_type(NOT_BUILT)
}

/// The `errorType` of [`not_built`].
pub const NOT_BUILT: &str = "BackendNotBuilt";

impl Backends {
    /// An empty list.
    pub fn new() -> Backends {
        Backends::default()
    }

    /// Adds `backend`, replacing one of the same kind.
    pub fn with(self, backend: impl Backend) -> Backends {
        self.add(Arc::new(backend), None)
    }

    /// Adds `backend` with the emulator `faas dev --emulate` starts for it.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use faas_api::backend::*;
    /// # use faas_api::{AppSpec, BackendProfile, Error, Progress, Runner};
    /// # struct Nimbus;
    /// # #[async_trait::async_trait]
    /// # impl Backend for Nimbus {
    /// #     fn kind(&self) -> &str { "nimbus" }
    /// #     fn about(&self) -> &str { "Nimbus" }
    /// #     fn profile_keys(&self) -> &[&str] { &[] }
    /// #     async fn runner(&self, _: &BackendProfile, _: &BackendEnv) -> Result<Arc<dyn Runner>, Error> { Err(Error::unavailable("x")) }
    /// #     async fn build(&self, _: &BuildRequest<'_>, _: &dyn Progress) -> Result<AppSpec, Error> { Err(Error::unavailable("x")) }
    /// # }
    /// struct LocalNimbus;
    /// #[async_trait::async_trait]
    /// impl Emulator for LocalNimbus {
    ///     fn name(&self) -> &str { "nimbus" }
    ///     fn platform(&self) -> &str { "Nimbus Functions" }
    ///     fn default_port(&self) -> u16 { 9100 }
    ///     async fn start(&self, _: EmulatorOptions) -> Result<Box<dyn RunningEmulator>, Error> {
    ///         Err(Error::unavailable("not in a doc test"))
    ///     }
    /// }
    /// let backends = Backends::new().with_emulator(Nimbus, LocalNimbus);
    /// assert_eq!(backends.emulator_names(), ["nimbus"]);
    /// let (backend, emulator) = backends.emulator("nimbus").unwrap();
    /// assert_eq!((backend.kind(), emulator.default_port()), ("nimbus", 9100));
    /// assert!(backends.emulator("lambda").err().unwrap().message().contains("emulators in this build: nimbus"));
    /// ```
    pub fn with_emulator(self, backend: impl Backend, emulator: impl Emulator) -> Backends {
        self.add(Arc::new(backend), Some(Arc::new(emulator)))
    }

    /// Adds a backend (and its emulator) given as trait objects, replacing one of the same kind.
    pub fn add(mut self, backend: Arc<dyn Backend>, emulator: Option<Arc<dyn Emulator>>) -> Backends {
        let kind = backend.kind().to_string();
        self.planned.retain(|p| *p != kind);
        self.entries.retain(|e| e.backend.kind() != kind);
        self.entries.push(Entry { backend, emulator });
        self
    }

    /// Names a kind this build plans but does not include (ignored when it is included).
    pub fn planned(mut self, kind: &str) -> Backends {
        if !self.entries.iter().any(|e| e.backend.kind() == kind) && !self.planned.iter().any(|p| p == kind) {
            self.planned.push(kind.to_string());
        }
        self
    }

    /// Every kind, included or planned, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> =
            self.entries.iter().map(|e| e.backend.kind()).chain(self.planned.iter().map(String::as_str)).collect();
        kinds.sort_unstable();
        kinds
    }

    /// The included backends, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Backend>> {
        self.entries.iter().map(|e| &e.backend)
    }

    /// The backend of `kind`: [`not_built`] for a planned kind; an unknown kind is an error
    /// listing the kinds.
    pub fn get(&self, kind: &str) -> Result<Arc<dyn Backend>, Error> {
        if let Some(e) = self.entries.iter().find(|e| e.backend.kind() == kind) {
            return Ok(e.backend.clone());
        }
        if self.planned.iter().any(|p| p == kind) {
            return Err(not_built(kind));
        }
        Err(Error::bad_input(format!("unknown backend kind `{kind}`; known kinds: {}", self.kinds().join(", "))))
    }

    /// The backend of `profile`'s kind ([`Backends::get`], naming the profile when the kind is
    /// unknown).
    ///
    /// ```
    /// let err = faas_api::backend::Backends::new().planned("azure").for_profile(&faas_api::BackendProfile::new("prod", "lamda")).err().unwrap();
    /// assert_eq!(err.message(), "backend `prod` has unknown backend kind `lamda`; known kinds: azure");
    /// ```
    pub fn for_profile(&self, profile: &BackendProfile) -> Result<Arc<dyn Backend>, Error> {
        self.get(&profile.kind).map_err(|e| match e.kind() {
            ErrorKind::BadInput => Error::bad_input(format!("backend `{}` has {}", profile.name, e.message())),
            _ => e,
        })
    }

    /// The names `faas dev --emulate` takes, in the order they were added.
    pub fn emulator_names(&self) -> Vec<&str> {
        self.entries.iter().filter_map(|e| e.emulator.as_ref().map(|m| m.name())).collect()
    }

    /// The emulator called `name` and the backend it stands in for; an unknown name is an error
    /// listing the emulators.
    pub fn emulator(&self, name: &str) -> Result<EmulatedBackend, Error> {
        for e in &self.entries {
            if let Some(m) = e.emulator.as_ref().filter(|m| m.name() == name) {
                return Ok((e.backend.clone(), m.clone()));
            }
        }
        if self.planned.iter().any(|p| p == name) {
            return Err(not_built(name));
        }
        let names = self.emulator_names();
        Err(Error::bad_input(format!(
            "--emulate {name}: no such emulator; emulators in this build: {}",
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        )))
    }

    /// Selects the profile to use ([`Config::select_backend_with`]'s precedence, with these kinds):
    /// a kind named where `config` has no profile of that name is that kind's
    /// [`Backend::implicit_profile`] (defaults from `env`); a planned kind is refused
    /// ([`not_built`]).
    pub fn select(
        &self,
        config: &Config,
        flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BackendProfile, Error> {
        let chosen = env("FAAS_BACKEND").filter(|s| !s.is_empty());
        let profile = config.select_backend_with(flag, chosen.as_deref(), &self.kinds())?;
        let backend = self.for_profile(&profile)?;
        if config.backends.contains_key(&profile.name) {
            return Ok(profile);
        }
        Ok(backend.implicit_profile(env))
    }

    /// A [`Registry`] of runners for the included kinds (the planned ones answer [`not_built`]),
    /// each created with `env`. The event gateway takes its runners from one.
    pub fn registry(&self, env: BackendEnv) -> Registry {
        let mut registry = Registry::new();
        let env = Arc::new(env);
        for backend in self.iter() {
            let (kind, backend, env) = (backend.kind().to_string(), backend.clone(), env.clone());
            registry.register(&kind, move |profile: BackendProfile| {
                let (backend, env) = (backend.clone(), env.clone());
                async move { backend.runner(&profile, &env).await }
            });
        }
        for kind in &self.planned {
            let name = kind.clone();
            registry.register(kind, move |_: BackendProfile| {
                let kind = name.clone();
                async move { Err::<Arc<dyn Runner>, Error>(not_built(&kind)) }
            });
        }
        registry
    }
}

/// Whether `url` points at this machine: its host is `localhost`, a `127.0.0.0/8` address or `[::1]`.
///
/// ```
/// use faas_api::backend::is_loopback_url;
/// assert!(is_loopback_url("http://127.0.0.1:9001"));
/// assert!(is_loopback_url("http://user@[::1]:80/x"));
/// assert!(is_loopback_url("http://LOCALHOST"));
/// assert!(!is_loopback_url("https://lambda.us-east-1.amazonaws.com"));
/// assert!(!is_loopback_url("http://127.0.0.1.example.com"));
/// ```
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
