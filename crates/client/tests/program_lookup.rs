//! Starting programs by name, both backends: a bare name is found in the
//! child's own `PATH` (relative entries from its cwd) as `execvp` would,
//! with argv[0] as given; a script without `#!` still runs with /bin/sh;
//! missing and non-executable programs are refused by name; and many
//! starts at once each deliver their output, `exited` and `closed` in order.

use std::os::unix::fs::PermissionsExt;

use execd_client::{EnvError, Environment};
use execd_environment::EventReceiver;
use execd_protocol::event::EventKind;
use execd_protocol::process::StartParams;
use execd_test_support::{both_backends, process_params, unique_name, Backend, TempDir, TIMEOUT};

/// A directory `bin` in a fresh temp dir holding `files` (name, text, mode).
fn bin_dir(files: &[(&str, &str, u32)]) -> TempDir {
    let dir = TempDir::new("lookup");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    for (name, text, mode) in files {
        let path = bin.join(name);
        std::fs::write(&path, text).expect("write program");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).expect("chmod");
    }
    dir
}

fn params_with_path(argv: &[&str], path: &str) -> StartParams {
    let mut params = process_params(&unique_name("lookup"), argv);
    params.env.insert("PATH".into(), path.into());
    params
}

/// Stdout, then the exit code; checks that `exited` comes before `closed`
/// and that seqs have no gap.
async fn finish(events: &mut EventReceiver) -> (Vec<u8>, i32) {
    let (mut stdout, mut code, mut last_seq) = (Vec::new(), None, None);
    loop {
        let event = tokio::time::timeout(TIMEOUT, events.recv())
            .await
            .expect("event in time")
            .expect("channel open")
            .expect("no event error");
        if let Some(last) = last_seq {
            assert_eq!(event.seq, last + 1, "seqs without gaps");
        }
        last_seq = Some(event.seq);
        match event.kind {
            EventKind::Output { chunk, .. } => {
                assert!(code.is_none(), "output after exited");
                stdout.extend_from_slice(&chunk);
            }
            EventKind::Exited(exit) => code = Some(exit.code),
            EventKind::Closed => return (stdout, code.expect("exited before closed")),
        }
    }
}

async fn run(env: &Environment, params: StartParams) -> (Vec<u8>, i32) {
    let mut started = env.exec.start(params).await.expect("start");
    finish(&mut started.events).await
}

async fn bare_names_are_found_in_the_childs_path(env: Environment) {
    let dir = bin_dir(&[("greet", "#!/bin/sh\necho \"hello $1\"\n", 0o755)]);
    // Only in the child's PATH, never in the server's.
    let path = format!("{}:/usr/bin:/bin", dir.text("bin"));
    let (out, code) = run(&env, params_with_path(&["greet", "you"], &path)).await;
    assert_eq!((out.as_slice(), code), (&b"hello you\n"[..], 0));

    // A relative entry is taken from the child's working directory.
    let mut params = params_with_path(&["greet", "there"], "bin:/usr/bin:/bin");
    params.cwd = dir.path().to_string_lossy().into_owned();
    let (out, code) = run(&env, params).await;
    assert_eq!((out.as_slice(), code), (&b"hello there\n"[..], 0));

    // argv[0] stays the name the client gave, not the path found.
    let params = params_with_path(&["cat", "/proc/self/cmdline"], "/usr/bin:/bin");
    let (out, _) = run(&env, params).await;
    assert_eq!(out, b"cat\0/proc/self/cmdline\0");
}

async fn a_script_without_shebang_runs_with_sh(env: Environment) {
    let dir = bin_dir(&[("plain", "echo \"plain $1\"\n", 0o755)]);
    let path = format!("{}:/usr/bin:/bin", dir.text("bin"));
    let (out, code) = run(&env, params_with_path(&["plain", "script"], &path)).await;
    assert_eq!((out.as_slice(), code), (&b"plain script\n"[..], 0));
}

async fn missing_and_unexecutable_programs_are_refused_by_name(env: Environment) {
    let dir = bin_dir(&[("noexec", "#!/bin/sh\necho no\n", 0o644)]);
    let path = format!("{}:/usr/bin:/bin", dir.text("bin"));
    let err = env
        .exec
        .start(params_with_path(&["noexec"], &path))
        .await
        .err()
        .expect("a file without x bits is refused");
    assert!(
        matches!(err, EnvError::InvalidInput(ref m) if m.contains("\"noexec\"") && m.contains("permission denied")),
        "{err:?}"
    );
    let err = env
        .exec
        .start(params_with_path(&["no-such-program-4711"], &path))
        .await
        .err()
        .expect("a missing program is refused");
    assert!(
        matches!(err, EnvError::InvalidInput(ref m) if m.contains("no-such-program-4711") && m.contains("not found")),
        "{err:?}"
    );
}

async fn many_starts_at_once_each_close_in_order(env: Environment) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let env = env.clone();
        tasks.spawn(async move {
            let line = format!("n{i}");
            let params = process_params(&unique_name("many"), &["sh", "-c", "echo $0", &line]);
            let (out, code) = run(&env, params).await;
            assert_eq!(
                (String::from_utf8_lossy(&out).into_owned(), code),
                (format!("{line}\n"), 0)
            );
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("a start at once failed");
    }
}

both_backends!(
    #[tokio::test]
    Backend::run:
    bare_names_are_found_in_the_childs_path,
    a_script_without_shebang_runs_with_sh,
    missing_and_unexecutable_programs_are_refused_by_name,
    many_starts_at_once_each_close_in_order,
);
