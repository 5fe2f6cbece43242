//! The opt-in per-process sandbox: what this kernel supports ([`features`]),
//! turning a [`SandboxSpec`] into kernel objects in the parent
//! ([`PreparedSandbox::prepare`]), and entering the sandbox in the forked
//! child before `exec` ([`PreparedSandbox::apply_in_child`]).
//!
//! Enforcement, inherited by every descendant:
//! - `no_new_privs`, always (setuid/file-capability binaries gain nothing).
//! - `readOnly` (the default): a Landlock domain that allows reading and
//!   executing everything, writing only beneath the writable roots, and
//!   writing (and terminal ioctls) to a few devices: [`ALLOWED_DEVICES`].
//! - `network: false` (the default): a fresh network namespace whose only
//!   interface is its own loopback, brought up.
//! - With Landlock ABI 6+, whenever a Landlock domain is created: signals
//!   may only be sent to processes of the same sandbox.
//!
//! The parent does everything that allocates (validation, opening paths,
//! building the ruleset); the child only makes raw syscalls. Landlock
//! constants and structs are not in the `libc` crate (only the syscall
//! numbers are), so they are defined here from the kernel UAPI header.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::OnceLock;

pub use execd_protocol::sandbox::{SandboxFeatures, SandboxSpec};

/// Devices that stay writable (with `ioctl`) under `readOnly`: the data sinks
/// and sources shells redirect to (`/dev/null`, `/dev/zero`) and terminals
/// (`/dev/tty`, new PTYs through `/dev/ptmx`, and their `/dev/pts/*` ends).
/// Missing ones are skipped. Not `/dev/shm`: it is shared with the host;
/// list it in `writableRoots` for programs that need POSIX shared memory.
pub const ALLOWED_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
];

/// Landlock UAPI, from `include/uapi/linux/landlock.h` (Linux 6.18).
mod landlock {
    /// `landlock_create_ruleset` flag: return the ABI version.
    pub const CREATE_RULESET_VERSION: libc::c_uint = 1 << 0;
    /// `enum landlock_rule_type`.
    pub const RULE_PATH_BENEATH: libc::c_int = 1;

    pub const ACCESS_FS_EXECUTE: u64 = 1 << 0;
    pub const ACCESS_FS_WRITE_FILE: u64 = 1 << 1;
    pub const ACCESS_FS_READ_FILE: u64 = 1 << 2;
    pub const ACCESS_FS_READ_DIR: u64 = 1 << 3;
    pub const ACCESS_FS_MAKE_CHAR: u64 = 1 << 6;
    pub const ACCESS_FS_MAKE_BLOCK: u64 = 1 << 11;
    /// ABI 1 handles bits 0..=12 (`EXECUTE` .. `MAKE_SYM`).
    pub const ACCESS_FS_ABI1: u64 = (1 << 13) - 1;
    /// ABI 2.
    pub const ACCESS_FS_REFER: u64 = 1 << 13;
    /// ABI 3.
    pub const ACCESS_FS_TRUNCATE: u64 = 1 << 14;
    /// ABI 5.
    pub const ACCESS_FS_IOCTL_DEV: u64 = 1 << 15;
    /// The rights a rule on a non-directory may carry.
    pub const ACCESS_FILE: u64 = ACCESS_FS_EXECUTE
        | ACCESS_FS_WRITE_FILE
        | ACCESS_FS_READ_FILE
        | ACCESS_FS_TRUNCATE
        | ACCESS_FS_IOCTL_DEV;

    /// ABI 6: no signals to processes outside the domain.
    pub const SCOPE_SIGNAL: u64 = 1 << 1;

    /// `struct landlock_ruleset_attr`. Kernels older than the struct accept
    /// it as long as the fields they do not know are zero.
    #[repr(C)]
    pub struct RulesetAttr {
        pub handled_access_fs: u64,
        /// ABI 4.
        pub handled_access_net: u64,
        /// ABI 6.
        pub scoped: u64,
    }

    /// `struct landlock_path_beneath_attr` (packed in the UAPI).
    #[repr(C, packed)]
    pub struct PathBeneathAttr {
        pub allowed_access: u64,
        pub parent_fd: i32,
    }

