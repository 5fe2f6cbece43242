//! `execd run` across lost connections: the built binary against an
//! `execd serve` child, through the fault-injecting proxy. Cut at random
//! points, its stdout is the same as without cuts and stdin typed during a
//! cut arrives once; when the session is gone, it exits 255 and says so.

use std::process::Stdio;

use execd_test_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));

/// Prints 1..N, about 20 MB: deterministic, so two runs can be compared.
const COUNT: &str = "seq 1 2600000";

/// `execd run --url URL --exec -- bash -c SCRIPT`, stdin empty.
async fn run_through(url: &str, script: &str) -> std::process::Output {
    let command = EXECD.command(&["run", "--url", url, "--exec", "--", "bash", "-c", script]);
    output_of(command, None).await
}

#[tokio::test]
async fn output_through_cuts_is_the_same_as_without() {
    let server = EXECD.serve_with(&["--detach-grace", "60"]).await;
    let plain = run_through(&server.url, COUNT).await;
    assert_eq!(plain.status.code(), Some(0), "{}", stderr_of(&plain));
    assert!(plain.stdout.len() > 19_000_000);

    let proxy = FaultProxy::in_front_of(&server.url).await;
    proxy.cut_randomly(Direction::Down, 3, 5, 1_000_000, 3_000_000);
    let cut = run_through(&proxy.url(), COUNT).await;
    let stderr = stderr_of(&cut);
    assert_eq!(cut.status.code(), Some(0), "{stderr}");
    assert_eq!(proxy.cuts(), 5, "every cut happened while it ran");
    assert!(
        cut.stdout == plain.stdout,
        "stdout differs: {} bytes, {} expected",
        cut.stdout.len(),
        plain.stdout.len()
    );
    // Each outage is told, and each is followed by its recovery. A cut
    // right after a resume can land before the notice has seen the link
    // come back (the link state is a watch of the latest value), so two
    // cuts may read as one outage.
    let lost = stderr
        .matches("execd run: connection lost; reconnecting…")
        .count();
    assert!((1..=5).contains(&lost), "{stderr}");
    assert_eq!(
        stderr.matches("execd run: reconnected").count(),
        lost,
        "{stderr}"
    );
}

#[tokio::test]
async fn stdin_typed_during_a_cut_arrives_once() {
    let server = EXECD.serve_with(&["--detach-grace", "60"]).await;
    let proxy = FaultProxy::in_front_of(&server.url).await;
    let mut child = EXECD
        .command(&["run", "--url", &proxy.url(), "--", "cat"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn execd run");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut expected = Vec::new();
    for i in 0..6 {
        let line = format!("typed {i}\n");
        if i % 2 == 1 {
            // Away while this line is typed: it waits for the resume.
            proxy.stall(None);
            proxy.cut();
        }
        stdin.write_all(line.as_bytes()).await.expect("type");
        stdin.flush().await.expect("flush");
        if i % 2 == 1 {
            proxy.unstall();
        }
        expected.extend_from_slice(line.as_bytes());
        while seen.len() < expected.len() {
            let mut buf = [0u8; 256];
            let n = tokio::time::timeout(TIMEOUT, stdout.read(&mut buf))
                .await
                .expect("cat echoes within the timeout")
                .expect("read stdout");
            assert!(n > 0, "execd run ended early");
            seen.extend_from_slice(&buf[..n]);
        }
        assert_eq!(
            String::from_utf8_lossy(&seen),
            String::from_utf8_lossy(&expected)
        );
    }
    drop(stdin);
    let status = binary::wait_exit(&mut child, "stdin closed").await;
    assert_eq!(status.code(), Some(0));
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).await.expect("rest of stdout");
    assert!(rest.is_empty(), "nothing repeated: {rest:?}");
    assert!(proxy.cuts() >= 3);
}

#[tokio::test]
async fn a_session_gone_ends_the_run_with_255() {
    let server = EXECD.serve_with(&["--detach-grace", "1"]).await;
    let proxy = FaultProxy::in_front_of(&server.url).await;
    let mut child = EXECD
        .command(&[
            "run",
            "--url",
            &proxy.url(),
            "--exec",
            "--",
            "bash",
            "-c",
            "echo $$; exec sleep 1000",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn execd run");
    let pid = binary::printed_pid(&mut child).await;
    // Away past the grace: the server ends the session meanwhile.
    proxy.stall(None);
    proxy.cut();
    eventually("the detached session's command to end", || !is_alive(pid)).await;
    proxy.unstall();
    let status = binary::wait_exit(&mut child, "the session ended").await;
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .await
        .expect("stderr");
    assert_eq!(status.code(), Some(255), "{stderr}");
    assert!(
        stderr.contains("connection lost; reconnecting…"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown or expired session"), "{stderr}");
}
