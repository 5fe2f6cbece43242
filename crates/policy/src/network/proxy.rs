//! One proxied connection, from its request to its end: read the request,
//! decide (rules; private addresses; remembered answers; the owner's gate
//! for `ask`, with the policy's timeout), report the decision, and only
//! then resolve and connect upstream; relay; tell the gate it ended. A
//! denied host is never resolved nor connected to. Every refusal is an
//! HTTP response whose body says why, naming the host, the rule or the
//! limit.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use execd_protocol::network::{
    ConnectionSummary, NetworkAnswer, NetworkApproveParams, NetworkDecidedBy,
    NetworkDecisionParams, NetworkProtocol, NetworkRule, NetworkVerdict,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::guard::NetworkGuard;
use super::head::{read_request, HeadError, Request};
use super::owner;
use super::relay::{relay, Carried};
use super::rules::{is_private, match_rules};
use crate::decision::DEFAULT_ASK_TIMEOUT;

/// What was decided for one request.
struct Decided {
    answer: NetworkAnswer,
    decided_by: NetworkDecidedBy,
    rule: Option<NetworkRule>,
    reason: Option<String>,
    /// Private addresses may be reached: a rule names the host exactly, or
    /// the client approved this very host.
    private_ok: bool,
}

/// Over the connection bound: answer `503` without blocking and close.
pub fn refuse_busy(guard: &NetworkGuard, stream: TcpStream) {
    let body = format!(
        "execd proxy: too many connections open for this process (limit {}, execd serve --max-proxy-connections)\n",
        guard.limits.max_connections
    );
    let _ = stream.try_write(response(503, "Service Unavailable", &body).as_bytes());
    refused(guard, Instant::now(), "too many connections".into());
}

/// A connection refused before it named a target (no host to report).
fn refused(guard: &NetworkGuard, started: Instant, end: String) {
    guard.gate.connection_ended(&ConnectionSummary {
        process_id: guard.process_id.clone(),
        host: String::new(),
        port: 0,
        protocol: NetworkProtocol::Connect,
        decision: NetworkAnswer::Deny,
        upstream: None,
        bytes_up: 0,
        bytes_down: 0,
        duration_ms: started.elapsed().as_millis() as u64,
        end,
    });
}

fn response(status: u16, reason: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\nX-Execd-Proxy: {status}\r\n\r\n{body}",
        body.len()
    )
}

async fn reply(stream: &mut TcpStream, status: u16, reason: &str, body: &str) {
    let text = response(status, reason, body);
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(text.as_bytes())).await;
    let _ = stream.shutdown().await;
}

pub async fn serve_connection(guard: &NetworkGuard, mut client: TcpStream, peer: SocketAddr) {
    let started = Instant::now();
    let request = match read_request(&mut client, guard.limits.idle_timeout).await {
        Ok(request) => request,
        Err(HeadError::Closed) => return,
        Err(err) => {
            let status = match err {
                HeadError::TooLarge => (431, "Request Header Fields Too Large"),
                HeadError::Timeout(_) => (408, "Request Timeout"),
                HeadError::Unsupported(_) => (501, "Not Implemented"),
                _ => (400, "Bad Request"),
            };
            reply(
                &mut client,
                status.0,
                status.1,
                &format!("execd proxy: {err}\n"),
            )
            .await;
            refused(guard, started, format!("refused: {err}"));
            return;
        }
    };
    let mut decided = decide(guard, &request, peer).await;
    // Resolved only once allowed; a name that reaches only private
    // addresses needs a rule naming it (no DNS rebinding to the host).
    let mut addresses = Vec::new();
    if decided.answer == NetworkAnswer::Allow {
        match resolve(guard, &request, decided.private_ok).await {
            Ok(found) => addresses = found,
            Err(Refusal::Private(reason)) => {
                decided.answer = NetworkAnswer::Deny;
                decided.decided_by = NetworkDecidedBy::PrivateAddress;
                decided.reason = Some(reason);
            }
            Err(Refusal::Failed(reason)) => {
                report(guard, &request, &decided).await;
                reply(
                    &mut client,
                    502,
                    "Bad Gateway",
                    &format!("execd proxy: {reason}\n"),
                )
                .await;
                ended(
                    guard,
                    &request,
                    &decided,
                    None,
                    Carried::default(),
                    started,
                    reason,
                );
                return;
            }
        }
    }
    report(guard, &request, &decided).await;
    if decided.answer == NetworkAnswer::Deny {
        let why = decided.reason.clone().unwrap_or_default();
        let body = format!(
            "execd proxy: connection to {}:{} denied by the network policy ({why})\n",
            request.host, request.port
        );
        reply(&mut client, 403, "Forbidden", &body).await;
        ended(
            guard,
            &request,
            &decided,
            None,
            Carried::default(),
            started,
            "denied".into(),
        );
        return;
    }
    let upstream = match connect(guard, &addresses).await {
        Ok(upstream) => upstream,
        Err(reason) => {
            let body = format!(
                "execd proxy: cannot connect to {}:{}: {reason}\n",
                request.host, request.port
            );
            reply(&mut client, 502, "Bad Gateway", &body).await;
            ended(
                guard,
                &request,
                &decided,
                None,
                Carried::default(),
                started,
                format!("connect failed: {reason}"),
            );
            return;
        }
    };
    let upstream_address = upstream.peer_addr().ok().map(|a| a.to_string());
    let (carried, end) = match start_relay(guard, client, upstream, request_parts(&request)).await {
        Some((carried, end)) => (carried, end.as_str().to_string()),
        None => (Carried::default(), "error".to_string()),
    };
    ended(
        guard,
        &request,
        &decided,
        upstream_address,
        carried,
        started,
        end,
    );
}

