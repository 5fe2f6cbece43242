//! `fs/walk`'s wire params and result around [`crate::walk`], shared by the
//! server and the local environment: the limits checked (each at least 1)
//! and cut to ceilings, execd's extensions (`metadata`, `includeSymlinks`,
//! `includeOther`, a page's `limit` and `cursor`) as a [`WalkShape`], and
//! what was found as a [`WalkOutcome`] with each path in the caller's form.
//! A cursor is the decimal count of entries already listed (opaque to
//! clients).

use std::path::Path;

use execd_protocol::codex::fs::{WalkEntry, WalkEntryKind, WalkError, WalkOutcome, WalkParams};

use crate::walk::{FoundKind, WalkLimits, WalkShape, Walked};

/// The most a walk may go: `fs/walk`'s own limits are cut to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkCeilings {
    pub max_depth: u32,
    pub max_directories: u64,
    pub max_entries: u64,
}

/// Why a walk's params were refused (the message names the bad value).
#[derive(Debug, thiserror::Error)]
pub enum WalkParamsError {
    #[error("options: maxDepth, maxDirectories and maxEntries must each be at least 1, got {0}, {1}, {2}")]
    ZeroLimit(u32, u64, u64),
    #[error("limit must be at least 1, got 0")]
    ZeroPage,
    #[error("cursor {0:?} is not one this server gave (pass a reply's nextCursor)")]
    BadCursor(String),
}

/// The walk `params` ask for, within `ceilings`.
pub fn plan(
    params: &WalkParams,
    ceilings: WalkCeilings,
) -> Result<(WalkLimits, WalkShape), WalkParamsError> {
    let o = &params.options;
    if o.max_depth == 0 || o.max_directories == 0 || o.max_entries == 0 {
        return Err(WalkParamsError::ZeroLimit(
            o.max_depth,
            o.max_directories,
            o.max_entries,
        ));
    }
    if params.limit == Some(0) {
        return Err(WalkParamsError::ZeroPage);
    }
    let skip = match &params.cursor {
        None => 0,
        Some(cursor) => cursor
            .parse::<u64>()
            .map_err(|_| WalkParamsError::BadCursor(cursor.clone()))?,
    };
    let limits = WalkLimits {
        max_depth: o.max_depth.min(ceilings.max_depth),
        max_directories: o.max_directories.min(ceilings.max_directories),
        max_entries: o.max_entries.min(ceilings.max_entries),
        follow_directory_symlinks: o.follow_directory_symlinks,
        prune_hidden_directories: o.prune_hidden_directories,
    };
    let shape = WalkShape {
        include_symlinks: params.include_symlinks,
        include_other: params.include_other,
        metadata: params.metadata,
        skip,
        take: params.limit,
    };
    Ok((limits, shape))
}

/// What was found, each path as `show` writes it.
pub fn outcome(walked: Walked, shape: WalkShape, show: impl Fn(&Path) -> String) -> WalkOutcome {
    let mut metadata = walked.metadata.into_iter();
    let listed = walked.entries.len() as u64;
    let entries = walked
        .entries
        .iter()
        .map(|(path, kind)| {
            let meta = if shape.metadata {
                metadata.next().flatten()
            } else {
                None
            };
            WalkEntry {
                path: show(path),
                kind: match kind {
                    FoundKind::File => WalkEntryKind::File,
                    FoundKind::Directory => WalkEntryKind::Directory,
                    FoundKind::Symlink => WalkEntryKind::Symlink,
                    FoundKind::Other => WalkEntryKind::Other,
                },
                size: meta.map(|m| m.size),
                mode: meta.map(|m| m.mode),
                modified_at_ms: meta.map(|m| m.modified_at_ms),
            }
        })
        .collect();
    WalkOutcome {
        entries,
        errors: walked
            .errors
            .iter()
            .map(|(path, message)| WalkError {
                path: show(path),
                message: message.clone(),
            })
            .collect(),
        truncated: walked.truncated,
        next_cursor: walked.more.then(|| (shape.skip + listed).to_string()),
    }
}
