//! The connection's side of exec decisions: `ask` becomes a server→client
//! `exec/approve` request (answered through [`ConnectionGate::answer`] when
//! the client's response frame arrives) and every decision an `exec/decision`
//! notification. A client that is gone answers nothing, which denies.

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
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use tracing::debug;

use crate::rpc;

/// Each pending `exec/approve` and where its decision goes (`None`: no
/// usable answer, which denies).
type Waiters = HashMap<i64, oneshot::Sender<Option<Answer>>>;

pub struct ConnectionGate {
    outbox: Arc<Outbox>,
    waiting: Mutex<Waiters>,
    next_id: AtomicI64,
}

impl ConnectionGate {
    pub fn new(outbox: Arc<Outbox>) -> Arc<ConnectionGate> {
        Arc::new(ConnectionGate {
            outbox,
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
        let answer = result.ok().and_then(|raw| {
            serde_json::from_str::<ApproveResult>(raw.get())
                .map_err(|err| debug!(%err, "malformed exec/approve answer; denying"))
                .ok()
        });
        let _ = waiter.send(answer.map(|result| result.decision));
        true
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
        // Dropped (connection closing) or no usable answer both mean no.
        rx.await.ok()?
    }

    async fn report(&self, decision: DecisionParams) {
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
