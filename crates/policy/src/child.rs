//! What a child under an exec policy gets before it execs, and the serving
//! side that starts with it: the kernel guard's filter (its listener comes
//! back to [`exec_guard`](crate::exec_guard)), the wrapper socket and
//! `LD_PRELOAD` shim ([`escalation`](crate::escalation)), and the closing
//! of every descriptor the child inherited from us, since a held exec may
//! wait for a decision for a long time.
//!
//! The spawner asks [`TreeGuard::prepare_child`] for a [`ChildSetup`], adds
//! its environment, runs [`ChildInstall::run`] between fork and exec, and
//! drops the setup's sockets once the child is spawned.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::decision::{executable, Outcome, PendingExec};
use crate::escalation;
use crate::exec_guard;
use crate::fdpass::channel;
use crate::tree::TreeGuard;

/// Setting up the guard failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up {what}: {source}")]
pub struct SetupError {
    pub what: &'static str,
    pub source: io::Error,
}

fn setup(what: &'static str) -> impl FnOnce(io::Error) -> SetupError {
    move |source| SetupError { what, source }
}

/// What the spawner does for a policied child.
pub struct ChildSetup {
    /// Variables to add to the child's environment.
    pub env: Vec<(String, String)>,
    /// Run in the child between fork and exec.
    pub install: ChildInstall,
    /// Our copies of the child's socket ends: keep them until the child is
    /// spawned, then drop them (so the sockets end when the tree does).
    pub sockets: Vec<OwnedFd>,
}

/// The child's half of a [`ChildSetup`]: raw descriptor numbers and a
/// snapshot, nothing that allocates.
pub struct ChildInstall {
    guard_socket: RawFd,
    wrapper_socket: Option<RawFd>,
    inherited: Inherited,
}

impl TreeGuard {
    /// Start deciding for this tree (the guard thread; the wrapper socket
    /// when the shim or the stand-alone wrapper exists) and say what the
    /// child must install.
    /// `existing_preload`: the child's own `LD_PRELOAD`, kept after the shim.
    pub fn prepare_child(&self, existing_preload: Option<&str>) -> Result<ChildSetup, SetupError> {
        let (ours, theirs) = channel().map_err(setup("the exec guard"))?;
        // The guard answers the program's own exec, which the spawn waits for.
        exec_guard::start(self.clone(), ours).map_err(setup("the exec guard"))?;
        let mut env = Vec::new();
        let mut wrapper_socket = None;
        // Dynamically linked programs get the shim, and shells with an exec
        // hook the stand-alone wrapper; both ask over the wrapper socket,
        // which can escalate.
        let library = escalation::preload_library();
        let wrapper = escalation::wrapper_program();
        if library.is_some() || wrapper.is_some() {
            let (ours_w, theirs_w) = channel().map_err(setup("the escalation socket"))?;
            escalation::serve(self.clone(), ours_w).map_err(setup("the escalation socket"))?;
            if let Some(library) = library {
                let preload = match existing_preload {
                    Some(existing) if !existing.is_empty() => {
                        format!("{}:{existing}", library.display())
                    }
                    _ => library.display().to_string(),
                };
                env.push(("LD_PRELOAD".to_string(), preload));
            }
            if let Some(wrapper) = wrapper {
                env.push(("EXEC_WRAPPER".to_string(), wrapper.display().to_string()));
            }
            env.push((
                escalation::FD_VARIABLE.to_string(),
                escalation::CHILD_FD.to_string(),
            ));
            wrapper_socket = Some(theirs_w);
        }
        // The child's exec may be held for as long as a decision takes, and
        // until it execs it holds a copy of every descriptor we had at the
        // fork (close-on-exec has not happened yet): other processes' stdin
        // and output, client connections. It closes them first.
        let mut keep = vec![theirs.as_raw_fd()];
        keep.extend(wrapper_socket.as_ref().map(|s: &OwnedFd| s.as_raw_fd()));
        let install = ChildInstall {
            guard_socket: theirs.as_raw_fd(),
            wrapper_socket: wrapper_socket.as_ref().map(|s| s.as_raw_fd()),
            inherited: Inherited::snapshot(&keep),
        };
        let mut sockets = vec![theirs];
        sockets.extend(wrapper_socket);
        Ok(ChildSetup {
            env,
            install,
            sockets,
        })
    }
}

/// The tree's first exec, decided before its process is forked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstExec {
    /// Allowed: the kernel guard lets exactly that exec through at once.
    Run,
    /// Denied (reported with the reason): do not start.
    Denied,
    /// The program was not found here: the spawn reports that itself.
    Unresolved,
}

