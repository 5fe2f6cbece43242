//! The environment traits over an [`ExecServerClient`]: every call is one
//! protocol request; events arrive through the client's router. Processes
//! get the client's output window unless their start names one, and their
//! event receivers acknowledge what the harness consumed (`process/ack`);
//! writes carry a `writeId`, so one repeated after a resume applies once.
//! A watch's changes arrive through the client's watch routes; dropping
//! its `FileWatch` sends `fs/unwatch`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use execd_environment::wait_exit;
use execd_environment::ExitWatch;
use execd_environment::FileWatch;
use execd_environment::{
    ByteSink, ByteSource, EnvError, Environment, EventAck, ExecBackend, ExecProcess, FileSystem,
    StartedProcess, TransferFormat, WriteOptions,
};
use execd_protocol::base64_bytes;
use execd_protocol::codex::fs::{self as cfs, WalkOutcome, WalkParams};
use execd_protocol::event::ExitInfo;
use execd_protocol::fs::{self as fsp, DirectoryEntry, Metadata};
use execd_protocol::fs_watch as fw;
use execd_protocol::process::{self as pp, ReadResult, StartParams, TerminalSize, WriteStatus};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use crate::client::{ConnectOptions, ExecServerClient, WeakClient, DEFAULT_TIMEOUT};

/// Processes and files behind an execd server.
#[derive(Clone, Debug)]
pub struct RemoteEnvironment {
    client: ExecServerClient,
}

impl RemoteEnvironment {
    /// The environment traits over `client`.
    pub fn new(client: ExecServerClient) -> Self {
        RemoteEnvironment { client }
    }

    /// Connect to `url` and wrap the connection as an [`Environment`]; the
    /// token is `EXECD_TOKEN` or the default token file.
    pub async fn connect(url: &str) -> Result<Environment, EnvError> {
        Self::connect_with(url, ConnectOptions::default()).await
    }

    /// Connect to `url` with `options` (token, CA file) and wrap the
    /// connection as an [`Environment`].
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Environment, EnvError> {
        let client = ExecServerClient::connect_with(url, options).await?;
        Ok(RemoteEnvironment::new(client).into_environment())
    }

    /// The connection underneath.
    pub fn client(&self) -> &ExecServerClient {
        &self.client
    }

    /// As an [`Environment`] (exec and filesystem over the same connection).
    pub fn into_environment(self) -> Environment {
        let this = Arc::new(self);
        Environment {
            exec: this.clone(),
            fs: this,
            remote: true,
        }
    }

    async fn call<P: Serialize + Sync, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, EnvError> {
        Ok(self.client.call(method, params).await?)
    }
}

#[async_trait]
impl ExecBackend for RemoteEnvironment {
    async fn start(&self, mut params: StartParams) -> Result<StartedProcess, EnvError> {
        if params.output_window.is_none() {
            params.output_window = self.client.output_window();
        }
        let (mut events, exit) = self.client.register_process(&params.process_id)?;
        if let Some(window) = params.output_window {
            let acks = Arc::new(RemoteAcks(self.client.downgrade()));
            events = events.acking(acks, window);
        }
        let started: Result<pp::StartResult, EnvError> = self.call(pp::START, &params).await;
        if let Err(err) = started {
            self.client.unregister_process(&params.process_id);
            return Err(err);
        }
        Ok(StartedProcess {
            process: Arc::new(RemoteProcess {
                id: params.process_id,
                env: self.clone(),
                exit,
            }),
            events,
        })
    }
}

/// Sends `process/ack` for what a receiver's consumer has taken.
struct RemoteAcks(WeakClient);

impl EventAck for RemoteAcks {
    fn ack(&self, process_id: &str, seq: u64) {
        let Some(client) = self.0.upgrade() else {
            return;
        };
        let params = pp::AckParams {
            process_id: process_id.to_string(),
            seq,
        };
        tokio::spawn(async move {
            let acked: Result<fsp::Empty, _> = client.call(pp::ACK, &params).await;
            if let Err(err) = acked {
                tracing::debug!(%err, "process/ack failed");
            }
        });
    }
}

struct RemoteProcess {
    id: String,
    env: RemoteEnvironment,
    exit: watch::Receiver<ExitWatch>,
}

#[async_trait]
impl ExecProcess for RemoteProcess {
    fn id(&self) -> &str {
        &self.id
    }

