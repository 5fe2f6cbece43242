//! Params and results of the `fs/*` methods. All paths are absolute.

use serde::{Deserialize, Serialize};

pub const READ_FILE: &str = "fs/readFile";
pub const WRITE_FILE: &str = "fs/writeFile";
pub const CREATE_DIRECTORY: &str = "fs/createDirectory";
pub const GET_METADATA: &str = "fs/getMetadata";
pub const READ_DIRECTORY: &str = "fs/readDirectory";
pub const REMOVE: &str = "fs/remove";
pub const COPY: &str = "fs/copy";
/// Extension: set a path's permission bits and times.
pub const SET_METADATA: &str = "fs/setMetadata";
/// Extension: move a path atomically (`rename(2)`).
pub const RENAME: &str = "fs/rename";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PathParams {
    pub path: String,
}

/// `fs/readFile` params; `offset` and `length` (extension) read a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReadFileParams {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub length: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadFileResult {
    pub data_base64: String,
    /// Extension, present for range reads: true when the range reached the end of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub eof: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteFileParams {
    pub path: String,
    pub data_base64: String,
    /// Extension: append instead of replacing the file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("x-execd-extension" = true))]
    pub append: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreateDirectoryParams {
    pub path: String,
    #[serde(default)]
    pub recursive: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub is_directory: bool,
    pub is_file: bool,
    pub is_symlink: bool,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
    /// Extension: size in bytes.
    #[serde(default)]
    #[schemars(extend("x-execd-extension" = true))]
    pub size: u64,
    /// Extension: the permission bits (`0o7777` of `st_mode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub mode: Option<u32>,
    /// Extension: the last access time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub accessed_at_ms: Option<i64>,
}

/// `fs/setMetadata` params (extension): each field given is set on `path`
/// (symlinks followed); at least one must be given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetMetadataParams {
    pub path: String,
    /// Permission bits, at most `0o7777`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accessed_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryEntry {
    pub file_name: String,
    pub is_directory: bool,
    pub is_file: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReadDirectoryResult {
    pub entries: Vec<DirectoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RemoveParams {
    pub path: String,
    #[serde(default)]
    pub recursive: Option<bool>,
    #[serde(default)]
    pub force: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyParams {
    pub source_path: String,
    pub destination_path: String,
    #[serde(default)]
    pub recursive: Option<bool>,
}

/// `fs/rename` params (extension): one `rename(2)`, atomic, replacing a
/// destination file (or empty directory); both ends on one filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenameParams {
    pub source_path: String,
    pub destination_path: String,
}

/// The empty `{}` result of methods that return nothing.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
pub struct Empty {}
