//! Property tests of every decoder in the protocol crate: the envelope
//! (`Incoming::parse` / `from_value`), the binary output frame, base64, and
//! each params/result type through `serde_json::from_value`. Arbitrary
//! bytes, strings and JSON, and valid messages with one part made wrong,
//! never panic and always give a value or an error; where an encoder exists,
//! encoding what was decoded gives it back. Case counts are modest so the
//! suite stays fast; `fuzz/` runs the same decoders for as long as wanted.

use std::fmt::Debug;

use bytes::Bytes;
use execd_protocol::base64_bytes;
use execd_protocol::binary::{decode_output, encode_output};
use execd_protocol::envelope::InitializeParams;
use execd_protocol::process::OutputStream;
use execd_protocol::{fs, policy, process, sandbox, Incoming, ReplyId, RequestId};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Field names of the protocol's messages, so generated objects often have
/// the right keys with the wrong values.
#[rustfmt::skip]
const FIELDS: &[&str] = &[
    "id", "method", "params", "result", "error", "code", "message", "data",
    "clientName", "binaryOutput", "processId", "argv", "cwd", "env", "tty", "pipeStdin",
    "arg0", "size", "rows", "cols", "execPolicy", "sandbox", "afterSeq", "maxBytes",
    "waitMs", "chunk", "closeStdin", "signal", "seq", "stream", "exitCode", "path",
    "offset", "length", "dataBase64", "append", "recursive", "force", "sourcePath",
    "destinationPath", "rules", "prefix", "decision", "default", "askTimeoutMs", "pid",
    "escalation", "decidedBy", "rule", "reason", "writableRoots", "network", "readOnly",
    "landlock", "landlockAbi", "networkNamespace", "noNewPrivs", "isDirectory",
    "isFile", "isSymlink", "createdAtMs", "modifiedAtMs", "size", "entries", "fileName",
    "eof", "status", "running",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FIELDS).prop_map(str::to_string),
        1 => ".{0,8}",
    ]
}

/// Any JSON value, with strings that look like what the protocol carries
/// (ids, paths, base64, enum names) as well as arbitrary ones.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u64..70_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        "[A-Za-z0-9+/]{0,12}={0,2}".prop_map(Value::from),
        prop::sample::select(
            &[
                "stdout", "stderr", "pty", "allow", "deny", "ask", "escalate", "run", "rule",
                "client", "TERM", "SIGKILL", "/tmp", "/", "p1",
            ][..]
        )
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// A valid message of each kind the decoders take, and the type it is.
fn examples() -> Vec<(&'static str, Value)> {
    vec![
        (
            "InitializeParams",
            json!({"clientName": "c", "binaryOutput": true}),
        ),
        (
            "StartParams",
            json!({"processId": "p1", "argv": ["bash", "-c", "echo"], "cwd": "/tmp",
               "env": {"PATH": "/bin"}, "tty": true, "pipeStdin": true, "arg0": "sh",
               "size": {"rows": 24, "cols": 80},
               "execPolicy": {"rules": [{"prefix": ["git"], "decision": "ask"}],
                              "default": "deny", "askTimeoutMs": 10},
               "sandbox": {"writableRoots": ["/tmp"], "network": false, "readOnly": true}}),
        ),
        (
            "ReadParams",
            json!({"processId": "p1", "afterSeq": 3, "maxBytes": 100, "waitMs": 5}),
        ),
        (
            "WriteParams",
            json!({"processId": "p1", "chunk": "aGkK", "closeStdin": true}),
        ),
        ("TerminateParams", json!({"processId": "p1"})),
        (
            "ResizeParams",
            json!({"processId": "p1", "rows": 10, "cols": 20}),
        ),
        ("SignalParams", json!({"processId": "p1", "signal": "TERM"})),
        (
            "OutputNotification",
            json!({"processId": "p1", "seq": 1, "stream": "stdout", "chunk": "aGkK"}),
        ),
        (
            "ExitedNotification",
            json!({"processId": "p1", "seq": 2, "exitCode": -1, "signal": "SIGKILL"}),
        ),
        (
            "ReadFileParams",
            json!({"path": "/tmp/x", "offset": 1, "length": 2}),
        ),
        (
            "WriteFileParams",
            json!({"path": "/tmp/x", "dataBase64": "aGkK", "append": true}),
        ),
        (
            "RemoveParams",
            json!({"path": "/tmp/x", "recursive": true, "force": false}),
        ),
        (
            "CopyParams",
            json!({"sourcePath": "/a", "destinationPath": "/b", "recursive": true}),
        ),
        (
            "ApproveParams",
            json!({"processId": "p1", "pid": 7, "path": "/bin/ls", "argv": ["ls"], "cwd": "/",
               "escalation": false}),
        ),
        ("ApproveResult", json!({"decision": "run"})),
        (
            "DecisionParams",
            json!({"processId": "p1", "pid": 7, "path": "/bin/ls", "argv": ["ls"],
               "decision": "allow", "decidedBy": "rule", "rule": ["ls"], "reason": "r"}),
        ),
        (
            "SandboxFeatures",
            json!({"landlock": true, "landlockAbi": 6, "networkNamespace": true, "noNewPrivs": true}),
        ),
        (
            "ReadResult",
            json!({"chunks": [{"seq": 1, "stream": "pty", "chunk": "aGkK"}], "nextSeq": 2,
               "exited": true, "exitCode": 0, "closed": false, "failure": null,
               "signal": "SIGTERM"}),
        ),
        (
            "WriteResult",
            json!({"status": "stdinClosed", "running": true}),
        ),
        (
            "Metadata",
            json!({"isDirectory": false, "isFile": true, "isSymlink": false, "createdAtMs": 1,
               "modifiedAtMs": -2, "size": 3}),
        ),
        ("ReadFileResult", json!({"dataBase64": "aGkK", "eof": true})),
        (
            "Incoming",
            json!({"id": 1, "method": "process/start", "params": {"processId": "p1"}}),
        ),
        (
            "Incoming",
            json!({"id": "a", "error": {"code": -32602, "message": "bad", "data": [1]}}),
        ),
        (
            "Incoming",
            json!({"id": 2, "result": {"entries": [
            {"fileName": "f", "isDirectory": false, "isFile": true}]}}),
        ),
    ]
}

