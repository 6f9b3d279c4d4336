//! Capturing what an instance writes: lines from pipes, split per invocation by a marker line
//! ([`LineLog`]), or everything in a file read from the last offset on ([`FileLog`]); plus bounded
//! tails of both for error messages.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// How lines are captured from an instance's stdout and stderr.
///
/// ```
/// use faas_supervisor::LineCapture;
/// let capture = LineCapture { marker: Some("__END__".into()), echo: Some("hello".into()), ..Default::default() };
/// assert_eq!(capture.max_line, 16 * 1024);
/// assert_eq!(capture.max_lines, 10_000);
/// ```
#[derive(Debug, Clone)]
pub struct LineCapture {
    /// A line containing this text ends an invocation: the text before it is an ordinary line,
    /// the rest of the line (trimmed) is the invocation's id. `None`: no markers.
    pub marker: Option<String>,
    /// Echo every line to our stderr as `[<echo>] line`.
    pub echo: Option<String>,
    /// Longest line kept, in bytes; longer lines are cut.
    pub max_line: usize,
    /// Most lines returned by one collection (the oldest are dropped first).
    pub max_lines: usize,
}

impl Default for LineCapture {
    fn default() -> Self {
        LineCapture { marker: None, echo: None, max_line: 16 * 1024, max_lines: 10_000 }
    }
}

/// Which output stream a marker came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug)]
enum LogEvent {
    Line(String),
    End(Stream, String),
    Closed,
}

/// The lines an instance writes on stdout and stderr, in the order they were read.
///
/// Made by [`crate::ProcessSpec::spawn`] with [`crate::Output::Lines`]; see
/// [`crate::Process::lines`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use faas_supervisor::{LineCapture, Output, ProcessSpec};
///
/// let script = "echo one; echo two >&2; echo '__END__ a' >&2; echo '__END__ a'; sleep 0.2; echo after";
/// let capture = LineCapture { marker: Some("__END__".into()), ..Default::default() };
/// let mut process = ProcessSpec::new("/bin/sh").args(["-c", script]).output(Output::Lines(capture)).spawn().unwrap();
/// let lines = process.lines().unwrap();
/// let mut first = lines.until_marker("a", Duration::from_secs(5)).await;
/// first.sort(); // the two pipes are read side by side
/// assert_eq!(first, ["one", "two"]);
/// assert_eq!(lines.until_closed(Duration::from_secs(5)).await, ["after"]);
/// # }
/// ```
#[derive(Debug)]
pub struct LineLog {
    rx: mpsc::UnboundedReceiver<LogEvent>,
    max_lines: usize,
}

impl LineLog {
    /// Starts reading `stdout` and `stderr` (each in its own task).
    pub(crate) fn start(
        stdout: impl AsyncRead + Unpin + Send + 'static,
        stderr: impl AsyncRead + Unpin + Send + 'static,
        capture: LineCapture,
    ) -> LineLog {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(pump(stdout, Stream::Stdout, tx.clone(), capture.clone()));
        tokio::spawn(pump(stderr, Stream::Stderr, tx, capture.clone()));
        LineLog { rx, max_lines: capture.max_lines }
    }

    /// Collects lines until both streams have marked the end of invocation `id` (or closed), for
    /// at most `limit`. Markers of other ids are skipped.
    pub async fn until_marker(&mut self, id: &str, limit: Duration) -> Vec<String> {
        let mut lines = VecDeque::new();
        let (mut out_done, mut err_done) = (false, false);
        let max = self.max_lines;
        let rx = &mut self.rx;
        let _ = tokio::time::timeout(limit, async {
            while !(out_done && err_done) {
                match rx.recv().await {
                    Some(LogEvent::Line(l)) => push(&mut lines, l, max),
                    Some(LogEvent::End(s, got)) if got == id => match s {
                        Stream::Stdout => out_done = true,
                        Stream::Stderr => err_done = true,
                    },
                    Some(LogEvent::End(..)) => {}
                    Some(LogEvent::Closed) | None => break,
                }
            }
        })
        .await;
        lines.into()
    }

    /// Collects lines until both streams are closed (the process is gone), for at most `limit`.
    pub async fn until_closed(&mut self, limit: Duration) -> Vec<String> {
        let mut lines = VecDeque::new();
        let mut closed = 0;
        let max = self.max_lines;
        let rx = &mut self.rx;
        let _ = tokio::time::timeout(limit, async {
            while closed < 2 {
                match rx.recv().await {
                    Some(LogEvent::Line(l)) => push(&mut lines, l, max),
                    Some(LogEvent::End(..)) => {}
                    Some(LogEvent::Closed) => closed += 1,
                    None => break,
                }
            }
        })
        .await;
        lines.into()
    }
}

fn push(lines: &mut VecDeque<String>, line: String, max: usize) {
    if lines.len() >= max.max(1) {
        lines.pop_front();
    }
    lines.push_back(line);
}

