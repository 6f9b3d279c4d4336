//! Unpacking an uploaded zip safely: what an emulator does with the package a client sends it.
//!
//! [`Archive::open`] checks the whole archive before anything is written: its size, that it is a
//! zip, the number of entries, and every entry (no path that would land outside the target
//! directory, such as `../x` or `/etc/x`; no symbolic links; nothing but files and directories).
//! The caller can then look at [`Archive::entries`] for its platform's own rules (Lambda's
//! executable `bootstrap`, for one) and [`Archive::extract`] it. Extraction counts the unzipped
//! bytes as it writes them (a zip bomb's headers can lie about sizes), keeps Unix permission bits
//! minus setuid, setgid and sticky (0644 when the zip has none), and unpacks into a staging
//! directory renamed into place: on any error nothing is left behind.
//!
//! ```
//! use faas_packaging::unpack::{Archive, Limits};
//! use faas_packaging::zip::{Entry, zip_bytes};
//!
//! let zip = zip_bytes(vec![Entry::bytes("bootstrap", b"#!/bin/sh\n".to_vec(), 0o755)]).unwrap();
//! let limits = Limits { max_zipped: 1 << 20, max_unzipped: 1 << 20, max_entries: 10 };
//! let archive = Archive::open(&zip, limits).unwrap();
//! assert_eq!(archive.entries()[0].mode, Some(0o100755));
//! let dir = tempfile::tempdir().unwrap();
//! let written = archive.extract(&dir.path().join("code")).unwrap();
//! assert_eq!(written, 10);
//! ```

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

/// Limits on an archive, checked by [`Archive::open`] and [`Archive::extract`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest zip accepted, in bytes.
    pub max_zipped: u64,
    /// Largest total of the unzipped files, in bytes, counted while extracting.
    pub max_unzipped: u64,
    /// Most entries (files and directories) accepted.
    pub max_entries: usize,
}

/// Why a package was refused or could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The zip is larger than [`Limits::max_zipped`].
    #[error("the zip is {size} bytes; at most {limit} are accepted")]
    ZippedTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not a zip, or an entry's headers are broken.
    #[error("not a valid zip: {0}")]
    NotAZip(#[from] ::zip::result::ZipError),
    /// More entries than [`Limits::max_entries`].
    #[error("the zip has {count} entries; at most {limit} are accepted")]
    TooManyEntries {
        /// How many it has.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An entry whose path would land outside the target directory (`..`, absolute paths).
    #[error("zip entry `{name}` would be extracted outside the target directory")]
    Escapes {
        /// The entry's name as stored.
        name: String,
    },
    /// An entry that is a symbolic link.
    #[error("zip entry `{name}` is a symbolic link")]
    Symlink {
        /// The entry's name.
        name: String,
    },
    /// An entry that is neither a file, a directory nor a link (a device, a FIFO, a socket).
    #[error("zip entry `{name}` is not a regular file or directory (mode {mode:#o})")]
    SpecialFile {
        /// The entry's name.
        name: String,
        /// Its Unix mode.
        mode: u32,
    },
    /// The unzipped files add up to more than [`Limits::max_unzipped`].
    #[error("the unzipped files are larger than {limit} bytes")]
    UnzippedTooLarge {
        /// The limit.
        limit: u64,
    },
    /// An entry's compressed data could not be read (corrupt data, a bad checksum).
    #[error("cannot read zip entry `{name}`: {source}")]
    Corrupt {
        /// The entry's name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// What was being written.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// One entry of an [`Archive`], as checked by [`Archive::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// The name as stored in the zip.
    pub name: String,
    /// The relative path it unpacks to (inside the target directory).
    pub path: PathBuf,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Its Unix mode (file type and permission bits), when the zip records one.
    pub mode: Option<u32>,
    /// The uncompressed size its headers claim (not trusted by [`Archive::extract`]).
    pub size: u64,
}

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;

/// A zip whose every entry was checked, ready to extract.
pub struct Archive<'a> {
    zip: ::zip::ZipArchive<Cursor<&'a [u8]>>,
    entries: Vec<EntryInfo>,
    limits: Limits,
}

impl std::fmt::Debug for Archive<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive").field("entries", &self.entries).field("limits", &self.limits).finish()
    }
}

