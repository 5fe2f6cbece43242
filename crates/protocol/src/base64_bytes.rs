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
    base64_simd::STANDARD.decode_to_vec(text).or_else(|_| {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|err| err.to_string())
    })
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
    }
}