    /// The filesystem rights Landlock ABI `abi` can restrict.
    pub fn fs_rights(abi: u32) -> u64 {
        let mut rights = ACCESS_FS_ABI1;
        if abi >= 2 {
            rights |= ACCESS_FS_REFER;
        }
        if abi >= 3 {
            rights |= ACCESS_FS_TRUNCATE;
        }
        if abi >= 5 {
            rights |= ACCESS_FS_IOCTL_DEV;
        }
        rights
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox writable root {0:?} must be an absolute path")]
    RelativeRoot(String),
    #[error("sandbox writable root {0:?} does not exist")]
    MissingRoot(String),
    #[error("sandbox writable root {path:?} cannot be opened: {source}")]
    UnusableRoot { path: String, source: io::Error },
    #[error("sandbox writableRoots {0:?} need readOnly true (with readOnly false everything is writable)")]
    RootsWithoutReadOnly(Vec<String>),
    #[error("sandbox feature unavailable: {0}")]
    Unsupported(String),
    #[error("cannot build the Landlock ruleset ({what}): {source}")]
    Landlock { what: String, source: io::Error },
}

impl SandboxError {
    /// True when the request was at fault (a bad spec, or a feature the
    /// client could have seen missing in [`features`]) rather than the machine.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, SandboxError::Landlock { .. })
    }
}

/// What the probes found, with the reason for each missing feature.
struct Probe {
    landlock: Result<u32, String>,
    network_namespace: Result<(), String>,
}

fn probe() -> &'static Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(|| Probe {
        landlock: probe_landlock().map_err(|e| format!("landlock_create_ruleset: {e}")),
        network_namespace: probe_network_namespace(),
    })
}

/// What this kernel (and our privileges) support. Probed once per process:
/// the Landlock ABI with `landlock_create_ruleset(NULL, 0,
/// LANDLOCK_CREATE_RULESET_VERSION)`; network namespaces by checking that
/// `/proc/self/ns/net` exists and that a short-lived forked child can do
/// exactly what [`PreparedSandbox::apply_in_child`] does (`unshare(CLONE_NEWNET)`
/// and bring its loopback up), which needs `CAP_SYS_ADMIN` (and
/// `CAP_NET_ADMIN`).
pub fn features() -> SandboxFeatures {
    let probe = probe();
    SandboxFeatures {
        landlock: probe.landlock.is_ok(),
        landlock_abi: probe.landlock.as_ref().ok().copied(),
        network_namespace: probe.network_namespace.is_ok(),
        no_new_privs: true,
    }
}

fn probe_landlock() -> io::Result<u32> {
    // SAFETY: with a NULL attr, size 0 and the VERSION flag the kernel reads
    // nothing and returns the ABI version (or fails).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            landlock::CREATE_RULESET_VERSION,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    match u32::try_from(rc) {
        Ok(abi) if abi >= 1 => Ok(abi),
        _ => Err(io::Error::other(format!("unexpected ABI version {rc}"))),
    }
}

