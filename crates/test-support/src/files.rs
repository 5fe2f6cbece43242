//! Test data and scratch space: deterministic binary noise, names unique to
//! this test process, a temporary directory removed (with its contents)
//! when dropped, also when the test panics, and a bounded wait for a
//! directory to hold nothing but what a test keeps there.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::TIMEOUT;

/// Deterministic pseudo-random bytes (xorshift64*), different per `seed`;
/// they hold NUL and are not UTF-8 once there are more than a few.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `prefix-PID-N`: unique within this test process, and across processes
/// running at the same time.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique_name(&format!("execd-{name}")));
        // A directory left by a killed run under a reused pid goes first.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }

    /// Absolute path of `relative` inside the directory, as a string.
    pub fn text(&self, relative: &str) -> String {
        self.join(relative)
            .to_str()
            .expect("temp paths are UTF-8")
            .to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Wait (bounded by [`TIMEOUT`]) until `dir` holds nothing but the names
/// in `keep`: no file and no temporary left behind by a stream that failed
/// or was abandoned (a server removes those from a task of its own, later).
pub async fn wait_only(dir: &Path, keep: &[&str]) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let left: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|err| panic!("read {}: {err}", dir.display()))
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| !keep.contains(&name.as_str()))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "left behind in {} after {TIMEOUT:?}: {left:?}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
