//! A client dropped while it reconnects ends its session at once, as a
//! clean close does, rather than leaving it detached on the server for the
//! detach grace (120 s by default): the driver takes the session over on a
//! connection of its own only to close it, so the server terminates the
//! session's processes now. Checked by the processes' pids (sessions are
//! private: no other connection could list them).

use execd_client::{LinkState, RemoteEnvironment};
use execd_test_support::{
    eventually, is_alive, pid_in_file, process_params, unique_name, Proxied, TempDir, TIMEOUT,
};

#[tokio::test]
async fn dropping_a_reconnecting_client_ends_its_session_now() {
    let Proxied {
        server: _server,
        proxy,
        client,
    } = Proxied::start().await;
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