impl<'a> Archive<'a> {
    /// Checks `bytes` against `limits` and every entry's name and type; writes nothing.
    ///
    /// ```
    /// use faas_packaging::unpack::{Archive, Limits, UnpackError};
    /// let limits = Limits { max_zipped: 10, max_unzipped: 10, max_entries: 1 };
    /// let err = Archive::open(b"definitely not a zip", limits).unwrap_err();
    /// assert!(matches!(err, UnpackError::ZippedTooLarge { size: 20, limit: 10 }));
    /// ```
    pub fn open(bytes: &'a [u8], limits: Limits) -> Result<Archive<'a>, UnpackError> {
        let size = bytes.len() as u64;
        if size > limits.max_zipped {
            return Err(UnpackError::ZippedTooLarge { size, limit: limits.max_zipped });
        }
        let mut zip = ::zip::ZipArchive::new(Cursor::new(bytes))?;
        if zip.len() > limits.max_entries {
            return Err(UnpackError::TooManyEntries { count: zip.len(), limit: limits.max_entries });
        }
        let mut entries = Vec::with_capacity(zip.len());
        for i in 0..zip.len() {
            let entry = zip.by_index_raw(i)?;
            let name = entry.name().to_string();
            let Some(path) = entry.enclosed_name() else { return Err(UnpackError::Escapes { name }) };
            let mode = entry.unix_mode();
            match mode.map(|m| m & S_IFMT) {
                Some(S_IFLNK) => return Err(UnpackError::Symlink { name }),
                None | Some(0 | S_IFREG | S_IFDIR) => {}
                Some(_) => return Err(UnpackError::SpecialFile { name, mode: mode.unwrap_or_default() }),
            }
            entries.push(EntryInfo { name, path, is_dir: entry.is_dir(), mode, size: entry.size() });
        }
        Ok(Archive { zip, entries, limits })
    }

    /// The entries, in the order of the zip.
    pub fn entries(&self) -> &[EntryInfo] {
        &self.entries
    }

    /// The entry that unpacks to `path` (a file or directory), if any.
    ///
    /// ```
    /// use faas_packaging::unpack::{Archive, Limits};
    /// use faas_packaging::zip::{Entry, zip_bytes};
    /// let zip = zip_bytes(vec![Entry::bytes("bin/app", vec![1], 0o755)]).unwrap();
    /// let archive = Archive::open(&zip, Limits { max_zipped: 1024, max_unzipped: 1024, max_entries: 4 }).unwrap();
    /// assert_eq!(archive.entry("bin/app").unwrap().mode.unwrap() & 0o777, 0o755);
    /// assert!(archive.entry("app").is_none());
    /// ```
    pub fn entry(&self, path: impl AsRef<Path>) -> Option<&EntryInfo> {
        self.entries.iter().find(|e| e.path == path.as_ref())
    }

    /// Unpacks into `dir`, which is replaced if it exists, and returns the number of bytes
    /// written. The files are written into `<dir>.unpacking` and renamed to `dir` once all are
    /// written; on error neither is left behind.
    pub fn extract(mut self, dir: &Path) -> Result<u64, UnpackError> {
        let staging = dir.with_extension("unpacking");
        let _ = std::fs::remove_dir_all(&staging);
        let result = self.extract_into(&staging).and_then(|total| {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::rename(&staging, dir).map_err(|source| UnpackError::Io { path: dir.to_path_buf(), source })?;
            Ok(total)
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        result
    }

    fn extract_into(&mut self, root: &Path) -> Result<u64, UnpackError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| UnpackError::Io { path, source }
        };
        std::fs::create_dir_all(root).map_err(io(root))?;
        let limit = self.limits.max_unzipped;
        let mut total: u64 = 0;
        let mut buf = vec![0u8; 64 * 1024];
        for (i, info) in self.entries.iter().enumerate() {
            let target = root.join(&info.path);
            if info.is_dir {
                std::fs::create_dir_all(&target).map_err(io(&target))?;
                continue;
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let mut entry = self.zip.by_index(i)?;
            let mut file = std::fs::File::create(&target).map_err(io(&target))?;
            loop {
                let n =
                    entry.read(&mut buf).map_err(|source| UnpackError::Corrupt { name: info.name.clone(), source })?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                if total > limit {
                    return Err(UnpackError::UnzippedTooLarge { limit });
                }
                file.write_all(&buf[..n]).map_err(io(&target))?;
            }
            let mode = info.mode.map(|m| m & 0o777).unwrap_or(0o644);
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).map_err(io(&target))?;
        }
        Ok(total)
    }
}

/// [`Archive::open`] then [`Archive::extract`]: checks `bytes` and unpacks them into `dir`.
///
/// ```
/// use faas_packaging::unpack::{Limits, UnpackError, unpack};
/// let dir = tempfile::tempdir().unwrap();
/// let limits = Limits { max_zipped: 1024, max_unzipped: 1024, max_entries: 4 };
/// let err = unpack(b"definitely not a zip", &dir.path().join("code"), limits).unwrap_err();
/// assert!(matches!(err, UnpackError::NotAZip(_)));
/// assert!(!dir.path().join("code").exists());
/// ```
pub fn unpack(bytes: &[u8], dir: &Path, limits: Limits) -> Result<u64, UnpackError> {
    Archive::open(bytes, limits)?.extract(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::zip::write::SimpleFileOptions;

    const LIMITS: Limits = Limits { max_zipped: 1 << 20, max_unzipped: 1 << 20, max_entries: 100 };

    /// A zip written with the zip crate directly: it accepts names and modes our builder refuses.
    fn raw_zip(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut out = ::zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, mode, data) in entries {
            out.start_file(*name, SimpleFileOptions::default().unix_permissions(*mode)).unwrap();
            out.write_all(data).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn unpacks_files_and_directories_and_keeps_permission_bits_only() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let mut out = ::zip::ZipWriter::new(Cursor::new(Vec::new()));
        out.add_directory("assets/", SimpleFileOptions::default()).unwrap();
        out.start_file("bootstrap", SimpleFileOptions::default().unix_permissions(0o4755)).unwrap();
        out.write_all(b"#!/bin/sh\n").unwrap();
        out.start_file("lib/data.txt", SimpleFileOptions::default().unix_permissions(0o640)).unwrap();
        out.write_all(b"hello").unwrap();
        let zip = out.finish().unwrap().into_inner();

        let dir = tmp.path().join("code");
        assert_eq!(unpack(&zip, &dir, LIMITS).unwrap(), 15);
        let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("bootstrap"), 0o755, "setuid dropped");
        assert_eq!(mode("lib/data.txt"), 0o640);
        assert!(dir.join("assets").is_dir());
        assert_eq!(std::fs::read(dir.join("lib/data.txt")).unwrap(), b"hello");
        assert!(!tmp.path().join("code.unpacking").exists());

        // Unpacking again replaces the directory.
        let zip = raw_zip(&[("other", 0o644, b"x")]);
        unpack(&zip, &dir, LIMITS).unwrap();
        assert!(dir.join("other").exists() && !dir.join("bootstrap").exists());
    }

    #[test]
    fn refuses_paths_that_escape_before_writing() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["../evil", "a/../../evil", "/abs/evil"] {
            let zip = raw_zip(&[("ok", 0o644, b"x"), (name, 0o644, b"evil")]);
            let err = unpack(&zip, &tmp.path().join("a/code"), LIMITS).unwrap_err();
            assert!(matches!(&err, UnpackError::Escapes { name: n } if n == name), "{name}: {err}");
        }
        assert!(!tmp.path().join("evil").exists());
        assert!(!tmp.path().join("a").exists(), "nothing written");
    }

