//! Deployment packages: checking and unpacking a function's zip safely.
//!
//! Limits follow Lambda's: 50 MB zipped for a direct upload, 250 MB unzipped. The unzipped size is counted
//! while extracting (a zip bomb's headers can lie), entries that would land outside the target (`..`, absolute
//! paths) or are symlinks are refused before anything is written, and Unix file modes are kept (minus
//! setuid/setgid/sticky) so `bootstrap` stays executable.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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
    if zip_bytes.len() > MAX_ZIPPED {
        return Err(LambdaException::too_large(format!(
            "Zipped size must be smaller than {MAX_ZIPPED} bytes; the uploaded file is {} bytes",
            zip_bytes.len()
        )));
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).map_err(|e| {
        LambdaException::invalid_parameter(format!(
            "Could not unzip uploaded file. Please check your file, then try to upload again. ({e})"
        ))
    })?;
    if archive.len() > MAX_ENTRIES {
        return Err(LambdaException::invalid_parameter(format!(
            "The package has {} entries; at most {MAX_ENTRIES} are accepted",
            archive.len()
        )));
    }
    // First pass: validate every entry name and type before writing anything.
    let mut bootstrap_ok = false;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(bad_zip)?;
        let name = entry.name().to_string();
        let Some(relative) = entry.enclosed_name() else {
            return Err(LambdaException::invalid_parameter(format!(
                "Zip entry '{name}' would be extracted outside the function directory; refusing the package"
            )));
        };
        let mode = entry.unix_mode();
        if mode.is_some_and(|m| m & 0o170000 == 0o120000) {
            return Err(LambdaException::invalid_parameter(format!(
                "Zip entry '{name}' is a symbolic link; symbolic links are not accepted by this emulator"
            )));
        }
        if relative == Path::new("bootstrap") && !entry.is_dir() {
            // A zip made without Unix modes (e.g. on Windows) has no executable bit: Lambda could not run it.
            bootstrap_ok = mode.is_some_and(|m| m & 0o111 != 0);
            if !bootstrap_ok {
                return Err(LambdaException::invalid_parameter(
                    "The file 'bootstrap' at the top level of the package is not executable (set mode 0755 when zipping)",
                ));
            }
        }
    }
    if !bootstrap_ok {
        return Err(LambdaException::invalid_parameter(
            "The package has no executable file named 'bootstrap' at its top level; runtime provided.al2023/provided.al2 \
             needs one",
        ));
    }
    let staging = dir.with_extension("unpacking");
    let _ = std::fs::remove_dir_all(&staging);
    let result = extract(&mut archive, &staging, max_unzipped).and_then(|()| {
        std::fs::rename(&staging, dir)
            .map_err(|e| LambdaException::service(format!("could not move unpacked code into place: {e}")))
    });
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    Ok(Unpacked { dir: dir.to_path_buf(), code_size: zip_bytes.len() as u64, sha256: sha256_base64(zip_bytes) })
}

fn bad_zip(e: zip::result::ZipError) -> LambdaException {
    LambdaException::invalid_parameter(format!(
        "Could not unzip uploaded file. Please check your file, then try to upload again. ({e})"
    ))
}

fn io_error(e: std::io::Error) -> LambdaException {
    LambdaException::service(format!("could not unpack the code: {e}"))
}

fn too_big(limit: u64) -> LambdaException {
    LambdaException::invalid_parameter(format!("Unzipped size must be smaller than {limit} bytes"))
}

fn extract(
    archive: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    root: &Path,
    max_unzipped: u64,
) -> Result<(), LambdaException> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root).map_err(io_error)?;
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(bad_zip)?;
        let relative = entry.enclosed_name().ok_or_else(|| LambdaException::invalid_parameter("unsafe zip entry"))?;
        let target = root.join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(io_error)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_error)?;
        }
        let mut file = std::fs::File::create(&target).map_err(io_error)?;
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| LambdaException::invalid_parameter(format!("Could not unzip uploaded file: {e}")))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > max_unzipped {
                return Err(too_big(max_unzipped));
            }
            file.write_all(&buf[..n]).map_err(io_error)?;
        }
        let mode = entry.unix_mode().map(|m| m & 0o777).unwrap_or(0o644);
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).map_err(io_error)?;
    }
    Ok(())
}

/// Base64 of the SHA-256 of `bytes`, as Lambda reports `CodeSha256`.
pub(crate) fn sha256_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, mode, data) in entries {
            out.start_file(*name, SimpleFileOptions::default().unix_permissions(*mode)).unwrap();
            out.write_all(data).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn unpacks_and_keeps_modes() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let zip = zip_of(&[("bootstrap", 0o755, b"#!/bin/sh\n"), ("lib/data.txt", 0o644, b"hello")]);
        let dir = tmp.path().join("code");
        let unpacked = unpack(&zip, &dir).unwrap();
        assert_eq!(unpacked.code_size, zip.len() as u64);
        let mode = std::fs::metadata(dir.join("bootstrap")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(std::fs::read(dir.join("lib/data.txt")).unwrap(), b"hello");
    }

    #[test]
    fn refuses_traversal_before_writing() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = zip_of(&[("bootstrap", 0o755, b"x"), ("../evil", 0o644, b"evil")]);
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
    fn counts_unzipped_bytes_while_extracting() {
        // A bomb: a small zip of a file larger than the unzipped limit (zeros deflate ~1000:1). The limit is
        // lowered to 8 MiB to keep the test quick; the real one is MAX_UNZIPPED.
        let limit = 8 * 1024 * 1024;
        let tmp = tempfile::tempdir().unwrap();
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        out.start_file("bootstrap", SimpleFileOptions::default().unix_permissions(0o755)).unwrap();
        out.write_all(b"x").unwrap();
        out.start_file("zeros", SimpleFileOptions::default()).unwrap();
        let chunk = vec![0u8; 1024 * 1024];
        for _ in 0..=(limit / chunk.len() as u64) {
            out.write_all(&chunk).unwrap();
        }
        let zip = out.finish().unwrap().into_inner();
        assert!(zip.len() < 100 * 1024);
        let err = unpack_limited(&zip, &tmp.path().join("code"), limit).unwrap_err();
        assert!(err.message.contains("Unzipped size"), "{}", err.message);
        assert!(!tmp.path().join("code").exists());
        assert!(!tmp.path().join("code.unpacking").exists());
    }
}
