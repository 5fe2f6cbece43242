//! The Landlock part of the sandbox: probing the kernel's ABI, opening the
//! writable roots (where a bad root is rejected by name), building the
//! ruleset in the parent with the `landlock` crate, and entering it in the
//! child. Under `readOnly` the ruleset handles the filesystem rights of
//! Landlock ABI 5 (the crate keeps, best effort, those the running kernel
//! knows) and allows reading and executing everything, everything but device
//! nodes beneath the writable roots, and read/write/truncate/ioctl on
//! [`ALLOWED_DEVICES`]; on ABI 6+ it also scopes signals to the sandbox. The
//! rights stop at ABI 5's on purpose: handling a newer right (ABI 9's
//! `RESOLVE_UNIX`) would deny more than the documented sandbox does. In the
//! child we do NOT call the crate's `RulesetCreated::restrict_self()`: we keep
//! only the ruleset's descriptor (`Option<OwnedFd>::from(RulesetCreated)`)
//! and [`LandlockRuleset::restrict_self`] makes the one raw
//! `landlock_restrict_self(fd, 0)` syscall. Reading the crate (0.4.8), its
//! `restrict_self` does not allocate on its success or error paths today,
//! but it consumes the ruleset (which [`PreparedSandbox::apply_in_child`]'s
//! `&self` cannot give it), sets `no_new_privs` again, keeps compatibility
//! state, and is free to change in any 0.4.x release, while what runs
//! between fork and exec must stay raw, async-signal-safe syscalls whatever
//! version Cargo picks. The ABI probe stays a raw syscall too: the crate does
//! not expose the kernel's ABI number, which [`features`] reports.
//!
//! [`PreparedSandbox::apply_in_child`]: super::PreparedSandbox::apply_in_child
//! [`features`]: super::features

use std::error::Error;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ::landlock::{
    Access, AccessFs, BitFlags, PathBeneath, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetError, Scope, ABI,
};

use super::{SandboxError, ALLOWED_DEVICES};

/// The newest ABI whose filesystem rights we handle (see the module comment).
const FS_RIGHTS_ABI: ABI = ABI::V5;

/// `landlock_create_ruleset` flag: return the ABI version
/// (`LANDLOCK_CREATE_RULESET_VERSION` in `include/uapi/linux/landlock.h`;
/// the `libc` crate has only the syscall numbers).
const CREATE_RULESET_VERSION: libc::c_uint = 1 << 0;

