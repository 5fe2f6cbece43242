//! `process/start`s sent in a burst (frames waiting together) spawn side by
//! side, yet every other request still sees them as if they had run one
//! by one: a write right behind its start reaches the program, a list
//! behind a burst sees every process, a repeated id in a burst is refused,
//! and every process of a burst runs with its own output.

use execd_server::ServerConfig;
use execd_test_support::*;
use serde_json::{json, Value};

#[tokio::test]
async fn a_write_sent_right_behind_its_start_reaches_the_program() {
    let (_server, mut client) = connected().await;
    let ids = client
        .send_requests_together(&[
            ("process/start", stdin_params("cat", &["cat"])),
            (
                "process/write",
                json!({"processId": "cat", "chunk": b64(b"behind the start\n"), "closeStdin": true}),
            ),
        ])
        .await;
    client.response(ids[0]).await.expect("process/start");
    let write = client.response(ids[1]).await.expect("process/write");
    assert_eq!(write["status"], "accepted", "{write}");
    let cat = client.wait_closed("cat").await;
    assert_eq!(cat.stdout_str(), "behind the start\n");
    assert_eq!(cat.exit_code, Some(0));
}

#[tokio::test]
async fn a_list_behind_a_burst_sees_every_process_of_it() {
    let (_server, mut client) = connected().await;
    let n = 40;
    let mut requests: Vec<(&str, Value)> = (0..n)
        .map(|i| {
            let script = format!("echo {i}");
            (
                "process/start",
                start_params(&format!("p{i}"), &["sh", "-c", &script]),
            )
        })
        .collect();
    requests.push(("process/list", json!({})));
    let ids = client.send_requests_together(&requests).await;
    for (i, id) in ids[..n].iter().enumerate() {
        let started = client.response(*id).await;
        assert!(started.is_ok(), "start p{i}: {started:?}");
    }
    let list = client.response(ids[n]).await.expect("process/list");
    let listed: Vec<&str> = list["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter_map(|p| p["processId"].as_str())
        .collect();
    for i in 0..n {
        let id = format!("p{i}");
        assert!(listed.contains(&id.as_str()), "{id} not in {list}");
    }
    for i in 0..n {
        let p = client.wait_closed(&format!("p{i}")).await;
        assert_eq!(p.stdout_str(), format!("{i}\n"), "p{i}");
        assert_eq!(p.exit_code, Some(0), "p{i}");
    }
}

#[tokio::test]
async fn a_repeated_id_in_a_burst_is_refused() {
    let (_server, mut client) = connected().await;
    let ids = client
        .send_requests_together(&[
            ("process/start", start_params("twice", &["sleep", "30"])),
            ("process/start", start_params("twice", &["sleep", "30"])),
            ("process/start", start_params("other", &["true"])),
        ])
        .await;
    client.response(ids[0]).await.expect("the first start");
    let error = client
        .response(ids[1])
        .await
        .expect_err("a second start of the same id");
    assert!(
        error["message"].as_str().unwrap_or("").contains("twice"),
        "{error}"
    );
    client.response(ids[2]).await.expect("a start after it");
    assert_eq!(client.wait_closed("other").await.exit_code, Some(0));
    client.terminate("twice").await;
    client.wait_closed("twice").await;
}

#[tokio::test]
async fn one_spawn_at_a_time_serves_a_burst_alike() {
    let server = start_server_with(ServerConfig {
        max_concurrent_spawns: 1,
        detach_grace: std::time::Duration::ZERO,
        ..ServerConfig::default()
    })
    .await;
    let mut client = Client::connect_initialized(&server.url()).await;
    let ids = client
        .send_requests_together(&[
            ("process/start", start_params("a", &["echo", "a"])),
            ("process/start", start_params("b", &["echo", "b"])),
        ])
        .await;
    for id in ids {
        client.response(id).await.expect("process/start");
    }
    assert_eq!(client.wait_closed("a").await.stdout_str(), "a\n");
    assert_eq!(client.wait_closed("b").await.stdout_str(), "b\n");
}
