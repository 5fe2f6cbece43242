//! Which process of the tree opened a proxied connection, for the ask: the
//! peer's port is looked up in the tree's own network namespace
//! (`/proc/<tree pid>/net/tcp`, which shows that namespace's sockets) for
//! the socket's inode, and the process holding that socket is found in
//! `/proc/*/fd`. Best effort: `None` when the tree's first process is gone
//! or the socket was passed on and closed.

use std::net::SocketAddr;
use std::path::Path;

/// The pid and command line of the process holding the socket whose local
/// address (inside the tree's namespace) is `peer`.
pub fn find(tree_pid: i32, peer: SocketAddr) -> Option<(u32, Vec<String>)> {
    let inode = socket_inode(tree_pid, peer)?;
    let wanted = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted.as_str())
        });
        if holds {
            return Some((pid, command_line(&entry.path())));
        }
    }
    None
}

fn command_line(process: &Path) -> Vec<String> {
    std::fs::read(process.join("cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|word| !word.is_empty())
                .map(|word| String::from_utf8_lossy(word).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The inode of the TCP socket bound to `peer` in `tree_pid`'s namespace.
fn socket_inode(tree_pid: i32, peer: SocketAddr) -> Option<u64> {
    let (table, wanted) = match peer {
        SocketAddr::V4(v4) => (
            "tcp",
            format!(
                "{:08X}:{:04X}",
                u32::from_ne_bytes(v4.ip().octets()),
                v4.port()
            ),
        ),
        SocketAddr::V6(_) => return None,
    };
    let text = std::fs::read_to_string(format!("/proc/{tree_pid}/net/{table}")).ok()?;
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&wanted.as_str()))
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}
