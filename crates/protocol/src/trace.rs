//! W3C trace context on requests: the optional top-level `trace` member of
//! a request frame, `{"traceparent": "00-<trace-id>-<parent-id>-<flags>",
//! "tracestate": "..."}` (the shape codex's exec-server client sends, a
//! sibling of `params`), and the parsing of `traceparent` as the W3C Trace
//! Context recommendation defines it. As the recommendation asks, a
//! context that does not parse is ignored rather than failing the request.

use serde::Deserialize;
use serde_json::value::RawValue;

/// The `trace` member of a request (every field optional, as codex has it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub struct TraceContext {
    #[serde(default)]
    pub traceparent: Option<String>,
    #[serde(default)]
    pub tracestate: Option<String>,
}

/// A parsed `traceparent` (version 00 layout; later versions are read by
/// their first four fields, as the recommendation says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// 16 lowercase hex digits, not all zero: the caller's span.
    pub parent_id: String,
    /// The sampled flag (bit 0 of the flags).
    pub sampled: bool,
}

/// Why a `traceparent` was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    #[error("traceparent must be version-traceid-parentid-flags, got {0:?}")]
    Shape(String),
    #[error("traceparent field {field} must be {digits} lowercase hex digits, got {value:?}")]
    Field {
        field: &'static str,
        digits: usize,
        value: String,
    },
    #[error("traceparent {0} is all zeros, which is invalid")]
    Zero(&'static str),
    #[error("traceparent version ff is invalid")]
    Version,
}

/// Longest `tracestate` kept (the recommendation's limit is 512 bytes).
pub const MAX_TRACESTATE_BYTES: usize = 512;

impl TraceParent {
    pub fn parse(text: &str) -> Result<TraceParent, TraceParentError> {
        let mut fields = text.trim().split('-');
        let (Some(version), Some(trace_id), Some(parent_id), Some(flags)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(TraceParentError::Shape(text.chars().take(80).collect()));
        };
        let hex = |field: &'static str, value: &str, digits: usize| {
            let ok = value.len() == digits
                && value
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if ok {
                Ok(())
            } else {
                Err(TraceParentError::Field {
                    field,
                    digits,
                    value: value.chars().take(40).collect(),
                })
            }
        };
        hex("version", version, 2)?;
        hex("trace-id", trace_id, 32)?;
        hex("parent-id", parent_id, 16)?;
        hex("trace-flags", flags, 2)?;
        if version == "ff" {
            return Err(TraceParentError::Version);
        }
        // Version 00 has exactly four fields; later ones may add more.
        if version == "00" && fields.next().is_some() {
            return Err(TraceParentError::Shape(text.chars().take(80).collect()));
        }
        if trace_id.bytes().all(|b| b == b'0') {
            return Err(TraceParentError::Zero("trace-id"));
        }
        if parent_id.bytes().all(|b| b == b'0') {
            return Err(TraceParentError::Zero("parent-id"));
        }
        let flags = u8::from_str_radix(flags, 16).unwrap_or(0);
        Ok(TraceParent {
            trace_id: trace_id.to_string(),
            parent_id: parent_id.to_string(),
            sampled: flags & 1 == 1,
        })
    }
}

#[derive(Deserialize)]
struct TraceMember<'a> {
    #[serde(default, borrow)]
    trace: Option<&'a RawValue>,
}

/// The `trace` member of a request frame, if it has one that is an
/// object of the right shape. Frames without the text `"trace"` are not
/// parsed again (the common case costs one substring search).
pub fn frame_trace(frame: &str) -> Option<TraceContext> {
    if !frame.contains("\"trace\"") {
        return None;
    }
    let member: TraceMember<'_> = serde_json::from_str(frame).ok()?;
    serde_json::from_str(member.trace?.get()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_recommendations_example() {
        let parent =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(parent.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parent.parent_id, "00f067aa0ba902b7");
        assert!(parent.sampled);
    }

    #[test]
    fn refuses_bad_values() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert!(TraceParent::parse(bad).is_err(), "{bad:?} was taken");
        }
        // A later version may carry more fields.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x").is_ok()
        );
    }

    #[test]
    fn finds_the_trace_member_of_a_frame() {
        let frame = r#"{"id":1,"method":"process/start","params":{"argv":["echo","\"trace\""]},"trace":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"congo=t61rcWkgMzE"}}"#;
        let trace = frame_trace(frame).unwrap();
        assert_eq!(trace.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        assert!(frame_trace(r#"{"id":1,"method":"x","params":{"a":"trace"}}"#).is_none());
        assert!(frame_trace(r#"{"id":1,"method":"x","trace":"nope"}"#).is_none());
    }
}
