//! Lambda packaging: building the app for Lambda's CPU and C library, and the reproducible
//! `bootstrap` zip the `provided.al2023` / `provided.al2` runtimes start.
//!
//! ## Which target to build for
//!
//! | `arch` | `libc` | Rust target | notes |
//! |---|---|---|---|
//! | `x86_64` | `gnu` (default) | `x86_64-unknown-linux-gnu` | native on most build machines |
//! | `arm64` | `gnu` | `aarch64-unknown-linux-gnu` | needs `rustup target add aarch64-unknown-linux-gnu` and a linker |
//! | `x86_64` | `musl` | `x86_64-unknown-linux-musl` | static binary, no glibc dependency |
//! | `arm64` | `musl` | `aarch64-unknown-linux-musl` | static binary |
//!
//! `provided.al2023` ships glibc 2.34 (and `provided.al2` glibc 2.26). A `gnu` binary built on a
//! machine with a newer glibc may fail to start on Lambda with `GLIBC_2.xx not found`
//! (`Runtime.ExitError`); build with `libc = "musl"` then, which links statically.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine;
use faas_api::{AppSpec, Config, Error, Progress};
use sha2::{Digest, Sha256};
use tokio::process::Command;

/// The name of the executable inside the zip, as the custom runtimes require.
pub const BOOTSTRAP: &str = "bootstrap";

/// A Lambda instruction set architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Arch {
    /// `x86_64`.
    #[default]
    X86_64,
    /// `arm64` (Graviton).
    Arm64,
}

impl Arch {
    /// Parses the Lambda name (`x86_64`, `arm64`; `amd64`/`aarch64` accepted too).
    ///
    /// ```
    /// use faas_runner_lambda::package::Arch;
    /// assert_eq!(Arch::parse("arm64").unwrap(), Arch::Arm64);
    /// assert!(Arch::parse("mips").unwrap_err().message().contains("x86_64, arm64"));
    /// ```
    pub fn parse(s: &str) -> Result<Arch, Error> {
        match s {
            "x86_64" | "amd64" | "x86-64" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            other => Err(Error::bad_input(format!("unknown Lambda architecture `{other}`; use one of: x86_64, arm64"))),
        }
    }

    /// The name Lambda uses in `Architectures`.
    pub fn as_lambda(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target triple for this architecture and C library.
    ///
    /// ```
    /// use faas_runner_lambda::package::{Arch, Libc};
    /// assert_eq!(Arch::Arm64.rust_target(Libc::Gnu), "aarch64-unknown-linux-gnu");
    /// assert_eq!(Arch::X86_64.rust_target(Libc::Musl), "x86_64-unknown-linux-musl");
    /// ```
    pub fn rust_target(self, libc: Libc) -> &'static str {
        match (self, libc) {
            (Arch::X86_64, Libc::Gnu) => "x86_64-unknown-linux-gnu",
            (Arch::X86_64, Libc::Musl) => "x86_64-unknown-linux-musl",
            (Arch::Arm64, Libc::Gnu) => "aarch64-unknown-linux-gnu",
            (Arch::Arm64, Libc::Musl) => "aarch64-unknown-linux-musl",
        }
    }

    /// The architecture of the machine running this code, when Lambda has it.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62,
            Arch::Arm64 => 183,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_lambda())
    }
}

/// The C library a Lambda binary links against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Libc {
    /// glibc, dynamically linked (the Rust default on Linux).
    #[default]
    Gnu,
    /// musl, statically linked: no dependency on the runtime image's glibc version.
    Musl,
}

impl Libc {
    /// Parses `gnu` or `musl`.
    pub fn parse(s: &str) -> Result<Libc, Error> {
        match s {
            "gnu" | "glibc" => Ok(Libc::Gnu),
            "musl" => Ok(Libc::Musl),
            other => Err(Error::bad_input(format!("unknown libc `{other}`; use one of: gnu, musl"))),
        }
    }

    fn host() -> Libc {
        if cfg!(target_env = "musl") {
            Libc::Musl
        } else {
            Libc::Gnu
        }
    }
}

/// What [`package_zip`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageInfo {
    /// The zip file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Base64 of the SHA-256 of the zip: what Lambda reports as `CodeSha256`.
    pub code_sha256: String,
}

