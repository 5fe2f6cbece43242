//! codex's `sandbox` on `process/start` (and on its `fs/*` calls): a
//! permission profile, the project roots and the cwd. Decoded here as codex
//! sends it (the profile's own fields are snake_case); what execd can
//! enforce of it is decided by `execd_local::codex_sandbox`.

use serde::{Deserialize, Serialize};

/// codex's `FileSystemSandboxContext`. Windows-only fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxContext {
    pub permissions: PermissionProfile,
    /// A URI; `project_roots` entries resolve against it when there are no
    /// `workspaceRoots`.
    #[serde(default)]
    pub cwd: Option<String>,
    /// URIs of the project roots.
    #[serde(default)]
    pub workspace_roots: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PermissionProfile {
    /// No sandbox at all.
    Disabled,
    /// The process is confined by something outside codex.
    External {
        #[serde(default)]
        network: NetworkPolicy,
    },
    /// Confined by the executor: what is written below.
    Managed {
        file_system: FileSystemPolicy,
        #[serde(default)]
        network: NetworkPolicy,
    },
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NetworkPolicy {
    #[default]
    Restricted,
    Enabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FileSystemPolicy {
    Unrestricted,
    Restricted {
        #[serde(default)]
        entries: Vec<FileSystemEntry>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileSystemEntry {
    pub path: FileSystemPath,
    pub access: AccessMode,
    /// `skip`: the entry does not apply while its path does not exist.
    #[serde(default)]
    pub missing_path_behavior: Option<String>,
}

impl FileSystemEntry {
    /// The entry may be dropped when its path does not exist.
    pub fn skip_if_missing(&self) -> bool {
        self.missing_path_behavior.as_deref() == Some("skip")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    Read,
    Write,
    #[serde(alias = "none")]
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FileSystemPath {
    /// A URI (or a plain absolute path).
    Path {
        path: String,
    },
    GlobPattern {
        pattern: String,
    },
    Special {
        value: SpecialPath,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpecialPath {
    Root,
    Minimal,
    #[serde(alias = "current_working_directory")]
    ProjectRoots {
        #[serde(default)]
        subpath: Option<String>,
    },
    Tmpdir,
    SlashTmp,
    Unknown {
        path: String,
        #[serde(default)]
        subpath: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_write_as_codex_sends_it() {
        // Captured from codex 0.169 with `-s workspace-write`.
        let context: SandboxContext = serde_json::from_value(serde_json::json!({
            "permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
                {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"},
                {"path": {"type": "special", "value": {"kind": "project_roots"}}, "access": "write"},
                {"path": {"type": "special", "value": {"kind": "slash_tmp"}}, "access": "write"},
                {"path": {"type": "special", "value": {"kind": "tmpdir"}}, "access": "write"},
                {"path": {"type": "special", "value": {"kind": "project_roots", "subpath": ".git"}},
                 "access": "read", "missing_path_behavior": "skip"}
            ]}, "network": "restricted"},
            "cwd": "file:///w", "workspaceRoots": ["file:///w"],
            "windowsSandboxLevel": "disabled", "windowsSandboxProxySettingsMode": "reconcile",
            "useLegacyLandlock": false
        }))
        .expect("workspace-write");
        let PermissionProfile::Managed {
            file_system: FileSystemPolicy::Restricted { entries },
            network,
        } = context.permissions
        else {
            panic!("managed restricted profile expected");
        };
        assert_eq!(network, NetworkPolicy::Restricted);
        assert_eq!(entries.len(), 5);
        assert!(entries[4].skip_if_missing());
        assert_eq!(
            entries[4].path,
            FileSystemPath::Special {
                value: SpecialPath::ProjectRoots {
                    subpath: Some(".git".into())
                }
            }
        );
        let denied: AccessMode = serde_json::from_str(r#""none""#).expect("alias");
        assert_eq!(denied, AccessMode::Deny);
    }
}
