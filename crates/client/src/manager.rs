//! `EnvironmentManager`: decides once, early, where commands run. With
//! `EXECD_URL` set it is that server (connected lazily, on first use);
//! otherwise this machine.

use execd_environment::{EnvError, Environment};
use execd_local::LocalEnvironment;
use tokio::sync::OnceCell;

use crate::remote::RemoteEnvironment;

/// The variable naming the server to use.
pub const URL_VARIABLE: &str = "EXECD_URL";

pub struct EnvironmentManager {
    url: Option<String>,
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
            environment: OnceCell::new(),
        }
    }

    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    pub fn is_remote(&self) -> bool {
        self.url.is_some()
    }

    /// The environment, created on first use and cached. A failed connection
    /// is not cached: the next call tries again.
    pub async fn environment(&self) -> Result<Environment, EnvError> {
        self.environment
            .get_or_try_init(|| async {
                match &self.url {
                    None => Ok(LocalEnvironment::environment()),
                    Some(url) => RemoteEnvironment::connect(url).await.map_err(|err| {
                        EnvError::ConnectionLost(format!(
                            "cannot reach the execd server at {url} ({URL_VARIABLE}): {err}"
                        ))
                    }),
                }
            })
            .await
            .cloned()
    }
}
