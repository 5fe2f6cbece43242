//! A directory tree as one tar stream (the `tree` transfer format): built
//! from a walk that keeps directories, regular files and symbolic links
//! (as links, never followed) with their permission bits and times (PAX
//! `mtime`/`atime` to the nanosecond), and unpacked into a destination
//! directory so that nothing lands outside it: absolute names and `..`
//! are refused, every parent is checked to be a real directory (not a
//! symlink planted by an earlier entry), files and links are written under
//! a temporary name and renamed into place, and directories get their
//! final modes and times last, deepest first.

use std::collections::HashSet;
use std::fs::{File, FileTimes, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tar::{Builder, EntryType, Header};

use crate::fs::{io_error, FsError, MODE_BITS};
use crate::transfer::{path_of, TempFile};

/// Permission bits kept without `preserve` (as scp): rwx for all three.
const MODE_RWX: u32 = 0o777;

/// The tree's root must be a directory (symlinks followed).
pub(crate) fn check_root(root: &Path) -> Result<(), FsError> {
    let meta = std::fs::metadata(root).map_err(io_error(root))?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(FsError::Refused(format!(
            "{} is not a directory; stream it as a file",
            root.display()
        )))
    }
}

/// Write the tree at `root` to `out` as tar. Entries other than
/// directories, regular files and symlinks (sockets, FIFOs, devices) are
/// left out.
pub(crate) fn build<W: Write>(root: &Path, out: W) -> Result<(), FsError> {
    let mut builder = Builder::new(out);
    let meta = std::fs::metadata(root).map_err(io_error(root))?;
    append(&mut builder, root, Path::new("."), &meta)?;
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let directory = root.join(&relative);
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&directory).map_err(io_error(&directory))? {
            names.push(entry.map_err(io_error(&directory))?.file_name());
        }
        names.sort();
        for name in names {
            let child = relative.join(&name);
            let path = root.join(&child);
            let meta = std::fs::symlink_metadata(&path).map_err(io_error(&path))?;
            let kind = meta.file_type();
            if kind.is_dir() || kind.is_file() || kind.is_symlink() {
                append(&mut builder, &path, &child, &meta)?;
            }
            if kind.is_dir() {
                pending.push(child);
            }
        }
    }
    builder
        .into_inner()
        .and_then(|mut out| out.flush())
        .map_err(io_error(root))
}

/// `secs.nanos` as PAX writes times.
fn pax_time(secs: i64, nanos: i64) -> String {
    format!("{secs}.{nanos:09}")
}

fn append<W: Write>(
    builder: &mut Builder<W>,
    path: &Path,
    name: &Path,
    meta: &Metadata,
) -> Result<(), FsError> {
    let failed = io_error(path);
    let mtime = pax_time(meta.mtime(), meta.mtime_nsec());
    let atime = pax_time(meta.atime(), meta.atime_nsec());
    builder
        .append_pax_extensions([("mtime", mtime.as_bytes()), ("atime", atime.as_bytes())])
        .map_err(io_error(path))?;
    let mut header = Header::new_gnu();
    header.set_mode(meta.mode() & MODE_BITS);
    header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    header.set_size(0);
    let kind = meta.file_type();
    if kind.is_symlink() {
        header.set_entry_type(EntryType::Symlink);
        let target = std::fs::read_link(path).map_err(io_error(path))?;
        builder
            .append_link(&mut header, name, &target)
            .map_err(failed)
    } else if kind.is_dir() {
        header.set_entry_type(EntryType::Directory);
        builder
            .append_data(&mut header, name, io::empty())
            .map_err(failed)
    } else {
        let (file, size) = crate::fs::open_regular(path)?;
        header.set_entry_type(EntryType::Regular);
        header.set_size(size);
        // A file that shrank meanwhile is padded, one that grew cut: the
        // archive stays well-formed.
        let data = file.take(size).chain(io::repeat(0)).take(size);
        builder.append_data(&mut header, name, data).map_err(failed)
    }
}

/// Make sure the destination directory exists (its parent must).
pub(crate) fn prepare_root(root: &Path) -> Result<(), FsError> {
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(FsError::Refused(format!(
            "cannot unpack a tree into {}: it exists and is not a directory",
            root.display()
        ))),
        Err(_) => std::fs::create_dir(root).map_err(io_error(root)),
    }
}

/// The relative path a tar entry names, or a refusal if it would leave
/// the destination. `None` is the root itself.
pub(crate) fn safe_relative(name: &[u8]) -> Result<Option<PathBuf>, FsError> {
    let shown = String::from_utf8_lossy(name);
    if name.first() == Some(&b'/') {
        return Err(FsError::Refused(format!(
            "tar entry {shown:?} is an absolute path; entries must stay inside the destination"
        )));
    }
    let mut relative = PathBuf::new();
    for part in name.split(|byte| *byte == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(FsError::Refused(format!(
                    "tar entry {shown:?} has a `..` component; entries must stay inside the destination"
                )))
            }
            part => relative.push(path_of(part)),
        }
    }
    Ok((!relative.as_os_str().is_empty()).then_some(relative))
}

/// Times an entry carries: PAX's when present (to the nanosecond), else
/// the header's whole seconds.
fn entry_times<R: Read>(entry: &mut tar::Entry<'_, R>) -> (SystemTime, SystemTime) {
    let header_mtime = entry.header().mtime().unwrap_or(0);
    let mut mtime = UNIX_EPOCH + Duration::from_secs(header_mtime);
    let mut atime = mtime;
    if let Ok(Some(extensions)) = entry.pax_extensions() {
        for extension in extensions.flatten() {
            let parsed = extension.value().ok().and_then(parse_pax_time);
            match (extension.key(), parsed) {
                (Ok("mtime"), Some(time)) => mtime = time,
                (Ok("atime"), Some(time)) => atime = time,
                _ => {}
            }
        }
    }
    (mtime, atime)
}

