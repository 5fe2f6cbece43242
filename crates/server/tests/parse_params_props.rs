//! Property tests of `rpc::parse_params`, the decoder every method handler
//! goes through: for arbitrary JSON and for valid params with one field
//! made wrong, it never panics, it accepts exactly what serde accepts (so
//! the error wording adds nothing that could reject good input), and every
//! rejection is `-32602` naming the method (and the field, when one is at
//! fault).

use std::fmt::Debug;

use execd_protocol::envelope::InitializeParams;
use execd_protocol::{fs, process, ErrorCode};
use execd_server::rpc::parse_params;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Keys the params types use, so objects often have the right names.
#[rustfmt::skip]
const FIELDS: &[&str] = &[
    "clientName", "binaryOutput", "processId", "argv", "cwd", "env", "tty", "pipeStdin",
    "arg0", "size", "rows", "cols", "execPolicy", "sandbox", "afterSeq", "maxBytes",
    "waitMs", "chunk", "closeStdin", "signal", "path", "offset", "length", "dataBase64",
    "append", "recursive", "force", "sourcePath", "destinationPath", "rules", "default",
    "writableRoots",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..70_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,10}".prop_map(Value::from),
        "[A-Za-z0-9+/]{0,8}={0,2}".prop_map(Value::from),
    ];
    let key = prop_oneof![
        4 => prop::sample::select(FIELDS).prop_map(str::to_string),
        1 => ".{0,6}",
    ];
    leaf.prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// Valid params of the methods, keyed by method.
fn examples() -> Vec<Value> {
    vec![
        json!({"clientName": "c", "binaryOutput": true}),
        json!({"processId": "p1", "argv": ["true"], "cwd": "/", "env": {"A": "b"},
               "tty": false, "pipeStdin": true, "arg0": null, "size": {"rows": 2, "cols": 3},
               "execPolicy": {"rules": [], "default": "allow"},
               "sandbox": {"writableRoots": ["/tmp"]}}),
        json!({"processId": "p1", "afterSeq": 1, "maxBytes": 2, "waitMs": 3}),
        json!({"processId": "p1", "chunk": "aGkK", "closeStdin": true}),
        json!({"processId": "p1", "rows": 1, "cols": 1}),
        json!({"processId": "p1", "signal": "INT"}),
        json!({"path": "/x", "offset": 0, "length": 9}),
        json!({"path": "/x", "dataBase64": "", "append": false}),
        json!({"path": "/x", "recursive": true, "force": true}),
        json!({"sourcePath": "/a", "destinationPath": "/b", "recursive": false}),
    ]
}

/// A valid example with one top-level field replaced, dropped or added.
fn near_miss() -> impl Strategy<Value = Value> {
    (
        0..examples().len(),
        any::<prop::sample::Index>(),
        any::<bool>(),
        json(),
    )
        .prop_map(|(example, field, drop, new)| {
            let mut value = examples().swap_remove(example);
            if let Value::Object(map) = &mut value {
                let names: Vec<String> = map.keys().cloned().collect();
                let name = &names[field.index(names.len())];
                if drop {
                    map.remove(name);
                } else {
                    map.insert(name.clone(), new);
                }
            }
            value
        })
}

/// `value` as the frame text a server decodes params from.
fn raw(value: &Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).expect("a Value prints as JSON")
}

/// `parse_params` agrees with serde, and its errors are `-32602` naming
/// the method.
fn agrees<T: DeserializeOwned + PartialEq + Debug>(
    method: &str,
    value: &Value,
) -> Result<(), TestCaseError> {
    let parsed = parse_params::<T>(method, &raw(value));
    match (parsed, serde_json::from_value::<T>(value.clone())) {
        (Ok(parsed), Ok(plain)) => prop_assert_eq!(parsed, plain),
        (Err(err), Err(_)) => {
            prop_assert_eq!(err.code, ErrorCode::InvalidParams.code());
            prop_assert!(
                err.message.contains(method),
                "{:?} does not name {}",
                err.message,
                method
            );
        }
        (Err(err), Ok(_)) => {
            // Only a non-object is refused before serde sees it.
            prop_assert!(
                !value.is_object(),
                "rejected good params {}: {:?}",
                value,
                err
            );
            prop_assert_eq!(err.code, ErrorCode::InvalidParams.code());
        }
        (Ok(_), Err(err)) => prop_assert!(false, "accepted {} that serde rejects: {}", value, err),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_params_never_panics_and_names_the_method(
        value in prop_oneof![json(), near_miss()]
    ) {
        agrees::<InitializeParams>("initialize", &value)?;
        agrees::<process::StartParams>(process::START, &value)?;
        agrees::<process::ReadParams>(process::READ, &value)?;
        agrees::<process::WriteParams>(process::WRITE, &value)?;
        agrees::<process::TerminateParams>(process::TERMINATE, &value)?;
        agrees::<process::ResizeParams>(process::RESIZE, &value)?;
        agrees::<process::SignalParams>(process::SIGNAL, &value)?;
        agrees::<fs::ReadFileParams>(fs::READ_FILE, &value)?;
        agrees::<fs::WriteFileParams>(fs::WRITE_FILE, &value)?;
        agrees::<fs::CreateDirectoryParams>(fs::CREATE_DIRECTORY, &value)?;
        agrees::<fs::PathParams>(fs::GET_METADATA, &value)?;
        agrees::<fs::RemoveParams>(fs::REMOVE, &value)?;
        agrees::<fs::CopyParams>(fs::COPY, &value)?;
    }

    #[test]
    fn a_wrong_field_is_named(example in 0..examples().len(), field in any::<prop::sample::Index>()) {
        // Replace one field of valid params with a value no field takes.
        let mut value = examples().swap_remove(example);
        let Value::Object(map) = &mut value else { unreachable!("examples are objects") };
        let names: Vec<String> = map.keys().cloned().collect();
        let name = names[field.index(names.len())].clone();
        map.insert(name.clone(), json!(-1.5));
        let err = match example {
            0 => parse_params::<InitializeParams>("initialize", &raw(&value)).err(),
            1 => parse_params::<process::StartParams>(process::START, &raw(&value)).err(),
            2 => parse_params::<process::ReadParams>(process::READ, &raw(&value)).err(),
            3 => parse_params::<process::WriteParams>(process::WRITE, &raw(&value)).err(),
            4 => parse_params::<process::ResizeParams>(process::RESIZE, &raw(&value)).err(),
            5 => parse_params::<process::SignalParams>(process::SIGNAL, &raw(&value)).err(),
            6 => parse_params::<fs::ReadFileParams>(fs::READ_FILE, &raw(&value)).err(),
            7 => parse_params::<fs::WriteFileParams>(fs::WRITE_FILE, &raw(&value)).err(),
            8 => parse_params::<fs::RemoveParams>(fs::REMOVE, &raw(&value)).err(),
            _ => parse_params::<fs::CopyParams>(fs::COPY, &raw(&value)).err(),
        };
        let err = err.expect("an object where a field's value belongs is refused");
        prop_assert!(err.message.contains(&name), "{:?} does not name {}", err.message, name);
    }
}
