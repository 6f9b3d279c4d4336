//! The gateway server: one HTTP listener for ingress, management, metrics and health, the delivery
//! workers, and the registry refresher. See [`start`].

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use faas_gateway_store::embedded::{EmbeddedOptions, EmbeddedStore};
use faas_gateway_store::{EventStore, GatewayStore, KvStore, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::conductor::Conductor;
use crate::config::GatewayConfig;
use crate::delivery::Deliverer;
use crate::ingress::Ingress;
use crate::metrics::Metrics;
use crate::registry::RegistryHandle;
use crate::sink::{FunctionRunners, SinkClient};

/// How often the registry is reloaded from the store, so replicas see each other's management writes.
pub const REGISTRY_REFRESH: Duration = Duration::from_secs(2);

/// Everything [`start`] needs.
pub struct GatewayOptions {
    /// The `[gateway]` section of faas.toml (or `GatewayConfig::default()`).
    pub config: GatewayConfig,
    /// The `[backends.*]` profiles of faas.toml: function sinks name one of them.
    pub backends: BTreeMap<String, faas_api::BackendProfile>,
    /// Makes a runner from a backend profile (for function sinks); runners are created on first use and
    /// kept.
    pub runners: faas_api::Registry,
    /// Where to listen; default `127.0.0.1:<config.port>`. Port 0 picks a free port (see
    /// [`RunningGateway::addr`]).
    pub bind: Option<SocketAddr>,
}

impl std::fmt::Debug for GatewayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayOptions")
            .field("backends", &self.backends.keys().collect::<Vec<_>>())
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The event store could not be opened or reached.
    #[error("cannot open the event store: {0}")]
    Store(#[from] StoreError),
    /// The configuration is unusable (e.g. `store = "nats"` without `nats_url`).
    #[error("invalid gateway configuration: {0}")]
    Config(String),
    /// The registry (functions and subscriptions) could not be loaded.
    #[error("cannot load the gateway registry: {0}")]
    Registry(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A started gateway. Dropping it leaves the tasks running until the runtime ends; call
/// [`shutdown`](RunningGateway::shutdown) or [`wait`](RunningGateway::wait) to stop it cleanly.
pub struct RunningGateway {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    workers: JoinHandle<()>,
    refresher: JoinHandle<()>,
    /// The store, until the last task using it lets it go (so that shutdown can wait for that).
    store: std::sync::Weak<dyn GatewayStore>,
    /// Resolves when the store has let go of the data directory (after the last handle is dropped).
    released: Released,
}

impl std::fmt::Debug for RunningGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningGateway").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl RunningGateway {
    /// The address the listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Graceful shutdown: stops accepting requests (requests in progress finish), stops claiming deliveries,
    /// and waits for the deliveries in flight to finish (each is bounded by its attempt timeout). Nothing
    /// acknowledged is lost: a delivery that did not finish comes back when its lease expires. Returns once
    /// the store is let go (at most 10 s more), so a new gateway can open the same data directory at once.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = self.workers.await;
        let _ = self.refresher.await;
        // Tasks that were still finishing (a request's connection, the wake-up of running runs at start)
        // hold the store a little longer; the embedded store's data directory is locked until they end.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.store.strong_count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("the store is still in use 10 s after the shutdown; not waiting for it longer");
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The last handle gone, the embedded store's writer still syncs the log and closes the lock
        // file on its own thread: a restart on the same directory right now could find it locked.
        if tokio::time::timeout_at(deadline, self.released).await.is_err() {
            tracing::warn!("the store had not released its data directory 10 s after the shutdown");
        }
        tracing::info!("gateway stopped");
    }

    /// Runs until Ctrl-C (SIGINT) or SIGTERM, then shuts down gracefully (see
    /// [`shutdown`](RunningGateway::shutdown)). The signals are caught from this call on; to
    /// catch one sent right after the gateway says it is listening, take [`stop_signal`]
    /// before saying so and use [`wait_until`](RunningGateway::wait_until).
    pub async fn wait(self) {
        self.wait_until(stop_signal()).await
    }

    /// Runs until `stop` resolves (such as [`stop_signal`]), then shuts down gracefully.
    pub async fn wait_until(self, stop: impl std::future::Future<Output = &'static str>) {
        let why = stop.await;
        tracing::info!(why, "signal received; shutting down");
        self.shutdown().await;
    }
}

/// Catches Ctrl-C (SIGINT) and SIGTERM from this call on, and resolves on the first of them
/// (`"interrupted"` or `"terminated"`). Take it before a server says it is ready: a SIGTERM
/// that comes before anything catches it ends the process at once, without a graceful
/// shutdown. Needs a Tokio runtime.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let stop = faas_gateway::server::stop_signal();
/// // A SIGTERM now is caught: this process goes on, and `stop` resolves.
/// std::process::Command::new("kill").args(["-TERM", &std::process::id().to_string()]).status().unwrap();
/// assert_eq!(stop.await, "terminated");
/// # });
/// ```
pub fn stop_signal() -> impl std::future::Future<Output = &'static str> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            async fn next(signal: Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = next(interrupt) => "interrupted",
                _ = next(terminate) => "terminated",
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
            "interrupted"
        }
    }
}

