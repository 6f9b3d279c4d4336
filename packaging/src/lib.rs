//! # faas-packaging
//!
//! Building and packaging a faas app, written once for every backend:
//!
//! - [`build`]: `cargo build` of the project and the manifest the app binary prints when run with
//!   `FAAS_DESCRIBE=1`, merged with `faas.toml` into an [`faas_api::AppSpec`]; for a backend that
//!   runs Linux binaries, [`build::build_for_target`] cross-compiles for its [`Target`];
//! - [`target`]: architecture, C library and target triple, the ELF check of a built binary,
//!   stripping debug info, and the "add this target" hint;
//! - [`zip`]: a reproducible zip of any entries;
//! - [`unpack`]: safe unpacking of an uploaded zip, with limits (what an emulator needs);
//! - [`code_sha256`] and [`sha256_hex`]: digests of a package.
//!
//! What a platform adds (the name of its executable, its default architecture, its size limits)
//! stays in that platform's runner and emulator.
//!
//! ```
//! use faas_packaging::zip::{Entry, zip_bytes};
//! use faas_packaging::unpack::{Limits, unpack};
//!
//! let zip = zip_bytes(vec![Entry::bytes("bootstrap", b"#!/bin/sh\necho hi\n".to_vec(), 0o755)]).unwrap();
//! println!("CodeSha256 {}", faas_packaging::code_sha256(&zip));
//! let dir = tempfile::tempdir().unwrap();
//! let limits = Limits { max_zipped: 50 << 20, max_unzipped: 250 << 20, max_entries: 20_000 };
//! unpack(&zip, &dir.path().join("code"), limits).unwrap();
//! assert!(dir.path().join("code/bootstrap").exists());
//! ```
#![warn(missing_docs)]

pub mod build;
mod digest;
pub mod target;
pub mod unpack;
pub mod zip;

pub use digest::{code_sha256, package_artifact, sha256_hex};
pub use target::{
    check_arch, check_binary, check_target_installed, strip_debug_copy, with_stripped_copy, Arch, ElfInfo, Libc,
    Linkage, Target, TargetError,
};
