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
use crate::temp_file::{path_of, TempFile};
use crate::tree_writers::{read_small, FileWriters, SmallFile, SMALL_FILE};

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
        let (file, size) = crate::fs::open_listed_regular(path)?;
        header.set_entry_type(EntryType::Regular);
        header.set_size(size);
        // A file that shrank meanwhile is padded, one that grew cut: the
        // archive stays well-formed.
        let data = file.take(size).chain(io::repeat(0)).take(size);
        builder.append_data(&mut header, name, data).map_err(failed)
    }
}

/// Where a tree is unpacked: into a destination directory that already
/// existed (entry by entry, each file under a temporary name first), or,
/// when there was none, into a fresh temporary directory beside it that is
/// renamed to the destination once the whole tree is in (files written
/// straight under their names: nothing is visible under the final name
/// until the tree is complete).
pub(crate) enum TreeTarget {
    Existing(PathBuf),
    Fresh { temp: TempDir, root: PathBuf },
}

/// A temporary directory, removed with its contents on drop unless kept.
pub(crate) struct TempDir {
    path: PathBuf,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Choose where to unpack for the destination `root` (its parent must
/// exist): the directory itself, or a fresh temporary one beside it.
pub(crate) fn prepare_root(root: &Path) -> Result<TreeTarget, FsError> {
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(TreeTarget::Existing(root.to_path_buf())),
        Ok(_) => Err(FsError::Refused(format!(
            "cannot unpack a tree into {}: it exists and is not a directory",
            root.display()
        ))),
        Err(_) => {
            // Made (and the name reserved) as a file, then swapped for a
            // directory of the same name.
            let reserved = TempFile::create(root)?;
            let path = reserved.path.clone();
            drop(reserved);
            std::fs::create_dir(&path).map_err(io_error(root))?;
            Ok(TreeTarget::Fresh {
                temp: TempDir { path },
                root: root.to_path_buf(),
            })
        }
    }
}

/// Unpack `input` as `target` says, and put a fresh tree in place.
pub(crate) fn unpack_into(
    target: TreeTarget,
    input: impl Read,
    preserve: bool,
) -> Result<(), FsError> {
    match target {
        TreeTarget::Existing(root) => unpack(&root, input, preserve, false),
        TreeTarget::Fresh { mut temp, root } => {
            unpack(&temp.path, input, preserve, true)
                .map_err(|err| named_as_root(err, &temp.path, &root))?;
            nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &temp.path,
                nix::fcntl::AT_FDCWD,
                &root,
                nix::fcntl::RenameFlags::RENAME_NOREPLACE,
            )
            .map_err(|errno| io_error(&root)(io::Error::from(errno)))?;
            temp.path = PathBuf::new();
            Ok(())
        }
    }
}

/// `err` naming `root` where it names the temporary directory `temp`:
/// errors name the destination the caller gave.
fn named_as_root(err: FsError, temp: &Path, root: &Path) -> FsError {
    let (from, to) = (temp.display().to_string(), root.display().to_string());
    let fix = |text: String| text.replace(&from, &to);
    match err {
        FsError::NotFound(path) => FsError::NotFound(fix(path)),
        FsError::IsDirectory(path) => FsError::IsDirectory(fix(path)),
        FsError::NotRegular { path, kind, action } => FsError::NotRegular {
            path: fix(path),
            kind,
            action,
        },
        FsError::Io { path, source } => FsError::Io {
            path: fix(path),
            source,
        },
        FsError::Refused(text) => FsError::Refused(fix(text)),
        other => other,
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

/// Unpack the tar stream `input` into the directory `root` (which exists;
/// `fresh` when it was made empty for this tree and nobody else writes in
/// it, so files can be created under their own names).
fn unpack(root: &Path, input: impl Read, preserve: bool, fresh: bool) -> Result<(), FsError> {
    std::thread::scope(|scope| {
        let mut writers = fresh.then(|| FileWriters::new(scope, write_new));
        unpack_entries(root, input, preserve, writers.as_mut())
    })
}

/// [`unpack`], the small files of a fresh tree handed to `writers`.
fn unpack_entries(
    root: &Path,
    input: impl Read,
    preserve: bool,
    mut writers: Option<&mut FileWriters<'_, '_>>,
) -> Result<(), FsError> {
    let fresh = writers.is_some();
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
        if let Some(writers) = writers.as_deref_mut() {
            if writers.touches(&relative) {
                writers.settle()?;
            }
        }
        let path = root.join(&relative);
        make_parents(root, &relative, &mut checked)?;
        match kind {
            EntryType::Directory => {
                make_directory(&path)?;
                checked.insert(relative);
                directories.push(Finished { path, mode, times });
            }
            EntryType::Regular | EntryType::Continuous
                if writers.is_some() && entry.size() <= SMALL_FILE =>
            {
                let size = entry.size();
                let data = read_small(&mut entry, size, &path)?;
                let times = preserve.then_some(times);
                let file = SmallFile {
                    path,
                    data,
                    mode,
                    times,
                };
                if let Some(writers) = writers.as_deref_mut() {
                    writers.write(relative, file)?;
                }
            }
            EntryType::Regular | EntryType::Continuous => {
                write_file(&path, &mut entry, mode, preserve.then_some(times), fresh)?
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
    if let Some(writers) = writers {
        writers.settle()?;
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

/// A new file at `path` (never through a symlink), or `None` when the
/// name is taken (an earlier entry of the same name: replaced by rename).
fn create_new(path: &Path) -> Result<Option<File>, FsError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => Ok(Some(file)),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(None),
        Err(err) => Err(io_error(path)(err)),
    }
}

/// A file of a fresh tree from its bytes: what a [`FileWriters`] thread does.
fn write_new(
    path: &Path,
    data: &[u8],
    mode: u32,
    times: Option<(SystemTime, SystemTime)>,
) -> Result<(), FsError> {
    write_file(path, &mut &data[..], mode, times, true)
}

/// The file `path` with `data`, its mode and times: created straight under
/// its name in a `fresh` tree where the name is free, else written under a
/// temporary name and renamed over whatever had the name.
fn write_file(
    path: &Path,
    data: &mut impl Read,
    mode: u32,
    times: Option<(SystemTime, SystemTime)>,
    fresh: bool,
) -> Result<(), FsError> {
    if fresh {
        if let Some(mut file) = create_new(path)? {
            return fill_file(&mut file, data, path, mode, times);
        }
    }
    let mut temp = TempFile::create(path)?;
    let file: &mut File = temp
        .file
        .as_mut()
        .ok_or_else(|| FsError::Refused("no file".into()))?;
    fill_file(file, data, path, mode, times)?;
    temp.rename_to(path)
}

/// Copy an entry's data into `file` and give it its mode (and times).
fn fill_file(
    file: &mut File,
    data: &mut impl Read,
    path: &Path,
    mode: u32,
    times: Option<(SystemTime, SystemTime)>,
) -> Result<(), FsError> {
    io::copy(data, file).map_err(io_error(path))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io_error(path))?;
    if let Some((modified, accessed)) = times {
        file.set_times(
            FileTimes::new()
                .set_modified(modified)
                .set_accessed(accessed),
        )
        .map_err(io_error(path))?;
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
    // mkdir never follows a link: where the name is taken, look at what
    // is there.
    match std::fs::create_dir(path) {
        Ok(()) => return Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(io_error(path)(err)),
    }
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
        Err(err) => Err(io_error(path)(err)),
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
