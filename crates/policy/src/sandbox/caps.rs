//! The capability part of the sandbox: emptying the capability bounding set
//! and the ambient set in the child before `exec`, so the sandboxed program
//! (and its descendants) hold no capabilities, even as root; a sandboxed root
//! could otherwise load a kernel module, remount, or set up devices. This is
//! raw `prctl` on purpose, not the `caps` crate: it runs between `fork` and
//! `exec`, where only async-signal-safe syscalls may run, and `caps` allocates
//! there. `caps::clear` for the bounding set iterates `caps::all()`, a
//! `HashSet`; every error (which we hit routinely: `EINVAL` past the kernel's
//! last capability, `EPERM` when not privileged) is a `CapsError` holding a
//! `format!`ted `String`; and its `Capability` enum knows only the
//! capabilities of its release, while we drop every one the kernel has. The
//! parent has no capability work to do (nothing to probe or prepare), so the
//! crate is not used at all.

use std::io;

/// Empty the ambient set, then the bounding set up to the last capability
/// this kernel knows. Without `CAP_SETPCAP` (a non-root server) there is
/// nothing to drop: the bounding set cannot grant anything then.
///
/// # Safety
/// Raw syscalls only, no allocation: callable between `fork` and `exec`.
/// It restricts the calling process for good; call it only in a child.
pub(super) unsafe fn drop_all() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    unsafe {
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) != 0
        {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err);
            }
        }
        for capability in 0..64 {
            if libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0) != 0 {
                match io::Error::last_os_error().raw_os_error() {
                    // Past the last capability this kernel knows.
                    Some(libc::EINVAL) => break,
                    // Not privileged: the bounding set cannot grant anything anyway.
                    Some(libc::EPERM) => break,
                    _ => return Err(io::Error::last_os_error()),
                }
            }
        }
    }
    Ok(())
}
