//! The client library across lost connections: a real server behind the
//! fault-injecting proxy, cuts (resets, mid-frame) and stalls, and the
//! client reconnecting and resuming by itself. Each test checks what a
//! harness sees: every byte once, seqs contiguous, state kept; and what
//! happens when the session cannot be resumed.

use std::time::Duration;

use execd_client::{
    ConnectOptions, EnvError, Environment, ExecServerClient, Keepalive, ReconnectPolicy,
    RemoteEnvironment,
};
use execd_environment::EventReceiver;
use execd_protocol::event::EventKind;
use execd_protocol::process::StartParams;
use execd_server::ServerConfig;
use execd_test_support::{
    eventually, is_alive, pid_in_file, process_params, start_server_with, unique_name, Direction,
    FaultProxy, TempDir, RUN_TIMEOUT, TIMEOUT,
};

const MIB: u64 = 1024 * 1024;

/// Options that reconnect quickly (tests should not wait out a backoff).
fn quick(give_up_after: Duration) -> ConnectOptions {
    ConnectOptions {
        reconnect: Some(ReconnectPolicy {
            first_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            give_up_after,
            attempt_timeout: Duration::from_secs(2),
        }),
        ..ConnectOptions::default()
    }
}

async fn connect(proxy: &FaultProxy, options: ConnectOptions) -> (ExecServerClient, Environment) {
    let client = ExecServerClient::connect_with(&proxy.url(), options)
        .await
        .expect("connect through the proxy");
    let env = RemoteEnvironment::new(client.clone()).into_environment();
    (client, env)
}

/// A process's whole event stream, checked: seqs 1, 2, 3... with no gap
/// and no repeat, output only before the exit, `Closed` last.
#[derive(Debug, Default)]
struct Stream {
    output: Vec<u8>,
    exit_code: Option<i32>,
    events: u64,
}

async fn drain(events: &mut EventReceiver) -> Result<Stream, EnvError> {
    let mut stream = Stream::default();
    loop {
        let event = tokio::time::timeout(RUN_TIMEOUT, events.recv())
            .await
            .expect("no event within the run timeout")
            .expect("the channel ended before Closed")?;
        stream.events += 1;
        assert_eq!(event.seq, stream.events, "seqs are contiguous from 1");
        match event.kind {
            EventKind::Output { chunk, .. } => {
                assert!(stream.exit_code.is_none(), "output after the exit event");
                stream.output.extend_from_slice(&chunk);
            }
            EventKind::Exited(exit) => stream.exit_code = Some(exit.code),
            EventKind::Closed => return Ok(stream),
        }
    }
}

fn bash(script: &str) -> StartParams {
    process_params(&unique_name("p"), &["bash", "-c", script])
}

/// 64 MiB through ten cuts at seeded random points (mid-frame): the
/// harness gets exactly the bytes the program wrote, each event once.
#[tokio::test]
async fn a_64_mib_stream_survives_ten_cuts() {
    let server = start_server_with(ServerConfig::default()).await;
    let proxy = FaultProxy::in_front_of(&server.url()).await;
    let (_client, env) = connect(&proxy, quick(Duration::from_secs(60))).await;
    let dir = TempDir::new("reconnect");
    let copy = dir.path().join("written");
    let script = format!("head -c 64M /dev/urandom | tee {}", copy.display());
    proxy.cut_randomly(Direction::Down, 12, 10, 2 * MIB, 5 * MIB);
    let mut started = env.exec.start(bash(&script)).await.expect("start");
    let stream = drain(&mut started.events)
        .await
        .expect("no error across cuts");
    assert_eq!(proxy.cuts(), 10, "every planned cut happened mid-stream");
    assert!(
        proxy.accepted() >= 11,
        "the client reconnected after each cut"
    );
    assert_eq!(stream.exit_code, Some(0));
    let written = std::fs::read(&copy).expect("the copy tee wrote");
    assert_eq!(written.len() as u64, 64 * MIB);
    assert!(stream.output == written, "the stream is byte-exact");
}

/// A write whose answer was lost in the cut is sent again with the same
/// `writeId`: the program reads it once.
#[tokio::test]
async fn a_write_repeated_after_a_cut_applies_once() {
    let server = start_server_with(ServerConfig::default()).await;
    let proxy = FaultProxy::in_front_of(&server.url()).await;
    let (_client, env) = connect(&proxy, quick(Duration::from_secs(60))).await;
    let mut params = process_params(&unique_name("cat"), &["cat"]);
    params.pipe_stdin = true;
    let started = env.exec.start(params).await.expect("start");
    let mut events = started.events;
    // The write reaches the server; its answer does not reach us.
    proxy.stall(Some(Direction::Down));
    let before = proxy.bytes_up();
    let process = started.process.clone();
    let write = tokio::spawn(async move { process.write("once\n".into()).await });
    eventually("the write to pass the proxy", || proxy.bytes_up() > before).await;
    proxy.cut();
    proxy.unstall();
    let status = tokio::time::timeout(TIMEOUT, write)
        .await
        .expect("the write is answered after the resume")
        .expect("write task");
    assert!(status.is_ok(), "{status:?}");
    started.process.close_stdin().await.expect("close stdin");
    let stream = drain(&mut events).await.expect("events");
    assert_eq!(String::from_utf8_lossy(&stream.output), "once\n");
}

