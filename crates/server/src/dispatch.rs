//! A connection's session: the handshake state and its process table, and
//! the handler of every method. Quick, order-sensitive methods (start,
//! write, terminate) run inline in frame order; long-polls and filesystem
//! work run in tasks of their own and reply when done.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use execd_core::fs::{self, FsError};
use execd_core::spawn::SpawnSpec;
use execd_core::table::UnknownProcess;
use execd_core::{ProcessEvent, ProcessTable, StartError};
use execd_protocol::envelope::{InitializeParams, InitializeResult};
use execd_protocol::fs as fsp;
use execd_protocol::process::{self as pp, OutputChunk};
use execd_protocol::{ErrorCode, Incoming, RequestId, RpcError};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::debug;

use crate::connection::Inbound;
use crate::rpc::{self, parse_params};
use crate::ServerConfig;

pub const INITIALIZE: &str = "initialize";
pub const INITIALIZED: &str = "initialized";

type RpcResult = Result<Value, RpcError>;

fn ok<T: Serialize>(value: T) -> RpcResult {
    serde_json::to_value(value).map_err(|err| RpcError::new(ErrorCode::Internal, err.to_string()))
}

/// The state of one connection.
pub struct Session {
    id: String,
    initialized: bool,
    config: ServerConfig,
    table: Arc<ProcessTable>,
    replies: mpsc::Sender<String>,
}

impl Session {
    pub fn new(
        config: ServerConfig,
        replies: mpsc::Sender<String>,
        events: mpsc::Sender<ProcessEvent>,
    ) -> Self {
        Session {
            id: uuid::Uuid::new_v4().to_string(),
            initialized: false,
            table: Arc::new(ProcessTable::new(config.table.clone(), events)),
            config,
            replies,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn table(&self) -> &Arc<ProcessTable> {
        &self.table
    }

    async fn send(&self, frame: String) {
        // Fails only when the writer is gone, i.e. the connection is closing.
        let _ = self.replies.send(frame).await;
    }

    /// Handle one inbound frame.
    pub async fn handle(&mut self, frame: Inbound) {
        let text = match frame {
            Inbound::Text(text) => text,
            Inbound::Invalid(why) => return self.send(rpc::frame_error(None, why)).await,
        };
        match Incoming::parse(&text) {
            Err(err) => {
                self.send(rpc::frame_error(err.id.as_ref(), err.message))
                    .await
            }
            Ok(Incoming::Request { id, method, params }) => {
                if let Some(result) = self.request(&id, &method, params) {
                    self.send(rpc::response(&id, result)).await;
                }
            }
            Ok(Incoming::Notification { method, .. }) => {
                if method != INITIALIZED {
                    debug!(%method, "ignoring unknown notification");
                }
            }
            Ok(Incoming::Response { id, .. }) => debug!(%id, "ignoring unexpected response"),
        }
    }

    /// Run a request. Returns its result, or `None` if a task will reply.
    fn request(&mut self, id: &RequestId, method: &str, params: Value) -> Option<RpcResult> {
        if method == INITIALIZE {
            return Some(self.initialize(params));
        }
        if !self.initialized {
            return Some(Err(RpcError::new(
                ErrorCode::InvalidRequest,
                format!("{method} called before initialize"),
            )));
        }
        Some(match method {
            pp::START => self.start(params),
            pp::WRITE => self.write(params),
            pp::TERMINATE => self.terminate(params),
            pp::READ => return self.read(id, params).err().map(Err),
            fsp::READ_FILE
            | fsp::WRITE_FILE
            | fsp::CREATE_DIRECTORY
            | fsp::GET_METADATA
            | fsp::READ_DIRECTORY
            | fsp::REMOVE
            | fsp::COPY => return self.filesystem(id, method, params).err().map(Err),
            _ => Err(RpcError::new(
                ErrorCode::MethodNotFound,
                format!("unknown method {method:?}"),
            )),
        })
    }

    /// Reply to `id` from a task of its own once `work` is done.
    fn reply_later(&self, id: &RequestId, work: impl Future<Output = RpcResult> + Send + 'static) {
        let replies = self.replies.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let result = work.await;
            let _ = replies.send(rpc::response(&id, result)).await;
        });
    }

    fn initialize(&mut self, params: Value) -> RpcResult {
        let params: InitializeParams = parse_params(INITIALIZE, params)?;
        debug!(session = %self.id, client = %params.client_name, "initialize");
        self.initialized = true;
        ok(InitializeResult {
            session_id: self.id.clone(),
            server_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        })
    }

    fn start(&mut self, params: Value) -> RpcResult {
        let params: pp::StartParams = parse_params(pp::START, params)?;
        let spec = SpawnSpec {
            argv: params.argv,
            cwd: params.cwd.into(),
            env: params.env,
            tty: params.tty,
            pipe_stdin: params.pipe_stdin,
            arg0: params.arg0,
            size: params.size.unwrap_or_default(),
        };
        match self.table.start(&params.process_id, &spec) {
            Ok(_) => ok(pp::StartResult {
                process_id: params.process_id,
            }),
            Err(err) => Err(start_error(err)),
        }
    }

    fn write(&mut self, params: Value) -> RpcResult {
        let params: pp::WriteParams = parse_params(pp::WRITE, params)?;
        ok(pp::WriteResult {
            status: self.table.write(&params.process_id, params.chunk),
        })
    }

    fn terminate(&mut self, params: Value) -> RpcResult {
        let params: pp::TerminateParams = parse_params(pp::TERMINATE, params)?;
        ok(pp::TerminateResult {
            running: self.table.terminate(&params.process_id),
        })
    }

