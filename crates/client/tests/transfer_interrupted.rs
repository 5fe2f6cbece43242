//! A transfer cut off midway (the connection reset by test-support's
//! `FaultProxy`, mid-frame) fails on the client and leaves no file under
//! the final name on either end: the server removes an upload's temporary
//! file when the connection goes, and a download's local sink removes its
//! own. The session itself is resumed, and a new transfer works.

use std::time::Duration;

use execd_client::{
    pump, Environment, ExecServerClient, LinkState, LocalEnvironment, RemoteEnvironment,
    TransferFormat, WriteOptions,
};
use execd_server::ServerConfig;
use execd_test_support::proxy::{Direction, FaultProxy};
use execd_test_support::server::start_server_with;
use execd_test_support::{wait_only, TIMEOUT};

const MIB: usize = 1024 * 1024;

/// The file `from` on `source` streamed to `to` on `destination` (bounded):
/// the bytes moved, or why the stream failed.
async fn copy(
    source: &Environment,
    from: &str,
    destination: &Environment,
    to: &str,
) -> Result<u64, String> {
    let reader = source
        .fs
        .open_read(from, TransferFormat::File)
        .await
        .unwrap();
    let writer = destination
        .fs
        .open_write(to, WriteOptions::file())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), pump(reader, writer, |_| {}))
        .await
        .expect("the stream ends in time")
        .map_err(|err| err.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_upload_and_download_leave_no_file_under_the_final_name() {
    let server = start_server_with(ServerConfig::default()).await;
    let proxy = FaultProxy::in_front_of(&server.url()).await;
    let client = ExecServerClient::connect(&proxy.url())
        .await
        .expect("connect");
    // Seen from here on: the cut's way through `Reconnecting` back to `Connected`.
    let mut link = client.link_state();
    let remote = RemoteEnvironment::new(client).into_environment();
    let local = LocalEnvironment::environment();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::write(&source, vec![42u8; 32 * MIB]).unwrap();
    let (there, back) = (dir.path().join("there"), dir.path().join("back"));
    let (source, there, back) = (
        source.to_str().unwrap().to_string(),
        there.to_str().unwrap().to_string(),
        back.to_str().unwrap().to_string(),
    );

    // Up: cut after 8 MiB of the 32.
    proxy.cut_after(Direction::Up, 8 * MIB as u64);
    let outcome = copy(&local, &source, &remote, &there).await;
    assert!(outcome.is_err(), "a cut upload fails: {outcome:?}");
    assert_eq!(proxy.cuts(), 1);
    wait_only(dir.path(), &["source"]).await;
    // The upload can fail before the client has noticed the lost link; an
    // `fs/upload` sent before the session is resumed would be interrupted
    // (it is not safe to repeat), so wait for the resume.
    tokio::time::timeout(TIMEOUT, async {
        link.changed().await.expect("the client runs");
        link.wait_for(|state| matches!(state, LinkState::Connected))
            .await
            .expect("the client runs");
    })
    .await
    .expect("the session is resumed in time");

    // A whole upload on the resumed session, then a download cut midway.
    let bytes = copy(&local, &source, &remote, &there)
        .await
        .expect("upload after the cut");
    assert_eq!(bytes, 32 * MIB as u64);
    proxy.cut_after(Direction::Down, 8 * MIB as u64);
    let outcome = copy(&remote, &there, &local, &back).await;
    assert!(outcome.is_err(), "a cut download fails: {outcome:?}");
    wait_only(dir.path(), &["source", "there"]).await;
    server.shutdown().await;
}
