//! The client library over the stdio transport: `ExecServerClient` starts
//! `execd serve --listen stdio` as a child (as it would `ssh host execd
//! serve --listen stdio`) and the remote environment works through it.

use execd_client::{ExecServerClient, RemoteEnvironment};
use execd_protocol::process::StartParams;
use execd_test_support::{collect_in_time, process_params, write_stdin};

#[tokio::test]
async fn remote_environment_over_a_child_s_stdio() {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_execd"));
    command.args(["serve", "--listen", "stdio"]);
    let client = ExecServerClient::connect_stdio(command)
        .await
        .expect("connect over stdio");
    assert_eq!(client.session_id().len(), 36);
    let env = RemoteEnvironment::new(client.clone()).into_environment();

    let params = StartParams {
        pipe_stdin: true,
        ..process_params("stdio-cat", &["bash", "-c", "cat; echo done:$? >&2"])
    };
    let mut started = env.exec.start(params).await.expect("start");
    write_stdin(&started, b"over stdio\n").await;
    started.process.close_stdin().await.unwrap();
    let done = collect_in_time(&mut started.events).await;
    let exit = done.code();
    let (stdout, stderr) = (done.stdout, done.stderr);
    assert_eq!(stdout, b"over stdio\n");
    assert_eq!(stderr, b"done:0\n");
    assert_eq!(exit, Some(0));

    let data = env
        .fs
        .read_file("/proc/self/cmdline")
        .await
        .expect("read a file");
    assert!(String::from_utf8_lossy(&data).contains("serve"));
}
