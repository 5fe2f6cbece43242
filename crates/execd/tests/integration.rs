//! The `execd` binary's integration tests: `serve`, `run`, `shell`, `cp`,
//! `bench` and the exec wrapper, run as programs.
//!
//! One test binary, each file below a module of it: one binary per file
//! linked every dependency dozens of times over (gigabytes of disk, minutes
//! of linking). Tests that need a process of their own are binaries of
//! their own (Cargo.toml's `[[test]]` list says why).

mod audit_log;
mod audit_rename;
mod auth_cli;
mod bench_smoke;
mod cli;
mod cli_parity;
mod client_cli;
mod codex_cli;
mod cp_streams;
mod exec_wrapper;
mod fs_watch_serve;
mod inherited_fds;
mod named_env_cli;
mod named_env_cp;
mod network_proxy_serve;
mod orphans;
mod pid1;
mod run_reconnect;
mod serve_limits;
mod shell;
mod socket_activation;
mod stdio_client;
mod trace_context;
mod unprivileged_policy;
