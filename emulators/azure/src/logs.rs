//! What the platform records, as the host's FileLogger writes it under the site's `LogFiles`:
//! `Application/Functions/Function/<fn>/<yyyy-MM-ddTHH-mm-ssZ>-<instance>.log` for each
//! function's invocations, `Application/Functions/Host/...` for the host and the handler's own
//! output. Lines are `yyyy-MM-ddTHH:mm:ss.fff [<Level>] <message>` (UTC); a file is used until it
//! passes 5 MiB, then a new one is started.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Utc;

/// The FileWriter's `MaxLogFileSizeBytes`.
const MAX_FILE: u64 = 5 * 1024 * 1024;

/// A log level, written as .NET's `LogLevel` names itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Information,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Information => "Information",
            Level::Error => "Error",
        }
    }
}

/// One log directory and its current file.
#[derive(Debug)]
struct LogDir {
    dir: PathBuf,
    instance: String,
    current: Mutex<Option<PathBuf>>,
}

impl LogDir {
    fn new(dir: PathBuf, instance: &str) -> LogDir {
        LogDir { dir, instance: instance.to_string(), current: Mutex::new(None) }
    }

    /// The file to append to: the current one, else the newest of this instance still under
    /// the size limit, else a new one.
    fn file(&self, current: &mut Option<PathBuf>) -> std::io::Result<PathBuf> {
        if let Some(path) = current.as_ref() {
            if std::fs::metadata(path).is_ok_and(|m| m.len() <= MAX_FILE) {
                return Ok(path.clone());
            }
        }
        std::fs::create_dir_all(&self.dir)?;
        let suffix = format!("-{}.log", self.instance);
        let mut existing: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&self.dir)?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(&suffix))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                let modified = m.modified().ok()?;
                (m.len() <= MAX_FILE).then(|| (modified, e.path()))
            })
            .collect();
        existing.sort();
        let path = match existing.pop() {
            Some((_, p)) if current.is_none() => p,
            _ => {
                let mut path = self.dir.join(format!("{}{suffix}", Utc::now().format("%Y-%m-%dT%H-%M-%SZ")));
                let mut n = 1;
                while path.exists() {
                    // A second file within the same second: the host would reuse the name; we
                    // keep both.
                    path = self.dir.join(format!("{}-{n}{suffix}", Utc::now().format("%Y-%m-%dT%H-%M-%SZ")));
                    n += 1;
                }
                path
            }
        };
        *current = Some(path.clone());
        Ok(path)
    }

    fn write(&self, line: &str) -> std::io::Result<()> {
        let mut current = self.current.lock().expect("log dir");
        let path = self.file(&mut current)?;
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        file.write_all(line.as_bytes())?;
        file.write_all(b"\n")
    }
}

/// A site's log files.
#[derive(Debug)]
pub(crate) struct SiteLogs {
    root: PathBuf,
    instance: String,
    /// `Some(app)`: copy every line to our stderr, prefixed `[app]`.
    echo: Option<String>,
    host: LogDir,
    functions: Mutex<HashMap<String, Arc<LogDir>>>,
}

impl SiteLogs {
    /// Logs under `<site>/LogFiles`, for the instance id `instance` (its first 10 characters,
    /// lower case, go into file names as the host's do).
    pub fn new(site_dir: &Path, instance: &str, echo: Option<String>) -> SiteLogs {
        let root = site_dir.join("LogFiles").join("Application").join("Functions");
        let instance: String = instance.chars().take(10).collect::<String>().to_lowercase();
        SiteLogs {
            host: LogDir::new(root.join("Host"), &instance),
            root,
            instance,
            echo,
            functions: Mutex::new(HashMap::new()),
        }
    }

    fn format(level: Level, message: &str) -> String {
        format!("{} [{}] {}", crate::json::log_stamp(&Utc::now()), level.name(), message.trim())
    }

    fn echo(&self, line: &str) {
        if let Some(app) = &self.echo {
            eprintln!("[{app}] {line}");
        }
    }

    /// A line of function `function`'s log.
    pub fn function(&self, function: &str, level: Level, message: &str) {
        let dir = {
            let mut dirs = self.functions.lock().expect("function logs");
            dirs.entry(function.to_string())
                .or_insert_with(|| Arc::new(LogDir::new(self.root.join("Function").join(function), &self.instance)))
                .clone()
        };
        let line = Self::format(level, message);
        if let Err(e) = dir.write(&line) {
            tracing::warn!(function, error = %e, "cannot write a function log line");
        }
        self.echo(&line);
    }

    /// A line of the host log.
    pub fn host(&self, level: Level, message: &str) {
        let line = Self::format(level, message);
        if let Err(e) = self.host.write(&line) {
            tracing::warn!(error = %e, "cannot write a host log line");
        }
        self.echo(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_go_to_one_file_per_function_in_the_hosts_format() {
        let dir = tempfile::tempdir().unwrap();
        let logs = SiteLogs::new(dir.path(), "ABCDEF0123456789", None);
        logs.function("hello", Level::Information, "Executing 'Functions.hello'");
        logs.function("hello", Level::Error, "Executed 'Functions.hello' (Failed)\nboom");
        logs.host(Level::Information, "started");
        let fdir = dir.path().join("LogFiles/Application/Functions/Function/hello");
        let files: Vec<_> = std::fs::read_dir(&fdir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(files.len(), 1);
        let name = files[0].to_string_lossy().into_owned();
        assert!(name.ends_with("Z-abcdef0123.log"), "{name}");
        let text = std::fs::read_to_string(fdir.join(&files[0])).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(&lines[0][23..], " [Information] Executing 'Functions.hello'");
        assert_eq!(&lines[1][23..], " [Error] Executed 'Functions.hello' (Failed)");
        assert_eq!(lines[2], "boom");
        // A new SiteLogs (the emulator restarted) appends to the same file.
        let again = SiteLogs::new(dir.path(), "ABCDEF0123456789", None);
        again.function("hello", Level::Information, "more");
        assert_eq!(std::fs::read_dir(&fdir).unwrap().count(), 1);
        assert!(dir.path().join("LogFiles/Application/Functions/Host").is_dir());
    }
}
