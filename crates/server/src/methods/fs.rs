//! `fs/*`: each method's params are decoded now (a bad request is answered
//! in frame order), and the filesystem work runs in a task of its own on
//! the blocking pool, which answers when done. Changes (write, append,
//! directory creation, remove, copy) are audited with their outcome.

use execd_environment::FileSystem;
use execd_local::LocalFileSystem;
use execd_protocol::base64_bytes;
use execd_protocol::fs::{self as fsp, Empty};
use execd_protocol::{ErrorCode, RequestId, RpcError};
use serde_json::Value;

use execd_environment::EnvError;

use crate::audit;
use crate::methods::{done, ok, Reply};
use crate::rpc::parse_params;
use crate::session::Session;

/// The whole file, or a range of it (`offset`/`length`, with `eof`).
pub fn read_file(session: &Session, id: &RequestId, params: Value) -> Result<Reply, RpcError> {
    let p: fsp::ReadFileParams = parse_params(fsp::READ_FILE, params)?;
    session.reply_later(id, async move {
        let fs = LocalFileSystem;
        if p.offset.is_none() && p.length.is_none() {
            let data = fs.read_file(&p.path).await?;
            return ok(fsp::ReadFileResult {
                data_base64: base64_bytes::encode(&data),
                eof: None,
            });
        }
        let (offset, length) = (p.offset.unwrap_or(0), p.length.unwrap_or(u64::MAX));
        let (data, eof) = fs.read_range(&p.path, offset, length).await?;
        ok(fsp::ReadFileResult {
            data_base64: base64_bytes::encode(&data),
            eof: Some(eof),
        })
    });
    Ok(Reply::Later)
}

/// Write or (`append`) extend a file; the base64 is checked before the task.
pub fn write_file(session: &Session, id: &RequestId, params: Value) -> Result<Reply, RpcError> {
    let method = fsp::WRITE_FILE;
    let p: fsp::WriteFileParams = parse_params(method, params)?;
    let data = base64_bytes::decode(p.data_base64.as_bytes()).map_err(|err| {
        RpcError::new(
            ErrorCode::InvalidParams,
            format!("invalid params for {method}: dataBase64: invalid base64: {err}"),
        )
    })?;
    let session_id = session.id().to_string();
    session.reply_later(id, async move {
        let written = if p.append {
            LocalFileSystem.append_file(&p.path, data).await
        } else {
            LocalFileSystem.write_file(&p.path, data).await
        };
        let operation = if p.append {
            "fs/writeFile (append)"
        } else {
            method
        };
        audit_change(&session_id, operation, &p.path, None, &written);
        done(written.map(|()| Empty {}))
    });
    Ok(Reply::Later)
}

pub fn create_directory(
    session: &Session,
    id: &RequestId,
    params: Value,
) -> Result<Reply, RpcError> {
    let p: fsp::CreateDirectoryParams = parse_params(fsp::CREATE_DIRECTORY, params)?;
    let recursive = p.recursive.unwrap_or(false);
    let session_id = session.id().to_string();
    session.reply_later(id, async move {
        let created = LocalFileSystem.create_directory(&p.path, recursive).await;
        audit_change(&session_id, fsp::CREATE_DIRECTORY, &p.path, None, &created);
        done(created.map(|()| Empty {}))
    });
    Ok(Reply::Later)
}

pub fn get_metadata(session: &Session, id: &RequestId, params: Value) -> Result<Reply, RpcError> {
    let p: fsp::PathParams = parse_params(fsp::GET_METADATA, params)?;
    session.reply_later(
        id,
        async move { done(LocalFileSystem.metadata(&p.path).await) },
    );
    Ok(Reply::Later)
}

pub fn read_directory(session: &Session, id: &RequestId, params: Value) -> Result<Reply, RpcError> {
    let p: fsp::PathParams = parse_params(fsp::READ_DIRECTORY, params)?;
    session.reply_later(id, async move {
        let entries = LocalFileSystem.read_directory(&p.path).await?;
        ok(fsp::ReadDirectoryResult { entries })
    });
    Ok(Reply::Later)
}

pub fn remove(session: &Session, id: &RequestId, params: Value) -> Result<Reply, RpcError> {
    let p: fsp::RemoveParams = parse_params(fsp::REMOVE, params)?;
    let (recursive, force) = (p.recursive.unwrap_or(false), p.force.unwrap_or(false));
    let session_id = session.id().to_string();
    session.reply_later(id, async move {
        let removed = LocalFileSystem.remove(&p.path, recursive, force).await;
        audit_change(&session_id, fsp::REMOVE, &p.path, None, &removed);
        done(removed.map(|()| Empty {}))
    });
    Ok(Reply::Later)
}

pub fn copy(session: &Session, id: &RequestId, params: Value) -> Result<Reply, RpcError> {
    let p: fsp::CopyParams = parse_params(fsp::COPY, params)?;
    let recursive = p.recursive.unwrap_or(false);
    let session_id = session.id().to_string();
    session.reply_later(id, async move {
        let copied = LocalFileSystem
            .copy(&p.source_path, &p.destination_path, recursive)
            .await;
        let destination = Some(p.destination_path.as_str());
        audit_change(&session_id, fsp::COPY, &p.source_path, destination, &copied);
        done(copied.map(|()| Empty {}))
    });
    Ok(Reply::Later)
}

fn audit_change(
    session: &str,
    operation: &str,
    path: &str,
    destination: Option<&str>,
    outcome: &Result<(), EnvError>,
) {
    let outcome = outcome.as_ref().map(|_| ()).map_err(ToString::to_string);
    audit::fs_change(session, operation, path, destination, outcome);
}
