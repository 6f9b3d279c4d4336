//! The state directory of the pipes backend: what is deployed and what ran, on disk, so separate
//! `faas` commands (deploy, then invoke, then logs) see the same backend.
//!
//! ```text
//! <dir>/bin/<app>-<fingerprint>       the deployed binaries (copies; never changed once written)
//! <dir>/functions/<name>.json         one record per deployed function: its spec and binary
//! <dir>/activations.jsonl             one line per activation, with its logs (the newest 4 MiB,
//! <dir>/activations.1.jsonl           and the 4 MiB before them)
//! ```

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use faas_api::{Activation, ActivationQuery, FunctionSpec};
use serde::{Deserialize, Serialize};

/// A failure of the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A function record is not what this backend writes.
    #[error("{} is not a pipes function record: {source}", path.display())]
    Corrupt {
        /// The record.
        path: PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
}

impl From<StoreError> for faas_api::Error {
    fn from(e: StoreError) -> faas_api::Error {
        faas_api::Error::unavailable(e.to_string()).with_type("PipesStateError")
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { action, path, source }
}

/// A deployed function: its spec and the binary it runs.
///
/// ```
/// let record = faas_pipes::store::FunctionRecord { spec: faas_api::FunctionSpec::new("hello"), binary: "/state/bin/app-1".into() };
/// let json = serde_json::to_value(&record).unwrap();
/// assert_eq!((json["spec"]["name"].as_str(), json["binary"].as_str()), (Some("hello"), Some("/state/bin/app-1")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    /// The function as deployed.
    pub spec: FunctionSpec,
    /// Its binary, inside the state directory.
    pub binary: PathBuf,
}

/// Rotate the activation log past this size.
const MAX_ACTIVATION_LOG: u64 = 4 << 20;

/// The state directory.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let store = faas_pipes::store::Store::open(dir.path()).unwrap();
/// assert!(store.functions().unwrap().is_empty());
/// assert_eq!(store.function("hello").unwrap(), None);
/// ```
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// Serialises this process's appends to the activation log.
    log: Mutex<()>,
}

