//! What `/proc` says about other processes, for finding every member of a
//! process tree a signal must reach: the members of a session, and the
//! holders of a process's output (a pipe or a terminal). A process that left
//! its group and session (`setsid`) but still holds the output is part of the
//! tree for the one thing that matters: `closed` waits for it.

use std::os::fd::{AsRawFd, BorrowedFd};

/// Every pid in `/proc` except ours.
fn other_pids() -> impl Iterator<Item = i32> {
    let own = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(move |pid| *pid != own)
}

/// Numeric field `n` after the command name in `/proc/PID/stat` (after the
/// state: 1 ppid, 2 pgrp, 3 session, ...), if the process still exists.
fn stat_field(pid: i32, n: usize) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: split after the last ')'.
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(n)?
        .parse()
        .ok()
}

/// Pids of the processes whose session id is `sid`.
pub fn session_members(sid: i32) -> Vec<i32> {
    other_pids()
        .filter(|pid| stat_field(*pid, 3) == Some(sid))
        .collect()
}

/// How other processes' `/proc/PID/fd` links name the other side of our
/// output descriptor `fd`: `pipe:[INODE]` for a pipe's read end, the slave's
/// `/dev/pts/N` for a PTY master. `None` for anything else.
pub fn output_link(fd: BorrowedFd<'_>) -> Option<String> {
    let stat = nix::sys::stat::fstat(fd).ok()?;
    if stat.st_mode & libc::S_IFMT == libc::S_IFIFO {
        return Some(format!("pipe:[{}]", stat.st_ino));
    }
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN stores one `c_uint` through the valid pointer; on a
    // descriptor that is not a PTY master it fails and stores nothing.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGPTN, &mut number) };
    (rc == 0).then(|| format!("/dev/pts/{number}"))
}

/// Pids of the processes with a descriptor on any of `links`, except us and
/// our own children: a child of ours between fork and exec holds a copy of
/// every descriptor we had, other trees' output included, and one whose
/// exec is held for approval stays in that state for as long as the
/// decision takes. (A tree's root is our child too; the group signal is
/// what reaches it.)
pub fn holders(links: &[String]) -> Vec<i32> {
    if links.is_empty() {
        return Vec::new();
    }
    let own = std::process::id() as i32;
    other_pids()
        .filter(|pid| {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                return false;
            };
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|target| {
                    links.iter().any(|link| target.as_os_str() == link.as_str())
                })
            })
        })
        .filter(|pid| stat_field(*pid, 1) != Some(own))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::process::{Command, Stdio};

    #[test]
    fn finds_a_holder_of_a_pipe_but_not_ourselves_or_our_children() {
        // sh (our child) starts sleep (its child) and waits; both hold the
        // pipe, only the grandchild counts.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let link = output_link(stdout.as_fd()).expect("a pipe has a link");
        assert!(link.starts_with("pipe:["), "{link}");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut stdout), &mut line)
            .expect("read the sleep's pid");
        let sleep: i32 = line.trim().parse().expect("a pid");
        let found = holders(std::slice::from_ref(&link));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(sleep),
            nix::sys::signal::Signal::SIGKILL,
        );
        child.wait().expect("reap sh");
        assert_eq!(found, vec![sleep]);
        assert!(holders(&[link]).is_empty());
    }

    #[test]
    fn a_regular_file_has_no_output_link() {
        let file = std::fs::File::open("/proc/self/stat").expect("open a file");
        assert_eq!(output_link(file.as_fd()), None);
    }
}
