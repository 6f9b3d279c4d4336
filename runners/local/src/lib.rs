//! # faas-runner-local
//!
//! The local backend of faas, in two modes:
//!
//! - **in-process**: the app's handlers are called directly, in this process (what `cargo test`
//!   of a function and `cargo run` of an app binary use);
//! - **process**: the app binary runs as child processes, like a real FaaS invoker: a warm pool
//!   per function, a concurrency limit with queueing, deadlines enforced by killing the process,
//!   crashes isolated, an optional memory limit, stdout/stderr captured per invocation.
//!
//! Both record an [`faas_api::Activation`] for every invocation and run asynchronous invocations
//! from a durable queue with retries. The `faas-front` crate serves a runner over HTTP (the
//! `faas dev` server).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use faas_api::{ActivationQuery, App, Context, Error, InvokeRequest, Payload, Runner};
//! use faas_runner_local::{LocalOptions, LocalRunner};
//!
//! async fn hello(cx: Context, name: String) -> Result<String, Error> {
//!     cx.logger().info(format!("greeting {name}"));
//!     Ok(format!("Hello, {name}!"))
//! }
//!
//! let runner = LocalRunner::in_process(App::new().function("hello", hello), LocalOptions::default()).unwrap();
//! let reply = runner.invoke(InvokeRequest::new("hello", Payload::json("Ada").unwrap())).await.unwrap();
//! assert_eq!(reply.payload.body().as_ref(), br#""Hello, Ada!""#);
//!
//! let recorded = runner.activations(ActivationQuery { id: Some(reply.activation_id.clone()), ..Default::default() });
//! let recorded = recorded.await.unwrap();
//! assert_eq!(recorded[0].function, "hello");
//! assert_eq!(recorded[0].status, faas_api::ActivationStatus::Success);
//! runner.shutdown().await;
//! # }
//! ```
#![warn(missing_docs)]

pub mod activations;
pub mod exec;
pub mod inproc;
pub mod pool;
pub mod queue;
pub mod runner;

/// The function side of process mode (the child protocol and the [`faas_api::Services`] of a
/// child), written once in `faas-host` on its shared HTTP loop.
pub use faas_host::local_child as child;

pub use runner::{LocalOptions, LocalRunner, Mode};
