//! # faas-runner-lambda
//!
//! AWS Lambda for faas.
//!
//! - feature `host`: the function side, [`host::LambdaHost`], the `faas` facade's `lambda` host
//!   adapter: when `AWS_LAMBDA_RUNTIME_API` is set it runs the Runtime API loop on the shared
//!   invocation layer of `faas-host`. No AWS SDK.
//! - feature `deploy`: the control side: `bootstrap` zip packaging (over `faas-packaging`) and a [`faas_api::Runner`]
//!   over aws-sdk-lambda, with an endpoint override for the local emulator.
#![warn(missing_docs)]

/// The payload envelope of JSON-only platforms (written once in `faas-host`).
pub use faas_host::envelope;

pub mod errors;

#[cfg(feature = "host")]
pub mod host;

#[cfg(feature = "host")]
pub mod services;

#[cfg(feature = "host")]
pub mod sigv4;

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
