//! A call whose caller gave up on it (dropped its future) while the
//! client was reconnecting is forgotten: it is not sent on the connection
//! that resumes the session, where it would do work nobody waits for (a
//! process nobody watches, a file nobody asked for any more). Checked with
//! a `process/start` given up on: after the resume its `processId` is
//! still free for a start with other params, which the server would refuse
//! as a clash had the abandoned start reached it.

use std::time::Duration;

use execd_client::{ExecServerClient, LinkState};
use execd_test_support::{process_params, unique_name, Proxied, TIMEOUT};
use serde_json::Value;

async fn wait_state(client: &ExecServerClient, wanted: fn(&LinkState) -> bool, what: &str) {
    let mut state = client.link_state();
    tokio::time::timeout(TIMEOUT, state.wait_for(wanted))
        .await
        .unwrap_or_else(|_| panic!("{what} within {TIMEOUT:?}"))
        .expect("link state");
}

#[tokio::test]
async fn a_call_given_up_while_reconnecting_is_not_sent_after_the_resume() {
    let Proxied {
        server: _server,
        proxy,
        client,
    } = Proxied::start().await;

    // Lost, and every attempt to resume stalls: calls wait for the resume.
    proxy.stall(None);
    proxy.cut();
    wait_state(
        &client,
        |s| matches!(s, LinkState::Reconnecting { .. }),
        "reconnecting",
    )
    .await;
    let id = unique_name("abandoned");
    let abandoned = process_params(&id, &["sleep", "1000"]);
    let gave_up = tokio::time::timeout(
        Duration::from_millis(100),
        client.call::<_, Value>("process/start", &abandoned),
    )
    .await;
    assert!(gave_up.is_err(), "the start waited for the resume");

    proxy.unstall();
    wait_state(
        &client,
        |s| matches!(s, LinkState::Connected),
        "connected again",
    )
    .await;
    // Calls resent at the resume go out before any new one.
    let other = process_params(&id, &["true"]);
    let started: Result<Value, _> = client.call("process/start", &other).await;
    assert!(
        started.is_ok(),
        "the abandoned start reached the server after the resume: {started:?}"
    );
}