/// The largest stored form of an event the store must accept for a request of `max_event_bytes` bytes:
/// binary data becomes base64 in the stored JSON (4/3 larger), plus attributes.
fn stored_limit(max_event_bytes: usize) -> usize {
    max_event_bytes / 3 * 4 + 64 * 1024
}

/// What resolves once an opened store has let go of its resources (the embedded store's directory
/// lock); JetStream has nothing to wait for.
type Released = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>;

async fn open_store(config: &GatewayConfig) -> Result<(Arc<dyn GatewayStore>, Released), GatewayError> {
    let max_event_bytes = stored_limit(config.max_event_bytes);
    match config.store {
        crate::config::StoreKind::Embedded => {
            let options =
                EmbeddedOptions { dedupe_window: config.dedupe_window, max_event_bytes, ..Default::default() };
            let store = EmbeddedStore::open(&config.data_dir, options).await?;
            tracing::info!(data_dir = %config.data_dir.display(), "embedded event store opened");
            let released: Released = Box::pin(store.released());
            Ok((store, released))
        }
        crate::config::StoreKind::Nats => {
            let url = config
                .nats_url
                .as_deref()
                .ok_or_else(|| GatewayError::Config("`store = \"nats\"` needs `nats_url`".into()))?;
            let options = faas_gateway_nats::JetStreamOptions {
                dedupe_window: config.dedupe_window,
                max_event_bytes,
                // A replica that dies holding deliveries: the others get them after this.
                ack_wait: Duration::from_secs(5),
                ..Default::default()
            };
            let store = faas_gateway_nats::JetStreamStore::connect(url, options).await?;
            tracing::info!(url, "JetStream event store connected");
            let released: Released = Box::pin(std::future::ready(()));
            Ok((store, released))
        }
    }
}