/// A windowed process whose client is away keeps at most its window in
/// flight and then blocks; after the resume everything arrives, in order.
#[tokio::test]
async fn a_detached_windowed_process_blocks_and_loses_nothing() {
    let server = start_server_with(ServerConfig::default()).await;
    let proxy = FaultProxy::in_front_of(&server.url()).await;
    let options = ConnectOptions {
        output_window: Some(MIB),
        ..quick(Duration::from_secs(60))
    };
    let (_client, env) = connect(&proxy, options).await;
    let dir = TempDir::new("detached");
    let copy = dir.path().join("written");
    let script = format!("read go; head -c 16M /dev/urandom | tee {}", copy.display());
    let mut params = bash(&script);
    params.pipe_stdin = true;
    let mut started = env.exec.start(params).await.expect("start");
    started.process.write("go\n".into()).await.expect("write");
    // Away: nothing passes, and every reconnect stalls.
    proxy.stall(None);
    proxy.cut();
    // Detached (the server saw the reset): the program fills the window,
    // then blocks: what it wrote stops growing well short of 16 MiB.
    let mut last = (0, std::time::Instant::now());
    eventually("the writer to block", || {
        let size = std::fs::metadata(&copy).map_or(0, |m| m.len());
        if size != last.0 {
            last = (size, std::time::Instant::now());
        }
        size > 0 && last.1.elapsed() > Duration::from_millis(500)
    })
    .await;
    let blocked_at = std::fs::metadata(&copy).expect("copy").len();
    assert!(
        blocked_at < 8 * MIB,
        "a 1 MiB window let {blocked_at} bytes through"
    );
    proxy.unstall();
    let stream = drain(&mut started.events).await.expect("no error");
    let written = std::fs::read(&copy).expect("copy");
    assert_eq!(written.len() as u64, 16 * MIB);
    assert!(stream.output == written, "byte-exact after the detach");
}

/// A client that stops talking (stalled past the server's keepalive) is
/// detached by the server; the client notices, resumes, and its process
/// and stream carry on.
#[tokio::test]
async fn a_silent_client_is_detached_and_resumes() {
    let config = ServerConfig {
        keepalive_interval: Duration::from_millis(100),
        keepalive_timeout: Duration::from_millis(600),
        ..ServerConfig::default()
    };
    let server = start_server_with(config).await;
    let proxy = FaultProxy::in_front_of(&server.url()).await;
    let options = ConnectOptions {
        // The client's own keepalive is not what finds this.
        keepalive: Keepalive {
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(120),
        },
        ..quick(Duration::from_secs(60))
    };
    let (client, env) = connect(&proxy, options).await;
    let mut params = process_params(&unique_name("cat"), &["cat"]);
    params.pipe_stdin = true;
    let started = env.exec.start(params).await.expect("start");
    let mut events = started.events;
    let mut link = client.link_state();
    proxy.stall(Some(Direction::Up));
    tokio::time::timeout(
        TIMEOUT,
        link.wait_for(|s| matches!(s, execd_client::LinkState::Reconnecting { .. })),
    )
    .await
    .expect("the server dropped the silent connection")
    .expect("link state");
    proxy.unstall();
    tokio::time::timeout(
        TIMEOUT,
        link.wait_for(|s| *s == execd_client::LinkState::Connected),
    )
    .await
    .expect("resumed")
    .expect("link state");
    started
        .process
        .write("after\n".into())
        .await
        .expect("write");
    started.process.close_stdin().await.expect("close");
    let stream = drain(&mut events).await.expect("events");
    assert_eq!(String::from_utf8_lossy(&stream.output), "after\n");
    assert_eq!(client.closed_reason(), None);
}

/// Past the server's grace the session is gone: its processes are
/// terminated, and the client fails everything with `ConnectionLost`.
#[tokio::test]
async fn a_session_not_resumed_within_the_grace_ends() {
    let config = ServerConfig {
        detach_grace: Duration::from_millis(500),
        ..ServerConfig::default()
    };
    let server = start_server_with(config).await;
    let proxy = FaultProxy::in_front_of(&server.url()).await;
    let (client, env) = connect(&proxy, quick(Duration::from_secs(30))).await;
    let dir = TempDir::new("grace");
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 1000", pid_file.display());
    let started = env.exec.start(bash(&script)).await.expect("start");
    let mut events = started.events;
    let pid = pid_in_file(&pid_file).await;
    // Away for longer than the grace: every reconnect stalls.
    proxy.stall(None);
    proxy.cut();
    eventually(
        "the detached session's process to end after the grace",
        || !is_alive(pid),
    )
    .await;
    proxy.unstall();
    let failure = tokio::time::timeout(TIMEOUT, events.recv())
        .await
        .expect("the channel ends")
        .expect("an error, not the end")
        .expect_err("the session is gone");
    assert!(
        matches!(failure, EnvError::ConnectionLost(ref m) if m.contains("session")),
        "{failure}"
    );
    let reason = client.closed_reason().expect("closed");
    assert!(reason.contains("unknown or expired session"), "{reason}");
    let again = started.process.signal("TERM").await;
    assert!(
        matches!(again, Err(EnvError::ConnectionLost(_))),
        "{again:?}"
    );
}
