//! # faas-runner-gcf
//!
//! Google Cloud Functions (2nd gen) for faas. This first part is the piece of the Functions
//! Framework contract every other part needs: [`legacy`], the conversion of 1st-gen background
//! events (and raw Pub/Sub pushes) to CloudEvents, as the reference Functions Framework does it.
//! Feature `host`: [`host::GcfHost`], the `faas` facade's `gcf` host adapter, which serves the
//! Functions Framework contract itself. The deploy side (feature `deploy`) and the local Cloud
//! Functions come next (issue 11).
#![warn(missing_docs)]

pub mod legacy;

#[cfg(feature = "host")]
pub mod host;
