//! `execd run --env NAME`: the server, token and CA of a named environment
//! from the environments file (`$EXECD_ENVIRONMENTS`), beside `--env K=V`
//! variables; an unknown name, two names, or a name with `--url` are
//! usage errors that say so.

use execd_test_support::binary::{stderr_of, Execd};

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));

#[tokio::test]
async fn run_on_a_named_environment() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "named-env-token\n").unwrap();
    let token = token.to_str().unwrap();
    let server = EXECD.serve_with(&["--token-file", token]).await;
    let file = dir.path().join("environments.toml");
    std::fs::write(
        &file,
        format!(
            "[environments.box]\nurl = \"{}\"\ntoken_file = \"{token}\"\n\n[environments.other]\nurl = \"ws://127.0.0.1:9\"\n",
            server.url
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut command = EXECD.command(args);
        command
            .env("EXECD_ENVIRONMENTS", &file)
            .env_remove("EXECD_TOKEN")
            .stderr(std::process::Stdio::piped());
        execd_test_support::binary::output_of(command, None)
    };

    let out = run(&[
        "run",
        "--env",
        "box",
        "--env",
        "GREETING=hi",
        "--",
        "echo $GREETING from box",
    ])
    .await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hi from box\n",
        "{}",
        stderr_of(&out)
    );
    assert_eq!(out.status.code(), Some(0));

    let out = run(&["run", "--env", "nowhere", "--", "true"]).await;
    assert_eq!(out.status.code(), Some(255), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("no environment named \"nowhere\"") && err.contains("box, other"),
        "{err}"
    );

    let out = run(&["run", "--env", "box", "--env", "other", "--", "true"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("two environments"),
        "{}",
        stderr_of(&out)
    );

    let out = run(&["run", "--env", "box", "--url", &server.url, "--", "true"]).await;
    assert!(
        stderr_of(&out).contains("--url both name a server"),
        "{}",
        stderr_of(&out)
    );
}
