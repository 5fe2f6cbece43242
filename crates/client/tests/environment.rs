//! One test suite, two backends: every test below runs against the local
//! environment and against a real execd server over a loopback socket.

use std::time::Duration;

use execd_client::{EnvError, Environment, EnvironmentManager, ManagedProcess};
use execd_environment::traits::{read_file_to, write_file_from};
use execd_protocol::event::{EventKind, ProcessEvent};
use execd_protocol::process::{OutputStream, StartParams, TerminalSize, WriteStatus};
use execd_test_support::{
    both_backends, process_params, unique_name, write_stdin, Backend, TempDir, TIMEOUT,
};

/// A pipe process with a fresh id.
fn params(argv: &[&str]) -> StartParams {
    process_params(&unique_name("p"), argv)
}

/// Everything a process's event channel delivered.
#[derive(Debug, Default)]
struct Finished {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    pty: Vec<u8>,
    exit_code: Option<i32>,
    signal: Option<String>,
    seqs: Vec<u64>,
}

async fn next_event(
    events: &mut execd_environment::EventReceiver,
) -> Option<Result<ProcessEvent, EnvError>> {
    tokio::time::timeout(TIMEOUT, events.recv())
        .await
        .expect("event timed out")
}

/// Drain a channel to the end, checking order as we go.
async fn drain(events: &mut execd_environment::EventReceiver) -> Finished {
    let mut done = Finished::default();
    while let Some(event) = next_event(events).await {
        let event = event.expect("event error");
        done.seqs.push(event.seq);
        match event.kind {
            EventKind::Output { stream, chunk } => {
                assert!(done.exit_code.is_none(), "output after exit");
                match stream {
                    OutputStream::Stdout => done.stdout.extend_from_slice(&chunk),
                    OutputStream::Stderr => done.stderr.extend_from_slice(&chunk),
                    OutputStream::Pty => done.pty.extend_from_slice(&chunk),
                }
            }
            EventKind::Exited(exit) => {
                done.exit_code = Some(exit.code);
                done.signal = exit.signal;
            }
            EventKind::Closed => break,
        }
    }
    assert!(
        done.seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "seqs must increase without gaps: {:?}",
        done.seqs
    );
    done
}

/// Read events until the output (any stream) contains `needle`.
async fn wait_for_output(events: &mut execd_environment::EventReceiver, needle: &str) -> String {
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(needle) {
        match next_event(events).await {
            Some(Ok(ProcessEvent {
                kind: EventKind::Output { chunk, .. },
                ..
            })) => seen.extend_from_slice(&chunk),
            Some(Ok(other)) => panic!("{needle:?} never came; got {other:?} after {seen:?}"),
            Some(Err(err)) => panic!("event error: {err}"),
            None => panic!("channel ended before {needle:?}"),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

async fn runs_a_command_with_separate_streams(env: Environment) {
    let mut started = env
        .exec
        .start(params(&["bash", "-c", "echo out; echo err >&2; exit 5"]))
        .await
        .unwrap();
    let done = drain(&mut started.events).await;
    assert_eq!(done.seqs, vec![1, 2, 3, 4]);
    assert_eq!(done.stdout, b"out\n");
    assert_eq!(done.stderr, b"err\n");
    assert_eq!(done.exit_code, Some(5));
    let exit = started.process.wait().await.unwrap();
    assert_eq!(exit.code, 5);
}

async fn early_output_is_not_lost(env: Environment) {
    // Many short processes whose output races their start response.
    for _ in 0..20 {
        let mut started = env.exec.start(params(&["echo", "fast"])).await.unwrap();
        assert_eq!(drain(&mut started.events).await.stdout, b"fast\n");
    }
}

async fn start_errors_have_the_same_kind(env: Environment) {
    let err = env.exec.start(params(&[])).await.err().unwrap();
    assert!(
        matches!(err, EnvError::InvalidInput(ref m) if m.contains("argv must not be empty")),
        "{err:?}"
    );
    let err = env
        .exec
        .start(params(&["/no/such/program"]))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, EnvError::InvalidInput(ref m) if m.contains("/no/such/program")),
        "{err:?}"
    );
    let mut p = params(&["true"]);
    p.cwd = "/no/such/dir".into();
    let err = env.exec.start(p).await.err().unwrap();
    assert!(
        matches!(err, EnvError::InvalidInput(ref m) if m.contains("/no/such/dir")),
        "{err:?}"
    );
    // A failed start frees the id.
    let mut p = params(&["/no/such/program"]);
    let id = p.process_id.clone();
    assert!(env.exec.start(p.clone()).await.is_err());
    p.argv = vec!["true".into()];
    p.process_id = id;
    let mut started = env.exec.start(p.clone()).await.unwrap();
    drain(&mut started.events).await;
    // A live or closed record makes the id a duplicate.
    let err = env.exec.start(p).await.err().unwrap();
    assert!(
        matches!(err, EnvError::InvalidRequest(ref m) if m.contains("already exists")),
        "{err:?}"
    );
}

async fn strings_the_kernel_cannot_take_are_named(env: Environment) {
    let err = env
        .exec
        .start(params(&["echo", "a\0b"]))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, EnvError::InvalidInput(ref m) if m.contains("nul byte") && m.contains("a\\0b")),
        "{err:?}"
    );
    let mut p = params(&["true"]);
    p.env.insert("NAME=VALUE".into(), "x".into());
    let err = env.exec.start(p).await.err().unwrap();
    assert!(
        matches!(err, EnvError::InvalidInput(ref m) if m.contains("\"NAME=VALUE\" contains '='")),
        "{err:?}"
    );
    // Nothing was left behind: the next start runs.
    let mut started = env.exec.start(params(&["echo", "ok"])).await.unwrap();
    assert_eq!(drain(&mut started.events).await.stdout, b"ok\n");
}

