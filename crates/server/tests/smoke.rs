mod common;
use common::*;

#[tokio::test]
async fn echo_round_trip() {
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;
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
