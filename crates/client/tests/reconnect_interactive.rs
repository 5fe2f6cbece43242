//! Interactive use across lost connections: a PTY session typed into while
//! the proxy cuts the connection (each keystroke line delivered once, the
//! `ManagedProcess` state intact), and a server gone silent found by the
//! client's own keepalive.

use std::time::Duration;

use execd_client::{
    ConnectOptions, ExecServerClient, Keepalive, LinkState, ManagedProcess, ReconnectPolicy,
    RemoteEnvironment,
};
use execd_server::ServerConfig;
use execd_test_support::{
    eventually, process_params, start_server_with, unique_name, Direction, FaultProxy, TIMEOUT,
};

fn quick() -> ConnectOptions {
    ConnectOptions {
        reconnect: Some(ReconnectPolicy {
            first_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            give_up_after: Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(2),
        }),
        ..ConnectOptions::default()
    }
}

fn rendered(process: &ManagedProcess) -> String {
    String::from_utf8_lossy(&process.output().render()).into_owned()
}

/// Lines typed into `cat` on a PTY, the connection cut after every other
/// keystroke (some writes in flight at the cut): every line is echoed and
/// printed exactly once, and the process ends normally.
#[tokio::test]
async fn typing_into_a_pty_survives_cuts() {
    let server = start_server_with(ServerConfig::default()).await;
    let proxy = FaultProxy::in_front_of(&server.url()).await;
    let client = ExecServerClient::connect_with(&proxy.url(), quick())
        .await
        .expect("connect");
    let env = RemoteEnvironment::new(client).into_environment();
    let mut params = process_params(&unique_name("pty"), &["cat"]);
    params.tty = true;
    let process = ManagedProcess::start(&env, params, 1 << 20)
        .await
        .expect("start");
    let mut expected = String::new();
    for i in 0..10 {
        let line = format!("line{i}");
        let typing = {
            let process = process.process().clone();
            let keys = format!("{line}\n");
            tokio::spawn(async move { process.write(keys.into()).await })
        };
        if i % 2 == 0 {
            proxy.cut();
        }
        let status = tokio::time::timeout(TIMEOUT, typing)
            .await
            .expect("the keystrokes are answered")
            .expect("write task");
        assert!(status.is_ok(), "{status:?}");
        // The terminal echoes the line, then cat prints it.
        expected.push_str(&format!("{line}\r\n{line}\r\n"));
        eventually(&format!("{line} echoed and printed"), || {
            rendered(&process).len() >= expected.len()
        })
        .await;
        assert_eq!(rendered(&process), expected, "nothing lost, nothing twice");
    }
    assert!(proxy.cuts() >= 5);
    process.write(&b"\x04"[..]).await.expect("EOF");
    let state = tokio::time::timeout(TIMEOUT, process.wait())
        .await
        .expect("cat ends at EOF");
    assert_eq!(state.failure, None);
    assert_eq!(state.exit_code, Some(0));
    assert_eq!(rendered(&process), expected);
}

/// The server's frames stop arriving (stalled on the way down): the
/// client's keepalive finds it, the client reconnects once frames flow
/// again, and the session carries on.
#[tokio::test]
async fn a_silent_server_is_found_by_the_client_keepalive() {
    let server = start_server_with(ServerConfig::default()).await;
    let proxy = FaultProxy::in_front_of(&server.url()).await;
    let options = ConnectOptions {
        keepalive: Keepalive {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(500),
        },
        ..quick()
    };
    let client = ExecServerClient::connect_with(&proxy.url(), options)
        .await
        .expect("connect");
    let env = RemoteEnvironment::new(client.clone()).into_environment();
    let mut params = process_params(&unique_name("cat"), &["cat"]);
    params.pipe_stdin = true;
    let process = ManagedProcess::start(&env, params, 1 << 20)
        .await
        .expect("start");
    let mut link = client.link_state();
    proxy.stall(Some(Direction::Down));
    let state = tokio::time::timeout(
        TIMEOUT,
        link.wait_for(|s| matches!(s, LinkState::Reconnecting { .. })),
    )
    .await
    .expect("the silence was noticed")
    .expect("link state")
    .clone();
    assert!(
        matches!(&state, LinkState::Reconnecting { reason } if reason.contains("no word from the server")),
        "{state:?}"
    );
    proxy.unstall();
    tokio::time::timeout(TIMEOUT, link.wait_for(|s| *s == LinkState::Connected))
        .await
        .expect("resumed")
        .expect("link state");
    process.write(&b"still here\n"[..]).await.expect("write");
    eventually("the echo", || rendered(&process) == "still here\n").await;
    process.process().close_stdin().await.expect("close");
    let state = tokio::time::timeout(TIMEOUT, process.wait())
        .await
        .expect("cat ends");
    assert_eq!(state.failure, None);
    assert_eq!(state.exit_code, Some(0));
}
