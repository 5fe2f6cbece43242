//! The network policy's proxy as `execd serve` bounds it: with
//! `--max-proxy-connections 1` a second connection of a tree is answered
//! 503 naming the flag; a connection that sends no request within
//! `--proxy-idle-timeout-ms` gets a 408; a response past `--max-proxy-bytes`
//! is cut off; and `--log-format json` writes one `network.connection`
//! audit event per connection (decision, bytes, how it ended). Skipped,
//! loudly, where the kernel cannot give a tree a network namespace.

use std::collections::HashMap;
use std::time::Duration;

use execd_client::{ConnectOptions, RemoteEnvironment, Token};
use execd_environment::collect;
use execd_protocol::network::{NetworkPolicy, NetworkRule, NetworkVerdict};
use execd_protocol::process::StartParams;
use execd_protocol::sandbox::SandboxSpec;
use execd_test_support::{Execd, HttpHost};
use serde_json::Value;

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));
const TIMEOUT: Duration = Duration::from_secs(60);
const TOKEN: &str = "proxy-secret";
/// What the host server sends: far more than the byte cap.
const BIG: usize = 200_000;

/// A loopback host answering every request with [`BIG`] bytes.
async fn big_server() -> u16 {
    let mut reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").into_bytes();
    reply.resize(reply.len() + BIG, b'x');
    HttpHost::start(reply).await.port
}

fn policied(script: &str, port: u16) -> StartParams {
    let mut params = StartParams::new(["bash", "-c", script]);
    params.process_id = "bounded".into();
    params.cwd = "/tmp".into();
    params.env = HashMap::from([("PATH".into(), "/usr/bin:/bin".into())]);
    params.sandbox = Some(SandboxSpec {
        writable_roots: Vec::new(),
        network: false,
        read_only: false,
    });
    params.network_policy = Some(NetworkPolicy::new(vec![NetworkRule {
        host: "127.0.0.1".into(),
        port: Some(port),
        decision: NetworkVerdict::Allow,
    }]));
    params
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_flags_bound_the_proxy_and_each_connection_is_audited() {
    if !execd_policy::sandbox::features().network_namespace {
        eprintln!("\n\n!!! SKIPPED: no network namespaces here, which a network policy needs\n");
        return;
    }
    let server = EXECD
        .serve_json_logs(
            Some(TOKEN),
            &[
                "--max-proxy-connections",
                "1",
                "--proxy-idle-timeout-ms",
                "500",
                "--max-proxy-bytes",
                "4000",
            ],
        )
        .await;
    let options = ConnectOptions {
        token: Some(Token::new(TOKEN, "test").unwrap()),
        ..ConnectOptions::default()
    };
    let env = RemoteEnvironment::connect_with(server.url(), options)
        .await
        .expect("connect");
    let port = big_server().await;

    // A connection that holds the one slot and sends nothing; a second one
    // meanwhile; the first's idle end; then a download past the cap.
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/3128; \
         curl -sS -i --max-time 20 http://127.0.0.1:{port}/second; echo; \
         cat <&3; exec 3<&-; \
         curl -sS -o /dev/null --max-time 20 http://127.0.0.1:{port}/big; echo \"big=$?\""
    );
    let mut started = env
        .exec
        .start(policied(&script, port))
        .await
        .expect("start");
    let ran = tokio::time::timeout(TIMEOUT, collect(&mut started.events))
        .await
        .unwrap()
        .unwrap();
    let out = ran.stdout_text();
    assert!(out.contains("HTTP/1.1 503 Service Unavailable"), "{out}");
    assert!(
        out.contains("too many connections open for this process (limit 1, execd serve --max-proxy-connections)"),
        "{out}"
    );
    assert!(out.contains("HTTP/1.1 408 Request Timeout"), "{out}");
    assert!(
        out.contains("no complete request head within 500ms"),
        "{out}"
    );
    assert!(!out.contains("big=0"), "the download was cut off: {out}");
    drop(started);
    drop(env);

    let events: Vec<Value> = server
        .stop_and_logs()
        .await
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "network.connection")
        .collect();
    assert_eq!(events.len(), 3, "{events:#?}");
    let ends: Vec<&str> = events
        .iter()
        .map(|e| e["end"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ends[0], "too many connections", "{events:#?}");
    assert!(
        ends[1].starts_with("refused: no complete request head"),
        "{events:#?}"
    );
    let big = &events[2];
    assert_eq!(big["process_id"], "bounded", "{big}");
    assert_eq!(big["host"], "127.0.0.1", "{big}");
    assert_eq!(big["port"], port, "{big}");
    assert_eq!(big["decision"], "allow", "{big}");
    assert_eq!(big["end"], "byte limit", "{big}");
    let carried = big["bytes_up"].as_u64().unwrap() + big["bytes_down"].as_u64().unwrap();
    assert!(carried <= 4000 + 16 * 1024, "{big}");
    assert!(big["bytes_down"].as_u64().unwrap() < BIG as u64, "{big}");
}
