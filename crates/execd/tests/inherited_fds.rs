//! Descriptors `execd serve` inherited from whoever started it (a CI
//! runner's, a shell's, a make jobserver's) are not passed on to the
//! programs it starts: they get stdin, stdout and stderr only.

use std::os::fd::AsRawFd;

use execd_test_support::binary::{pass_descriptor, ExecdServer};
use execd_test_support::wire::{bash, start_params};
use execd_test_support::ws_client::Client;
use execd_test_support::Execd;
use nix::fcntl::OFlag;

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));

#[tokio::test]
async fn programs_get_no_descriptor_the_server_inherited() {
    // A pipe execd serve inherits both ends of, without close-on-exec.
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe");
    let inherited = [read.as_raw_fd(), write.as_raw_fd()];
    let mut command = EXECD.serve_command(&["--no-auth"]);
    for fd in inherited {
        pass_descriptor(&mut command, fd, fd);
    }
    let serve = ExecdServer::start(command).await;
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
