//! The connection's side of exec and network decisions: `ask` becomes a
//! server→client `exec/approve` (or `network/approve`, or codex's
//! `network/policyRequest`) request, answered through
//! [`ConnectionGate::answer`] when the client's response frame arrives, and
//! every decision an `exec/decision` (`network/decision`,
//! `network/policyDecision`) notification and an audit event. A client that
//! is gone answers nothing, which denies at once; an ask that times out
//! leaves nothing behind; at most [`MAX_PENDING_ASKS`] wait at a time (more
//! are denied). A resumed session sends the waiting ones again
//! ([`ConnectionGate::ask_again`]): the lost connection may have swallowed
//! them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use execd_policy::decision::ExecGate;
use execd_protocol::codex::network as cnet;
use execd_protocol::network::{
    self, ConnectionSummary, NetworkApproveParams, NetworkApproveResult, NetworkDecisionParams,
    NetworkDialect,
};
use execd_protocol::policy::{
    Answer, ApproveParams, ApproveResult, DecisionParams, APPROVE, DECISION,
};
use execd_protocol::RpcError;
use execd_transport::outbox::{Outbox, Wire};
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use tracing::debug;

use crate::{codex_network, rpc};

/// A pending request: its frame (sent again after a resume) and where its
/// result goes (`None`: an error reply, which denies); each asker decodes
/// its own result type.
struct Waiter {
    frame: Arc<str>,
    answer: oneshot::Sender<Option<Box<RawValue>>>,
}

type Waiters = HashMap<i64, Waiter>;

/// `exec/approve` requests of one connection waiting for an answer.
pub const MAX_PENDING_ASKS: usize = 256;

/// One waiting ask's entry, removed however the ask ends (answered, timed
/// out and dropped, connection gone).
struct Waiting<'a> {
    gate: &'a ConnectionGate,
    id: i64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.gate.waiting().remove(&self.id);
    }
}

pub struct ConnectionGate {
    outbox: Arc<Outbox<Wire>>,
    /// The session, for the audit trail.
    session: String,
    waiting: Mutex<Waiters>,
    next_id: AtomicI64,
    metrics: Arc<crate::metrics::Metrics>,
}

impl ConnectionGate {
    pub fn new(
        outbox: Arc<Outbox<Wire>>,
        session: String,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<ConnectionGate> {
        Arc::new(ConnectionGate {
            metrics,
            outbox,
            session,
            waiting: Mutex::new(HashMap::new()),
            next_id: AtomicI64::new(1),
        })
    }

    fn waiting(&self) -> MutexGuard<'_, Waiters> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A response from the client to one of our requests. False if no
    /// request of ours has that id. The result is decoded only then.
    pub fn answer(&self, id: i64, result: Result<&RawValue, RpcError>) -> bool {
        let Some(waiter) = self.waiting().remove(&id) else {
            return false;
        };
        // An error reply means no.
        let _ = waiter.answer.send(result.ok().map(|raw| raw.to_owned()));
        true
    }

    /// Send every request still waiting for its answer again, oldest first,
    /// with its original id: the session was just resumed, and a request
    /// written to the lost connection may never have reached the client.
    /// A client answers a repeated id once (see docs/PROTOCOL.md).
    pub async fn ask_again(&self) {
        let mut waiting: Vec<(i64, Arc<str>)> = self
            .waiting()
            .iter()
            .map(|(id, waiter)| (*id, waiter.frame.clone()))
            .collect();
        waiting.sort_unstable_by_key(|(id, _)| *id);
        for (id, frame) in waiting {
            debug!(id, "asking again after a resume");
            if !self.outbox.send(frame.to_string()).await {
                return;
            }
        }
    }

    /// Send `method` with `params` to the client and wait for its result,
    /// decoded as `T`; `None` for no usable answer (over the bound, an
    /// error reply, a malformed result, the connection gone).
    async fn request<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: impl serde::Serialize,
    ) -> Option<T> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let frame: Arc<str> = json!({"id": id, "method": method, "params": params})
            .to_string()
            .into();
        {
            let mut waiting = self.waiting();
            if waiting.len() >= MAX_PENDING_ASKS {
                debug!(method, "too many requests to the client waiting; denying");
                return None;
            }
            waiting.insert(
                id,
                Waiter {
                    frame: frame.clone(),
                    answer: tx,
                },
            );
        }
        let _entry = Waiting { gate: self, id };
        if !self.outbox.send(frame.to_string()).await {
            return None;
        }
        // The connection closing, or no usable answer, both mean no.
        let raw = tokio::select! {
            answer = rx => answer.ok()??,
            _ = self.outbox.closed() => return None,
        };
        serde_json::from_str::<T>(raw.get())
            .map_err(|err| debug!(%err, method, "malformed answer; denying"))
            .ok()
    }
}

