//! The local backend's activation log (`faas_runner_local::activations::ActivationLog`) opening a
//! file whose lines are records it wrote, records from an older or damaged run, and arbitrary bytes
//! (a torn write after a crash, a damaged disk, an editor's save).
//!
//! Invariants, besides "no panic":
//! - every line that is a record is kept, in its last version per id (first appearance decides
//!   the order), up to the capacity, newest kept: the model is the lines themselves, read with
//!   serde, so a damaged line costs that line only;
//! - opening compacts the file to exactly the kept records, and opening it again gives the same;
//! - a record made after opening survives a reopen.
#![no_main]

use arbitrary::{Result, Unstructured};
use faas_api::{Activation, ActivationQuery, ActivationStatus, Error, InvokeMode};
use faas_fuzz::pick_string;
use faas_runner_local::activations::ActivationLog;
use libfuzzer_sys::fuzz_target;

const IDS: &[&str] = &["1", "2", "3", "a-b", "é", ""];
const TEXT: &[&str] = &["INFO hello", "", "line\nbreak", "\u{0}", "\"quoted\"", "\\"];

fn activation(u: &mut Unstructured<'_>) -> Result<Activation> {
    let status = *u.choose(&[ActivationStatus::Pending, ActivationStatus::Success, ActivationStatus::Error])?;
    let error = if u.arbitrary()? { Some(Error::function(pick_string(u, TEXT)?, pick_string(u, TEXT)?)) } else { None };
    let mut logs = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        logs.push(pick_string(u, TEXT)?);
    }
    Ok(Activation {
        id: pick_string(u, IDS)?,
        function: pick_string(u, &["f", "hello"])?,
        start_ms: u.arbitrary()?,
        duration_us: u.arbitrary()?,
        billed_us: u.arbitrary()?,
        cause: if u.arbitrary()? { Some(pick_string(u, TEXT)?) } else { None },
        cold: u.arbitrary()?,
        status,
        error,
        result_size: u.int_in_range(0..=1 << 20)?,
        mode: *u.choose(&[InvokeMode::Sync, InvokeMode::Async, InvokeMode::DryRun])?,
        attempt: u.arbitrary()?,
        logs,
    })
}

/// What the file's lines say, read line by line: the last version of each id, in the order ids
/// first appeared, the oldest dropped past `capacity`.
fn model(bytes: &[u8], capacity: usize) -> Vec<Activation> {
    let mut kept: Vec<Activation> = Vec::new();
    for line in bytes.split(|b| *b == b'\n') {
        let Ok(a) = serde_json::from_slice::<Activation>(line) else { continue };
        match kept.iter_mut().find(|k| k.id == a.id) {
            Some(k) => *k = a,
            None => kept.push(a),
        }
    }
    let drop = kept.len().saturating_sub(capacity);
    kept.drain(..drop);
    kept
}

fn all(log: &ActivationLog) -> Vec<Activation> {
    let mut newest_first = log.query(&ActivationQuery { limit: Some(usize::MAX), ..Default::default() });
    newest_first.reverse();
    newest_first
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let capacity = u.int_in_range(1..=8)?;
    let mut bytes = Vec::new();
    for _ in 0..u.int_in_range(0..=12)? {
        match u.int_in_range(0..=3)? {
            0 | 1 => bytes.extend_from_slice(serde_json::to_string(&activation(u)?).unwrap().as_bytes()),
            2 => {
                // A record cut or damaged somewhere.
                let mut line = serde_json::to_vec(&activation(u)?).unwrap();
                let at = u.choose_index(line.len())?;
                match u.int_in_range(0..=2)? {
                    0 => line.truncate(at),
                    1 => line[at] = u.arbitrary()?,
                    _ => line.insert(at, u.arbitrary()?),
                }
                bytes.extend_from_slice(&line);
            }
            _ => {
                let n = u.int_in_range(0..=32)?;
                bytes.extend_from_slice(u.bytes(n)?);
            }
        }
        if u.ratio(7, 8)? {
            bytes.extend_from_slice(if u.ratio(1, 8)? { b"\r\n" } else { b"\n" });
        }
    }
    let later = activation(u)?;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("activations.jsonl");
    std::fs::write(&path, &bytes).unwrap();
    let want = model(&bytes, capacity);

    let log = ActivationLog::open(&path, capacity).expect("opening a damaged log is not an error");
    assert_eq!(all(&log), want, "the records of the file's lines, last version per id");
    drop(log);
    let compacted = std::fs::read(&path).unwrap();
    assert_eq!(compacted.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count(), want.len(), "compacted");

    let log = ActivationLog::open(&path, capacity).unwrap();
    assert_eq!(all(&log), want, "a second open reads what the first wrote");
    log.record(later.clone());
    drop(log);
    let log = ActivationLog::open(&path, capacity).unwrap();
    let mut again = want;
    match again.iter_mut().find(|k| k.id == later.id) {
        Some(k) => *k = later,
        None => again.push(later),
    }
    let drop = again.len().saturating_sub(capacity);
    again.drain(..drop);
    assert_eq!(all(&log), again, "a record made after opening survives a reopen");
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
