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
//!
//! A transfer piece (`fs/upload`, `fs/download`; [`crate::transfer`]) goes
//! either way, once the stream is open:
//!
//! | bytes | field |
//! | --- | --- |
//! | 1 | kind: `2` = transfer piece |
//! | 4 | stream id |
//! | 8 | seq (0 for the first piece of the stream) |
//! | rest | the piece's bytes |

use bytes::{BufMut, Bytes, BytesMut};

use crate::process::OutputStream;

pub const KIND_OUTPUT: u8 = 1;
pub const KIND_PIECE: u8 = 2;
const HEADER: usize = 12;
/// The header of a transfer piece.
pub const PIECE_HEADER: usize = 13;

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

/// Encode one transfer piece.
pub fn encode_piece(stream_id: u32, seq: u64, data: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(PIECE_HEADER + data.len());
    frame.put_u8(KIND_PIECE);
    frame.put_u32_le(stream_id);
    frame.put_u64_le(seq);
    frame.put_slice(data);
    frame.freeze()
}

/// A decoded transfer piece; `data` shares the frame's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceFrame {
    pub stream_id: u32,
    pub seq: u64,
    pub data: Bytes,
}

/// Decode a transfer piece; the error says what is wrong with it.
pub fn decode_piece(frame: Bytes) -> Result<PieceFrame, String> {
    if frame.len() < PIECE_HEADER {
        return Err(format!(
            "binary frame of {} bytes is shorter than a transfer piece's header ({PIECE_HEADER})",
            frame.len()
        ));
    }
    if frame[0] != KIND_PIECE {
        return Err(format!(
            "binary frame kind {} is not a transfer piece (2)",
            frame[0]
        ));
    }
    let mut id = [0u8; 4];
    id.copy_from_slice(&frame[1..5]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&frame[5..13]);
    Ok(PieceFrame {
        stream_id: u32::from_le_bytes(id),
        seq: u64::from_le_bytes(seq),
        data: frame.slice(PIECE_HEADER..),
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

    #[test]
    fn piece_round_trip_and_rejects() {
        let decoded = decode_piece(encode_piece(7, 3, b"abc")).unwrap();
        assert_eq!((decoded.stream_id, decoded.seq), (7, 3));
        assert_eq!(&decoded.data[..], b"abc");
        assert!(decode_piece(Bytes::from_static(&[2, 0]))
            .unwrap_err()
            .contains("shorter"));
        let output = encode_output("p", 1, OutputStream::Stdout, b"x").unwrap();
        assert!(decode_piece(output).unwrap_err().contains("kind 1"));
    }
}
