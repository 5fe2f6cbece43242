//! The named-environments file, shared with the Python client: where it is
//! (`$EXECD_ENVIRONMENTS`, else `$XDG_CONFIG_HOME/execd/environments.toml`,
//! else `~/.config/execd/environments.toml`), and its TOML read into
//! [`EnvironmentSpec`]s. One `[environments.NAME]` table per environment
//! (`NAME` of `A-Z a-z 0-9 _ . -`): `url` (`ws://` or `wss://`, required),
//! at most one of `token` and `token_file`, and `ca_file`. Unknown keys are
//! an error (typo protection). A missing file means no named environments;
//! a malformed one is an error naming the file and the line or key.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use execd_transport::token::{Token, TokenError};
use serde::Deserialize;

/// The variable naming the environments file.
pub const ENVIRONMENTS_VARIABLE: &str = "EXECD_ENVIRONMENTS";

/// The credential an environment is reached with.
#[derive(Debug, Clone)]
pub enum Credential {
    /// The lookup of a single URL: `EXECD_TOKEN`, else the default token
    /// file (loopback servers only).
    Default,
    /// This token.
    Token(Token),
    /// The token in this file, read when the environment is first used.
    TokenFile(PathBuf),
}

/// One environment: where it is and how to get in.
#[derive(Debug, Clone)]
pub struct EnvironmentSpec {
    /// `ws://HOST:PORT` or `wss://HOST:PORT`.
    pub url: String,
    pub credential: Credential,
    /// For `wss://` with a private CA: trust the certificates in this PEM file.
    pub ca_file: Option<PathBuf>,
}

impl EnvironmentSpec {
    /// `url` reached with the default token lookup.
    pub fn new(url: impl Into<String>) -> Self {
        EnvironmentSpec {
            url: url.into(),
            credential: Credential::Default,
            ca_file: None,
        }
    }

    /// Send `token`.
    pub fn with_token(mut self, token: Token) -> Self {
        self.credential = Credential::Token(token);
        self
    }
}

/// Why the file, or a name or URL given in code, was not taken.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentsError {
    #[error("cannot read the environments file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("the environments file {path} is not valid: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("the environments file {path}: [environments.{name}] {key}: {message}")]
    Entry {
        path: PathBuf,
        name: String,
        key: &'static str,
        message: String,
    },
    #[error("environment name {0:?} must be letters, digits, '_', '.' or '-'")]
    Name(String),
    #[error("environment {name:?}: url must start with ws:// or wss://, got {url:?}")]
    Url { name: String, url: String },
    #[error(
        "no home directory to find ~/.config/execd/environments.toml; set {ENVIRONMENTS_VARIABLE}"
    )]
    NoHome,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    #[serde(default)]
    environments: BTreeMap<String, EntryText>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryText {
    url: String,
    token: Option<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

/// Where the environments file is looked for.
pub fn default_path() -> Result<PathBuf, EnvironmentsError> {
    let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(path) = set(ENVIRONMENTS_VARIABLE) {
        return Ok(PathBuf::from(path));
    }
    if let Some(config) = set("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(config).join("execd/environments.toml"));
    }
    let home = set("HOME").ok_or(EnvironmentsError::NoHome)?;
    Ok(PathBuf::from(home).join(".config/execd/environments.toml"))
}

/// A name as the file allows them.
pub fn check_name(name: &str) -> Result<(), EnvironmentsError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(EnvironmentsError::Name(name.to_string()))
    }
}

/// A URL as the file allows them.
pub fn check_url(name: &str, url: &str) -> Result<(), EnvironmentsError> {
    if url.starts_with("ws://") || url.starts_with("wss://") {
        Ok(())
    } else {
        Err(EnvironmentsError::Url {
            name: name.to_string(),
            url: url.to_string(),
        })
    }
}

