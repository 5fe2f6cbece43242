//! Finding a program the way `execvp` would, before the spawn: a name
//! without a slash is searched in the child's own `PATH` (glibc's default
//! `/bin:/usr/bin` when it has none; empty and relative entries against the
//! child's working directory). Named by path, the child can be started by
//! [`crate::direct`] (a vfork that execs the path); std's `Command` would
//! fork the whole server for a bare name looked up in a `PATH` of the
//! child's own, copying the page tables of every thread's memory.

use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags};

/// glibc's search path when the environment has no `PATH` (`_CS_PATH`).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Where a program name leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The executable file `execvp` would run.
    Found(PathBuf),
    /// Candidates exist, but none may be executed (execvp: EACCES).
    NotExecutable,
    /// No candidate at all (execvp: ENOENT).
    NotFound,
}

/// Resolve `program` as `execvp` would for a child with `search_path` as its
/// `PATH` and `cwd` as its working directory. A name with a slash is
/// returned as it is (the exec itself reports on it).
pub fn find(program: &str, search_path: Option<&str>, cwd: &Path) -> Lookup {
    if program.contains('/') {
        return Lookup::Found(PathBuf::from(program));
    }
    if program.is_empty() {
        return Lookup::NotFound;
    }
    let mut denied = false;
    for dir in search_path.unwrap_or(DEFAULT_PATH).split(':') {
        let candidate = cwd.join(dir).join(program);
        let Ok(metadata) = candidate.metadata() else {
            continue;
        };
        if metadata.is_file() && access(&candidate, AccessFlags::X_OK).is_ok() {
            return Lookup::Found(candidate);
        }
        denied = true;
    }
    if denied {
        Lookup::NotExecutable
    } else {
        Lookup::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn searches_the_childs_path_in_order() {
        let root = tempfile::tempdir().unwrap();
        let (first, second) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir_all(&first).unwrap();
        std::fs::create_dir_all(&second).unwrap();
        file(&first, "tool", 0o644);
        let runnable = file(&second, "tool", 0o755);
        let path = format!("{}:{}", first.display(), second.display());
        assert_eq!(
            find("tool", Some(&path), Path::new("/")),
            Lookup::Found(runnable)
        );
        assert_eq!(
            find("tool", Some(first.to_str().unwrap()), Path::new("/")),
            Lookup::NotExecutable
        );
        assert_eq!(
            find("no-such-tool", Some(&path), Path::new("/")),
            Lookup::NotFound
        );
    }

    #[test]
    fn relative_entries_are_taken_from_the_childs_cwd() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("bin")).unwrap();
        let runnable = file(&root.path().join("bin"), "tool", 0o755);
        file(root.path(), "here", 0o755);
        assert_eq!(
            find("tool", Some("bin"), root.path()),
            Lookup::Found(runnable)
        );
        // An empty entry is the working directory.
        assert_eq!(
            find("here", Some("/nonexistent:"), root.path()),
            Lookup::Found(root.path().join("here"))
        );
    }

    #[test]
    fn a_directory_is_not_a_program_and_slashes_are_kept() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("bin/tool")).unwrap();
        let path = root.path().join("bin");
        assert_eq!(
            find("tool", path.to_str(), Path::new("/")),
            Lookup::NotExecutable
        );
        assert_eq!(
            find("./x", None, Path::new("/")),
            Lookup::Found(PathBuf::from("./x"))
        );
        assert!(matches!(find("sh", None, Path::new("/")), Lookup::Found(_)));
    }
}
