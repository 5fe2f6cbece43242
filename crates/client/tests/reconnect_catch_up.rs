//! Catch-ups cut short: a process streams steadily while test-support's
//! `FaultProxy` resets the connection again and again, every few hundred
//! KiB to few MiB, so that cuts land while a resume's catch-up
//! `process/read` is in flight or just after its answer came, while the
//! client is still merging it. Round after round (bounded in time), the
//! harness must get exactly the bytes the program wrote, each event once
//! with seqs 1, 2, 3... and no gap error. Unwindowed processes (output keeps
//! coming while a catch-up is merged; the server retains all of it) and
//! windowed ones (the server stops reading while output is unacknowledged)
//! both run.

use std::time::{Duration, Instant};

use execd_client::{
    ConnectOptions, EnvError, Environment, ExecServerClient, LinkState, ReconnectPolicy,
    RemoteEnvironment,
};
use execd_environment::EventReceiver;
use execd_protocol::event::EventKind;
use execd_server::ServerConfig;
use execd_test_support::{
    process_params, start_server_with, unique_name, Direction, FaultProxy, RUN_TIMEOUT, TIMEOUT,
};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// How long the rounds may go on (each round is bounded on its own too).
const BUDGET: Duration = Duration::from_secs(15);

/// Numbers printed per round: about 6.9 MB of `seq` output.
const LINES: u32 = 1_000_000;

/// Lines printed one write each by the program of the aimed test.
const SMALL_LINES: u32 = 200_000;

/// What `seq 1 LINES` prints.
fn expected_output() -> Vec<u8> {
    (1..=LINES)
        .flat_map(|n| format!("{n}\n").into_bytes())
        .collect()
}

async fn connect(
    proxy: &FaultProxy,
    output_window: Option<u64>,
) -> (ExecServerClient, Environment) {
    let options = ConnectOptions {
        reconnect: Some(ReconnectPolicy {
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            give_up_after: Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(5),
        }),
        output_window,
        ..ConnectOptions::default()
    };
    let client = ExecServerClient::connect_with(&proxy.url(), options)
        .await
        .expect("connect through the proxy");
    let env = RemoteEnvironment::new(client.clone()).into_environment();
    (client, env)
}

