//! The committed JSON Schema (`schema/execd-protocol.json`) is what the wire
//! types generate. `UPDATE_SCHEMA=1 cargo test -p execd-protocol --test
//! schema` rewrites it; without that a difference fails with the command to
//! run. (The schema is checked against real frames by the Python suite:
//! `python/tests/test_schema.py`.)

use std::path::PathBuf;

use serde_json::Value;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema/execd-protocol.json")
}

#[test]
fn committed_schema_matches_the_types() {
    let generated = execd_protocol::schema::document();
    let path = committed_path();
    if std::env::var_os("UPDATE_SCHEMA").is_some_and(|v| v == "1") {
        let text = serde_json::to_string_pretty(&generated).expect("serialize the schema") + "\n";
        std::fs::write(&path, text).expect("write schema/execd-protocol.json");
        return;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let committed: Value = serde_json::from_str(&text).expect("the committed schema is JSON");
    assert!(
        committed == generated,
        "schema/execd-protocol.json differs from what the protocol types generate; \
         run `UPDATE_SCHEMA=1 cargo test -p execd-protocol --test schema` and commit the result"
    );
}

#[test]
fn schema_covers_every_method_and_marks_extensions() {
    let doc = execd_protocol::schema::document();
    let methods = doc["methods"].as_object().expect("methods");
    for name in [
        "initialize",
        "process/start",
        "process/read",
        "process/write",
        "process/terminate",
        "process/resize",
        "process/signal",
        "fs/readFile",
        "fs/writeFile",
        "fs/createDirectory",
        "fs/getMetadata",
        "fs/readDirectory",
        "fs/remove",
        "fs/copy",
        "exec/approve",
    ] {
        let entry = &methods[name];
        assert!(entry["params"].is_object(), "{name} has no params schema");
        assert!(entry["result"].is_object(), "{name} has no result schema");
    }
    for name in [
        "process/output",
        "process/exited",
        "process/closed",
        "exec/decision",
        "initialized",
    ] {
        assert!(doc["notifications"][name]["params"].is_object(), "{name}");
    }
    assert_eq!(methods["process/signal"]["x-execd-extension"], true);
    assert!(methods["process/read"].get("x-execd-extension").is_none());
    let defs = &doc["$defs"];
    assert_eq!(
        defs["ExitedNotification"]["properties"]["signal"]["x-execd-extension"],
        true
    );
    assert!(defs["ExitedNotification"]["properties"]["exitCode"]
        .get("x-execd-extension")
        .is_none());
    assert_eq!(
        defs["RpcError"]["required"],
        serde_json::json!(["code", "message"])
    );
}
