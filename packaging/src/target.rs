//! Linux targets: the CPU architecture and C library a function binary is built for, the Rust
//! target triple they make, the check that a built binary is an ELF executable of that target,
//! stripping debug info, and the "add this target" hint when its standard library is missing.
//!
//! | [`Arch`] | [`Libc`] | Rust target | notes |
//! |---|---|---|---|
//! | `x86_64` | `gnu` | `x86_64-unknown-linux-gnu` | native on most build machines |
//! | `arm64` | `gnu` | `aarch64-unknown-linux-gnu` | needs `rustup target add aarch64-unknown-linux-gnu` and a linker |
//! | `x86_64` | `musl` | `x86_64-unknown-linux-musl` | static binary, no glibc dependency |
//! | `arm64` | `musl` | `aarch64-unknown-linux-musl` | static binary |
//!
//! A `gnu` binary is linked dynamically against the glibc of the build machine; one built on a
//! machine with a newer glibc than the platform's image may fail to start there
//! (`GLIBC_2.xx not found`). A `musl` binary links statically and runs on any Linux.
//!
//! ```
//! use faas_packaging::{Arch, Libc, Target};
//!
//! let target = Target::new(Arch::parse("arm64").unwrap(), Libc::parse("musl").unwrap());
//! assert_eq!(target.triple(), "aarch64-unknown-linux-musl");
//! assert_eq!(target.to_string(), "aarch64-unknown-linux-musl");
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// Why a target could not be parsed, a binary is not of its target, or a target step failed.
///
/// Each converts into a [`faas_api::Error`]: bad input (with the types `WrongArchitecture`,
/// `WrongLibc` and `TargetNotInstalled` where a caller may want to tell them apart), or
/// unavailable when a tool could not run.
///
/// ```
/// use faas_packaging::{Arch, TargetError};
/// let err = Arch::parse("mips").unwrap_err();
/// assert!(matches!(err, TargetError::UnknownArch(ref a) if a == "mips"));
/// assert_eq!(faas_api::Error::from(err).kind(), faas_api::ErrorKind::BadInput);
/// ```
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// An architecture name that is not `x86_64` or `arm64` (or an alias of them).
    #[error("unknown architecture `{0}`; use one of: x86_64, arm64")]
    UnknownArch(String),
    /// A C library name that is not `gnu` or `musl`.
    #[error("unknown libc `{0}`; use one of: gnu, musl")]
    UnknownLibc(String),
    /// The binary could not be opened or read.
    #[error("cannot read the app binary {}: {source}", path.display())]
    Unreadable {
        /// The binary.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The binary is shorter than an ELF header or its program headers say.
    #[error("{} is too short to be a Linux executable", path.display())]
    Truncated {
        /// The binary.
        path: PathBuf,
    },
    /// The binary is not an ELF file at all (a script, a macOS or Windows binary...).
    #[error("{} is not a Linux (ELF) executable; the backend runs Linux binaries only — build for target {expected}", path.display())]
    NotElf {
        /// The binary.
        path: PathBuf,
        /// The triple it should have been built for.
        expected: &'static str,
    },
    /// The binary is an ELF executable for another CPU.
    #[error(
        "{} is built for {found}, but the backend is configured for {expected}; set `arch = \"{found}\"` in the \
         backend profile or build for target {triple}",
        path.display()
    )]
    WrongArchitecture {
        /// The binary.
        path: PathBuf,
        /// What it is built for (`x86_64`, `arm64`, or `ELF machine N`).
        found: String,
        /// The architecture expected.
        expected: Arch,
        /// The triple to build for instead.
        triple: &'static str,
    },
    /// A binary expected to be a static musl binary loads a dynamic linker that is not musl's.
    #[error(
        "{} is linked dynamically (interpreter {interpreter}), but target {triple} makes static binaries; \
         it was not built for that target",
        path.display()
    )]
    WrongLibc {
        /// The binary.
        path: PathBuf,
        /// Its `PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`.
        interpreter: String,
        /// The triple expected.
        triple: &'static str,
    },
    /// The Rust standard library of the target is not installed.
    #[error(
        "the Rust target `{triple}` is not installed (not found in {}); add it with `rustup target add {triple}`{hint}",
        sysroot.display()
    )]
    NotInstalled {
        /// The target triple.
        triple: String,
        /// The sysroot searched.
        sysroot: PathBuf,
        /// What else the target needs (a linker, typically), starting with a space or empty.
        hint: &'static str,
    },
    /// A tool (`rustc`, `strip`) could not be run, or failed.
    #[error("{0}")]
    Tool(String),
    /// A file could not be copied or a directory created.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl From<TargetError> for faas_api::Error {
    fn from(e: TargetError) -> Self {
        let message = e.to_string();
        match e {
            TargetError::WrongArchitecture { .. } => faas_api::Error::bad_input(message).with_type("WrongArchitecture"),
            TargetError::WrongLibc { .. } => faas_api::Error::bad_input(message).with_type("WrongLibc"),
            TargetError::NotInstalled { .. } => faas_api::Error::bad_input(message).with_type("TargetNotInstalled"),
            TargetError::Tool(_) | TargetError::Write { .. } => faas_api::Error::unavailable(message),
            TargetError::UnknownArch(_)
            | TargetError::UnknownLibc(_)
            | TargetError::Unreadable { .. }
            | TargetError::Truncated { .. }
            | TargetError::NotElf { .. } => faas_api::Error::bad_input(message),
        }
    }
}