/// Reads one output stream line by line, turning marker lines into end events.
async fn pump(
    stream: impl AsyncRead + Unpin,
    which: Stream,
    tx: mpsc::UnboundedSender<LogEvent>,
    capture: LineCapture,
) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        let line = String::from_utf8_lossy(&buf);
        let found = capture.marker.as_deref().and_then(|m| line.find(m).map(|at| (at, m.len())));
        let (text, end) = match found {
            Some((at, len)) => (&line[..at], Some(line[at + len..].trim().to_string())),
            None => (&line[..], None),
        };
        let text = cut(text, capture.max_line).to_string();
        if !text.is_empty() || end.is_none() {
            if let Some(name) = &capture.echo {
                eprintln!("[{name}] {text}");
            }
            let _ = tx.send(LogEvent::Line(text));
        }
        if let Some(id) = end {
            let _ = tx.send(LogEvent::End(which, id));
        }
    }
    let _ = tx.send(LogEvent::Closed);
}

/// The first `max` bytes of `text`, ending at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// How an instance's stdout and stderr go to one file, read back from the last offset.
///
/// ```
/// let file = faas_supervisor::FileCapture::new("/tmp/instance-1.log");
/// assert_eq!(file.keep, 256 * 1024);
/// assert_eq!(file.truncate_at, 8 * 1024 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct FileCapture {
    /// The file (created, or appended to).
    pub path: PathBuf,
    /// Most bytes returned by one [`FileLog::take`] (the newest are kept).
    pub keep: usize,
    /// Once this much has been read, the file is emptied so it stays bounded.
    pub truncate_at: u64,
}

impl FileCapture {
    /// Output to `path`, keeping 256 KiB per read and emptying the file past 8 MiB.
    pub fn new(path: impl Into<PathBuf>) -> FileCapture {
        FileCapture { path: path.into(), keep: 256 * 1024, truncate_at: 8 * 1024 * 1024 }
    }
}

/// An instance's output file. The process writes straight into it (not a pipe), so everything it
/// wrote before it answered an invocation is there when [`FileLog::take`] reads: no race between
/// output and reply. The file is removed when the `FileLog` is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use faas_supervisor::{FileCapture, Output, ProcessSpec};
/// let dir = tempfile::tempdir().unwrap();
/// let spec = ProcessSpec::new("/bin/sh").args(["-c", "echo out; echo err >&2"]);
/// let process = spec.output(Output::File(FileCapture::new(dir.path().join("p.log")))).spawn().unwrap();
/// process.wait().await;
/// assert_eq!(process.output_file().unwrap().take(), "out\nerr\n");
/// assert_eq!(process.output_file().unwrap().take(), ""); // read from the last offset on
/// # }
/// ```
#[derive(Debug)]
pub struct FileLog {
    capture: FileCapture,
    offset: Mutex<u64>,
}

impl FileLog {
    pub(crate) fn new(capture: FileCapture) -> FileLog {
        FileLog { capture, offset: Mutex::new(0) }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.capture.path
    }

    /// What the process wrote since the last call (at most `keep` bytes: the newest), ending
    /// with a newline when not empty.
    pub fn take(&self) -> String {
        let path = &self.capture.path;
        let Ok(mut file) = std::fs::File::open(path) else { return String::new() };
        let mut offset = self.offset.lock().expect("offset lock");
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len <= *offset {
            return String::new();
        }
        let start = (*offset).max(len.saturating_sub(self.capture.keep as u64));
        let mut buf = Vec::new();
        if file.seek(SeekFrom::Start(start)).is_err() || file.take(len - start).read_to_end(&mut buf).is_err() {
            return String::new();
        }
        *offset = len;
        if len >= self.capture.truncate_at {
            // The child appends (O_APPEND), so after truncation its writes land at the new end. Bytes
            // written between our read and this truncation are lost: acceptable for a bounded log.
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(path)
                && f.set_len(0).is_ok()
            {
                *offset = 0;
            }
        }
        let mut text = String::from_utf8_lossy(&buf).into_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

impl Drop for FileLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.capture.path);
    }
}

/// The last `n` lines (all of them when there are fewer).
///
/// ```
/// let lines = vec!["a".to_string(), "b".into(), "c".into()];
/// assert_eq!(faas_supervisor::last_lines(&lines, 2), ["b", "c"]);
/// assert_eq!(faas_supervisor::last_lines(&lines, 10).len(), 3);
/// ```
pub fn last_lines(lines: &[String], n: usize) -> &[String] {
    &lines[lines.len().saturating_sub(n)..]
}

/// The last `max` bytes of `text`, starting at a character boundary.
///
/// ```
/// assert_eq!(faas_supervisor::tail_str("hello", 3), "llo");
/// assert_eq!(faas_supervisor::tail_str("héllo", 4), "llo"); // never splits `é`
/// assert_eq!(faas_supervisor::tail_str("hi", 10), "hi");
/// ```
pub fn tail_str(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
