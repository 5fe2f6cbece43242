//! The client library's integration tests: the Rust client and the environment
//! traits against real servers.
//!
//! One test binary, each file below a module of it: one binary per file
//! linked every dependency dozens of times over (gigabytes of disk, minutes
//! of linking). Tests that need a process of their own are binaries of
//! their own (Cargo.toml's `[[test]]` list says why).

mod abandoned_call;
mod approval_reconnecting;
mod auth;
mod close_reconnecting;
mod command;
mod command_network_policy;
mod environment;
mod exec_policy;
mod fs_watch_walk;
mod hostile_policy;
mod many_environments;
mod network_policy;
mod output_window;
mod program_lookup;
mod reconnect;
mod reconnect_catch_up;
mod reconnect_interactive;
mod transfer_interrupted;
mod transfer_streams;
mod tree_fresh;
