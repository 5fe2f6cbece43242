//! The processes of one owner (a connection, or a local environment), keyed
//! by client-chosen ids: start, read, write, terminate, and cleanup.
//!
//! Closed records stay readable until more than `max_closed_records` have
//! piled up; then the oldest closed ones are evicted and their ids reusable.
//! Processes not yet closed are capped per table (`max_processes`) and
//! server-wide (the [`SharedBudget`] every table of a server shares).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use execd_protocol::process::WriteStatus;

use execd_policy::decision::ExecGate;
use execd_policy::network::{NetworkGuard, NetworkLimits};
use execd_policy::tree::TreeGuard;
use execd_protocol::network::NetworkPolicy;

use execd_protocol::limits::LimitExceeded;

use crate::budget::{ProcessSlot, SharedBudget};
use crate::output_log::{AckError, EventSink, ExitInfo, FlowState, OutputLog, ReadSnapshot};
use crate::process::Process;
use crate::spawn::{spawn, SpawnError, SpawnSpec};
use crate::stdin::StdinFull;

/// Tunables of a process table.
#[derive(Debug, Clone)]
pub struct TableConfig {
    /// Output retained per process for `process/read`; oldest chunks go first.
    pub retained_bytes_per_process: usize,
    /// Closed process records kept readable before the oldest are evicted.
    pub max_closed_records: usize,
    /// Time between SIGTERM and SIGKILL when terminating.
    pub terminate_grace: Duration,
    /// Processes of this table not yet closed (starts beyond are refused).
    pub max_processes: usize,
    /// Bytes queued for one process's stdin: a write that would pass it
    /// while something is queued is refused (see [`crate::stdin`]).
    pub max_stdin_queue_bytes: usize,
    /// Largest output window a start may ask for.
    pub max_output_window: u64,
    /// The bounds of each network-policied tree's proxy.
    pub network: NetworkLimits,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            retained_bytes_per_process: 4 * 1024 * 1024,
            max_closed_records: 256,
            terminate_grace: Duration::from_secs(2),
            max_processes: 256,
            max_stdin_queue_bytes: 8 * 1024 * 1024,
            max_output_window: 64 * 1024 * 1024,
            network: NetworkLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("process {0} already exists")]
    Duplicate(String),
    #[error("process table is shutting down")]
    ShuttingDown,
    #[error("outputWindow must be more than 0 bytes")]
    EmptyWindow,
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

/// Why `process/write` wrote nothing (statuses such as `stdinClosed` are
/// not errors).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    StdinFull(#[from] StdinFull),
}

#[derive(Debug, thiserror::Error)]
#[error("unknown process id {0}")]
pub struct UnknownProcess(pub String);

/// Why `process/ack` was refused.
#[derive(Debug, thiserror::Error)]
pub enum AckRefused {
    #[error(transparent)]
    Unknown(#[from] UnknownProcess),
    #[error(transparent)]
    Ahead(#[from] AckError),
}

/// One process as `process/list` shows it.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub id: Arc<str>,
    pub tty: bool,
    pub exit: Option<ExitInfo>,
    pub closed: bool,
    pub flow: FlowState,
}

#[derive(Debug, Default)]
struct TableState {
    processes: HashMap<Arc<str>, Arc<Process>>,
    /// Ids reserved by starts still in progress, with their slots.
    starting: HashMap<Arc<str>, ProcessSlot>,
    /// Ids in start order, for evicting the oldest closed records.
    order: VecDeque<Arc<str>>,
    /// What each process was started with (a hash of its canonical
    /// params, and the owner's epoch then), so an identical retried start
    /// can be told from a duplicate.
    fingerprints: HashMap<Arc<str>, (u64, u64)>,
    shutting_down: bool,
}

/// The processes of one owner.
pub struct ProcessTable {
    config: TableConfig,
    budget: Arc<SharedBudget>,
    /// Processes of this table not yet closed (their slots count it).
    live: Arc<AtomicUsize>,
    events: Arc<dyn EventSink>,
    gate: Arc<dyn ExecGate>,
    state: Mutex<TableState>,
}

impl std::fmt::Debug for ProcessTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessTable")
            .field("config", &self.config)
            .field("processes", &self.lock().processes.len())
            .finish()
    }
}

