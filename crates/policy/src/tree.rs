//! One process tree under an exec policy: who decides its execs
//! ([`TreeGuard`]), and the state that the kernel guard (`exec_guard`) and
//! the escalation wrapper (`escalation`) share for it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use execd_protocol::policy::ExecPolicy;

use crate::decision::ExecGate;

/// Execs decided through the wrapper, which the kernel guard then lets through.
pub type Approved = Arc<Mutex<HashSet<(u32, String)>>>;

/// Process groups of escalated commands still running for one tree: every
/// signal to the tree goes to them too, so they are cleaned up with it.
pub type Escalated = Arc<Mutex<HashSet<i32>>>;

/// Who decides for one process tree.
#[derive(Clone)]
pub struct TreeGuard {
    pub process_id: String,
    pub policy: ExecPolicy,
    pub gate: Arc<dyn ExecGate>,
    pub runtime: tokio::runtime::Handle,
    /// Execs already decided through the wrapper (`escalation`).
    pub approved: Approved,
    /// Process groups of the tree's escalated commands.
    pub escalated: Escalated,
}

impl TreeGuard {
    /// A guard for tree `process_id`; its tasks run on `runtime`.
    pub fn new(
        process_id: &str,
        policy: ExecPolicy,
        gate: Arc<dyn ExecGate>,
        runtime: tokio::runtime::Handle,
    ) -> TreeGuard {
        TreeGuard {
            process_id: process_id.to_string(),
            policy,
            gate,
            runtime,
            approved: Approved::default(),
            escalated: Escalated::default(),
        }
    }
}
