//! `fs/rename` on this machine: one `rename(2)`, so the move is atomic and
//! a file at the destination is replaced. Errors name the path they are
//! about: a missing source, a missing destination directory, and a move
//! across filesystems (`EXDEV`), which `rename(2)` cannot do.

use std::io;
use std::path::Path;

use crate::fs::FsError;

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Move `source` to `destination` (blocking).
pub fn rename(source: &Path, destination: &Path) -> Result<(), FsError> {
    let Err(err) = std::fs::rename(source, destination) else {
        return Ok(());
    };
    if err.raw_os_error() == Some(libc::EXDEV) {
        return Err(FsError::Io {
            path: shown(source),
            source: io::Error::new(
                io::ErrorKind::CrossesDevices,
                format!(
                    "cannot rename to {}: it is on another filesystem (EXDEV); copy it, then remove the original",
                    shown(destination)
                ),
            ),
        });
    }
    if err.kind() == io::ErrorKind::NotFound {
        // Which end is missing: the source, or the destination's directory.
        if std::fs::symlink_metadata(source).is_err() {
            return Err(FsError::NotFound(shown(source)));
        }
        let parent = destination.parent().unwrap_or(destination);
        return Err(FsError::NotFound(shown(parent)));
    }
    Err(FsError::Io {
        path: shown(source),
        source: io::Error::new(
            err.kind(),
            format!("cannot rename to {}: {err}", shown(destination)),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_and_names_the_missing_end() {
        let root = std::env::temp_dir().join(format!("execd-rename-{}", std::process::id()));
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::create_dir_all(root.join("b")).unwrap();
        std::fs::write(root.join("a/f"), "x").unwrap();
        rename(&root.join("a/f"), &root.join("b/g")).unwrap();
        assert_eq!(std::fs::read(root.join("b/g")).unwrap(), b"x");
        let missing = rename(&root.join("a/f"), &root.join("b/h")).unwrap_err();
        assert!(missing.to_string().contains(&shown(&root.join("a/f"))));
        let no_dir = rename(&root.join("b/g"), &root.join("nope/g")).unwrap_err();
        assert!(no_dir.to_string().contains(&shown(&root.join("nope"))));
        std::fs::remove_dir_all(&root).ok();
    }
}
