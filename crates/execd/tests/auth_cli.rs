//! `execd serve` with authentication, from the command line: a token from
//! `--token-file` or `EXECD_TOKEN` lets `execd run` in and anything else is
//! a clear 401; with no token given both sides use the per-user default
//! file (created once, mode 0600, shared by servers started together);
//! `--no-auth` and token-less listening are refused off loopback; `wss://`
//! works with the CA given to the client. Every process runs with a
//! temporary HOME and without inherited `EXECD_*`/`XDG_STATE_HOME`, and
//! every server is killed when its handle is dropped.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use execd_test_support::tls::certificates;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Error as WsError;

const EXECD: &str = env!("CARGO_BIN_EXE_execd");
const TIMEOUT: Duration = Duration::from_secs(60);

/// `execd` with `home` as HOME and nothing inherited that picks a server or token.
fn execd(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(EXECD);
    command
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_STATE_HOME")
        .env_remove("EXECD_URL")
        .env_remove("EXECD_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A running `execd serve` and the URL it printed.
struct Server {
    child: Child,
    url: String,
    _stdout: Lines<BufReader<ChildStdout>>,
}

async fn serve(mut command: Command) -> Server {
    let mut child = command.spawn().expect("spawn execd serve");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .expect("execd serve printed no URL in time")
        .expect("read execd serve stdout");
    let Some(url) = url else {
        let output = child
            .wait_with_output()
            .await
            .expect("wait for execd serve");
        panic!(
            "execd serve exited before printing its URL: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    Server {
        child,
        url,
        _stdout: lines,
    }
}

/// Run to completion, bounded.
async fn output(mut command: Command) -> Output {
    let child = command.spawn().expect("spawn execd");
    tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .expect("execd did not finish in time")
        .expect("wait for execd")
}

/// `execd run ... -- bash -c 'echo ran:$1' _ WORD`; asserts success.
async fn assert_runs(home: &Path, url: &str, extra: &[&str], env: &[(&str, &str)]) {
    let mut args = vec!["run", "--url", url];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--exec", "--", "bash", "-c", "echo ran:$1", "_", "yes"]);
    let mut command = execd(home, &args);
    for (key, value) in env {
        command.env(key, value);
    }
    let out = output(command).await;
    assert!(
        out.status.success() && out.stdout == b"ran:yes\n",
        "execd run {extra:?} {env:?} failed: {out:?}"
    );
}

/// `execd run` that must fail; its stderr.
async fn run_fails(home: &Path, url: &str, extra: &[&str], env: &[(&str, &str)]) -> String {
    let mut args = vec!["run", "--url", url];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "true"]);
    let mut command = execd(home, &args);
    for (key, value) in env {
        command.env(key, value);
    }
    let out = output(command).await;
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn token_file(dir: &Path, name: &str, token: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The HTTP status of a raw handshake without any token.
async fn status_without_token(url: &str) -> StatusCode {
    match tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake timed out")
    {
        Ok((_, response)) => response.status(),
        Err(WsError::Http(response)) => response.status(),
        Err(other) => panic!("handshake failed without an HTTP answer: {other}"),
    }
}

#[tokio::test]
async fn token_file_or_env_lets_run_in_and_nothing_else_does() {
    let home = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let file = token_file(secrets.path(), "token", "file-secret");
    let file_arg = file.to_str().unwrap();
    let server = serve(execd(
        home.path(),
        &[
            "serve",
            "--listen",
            "ws://127.0.0.1:0",
            "--token-file",
            file_arg,
        ],
    ))
    .await;
    assert_eq!(
        status_without_token(&server.url).await,
        StatusCode::UNAUTHORIZED
    );

    assert_runs(home.path(), &server.url, &["--token-file", file_arg], &[]).await;
    assert_runs(
        home.path(),
        &server.url,
        &[],
        &[("EXECD_TOKEN", "file-secret")],
    )
    .await;

    let stderr = run_fails(home.path(), &server.url, &[], &[]).await;
    assert!(
        stderr.contains("HTTP 401")
            && stderr.contains("EXECD_TOKEN")
            && stderr.contains("--token-file"),
        "no token: {stderr}"
    );
    let stderr = run_fails(home.path(), &server.url, &[], &[("EXECD_TOKEN", "wrong")]).await;
    assert!(
        stderr.contains("refused the token (HTTP 401)"),
        "wrong token: {stderr}"
    );
    let wrong = token_file(secrets.path(), "wrong", "wrong-secret");
    let stderr = run_fails(
        home.path(),
        &server.url,
        &["--token-file", wrong.to_str().unwrap()],
        &[],
    )
    .await;
    assert!(
        stderr.contains("refused the token (HTTP 401)"),
        "wrong file: {stderr}"
    );
    // No default file was made: the server had its token.
    assert!(!home.path().join(".local/state/execd/token").exists());
    drop(server);
}

#[tokio::test]
async fn serve_takes_the_token_from_the_environment() {
    let home = tempfile::tempdir().unwrap();
    let mut command = execd(home.path(), &["serve", "--listen", "ws://127.0.0.1:0"]);
    command.env("EXECD_TOKEN", "env-secret");
    let server = serve(command).await;
    assert_eq!(
        status_without_token(&server.url).await,
        StatusCode::UNAUTHORIZED
    );
    assert_runs(
        home.path(),
        &server.url,
        &[],
        &[("EXECD_TOKEN", "env-secret")],
    )
    .await;
    assert!(!home.path().join(".local/state/execd/token").exists());
    drop(server);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn default_token_file_needs_no_configuration() {
    let home = tempfile::tempdir().unwrap();
    let server = serve(execd(
        home.path(),
        &["serve", "--listen", "ws://127.0.0.1:0"],
    ))
    .await;
    let file = home.path().join(".local/state/execd/token");
    let token = std::fs::read_to_string(&file).expect("serve created the default token file");
    let token = token.trim().to_string();
    assert_eq!(token.len(), 64, "{token:?}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token:?}");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    assert_eq!(
        status_without_token(&server.url).await,
        StatusCode::UNAUTHORIZED
    );
    assert_runs(home.path(), &server.url, &[], &[]).await;

    // A second server reuses the file; run reaches both.
    let second = serve(execd(
        home.path(),
        &["serve", "--listen", "ws://127.0.0.1:0"],
    ))
    .await;
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    assert_runs(home.path(), &second.url, &[], &[]).await;
    assert_runs(home.path(), &server.url, &[], &[]).await;

    // Another user's view (a HOME without the file) gets a clear 401.
    let stranger = tempfile::tempdir().unwrap();
    let stderr = run_fails(stranger.path(), &server.url, &[], &[]).await;
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    drop((server, second));
}

#[tokio::test]
async fn default_token_file_follows_xdg_state_home() {
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let xdg = [("XDG_STATE_HOME", state.path().to_str().unwrap())];
    let mut command = execd(home.path(), &["serve", "--listen", "ws://127.0.0.1:0"]);
    command.envs(xdg);
    let server = serve(command).await;
    let file = state.path().join("execd/token");
    assert_eq!(mode(&file), 0o600, "no token file at {}", file.display());
    assert!(!home.path().join(".local/state/execd/token").exists());
    assert_runs(home.path(), &server.url, &[], &xdg).await;
    drop(server);
}

#[tokio::test]
async fn servers_started_together_share_one_default_token() {
    let home = tempfile::tempdir().unwrap();
    let starting: Vec<_> = (0..6)
        .map(|_| {
            serve(execd(
                home.path(),
                &["serve", "--listen", "ws://127.0.0.1:0"],
            ))
        })
        .collect();
    let servers = futures_util::future::join_all(starting).await;
    let file = home.path().join(".local/state/execd/token");
    let token = std::fs::read_to_string(&file).unwrap();
    for server in &servers {
        assert_runs(home.path(), &server.url, &[], &[]).await;
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        token,
        "the token changed"
    );
    // No leftovers of the creation next to the file.
    let entries: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("token")]);
    drop(servers);
}

#[tokio::test]
async fn a_loose_default_token_file_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".local/state/execd");
    std::fs::create_dir_all(&dir).unwrap();
    let file = token_file(&dir, "token", "loose-secret");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = output(execd(
        home.path(),
        &["serve", "--listen", "ws://127.0.0.1:0"],
    ))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr.contains("chmod 600") && stderr.contains(file.to_str().unwrap()),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "loose-secret\n",
        "the file was touched"
    );
}

