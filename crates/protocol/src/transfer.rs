//! Bulk file transfers (extension): `fs/upload` and `fs/download` move a
//! file, or a whole directory tree as one tar stream, as numbered pieces in
//! WebSocket binary frames ([`crate::binary`] kind 2) with a window of
//! pieces in flight, acknowledged with `fs/transferAck`. The client names
//! each stream with a `streamId` of its own, unique among its open ones.
//!
//! Upload: `fs/upload` → data frames (seq 0, 1, …) → `fs/uploadFinish`;
//! the server acknowledges each piece once written. Download:
//! `fs/download` → data frames → `fs/transferEnd`; the client acknowledges
//! each piece once consumed. `fs/transferCancel` ends either early.

use serde::{Deserialize, Serialize};

pub const UPLOAD: &str = "fs/upload";
pub const UPLOAD_FINISH: &str = "fs/uploadFinish";
pub const DOWNLOAD: &str = "fs/download";
pub const TRANSFER_CANCEL: &str = "fs/transferCancel";
/// Notification, both directions: a piece was consumed (written or read).
pub const TRANSFER_ACK: &str = "fs/transferAck";
/// Notification, server to client: a download's last piece has been sent
/// (or it failed).
pub const TRANSFER_END: &str = "fs/transferEnd";

/// The largest piece (payload of one data frame) a server takes.
pub const MAX_PIECE_BYTES: u64 = 1024 * 1024;

/// What a stream carries.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum TransferFormat {
    /// The bytes of one regular file.
    #[default]
    File,
    /// A directory tree as a tar stream (ustar with GNU long names and PAX
    /// times): directories, regular files and symbolic links, relative
    /// to the tree's root (`.`).
    Tree,
}

/// `fs/upload` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadParams {
    /// The client's name for the stream.
    pub stream_id: u32,
    /// Where the file (or the tree's root directory) goes.
    pub path: String,
    #[serde(default)]
    pub format: TransferFormat,
    /// Tree uploads: also keep times and the setuid, setgid and sticky bits
    /// (permission bits are always kept).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preserve: bool,
}

/// `fs/upload` and `fs/download` result: how to pace the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferStarted {
    /// Pieces that may be sent and not yet acknowledged.
    pub window: u32,
    /// The largest piece taken.
    pub piece_bytes: u64,
    /// Downloads of a file: its size when opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// `fs/uploadFinish` params: sent after the last data frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadFinishParams {
    pub stream_id: u32,
    /// How many pieces were sent (a check against lost frames).
    pub pieces: u64,
}

/// `fs/uploadFinish` result: the upload is in place under its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadFinished {
    /// Payload bytes received.
    pub bytes: u64,
}

/// `fs/download` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadParams {
    pub stream_id: u32,
    pub path: String,
    #[serde(default)]
    pub format: TransferFormat,
}

/// `fs/transferAck` params: every piece up to and including `seq` has
/// been consumed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferAck {
    pub stream_id: u32,
    pub seq: u64,
}

/// `fs/transferEnd` params: a download is over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferEnd {
    pub stream_id: u32,
    /// Pieces sent.
    pub pieces: u64,
    /// Payload bytes sent.
    pub bytes: u64,
    /// Why it stopped early; absent when every byte was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `fs/transferCancel` params.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferCancel {
    pub stream_id: u32,
}
