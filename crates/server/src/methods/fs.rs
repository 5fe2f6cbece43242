//! `fs/*`: each method's params are decoded and checked now (a bad request
//! is answered in frame order), and the filesystem work (`execd_local::fs`)
//! runs in a task of its own on the blocking pool, under the connection's
//! and the server's filesystem slots, and answers when done.
//!
//! The two methods that carry file contents avoid copies: `fs/readFile`
//! writes the file's base64 straight into its reply frame, and
//! `fs/writeFile` keeps its base64 where it arrived (in the frame) and
//! decodes it into the file piece by piece, so a write holds about its
//! frame and no more.
//! Changes (write, append, directory creation, remove, copy, rename) are audited
//! with their outcome.
//! Every path may come as a `file://` URI, and a request may carry codex's
//! `sandbox`, which its writes must be allowed under ([`FsPaths`]).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use execd_environment::EnvError;
use execd_local::fs::{self, FsError};
use execd_protocol::base64_bytes;
use execd_protocol::fs::{self as fsp, Empty};
use execd_protocol::{ErrorCode, RequestId, RpcError};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::audit;
use crate::dispatch::Request;
use crate::methods::dialect::FsPaths;
use crate::methods::{done, Reply};
use crate::rpc::{self, parse_params};
use crate::session::Session;

/// An absolute path, or the error answered now.
fn absolute(path: &str) -> Result<PathBuf, RpcError> {
    fs::absolute(path).map_err(|err| RpcError::from(EnvError::from(err)))
}

/// Run `op` under the session's filesystem slots and reply with its result.
fn reply_with<T: serde::Serialize + Send + 'static>(
    session: &Session,
    id: &RequestId,
    op: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<Reply, RpcError> {
    let slots = session.fs().clone();
    session.reply_later(id, async move { done(slots.run(op).await) })
}

/// The whole file (up to the server's `max_read_bytes`), or a range of it
/// (`offset`/`length`, with `eof`).
pub fn read_file(session: &Session, id: &RequestId, params: &RawValue) -> Result<Reply, RpcError> {
    let p: fsp::ReadFileParams = parse_params(fsp::READ_FILE, params)?;
    let paths = FsPaths::of(fsp::READ_FILE, params)?;
    let path = absolute(&paths.read("path", &p.path)?)?;
    let place = session.in_flight()?;
    let slots = session.fs().clone();
    let max = session.config().max_read_bytes;
    let id = id.clone();
    let metrics = session.shared_metrics();
    session.send_later(place, async move {
        let read = if p.offset.is_none() && p.length.is_none() {
            slots
                .run(move || fs::read_file(&path, max).map(|data| (data, None)))
                .await
        } else {
            let offset = p.offset.unwrap_or(0);
            slots
                .run(move || {
                    fs::read_range(&path, offset, p.length, max)
                        .map(|(data, eof)| (data, Some(eof)))
                })
                .await
        };
        let read = read.map_err(RpcError::from);
        metrics.fs_operation(fsp::READ_FILE, read.as_ref().map(|_| ()));
        match read {
            Ok((data, eof)) => rpc::read_file_response(&id, &data, eof),
            Err(err) => rpc::response(&id, Err(err)),
        }
    });
    Ok(Reply::Later)
}

/// `fs/writeFile` params, the base64 borrowed from the frame (it is copied
/// only if the client escaped a character in it).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WriteFileParams<'a> {
    path: String,
    #[serde(borrow)]
    data_base64: Cow<'a, str>,
    /// Extension: append instead of replacing the file.
    #[serde(default)]
    append: bool,
    /// codex's sandbox, which the write must be allowed under.
    #[serde(default)]
    sandbox: Option<Value>,
}

/// The base64 text of a write: a view into the frame it came in.
fn base64_text(request: &Request<'_>, text: Cow<'_, str>) -> Bytes {
    match text {
        Cow::Borrowed(text) => {
            let frame = request.frame.as_str();
            let start = (text.as_ptr() as usize).wrapping_sub(frame.as_ptr() as usize);
            match frame.get(start..start + text.len()) {
                Some(within) if within.as_ptr() == text.as_ptr() => {
                    Bytes::from(request.frame.clone()).slice(start..start + text.len())
                }
                // Not from this frame after all: copy it.
                _ => Bytes::copy_from_slice(text.as_bytes()),
            }
        }
        Cow::Owned(text) => Bytes::from(text),
    }
}

/// Write or (`append`) extend a file; the base64 is checked before the task.
pub fn write_file(session: &Session, request: &Request<'_>) -> Result<Reply, RpcError> {
    let method = fsp::WRITE_FILE;
    let p: WriteFileParams = parse_params(method, request.params)?;
    base64_bytes::check(p.data_base64.as_bytes()).map_err(|err| {
        RpcError::new(
            ErrorCode::InvalidParams,
            format!("invalid params for {method}: dataBase64: invalid base64: {err}"),
        )
    })?;
    let paths = FsPaths::with_sandbox(method, p.sandbox)?;
    let path = absolute(&paths.write("path", &p.path)?)?;
    let append = p.append;
    let text = base64_text(request, p.data_base64);
    let operation = if append {
        "fs/writeFile (append)"
    } else {
        method
    };
    let change = Change::of(operation, &path, None);
    reply_change(session, request.id, change, move || {
        fs::write_base64(&path, &text, append).map(drop)
    })
}

pub fn create_directory(
    session: &Session,
    id: &RequestId,
    params: &RawValue,
) -> Result<Reply, RpcError> {
    let p: fsp::CreateDirectoryParams = parse_params(fsp::CREATE_DIRECTORY, params)?;
    let paths = FsPaths::of(fsp::CREATE_DIRECTORY, params)?;
    let path = absolute(&paths.write("path", &p.path)?)?;
    let recursive = p.recursive.unwrap_or(false);
    let change = Change::of(fsp::CREATE_DIRECTORY, &path, None);
    reply_change(session, id, change, move || {
        fs::create_directory(&path, recursive)
    })
}

