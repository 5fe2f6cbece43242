//! `execd cp --env NAME`: `:/path` operands mean the server of a named
//! environment from the environments file (`$EXECD_ENVIRONMENTS`), reached
//! with that environment's token; an unknown name is an error naming it.

use execd_test_support::binary::{stderr_of, Execd};

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));

#[tokio::test]
async fn cp_to_and_from_a_named_environment() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "named-env-cp-token\n").unwrap();
    let token = token.to_str().unwrap();
    let server = EXECD.serve_with(&["--token-file", token]).await;
    let file = dir.path().join("environments.toml");
    std::fs::write(
        &file,
        format!(
            "[environments.box]\nurl = \"{}\"\ntoken_file = \"{token}\"\n",
            server.url
        ),
    )
    .unwrap();
    let cp = |args: &[&str]| {
        let mut command = EXECD.command(args);
        command
            .env("EXECD_ENVIRONMENTS", &file)
            .env_remove("EXECD_TOKEN")
            .env_remove("EXECD_URL")
            .stderr(std::process::Stdio::piped());
        execd_test_support::binary::output_of(command, None)
    };
    let local = dir.path().join("local.txt");
    std::fs::write(&local, b"carried by name\n").unwrap();
    let remote = dir.path().join("remote.txt");
    let back = dir.path().join("back.txt");

    // Up: the token comes from the environment (the server demands one).
    let out = cp(&[
        "cp",
        "--env",
        "box",
        local.to_str().unwrap(),
        &format!(":{}", remote.display()),
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(std::fs::read(&remote).unwrap(), b"carried by name\n");

    // Down again.
    let out = cp(&[
        "cp",
        "--env",
        "box",
        &format!(":{}", remote.display()),
        back.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(std::fs::read(&back).unwrap(), b"carried by name\n");

    let out = cp(&[
        "cp",
        "--env",
        "nowhere",
        local.to_str().unwrap(),
        &format!(":{}", remote.display()),
    ])
    .await;
    assert_ne!(out.status.code(), Some(0));
    let err = stderr_of(&out);
    assert!(
        err.contains("no environment named \"nowhere\"") && err.contains("box"),
        "{err}"
    );
}
