//! `EnvironmentManager`: decides once, early, where commands run. With
//! `EXECD_URL` set it is that server (connected lazily, on first use, with
//! the token given, else `EXECD_TOKEN`, else the default token file);
//! otherwise this machine.

use std::sync::Arc;

use execd_environment::{EnvError, Environment};
use execd_local::{LocalEnvironment, TableConfig};
use execd_policy::decision::ExecGate;
use execd_transport::token::Token;
use tokio::sync::OnceCell;

use crate::client::ExecServerClient;
use crate::remote::RemoteEnvironment;
use crate::websocket::ConnectOptions;

/// The variable naming the server to use.
pub const URL_VARIABLE: &str = "EXECD_URL";

/// Where commands run: this machine, or the execd server named by a URL (see the module).
pub struct EnvironmentManager {
    url: Option<String>,
    options: ConnectOptions,
    gate: Option<Arc<dyn ExecGate>>,
    environment: OnceCell<Environment>,
}

impl EnvironmentManager {
    /// Remote if `EXECD_URL` is set (and not empty), local otherwise.
    pub fn from_env() -> Self {
        let url = std::env::var(URL_VARIABLE).ok().filter(|u| !u.is_empty());
        EnvironmentManager::new(url)
    }

    /// Remote at `url`, or local for `None`.
    pub fn new(url: Option<String>) -> Self {
        EnvironmentManager {
            url,
            options: ConnectOptions::default(),
            gate: None,
            environment: OnceCell::new(),
        }
    }

    /// Send `token` to the server (instead of `EXECD_TOKEN` or the default file).
    pub fn with_token(mut self, token: Token) -> Self {
        self.options.token = Some(token);
        self
    }

    /// Connect with `options` (token, CA file, binary output).
    pub fn with_connect_options(mut self, options: ConnectOptions) -> Self {
        self.options = options;
        self
    }

    /// Decide the `ask` verdicts of exec policies with `gate` (and receive
    /// every decision), locally and remotely alike. Without one, asks are denied.
    pub fn with_exec_gate(mut self, gate: Arc<dyn ExecGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The server URL, `None` for the local environment.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// Whether the environment is an execd server.
    pub fn is_remote(&self) -> bool {
        self.url.is_some()
    }

    /// The environment, created on first use and cached. A failed connection
    /// is not cached: the next call tries again.
    pub async fn environment(&self) -> Result<Environment, EnvError> {
        self.environment
            .get_or_try_init(|| async {
                match (&self.url, &self.gate) {
                    (None, None) => Ok(LocalEnvironment::environment()),
                    (None, Some(gate)) => Ok(LocalEnvironment::with_gate(
                        TableConfig::default(),
                        gate.clone(),
                    )
                    .into_environment()),
                    (Some(url), gate) => {
                        let client = ExecServerClient::connect_with(url, self.options.clone())
                            .await
                            .map_err(|err| match EnvError::from(err) {
                                EnvError::Connect(message) => EnvError::Connect(format!(
                                    "{message} (named by {URL_VARIABLE})"
                                )),
                                other => other,
                            })?;
                        if let Some(gate) = gate {
                            client.set_exec_gate(gate.clone());
                        }
                        Ok(RemoteEnvironment::new(client).into_environment())
                    }
                }
            })
            .await
            .cloned()
    }
}
