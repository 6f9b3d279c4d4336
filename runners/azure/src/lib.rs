//! # faas-runner-azure
//!
//! Azure Functions for faas. Feature `host`: [`host::AzureHost`], the `faas` facade's `azure`
//! host adapter, which serves the custom-handler protocol a Functions host speaks to its
//! handler. Feature `deploy`: the control side, which packages an app as a function app folder
//! and zip and deploys, invokes, lists and removes it through ARM and Kudu.
#![warn(missing_docs)]

#[cfg(feature = "host")]
pub mod host;

#[cfg(feature = "deploy")]
pub mod backend;
#[cfg(feature = "deploy")]
pub mod deploy;
#[cfg(feature = "deploy")]
pub mod package;
#[cfg(feature = "deploy")]
pub mod settings;
