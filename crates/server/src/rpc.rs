//! Encoding outgoing frames and decoding typed params, with errors that
//! name the offending field and value.

use execd_protocol::envelope::{Notification, Response, ResponseBody};
use execd_protocol::event::{EventKind, ProcessEvent};
use execd_protocol::process::{
    ClosedNotification, ExitedNotification, OutputStream, CLOSED, EXITED, OUTPUT,
};
use execd_protocol::{ErrorCode, ReplyId, RequestId, RpcError};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// A method's result as it goes on the wire.
pub type RpcResult = Result<Value, RpcError>;

/// At most this much of a bad value is quoted back in an error.
const QUOTE_MAX: usize = 80;

/// `text`, cut to [`QUOTE_MAX`] bytes (on a character boundary).
fn quote(text: &str) -> String {
    if text.len() <= QUOTE_MAX {
        return text.to_string();
    }
    let mut end = QUOTE_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// Decode a method's params straight from the frame's text (strings may
/// borrow from it); the error names the method and the field.
pub fn parse_params<'a, T: Deserialize<'a>>(
    method: &str,
    params: &'a RawValue,
) -> Result<T, RpcError> {
    if !params.get().starts_with('{') {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            format!(
                "params of {method} must be an object, got {}",
                quote(params.get())
            ),
        ));
    }
    // Well-formed params (nearly all) take the plain decoder; only a
    // failure is decoded again, tracking the path, to name the bad field.
    if let Ok(value) = serde_json::from_str(params.get()) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_str(params.get());
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = if path == "." {
            format!("invalid params for {method}: {inner}")
        } else {
            format!("invalid params for {method}: {path}: {inner}")
        };
        RpcError::new(ErrorCode::InvalidParams, message)
    })
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Our wire types serialize infallibly (string keys, no non-finite floats).
    serde_json::to_string(value).unwrap_or_else(|err| {
        tracing::error!(%err, "failed to serialize an outgoing frame");
        String::from("{}")
    })
}

pub fn response(id: &RequestId, result: Result<Value, RpcError>) -> String {
    let body = match result {
        Ok(value) => ResponseBody::Result(value),
        Err(error) => ResponseBody::Error(error),
    };
    to_json(&Response { id, body })
}

/// An error reply to a frame that could not be taken as a request: under
/// its id, `"id": null` when the request's id was null, else `"id": -1`.
pub fn frame_error(id: &ReplyId, error: RpcError) -> String {
    match id {
        ReplyId::Id(id) => response(id, Err(error)),
        ReplyId::Unknown => response(&RequestId::Int(-1), Err(error)),
        ReplyId::Null => to_json(&serde_json::json!({"id": null, "error": error})),
    }
}

/// A frame that could not be taken as a request, as an error (-32600).
pub fn invalid_frame(message: impl Into<String>) -> RpcError {
    RpcError::new(ErrorCode::InvalidRequest, message)
}

/// The `fs/readFile` result, written by hand: the file's bytes go straight
/// into the frame as base64 (no `Value`, no second copy of the text).
pub fn read_file_response(id: &RequestId, data: &[u8], eof: Option<bool>) -> String {
    let id = to_json(id);
    let mut frame = String::with_capacity(64 + id.len() + data.len().div_ceil(3) * 4);
    frame.push_str(r#"{"id":"#);
    frame.push_str(&id);
    frame.push_str(r#","result":{"dataBase64":""#);
    execd_protocol::base64_bytes::encode_append(data, &mut frame);
    frame.push('"');
    if let Some(eof) = eof {
        frame.push_str(if eof {
            r#","eof":true"#
        } else {
            r#","eof":false"#
        });
    }
    frame.push_str("}}");
    frame
}

pub fn notification<T: Serialize>(method: &str, params: T) -> String {
    to_json(&Notification { method, params })
}

/// `process/output`, written by hand: the base64 goes straight into the
/// frame instead of through serde's string escaping (the hottest path).
fn output_notification(process_id: &str, seq: u64, stream: OutputStream, chunk: &[u8]) -> String {
    use std::fmt::Write as _;
    let id = to_json(&process_id);
    let stream = match stream {
        OutputStream::Stdout => "stdout",
        OutputStream::Stderr => "stderr",
        OutputStream::Pty => "pty",
    };
    let mut frame = String::with_capacity(96 + id.len() + chunk.len().div_ceil(3) * 4);
    frame.push_str(r#"{"method":""#);
    frame.push_str(OUTPUT);
    frame.push_str(r#"","params":{"processId":"#);
    frame.push_str(&id);
    let _ = write!(frame, r#","seq":{seq},"stream":"{stream}","chunk":""#);
    // SIMD base64 (the scalar encoder was 17 % of all CPU samples while
    // streaming over JSON).
    execd_protocol::base64_bytes::encode_append(chunk, &mut frame);
    frame.push_str(r#""}}"#);
    frame
}

/// The notification for one process event.
pub fn event_notification(event: ProcessEvent) -> String {
    let process_id = event.process_id.to_string();
    let seq = event.seq;
    match event.kind {
        EventKind::Output { stream, chunk } => {
            output_notification(&process_id, seq, stream, &chunk)
        }
        EventKind::Exited(exit) => notification(
            EXITED,
            ExitedNotification {
                process_id,
                seq,
                exit_code: exit.code,
                signal: exit.signal,
            },
        ),
        EventKind::Closed => notification(CLOSED, ClosedNotification { process_id, seq }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use execd_protocol::process::OutputNotification;
    use std::sync::Arc;

    #[test]
    fn hand_written_read_file_frame_matches_serde() {
        use execd_protocol::fs::ReadFileResult;
        for (id, eof) in [
            (RequestId::Int(7), None),
            (RequestId::Str("a\"b".into()), Some(true)),
        ] {
            let data = b"\x00\xffhello";
            let frame = read_file_response(&id, data, eof);
            let expected = response(
                &id,
                Ok(serde_json::to_value(ReadFileResult {
                    data_base64: execd_protocol::base64_bytes::encode(data),
                    eof,
                })
                .unwrap()),
            );
            let parsed: Value = serde_json::from_str(&frame).unwrap();
            assert_eq!(parsed, serde_json::from_str::<Value>(&expected).unwrap());
        }
    }

    #[test]
    fn hand_written_output_frame_matches_serde() {
        // Every length around the SIMD encoder's block sizes, too.
        let long: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut cases = vec![
            ("p1", &b"hi\n"[..]),
            ("we\"ird\\id\u{1}", &[0u8, 255, 7][..]),
            ("e", &b""[..]),
        ];
        for len in (0..130).chain([1023, 1024, 1025, 4096, 5000]) {
            cases.push(("long", &long[..len]));
        }
        for (id, chunk) in cases {
            let frame = event_notification(ProcessEvent {
                process_id: Arc::from(id),
                seq: 42,
                kind: EventKind::Output {
                    stream: OutputStream::Stderr,
                    chunk: Bytes::copy_from_slice(chunk),
                },
            });
            let expected = notification(
                OUTPUT,
                OutputNotification {
                    process_id: id.to_string(),
                    seq: 42,
                    stream: OutputStream::Stderr,
                    chunk: Bytes::copy_from_slice(chunk),
                },
            );
            let parsed: Value = serde_json::from_str(&frame).unwrap();
            assert_eq!(parsed, serde_json::from_str::<Value>(&expected).unwrap());
        }
    }
}
