//! `fs/watchMissing` (codex dialect): watch paths the client found missing
//! (and optionally one it found present) and send `fs/missingChanged` once,
//! when any missing path appears or the present one goes away; then the
//! watch ends. A watch is not set (`watching: false`) when its id is in use
//! or the paths already differ from what the client saw, so it looks again.
//! The connection's watches and their polling are in [`crate::watches`].

use std::path::PathBuf;

use execd_environment::EnvError;
use execd_protocol::codex::fs::{self as cfs, WatchMissingParams, WatchMissingResult};
use execd_protocol::limits::{Limit, LimitExceeded};
use execd_protocol::{ErrorCode, RequestId, RpcError};
use serde_json::value::RawValue;

use crate::methods::dialect::native_path;
use crate::methods::{ok, Reply};
use crate::rpc::parse_params;
use crate::session::Session;
use crate::watches::Watch;

fn absolute(field: String, value: &str) -> Result<PathBuf, RpcError> {
    let path = PathBuf::from(native_path(cfs::WATCH_MISSING, &field, value)?.0);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(RpcError::new(
            ErrorCode::InvalidParams,
            format!(
                "invalid params for {}: {field}: path must be absolute, got {value:?}",
                cfs::WATCH_MISSING
            ),
        ))
    }
}

pub fn watch_missing(
    session: &Session,
    id: &RequestId,
    params: &RawValue,
) -> Result<Reply, RpcError> {
    let p: WatchMissingParams = parse_params(cfs::WATCH_MISSING, params)?;
    let limit = session.config().codex.max_watch_paths;
    let count = p.missing.len() + usize::from(p.present.is_some());
    if count > limit {
        return Err(LimitExceeded::new(
            Limit::WatchPaths,
            limit,
            format!("{count} paths in one {} watch", cfs::WATCH_MISSING),
        )
        .into());
    }
    let missing = p
        .missing
        .iter()
        .enumerate()
        .map(|(i, value)| absolute(format!("missing[{i}]"), value))
        .collect::<Result<Vec<_>, _>>()?;
    let present = p
        .present
        .as_deref()
        .map(|v| absolute("present".to_string(), v))
        .transpose()?;
    let watch = Watch { missing, present };
    let watches = session.watches.clone();
    let slots = session.fs().clone();
    session.reply_later(id, async move {
        let probe = watch.clone();
        let changed = slots
            .run(move || Ok::<_, EnvError>(probe.changed()))
            .await
            .unwrap_or(true);
        let watching = !changed && watches.insert(p.watch_id, watch)?;
        ok(WatchMissingResult { watching })
    })
}