#[async_trait]
impl ExecGate for ConnectionGate {
    async fn ask(&self, request: ApproveParams) -> Option<Answer> {
        let result: ApproveResult = self.request(APPROVE, request).await?;
        Some(result.decision)
    }

    async fn report(&self, decision: DecisionParams) {
        crate::audit::exec_decision(&self.session, &decision);
        self.metrics.exec_decision(decision.decision);
        self.outbox
            .send(rpc::notification(DECISION, decision))
            .await;
    }

    async fn ask_network(
        &self,
        request: NetworkApproveParams,
        dialect: NetworkDialect,
    ) -> Option<NetworkApproveResult> {
        match dialect {
            NetworkDialect::Execd => self.request(network::APPROVE, request).await,
            NetworkDialect::Codex => {
                let result: cnet::PolicyRequestResult = self
                    .request(cnet::POLICY_REQUEST, codex_network::request(&request))
                    .await?;
                Some(codex_network::answer(&result.decision))
            }
        }
    }

    async fn report_network(&self, decision: NetworkDecisionParams, dialect: NetworkDialect) {
        let frame = match dialect {
            NetworkDialect::Execd => rpc::notification(network::DECISION, &decision),
            NetworkDialect::Codex => {
                rpc::notification(cnet::POLICY_DECISION, codex_network::decision(&decision))
            }
        };
        self.outbox.send(frame).await;
    }

    fn connection_ended(&self, summary: &ConnectionSummary) {
        crate::audit::network_connection(&self.session, summary);
    }
}

impl ConnectionGate {
    /// `exec/approve` requests waiting for the client.
    pub fn pending_asks(&self) -> usize {
        self.waiting().len()
    }
}

impl Drop for ConnectionGate {
    fn drop(&mut self) {
        self.waiting().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use tokio_util::sync::PollSender;

    fn request(n: usize) -> ApproveParams {
        ApproveParams {
            process_id: format!("p{n}"),
            pid: 1,
            path: "/bin/true".into(),
            argv: vec!["true".into()],
            cwd: "/".into(),
            escalation: false,
        }
    }

    /// A gate whose frames go to a channel nobody answers from.
    fn silent_gate() -> (Arc<ConnectionGate>, tokio::sync::mpsc::Receiver<Wire>) {
        let (sink, frames) = tokio::sync::mpsc::channel::<Wire>(4 * MAX_PENDING_ASKS);
        (
            ConnectionGate::new(
                Outbox::new(PollSender::new(sink)),
                "test".into(),
                Default::default(),
            ),
            frames,
        )
    }

    #[tokio::test]
    async fn timed_out_asks_leave_nothing_behind() {
        let (gate, _frames) = silent_gate();
        for n in 0..(MAX_PENDING_ASKS * 2) {
            let asked = tokio::time::timeout(Duration::from_millis(1), gate.ask(request(n))).await;
            assert!(asked.is_err(), "nobody answers");
        }
        assert_eq!(gate.pending_asks(), 0);
    }

    #[tokio::test]
    async fn waiting_asks_are_bounded_and_the_rest_denied() {
        let (gate, _frames) = silent_gate();
        let mut waiting = Vec::new();
        for n in 0..MAX_PENDING_ASKS {
            let gate = gate.clone();
            waiting.push(tokio::spawn(async move { gate.ask(request(n)).await }));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while gate.pending_asks() < MAX_PENDING_ASKS && tokio::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.pending_asks(), MAX_PENDING_ASKS);
        let over = tokio::time::timeout(Duration::from_secs(5), gate.ask(request(0))).await;
        assert_eq!(over, Ok(None), "over the bound: denied at once");
        // The connection closing answers every waiting ask with no.
        gate.outbox.close();
        for task in waiting {
            let answer = tokio::time::timeout(Duration::from_secs(10), task).await;
            assert_eq!(answer.expect("answered in time").expect("task"), None);
        }
        assert_eq!(gate.pending_asks(), 0);
    }
}
