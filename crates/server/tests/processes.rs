//! Processes over a real socket: pipes and PTYs, environment, signals and
//! process groups, stdin, `process/read`, ordering under load, big output,
//! retention and cleanup when a client goes away.

use std::time::Duration;

use execd_server::ServerConfig;
use execd_test_support::*;
use serde_json::json;

#[tokio::test]
async fn pty_merges_streams_with_default_size_and_term() {
    let (server, mut client) = connected().await;
    let script = "stty size; echo $TERM; echo to-stderr >&2; tty";
    client.start(pty_params("t", &bash(script))).await;
    let out = client.wait_closed("t").await;
    let text = out.pty_str();
    assert!(text.contains("24 80"), "{text:?}");
    assert!(text.contains("xterm-256color"), "{text:?}");
    assert!(text.contains("to-stderr"), "{text:?}");
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    assert_eq!(out.exit_code, Some(0));
    server.shutdown().await;
}

#[tokio::test]
async fn pty_honours_initial_size_and_echoes_input() {
    let (server, mut client) = connected().await;
    let mut params = pty_params("t", &["bash", "-c", "stty size; read line; echo got:$line"]);
    params["size"] = json!({"rows": 40, "cols": 100});
    client.start(params).await;
    client.wait_output("t", "40 100").await;
    let status = client.write("t", b"hello\n").await;
    assert_eq!(status["status"], "accepted");
    let out = client.wait_closed("t").await;
    let text = out.pty_str();
    // The terminal echoes the typed line, then the program answers.
    assert!(text.contains("hello\r\n"), "{text:?}");
    assert!(text.contains("got:hello"), "{text:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn env_is_the_entire_environment() {
    let (server, mut client) = connected().await;
    let mut params = start_params("e", &["/usr/bin/env"]);
    params["env"] = json!({"ONLY": "this", "PATH": "/usr/bin:/bin"});
    client.start(params).await;
    let out = client.wait_closed("e").await;
    let mut lines: Vec<&str> = out.stdout_str().leak().lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["ONLY=this", "PATH=/usr/bin:/bin"]);
    server.shutdown().await;
}

