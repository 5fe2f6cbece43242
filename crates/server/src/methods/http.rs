//! `http/request` (codex dialect): the server makes an HTTP request for its
//! client and answers with the status, the headers and the body, or, with
//! `streamResponse`, with the status and headers and then the body as
//! ordered `http/request/bodyDelta` notifications. Only `http://` and
//! `https://`; refused when the caller's codex sandbox has its network
//! restricted. Bounded per connection by `CodexLimits`: requests at once,
//! the body's size, the connect time and the whole request's time.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use execd_protocol::codex::http::{
    HttpBodyDelta, HttpHeader, HttpRequestParams, HttpRequestResult, HTTP_BODY_DELTA, HTTP_REQUEST,
};
use execd_protocol::codex::permissions::{NetworkPolicy, PermissionProfile};
use execd_protocol::{RequestId, RpcError};
use execd_transport::outbox::{Frame, Link, Outbox, Wire};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::value::RawValue;
use tokio::time::{timeout_at, Instant};

use crate::http_clients::HttpError;
use crate::methods::{ok, Reply};
use crate::rpc::{self, parse_params};
use crate::session::{InFlight, Session};

/// Refuse a caller whose codex sandbox has no network.
fn check_network(params: &HttpRequestParams) -> Result<(), HttpError> {
    let Some(sandbox) = &params.sandbox else {
        return Ok(());
    };
    match sandbox.permissions {
        PermissionProfile::Disabled => Ok(()),
        PermissionProfile::External { network } | PermissionProfile::Managed { network, .. } => {
            match network {
                NetworkPolicy::Enabled => Ok(()),
                NetworkPolicy::Restricted => Err(HttpError::NetworkRestricted),
            }
        }
    }
}

