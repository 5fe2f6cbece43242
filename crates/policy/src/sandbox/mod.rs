//! The opt-in per-process sandbox: what this kernel supports ([`features`]),
//! turning a [`SandboxSpec`] into kernel objects in the parent
//! ([`PreparedSandbox::prepare`]), and entering the sandbox in the forked
//! child before `exec` ([`PreparedSandbox::apply_in_child`]). This file owns
//! the errors, the once-per-process probe, the allowed devices and the order
//! in which the child enters each mechanism; the mechanisms themselves live
//! beside it: `landlock` (the filesystem ruleset and signal scoping), `netns`
//! (the network namespace) and `caps` (the capability sets).
//!
//! Enforcement, inherited by every descendant:
//! - `no_new_privs`, always (setuid/file-capability binaries gain nothing).
//! - `readOnly` (the default): a Landlock domain that allows reading and
//!   executing everything, writing only beneath the writable roots, and
//!   writing (and terminal ioctls) to a few devices: [`ALLOWED_DEVICES`].
//! - `network: false` (the default): a fresh network namespace whose only
//!   interface is its own loopback, brought up; with a network policy the
//!   child also makes the proxy's listening socket there and sends it to us
//!   ([`PreparedSandbox::send_proxy_listener`], served by [`crate::network`]).
//! - With Landlock ABI 6+, whenever a Landlock domain is created: signals
//!   may only be sent to processes of the same sandbox.
//! - No capabilities in the exec'd program: bounding and ambient sets emptied.
//!
//! The parent does everything that allocates (validation, opening paths,
//! building the ruleset); the child only makes raw, async-signal-safe
//! syscalls: no allocation, no lock, no logging, no panic.

use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;

pub use execd_protocol::sandbox::{SandboxFeatures, SandboxSpec};

mod caps;
mod landlock;
mod netns;
#[cfg(test)]
mod tests;

use self::landlock::{LandlockRuleset, WritableRoot};

/// Devices that stay writable (with `ioctl`) under `readOnly`: the data sinks
/// and sources shells redirect to (`/dev/null`, `/dev/zero`) and terminals
/// (`/dev/tty`, new PTYs through `/dev/ptmx`, and their `/dev/pts/*` ends).
/// Missing ones are skipped. Not `/dev/shm`: it is shared with the host;
/// list it in `writableRoots` for programs that need POSIX shared memory.
pub const ALLOWED_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
];

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox writable root {0:?} must be an absolute path")]
    RelativeRoot(String),
    #[error("sandbox writable root {0:?} does not exist")]
    MissingRoot(String),
    #[error("sandbox writable root {path:?} cannot be opened: {source}")]
    UnusableRoot { path: String, source: io::Error },
    #[error("sandbox writableRoots {0:?} need readOnly true (with readOnly false everything is writable)")]
    RootsWithoutReadOnly(Vec<String>),
    #[error("sandbox feature unavailable: {0}")]
    Unsupported(String),
    #[error("networkPolicy needs sandbox.network false: the proxy is the tree's only way out of a network namespace of its own")]
    PolicyNeedsOwnNetwork,
    #[error("cannot build the Landlock ruleset ({what}): {source}")]
    Landlock { what: String, source: io::Error },
}

impl SandboxError {
    /// True when the request was at fault (a bad spec, or a feature the
    /// client could have seen missing in [`features`]) rather than the machine.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, SandboxError::Landlock { .. })
    }
}

/// What the probes found, with the reason for each missing feature.
struct Probe {
    landlock: Result<u32, String>,
    network_namespace: Result<(), String>,
}

fn probe() -> &'static Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(|| Probe {
        landlock: landlock::probe_abi().map_err(|e| format!("landlock_create_ruleset: {e}")),
        network_namespace: netns::probe(),
    })
}

/// What this kernel (and our privileges) support. Probed once per process:
/// the Landlock ABI with `landlock_create_ruleset(NULL, 0,
/// LANDLOCK_CREATE_RULESET_VERSION)`; network namespaces by checking that
/// `/proc/self/ns/net` exists and that a short-lived forked child can do
/// exactly what [`PreparedSandbox::apply_in_child`] does (`unshare(CLONE_NEWNET)`
/// and bring its loopback up), which needs `CAP_SYS_ADMIN` (and
/// `CAP_NET_ADMIN`).
pub fn features() -> SandboxFeatures {
    let probe = probe();
    SandboxFeatures {
        landlock: probe.landlock.is_ok(),
        landlock_abi: probe.landlock.as_ref().ok().copied(),
        network_namespace: probe.network_namespace.is_ok(),
        no_new_privs: true,
    }
}