async fn stdin_write_and_close(env: Environment) {
    let mut p = params(&["cat"]);
    p.pipe_stdin = true;
    let mut started = env.exec.start(p).await.unwrap();
    let status = write_stdin(&started, b"abc").await;
    assert_eq!(status, WriteStatus::Accepted);
    assert_eq!(
        started.process.close_stdin().await.unwrap(),
        WriteStatus::Accepted
    );
    let done = drain(&mut started.events).await;
    assert_eq!(done.stdout, b"abc");
    assert_eq!(done.exit_code, Some(0));
    // Without pipeStdin there is nothing to write to.
    let started = env.exec.start(params(&["sleep", "30"])).await.unwrap();
    let status = write_stdin(&started, b"x").await;
    assert_eq!(status, WriteStatus::StdinClosed);
    assert!(started.process.terminate().await.unwrap());
    assert_eq!(
        started.process.wait().await.unwrap().signal.as_deref(),
        Some("SIGTERM")
    );
}

async fn pty_resize_is_seen_by_the_program(env: Environment) {
    let mut p = params(&["bash", "-c", "stty size; read x; stty size"]);
    p.tty = true;
    p.size = Some(TerminalSize { rows: 30, cols: 90 });
    let mut started = env.exec.start(p).await.unwrap();
    wait_for_output(&mut started.events, "30 90").await;
    started
        .process
        .resize(TerminalSize {
            rows: 50,
            cols: 120,
        })
        .await
        .unwrap();
    write_stdin(&started, b"\n").await;
    let done = drain(&mut started.events).await;
    assert!(
        String::from_utf8_lossy(&done.pty).contains("50 120"),
        "{:?}",
        done.pty
    );
    // Pipe processes have no terminal to resize.
    let pipe = env.exec.start(params(&["sleep", "30"])).await.unwrap();
    let err = pipe
        .process
        .resize(TerminalSize { rows: 1, cols: 1 })
        .await
        .unwrap_err();
    assert!(
        matches!(err, EnvError::InvalidInput(ref m) if m.contains("no terminal")),
        "{err:?}"
    );
    pipe.process.terminate().await.unwrap();
}

async fn signals_by_name(env: Environment) {
    let mut started = env
        .exec
        .start(params(&[
            "bash",
            "-c",
            "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.05; done",
        ]))
        .await
        .unwrap();
    wait_for_output(&mut started.events, "ready").await;
    assert!(started.process.signal("USR1").await.unwrap());
    wait_for_output(&mut started.events, "got-usr1").await;
    let err = started.process.signal("SIGSEGV").await.unwrap_err();
    assert!(
        matches!(err, EnvError::InvalidInput(ref m) if m.contains("SIGSEGV")),
        "{err:?}"
    );
    assert!(started.process.signal("SIGKILL").await.unwrap());
    let done = drain(&mut started.events).await;
    assert_eq!(done.exit_code, Some(-1));
    assert_eq!(done.signal.as_deref(), Some("SIGKILL"));
}

