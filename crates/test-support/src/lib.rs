//! What execd's test suites share, so that each test file holds only its
//! tests: a real server on a loopback port, in-process ([`server`]) or the
//! built `execd` binary ([`binary`]); a raw JSON-RPC WebSocket client that
//! checks every process event it sees ([`ws_client`], [`wire`]); both
//! environment backends and the [`both_backends!`] macro ([`backends`]);
//! exec-policy gates and runs ([`policy`]); a fault-injecting TCP proxy that
//! cuts and stalls connections ([`proxy`]); a loopback HTTP host for
//! network-policy trees to reach ([`http_host`]); process, zombie and descriptor
//! checks ([`procs`]); scratch files and noise ([`files`]); and hand-built
//! tar streams ([`tar_entries`]). Dev-only: only `[dev-dependencies]` may
//! name this crate.
//! No mocks, no sleeps standing in for events, and every wait is bounded by
//! [`TIMEOUT`] or [`RUN_TIMEOUT`].

pub mod backends;
pub mod binary;
pub mod files;
pub mod http_host;
pub mod policy;
pub mod procs;
pub mod proxy;
pub mod server;
pub mod tar_entries;
pub mod tls;
pub mod wire;
pub mod ws_client;

use std::time::Duration;

pub use backends::{collect_in_time, process_params, write_stdin, Backend, BackendGuard};
pub use binary::{output_of, stderr_of, Execd, ExecdServer, JsonLog, JsonLogServer};
pub use files::{noise, unique_name, wait_only, TempDir};
pub use http_host::{closing_reply, HttpHost};
pub use procs::{eventually, is_alive, pid_in_file, pids_in, wait_dead, Watched};
pub use proxy::{quick_reconnect, Direction, FaultProxy, Proxied};
pub use server::{bind_server, connected, fast_table, start_server, start_server_with};
pub use tar_entries::{send_tree, tar_entry, through_symlink};
pub use wire::{b64, bash, basic_env, pty_params, start_params, stdin_params, unb64};
pub use ws_client::{Client, Collected};

/// Bounds one step: a frame, an event, a line of output, a process's death.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Bounds a whole command run to its end (`execd run`, `execd cp`, a
/// policied process tree until it closed).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);