impl ProcessTable {
    /// Events of every process go to `events`, in seq order per process.
    /// Exec decisions of processes started with a policy go through `gate`.
    /// Process counts and retained output are also held against `budget`,
    /// which the other tables of the server share.
    pub fn new(
        config: TableConfig,
        budget: Arc<SharedBudget>,
        events: Arc<dyn EventSink>,
        gate: Arc<dyn ExecGate>,
    ) -> Self {
        ProcessTable {
            config,
            budget,
            live: Arc::new(AtomicUsize::new(0)),
            events,
            gate,
            state: Mutex::new(TableState::default()),
        }
    }

    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, TableState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: &str) -> Result<Arc<Process>, UnknownProcess> {
        self.lock()
            .processes
            .get(id)
            .cloned()
            .ok_or_else(|| UnknownProcess(id.to_string()))
    }

    /// Start a process under a fresh id.
    pub fn start(&self, id: &str, spec: &SpawnSpec) -> Result<Arc<Process>, StartError> {
        self.reserve(id)?;
        self.start_reserved(id, spec)
    }

    /// Remember what `id` was started with (see [`ProcessTable::fingerprint`]).
    pub fn set_fingerprint(&self, id: &str, fingerprint: (u64, u64)) {
        let mut state = self.lock();
        if state.processes.contains_key(id) || state.starting.contains_key(id) {
            state.fingerprints.insert(Arc::from(id), fingerprint);
        }
    }

    /// What the process (or start in progress) `id` was started with.
    pub fn fingerprint(&self, id: &str) -> Option<(u64, u64)> {
        self.lock().fingerprints.get(id).copied()
    }

    /// Every process of the table (closed records too), in start order.
    pub fn list(&self) -> Vec<ProcessInfo> {
        let state = self.lock();
        state
            .order
            .iter()
            .filter_map(|id| state.processes.get(id))
            .map(|process| {
                let log = process.log();
                ProcessInfo {
                    id: process.id().clone(),
                    tty: process.tty(),
                    exit: log.exit(),
                    closed: log.is_closed(),
                    flow: log.flow(),
                }
            })
            .collect()
    }

    /// The client consumed `id`'s events up to `seq`.
    pub fn ack(&self, id: &str, seq: u64) -> Result<(), AckRefused> {
        Ok(self.get(id)?.log().ack(seq)?)
    }

    /// Claim `id` for a start that will finish later (writes meanwhile
    /// answer `starting`).
    pub fn reserve(&self, id: &str) -> Result<(), StartError> {
        let mut state = self.lock();
        if state.shutting_down {
            return Err(StartError::ShuttingDown);
        }
        if state.processes.contains_key(id) || state.starting.contains_key(id) {
            return Err(StartError::Duplicate(id.to_string()));
        }
        let slot = self.budget.claim(&self.live, self.config.max_processes)?;
        state.starting.insert(Arc::from(id), slot);
        Ok(())
    }

    /// Start a process under an id claimed with [`ProcessTable::reserve`].
    /// May block until the program has exec'd (with an exec policy, until
    /// its first exec is decided).
    pub fn start_reserved(&self, id: &str, spec: &SpawnSpec) -> Result<Arc<Process>, StartError> {
        if !self.lock().starting.contains_key(id) {
            self.reserve(id)?;
        }
        let spawned = self
            .guard_for(id, spec)
            .and_then(|guard| Ok(spawn(spec, guard)?));
        let mut state = self.lock();
        let slot = state.starting.remove(id);
        let mut spawned = match spawned {
            Ok(spawned) => spawned,
            Err(err) => {
                state.fingerprints.remove(id);
                return Err(err);
            }
        };
        let slot = slot.ok_or(StartError::ShuttingDown)?;
        let id: Arc<str> = Arc::from(id);
        let log = OutputLog::with_budget(
            id.clone(),
            self.config.retained_bytes_per_process,
            self.budget.clone(),
        );
        log.set_window(spec.output_window);
        let proxy_listener = spawned.proxy_listener.take();
        let process = Process::start(
            id.clone(),
            spawned,
            log,
            slot,
            self.config.max_stdin_queue_bytes,
            self.events.clone(),
        );
        if state.shutting_down {
            process.kill();
        }
        if let (Some(listener), Some(policy)) = (proxy_listener, &spec.network_policy) {
            self.serve_network(&process, policy, listener, spec);
        }
        state.processes.insert(id.clone(), process.clone());
        state.order.push_back(id);
        self.evict_closed(&mut state);
        Ok(process)
    }

    /// Serve a network-policied tree's proxy until the process has closed.
    fn serve_network(
        &self,
        process: &Arc<Process>,
        policy: &NetworkPolicy,
        listener: std::os::fd::OwnedFd,
        spec: &SpawnSpec,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let guard = NetworkGuard::new(
            process.id(),
            policy.clone(),
            self.gate.clone(),
            self.config.network,
            process.pid(),
            spec.argv.clone(),
        );
        let process = process.clone();
        runtime.spawn(async move {
            let closed = async move { process.closed().await };
            guard.serve(listener, closed).await;
        });
    }

    fn guard_for(&self, id: &str, spec: &SpawnSpec) -> Result<Option<TreeGuard>, StartError> {
        let Some(policy) = &spec.exec_policy else {
            return Ok(None);
        };
        if !execd_policy::exec_guard::supported() {
            return Err(SpawnError::PolicyUnavailable.into());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|err| SpawnError::Setup {
            what: "the exec guard",
            source: std::io::Error::other(err.to_string()),
        })?;
        // Rules name programs through the tree's own PATH, which the client set.
        let search_path = spec
            .env
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        Ok(Some(TreeGuard::new(
            id,
            policy,
            &search_path,
            self.gate.clone(),
            runtime,
        )))
    }

    /// Evict the oldest closed records past `max_closed_records`. Cheap on
    /// every start: the closed records are counted from the live slots
    /// (a slot is freed only after its process closed, so the count never
    /// runs ahead), and the search for the oldest stops once enough went.
    fn evict_closed(&self, state: &mut TableState) {
        let unclosed = self
            .live
            .load(std::sync::atomic::Ordering::SeqCst)
            .saturating_sub(state.starting.len());
        let closed = state.processes.len().saturating_sub(unclosed);
        let mut excess = closed.saturating_sub(self.config.max_closed_records);
        let TableState {
            processes,
            order,
            fingerprints,
            ..
        } = state;
        let mut index = 0;
        while excess > 0 && index < order.len() {
            let is_closed = processes
                .get(&order[index])
                .is_some_and(|p| p.log().is_closed());
            if !is_closed {
                index += 1;
                continue;
            }
            if let Some(id) = order.remove(index) {
                processes.remove(&id);
                fingerprints.remove(&id);
            }
            excess -= 1;
        }
    }

    /// Retained output after `after_seq`; with `wait`, long-poll until there
    /// is something new or the time is up.
    pub async fn read(
        &self,
        id: &str,
        after_seq: u64,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<ReadSnapshot, UnknownProcess> {
        let process = self.get(id)?;
        let log = process.log();
        let mut version = log.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        while !log.has_news_after(after_seq) && !log.is_closed() {
            match tokio::time::timeout_at(deadline, version.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Ok(log.snapshot(after_seq, max_bytes))
    }

    /// Queue input; with `close_stdin`, EOF follows it. A start still in
    /// progress answers `starting`; a full stdin queue refuses the write
    /// (nothing is written, and stdin stays open).
    /// With a `write_id` the process remembers, the first result comes
    /// back and nothing is written.
    pub fn write(
        &self,
        id: &str,
        chunk: Bytes,
        close_stdin: bool,
        write_id: Option<&str>,
    ) -> Result<WriteStatus, WriteError> {
        if self.lock().starting.contains_key(id) {
            return Ok(WriteStatus::Starting);
        }
        let Ok(process) = self.get(id) else {
            return Ok(WriteStatus::UnknownProcess);
        };
        let write = || {
            // An empty chunk writes nothing and reports whether stdin is open.
            let status = process.write(chunk)?;
            if close_stdin {
                process.close_stdin();
            }
            Ok(status)
        };
        Ok(match write_id {
            Some(write_id) => process.write_once(write_id, write)?,
            None => write()?,
        })
    }

    /// Terminate a process tree; true if the process was running.
    pub fn terminate(&self, id: &str) -> bool {
        self.get(id)
            .map(|p| p.terminate(self.config.terminate_grace))
            .unwrap_or(false)
    }

    /// Terminate every process, wait (bounded) until all have closed, and
    /// refuse new starts.
    pub async fn shutdown(&self) {
        let processes: Vec<Arc<Process>> = {
            let mut state = self.lock();
            state.shutting_down = true;
            state.processes.values().cloned().collect()
        };
        for process in &processes {
            // Nobody will acknowledge their output any more.
            process.log().lift_window();
            process.terminate(self.config.terminate_grace);
        }
        let all_closed = async {
            for process in &processes {
                process.closed().await;
            }
        };
        // The grace task SIGKILLs stragglers; allow it time to take effect.
        let bound = self.config.terminate_grace + Duration::from_secs(5);
        if tokio::time::timeout(bound, all_closed).await.is_err() {
            tracing::warn!("some processes did not close within {bound:?} of shutdown");
        }
    }
}

impl Drop for ProcessTable {
    fn drop(&mut self) {
        // Last resort if the owner never called `shutdown`.
        for process in self.lock().processes.values() {
            process.kill();
        }
    }
}