/// A CPU architecture of a Linux function platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// `x86_64` (amd64).
    X86_64,
    /// `arm64` (aarch64).
    Arm64,
}

impl Arch {
    /// Parses `x86_64` or `arm64` (`amd64`, `x86-64` and `aarch64` accepted too).
    ///
    /// ```
    /// use faas_packaging::Arch;
    /// assert_eq!(Arch::parse("arm64").unwrap(), Arch::Arm64);
    /// assert_eq!(Arch::parse("amd64").unwrap(), Arch::X86_64);
    /// assert!(Arch::parse("mips").unwrap_err().to_string().contains("x86_64, arm64"));
    /// ```
    pub fn parse(s: &str) -> Result<Arch, TargetError> {
        match s {
            "x86_64" | "amd64" | "x86-64" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            other => Err(TargetError::UnknownArch(other.to_string())),
        }
    }

    /// The name faas uses (and Lambda's `Architectures`): `x86_64` or `arm64`.
    ///
    /// ```
    /// assert_eq!(faas_packaging::Arch::Arm64.as_str(), "arm64");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The architecture of the machine running this code, when it is one of these.
    ///
    /// ```
    /// # #[cfg(target_arch = "x86_64")]
    /// assert_eq!(faas_packaging::Arch::host(), Some(faas_packaging::Arch::X86_64));
    /// ```
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// The `e_machine` of an ELF file for this architecture (`EM_X86_64` = 62, `EM_AARCH64` = 183).
    ///
    /// ```
    /// use faas_packaging::Arch;
    /// assert_eq!(Arch::X86_64.elf_machine(), 62);
    /// assert_eq!(Arch::from_elf_machine(183), Some(Arch::Arm64));
    /// ```
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62,
            Arch::Arm64 => 183,
        }
    }

    /// The architecture of an ELF `e_machine`, when it is one of these.
    pub fn from_elf_machine(machine: u16) -> Option<Arch> {
        [Arch::X86_64, Arch::Arm64].into_iter().find(|a| a.elf_machine() == machine)
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The C library a Linux binary links against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Libc {
    /// glibc, dynamically linked (the Rust default on Linux).
    Gnu,
    /// musl, statically linked: no dependency on the platform image's glibc version.
    Musl,
}

impl Libc {
    /// Parses `gnu` (or `glibc`) or `musl`.
    ///
    /// ```
    /// use faas_packaging::Libc;
    /// assert_eq!(Libc::parse("glibc").unwrap(), Libc::Gnu);
    /// assert!(Libc::parse("bionic").unwrap_err().to_string().contains("gnu, musl"));
    /// ```
    pub fn parse(s: &str) -> Result<Libc, TargetError> {
        match s {
            "gnu" | "glibc" => Ok(Libc::Gnu),
            "musl" => Ok(Libc::Musl),
            other => Err(TargetError::UnknownLibc(other.to_string())),
        }
    }

    /// `gnu` or `musl`, as in the target triple.
    ///
    /// ```
    /// assert_eq!(faas_packaging::Libc::Musl.as_str(), "musl");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Libc::Gnu => "gnu",
            Libc::Musl => "musl",
        }
    }

    /// The C library this code was built against.
    ///
    /// ```
    /// # #[cfg(all(target_os = "linux", target_env = "gnu"))]
    /// assert_eq!(faas_packaging::Libc::host(), faas_packaging::Libc::Gnu);
    /// ```
    pub fn host() -> Libc {
        if cfg!(target_env = "musl") {
            Libc::Musl
        } else {
            Libc::Gnu
        }
    }
}

