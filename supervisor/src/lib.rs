//! # faas-supervisor
//!
//! Runs function instances as child processes, for the local runner's process pool and for every
//! platform emulator, so that each of them writes only its protocol:
//!
//! - [`ProcessSpec`] / [`Process`]: start a program with a **cleared environment** (only what the
//!   caller sets, plus [`BASE_ENV`] when asked), resource [`Limit`]s, in **its own process
//!   group**; killing it kills the group, so what the function started dies with it (also when
//!   the instance's own process exits); a **readiness** check with a timeout; its [`Exit`]
//!   described in words ([`Wording`]); extra [`Pipe`]s on chosen descriptors (a result
//!   channel on fd 3, stdout apart from stderr, a stdin we can close);
//! - log capture: lines from pipes split per invocation by a marker line ([`LineLog`]), or one
//!   output file read from the last offset on ([`FileLog`]); bounded tails ([`last_lines`],
//!   [`tail_str`]);
//! - [`Pool`]: warm reuse, retirement on redeploy, idle expiry, and a concurrency [`Gate`] that
//!   queues or rejects ([`WhenBusy`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use faas_supervisor::{Exit, LineCapture, Limit, Output, ProcessSpec, Wording};
//!
//! let spec = ProcessSpec::new("/bin/sh")
//!     .args(["-c", "echo \"started with ${PORT:-no port}\"; exit 3"])
//!     .limit(Limit::Data, 256 << 20)
//!     .output(Output::Lines(LineCapture::default()));
//! let mut process = spec.spawn().unwrap();
//! let lines = process.lines().unwrap().until_closed(Duration::from_secs(5)).await;
//! assert_eq!(lines, ["started with no port"]); // our environment does not leak in
//! let exit = process.wait().await;
//! assert_eq!(exit, Exit::Code(3));
//! assert_eq!(exit.describe(Wording::Go), "exit status 3");
//! # }
//! ```
#![warn(missing_docs)]

mod exit;
mod gate;
mod logs;
mod pool;
mod process;

pub use exit::{Exit, Wording, signal_name};
pub use gate::{Gate, GateError, WhenBusy};
pub use logs::{FileCapture, FileLog, LineCapture, LineLog, last_lines, tail_str};
pub use pool::{Instance, Lease, Pool, PoolConfig};
pub use process::{BASE_ENV, ExitWatch, Input, Limit, NotReady, Output, Pipe, Process, ProcessSpec, SpawnError};
