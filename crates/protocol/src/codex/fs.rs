//! The filesystem methods of today's codex dialect that the seed protocol
//! does not have: reading a file in blocks through a handle (`fs/open`,
//! `fs/readBlock`, `fs/close`), `fs/canonicalize`, `fs/walk`, and the
//! one-shot watch for paths that are missing (`fs/watchMissing`, answered
//! later by the `fs/missingChanged` notification). Paths are `file://` URIs
//! in this dialect (plain absolute paths are accepted too).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const OPEN: &str = "fs/open";
pub const READ_BLOCK: &str = "fs/readBlock";
pub const CLOSE: &str = "fs/close";
pub const CANONICALIZE: &str = "fs/canonicalize";
pub const WALK: &str = "fs/walk";
pub const WATCH_MISSING: &str = "fs/watchMissing";
/// Notification: a watched path appeared (or the present one went away).
pub const MISSING_CHANGED: &str = "fs/missingChanged";

/// `fs/open`: the client names the handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenParams {
    pub handle_id: String,
    pub path: String,
    #[serde(default)]
    pub sandbox: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenResult {
    pub handle_id: String,
}

/// `fs/readBlock`: up to `len` bytes at `offset` of an open handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadBlockParams {
    pub handle_id: String,
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReadBlockResult {
    #[serde(with = "crate::base64_bytes")]
    #[schemars(with = "String", extend("contentEncoding" = "base64"))]
    pub chunk: Bytes,
    /// The block reached the end of the file.
    pub eof: bool,
}

/// `fs/close`: closing an unknown handle is not an error (as in codex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloseParams {
    pub handle_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CanonicalizeParams {
    pub path: String,
    #[serde(default)]
    pub sandbox: Option<Value>,
}

/// The path with every symlink, `.` and `..` resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CanonicalizeResult {
    pub path: String,
}

/// `fs/walk` limits; every one must be at least 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalkOptions {
    /// Directory levels below the root that are listed (1: the root's
    /// subdirectories are listed too).
    pub max_depth: u32,
    /// Directories reported at most.
    pub max_directories: u64,
    /// Directory entries looked at at most.
    pub max_entries: u64,
    /// Report symlinks to directories as directories and descend into them.
    pub follow_directory_symlinks: bool,
    /// Skip directories whose names start with `.`.
    #[serde(default)]
    pub prune_hidden_directories: bool,
}

/// `fs/walk` params. codex sends `path`, `options` and `sandbox`; the
/// other fields are execd extensions, and without them the reply is
/// exactly codex's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalkParams {
    pub path: String,
    pub options: WalkOptions,
    #[serde(default)]
    pub sandbox: Option<Value>,
    /// Extension: give each entry its `size`, `mode` and `modifiedAtMs`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("x-execd-extension" = true))]
    pub metadata: bool,
    /// Extension: list symlinks (not followed) as `symlink` entries.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("x-execd-extension" = true))]
    pub include_symlinks: bool,
    /// Extension: list fifos, sockets and devices as `other` entries.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("x-execd-extension" = true))]
    pub include_other: bool,
    /// Extension: at most this many entries per reply (a page); the reply's
    /// `nextCursor` asks for the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub limit: Option<u64>,
    /// Extension: the `nextCursor` of the previous page (opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WalkEntryKind {
    File,
    Directory,
    /// Extension: only with `includeSymlinks`.
    Symlink,
    /// Extension: only with `includeOther` (fifo, socket, device).
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalkEntry {
    pub path: String,
    pub kind: WalkEntryKind,
    /// Extension (`metadata`): size in bytes (of the link itself for a symlink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub size: Option<u64>,
    /// Extension (`metadata`): the permission bits (`0o7777` of `st_mode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub mode: Option<u32>,
    /// Extension (`metadata`): the modification time, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub modified_at_ms: Option<i64>,
}

/// A directory below the root that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WalkError {
    pub path: String,
    pub message: String,
}

/// `fs/walk` result: regular files and directories below the root, breadth
/// first; `truncated` when a limit stopped the walk.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalkOutcome {
    pub entries: Vec<WalkEntry>,
    pub errors: Vec<WalkError>,
    pub truncated: bool,
    /// Extension (paged walks): present when more entries follow; pass it
    /// as the next request's `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub next_cursor: Option<String>,
}

/// `fs/watchMissing`: notify once when any of `missing` appears or
/// `present` goes away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchMissingParams {
    pub watch_id: u64,
    pub missing: Vec<String>,
    #[serde(default)]
    pub present: Option<String>,
}

/// `watching: false` when nothing is watched: the id is taken, or the state
/// already differs from what the client expects (so it should look again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WatchMissingResult {
    pub watching: bool,
}

/// `fs/missingChanged` notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MissingChangedNotification {
    pub watch_id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_as_codex_sends_them() {
        let watch: WatchMissingParams = serde_json::from_value(serde_json::json!({
            "watchId": 1, "missing": ["file:///a/.git"], "present": null
        }))
        .expect("watch");
        assert_eq!(watch.watch_id, 1);
        let walk: WalkParams = serde_json::from_value(serde_json::json!({
            "path": "file:///t", "sandbox": null,
            "options": {"maxDepth": 2, "maxDirectories": 10, "maxEntries": 100,
                        "followDirectorySymlinks": false}
        }))
        .expect("walk");
        assert!(!walk.options.prune_hidden_directories);
        let block = ReadBlockResult {
            chunk: Bytes::from_static(b"hi"),
            eof: true,
        };
        assert_eq!(
            serde_json::to_value(block).expect("block"),
            serde_json::json!({"chunk": "aGk=", "eof": true})
        );
        let entry = WalkEntry {
            path: "file:///t/a".into(),
            kind: WalkEntryKind::Directory,
            size: None,
            mode: None,
            modified_at_ms: None,
        };
        // codex's shape exactly when no extension is asked for.
        assert_eq!(
            serde_json::to_value(entry).expect("entry"),
            serde_json::json!({"path": "file:///t/a", "kind": "directory"})
        );
        assert_eq!(
            serde_json::to_value(WalkOutcome::default()).expect("outcome"),
            serde_json::json!({"entries": [], "errors": [], "truncated": false})
        );
    }
}
