//! Malformed frames and bad calls, before and after `initialize`: each gets
//! the right error (code, id, a message naming what is wrong), and neither
//! the session nor a process running alongside is disturbed.

use execd_test_support::wire::*;
use execd_test_support::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// One malformed frame, the id its error reply must carry, and what its message must name.
struct Malformed {
    text: &'static str,
    id: Value,
    needles: &'static [&'static str],
}

fn malformed_frames() -> Vec<Malformed> {
    let frame = |text, id, needles| Malformed { text, id, needles };
    vec![
        frame("{nope", json!(-1), &["not valid JSON"]),
        frame("", json!(-1), &["not valid JSON"]),
        frame("   ", json!(-1), &["not valid JSON"]),
        frame("[1,2]", json!(-1), &["array"]),
        frame("42", json!(-1), &["number"]),
        frame(r#""hello""#, json!(-1), &["string"]),
        frame("null", json!(-1), &["null"]),
        frame(r#"{"id":1.5,"method":"x"}"#, json!(-1), &["id", "1.5"]),
        frame(r#"{"id":true,"method":"x"}"#, json!(-1), &["id", "true"]),
        frame(
            r#"{"id":{"a":1},"method":"x"}"#,
            json!(-1),
            &["id", r#"{"a":1}"#],
        ),
        frame(r#"{"params":{}}"#, json!(-1), &["method", "id"]),
        frame(r#"{"jsonrpc":"2.0"}"#, json!(-1), &["method", "id"]),
        frame(r#"{"id":7,"method":5}"#, json!(7), &["method", "5"]),
        frame(
            r#"{"id":"m","method":["x"]}"#,
            json!("m"),
            &["method", r#"["x"]"#],
        ),
        frame(r#"{"id":8}"#, json!(8), &["method", "result", "error"]),
    ]
}

fn assert_malformed_reply(frame: &Value, bad: &Malformed) {
    let context = format!("reply to {:?}", bad.text);
    assert_eq!(frame["id"], bad.id, "{context}: wrong id in {frame}");
    assert!(
        frame.get("result").is_none(),
        "{context}: has a result: {frame}"
    );
    let error = frame
        .get("error")
        .unwrap_or_else(|| panic!("{context}: not an error response: {frame}"));
    assert_error(error, INVALID_REQUEST, bad.needles, &context);
}

/// Send every malformed frame, waiting for each error reply in turn (other
/// traffic, e.g. process events, may be interleaved).
async fn send_malformed_one_by_one(client: &mut Client) {
    for bad in malformed_frames() {
        client.send_raw(bad.text).await;
        let error = client
            .response_for(&bad.id)
            .await
            .expect_err("malformed frame must get an error response");
        assert_error(
            &error,
            INVALID_REQUEST,
            bad.needles,
            &format!("reply to {:?}", bad.text),
        );
    }
}

async fn expect_error(
    client: &mut Client,
    method: &str,
    params: Value,
    code: i64,
    needles: &[&str],
) {
    let context = format!("{method} {params}");
    let error = client.call_expect_error(method, params).await;
    assert_error(&error, code, needles, &context);
}

/// `start_params` for `echo hi` with one field replaced (or removed, for `None`).
fn start_with(id: &str, field: &str, value: Option<Value>) -> Value {
    let mut params = start_params(id, &["echo", "hi"]);
    let object = params.as_object_mut().unwrap();
    match value {
        Some(value) => object.insert(field.to_string(), value),
        None => object.remove(field),
    };
    params
}

/// Every bad call of an initialized session, each checked for its code and message.
async fn check_bad_calls(client: &mut Client) {
    expect_error(
        client,
        "no/such/method",
        json!({}),
        METHOD_NOT_FOUND,
        &["no/such/method"],
    )
    .await;

    // Wrong types.
    for (field, value, needles) in [
        ("argv", json!("echo hi"), &["argv"][..]),
        ("argv", json!(["echo", 5]), &["argv"][..]),
        ("env", json!({"PATH": 5}), &["env"][..]),
        ("env", json!(["PATH=/bin"]), &["env"][..]),
        ("tty", json!("yes"), &["tty"][..]),
        ("pipeStdin", json!("no"), &["pipeStdin"][..]),
        ("processId", json!(12), &["processId"][..]),
        ("cwd", json!(false), &["cwd"][..]),
    ] {
        let params = start_with("typed", field, Some(value));
        expect_error(client, "process/start", params, INVALID_PARAMS, needles).await;
    }

    // Missing fields.
    for field in ["processId", "argv"] {
        let params = start_with("missing", field, None);
        expect_error(client, "process/start", params, INVALID_PARAMS, &[field]).await;
    }

    // Values the process layer rejects.
    for (id, field, value, needle) in [
        ("empty", "argv", json!([]), "argv must not be empty"),
        ("rel", "cwd", json!("relative/dir"), "relative/dir"),
        (
            "nocwd",
            "cwd",
            json!("/no/such/dir-xyz"),
            "/no/such/dir-xyz",
        ),
    ] {
        let params = start_with(id, field, Some(value));
        expect_error(client, "process/start", params, INVALID_PARAMS, &[needle]).await;
    }
    for program in ["/no/such/program", "no-such-program-xyz"] {
        let params = start_params("noprog", &[program, "arg"]);
        expect_error(client, "process/start", params, INVALID_PARAMS, &[program]).await;
    }

    // Duplicate id.
    client.start(start_params("dup", &["sleep", "5"])).await;
    let error = client
        .call_expect_error("process/start", start_params("dup", &["sleep", "5"]))
        .await;
    assert_eq!(error["code"], json!(INVALID_REQUEST), "duplicate: {error}");
    assert_eq!(
        error["message"],
        json!("process dup already exists"),
        "duplicate: {error}"
    );

    // Unknown process ids.
    expect_error(
        client,
        "process/read",
        json!({"processId": "ghost", "afterSeq": null, "maxBytes": null, "waitMs": null}),
        INVALID_REQUEST,
        &["ghost"],
    )
    .await;
    let result = client.write("ghost", b"x\n").await;
    assert_eq!(result, json!({"status": "unknownProcess"}));
    let result = client.terminate("ghost").await;
    assert_eq!(result, json!({"running": false}));

    // Bad params of the other process methods.
    for (method, params, needle) in [
        (
            "process/write",
            json!({"processId": "dup", "chunk": "!!not base64!!"}),
            "chunk",
        ),
        (
            "process/read",
            json!({"processId": "dup", "afterSeq": "x"}),
            "afterSeq",
        ),
        ("process/terminate", json!({}), "processId"),
    ] {
        expect_error(client, method, params, INVALID_PARAMS, &[needle]).await;
    }

    // Params that are not an object.
    for (method, params, needle) in [
        ("process/start", json!([1]), "[1]"),
        ("process/write", json!("text"), "\"text\""),
        ("process/read", json!(null), "null"),
        ("process/terminate", json!(3), "3"),
    ] {
        expect_error(client, method, params, INVALID_PARAMS, &[method, needle]).await;
    }

    // The duplicate's original is untouched; stop it.
    let result = client.terminate("dup").await;
    assert_eq!(result, json!({"running": true}));
    let dup = client.wait_closed("dup").await;
    assert_eq!(dup.exit_code, Some(-1), "dup was killed by a signal");
}

/// The session still works: `echo hi` runs as process `id`.
async fn assert_echo_runs(client: &mut Client, id: &str) {
    let out = client.run(id, &["echo", "hi"]).await;
    assert_eq!(out.stdout_str(), "hi\n");
    assert_eq!(out.exit_code, Some(0));
}

#[tokio::test]
async fn malformed_frame_burst_then_initialize() {
    let server = start_server().await;
    let mut client = Client::connect(&server.url()).await;
    let frames = malformed_frames();
    for bad in &frames {
        client.send_raw(bad.text).await;
    }
    // Nothing else is running, so the replies come in frame order.
    for bad in &frames {
        let reply = client.recv_frame().await;
        assert_malformed_reply(&reply, bad);
    }
    client.initialize("test").await;
    assert_echo_runs(&mut client, "after").await;
    server.shutdown().await;
}

#[tokio::test]
async fn calls_before_initialize_are_rejected() {
    let server = start_server().await;
    let mut client = Client::connect(&server.url()).await;
    let early = start_params("early", &["echo", "hi"]);
    for (method, params, code, needles) in [
        (
            "process/start",
            early.clone(),
            INVALID_REQUEST,
            &["process/start", "initialize"][..],
        ),
        (
            "process/read",
            json!({"processId": "early"}),
            INVALID_REQUEST,
            &["process/read", "initialize"],
        ),
        (
            "fs/readFile",
            json!({"path": "/etc/hostname"}),
            INVALID_REQUEST,
            &["fs/readFile", "initialize"],
        ),
        // A bad initialize does not initialize either.
        (
            "initialize",
            json!({"clientName": 5}),
            INVALID_PARAMS,
            &["clientName"],
        ),
        ("process/start", early, INVALID_REQUEST, &["process/start"]),
    ] {
        expect_error(&mut client, method, params, code, needles).await;
    }

    // The rejected start left nothing behind: the id is free once initialized.
    client.initialize("test").await;
    assert_echo_runs(&mut client, "early").await;
    server.shutdown().await;
}

#[tokio::test]
async fn bad_calls_after_initialize() {
    let (server, mut client) = connected().await;
    check_bad_calls(&mut client).await;
    // The session still works.
    assert_echo_runs(&mut client, "fine").await;
    server.shutdown().await;
}

#[tokio::test]
async fn running_process_unaffected_by_bad_input() {
    let (server, mut client) = connected().await;
    let script = "for i in $(seq 1 50); do echo line$i; done; read x; echo got:$x";
    client
        .start(stdin_params("bg", &["bash", "-c", script]))
        .await;

    send_malformed_one_by_one(&mut client).await;
    check_bad_calls(&mut client).await;

    let result = client.write("bg", b"ok\n").await;
    assert_eq!(result, json!({"status": "accepted"}));
    let out = client.wait_closed("bg").await;
    let mut expected: String = (1..=50).map(|i| format!("line{i}\n")).collect();
    expected.push_str("got:ok\n");
    assert_eq!(out.stdout_str(), expected);
    assert_eq!(out.stderr_str(), "");
    assert_eq!(out.exit_code, Some(0));
    assert!(!out.output_after_exit);
    server.shutdown().await;
}

#[tokio::test]
async fn permessage_deflate_offer_still_connects() {
    let server = start_server().await;
    let mut request = server.url().into_client_request().expect("client request");
    request.headers_mut().insert(
        "Sec-WebSocket-Extensions",
        HeaderValue::from_static("permessage-deflate; client_max_window_bits"),
    );
    let (ws, response) = connect_ws(request).await;
    assert_eq!(response.status().as_u16(), 101);
    let mut client = Client::from_stream(ws);
    client.initialize("deflate").await;
    assert_echo_runs(&mut client, "p1").await;
    server.shutdown().await;
}

#[tokio::test]
async fn non_utf8_binary_frame_gets_error_and_connection_survives() {
    let server = start_server().await;
    let (mut ws, _) = connect_ws(server.url()).await;
    ws.send(Message::binary(vec![0xff, 0xfe, b'{', 0x80, b'}']))
        .await
        .expect("send binary");
    let reply = recv_json(&mut ws).await;
    assert_eq!(reply["id"], json!(-1), "{reply}");
    assert!(reply.get("result").is_none(), "{reply}");
    assert_error(
        &reply["error"],
        INVALID_REQUEST,
        &["binary", "UTF-8"],
        "reply to a non-UTF-8 binary frame",
    );

    let mut client = Client::from_stream(ws);
    client.initialize("binary").await;
    assert_echo_runs(&mut client, "p1").await;
    server.shutdown().await;
}
