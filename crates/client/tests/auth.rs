//! The Rust client against servers that require a token, and over TLS: the
//! right token (given in `ConnectOptions`, or through `EnvironmentManager`)
//! runs a real command; a missing or wrong one is a clear 401 error; a
//! `wss://` server with a certificate made here (rcgen) is reached with the
//! CA given to the client, and refused without it.

use std::path::{Path, PathBuf};

use execd_client::{
    ClientError, ConnectOptions, Environment, EnvironmentManager, ExecServerClient,
    RemoteEnvironment, Token,
};
use execd_server::{AccessConfig, ServerConfig, WsServer};
use execd_test_support::{bind_server, collect_in_time, process_params};

fn token(text: &str) -> Token {
    Token::new(text, "test").unwrap()
}

async fn server(config: ServerConfig) -> WsServer {
    bind_server(config).await
}

fn with_token(secret: &str) -> ServerConfig {
    ServerConfig {
        access: AccessConfig {
            token: Some(token(secret)),
            ..AccessConfig::default()
        },
        ..ServerConfig::default()
    }
}

fn options(secret: Option<&str>) -> ConnectOptions {
    ConnectOptions {
        token: secret.map(token),
        ..ConnectOptions::default()
    }
}

/// `bash -c script` through `env`; its stdout.
async fn run(env: &Environment, script: &str) -> String {
    let params = process_params("p", &["bash", "-c", script]);
    let mut started = env.exec.start(params).await.expect("start");
    let output = collect_in_time(&mut started.events).await;
    assert_eq!(output.code(), Some(0), "{output:?}");
    output.stdout_text()
}

#[tokio::test]
async fn the_right_token_runs_a_command() {
    let server = server(with_token("right-token")).await;
    let client = ExecServerClient::connect_with(&server.url(), options(Some("right-token")))
        .await
        .expect("connect with the right token");
    let env = RemoteEnvironment::new(client).into_environment();
    assert_eq!(run(&env, "echo authorised").await, "authorised\n");
    drop(env);
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_token_is_a_clear_401() {
    let server = server(with_token("right-token")).await;
    let err = ExecServerClient::connect_with(&server.url(), options(Some("wrong-token")))
        .await
        .expect_err("a wrong token must be refused");
    assert!(
        matches!(
            &err,
            ClientError::Unauthorized {
                sent_token: true,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("refused the token (HTTP 401)") && message.contains("EXECD_TOKEN"),
        "{message}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_manager_sends_its_token() {
    let server = server(with_token("manager-token")).await;
    let manager = EnvironmentManager::new(Some(server.url())).with_token(token("manager-token"));
    let env = manager
        .environment()
        .await
        .expect("connect through the manager");
    assert_eq!(run(&env, "echo managed").await, "managed\n");
    let wrong = EnvironmentManager::new(Some(server.url())).with_token(token("nope"));
    let Err(err) = wrong.environment().await else {
        panic!("a wrong token must be refused");
    };
    assert!(err.to_string().contains("HTTP 401"), "{err}");
    drop(env);
    server.shutdown().await;
}

/// A CA and a server certificate for `127.0.0.1` and `localhost` signed by
/// it, as PEM files in `dir`: (ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[tokio::test]
async fn wss_round_trip_with_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let mut config = with_token("tls-token");
    config.tls = Some(execd_transport::tls::server_config(&cert, &key).expect("TLS config"));
    let server = server(config).await;
    let url = server.url();
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");

    let with_ca = ConnectOptions {
        ca_file: Some(ca),
        ..options(Some("tls-token"))
    };
    let env = RemoteEnvironment::connect_with(&url, with_ca.clone())
        .await
        .expect("connect over wss with the CA");
    assert_eq!(
        run(&env, "echo over tls; head -c 100000 /dev/zero | wc -c").await,
        "over tls\n100000\n"
    );

    // Without the CA (system roots only) the certificate is not trusted.
    let err = ExecServerClient::connect_with(&url, options(Some("tls-token")))
        .await
        .expect_err("an unknown CA must be refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // Plain ws:// to a TLS port does not get in either.
    let plain = url.replacen("wss://", "ws://", 1);
    ExecServerClient::connect_with(&plain, with_ca.clone())
        .await
        .expect_err("plaintext to a TLS listener");
    // And TLS does not replace the token.
    let err = ExecServerClient::connect_with(
        &url,
        ConnectOptions {
            token: Some(token("wrong")),
            ..with_ca
        },
    )
    .await
    .expect_err("a wrong token over TLS");
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err:?}");
    drop(env);
    server.shutdown().await;
}
