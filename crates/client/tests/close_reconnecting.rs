//! A client dropped while it reconnects ends its session at once, as a
//! clean close does, rather than leaving it detached on the server for the
//! detach grace (120 s by default): the driver takes the session over on a
//! connection of its own only to close it, so the server terminates the
//! session's processes now. Checked by the processes' pids (sessions are
//! private: no other connection could list them).

use std::time::Duration;

use execd_client::{ExecServerClient, LinkState, RemoteEnvironment};
use execd_server::ServerConfig;
use execd_test_support::{
    eventually, is_alive, pid_in_file, process_params, quick_reconnect, start_server_with,
    unique_name, FaultProxy, TempDir, TIMEOUT,
};

#[tokio::test]
async fn dropping_a_reconnecting_client_ends_its_session_now() {
    let server = start_server_with(ServerConfig::default()).await;
    let proxy = FaultProxy::in_front_of(&server.url()).await;
    let options = quick_reconnect(Duration::from_secs(60));
    let client = ExecServerClient::connect_with(&proxy.url(), options)
        .await
        .expect("connect through the proxy");
    let env = RemoteEnvironment::new(client.clone()).into_environment();
    let dir = TempDir::new("close-reconnecting");
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 1000", pid_file.display());
    let params = process_params(&unique_name("p"), &["bash", "-c", &script]);
    let started = env.exec.start(params).await.expect("start");
    let pid = pid_in_file(&pid_file).await;

    // Lost, and every attempt to resume stalls: the client is reconnecting.
    proxy.stall(None);
    proxy.cut();
    let mut state = client.link_state();
    tokio::time::timeout(
        TIMEOUT,
        state.wait_for(|s| matches!(s, LinkState::Reconnecting { .. })),
    )
    .await
    .expect("reconnecting in time")
    .expect("state");
    drop((started, env, client));
    proxy.unstall();
    eventually("the session's process to end with its session", || {
        !is_alive(pid)
    })
    .await;
    assert!(
        tokio::time::timeout(
            TIMEOUT,
            state.wait_for(|s| matches!(s, LinkState::Closed { .. }))
        )
        .await
        .is_ok(),
        "the client's session is closed"
    );
}
