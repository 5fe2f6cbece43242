//! The per-process sandbox (extension): `sandbox` on `process/start` and the
//! sandbox features the server's kernel supports, reported in `initialize`.

use serde::{Deserialize, Serialize};

/// `sandbox` on `process/start`: restrictions applied to the process and
/// inherited by every descendant. `{}` means: filesystem read-only, no
/// network, `no_new_privs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSpec {
    /// Absolute paths of existing files or directories that stay writable
    /// (everything beneath a directory). Only meaningful with `readOnly`.
    #[serde(default)]
    pub writable_roots: Vec<String>,
    /// Whether the process may use the network (default: no).
    #[serde(default)]
    pub network: bool,
    /// Whether the filesystem is read-only outside `writableRoots` (default:
    /// yes). `false` leaves the filesystem unrestricted.
    #[serde(default = "default_read_only")]
    pub read_only: bool,
}

fn default_read_only() -> bool {
    true
}

impl Default for SandboxSpec {
    fn default() -> Self {
        SandboxSpec {
            writable_roots: Vec::new(),
            network: false,
            read_only: true,
        }
    }
}

/// What the server's kernel supports for the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxFeatures {
    /// Landlock is available: `readOnly` can be enforced.
    pub landlock: bool,
    /// The Landlock ABI version, when available.
    pub landlock_abi: Option<u32>,
    /// A fresh network namespace can be created: `network: false` can be enforced.
    pub network_namespace: bool,
    /// `no_new_privs` is always set (Linux 3.5+).
    pub no_new_privs: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_defaults_and_wire_names() {
        let spec: SandboxSpec = serde_json::from_str("{}").expect("empty spec");
        assert_eq!(spec, SandboxSpec::default());
        assert!(spec.read_only && !spec.network && spec.writable_roots.is_empty());

        let spec: SandboxSpec =
            serde_json::from_str(r#"{"writableRoots":["/w"],"network":true,"readOnly":false}"#)
                .expect("full spec");
        assert_eq!(spec.writable_roots, vec!["/w".to_string()]);
        assert!(spec.network && !spec.read_only);
    }

    #[test]
    fn features_wire_names() {
        let features = SandboxFeatures {
            landlock: false,
            landlock_abi: None,
            network_namespace: true,
            no_new_privs: true,
        };
        let json = serde_json::to_value(features).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({
                "landlock": false,
                "landlockAbi": null,
                "networkNamespace": true,
                "noNewPrivs": true
            })
        );
    }
}