    #[test]
    fn refuses_symlinks_and_special_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut out = ::zip::ZipWriter::new(Cursor::new(Vec::new()));
        out.add_symlink("link", "/etc/passwd", SimpleFileOptions::default()).unwrap();
        let zip = out.finish().unwrap().into_inner();
        let err = unpack(&zip, &tmp.path().join("code"), LIMITS).unwrap_err();
        assert!(matches!(&err, UnpackError::Symlink { name } if name == "link"), "{err}");

        // The zip crate writes permission bits only; set the file type in the central directory's
        // external attributes (the high 16 bits are the Unix mode) by hand.
        let mut fifo = raw_zip(&[("fifo", 0o644, b"")]);
        let central = fifo.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        fifo[central + 40..central + 42].copy_from_slice(&0o010644u16.to_le_bytes());
        let err = unpack(&fifo, &tmp.path().join("code"), LIMITS).unwrap_err();
        assert!(matches!(err, UnpackError::SpecialFile { mode: 0o010644, .. }), "{err}");
        assert!(!tmp.path().join("code").exists());
    }

    #[test]
    fn refuses_too_many_entries_and_a_too_large_zip() {
        let zip = raw_zip(&[("a", 0o644, b"1"), ("b", 0o644, b"2"), ("c", 0o644, b"3")]);
        let err = Archive::open(&zip, Limits { max_entries: 2, ..LIMITS }).unwrap_err();
        assert!(matches!(err, UnpackError::TooManyEntries { count: 3, limit: 2 }), "{err}");
        Archive::open(&zip, Limits { max_entries: 3, ..LIMITS }).unwrap();
        let small = zip.len() as u64 - 1;
        let err = Archive::open(&zip, Limits { max_zipped: small, ..LIMITS }).unwrap_err();
        assert!(matches!(err, UnpackError::ZippedTooLarge { limit, .. } if limit == small), "{err}");
        assert!(matches!(Archive::open(b"not a zip", LIMITS), Err(UnpackError::NotAZip(_))));
    }

    #[test]
    fn counts_unzipped_bytes_while_extracting() {
        // A bomb: a small zip of a file larger than the unzipped limit (zeros deflate ~1000:1).
        let limit = 8 * 1024 * 1024;
        let tmp = tempfile::tempdir().unwrap();
        let mut out = ::zip::ZipWriter::new(Cursor::new(Vec::new()));
        out.start_file("zeros", SimpleFileOptions::default()).unwrap();
        let chunk = vec![0u8; 1024 * 1024];
        for _ in 0..=(limit / chunk.len() as u64) {
            out.write_all(&chunk).unwrap();
        }
        let zip = out.finish().unwrap().into_inner();
        assert!(zip.len() < 100 * 1024);
        let err = unpack(&zip, &tmp.path().join("code"), Limits { max_unzipped: limit, ..LIMITS }).unwrap_err();
        assert!(matches!(err, UnpackError::UnzippedTooLarge { limit: l } if l == limit), "{err}");
        assert!(!tmp.path().join("code").exists());
        assert!(!tmp.path().join("code.unpacking").exists());
    }
}