/// The Landlock ABI of the running kernel, with
/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`.
pub(super) fn probe_abi() -> io::Result<u32> {
    // SAFETY: with a NULL attr, size 0 and the VERSION flag the kernel reads
    // nothing and returns the ABI version (or fails).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    match u32::try_from(rc) {
        Ok(abi) if abi >= 1 => Ok(abi),
        _ => Err(io::Error::other(format!("unexpected ABI version {rc}"))),
    }
}

/// A built ruleset, ready to be entered by a child: its descriptor, which
/// the kernel created close-on-exec, so no program inherits it past `exec`.
#[derive(Debug)]
pub(super) struct LandlockRuleset(OwnedFd);

impl LandlockRuleset {
    /// Enter the Landlock domain: `landlock_restrict_self(fd, 0)`. Needs
    /// `no_new_privs` (or `CAP_SYS_ADMIN`), which the caller sets first.
    ///
    /// # Safety
    /// One raw syscall, no allocation: callable between `fork` and `exec`.
    /// It restricts the calling thread for good; call it only in a child.
    pub(super) unsafe fn restrict_self(&self) -> io::Result<()> {
        // SAFETY: a raw syscall on a descriptor we own and a constant flag.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_landlock_restrict_self,
                self.0.as_raw_fd(),
                0 as libc::c_uint,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// An `O_PATH` descriptor of a writable root (close-on-exec, like every
/// descriptor std opens).
pub(super) struct WritableRoot {
    path: String,
    fd: OwnedFd,
    is_dir: bool,
}

impl WritableRoot {
    /// Open `path` for a rule, or say why it cannot be a writable root: not
    /// absolute, missing, or not openable.
    pub(super) fn open(path: &str) -> Result<WritableRoot, SandboxError> {
        if !Path::new(path).is_absolute() {
            return Err(SandboxError::RelativeRoot(path.to_string()));
        }
        match open_path(path) {
            Ok((fd, is_dir)) => Ok(WritableRoot {
                path: path.to_string(),
                fd,
                is_dir,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(SandboxError::MissingRoot(path.to_string()))
            }
            Err(source) => Err(SandboxError::UnusableRoot {
                path: path.to_string(),
                source,
            }),
        }
    }
}

fn open_path(path: &str) -> io::Result<(OwnedFd, bool)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)?;
    let is_dir = file.metadata()?.is_dir();
    Ok((OwnedFd::from(file), is_dir))
}

fn landlock_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Landlock { what, source }
}

fn ruleset_error(what: impl Into<String>) -> impl FnOnce(RulesetError) -> SandboxError {
    let what = what.into();
    move |error| SandboxError::Landlock {
        what,
        source: into_io_error(error),
    }
}

/// The OS error behind a crate error (as the raw syscalls reported it), or
/// the crate's own error when no syscall failed.
fn into_io_error(error: RulesetError) -> io::Error {
    let mut cause: Option<&(dyn Error + 'static)> = Some(&error);
    while let Some(current) = cause {
        if let Some(code) = current
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return io::Error::from_raw_os_error(code);
        }
        cause = current.source();
    }
    io::Error::other(error)
}

/// The ruleset for Landlock ABI `abi` (as [`probe_abi`] found it), or `None`
/// when there is nothing to restrict (no `readOnly`, and signal scoping
/// needs ABI 6).
pub(super) fn build_ruleset(
    abi: u32,
    read_only: bool,
    roots: &[WritableRoot],
) -> Result<Option<LandlockRuleset>, SandboxError> {
    let scope_signals = abi >= 6;
    if !read_only && !scope_signals {
        return Ok(None);
    }
    let handled = AccessFs::from_all(FS_RIGHTS_ABI);
    let mut ruleset = Ruleset::default();
    if read_only {
        ruleset = ruleset
            .handle_access(handled)
            .map_err(ruleset_error("handled filesystem rights"))?;
    }
    if scope_signals {
        ruleset = ruleset
            .scope(Scope::Signal)
            .map_err(ruleset_error("signal scope"))?;
    }
    let mut ruleset = ruleset
        .create()
        .map_err(ruleset_error("landlock_create_ruleset"))?;
    if read_only {
        ruleset = add_read_only_rules(ruleset, handled, roots)?;
    }
    // Best effort never leaves us without a descriptor on a kernel whose
    // ABI we probed; should it, refuse rather than run unconfined.
    match Option::<OwnedFd>::from(ruleset) {
        Some(fd) => Ok(Some(LandlockRuleset(fd))),
        None => Err(landlock_error("landlock_create_ruleset")(io::Error::other(
            "the landlock crate created no ruleset on a kernel with Landlock",
        ))),
    }
}

/// Read and execute everywhere, write to [`ALLOWED_DEVICES`], everything
/// but device nodes beneath the writable roots.
fn add_read_only_rules(
    mut ruleset: RulesetCreated,
    handled: BitFlags<AccessFs>,
    roots: &[WritableRoot],
) -> Result<RulesetCreated, SandboxError> {
    let read = AccessFs::from_read(FS_RIGHTS_ABI);
    let (root_fd, _) = open_path("/").map_err(landlock_error("opening /"))?;
    ruleset = ruleset
        .add_rule(PathBeneath::new(root_fd, read))
        .map_err(ruleset_error("rule for /"))?;

    let device_rights = handled
        & (AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate | AccessFs::IoctlDev);
    for device in ALLOWED_DEVICES {
        let fd = match open_path(device) {
            Ok((fd, _)) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(landlock_error(format!("opening {device}"))(e)),
        };
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, device_rights))
            .map_err(ruleset_error(format!("rule for {device}")))?;
    }

    // Everything beneath a root, except creating device nodes: a privileged
    // process could otherwise make one for a disk and write to it.
    let dir_rights = handled & !(AccessFs::MakeChar | AccessFs::MakeBlock);
    for root in roots {
        let rights = if root.is_dir {
            dir_rights
        } else {
            dir_rights & AccessFs::from_file(FS_RIGHTS_ABI)
        };
        ruleset = ruleset
            .add_rule(PathBeneath::new(&root.fd, rights))
            .map_err(ruleset_error(format!(
                "rule for writable root {:?}",
                root.path
            )))?;
    }
    Ok(ruleset)
}
