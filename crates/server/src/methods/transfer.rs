//! `fs/upload`, `fs/uploadFinish`, `fs/download`, `fs/transferCancel`
//! (extension): open a stream on this machine's filesystem
//! (`execd_local::transfer`) and hand it to the session's
//! [`crate::transfers::Transfers`], whose tasks move the binary pieces.
//! Only a transport with binary frames (WebSocket) has them.

use execd_environment::WriteOptions;
use execd_protocol::fs::Empty;
use execd_protocol::transfer::{
    self as tp, DownloadParams, TransferCancel, TransferStarted, UploadFinishParams,
    UploadFinished, UploadParams, MAX_PIECE_BYTES,
};
use execd_protocol::{ErrorCode, RequestId, RpcError};
use serde_json::value::RawValue;

use crate::methods::{ok, Reply, RpcResult};
use crate::rpc::parse_params;
use crate::session::Session;
use crate::transfers::Route;

fn require_binary(session: &Session, method: &str) -> Result<(), RpcError> {
    if session.binary_frames {
        Ok(())
    } else {
        Err(RpcError::new(
            ErrorCode::InvalidRequest,
            format!(
                "{method} needs binary frames (WebSocket); use fs/readFile and fs/writeFile here"
            ),
        ))
    }
}

/// The largest piece: 1 MiB, or less if frames are smaller.
fn piece_bytes(session: &Session) -> u64 {
    let room = session.config().max_frame_bytes as u64;
    MAX_PIECE_BYTES.min(
        room.saturating_sub(execd_protocol::binary::PIECE_HEADER as u64)
            .max(1),
    )
}

fn route(session: &Session) -> Route {
    Route {
        outbox: session.outbox(),
        link: session.link().clone(),
    }
}

pub fn upload(session: &Session, id: &RequestId, params: &RawValue) -> Result<Reply, RpcError> {
    require_binary(session, tp::UPLOAD)?;
    let p: UploadParams = parse_params(tp::UPLOAD, params)?;
    let transfers = session.transfers();
    let place = session.in_flight()?;
    transfers.reserve(p.stream_id)?;
    let route = route(session);
    let window = transfers.window();
    let piece_bytes = piece_bytes(session);
    session.reply_with(place, id, async move {
        let options = WriteOptions {
            format: p.format,
            preserve: p.preserve,
        };
        match execd_local::transfer::open_write(&p.path, options).await {
            Ok(sink) => {
                transfers.start_upload(p.stream_id, sink, route);
                ok(TransferStarted {
                    window,
                    piece_bytes,
                    size: None,
                })
            }
            Err(err) => {
                transfers.release(p.stream_id);
                Err(err.into())
            }
        }
    });
    Ok(Reply::Later)
}

pub fn upload_finish(
    session: &Session,
    id: &RequestId,
    params: &RawValue,
) -> Result<Reply, RpcError> {
    let p: UploadFinishParams = parse_params(tp::UPLOAD_FINISH, params)?;
    let finishing = session.transfers().finish(p.stream_id, p.pieces)?;
    session.reply_later(id, async move {
        let bytes = finishing.wait().await?;
        ok(UploadFinished { bytes })
    })
}

pub fn download(session: &Session, id: &RequestId, params: &RawValue) -> Result<Reply, RpcError> {
    require_binary(session, tp::DOWNLOAD)?;
    let p: DownloadParams = parse_params(tp::DOWNLOAD, params)?;
    let transfers = session.transfers();
    let place = session.in_flight()?;
    transfers.reserve(p.stream_id)?;
    let route = route(session);
    let window = transfers.window();
    let piece_bytes = piece_bytes(session);
    session.reply_with(place, id, async move {
        let size = match p.format {
            tp::TransferFormat::File => std::fs::metadata(&p.path).ok().map(|meta| meta.len()),
            tp::TransferFormat::Tree => None,
        };
        match execd_local::transfer::open_read(&p.path, p.format).await {
            Ok(source) => {
                transfers.start_download(p.stream_id, source, route);
                ok(TransferStarted {
                    window,
                    piece_bytes,
                    size,
                })
            }
            Err(err) => {
                transfers.release(p.stream_id);
                Err(err.into())
            }
        }
    });
    Ok(Reply::Later)
}

pub fn cancel(session: &Session, params: &RawValue) -> RpcResult {
    let p: TransferCancel = parse_params(tp::TRANSFER_CANCEL, params)?;
    if session.transfers().cancel(p.stream_id) {
        ok(Empty {})
    } else {
        Err(RpcError::new(
            ErrorCode::InvalidParams,
            format!("no transfer stream {} is open", p.stream_id),
        ))
    }
}