    fn read(&self, id: &RequestId, params: Value) -> Result<(), RpcError> {
        let params: pp::ReadParams = parse_params(pp::READ, params)?;
        let table = self.table.clone();
        let wait =
            Duration::from_millis(params.wait_ms.unwrap_or(0)).min(self.config.max_read_wait);
        let max_bytes = params
            .max_bytes
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        self.reply_later(id, async move {
            let snapshot = table
                .read(
                    &params.process_id,
                    params.after_seq.unwrap_or(0),
                    max_bytes,
                    wait,
                )
                .await
                .map_err(unknown_process)?;
            let exit = snapshot.exit;
            ok(pp::ReadResult {
                chunks: snapshot
                    .chunks
                    .into_iter()
                    .map(|c| OutputChunk {
                        seq: c.seq,
                        stream: c.stream,
                        chunk: c.chunk,
                    })
                    .collect(),
                next_seq: snapshot.next_seq,
                exited: exit.is_some(),
                exit_code: exit.as_ref().map(|e| e.code),
                closed: snapshot.closed,
                failure: snapshot.failure,
                signal: exit.and_then(|e| e.signal),
            })
        });
        Ok(())
    }

    /// Decode the params of an `fs/*` method now, run it on the blocking pool.
    fn filesystem(&self, id: &RequestId, method: &str, params: Value) -> Result<(), RpcError> {
        let op: Box<dyn FnOnce() -> Result<RpcResult, FsError> + Send> = match method {
            fsp::READ_FILE => {
                let path = fs::absolute(&parse_params::<fsp::PathParams>(method, params)?.path);
                Box::new(move || {
                    let data = fs::read_file(&path?)?;
                    Ok(ok(fsp::ReadFileResult {
                        data_base64: STANDARD.encode(data),
                    }))
                })
            }
            fsp::WRITE_FILE => {
                let params: fsp::WriteFileParams = parse_params(method, params)?;
                let data =
                    STANDARD
                        .decode(params.data_base64.as_bytes())
                        .map_err(|err| {
                            RpcError::new(
                        ErrorCode::InvalidParams,
                        format!("invalid params for {method}: dataBase64: invalid base64: {err}"),
                    )
                        })?;
                let path = fs::absolute(&params.path);
                Box::new(move || {
                    fs::write_file(&path?, &data)?;
                    Ok(ok(fsp::Empty {}))
                })
            }
            fsp::CREATE_DIRECTORY => {
                let params: fsp::CreateDirectoryParams = parse_params(method, params)?;
                let path = fs::absolute(&params.path);
                let recursive = params.recursive.unwrap_or(false);
                Box::new(move || {
                    fs::create_directory(&path?, recursive)?;
                    Ok(ok(fsp::Empty {}))
                })
            }
            fsp::GET_METADATA => {
                let path = fs::absolute(&parse_params::<fsp::PathParams>(method, params)?.path);
                Box::new(move || Ok(ok(fs::metadata(&path?)?)))
            }
            fsp::READ_DIRECTORY => {
                let path = fs::absolute(&parse_params::<fsp::PathParams>(method, params)?.path);
                Box::new(move || {
                    let entries = fs::read_directory(&path?)?;
                    Ok(ok(fsp::ReadDirectoryResult { entries }))
                })
            }
            fsp::REMOVE => {
                let params: fsp::RemoveParams = parse_params(method, params)?;
                let path = fs::absolute(&params.path);
                let (recursive, force) = (
                    params.recursive.unwrap_or(false),
                    params.force.unwrap_or(false),
                );
                Box::new(move || {
                    fs::remove(&path?, recursive, force)?;
                    Ok(ok(fsp::Empty {}))
                })
            }
            fsp::COPY => {
                let params: fsp::CopyParams = parse_params(method, params)?;
                let source = fs::absolute(&params.source_path);
                let destination = fs::absolute(&params.destination_path);
                let recursive = params.recursive.unwrap_or(false);
                Box::new(move || {
                    fs::copy(&source?, &destination?, recursive)?;
                    Ok(ok(fsp::Empty {}))
                })
            }
            _ => {
                return Err(RpcError::new(
                    ErrorCode::MethodNotFound,
                    format!("unknown method {method:?}"),
                ))
            }
        };
        self.reply_later(id, async move {
            match tokio::task::spawn_blocking(op).await {
                Ok(Ok(result)) => result,
                Ok(Err(err)) => Err(fs_error(err)),
                Err(err) => Err(RpcError::new(
                    ErrorCode::Internal,
                    format!("filesystem task failed: {err}"),
                )),
            }
        });
        Ok(())
    }
}

fn start_error(err: StartError) -> RpcError {
    let code = match &err {
        StartError::Duplicate(_) => ErrorCode::InvalidRequest,
        StartError::Spawn(spawn) if spawn.is_bad_input() => ErrorCode::InvalidParams,
        StartError::Spawn(_) | StartError::ShuttingDown => ErrorCode::Internal,
    };
    RpcError::new(code, err.to_string())
}

fn unknown_process(err: UnknownProcess) -> RpcError {
    RpcError::new(ErrorCode::InvalidRequest, err.to_string())
}

fn fs_error(err: FsError) -> RpcError {
    let code = match &err {
        FsError::RelativePath(_) | FsError::IsDirectory(_) => ErrorCode::InvalidParams,
        FsError::NotFound(_) => ErrorCode::NotFound,
        FsError::Io { .. } => ErrorCode::Internal,
    };
    RpcError::new(code, err.to_string())
}
