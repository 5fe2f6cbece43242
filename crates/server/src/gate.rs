//! The connection's side of exec decisions: `ask` becomes a server→client
//! `exec/approve` request (answered through [`ConnectionGate::answer`] when
//! the client's response frame arrives) and every decision an `exec/decision`
//! notification (and an audit event). A client that is gone answers nothing,
//! which denies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use execd_policy::decision::ExecGate;
use execd_protocol::policy::{
    Answer, ApproveParams, ApproveResult, DecisionParams, APPROVE, DECISION,
};
use execd_protocol::RpcError;
use execd_transport::outbox::Outbox;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tracing::debug;

use crate::rpc;

type Waiters = HashMap<i64, oneshot::Sender<Result<Value, RpcError>>>;

pub struct ConnectionGate {
    outbox: Arc<Outbox>,
    /// The session, for the audit trail.
    session: String,
    waiting: Mutex<Waiters>,
    next_id: AtomicI64,
}

impl ConnectionGate {
    pub fn new(outbox: Arc<Outbox>, session: String) -> Arc<ConnectionGate> {
        Arc::new(ConnectionGate {
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
    /// request of ours has that id.
    pub fn answer(&self, id: i64, result: Result<Value, RpcError>) -> bool {
        match self.waiting().remove(&id) {
            Some(waiter) => {
                let _ = waiter.send(result);
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl ExecGate for ConnectionGate {
    async fn ask(&self, request: ApproveParams) -> Option<Answer> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(id, tx);
        let frame = json!({"id": id, "method": APPROVE, "params": request}).to_string();
        if !self.outbox.send(frame).await {
            self.waiting().remove(&id);
            return None;
        }
        // Dropped (connection closing) or an error reply both mean no.
        let answer = rx.await.ok()?.ok()?;
        match serde_json::from_value::<ApproveResult>(answer) {
            Ok(result) => Some(result.decision),
            Err(err) => {
                debug!(%err, "malformed exec/approve answer; denying");
                None
            }
        }
    }

    async fn report(&self, decision: DecisionParams) {
        crate::audit::exec_decision(&self.session, &decision);
        self.outbox
            .send(rpc::notification(DECISION, decision))
            .await;
    }
}

impl Drop for ConnectionGate {
    fn drop(&mut self) {
        self.waiting().clear();
    }
}
