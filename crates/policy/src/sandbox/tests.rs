//! The sandbox's tests: each mechanism (Landlock, the network namespace,
//! capabilities, `no_new_privs`) checked end to end by running real programs
//! under a [`PreparedSandbox`] entered in `pre_exec`, the way `execd-process`
//! spawns them. They need Landlock and network namespaces (run as root).

use super::*;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
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
