//! The `Command` builder on both backends (this machine, and a real server
//! over a real socket): `output()` keeps exit code, stdout and stderr apart,
//! stdin bytes reach the program exactly (more than the server's stdin
//! queue too), cwd/env/tty apply, `status()` reports signals, `spawn()`
//! gives a live `ManagedProcess`; `StartParams::new` has usable defaults;
//! and a URL where nothing listens says "cannot connect", not "connection lost".

use execd_client::{EnvError, Environment, EnvironmentManager, RemoteEnvironment, StartParams};
use execd_test_support::{both_backends, Backend, RUN_TIMEOUT};

async fn within<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(RUN_TIMEOUT, work)
        .await
        .expect("the command did not finish in time")
}

async fn output_keeps_streams_and_code_apart(env: Environment) {
    let out = within(
        env.command("bash")
            .args([
                "-c",
                "echo out; echo err >&2; printf \"$K\"; pwd >&2; exit 3",
            ])
            .cwd("/usr")
            .env("K", "V")
            .output(),
    )
    .await
    .unwrap();
    assert_eq!(out.stdout, b"out\nV");
    assert_eq!(out.stderr, b"err\n/usr\n");
    assert_eq!((out.status.code(), out.status.success()), (Some(3), false));
    assert_eq!(out.status.to_string(), "exit status: 3");
}

async fn stdin_bytes_arrive_exactly(env: Environment) {
    let data: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let out = within(env.command("cat").stdin(data.clone()).output())
        .await
        .unwrap();
    assert!(
        out.stdout == data,
        "cat returned {} bytes, not the {} sent",
        out.stdout.len(),
        data.len()
    );
    assert!(out.status.success());
    // A program that stops reading early does not make the feeding fail.
    let head = within(env.command("head").args(["-c", "3"]).stdin(data).output())
        .await
        .unwrap();
    assert_eq!(head.stdout, [0, 1, 2]);
}

async fn status_reports_signals_and_tty_merges(env: Environment) {
    let killed = within(env.command("bash").args(["-c", "kill -KILL $$"]).status())
        .await
        .unwrap();
    assert_eq!((killed.code(), killed.signal()), (None, Some("SIGKILL")));
    let tty = within(
        env.command("bash")
            .args(["-c", "test -t 1 && stty size"])
            .tty(true)
            .terminal_size(33, 101)
            .output(),
    )
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&tty.stdout).contains("33 101"),
        "{tty:?}"
    );
    assert!(tty.stderr.is_empty());
}

async fn spawn_gives_a_managed_process(env: Environment) {
    let mut command = env.command("bash");
    command.args(["-c", "read x; echo got:$x"]).stdin_piped();
    let managed = within(command.spawn()).await.unwrap();
    managed.write(&b"abc\n"[..]).await.unwrap();
    let state = within(managed.wait()).await;
    assert_eq!(
        (state.exit_code, state.closed),
        (Some(0), true),
        "{state:?}"
    );
    assert_eq!(managed.output().render(), b"got:abc\n");
    // The same Command runs again under a fresh process id.
    let again = within(command.spawn()).await.unwrap();
    assert_ne!(again.id(), managed.id());
    assert!(again.terminate().await.unwrap());
    // A missing program is the environment's usual error.
    let err = within(env.command("/no/such/program-xyz").output())
        .await
        .unwrap_err();
    assert!(
        matches!(err, EnvError::InvalidInput(ref m) | EnvError::NotFound(ref m) if m.contains("program-xyz")),
        "{err:?}"
    );
}

async fn start_params_new_runs_as_is(env: Environment) {
    let params = StartParams::new(["sh", "-c", "echo $PATH; pwd"]);
    assert!(params.process_id.starts_with("proc-"));
    assert_ne!(params.process_id, StartParams::new(["true"]).process_id);
    let mut started = env.exec.start(params).await.unwrap();
    let collected = within(execd_client::collect(&mut started.events))
        .await
        .unwrap();
    assert_eq!(
        collected.stdout_text(),
        format!("{}\n/\n", execd_client::DEFAULT_PATH)
    );
}

both_backends!(
    #[tokio::test]
    Backend::run:
    output_keeps_streams_and_code_apart,
    stdin_bytes_arrive_exactly,
    status_reports_signals_and_tty_merges,
    spawn_gives_a_managed_process,
    start_params_new_runs_as_is,
);

#[tokio::test]
async fn a_url_that_never_answered_says_cannot_connect() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = RemoteEnvironment::connect(&url).await.err().unwrap();
    assert!(matches!(err, EnvError::Connect(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot connect to {url}")),
        "{message}"
    );
    assert!(!message.contains("connection lost"), "{message}");
    let err = EnvironmentManager::new(Some(url.clone()))
        .environment()
        .await
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("cannot connect to"), "{err}");
}
