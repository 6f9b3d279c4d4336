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

#[derive(Debug, PartialEq)]
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
    /// Starts reading `stdout` and `stderr` (each in its own task, on the current tokio runtime).
    /// [`crate::ProcessSpec::spawn`] does this for a process's pipes; any two streams will do.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use faas_supervisor::{LineCapture, LineLog};
    /// let capture = LineCapture { marker: Some("__END__".into()), ..Default::default() };
    /// let mut log = LineLog::start(&b"one\r\ntwo__END__ a\nthree"[..], &b""[..], capture);
    /// assert_eq!(log.until_closed(Duration::from_secs(5)).await, ["one", "two", "three"]);
    /// # }
    /// ```
    pub fn start(
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

/// Longest invocation id looked for after a marker at the end of a line too long to keep whole.
const MAX_MARKER_ID: usize = 256;

/// One line as far as it is kept: its first bytes and, when bytes in between were dropped, its last
/// ones (where an end-of-invocation marker written after unterminated output sits).
struct BoundedLine {
    head: Vec<u8>,
    tail: Option<VecDeque<u8>>,
}

/// Reads the next line (through its newline or the end of the stream) keeping at most `head_cap`
/// bytes from its start and `tail_cap` from its end, so a process writing gigabytes without a
/// newline costs us a bounded buffer, not our memory. `None` at the end of the stream.
async fn read_bounded_line(
    reader: &mut (impl tokio::io::AsyncBufRead + Unpin),
    head_cap: usize,
    tail_cap: usize,
) -> std::io::Result<Option<BoundedLine>> {
    let mut line = BoundedLine { head: Vec::new(), tail: None };
    let mut read_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(read_any.then_some(line));
        }
        read_any = true;
        let (chunk, done) = match newline_at(available) {
            Some(at) => (&available[..=at], true),
            None => (available, false),
        };
        let room = head_cap.saturating_sub(line.head.len());
        let (to_head, rest) = chunk.split_at(room.min(chunk.len()));
        line.head.extend_from_slice(to_head);
        if !rest.is_empty() {
            let tail = line.tail.get_or_insert_with(VecDeque::new);
            tail.extend(rest[rest.len().saturating_sub(tail_cap)..].iter().copied());
            let excess = tail.len().saturating_sub(tail_cap);
            tail.drain(..excess);
        }
        let used = chunk.len();
        reader.consume(used);
        if done {
            return Ok(Some(line));
        }
    }
}

fn newline_at(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

fn trim_line_end(bytes: &mut Vec<u8>) {
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
}

/// Reads one output stream line by line, turning marker lines into end events.
async fn pump(
    stream: impl AsyncRead + Unpin,
    which: Stream,
    tx: mpsc::UnboundedSender<LogEvent>,
    capture: LineCapture,
) {
    let mut reader = BufReader::new(stream);
    let marker_len = capture.marker.as_deref().map_or(0, str::len);
    // Whole lines up to this length are searched for the marker anywhere; of a longer one, its
    // first `max_line` bytes are kept and the marker is looked for in its last bytes too.
    let head_cap = capture.max_line.saturating_add(marker_len + MAX_MARKER_ID);
    let tail_cap = marker_len + MAX_MARKER_ID;
    loop {
        let (mut head, tail) = match read_bounded_line(&mut reader, head_cap, tail_cap).await {
            Ok(Some(BoundedLine { head, tail })) => (head, tail),
            Ok(None) | Err(_) => break,
        };
        let tail = tail.map(|t| {
            let mut t = Vec::from(t);
            trim_line_end(&mut t);
            t
        });
        if tail.is_none() {
            trim_line_end(&mut head);
        }
        let line = String::from_utf8_lossy(&head);
        let marker = capture.marker.as_deref();
        let found = marker.and_then(|m| line.find(m).map(|at| (at, m.len())));
        let (text, end) = match found {
            Some((at, len)) => (&line[..at], Some(line[at + len..].trim().to_string())),
            None => {
                // A marker after more output than we keep: the id is what follows it.
                let in_tail = tail.as_deref().map(String::from_utf8_lossy).and_then(|t| {
                    let m = marker?;
                    t.rfind(m).map(|at| t[at + m.len()..].trim().to_string())
                });
                (&line[..], in_tail)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An endless stream of `a` with no newline, then `end`.
    struct Flood {
        left: u64,
        end: &'static [u8],
    }

    impl AsyncRead for Flood {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.left > 0 {
                let n = (buf.remaining() as u64).min(self.left) as usize;
                buf.put_slice(&vec![b'a'; n]);
                self.left -= n as u64;
            } else {
                let n = buf.remaining().min(self.end.len());
                buf.put_slice(&self.end[..n]);
                self.end = &self.end[n..];
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// A process writing without a newline used to be read into one growing buffer: a function
    /// printing gigabytes on one line took the pool's memory with it.
    #[tokio::test]
    async fn a_line_without_end_is_read_into_bounded_buffers() {
        let mut reader = BufReader::new(Flood { left: 256 << 20, end: b" __END__ big\nnext\n" });
        let line = read_bounded_line(&mut reader, 1000, 20).await.unwrap().unwrap();
        assert_eq!(line.head, vec![b'a'; 1000]);
        assert_eq!(Vec::from(line.tail.unwrap()), b"aaaaaaa __END__ big\n");
        let next = read_bounded_line(&mut reader, 1000, 20).await.unwrap().unwrap();
        assert_eq!((next.head, next.tail), (b"next\n".to_vec(), None));
        assert!(read_bounded_line(&mut reader, 1000, 20).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_marker_after_a_line_too_long_to_keep_still_ends_the_invocation() {
        let capture = LineCapture { marker: Some("__END__".into()), max_line: 8, ..Default::default() };
        let out = Flood { left: 1 << 20, end: b" __END__ big\r\nafter\n" };
        let (tx, mut rx) = mpsc::unbounded_channel();
        pump(out, Stream::Stdout, tx, capture).await;
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        assert_eq!(
            events,
            [
                LogEvent::Line("aaaaaaaa".into()),
                LogEvent::End(Stream::Stdout, "big".into()),
                LogEvent::Line("after".into()),
                LogEvent::Closed
            ]
        );
    }
}
