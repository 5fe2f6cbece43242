//! Files written under a temporary name beside their final one
//! (`.NAME.execd-PID-N.part`, created exclusively, never through a
//! symlink) and renamed into place only when complete: [`TempFile`], which
//! removes itself when dropped unrenamed. Used by file streams and by tree
//! unpacking, so no half-written file is ever seen under its final name.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fs::{io_error, FsError};

/// Temporary names are unique in this process by this counter.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file written under a temporary name beside its final one, removed on
/// drop unless renamed.
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
    pub(crate) file: Option<File>,
}

impl TempFile {
    /// A new empty file beside `target` (whose directory must exist).
    pub(crate) fn create(target: &Path) -> Result<TempFile, FsError> {
        let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(FsError::Refused(format!(
                "cannot write {}: it has no file name",
                target.display()
            )));
        };
        if let Ok(meta) = std::fs::metadata(target) {
            if meta.is_dir() {
                return Err(FsError::IsDirectory(target.display().to_string()));
            }
        }
        loop {
            let mut temp_name = OsString::from(".");
            temp_name.push(name);
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            temp_name.push(format!(".execd-{}-{n}.part", std::process::id()));
            let path = parent.join(&temp_name);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o666)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file: Some(file),
                    })
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(io_error(target)(err)),
            }
        }
    }

    /// Put the file in place under `target`.
    pub(crate) fn rename_to(mut self, target: &Path) -> Result<(), FsError> {
        self.file = None;
        std::fs::rename(&self.path, target).map_err(io_error(target))?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `bytes` as a path (any bytes but NUL are a Unix file name).
pub(crate) fn path_of(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}
