//! A connection's HTTP clients for `http/request` (codex dialect; the
//! method is in `methods/http.rs`): one `reqwest` client per redirect
//! policy, built on first use, its places for requests running at once,
//! and the errors a request can end with.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use execd_protocol::codex::http::{RedirectPolicy, HTTP_REQUEST};
use execd_protocol::limits::{show_bytes, Limit};
use execd_protocol::{ErrorCode, RpcError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::codex_limits::CodexLimits;

/// Redirects followed at most under `redirectPolicy: "follow"`.
const MAX_REDIRECTS: usize = 10;

/// Why an `http/request` was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("url {url:?} is not an absolute URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("url {url:?} has scheme {scheme:?}; only http and https are served")]
    BadScheme { url: String, scheme: String },
    #[error("method {0:?} is not an HTTP method")]
    BadMethod(String),
    #[error("header {name:?} is not a valid HTTP header: {reason}")]
    BadHeader { name: String, reason: String },
    #[error("bodyBase64 is not base64: {0}")]
    BadBody(String),
    #[error("the caller's sandbox has its network restricted (permissions.network is \"restricted\"); execd makes no HTTP request for it")]
    NetworkRestricted,
    #[error("{} http/requests of this connection are still running; the limit is {} ({}, {})", .0, .0, Limit::HttpRequests.flag(), Limit::HttpRequests.name())]
    TooManyRequests(usize),
    #[error("the response body of {url} is larger than the limit of {} ({}, {})", show_bytes(*.limit), Limit::HttpBodyBytes.flag(), Limit::HttpBodyBytes.name())]
    BodyTooLarge { url: String, limit: u64 },
    #[error("http/request to {url} timed out after {} ms", .after.as_millis())]
    TimedOut { url: String, after: Duration },
    #[error("http/request to {url} failed: {reason}")]
    Failed { url: String, reason: String },
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}

impl From<HttpError> for RpcError {
    fn from(err: HttpError) -> RpcError {
        let code = match err {
            HttpError::BadUrl { .. }
            | HttpError::BadScheme { .. }
            | HttpError::BadMethod(_)
            | HttpError::BadHeader { .. }
            | HttpError::BadBody(_) => ErrorCode::InvalidParams,
            HttpError::NetworkRestricted
            | HttpError::TooManyRequests(_)
            | HttpError::BodyTooLarge { .. } => ErrorCode::InvalidRequest,
            HttpError::TimedOut { .. } | HttpError::Failed { .. } | HttpError::Client(_) => {
                ErrorCode::Internal
            }
        };
        // A limit is named in `data` as every limit is (docs/PROTOCOL.md, Limits).
        let limit = match &err {
            HttpError::TooManyRequests(n) => Some((Limit::HttpRequests, *n as u64)),
            HttpError::BodyTooLarge { limit, .. } => Some((Limit::HttpBodyBytes, *limit)),
            _ => None,
        };
        let mut error = RpcError::new(code, format!("{HTTP_REQUEST}: {err}"));
        if let Some((limit, value)) = limit {
            error.data = Some(serde_json::json!({"limit": limit.name(), "value": value}));
        }
        error
    }
}

/// A connection's HTTP clients (one per redirect policy, built on first
/// use) and its places for requests running at once.
pub struct HttpClients {
    pub(crate) limits: CodexLimits,
    running: Arc<Semaphore>,
    follow: OnceLock<reqwest::Client>,
    stop: OnceLock<reqwest::Client>,
}

impl HttpClients {
    pub fn new(limits: &CodexLimits) -> Arc<HttpClients> {
        Arc::new(HttpClients {
            limits: limits.clone(),
            running: Arc::new(Semaphore::new(limits.max_http_requests)),
            follow: OnceLock::new(),
            stop: OnceLock::new(),
        })
    }

    pub(crate) fn client(&self, redirects: RedirectPolicy) -> Result<reqwest::Client, HttpError> {
        let (cell, policy) = match redirects {
            RedirectPolicy::Follow => (
                &self.follow,
                reqwest::redirect::Policy::limited(MAX_REDIRECTS),
            ),
            RedirectPolicy::Stop => (&self.stop, reqwest::redirect::Policy::none()),
        };
        if let Some(client) = cell.get() {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .connect_timeout(self.limits.http_connect_timeout)
            .redirect(policy)
            .build()
            .map_err(|err| HttpError::Client(err.to_string()))?;
        Ok(cell.get_or_init(|| client).clone())
    }

    pub(crate) fn place(&self) -> Result<OwnedSemaphorePermit, HttpError> {
        self.running
            .clone()
            .try_acquire_owned()
            .map_err(|_| HttpError::TooManyRequests(self.limits.max_http_requests))
    }
}