/// What the relay needs from the request: the bytes to send upstream
/// first, and whether the program waits for `200 Connection established`.
fn request_parts(request: &Request) -> (Vec<u8>, bool) {
    match &request.upstream_head {
        Some(head) => {
            let mut first = head.clone();
            first.extend_from_slice(&request.rest);
            (first, false)
        }
        None => (request.rest.clone(), true),
    }
}

async fn start_relay(
    guard: &NetworkGuard,
    mut client: TcpStream,
    mut upstream: TcpStream,
    (first, tunnel): (Vec<u8>, bool),
) -> Option<(Carried, super::relay::RelayEnd)> {
    let idle = guard.limits.idle_timeout;
    if tunnel {
        let established = b"HTTP/1.1 200 Connection established\r\n\r\n";
        tokio::time::timeout(idle, client.write_all(established))
            .await
            .ok()?
            .ok()?;
    }
    if !first.is_empty() {
        tokio::time::timeout(idle, upstream.write_all(&first))
            .await
            .ok()?
            .ok()?;
    }
    let mut result = relay(
        client,
        upstream,
        idle,
        guard.limits.max_bytes_per_connection,
    )
    .await;
    result.0.up += first.len() as u64;
    Some(result)
}

async fn decide(guard: &NetworkGuard, request: &Request, peer: SocketAddr) -> Decided {
    let matched = match_rules(&guard.policy, &request.host, request.port);
    let literal = request.host.parse::<IpAddr>().ok();
    if literal.is_some_and(is_private) && !matched.names_host {
        return Decided {
            answer: NetworkAnswer::Deny,
            decided_by: NetworkDecidedBy::PrivateAddress,
            rule: None,
            reason: Some(format!(
                "{} is a private, loopback or link-local address and no rule names it",
                request.host
            )),
            private_ok: false,
        };
    }
    let by_rule = if matched.rule.is_some() {
        NetworkDecidedBy::Rule
    } else {
        NetworkDecidedBy::Default
    };
    let rule_reason = |verdict: &str| match &matched.rule {
        Some(rule) => format!(
            "rule {:?} port {} says {verdict}",
            rule.host,
            port_text(rule.port)
        ),
        None => format!("the policy's default is {verdict}"),
    };
    match matched.verdict {
        NetworkVerdict::Allow => Decided {
            answer: NetworkAnswer::Allow,
            decided_by: by_rule,
            reason: Some(rule_reason("allow")),
            rule: matched.rule,
            private_ok: matched.names_host,
        },
        NetworkVerdict::Deny => Decided {
            answer: NetworkAnswer::Deny,
            decided_by: by_rule,
            reason: Some(rule_reason("deny")),
            rule: matched.rule,
            private_ok: false,
        },
        NetworkVerdict::Ask => ask(guard, request, peer, matched.rule).await,
    }
}

fn port_text(port: Option<u16>) -> String {
    port.map_or_else(|| "any".to_string(), |p| p.to_string())
}

