//! Standard base64, the protocol's encoding of bytes: SIMD (`base64-simd`)
//! for speed, since every output chunk and file piece goes through it; the
//! `base64` crate only to word an error (it names the bad symbol and where).
//! Also the serde adapter for `Bytes` fields.

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serializer};

/// `bytes` as standard base64 (padded).
pub fn encode(bytes: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

/// Append `bytes` as standard base64 to `out`.
pub fn encode_append(bytes: &[u8], out: &mut String) {
    base64_simd::STANDARD.encode_append(bytes, out);
}

/// Decode standard base64; the error says what is wrong and where.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, String> {
    base64_simd::STANDARD
        .decode_to_vec(text)
        .map_err(|_| describe_invalid(text))
}

/// Check that `text` is standard base64 without decoding it; the error
/// says what is wrong and where.
pub fn check(text: &[u8]) -> Result<(), String> {
    base64_simd::STANDARD
        .check(text)
        .map_err(|_| describe_invalid(text))
}

/// Bytes of text decoded per piece by [`decode_to_writer`] (4 MiB decoded).
const PIECE_TEXT: usize = 4 * 1024 * 1024 / 3 * 4;

/// Decode `text`, which [`check`] accepted, into `out` piece by piece, so
/// that no more than one piece (4 MiB) of the decoded data is in memory.
/// Returns the number of bytes written.
pub fn decode_to_writer(text: &[u8], out: &mut impl std::io::Write) -> std::io::Result<u64> {
    // Pieces are whole groups of four symbols; only the last may be padded,
    // which holds because the whole text was checked first.
    let mut buffer = vec![0u8; PIECE_TEXT / 4 * 3];
    let mut written = 0u64;
    for piece in text.chunks(PIECE_TEXT) {
        let decoded = base64_simd::STANDARD
            .decode(piece, base64_simd::Out::from_slice(&mut buffer))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, describe_invalid(text))
            })?;
        out.write_all(decoded)?;
        written += decoded.len() as u64;
    }
    Ok(written)
}

/// What is wrong with `text`, which the SIMD decoder refused: the `base64`
/// crate's wording for small inputs (it decodes the whole text), a scan for
/// the first bad symbol for large ones.
fn describe_invalid(text: &[u8]) -> String {
    if text.len() <= PIECE_TEXT {
        return match base64::engine::general_purpose::STANDARD.decode(text) {
            Err(err) => err.to_string(),
            Ok(_) => "invalid base64".to_string(),
        };
    }
    let symbol = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/');
    let first_pad = text.iter().position(|b| *b == b'=');
    let body = &text[..first_pad.unwrap_or(text.len())];
    if let Some(offset) = body.iter().position(|b| !symbol(b)) {
        return format!("Invalid symbol {}, offset {offset}.", text[offset]);
    }
    if !text.len().is_multiple_of(4) {
        return format!("Invalid input length: {}", text.len());
    }
    if let Some(pad) = first_pad {
        if pad + 2 < text.len() || text[pad..].iter().any(|b| *b != b'=') {
            return format!("Invalid padding or symbol after padding at offset {pad}.");
        }
    }
    "Invalid last symbol (its unused bits are not zero).".to_string()
}

pub fn serialize<S: Serializer>(bytes: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&encode(bytes))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    decode(text.as_bytes())
        .map(Bytes::from)
        .map_err(|err| serde::de::Error::custom(format!("invalid base64: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length_and_words_errors() {
        let data: Vec<u8> = (0..2000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        for len in (0..100).chain([511, 512, 513, 1999, 2000]) {
            let text = encode(&data[..len]);
            assert_eq!(
                text,
                base64::engine::general_purpose::STANDARD.encode(&data[..len])
            );
            assert_eq!(decode(text.as_bytes()).unwrap(), &data[..len]);
        }
        let err = decode(b"ab!d").unwrap_err();
        assert!(err.contains("Invalid symbol 33, offset 2"), "{err}");
        assert!(decode(b"abc").is_err());
        assert!(check(b"abc").is_err());
        assert!(check(text_of(&data).as_bytes()).is_ok());
    }

    fn text_of(data: &[u8]) -> String {
        encode(data)
    }

    #[test]
    fn decodes_to_a_writer_in_pieces_and_words_large_errors() {
        // Three pieces and a padded tail.
        let data: Vec<u8> = (0..(9 * 1024 * 1024 + 2) as u32)
            .map(|i| (i ^ (i >> 9)) as u8)
            .collect();
        let text = encode(&data);
        check(text.as_bytes()).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            decode_to_writer(text.as_bytes(), &mut out).unwrap(),
            data.len() as u64
        );
        assert!(out == data);
        let mut bad = text.into_bytes();
        bad[7_000_001] = b'!';
        let err = check(&bad).unwrap_err();
        assert_eq!(err, "Invalid symbol 33, offset 7000001.");
        bad[7_000_001] = b'=';
        assert!(check(&bad).unwrap_err().contains("padding"));
    }
}