impl std::fmt::Display for Libc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Linux build target: an architecture and a C library. Its [`Display`](std::fmt::Display) is
/// the Rust target triple.
///
/// ```
/// use faas_packaging::{Arch, Libc, Target};
/// assert_eq!(Target::new(Arch::Arm64, Libc::Gnu).triple(), "aarch64-unknown-linux-gnu");
/// assert_eq!(Target::new(Arch::X86_64, Libc::Musl).triple(), "x86_64-unknown-linux-musl");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// The CPU architecture.
    pub arch: Arch,
    /// The C library.
    pub libc: Libc,
}

impl Target {
    /// The target for `arch` and `libc`.
    pub fn new(arch: Arch, libc: Libc) -> Target {
        Target { arch, libc }
    }

    /// The build machine's own target, when it is a Linux target of these architectures.
    ///
    /// ```
    /// # #[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
    /// assert_eq!(faas_packaging::Target::host().unwrap().triple(), "x86_64-unknown-linux-gnu");
    /// ```
    pub fn host() -> Option<Target> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        Arch::host().map(|arch| Target::new(arch, Libc::host()))
    }

    /// The Rust target triple (`cargo build --target`).
    pub fn triple(self) -> &'static str {
        match (self.arch, self.libc) {
            (Arch::X86_64, Libc::Gnu) => "x86_64-unknown-linux-gnu",
            (Arch::X86_64, Libc::Musl) => "x86_64-unknown-linux-musl",
            (Arch::Arm64, Libc::Gnu) => "aarch64-unknown-linux-gnu",
            (Arch::Arm64, Libc::Musl) => "aarch64-unknown-linux-musl",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.triple())
    }
}

/// How an ELF executable is linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linkage {
    /// No program interpreter: the kernel starts it directly (musl, or `crt-static`).
    Static,
    /// Started by a dynamic linker.
    Dynamic {
        /// The program interpreter (`PT_INTERP`), e.g. `/lib64/ld-linux-x86-64.so.2`.
        interpreter: String,
    },
}

/// What the headers of an ELF executable say.
///
/// ```
/// let me = std::env::current_exe().unwrap();
/// let info = faas_packaging::ElfInfo::read(&me).unwrap();
/// assert_eq!(info.arch, faas_packaging::Arch::host());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// `e_machine`.
    pub machine: u16,
    /// The architecture of `e_machine`, when it is one faas builds for.
    pub arch: Option<Arch>,
    /// Whether it needs a dynamic linker, and which.
    pub linkage: Linkage,
}

const PT_INTERP: u32 = 3;