impl Store {
    /// Opens (creating it if need be) the state directory `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        for sub in ["bin", "functions"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(io("create", &path))?;
        }
        Ok(Store { dir: dir.to_path_buf(), log: Mutex::new(()) })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Copies the app binary `binary` into the state directory, once per version of it, and
    /// returns the copy's path and size. A version is the file's size and modification time (as
    /// cargo's own freshness check has it), so an unchanged build is not copied again.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = faas_pipes::store::Store::open(&dir.path().join("state")).unwrap();
    /// let built = dir.path().join("app");
    /// std::fs::write(&built, b"#!/bin/sh\n").unwrap();
    /// let (copy, size) = store.install_binary("demo", &built).unwrap();
    /// assert_eq!((size, std::fs::read(&copy).unwrap()), (10, b"#!/bin/sh\n".to_vec()));
    /// assert_eq!(store.install_binary("demo", &built).unwrap().0, copy); // the same version
    /// ```
    pub fn install_binary(&self, app: &str, binary: &Path) -> Result<(PathBuf, u64), StoreError> {
        let meta = std::fs::metadata(binary).map_err(io("read", binary))?;
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default();
        let mut hasher = DefaultHasher::new();
        (binary, meta.len(), mtime.as_nanos()).hash(&mut hasher);
        let copy = self.dir.join("bin").join(format!("{app}-{:016x}", hasher.finish()));
        if !copy.is_file() {
            let partial = copy.with_extension(format!("partial-{}", std::process::id()));
            std::fs::copy(binary, &partial).map_err(io("copy the app binary to", &partial))?;
            std::fs::rename(&partial, &copy).map_err(io("write", &copy))?;
        }
        Ok((copy, meta.len()))
    }

    /// Removes the binaries no deployed function runs any more (a running instance of one keeps
    /// running: the file goes, the process does not).
    pub fn prune_binaries(&self) -> Result<(), StoreError> {
        let used: Vec<PathBuf> = self.functions()?.into_iter().map(|r| r.binary).collect();
        let dir = self.dir.join("bin");
        for entry in std::fs::read_dir(&dir).map_err(io("read", &dir))?.flatten() {
            let path = entry.path();
            let partial = path.extension().is_some_and(|e| e.to_string_lossy().starts_with("partial-"));
            if !partial && !used.contains(&path) {
                std::fs::remove_file(&path).map_err(io("remove", &path))?;
            }
        }
        Ok(())
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.dir.join("functions").join(format!("{name}.json"))
    }

    /// The record of function `name`; `None` when it is not deployed (or is no valid name).
    pub fn function(&self, name: &str) -> Result<Option<FunctionRecord>, StoreError> {
        if faas_api::validate_function_name(name).is_err() {
            return Ok(None);
        }
        let path = self.record_path(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|source| StoreError::Corrupt { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    /// Every deployed function, by name.
    pub fn functions(&self) -> Result<Vec<FunctionRecord>, StoreError> {
        let dir = self.dir.join("functions");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(io("read", &dir))?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
            .collect();
        names.sort();
        let mut records = vec![];
        for name in names {
            records.extend(self.function(&name)?);
        }
        Ok(records)
    }

    /// Writes the record of a function (replacing it atomically).
    pub fn save(&self, record: &FunctionRecord) -> Result<(), StoreError> {
        let path = self.record_path(&record.spec.name);
        let partial = path.with_extension(format!("partial-{}", std::process::id()));
        let json = serde_json::to_vec_pretty(record).expect("a record serialises");
        std::fs::write(&partial, json).map_err(io("write", &partial))?;
        std::fs::rename(&partial, &path).map_err(io("write", &path))
    }

    /// Removes the record of function `name`; `false` when there was none.
    pub fn remove(&self, name: &str) -> Result<bool, StoreError> {
        if self.function(name)?.is_none() {
            return Ok(false);
        }
        let path = self.record_path(name);
        std::fs::remove_file(&path).map_err(io("remove", &path))?;
        Ok(true)
    }

    /// Appends one activation to the log.
    pub fn record_activation(&self, activation: &Activation) -> Result<(), StoreError> {
        let _appending = self.log.lock().expect("activation log lock");
        let path = self.dir.join("activations.jsonl");
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_ACTIVATION_LOG) {
            let older = self.dir.join("activations.1.jsonl");
            std::fs::rename(&path, &older).map_err(io("rotate", &path))?;
        }
        let mut line = serde_json::to_vec(activation).expect("an activation serialises");
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io("open", &path))?;
        file.write_all(&line).map_err(io("write", &path))
    }

    /// The activations `query` asks for, newest first (at most 50 unless it says otherwise).
    ///
    /// ```
    /// use faas_api::{Activation, ActivationQuery, ActivationStatus, InvokeMode};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = faas_pipes::store::Store::open(dir.path()).unwrap();
    /// for (id, function) in [("a1", "hello"), ("a2", "bye"), ("a3", "hello")] {
    ///     let a = Activation { id: id.into(), function: function.into(), start_ms: 0, duration_us: 0, billed_us: 0, cause: None, cold: false,
    ///         status: ActivationStatus::Success, error: None, result_size: 0, mode: InvokeMode::Sync, attempt: 1,
    ///         logs: vec![] };
    ///     store.record_activation(&a).unwrap();
    /// }
    /// let hello = ActivationQuery { function: Some("hello".into()), ..Default::default() };
    /// let ids: Vec<String> = store.activations(&hello).unwrap().into_iter().map(|a| a.id).collect();
    /// assert_eq!(ids, ["a3", "a1"]);
    /// ```
    pub fn activations(&self, query: &ActivationQuery) -> Result<Vec<Activation>, StoreError> {
        let mut found = vec![];
        for file in ["activations.1.jsonl", "activations.jsonl"] {
            let path = self.dir.join(file);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("read", &path)(e)),
            };
            // A line cut short by a crash mid-write is skipped.
            found.extend(text.lines().filter_map(|l| serde_json::from_str::<Activation>(l).ok()).filter(|a| {
                query.function.as_ref().is_none_or(|f| *f == a.function) && query.id.as_ref().is_none_or(|i| *i == a.id)
            }));
        }
        found.reverse();
        found.truncate(query.limit.unwrap_or(50));
        Ok(found)
    }
}
