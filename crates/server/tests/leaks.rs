//! No descriptor or child is leaked. This file is its own test binary (its
//! own process) with one test, so the counts below see only this server.

use execd_test_support::procs::{children, open_fds};
use execd_test_support::*;
use serde_json::json;

#[tokio::test]
async fn processes_leave_no_descriptor_or_zombie_behind() {
    let (server, mut client) = connected().await;
    // Warm up once so lazily created runtime descriptors are counted in the baseline.
    client.run("warm", &["true"]).await;
    let baseline = open_fds();

    for n in 0..10 {
        let id = format!("pipe{n}");
        client
            .start(stdin_params(&id, &["bash", "-c", "cat; echo done >&2"]))
            .await;
        client.write(&id, b"x").await;
        client.terminate(&id).await;
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
