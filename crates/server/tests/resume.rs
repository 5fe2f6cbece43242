//! Sessions that survive the network: a connection lost without a close
//! frame leaves its session detached; `initialize {resumeSessionId}` on a
//! new connection takes it over (processes, logs, notifications), a clean
//! close still ends it at once, an unknown id is refused by name, a
//! session not resumed within the grace is ended (its processes gone), a
//! takeover closes the old connection with code 4000, and a client that
//! goes silent is detached by the keepalive.

use std::time::Duration;

use execd_server::ServerConfig;
use execd_test_support::procs::first_pid;
use execd_test_support::wire::{recv_message, INVALID_REQUEST};
use execd_test_support::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn config(grace: Duration) -> ServerConfig {
    ServerConfig {
        table: fast_table(),
        detach_grace: grace,
        ..ServerConfig::default()
    }
}

/// A new connection that resumes `session`; the `initialize` result.
async fn resume(url: &str, session: &str) -> (Client, Result<Value, Value>) {
    let mut client = Client::connect(url).await;
    let result = client
        .call(
            "initialize",
            json!({"clientName": "test", "resumeSessionId": session}),
        )
        .await;
    if result.is_ok() {
        client.notify("initialized", json!({})).await;
    }
    (client, result)
}

/// A started `bash -c 'echo $$; exec ARGV'` and its pid (from its output).
async fn start_with_pid(client: &mut Client, id: &str, exec: &str) -> Watched {
    client
        .start(start_params(id, &bash(&format!("echo $$; exec {exec}"))))
        .await;
    let output = client.wait_lines(id, 1).await;
    Watched::new(first_pid(&output.stdout_str()))
}