    async fn read(
        &self,
        after_seq: u64,
        max_bytes: Option<u64>,
        wait_ms: Option<u64>,
    ) -> Result<ReadResult, EnvError> {
        let params = pp::ReadParams {
            process_id: self.id.clone(),
            after_seq: Some(after_seq),
            max_bytes,
            wait_ms,
        };
        let timeout = DEFAULT_TIMEOUT + Duration::from_millis(wait_ms.unwrap_or(0));
        Ok(self
            .env
            .client
            .call_with_timeout(pp::READ, &params, timeout)
            .await?)
    }

    async fn write(&self, chunk: Bytes) -> Result<WriteStatus, EnvError> {
        let params = pp::WriteParams {
            process_id: self.id.clone(),
            chunk,
            close_stdin: false,
            write_id: Some(self.env.client.write_id()),
        };
        let result: pp::WriteResult = self.env.call(pp::WRITE, &params).await?;
        Ok(result.status)
    }

    async fn close_stdin(&self) -> Result<WriteStatus, EnvError> {
        let params = pp::WriteParams {
            process_id: self.id.clone(),
            chunk: Bytes::new(),
            close_stdin: true,
            write_id: Some(self.env.client.write_id()),
        };
        let result: pp::WriteResult = self.env.call(pp::WRITE, &params).await?;
        Ok(result.status)
    }

    async fn resize(&self, size: TerminalSize) -> Result<(), EnvError> {
        let params = pp::ResizeParams {
            process_id: self.id.clone(),
            rows: size.rows,
            cols: size.cols,
        };
        let _: fsp::Empty = self.env.call(pp::RESIZE, &params).await?;
        Ok(())
    }

    async fn signal(&self, signal: &str) -> Result<bool, EnvError> {
        let params = pp::SignalParams {
            process_id: self.id.clone(),
            signal: signal.to_string(),
        };
        let result: pp::SignalResult = self.env.call(pp::SIGNAL, &params).await?;
        Ok(result.running)
    }

    async fn terminate(&self) -> Result<bool, EnvError> {
        let params = pp::TerminateParams {
            process_id: self.id.clone(),
        };
        let result: pp::TerminateResult = self.env.call(pp::TERMINATE, &params).await?;
        Ok(result.running)
    }

    async fn wait(&self) -> Result<ExitInfo, EnvError> {
        wait_exit(self.exit.clone()).await
    }
}

fn decode(result: fsp::ReadFileResult) -> Result<Vec<u8>, EnvError> {
    base64_bytes::decode(result.data_base64.as_bytes())
        .map_err(|err| EnvError::Protocol(format!("fs/readFile returned invalid base64: {err}")))
}

#[async_trait]
impl FileSystem for RemoteEnvironment {
    async fn read_file(&self, path: &str) -> Result<Vec<u8>, EnvError> {
        decode(self.call(fsp::READ_FILE, &json!({"path": path})).await?)
    }

    async fn read_range(
        &self,
        path: &str,
        offset: u64,
        length: u64,
    ) -> Result<(Vec<u8>, bool), EnvError> {
        let params = fsp::ReadFileParams {
            path: path.to_string(),
            offset: Some(offset),
            length: Some(length),
        };
        let result: fsp::ReadFileResult = self.call(fsp::READ_FILE, &params).await?;
        match result.eof {
            Some(eof) => Ok((decode(result)?, eof)),
            // A server without range reads sent the whole file.
            None if offset == 0 => Ok((decode(result)?, true)),
            None => Err(EnvError::Unsupported(
                "the server does not support ranged fs/readFile".into(),
            )),
        }
    }

    async fn write_file(&self, path: &str, data: Vec<u8>) -> Result<(), EnvError> {
        let params = fsp::WriteFileParams {
            path: path.to_string(),
            data_base64: base64_bytes::encode(&data),
            append: false,
        };
        let _: fsp::Empty = self.call(fsp::WRITE_FILE, &params).await?;
        Ok(())
    }

    async fn append_file(&self, path: &str, data: Vec<u8>) -> Result<(), EnvError> {
        let params = fsp::WriteFileParams {
            path: path.to_string(),
            data_base64: base64_bytes::encode(&data),
            append: true,
        };
        let _: fsp::Empty = self.call(fsp::WRITE_FILE, &params).await?;
        Ok(())
    }

