//! The wrapper protocol: processes under an exec policy get
//! `libexecd_preload.so` (`LD_PRELOAD`, source in `shim/execd_preload.c`)
//! and a socket (`EXECD_ESCALATION_FD`). Before a dynamically linked program
//! execs, the shim (or `execd exec-wrapper`) asks us first:
//!
//! 1. it makes a stream socketpair and sends, on the tree's socket, a small
//!    header datagram (`XQ2`) carrying its stdin, stdout, stderr and one end
//!    of the pair (`SCM_RIGHTS`);
//! 2. on its end it writes the request: a little-endian u64 length, then
//!    NUL-terminated fields: path, cwd, argc, argv…, envc, env…;
//! 3. it reads our 5-byte answer (a kind byte and a little-endian i32):
//!    - `R` run: the real `execve` proceeds; the kernel guard lets exactly
//!      that exec through without asking again (it was decided here);
//!    - `D` deny: the `execve` fails with the errno given;
//!    - `X`/`S`: we ran the command ourselves, outside the sandbox and the
//!      policy, on the caller's own stdio; it exited with that code, or that
//!      signal ended it, and the caller ends the same way.
//!
//! Who asks is the pid that created the pair (`SO_PEERCRED`), never what the
//! request says. Static binaries and programs that exec without libc's
//! `execve` skip the shim; the kernel guard still decides for them, but
//! cannot escalate.
//!
//! - [`server`]: our side, serving one tree's socket.
//! - [`client`]: the asking side in Rust (`execd exec-wrapper`).

pub mod client;
pub mod server;

use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;

pub use client::{request, socket_from_env, Reply};
pub use server::serve;

/// The descriptor number the socket gets in the child.
pub const CHILD_FD: RawFd = 1023;
/// Names the socket in the child's environment.
pub const FD_VARIABLE: &str = "EXECD_ESCALATION_FD";
/// The shim's file name, looked for next to the running executable.
pub const LIBRARY: &str = "libexecd_preload.so";
/// The header datagram's bytes.
pub const HEADER: &[u8] = b"XQ2";
/// Largest request body: the kernel takes at most 6 MiB of argv and envp.
pub const MAX_REQUEST_BYTES: u64 = 8 * 1024 * 1024;

/// Where the shim is: `$EXECD_PRELOAD_LIB`, else next to the running
/// executable (an installed execd), else where the build put it.
pub fn preload_library() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("EXECD_PRELOAD_LIB") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(LIBRARY)));
    let built = option_env!("EXECD_PRELOAD_BUILT").map(PathBuf::from);
    beside_exe
        .into_iter()
        .chain(built)
        .find(|path| path.is_file())
}

/// The stand-alone wrapper's file name, looked for next to the running
/// executable; a policied tree gets it as `EXEC_WRAPPER`, the hook through
/// which a patched shell (codex's zsh fork) runs `$EXEC_WRAPPER FILE ARGV…`
/// for every command instead of exec'ing it.
pub const WRAPPER_PROGRAM: &str = "execd-exec-wrapper";

/// Where the stand-alone wrapper is: `$EXECD_EXEC_WRAPPER`, else next to
/// the running executable.
pub fn wrapper_program() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("EXECD_EXEC_WRAPPER") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let exe = std::env::current_exe().ok()?;
    let beside = exe.parent()?.join(WRAPPER_PROGRAM);
    beside.is_file().then_some(beside)
}

/// Give the child its socket at [`CHILD_FD`], inherited across exec.
///
/// # Safety
/// In the forked child before exec: raw syscalls only.
pub unsafe fn install_in_child(socket: RawFd) -> io::Result<()> {
    if socket == CHILD_FD {
        // dup2 onto itself would keep close-on-exec: clear it instead.
        if libc::fcntl(socket, libc::F_SETFD, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
        return Ok(());
    }
    if libc::dup2(socket, CHILD_FD) < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The request body: path, cwd, argc, argv…, envc, env…, each NUL-terminated.
pub fn encode_body(path: &str, cwd: &str, argv: &[String], env: &[(String, String)]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut field = |text: &str| {
        body.extend_from_slice(text.as_bytes());
        body.push(0);
    };
    field(path);
    field(cwd);
    field(&argv.len().to_string());
    argv.iter().for_each(|arg| field(arg));
    field(&env.len().to_string());
    env.iter()
        .for_each(|(key, value)| field(&format!("{key}={value}")));
    body
}

/// A request as the asker wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub path: String,
    pub cwd: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Decode a request body; the error says which field is wrong.
pub fn parse_body(bytes: &[u8]) -> Result<Body, String> {
    let Some(bytes) = bytes.strip_suffix(&[0]) else {
        return Err("request does not end with NUL".into());
    };
    let mut fields = bytes
        .split(|b| *b == 0)
        .map(|field| String::from_utf8_lossy(field).into_owned());
    let mut next = |what: &str| fields.next().ok_or_else(|| format!("missing {what}"));
    let path = next("path")?;
    let cwd = next("cwd")?;
    let count = |text: String, what: &str| -> Result<usize, String> {
        text.parse::<usize>()
            .ok()
            .filter(|n| *n as u64 <= MAX_REQUEST_BYTES)
            .ok_or_else(|| format!("bad {what} {text:?}"))
    };
    let argc = count(next("argc")?, "argc")?;
    let argv = (0..argc)
        .map(|_| next("argv"))
        .collect::<Result<Vec<_>, _>>()?;
    let envc = count(next("envc")?, "envc")?;
    let env = (0..envc)
        .map(|_| next("env"))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter_map(|entry| {
            entry
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    if fields.next().is_some() {
        return Err("fields after the environment".into());
    }
    Ok(Body {
        path,
        cwd,
        argv,
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_garbage_is_named() {
        let argv = vec!["echo".to_string(), "a b".to_string(), String::new()];
        let env = vec![("A".to_string(), "1=2".to_string())];
        let body = encode_body("/bin/echo", "/tmp", &argv, &env);
        let parsed = parse_body(&body).unwrap();
        assert_eq!(parsed.argv, argv);
        assert_eq!(parsed.env, env);
        assert_eq!(
            (parsed.path.as_str(), parsed.cwd.as_str()),
            ("/bin/echo", "/tmp")
        );
        assert!(parse_body(b"junk").unwrap_err().contains("NUL"));
        assert!(parse_body(b"/p\0/c\0x\0").unwrap_err().contains("argc"));
        assert!(parse_body(b"/p\0/c\x002\0a\0")
            .unwrap_err()
            .contains("argv"));
        assert!(parse_body(b"/p\0/c\x000\x000\0extra\0").is_err());
    }
}
