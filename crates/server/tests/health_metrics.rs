//! `/healthz`, `/readyz` and `/metrics` over real HTTP on the WebSocket
//! listener (and on `metrics_listen`), with the metrics read back through
//! a Prometheus text parser and checked by value as processes start,
//! write, exit and fail, files are read and written, and clients fail to
//! authenticate.

use std::time::Duration;

use execd_server::{AccessConfig, ServerConfig, WsServer};
use execd_test_support::server::start_server_with;
use execd_test_support::wire::{start_params, stdin_params};
use execd_test_support::ws_client::Client;
use execd_test_support::TIMEOUT;
use execd_transport::token::Token;
use prometheus_parse::{Scrape, Value};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TOKEN: &str = "metrics-test-token";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("HTTP client")
}

fn http_url(server: &WsServer, path: &str) -> String {
    format!("http://{}{path}", server.local_addr())
}

async fn with_token() -> WsServer {
    start_server_with(ServerConfig {
        access: AccessConfig {
            token: Some(Token::new(TOKEN, "test").unwrap()),
            ..AccessConfig::default()
        },
        ..ServerConfig::default()
    })
    .await
}

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = http().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("HTTP GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// One scrape, parsed.
struct Metrics(Scrape);

impl Metrics {
    async fn scrape(url: &str, token: Option<&str>) -> Metrics {
        let (status, text) = get(url, token).await;
        assert_eq!(status, 200, "{text}");
        let lines = text.lines().map(|line| Ok(line.to_string()));
        Metrics(Scrape::parse(lines).expect("Prometheus text"))
    }

    /// The value of the sample `name` whose labels include `labels`; 0 if
    /// no such sample exists (a labelled counter not yet created).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.0.samples.iter().find(|sample| {
            sample.metric == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(key) == Some(*value))
        });
        match found.map(|sample| &sample.value) {
            Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
            Some(other) => panic!("{name} is {other:?}"),
            None => 0.0,
        }
    }

    fn has(&self, name: &str) -> bool {
        self.0.samples.iter().any(|sample| sample.metric == name)
    }
}

