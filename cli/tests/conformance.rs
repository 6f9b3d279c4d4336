//! `faas conformance` drives the conformance suite against the local backend (both modes),
//! prints the generated matrix and writes it to `--out`. Run from this source checkout, it builds
//! `faas-probe` with cargo (in the target dir `faas` itself was built in, as a developer's would be)
//! rather than trusting whatever probe binary lies next to it.

mod common;

use common::*;

/// The target dir the `faas` under test was built in (`<target>/<profile>/faas`).
fn target_dir() -> std::path::PathBuf {
    let faas = std::path::Path::new(faas_bin());
    faas.parent().and_then(std::path::Path::parent).expect("faas lives in a target dir").to_path_buf()
}

#[test]
fn conformance_against_local_writes_the_matrix() {
    let out = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("matrix");
    let run = |extra: &[&str]| {
        let mut args = vec!["conformance", "--backend", "local", "--out", out_dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        faas_cmd(cwd.path(), &args).env("CARGO_TARGET_DIR", target_dir()).output().unwrap()
    };
    let o = run(&["--json"]);
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

    let o = run(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("| INV-01"), "the Markdown matrix is printed: {}", stdout(&o));
}