    async fn set_metadata(&self, params: fsp::SetMetadataParams) -> Result<(), EnvError> {
        let _: fsp::Empty = self.call(fsp::SET_METADATA, &params).await?;
        Ok(())
    }

    async fn create_directory(&self, path: &str, recursive: bool) -> Result<(), EnvError> {
        let params = fsp::CreateDirectoryParams {
            path: path.to_string(),
            recursive: Some(recursive),
        };
        let _: fsp::Empty = self.call(fsp::CREATE_DIRECTORY, &params).await?;
        Ok(())
    }

    async fn metadata(&self, path: &str) -> Result<Metadata, EnvError> {
        self.call(fsp::GET_METADATA, &json!({"path": path})).await
    }

    async fn read_directory(&self, path: &str) -> Result<Vec<DirectoryEntry>, EnvError> {
        let result: fsp::ReadDirectoryResult = self
            .call(fsp::READ_DIRECTORY, &json!({"path": path}))
            .await?;
        Ok(result.entries)
    }

    async fn remove(&self, path: &str, recursive: bool, force: bool) -> Result<(), EnvError> {
        let params = fsp::RemoveParams {
            path: path.to_string(),
            recursive: Some(recursive),
            force: Some(force),
        };
        let _: fsp::Empty = self.call(fsp::REMOVE, &params).await?;
        Ok(())
    }

    async fn copy(&self, source: &str, destination: &str, recursive: bool) -> Result<(), EnvError> {
        let params = fsp::CopyParams {
            source_path: source.to_string(),
            destination_path: destination.to_string(),
            recursive: Some(recursive),
        };
        let _: fsp::Empty = self.call(fsp::COPY, &params).await?;
        Ok(())
    }

    async fn open_read(
        &self,
        path: &str,
        format: TransferFormat,
    ) -> Result<Box<dyn ByteSource>, EnvError> {
        if !self.client.file_transfers() {
            return Err(EnvError::Unsupported(format!(
                "cannot stream {path}: the server has no fs/download on this connection"
            )));
        }
        crate::transfers::open_download(&self.client, path, format).await
    }

    async fn open_write(
        &self,
        path: &str,
        options: WriteOptions,
    ) -> Result<Box<dyn ByteSink>, EnvError> {
        if !self.client.file_transfers() {
            return Err(EnvError::Unsupported(format!(
                "cannot stream to {path}: the server has no fs/upload on this connection"
            )));
        }
        crate::transfers::open_upload(&self.client, path, options.format, options.preserve).await
    }

    async fn rename(&self, source: &str, destination: &str) -> Result<(), EnvError> {
        let params = fsp::RenameParams {
            source_path: source.to_string(),
            destination_path: destination.to_string(),
        };
        let _: fsp::Empty = self.call(fsp::RENAME, &params).await?;
        Ok(())
    }

    async fn walk(&self, params: WalkParams) -> Result<WalkOutcome, EnvError> {
        self.call(cfs::WALK, &params).await
    }

    async fn watch(&self, path: &str, recursive: bool) -> Result<FileWatch, EnvError> {
        let id = format!("watch-{}", self.client.write_id());
        let queue = self.client.register_watch(&id, path)?;
        let params = fw::WatchParams {
            watch_id: id.clone(),
            path: path.to_string(),
            recursive,
        };
        let set: Result<fw::WatchResult, EnvError> = self.call(fw::WATCH, &params).await;
        if let Err(err) = set {
            self.client.unregister_watch(&id);
            return Err(err);
        }
        let stop = RemoteUnwatch {
            client: self.client.downgrade(),
            id: id.clone(),
        };
        Ok(FileWatch::new(id, queue, stop))
    }
}

/// Ends a remote watch when its [`FileWatch`] is dropped: no more changes
/// are routed, and the server is told (`fs/unwatch`) from a task.
struct RemoteUnwatch {
    client: WeakClient,
    id: String,
}

impl Drop for RemoteUnwatch {
    fn drop(&mut self) {
        let Some(client) = self.client.upgrade() else {
            return;
        };
        client.unregister_watch(&self.id);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let params = fw::UnwatchParams {
            watch_id: std::mem::take(&mut self.id),
        };
        runtime.spawn(async move {
            let unwatched: Result<fw::UnwatchResult, _> = client.call(fw::UNWATCH, &params).await;
            if let Err(err) = unwatched {
                tracing::debug!(%err, "fs/unwatch failed");
            }
        });
    }
}
