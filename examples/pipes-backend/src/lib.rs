//! # faas-pipes
//!
//! The worked example of `docs/adding-a-backend.md`: a small, real backend written as a vendor
//! would write one in their own repository, against the kit's public crates only
//! (`faas-api`'s runner and backend SPI, `faas-host`, `faas-supervisor`, `faas-packaging`, and
//! `faas-cli` for its `faas` command). Each deployed function runs as supervised child processes
//! of the runner on this machine, which send it one JSON request per line on stdin and read one
//! JSON answer per line from its stdout ([`protocol`]).
//!
//! | guide section | here |
//! |---|---|
//! | 1. the runner | [`PipesRunner`] (feature `runner`) |
//! | 2. the backend | [`PipesBackend`] (feature `runner`) |
//! | 3. the host | [`PipesHost`], served with `faas::serve_with` |
//! | 5. the list of backends | `src/main.rs`: the `faas-pipes` command |
//! | 6. the acceptance test | `tests/conforms.rs`, with the probe `src/bin/pipes-probe.rs` |
//!
//! A project uses it with a profile in `faas.toml`, and `faas-pipes` as its `faas` command:
//!
//! ```toml
//! [backends.pipes]
//! kind = "pipes"
//! dir = ".faas/pipes"   # the state directory (the default)
//! ```
//!
//! What it claims ([`PipesRunner`]'s capabilities): warm reuse (each function keeps a pool of
//! warm instances for as long as the runner lives: the `faas` command's, the gateway's),
//! process isolation (an instance is a process), CloudEvents (event handlers take structured
//! events like any payload) and logs (each activation's stdout and stderr lines, kept in the
//! state directory for `faas logs`). Not async invocation: a queue with retries would die with
//! the `faas` command that started it. Its limits: 1 MiB requests and replies
//! ([`protocol::MAX_PAYLOAD`]), 15-minute timeouts, `concurrency` instances per function.
//!
//! What a function binary for it looks like:
//!
//! ```no_run
//! use faas::{App, Context, Error};
//!
//! async fn hello(_cx: Context, name: String) -> Result<String, Error> {
//!     Ok(format!("Hello, {name}!"))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     faas::serve_with(App::new().function("hello", hello), &[&faas_pipes::PipesHost]).await
//! }
//! ```
#![warn(missing_docs)]

pub mod host;
pub mod protocol;

#[cfg(feature = "runner")]
pub mod backend;
#[cfg(feature = "runner")]
pub mod runner;
#[cfg(feature = "runner")]
pub mod store;

#[cfg(feature = "runner")]
pub use backend::PipesBackend;
pub use host::PipesHost;
#[cfg(feature = "runner")]
pub use runner::PipesRunner;

/// The backend kind: `kind = "pipes"` in `faas.toml`, and what `Context::backend` reports.
pub const KIND: &str = "pipes";
