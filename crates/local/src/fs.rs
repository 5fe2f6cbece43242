//! Filesystem operations behind the `fs/*` methods. Blocking: callers run
//! them off the async threads. Every error names the path it is about.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use execd_protocol::fs::{DirectoryEntry, Metadata};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("path must be absolute, got {0:?}")]
    RelativePath(String),
    #[error("no such file or directory: {0}")]
    NotFound(String),
    #[error("{0} is a directory; pass recursive: true")]
    IsDirectory(String),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FsError + '_ {
    move |source| {
        let path = path.display().to_string();
        if source.kind() == io::ErrorKind::NotFound {
            FsError::NotFound(path)
        } else {
            FsError::Io { path, source }
        }
    }
}

/// Accept only absolute paths.
pub fn absolute(path: &str) -> Result<PathBuf, FsError> {
    let path = PathBuf::from(path);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(FsError::RelativePath(path.display().to_string()))
    }
}

pub fn read_file(path: &Path) -> Result<Vec<u8>, FsError> {
    std::fs::read(path).map_err(io_error(path))
}

/// Up to `length` bytes from `offset`; true when the end of the file was reached.
pub fn read_range(path: &Path, offset: u64, length: u64) -> Result<(Vec<u8>, bool), FsError> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let size = file.metadata().map_err(io_error(path))?.len();
    let want = length.min(size.saturating_sub(offset));
    let mut data = vec![0; usize::try_from(want).unwrap_or(usize::MAX)];
    let mut filled = 0;
    while filled < data.len() {
        match file.read_at(&mut data[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(io_error(path)(err)),
        }
    }
    data.truncate(filled);
    // EOF as of the size seen at open (a file still growing may have more).
    let eof = offset + filled as u64 >= size;
    Ok((data, eof))
}

pub fn write_file(path: &Path, data: &[u8]) -> Result<(), FsError> {
    std::fs::write(path, data).map_err(io_error(path))
}

/// Append to a file, creating it if needed.
pub fn append_file(path: &Path, data: &[u8]) -> Result<(), FsError> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .and_then(|mut file| file.write_all(data))
        .map_err(io_error(path))
}

pub fn create_directory(path: &Path, recursive: bool) -> Result<(), FsError> {
    if recursive {
        std::fs::create_dir_all(path)
    } else {
        std::fs::create_dir(path)
    }
    .map_err(io_error(path))
}

fn millis(time: io::Result<SystemTime>) -> i64 {
    time.ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Metadata of `path`; `isDirectory`/`isFile` follow a symlink, `isSymlink`
/// says whether `path` itself is one.
pub fn metadata(path: &Path) -> Result<Metadata, FsError> {
    let link = std::fs::symlink_metadata(path).map_err(io_error(path))?;
    // A dangling symlink has no target: describe the link itself.
    let target = std::fs::metadata(path).unwrap_or_else(|_| link.clone());
    Ok(Metadata {
        is_directory: target.is_dir(),
        is_file: target.is_file(),
        is_symlink: link.file_type().is_symlink(),
        created_at_ms: millis(target.created()),
        modified_at_ms: millis(target.modified()),
        size: target.len(),
    })
}

/// Entries of a directory, sorted by name.
pub fn read_directory(path: &Path) -> Result<Vec<DirectoryEntry>, FsError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io_error(path))? {
        let entry = entry.map_err(io_error(path))?;
        let entry_path = entry.path();
        // Follow symlinks like `metadata` does; a dangling one is neither.
        let (is_directory, is_file) = match std::fs::metadata(&entry_path) {
            Ok(meta) => (meta.is_dir(), meta.is_file()),
            Err(_) => (false, false),
        };
        entries.push(DirectoryEntry {
            file_name: entry.file_name().to_string_lossy().into_owned(),
            is_directory,
            is_file,
        });
    }
    entries.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(entries)
}

/// Remove a file, symlink or directory. A non-empty directory needs
/// `recursive`; `force` makes a missing path a success.
pub fn remove(path: &Path, recursive: bool, force: bool) -> Result<(), FsError> {
    let result = match std::fs::symlink_metadata(path) {
        Err(err) => Err(err),
        Ok(meta) if meta.is_dir() && recursive => std::fs::remove_dir_all(path),
        Ok(meta) if meta.is_dir() => std::fs::remove_dir(path),
        Ok(_) => std::fs::remove_file(path),
    };
    match result {
        Err(err) if force && err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other.map_err(io_error(path)),
    }
}

/// Copy `source` to exactly `destination` (not into it). Directories need
/// `recursive`; symlinks inside a tree are recreated as symlinks.
pub fn copy(source: &Path, destination: &Path, recursive: bool) -> Result<(), FsError> {
    let meta = std::fs::symlink_metadata(source).map_err(io_error(source))?;
    if meta.is_dir() {
        if !recursive {
            return Err(FsError::IsDirectory(source.display().to_string()));
        }
        if destination.starts_with(source) {
            return Err(FsError::Io {
                path: destination.display().to_string(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot copy {} into itself", source.display()),
                ),
            });
        }
        copy_tree(source, destination)
    } else {
        copy_entry(source, destination, &meta)
    }
}

fn copy_entry(source: &Path, destination: &Path, meta: &std::fs::Metadata) -> Result<(), FsError> {
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(source).map_err(io_error(source))?;
        std::os::unix::fs::symlink(target, destination).map_err(io_error(destination))
    } else {
        std::fs::copy(source, destination)
            .map(drop)
            .map_err(io_error(destination))
    }
}

fn copy_tree(source: &Path, destination: &Path) -> Result<(), FsError> {
    std::fs::create_dir_all(destination).map_err(io_error(destination))?;
    for entry in std::fs::read_dir(source).map_err(io_error(source))? {
        let entry = entry.map_err(io_error(source))?;
        let from = entry.path();
        let to = destination.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&from).map_err(io_error(&from))?;
        if meta.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            copy_entry(&from, &to, &meta)?;
        }
    }
    Ok(())
}
