//! # faas-runner-openwhisk
//!
//! Apache OpenWhisk for faas. Two halves, each behind a feature, so a function binary carries
//! only the light one:
//!
//! - `host`: the function side, [`host::OpenWhiskHost`], the `faas` facade's `openwhisk` host
//!   adapter. The same binary serves a native action under the ActionLoop proxy, under
//!   `openwhisk/dockerskeleton` (`wsk action create --native`) and as a Docker action's own
//!   `/init` + `/run` server; `cx.invoke` and `cx.emit` work there ([`services`]).
//! - `deploy`: the control side, [`backend::OpenWhiskBackend`] and [`deploy::OpenWhiskRunner`],
//!   which package an app as a native action zip ([`package`]) and deploy, invoke, list and
//!   remove it, and read its activations, through the controller's REST API ([`settings`] for
//!   the profile).
//!
//! [`wire`] is OpenWhisk's wire format, shared by both.
#![warn(missing_docs)]

pub mod wire;

#[cfg(feature = "host")]
pub mod host;
#[cfg(feature = "host")]
pub mod services;

#[cfg(feature = "deploy")]
pub mod backend;
#[cfg(feature = "deploy")]
pub mod deploy;
#[cfg(feature = "deploy")]
pub mod package;
#[cfg(feature = "deploy")]
pub mod settings;
