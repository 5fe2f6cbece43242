//! The client library over the stdio transport: `ExecServerClient` starts
//! `execd serve --listen stdio` as a child (as it would `ssh host execd
//! serve --listen stdio`) and the remote environment works through it.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use execd_client::{ExecServerClient, RemoteEnvironment};
use execd_environment::collect;
use execd_protocol::process::StartParams;

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
        process_id: "stdio-cat".into(),
        argv: vec!["bash".into(), "-c".into(), "cat; echo done:$? >&2".into()],
        cwd: "/".into(),
        env: HashMap::from([("PATH".into(), "/usr/bin:/bin".into())]),
        tty: false,
        pipe_stdin: true,
        arg0: None,
        size: None,
        exec_policy: None,
        sandbox: None,
    };
    let mut started = env.exec.start(params).await.expect("start");
    started
        .process
        .write(Bytes::from_static(b"over stdio\n"))
        .await
        .unwrap();
    started.process.close_stdin().await.unwrap();
    let done = tokio::time::timeout(Duration::from_secs(30), collect(&mut started.events))
        .await
        .expect("closed in time")
        .expect("no event error");
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
