//! Classifying an incoming frame by the members it has: a request, a
//! notification or a response, or an [`EnvelopeError`] naming what is wrong
//! and the id its error reply carries.
//!
//! Two forms share one classification: [`Incoming::parse`] /
//! [`Incoming::from_value`] give `params` as a parsed `Value`, and
//! [`Incoming::parse_raw`] leaves `params` (and a response's `result`) as
//! JSON text borrowed from the frame, so a server decodes them straight
//! into typed params without building a `Value` tree (or copying a large
//! string) first.

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::envelope::{RequestId, RpcError};

/// One decoded frame, classified by the members it has. `P` is how params
/// and results are held: a parsed `Value`, or `&RawValue` borrowed from the
/// frame text.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming<P = Value> {
    Request {
        id: RequestId,
        method: String,
        params: P,
    },
    Notification {
        method: String,
        params: P,
    },
    Response {
        id: RequestId,
        result: Result<P, RpcError>,
    },
}

/// The id an error reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyId {
    /// The frame's own id.
    Id(RequestId),
    /// The request's id was `null`: the reply says `"id": null` (JSON-RPC 2.0).
    Null,
    /// No usable id: the reply says `"id": -1` (the baseline protocol).
    Unknown,
}

/// Why a frame could not be classified. The message names what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvelopeError {
    /// The id the error reply carries.
    pub id: ReplyId,
    pub message: String,
}

impl EnvelopeError {
    fn unknown(message: String) -> Self {
        EnvelopeError {
            id: ReplyId::Unknown,
            message,
        }
    }
}

/// One member of a frame's object, parsed or still text.
trait Member: Sized {
    fn is_null(&self) -> bool;
    fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error>;
    fn show(&self) -> String;
    fn null() -> Self;
}

impl Member for Value {
    fn is_null(&self) -> bool {
        self.is_null()
    }
    fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(self)
    }
    fn show(&self) -> String {
        self.to_string()
    }
    fn null() -> Self {
        Value::Null
    }
}

impl Member for &RawValue {
    fn is_null(&self) -> bool {
        self.get() == "null"
    }
    fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.get())
    }
    fn show(&self) -> String {
        self.get().to_string()
    }
    fn null() -> Self {
        RawValue::NULL
    }
}

/// The members that decide what a frame is; others are ignored.
struct Members<M> {
    id: Option<M>,
    method: Option<M>,
    params: Option<M>,
    result: Option<M>,
    error: Option<M>,
}

/// A member present in the text (even as `null`), borrowed from it.
#[derive(Default)]
struct Present<'a>(Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Present<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(deserializer).map(|raw| Present(Some(raw)))
    }
}

#[derive(Deserialize)]
struct RawMembers<'a> {
    #[serde(default, borrow)]
    id: Present<'a>,
    #[serde(default, borrow)]
    method: Present<'a>,
    #[serde(default, borrow)]
    params: Present<'a>,
    #[serde(default, borrow)]
    result: Present<'a>,
    #[serde(default, borrow)]
    error: Present<'a>,
}

impl Incoming {
    /// Parse one text frame. Errors carry a message naming the problem.
    pub fn parse(text: &str) -> Result<Incoming, EnvelopeError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|err| EnvelopeError::unknown(format!("frame is not valid JSON: {err}")))?;
        Incoming::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Incoming, EnvelopeError> {
        let Value::Object(mut object) = value else {
            return Err(EnvelopeError::unknown(format!(
                "frame must be a JSON object, got {}",
                kind_of(&value)
            )));
        };
        classify(Members {
            id: object.remove("id"),
            method: object.remove("method"),
            params: object.remove("params"),
            result: object.remove("result"),
            error: object.remove("error"),
        })
    }
}

impl<'a> Incoming<&'a RawValue> {
    /// Parse one text frame, leaving params and results as text borrowed
    /// from it. Nothing but the frame's top-level members is decoded.
    pub fn parse_raw(text: &'a str) -> Result<Incoming<&'a RawValue>, EnvelopeError> {
        let first = text
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .chars()
            .next();
        if first != Some('{') {
            // Only checked, never built: an array of a million numbers
            // costs nothing here.
            if let Err(err) = serde_json::from_str::<IgnoredAny>(text) {
                return Err(EnvelopeError::unknown(format!(
                    "frame is not valid JSON: {err}"
                )));
            }
            let kind = match first {
                Some('[') => "an array",
                Some('"') => "a string",
                Some('t' | 'f') => "a boolean",
                Some('n') => "null",
                _ => "a number",
            };
            return Err(EnvelopeError::unknown(format!(
                "frame must be a JSON object, got {kind}"
            )));
        }
        let members: RawMembers<'a> = serde_json::from_str(text).map_err(|err| {
            EnvelopeError::unknown(if err.is_data() {
                format!("frame is not a valid message: {err}")
            } else {
                format!("frame is not valid JSON: {err}")
            })
        })?;
        classify(Members {
            id: members.id.0,
            method: members.method.0,
            params: members.params.0,
            result: members.result.0,
            error: members.error.0,
        })
    }
}

