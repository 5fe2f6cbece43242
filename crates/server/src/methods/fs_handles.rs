//! `fs/open`, `fs/readBlock`, `fs/close` (codex dialect): a file read in
//! blocks through a client-named handle. The connection's handles live in
//! its session's `OpenFiles` table (bounded by `CodexLimits`); the file
//! work runs on the blocking pool under the session's filesystem slots and
//! answers from a task (a request in flight until then).

use std::path::PathBuf;
use std::sync::Arc;

use execd_environment::EnvError;
use execd_local::open_files::OpenFiles;
use execd_protocol::codex::fs::{
    self as cfs, CloseParams, OpenParams, OpenResult, ReadBlockParams, ReadBlockResult,
};
use execd_protocol::fs::Empty;
use execd_protocol::{RequestId, RpcError};
use serde_json::value::RawValue;

use crate::methods::dialect::{check_read_sandbox, native_path};
use crate::methods::{ok, Reply, RpcResult};
use crate::rpc::parse_params;
use crate::session::Session;

pub fn open(session: &Session, id: &RequestId, params: &RawValue) -> Result<Reply, RpcError> {
    let p: OpenParams = parse_params(cfs::OPEN, params)?;
    check_read_sandbox(cfs::OPEN, p.sandbox)?;
    let path = PathBuf::from(native_path(cfs::OPEN, "path", &p.path)?.0);
    if !path.is_absolute() {
        return Err(
            EnvError::InvalidInput(format!("path must be absolute, got {:?}", p.path)).into(),
        );
    }
    let files: Arc<OpenFiles> = session.open_files.clone();
    let slots = session.fs().clone();
    session.reply_later(id, async move {
        let handle = p.handle_id.clone();
        slots.run(move || files.open(&handle, &path)).await?;
        ok(OpenResult {
            handle_id: p.handle_id,
        })
    })
}

pub fn read_block(session: &Session, id: &RequestId, params: &RawValue) -> Result<Reply, RpcError> {
    let p: ReadBlockParams = parse_params(cfs::READ_BLOCK, params)?;
    let files = session.open_files.clone();
    let slots = session.fs().clone();
    session.reply_later(id, async move {
        let (data, eof) = slots
            .run(move || files.read_block(&p.handle_id, p.offset, p.len))
            .await?;
        ok(ReadBlockResult {
            chunk: data.into(),
            eof,
        })
    })
}

pub fn close(session: &Session, params: &RawValue) -> RpcResult {
    let p: CloseParams = parse_params(cfs::CLOSE, params)?;
    session.open_files.close(&p.handle_id);
    ok(Empty {})
}
