//! Filesystem operations behind the `fs/*` methods. Blocking: callers run
//! them off the async threads. Every error names the path it is about.
//!
//! File contents are read and written only in regular files, and every
//! file is opened with `O_NONBLOCK` before its type is checked: a FIFO
//! without a writer (or reader), a socket or a device can neither block an
//! operation forever nor stream without end. Whole-file reads take a size
//! cap, checked against the file's size before anything is read.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use execd_protocol::fs::{DirectoryEntry, Metadata};
use execd_protocol::limits::{show_bytes, Limit, LimitExceeded};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("path must be absolute, got {0:?}")]
    RelativePath(String),
    #[error("no such file or directory: {0}")]
    NotFound(String),
    #[error("{0} is a directory; pass recursive: true")]
    IsDirectory(String),
    #[error("{path} is {kind}, not a regular file; only regular files can be {action}")]
    NotRegular {
        path: String,
        kind: &'static str,
        action: &'static str,
    },
    /// A read that would pass the size cap.
    #[error(transparent)]
    TooLarge(LimitExceeded),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    /// A stream refused for what it asks (a tar entry leaving its
    /// destination, an entry type not taken).
    #[error("{0}")]
    Refused(String),
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FsError + '_ {
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

/// How a file type reads in an error.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Refuse anything but a regular file; `action` says what was to be done.
fn check_regular(
    path: &Path,
    meta: &std::fs::Metadata,
    action: &'static str,
) -> Result<(), FsError> {
    if meta.is_file() {
        return Ok(());
    }
    Err(FsError::NotRegular {
        path: path.display().to_string(),
        kind: kind_of(meta.file_type()),
        action,
    })
}

/// Open a regular file for reading, without blocking on a FIFO; returns
/// it with its size. What is not a regular file is refused before it is
/// opened (opening a socket fails, a device may act), and again after.
pub(crate) fn open_regular(path: &Path) -> Result<(File, u64), FsError> {
    let meta = std::fs::metadata(path).map_err(io_error(path))?;
    check_regular(path, &meta, "read")?;
    open_listed_regular(path)
}

/// Open for reading what a directory listing just showed to be a regular
/// file (so no stat before the open); refused if it is not one now.
pub(crate) fn open_listed_regular(path: &Path) -> Result<(File, u64), FsError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io_error(path))?;
    let meta = file.metadata().map_err(io_error(path))?;
    check_regular(path, &meta, "read")?;
    Ok((file, meta.len()))
}