#[tokio::test]
async fn cwd_and_arg0_are_applied() {
    let (server, mut client) = connected().await;
    let mut params = start_params("cwd", &["pwd"]);
    params["cwd"] = json!("/usr");
    client.start(params).await;
    assert_eq!(client.wait_closed("cwd").await.stdout_str(), "/usr\n");

    let mut params = start_params("a0", &["/bin/cat", "/proc/self/cmdline"]);
    params["arg0"] = json!("renamed");
    client.start(params).await;
    assert_eq!(
        client.wait_closed("a0").await.stdout,
        b"renamed\0/proc/self/cmdline\0"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn write_reports_every_status() {
    let (server, mut client) = connected().await;
    client.start(stdin_params("cat", &["cat"])).await;
    let r = client.write("cat", b"abc\n").await;
    assert_eq!(r, json!({"status": "accepted"}));
    client.wait_output("cat", "abc\n").await;

    client
        .start(start_params("nostdin", &["sleep", "30"]))
        .await;
    let r = client.write("nostdin", b"x").await;
    assert_eq!(r, json!({"status": "stdinClosed"}));

    let r = client.write("ghost", b"x").await;
    assert_eq!(r, json!({"status": "unknownProcess"}));

    // After the process closed its stdin is gone too.
    client.terminate("cat").await;
    client.wait_closed("cat").await;
    let r = client.write("cat", b"late").await;
    assert_eq!(r, json!({"status": "stdinClosed"}));
    server.shutdown().await;
}

#[tokio::test]
async fn terminate_signals_the_whole_group() {
    let (server, mut client) = connected().await;
    let script = "sleep 1000 & echo $!; sleep 1000";
    client.start(start_params("g", &bash(script))).await;
    let out = client.wait_output("g", "\n").await;
    let background = pids_in(&out.stdout_str());
    assert_eq!(background.len(), 1);
    let r = client.terminate("g").await;
    assert_eq!(r, json!({"running": true}));
    let out = client.wait_closed("g").await;
    assert_eq!(out.exit_code, Some(-1));
    assert_eq!(out.signal.as_deref(), Some("SIGTERM"));
    wait_dead(&background).await;
    // Once exited, terminate reports not running.
    let r = client.terminate("g").await;
    assert_eq!(r, json!({"running": false}));
    server.shutdown().await;
}

#[tokio::test]
async fn terminate_escalates_to_sigkill_when_term_is_ignored() {
    let (server, mut client) = connected().await;
    let script = "trap '' TERM; echo ready; while :; do sleep 1; done";
    client.start(start_params("stubborn", &bash(script))).await;
    client.wait_output("stubborn", "ready").await;
    let r = client.terminate("stubborn").await;
    assert_eq!(r, json!({"running": true}));
    let out = client.wait_closed("stubborn").await;
    assert_eq!(out.exit_code, Some(-1));
    assert_eq!(out.signal.as_deref(), Some("SIGKILL"));
    server.shutdown().await;
}

#[tokio::test]
async fn exit_by_signal_is_reported() {
    let (server, mut client) = connected().await;
    let out = client
        .run("k", &["bash", "-c", "echo before; kill -KILL $$"])
        .await;
    assert_eq!(out.stdout_str(), "before\n");
    assert_eq!(out.exit_code, Some(-1));
    assert_eq!(out.signal.as_deref(), Some("SIGKILL"));
    assert!(!out.output_after_exit);
    server.shutdown().await;
}

#[tokio::test]
async fn output_of_background_children_comes_before_closed() {
    let (server, mut client) = connected().await;
    // The shell exits at once; its child keeps stdout open and writes later
    // (fd 3 because background jobs get /dev/null as stdin).
    let script = "exec 3<&0; (read x <&3; echo late) & echo early";
    client.start(stdin_params("bg", &bash(script))).await;
    let out = client.wait_exited("bg").await;
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.stdout_str(), "early\n");
    assert!(!out.closed);
    client.write("bg", b"go\n").await;
    let out = client.wait_closed("bg").await;
    assert_eq!(out.stdout_str(), "early\nlate\n");
    assert!(out.output_after_exit);
    server.shutdown().await;
}

#[tokio::test]
async fn terminate_after_exit_still_reaps_lingering_children() {
    let (server, mut client) = connected().await;
    let script = "sleep 1000 & echo $!";
    client.start(start_params("linger", &bash(script))).await;
    let out = client.wait_exited("linger").await;
    let pids = pids_in(&out.stdout_str());
    assert_eq!(pids.len(), 1);
    let r = client.terminate("linger").await;
    assert_eq!(r, json!({"running": false}));
    client.wait_closed("linger").await;
    wait_dead(&pids).await;
    server.shutdown().await;
}

/// A descendant that leaves the group and session (`setsid`) escapes the
/// group signal; if it holds the output, `closed` would wait for it forever.
/// After the grace period it is killed as a holder of the output.
#[tokio::test]
async fn terminate_kills_a_setsid_escapee_holding_the_output() {
    for tty in [false, true] {
        let (server, mut client) = connected().await;
        // The shell waits until the child has its own session (field 6 of
        // its stat), or on a PTY the hangup at the shell's exit could still
        // reach it.
        let script = "setsid sleep 1000 & \
            until [ \"$(cut -d' ' -f6 /proc/$!/stat)\" = $! ]; do :; done; echo $!";
        let mut params = start_params("escape", &bash(script));
        params["tty"] = json!(tty);
        client.start(params).await;
        let out = client.wait_exited("escape").await;
        let printed = if tty { out.pty_str() } else { out.stdout_str() };
        let pids = pids_in(&printed);
        assert_eq!(pids.len(), 1, "tty {tty}: {out:?}");
        assert!(is_alive(pids[0]), "tty {tty}: the escapee is not running");
        client.terminate("escape").await;
        client.wait_closed("escape").await;
        wait_dead(&pids).await;
        server.shutdown().await;
    }
}

#[tokio::test]
async fn read_returns_retained_output_with_seq_bounds() {
    let (server, mut client) = connected().await;
    let script = "echo first; read x; echo second; exit 4";
    client.start(stdin_params("r", &bash(script))).await;
    client.wait_output("r", "first").await;
    client.write("r", b"\n").await;
    client.wait_closed("r").await;

    // Everything, after exit: two chunks (seq 1, 2), then exited (3), closed (4).
    let all = client
        .call(
            "process/read",
            json!({"processId": "r", "afterSeq": null, "maxBytes": null, "waitMs": null}),
        )
        .await
        .unwrap();
    let chunks = all["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0]["seq"], 1);
    assert_eq!(chunks[0]["stream"], "stdout");
    assert_eq!(unb64(&chunks[0]["chunk"]), b"first\n");
    assert_eq!(unb64(&chunks[1]["chunk"]), b"second\n");
    assert_eq!(all["exited"], true);
    assert_eq!(all["closed"], true);
    assert_eq!(all["exitCode"], 4);
    assert_eq!(all["nextSeq"], 3);
    assert!(all["failure"].is_null());

    // maxBytes limits to what fits, but always returns at least one chunk.
    let one = client
        .call("process/read", json!({"processId": "r", "maxBytes": 1}))
        .await
        .unwrap();
    assert_eq!(one["chunks"].as_array().unwrap().len(), 1);
    assert_eq!(one["nextSeq"], 2);

    // afterSeq skips what was seen.
    let rest = client
        .call("process/read", json!({"processId": "r", "afterSeq": 1}))
        .await
        .unwrap();
    let chunks = rest["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0]["seq"], 2);

    let none = client
        .call(
            "process/read",
            json!({"processId": "r", "afterSeq": 2, "waitMs": 10000}),
        )
        .await
        .unwrap();
    assert!(none["chunks"].as_array().unwrap().is_empty());
    assert_eq!(none["nextSeq"], 5);
    server.shutdown().await;
}

#[tokio::test]
async fn read_long_polls_until_output_arrives() {
    let (server, mut client) = connected().await;
    let script = "read x; echo got:$x; read y";
    client.start(stdin_params("lp", &bash(script))).await;
    // Nothing to read yet: a short wait ends empty-handed.
    let empty = client
        .call(
            "process/read",
            json!({"processId": "lp", "afterSeq": 0, "waitMs": 50}),
        )
        .await
        .unwrap();
    assert!(empty["chunks"].as_array().unwrap().is_empty());
    assert_eq!(empty["exited"], false);
    // A long wait is answered by the output the write causes.
    let read_id = client
        .send_request(
            "process/read",
            json!({"processId": "lp", "afterSeq": 0, "waitMs": 20000}),
        )
        .await;
    client.write("lp", b"x\n").await;
    let result = client.response(read_id).await.unwrap();
    let chunks = result["chunks"].as_array().unwrap();
    assert_eq!(unb64(&chunks[0]["chunk"]), b"got:x\n");
    assert_eq!(result["exited"], false);
    server.shutdown().await;
}

#[tokio::test]
async fn fifty_concurrent_processes_keep_order_and_every_line() {
    let (server, mut client) = connected().await;
    let script = "for i in $(seq 1 400); do echo \"$0 line $i\"; echo \"$0 err $i\" >&2; done";
    let ids: Vec<String> = (0..50).map(|n| format!("p{n}")).collect();
    for id in &ids {
        client
            .start(start_params(id, &["bash", "-c", script, id]))
            .await;
    }
    for id in &ids {
        let out = client.wait_closed(id).await;
        let expected_out: String = (1..=400).map(|i| format!("{id} line {i}\n")).collect();
        let expected_err: String = (1..=400).map(|i| format!("{id} err {i}\n")).collect();
        assert_eq!(out.stdout_str(), expected_out, "{id} stdout");
        assert_eq!(out.stderr_str(), expected_err, "{id} stderr");
        assert_eq!(out.exit_code, Some(0));
        assert!(!out.output_after_exit, "{id}: output after exited");
        assert_eq!(out.last_seq, out.output_chunks as u64 + 2);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn sixty_four_mib_of_binary_output_arrive_exactly() {
    let (server, mut client) = connected().await;
    let data = noise(64 * 1024 * 1024, 0x9E37_79B9_7F4A_7C15);
    let dir = TempDir::new("64mib");
    std::fs::write(dir.join("data"), &data).unwrap();
    let out = client.run("big", &["cat", &dir.text("data")]).await;
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "64 MiB output differs from the file");
    assert!(out.output_chunks > 1);
    server.shutdown().await;
}

#[tokio::test]
async fn retention_drops_oldest_output_and_shows_the_gap() {
    let mut config = ServerConfig::default();
    config.table.retained_bytes_per_process = 64 * 1024;
    let server = start_server_with(config).await;
    let mut client = Client::connect_initialized(&server.url()).await;
    let out = client
        .run("flood", &["head", "-c", "4194304", "/dev/zero"])
        .await;
    assert_eq!(out.stdout.len(), 4 << 20);
    let read = client
        .call("process/read", json!({"processId": "flood", "afterSeq": 0}))
        .await
        .unwrap();
    let chunks = read["chunks"].as_array().unwrap();
    let retained: usize = chunks.iter().map(|c| unb64(&c["chunk"]).len()).sum();
    // Within the cap, except that the newest chunk is always kept whole.
    assert!(
        retained <= 64 * 1024 || chunks.len() == 1,
        "retained {retained} bytes in {} chunks",
        chunks.len()
    );
    assert!(!chunks.is_empty());
    // The oldest chunks are gone: the first retained seq is past 1, and the
    // rest are contiguous up to the last output seq.
    let seqs: Vec<u64> = chunks.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert!(seqs[0] > 1, "nothing was dropped: {seqs:?}");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(*seqs.last().unwrap(), out.output_chunks as u64);
    assert_eq!(read["exited"], true);
    assert_eq!(read["closed"], true);
    server.shutdown().await;
}

#[tokio::test]
async fn closed_records_stay_readable_until_evicted() {
    let mut config = ServerConfig::default();
    config.table.max_closed_records = 2;
    let server = start_server_with(config).await;
    let mut client = Client::connect_initialized(&server.url()).await;
    for id in ["a", "b", "c"] {
        client.run(id, &["echo", id]).await;
    }
    // A closed record is still there: same id is a duplicate.
    let err = client
        .call_expect_error("process/start", start_params("c", &["true"]))
        .await;
    assert_eq!(err["code"], -32600);
    assert_eq!(err["message"], "process c already exists");
    // The next start evicts the oldest closed record beyond the bound.
    client.run("d", &["true"]).await;
    let err = client
        .call_expect_error("process/read", json!({"processId": "a"}))
        .await;
    assert_eq!(err["code"], -32600);
    assert!(err["message"].as_str().unwrap().contains('a'));
    let read = client
        .call("process/read", json!({"processId": "c"}))
        .await
        .unwrap();
    assert_eq!(unb64(&read["chunks"][0]["chunk"]), b"c\n");
    // An evicted id can be used again.
    let again = client.run("a", &["echo", "again"]).await;
    assert_eq!(again.stdout_str(), "again\n");
    server.shutdown().await;
}

async fn dropped_client_leaves_nothing_running(clean_close: bool) {
    let (server, mut client) = connected().await;
    let script = "sleep 1000 & echo $!; echo $$; sleep 1000";
    client.start(start_params("bg", &bash(script))).await;
    let script = "echo $$; sleep 1000";
    client.start(pty_params("tty", &bash(script))).await;
    let out = client.wait_lines("bg", 2).await;
    let mut pids = pids_in(&out.stdout_str());
    let out = client.wait_output("tty", "\n").await;
    pids.extend(pids_in(&out.pty_str()));
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|p| is_alive(*p)));
    let mut ws = client.into_inner();
    if clean_close {
        ws.close(None).await.unwrap();
    }
    drop(ws);
    wait_dead(&pids).await;
    server.shutdown().await;
}

#[tokio::test]
async fn killed_client_leaves_no_process_behind() {
    dropped_client_leaves_nothing_running(false).await;
}

#[tokio::test]
async fn closing_client_leaves_no_process_behind() {
    dropped_client_leaves_nothing_running(true).await;
}

#[tokio::test]
async fn server_shutdown_terminates_every_process() {
    let (server, mut client) = connected().await;
    let script = "echo $$; exec sleep 1000";
    client.start(start_params("s", &bash(script))).await;
    let out = client.wait_output("s", "\n").await;
    let pids = pids_in(&out.stdout_str());
    tokio::time::timeout(Duration::from_secs(30), server.shutdown())
        .await
        .expect("shutdown finished");
    // shutdown() returns only after every process closed (and was reaped).
    assert!(!is_alive(pids[0]));
}

/// A child whose exec is held for approval has not exec'd, so it still has
/// a copy of every descriptor the server had when it forked (close-on-exec
/// has not happened yet). It must not hold another process's stdin open:
/// closing that stdin must still be EOF at once.
#[tokio::test]
async fn a_start_held_for_approval_holds_no_other_process_open() {
    let (server, mut client) = connected().await;
    client.start(stdin_params("cat", &["cat"])).await;
    let mut held = start_params("held", &["sleep", "1"]);
    // One directory, so the exec is asked about once (a denied exec makes
    // the PATH search try the next directory, and ask again).
    held["env"]["PATH"] = json!("/usr/bin");
    held["execPolicy"] = json!({
        "rules": [{"prefix": ["sleep"], "decision": "ask"}],
        "askTimeoutMs": 20000
    });
    let start = client.send_request("process/start", held).await;
    // The held child exists once the server asks about its exec.
    let ask = client.recv_frame().await;
    assert_eq!(ask["method"], "exec/approve", "{ask}");
    client
        .call(
            "process/write",
            json!({"processId": "cat", "chunk": b64(b"last"), "closeStdin": true}),
        )
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), client.wait_closed("cat"))
        .await
        .expect("cat got no EOF while another start was held for approval");
    assert_eq!(closed.stdout_str(), "last");
    // Denied: the held start fails.
    client
        .send_raw(
            &json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"decision": "deny"}}).to_string(),
        )
        .await;
    let err = client.response(start).await.unwrap_err();
    assert!(err["message"].as_str().unwrap().contains("denied"), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn writes_during_a_start_held_for_approval_answer_starting() {
    let (server, mut client) = connected().await;
    // The program's own exec is asked about; this client never answers.
    let mut params = stdin_params("held", &["cat"]);
    params["env"]["PATH"] = json!("/no/such/dir:/usr/local/bin:/usr/bin:/bin");
    params["execPolicy"] = json!({
        "rules": [{"prefix": ["cat"], "decision": "ask"}],
        "askTimeoutMs": 500
    });
    let start = client.send_request("process/start", params).await;
    let write = client.write("held", b"x").await;
    assert_eq!(write, json!({"status": "starting"}));
    // Unanswered: denied at the timeout, and the start fails saying so.
    let err = client.response(start).await.unwrap_err();
    assert_eq!(err["code"], -32602);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("denied by the exec policy"),
        "{err}"
    );
    let write = client.write("held", b"x").await;
    assert_eq!(write, json!({"status": "unknownProcess"}));
    // `cat` was looked up along PATH: probes of directories without it
    // fail as "not found" and are neither asked about nor reported.
    let decided: Vec<String> = client
        .take_notifications()
        .into_iter()
        .filter(|n| n["method"] == "exec/decision")
        .map(|n| n["params"]["path"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!decided.is_empty());
    for path in &decided {
        assert!(
            std::path::Path::new(path).exists(),
            "decision reported for {path}"
        );
    }
    server.shutdown().await;
}
