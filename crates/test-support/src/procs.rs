//! Process and descriptor checks read from /proc: whether a pid is alive
//! (a zombie is not), waiting (bounded) for processes to die, a [`Watched`]
//! process that survives pid reuse and is killed on drop, this process's
//! children and open descriptors (leak checks), and finding processes by
//! command line or parent.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::TIMEOUT;

/// The fields of `/proc/PID/stat` the tests look at.
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    pub state: char,
    pub ppid: i32,
    /// Session id.
    pub session: i32,
    /// Clock ticks after boot: with the pid, names one process for good.
    pub start_time: u64,
}

pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        // Field 22 of stat(5); `fields[0]` is field 3.
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// True while `pid` exists and is not a zombie.
pub fn is_alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|stat| stat.state != 'Z')
}

/// Poll (bounded by [`TIMEOUT`]) until `check` holds: the births and deaths
/// of processes outside the tree a test drives have no event to wait for.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The pid a script wrote to `path` (`echo $$ > path`), once the line is
/// complete (bounded).
pub async fn pid_in_file(path: &std::path::Path) -> i32 {
    eventually("the pid file", || {
        std::fs::read_to_string(path).is_ok_and(|s| s.ends_with('\n'))
    })
    .await;
    std::fs::read_to_string(path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid")
}

/// Wait (bounded) until none of `pids` is alive.
pub async fn wait_dead(pids: &[i32]) {
    let what = format!("processes {pids:?} to die");
    eventually(&what, || !pids.iter().any(|pid| is_alive(*pid))).await;
}

/// The pids among the lines of `text` (lines that are not one are skipped).
pub fn pids_in(text: &str) -> Vec<i32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// The pid on the first line of `text`; panics if it is not one.
pub fn first_pid(text: &str) -> i32 {
    let line = text.lines().next().unwrap_or_default();
    line.trim()
        .parse()
        .unwrap_or_else(|_| panic!("expected a pid line, got {text:?}"))
}

/// A process seen alive, identified by pid and start time (so pid reuse is
/// not mistaken for survival). SIGKILLed on drop if still running.
pub struct Watched {
    pid: i32,
    start_time: u64,
}

impl Watched {
    /// Watch `pid`, which must be running now.
    pub fn new(pid: i32) -> Watched {
        let stat =
            proc_stat(pid).unwrap_or_else(|| panic!("process {pid} is not running after start"));
        assert_ne!(stat.state, 'Z', "process {pid} is already a zombie");
        Watched {
            pid,
            start_time: stat.start_time,
        }
    }

    /// Gone: no such pid, a different process under that pid, or a zombie.
    pub fn is_gone(&self) -> bool {
        match proc_stat(self.pid) {
            None => true,
            Some(stat) => stat.start_time != self.start_time || stat.state == 'Z',
        }
    }

    /// Reaped: no such pid, or a different process under it (a zombie is
    /// still there, waiting for its parent).
    pub fn is_reaped(&self) -> bool {
        proc_stat(self.pid).is_none_or(|stat| stat.start_time != self.start_time)
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Wait (bounded) until the process is gone.
    pub async fn assert_gone(&self) {
        let what = format!("process {} to be gone", self.pid);
        eventually(&what, || self.is_gone()).await;
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if !self.is_gone() {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }
}

/// How many descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Children of this process (all threads) that still have a /proc entry:
/// running or zombie.
pub fn children() -> Vec<String> {
    let mut all = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path().join("children");
        if let Ok(text) = std::fs::read_to_string(path) {
            all.extend(text.split_whitespace().map(str::to_string));
        }
    }
    all
}

/// Every pid on the machine, as /proc lists them.
fn all_pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
}

/// Pids whose command line is exactly `argv`.
pub fn pids_running(argv: &[&str]) -> Vec<i32> {
    let wanted: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    all_pids()
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

/// The first process whose parent is `parent`.
pub fn child_of(parent: i32) -> Option<i32> {
    all_pids().find(|pid| proc_stat(*pid).is_some_and(|stat| stat.ppid == parent))
}
