//! Passing descriptors between a child and us: the `SOCK_SEQPACKET`
//! socketpairs the kernel guard's listener and the wrapper's requests
//! travel over, and sending one descriptor with `SCM_RIGHTS` from a forked
//! child (stack buffers only) or receiving it here.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// `sendmsg` one descriptor with SCM_RIGHTS, using stack buffers only.
///
/// # Safety
/// Safe to call in a forked child before exec (raw syscalls, no
/// allocation); `socket` must be a connected unix socket.
pub unsafe fn send_fd(socket: RawFd, fd: RawFd) -> io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // Room for one `cmsghdr` + an int, 8-byte aligned.
    let mut control = [0u64; 4];
    let mut message: libc::msghdr = std::mem::zeroed();
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
    let header = libc::CMSG_FIRSTHDR(&message);
    if header.is_null() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    (*header).cmsg_level = libc::SOL_SOCKET;
    (*header).cmsg_type = libc::SCM_RIGHTS;
    (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
    std::ptr::write_unaligned(libc::CMSG_DATA(header).cast::<RawFd>(), fd);
    if libc::sendmsg(socket, &message, 0) < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receive the descriptor the child sent; `None` if the child died first.
pub fn receive_fd(socket: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut byte = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(RawFd);
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    for control in message.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = control {
            if let Some(&fd) = fds.first() {
                // SAFETY: SCM_RIGHTS just gave us this descriptor; we own it.
                return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
    }
    Ok(None)
}

/// A connected `SOCK_SEQPACKET` socketpair, both ends close-on-exec:
/// (ours, the child's). Used for the guard's listener and the wrapper socket.
pub fn channel() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)
}