impl ElfInfo {
    /// Reads the ELF header and program headers of `binary`. A file that is not ELF is
    /// [`TargetError::NotElf`] (naming the host's triple as the one to build for).
    pub fn read(binary: &Path) -> Result<ElfInfo, TargetError> {
        let unreadable = |source| TargetError::Unreadable { path: binary.to_path_buf(), source };
        let mut file = std::fs::File::open(binary).map_err(unreadable)?;
        // Program headers sit right after the 64-byte header in every linker's output; read enough
        // for them and an interpreter path, and fall back to the whole file otherwise.
        let mut bytes = Vec::with_capacity(16 * 1024);
        file.by_ref().take(16 * 1024).read_to_end(&mut bytes).map_err(unreadable)?;
        match Self::parse(binary, &bytes) {
            Err(TargetError::Truncated { .. }) if bytes.len() == 16 * 1024 => {
                file.read_to_end(&mut bytes).map_err(unreadable)?;
                Self::parse(binary, &bytes)
            }
            other => other,
        }
    }

    fn parse(binary: &Path, b: &[u8]) -> Result<ElfInfo, TargetError> {
        let truncated = || TargetError::Truncated { path: binary.to_path_buf() };
        if b.len() < 20 {
            return Err(truncated());
        }
        if &b[..4] != b"\x7fELF" {
            let expected = Target::host().unwrap_or(Target::new(Arch::X86_64, Libc::Gnu)).triple();
            return Err(TargetError::NotElf { path: binary.to_path_buf(), expected });
        }
        let (is64, big) = (b[4] == 2, b[5] == 2);
        let field = |at: usize, len: usize| -> Result<u64, TargetError> {
            let s = b.get(at..at + len).ok_or_else(truncated)?;
            let mut v = 0u64;
            for i in 0..len {
                let byte = if big { s[i] } else { s[len - 1 - i] };
                v = (v << 8) | u64::from(byte);
            }
            Ok(v)
        };
        let machine = field(18, 2)? as u16;
        let (phoff, phentsize, phnum) = if is64 {
            (field(32, 8)?, field(54, 2)?, field(56, 2)?)
        } else {
            (field(28, 4)?, field(42, 2)?, field(44, 2)?)
        };
        let mut linkage = Linkage::Static;
        for i in 0..phnum {
            let at = usize::try_from(phoff + i * phentsize).map_err(|_| truncated())?;
            if field(at, 4)? as u32 != PT_INTERP {
                continue;
            }
            let (offset, size) =
                if is64 { (field(at + 8, 8)?, field(at + 32, 8)?) } else { (field(at + 4, 4)?, field(at + 16, 4)?) };
            let start = usize::try_from(offset).map_err(|_| truncated())?;
            let end = start.checked_add(usize::try_from(size).map_err(|_| truncated())?).ok_or_else(truncated)?;
            let raw = b.get(start..end).ok_or_else(truncated)?;
            let interpreter = String::from_utf8_lossy(raw.split(|&c| c == 0).next().unwrap_or_default()).into_owned();
            linkage = Linkage::Dynamic { interpreter };
            break;
        }
        Ok(ElfInfo { machine, arch: Arch::from_elf_machine(machine), linkage })
    }
}

/// Checks that `binary` is a Linux ELF executable for `arch`, so a wrong build is refused before it
/// reaches the platform (where it would fail with `exec format error`).
///
/// ```
/// use faas_packaging::{Arch, TargetError, check_arch};
/// let me = std::env::current_exe().unwrap();
/// let host = Arch::host().unwrap();
/// check_arch(&me, host).unwrap();
/// let other = if host == Arch::X86_64 { Arch::Arm64 } else { Arch::X86_64 };
/// assert!(matches!(check_arch(&me, other), Err(TargetError::WrongArchitecture { .. })));
/// ```
pub fn check_arch(binary: &Path, arch: Arch) -> Result<ElfInfo, TargetError> {
    let info = ElfInfo::read(binary).map_err(|e| match e {
        TargetError::NotElf { path, .. } => {
            TargetError::NotElf { path, expected: Target::new(arch, Libc::Gnu).triple() }
        }
        other => other,
    })?;
    if info.arch != Some(arch) {
        let found = info.arch.map(|a| a.to_string()).unwrap_or_else(|| format!("ELF machine {}", info.machine));
        return Err(TargetError::WrongArchitecture {
            path: binary.to_path_buf(),
            found,
            expected: arch,
            triple: Target::new(arch, Libc::Gnu).triple(),
        });
    }
    Ok(info)
}

