//! Deployment packages: checking and unpacking a function's zip safely.
//!
//! Limits follow Lambda's: 50 MB zipped for a direct upload, 250 MB unzipped. The generic checks (the
//! unzipped size counted while extracting, entries that would land outside the target or are symlinks refused
//! before anything is written, Unix modes kept minus setuid/setgid/sticky) are
//! [`faas_packaging::unpack`]'s; this module adds Lambda's rule (an executable `bootstrap` at the top level)
//! and answers with the errors Lambda returns.

use std::path::{Path, PathBuf};

use faas_packaging::unpack::{Archive, Limits, UnpackError};

use crate::exceptions::LambdaException;

/// Largest zip accepted in a direct upload (CreateFunction/UpdateFunctionCode `ZipFile`): 50 MB.
pub(crate) const MAX_ZIPPED: usize = 50 * 1024 * 1024;
/// Largest total unzipped size: 250 MB (262,144,000 bytes).
pub(crate) const MAX_UNZIPPED: u64 = 262_144_000;
/// Most entries accepted in one package.
const MAX_ENTRIES: usize = 20_000;

/// A package unpacked into a directory.
#[derive(Debug, Clone)]
pub(crate) struct Unpacked {
    /// Directory holding the unpacked code (`LAMBDA_TASK_ROOT`).
    pub dir: PathBuf,
    /// Size of the zip in bytes (`CodeSize`).
    pub code_size: u64,
    /// Base64 of the SHA-256 of the zip (`CodeSha256`).
    pub sha256: String,
}

/// Checks `zip_bytes` and unpacks it into `dir` (which must not exist yet). On any error nothing is left behind.
pub(crate) fn unpack(zip_bytes: &[u8], dir: &Path) -> Result<Unpacked, LambdaException> {
    unpack_limited(zip_bytes, dir, MAX_UNZIPPED)
}

/// [`unpack`] with an explicit unzipped-size limit.
fn unpack_limited(zip_bytes: &[u8], dir: &Path, max_unzipped: u64) -> Result<Unpacked, LambdaException> {
    let limits = Limits { max_zipped: MAX_ZIPPED as u64, max_unzipped, max_entries: MAX_ENTRIES };
    let archive = Archive::open(zip_bytes, limits).map_err(lambda_error)?;
    match archive.entry("bootstrap").filter(|e| !e.is_dir) {
        // A zip made without Unix modes (e.g. on Windows) has no executable bit: Lambda could not run it.
        Some(bootstrap) if bootstrap.mode.is_some_and(|m| m & 0o111 != 0) => {}
        Some(_) => {
            return Err(LambdaException::invalid_parameter(
                "The file 'bootstrap' at the top level of the package is not executable (set mode 0755 when zipping)",
            ));
        }
        None => {
            return Err(LambdaException::invalid_parameter(
                "The package has no executable file named 'bootstrap' at its top level; runtime \
                 provided.al2023/provided.al2 needs one",
            ));
        }
    }
    archive.extract(dir).map_err(lambda_error)?;
    Ok(Unpacked {
        dir: dir.to_path_buf(),
        code_size: zip_bytes.len() as u64,
        sha256: faas_packaging::code_sha256(zip_bytes),
    })
}

