//! Unique temporary directories that survive failing tests.
//!
//! Config directories and gateway logs are the first thing to look at when a test fails, so a
//! directory is removed on drop only if the thread is not panicking and `SLUICE_KEEP_TEMP` is
//! unset. Names embed the pid, a counter and random characters, so parallel tests (threads or
//! nextest processes) never share one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A directory under `std::env::temp_dir()`.
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// Create `$TMPDIR/sluice-<prefix>-<pid>-<n>-<random>`.
    pub fn new(prefix: &str) -> io::Result<Self> {
        let name = format!(
            "sluice-{prefix}-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            crate::random_suffix(6)
        );
        let path = std::env::temp_dir().join(name);
        fs::create_dir_all(&path)?;
        Ok(Self { path, keep: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Never delete this directory (e.g. to inspect it after a passing run).
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Write `contents` to `relative` inside the directory, creating parent directories.
    pub fn write(
        &self,
        relative: impl AsRef<Path>,
        contents: impl AsRef<[u8]>,
    ) -> io::Result<PathBuf> {
        let path = self.path.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, contents)?;
        Ok(path)
    }

    /// Create (if needed) and return a subdirectory.
    pub fn subdir(&self, relative: impl AsRef<Path>) -> io::Result<PathBuf> {
        let path = self.path.join(relative);
        fs::create_dir_all(&path)?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let keep =
            self.keep || std::thread::panicking() || std::env::var_os("SLUICE_KEEP_TEMP").is_some();
        if keep {
            eprintln!("kept temp dir {}", self.path.display());
        } else {
            // Best effort: a leftover temp dir is not worth failing a test over.
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Last `max_lines` lines of a file, for failure messages (empty if unreadable).
pub fn tail(path: &Path, max_lines: usize) -> String {
    let Ok(text) = fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}
