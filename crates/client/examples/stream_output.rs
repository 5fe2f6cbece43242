//! Follow a long-running command event by event: each output chunk as it
//! arrives (numbered, in order), then its exit, on `EXECD_URL`'s server or
//! this machine.
//!
//! `cargo run -p execd-client --example stream_output`

use execd_client::{EnvError, EnvironmentManager, EventKind};

#[tokio::main]
async fn main() -> Result<(), EnvError> {
    let env = EnvironmentManager::from_env().environment().await?;
    let mut started = env
        .command("bash")
        .args([
            "-c",
            "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done; echo done >&2",
        ])
        .start()
        .await?;
    while let Some(event) = started.events.recv().await {
        let event = event?;
        match event.kind {
            EventKind::Output { stream, chunk } => {
                print!(
                    "[{} {stream:?}] {}",
                    event.seq,
                    String::from_utf8_lossy(&chunk)
                )
            }
            EventKind::Exited(exit) => println!("[{}] exited: {exit:?}", event.seq),
            EventKind::Closed => break,
        }
    }
    Ok(())
}
