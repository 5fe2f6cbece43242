//! `outputWindow` through the environment traits: a process whose event
//! receiver is not consumed stops at its window (the program blocks), and
//! consuming the events (which acknowledges them through the receiver's
//! ack hook) lets it run to the end with nothing lost.
//!
//! The body is backend-neutral and runs on both environments (the remote
//! one's client sends `process/ack` through the same hook).

use execd_environment::{Environment, EventKind};
use execd_test_support::{process_params, unique_name, Backend, TIMEOUT};

const WINDOW: u64 = 64 * 1024;
const TOTAL: usize = 1024 * 1024;

async fn a_window_holds_output_until_the_consumer_takes_it(env: Environment) {
    let mut params = process_params(&unique_name("w"), &["head", "-c", "1048576", "/dev/zero"]);
    params.output_window = Some(WINDOW);
    let mut started = env.exec.start(params).await.expect("start");
    // Unconsumed, the output stops at exactly the window...
    let (mut retained, mut last_seq) = (0, 0);
    while retained < WINDOW as usize {
        let read = started
            .process
            .read(last_seq, None, Some(TIMEOUT.as_millis() as u64))
            .await
            .expect("read");
        retained += read.chunks.iter().map(|c| c.chunk.len()).sum::<usize>();
        last_seq = read.chunks.last().map_or(last_seq, |c| c.seq);
    }
    assert_eq!(retained, WINDOW as usize);
    // ... nothing more comes (a long-poll that ends by itself)...
    let read = started
        .process
        .read(last_seq, None, Some(500))
        .await
        .expect("read");
    assert!(
        read.chunks.is_empty() && !read.exited,
        "the window did not hold: {read:?}"
    );
    // ... and taking the events lets it finish, every byte there.
    let mut received = 0;
    loop {
        let event = tokio::time::timeout(TIMEOUT, started.events.recv())
            .await
            .expect("an event in time")
            .expect("the channel is open")
            .expect("a good event");
        match event.kind {
            EventKind::Output { chunk, .. } => received += chunk.len(),
            EventKind::Exited(exit) => assert_eq!(exit.code, 0),
            EventKind::Closed => break,
        }
    }
    assert_eq!(received, TOTAL);
}

#[tokio::test]
async fn local_window_holds_output_until_consumed() {
    Backend::Local
        .run(a_window_holds_output_until_the_consumer_takes_it)
        .await;
}

#[tokio::test]
async fn remote_window_holds_output_until_consumed() {
    Backend::Remote
        .run(a_window_holds_output_until_the_consumer_takes_it)
        .await;
}