fn probe_network_namespace() -> Result<(), String> {
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
unsafe fn enter_new_network_namespace() -> io::Result<()> {
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

/// A sandbox ready to be entered by a child: the Landlock ruleset (if any)
/// and whether to leave the network. Owns the ruleset descriptor, which is
/// close-on-exec (the kernel creates it so), so no child inherits it past
/// `exec`; keep this value alive until the spawn has returned (e.g. move it
/// into the `pre_exec` closure).
#[derive(Debug)]
pub struct PreparedSandbox {
    ruleset: Option<OwnedFd>,
    new_network_namespace: bool,
}

impl PreparedSandbox {
    /// Validate `spec` and build what the child needs. Runs in the parent.
    ///
    /// Fails with the offending path for a relative or missing writable
    /// root, and with [`SandboxError::Unsupported`] when the spec needs a
    /// feature [`features`] does not report: Landlock for `readOnly`, a
    /// network namespace for `network: false`.
    pub fn prepare(spec: &SandboxSpec) -> Result<PreparedSandbox, SandboxError> {
        if !spec.read_only && !spec.writable_roots.is_empty() {
            return Err(SandboxError::RootsWithoutReadOnly(
                spec.writable_roots.clone(),
            ));
        }
        let roots = spec
            .writable_roots
            .iter()
            .map(|root| open_root(root))
            .collect::<Result<Vec<_>, _>>()?;

        let probe = probe();
        if spec.read_only {
            if let Err(reason) = &probe.landlock {
                return Err(SandboxError::Unsupported(format!(
                    "readOnly needs Landlock, which this kernel does not offer ({reason})"
                )));
            }
        }
        if !spec.network {
            if let Err(reason) = &probe.network_namespace {
                return Err(SandboxError::Unsupported(format!(
                    "network: false needs a new network namespace, which cannot be created here ({reason})"
                )));
            }
        }

        let ruleset = match probe.landlock {
            Ok(abi) => build_ruleset(abi, spec.read_only, &roots)?,
            Err(_) => None,
        };
        Ok(PreparedSandbox {
            ruleset,
            new_network_namespace: !spec.network,
        })
    }

    /// Enter the sandbox: `no_new_privs`, a new network namespace (when the
    /// network is off), then the Landlock domain. Restrictions are inherited
    /// by every descendant and cannot be undone.
    ///
    /// # Safety
    /// Call only in the forked child, between `fork` and `exec` (inside
    /// `pre_exec`): it restricts the calling process for good. It makes raw
    /// syscalls only and does not allocate, so it is async-signal-safe.
    pub unsafe fn apply_in_child(&self) -> io::Result<()> {
        // SAFETY: raw syscalls with constant or owned arguments.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if self.new_network_namespace {
                enter_new_network_namespace()?;
            }
            if let Some(ruleset) = &self.ruleset {
                let rc = libc::syscall(
                    libc::SYS_landlock_restrict_self,
                    ruleset.as_raw_fd(),
                    0 as libc::c_uint,
                );
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            drop_capabilities()?;
        }
        Ok(())
    }
}

/// Empty the capability bounding set and the ambient set, so the program
/// about to be exec'd (and its descendants) hold no capabilities, even as
/// root: a sandboxed root could otherwise load a kernel module, remount, or
/// set up devices. Without CAP_SETPCAP (a non-root server) there is nothing
/// to drop.
///
/// # Safety
/// Raw syscalls only; call in the child before exec.
unsafe fn drop_capabilities() -> io::Result<()> {
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

/// An `O_PATH` descriptor of a writable root (close-on-exec, like every
/// descriptor std opens).
struct Root {
    path: String,
    fd: OwnedFd,
    is_dir: bool,
}

fn open_path(path: &str) -> io::Result<(OwnedFd, bool)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)?;
    let is_dir = file.metadata()?.is_dir();
    Ok((OwnedFd::from(file), is_dir))
}

fn open_root(path: &str) -> Result<Root, SandboxError> {
    if !Path::new(path).is_absolute() {
        return Err(SandboxError::RelativeRoot(path.to_string()));
    }
    match open_path(path) {
        Ok((fd, is_dir)) => Ok(Root {
            path: path.to_string(),
            fd,
            is_dir,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(SandboxError::MissingRoot(path.to_string()))
        }
        Err(source) => Err(SandboxError::UnusableRoot {
            path: path.to_string(),
            source,
        }),
    }
}

fn landlock_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Landlock { what, source }
}

/// The ruleset for Landlock ABI `abi`, or `None` when there is nothing to
/// restrict (no `readOnly`, and signal scoping needs ABI 6).
fn build_ruleset(
    abi: u32,
    read_only: bool,
    roots: &[Root],
) -> Result<Option<OwnedFd>, SandboxError> {
    let handled = if read_only {
        landlock::fs_rights(abi)
    } else {
        0
    };
    let scoped = if abi >= 6 { landlock::SCOPE_SIGNAL } else { 0 };
    if handled == 0 && scoped == 0 {
        return Ok(None);
    }
    let attr = landlock::RulesetAttr {
        handled_access_fs: handled,
        handled_access_net: 0,
        scoped,
    };
    // SAFETY: `attr` is a valid `landlock_ruleset_attr` of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const landlock::RulesetAttr,
            std::mem::size_of::<landlock::RulesetAttr>(),
            0 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(landlock_error("landlock_create_ruleset")(
            io::Error::last_os_error(),
        ));
    }
    let fd = libc::c_int::try_from(fd)
        .map_err(|_| landlock_error("landlock_create_ruleset")(io::Error::other("bad fd")))?;
    // SAFETY: the kernel just returned this descriptor (O_CLOEXEC) and nobody else owns it.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd) };
    if !read_only {
        return Ok(Some(ruleset));
    }

    let read =
        landlock::ACCESS_FS_READ_FILE | landlock::ACCESS_FS_READ_DIR | landlock::ACCESS_FS_EXECUTE;
    let (root_fd, _) = open_path("/").map_err(landlock_error("opening /"))?;
    add_rule(&ruleset, &root_fd, read).map_err(landlock_error("rule for /"))?;

    let device_rights = handled
        & (landlock::ACCESS_FS_READ_FILE
            | landlock::ACCESS_FS_WRITE_FILE
            | landlock::ACCESS_FS_TRUNCATE
            | landlock::ACCESS_FS_IOCTL_DEV);
    for device in ALLOWED_DEVICES {
        let fd = match open_path(device) {
            Ok((fd, _)) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(landlock_error(format!("opening {device}"))(e)),
        };
        add_rule(&ruleset, &fd, device_rights)
            .map_err(landlock_error(format!("rule for {device}")))?;
    }

    // Everything beneath a root, except creating device nodes: a privileged
    // process could otherwise make one for a disk and write to it.
    let dir_rights = handled & !(landlock::ACCESS_FS_MAKE_CHAR | landlock::ACCESS_FS_MAKE_BLOCK);
    for root in roots {
        let rights = if root.is_dir {
            dir_rights
        } else {
            dir_rights & landlock::ACCESS_FILE
        };
        add_rule(&ruleset, &root.fd, rights).map_err(landlock_error(format!(
            "rule for writable root {:?}",
            root.path
        )))?;
    }
    Ok(Some(ruleset))
}

