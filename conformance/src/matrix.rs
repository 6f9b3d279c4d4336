//! The capability matrix: backend × case → pass / fail / not supported, with a note.
//!
//! It is generated, never hand-edited: the suite produces a [`Matrix`], which is saved as JSON
//! (one `conformance/matrix/<backend>.json` per backend), rendered as Markdown, and spliced into
//! the README between [`BEGIN_MARKER`] and [`END_MARKER`].

use std::path::{Path, PathBuf};

use faas_api::Error;
use serde::{Deserialize, Serialize};

/// The line that opens the generated backend table in the README.
pub const BEGIN_MARKER: &str = "<!-- backend-matrix:begin -->";
/// The line that closes the generated backend table in the README.
pub const END_MARKER: &str = "<!-- backend-matrix:end -->";

/// The result of one case on one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// The backend did what the case expects.
    Pass,
    /// It did not; the note says what was sent, expected and got.
    Fail,
    /// The case cannot be checked on this backend (a capability it does not claim).
    NotSupported,
}

impl Mark {
    /// The Markdown cell: ✅, ❌ or —.
    pub fn symbol(self) -> &'static str {
        match self {
            Mark::Pass => "✅",
            Mark::Fail => "❌",
            Mark::NotSupported => "—",
        }
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Backend label, e.g. `local (process)`.
    pub backend: String,
    /// Case id, e.g. `INV-01`.
    pub case: String,
    /// Case title.
    #[serde(default)]
    pub title: String,
    /// `core` or `uses:<capability>`.
    pub tag: String,
    /// The result.
    pub outcome: Mark,
    /// Why it failed or is not supported, or a remark on a pass; empty when there is nothing to say.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Results of the suite on one or more backends.
///
/// ```
/// use faas_conformance::matrix::{Mark, Matrix, Row};
/// let row = |backend: &str, outcome| Row { backend: backend.into(), case: "INV-01".into(),
///     title: "typed reply".into(), tag: "core".into(), outcome, note: String::new() };
/// let mut m = Matrix::new(vec![row("a", Mark::Pass)]);
/// m.merge(Matrix::new(vec![row("b", Mark::Fail)]));
/// let md = m.to_markdown();
/// assert!(md.contains("| INV-01 typed reply | core | ✅ | ❌ |"), "{md}");
/// assert_eq!(Matrix::from_json(&m.to_json()).unwrap(), m);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matrix {
    /// Every cell, in the order the cases ran.
    pub results: Vec<Row>,
}

impl Matrix {
    /// A matrix of `results`.
    pub fn new(results: Vec<Row>) -> Matrix {
        Matrix { results }
    }

    /// Backend labels in order of first appearance.
    pub fn backends(&self) -> Vec<&str> {
        let mut out: Vec<&str> = vec![];
        for r in &self.results {
            if !out.contains(&r.backend.as_str()) {
                out.push(&r.backend);
            }
        }
        out
    }

    /// The cell for `backend` and `case`.
    pub fn get(&self, backend: &str, case: &str) -> Option<&Row> {
        self.results.iter().find(|r| r.backend == backend && r.case == case)
    }

    /// The rows of one backend, as a matrix of its own.
    pub fn for_backend(&self, backend: &str) -> Matrix {
        Matrix::new(self.results.iter().filter(|r| r.backend == backend).cloned().collect())
    }

    /// Whether any cell failed.
    pub fn has_failures(&self) -> bool {
        self.results.iter().any(|r| r.outcome == Mark::Fail)
    }

    /// Adds the cells of `other`; a cell for the same backend and case replaces the old one.
    pub fn merge(&mut self, other: Matrix) {
        for row in other.results {
            match self.results.iter_mut().find(|r| r.backend == row.backend && r.case == row.case) {
                Some(existing) => *existing = row,
                None => self.results.push(row),
            }
        }
    }

