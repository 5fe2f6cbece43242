//! A signal `process/signal` accepts reaches the program, also when the
//! server itself ignores it (started with SIGINT or SIGQUIT ignored, as a
//! background job of a shell without job control, or under `nohup`): the
//! children of such a server start with the default disposition for every
//! signal a client may send, on pipes (posix_spawn, or fork with the reset)
//! and on a terminal (fork). And a signal sent right after `process/start`
//! answers is never lost: the answer comes only once the program has
//! exec'd in its own process group.
//!
//! This test binary ignores those signals itself, as such a server would,
//! which is why it holds nothing else.

use execd_test_support::*;
use nix::sys::signal::{signal, SigHandler, Signal};
use serde_json::json;

/// Every signal a client may send, but SIGKILL (which cannot be ignored).
const IGNORABLE: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Make this process (the server's) ignore every signal in [`IGNORABLE`].
fn ignore_them_all() {
    for sig in IGNORABLE {
        // SAFETY: SIG_IGN installs no handler.
        unsafe { signal(sig, SigHandler::SigIgn) }.expect("ignore a signal");
    }
}

/// The `SigIgn` mask of `/proc/self/status` as a process prints it.
fn ignored_mask(status: &str) -> u64 {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .unwrap_or_else(|| panic!("no SigIgn line in {status:?}"));
    u64::from_str_radix(line.trim(), 16).expect("SigIgn is hex")
}

fn names_in(mask: u64) -> Vec<&'static str> {
    IGNORABLE
        .iter()
        .filter(|sig| mask & (1 << (**sig as u64 - 1)) != 0)
        .map(|sig| sig.as_str())
        .collect()
}

#[tokio::test]
async fn the_servers_ignored_signals_are_not_the_programs() {
    ignore_them_all();
    let (server, mut client) = connected().await;

    // On pipes and on a terminal, nothing a client may send is ignored.
    let status = ["grep", "SigIgn", "/proc/self/status"];
    client.start(start_params("piped", &status)).await;
    let piped = client.wait_closed("piped").await;
    let ignored = names_in(ignored_mask(&piped.stdout_str()));
    assert!(ignored.is_empty(), "ignored on pipes: {ignored:?}");
    client.start(pty_params("terminal", &status)).await;
    let terminal = client.wait_closed("terminal").await;
    let ignored = names_in(ignored_mask(&terminal.pty_str()));
    assert!(ignored.is_empty(), "ignored on a terminal: {ignored:?}");

    // Each one, sent to a sleeping program, ends it with that signal.
    for (n, sig) in IGNORABLE.iter().enumerate() {
        if *sig == Signal::SIGWINCH {
            continue; // Its default is to do nothing.
        }
        let id = format!("sleeper-{n}");
        client.start(start_params(&id, &["sleep", "60"])).await;
        let result = client
            .call(
                "process/signal",
                json!({"processId": id, "signal": sig.as_str()}),
            )
            .await
            .expect("process/signal");
        assert_eq!(result["running"], true, "{sig}");
        let done = client.wait_closed(&id).await;
        assert_eq!(done.signal.as_deref(), Some(sig.as_str()), "{sig}");
    }

    // Right after the start answers, many times over: never lost.
    for n in 0..40 {
        let id = format!("at-once-{n}");
        client.start(start_params(&id, &["sleep", "60"])).await;
        client
            .call("process/signal", json!({"processId": id, "signal": "INT"}))
            .await
            .expect("process/signal");
        let done = client.wait_closed(&id).await;
        assert_eq!(done.signal.as_deref(), Some("SIGINT"), "start {n}");
    }
    server.shutdown().await;
}