/// [`check_arch`], and for a `musl` target also that the binary does not load another C
/// library's dynamic linker (a `gnu` build packaged as `musl`).
///
/// ```
/// use faas_packaging::{Arch, Libc, Linkage, Target, TargetError, check_binary};
/// let me = std::env::current_exe().unwrap();
/// # #[cfg(all(target_os = "linux", target_env = "gnu"))] {
/// let host = Target::host().unwrap();
/// assert!(matches!(check_binary(&me, host).unwrap().linkage, Linkage::Dynamic { .. }));
/// let musl = Target::new(host.arch, Libc::Musl);
/// assert!(matches!(check_binary(&me, musl), Err(TargetError::WrongLibc { .. })));
/// # }
/// ```
pub fn check_binary(binary: &Path, target: Target) -> Result<ElfInfo, TargetError> {
    let info = check_arch(binary, target.arch)?;
    if let (Libc::Musl, Linkage::Dynamic { interpreter }) = (target.libc, &info.linkage) {
        if !interpreter.contains("ld-musl") {
            return Err(TargetError::WrongLibc {
                path: binary.to_path_buf(),
                interpreter: interpreter.clone(),
                triple: target.triple(),
            });
        }
    }
    Ok(info)
}

/// Copies `binary` to `out` without its debug info (`strip --strip-debug`; symbol names stay, so
/// backtraces stay readable): a deployed function needs no DWARF, and a debug build is otherwise
/// far over the upload limits of the platforms. The directory of `out` is created. When `strip` is
/// not installed, the binary is copied as is and `false` is returned.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let out = dir.path().join("bootstrap");
/// let me = std::env::current_exe().unwrap();
/// faas_packaging::strip_debug_copy(&me, &out).unwrap();
/// assert!(std::fs::metadata(&out).unwrap().len() <= std::fs::metadata(&me).unwrap().len());
/// ```
pub fn strip_debug_copy(binary: &Path, out: &Path) -> Result<bool, TargetError> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| TargetError::Write { path: dir.to_path_buf(), source })?;
    }
    std::fs::copy(binary, out).map_err(|source| TargetError::Write { path: out.to_path_buf(), source })?;
    match std::process::Command::new("strip").arg("--strip-debug").arg(out).status() {
        Ok(status) if status.success() => Ok(true),
        Ok(status) => Err(TargetError::Tool(format!("`strip --strip-debug {}` failed: {status}", out.display()))),
        Err(_) => {
            tracing::debug!("`strip` is not installed; {} keeps its debug info", out.display());
            Ok(false)
        }
    }
}

/// Runs `package` on a copy of `binary` with its debug info stripped ([`strip_debug_copy`]; the
/// binary as it is, with a warning, when `strip` is not installed), made next to `out` under a
/// name of its own (also between threads of one process) and removed afterwards.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let me = std::env::current_exe().unwrap();
/// let out = dir.path().join("app.zip");
/// let size = faas_packaging::with_stripped_copy(&me, &out, |copy| {
///     Ok(std::fs::metadata(copy).unwrap().len())
/// }).unwrap();
/// assert!(size <= std::fs::metadata(&me).unwrap().len());
/// assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the copy is gone");
/// ```
pub fn with_stripped_copy<T>(
    binary: &Path,
    out: &Path,
    package: impl FnOnce(&Path) -> Result<T, faas_api::Error>,
) -> Result<T, faas_api::Error> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stripped = out.with_extension(format!("stripped.{}-{seq}", std::process::id()));
    let result = match strip_debug_copy(binary, &stripped) {
        Ok(stripped_it) => {
            if !stripped_it {
                tracing::warn!("`strip` is not installed; packaging the binary with its debug info");
            }
            package(&stripped)
        }
        Err(e) => Err(e.into()),
    };
    let _ = std::fs::remove_file(&stripped);
    result
}