/// The output of a stream whose events come with seqs 1, 2, 3..., output
/// before the exit, `Closed` last; the first error ends it.
async fn drain(events: &mut EventReceiver) -> Result<(Vec<u8>, Option<i32>), EnvError> {
    let (mut output, mut exit_code, mut seq) = (Vec::new(), None, 0);
    loop {
        let event = tokio::time::timeout(RUN_TIMEOUT, events.recv())
            .await
            .expect("no event within the run timeout")
            .expect("the channel ended before Closed")?;
        seq += 1;
        assert_eq!(event.seq, seq, "seqs are contiguous from 1");
        match event.kind {
            EventKind::Output { chunk, .. } => {
                assert!(exit_code.is_none(), "output after the exit event");
                output.extend_from_slice(&chunk);
            }
            EventKind::Exited(exit) => exit_code = Some(exit.code),
            EventKind::Closed => return Ok((output, exit_code)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_during_catch_ups_lose_and_repeat_nothing() {
    // Unwindowed output is kept whole, so that a catch-up never finds a
    // real gap (output evicted), only the ones a client might make.
    let mut config = ServerConfig::default();
    config.table.retained_bytes_per_process = 64 * MIB as usize;
    let server = start_server_with(config).await;
    let expected = expected_output();
    let started_at = Instant::now();
    let (mut rounds, mut cuts) = (0u64, 0u64);
    while rounds < 4 || (started_at.elapsed() < BUDGET && rounds < 30) {
        // A fresh proxy and client a round: each round's cuts are its own.
        let proxy = FaultProxy::in_front_of(&server.url()).await;
        let window = [None, Some(4 * MIB), None, Some(256 * KIB)][rounds as usize % 4];
        let (_client, env) = connect(&proxy, window).await;
        proxy.cut_randomly(Direction::Down, rounds + 1, 20, 64 * KIB, 2 * MIB);
        let id = unique_name("steady");
        let params = process_params(&id, &["seq", "1", &LINES.to_string()]);
        let mut started = env.exec.start(params).await.expect("start");
        let (output, exit_code) = drain(&mut started.events)
            .await
            .unwrap_or_else(|err| panic!("round {rounds} (window {window:?}): {err}"));
        assert_eq!(exit_code, Some(0), "round {rounds}");
        assert_eq!(output.len(), expected.len(), "round {rounds}: length");
        assert!(output == expected, "round {rounds}: the bytes differ");
        cuts += proxy.cuts();
        rounds += 1;
    }
    assert!(
        cuts >= rounds * 2,
        "too few cuts landed mid-stream ({cuts} in {rounds} rounds): the test tests nothing"
    );
    server.shutdown().await;
}

/// Aimed at the merge itself: output piles up behind a stalled proxy (many
/// small events), the connection is cut, and once the session is resumed
/// the new connection is cut too, at the first event the resumed stream
/// brings, while the catch-up's answer may still be being merged. The next
/// resume must catch up from what was really delivered, holding the live
/// events of its connection instead of taking them for a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_while_a_catch_up_is_merged_loses_nothing() {
    let mut config = ServerConfig::default();
    config.table.retained_bytes_per_process = 64 * MIB as usize;
    let server = start_server_with(config).await;
    let proxy = FaultProxy::in_front_of(&server.url()).await;
    let (client, env) = connect(&proxy, None).await;
    let mut link = client.link_state();
    // One line a write: an event each, as fast as bash goes.
    let script = format!("i=0; while [ $i -lt {SMALL_LINES} ]; do i=$((i+1)); echo $i; done");
    let params = process_params(&unique_name("lines"), &["bash", "-c", &script]);
    let mut started = env.exec.start(params).await.expect("start");
    let (mut output, mut seq, mut exit_code) = (Vec::new(), 0u64, None);
    let (mut rounds, mut next_round_at, mut closed) = (0, 100, false);
    loop {
        let mut cut_at_next_event = false;
        if rounds < 25 && exit_code.is_none() && seq >= next_round_at {
            rounds += 1;
            next_round_at = seq + 300;
            proxy.stall(Some(Direction::Down));
            // Not a synchronisation: only time for output to pile up.
            tokio::time::sleep(Duration::from_millis(30)).await;
            let accepted = proxy.accepted();
            proxy.cut();
            proxy.unstall();
            // Resumed: connected again, on a connection made after the cut.
            let resumed =
                link.wait_for(|s| *s == LinkState::Connected && proxy.accepted() > accepted);
            tokio::time::timeout(TIMEOUT, resumed)
                .await
                .expect("the session resumed in time")
                .expect("the client is alive");
            // What came before the cut is taken first.
            while let Ok(Some(event)) =
                tokio::time::timeout(Duration::ZERO, started.events.recv()).await
            {
                let event = event.unwrap_or_else(|err| panic!("round {rounds}: {err}"));
                seq += 1;
                assert_eq!(event.seq, seq, "seqs are contiguous from 1");
                closed |= take(event.kind, &mut output, &mut exit_code);
            }
            if closed {
                break;
            }
            cut_at_next_event = exit_code.is_none();
        }
        let event = tokio::time::timeout(RUN_TIMEOUT, started.events.recv())
            .await
            .expect("no event within the run timeout")
            .expect("the channel ended before Closed")
            .unwrap_or_else(|err| panic!("round {rounds}, after seq {seq}: {err}"));
        if cut_at_next_event {
            proxy.cut();
        }
        seq += 1;
        assert_eq!(event.seq, seq, "seqs are contiguous from 1");
        if take(event.kind, &mut output, &mut exit_code) {
            break;
        }
    }
    assert_eq!(exit_code, Some(0));
    let expected: Vec<u8> = (1..=SMALL_LINES)
        .flat_map(|n| format!("{n}\n").into_bytes())
        .collect();
    assert_eq!(output.len(), expected.len(), "length");
    assert!(output == expected, "the bytes differ");
    assert!(rounds >= 5, "only {rounds} rounds before the program ended");
    server.shutdown().await;
}

/// Add one event to what was seen; true once it is `Closed`.
fn take(kind: EventKind, output: &mut Vec<u8>, exit_code: &mut Option<i32>) -> bool {
    match kind {
        EventKind::Output { chunk, .. } => {
            assert!(exit_code.is_none(), "output after the exit event");
            output.extend_from_slice(&chunk);
            false
        }
        EventKind::Exited(exit) => {
            *exit_code = Some(exit.code);
            false
        }
        EventKind::Closed => true,
    }
}
