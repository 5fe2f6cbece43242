//! Deciding what a process tree may run, and confining it.
//!
//! - [`decision`]: matching an exec against a policy's rules, and the
//!   [`ExecGate`](decision::ExecGate) through which the owner is asked about
//!   `ask` verdicts and told every decision.
//! - [`tree`]: one policied tree's guard and the state its deciders share.
//! - [`exec_guard`]: holding every exec of the tree in the kernel (seccomp
//!   user notification) until it is decided.
//! - [`escalation`]: the wrapper protocol (the `LD_PRELOAD` shim in
//!   `shim/execd_preload.c`, or `execd exec-wrapper`) that can run a command
//!   outside the sandbox.
//! - [`child`]: what a policied child installs between fork and exec.
//! - [`fdpass`]: the socketpairs and `SCM_RIGHTS` passing these use.
//! - [`network`]: a tree's network policy: the proxy that is its only way
//!   out of its network namespace, deciding each connection.
//! - [`sandbox`]: the opt-in per-process sandbox (Landlock, network
//!   namespace, capabilities, `no_new_privs`).
//!
//! Nothing here spawns the program itself: `execd-process` asks this crate
//! what to install in the child.

pub mod child;
pub mod decision;
pub mod escalation;
pub mod exec_guard;
pub mod fdpass;
pub mod network;
pub mod sandbox;
pub mod tree;
