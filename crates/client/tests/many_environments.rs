//! One harness, many environments: 20 execd servers on loopback, each with
//! a token of its own, named in an environments file (half by `token`,
//! half by `token_file`), driven at once through one shared
//! `EnvironmentManager`: every server runs commands and file operations
//! and every result is checked against what that server alone should
//! give. Also: concurrent first uses share one connection, unknown names
//! are a clear error, and `default` is the default environment.

use std::fmt::Write as _;
use std::sync::Arc;

use execd_client::{collect, EnvError, EnvironmentManager, StartParams};
use execd_server::{AccessConfig, ServerConfig, WsServer};
use execd_test_support::server::start_server_with;
use execd_test_support::TIMEOUT;
use execd_transport::token::Token;

const SERVERS: usize = 20;

async fn server_with_token(token: &str) -> WsServer {
    start_server_with(ServerConfig {
        access: AccessConfig {
            token: Some(Token::new(token, "test").unwrap()),
            ..AccessConfig::default()
        },
        ..ServerConfig::default()
    })
    .await
}

/// Commands and file operations on environment `name`; panics on any
/// result that is not this environment's.
async fn exercise(manager: &EnvironmentManager, name: &str, dir: &str) {
    let env = manager.named(name).await.expect("connect");
    // A command, told apart by its argument and its exit status.
    let mut params = StartParams::new(["sh", "-c", "echo \"$0 on $(pwd)\"; exit 7", name]);
    params.cwd = dir.to_string();
    let mut started = env.exec.start(params).await.expect("start");
    let output = tokio::time::timeout(TIMEOUT, collect(&mut started.events))
        .await
        .expect("command in time")
        .expect("command output");
    assert_eq!(output.stdout_text(), format!("{name} on {dir}\n"));
    assert_eq!(output.code(), Some(7));
    // Files: write, append, read back, list, copy, remove.
    let file = format!("{dir}/{name}.txt");
    env.fs
        .write_file(&file, format!("hello {name}\n").into_bytes())
        .await
        .expect("write");
    env.fs
        .append_file(&file, b"more\n".to_vec())
        .await
        .expect("append");
    let read = env.fs.read_file(&file).await.expect("read");
    assert_eq!(read, format!("hello {name}\nmore\n").into_bytes());
    let copy = format!("{dir}/{name}.copy");
    env.fs.copy(&file, &copy, false).await.expect("copy");
    let mut names: Vec<String> = env
        .fs
        .read_directory(dir)
        .await
        .expect("list")
        .into_iter()
        .map(|entry| entry.file_name)
        .collect();
    names.sort();
    assert_eq!(names, vec![format!("{name}.copy"), format!("{name}.txt")]);
    env.fs.remove(&copy, false, false).await.expect("remove");
    assert_eq!(
        env.fs.metadata(&file).await.expect("metadata").size,
        read.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_harness_drives_twenty_servers_at_once() {
    let secrets = tempfile::tempdir().unwrap();
    let mut servers = Vec::new();
    let mut file = String::new();
    for i in 0..SERVERS {
        let token = format!("token-of-server-{i}");
        let server = server_with_token(&token).await;
        let name = format!("sandbox-{i}");
        writeln!(file, "[environments.{name}]\nurl = \"{}\"", server.url()).unwrap();
        if i % 2 == 0 {
            writeln!(file, "token = \"{token}\"\n").unwrap();
        } else {
            let path = secrets.path().join(format!("token-{i}"));
            std::fs::write(&path, format!("{token}\n")).unwrap();
            writeln!(file, "token_file = \"{}\"\n", path.display()).unwrap();
        }
        servers.push(server);
    }
    let path = secrets.path().join("environments.toml");
    std::fs::write(&path, file).unwrap();
    let manager = Arc::new(
        EnvironmentManager::new(None)
            .with_environments_file(&path)
            .expect("environments file"),
    );
    assert_eq!(manager.names().len(), SERVERS);

    // Each server gets its own directory, so a result from the wrong
    // server (or a mixed-up connection) shows in the listings.
    let dirs: Vec<tempfile::TempDir> = (0..SERVERS).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut tasks = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let manager = manager.clone();
        let dir = dir.path().to_str().unwrap().to_string();
        tasks.push(tokio::spawn(async move {
            let name = format!("sandbox-{i}");
            exercise(&manager, &name, &dir).await;
            name
        }));
    }
    let mut done = Vec::new();
    for task in tasks {
        done.push(
            tokio::time::timeout(TIMEOUT, task)
                .await
                .expect("environment in time")
                .expect("environment task"),
        );
    }
    assert_eq!(done.len(), SERVERS);

    // Many first uses at once of a fresh manager: all succeed.
    let fresh = Arc::new(
        EnvironmentManager::new(None)
            .with_environments_file(&path)
            .unwrap(),
    );
    let mut firsts = Vec::new();
    for _ in 0..8 {
        let fresh = fresh.clone();
        firsts.push(tokio::spawn(async move {
            let env = fresh.named("sandbox-3").await.expect("connect");
            let mut started = env
                .exec
                .start(StartParams::new(["echo", "shared"]))
                .await
                .expect("start");
            collect(&mut started.events)
                .await
                .expect("output")
                .stdout_text()
        }));
    }
    for first in firsts {
        assert_eq!(first.await.unwrap(), "shared\n");
    }

    for server in servers {
        server.shutdown().await;
    }
}

#[tokio::test]
async fn unknown_names_are_refused_and_default_is_the_default_environment() {
    let manager = EnvironmentManager::new(None);
    let err = manager.named("nowhere").await.err().expect("unknown name");
    assert!(
        matches!(&err, EnvError::NotFound(message) if message.contains("\"nowhere\"") && message.contains("none is configured")),
        "{err:?}"
    );
    // No URL: the default environment is this machine.
    let env = manager.named("default").await.expect("default");
    let mut started = env
        .exec
        .start(StartParams::new(["echo", "local"]))
        .await
        .unwrap();
    assert_eq!(
        collect(&mut started.events).await.unwrap().stdout_text(),
        "local\n"
    );
    // A wrong token in the file: the connection error names the environment.
    let server = server_with_token("right").await;
    let manager = EnvironmentManager::new(None)
        .with_environment(
            "guarded",
            execd_client::EnvironmentSpec::new(server.url())
                .with_token(Token::new("wrong", "test").unwrap()),
        )
        .unwrap();
    let err = manager.named("guarded").await.err().expect("refused");
    assert!(err.to_string().contains("guarded"), "{err}");
    assert!(EnvironmentManager::new(None)
        .with_environment("bad name", execd_client::EnvironmentSpec::new(server.url()))
        .is_err());
    server.shutdown().await;
}
