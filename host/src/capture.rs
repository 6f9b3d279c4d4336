//! Log lines kept per invocation, for platforms that return an invocation's logs with its
//! answer instead of reading them from the process's output (Azure Functions' custom handlers:
//! the `Logs` array of the invocation response).
//!
//! A host gives the invoker a [`LogCapture`] as its [`faas_api::LogSink`], starts keeping the
//! lines of an invocation with [`LogCapture::begin`] before running it, and takes them with
//! [`Capturing::finish`] when it answers. Lines of an invocation nobody is capturing (a task the
//! handler spawned that logs after the answer) are not kept: [`faas_api::Logger`] mirrors every
//! line as a `tracing` event anyway. Requests may run concurrently; each invocation gets its own
//! lines, in the order they were written.
//!
//! ```
//! use std::sync::Arc;
//! use faas_api::{Context, Level};
//! use faas_host::capture::LogCapture;
//!
//! let capture = Arc::new(LogCapture::new(1024));
//! let a = capture.begin("inv-a");
//! let b = capture.begin("inv-b");
//! let cx_a = Context::builder("f").invocation_id("inv-a").log_sink(capture.clone()).build();
//! let cx_b = Context::builder("f").invocation_id("inv-b").log_sink(capture.clone()).build();
//! cx_a.logger().info("one");
//! cx_b.logger().warn("two");
//! cx_a.logger().error("three");
//! assert_eq!(a.finish(), [(Level::Info, "one".to_string()), (Level::Error, "three".to_string())]);
//! assert_eq!(b.finish(), [(Level::Warn, "two".to_string())]);
//! // Nobody captures `inv-a` any more: later lines are not kept.
//! cx_a.logger().info("late");
//! assert!(capture.begin("inv-a").finish().is_empty());
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use faas_api::{Level, LogSink};

/// Lines kept per invocation: at most `max_bytes` of messages each (see the [module docs](self)).
#[derive(Debug)]
pub struct LogCapture {
    max_bytes: usize,
    open: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Default)]
struct Entry {
    lines: Vec<(Level, String)>,
    bytes: usize,
    dropped_lines: usize,
    dropped_bytes: usize,
    /// How many [`Capturing`] guards share this entry.
    holders: usize,
}

impl LogCapture {
    /// A capture keeping up to `max_bytes` of message text per invocation; the lines past it are
    /// counted, and [`Capturing::finish`] ends with one warning saying how many were left out.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use faas_api::{Level, LogSink};
    /// let capture = Arc::new(faas_host::capture::LogCapture::new(10));
    /// let inv = capture.begin("inv-1");
    /// capture.write("inv-1", Level::Info, "12345");
    /// capture.write("inv-1", Level::Info, "67890");
    /// capture.write("inv-1", Level::Info, "over the limit");
    /// let lines = inv.finish();
    /// assert_eq!(lines.len(), 3);
    /// assert_eq!(lines[2].0, Level::Warn);
    /// assert_eq!(lines[2].1, "1 more log line (14 bytes) left out: the limit is 10 bytes per invocation");
    /// ```
    pub fn new(max_bytes: usize) -> LogCapture {
        LogCapture { max_bytes, open: Mutex::new(HashMap::new()) }
    }

    /// Starts keeping the lines of `invocation_id` until the returned guard is finished or
    /// dropped (a request that is cancelled drops it, so nothing is left behind). Two guards of
    /// the same id, for invocations in flight at once, share the lines; each finishes with the
    /// lines so far.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use faas_api::{Level, LogSink};
    /// let capture = Arc::new(faas_host::capture::LogCapture::new(1024));
    /// let dropped = capture.begin("inv-1");
    /// capture.write("inv-1", Level::Info, "kept until the guard goes");
    /// drop(dropped);
    /// assert!(capture.begin("inv-1").finish().is_empty());
    /// ```
    pub fn begin(self: &Arc<Self>, invocation_id: impl Into<String>) -> Capturing {
        let id = invocation_id.into();
        self.open.lock().expect("log capture").entry(id.clone()).or_default().holders += 1;
        Capturing { capture: self.clone(), id: Some(id) }
    }