#[tokio::test]
async fn health_needs_no_token_and_metrics_do() {
    let server = with_token().await;
    assert_eq!(
        get(&http_url(&server, "/healthz"), None).await,
        (200, "ok\n".into())
    );
    assert_eq!(
        get(&http_url(&server, "/readyz"), None).await,
        (200, "ready\n".into())
    );
    let (status, body) = get(&http_url(&server, "/metrics"), None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = get(&http_url(&server, "/metrics"), Some("wrong")).await;
    assert_eq!(status, 401);
    let metrics = Metrics::scrape(&http_url(&server, "/metrics"), Some(TOKEN)).await;
    assert_eq!(metrics.value("execd_auth_failures_total", &[]), 2.0);
    let (status, _) = get(&http_url(&server, "/nothing"), None).await;
    assert_eq!(status, 404);
    let posted = http()
        .post(http_url(&server, "/healthz"))
        .send()
        .await
        .expect("POST");
    assert_eq!(posted.status().as_u16(), 405);
    // The WebSocket upgrade on the same port still works.
    let mut request = server.url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .expect("upgrade in time")
        .expect("upgrade");
    let mut client = Client::from_stream(ws);
    client.initialize("health").await;
    let metrics = Metrics::scrape(&http_url(&server, "/metrics"), Some(TOKEN)).await;
    assert_eq!(metrics.value("execd_connections_open", &[]), 1.0);
    assert_eq!(metrics.value("execd_connections_total", &[]), 1.0);
    // A WebSocket upgrade with a wrong token counts as an auth failure too.
    let mut request = server.url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", "Bearer nope".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_err());
    let metrics = Metrics::scrape(&http_url(&server, "/metrics"), Some(TOKEN)).await;
    assert_eq!(metrics.value("execd_auth_failures_total", &[]), 3.0);
    server.shutdown().await;
}

#[tokio::test]
async fn readyz_is_503_while_every_connection_place_is_taken() {
    let server = start_server_with(ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    })
    .await;
    let client = Client::connect_initialized(&server.url()).await;
    let (status, body) = get(&http_url(&server, "/readyz"), None).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("connection"), "{body}");
    // Health stays fine: the server is alive, only full.
    assert_eq!(get(&http_url(&server, "/healthz"), None).await.0, 200);
    drop(client);
    // The place comes back once the server has seen the connection go.
    let ready = async {
        loop {
            if get(&http_url(&server, "/readyz"), None).await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(TIMEOUT, ready)
        .await
        .expect("ready again once the connection closed");
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_follow_processes_files_and_decisions() {
    let server = start_server_with(ServerConfig::default()).await;
    let url = http_url(&server, "/metrics");
    let before = Metrics::scrape(&url, None).await;
    assert_eq!(before.value("execd_processes_running", &[]), 0.0);
    assert_eq!(before.value("execd_connections_open", &[]), 0.0);
    assert!(before.has("execd_retained_output_bytes"));

    let mut client = Client::connect_initialized(&server.url()).await;
    // A process that waits on stdin: running, 6 bytes in, 6 bytes out.
    client.start(stdin_params("cat", &["cat"])).await;
    let now = Metrics::scrape(&url, None).await;
    assert_eq!(now.value("execd_processes_running", &[]), 1.0);
    assert_eq!(now.value("execd_processes_started_total", &[]), 1.0);
    assert_eq!(now.value("execd_processes_open", &[]), 1.0);
    assert_eq!(now.value("execd_connections_open", &[]), 1.0);
    assert_eq!(now.value("execd_sessions_open", &[]), 1.0);
    assert_eq!(now.value("execd_process_spawn_seconds_count", &[]), 1.0);
    client.write("cat", b"hello\n").await;
    client.wait_output("cat", "hello").await;
    let now = Metrics::scrape(&url, None).await;
    assert_eq!(now.value("execd_process_input_bytes_total", &[]), 6.0);
    assert_eq!(
        now.value("execd_process_output_bytes_total", &[("stream", "stdout")]),
        6.0
    );
    assert_eq!(
        now.value("execd_process_output_bytes_total", &[("stream", "stderr")]),
        0.0
    );
    client
        .call(
            "process/write",
            json!({"processId": "cat", "chunk": "", "closeStdin": true}),
        )
        .await
        .expect("close stdin");
    client.wait_exited("cat").await;
    // Exits: one success, one failure, one signal.
    client.run("fails", &["sh", "-c", "exit 3"]).await;
    client
        .start(start_params("sleeper", &["sleep", "60"]))
        .await;
    client.terminate("sleeper").await;
    client.wait_exited("sleeper").await;
    let now = Metrics::scrape(&url, None).await;
    assert_eq!(now.value("execd_processes_running", &[]), 0.0);
    assert_eq!(now.value("execd_processes_started_total", &[]), 3.0);
    for outcome in ["success", "failure", "signal"] {
        assert_eq!(
            now.value("execd_processes_exited_total", &[("outcome", outcome)]),
            1.0,
            "{outcome}"
        );
    }
    assert!(now.value("execd_retained_output_bytes", &[]) >= 6.0);

    // A start the exec policy denies: a decision, and a start that failed.
    let mut params = start_params("denied", &["true"]);
    params["execPolicy"] = json!({"rules": [{"prefix": ["true"], "decision": "deny"}]});
    let err = client
        .call("process/start", params)
        .await
        .expect_err("denied");
    assert!(err["message"].as_str().unwrap().contains("denied"), "{err}");
    // Files: one write, one read, one read of a missing file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.txt");
    let path = path.to_str().unwrap();
    client
        .call("fs/writeFile", json!({"path": path, "dataBase64": "aGk="}))
        .await
        .expect("write");
    client
        .call("fs/readFile", json!({"path": path}))
        .await
        .expect("read");
    client
        .call_expect_error("fs/readFile", json!({"path": format!("{path}.missing")}))
        .await;
    let now = Metrics::scrape(&url, None).await;
    assert_eq!(
        now.value("execd_exec_decisions_total", &[("outcome", "deny")]),
        1.0
    );
    assert_eq!(now.value("execd_process_start_failures_total", &[]), 1.0);
    let fs = |method, error| {
        now.value(
            "execd_fs_operations_total",
            &[("method", method), ("error", error)],
        )
    };
    assert_eq!(fs("fs/writeFile", "none"), 1.0);
    assert_eq!(fs("fs/readFile", "none"), 1.0);
    assert_eq!(fs("fs/readFile", "not_found"), 1.0);

    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn the_metrics_listener_serves_without_a_token() {
    let server = start_server_with(ServerConfig {
        access: AccessConfig {
            token: Some(Token::new(TOKEN, "test").unwrap()),
            ..AccessConfig::default()
        },
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    })
    .await;
    let addr = server.metrics_addr().expect("metrics listener bound");
    let metrics = Metrics::scrape(&format!("http://{addr}/metrics"), None).await;
    assert_eq!(metrics.value("execd_connections_open", &[]), 0.0);
    assert_eq!(
        get(&format!("http://{addr}/healthz"), None).await,
        (200, "ok\n".into())
    );
    // The main listener still wants the token.
    assert_eq!(get(&http_url(&server, "/metrics"), None).await.0, 401);
    server.shutdown().await;
}

#[tokio::test]
async fn processes_ended_with_their_session_leave_the_running_gauge() {
    let server = start_server_with(ServerConfig::default()).await;
    let url = http_url(&server, "/metrics");
    let mut client = Client::connect_initialized(&server.url()).await;
    client.start(start_params("a", &["sleep", "60"])).await;
    client.start(start_params("b", &["sleep", "60"])).await;
    let now = Metrics::scrape(&url, None).await;
    assert_eq!(now.value("execd_processes_running", &[]), 2.0);
    assert_eq!(now.value("execd_sessions_open", &[]), 1.0);
    // A clean close ends the session and terminates both.
    client.into_inner().close(None).await.expect("close");
    let settled = async {
        loop {
            let now = Metrics::scrape(&url, None).await;
            if now.value("execd_processes_running", &[]) == 0.0
                && now.value("execd_sessions_open", &[]) == 0.0
                && now.value("execd_connections_open", &[]) == 0.0
            {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let now = tokio::time::timeout(TIMEOUT, settled)
        .await
        .expect("the session's processes end and are counted");
    assert_eq!(
        now.value("execd_processes_exited_total", &[("outcome", "signal")]),
        2.0
    );
    server.shutdown().await;
}
