//! The opt-in binary output frame (extension). A client that sends
//! `"binaryOutput": true` in `initialize` (and sees `capabilities.binaryOutput`
//! true in the result) receives `process/output` as WebSocket **binary**
//! frames instead of JSON text frames; every other message stays JSON.
//!
//! Layout (little-endian):
//!
//! | bytes | field |
//! | --- | --- |
//! | 1 | kind: `1` = process output |
//! | 1 | stream: `0` stdout, `1` stderr, `2` pty |
//! | 8 | seq |
//! | 2 | length of the process id |
//! | n | process id (UTF-8) |
//! | rest | the raw output bytes |

use bytes::{BufMut, Bytes, BytesMut};

use crate::process::OutputStream;

pub const KIND_OUTPUT: u8 = 1;
const HEADER: usize = 12;

fn stream_code(stream: OutputStream) -> u8 {
    match stream {
        OutputStream::Stdout => 0,
        OutputStream::Stderr => 1,
        OutputStream::Pty => 2,
    }
}

/// Encode one output chunk. `None` if the process id is longer than 65535 bytes.
pub fn encode_output(
    process_id: &str,
    seq: u64,
    stream: OutputStream,
    chunk: &[u8],
) -> Option<Bytes> {
    let id_len = u16::try_from(process_id.len()).ok()?;
    let mut frame = BytesMut::with_capacity(HEADER + process_id.len() + chunk.len());
    frame.put_u8(KIND_OUTPUT);
    frame.put_u8(stream_code(stream));
    frame.put_u64_le(seq);
    frame.put_u16_le(id_len);
    frame.put_slice(process_id.as_bytes());
    frame.put_slice(chunk);
    Some(frame.freeze())
}

/// A decoded output frame; `chunk` shares the frame's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFrame {
    pub process_id: String,
    pub seq: u64,
    pub stream: OutputStream,
    pub chunk: Bytes,
}

/// Decode a binary frame; the error says what is wrong with it.
pub fn decode_output(frame: Bytes) -> Result<OutputFrame, String> {
    if frame.len() < HEADER {
        return Err(format!(
            "binary frame of {} bytes is shorter than its header",
            frame.len()
        ));
    }
    if frame[0] != KIND_OUTPUT {
        return Err(format!("unknown binary frame kind {}", frame[0]));
    }
    let stream = match frame[1] {
        0 => OutputStream::Stdout,
        1 => OutputStream::Stderr,
        2 => OutputStream::Pty,
        other => return Err(format!("unknown stream code {other}")),
    };
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&frame[2..10]);
    let id_len = usize::from(u16::from_le_bytes([frame[10], frame[11]]));
    let id_end = HEADER + id_len;
    if frame.len() < id_end {
        return Err("binary frame ends inside its process id".into());
    }
    let process_id = std::str::from_utf8(&frame[HEADER..id_end])
        .map_err(|_| "process id is not UTF-8".to_string())?
        .to_string();
    Ok(OutputFrame {
        process_id,
        seq: u64::from_le_bytes(seq),
        stream,
        chunk: frame.slice(id_end..),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let frame = encode_output("p-1", 42, OutputStream::Stderr, &[0, 255, 7]).unwrap();
        let decoded = decode_output(frame).unwrap();
        assert_eq!(decoded.process_id, "p-1");
        assert_eq!(decoded.seq, 42);
        assert_eq!(decoded.stream, OutputStream::Stderr);
        assert_eq!(&decoded.chunk[..], &[0, 255, 7]);
        assert!(decode_output(Bytes::from_static(&[1, 0, 0]))
            .unwrap_err()
            .contains("shorter"));
        let mut bad = encode_output("p", 1, OutputStream::Stdout, b"x")
            .unwrap()
            .to_vec();
        bad[1] = 9;
        assert!(decode_output(Bytes::from(bad))
            .unwrap_err()
            .contains("stream code 9"));
    }
}