/// A sandbox ready to be entered by a child: the Landlock ruleset (if any)
/// and whether to leave the network. Owns the ruleset descriptor, which is
/// close-on-exec (the kernel creates it so), so no child inherits it past
/// `exec`; keep this value alive until the spawn has returned (e.g. move it
/// into the `pre_exec` closure).
#[derive(Debug)]
pub struct PreparedSandbox {
    ruleset: Option<LandlockRuleset>,
    new_network_namespace: bool,
    /// Where the child sends the network proxy's listening socket, made in
    /// its new namespace (a network policy).
    proxy_socket: Option<RawFd>,
}

impl PreparedSandbox {
    /// Validate `spec` and build what the child needs. Runs in the parent.
    ///
    /// Fails with the offending path for a relative or missing writable
    /// root, and with [`SandboxError::Unsupported`] when the spec needs a
    /// feature [`features`] does not report: Landlock for `readOnly`, a
    /// network namespace for `network: false`.
    pub fn prepare(spec: &SandboxSpec) -> Result<PreparedSandbox, SandboxError> {
        if !spec.read_only && !spec.writable_roots.is_empty() {
            return Err(SandboxError::RootsWithoutReadOnly(
                spec.writable_roots.clone(),
            ));
        }
        let roots = spec
            .writable_roots
            .iter()
            .map(|root| WritableRoot::open(root))
            .collect::<Result<Vec<_>, _>>()?;

        let probe = probe();
        if spec.read_only {
            if let Err(reason) = &probe.landlock {
                return Err(SandboxError::Unsupported(format!(
                    "readOnly needs Landlock, which this kernel does not offer ({reason})"
                )));
            }
        }
        if !spec.network {
            if let Err(reason) = &probe.network_namespace {
                return Err(SandboxError::Unsupported(format!(
                    "network: false needs a new network namespace, which cannot be created here ({reason})"
                )));
            }
        }

        let ruleset = match probe.landlock {
            Ok(abi) => landlock::build_ruleset(abi, spec.read_only, &roots)?,
            Err(_) => None,
        };
        Ok(PreparedSandbox {
            ruleset,
            new_network_namespace: !spec.network,
            proxy_socket: None,
        })
    }

    /// Have the child, once in its new network namespace, make the network
    /// proxy's listening socket there (`127.0.0.1:`[`PROXY_PORT`]) and send
    /// it over `socket` (a connected unix socket the caller keeps open until
    /// the spawn returned). Fails when the spec keeps the host's network.
    ///
    /// [`PROXY_PORT`]: execd_protocol::network::PROXY_PORT
    pub fn send_proxy_listener(&mut self, socket: RawFd) -> Result<(), SandboxError> {
        if !self.new_network_namespace {
            return Err(SandboxError::PolicyNeedsOwnNetwork);
        }
        self.proxy_socket = Some(socket);
        Ok(())
    }

    /// Enter the sandbox: `no_new_privs`, a new network namespace (when the
    /// network is off), then the Landlock domain, then empty the capability
    /// sets. Restrictions are inherited by every descendant and cannot be
    /// undone.
    ///
    /// # Safety
    /// Call only in the forked child, between `fork` and `exec` (inside
    /// `pre_exec`): it restricts the calling process for good. It makes raw
    /// syscalls only and does not allocate, so it is async-signal-safe.
    pub unsafe fn apply_in_child(&self) -> io::Result<()> {
        // SAFETY: we are in the forked child (our caller's contract); each
        // step makes raw syscalls with constant or owned arguments only.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if self.new_network_namespace {
                netns::enter_new_network_namespace()?;
                if let Some(socket) = self.proxy_socket {
                    netns::listen_and_send(socket)?;
                }
            }
            if let Some(ruleset) = &self.ruleset {
                ruleset.restrict_self()?;
            }
            caps::drop_all()?;
        }
        Ok(())
    }
}
