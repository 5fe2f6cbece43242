//! `fs/watch`, `fs/unwatch` (extension): set and end a session's watches
//! ([`crate::fs_watches`]), whose changes come as `fs/changed`
//! notifications. The path may be a `file://` URI; it is reported back in
//! changes as a native path.

use std::path::PathBuf;

use execd_protocol::fs_watch::{self as fw, UnwatchParams, UnwatchResult, WatchParams};
use execd_protocol::{ErrorCode, RequestId, RpcError};
use serde_json::value::RawValue;

use crate::methods::dialect::FsPaths;
use crate::methods::{ok, Reply, RpcResult};
use crate::rpc::parse_params;
use crate::session::Session;

pub fn watch(session: &Session, id: &RequestId, params: &RawValue) -> Result<Reply, RpcError> {
    let method = fw::WATCH;
    let p: WatchParams = parse_params(method, params)?;
    let path = PathBuf::from(FsPaths::of(method, params)?.read("path", &p.path)?);
    if !path.is_absolute() {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            format!(
                "invalid params for {method}: path must be absolute, got {:?}",
                p.path
            ),
        ));
    }
    if p.watch_id.is_empty() {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            format!("invalid params for {method}: watchId must not be empty"),
        ));
    }
    let watches = session.fs_watches.clone();
    let slots = session.fs().clone();
    session.reply_later(id, async move {
        ok(watches.add(p.watch_id, path, p.recursive, &slots).await?)
    })
}

pub fn unwatch(session: &Session, params: &RawValue) -> RpcResult {
    let p: UnwatchParams = parse_params(fw::UNWATCH, params)?;
    ok(UnwatchResult {
        removed: session.fs_watches.remove(&p.watch_id),
    })
}
