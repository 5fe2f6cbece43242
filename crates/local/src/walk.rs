//! `fs/walk` and `fs/canonicalize` of the codex dialect, on this machine
//! (blocking; callers run them off the async threads). The walk lists the
//! regular files and directories below a root, breadth first, each
//! directory's entries in name order, within the caller's limits: every
//! directory entry looked at counts against `max_entries`, every directory
//! reported against `max_directories`, and directories deeper than
//! `max_depth` levels are reported but not read. Symlinks are left out,
//! except symlinks to directories when `follow_directory_symlinks` is set
//! (reported as directories and read, each real directory once). Hitting a
//! limit stops the walk and sets `truncated`.
//!
//! execd's extensions ([`WalkShape`]): symlinks (not followed) and other
//! file types may be listed too, each entry may carry its size, mode and
//! mtime (one `lstat`, only for the entries returned), and the listing may
//! be cut into pages: a page skips the entries before its offset (the walk
//! is deterministic, so page after page lists the tree once if it does not
//! change meanwhile) and stops after its size, saying whether more follow.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::fs::FsError;

/// The walk's limits (already checked to be at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkLimits {
    pub max_depth: u32,
    pub max_directories: u64,
    pub max_entries: u64,
    pub follow_directory_symlinks: bool,
    pub prune_hidden_directories: bool,
}

/// What a walk lists beyond codex's files and directories, and which part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalkShape {
    pub include_symlinks: bool,
    pub include_other: bool,
    pub metadata: bool,
    /// Entries to skip (a page's offset).
    pub skip: u64,
    /// Entries to list at most (a page's size); `None`: all.
    pub take: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundKind {
    File,
    Directory,
    Symlink,
    Other,
}

/// An entry's size, permission bits and mtime (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundMeta {
    pub size: u64,
    pub mode: u32,
    pub modified_at_ms: i64,
}

impl FoundMeta {
    fn of(meta: &std::fs::Metadata) -> FoundMeta {
        FoundMeta {
            size: meta.len(),
            mode: meta.mode() & 0o7777,
            modified_at_ms: meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000,
        }
    }
}

/// What a walk found, as native paths.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Walked {
    pub entries: Vec<(PathBuf, FoundKind)>,
    /// With [`WalkShape::metadata`]: each entry's, in the same order
    /// (`None` if it went away before it was looked at).
    pub metadata: Vec<Option<FoundMeta>>,
    /// Directories below the root that could not be read, with why.
    pub errors: Vec<(PathBuf, String)>,
    pub truncated: bool,
    /// A page was full and more entries follow.
    pub more: bool,
}

/// Where a walk is in its page.
struct Pager {
    shape: WalkShape,
    /// Entries listed so far, skipped ones included.
    seen: u64,
}

impl Pager {
    /// List `path` unless it is before the page; false once the page is
    /// full (and `path` would be the first of the next one).
    fn list(
        &mut self,
        walked: &mut Walked,
        path: PathBuf,
        kind: FoundKind,
        meta: Option<&std::fs::Metadata>,
    ) -> bool {
        let index = self.seen;
        if let Some(take) = self.shape.take {
            if index >= self.shape.skip.saturating_add(take) {
                walked.more = true;
                return false;
            }
        }
        self.seen += 1;
        if index < self.shape.skip {
            return true;
        }
        if self.shape.metadata {
            let found = match meta {
                Some(meta) => Some(FoundMeta::of(meta)),
                None => std::fs::symlink_metadata(&path)
                    .ok()
                    .map(|m| FoundMeta::of(&m)),
            };
            walked.metadata.push(found);
        }
        walked.entries.push((path, kind));
        true
    }
}

fn io_error(path: &Path, source: io::Error) -> FsError {
    let path = path.display().to_string();
    if source.kind() == io::ErrorKind::NotFound {
        FsError::NotFound(path)
    } else {
        FsError::Io { path, source }
    }
}