async fn read_from_a_seq(env: Environment) {
    let mut p = params(&["bash", "-c", "echo one; read x; echo two"]);
    p.pipe_stdin = true;
    let mut started = env.exec.start(p).await.unwrap();
    wait_for_output(&mut started.events, "one").await;
    write_stdin(&started, b"\n").await;
    started.process.wait().await.unwrap();
    let all = started.process.read(0, None, None).await.unwrap();
    let texts: Vec<&[u8]> = all.chunks.iter().map(|c| &c.chunk[..]).collect();
    assert_eq!(texts, vec![&b"one\n"[..], &b"two\n"[..]]);
    assert!(all.exited);
    assert_eq!(all.exit_code, Some(0));
    let rest = started.process.read(1, None, Some(1000)).await.unwrap();
    assert_eq!(rest.chunks.len(), 1);
    assert_eq!(rest.chunks[0].seq, 2);
}

async fn managed_process_caps_output_keeping_head_and_tail(env: Environment) {
    let managed = ManagedProcess::start(&env, params(&["seq", "1", "100000"]), 1000)
        .await
        .unwrap();
    let state = tokio::time::timeout(TIMEOUT, managed.wait()).await.unwrap();
    assert!(state.closed && state.exited);
    assert_eq!(state.exit_code, Some(0));
    assert_eq!(state.failure, None);
    let output = managed.output();
    let total: usize = (1..=100000).map(|n: u32| n.to_string().len() + 1).sum();
    assert_eq!(output.total(), total as u64);
    assert!(output.head().starts_with(b"1\n2\n3\n"));
    assert!(output.tail().ends_with(b"99999\n100000\n"));
    assert_eq!(output.dropped(), total as u64 - 1000);
}

async fn managed_write_stdin_collects_the_answer(env: Environment) {
    let mut p = params(&[
        "bash",
        "-c",
        "while read line; do echo \"echo:$line\"; done",
    ]);
    p.pipe_stdin = true;
    let managed = ManagedProcess::start(&env, p, 64 * 1024).await.unwrap();
    let answer = managed
        .write_stdin(b"hello\n", Duration::from_millis(1500))
        .await
        .unwrap();
    assert_eq!(answer.render(), b"echo:hello\n");
    let answer = managed
        .write_stdin(b"again\n", Duration::from_millis(1500))
        .await
        .unwrap();
    assert_eq!(answer.render(), b"echo:again\n");
    assert!(!managed.state().exited);
    assert!(managed.terminate().await.unwrap());
    let state = tokio::time::timeout(TIMEOUT, managed.wait()).await.unwrap();
    assert_eq!(state.exit_code, Some(-1));
    assert_eq!(state.signal.as_deref(), Some("SIGTERM"));
}

async fn filesystem_operations(env: Environment) {
    let fs = &env.fs;
    let temp = TempDir::new("envfs");
    let dir = temp.path().display().to_string();
    fs.create_directory(&format!("{dir}/a/b"), true)
        .await
        .unwrap();
    let file = format!("{dir}/a/b/data.bin");
    let data: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    fs.write_file(&file, data.clone()).await.unwrap();
    assert_eq!(fs.read_file(&file).await.unwrap(), data);
    fs.append_file(&file, b"tail".to_vec()).await.unwrap();
    let (range, eof) = fs.read_range(&file, 70_000, 100).await.unwrap();
    assert_eq!((range.as_slice(), eof), (&b"tail"[..], true));
    let (range, eof) = fs.read_range(&file, 0, 3).await.unwrap();
    assert_eq!((range.as_slice(), eof), (&[0u8, 1, 2][..], false));

    let meta = fs.metadata(&file).await.unwrap();
    assert!(meta.is_file && !meta.is_directory && !meta.is_symlink);
    assert_eq!(meta.size, 70_004);
    let entries = fs.read_directory(&format!("{dir}/a")).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].file_name, "b");
    assert!(entries[0].is_directory);

    fs.copy(&format!("{dir}/a"), &format!("{dir}/copy"), true)
        .await
        .unwrap();
    assert_eq!(
        fs.read_file(&format!("{dir}/copy/b/data.bin"))
            .await
            .unwrap()
            .len(),
        70_004
    );

    let missing = format!("{dir}/missing");
    let err = fs.read_file(&missing).await.unwrap_err();
    assert!(
        matches!(err, EnvError::NotFound(ref m) if m.contains(&missing)),
        "{err:?}"
    );
    let err = fs.read_file("relative/path").await.unwrap_err();
    assert!(
        matches!(err, EnvError::InvalidInput(ref m) if m.contains("relative/path")),
        "{err:?}"
    );
    let err = fs
        .remove(&format!("{dir}/a"), false, false)
        .await
        .unwrap_err();
    assert!(matches!(err, EnvError::Failed(_)), "{err:?}");
    fs.remove(&missing, false, true).await.unwrap();

    fs.remove(&dir, true, false).await.unwrap();
    assert!(matches!(
        fs.metadata(&dir).await,
        Err(EnvError::NotFound(_))
    ));
}

