//! Lambda packaging: building the app for Lambda's CPU and C library, and the reproducible
//! `bootstrap` zip the `provided.al2023` / `provided.al2` runtimes start.
//!
//! The targets themselves (architecture, libc, triple, the ELF check, stripping) and the zip
//! builder are in [`faas_packaging`]; this module holds what is Lambda's: the `bootstrap` name and
//! mode, and the default architecture and C library of a `lambda` profile. See
//! [`faas_packaging::target`] for which Rust target each `arch`/`libc` builds.
//!
//! `provided.al2023` ships glibc 2.34 (and `provided.al2` glibc 2.26). A `gnu` binary built on a
//! machine with a newer glibc may fail to start on Lambda with `GLIBC_2.xx not found`
//! (`Runtime.ExitError`); build with `libc = "musl"` then, which links statically.

use std::path::Path;

use faas_api::{AppSpec, Config, Error, Progress};
use faas_packaging::zip::{write_app_zip, Entry, ZipInfo};
use faas_packaging::{Arch, Libc, Target};

/// The name of the executable inside the zip, as the custom runtimes require.
pub const BOOTSTRAP: &str = "bootstrap";

/// The Unix mode of `bootstrap` in the zip: Lambda must be able to execute it.
pub const BOOTSTRAP_MODE: u32 = 0o755;

/// The architecture of a `lambda` profile with no `arch` key (Lambda's own default).
pub const DEFAULT_ARCH: Arch = Arch::X86_64;

/// The C library of a `lambda` profile with no `libc` key.
pub const DEFAULT_LIBC: Libc = Libc::Gnu;

/// Writes a zip at `out` holding `binary` as an executable `bootstrap` (mode 0755).
///
/// The zip is reproducible ([`faas_packaging::zip`]): the same binary always gives a
/// byte-identical zip, so an unchanged app has an unchanged `CodeSha256` and redeploying it is a
/// no-op.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let binary = dir.path().join("app");
/// std::fs::write(&binary, b"#!/bin/sh\necho hi\n").unwrap();
/// let a = faas_runner_lambda::package::package_zip(&binary, &dir.path().join("a.zip")).unwrap();
/// let b = faas_runner_lambda::package::package_zip(&binary, &dir.path().join("b.zip")).unwrap();
/// assert_eq!(a.code_sha256, b.code_sha256);
/// ```
pub fn package_zip(binary: &Path, out: &Path) -> Result<ZipInfo, Error> {
    write_app_zip(vec![Entry::file(BOOTSTRAP, binary, BOOTSTRAP_MODE)], out)
}

/// Builds the app in `project_dir` for Lambda on `arch` with `libc` and describes it
/// ([`faas_packaging::build::build_for_target`]: a plain `cargo build` when that is the build
/// machine's own target, else a host build to read the manifest and a `--target` build to package).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), faas_api::Error> {
/// use std::path::Path;
/// use faas_api::{Config, NoProgress};
/// use faas_packaging::{Arch, Libc};
/// let config = Config::load(Path::new("examples/hello/faas.toml"))?;
/// let app = faas_runner_lambda::package::build_for(Path::new("examples/hello"), &config, Arch::Arm64, Libc::Musl, true, &NoProgress).await?;
/// # Ok(()) }
/// ```
pub async fn build_for(
    project_dir: &Path,
    config: &Config,
    arch: Arch,
    libc: Libc,
    release: bool,
    progress: &dyn Progress,
) -> Result<AppSpec, Error> {
    faas_packaging::build::build_for_target(project_dir, config, Target::new(arch, libc), release, progress).await
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::path::PathBuf;

    use super::*;

    fn fake_binary(dir: &Path, content: &[u8]) -> PathBuf {
        let p = dir.join("app");
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn the_zip_holds_an_executable_bootstrap_and_is_byte_identical_for_the_same_input() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let bin = fake_binary(dir.path(), &content);
        let a = package_zip(&bin, &dir.path().join("a/app.zip")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100)); // a different mtime must not matter
        let b = package_zip(&bin, &dir.path().join("b.zip")).unwrap();
        let (za, zb) = (std::fs::read(&a.path).unwrap(), std::fs::read(&b.path).unwrap());
        assert_eq!(za, zb, "same input, same bytes");
        assert_eq!(a.code_sha256, b.code_sha256);
        assert_eq!(a.code_sha256, faas_packaging::code_sha256(&za));
        assert_eq!(a.size, za.len() as u64);
        // The CodeSha256 this binary has always had: packaging must not change deployed digests.
        assert_eq!(a.code_sha256, "ahQ16s6gXjc9S24D6SgViAPQMarHUK8AHop6U1+bIhk=");

        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(za)).unwrap();
        assert_eq!(archive.len(), 1);
        let mut entry = archive.by_index(0).unwrap();
        assert_eq!(entry.name(), "bootstrap");
        assert_eq!(entry.unix_mode().unwrap() & 0o777, 0o755);
        assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
        let t = entry.last_modified().unwrap();
        assert_eq!((t.year(), t.month(), t.day(), t.hour(), t.minute()), (1980, 1, 1, 0, 0));
        let mut back = Vec::new();
        entry.read_to_end(&mut back).unwrap();
        assert_eq!(back, content);
    }

    #[test]
    fn a_different_binary_gives_a_different_code_sha() {
        let dir = tempfile::tempdir().unwrap();
        let a = package_zip(&fake_binary(dir.path(), b"one"), &dir.path().join("a.zip")).unwrap();
        let b = package_zip(&fake_binary(dir.path(), b"two"), &dir.path().join("b.zip")).unwrap();
        assert_ne!(a.code_sha256, b.code_sha256);
    }

    #[test]
    fn a_missing_binary_is_a_clear_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("app.zip");
        let err = package_zip(&dir.path().join("nope"), &out).unwrap_err();
        assert!(err.message().contains("cannot read the app binary"), "{err}");
        assert_eq!(err.kind(), faas_api::ErrorKind::BadInput);
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no temporary file left");
    }
}