/// Open a regular file for writing (created if missing), replacing or
/// appending. What exists and is not a regular file is refused before it
/// is opened, and again after (it may have been swapped in between).
fn open_for_writing(path: &Path, append: bool) -> Result<File, FsError> {
    if let Ok(meta) = std::fs::metadata(path) {
        check_regular(path, &meta, "written")?;
    }
    let mut options = std::fs::OpenOptions::new();
    options
        .create(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    let file = options.open(path).map_err(io_error(path))?;
    let meta = file.metadata().map_err(io_error(path))?;
    check_regular(path, &meta, "written")?;
    Ok(file)
}

/// A whole-file read refused by the cap.
fn too_large(path: &Path, size: Option<u64>, offset: u64, max: u64) -> FsError {
    let size = match size {
        Some(size) => format!("{size} bytes ({})", show_bytes(size)),
        None => format!("more than {max} bytes"),
    };
    let from = if offset > 0 {
        format!(" from offset {offset}")
    } else {
        String::new()
    };
    FsError::TooLarge(LimitExceeded::new(
        Limit::ReadBytes,
        max,
        format!(
            "{} is {size}{from}, more than one fs/readFile returns; read it in ranges with offset and length (at most {max} bytes each)",
            path.display()
        ),
    ))
}

/// The whole of a regular file, if it holds at most `max` bytes. Files
/// that report no size (`/proc`) are read to their end, up to the cap.
pub fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, FsError> {
    let (file, size) = open_regular(path)?;
    if size > max {
        return Err(too_large(path, Some(size), 0, max));
    }
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(io_error(path))?;
    if data.len() as u64 > max {
        return Err(too_large(path, None, 0, max));
    }
    Ok(data)
}

/// Up to `length` bytes from `offset` (without `length`, the rest of the
/// file); true when the end of the file was reached. More than `max` bytes
/// are refused.
pub fn read_range(
    path: &Path,
    offset: u64,
    length: Option<u64>,
    max: u64,
) -> Result<(Vec<u8>, bool), FsError> {
    use std::os::unix::fs::FileExt;
    if let Some(length) = length.filter(|length| *length > max) {
        return Err(FsError::TooLarge(LimitExceeded::new(
            Limit::ReadBytes,
            max,
            format!(
                "length {length} asks for more than one fs/readFile returns; read {} in ranges of at most {max} bytes",
                path.display()
            ),
        )));
    }
    let (file, size) = open_regular(path)?;
    let rest = size.saturating_sub(offset);
    let want = match length {
        Some(length) => length.min(rest),
        None if rest > max => return Err(too_large(path, Some(rest), offset, max)),
        None => rest,
    };
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

/// Replace a regular file's contents (creating it).
pub fn write_file(path: &Path, data: &[u8]) -> Result<(), FsError> {
    use std::io::Write;
    open_for_writing(path, false)?
        .write_all(data)
        .map_err(io_error(path))
}

/// Append to a regular file, creating it if needed.
pub fn append_file(path: &Path, data: &[u8]) -> Result<(), FsError> {
    use std::io::Write;
    open_for_writing(path, true)?
        .write_all(data)
        .map_err(io_error(path))
}

/// Write (or append) the bytes that `base64` encodes, decoding it piece
/// by piece straight into the file; the caller has checked that it is
/// valid base64. Returns the bytes written.
pub fn write_base64(path: &Path, base64: &[u8], append: bool) -> Result<u64, FsError> {
    let mut file = open_for_writing(path, append)?;
    execd_protocol::base64_bytes::decode_to_writer(base64, &mut file).map_err(io_error(path))
}

pub fn create_directory(path: &Path, recursive: bool) -> Result<(), FsError> {
    if recursive {
        std::fs::create_dir_all(path)
    } else {
        std::fs::create_dir(path)
    }
    .map_err(io_error(path))
}

/// Milliseconds since the epoch (negative before it; 0 when unknown).
fn millis(time: io::Result<SystemTime>) -> i64 {
    let Ok(time) = time else { return 0 };
    let clamp = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => clamp(after),
        Err(before) => -clamp(before.duration()),
    }
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
        mode: Some(target.permissions().mode() & MODE_BITS),
        accessed_at_ms: Some(millis(target.accessed())),
    })
}

/// The permission bits `fs/setMetadata` sets and `fs/getMetadata` reports.
pub const MODE_BITS: u32 = 0o7777;

/// What [`set_metadata`] changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataChange {
    pub mode: Option<u32>,
    pub modified_at_ms: Option<i64>,
    pub accessed_at_ms: Option<i64>,
}

/// Set the permission bits and times of `path` (symlinks followed). Times
/// are milliseconds since the epoch (negative: before it).
pub fn set_metadata(path: &Path, change: MetadataChange) -> Result<(), FsError> {
    use nix::sys::time::TimeSpec;
    if let Some(mode) = change.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & MODE_BITS))
            .map_err(io_error(path))?;
    }
    if change.modified_at_ms.is_none() && change.accessed_at_ms.is_none() {
        return Ok(());
    }
    let spec = |ms: Option<i64>| match ms {
        Some(ms) => TimeSpec::new(ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000),
        None => TimeSpec::UTIME_OMIT,
    };
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &spec(change.accessed_at_ms),
        &spec(change.modified_at_ms),
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )
    .map_err(|errno| io_error(path)(io::Error::from(errno)))
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
        return std::os::unix::fs::symlink(target, destination).map_err(io_error(destination));
    }
    // Like `std::fs::copy` (contents in the kernel, permissions too), but
    // never blocking on a FIFO at either end.
    let (mut from, _) = open_regular(source)?;
    let mut to = open_for_writing(destination, false)?;
    io::copy(&mut from, &mut to).map_err(io_error(destination))?;
    to.set_permissions(meta.permissions())
        .map_err(io_error(destination))
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