async fn streaming_files_larger_than_one_piece(env: Environment) {
    let temp = TempDir::new("stream");
    let path = temp.text("data");
    let data: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut reader = &data[..];
    let mut steps = Vec::new();
    let written = write_file_from(env.fs.as_ref(), &path, &mut reader, |n| steps.push(n))
        .await
        .unwrap();
    assert_eq!(written, data.len() as u64);
    assert!(steps.len() >= 3, "expected several pieces: {steps:?}");
    let mut back = Vec::new();
    let read = read_file_to(env.fs.as_ref(), &path, &mut back, |_| {})
        .await
        .unwrap();
    assert_eq!(read, data.len() as u64);
    assert!(back == data, "streamed copy differs");
    env.fs.remove(&path, false, false).await.unwrap();
}

both_backends!(
    #[tokio::test]
    Backend::run:
    runs_a_command_with_separate_streams,
    early_output_is_not_lost,
    start_errors_have_the_same_kind,
    strings_the_kernel_cannot_take_are_named,
    stdin_write_and_close,
    pty_resize_is_seen_by_the_program,
    signals_by_name,
    read_from_a_seq,
    managed_process_caps_output_keeping_head_and_tail,
    managed_write_stdin_collects_the_answer,
    filesystem_operations,
    streaming_files_larger_than_one_piece,
);

// Remote-only behaviour: what happens when the transport goes away.

#[tokio::test]
async fn managed_process_fails_cleanly_when_the_connection_drops() {
    let (env, guard) = Backend::Remote.start().await;
    let managed = ManagedProcess::start(&env, params(&["sleep", "1000"]), 1024)
        .await
        .unwrap();
    guard.finish().await;
    let state = tokio::time::timeout(TIMEOUT, managed.wait())
        .await
        .expect("wait hung");
    let failure = state.failure.expect("a failure reason");
    assert!(failure.contains("connection lost"), "{failure}");
    // Calls fail fast with the same kind of error.
    let err = managed.write(&b"x"[..]).await.unwrap_err();
    assert!(matches!(err, EnvError::ConnectionLost(_)), "{err:?}");
    let err = env.exec.start(params(&["true"])).await.err().unwrap();
    assert!(matches!(err, EnvError::ConnectionLost(_)), "{err:?}");
}

#[tokio::test]
async fn manager_is_local_without_url_and_remote_with_one() {
    let local = EnvironmentManager::new(None);
    assert!(!local.environment().await.unwrap().remote);

    let dead = EnvironmentManager::new(Some("ws://127.0.0.1:1".into()));
    let err = dead.environment().await.err().unwrap();
    assert!(!err.to_string().contains("connection lost"), "{err}");
    assert!(
        matches!(err, EnvError::Connect(ref m) if m.starts_with("cannot connect to ws://127.0.0.1:1") && m.contains("EXECD_URL")),
        "{err:?}"
    );

    let (_, guard) = Backend::Remote.start().await;
    let url = guard.server().expect("a remote backend has a server").url();
    let manager = EnvironmentManager::new(Some(url));
    let env = manager.environment().await.unwrap();
    assert!(env.remote);
    let mut started = env
        .exec
        .start(params(&["echo", "via manager"]))
        .await
        .unwrap();
    assert_eq!(drain(&mut started.events).await.stdout, b"via manager\n");
    // The same environment is handed out again.
    let again = manager.environment().await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&env.exec, &again.exec));
    guard.finish().await;
}