/// A valid message, as it is or with a node or two replaced, removed, or
/// given an extra key.
fn mutated() -> impl Strategy<Value = Value> {
    let change = (any::<prop::sample::Index>(), 0u8..3, key(), json());
    let changes = prop_oneof![
        1 => Just(Vec::new()),
        2 => prop::collection::vec(change, 1..=2),
    ];
    (0..examples().len(), changes).prop_map(|(example, changes)| {
        let mut value = examples().swap_remove(example).1;
        for (at, how, key, new) in changes {
            let nodes = count_nodes(&value);
            mutate(&mut value, &mut at.index(nodes), how, key, new);
        }
        value
    })
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Change the node `at` counts down to (pre-order): 0 replaces it with
/// `new`, 1 removes its first member (if it has any), 2 inserts `key: new`
/// (or appends `new`).
fn mutate(value: &mut Value, at: &mut usize, how: u8, key: String, new: Value) -> bool {
    if *at == 0 {
        match (how, &mut *value) {
            (1, Value::Object(map)) => {
                if let Some(first) = map.keys().next().cloned() {
                    map.remove(&first);
                }
            }
            (1, Value::Array(items)) if !items.is_empty() => {
                items.remove(0);
            }
            (2, Value::Object(map)) => {
                map.insert(key, new);
            }
            (2, Value::Array(items)) => items.push(new),
            _ => *value = new,
        }
        return true;
    }
    *at -= 1;
    let children: Vec<&mut Value> = match value {
        Value::Array(items) => items.iter_mut().collect(),
        Value::Object(map) => map.values_mut().collect(),
        _ => return false,
    };
    for child in children {
        if mutate(child, at, how, key.clone(), new.clone()) {
            return true;
        }
    }
    false
}

fn any_json() -> impl Strategy<Value = Value> {
    prop_oneof![1 => json(), 3 => mutated()]
}

/// Decoding `value` as `T` gives a value or an error; a value encodes and
/// decodes back to itself. The type's name if it was a value.
fn decodes_or_errs<T>(value: &Value) -> Result<Option<&'static str>, TestCaseError>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let Ok(decoded) = serde_json::from_value::<T>(value.clone()) else {
        return Ok(None);
    };
    let encoded =
        serde_json::to_value(&decoded).map_err(|err| TestCaseError::fail(err.to_string()))?;
    let again = serde_json::from_value::<T>(encoded.clone())
        .map_err(|err| TestCaseError::fail(format!("{encoded} does not decode: {err}")))?;
    prop_assert_eq!(again, decoded);
    let name = std::any::type_name::<T>();
    Ok(Some(name.rsplit("::").next().unwrap_or(name)))
}

