//! The connection flags of the client commands (`run`, `shell`, `cp`,
//! `bench`): which token to send and which CA to trust for `wss://`, turned
//! into the client library's `ConnectOptions`. Without `--token-file` the
//! library sends `$EXECD_TOKEN`, else the default token file's token (for
//! servers on loopback).

use std::path::PathBuf;

use clap::Args;
use execd_client::ConnectOptions;

#[derive(Debug, Clone, Default, Args)]
pub struct ConnectArgs {
    /// Send the token in this file (its content, trimmed) instead of
    /// $EXECD_TOKEN or the default token file (~/.local/state/execd/token,
    /// or $XDG_STATE_HOME/execd/token; used for loopback servers only).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// For wss:// servers: trust the CA certificates in this PEM file
    /// instead of the system's root certificates.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

impl ConnectArgs {
    /// The options these flags ask for; the error names the bad token file.
    pub fn options(&self) -> Result<ConnectOptions, String> {
        let token = match &self.token_file {
            Some(path) => Some(execd_transport::token::read_file(path).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(ConnectOptions {
            token,
            ca_file: self.ca_file.clone(),
            ..ConnectOptions::default()
        })
    }
}

/// The server and options of a client command given `--env NAME` (an
/// environment of the environments file), else `--url` / `$EXECD_URL`.
/// `--token-file` and `--ca-file` still win over the file's. The name
/// `default` without such an entry is `--url` / `$EXECD_URL`.
pub fn resolve(
    env: Option<&str>,
    url: Option<String>,
    connect: &ConnectArgs,
) -> Result<(Option<String>, ConnectOptions), String> {
    use execd_client::environments_file::{self, Credential};
    let mut options = connect.options()?;
    let Some(name) = env else {
        return Ok((crate::messages::server_url(url), options));
    };
    if url.is_some() {
        return Err(format!(
            "--env {name} and --url both name a server; give one"
        ));
    }
    let path = environments_file::default_path().map_err(|err| err.to_string())?;
    let mut environments = environments_file::load(&path).map_err(|err| err.to_string())?;
    let Some(spec) = environments.remove(name) else {
        if name == execd_client::manager::DEFAULT_NAME {
            return Ok((crate::messages::server_url(None), options));
        }
        let known: Vec<String> = environments.into_keys().collect();
        return Err(format!(
            "no environment named {name:?} in {} (known: {})",
            path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    };
    if options.token.is_none() {
        options.token = match spec.credential {
            Credential::Default => None,
            Credential::Token(token) => Some(token),
            Credential::TokenFile(file) => Some(
                execd_transport::token::read_file(&file)
                    .map_err(|err| format!("environment {name:?}: {err}"))?,
            ),
        };
    }
    if options.ca_file.is_none() {
        options.ca_file = spec.ca_file;
    }
    Ok((Some(spec.url), options))
}