/// Refuses a Rust target whose standard library is not installed, saying how to add it
/// (`rustup target add ...`, and the linker a cross build needs).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use faas_packaging::{TargetError, check_target_installed};
/// let err = check_target_installed("riscv64gc-unknown-none-faas").await.unwrap_err();
/// assert!(matches!(err, TargetError::NotInstalled { .. }));
/// assert!(err.to_string().contains("rustup target add riscv64gc-unknown-none-faas"), "{err}");
/// # }
/// ```
pub async fn check_target_installed(triple: &str) -> Result<(), TargetError> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| TargetError::Tool(format!("cannot run `{rustc} --print sysroot`: {e}")))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if sysroot.join("lib/rustlib").join(triple).join("lib").is_dir() {
        return Ok(());
    }
    let hint = match triple {
        t if t.starts_with("aarch64") && t.ends_with("gnu") => {
            " and a linker for it (e.g. `apt-get install gcc-aarch64-linux-gnu` and \
             `export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc`), or use `cargo zigbuild`"
        }
        t if t.starts_with("aarch64") => {
            " and a linker for it (e.g. `export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld`), \
             or use `cargo zigbuild`"
        }
        t if t.ends_with("musl") => " (musl targets link statically with the bundled self-contained linker)",
        _ => "",
    };
    Err(TargetError::NotInstalled { triple: triple.to_string(), sysroot, hint })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_binary(dir: &Path, content: &[u8]) -> PathBuf {
        let p = dir.join("app");
        std::fs::write(&p, content).unwrap();
        p
    }

    /// A minimal 64-bit ELF: header, one program header, optionally a PT_INTERP pointing at `interp`.
    fn elf64(machine: u16, big_endian: bool, interp: Option<&str>) -> Vec<u8> {
        let put = |v: &mut Vec<u8>, at: usize, value: u64, len: usize| {
            for i in 0..len {
                let shift = if big_endian { 8 * (len - 1 - i) } else { 8 * i };
                v[at + i] = (value >> shift) as u8;
            }
        };
        let mut b = vec![0u8; 64 + 56 + 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = if big_endian { 2 } else { 1 };
        put(&mut b, 18, u64::from(machine), 2);
        put(&mut b, 32, 64, 8); // e_phoff
        put(&mut b, 54, 56, 2); // e_phentsize
        put(&mut b, 56, 1, 2); // e_phnum
        let p_type = if interp.is_some() { u64::from(PT_INTERP) } else { 1 }; // PT_LOAD otherwise
        put(&mut b, 64, p_type, 4);
        if let Some(i) = interp {
            put(&mut b, 64 + 8, 120, 8);
            put(&mut b, 64 + 32, i.len() as u64 + 1, 8);
            b[120..120 + i.len()].copy_from_slice(i.as_bytes());
        }
        b
    }

    #[test]
    fn binaries_of_the_wrong_architecture_or_format_are_refused() {
        let me = std::env::current_exe().unwrap();
        let host = Arch::host().unwrap();
        check_arch(&me, host).unwrap();
        let other = if host == Arch::X86_64 { Arch::Arm64 } else { Arch::X86_64 };
        let err: faas_api::Error = check_arch(&me, other).unwrap_err().into();
        assert_eq!(err.error_type(), "WrongArchitecture");
        assert!(err.message().contains(&format!("configured for {other}")), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let script = fake_binary(dir.path(), b"#!/bin/sh\necho hi\n this is long enough");
        assert!(check_arch(&script, host).unwrap_err().to_string().contains("not a Linux (ELF) executable"));
        let short = fake_binary(dir.path(), b"\x7fELF");
        assert!(matches!(check_arch(&short, host), Err(TargetError::Truncated { .. })));
        let missing = dir.path().join("nope");
        assert!(check_arch(&missing, host).unwrap_err().to_string().contains("cannot read the app binary"));
    }

    #[test]
    fn the_elf_headers_tell_machine_and_linkage_in_either_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        let arm_static = fake_binary(dir.path(), &elf64(183, false, None));
        let info = ElfInfo::read(&arm_static).unwrap();
        assert_eq!((info.machine, info.arch, info.linkage), (183, Some(Arch::Arm64), Linkage::Static));
        check_binary(&arm_static, Target::new(Arch::Arm64, Libc::Musl)).unwrap();

        let glibc = "/lib64/ld-linux-x86-64.so.2";
        let x86_dynamic = fake_binary(dir.path(), &elf64(62, false, Some(glibc)));
        let info = check_binary(&x86_dynamic, Target::new(Arch::X86_64, Libc::Gnu)).unwrap();
        assert_eq!(info.linkage, Linkage::Dynamic { interpreter: glibc.into() });
        let err = check_binary(&x86_dynamic, Target::new(Arch::X86_64, Libc::Musl)).unwrap_err();
        assert!(err.to_string().contains(glibc), "{err}");
        assert_eq!(faas_api::Error::from(err).error_type(), "WrongLibc");

        let musl_dynamic = fake_binary(dir.path(), &elf64(62, false, Some("/lib/ld-musl-x86_64.so.1")));
        check_binary(&musl_dynamic, Target::new(Arch::X86_64, Libc::Musl)).unwrap();

        let big = fake_binary(dir.path(), &elf64(62, true, Some("/lib/ld.so")));
        let info = ElfInfo::read(&big).unwrap();
        assert_eq!(
            (info.arch, info.linkage),
            (Some(Arch::X86_64), Linkage::Dynamic { interpreter: "/lib/ld.so".into() })
        );

        let mips = fake_binary(dir.path(), &elf64(8, false, None));
        let err = check_arch(&mips, Arch::X86_64).unwrap_err();
        assert!(err.to_string().contains("built for ELF machine 8"), "{err}");

        let mut cut = elf64(62, false, Some(glibc));
        cut.truncate(100);
        let cut = fake_binary(dir.path(), &cut);
        assert!(matches!(ElfInfo::read(&cut), Err(TargetError::Truncated { .. })));
    }

    #[test]
    fn the_host_binary_is_dynamic_on_glibc() {
        let me = std::env::current_exe().unwrap();
        let info = ElfInfo::read(&me).unwrap();
        if cfg!(target_env = "gnu") {
            assert!(matches!(info.linkage, Linkage::Dynamic { ref interpreter } if interpreter.contains("ld-linux")));
        }
    }

    #[test]
    fn the_stripped_copy_lands_in_a_directory_that_does_not_exist_yet() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new").join("deeper").join("bootstrap");
        let me = std::env::current_exe().unwrap();
        strip_debug_copy(&me, &out).unwrap();
        let (a, b) = (std::fs::metadata(&me).unwrap().len(), std::fs::metadata(&out).unwrap().len());
        assert!(b > 0 && b <= a, "{b} vs {a}");
    }

    #[test]
    fn triples_and_names() {
        assert_eq!(Target::new(Arch::Arm64, Libc::Gnu).triple(), "aarch64-unknown-linux-gnu");
        assert_eq!(Target::new(Arch::X86_64, Libc::Musl).triple(), "x86_64-unknown-linux-musl");
        assert_eq!(Target::new(Arch::X86_64, Libc::Gnu).triple(), "x86_64-unknown-linux-gnu");
        assert_eq!(Target::new(Arch::Arm64, Libc::Musl).triple(), "aarch64-unknown-linux-musl");
        assert_eq!(Arch::parse("aarch64").unwrap(), Arch::Arm64);
        assert_eq!(Arch::parse("x86-64").unwrap(), Arch::X86_64);
        assert_eq!(Libc::parse("musl").unwrap(), Libc::Musl);
        assert!(Arch::parse("mips").unwrap_err().to_string().contains("x86_64, arm64"));
    }

    #[tokio::test]
    async fn a_target_that_is_not_installed_says_how_to_add_it() {
        let err: faas_api::Error = check_target_installed("riscv64gc-unknown-none-faas").await.unwrap_err().into();
        assert_eq!(err.error_type(), "TargetNotInstalled");
        assert!(err.message().contains("rustup target add riscv64gc-unknown-none-faas"), "{err}");
        let host = Target::host().unwrap().triple();
        check_target_installed(host).await.unwrap();
    }
}
