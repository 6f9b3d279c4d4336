//! # faas-runner-gcf
//!
//! Google Cloud Functions (2nd gen) for faas. This first part is the piece of the Functions
//! Framework contract every other part needs: [`legacy`], the conversion of 1st-gen background
//! events (and raw Pub/Sub pushes) to CloudEvents, as the reference Functions Framework does it.
//! Feature `host`: [`host::GcfHost`], the `faas` facade's `gcf` host adapter, which serves the
//! Functions Framework contract itself. Feature `deploy`: the control side,
//! [`backend::GcfBackend`] and [`deploy::GcfRunner`], which package an app as a Python source
//! archive that runs the binary ([`package`]) and deploy, invoke, list and remove it, and read
//! its activations from Cloud Logging, through the Cloud Functions v2 API ([`settings`] for the
//! profile).
#![warn(missing_docs)]

pub mod legacy;

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
