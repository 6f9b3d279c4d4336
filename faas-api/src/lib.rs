//! # faas-api
//!
//! The portable programming model of faas: write a function once against these types and run the
//! same binary on every backend. Nothing here knows about a platform, an HTTP server or a cloud
//! SDK; the host adapters (`faas::serve`) and runners do.
//!
//! ```
//! use faas_api::{App, Context, Error};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Hello { name: String }
//!
//! #[derive(Serialize)]
//! struct Reply { message: String }
//!
//! async fn hello(cx: Context, req: Hello) -> Result<Reply, Error> {
//!     cx.logger().info(format!("greeting {}", req.name));
//!     Ok(Reply { message: format!("Hello, {}!", req.name) })
//! }
//!
//! let app = App::new().function("hello", hello);
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let reply = app.call_json("hello", &serde_json::json!({"name": "Ada"})).await.unwrap();
//! assert_eq!(reply["message"], "Hello, Ada!");
//! # });
//! ```
#![warn(missing_docs)]

pub mod app;
pub mod backend;
pub mod config;
pub mod context;
pub mod error;
pub mod event;
pub mod handler;
pub mod payload;
pub mod runner;
pub mod state;
pub mod terminal;

pub use app::{App, EventFilter, FunctionDescription, HandlerKind, Manifest, Trigger, validate_function_name};
pub use cloudevents;
pub use config::{BackendProfile, Config, ConfigError};
pub use context::{Context, ContextReport, Level, LogSink, Logger, Services, TraceContext};
pub use error::{Error, ErrorKind};
pub use payload::{Payload, json_kind};
pub use runner::{
    Activation, ActivationQuery, ActivationStatus, AppSpec, Capabilities, Capability, DeployReport, FunctionInfo,
    FunctionSpec, InvokeMode, InvokeRequest, Invoked, NoProgress, Package, Progress, Registry, Runner,
};
