//! The basics over a real socket: a round trip of output and exit code,
//! what `initialize` reports, and binary output frames for the clients that
//! ask for them.

use execd_test_support::wire::{connect_ws, recv_message};
use execd_test_support::*;

#[tokio::test]
async fn echo_round_trip() {
    let (server, mut client) = connected().await;
    let out = client
        .run("p1", &["bash", "-c", "echo hi; echo err >&2; exit 3"])
        .await;
    assert_eq!(out.stdout_str(), "hi\n");
    assert_eq!(out.stderr_str(), "err\n");
    assert_eq!(out.exit_code, Some(3));
    assert!(!out.output_after_exit);
    server.shutdown().await;
}

#[tokio::test]
async fn initialize_reports_capabilities() {
    let server = start_server().await;
    let mut client = Client::connect(&server.url()).await;
    let result = client
        .call("initialize", serde_json::json!({"clientName": "caps"}))
        .await
        .expect("initialize");
    assert_eq!(result["capabilities"]["execPolicy"], true);
    // This kernel has Landlock and network namespaces; the sandbox tests rely on them.
    assert_eq!(result["capabilities"]["sandbox"]["landlock"], true);
    assert_eq!(result["capabilities"]["sandbox"]["networkNamespace"], true);
    assert!(result["serverVersion"].is_string());
    server.shutdown().await;
}

/// A client that asks for binary output gets `process/output` as binary
/// frames (and everything else as JSON); one that does not, gets JSON.
#[tokio::test]
async fn binary_output_is_opt_in() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let server = start_server().await;
    let (mut ws, _) = connect_ws(server.url()).await;
    let send = |value: serde_json::Value| Message::text(value.to_string());
    ws.send(send(serde_json::json!({"id": 1, "method": "initialize",
        "params": {"clientName": "bin", "binaryOutput": true}})))
        .await
        .unwrap();
    ws.send(send(serde_json::json!({"id": 2, "method": "process/start",
        "params": start_params("b", &["printf", "a\\x00b"])})))
        .await
        .unwrap();
    let (mut binary, mut texts) = (Vec::new(), Vec::new());
    while !texts
        .iter()
        .any(|t: &serde_json::Value| t["method"] == "process/closed")
    {
        match recv_message(&mut ws).await {
            Message::Binary(bytes) => binary.push(bytes),
            Message::Text(text) => texts.push(serde_json::from_str(text.as_str()).unwrap()),
            _ => {}
        }
    }
    assert_eq!(texts[0]["result"]["capabilities"]["binaryOutput"], true);
    assert_eq!(binary.len(), 1);
    let frame = execd_protocol::binary::decode_output(binary.remove(0)).unwrap();
    assert_eq!((frame.process_id.as_str(), frame.seq), ("b", 1));
    assert_eq!(&frame.chunk[..], b"a\0b");
    let exited = texts
        .iter()
        .find(|t| t["method"] == "process/exited")
        .unwrap();
    assert_eq!(exited["params"]["seq"], 2);
    assert!(!texts.iter().any(|t| t["method"] == "process/output"));

    // Without asking: JSON, and the capability says so.
    let mut client = Client::connect(&server.url()).await;
    let result = client
        .call("initialize", serde_json::json!({"clientName": "json"}))
        .await
        .unwrap();
    assert_eq!(result["capabilities"]["binaryOutput"], false);
    let out = client.run("j", &["printf", "x"]).await;
    assert_eq!(out.stdout, b"x");
    server.shutdown().await;
}
