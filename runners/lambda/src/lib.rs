//! # faas-runner-lambda
//!
//! AWS Lambda for faas (PROTOCOLS.md §1).
//!
//! - feature `host`: the function side. `faas::serve` calls [`host::serve`] when
//!   `AWS_LAMBDA_RUNTIME_API` is set and runs the Runtime API loop. No AWS SDK.
//! - feature `deploy`: the control side: `bootstrap` zip packaging (over `faas-packaging`) and a [`faas_api::Runner`]
//!   over aws-sdk-lambda, with an endpoint override for the local emulator.
#![warn(missing_docs)]

pub mod envelope;

#[cfg(feature = "host")]
pub mod host;

#[cfg(feature = "deploy")]
pub mod backend;
#[cfg(feature = "deploy")]
pub use backend::LambdaBackend;

#[cfg(feature = "deploy")]
pub mod deploy;

#[cfg(feature = "deploy")]
pub mod settings;

#[cfg(feature = "deploy")]
pub mod package;

#[cfg(feature = "deploy")]
pub mod credentials;

#[cfg(feature = "deploy")]
mod aws_errors;

pub mod logs;
