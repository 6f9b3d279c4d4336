//! The activation log: one record per invocation, newest first, optionally persisted as JSON lines
//! so `faas logs` and `faas activations` still show them after a restart.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use faas_api::{Activation, ActivationQuery, ActivationStatus};

#[derive(Default)]
struct Records {
    list: VecDeque<Activation>,
    /// Ids recorded as pending: only those are ever replaced, so other records need no search.
    pending: std::collections::HashSet<String>,
}

/// Default number of activations kept in memory.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// A bounded, optionally persisted, log of activations.
///
/// ```
/// use faas_runner_local::activations::ActivationLog;
/// use faas_api::{Activation, ActivationQuery, ActivationStatus, InvokeMode};
/// let log = ActivationLog::in_memory(10);
/// let a = Activation { id: "1".into(), function: "f".into(), start_ms: 0, duration_us: 5, cold: true,
///     status: ActivationStatus::Success, error: None, result_size: 2, mode: InvokeMode::Sync, attempt: 1, logs: vec![] };
/// log.record(a.clone());
/// assert_eq!(log.query(&ActivationQuery { function: Some("f".into()), ..Default::default() }), vec![a]);
/// ```
pub struct ActivationLog {
    records: Mutex<Records>,
    capacity: usize,
    file: Option<Mutex<std::fs::File>>,
    path: Option<PathBuf>,
}

impl ActivationLog {
    /// A log kept only in memory.
    pub fn in_memory(capacity: usize) -> ActivationLog {
        ActivationLog { records: Mutex::new(Records::default()), capacity: capacity.max(1), file: None, path: None }
    }

    /// A log persisted to `path` (JSON lines), loading what is already there. Records that were
    /// written more than once (pending, then finished) keep their last version.
    pub fn open(path: &Path, capacity: usize) -> std::io::Result<ActivationLog> {
        let mut records: VecDeque<Activation> = VecDeque::new();
        if let Ok(text) = std::fs::read_to_string(path) {
            let mut by_id: std::collections::HashMap<String, usize> = Default::default();
            for line in text.lines() {
                let Ok(a) = serde_json::from_str::<Activation>(line) else { continue };
                match by_id.get(&a.id) {
                    Some(&i) => records[i] = a,
                    None => {
                        by_id.insert(a.id.clone(), records.len());
                        records.push_back(a);
                    }
                }
            }
            while records.len() > capacity {
                records.pop_front();
            }
            // Compact: rewrite only what is kept.
            let mut out = String::new();
            for a in &records {
                out.push_str(&serde_json::to_string(a).expect("activation serialises"));
                out.push('\n');
            }
            std::fs::write(path, out)?;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let pending = records.iter().filter(|a| a.status == ActivationStatus::Pending).map(|a| a.id.clone()).collect();
        Ok(ActivationLog {
            records: Mutex::new(Records { list: records, pending }),
            capacity: capacity.max(1),
            file: Some(Mutex::new(file)),
            path: Some(path.to_path_buf()),
        })
    }

    /// Where the log is persisted, if anywhere.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Adds or replaces (same id) a record.
    pub fn record(&self, activation: Activation) {
        if let Some(file) = &self.file {
            let mut line = serde_json::to_vec(&activation).expect("activation serialises");
            line.push(b'\n');
            if let Err(e) = file.lock().expect("activation file lock").write_all(&line) {
                tracing::warn!(error = %e, "cannot persist an activation record");
            }
        }
        let mut records = self.records.lock().expect("activation log lock");
        let Records { list, pending } = &mut *records;
        let replaces = if activation.status == ActivationStatus::Pending {
            !pending.insert(activation.id.clone())
        } else {
            pending.remove(&activation.id)
        };
        if replaces {
            if let Some(existing) = list.iter_mut().rev().find(|a| a.id == activation.id) {
                *existing = activation;
                return;
            }
        }
        list.push_back(activation);
        while list.len() > self.capacity {
            if let Some(gone) = list.pop_front() {
                pending.remove(&gone.id);
            }
        }
    }

    /// Records matching `query`, newest first.
    pub fn query(&self, query: &ActivationQuery) -> Vec<Activation> {
        let records = self.records.lock().expect("activation log lock");
        records
            .list
            .iter()
            .rev()
            .filter(|a| query.function.as_deref().is_none_or(|f| a.function == f))
            .filter(|a| query.id.as_deref().is_none_or(|id| a.id == id))
            .take(query.limit.unwrap_or(50))
            .cloned()
            .collect()
    }
}