    /// Pretty JSON: `{"results": [{"backend","case","title","tag","outcome","note"}]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a matrix always serialises")
    }

    /// Parses [`Matrix::to_json`] output; errors name the JSON problem.
    pub fn from_json(json: &str) -> Result<Matrix, Error> {
        serde_json::from_str(json).map_err(|e| Error::bad_input(format!("invalid conformance matrix JSON: {e}")))
    }

    /// Markdown: one row per case, one column per backend (✅ pass, ❌ fail, — not supported),
    /// then the notes, one line per non-empty note.
    pub fn to_markdown(&self) -> String {
        let backends = self.backends();
        let mut cases: Vec<(&str, &str, &str)> = vec![];
        for r in &self.results {
            if !cases.iter().any(|(id, _, _)| *id == r.case) {
                cases.push((&r.case, &r.title, &r.tag));
            }
        }
        let mut out = String::from("| case | tag |");
        for b in &backends {
            out.push_str(&format!(" {} |", cell(b)));
        }
        out.push_str("\n|---|---|");
        for _ in &backends {
            out.push_str("---|");
        }
        out.push('\n');
        for (id, title, tag) in &cases {
            let label = if title.is_empty() { id.to_string() } else { format!("{id} {title}") };
            out.push_str(&format!("| {} | {} |", cell(&label), cell(tag)));
            for b in &backends {
                let mark = self.get(b, id).map(|r| r.outcome.symbol()).unwrap_or(" ");
                out.push_str(&format!(" {mark} |"));
            }
            out.push('\n');
        }
        let notes: Vec<&Row> = self.results.iter().filter(|r| !r.note.is_empty()).collect();
        if !notes.is_empty() {
            out.push_str("\nNotes:\n\n");
            for r in notes {
                out.push_str(&format!("- {} `{}` {}: {}\n", r.outcome.symbol(), r.backend, r.case, one_line(&r.note)));
            }
        }
        out
    }

    /// Writes one `<dir>/<backend slug>.json` per backend (`local (process)` → `local-process.json`)
    /// and returns the paths written.
    pub fn write_backend_files(&self, dir: &Path) -> Result<Vec<PathBuf>, Error> {
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        let mut written = vec![];
        for b in self.backends() {
            let path = dir.join(format!("{}.json", slug(b)));
            write_atomically(&path, &(self.for_backend(b).to_json() + "\n"))?;
            written.push(path);
        }
        Ok(written)
    }

    /// Reads every `*.json` matrix in `dir`, in file-name order.
    pub fn read_dir(dir: &Path) -> Result<Vec<Matrix>, Error> {
        let entries = std::fs::read_dir(dir).map_err(|e| io_error("read", dir, e))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).map_err(|e| io_error("read", p, e))?;
                Matrix::from_json(&text).map_err(|e| Error::bad_input(format!("{}: {}", p.display(), e.message())))
            })
            .collect()
    }
}

/// A file-name-safe form of a backend label: lower-case letters, digits and single `-`.
///
/// ```
/// assert_eq!(faas_conformance::matrix::slug("local (in-process)"), "local-in-process");
/// ```
pub fn slug(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "backend".to_string()
    } else {
        out
    }
}

/// The README backend table: the Markdown of all `matrices` merged, between the markers.
///
/// ```
/// use faas_conformance::matrix::{render_readme_table, Matrix, BEGIN_MARKER, END_MARKER};
/// let block = render_readme_table(&[Matrix::default()]);
/// assert!(block.starts_with(BEGIN_MARKER) && block.trim_end().ends_with(END_MARKER));
/// ```
pub fn render_readme_table(matrices: &[Matrix]) -> String {
    let mut all = Matrix::default();
    for m in matrices {
        all.merge(m.clone());
    }
    format!(
        "{BEGIN_MARKER}\n<!-- generated from conformance/matrix/*.json by the conformance suite; do not edit -->\n{}{END_MARKER}\n",
        all.to_markdown()
    )
}

/// Replaces the block between the markers in the file at `path` (markers included) with
/// [`render_readme_table`]. A file without both markers, in order, is an error naming it and
/// is left unchanged.
pub fn update_readme(path: &Path, matrices: &[Matrix]) -> Result<(), Error> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error("read", path, e))?;
    let updated = replace_block(&text, &render_readme_table(matrices))
        .map_err(|why| Error::bad_input(format!("{}: {why}", path.display())))?;
    if updated != text {
        write_atomically(path, &updated)?;
    }
    Ok(())
}

/// Replaces the marker block of `text` (from the begin marker to the end of the end marker's
/// line) with `block`.
pub fn replace_block(text: &str, block: &str) -> Result<String, String> {
    let begin = text.find(BEGIN_MARKER).ok_or_else(|| format!("no `{BEGIN_MARKER}` marker"))?;
    let end = text[begin..]
        .find(END_MARKER)
        .map(|i| begin + i + END_MARKER.len())
        .ok_or_else(|| format!("no `{END_MARKER}` marker after `{BEGIN_MARKER}`"))?;
    if text[end..].contains(BEGIN_MARKER) || text[..begin].contains(END_MARKER) {
        return Err("the backend-matrix markers appear more than once".to_string());
    }
    let end = if text[end..].starts_with('\n') { end + 1 } else { end };
    Ok(format!("{}{}{}", &text[..begin], block, &text[end..]))
}

fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::unavailable(format!("cannot {what} {}: {e}", path.display()))
}

fn write_atomically(path: &Path, text: &str) -> Result<(), Error> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| io_error("write", path, e))
}
