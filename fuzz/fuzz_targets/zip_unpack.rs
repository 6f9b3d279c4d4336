//! The Lambda emulator's zip unpacking: `faas_packaging::unpack::Archive::open` then `extract`,
//! on raw bytes and on zips built from entries the input picks (names that escape, symlinks,
//! directories, permission bits, stored or deflated data), sometimes with bytes changed afterwards.
//!
//! Invariants, besides "no panic":
//! - limits are honoured: a zip over `max_zipped`, more entries than `max_entries`, more unzipped
//!   bytes than `max_unzipped` are refused, and what is extracted adds up to at most the limit;
//! - every accepted entry's path is relative and stays inside the target (no `..` above it, no root);
//!   no symlink is accepted, and none exists after extraction;
//! - nothing is written outside the target directory; on error nothing is left at all (neither the
//!   target nor its staging directory);
//! - extracted files carry no setuid, setgid or sticky bit.
#![no_main]

use std::io::{Cursor, Write};
use std::path::{Component, Path};

use arbitrary::{Arbitrary, Result, Unstructured};
use faas_packaging::unpack::{Archive, Limits, UnpackError};
use libfuzzer_sys::fuzz_target;
use zip::write::SimpleFileOptions;

const NAMES: &[&str] = &[
    "bootstrap",
    "lib/data.txt",
    "a/",
    "a",
    "a/b",
    "../evil",
    "a/../../evil",
    "/abs/evil",
    "./x",
    "a\\..\\..\\evil",
    "C:\\evil",
    "..",
    ".",
    "",
    "dir//file",
    "x\0y",
    "a/./b/../c",
];

#[derive(Debug, Arbitrary)]
enum Kind {
    File { data: Vec<u8>, deflate: bool },
    Zeros { kib: u8 },
    Dir,
    Symlink(String),
}

fn name(u: &mut Unstructured<'_>) -> Result<String> {
    faas_fuzz::pick_string(u, NAMES)
}

fn build(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for _ in 0..u.int_in_range(0..=6)? {
        let name = name(u)?;
        let mode: u32 = if u.ratio(1, 2)? { u.arbitrary::<u32>()? & 0o7777 } else { 0o644 };
        let kind: Kind = u.arbitrary()?;
        let opts = SimpleFileOptions::default().unix_permissions(mode);
        let _ = match kind {
            Kind::File { data, deflate } => {
                let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
                out.start_file(name, opts.compression_method(method)).map(|_| {
                    let _ = out.write_all(&data);
                })
            }
            Kind::Zeros { kib } => {
                out.start_file(name, opts.compression_method(zip::CompressionMethod::Deflated)).map(|_| {
                    let _ = out.write_all(&vec![0u8; kib as usize * 1024]);
                })
            }
            Kind::Dir => out.add_directory(name, opts),
            Kind::Symlink(target) => out.add_symlink(name, target, opts),
        };
    }
    let mut zip = out.finish().map(Cursor::into_inner).unwrap_or_default();
    // Then change a few bytes: headers that lie, names the writer would not write.
    for _ in 0..u.int_in_range(0..=3)? {
        if zip.is_empty() {
            break;
        }
        let at = u.choose_index(zip.len())?;
        zip[at] = u.arbitrary()?;
    }
    Ok(zip)
}

/// Every file and directory under `dir`, checking each is a file or a directory (no symlink).
fn walk(dir: &Path, files: &mut u64, bytes: &mut u64) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        assert!(!meta.file_type().is_symlink(), "a symlink was extracted: {}", entry.path().display());
        if meta.is_dir() {
            walk(&entry.path(), files, bytes);
        } else {
            assert!(meta.is_file(), "not a regular file: {}", entry.path().display());
            assert_eq!(
                meta.permissions().mode() & 0o7000,
                0,
                "setuid/setgid/sticky kept on {}",
                entry.path().display()
            );
            *files += 1;
            *bytes += meta.len();
        }
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let (Ok(max_zipped), Ok(max_unzipped), Ok(max_entries), Ok(structured)) = (
        u.int_in_range(0..=1u64 << 16),
        u.int_in_range(0..=1u64 << 20),
        u.int_in_range(0..=64usize),
        u.arbitrary::<bool>(),
    ) else {
        return;
    };
    let limits = Limits { max_zipped, max_unzipped, max_entries };
    let bytes = if structured {
        match build(&mut u) {
            Ok(zip) => zip,
            Err(_) => return,
        }
    } else {
        u.take_rest().to_vec()
    };

    let archive = match Archive::open(&bytes, limits) {
        Ok(archive) => archive,
        Err(UnpackError::ZippedTooLarge { size, limit }) => {
            assert!(size > limit && size == bytes.len() as u64 && limit == max_zipped);
            return;
        }
        Err(UnpackError::TooManyEntries { count, limit }) => {
            assert!(count > limit && limit == max_entries);
            return;
        }
        Err(e @ (UnpackError::Escapes { .. } | UnpackError::Symlink { .. } | UnpackError::SpecialFile { .. })) => {
            assert!(!e.to_string().is_empty());
            return;
        }
        Err(UnpackError::NotAZip(_)) => return,
        Err(e) => panic!("Archive::open writes nothing, yet answered {e}"),
    };
    assert!(bytes.len() as u64 <= max_zipped);
    assert!(archive.entries().len() <= max_entries, "more entries than the limit");
    for entry in archive.entries() {
        assert!(entry.path.is_relative(), "entry `{}` has an absolute path", entry.name);
        // `a/b/../c` is inside; no prefix of the path may climb above the target.
        let mut depth = 0i64;
        for c in entry.path.components() {
            match c {
                Component::Normal(_) => depth += 1,
                Component::CurDir => {}
                Component::ParentDir => depth -= 1,
                Component::RootDir | Component::Prefix(_) => depth = -1,
            }
            assert!(depth >= 0, "entry `{}` unpacks to {:?}, outside the target", entry.name, entry.path);
        }
        if let Some(mode) = entry.mode {
            assert_ne!(mode & 0o170000, 0o120000, "symlink `{}` accepted", entry.name);
        }
    }

    let tmp = tempfile::tempdir_in(if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" }).unwrap();
    let outer = tmp.path().join("outer");
    std::fs::create_dir(&outer).unwrap();
    let target = outer.join("code");
    match archive.extract(&target) {
        Ok(total) => {
            assert!(total <= max_unzipped, "extracted {total} bytes, over the limit of {max_unzipped}");
            assert_eq!(names_in(&outer), ["code"], "something was written next to the target");
            let (mut files, mut bytes_on_disk) = (0, 0);
            walk(&target, &mut files, &mut bytes_on_disk);
            // A repeated name overwrites: what is on disk is at most what was written.
            assert!(bytes_on_disk <= total, "{bytes_on_disk} bytes on disk, {total} reported");
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(names_in(&outer).is_empty(), "left behind after `{e}`: {:?}", names_in(&outer));
        }
    }
    assert_eq!(names_in(tmp.path()), ["outer"], "something was written outside the target's directory");
});
