//! OpenWhisk packaging: the native action zip, which holds the function binary as `exec` at its
//! root with mode 0755 (what the ActionLoop proxy and `openwhisk/dockerskeleton` start:
//! openwhisk-runtime-go `docs/ACTION.md`, openwhisk-runtime-docker `actionproxy.py`), written by
//! the kit's reproducible zip builder, so the same binary always gives the same bytes.
//!
//! The images' C libraries: `openwhisk/actionloop-v2` is Ubuntu 16.04 (glibc 2.23) and
//! `openwhisk/dockerskeleton` is Alpine (musl). A `gnu` binary built on a newer system does not
//! start in either; build with `libc = "musl"` (static) for a real OpenWhisk. The local OpenWhisk
//! runs the binary on this machine, where the default `gnu` build works.

use std::path::{Path, PathBuf};

use faas_api::Error;
use faas_packaging::zip::{write_app_zip, Entry, ZipInfo};
use faas_packaging::{check_arch, strip_debug_copy, with_stripped_copy, Arch};

/// The executable's name in the zip.
pub const EXEC: &str = "exec";
/// Its mode.
pub const EXEC_MODE: u32 = 0o755;

/// Where the zips of `binary` go: `target/faas/openwhisk` of the binary's target directory.
pub fn package_dir(binary: &Path) -> PathBuf {
    match binary.ancestors().find(|a| a.file_name().is_some_and(|n| n == "target")) {
        Some(target) => target.join("faas").join("openwhisk"),
        None => std::env::temp_dir().join("faas-openwhisk"),
    }
}

/// The zip of `binary` as `exec` (debug info stripped), checked to be for `arch`, written to `out`.
///
/// ```no_run
/// let info = faas_runner_openwhisk::package::package_app(
///     std::path::Path::new("target/release/hello"), faas_packaging::Arch::X86_64, std::path::Path::new("hello.zip")).unwrap();
/// println!("{} bytes, sha256 {}", info.size, info.code_sha256);
/// ```
pub fn package_app(binary: &Path, arch: Arch, out: &Path) -> Result<ZipInfo, Error> {
    check_arch(binary, arch)?;
    with_stripped_copy(binary, out, |stripped| package_zip(stripped, out))
}

/// Writes a Docker build context for running the app as a Docker action (`wsk action create
/// NAME --docker IMAGE`, or `image = "IMAGE"` in the profile): `dir/exec` (the binary, debug info
/// stripped) and `dir/Dockerfile`, whose entrypoint is the binary; in an OpenWhisk container it
/// sees `__OW_API_HOST` and serves `/init` and `/run` on port 8080 itself. The base image has the
/// C library of the build (`debian:bookworm-slim` for gnu, `alpine` for musl) and CA
/// certificates, for `cx.invoke` over https.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let me = std::env::current_exe().unwrap();
/// let ctx = dir.path().join("docker");
/// faas_runner_openwhisk::package::docker_context(&me, faas_packaging::Libc::Gnu, &ctx).unwrap();
/// let dockerfile = std::fs::read_to_string(ctx.join("Dockerfile")).unwrap();
/// assert!(dockerfile.contains("ENTRYPOINT [\"/action/exec\"]") && dockerfile.contains("EXPOSE 8080"));
/// assert!(ctx.join("exec").exists());
/// ```
pub fn docker_context(binary: &Path, libc: faas_packaging::Libc, dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::unavailable(format!("cannot create {}: {e}", dir.display())))?;
    strip_debug_copy(binary, &dir.join(EXEC))?;
    let base = match libc {
        faas_packaging::Libc::Musl => "FROM alpine:3\nRUN apk add --no-cache ca-certificates\n",
        faas_packaging::Libc::Gnu => {
            "FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \\\n    && rm -rf /var/lib/apt/lists/*\n"
        }
    };
    let dockerfile = format!(
        "# A faas app as an OpenWhisk Docker action: the binary serves /init and /run on port 8080.\n\
         {base}COPY exec /action/exec\nEXPOSE 8080\nENTRYPOINT [\"/action/exec\"]\n"
    );
    std::fs::write(dir.join("Dockerfile"), dockerfile)
        .map_err(|e| Error::unavailable(format!("cannot write {}: {e}", dir.join("Dockerfile").display())))
}

/// The zip holding `binary` as `exec`, written to `out`.
pub fn package_zip(binary: &Path, out: &Path) -> Result<ZipInfo, Error> {
    write_app_zip(vec![Entry::file(EXEC, binary, EXEC_MODE)], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zip_holds_one_executable_exec_and_is_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("app");
        std::fs::write(&bin, b"\x7fELF not really").unwrap();
        let a = package_zip(&bin, &dir.path().join("a.zip")).unwrap();
        let b = package_zip(&bin, &dir.path().join("b.zip")).unwrap();
        assert_eq!(std::fs::read(&a.path).unwrap(), std::fs::read(&b.path).unwrap());
        let limits = faas_packaging::unpack::Limits { max_zipped: 1 << 20, max_unzipped: 1 << 20, max_entries: 10 };
        let bytes = std::fs::read(&a.path).unwrap();
        let archive = faas_packaging::unpack::Archive::open(&bytes, limits).unwrap();
        let entries: Vec<_> = archive.entries().iter().map(|e| (e.path.display().to_string(), e.mode)).collect();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, "exec");
        assert_eq!(entries[0].1.map(|m| m & 0o777), Some(0o755));
    }
}
