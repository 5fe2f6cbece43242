//! Fuzz the frame decoders: arbitrary bytes as a text frame
//! (`Incoming::parse` and `Incoming::parse_raw`, when they are UTF-8) and as a binary output frame
//! (`binary::decode_output`). Neither may panic; an output frame that
//! decodes must encode back to the same bytes.

#![no_main]

use bytes::Bytes;
use execd_protocol::binary::{decode_output, encode_output};
use execd_protocol::Incoming;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Incoming::parse(text);
        let _ = Incoming::parse_raw(text);
    }
    if let Ok(frame) = decode_output(Bytes::copy_from_slice(data)) {
        let encoded = encode_output(&frame.process_id, frame.seq, frame.stream, &frame.chunk);
        assert_eq!(encoded.as_deref(), Some(data));
    }
});