/// Decode `value` as every type; the names of those that took it.
fn every_type(value: &Value) -> Result<Vec<&'static str>, TestCaseError> {
    let decoded = [
        decodes_or_errs::<InitializeParams>(value)?,
        decodes_or_errs::<process::StartParams>(value)?,
        decodes_or_errs::<process::ReadParams>(value)?,
        decodes_or_errs::<process::ReadResult>(value)?,
        decodes_or_errs::<process::WriteParams>(value)?,
        decodes_or_errs::<process::WriteResult>(value)?,
        decodes_or_errs::<process::TerminateParams>(value)?,
        decodes_or_errs::<process::ResizeParams>(value)?,
        decodes_or_errs::<process::SignalParams>(value)?,
        decodes_or_errs::<process::OutputNotification>(value)?,
        decodes_or_errs::<process::ExitedNotification>(value)?,
        decodes_or_errs::<process::ClosedNotification>(value)?,
        decodes_or_errs::<fs::PathParams>(value)?,
        decodes_or_errs::<fs::ReadFileParams>(value)?,
        decodes_or_errs::<fs::ReadFileResult>(value)?,
        decodes_or_errs::<fs::WriteFileParams>(value)?,
        decodes_or_errs::<fs::CreateDirectoryParams>(value)?,
        decodes_or_errs::<fs::Metadata>(value)?,
        decodes_or_errs::<fs::ReadDirectoryResult>(value)?,
        decodes_or_errs::<fs::RemoveParams>(value)?,
        decodes_or_errs::<fs::CopyParams>(value)?,
        decodes_or_errs::<policy::ExecPolicy>(value)?,
        decodes_or_errs::<policy::ApproveParams>(value)?,
        decodes_or_errs::<policy::ApproveResult>(value)?,
        decodes_or_errs::<policy::DecisionParams>(value)?,
        decodes_or_errs::<sandbox::SandboxSpec>(value)?,
        decodes_or_errs::<sandbox::SandboxFeatures>(value)?,
    ];
    Ok(decoded.into_iter().flatten().collect())
}

fn stream() -> impl Strategy<Value = OutputStream> {
    prop_oneof![
        Just(OutputStream::Stdout),
        Just(OutputStream::Stderr),
        Just(OutputStream::Pty)
    ]
}

/// Arbitrary bytes, and frames that are nearly right: a kind and stream
/// code that may be wrong, an id length that may be off, an id that may not
/// be UTF-8.
fn frame_bytes() -> impl Strategy<Value = Vec<u8>> {
    let id = prop_oneof![
        3 => ".{0,12}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ];
    let near = (
        prop_oneof![4 => Just(1u8), 1 => any::<u8>()],
        0u8..4,
        any::<u64>(),
        id,
        -2i32..=2,
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(kind, stream, seq, id, off_by, chunk)| {
            let id_len = (id.len() as i32 + off_by).clamp(0, 65535) as u16;
            let mut frame = vec![kind, stream];
            frame.extend_from_slice(&seq.to_le_bytes());
            frame.extend_from_slice(&id_len.to_le_bytes());
            frame.extend(id);
            frame.extend(chunk);
            frame
        });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..64), near]
}

