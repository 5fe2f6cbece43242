//! A connection's session: the handshake state and its process table, and
//! the handler of every method. Quick, order-sensitive methods (start,
//! write, terminate) run inline in frame order; long-polls and filesystem
//! work run in tasks of their own and reply when done.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use execd_environment::{EnvError, FileSystem};
use execd_local::LocalBackend;
use execd_local::LocalFileSystem;
use execd_protocol::base64_bytes;
use execd_protocol::envelope::{Capabilities, InitializeParams, InitializeResult};
use execd_protocol::fs as fsp;
use execd_protocol::process::{self as pp, TerminalSize};
use execd_protocol::{ErrorCode, Incoming, RequestId, RpcError};
use serde::Serialize;
use serde_json::Value;
use tracing::debug;

use crate::connection::{ConnectionEvents, Inbound};
use crate::gate::ConnectionGate;
use crate::rpc::{self, parse_params};
use crate::ServerConfig;
use execd_transport::outbox::Outbox;

pub const INITIALIZE: &str = "initialize";
pub const INITIALIZED: &str = "initialized";

type RpcResult = Result<Value, RpcError>;

fn ok<T: Serialize>(value: T) -> RpcResult {
    serde_json::to_value(value).map_err(|err| RpcError::new(ErrorCode::Internal, err.to_string()))
}

fn done<T: Serialize>(result: Result<T, EnvError>) -> RpcResult {
    ok(result?)
}

/// The state of one connection.
pub struct Session {
    id: String,
    initialized: bool,
    config: ServerConfig,
    backend: LocalBackend,
    outbox: Arc<Outbox>,
    gate: Arc<ConnectionGate>,
    events: Arc<ConnectionEvents>,
    /// The transport can carry binary frames.
    binary_frames: bool,
}

impl Session {
    pub fn new(config: ServerConfig, outbox: Arc<Outbox>, binary_frames: bool) -> Self {
        let gate = ConnectionGate::new(outbox.clone());
        let events = ConnectionEvents::new(outbox.clone());
        Session {
            id: uuid::Uuid::new_v4().to_string(),
            initialized: false,
            backend: LocalBackend::new(config.table.clone(), events.clone(), gate.clone()),
            gate,
            events,
            binary_frames,
            config,
            outbox,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn backend(&self) -> &LocalBackend {
        &self.backend
    }

    async fn send(&self, frame: String) {
        // Fails only when the connection is closing.
        self.outbox.send(frame).await;
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
            Ok(Incoming::Response { id, result }) => {
                let ours = match id {
                    RequestId::Int(n) => self.gate.answer(n, result),
                    RequestId::Str(_) => false,
                };
                if !ours {
                    debug!(%id, "ignoring a response to no request of ours");
                }
            }
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
            pp::START => return self.start(id, params),
            pp::WRITE => self.write(params),
            pp::TERMINATE => self.terminate(params),
            pp::RESIZE => self.resize(params),
            pp::SIGNAL => self.signal(params),
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
        let outbox = self.outbox.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let result = work.await;
            outbox.send(rpc::response(&id, result)).await;
        });
    }

    fn initialize(&mut self, params: Value) -> RpcResult {
        let params: InitializeParams = parse_params(INITIALIZE, params)?;
        debug!(session = %self.id, client = %params.client_name, "initialize");
        self.initialized = true;
        let binary_output = params.binary_output && self.binary_frames;
        if binary_output {
            self.events.use_binary_output();
        }
        ok(InitializeResult {
            session_id: self.id.clone(),
            server_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            capabilities: Some(Capabilities {
                exec_policy: execd_policy::exec_guard::supported(),
                sandbox: execd_policy::sandbox::features(),
                binary_output,
            }),
        })
    }

    /// Inline, so a following write finds the process; but a start under
    /// an exec policy may wait for a client's answer, which this loop must
    /// stay free to read, so that one replies from a task.
    fn start(&mut self, id: &RequestId, params: Value) -> Option<RpcResult> {
        let params: pp::StartParams = match parse_params(pp::START, params) {
            Ok(params) => params,
            Err(err) => return Some(Err(err)),
        };
        let result = |params: pp::StartParams| {
            ok(pp::StartResult {
                process_id: params.process_id,
            })
        };
        if params.exec_policy.is_none() {
            return Some(
                self.backend
                    .start_now(&params)
                    .map_err(RpcError::from)
                    .and_then(|()| result(params)),
            );
        }
        // Claimed now, in frame order, so a write right behind this start
        // answers `starting`.
        if let Err(err) = self.backend.reserve(&params) {
            return Some(Err(err.into()));
        }
        let backend = self.backend.clone();
        self.reply_later(id, async move {
            backend.start_reserved(&params).await?;
            result(params)
        });
        None
    }

