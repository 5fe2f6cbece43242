//! `http/request` and its `http/request/bodyDelta` notifications (codex
//! dialect): the environment makes an HTTP request for its client. The
//! request's and the reply's bodies travel as base64; with
//! `streamResponse` the reply carries the status and headers only and the
//! body follows as ordered deltas under the client's `requestId`, the last
//! one marked `done` (and carrying `error` if the body broke off).

use serde::{Deserialize, Serialize};

use crate::codex::permissions::SandboxContext;

pub const HTTP_REQUEST: &str = "http/request";
pub const HTTP_BODY_DELTA: &str = "http/request/bodyDelta";

/// One header; repeated names are kept, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

/// Whether redirects are followed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum RedirectPolicy {
    #[default]
    Follow,
    /// The redirect response itself is the answer.
    Stop,
}

/// The params of `http/request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestParams {
    /// `GET`, `POST`, ...
    pub method: String,
    /// An absolute `http://` or `https://` URL.
    pub url: String,
    #[serde(default)]
    pub headers: Vec<HttpHeader>,
    /// The request body, base64.
    #[serde(default)]
    pub body_base64: Option<String>,
    /// Deadline for the whole request, body included; absent or `null`:
    /// the server's own ceiling.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub redirect_policy: RedirectPolicy,
    /// The client's name for this request's body deltas.
    pub request_id: String,
    /// Answer after the headers and stream the body as deltas.
    #[serde(default)]
    pub stream_response: bool,
    /// codex's sandbox of the caller: a restricted network refuses the request.
    #[serde(default)]
    pub sandbox: Option<SandboxContext>,
}

/// The result of `http/request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestResult {
    pub status: u16,
    pub headers: Vec<HttpHeader>,
    /// The whole body, base64; empty when streamed.
    pub body_base64: String,
}

/// `http/request/bodyDelta`: the next piece of a streamed body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpBodyDelta {
    pub request_id: String,
    /// 1, 2, 3, ... per request.
    pub seq: u64,
    pub delta_base64: String,
    /// The body is complete (or broke off: see `error`); nothing follows.
    #[serde(default)]
    pub done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