pub fn get_metadata(
    session: &Session,
    id: &RequestId,
    params: &RawValue,
) -> Result<Reply, RpcError> {
    let p: fsp::PathParams = parse_params(fsp::GET_METADATA, params)?;
    let paths = FsPaths::of(fsp::GET_METADATA, params)?;
    let path = absolute(&paths.read("path", &p.path)?)?;
    reply_with(session, id, move || fs::metadata(&path))
}

/// `fs/setMetadata` (extension): permission bits and times, audited as a change.
pub fn set_metadata(
    session: &Session,
    id: &RequestId,
    params: &RawValue,
) -> Result<Reply, RpcError> {
    let method = fsp::SET_METADATA;
    let p: fsp::SetMetadataParams = parse_params(method, params)?;
    let paths = FsPaths::of(method, params)?;
    let path = absolute(&paths.write("path", &p.path)?)?;
    let invalid = |message: String| {
        RpcError::new(
            ErrorCode::InvalidParams,
            format!("invalid params for {method}: {message}"),
        )
    };
    if let Some(mode) = p.mode.filter(|mode| mode & !fs::MODE_BITS != 0) {
        return Err(invalid(format!(
            "mode {mode:#o} has bits outside {:#o}",
            fs::MODE_BITS
        )));
    }
    if p.mode.is_none() && p.modified_at_ms.is_none() && p.accessed_at_ms.is_none() {
        return Err(invalid(
            "nothing to set: give mode, modifiedAtMs or accessedAtMs".into(),
        ));
    }
    let change = fs::MetadataChange {
        mode: p.mode,
        modified_at_ms: p.modified_at_ms,
        accessed_at_ms: p.accessed_at_ms,
    };
    let audited = Change::of(method, &path, None);
    reply_change(session, id, audited, move || {
        fs::set_metadata(&path, change)
    })
}

pub fn read_directory(
    session: &Session,
    id: &RequestId,
    params: &RawValue,
) -> Result<Reply, RpcError> {
    let p: fsp::PathParams = parse_params(fsp::READ_DIRECTORY, params)?;
    let paths = FsPaths::of(fsp::READ_DIRECTORY, params)?;
    let path = absolute(&paths.read("path", &p.path)?)?;
    reply_with(session, id, move || {
        fs::read_directory(&path).map(|entries| fsp::ReadDirectoryResult { entries })
    })
}

pub fn remove(session: &Session, id: &RequestId, params: &RawValue) -> Result<Reply, RpcError> {
    let p: fsp::RemoveParams = parse_params(fsp::REMOVE, params)?;
    let paths = FsPaths::of(fsp::REMOVE, params)?;
    let path = absolute(&paths.write("path", &p.path)?)?;
    let (recursive, force) = (p.recursive.unwrap_or(false), p.force.unwrap_or(false));
    let change = Change::of(fsp::REMOVE, &path, None);
    reply_change(session, id, change, move || {
        fs::remove(&path, recursive, force)
    })
}

pub fn copy(session: &Session, id: &RequestId, params: &RawValue) -> Result<Reply, RpcError> {
    let p: fsp::CopyParams = parse_params(fsp::COPY, params)?;
    let paths = FsPaths::of(fsp::COPY, params)?;
    let source = absolute(&paths.read("sourcePath", &p.source_path)?)?;
    let destination = absolute(&paths.write("destinationPath", &p.destination_path)?)?;
    let recursive = p.recursive.unwrap_or(false);
    let change = Change::of(fsp::COPY, &source, Some(&destination));
    reply_change(session, id, change, move || {
        fs::copy(&source, &destination, recursive)
    })
}

/// `fs/rename` (extension): one `rename(2)`; both ends are written, so
/// both must be writable under the request's `sandbox`.
pub fn rename(session: &Session, id: &RequestId, params: &RawValue) -> Result<Reply, RpcError> {
    let p: fsp::RenameParams = parse_params(fsp::RENAME, params)?;
    let paths = FsPaths::of(fsp::RENAME, params)?;
    let source = absolute(&paths.write("sourcePath", &p.source_path)?)?;
    let destination = absolute(&paths.write("destinationPath", &p.destination_path)?)?;
    let change = Change::of(fsp::RENAME, &source, Some(&destination));
    reply_change(session, id, change, move || {
        execd_local::rename::rename(&source, &destination)
    })
}

/// A filesystem change, for the audit trail.
struct Change {
    operation: &'static str,
    path: String,
    destination: Option<String>,
}

impl Change {
    fn of(operation: &'static str, path: &Path, destination: Option<&Path>) -> Change {
        Change {
            operation,
            path: path.display().to_string(),
            destination: destination.map(|d| d.display().to_string()),
        }
    }
}

/// [`reply_with`] for a change: audited with its outcome once it is done.
fn reply_change(
    session: &Session,
    id: &RequestId,
    change: Change,
    op: impl FnOnce() -> Result<(), FsError> + Send + 'static,
) -> Result<Reply, RpcError> {
    let slots = session.fs().clone();
    let session_id = session.id().to_string();
    session.reply_later(id, async move {
        let outcome = slots.run(op).await;
        let audited = outcome.as_ref().map(|_| ()).map_err(ToString::to_string);
        let destination = change.destination.as_deref();
        audit::fs_change(
            &session_id,
            change.operation,
            &change.path,
            destination,
            audited,
        );
        done(outcome.map(|()| Empty {}))
    })
}