    fn write(&mut self, params: Value) -> RpcResult {
        let params: pp::WriteParams = parse_params(pp::WRITE, params)?;
        let status = self
            .backend
            .write(&params.process_id, params.chunk, params.close_stdin);
        ok(pp::WriteResult { status })
    }

    fn terminate(&mut self, params: Value) -> RpcResult {
        let params: pp::TerminateParams = parse_params(pp::TERMINATE, params)?;
        ok(pp::TerminateResult {
            running: self.backend.terminate(&params.process_id),
        })
    }

    fn resize(&mut self, params: Value) -> RpcResult {
        let params: pp::ResizeParams = parse_params(pp::RESIZE, params)?;
        let size = TerminalSize {
            rows: params.rows,
            cols: params.cols,
        };
        done(
            self.backend
                .resize(&params.process_id, size)
                .map(|()| fsp::Empty {}),
        )
    }

    fn signal(&mut self, params: Value) -> RpcResult {
        let params: pp::SignalParams = parse_params(pp::SIGNAL, params)?;
        let running = self.backend.signal(&params.process_id, &params.signal)?;
        ok(pp::SignalResult { running })
    }

    fn read(&self, id: &RequestId, params: Value) -> Result<(), RpcError> {
        let params: pp::ReadParams = parse_params(pp::READ, params)?;
        let backend = self.backend.clone();
        let wait =
            Duration::from_millis(params.wait_ms.unwrap_or(0)).min(self.config.max_read_wait);
        self.reply_later(id, async move {
            let after_seq = params.after_seq.unwrap_or(0);
            done(
                backend
                    .read(&params.process_id, after_seq, params.max_bytes, wait)
                    .await,
            )
        });
        Ok(())
    }

    /// Decode the params of an `fs/*` method now; run it in a task.
    fn filesystem(&self, id: &RequestId, method: &str, params: Value) -> Result<(), RpcError> {
        let fs = LocalFileSystem;
        match method {
            fsp::READ_FILE => {
                let p: fsp::ReadFileParams = parse_params(method, params)?;
                self.reply_later(id, async move {
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
            }
            fsp::WRITE_FILE => {
                let p: fsp::WriteFileParams = parse_params(method, params)?;
                let data = base64_bytes::decode(p.data_base64.as_bytes()).map_err(|err| {
                    RpcError::new(
                        ErrorCode::InvalidParams,
                        format!("invalid params for {method}: dataBase64: invalid base64: {err}"),
                    )
                })?;
                self.reply_later(id, async move {
                    let written = if p.append {
                        fs.append_file(&p.path, data).await
                    } else {
                        fs.write_file(&p.path, data).await
                    };
                    done(written.map(|()| fsp::Empty {}))
                });
            }
            fsp::CREATE_DIRECTORY => {
                let p: fsp::CreateDirectoryParams = parse_params(method, params)?;
                let recursive = p.recursive.unwrap_or(false);
                self.reply_later(id, async move {
                    done(
                        fs.create_directory(&p.path, recursive)
                            .await
                            .map(|()| fsp::Empty {}),
                    )
                });
            }
            fsp::GET_METADATA => {
                let p: fsp::PathParams = parse_params(method, params)?;
                self.reply_later(id, async move { done(fs.metadata(&p.path).await) });
            }
            fsp::READ_DIRECTORY => {
                let p: fsp::PathParams = parse_params(method, params)?;
                self.reply_later(id, async move {
                    let entries = fs.read_directory(&p.path).await?;
                    ok(fsp::ReadDirectoryResult { entries })
                });
            }
            fsp::REMOVE => {
                let p: fsp::RemoveParams = parse_params(method, params)?;
                let (recursive, force) = (p.recursive.unwrap_or(false), p.force.unwrap_or(false));
                self.reply_later(id, async move {
                    done(
                        fs.remove(&p.path, recursive, force)
                            .await
                            .map(|()| fsp::Empty {}),
                    )
                });
            }
            fsp::COPY => {
                let p: fsp::CopyParams = parse_params(method, params)?;
                let recursive = p.recursive.unwrap_or(false);
                self.reply_later(id, async move {
                    let copied = fs
                        .copy(&p.source_path, &p.destination_path, recursive)
                        .await;
                    done(copied.map(|()| fsp::Empty {}))
                });
            }
            _ => {
                return Err(RpcError::new(
                    ErrorCode::MethodNotFound,
                    format!("unknown method {method:?}"),
                ))
            }
        }
        Ok(())
    }
}
