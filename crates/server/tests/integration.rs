//! The server's integration tests: the wire protocol against a real server
//! over a real socket.
//!
//! One test binary, each file below a module of it: one binary per file
//! linked every dependency dozens of times over (gigabytes of disk, minutes
//! of linking). Tests that need a process of their own are binaries of
//! their own (Cargo.toml's `[[test]]` list says why).

mod bad_input;
mod codex_dialect;
mod codex_fs;
mod codex_http;
mod codex_limits;
mod filesystem;
mod flow_control;
mod fs_limits;
mod fs_metrics_new_methods;
mod fs_watch_path_bound;
mod handshake;
mod health_metrics;
mod limits;
mod network_codex;
mod parse_params_props;
mod processes;
mod resume;
mod set_metadata;
mod smoke;
mod start_burst;
mod start_cwd;