fn classify<M: Member>(members: Members<M>) -> Result<Incoming<M>, EnvelopeError> {
    let Members {
        id,
        method,
        params,
        result,
        error,
    } = members;
    let null_id = id.as_ref().is_some_and(Member::is_null);
    let id = match id {
        None => None,
        Some(raw) if raw.is_null() => None,
        Some(raw) => match raw.decode::<RequestId>() {
            Ok(id) => Some(id),
            Err(_) => {
                return Err(EnvelopeError::unknown(format!(
                    "id must be an integer or a string, got {}",
                    raw.show()
                )))
            }
        },
    };
    let params = params.unwrap_or_else(M::null);
    if let Some(method) = method {
        let reply_id = || match &id {
            Some(id) => ReplyId::Id(id.clone()),
            None if null_id => ReplyId::Null,
            None => ReplyId::Unknown,
        };
        let Ok(method) = method.decode::<String>() else {
            return Err(EnvelopeError {
                id: reply_id(),
                message: format!("method must be a string, got {}", method.show()),
            });
        };
        return match id {
            Some(id) => Ok(Incoming::Request { id, method, params }),
            // `"id": null` is a request (only a missing id makes a
            // notification) whose id cannot be answered: say so, under
            // `"id": null`.
            None if null_id => Err(EnvelopeError {
                id: ReplyId::Null,
                message: format!(
                    "id of a {method:?} request must be an integer or a string, got null"
                ),
            }),
            None => Ok(Incoming::Notification { method, params }),
        };
    }
    let Some(id) = id else {
        return Err(EnvelopeError::unknown(
            "frame has neither \"method\" nor \"id\"".to_string(),
        ));
    };
    if let Some(error) = error {
        let error = error.decode::<RpcError>().map_err(|err| EnvelopeError {
            id: ReplyId::Id(id.clone()),
            message: format!("malformed error object: {err}"),
        })?;
        Ok(Incoming::Response {
            id,
            result: Err(error),
        })
    } else if let Some(result) = result {
        Ok(Incoming::Response {
            id,
            result: Ok(result),
        })
    } else {
        Err(EnvelopeError {
            id: ReplyId::Id(id),
            message: "frame has an id but no \"method\", \"result\" or \"error\"".to_string(),
        })
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both forms classify every frame alike.
    fn both(text: &str) -> Result<Incoming, EnvelopeError> {
        let raw = Incoming::parse_raw(text).map(|incoming| match incoming {
            Incoming::Request { id, method, params } => Incoming::Request {
                id,
                method,
                params: serde_json::from_str(params.get()).unwrap(),
            },
            Incoming::Notification { method, params } => Incoming::Notification {
                method,
                params: serde_json::from_str(params.get()).unwrap(),
            },
            Incoming::Response { id, result } => Incoming::Response {
                id,
                result: result.map(|r| serde_json::from_str(r.get()).unwrap()),
            },
        });
        let parsed = Incoming::parse(text);
        match (&raw, &parsed) {
            (Err(a), Err(b)) => assert_eq!(a.id, b.id, "{text}"),
            _ => assert_eq!(raw, parsed, "{text}"),
        }
        raw
    }

    #[test]
    fn classifies_frames() {
        assert!(matches!(
            both(r#"{"id":1,"method":"x","params":{"a":[1]}}"#),
            Ok(Incoming::Request {
                id: RequestId::Int(1),
                ..
            })
        ));
        assert!(matches!(
            both(r#"{"method":"initialized"}"#),
            Ok(Incoming::Notification { .. })
        ));
        assert!(matches!(
            both(r#" {"id":"a","result":{}}"#),
            Ok(Incoming::Response { result: Ok(_), .. })
        ));
        assert!(both("nope").unwrap_err().message.contains("not valid JSON"));
        assert!(both("{\"id\":")
            .unwrap_err()
            .message
            .contains("not valid JSON"));
        assert!(both("[1]").unwrap_err().message.contains("an array"));
        assert!(both("null").unwrap_err().message.contains("null"));
        let err = both(r#"{"id":1.5,"method":"x"}"#).unwrap_err();
        assert!(err.message.contains("1.5"));
        assert_eq!(err.id, ReplyId::Unknown);
    }

    #[test]
    fn a_request_with_a_null_id_is_answered_under_null() {
        let err = both(r#"{"id":null,"method":"process/start","params":{}}"#).unwrap_err();
        assert_eq!(err.id, ReplyId::Null);
        assert!(err.message.contains("null"), "{}", err.message);
        assert!(err.message.contains("process/start"), "{}", err.message);
        let err = both(r#"{"id":null,"method":5}"#).unwrap_err();
        assert_eq!(err.id, ReplyId::Null);
    }

    #[test]
    fn raw_params_borrow_the_frame() {
        let text = r#"{"id":1,"method":"x","params":{"big":"AAAA"}}"#;
        let Ok(Incoming::Request { params, .. }) = Incoming::parse_raw(text) else {
            panic!("not a request");
        };
        let start = params.get().as_ptr() as usize - text.as_ptr() as usize;
        assert_eq!(
            &text[start..start + params.get().len()],
            r#"{"big":"AAAA"}"#
        );
    }
}