#[tokio::test]
async fn no_auth_and_token_less_listening_only_on_loopback() {
    let home = tempfile::tempdir().unwrap();
    let out = output(execd(
        home.path(),
        &["serve", "--listen", "ws://0.0.0.0:0", "--no-auth"],
    ))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "--no-auth on 0.0.0.0 started: {out:?}"
    );
    assert!(
        stderr.contains("--no-auth") && stderr.contains("loopback"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "it printed a URL: {out:?}");

    let out = output(execd(home.path(), &["serve", "--listen", "ws://0.0.0.0:0"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "token-less 0.0.0.0 started: {out:?}");
    assert!(
        stderr.contains("without a token") && stderr.contains("EXECD_TOKEN"),
        "{stderr}"
    );
    assert!(!home.path().join(".local/state/execd/token").exists());

    // On loopback --no-auth is honoured: run needs no token at all.
    let server = serve(execd(
        home.path(),
        &["serve", "--listen", "ws://127.0.0.1:0", "--no-auth"],
    ))
    .await;
    assert_runs(home.path(), &server.url, &[], &[]).await;
    assert!(!home.path().join(".local/state/execd/token").exists());
    drop(server);
}

#[tokio::test]
async fn non_loopback_plaintext_with_a_token_warns() {
    let home = tempfile::tempdir().unwrap();
    let mut command = execd(home.path(), &["serve", "--listen", "ws://0.0.0.0:0"]);
    command.env("EXECD_TOKEN", "remote-secret");
    let mut server = serve(command).await;
    assert!(server.url.starts_with("ws://0.0.0.0:"), "{}", server.url);
    let stderr = server.child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let warned = tokio::time::timeout(TIMEOUT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("plaintext") {
                return line;
            }
        }
        panic!("stderr ended without the plaintext warning");
    })
    .await
    .expect("no plaintext warning in time");
    assert!(warned.contains("WARN"), "{warned}");
}

#[tokio::test]
async fn wss_from_the_command_line() {
    let home = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(home.path());
    let server = serve(execd(
        home.path(),
        &[
            "serve",
            "--listen",
            "ws://127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    ))
    .await;
    assert!(server.url.starts_with("wss://127.0.0.1:"), "{}", server.url);
    assert_runs(
        home.path(),
        &server.url,
        &["--ca-file", ca.to_str().unwrap()],
        &[],
    )
    .await;
    let stderr = run_fails(home.path(), &server.url, &[], &[]).await;
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    drop(server);
}

#[tokio::test]
async fn websocket_flags_do_not_apply_to_stdio() {
    let home = tempfile::tempdir().unwrap();
    let out = output(execd(
        home.path(),
        &["serve", "--listen", "stdio", "--no-auth"],
    ))
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stdio"),
        "{out:?}"
    );
}
