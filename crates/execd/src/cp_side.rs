//! What both ways of `execd cp` (file by file in `cp`, whole streams in
//! `cp_stream`) share: a [`Side`] of the copy (an operand and its
//! environment), what is [`Kept`] of a source entry (mode; times with
//! `-p`) and how it is applied ([`keep`]), error wording ([`fs_error`]) and
//! the summary line after a copy on a terminal.

use std::sync::atomic::{AtomicBool, Ordering};

use execd_client::{EnvError, Environment, FileSystem};
use execd_protocol::fs::{Metadata, SetMetadataParams};
use indicatif::BinaryBytes;

use crate::cp_operand::Operand;
use crate::messages::describe;

/// Totals below this get no progress bar.
pub(crate) const PROGRESS_THRESHOLD: u64 = 1024 * 1024;

/// Permission bits kept without -p (scp's): rwx for user, group, others.
const MODE_KEPT: u32 = 0o777;
/// Permission bits kept with -p: also setuid, setgid, sticky.
const MODE_KEPT_PRESERVING: u32 = 0o7777;

/// What is kept of a source entry on its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Kept {
    mode: Option<u32>,
    modified_at_ms: Option<i64>,
    accessed_at_ms: Option<i64>,
}

impl Kept {
    /// What `meta` asks to keep: its mode, and its times with `-p`.
    pub(crate) fn of(meta: &Metadata, preserve: bool) -> Kept {
        let mask = if preserve {
            MODE_KEPT_PRESERVING
        } else {
            MODE_KEPT
        };
        Kept {
            mode: meta.mode.map(|mode| mode & mask),
            modified_at_ms: preserve.then_some(meta.modified_at_ms),
            accessed_at_ms: if preserve { meta.accessed_at_ms } else { None },
        }
    }

    fn is_empty(&self) -> bool {
        *self == Kept::default()
    }
}

/// One side of the copy.
pub(crate) struct Side {
    pub(crate) operand: Operand,
    env: Environment,
    /// This side cannot keep modes and times, and was warned about.
    warned_unsupported: AtomicBool,
}

impl Side {
    pub(crate) fn new(operand: Operand, env: Environment) -> Side {
        Side {
            operand,
            env,
            warned_unsupported: AtomicBool::new(false),
        }
    }

    pub(crate) fn fs(&self) -> &dyn FileSystem {
        self.env.fs.as_ref()
    }

    pub(crate) fn show(&self, path: &str) -> String {
        self.operand.show(path)
    }
}

/// `<action> <what>: <why>`, without repeating the path for "not found".
pub(crate) fn fs_error(action: &str, what: &str, err: &EnvError) -> String {
    match err {
        EnvError::NotFound(_) => format!("{action} {what}: no such file or directory"),
        other => format!("{action} {what}: {}", describe(other)),
    }
}

/// Give `path` the mode and times that `kept` asks for. A destination that
/// cannot set them (a server older than `fs/setMetadata`) gets a warning,
/// once per side, and the copy goes on.
pub(crate) async fn keep(side: &Side, path: &str, kept: &Kept) -> Result<(), String> {
    if kept.is_empty() || side.warned_unsupported.load(Ordering::Relaxed) {
        return Ok(());
    }
    let params = SetMetadataParams {
        path: path.to_string(),
        mode: kept.mode,
        modified_at_ms: kept.modified_at_ms,
        accessed_at_ms: kept.accessed_at_ms,
    };
    match side.fs().set_metadata(params).await {
        Ok(()) => Ok(()),
        Err(EnvError::Unsupported(message)) => {
            if !side.warned_unsupported.swap(true, Ordering::Relaxed) {
                eprintln!("execd cp: warning: permissions and times are not kept: {message}");
            }
            Ok(())
        }
        Err(err) => Err(fs_error(
            "cannot set the mode or times of",
            &side.show(path),
            &err,
        )),
    }
}

/// `3 files, 12.00 MiB in 1.2 s (10.00 MiB/s)`: the line after a copy on
/// a terminal.
pub(crate) fn summary(files: usize, bytes: u64, elapsed: std::time::Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        bytes as f64 / seconds
    } else {
        0.0
    };
    format!(
        "{files} file{}, {} in {seconds:.1} s ({}/s)",
        if files == 1 { "" } else { "s" },
        BinaryBytes(bytes),
        BinaryBytes(rate as u64)
    )
}
