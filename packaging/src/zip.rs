//! Reproducible zips: the same entries always give byte-identical bytes, so an unchanged app has an
//! unchanged digest (Lambda's `CodeSha256`, for one) and redeploying it is a no-op.
//!
//! What makes them reproducible: entries are written in the order of their paths, every entry has
//! the zip epoch as its timestamp (1980-01-01 00:00:00), deflate runs at a fixed level (6), the
//! Unix mode is the one given (never the file's own), and no extra fields are written.
//!
//! ```
//! use faas_packaging::zip::{Entry, zip_bytes};
//!
//! let entries = vec![
//!     Entry::bytes("bin/app", b"\x7fELF...".to_vec(), 0o755),
//!     Entry::bytes("config.json", br#"{"debug":false}"#.to_vec(), 0o644),
//! ];
//! let a = zip_bytes(entries.clone()).unwrap();
//! let b = zip_bytes(entries.into_iter().rev().collect()).unwrap();
//! assert_eq!(a, b, "same entries, same bytes, whatever their order");
//! ```

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::digest::code_sha256;

/// Where the bytes of an [`Entry`] come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// These bytes.
    Bytes(Vec<u8>),
    /// The content of this file, read when the zip is written.
    File(PathBuf),
}

/// One file in a zip: its path inside the archive, its content and its Unix mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive: relative, `/`-separated, with no `.`, `..` or empty components.
    pub path: String,
    /// The content.
    pub source: Source,
    /// Unix permission bits (at most `0o777`), e.g. `0o755` for an executable.
    pub mode: u32,
}

impl Entry {
    /// An entry holding `bytes`.
    ///
    /// ```
    /// let e = faas_packaging::zip::Entry::bytes("data.txt", b"hi".to_vec(), 0o644);
    /// assert_eq!(e.mode, 0o644);
    /// ```
    pub fn bytes(path: impl Into<String>, bytes: Vec<u8>, mode: u32) -> Entry {
        Entry { path: path.into(), source: Source::Bytes(bytes), mode }
    }

    /// An entry holding the content of `file` (read when the zip is written).
    ///
    /// ```
    /// let e = faas_packaging::zip::Entry::file("bootstrap", "target/release/app", 0o755);
    /// assert_eq!(e.path, "bootstrap");
    /// ```
    pub fn file(path: impl Into<String>, file: impl Into<PathBuf>, mode: u32) -> Entry {
        Entry { path: path.into(), source: Source::File(file.into()), mode }
    }
}

