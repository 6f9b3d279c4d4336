//! The faas CloudEvents gateway: CloudEvents 1.0 ingress over HTTP (binary, structured and batch mode),
//! subscriptions with the CloudEvents Subscriptions API filter dialects, and durable at-least-once delivery
//! to HTTP sinks and to functions on any backend (through the runner SPI).
//!
//! An event is acknowledged (202) only once it is durable in the [`faas_gateway_store::EventStore`] (the
//! embedded log by default, NATS JetStream for several replicas). Delivery follows the Knative data-plane
//! contract: retries with exponential back-off, full jitter and a cap, `Retry-After` honoured up to a maximum,
//! dead-letter sink with the Knative error extensions (see [`delivery`]).
//!
//! Run it with [`start`] (the `faas gateway` command and the `faas-gateway` binary both do):
//!
//! ```no_run
//! # async fn run() -> Result<(), faas_gateway::GatewayError> {
//! let config = faas_gateway::config::GatewayConfig::default();
//! let gateway = faas_gateway::start(faas_gateway::GatewayOptions {
//!     config,
//!     backends: Default::default(),
//!     runners: faas_api::Registry::new(),
//!     bind: None, // 127.0.0.1:<config.port>
//! })
//! .await?;
//! println!("faas-gateway listening on http://{}", gateway.addr());
//! gateway.wait().await; // until Ctrl-C / SIGTERM, then a graceful shutdown
//! # Ok(()) }
//! ```
//!
//! Routes on the one listener: `POST /` ([`ingress`]), the management API ([`management`], bearer token),
//! `GET /metrics` ([`metrics`]), `GET /healthz`.

pub mod compositions;
pub mod conductor;
pub mod config;
pub mod delivery;
pub mod filter;
pub mod ingress;
pub mod management;
pub mod metrics;
pub mod registry;
pub mod runs;
pub mod server;
pub mod sink;
pub mod state;
pub mod subscription;

pub use server::{start, GatewayError, GatewayOptions, RunningGateway};