fn add_rule(ruleset: &OwnedFd, parent: &OwnedFd, allowed_access: u64) -> io::Result<()> {
    let attr = landlock::PathBeneathAttr {
        allowed_access,
        parent_fd: parent.as_raw_fd(),
    };
    // SAFETY: `attr` is a valid `landlock_path_beneath_attr`; both descriptors are open.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            landlock::RULE_PATH_BENEATH,
            &attr as *const landlock::PathBeneathAttr,
            0 as libc::c_uint,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::unix::process::CommandExt;
    use std::path::PathBuf;
    use std::process::{Command, Output};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under /tmp, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let path = unique_path(tag);
            std::fs::create_dir(&path).expect("create temp dir");
            TempDir(path)
        }
        fn join(&self, name: &str) -> String {
            self.0.join(name).to_string_lossy().into_owned()
        }
        fn root(&self) -> String {
            self.0.to_string_lossy().into_owned()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn unique_path(tag: &str) -> PathBuf {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        PathBuf::from(format!(
            "/tmp/execd-sandbox-{}-{n}-{nanos}-{tag}",
            std::process::id()
        ))
    }

    /// Removes a file on drop, in case a test fails after creating it.
    struct RemoveOnDrop(PathBuf);

    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn require_landlock() {
        let features = features();
        assert!(
            features.landlock,
            "Landlock is unavailable here ({:?}); these tests need it",
            probe().landlock
        );
    }

    fn require_network_namespace() {
        assert!(
            features().network_namespace,
            "network namespaces are unavailable here ({:?}); these tests need them (run as root)",
            probe().network_namespace
        );
    }

    fn spec(roots: &[&str], network: bool, read_only: bool) -> SandboxSpec {
        SandboxSpec {
            writable_roots: roots.iter().map(|r| r.to_string()).collect(),
            network,
            read_only,
        }
    }

    fn run(spec: &SandboxSpec, argv: &[&str]) -> Output {
        let sandbox = PreparedSandbox::prepare(spec).expect("prepare sandbox");
        let mut command = Command::new(argv[0]);
        command.args(&argv[1..]);
        // SAFETY: `apply_in_child` makes raw syscalls only.
        unsafe {
            command.pre_exec(move || sandbox.apply_in_child());
        }
        command.output().expect("run sandboxed command")
    }

    fn sh(spec: &SandboxSpec, script: &str) -> Output {
        run(spec, &["sh", "-c", script])
    }

    fn describe(output: &Output) -> String {
        format!(
            "{:?}, stdout {:?}, stderr {:?}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    fn assert_ok(output: &Output) {
        assert!(
            output.status.success(),
            "expected success: {}",
            describe(output)
        );
    }

    fn assert_denied(output: &Output) {
        assert!(
            !output.status.success(),
            "expected failure: {}",
            describe(output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
        assert!(
            stderr.contains("permission denied") || stderr.contains("operation not permitted"),
            "expected a permission error: {}",
            describe(output)
        );
    }

    #[test]
    fn features_report_landlock_on_this_kernel() {
        let features = features();
        assert!(features.landlock, "{:?}", probe().landlock);
        assert!(features.landlock_abi.is_some_and(|abi| abi >= 1));
        assert!(features.no_new_privs);
    }

    #[test]
    fn writes_only_inside_writable_roots() {
        require_landlock();
        let root = TempDir::new("root");
        let outside = unique_path("outside");
        let _cleanup = RemoveOnDrop(outside.clone());
        let spec = spec(&[&root.root()], true, true);

        let output = sh(&spec, &format!("echo x > {}", root.join("ok")));
        assert_ok(&output);
        let written = std::fs::read_to_string(root.join("ok")).expect("read ok");
        assert_eq!(written, "x\n");

        let output = sh(&spec, &format!("echo x > {}", outside.display()));
        assert_denied(&output);
        assert!(!outside.exists(), "{} was created", outside.display());

        // A grandchild is confined too.
        let output = sh(&spec, &format!("sh -c 'echo x > {}'", outside.display()));
        assert_denied(&output);
        assert!(!outside.exists());
    }

    #[test]
    fn reading_everything_and_common_writes_still_work() {
        require_landlock();
        let root = TempDir::new("root");
        let spec = spec(&[&root.root()], true, true);

        let output = run(&spec, &["cat", "/etc/hostname"]);
        assert_ok(&output);
        let expected = std::fs::read("/etc/hostname").expect("read /etc/hostname");
        assert_eq!(output.stdout, expected);

        // Truncating /dev/null, making, renaming across directories and
        // deleting inside the root; /dev/stdout (a pipe here).
        let script = format!(
            "set -e; echo x > /dev/null; head -c 4 /dev/zero > /dev/null; \
             mkdir {d}; echo y > {d}/f; mkdir {e}; mv {d}/f {e}/g; cat {e}/g > /dev/stdout; rm -r {d} {e}",
            d = root.join("d"),
            e = root.join("e"),
        );
        let output = sh(&spec, &script);
        assert_ok(&output);
        assert_eq!(output.stdout, b"y\n");
    }

    #[test]
    fn outside_files_cannot_be_removed_or_truncated() {
        require_landlock();
        let root = TempDir::new("root");
        let outside = unique_path("victim");
        let _cleanup = RemoveOnDrop(outside.clone());
        std::fs::write(&outside, "keep").expect("write victim");
        let spec = spec(&[&root.root()], true, true);

        assert_denied(&sh(&spec, &format!("rm -f {}", outside.display())));
        assert_denied(&sh(&spec, &format!(": > {}", outside.display())));
        assert_denied(&sh(
            &spec,
            &format!("mv {} {}", outside.display(), root.join("stolen")),
        ));
        let kept = std::fs::read_to_string(&outside).expect("victim still there");
        assert_eq!(kept, "keep");
    }

    #[test]
    fn new_terminals_can_be_opened_and_used() {
        require_landlock();
        // openpty: /dev/ptmx, then /dev/pts/N; tcgetattr is a device ioctl.
        let script = "import os, pty, termios\n\
            m, s = pty.openpty(); termios.tcgetattr(s); os.write(s, b'hi')\n\
            print(os.read(m, 2).decode())";
        let output = run(&spec(&[], true, true), &["python3", "-c", script]);
        assert_ok(&output);
        assert_eq!(output.stdout, b"hi\n");
    }

    #[test]
    fn a_file_can_be_a_writable_root() {
        require_landlock();
        let dir = TempDir::new("dir");
        std::fs::write(dir.join("log"), "").expect("create log");
        let spec = spec(&[&dir.join("log")], true, true);

        assert_ok(&sh(&spec, &format!("echo a >> {}", dir.join("log"))));
        assert_eq!(
            std::fs::read_to_string(dir.join("log")).ok().as_deref(),
            Some("a\n")
        );
        assert_denied(&sh(&spec, &format!("echo a > {}", dir.join("other"))));
    }

    #[test]
    fn no_new_privs_is_set_and_read_only_false_leaves_files_writable() {
        let dir = TempDir::new("free");
        let spec = spec(&[], true, false);
        let output = sh(
            &spec,
            &format!(
                "echo x > {} && grep NoNewPrivs /proc/self/status",
                dir.join("f")
            ),
        );
        assert_ok(&output);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("NoNewPrivs:\t1"), "{}", describe(&output));
    }

    #[test]
    fn sandboxed_programs_hold_no_capabilities_even_as_root() {
        let spec = spec(&[], true, false);
        let output = sh(&spec, "grep -E '^Cap(Prm|Eff|Bnd|Amb)' /proc/self/status");
        assert_ok(&output);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let caps: Vec<&str> = stdout.lines().collect();
        assert_eq!(caps.len(), 4, "{}", describe(&output));
        for line in caps {
            assert!(
                line.ends_with("0000000000000000"),
                "{line} in {}",
                describe(&output)
            );
        }
        // Without the sandbox the same program, run by root, has them.
        if unsafe { libc::geteuid() } == 0 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            assert!(!status.contains("CapEff:\t0000000000000000"));
        }
    }

    #[test]
    fn signals_cannot_leave_the_sandbox() {
        require_landlock();
        if features().landlock_abi.unwrap_or(0) < 6 {
            eprintln!("Landlock ABI < 6: signal scoping not available, nothing to test");
            return;
        }
        let spec = spec(&[], true, true);
        // Our own test process is outside the sandbox.
        let output = sh(
            &spec,
            &format!("kill -0 $$ && kill -0 {}", std::process::id()),
        );
        assert_denied(&output);
    }

    #[test]
    fn processes_outside_cannot_be_inspected() {
        require_landlock();
        let pid = std::process::id();
        let spec = spec(&[], true, true);
        // Unsandboxed (as root, or as our own user) both work.
        let control = format!("ls /proc/{pid}/root/ > /dev/null && readlink /proc/{pid}/ns/net");
        let output = Command::new("sh")
            .args(["-c", &control])
            .output()
            .expect("run sh");
        assert_ok(&output);
        assert_denied(&sh(&spec, &format!("ls /proc/{pid}/root/")));
        let output = sh(&spec, &format!("readlink /proc/{pid}/ns/net"));
        assert!(!output.status.success(), "{}", describe(&output));
    }

    #[test]
    fn device_nodes_and_mounts_are_denied_even_in_roots() {
        require_landlock();
        let root = TempDir::new("root");
        std::fs::create_dir(root.join("m")).expect("mkdir m");
        let spec = spec(&[&root.root()], true, true);
        assert_denied(&sh(&spec, &format!("mknod {} c 1 3", root.join("null"))));
        assert!(!Path::new(&root.join("null")).exists());
        assert_denied(&sh(
            &spec,
            &format!("mount -t tmpfs none {}", root.join("m")),
        ));
    }

    fn connect_script(port: u16) -> String {
        format!("exec 3<>/dev/tcp/127.0.0.1/{port}")
    }

    #[test]
    fn network_off_cannot_reach_the_host() {
        require_landlock();
        require_network_namespace();
        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("local addr").port();

        let output = run(
            &SandboxSpec::default(),
            &["bash", "-c", &connect_script(port)],
        );
        assert!(
            !output.status.success(),
            "connect succeeded: {}",
            describe(&output)
        );

        // The same without a sandbox connects, so the failure is the sandbox's.
        let output = Command::new("bash")
            .args(["-c", &connect_script(port)])
            .output()
            .expect("run bash");
        assert_ok(&output);
    }

    #[test]
    fn network_on_can_reach_the_host() {
        require_landlock();
        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("local addr").port();
        let output = run(
            &spec(&[], true, true),
            &["bash", "-c", &connect_script(port)],
        );
        assert_ok(&output);
    }

    #[test]
    fn network_off_keeps_a_private_loopback() {
        require_network_namespace();
        let script = "import socket\n\
            s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n\
            c = socket.create_connection(s.getsockname()); print('ok')";
        let output = run(&spec(&[], false, false), &["python3", "-c", script]);
        assert_ok(&output);
        assert_eq!(output.stdout, b"ok\n");
    }

    #[test]
    fn prepare_rejects_bad_writable_roots() {
        let error = PreparedSandbox::prepare(&spec(&["relative/dir"], true, true))
            .expect_err("relative root accepted");
        assert!(matches!(error, SandboxError::RelativeRoot(_)));
        assert!(error.to_string().contains("\"relative/dir\""), "{error}");
        assert!(error.is_bad_input());

        let missing = unique_path("missing");
        let missing = missing.to_string_lossy();
        let error = PreparedSandbox::prepare(&spec(&[&missing], true, true))
            .expect_err("missing root accepted");
        assert!(matches!(error, SandboxError::MissingRoot(_)));
        assert!(error.to_string().contains(&*missing), "{error}");

        let error = PreparedSandbox::prepare(&spec(&["/tmp"], true, false))
            .expect_err("roots without readOnly");
        assert!(error.to_string().contains("/tmp"), "{error}");
    }
}
