//! The server's own cgroup v2, where the kernel lets us make one: a child of
//! the cgroup `execd serve` starts in, which the server joins before it
//! starts anything, so every process it starts (and everything they start,
//! whatever they do with sessions, groups or parents) is a member. The
//! supervisor ends them all with one write to `cgroup.kill` and removes the
//! cgroup when it is empty. Without a writable cgroup v2 hierarchy (no
//! `cgroup2` mount, no delegation, no `cgroup.kill` before Linux 5.14) there
//! is none, and the supervisor's walk by parentage does the job alone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Directory names are this prefix and the supervisor's pid.
const PREFIX: &str = "execd-";

/// A cgroup we made and remove.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    /// Make `execd-PID` under the cgroup this process is in, if the
    /// hierarchy is cgroup v2, writable and has `cgroup.kill`. Empty ones
    /// left by supervisors that were killed are removed on the way.
    pub fn create() -> Option<Cgroup> {
        let parent = own_cgroup_dir()?;
        remove_stale(&parent);
        let dir = parent.join(format!("{PREFIX}{}", std::process::id()));
        if let Err(err) = fs::create_dir(&dir) {
            if err.kind() != io::ErrorKind::AlreadyExists {
                return None;
            }
            // A stale one of our pid; rmdir fails unless it is empty.
            fs::remove_dir(&dir).ok()?;
            fs::create_dir(&dir).ok()?;
        }
        let cgroup = Cgroup { dir };
        if !cgroup.dir.join("cgroup.kill").exists() {
            cgroup.remove(Duration::ZERO);
            return None;
        }
        Some(cgroup)
    }

    /// Move process `pid` (and its future children) into the cgroup.
    pub fn join(&self, pid: u32) -> io::Result<()> {
        fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }

    /// Pids of the processes in the cgroup (not in cgroups below it).
    pub fn members(&self) -> Vec<i32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|pid| pid.parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Whether any process is left in the cgroup or below it.
    pub fn is_populated(&self) -> bool {
        fs::read_to_string(self.dir.join("cgroup.events"))
            .map(|events| events.lines().any(|line| line == "populated 1"))
            .unwrap_or(false)
    }

    /// SIGKILL every process in the cgroup and below it, in one step that
    /// no fork escapes.
    pub fn kill(&self) {
        let _ = fs::write(self.dir.join("cgroup.kill"), "1");
    }

    /// Remove the cgroup and any left below it, trying for up to `patience`
    /// while the last members are still on their way out.
    pub fn remove(self, patience: Duration) {
        let deadline = Instant::now() + patience;
        while remove_tree(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The directory of the cgroup v2 this process is in, if one is mounted.
fn own_cgroup_dir() -> Option<PathBuf> {
    // "0::/path" is the v2 line of /proc/self/cgroup.
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroups.lines().find_map(|line| line.strip_prefix("0::"))?;
    // mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER".
    let mounts = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|line| {
        let (fields, fs_fields) = line.split_once(" - ")?;
        if fs_fields.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mut fields = fields.split_whitespace().skip(3);
        let root = fields.next()?;
        let mountpoint = fields.next()?;
        // A mount of a subtree shows the paths below its root only.
        let below = Path::new(path).strip_prefix(root).ok()?;
        let dir = Path::new(mountpoint).join(below);
        dir.join("cgroup.procs").exists().then_some(dir)
    })
}

/// Remove the empty `execd-PID` cgroups under `parent` whose supervisor is
/// gone (killed before it could clean up).
fn remove_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| name.strip_prefix(PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = remove_tree(&entry.path());
        }
    }
}

/// Remove a cgroup directory and the cgroups below it, deepest first. Fails
/// while any of them still has a member.
fn remove_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    fs::remove_dir(dir)
}
