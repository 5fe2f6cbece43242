//! `execd serve` started as systemd's socket activation starts it: the
//! listening socket on descriptor 3, `LISTEN_FDS=1`, `LISTEN_PID` its pid.
//! It serves that socket (not `--listen`'s address), the programs it starts
//! do not inherit it, more than one socket is refused, and variables meant
//! for another process are left alone.

use std::net::TcpListener;
use std::os::fd::AsRawFd;

use execd_test_support::binary::{next_line, pass_descriptor, wait_exit};
use execd_test_support::wire::{bash, start_params};
use execd_test_support::ws_client::Client;
use execd_test_support::{Execd, TIMEOUT};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));

/// A listening socket on a free loopback port.
fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind")
}

/// `execd serve ARGS` with `listener` as descriptor 3 and `LISTEN_FDS=fds`;
/// `LISTEN_PID` is execd's own pid, or `pid` when given.
fn activated(listener: &TcpListener, fds: &str, pid: Option<u32>, args: &[&str]) -> Command {
    let fd = listener.as_raw_fd();
    let pid = pid.map_or("$$".to_string(), |pid| pid.to_string());
    // bash execs execd, which keeps its pid.
    let script = format!("LISTEN_PID={pid} LISTEN_FDS={fds} exec \"$0\" serve \"$@\"");
    let mut command = Command::new("bash");
    pass_descriptor(&mut command, fd, 3);
    command
        .arg("-c")
        .arg(script)
        .arg(EXECD.path())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The URL `execd serve` printed first.
async fn printed_url(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = next_line(&mut lines).await;
    // Keep reading (and dropping) stdout so the server never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    url.unwrap_or_else(|| panic!("execd serve printed no URL"))
}

#[tokio::test]
async fn serves_the_socket_systemd_passed_and_keeps_it_from_its_programs() {
    let listener = listener();
    let port = listener.local_addr().expect("address").port();
    // Binding --listen's address would fail: the socket holds it.
    let listen = format!("ws://127.0.0.1:{port}");
    let mut serve = activated(
        &listener,
        "1",
        None,
        &["--listen", &listen, "--no-auth", "--detach-grace", "0"],
    )
    .spawn()
    .expect("spawn execd serve");
    drop(listener);
    assert_eq!(printed_url(&mut serve).await, listen);

    let mut client = Client::connect_initialized(&listen).await;
    let script = "ls -l /proc/$$/fd/";
    client.start(start_params("fds", &bash(script))).await;
    let done = client.wait_closed("fds").await;
    assert_eq!(done.exit_code, Some(0));
    let fds = done.stdout_str();
    assert!(
        !fds.contains("socket:"),
        "a program the server started holds a socket: {fds}"
    );
    assert!(fds.contains("pipe:"), "the listing is the program's: {fds}");
}

#[tokio::test]
async fn more_than_one_socket_is_refused() {
    let listener = listener();
    let mut serve = activated(&listener, "2", None, &["--listen", "ws://127.0.0.1:0"])
        .spawn()
        .expect("spawn execd serve");
    let status = wait_exit(&mut serve, "execd serve with LISTEN_FDS=2").await;
    assert_eq!(status.code(), Some(1), "cannot start");
    let mut stderr = String::new();
    let mut pipe = serve.stderr.take().expect("stderr");
    tokio::time::timeout(TIMEOUT, pipe.read_to_string(&mut stderr))
        .await
        .expect("stderr in time")
        .expect("read stderr");
    assert!(stderr.contains("LISTEN_FDS=\"2\""), "{stderr}");
}

#[tokio::test]
async fn sockets_passed_to_another_process_are_left_alone() {
    let listener = listener();
    let port = listener.local_addr().expect("address").port();
    // LISTEN_PID names another process (init): execd binds --listen.
    let mut serve = activated(
        &listener,
        "1",
        Some(1),
        &["--listen", "ws://127.0.0.1:0", "--no-auth"],
    )
    .spawn()
    .expect("spawn execd serve");
    let url = printed_url(&mut serve).await;
    assert_ne!(url, format!("ws://127.0.0.1:{port}"));
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
}
