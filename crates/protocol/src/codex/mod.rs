//! Today's codex dialect (codex's `exec-server-protocol`, newest generation):
//! the params, results and notifications that generation adds over the seed
//! protocol, as execd accepts and answers them. Paths in this dialect are
//! `file://` URIs ([`crate::path_uri`]); the shapes follow codex's wire
//! format field for field (camelCase, except inside `sandbox.permissions`,
//! which codex sends in snake_case).
//!
//! - this file: the newer `process/start` fields, `environment/info` (and
//!   `environmentInfo` in the `initialize` result), `environmentConfig/read`.
//! - [`fs`]: `fs/open`, `fs/readBlock`, `fs/close`, `fs/canonicalize`,
//!   `fs/walk`, `fs/watchMissing` and `fs/missingChanged`.
//! - [`permissions`]: codex's `sandbox` (a permission profile).
//! - [`http`]: `http/request` and `http/request/bodyDelta`.
//! - [`network`]: `networkProxy`, `network/policyRequest` and
//!   `network/policyDecision` (the managed network proxy).

pub mod fs;
pub mod http;
pub mod network;
pub mod permissions;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::env_policy::EnvPolicy;

pub const ENVIRONMENT_INFO: &str = "environment/info";
pub const ENVIRONMENT_CONFIG_READ: &str = "environmentConfig/read";
pub const ENVIRONMENT_STATUS: &str = "environment/status";
/// codex's one signal name on `process/signal`.
pub const SIGNAL_INTERRUPT: &str = "interrupt";

/// The `process/start` fields that are not in [`crate::process::StartParams`]:
/// decoded from the same params object.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartExtras {
    #[serde(default)]
    #[schemars(extend("x-execd-extension" = true))]
    pub env_policy: Option<EnvPolicy>,
    /// codex's bookkeeping (`threadId`, `toolCallId`); accepted and ignored.
    #[serde(default)]
    #[schemars(extend("x-execd-extension" = true))]
    pub metadata: Option<Value>,
    /// Either execd's sandbox or codex's (an object with `permissions`).
    #[serde(default)]
    #[schemars(extend("x-execd-extension" = true))]
    pub sandbox: Option<Value>,
    /// Whether the sandbox must route the network through a managed proxy.
    #[serde(default)]
    #[schemars(extend("x-execd-extension" = true))]
    pub enforce_managed_network: bool,
    /// Details of that proxy; only meaningful with `enforceManagedNetwork`.
    #[serde(default)]
    #[schemars(extend("x-execd-extension" = true))]
    pub managed_network: Option<Value>,
    /// A proxy for this tree to launch (with `enforceManagedNetwork`):
    /// served as execd's network policy.
    #[serde(default)]
    #[schemars(extend("x-execd-extension" = true))]
    pub network_proxy: Option<network::NetworkProxyLaunch>,
}

/// `sandboxType` in the `process/start` result of this dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SandboxType {
    None,
    /// codex's name for its Linux sandbox; execd's (Landlock, a network
    /// namespace, no capabilities, `no_new_privs`) takes its place.
    LinuxSeccomp,
}

/// The shell the environment's users get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShellInfo {
    /// `bash`, `zsh`, `sh`, ...
    pub name: String,
    pub path: String,
}

/// Which of codex's optional features this server offers; codex calls a
/// feature's methods only when its flag is true. Unknown flags are false.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentCapabilities {
    pub fs_watch_missing: bool,
    pub environment_config_read: bool,
    pub network_proxy_launch: bool,
    pub credential_masking: bool,
    pub capability_discovery_v2: bool,
    pub http_header_env_vars: bool,
    pub sandboxed_file_streaming: bool,
    pub file_write_streaming: bool,
    pub shell_snapshot_v2: bool,
}

/// `environment/info` result, also `environmentInfo` in `initialize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentInfo {
    pub shell: ShellInfo,
    /// The server's working directory (a URI).
    pub cwd: Option<String>,
    pub user_home_dir: Option<String>,
    /// `linux`.
    pub platform_os: String,
    pub temp_dir: Option<String>,
    pub prepend_path_dirs: Vec<String>,
    pub temporary_directories: Vec<String>,
    pub capabilities: EnvironmentCapabilities,
}

/// `environment/status` result: execd is ready whenever it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnvironmentStatus {
    /// `ready`.
    pub status: String,
}

/// `environmentConfig/read` params: which config keys the client wants from
/// the executor's own codex configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentConfigReadParams {
    pub cwd: String,
    pub config_paths: Vec<Vec<String>>,
    pub requirements_paths: Vec<Vec<String>>,
}

/// A stack of configuration layers; execd has none.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigLayers {
    pub layers: Vec<Value>,
    pub cloud_insertion_index: u32,
}

/// `environmentConfig/read` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentConfigReadResult {
    pub user_home_dir: Option<String>,
    pub codex_home_dir: Option<String>,
    pub hostname: String,
    pub config: ConfigLayers,
    pub requirements: ConfigLayers,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_extras_from_codex_frame() {
        // As codex 0.169 sends them (captured), minus the seed fields.
        let extras: StartExtras = serde_json::from_value(serde_json::json!({
            "processId": "p", "argv": ["true"], "cwd": "file:///tmp", "env": {},
            "metadata": {"threadId": "t", "toolCallId": "c"},
            "envPolicy": {"inherit": "all", "ignoreDefaultExcludes": true,
                          "exclude": [], "set": {}, "includeOnly": []},
            "sandbox": null, "enforceManagedNetwork": false, "managedNetwork": null
        }))
        .expect("extras");
        assert!(extras.env_policy.is_some() && extras.sandbox.is_none());
        assert!(!extras.enforce_managed_network);
    }

    #[test]
    fn info_wire_names() {
        let info = EnvironmentInfo {
            shell: ShellInfo {
                name: "bash".into(),
                path: "/bin/bash".into(),
            },
            cwd: Some("file:///".into()),
            user_home_dir: None,
            platform_os: "linux".into(),
            temp_dir: None,
            prepend_path_dirs: vec![],
            temporary_directories: vec![],
            capabilities: EnvironmentCapabilities {
                fs_watch_missing: true,
                ..Default::default()
            },
        };
        let json = serde_json::to_value(&info).expect("info");
        assert_eq!(json["shell"]["path"], "/bin/bash");
        assert_eq!(json["platformOs"], "linux");
        assert_eq!(json["capabilities"]["fsWatchMissing"], true);
        assert_eq!(json["capabilities"]["fileWriteStreaming"], false);
    }
}