async fn ask(
    guard: &NetworkGuard,
    request: &Request,
    peer: SocketAddr,
    rule: Option<NetworkRule>,
) -> Decided {
    if let Some(answer) = guard.remembered(&request.host, request.port) {
        return Decided {
            answer,
            decided_by: NetworkDecidedBy::Remembered,
            rule,
            reason: Some("answered earlier for the rest of this process".into()),
            private_ok: true,
        };
    }
    let tree_pid = guard.tree_pid;
    let found = tokio::task::spawn_blocking(move || owner::find(tree_pid, peer))
        .await
        .ok()
        .flatten();
    let (pid, argv) = match found {
        Some((pid, argv)) => (Some(pid), argv),
        None => (None, guard.tree_argv.clone()),
    };
    let params = NetworkApproveParams {
        process_id: guard.process_id.clone(),
        host: request.host.clone(),
        port: request.port,
        protocol: request.protocol,
        pid,
        argv,
    };
    let timeout = guard
        .policy
        .ask_timeout_ms
        .map_or(DEFAULT_ASK_TIMEOUT, Duration::from_millis);
    let asked = tokio::time::timeout(
        timeout,
        guard.gate.ask_network(params, guard.policy.dialect),
    )
    .await;
    match asked {
        Ok(Some(result)) => {
            if result.for_process {
                guard.remember(&request.host, request.port, result.decision);
            }
            Decided {
                answer: result.decision,
                decided_by: NetworkDecidedBy::Client,
                rule,
                reason: Some(format!(
                    "the client answered {}{}",
                    answer_text(result.decision),
                    if result.for_process {
                        " for the rest of the process"
                    } else {
                        ""
                    }
                )),
                private_ok: true,
            }
        }
        Ok(None) => Decided {
            answer: NetworkAnswer::Deny,
            decided_by: NetworkDecidedBy::Timeout,
            rule,
            reason: Some("the client gave no answer (gone, refused or malformed)".into()),
            private_ok: false,
        },
        Err(_) => Decided {
            answer: NetworkAnswer::Deny,
            decided_by: NetworkDecidedBy::Timeout,
            rule,
            reason: Some(format!(
                "the client did not answer within {} ms",
                timeout.as_millis()
            )),
            private_ok: false,
        },
    }
}

fn answer_text(answer: NetworkAnswer) -> &'static str {
    match answer {
        NetworkAnswer::Allow => "allow",
        NetworkAnswer::Deny => "deny",
    }
}

enum Refusal {
    /// Only private addresses, and nothing allows them.
    Private(String),
    /// Resolution failed.
    Failed(String),
}

async fn resolve(
    guard: &NetworkGuard,
    request: &Request,
    private_ok: bool,
) -> Result<Vec<SocketAddr>, Refusal> {
    let target = (request.host.as_str(), request.port);
    let found: Vec<SocketAddr> = match tokio::time::timeout(
        guard.limits.connect_timeout,
        tokio::net::lookup_host(target),
    )
    .await
    {
        Ok(Ok(found)) => found.collect(),
        Ok(Err(err)) => {
            return Err(Refusal::Failed(format!(
                "cannot resolve {}: {err}",
                request.host
            )))
        }
        Err(_) => {
            return Err(Refusal::Failed(format!(
                "resolving {} timed out",
                request.host
            )))
        }
    };
    if private_ok {
        return Ok(found);
    }
    let public: Vec<SocketAddr> = found
        .iter()
        .copied()
        .filter(|a| !is_private(a.ip()))
        .collect();
    if public.is_empty() && !found.is_empty() {
        return Err(Refusal::Private(format!(
            "{} resolves only to private, loopback or link-local addresses ({}) and no rule names it",
            request.host,
            found.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    if public.is_empty() {
        return Err(Refusal::Failed(format!("{} has no address", request.host)));
    }
    Ok(public)
}

async fn connect(guard: &NetworkGuard, addresses: &[SocketAddr]) -> Result<TcpStream, String> {
    let mut last = String::from("no address");
    for address in addresses {
        match tokio::time::timeout(guard.limits.connect_timeout, TcpStream::connect(address)).await
        {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(err)) => last = format!("{address}: {err}"),
            Err(_) => last = format!("{address}: timed out"),
        }
    }
    Err(last)
}

async fn report(guard: &NetworkGuard, request: &Request, decided: &Decided) {
    let decision = NetworkDecisionParams {
        process_id: guard.process_id.clone(),
        host: request.host.clone(),
        port: request.port,
        protocol: request.protocol,
        decision: decided.answer,
        decided_by: decided.decided_by,
        rule: decided.rule.clone(),
        reason: decided.reason.clone(),
    };
    guard
        .gate
        .report_network(decision, guard.policy.dialect)
        .await;
}

fn ended(
    guard: &NetworkGuard,
    request: &Request,
    decided: &Decided,
    upstream: Option<String>,
    carried: Carried,
    started: Instant,
    end: String,
) {
    guard.gate.connection_ended(&ConnectionSummary {
        process_id: guard.process_id.clone(),
        host: request.host.clone(),
        port: request.port,
        protocol: request.protocol,
        decision: decided.answer,
        upstream,
        bytes_up: carried.up,
        bytes_down: carried.down,
        duration_ms: started.elapsed().as_millis() as u64,
        end,
    });
}