/// `secs[.frac]` (non-negative) as a time.
fn parse_pax_time(value: &str) -> Option<SystemTime> {
    let (secs, fraction) = value.split_once('.').unwrap_or((value, ""));
    let secs: u64 = secs.parse().ok()?;
    let digits: String = fraction.chars().take(9).collect();
    let nanos: u32 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// A directory unpacked, given its mode and times at the end.
struct Finished {
    path: PathBuf,
    mode: u32,
    times: (SystemTime, SystemTime),
}

/// Unpack the tar stream `input` into the directory `root` (which exists).
pub(crate) fn unpack(root: &Path, input: impl Read, preserve: bool) -> Result<(), FsError> {
    let mask = if preserve { MODE_BITS } else { MODE_RWX };
    let mut archive = tar::Archive::new(input);
    let mut checked: HashSet<PathBuf> = HashSet::new();
    let mut directories: Vec<Finished> = Vec::new();
    let entries = archive.entries().map_err(io_error(root))?;
    for entry in entries {
        let mut entry = entry.map_err(io_error(root))?;
        let name = entry.path_bytes().into_owned();
        let relative = safe_relative(&name)?;
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().map_err(io_error(root))? & mask;
        let times = entry_times(&mut entry);
        let Some(relative) = relative else {
            if kind.is_dir() {
                directories.push(Finished {
                    path: root.to_path_buf(),
                    mode,
                    times,
                });
                continue;
            }
            return Err(FsError::Refused(format!(
                "tar entry {:?} names the destination itself but is not a directory",
                String::from_utf8_lossy(&name)
            )));
        };
        let path = root.join(&relative);
        make_parents(root, &relative, &mut checked)?;
        match kind {
            EntryType::Directory => {
                make_directory(&path)?;
                checked.insert(relative);
                directories.push(Finished { path, mode, times });
            }
            EntryType::Regular | EntryType::Continuous => {
                let mut temp = TempFile::create(&path)?;
                let file: &mut File = temp
                    .file
                    .as_mut()
                    .ok_or_else(|| FsError::Refused("no file".into()))?;
                io::copy(&mut entry, file).map_err(io_error(&path))?;
                file.set_permissions(std::fs::Permissions::from_mode(mode))
                    .map_err(io_error(&path))?;
                if preserve {
                    file.set_times(FileTimes::new().set_modified(times.0).set_accessed(times.1))
                        .map_err(io_error(&path))?;
                }
                temp.rename_to(&path)?;
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    FsError::Refused(format!("symlink entry {} has no target", path.display()))
                })?;
                make_symlink(&path_of(&target), &path, preserve.then_some(times))?;
            }
            other => {
                return Err(FsError::Refused(format!(
                    "tar entry {:?} is a {other:?} entry; only directories, regular files and symbolic links are taken",
                    String::from_utf8_lossy(&name)
                )))
            }
        }
    }
    // Deepest first: a read-only directory no longer needs writing into,
    // and setting a child's times does not change its parent's.
    directories.sort_by_key(|dir| std::cmp::Reverse(dir.path.components().count()));
    for dir in directories {
        std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(dir.mode))
            .map_err(io_error(&dir.path))?;
        if preserve {
            File::open(&dir.path)
                .and_then(|handle| {
                    handle.set_times(
                        FileTimes::new()
                            .set_modified(dir.times.0)
                            .set_accessed(dir.times.1),
                    )
                })
                .map_err(io_error(&dir.path))?;
        }
    }
    Ok(())
}

/// Every parent of `relative` under `root` is a real directory (created if
/// missing), never a symlink: nothing is written through a link.
fn make_parents(
    root: &Path,
    relative: &Path,
    checked: &mut HashSet<PathBuf>,
) -> Result<(), FsError> {
    let mut prefix = PathBuf::new();
    let parts: Vec<Component> = relative.components().collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        prefix.push(part);
        if checked.contains(&prefix) {
            continue;
        }
        make_directory(&root.join(&prefix))?;
        checked.insert(prefix.clone());
    }
    Ok(())
}

/// A directory at `path`: one there already is fine (not a symlink to one).
fn make_directory(path: &Path) -> Result<(), FsError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            // Writable while unpacking; its own mode comes at the end.
            let mode = meta.permissions().mode();
            if mode & 0o700 != 0o700 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o700))
                    .map_err(io_error(path))?;
            }
            Ok(())
        }
        Ok(_) => Err(FsError::Refused(format!(
            "{} exists and is not a directory (a symlink is not followed while unpacking)",
            path.display()
        ))),
        Err(_) => std::fs::create_dir(path).map_err(io_error(path)),
    }
}

/// A symlink at `path` to `target`, made under a temporary name and
/// renamed over whatever was there (a link is replaced, never followed).
fn make_symlink(
    target: &Path,
    path: &Path,
    times: Option<(SystemTime, SystemTime)>,
) -> Result<(), FsError> {
    let temp = TempFile::create(path)?;
    std::fs::remove_file(&temp.path).map_err(io_error(path))?;
    std::os::unix::fs::symlink(target, &temp.path).map_err(io_error(path))?;
    if let Some((modified, accessed)) = times {
        use nix::sys::time::TimeSpec;
        let spec = |time: SystemTime| {
            let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
            TimeSpec::from_duration(since)
        };
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &temp.path,
            &spec(accessed),
            &spec(modified),
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|errno| io_error(path)(io::Error::from(errno)))?;
    }
    temp.rename_to(path)
}