async fn metrics_route(
    State((metrics, store)): State<(Arc<Metrics>, Arc<dyn EventStore>)>,
) -> axum::response::Response {
    let backlog = match store.stats().await {
        Ok(stats) => stats.backlog,
        Err(e) => {
            tracing::warn!(error = %e, "reading store stats failed");
            0
        }
    };
    (
        [(http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        metrics.render(backlog),
    )
        .into_response()
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped_signal(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Starts the gateway: opens the store (`config.store`: the embedded log at `config.data_dir`, or JetStream at
/// `config.nats_url`), loads the registry (the saved document merged with what faas.toml declares), binds the
/// listener and starts the delivery workers and the registry refresher (every [`REGISTRY_REFRESH`]).
///
/// Routes: `POST /` ingress ([`crate::ingress`]), the management API ([`crate::management::router`], bearer
/// token), `GET /metrics` ([`crate::metrics`]), `GET /healthz`.
///
/// ```no_run
/// # async fn run() -> Result<(), faas_gateway::GatewayError> {
/// let gateway = faas_gateway::start(faas_gateway::GatewayOptions {
///     config: faas_gateway::config::GatewayConfig::default(),
///     backends: Default::default(),
///     runners: faas_api::Registry::new(),
///     bind: Some("127.0.0.1:0".parse().unwrap()),
/// })
/// .await?;
/// println!("listening on http://{}", gateway.addr());
/// gateway.shutdown().await;
/// # Ok(()) }
/// ```
pub async fn start(options: GatewayOptions) -> Result<RunningGateway, GatewayError> {
    let GatewayOptions { config, backends, runners, bind } = options;
    let (both, released) = open_store(&config).await?;
    let store_alive = Arc::downgrade(&both);
    let store: Arc<dyn EventStore> = both.clone();
    let kv: Arc<dyn KvStore> = both.clone();
    let mut declared = config.declared();
    declared.backends.extend(backends.keys().cloned());
    let registry =
        RegistryHandle::open(store.clone(), declared).await.map_err(|e| GatewayError::Registry(e.to_string()))?;
    let metrics = Arc::new(Metrics::new());
    let compositions = crate::compositions::Compositions::new(kv.clone(), registry.clone());
    let conductor = Arc::new(Conductor::new(both, registry.clone(), config.delivery.attempt_timeout, metrics.clone()));
    let ingress = Arc::new(Ingress {
        store: store.clone(),
        registry: registry.clone(),
        metrics: metrics.clone(),
        max_event_bytes: config.max_event_bytes,
        token: config.ingress_token.clone(),
        conductor: Some(conductor.clone()),
    });
    let addr = bind.unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, config.port)));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| GatewayError::Bind { addr, source })?;
    let addr = listener.local_addr().map_err(|source| GatewayError::Bind { addr, source })?;
    let management_state =
        crate::management::ManagementState { registry: registry.clone(), token: config.token.clone(), addr };
    let management = crate::management::router(management_state.clone());
    let sinks = Arc::new(SinkClient::new(FunctionRunners::new(runners, backends)));
    let app = Router::new()
        .route("/", post(crate::ingress::post_event))
        .with_state(ingress)
        .route("/metrics", get(metrics_route).with_state((metrics.clone(), store.clone())))
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .merge(management)
        .merge(crate::state::router(crate::state::StateService {
            kv: kv.clone(),
            token: config.token.clone(),
            metrics: metrics.clone(),
        }))
        .merge(crate::runs::router(conductor.clone(), compositions.clone(), sinks.clone(), management_state));

    let (stop, stopped) = watch::channel(false);
    let mut server_stop = stopped.clone();
    let server = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            stopped_signal(&mut server_stop).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the HTTP listener failed");
        }
    });

    let deliverer = Arc::new(Deliverer {
        store: store.clone(),
        registry: registry.clone(),
        sinks,
        metrics,
        defaults: config.delivery.clone(),
        concurrency: config.concurrency,
        conductor: conductor.clone(),
        compositions,
    });
    let workers = tokio::spawn(deliverer.run(stopped.clone()));
    // Runs whose record moved but whose wake-up was not appended (a crash between the two) go on.
    let recovering = conductor.clone();
    tokio::spawn(async move {
        let conductor = recovering;
        if let Err(e) = conductor.refresh_awaits().await {
            tracing::warn!(error = %e, "loading the runs waiting for events failed");
        }
        match conductor.recover().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "running compositions woken"),
            Err(e) => tracing::warn!(error = %e, "waking the running compositions failed"),
        }
    });

    let mut refresh_stop = stopped;
    let refresher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(REGISTRY_REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = registry.refresh().await {
                        tracing::warn!(error = %e, "refreshing the registry from the store failed");
                    }
                    // The runs other replicas started waiting for events.
                    if let Err(e) = conductor.refresh_awaits().await {
                        tracing::warn!(error = %e, "refreshing the runs waiting for events failed");
                    }
                }
                _ = stopped_signal(&mut refresh_stop) => break,
            }
        }
    });
    tracing::info!(%addr, "gateway listening");
    Ok(RunningGateway { addr, stop, server, workers, refresher, store: store_alive, released })
}