/// The error Lambda answers for a package refused for `e`.
fn lambda_error(e: UnpackError) -> LambdaException {
    match e {
        UnpackError::ZippedTooLarge { size, limit } => LambdaException::too_large(format!(
            "Zipped size must be smaller than {limit} bytes; the uploaded file is {size} bytes"
        )),
        UnpackError::NotAZip(e) => LambdaException::invalid_parameter(format!(
            "Could not unzip uploaded file. Please check your file, then try to upload again. ({e})"
        )),
        UnpackError::TooManyEntries { count, limit } => {
            LambdaException::invalid_parameter(format!("The package has {count} entries; at most {limit} are accepted"))
        }
        UnpackError::Escapes { name } => LambdaException::invalid_parameter(format!(
            "Zip entry '{name}' would be extracted outside the function directory; refusing the package"
        )),
        UnpackError::Symlink { name } => LambdaException::invalid_parameter(format!(
            "Zip entry '{name}' is a symbolic link; symbolic links are not accepted by this emulator"
        )),
        UnpackError::SpecialFile { name, mode } => LambdaException::invalid_parameter(format!(
            "Zip entry '{name}' is not a regular file or directory (mode {mode:#o}); refusing the package"
        )),
        UnpackError::UnzippedTooLarge { limit } => {
            LambdaException::invalid_parameter(format!("Unzipped size must be smaller than {limit} bytes"))
        }
        UnpackError::Corrupt { source, .. } => {
            LambdaException::invalid_parameter(format!("Could not unzip uploaded file: {source}"))
        }
        e @ UnpackError::Io { .. } => LambdaException::service(format!("could not unpack the code: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use faas_packaging::zip::{zip_bytes, Entry};

    use super::*;

    fn zip_of(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
        zip_bytes(entries.iter().map(|(name, mode, data)| Entry::bytes(*name, data.to_vec(), *mode)).collect()).unwrap()
    }

    #[test]
    fn unpacks_and_keeps_modes() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let zip = zip_of(&[("bootstrap", 0o755, b"#!/bin/sh\n"), ("lib/data.txt", 0o644, b"hello")]);
        let dir = tmp.path().join("code");
        let unpacked = unpack(&zip, &dir).unwrap();
        assert_eq!(unpacked.code_size, zip.len() as u64);
        assert_eq!(unpacked.sha256, faas_packaging::code_sha256(&zip));
        let mode = std::fs::metadata(dir.join("bootstrap")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(std::fs::read(dir.join("lib/data.txt")).unwrap(), b"hello");
    }

    #[test]
    fn refuses_traversal_before_writing() {
        use std::io::Write;
        // Our zip builder refuses such a path, so this one is written with the zip crate itself.
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        out.start_file("bootstrap", options.unix_permissions(0o755)).unwrap();
        out.write_all(b"x").unwrap();
        out.start_file("../evil", options).unwrap();
        out.write_all(b"evil").unwrap();
        let zip = out.finish().unwrap().into_inner();
        let tmp = tempfile::tempdir().unwrap();
        let err = unpack(&zip, &tmp.path().join("a/code")).unwrap_err();
        assert_eq!(err.name, "InvalidParameterValueException");
        assert!(err.message.contains("../evil"), "{}", err.message);
        assert!(!tmp.path().join("a/evil").exists());
        assert!(!tmp.path().join("a/code").exists());
    }

    #[test]
    fn refuses_missing_or_plain_bootstrap_and_non_zip() {
        let tmp = tempfile::tempdir().unwrap();
        let err = unpack(&zip_of(&[("main", 0o755, b"x")]), &tmp.path().join("c1")).unwrap_err();
        assert!(err.message.contains("bootstrap"));
        let err = unpack(&zip_of(&[("bootstrap", 0o644, b"x")]), &tmp.path().join("c2")).unwrap_err();
        assert!(err.message.contains("not executable"));
        let err = unpack(b"definitely not a zip", &tmp.path().join("c3")).unwrap_err();
        assert!(err.message.contains("Could not unzip"));
        assert!(!tmp.path().join("c1").exists());
    }

    #[test]
    fn a_zip_over_the_upload_limit_is_too_large() {
        let tmp = tempfile::tempdir().unwrap();
        let err = unpack(&vec![0u8; MAX_ZIPPED + 1], &tmp.path().join("code")).unwrap_err();
        assert_eq!(err.name, "RequestTooLargeException");
        assert!(err.message.contains("Zipped size must be smaller than 52428800 bytes"), "{}", err.message);
    }

    #[test]
    fn counts_unzipped_bytes_while_extracting() {
        // A bomb: a small zip of a file larger than the unzipped limit (zeros deflate ~1000:1). The limit is
        // lowered to 8 MiB to keep the test quick; the real one is MAX_UNZIPPED.
        let limit = 8 * 1024 * 1024;
        let tmp = tempfile::tempdir().unwrap();
        let zeros = vec![0u8; limit as usize + 1024 * 1024];
        let zip = zip_of(&[("bootstrap", 0o755, b"x"), ("zeros", 0o644, &zeros)]);
        assert!(zip.len() < 100 * 1024);
        let err = unpack_limited(&zip, &tmp.path().join("code"), limit).unwrap_err();
        assert!(err.message.contains("Unzipped size"), "{}", err.message);
        assert!(!tmp.path().join("code").exists());
        assert!(!tmp.path().join("code.unpacking").exists());
    }
}