impl TreeGuard {
    /// Decide the program's own exec now, as the kernel guard would (rules,
    /// then the gate for `ask`; it cannot escalate), and report it; an
    /// allowed one is granted so the guard lets it through without holding
    /// it. So the forked child is never held for long while it still has
    /// copies of the server's descriptors (what it inherited at the fork,
    /// including descriptors other threads opened after the snapshot
    /// [`prepare_child`](TreeGuard::prepare_child) closes).
    ///
    /// Blocks on the runtime: call it from a blocking thread.
    pub fn decide_first_exec(
        &self,
        program: &str,
        argv: &[String],
        cwd: &Path,
        search_path: Option<&str>,
    ) -> FirstExec {
        let Some(file) = find_program(program, cwd, search_path) else {
            return FirstExec::Unresolved;
        };
        let exec = PendingExec {
            // No process yet.
            pid: 0,
            path: file.to_string_lossy().into_owned(),
            argv: argv.to_vec(),
            cwd: cwd.to_string_lossy().into_owned(),
        };
        let guard = self.clone();
        let decided = self.runtime.block_on(
            self.runtime
                .spawn(async move { guard.decide_and_report(exec, false).await }),
        );
        match decided {
            Ok(Outcome::Run) => {
                self.approved.grant_first(&file.to_string_lossy(), argv);
                FirstExec::Run
            }
            _ => FirstExec::Denied,
        }
    }
}

/// The file an `execvp` of `program` in `cwd` runs: a path as given, else
/// the first executable match in `search_path` (glibc's default without
/// one); symlinks resolved.
fn find_program(program: &str, cwd: &Path, search_path: Option<&str>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return executable(program, cwd).ok();
    }
    let search_path = search_path.unwrap_or("/bin:/usr/bin");
    search_path.split(':').find_map(|dir| {
        let dir = if dir.is_empty() {
            cwd.to_path_buf()
        } else {
            cwd.join(dir)
        };
        let file = executable(program, &dir).ok()?;
        let metadata = std::fs::metadata(&file).ok()?;
        (metadata.is_file() && metadata.permissions().mode() & 0o111 != 0).then_some(file)
    })
}

impl ChildInstall {
    /// Give the child its wrapper socket, close what it inherited, and
    /// install the filter (last: it must not see the set-up before it).
    ///
    /// # Safety
    /// In the forked child before exec: raw syscalls only, no allocation.
    pub unsafe fn run(&self) -> io::Result<()> {
        let mut guard_socket = self.guard_socket;
        if let Some(socket) = self.wrapper_socket {
            // The wrapper socket's number is fixed; the guard's must move
            // out of its way first.
            if guard_socket == escalation::CHILD_FD {
                guard_socket = libc::fcntl(guard_socket, libc::F_DUPFD_CLOEXEC, 3);
                if guard_socket < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            escalation::install_in_child(socket)?;
        }
        self.inherited.close_in_child()?;
        exec_guard::install_in_child(guard_socket)
    }
}

/// Our descriptors a child would inherit across a fork (all but stdio and
/// those kept), each with the identity of its file, so that the child can
/// close exactly these and nothing that was opened after the snapshot (the
/// pipe `std` uses to report a failed exec, for one).
struct Inherited(Vec<(libc::c_int, libc::dev_t, libc::ino_t)>);

impl Inherited {
    fn snapshot(keep: &[libc::c_int]) -> Inherited {
        // Numbers first: the directory's own descriptor is closed before the
        // identities are taken, so it is not among them.
        let numbers: Vec<libc::c_int> = std::fs::read_dir("/proc/self/fd")
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2 && !keep.contains(fd))
            .collect();
        Inherited(
            numbers
                .into_iter()
                .filter_map(|fd| identity(fd).map(|(dev, ino)| (fd, dev, ino)))
                .collect(),
        )
    }

    /// In the child, between fork and exec: close each descriptor that is
    /// still the file it was. Only `fstat` and `close`: async-signal-safe.
    fn close_in_child(&self) -> io::Result<()> {
        for &(fd, dev, ino) in &self.0 {
            if identity(fd) == Some((dev, ino)) {
                // SAFETY: closing a descriptor of this (forked) process.
                unsafe { libc::close(fd) };
            }
        }
        Ok(())
    }
}

/// The device and inode of the file behind `fd`.
fn identity(fd: libc::c_int) -> Option<(libc::dev_t, libc::ino_t)> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole `stat` on success, and only then is it read.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: initialised by the successful fstat.
    let stat = unsafe { stat.assume_init() };
    Some((stat.st_dev, stat.st_ino))
}
