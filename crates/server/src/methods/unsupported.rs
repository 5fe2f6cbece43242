//! The methods of today's codex dialect that execd deliberately does not
//! serve, answered with -32601 and the reason (instead of a bare "unknown
//! method"), so a client or a person reading its log knows why and what to
//! use instead. docs/PROTOCOL.md has the same list.

use execd_protocol::{ErrorCode, RpcError};

/// The reason `method` is not served, if it is one of codex's.
fn reason(method: &str) -> Option<&'static str> {
    Some(match method {
        "fs/writeBlock" => {
            "execd does not stream file writes (environmentInfo.capabilities.fileWriteStreaming is false); write with fs/writeFile (its `append` extension writes a large file in parts)"
        }
        "capabilities/discoverV1" | "capabilities/discoverV2" | "capabilities/loadDiscoveries" => {
            "execd does not discover codex skills or plugins on the executor (environmentInfo.capabilities.capabilityDiscoveryV2 is false)"
        }
        _ => return None,
    })
}

/// The error for a method execd does not know, with the reason when it is
/// one of codex's that execd leaves out on purpose.
pub fn method_not_found(method: &str) -> RpcError {
    let message = match reason(method) {
        Some(reason) => format!("{method} is not served: {reason}"),
        None => format!("unknown method {method:?}"),
    };
    RpcError::new(ErrorCode::MethodNotFound, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_methods_left_out_say_why() {
        let err = method_not_found("fs/writeBlock");
        assert_eq!(err.code, -32601);
        assert!(err.message.contains("fs/writeFile"), "{}", err.message);
        assert_eq!(method_not_found("nope").message, "unknown method \"nope\"");
    }
}
