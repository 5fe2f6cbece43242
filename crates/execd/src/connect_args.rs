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