#[tokio::test]
async fn a_lost_connection_is_resumed_with_the_process_and_its_missed_output() {
    let server = bind_server(config(Duration::from_secs(60))).await;
    let mut first = Client::connect(&server.url()).await;
    let session = first.initialize_session("test").await;
    first.start(stdin_params("cat", &["cat"])).await;
    first.write("cat", b"one\n").await;
    first.wait_output("cat", "one").await;
    // Lost: the socket goes without a close frame.
    drop(first.into_inner());

    let (mut second, result) = resume(&server.url(), &session).await;
    let result = result.expect("resume");
    assert_eq!(result["sessionId"], json!(session));
    assert_eq!(result["resumed"], json!(true));
    second.follow_from("cat", 1);
    assert_eq!(second.write("cat", b"two\n").await["status"], "accepted");
    let seen = second.wait_output("cat", "two").await;
    assert_eq!(seen.last_seq, 2, "the resumed process's seq goes on");
    // What went to the first connection is still there to read.
    let read = second
        .call("process/read", json!({"processId": "cat", "afterSeq": 0}))
        .await
        .expect("read");
    let text: Vec<u8> = read["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| unb64(&c["chunk"]))
        .collect();
    assert_eq!(text, b"one\ntwo\n");
    second
        .call(
            "process/write",
            json!({"processId": "cat", "chunk": "", "closeStdin": true}),
        )
        .await
        .expect("close stdin");
    let done = second.wait_closed("cat").await;
    assert_eq!(done.exit_code, Some(0));
    let read = second
        .call("process/read", json!({"processId": "cat", "afterSeq": 2}))
        .await
        .expect("read");
    assert_eq!(read["exitedSeq"], json!(3));
    assert_eq!(read["closedSeq"], json!(4));
    server.shutdown().await;
}

#[tokio::test]
async fn a_clean_close_ends_the_session_at_once() {
    let server = bind_server(config(Duration::from_secs(60))).await;
    let mut client = Client::connect(&server.url()).await;
    let session = client.initialize_session("test").await;
    let sleeper = start_with_pid(&mut client, "s", "sleep 1000").await;
    let mut ws = client.into_inner();
    ws.close(None).await.expect("close");
    sleeper.assert_gone().await;
    let (_client, result) = resume(&server.url(), &session).await;
    let error = result.expect_err("the session is over");
    assert_eq!(error["code"], json!(INVALID_REQUEST), "{error}");
    server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_session_is_refused_by_name() {
    let server = bind_server(config(Duration::from_secs(60))).await;
    let (mut client, result) = resume(&server.url(), "no-such-session").await;
    let error = result.expect_err("unknown");
    assert_eq!(error["code"], json!(INVALID_REQUEST), "{error}");
    assert_eq!(
        error["message"],
        json!("unknown or expired session \"no-such-session\""),
        "{error}"
    );
    assert_eq!(error["data"]["sessionId"], json!("no-such-session"));
    // The connection goes on: a fresh session is still possible.
    client.initialize("test").await;
    let done = client.run("t", &["true"]).await;
    assert_eq!(done.exit_code, Some(0));
    server.shutdown().await;
}

#[tokio::test]
async fn a_session_not_resumed_within_the_grace_ends() {
    let server = bind_server(config(Duration::from_secs(2))).await;
    let mut client = Client::connect(&server.url()).await;
    let session = client.initialize_session("test").await;
    let sleeper = start_with_pid(&mut client, "s", "sleep 1000").await;
    drop(client.into_inner());
    // Detached, not ended: it runs on for the grace...
    assert!(!sleeper.is_gone(), "ended at once despite the grace");
    // ... and is gone after it.
    sleeper.assert_gone().await;
    let (_client, result) = resume(&server.url(), &session).await;
    let error = result.expect_err("expired");
    assert_eq!(error["data"]["sessionId"], json!(session));
    server.shutdown().await;
}

#[tokio::test]
async fn a_takeover_closes_the_old_connection() {
    let server = bind_server(config(Duration::from_secs(60))).await;
    let mut first = Client::connect(&server.url()).await;
    let session = first.initialize_session("test").await;
    let sleeper = start_with_pid(&mut first, "s", "sleep 1000").await;
    let (mut second, result) = resume(&server.url(), &session).await;
    assert_eq!(result.expect("takeover")["resumed"], json!(true));
    // The old connection hears why it is closed.
    let mut old = first.into_inner();
    let close = loop {
        match recv_message(&mut old).await {
            Message::Close(frame) => break frame.expect("a close frame with a code"),
            _ => continue,
        }
    };
    assert_eq!(u16::from(close.code), 4000);
    assert_eq!(
        close.reason.as_str(),
        "session resumed by another connection"
    );
    // The process lives on, under the new connection.
    assert!(!sleeper.is_gone());
    let list = second.call("process/list", json!({})).await.expect("list");
    assert_eq!(list["processes"][0]["processId"], "s");
    assert_eq!(list["processes"][0]["state"], "running");
    assert_eq!(second.terminate("s").await["running"], json!(true));
    sleeper.assert_gone().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_is_detached_by_the_keepalive() {
    let server = bind_server(ServerConfig {
        keepalive_interval: Duration::from_millis(200),
        keepalive_timeout: Duration::from_secs(1),
        ..config(Duration::from_secs(1))
    })
    .await;
    let mut client = Client::connect(&server.url()).await;
    client.initialize("test").await;
    let sleeper = start_with_pid(&mut client, "s", "sleep 1000").await;
    // The socket stays open but is never read again: no pongs.
    let _silent = client.into_inner();
    // Lost after the timeout, ended after the grace.
    sleeper.assert_gone().await;
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_keepalive_a_silent_client_keeps_its_session() {
    let server = bind_server(ServerConfig {
        keepalive_interval: Duration::ZERO,
        keepalive_timeout: Duration::ZERO,
        ..config(Duration::from_secs(1))
    })
    .await;
    let mut client = Client::connect(&server.url()).await;
    client.initialize("test").await;
    let sleeper = start_with_pid(&mut client, "s", "sleep 1000").await;
    let _silent = client.into_inner();
    // The control of the test above: no event can show that nothing
    // happens, so time passes (past the grace, as there).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!sleeper.is_gone(), "an attached session does not expire");
    server.shutdown().await;
}

#[tokio::test]
async fn past_the_detached_bound_the_oldest_detached_session_ends() {
    let server = bind_server(ServerConfig {
        max_detached_sessions: 1,
        ..config(Duration::from_secs(60))
    })
    .await;
    let mut older = Client::connect_initialized(&server.url()).await;
    let first = start_with_pid(&mut older, "s", "sleep 1000").await;
    drop(older.into_inner());
    let mut newer = Client::connect(&server.url()).await;
    let session = newer.initialize_session("test").await;
    let second = start_with_pid(&mut newer, "s", "sleep 1000").await;
    drop(newer.into_inner());
    // The second detach pushes the first session out.
    first.assert_gone().await;
    assert!(!second.is_gone(), "the newer detached session was ended");
    let (mut resumed, result) = resume(&server.url(), &session).await;
    assert_eq!(result.expect("the newer one waits")["resumed"], json!(true));
    resumed.terminate("s").await;
    second.assert_gone().await;
    server.shutdown().await;
}
