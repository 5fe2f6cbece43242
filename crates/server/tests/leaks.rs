//! No descriptor or child is leaked. This file is its own test binary (its
//! own process) with one test, so the counts below see only this server.

mod common;
use common::*;

use serde_json::json;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Children of this process (all threads) that still have a /proc entry:
/// running or zombie.
fn children() -> Vec<String> {
    let mut all = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path().join("children");
        if let Ok(text) = std::fs::read_to_string(path) {
            all.extend(text.split_whitespace().map(str::to_string));
        }
    }
    all
}

#[tokio::test]
async fn processes_leave_no_descriptor_or_zombie_behind() {
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;
    // Warm up once so lazily created runtime descriptors are counted in the baseline.
    client.run("warm", &["true"]).await;
    let baseline = open_fds();

    for n in 0..10 {
        let id = format!("pipe{n}");
        let mut params = start_params(&id, &["bash", "-c", "cat; echo done >&2"]);
        params["pipeStdin"] = json!(true);
        client.start(params).await;
        client
            .call(
                "process/write",
                json!({"processId": id, "chunk": b64(b"x")}),
            )
            .await
            .unwrap();
        client
            .call("process/terminate", json!({"processId": id}))
            .await
            .unwrap();
        client.wait_closed(&id).await;

        let id = format!("tty{n}");
        let mut params = start_params(&id, &["bash", "-c", "echo hi"]);
        params["tty"] = json!(true);
        client.start(params).await;
        client.wait_closed(&id).await;

        let id = format!("fail{n}");
        let err = client
            .call_expect_error("process/start", start_params(&id, &["/no/such/program"]))
            .await;
        assert_eq!(err["code"], -32602);
    }
    assert_eq!(open_fds(), baseline, "descriptors leaked");
    assert!(children().is_empty(), "children left: {:?}", children());
    server.shutdown().await;
}
