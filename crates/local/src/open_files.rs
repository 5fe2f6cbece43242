//! The files a connection holds open for `fs/open` / `fs/readBlock` /
//! `fs/close` (codex dialect): a table of client-named handles with a limit
//! on how many are open at once and on how large one block may be. Every
//! handle is closed when the table is dropped (the connection ends).

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

use execd_environment::EnvError;
use execd_protocol::limits::{Limit, LimitExceeded};

use crate::fs::FsError;

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error(transparent)]
    TooMany(LimitExceeded),
    #[error("file handle {0:?} is already open")]
    Duplicate(String),
    #[error("unknown file handle {0:?}")]
    Unknown(String),
    #[error("block length {len} is out of range: must be between 1 and {max}")]
    BlockLength { len: u64, max: u64 },
    #[error("{path} is a directory, not a file")]
    Directory { path: String },
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl From<HandleError> for EnvError {
    fn from(err: HandleError) -> EnvError {
        match err {
            HandleError::Fs(fs) => fs.into(),
            HandleError::Unknown(_) => EnvError::InvalidRequest(err.to_string()),
            HandleError::TooMany(limit) => EnvError::LimitExceeded(limit),
            other => EnvError::InvalidInput(other.to_string()),
        }
    }
}

/// A connection's open files.
#[derive(Debug)]
pub struct OpenFiles {
    files: Mutex<HashMap<String, Arc<File>>>,
    max_open: usize,
    max_block: u64,
}

impl OpenFiles {
    pub fn new(max_open: usize, max_block: u64) -> Self {
        OpenFiles {
            files: Mutex::new(HashMap::new()),
            max_open,
            max_block,
        }
    }

    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<File>>> {
        // A panic while holding the lock leaves the map consistent.
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn too_many(&self) -> HandleError {
        HandleError::TooMany(LimitExceeded::new(
            Limit::OpenFiles,
            self.max_open,
            "too many open files on this connection; fs/close some first",
        ))
    }

    /// Open `path` for reading under `handle` (blocking).
    pub fn open(&self, handle: &str, path: &Path) -> Result<(), HandleError> {
        {
            let files = self.files();
            if files.contains_key(handle) {
                return Err(HandleError::Duplicate(handle.to_string()));
            }
            if files.len() >= self.max_open {
                return Err(self.too_many());
            }
        }
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                FsError::NotFound(shown.clone())
            } else {
                FsError::Io {
                    path: shown.clone(),
                    source,
                }
            }
        })?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(HandleError::Directory { path: shown });
        }
        let mut files = self.files();
        if files.contains_key(handle) {
            return Err(HandleError::Duplicate(handle.to_string()));
        }
        if files.len() >= self.max_open {
            return Err(self.too_many());
        }
        files.insert(handle.to_string(), Arc::new(file));
        Ok(())
    }

    /// Up to `len` bytes at `offset` (blocking); true when the end of the
    /// file was reached.
    pub fn read_block(
        &self,
        handle: &str,
        offset: u64,
        len: u64,
    ) -> Result<(Vec<u8>, bool), HandleError> {
        use std::os::unix::fs::FileExt;
        if len == 0 || len > self.max_block {
            return Err(HandleError::BlockLength {
                len,
                max: self.max_block,
            });
        }
        let file = self
            .files()
            .get(handle)
            .cloned()
            .ok_or_else(|| HandleError::Unknown(handle.to_string()))?;
        let io = |source| FsError::Io {
            path: format!("file handle {handle:?}"),
            source,
        };
        let size = file.metadata().map_err(io)?.len();
        let mut data = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
        let mut filled = 0;
        while filled < data.len() {
            match file.read_at(&mut data[filled..], offset.saturating_add(filled as u64)) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(io(err).into()),
            }
        }
        data.truncate(filled);
        Ok((data, offset.saturating_add(filled as u64) >= size))
    }

    /// Close `handle`; closing one that is not open is not an error.
    pub fn close(&self, handle: &str) {
        self.files().remove(handle);
    }

    /// How many handles are open.
    pub fn len(&self) -> usize {
        self.files().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, data: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("execd-open-{name}-{}", std::process::id()));
        std::fs::write(&path, data).unwrap();
        path
    }

    #[test]
    fn blocks_read_until_eof() {
        let path = file("blocks", b"hello world");
        let files = OpenFiles::new(4, 8);
        files.open("h", &path).unwrap();
        assert_eq!(
            files.read_block("h", 0, 5).unwrap(),
            (b"hello".to_vec(), false)
        );
        assert_eq!(
            files.read_block("h", 6, 8).unwrap(),
            (b"world".to_vec(), true)
        );
        assert_eq!(files.read_block("h", 100, 8).unwrap(), (Vec::new(), true));
        files.close("h");
        files.close("h");
        assert!(matches!(
            files.read_block("h", 0, 1),
            Err(HandleError::Unknown(_))
        ));
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn limits_and_errors_name_the_bound() {
        let path = file("limits", b"x");
        let files = OpenFiles::new(2, 8);
        files.open("a", &path).unwrap();
        assert!(matches!(
            files.open("a", &path),
            Err(HandleError::Duplicate(_))
        ));
        files.open("b", &path).unwrap();
        let err = files.open("c", &path).unwrap_err();
        assert!(err.to_string().contains("the limit is 2"), "{err}");
        let err = files.read_block("a", 0, 9).unwrap_err();
        assert!(err.to_string().contains("between 1 and 8"), "{err}");
        assert!(matches!(
            files.read_block("a", 0, 0),
            Err(HandleError::BlockLength { .. })
        ));
        files.close("a");
        assert!(matches!(
            files.open("d", Path::new("/nonexistent/x")),
            Err(HandleError::Fs(FsError::NotFound(_)))
        ));
        assert!(matches!(
            files.open("e", Path::new("/")),
            Err(HandleError::Directory { .. })
        ));
        assert_eq!(files.len(), 1);
        std::fs::remove_file(path).ok();
    }
}
