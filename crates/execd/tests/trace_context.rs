//! W3C trace context on requests (the frame's `trace` member, as codex's
//! client sends it): `execd serve --log-format json` shows the request's
//! trace id on the log lines of that request, both those written while
//! the request is dispatched (`process/start`'s audit event) and those
//! written by the task that answers it later (`fs/writeFile`'s); a request
//! without trace context, or with a malformed one, gets none and still works.

use execd_test_support::wire::start_params;
use execd_test_support::ws_client::Client;
use execd_test_support::Execd;
use serde_json::{json, Value};

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));
const START_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const WRITE_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// The audit event `name` whose `field` is `value`.
fn event<'a>(events: &'a [Value], name: &str, field: &str, value: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == name && e[field] == value)
        .unwrap_or_else(|| panic!("no {name} event with {field}={value} in {events:#?}"))
}

#[tokio::test]
async fn a_requests_trace_id_is_on_its_log_lines() {
    let work = tempfile::tempdir().unwrap();
    let server = EXECD.serve_json_logs(None, &[]).await;

    let mut client = Client::connect_initialized(server.url()).await;
    let traced = |id: i64, method: &str, params: Value, trace_id: &str| {
        json!({
            "id": id, "method": method, "params": params,
            "trace": {
                "traceparent": format!("00-{trace_id}-00f067aa0ba902b7-01"),
                "tracestate": "congo=t61rcWkgMzE"
            }
        })
        .to_string()
    };
    client
        .send_raw(&traced(
            900,
            "process/start",
            start_params("traced", &["true"]),
            START_TRACE,
        ))
        .await;
    client.response(900).await.expect("traced start");
    client.wait_closed("traced").await;
    let path = work.path().join("written");
    let path = path.to_str().unwrap();
    client
        .send_raw(&traced(
            901,
            "fs/writeFile",
            json!({"path": path, "dataBase64": "aGk="}),
            WRITE_TRACE,
        ))
        .await;
    client.response(901).await.expect("traced write");
    // Without trace context, and with one that does not parse: no span.
    client.run("plain", &["true"]).await;
    let bad = json!({
        "id": 902, "method": "process/start",
        "params": start_params("badly-traced", &["true"]),
        "trace": {"traceparent": "00-zz-00f067aa0ba902b7-01"}
    });
    client.send_raw(&bad.to_string()).await;
    client.response(902).await.expect("a bad trace is ignored");
    drop(client);

    let events = server.stop_and_logs().await.lines;

    let start = event(&events, "process.started", "process_id", "traced");
    assert_eq!(start["span"]["trace_id"], START_TRACE, "{start}");
    assert_eq!(start["span"]["parent_id"], "00f067aa0ba902b7", "{start}");
    assert_eq!(start["span"]["tracestate"], "congo=t61rcWkgMzE", "{start}");
    assert_eq!(start["span"]["method"], "process/start", "{start}");
    let write = event(&events, "fs.change", "path", path);
    assert_eq!(write["span"]["trace_id"], WRITE_TRACE, "{write}");
    for untraced in ["plain", "badly-traced"] {
        let start = event(&events, "process.started", "process_id", untraced);
        assert!(start.get("span").is_none(), "{start}");
    }
}
