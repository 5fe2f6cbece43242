//! `libexecd_preload.so`: loaded with `LD_PRELOAD` into processes started
//! under an exec policy. Before `execve`/`execv` runs, it asks execd over the
//! socket named by `EXECD_ESCALATION_FD`, passing the caller's stdin, stdout
//! and stderr. execd answers: run (the real `execve` proceeds, and the
//! kernel-side guard lets it through), deny (fail with the given errno), or
//! "ran it for you outside the sandbox, with this exit status" (the caller
//! exits with it, as if it had exec'd that program).
//!
//! It may run in a `vfork` child: no allocation, stack buffers only, and
//! anything unexpected falls back to the real `execve`, which the kernel
//! guard still holds for a decision.

#![allow(clippy::missing_safety_doc)]

use std::sync::atomic::{AtomicUsize, Ordering};

use libc::{c_char, c_int};

type ExecveFn =
    unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;

static REAL_EXECVE: AtomicUsize = AtomicUsize::new(0);
const FD_VARIABLE: &[u8] = b"EXECD_ESCALATION_FD=";
const MESSAGE_BYTES: usize = 64 * 1024;

extern "C" {
    static environ: *const *const c_char;
}

unsafe fn real_execve() -> Option<ExecveFn> {
    let mut address = REAL_EXECVE.load(Ordering::Relaxed);
    if address == 0 {
        address = libc::dlsym(libc::RTLD_NEXT, c"execve".as_ptr()) as usize;
        REAL_EXECVE.store(address, Ordering::Relaxed);
    }
    if address == 0 {
        None
    } else {
        // SAFETY: dlsym returned libc's `execve`, which has this signature.
        Some(std::mem::transmute::<usize, ExecveFn>(address))
    }
}

/// Length of a C string.
unsafe fn c_len(text: *const c_char) -> usize {
    if text.is_null() {
        0
    } else {
        libc::strlen(text)
    }
}

/// The escalation socket named in `envp`, if it is open.
unsafe fn escalation_fd(envp: *const *const c_char) -> Option<c_int> {
    if envp.is_null() {
        return None;
    }
    let mut entry = envp;
    while !(*entry).is_null() {
        let text = std::slice::from_raw_parts((*entry).cast::<u8>(), c_len(*entry));
        if let Some(digits) = text.strip_prefix(FD_VARIABLE) {
            let mut fd: c_int = 0;
            for digit in digits {
                if !digit.is_ascii_digit() || fd > 1_000_000 {
                    return None;
                }
                fd = fd * 10 + c_int::from(digit - b'0');
            }
            return (libc::fcntl(fd, libc::F_GETFD) >= 0).then_some(fd);
        }
        entry = entry.add(1);
    }
    None
}

/// A fixed buffer the request is written into.
struct Message {
    bytes: [u8; MESSAGE_BYTES],
    len: usize,
    overflow: bool,
}

impl Message {
    fn push(&mut self, data: &[u8]) {
        if self.len + data.len() + 1 > MESSAGE_BYTES {
            self.overflow = true;
            return;
        }
        self.bytes[self.len..self.len + data.len()].copy_from_slice(data);
        self.bytes[self.len + data.len()] = 0;
        self.len += data.len() + 1;
    }

    fn push_number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
    }

    unsafe fn push_c(&mut self, text: *const c_char) {
        self.push(std::slice::from_raw_parts(text.cast::<u8>(), c_len(text)));
    }

    /// A NULL-terminated array of C strings: count, then each.
    unsafe fn push_list(&mut self, list: *const *const c_char) {
        let mut count = 0usize;
        if !list.is_null() {
            while !(*list.add(count)).is_null() {
                count += 1;
            }
        }
        self.push_number(count as u64);
        for i in 0..count {
            self.push_c(*list.add(i));
        }
    }
}

/// Ask execd; `None` when it cannot be asked (fall back to the real exec).
unsafe fn ask(
    socket: c_int,
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> Option<(u8, i32)> {
    let mut message = Message {
        bytes: [0; MESSAGE_BYTES],
        len: 0,
        overflow: false,
    };
    message.push(b"XQ1");
    message.push_number(u64::from(libc::getpid() as u32));
    message.push_c(path);
    let mut cwd = [0 as c_char; 4096];
    if libc::getcwd(cwd.as_mut_ptr(), cwd.len()).is_null() {
        return None;
    }
    message.push_c(cwd.as_ptr());
    message.push_list(argv);
    message.push_list(envp);
    if message.overflow {
        return None;
    }

    let mut pair = [0 as c_int; 2];
    if libc::socketpair(
        libc::AF_UNIX,
        libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
        0,
        pair.as_mut_ptr(),
    ) != 0
    {
        return None;
    }
    // Our stdio (or /dev/null for a closed one), and the reply socket.
    let mut fds = [0 as c_int; 4];
    let mut opened = [-1 as c_int; 3];
    for (i, fd) in fds.iter_mut().take(3).enumerate() {
        let std_fd = i as c_int;
        if libc::fcntl(std_fd, libc::F_GETFD) >= 0 {
            *fd = std_fd;
        } else {
            opened[i] = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            *fd = opened[i];
        }
    }
    fds[3] = pair[1];

    let mut iov = libc::iovec {
        iov_base: message.bytes.as_mut_ptr().cast(),
        iov_len: message.len,
    };
    let mut control = [0u64; 8];
    let mut header: libc::msghdr = std::mem::zeroed();
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = libc::CMSG_SPACE(std::mem::size_of_val(&fds) as u32) as _;
    let cmsg = libc::CMSG_FIRSTHDR(&header);
    let mut answer = None;
    if !cmsg.is_null() {
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(&fds) as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<c_int>(), 4);
        if libc::sendmsg(socket, &header, libc::MSG_NOSIGNAL) >= 0 {
            libc::close(pair[1]);
            pair[1] = -1;
            let mut reply = [0u8; 5];
            loop {
                let n = libc::recv(pair[0], reply.as_mut_ptr().cast(), reply.len(), 0);
                if n == 5 {
                    let value = i32::from_le_bytes([reply[1], reply[2], reply[3], reply[4]]);
                    answer = Some((reply[0], value));
                } else if n < 0 && *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                break;
            }
        }
    }
    for fd in pair.into_iter().chain(opened) {
        if fd >= 0 {
            libc::close(fd);
        }
    }
    answer
}

#[no_mangle]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let Some(real) = real_execve() else {
        *libc::__errno_location() = libc::ENOSYS;
        return -1;
    };
    let Some(socket) = escalation_fd(envp) else {
        return real(path, argv, envp);
    };
    match ask(socket, path, argv, envp) {
        Some((b'D', errno)) => {
            *libc::__errno_location() = errno;
            -1
        }
        Some((b'X', code)) => libc::_exit(code),
        Some((b'S', signal)) => {
            libc::signal(signal, libc::SIG_DFL);
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal)
        }
        // Run, or execd could not be asked: the kernel guard still decides.
        _ => real(path, argv, envp),
    }
}

#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    execve(path, argv, environ)
}
