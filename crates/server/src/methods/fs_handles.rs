//! `fs/open`, `fs/readBlock`, `fs/close` (codex dialect): a file read in
//! blocks through a client-named handle. The connection's handles live in
//! its session's `OpenFiles` table (bounded by `CodexLimits`); the file
//! work runs on the blocking pool and answers from a task.

use std::path::PathBuf;
use std::sync::Arc;

use execd_environment::EnvError;
use execd_local::open_files::OpenFiles;
use execd_protocol::codex::fs::{
    self as cfs, CloseParams, OpenParams, OpenResult, ReadBlockParams, ReadBlockResult,
};
use execd_protocol::fs::Empty;
use execd_protocol::{ErrorCode, RequestId, RpcError};
use serde_json::Value;

use crate::methods::dialect::{check_read_sandbox, native_path};
use crate::methods::{ok, Reply, RpcResult};
use crate::rpc::parse_params;
use crate::session::Session;

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, EnvError> + Send + 'static,
) -> Result<T, RpcError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(RpcError::from),
        Err(err) => Err(RpcError::new(
            ErrorCode::Internal,
            format!("file task failed: {err}"),
        )),
    }
}

pub fn open(session: &Session, id: &RequestId, params: Value) -> Result<Reply, RpcError> {
    let p: OpenParams = parse_params(cfs::OPEN, params)?;
    check_read_sandbox(cfs::OPEN, p.sandbox)?;
    let path = PathBuf::from(native_path(cfs::OPEN, "path", &p.path)?.0);
    if !path.is_absolute() {
        return Err(
            EnvError::InvalidInput(format!("path must be absolute, got {:?}", p.path)).into(),
        );
    }
    let files: Arc<OpenFiles> = session.open_files.clone();
    session.reply_later(id, async move {
        let handle = p.handle_id.clone();
        blocking(move || files.open(&handle, &path).map_err(EnvError::from)).await?;
        ok(OpenResult {
            handle_id: p.handle_id,
        })
    });
    Ok(Reply::Later)
}

pub fn read_block(session: &Session, id: &RequestId, params: Value) -> Result<Reply, RpcError> {
    let p: ReadBlockParams = parse_params(cfs::READ_BLOCK, params)?;
    let files = session.open_files.clone();
    session.reply_later(id, async move {
        let (data, eof) = blocking(move || {
            files
                .read_block(&p.handle_id, p.offset, p.len)
                .map_err(EnvError::from)
        })
        .await?;
        ok(ReadBlockResult {
            chunk: data.into(),
            eof,
        })
    });
    Ok(Reply::Later)
}

pub fn close(session: &Session, params: Value) -> RpcResult {
    let p: CloseParams = parse_params(cfs::CLOSE, params)?;
    session.open_files.close(&p.handle_id);
    ok(Empty {})
}
