//! The network part of the sandbox (`network: false`): moving the child into
//! a fresh network namespace whose only interface is its own loopback,
//! brought up, so programs can still talk to themselves over `127.0.0.1` but
//! reach nothing of the host; and probing, once per process, that this can be
//! done here (it needs `CAP_SYS_ADMIN` and `CAP_NET_ADMIN`) by having a
//! short-lived forked child do exactly that. Both the probe's child and the
//! sandboxed child run [`enter_new_network_namespace`], which makes raw
//! syscalls only (`unshare`, `socket`, two `ioctl`s, `close`), with no
//! allocation, so it is safe between `fork` and `exec`. No crate is used: the
//! ones that wrap these calls (e.g. `nix`) add nothing here, and a netlink
//! library would allocate.

use std::io;
use std::path::Path;

/// Whether a new network namespace with its loopback up can be made here,
/// or why not.
pub(super) fn probe() -> Result<(), String> {
    if !Path::new("/proc/self/ns/net").exists() {
        return Err("/proc/self/ns/net does not exist (no network namespace support)".into());
    }
    // SAFETY: the child only makes raw syscalls (see `enter_new_network_namespace`)
    // and `_exit`s, so forking a multi-threaded parent is sound.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: in the forked child; raw syscalls only, then `_exit`.
        unsafe {
            let code = match enter_new_network_namespace() {
                Ok(()) => 0,
                Err(e) => e.raw_os_error().unwrap_or(255).clamp(1, 255),
            };
            libc::_exit(code)
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; `status` is a valid out pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(format!("waitpid: {error}"));
        }
    }
    if !libc::WIFEXITED(status) {
        return Err(format!("probe child ended abnormally (status {status:#x})"));
    }
    match libc::WEXITSTATUS(status) {
        0 => Ok(()),
        errno => Err(format!(
            "unshare(CLONE_NEWNET) and loopback up: {}",
            io::Error::from_raw_os_error(errno)
        )),
    }
}

/// Move the calling process into a new network namespace and bring its
/// loopback interface up.
///
/// # Safety
/// Raw syscalls only, no allocation: callable between `fork` and `exec`.
/// It changes the namespace of the calling thread; call it only in a child.
pub(super) unsafe fn enter_new_network_namespace() -> io::Result<()> {
    // SAFETY: plain syscalls on values we own; `ifreq` is plain old data.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            return Err(io::Error::last_os_error());
        }
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        request.ifr_name[0] = b'l' as libc::c_char;
        request.ifr_name[1] = b'o' as libc::c_char;
        let mut result = Ok(());
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut request) != 0 {
            result = Err(io::Error::last_os_error());
        } else {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS, &request) != 0 {
                result = Err(io::Error::last_os_error());
            }
        }
        libc::close(sock);
        result
    }
}

/// Make the network proxy's listening socket (`127.0.0.1:PROXY_PORT`, TCP)
/// in the current (new) namespace and send it over `socket`; our copy is
/// closed. The namespace is new, so the port is free.
///
/// # Safety
/// Raw syscalls only, no allocation: callable between `fork` and `exec`.
pub(super) unsafe fn listen_and_send(socket: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscalls on values we own; `sockaddr_in` is plain old data.
    unsafe {
        let listener = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if listener < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut address: libc::sockaddr_in = std::mem::zeroed();
        address.sin_family = libc::AF_INET as libc::sa_family_t;
        address.sin_port = execd_protocol::network::PROXY_PORT.to_be();
        address.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        let mut result = Ok(());
        if libc::bind(
            listener,
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) != 0
            || libc::listen(listener, 128) != 0
        {
            result = Err(io::Error::last_os_error());
        } else if let Err(err) = crate::fdpass::send_fd(socket, listener) {
            result = Err(err);
        }
        libc::close(listener);
        result
    }
}
