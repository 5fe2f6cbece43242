//! This machine as an execd environment.
//!
//! - [`backend`]: `LocalBackend`, the process operations behind every
//!   `process/*` method (the server's process handlers adapt it).
//! - [`environment`]: `LocalEnvironment`, the environment traits over it.
//! - [`filesystem`]: `LocalFileSystem`, the `FileSystem` trait over [`fs`].
//! - [`fs`]: the filesystem operations themselves (blocking).

pub mod backend;
pub mod environment;
pub mod filesystem;
pub mod fs;

pub use backend::LocalBackend;
pub use environment::LocalEnvironment;
pub use execd_process::table::TableConfig;
pub use filesystem::LocalFileSystem;