/// Base64 of the SHA-256 of `bytes`, the form of Lambda's `CodeSha256`.
///
/// ```
/// assert_eq!(faas_runner_lambda::package::code_sha256(b""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
/// ```
pub fn code_sha256(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// Writes a zip at `out` holding `binary` as an executable `bootstrap` (mode 0755).
///
/// The zip is reproducible: one entry, a fixed timestamp (1980-01-01 00:00:00, the zip epoch),
/// deflate at a fixed level, no extra fields — the same binary always gives a byte-identical zip,
/// so an unchanged app has an unchanged `CodeSha256` and redeploying it is a no-op.
/// The file is written next to `out` and renamed into place.
pub fn package_zip(binary: &Path, out: &Path) -> Result<PackageInfo, Error> {
    let mut input = std::fs::File::open(binary)
        .map_err(|e| Error::bad_input(format!("cannot read the app binary {}: {e}", binary.display())))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::unavailable(format!("cannot create {}: {e}", dir.display())))?;
    }
    // Unique per call: two packagings of the same app at once (two `faas build`s, parallel tests)
    // each write their own file, and the rename keeps one whole zip.
    let tmp = out.with_extension(format!("zip.tmp{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
    let mut write = || -> Result<(), Error> {
        let file = std::fs::File::create(&tmp)
            .map_err(|e| Error::unavailable(format!("cannot create {}: {e}", tmp.display())))?;
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(6))
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o755);
        let fail = |e: &dyn std::fmt::Display| Error::unavailable(format!("cannot write {}: {e}", tmp.display()));
        zip.start_file(BOOTSTRAP, options).map_err(|e| fail(&e))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = input.read(&mut buf).map_err(|e| fail(&e))?;
            if n == 0 {
                break;
            }
            zip.write_all(&buf[..n]).map_err(|e| fail(&e))?;
        }
        zip.finish().map_err(|e| fail(&e))?.sync_all().map_err(|e| fail(&e))?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out).map_err(|e| Error::unavailable(format!("cannot write {}: {e}", out.display())))?;
    let bytes = std::fs::read(out).map_err(|e| Error::unavailable(format!("cannot read {}: {e}", out.display())))?;
    Ok(PackageInfo { path: out.to_path_buf(), size: bytes.len() as u64, code_sha256: code_sha256(&bytes) })
}

/// Copies `binary` to `out` without its debug info (`strip --strip-debug`; symbol names stay, so
/// backtraces stay readable): a `bootstrap` needs no DWARF, and a debug build is otherwise far
/// over Lambda's 50 MB upload limit. When `strip` is not installed, the binary is copied as is
/// and `false` is returned.
pub fn strip_debug_copy(binary: &Path, out: &Path) -> Result<bool, Error> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::unavailable(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::copy(binary, out)
        .map_err(|e| Error::unavailable(format!("cannot copy {} to {}: {e}", binary.display(), out.display())))?;
    match std::process::Command::new("strip").arg("--strip-debug").arg(out).status() {
        Ok(status) if status.success() => Ok(true),
        Ok(status) => Err(Error::unavailable(format!("`strip --strip-debug {}` failed: {status}", out.display()))),
        Err(_) => Ok(false),
    }
}

#[cfg(test)]
mod strip_tests {
    #[test]
    fn the_stripped_copy_lands_in_a_directory_that_does_not_exist_yet() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new").join("deeper").join("bootstrap");
        let me = std::env::current_exe().unwrap();
        super::strip_debug_copy(&me, &out).unwrap();
        let (a, b) = (std::fs::metadata(&me).unwrap().len(), std::fs::metadata(&out).unwrap().len());
        assert!(b > 0 && b <= a, "{b} vs {a}");
    }
}

/// Checks that `binary` is a Linux ELF executable for `arch`, so a wrong build is refused before
/// it reaches Lambda (where it would fail as `Runtime.ExitError` / `exec format error`).
pub fn check_binary_arch(binary: &Path, arch: Arch) -> Result<(), Error> {
    let mut head = [0u8; 20];
    let mut f = std::fs::File::open(binary)
        .map_err(|e| Error::bad_input(format!("cannot read the app binary {}: {e}", binary.display())))?;
    f.read_exact(&mut head)
        .map_err(|_| Error::bad_input(format!("{} is too short to be a Linux executable", binary.display())))?;
    if &head[..4] != b"\x7fELF" {
        return Err(Error::bad_input(format!(
            "{} is not a Linux (ELF) executable; Lambda runs Linux binaries only — build for target {}",
            binary.display(),
            arch.rust_target(Libc::Gnu)
        )));
    }
    let machine =
        if head[5] == 2 { u16::from_be_bytes([head[18], head[19]]) } else { u16::from_le_bytes([head[18], head[19]]) };
    if machine != arch.elf_machine() {
        let found = match machine {
            62 => "x86_64".to_string(),
            183 => "arm64".to_string(),
            m => format!("ELF machine {m}"),
        };
        return Err(Error::bad_input(format!(
            "{} is built for {found}, but the Lambda backend is configured for {arch}; \
             set `arch = \"{found}\"` in the backend profile or build for target {}",
            binary.display(),
            arch.rust_target(Libc::Gnu)
        ))
        .with_type("WrongArchitecture"));
    }
    Ok(())
}

