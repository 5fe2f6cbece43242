//! `EnvironmentManager`: decides once, early, where commands run. With
//! `EXECD_URL` set it is that server (connected lazily, on first use, with
//! the token given, else `EXECD_TOKEN`, else the default token file);
//! otherwise this machine. Beside that default one it holds named
//! environments (name → URL and credential, given in code or read from
//! the environments file of [`crate::environments_file`]), each connected
//! lazily on first use and shared after: one manager serves many tasks at
//! once (`&self` everywhere; a connection is made once however many ask).
//! The name `default` is the default environment unless one is so named.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use execd_environment::{EnvError, Environment};
use execd_local::{LocalEnvironment, TableConfig};
use execd_policy::decision::ExecGate;
use execd_transport::token::Token;
use tokio::sync::OnceCell;

use crate::client::ExecServerClient;
use crate::environments_file::{self, Credential, EnvironmentSpec, EnvironmentsError};
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
    named: BTreeMap<String, Named>,
}

/// A named environment and its connection, once made.
struct Named {
    spec: EnvironmentSpec,
    environment: OnceCell<Environment>,
}

/// The name that means the default environment (unless one is so named).
pub const DEFAULT_NAME: &str = "default";

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
            named: BTreeMap::new(),
        }
    }

    /// [`EnvironmentManager::from_env`] plus the named environments of the
    /// environments file (`$EXECD_ENVIRONMENTS`, else
    /// `$XDG_CONFIG_HOME/execd/environments.toml`, else
    /// `~/.config/execd/environments.toml`; a missing file adds none).
    pub fn from_env_and_file() -> Result<Self, EnvironmentsError> {
        let path = environments_file::default_path()?;
        EnvironmentManager::from_env().with_environments_file(&path)
    }

    /// Add the environments of the file at `path` (none if it is missing).
    pub fn with_environments_file(mut self, path: &Path) -> Result<Self, EnvironmentsError> {
        for (name, spec) in environments_file::load(path)? {
            self = self.with_environment(&name, spec)?;
        }
        Ok(self)
    }

    /// Add (or replace) the environment `name`.
    pub fn with_environment(
        mut self,
        name: &str,
        spec: EnvironmentSpec,
    ) -> Result<Self, EnvironmentsError> {
        environments_file::check_name(name)?;
        environments_file::check_url(name, &spec.url)?;
        self.named.insert(
            name.to_string(),
            Named {
                spec,
                environment: OnceCell::new(),
            },
        );
        Ok(self)
    }

    /// The names of the named environments, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.named.keys().map(String::as_str).collect()
    }

    /// The URL of the environment `name`, if there is one by that name.
    pub fn url_of(&self, name: &str) -> Option<&str> {
        self.named.get(name).map(|named| named.spec.url.as_str())
    }

    /// The environment `name`, connected on first use and shared after (a
    /// failed connection is not kept: the next call tries again). `default`
    /// is [`EnvironmentManager::environment`] unless an environment has
    /// that name.
    pub async fn named(&self, name: &str) -> Result<Environment, EnvError> {
        let Some(named) = self.named.get(name) else {
            if name == DEFAULT_NAME {
                return self.environment().await;
            }
            let known = if self.named.is_empty() {
                "none is configured".to_string()
            } else {
                format!("known: {}", self.names().join(", "))
            };
            return Err(EnvError::NotFound(format!(
                "no environment named {name:?} ({known})"
            )));
        };
        named
            .environment
            .get_or_try_init(|| async {
                let spec = &named.spec;
                let mut options = self.options.clone();
                options.token = match &spec.credential {
                    // The lookup of a single URL, never the default
                    // environment's token (that one is for its server).
                    Credential::Default => None,
                    Credential::Token(token) => Some(token.clone()),
                    Credential::TokenFile(path) => {
                        Some(execd_transport::token::read_file(path).map_err(|err| {
                            EnvError::Connect(format!("environment {name:?}: {err}"))
                        })?)
                    }
                };
                if spec.ca_file.is_some() {
                    options.ca_file = spec.ca_file.clone();
                }
                let client = ExecServerClient::connect_with(&spec.url, options)
                    .await
                    .map_err(|err| match EnvError::from(err) {
                        EnvError::Connect(message) => {
                            EnvError::Connect(format!("{message} (environment {name:?})"))
                        }
                        other => other,
                    })?;
                if let Some(gate) = &self.gate {
                    client.set_exec_gate(gate.clone());
                }
                Ok(RemoteEnvironment::new(client).into_environment())
            })
            .await
            .cloned()
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
