//! `faas conformance` drives the conformance suite against the local backend (both modes),
//! prints the generated matrix and writes it to `--out`.

mod common;

use common::*;

#[test]
fn conformance_against_local_writes_the_matrix() {
    let out = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("matrix");
    let o = faas(cwd.path(), &["conformance", "--backend", "local", "--out", out_dir.to_str().unwrap(), "--json"]);
    let v = json(&o);
    assert_eq!(o.status.code(), Some(0), "{v}\n{}", stderr(&o));
    assert_eq!(v["ok"], true);
    assert_eq!(v["failed"].as_array().unwrap().len(), 0, "{v}");
    let written = std::fs::read_to_string(out_dir.join("matrix.json")).unwrap();
    let matrix = faas_conformance::Matrix::from_json(&written).unwrap();
    assert!(matrix.backends().contains(&"local (process)"), "{:?}", matrix.backends());
    assert!(matrix.backends().contains(&"local (in-process)"), "{:?}", matrix.backends());
    assert!(matrix.get("local (process)", "INV-01").is_some());
    let md = std::fs::read_to_string(out_dir.join("matrix.md")).unwrap();
    assert!(md.contains("INV-01"), "{md}");

    let o = faas(cwd.path(), &["conformance", "--backend", "local", "--out", out_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("| INV-01"), "the Markdown matrix is printed: {}", stdout(&o));
}
