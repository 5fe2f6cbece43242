//! `envPolicy` on `process/start` (sent by every codex client since the seed
//! generation): how the child's environment is built from the *server's own*
//! environment before `env` is laid on top. The wire type only; the builder
//! is `execd_local::env_policy`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Where the environment starts from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum EnvInherit {
    /// The server's whole environment.
    #[default]
    All,
    /// Only the core variables (`HOME`, `LANG`, `LC_ALL`, `LC_CTYPE`,
    /// `LOGNAME`, `PATH`, `SHELL`, `TEMP`, `TMP`, `TMPDIR`, `USER`).
    Core,
    /// Nothing.
    None,
}

/// `envPolicy`: every field may be omitted (codex always sends all five).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvPolicy {
    #[serde(default)]
    pub inherit: EnvInherit,
    /// Skip the default excludes (`*KEY*`, `*SECRET*`, `*TOKEN*`, any case).
    #[serde(default)]
    pub ignore_default_excludes: bool,
    /// Names to drop; `*` matches any run of characters, `?` one, any case.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Variables to set (after the excludes).
    #[serde(default)]
    pub set: HashMap<String, String>,
    /// When not empty, keep only the names matching one of these patterns.
    #[serde(default)]
    pub include_only: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_shape_decodes() {
        let policy: EnvPolicy = serde_json::from_value(serde_json::json!({
            "inherit": "all",
            "ignoreDefaultExcludes": true,
            "exclude": ["CODEX_VERSION"],
            "set": {"A": "1"},
            "includeOnly": []
        }))
        .expect("codex's envPolicy");
        assert_eq!(policy.inherit, EnvInherit::All);
        assert!(policy.ignore_default_excludes);
        assert_eq!(policy.exclude, vec!["CODEX_VERSION".to_string()]);
        assert_eq!(policy.set.get("A").map(String::as_str), Some("1"));

        let core: EnvPolicy = serde_json::from_str(r#"{"inherit":"core"}"#).expect("core");
        assert_eq!(core.inherit, EnvInherit::Core);
        let none: EnvPolicy = serde_json::from_str(r#"{"inherit":"none"}"#).expect("none");
        assert_eq!(none.inherit, EnvInherit::None);
        assert!(serde_json::from_str::<EnvPolicy>(r#"{"inherit":"some"}"#).is_err());
    }
}