/// The environments in the file at `path`; none if it does not exist.
pub fn load(path: &Path) -> Result<BTreeMap<String, EnvironmentSpec>, EnvironmentsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(EnvironmentsError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The environments in `text` (read from `path`, which errors name).
pub fn parse(
    path: &Path,
    text: &str,
) -> Result<BTreeMap<String, EnvironmentSpec>, EnvironmentsError> {
    let file: FileText = toml::from_str(text).map_err(|err| EnvironmentsError::Syntax {
        path: path.to_path_buf(),
        message: err.to_string().trim_end().to_string(),
    })?;
    let entry_error = |name: &str, key, message: String| EnvironmentsError::Entry {
        path: path.to_path_buf(),
        name: name.to_string(),
        key,
        message,
    };
    let mut environments = BTreeMap::new();
    for (name, entry) in file.environments {
        check_name(&name).map_err(|_| {
            entry_error(
                &name,
                "name",
                "must be letters, digits, '_', '.' or '-'".into(),
            )
        })?;
        check_url(&name, &entry.url).map_err(|_| {
            entry_error(
                &name,
                "url",
                format!("must start with ws:// or wss://, got {:?}", entry.url),
            )
        })?;
        let credential = match (entry.token, entry.token_file) {
            (Some(_), Some(_)) => {
                return Err(entry_error(
                    &name,
                    "token",
                    "give token or token_file, not both".into(),
                ))
            }
            (Some(text), None) => Credential::Token(
                Token::new(&text, "the environments file")
                    .map_err(|err: TokenError| entry_error(&name, "token", err.to_string()))?,
            ),
            (None, Some(file)) => Credential::TokenFile(file),
            (None, None) => Credential::Default,
        };
        environments.insert(
            name,
            EnvironmentSpec {
                url: entry.url,
                credential,
                ca_file: entry.ca_file,
            },
        );
    }
    Ok(environments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<BTreeMap<String, EnvironmentSpec>, EnvironmentsError> {
        parse(Path::new("/etc/envs.toml"), text)
    }

    #[test]
    fn reads_the_spec_example() {
        let envs = parsed(
            r#"
[environments.build]
url = "wss://10.0.0.5:7878"
token_file = "/run/secrets/tok"
ca_file = "/etc/execd/ca.pem"

[environments."gpu-1.b_2"]
url = "ws://127.0.0.1:7001"
token = "s3cret"
"#,
        )
        .unwrap();
        assert_eq!(envs.len(), 2);
        let build = &envs["build"];
        assert_eq!(build.url, "wss://10.0.0.5:7878");
        assert!(
            matches!(&build.credential, Credential::TokenFile(p) if p == Path::new("/run/secrets/tok"))
        );
        assert_eq!(
            build.ca_file.as_deref(),
            Some(Path::new("/etc/execd/ca.pem"))
        );
        assert!(
            matches!(&envs["gpu-1.b_2"].credential, Credential::Token(t) if t.as_str() == "s3cret")
        );
        assert!(parsed("").unwrap().is_empty());
    }

    #[test]
    fn names_the_bad_line_or_key() {
        let cases = [
            (
                "[environments.a]\nurl = \"ws://h:1\"\ntokn = \"x\"\n",
                "tokn",
            ),
            ("[environments.a]\nurl = \"http://h:1\"\n", "url"),
            (
                "[environments.a]\nurl = \"ws://h:1\"\ntoken = \"x\"\ntoken_file = \"/t\"\n",
                "not both",
            ),
            ("[environments.\"a b\"]\nurl = \"ws://h:1\"\n", "name"),
            ("[environments.a]\ntoken = \"x\"\n", "url"),
            ("[environments.a\nurl = 1\n", "line 1"),
            ("[servers.a]\nurl = \"ws://h:1\"\n", "servers"),
        ];
        for (text, needle) in cases {
            let err = parsed(text)
                .err()
                .unwrap_or_else(|| panic!("{text:?} was taken"))
                .to_string();
            assert!(err.contains("/etc/envs.toml"), "{err}");
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
    }
}
