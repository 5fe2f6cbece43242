//! Routing: a request's method name to its handler in [`crate::methods`].
//! Nothing but `initialize` runs before the handshake.

use execd_protocol::codex::{self, fs as cfs};
use execd_protocol::fs as fsp;
use execd_protocol::fs_watch as fw;
use execd_protocol::process as pp;
use execd_protocol::transfer as tp;
use execd_protocol::{ErrorCode, RequestId, RpcError};
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::methods::session::INITIALIZE;
use crate::methods::{
    environment, fs, fs_changes, fs_handles, fs_walk, fs_watch, http, process, session, transfer,
    unsupported, Reply,
};
use crate::session::Session;

/// One request as it came in: its params are still the frame's text.
pub struct Request<'a> {
    pub id: &'a RequestId,
    pub method: &'a str,
    pub params: &'a RawValue,
    /// The whole frame, which `params` borrows from (a handler may keep it
    /// rather than copy out of it).
    pub frame: &'a Utf8Bytes,
}

/// Run one request: its answer now, or [`Reply::Later`] if a task answers.
pub fn route(session: &mut Session, request: &Request<'_>) -> Reply {
    let Request {
        id, method, params, ..
    } = *request;
    if method == INITIALIZE {
        return session::initialize(session, params).into();
    }
    if !session.initialized {
        return Reply::Now(Err(RpcError::new(
            ErrorCode::InvalidRequest,
            format!("{method} called before initialize"),
        )));
    }
    match method {
        pp::START => process::start(session, id, params).into(),
        pp::WRITE => process::write(session, params).into(),
        pp::TERMINATE => process::terminate(session, params).into(),
        pp::RESIZE => process::resize(session, params).into(),
        pp::SIGNAL => process::signal(session, params).into(),
        pp::READ => process::read(session, id, params).into(),
        pp::ACK => process::ack(session, params).into(),
        pp::LIST => process::list(session, params).into(),
        fsp::READ_FILE => fs::read_file(session, id, params).into(),
        fsp::WRITE_FILE => fs::write_file(session, request).into(),
        fsp::CREATE_DIRECTORY => fs::create_directory(session, id, params).into(),
        fsp::GET_METADATA => fs::get_metadata(session, id, params).into(),
        fsp::SET_METADATA => fs::set_metadata(session, id, params).into(),
        fsp::READ_DIRECTORY => fs::read_directory(session, id, params).into(),
        fsp::REMOVE => fs::remove(session, id, params).into(),
        fsp::COPY => fs::copy(session, id, params).into(),
        fsp::RENAME => fs::rename(session, id, params).into(),
        fw::WATCH => fs_changes::watch(session, id, params).into(),
        fw::UNWATCH => fs_changes::unwatch(session, params).into(),
        tp::UPLOAD => transfer::upload(session, id, params).into(),
        tp::UPLOAD_FINISH => transfer::upload_finish(session, id, params).into(),
        tp::DOWNLOAD => transfer::download(session, id, params).into(),
        tp::TRANSFER_CANCEL => transfer::cancel(session, params).into(),
        cfs::OPEN => fs_handles::open(session, id, params).into(),
        cfs::READ_BLOCK => fs_handles::read_block(session, id, params).into(),
        cfs::CLOSE => fs_handles::close(session, params).into(),
        cfs::CANONICALIZE => fs_walk::canonicalize(session, id, params).into(),
        cfs::WALK => fs_walk::walk(session, id, params).into(),
        cfs::WATCH_MISSING => fs_watch::watch_missing(session, id, params).into(),
        codex::http::HTTP_REQUEST => http::request(session, id, params).into(),
        codex::ENVIRONMENT_INFO => environment::environment_info(params).into(),
        codex::ENVIRONMENT_CONFIG_READ => environment::environment_config_read(params).into(),
        codex::ENVIRONMENT_STATUS => environment::environment_status(params).into(),
        _ => Reply::Now(Err(unsupported::method_not_found(method))),
    }
}