    /// The lines of `id` so far, and closes it if this was its last holder.
    fn close(&self, id: &str) -> Vec<(Level, String)> {
        let mut open = self.open.lock().expect("log capture");
        let Some(entry) = open.get_mut(id) else { return Vec::new() };
        entry.holders = entry.holders.saturating_sub(1);
        let mut lines = if entry.holders == 0 {
            let entry = open.remove(id).expect("present");
            (entry.lines, entry.dropped_lines, entry.dropped_bytes)
        } else {
            (entry.lines.clone(), entry.dropped_lines, entry.dropped_bytes)
        };
        if lines.1 > 0 {
            let plural = if lines.1 == 1 { "" } else { "s" };
            lines.0.push((
                Level::Warn,
                format!(
                    "{} more log line{plural} ({} bytes) left out: the limit is {} bytes per invocation",
                    lines.1, lines.2, self.max_bytes
                ),
            ));
        }
        lines.0
    }
}

impl LogSink for LogCapture {
    fn write(&self, invocation_id: &str, level: Level, line: &str) {
        let mut open = self.open.lock().expect("log capture");
        let Some(entry) = open.get_mut(invocation_id) else { return };
        if entry.dropped_lines == 0 && entry.bytes + line.len() <= self.max_bytes {
            entry.bytes += line.len();
            entry.lines.push((level, line.to_string()));
        } else {
            entry.dropped_lines += 1;
            entry.dropped_bytes += line.len();
        }
    }
}

/// The lines of one invocation being kept (see [`LogCapture::begin`]).
#[derive(Debug)]
pub struct Capturing {
    capture: Arc<LogCapture>,
    id: Option<String>,
}

impl Capturing {
    /// The invocation's lines, in order, and stops keeping them.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use faas_api::{Level, LogSink};
    /// let capture = Arc::new(faas_host::capture::LogCapture::new(1024));
    /// let inv = capture.begin("inv-1");
    /// capture.write("inv-1", Level::Info, "hello");
    /// capture.write("inv-2", Level::Info, "not captured");
    /// assert_eq!(inv.finish(), [(Level::Info, "hello".to_string())]);
    /// ```
    pub fn finish(mut self) -> Vec<(Level, String)> {
        let id = self.id.take().expect("finished once");
        self.capture.close(&id)
    }

    /// The invocation id whose lines are kept.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let capture = Arc::new(faas_host::capture::LogCapture::new(1024));
    /// assert_eq!(capture.begin("inv-9").invocation_id(), "inv-9");
    /// ```
    pub fn invocation_id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }
}

impl Drop for Capturing {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.capture.close(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_invocations_keep_their_own_lines_in_order() {
        let capture = Arc::new(LogCapture::new(1 << 20));
        let guards: Vec<Capturing> = (0..4).map(|i| capture.begin(format!("inv-{i}"))).collect();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let capture = capture.clone();
                std::thread::spawn(move || {
                    for n in 0..200 {
                        capture.write(&format!("inv-{i}"), Level::Info, &format!("{i}:{n}"));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        for (i, guard) in guards.into_iter().enumerate() {
            let lines = guard.finish();
            let expected: Vec<String> = (0..200).map(|n| format!("{i}:{n}")).collect();
            assert_eq!(lines.into_iter().map(|(_, l)| l).collect::<Vec<_>>(), expected);
        }
        assert!(capture.open.lock().unwrap().is_empty(), "every entry is closed");
    }

    #[test]
    fn a_shared_id_stays_open_until_its_last_holder_finishes() {
        let capture = Arc::new(LogCapture::new(1024));
        let first = capture.begin("same");
        let second = capture.begin("same");
        capture.write("same", Level::Info, "a");
        assert_eq!(first.finish().len(), 1);
        capture.write("same", Level::Info, "b");
        assert_eq!(second.finish().len(), 2);
        assert!(capture.open.lock().unwrap().is_empty());
    }

    #[test]
    fn past_the_limit_lines_are_counted_not_kept() {
        let capture = Arc::new(LogCapture::new(4));
        let inv = capture.begin("i");
        for line in ["ab", "cd", "e", "fg"] {
            capture.write("i", Level::Info, line);
        }
        let lines = inv.finish();
        assert_eq!(lines[..2], [(Level::Info, "ab".to_string()), (Level::Info, "cd".to_string())]);
        assert_eq!(lines[2].1, "2 more log lines (3 bytes) left out: the limit is 4 bytes per invocation");
    }
}
