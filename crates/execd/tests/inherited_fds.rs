//! Descriptors `execd serve` inherited from whoever started it (a CI
//! runner's, a shell's, a make jobserver's) are not passed on to the
//! programs it starts: they get stdin, stdout and stderr only.

use std::os::fd::AsRawFd;

use execd_test_support::wire::{bash, start_params};
use execd_test_support::ws_client::Client;
use execd_test_support::Execd;

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));

#[tokio::test]
async fn programs_get_no_descriptor_the_server_inherited() {
    // A pipe without close-on-exec: execd serve inherits both ends.
    let (read, write) = nix::unistd::pipe().expect("pipe");
    let inherited = [read.as_raw_fd(), write.as_raw_fd()];
    let serve = EXECD.serve_with(&["--no-auth"]).await;
    drop((read, write));
    let mut client = Client::connect_initialized(&serve.url).await;
    // bash execs ls as its last command: $$ is ls, whose own directory
    // descriptor is the only one it adds.
    let script = "ls -l /proc/$$/fd/";
    client.start(start_params("fds", &bash(script))).await;
    let done = client.wait_closed("fds").await;
    assert_eq!(done.exit_code, Some(0), "{}", done.stderr_str());
    let listing = done.stdout_str();
    let mut fds: Vec<i32> = listing
        .lines()
        .filter(|line| line.starts_with('l') && !line.contains("/fd"))
        .filter_map(|line| {
            line.split(" -> ")
                .next()?
                .split_whitespace()
                .last()?
                .parse()
                .ok()
        })
        .collect();
    fds.sort_unstable();
    assert_eq!(
        fds,
        [0, 1, 2],
        "inherited {inherited:?}; the program has: {listing}"
    );
}