/// The request as reqwest builds it, checked.
fn build(client: &reqwest::Client, p: &HttpRequestParams) -> Result<reqwest::Request, HttpError> {
    let url = reqwest::Url::parse(&p.url).map_err(|err| HttpError::BadUrl {
        url: p.url.clone(),
        reason: err.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HttpError::BadScheme {
            url: p.url.clone(),
            scheme: url.scheme().to_string(),
        });
    }
    let method = reqwest::Method::from_bytes(p.method.as_bytes())
        .map_err(|_| HttpError::BadMethod(p.method.clone()))?;
    let mut headers = HeaderMap::new();
    for header in &p.headers {
        let bad = |reason: String| HttpError::BadHeader {
            name: header.name.clone(),
            reason,
        };
        let name =
            HeaderName::from_bytes(header.name.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let value = HeaderValue::from_str(&header.value).map_err(|e| bad(e.to_string()))?;
        headers.append(name, value);
    }
    let mut request = client.request(method, url).headers(headers);
    if let Some(body) = &p.body_base64 {
        let bytes = BASE64
            .decode(body)
            .map_err(|err| HttpError::BadBody(err.to_string()))?;
        request = request.body(bytes);
    }
    request.build().map_err(|err| HttpError::BadUrl {
        url: p.url.clone(),
        reason: err.to_string(),
    })
}

fn reply_headers(headers: &HeaderMap) -> Vec<HttpHeader> {
    headers
        .iter()
        .map(|(name, value)| HttpHeader {
            name: name.as_str().to_string(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })
        .collect()
}

/// `http/request`: checked now, run from a task.
pub fn request(session: &Session, id: &RequestId, params: &RawValue) -> Result<Reply, RpcError> {
    let p: HttpRequestParams = parse_params(HTTP_REQUEST, params)?;
    check_network(&p)?;
    let http = session.http().clone();
    let client = http.client(p.redirect_policy)?;
    let request = build(&client, &p)?;
    let running = http.place()?;
    let reply_place = session.in_flight()?;
    let limits = &http.limits;
    let after = p
        .timeout_ms
        .map(Duration::from_millis)
        .map_or(limits.max_http_duration, |t| {
            t.min(limits.max_http_duration)
        });
    let exchange = Exchange {
        outbox: session.outbox(),
        link: session.link().clone(),
        id: id.clone(),
        url: p.url,
        request_id: p.request_id,
        limit: limits.max_http_body_bytes,
        after,
        deadline: Instant::now() + after,
    };
    tokio::spawn(async move {
        exchange
            .run(client, request, p.stream_response, reply_place)
            .await;
        drop(running);
    });
    Ok(Reply::Later)
}

/// One request on its way: where its answer and deltas go, and its bounds.
struct Exchange {
    outbox: Arc<Outbox<Wire>>,
    /// The connection that asked: its reply and deltas go there only.
    link: Link,
    id: RequestId,
    url: String,
    request_id: String,
    limit: u64,
    after: Duration,
    deadline: Instant,
}

impl Exchange {
    fn timed_out(&self) -> HttpError {
        HttpError::TimedOut {
            url: self.url.clone(),
            after: self.after,
        }
    }

    fn failed(&self, err: reqwest::Error) -> HttpError {
        if err.is_timeout() {
            return self.timed_out();
        }
        let mut reason = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        HttpError::Failed {
            url: self.url.clone(),
            reason,
        }
    }

    /// The next piece of the body, within the deadline.
    async fn chunk(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Option<bytes::Bytes>, HttpError> {
        match timeout_at(self.deadline, response.chunk()).await {
            Err(_) => Err(self.timed_out()),
            Ok(result) => result.map_err(|err| self.failed(err)),
        }
    }

    async fn respond(&self, result: Result<HttpRequestResult, HttpError>, place: InFlight) {
        let result = result.map_err(RpcError::from).and_then(ok);
        let reply = Frame::Text(rpc::response(&self.id, result));
        self.outbox.send_on(&self.link, reply).await;
        drop(place);
    }

    async fn run(
        self,
        client: reqwest::Client,
        request: reqwest::Request,
        stream: bool,
        place: InFlight,
    ) {
        let mut response = match timeout_at(self.deadline, client.execute(request)).await {
            Err(_) => return self.respond(Err(self.timed_out()), place).await,
            Ok(Err(err)) => return self.respond(Err(self.failed(err)), place).await,
            Ok(Ok(response)) => response,
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.limit)
        {
            let err = HttpError::BodyTooLarge {
                url: self.url.clone(),
                limit: self.limit,
            };
            return self.respond(Err(err), place).await;
        }
        let status = response.status().as_u16();
        let headers = reply_headers(response.headers());
        if !stream {
            let body = self.whole_body(&mut response).await;
            let result = body.map(|body| HttpRequestResult {
                status,
                headers,
                body_base64: BASE64.encode(body),
            });
            return self.respond(result, place).await;
        }
        let head = HttpRequestResult {
            status,
            headers,
            body_base64: String::new(),
        };
        self.respond(Ok(head), place).await;
        self.stream_body(&mut response).await;
    }

    async fn whole_body(&self, response: &mut reqwest::Response) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk(response).await? {
            if body.len() as u64 + chunk.len() as u64 > self.limit {
                return Err(HttpError::BodyTooLarge {
                    url: self.url.clone(),
                    limit: self.limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn delta(&self, seq: u64, bytes: &[u8], done: bool, error: Option<String>) -> bool {
        let delta = HttpBodyDelta {
            request_id: self.request_id.clone(),
            seq,
            delta_base64: BASE64.encode(bytes),
            done,
            error,
        };
        let delta = Frame::Text(rpc::notification(HTTP_BODY_DELTA, delta));
        self.outbox.send_on(&self.link, delta).await
    }

    /// The body as deltas 1, 2, ...; the last one `done`, with `error` if
    /// the body broke off, ran over the limit or out of time.
    async fn stream_body(&self, response: &mut reqwest::Response) {
        let mut seq = 0;
        let mut total = 0u64;
        loop {
            seq += 1;
            let error = match self.chunk(response).await {
                Ok(Some(chunk)) => {
                    total += chunk.len() as u64;
                    if total > self.limit {
                        HttpError::BodyTooLarge {
                            url: self.url.clone(),
                            limit: self.limit,
                        }
                    } else {
                        if !self.delta(seq, &chunk, false, None).await {
                            return;
                        }
                        continue;
                    }
                }
                Ok(None) => {
                    self.delta(seq, &[], true, None).await;
                    return;
                }
                Err(err) => err,
            };
            let message = format!("{HTTP_REQUEST}: {error}");
            self.delta(seq, &[], true, Some(message)).await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(extra: serde_json::Value) -> HttpRequestParams {
        let mut value =
            serde_json::json!({"method": "GET", "url": "http://127.0.0.1/", "requestId": "r"});
        if let (serde_json::Value::Object(p), serde_json::Value::Object(e)) = (&mut value, extra) {
            p.extend(e);
        }
        serde_json::from_value(value).expect("params")
    }

    #[test]
    fn network_follows_the_sandbox() {
        assert!(check_network(&params(serde_json::json!({}))).is_ok());
        let disabled = serde_json::json!({"sandbox": {"permissions": {"type": "disabled"}}});
        assert!(check_network(&params(disabled)).is_ok());
        let enabled = serde_json::json!({"sandbox": {"permissions": {"type": "external", "network": "enabled"}}});
        assert!(check_network(&params(enabled)).is_ok());
        let restricted = serde_json::json!({"sandbox": {"permissions": {"type": "external", "network": "restricted"}}});
        assert!(matches!(
            check_network(&params(restricted)),
            Err(HttpError::NetworkRestricted)
        ));
    }

    #[test]
    fn only_http_and_https_with_valid_methods_and_headers() {
        let client = reqwest::Client::new();
        let ftp = params(serde_json::json!({"url": "ftp://127.0.0.1/x"}));
        assert!(matches!(
            build(&client, &ftp),
            Err(HttpError::BadScheme { .. })
        ));
        let relative = params(serde_json::json!({"url": "/x"}));
        assert!(matches!(
            build(&client, &relative),
            Err(HttpError::BadUrl { .. })
        ));
        let method = params(serde_json::json!({"method": "GE T"}));
        assert!(matches!(
            build(&client, &method),
            Err(HttpError::BadMethod(_))
        ));
        let header = params(serde_json::json!({"headers": [{"name": "a b", "value": "v"}]}));
        assert!(matches!(
            build(&client, &header),
            Err(HttpError::BadHeader { .. })
        ));
        let body = params(serde_json::json!({"method": "POST", "bodyBase64": "!!"}));
        assert!(matches!(build(&client, &body), Err(HttpError::BadBody(_))));
        let good = params(serde_json::json!({"url": "https://example.test/a?b=1"}));
        assert!(build(&client, &good).is_ok());
    }
}