/// Why a zip could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    /// An entry path that is absolute, empty, or has `.`, `..`, empty components or backslashes.
    #[error("zip entry path `{path}` is not a plain relative path ({why})")]
    BadPath {
        /// The entry path.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Two entries with the same path.
    #[error("two zip entries have the path `{0}`")]
    Duplicate(String),
    /// A mode with bits beyond the permission bits (file type, setuid, setgid, sticky).
    #[error("zip entry `{path}` has mode {mode:#o}; only permission bits (at most 0o777) are accepted")]
    BadMode {
        /// The entry path.
        path: String,
        /// The mode given.
        mode: u32,
    },
    /// The file of a [`Source::File`] entry could not be read.
    #[error("cannot read {} (zip entry `{entry}`): {source}", file.display())]
    Unreadable {
        /// The entry path.
        entry: String,
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The zip could not be written.
    #[error("cannot write {}: {message}", path.display())]
    Write {
        /// The zip (or its directory).
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl From<ZipError> for faas_api::Error {
    fn from(e: ZipError) -> Self {
        match e {
            ZipError::Write { .. } => faas_api::Error::unavailable(e.to_string()),
            _ => faas_api::Error::bad_input(e.to_string()),
        }
    }
}

/// [`write_zip`] of an app's files: the same zip, with a file that cannot be read reported as
/// the app binary it is (bad input naming it), as every backend's packaging reports it.
///
/// ```
/// use faas_packaging::zip::{write_app_zip, Entry};
/// let dir = tempfile::tempdir().unwrap();
/// let err = write_app_zip(vec![Entry::file("exec", dir.path().join("missing"), 0o755)], &dir.path().join("a.zip")).unwrap_err();
/// assert_eq!(err.kind(), faas_api::ErrorKind::BadInput);
/// assert!(err.message().starts_with("cannot read the app binary"), "{}", err.message());
/// ```
pub fn write_app_zip(entries: Vec<Entry>, out: &Path) -> Result<ZipInfo, faas_api::Error> {
    write_zip(entries, out).map_err(|e| match e {
        ZipError::Unreadable { file, source, .. } => {
            faas_api::Error::bad_input(format!("cannot read the app binary {}: {source}", file.display()))
        }
        other => other.into(),
    })
}

/// What [`write_zip`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipInfo {
    /// The zip file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Base64 of the SHA-256 of the zip ([`code_sha256`]): what Lambda reports as `CodeSha256`.
    pub code_sha256: String,
}

/// Writes a reproducible zip of `entries` at `out` (its directory is created). The file is written
/// next to `out` under a name unique to this call and renamed into place, so concurrent writers
/// of the same zip each leave a whole file; on error nothing is left behind.
///
/// ```
/// use faas_packaging::zip::{Entry, write_zip};
/// let dir = tempfile::tempdir().unwrap();
/// let out = dir.path().join("pkg/app.zip");
/// let info = write_zip(vec![Entry::bytes("bootstrap", b"#!/bin/sh\n".to_vec(), 0o755)], &out).unwrap();
/// assert_eq!(info.size, std::fs::metadata(&out).unwrap().len());
/// assert_eq!(info.code_sha256, faas_packaging::code_sha256(&std::fs::read(&out).unwrap()));
/// ```
pub fn write_zip(entries: Vec<Entry>, out: &Path) -> Result<ZipInfo, ZipError> {
    let entries = checked(entries)?;
    let write_error =
        |path: &Path, e: &dyn std::fmt::Display| ZipError::Write { path: path.into(), message: e.to_string() };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| write_error(dir, &e))?;
    }
    // Unique per call: two packagings of the same app at once (two builds, parallel tests) each
    // write their own file, and the rename keeps one whole zip.
    let tmp = out.with_extension(format!("zip.tmp{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
    let write = || -> Result<(), ZipError> {
        let file = std::fs::File::create(&tmp).map_err(|e| write_error(&tmp, &e))?;
        write_entries(&entries, file, &tmp)?.sync_all().map_err(|e| write_error(&tmp, &e))
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_error(out, &e)
    })?;
    let bytes = std::fs::read(out).map_err(|e| write_error(out, &e))?;
    Ok(ZipInfo { path: out.to_path_buf(), size: bytes.len() as u64, code_sha256: code_sha256(&bytes) })
}

/// The bytes of the reproducible zip of `entries` (the same bytes [`write_zip`] writes).
///
/// ```
/// use faas_packaging::zip::{Entry, zip_bytes};
/// let err = zip_bytes(vec![Entry::bytes("../up", vec![], 0o644)]).unwrap_err();
/// assert!(err.to_string().contains("`../up`"), "{err}");
/// ```
pub fn zip_bytes(entries: Vec<Entry>) -> Result<Vec<u8>, ZipError> {
    let entries = checked(entries)?;
    Ok(write_entries(&entries, std::io::Cursor::new(Vec::new()), Path::new("<memory>"))?.into_inner())
}

/// Validates paths and modes and puts the entries in path order.
fn checked(mut entries: Vec<Entry>) -> Result<Vec<Entry>, ZipError> {
    for e in &entries {
        let bad = |why| Err(ZipError::BadPath { path: e.path.clone(), why });
        if e.path.is_empty() {
            return bad("empty");
        }
        if e.path.starts_with('/') {
            return bad("absolute");
        }
        if e.path.contains('\\') {
            return bad("backslash");
        }
        if e.path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return bad("empty, `.` or `..` component");
        }
        if e.mode & !0o777 != 0 {
            return Err(ZipError::BadMode { path: e.path.clone(), mode: e.mode });
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(w) = entries.windows(2).find(|w| w[0].path == w[1].path) {
        return Err(ZipError::Duplicate(w[0].path.clone()));
    }
    Ok(entries)
}

fn write_entries<W: Write + Seek>(entries: &[Entry], sink: W, name: &Path) -> Result<W, ZipError> {
    let fail = |e: &dyn std::fmt::Display| ZipError::Write { path: name.into(), message: e.to_string() };
    let mut zip = ::zip::ZipWriter::new(sink);
    let mut buf = vec![0u8; 1 << 16];
    for entry in entries {
        let options = ::zip::write::SimpleFileOptions::default()
            .compression_method(::zip::CompressionMethod::Deflated)
            .compression_level(Some(6))
            .last_modified_time(::zip::DateTime::default())
            .unix_permissions(entry.mode);
        zip.start_file(entry.path.as_str(), options).map_err(|e| fail(&e))?;
        match &entry.source {
            Source::Bytes(bytes) => zip.write_all(bytes).map_err(|e| fail(&e))?,
            Source::File(file) => {
                let unreadable =
                    |source| ZipError::Unreadable { entry: entry.path.clone(), file: file.clone(), source };
                let mut input = std::fs::File::open(file).map_err(unreadable)?;
                loop {
                    let n = input.read(&mut buf).map_err(unreadable)?;
                    if n == 0 {
                        break;
                    }
                    zip.write_all(&buf[..n]).map_err(|e| fail(&e))?;
                }
            }
        }
    }
    zip.finish().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(bytes: Vec<u8>) -> Vec<(String, u32, Vec<u8>)> {
        let mut archive = ::zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut e = archive.by_index(i).unwrap();
                assert_eq!(e.compression(), ::zip::CompressionMethod::Deflated);
                let t = e.last_modified().unwrap();
                assert_eq!((t.year(), t.month(), t.day(), t.hour(), t.minute(), t.second()), (1980, 1, 1, 0, 0, 0));
                assert!(e.extra_data().is_none_or(|x| x.is_empty()), "no extra fields");
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (e.name().to_string(), e.unix_mode().unwrap(), data)
            })
            .collect()
    }

    #[test]
    fn several_entries_keep_their_modes_and_come_out_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("binary");
        let big: Vec<u8> = (0..300_000u32).flat_map(|i| (i % 7).to_le_bytes()).collect();
        std::fs::write(&file, &big).unwrap();
        // The file's own mode does not matter, only the entry's.
        let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
        std::fs::set_permissions(&file, private).unwrap();
        let entries = vec![
            Entry::bytes("lib/z.txt", b"zed".to_vec(), 0o600),
            Entry::file("bootstrap", &file, 0o755),
            Entry::bytes("lib/a.sh", b"#!/bin/sh\n".to_vec(), 0o750),
            Entry::bytes("empty", vec![], 0o444),
        ];
        let bytes = zip_bytes(entries.clone()).unwrap();
        let back = read_back(bytes.clone());
        let summary: Vec<(&str, u32)> = back.iter().map(|(n, m, _)| (n.as_str(), *m)).collect();
        // The file type bits say "regular file"; the permission bits are the ones given.
        assert_eq!(
            summary,
            vec![("bootstrap", 0o100755), ("empty", 0o100444), ("lib/a.sh", 0o100750), ("lib/z.txt", 0o100600)]
        );
        assert_eq!(back[0].2, big);
        assert_eq!(back[1].2, b"");
        assert_eq!(back[3].2, b"zed");

        let out = write_zip(entries.into_iter().rev().collect(), &dir.path().join("x.zip")).unwrap();
        assert_eq!(std::fs::read(&out.path).unwrap(), bytes, "the file holds the same bytes as zip_bytes");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 2, "no temporary file left: {leftovers:?}");
    }

    #[test]
    fn one_executable_entry_gives_the_bytes_it_always_gave() {
        // The digest of the Lambda `bootstrap` zip of this content, as written before the zip
        // builder was generic: a change here changes the CodeSha256 of every deployed function.
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        std::fs::write(dir.path().join("app"), &content).unwrap();
        let info = write_zip(vec![Entry::file("bootstrap", dir.path().join("app"), 0o755)], &dir.path().join("a.zip"))
            .unwrap();
        assert_eq!((info.code_sha256.as_str(), info.size), ("ahQ16s6gXjc9S24D6SgViAPQMarHUK8AHop6U1+bIhk=", 4554));
        let small = zip_bytes(vec![Entry::bytes("bootstrap", b"#!/bin/sh\necho hi\n".to_vec(), 0o755)]).unwrap();
        assert_eq!(code_sha256(&small), "bR1LKY0gB+FHlj0WJVFhmncueg7ECUm/L46vgUOwU2g=");
    }

    #[test]
    fn a_change_in_content_mode_or_path_changes_the_bytes() {
        let base = zip_bytes(vec![Entry::bytes("a", b"x".to_vec(), 0o644)]).unwrap();
        assert_ne!(zip_bytes(vec![Entry::bytes("a", b"y".to_vec(), 0o644)]).unwrap(), base);
        assert_ne!(zip_bytes(vec![Entry::bytes("a", b"x".to_vec(), 0o755)]).unwrap(), base);
        assert_ne!(zip_bytes(vec![Entry::bytes("b", b"x".to_vec(), 0o644)]).unwrap(), base);
        assert_eq!(zip_bytes(vec![Entry::bytes("a", b"x".to_vec(), 0o644)]).unwrap(), base);
    }

    #[test]
    fn unsafe_paths_duplicates_and_special_modes_are_refused_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("bad.zip");
        for path in ["", "/etc/passwd", "a/../b", "..", "./a", "a//b", "a/", "a\\b"] {
            let err = write_zip(vec![Entry::bytes(path, vec![], 0o644)], &out).unwrap_err();
            assert!(matches!(err, ZipError::BadPath { .. }), "{path}: {err}");
        }
        let dup = vec![Entry::bytes("a", vec![], 0o644), Entry::bytes("a", vec![1], 0o644)];
        assert!(matches!(write_zip(dup, &out), Err(ZipError::Duplicate(p)) if p == "a"));
        for mode in [0o4755, 0o100644, 0o1777] {
            let err = write_zip(vec![Entry::bytes("a", vec![], mode)], &out).unwrap_err();
            assert!(matches!(err, ZipError::BadMode { .. }), "{mode:o}: {err}");
        }
        let missing = write_zip(vec![Entry::file("a", dir.path().join("nope"), 0o755)], &out).unwrap_err();
        assert!(matches!(missing, ZipError::Unreadable { .. }), "{missing}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
    }
}
