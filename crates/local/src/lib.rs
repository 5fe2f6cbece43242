//! This machine as an execd environment.
//!
//! - [`backend`]: `LocalBackend`, the process operations behind every
//!   `process/*` method (the server's process handlers adapt it).
//! - [`environment`]: `LocalEnvironment`, the environment traits over it.
//! - [`filesystem`]: `LocalFileSystem`, the `FileSystem` trait over [`fs`].
//! - [`fs`]: the filesystem operations themselves (blocking).
//! - [`transfer`], [`tree`]: file and tar-tree streams (`open_read`,
//!   `open_write`), written under a temporary name ([`temp_file`]) and
//!   renamed into place; a fresh tree's small files by a few threads
//!   ([`tree_writers`]).
//! - [`env_policy`]: the child's environment under `envPolicy`.
//! - [`codex_sandbox`]: codex's `sandbox` profile as execd's sandbox.
//! - [`walk_params`]: `fs/walk`'s params and result around [`walk`].
//! - [`rename`]: `fs/rename` (one `rename(2)`).
//! - [`watch`]: `fs/watch` through inotify, into a coalescing queue.
//! - [`walk`], [`open_files`]: `fs/walk`, `fs/canonicalize` and the
//!   handles behind `fs/open` / `fs/readBlock` (codex dialect).

pub mod backend;
pub mod codex_sandbox;
pub mod env_policy;
pub mod environment;
pub mod filesystem;
pub mod fs;
pub mod open_files;
pub mod rename;
pub mod temp_file;
pub mod transfer;
pub mod tree;
pub mod tree_writers;
pub mod walk;
pub mod walk_params;
pub mod watch;

pub use backend::LocalBackend;
pub use environment::LocalEnvironment;
pub use execd_process::table::TableConfig;
pub use filesystem::LocalFileSystem;
