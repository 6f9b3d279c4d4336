//! The capability matrix: JSON, Markdown, merging, per-backend files and the README block.

use faas_conformance::matrix::{
    render_readme_table, replace_block, slug, update_readme, Mark, Matrix, Row, BEGIN_MARKER, END_MARKER,
};

fn row(backend: &str, case: &str, outcome: Mark, note: &str) -> Row {
    Row {
        backend: backend.into(),
        case: case.into(),
        title: format!("title of {case}"),
        tag: if case.starts_with("ASY") { "uses:async".into() } else { "core".into() },
        outcome,
        note: note.into(),
    }
}

fn sample() -> Matrix {
    Matrix::new(vec![
        row("local (process)", "INV-01", Mark::Pass, ""),
        row("local (process)", "ASY-01", Mark::NotSupported, "backend does not claim async"),
        row("lambda", "INV-01", Mark::Fail, "sent {\"name\":\"Ada\"}: expected | got\nsomething else"),
    ])
}

#[test]
fn markdown_has_a_column_per_backend_a_row_per_case_and_the_notes() {
    let md = sample().to_markdown();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines[0], "| case | tag | local (process) | lambda |");
    assert_eq!(lines[1], "|---|---|---|---|");
    assert_eq!(lines[2], "| INV-01 title of INV-01 | core | ✅ | ❌ |");
    // lambda has no ASY-01 row: the cell is blank, never a pass.
    assert_eq!(lines[3], "| ASY-01 title of ASY-01 | uses:async | — |   |");
    assert!(md.contains("- — `local (process)` ASY-01: backend does not claim async"), "{md}");
    // Notes stay on one line, so a note cannot break the list.
    assert!(md.contains("- ❌ `lambda` INV-01: sent {\"name\":\"Ada\"}: expected | got something else\n"), "{md}");
    assert!(!md.contains("- ✅"), "passes without a note get no note line: {md}");
}

#[test]
fn pipes_in_labels_are_escaped_in_table_cells() {
    let m = Matrix::new(vec![row("a|b", "X-01", Mark::Pass, "")]);
    assert!(m.to_markdown().starts_with("| case | tag | a\\|b |"));
}

#[test]
fn json_round_trips_and_uses_stable_field_names() {
    let m = sample();
    let json = m.to_json();
    assert_eq!(Matrix::from_json(&json).unwrap(), m);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["results"][1]["outcome"], "not_supported");
    assert_eq!(v["results"][0]["backend"], "local (process)");
    assert!(v["results"][0].get("note").is_none(), "empty notes are omitted");
}

#[test]
fn invalid_json_is_a_bad_input_error_naming_the_problem() {
    let err = Matrix::from_json("{\"results\": [{\"backend\": 1}]}").unwrap_err();
    assert_eq!(err.kind(), faas_api::ErrorKind::BadInput);
    assert!(err.message().starts_with("invalid conformance matrix JSON"), "{}", err.message());
}

#[test]
fn merge_replaces_the_same_cell_and_appends_new_ones() {
    let mut m = sample();
    m.merge(Matrix::new(vec![row("lambda", "INV-01", Mark::Pass, ""), row("lambda", "ASY-01", Mark::Pass, "")]));
    assert_eq!(m.results.len(), 4);
    assert_eq!(m.get("lambda", "INV-01").unwrap().outcome, Mark::Pass);
    assert_eq!(m.get("lambda", "ASY-01").unwrap().outcome, Mark::Pass);
    assert_eq!(m.get("local (process)", "INV-01").unwrap().outcome, Mark::Pass);
    assert!(!m.has_failures());
    assert_eq!(m.backends(), vec!["local (process)", "lambda"]);
}

#[test]
fn backend_files_round_trip_through_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let written = sample().write_backend_files(dir.path()).unwrap();
    let names: Vec<String> = written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["local-process.json", "lambda.json"]);
    let back = Matrix::read_dir(dir.path()).unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[0], sample().for_backend("lambda"));
    assert_eq!(back[1], sample().for_backend("local (process)"));
    std::fs::write(dir.path().join("broken.json"), "not json").unwrap();
    let err = Matrix::read_dir(dir.path()).unwrap_err();
    assert!(err.message().contains("broken.json"), "{}", err.message());
}

#[test]
fn slugs_are_file_name_safe() {
    assert_eq!(slug("local (process)"), "local-process");
    assert_eq!(slug("AWS Lambda / eu-west-1"), "aws-lambda-eu-west-1");
    assert_eq!(slug("(((("), "backend");
}

#[test]
fn readme_block_is_replaced_between_the_markers_only() {
    let dir = tempfile::tempdir().unwrap();
    let readme = dir.path().join("README.md");
    let before = format!("# faas\n\nintro\n\n{BEGIN_MARKER}\nold table\n{END_MARKER}\n\n## after\ntext\n");
    std::fs::write(&readme, &before).unwrap();
    update_readme(&readme, &[sample()]).unwrap();
    let after = std::fs::read_to_string(&readme).unwrap();
    assert!(after.starts_with("# faas\n\nintro\n\n"));
    assert!(after.ends_with("\n## after\ntext\n"), "{after}");
    assert!(!after.contains("old table"));
    assert!(after.contains("| INV-01 title of INV-01 | core | ✅ | ❌ |"));
    assert_eq!(after.matches(BEGIN_MARKER).count(), 1);
    // Rendering again with the same input changes nothing.
    update_readme(&readme, &[sample()]).unwrap();
    assert_eq!(std::fs::read_to_string(&readme).unwrap(), after);
    // Several matrices are merged into one table.
    let other = Matrix::new(vec![row("gcf", "INV-01", Mark::Pass, "")]);
    let block = render_readme_table(&[sample(), other]);
    assert!(block.contains("| case | tag | local (process) | lambda | gcf |"), "{block}");
}

#[test]
fn a_readme_without_markers_is_an_error_and_is_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let readme = dir.path().join("README.md");
    std::fs::write(&readme, "# faas\nno table here\n").unwrap();
    let err = update_readme(&readme, &[sample()]).unwrap_err();
    assert!(err.message().contains("README.md") && err.message().contains(BEGIN_MARKER), "{}", err.message());
    assert_eq!(std::fs::read_to_string(&readme).unwrap(), "# faas\nno table here\n");
    let err = replace_block(&format!("{BEGIN_MARKER}\n"), "x").unwrap_err();
    assert!(err.contains(END_MARKER), "{err}");
    let twice = format!("{BEGIN_MARKER}\n{END_MARKER}\n{BEGIN_MARKER}\n{END_MARKER}\n");
    assert!(replace_block(&twice, "x").unwrap_err().contains("more than once"));
    assert!(update_readme(&dir.path().join("missing.md"), &[]).unwrap_err().message().contains("missing.md"));
}

#[test]
fn the_committed_readme_table_is_the_one_generated_from_the_committed_matrix_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let matrices = Matrix::read_dir(&root.join("conformance/matrix")).unwrap();
    assert!(!matrices.is_empty(), "conformance/matrix/*.json are missing");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let regenerated = replace_block(&readme, &render_readme_table(&matrices)).unwrap();
    assert!(
        regenerated == readme,
        "README.md's backend table is out of date; run FAAS_UPDATE_MATRIX=1 cargo test -p faas-conformance --test local"
    );
}
