//! Params, results and the notification of `fs/watch` / `fs/unwatch`
//! (extension): the client names a watch, the server sends its changes as
//! `fs/changed` notifications, each carrying a batch of [`FsChange`]s in
//! the order they happened (coalesced: one entry per path and kind while
//! it waits to be sent). A change that did not fit the queue is not
//! dropped silently: the batch ends with an `overflow` change, after which
//! the client should look at the tree again.

use serde::{Deserialize, Serialize};

pub const WATCH: &str = "fs/watch";
pub const UNWATCH: &str = "fs/unwatch";
/// Notification: changes below a watched path.
pub const CHANGED: &str = "fs/changed";

/// `fs/watch`: watch `path` (a directory, or a file), and everything below
/// it with `recursive`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchParams {
    /// Chosen by the client; unique among the session's watches.
    pub watch_id: String,
    pub path: String,
    #[serde(default)]
    pub recursive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchResult {
    pub watch_id: String,
    /// inotify watches this watch holds (the path, and with `recursive`
    /// each directory below it): what counts against `maxFsWatchPaths`.
    pub watched_paths: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnwatchParams {
    pub watch_id: String,
}

/// `removed: false` when no watch had that id (not an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UnwatchResult {
    pub removed: bool,
}

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    Created,
    /// Contents or metadata (mode, times) changed.
    Modified,
    Removed,
    /// Moved: `from` and/or `to` say where, as far as the watch saw.
    Renamed,
    /// Changes were lost (the queue bound, or the kernel's own): look again.
    Overflow,
}

/// One change. `path` is the path it happened to (for `renamed`, the new
/// path when known, else the old one; for `overflow`, the watched path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FsChange {
    pub kind: ChangeKind,
    pub path: String,
    /// `renamed`: the old path, when it was inside the watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `renamed`: the new path, when it is inside the watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `overflow`: the limit that was reached (`maxFsWatchEvents`, or
    /// `maxFsWatchPaths` for a new directory left unwatched), or
    /// absent when the kernel's queue overflowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

impl FsChange {
    /// A change of `kind` to `path`.
    pub fn new(kind: ChangeKind, path: impl Into<String>) -> FsChange {
        FsChange {
            kind,
            path: path.into(),
            from: None,
            to: None,
            limit: None,
        }
    }

    /// A rename, with the ends that are known (at least one).
    pub fn renamed(from: Option<String>, to: Option<String>) -> FsChange {
        let path = to.clone().or_else(|| from.clone()).unwrap_or_default();
        FsChange {
            kind: ChangeKind::Renamed,
            path,
            from,
            to,
            limit: None,
        }
    }
}

/// `fs/changed` notification: a batch of changes of one watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangedNotification {
    pub watch_id: String,
    pub changes: Vec<FsChange>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes() {
        let p: WatchParams =
            serde_json::from_value(serde_json::json!({"watchId": "w", "path": "/t"})).expect("p");
        assert!(!p.recursive);
        let renamed = FsChange::renamed(Some("/a".into()), Some("/b".into()));
        assert_eq!(
            serde_json::to_value(&renamed).expect("v"),
            serde_json::json!({"kind": "renamed", "path": "/b", "from": "/a", "to": "/b"})
        );
        let gone = FsChange::new(ChangeKind::Removed, "/x");
        assert_eq!(
            serde_json::to_value(&gone).expect("v"),
            serde_json::json!({"kind": "removed", "path": "/x"})
        );
    }
}