/// Builds the app in `project_dir` for Lambda on `arch` (glibc, release mode) and describes it.
/// See [`build_for`].
pub async fn build_for_arch(
    project_dir: &Path,
    config: &Config,
    arch: Arch,
    progress: &dyn Progress,
) -> Result<AppSpec, Error> {
    build_for(project_dir, config, arch, Libc::Gnu, true, progress).await
}

/// Builds the app in `project_dir` for Lambda on `arch` with `libc` and describes it.
///
/// When that is the build machine's own target, this is a plain `cargo build`. Otherwise the app
/// is built twice: for the build machine (to run it with `FAAS_DESCRIBE=1` and read its manifest)
/// and with `--target <triple>` (the binary that is packaged). A target that is not installed is
/// refused with the commands that install it.
pub async fn build_for(
    project_dir: &Path,
    config: &Config,
    arch: Arch,
    libc: Libc,
    release: bool,
    progress: &dyn Progress,
) -> Result<AppSpec, Error> {
    let host_spec = faas_runner_local::build::build_app(project_dir, config, release, progress).await?;
    if Arch::host() == Some(arch) && Libc::host() == libc {
        return Ok(host_spec);
    }
    let target = arch.rust_target(libc);
    check_target_installed(target).await?;
    progress.step(&format!("cargo build --target {target}"));
    let binary = faas_runner_local::build::cargo_build_for(
        project_dir,
        config.app.bin.as_deref(),
        Some(target),
        release,
        progress,
    )
    .await?;
    check_binary_arch(&binary, arch)?;
    Ok(AppSpec { binary, ..host_spec })
}

/// Refuses a Rust target whose standard library is not installed, saying how to add it.
async fn check_target_installed(target: &str) -> Result<(), Error> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Error::unavailable(format!("cannot run `{rustc} --print sysroot`: {e}")))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if sysroot.join("lib/rustlib").join(target).join("lib").is_dir() {
        return Ok(());
    }
    let linker = match target {
        t if t.starts_with("aarch64") && t.ends_with("gnu") => {
            " and a linker for it (e.g. `apt-get install gcc-aarch64-linux-gnu` and \
             `export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc`), or use `cargo zigbuild`"
        }
        t if t.starts_with("aarch64") => {
            " and a linker for it (e.g. `export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld`), \
             or use `cargo zigbuild`"
        }
        _ => " (musl targets link statically with the bundled self-contained linker)",
    };
    Err(Error::bad_input(format!(
        "the Rust target `{target}` is not installed (not found in {}); add it with `rustup target add {target}`{linker}",
        sysroot.display()
    ))
    .with_type("TargetNotInstalled"))
}

#[cfg(test)]
mod tests {
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
        assert_eq!(a.code_sha256, code_sha256(&za));
        assert_eq!(a.size, za.len() as u64);

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
        assert!(!out.exists());
    }

    #[test]
    fn binaries_of_the_wrong_architecture_or_format_are_refused() {
        let me = std::env::current_exe().unwrap();
        let host = Arch::host().unwrap();
        check_binary_arch(&me, host).unwrap();
        let other = if host == Arch::X86_64 { Arch::Arm64 } else { Arch::X86_64 };
        let err = check_binary_arch(&me, other).unwrap_err();
        assert_eq!(err.error_type(), "WrongArchitecture");
        assert!(err.message().contains(&format!("configured for {other}")), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let script = fake_binary(dir.path(), b"#!/bin/sh\necho hi\n this is long enough");
        assert!(check_binary_arch(&script, host).unwrap_err().message().contains("not a Linux (ELF) executable"));
    }

    #[tokio::test]
    async fn a_target_that_is_not_installed_says_how_to_add_it() {
        let err = check_target_installed("riscv64gc-unknown-none-faas").await.unwrap_err();
        assert_eq!(err.error_type(), "TargetNotInstalled");
        assert!(err.message().contains("rustup target add riscv64gc-unknown-none-faas"), "{err}");
        let host = Arch::host().unwrap().rust_target(Libc::host());
        check_target_installed(host).await.unwrap();
    }
}