/// The real path: symlinks, `.` and `..` resolved; a missing path is
/// `NotFound`.
pub fn canonicalize(path: &Path) -> Result<PathBuf, FsError> {
    std::fs::canonicalize(path).map_err(|err| io_error(path, err))
}

/// Walk below `root`. A missing root is `NotFound`; a root that is not a
/// directory has nothing below it.
pub fn walk(root: &Path, limits: WalkLimits) -> Result<Walked, FsError> {
    walk_with(root, limits, WalkShape::default())
}

/// [`walk`] with execd's extensions.
pub fn walk_with(root: &Path, limits: WalkLimits, shape: WalkShape) -> Result<Walked, FsError> {
    let mut pager = Pager { shape, seen: 0 };
    let meta = std::fs::metadata(root).map_err(|err| io_error(root, err))?;
    let mut walked = Walked::default();
    if !meta.is_dir() {
        return Ok(walked);
    }
    // Real directories already queued, by (device, inode): a directory
    // reached again through a symlink is reported but not read again.
    let mut seen_dirs: HashSet<(u64, u64)> = HashSet::from([(meta.dev(), meta.ino())]);
    let (mut looked_at, mut directories) = (0u64, 0u64);
    let mut queue: VecDeque<(PathBuf, u32)> = VecDeque::from([(root.to_path_buf(), 0)]);
    while let Some((dir, depth)) = queue.pop_front() {
        let mut children: Vec<_> = match std::fs::read_dir(&dir) {
            Ok(read) => read.filter_map(Result::ok).collect(),
            Err(err) if dir == root => return Err(io_error(root, err)),
            Err(err) => {
                walked.errors.push((dir, err.to_string()));
                continue;
            }
        };
        children.sort_by_key(|entry| entry.file_name());
        for child in children {
            looked_at += 1;
            if looked_at > limits.max_entries {
                walked.truncated = true;
                return Ok(walked);
            }
            let path = child.path();
            let Ok(file_type) = child.file_type() else {
                continue;
            };
            let followed = file_type.is_symlink() && limits.follow_directory_symlinks;
            let dir_meta = if file_type.is_dir() {
                child.metadata().ok()
            } else if followed {
                std::fs::metadata(&path).ok().filter(|m| m.is_dir())
            } else {
                None
            };
            let Some(dir_meta) = dir_meta else {
                let kind = if file_type.is_file() {
                    Some(FoundKind::File)
                } else if file_type.is_symlink() && shape.include_symlinks {
                    Some(FoundKind::Symlink)
                } else if !file_type.is_symlink() && !file_type.is_dir() && shape.include_other {
                    Some(FoundKind::Other)
                } else {
                    None
                };
                if let Some(kind) = kind {
                    if !pager.list(&mut walked, path, kind, None) {
                        return Ok(walked);
                    }
                }
                continue;
            };
            let hidden = child.file_name().to_string_lossy().starts_with('.');
            if limits.prune_hidden_directories && hidden {
                continue;
            }
            directories += 1;
            if directories > limits.max_directories {
                walked.truncated = true;
                return Ok(walked);
            }
            if !pager.list(
                &mut walked,
                path.clone(),
                FoundKind::Directory,
                Some(&dir_meta),
            ) {
                return Ok(walked);
            }
            let first_visit = seen_dirs.insert((dir_meta.dev(), dir_meta.ino()));
            if depth < limits.max_depth && first_visit {
                queue.push_back((path, depth + 1));
            }
        }
    }
    Ok(walked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_depth: u32, max_directories: u64, max_entries: u64, follow: bool) -> WalkLimits {
        WalkLimits {
            max_depth,
            max_directories,
            max_entries,
            follow_directory_symlinks: follow,
            prune_hidden_directories: false,
        }
    }

    /// root/{a/{b/, f.txt}, link -> a, flink -> a/f.txt, .hid/}
    fn tree(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("execd-walk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join(".hid")).unwrap();
        std::fs::write(root.join("a/f.txt"), "x").unwrap();
        std::os::unix::fs::symlink("a", root.join("link")).unwrap();
        std::os::unix::fs::symlink("a/f.txt", root.join("flink")).unwrap();
        root
    }

    fn relative(root: &Path, walked: &Walked) -> Vec<String> {
        walked
            .entries
            .iter()
            .map(|(p, k)| format!("{}:{k:?}", p.strip_prefix(root).unwrap().display()))
            .collect()
    }

    #[test]
    fn breadth_first_in_name_order_without_symlinks() {
        let root = tree("bfs");
        let walked = walk(&root, limits(5, 100, 100, false)).unwrap();
        assert_eq!(
            relative(&root, &walked),
            vec![
                ".hid:Directory",
                "a:Directory",
                "a/b:Directory",
                "a/f.txt:File"
            ]
        );
        assert!(!walked.truncated && walked.errors.is_empty());
        let mut pruned = limits(5, 100, 100, false);
        pruned.prune_hidden_directories = true;
        let walked = walk(&root, pruned).unwrap();
        assert!(!relative(&root, &walked).contains(&".hid:Directory".to_string()));
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn directory_symlinks_are_followed_once_when_asked() {
        let root = tree("follow");
        let walked = walk(&root, limits(5, 100, 100, true)).unwrap();
        let found = relative(&root, &walked);
        // The link is a directory, but what is below it was listed once, through `a`.
        assert_eq!(
            found,
            vec![
                ".hid:Directory",
                "a:Directory",
                "link:Directory",
                "a/b:Directory",
                "a/f.txt:File"
            ]
        );
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn limits_truncate() {
        let root = tree("limits");
        let shallow = walk(&root, limits(0, 100, 100, false)).unwrap();
        assert_eq!(
            relative(&root, &shallow),
            vec![".hid:Directory", "a:Directory"]
        );
        let few_dirs = walk(&root, limits(5, 1, 100, false)).unwrap();
        assert!(few_dirs.truncated);
        assert_eq!(few_dirs.entries.len(), 1);
        let few_entries = walk(&root, limits(5, 100, 2, false)).unwrap();
        assert!(few_entries.truncated);
        assert_eq!(
            relative(&root, &few_entries),
            vec![".hid:Directory", "a:Directory"]
        );
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn pages_list_the_tree_once_with_metadata_and_symlinks() {
        let root = tree("pages");
        let shape = WalkShape {
            include_symlinks: true,
            metadata: true,
            ..WalkShape::default()
        };
        let whole = walk_with(&root, limits(5, 100, 100, false), shape).unwrap();
        assert_eq!(whole.entries.len(), 6);
        assert!(!whole.more);
        let mut paged = Vec::new();
        let mut skip = 0;
        loop {
            let page = WalkShape {
                skip,
                take: Some(4),
                ..shape
            };
            let walked = walk_with(&root, limits(5, 100, 100, false), page).unwrap();
            assert_eq!(walked.metadata.len(), walked.entries.len());
            skip += walked.entries.len() as u64;
            paged.extend(walked.entries);
            if !walked.more {
                break;
            }
        }
        assert_eq!(paged, whole.entries);
        let file = whole
            .entries
            .iter()
            .position(|(p, _)| p.ends_with("a/f.txt"))
            .unwrap();
        assert_eq!(whole.metadata[file].unwrap().size, 1);
        assert!(whole
            .entries
            .iter()
            .any(|(p, k)| p.ends_with("flink") && *k == FoundKind::Symlink));
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn missing_root_and_file_root() {
        let root = tree("roots");
        assert!(matches!(
            walk(&root.join("nope"), limits(1, 1, 1, false)),
            Err(FsError::NotFound(_))
        ));
        let file = walk(&root.join("a/f.txt"), limits(1, 1, 1, false)).unwrap();
        assert_eq!(file, Walked::default());
        assert_eq!(
            canonicalize(&root.join("link/../a/./b")).unwrap(),
            std::fs::canonicalize(root.join("a/b")).unwrap()
        );
        assert!(matches!(
            canonicalize(&root.join("nope")),
            Err(FsError::NotFound(_))
        ));
        std::fs::remove_dir_all(&root).ok();
    }
}