#[test]
fn every_example_decodes_as_its_type_and_round_trips() {
    for (kind, example) in examples() {
        let took = if kind == "Incoming" {
            Incoming::from_value(example.clone()).is_ok()
        } else {
            let took = every_type(&example).unwrap_or_else(|err| panic!("{example}: {err}"));
            took.contains(&kind)
        };
        assert!(took, "{example} is not a valid {kind}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_json_decodes_as_every_type_or_errs(value in any_json()) {
        every_type(&value)?;
    }

    #[test]
    fn any_text_is_a_frame_or_an_error(text in prop_oneof![
        ".{0,64}",
        any_json().prop_map(|value| value.to_string()),
        // Cut-off and spliced JSON.
        (any_json(), any::<prop::sample::Index>()).prop_map(|(value, at)| {
            let text = value.to_string();
            let cut = at.index(text.len() + 1);
            String::from_utf8_lossy(&text.as_bytes()[..cut]).into_owned()
        }),
    ]) {
        let _ = Incoming::parse(&text);
        let _ = Incoming::parse_raw(&text);
    }

    #[test]
    fn any_json_is_classified_or_rejected_naming_its_id(value in any_json()) {
        let usable_id = value
            .get("id")
            .and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok());
        match Incoming::from_value(value.clone()) {
            Ok(Incoming::Request { id, .. }) | Ok(Incoming::Response { id, .. }) => {
                prop_assert_eq!(Some(id), usable_id);
            }
            Ok(Incoming::Notification { .. }) => prop_assert_eq!(usable_id, None),
            Err(err) => {
                prop_assert!(!err.message.is_empty());
                match err.id {
                    ReplyId::Unknown => {}
                    ReplyId::Null => prop_assert!(value.get("id").is_some_and(Value::is_null)),
                    ReplyId::Id(id) => prop_assert_eq!(Some(id), usable_id),
                }
            }
        }
    }

    #[test]
    fn requests_and_notifications_round_trip(
        id in prop::option::of(prop_oneof![
            any::<i64>().prop_map(RequestId::Int),
            ".{0,12}".prop_map(RequestId::Str),
        ]),
        method in ".{0,24}",
        params in json(),
    ) {
        let mut frame = Map::new();
        if let Some(id) = &id {
            frame.insert("id".into(), serde_json::to_value(id).expect("an id encodes"));
        }
        frame.insert("method".into(), Value::from(method.clone()));
        frame.insert("params".into(), params.clone());
        let parsed = Incoming::parse(&Value::Object(frame).to_string());
        // Floats go through text as the parser reads them (not always to the
        // last bit without serde_json's `float_roundtrip`).
        let params: Value = serde_json::from_str(&params.to_string()).expect("JSON text parses");
        let expected = match id {
            Some(id) => Incoming::Request { id, method, params },
            None => Incoming::Notification { method, params },
        };
        prop_assert_eq!(parsed, Ok(expected));
    }

    #[test]
    fn any_bytes_are_an_output_frame_or_an_error(frame in frame_bytes()) {
        if let Ok(decoded) = decode_output(Bytes::from(frame.clone())) {
            // What decodes is exactly what the encoder writes for it.
            let encoded = encode_output(&decoded.process_id, decoded.seq, decoded.stream, &decoded.chunk);
            prop_assert_eq!(encoded.as_deref(), Some(&frame[..]));
        }
    }

    #[test]
    fn output_frames_round_trip(
        process_id in ".{0,40}",
        seq in any::<u64>(),
        stream in stream(),
        chunk in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let frame = encode_output(&process_id, seq, stream, &chunk).expect("a short id encodes");
        let decoded = decode_output(frame).expect("an encoded frame decodes");
        prop_assert_eq!(decoded.process_id, process_id);
        prop_assert_eq!(decoded.seq, seq);
        prop_assert_eq!(decoded.stream, stream);
        prop_assert_eq!(&decoded.chunk[..], &chunk[..]);
    }

    #[test]
    fn base64_round_trips_and_rejects_without_panicking(
        data in prop::collection::vec(any::<u8>(), 0..300),
        text in prop_oneof![".{0,40}", "[A-Za-z0-9+/=]{0,40}"],
    ) {
        let encoded = base64_bytes::encode(&data);
        prop_assert_eq!(base64_bytes::decode(encoded.as_bytes()), Ok(data));
        if let Ok(decoded) = base64_bytes::decode(text.as_bytes()) {
            let again = base64_bytes::encode(&decoded);
            prop_assert_eq!(base64_bytes::decode(again.as_bytes()), Ok(decoded));
        } else {
            prop_assert!(!base64_bytes::decode(text.as_bytes()).unwrap_err().is_empty());
        }
    }
}
