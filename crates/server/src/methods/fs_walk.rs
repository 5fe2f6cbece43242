//! `fs/canonicalize` and `fs/walk` (codex dialect, with execd's optional
//! extensions: metadata, symlinks and other types, pages): paths come in as
//! URIs (or plain paths) and go back in the form they came in. A walk's
//! limits must each be at least 1 and are cut to the server's ceilings
//! (`CodexLimits`); the walk itself runs on the blocking pool under the
//! session's filesystem slots, and its reply counts as a request in flight.

use std::path::PathBuf;

use execd_local::walk;
use execd_local::walk_params::{self, WalkCeilings};
use execd_protocol::codex::fs::{self as cfs, CanonicalizeParams, CanonicalizeResult, WalkParams};
use execd_protocol::{ErrorCode, RequestId, RpcError};
use serde_json::value::RawValue;

use crate::methods::dialect::{check_read_sandbox, native_path, reply_path};
use crate::methods::{ok, Reply};
use crate::rpc::parse_params;
use crate::session::Session;

fn absolute(
    method: &str,
    value: &str,
) -> Result<(PathBuf, execd_protocol::path_uri::PathForm), RpcError> {
    let (path, form) = native_path(method, "path", value)?;
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return Err(RpcError::new(
            ErrorCode::InvalidParams,
            format!("invalid params for {method}: path must be absolute, got {value:?}"),
        ));
    }
    Ok((path, form))
}

pub fn canonicalize(
    session: &Session,
    id: &RequestId,
    params: &RawValue,
) -> Result<Reply, RpcError> {
    let p: CanonicalizeParams = parse_params(cfs::CANONICALIZE, params)?;
    check_read_sandbox(cfs::CANONICALIZE, p.sandbox)?;
    let (path, form) = absolute(cfs::CANONICALIZE, &p.path)?;
    let slots = session.fs().clone();
    session.reply_later(id, async move {
        let real = slots.run(move || walk::canonicalize(&path)).await?;
        ok(CanonicalizeResult {
            path: reply_path(&real, form),
        })
    })
}

pub fn walk(session: &Session, id: &RequestId, params: &RawValue) -> Result<Reply, RpcError> {
    let method = cfs::WALK;
    let p: WalkParams = parse_params(method, params)?;
    check_read_sandbox(method, p.sandbox.clone())?;
    let (root, form) = absolute(method, &p.path)?;
    let caps = &session.config().codex;
    let ceilings = WalkCeilings {
        max_depth: caps.max_walk_depth,
        max_directories: caps.max_walk_directories,
        max_entries: caps.max_walk_entries,
    };
    let (limits, shape) = walk_params::plan(&p, ceilings).map_err(|err| {
        RpcError::new(
            ErrorCode::InvalidParams,
            format!("invalid params for {method}: {err}"),
        )
    })?;
    let slots = session.fs().clone();
    session.reply_later(id, async move {
        let walked = slots
            .run(move || walk::walk_with(&root, limits, shape))
            .await?;
        ok(walk_params::outcome(walked, shape, |path| {
            reply_path(path, form)
        }))
    })
}
