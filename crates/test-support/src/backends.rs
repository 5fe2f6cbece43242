//! The two environment backends the client suites run every test against:
//! this machine ([`Backend::Local`]) and a real server over a loopback
//! socket ([`Backend::Remote`]); [`both_backends!`] instantiates a test body
//! once for each. Also the typed `StartParams` most of those tests start
//! from, writing to a started process, and collecting its events to its
//! end, bounded.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use execd_client::{Environment, ExecServerClient, RemoteEnvironment};
use execd_environment::{collect, Collected, EventReceiver, StartedProcess};
use execd_local::LocalEnvironment;
use execd_policy::decision::ExecGate;
use execd_protocol::process::{StartParams, WriteStatus};
use execd_server::{ServerConfig, WsServer};

use crate::server::{fast_table, start_server_with};
use crate::RUN_TIMEOUT;

/// Where a test's processes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    Remote,
}

/// Keeps a test's backend alive; [`BackendGuard::finish`] ends it.
pub struct BackendGuard {
    remote: Option<(WsServer, ExecServerClient)>,
}

impl Backend {
    /// An environment of this kind, with [`fast_table`]'s grace period.
    pub async fn start(self) -> (Environment, BackendGuard) {
        self.start_gated(None).await
    }

    /// Like [`Backend::start`], with `gate` deciding `ask` verdicts and
    /// receiving every exec decision.
    pub async fn start_with_gate(self, gate: Arc<dyn ExecGate>) -> (Environment, BackendGuard) {
        self.start_gated(Some(gate)).await
    }

    async fn start_gated(self, gate: Option<Arc<dyn ExecGate>>) -> (Environment, BackendGuard) {
        match self {
            Backend::Local => {
                let local = match gate {
                    Some(gate) => LocalEnvironment::with_gate(fast_table(), gate),
                    None => LocalEnvironment::new(fast_table()),
                };
                (local.into_environment(), BackendGuard { remote: None })
            }
            Backend::Remote => {
                let server = start_server_with(ServerConfig::default()).await;
                let client = ExecServerClient::connect(&server.url())
                    .await
                    .expect("connect");
                if let Some(gate) = gate {
                    client.set_exec_gate(gate);
                }
                let env = RemoteEnvironment::new(client.clone()).into_environment();
                let guard = BackendGuard {
                    remote: Some((server, client)),
                };
                (env, guard)
            }
        }
    }

    /// Run `test` with a fresh environment of this kind, then end it.
    pub async fn run<F, Fut>(self, test: F)
    where
        F: FnOnce(Environment) -> Fut,
        Fut: Future<Output = ()>,
    {
        let (env, guard) = self.start().await;
        test(env).await;
        guard.finish().await;
    }
}

impl BackendGuard {
    /// The server of a remote backend.
    pub fn server(&self) -> Option<&WsServer> {
        self.remote.as_ref().map(|(server, _)| server)
    }

    /// Drop this guard's connection and shut the server down (which ends
    /// every process it still runs).
    pub async fn finish(self) {
        if let Some((server, client)) = self.remote {
            drop(client);
            server.shutdown().await;
        }
    }
}

/// Instantiate test bodies for both backends: `mod local` and `mod remote`
/// each get one test per name, carrying the given test attribute, that
/// calls `RUNNER(Backend::Local or Remote, super::NAME)`. The runner (named
/// as in the calling file, e.g. [`Backend::run`] or a function of that
/// file) starts the backend, runs the body and ends the backend.
///
/// ```ignore
/// both_backends!(#[tokio::test] Backend::run: echo_works, cat_works);
/// ```
#[macro_export]
macro_rules! both_backends {
    (@one $module:ident $backend:ident #[$attr:meta] $runner:path: $($test:ident),*) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[$attr]
                async fn $test() {
                    $runner($crate::Backend::$backend, super::$test).await;
                }
            )*
        }
    };
    (#[$attr:meta] $runner:path: $($test:ident),* $(,)?) => {
        $crate::both_backends!(@one local Local #[$attr] $runner: $($test),*);
        $crate::both_backends!(@one remote Remote #[$attr] $runner: $($test),*);
    };
}

/// Typed start params for a pipe process in `/tmp`, with the usual `PATH`
/// and `LANG=C`; no terminal, stdin, policy or sandbox.
pub fn process_params(id: &str, argv: &[&str]) -> StartParams {
    let mut params = StartParams::new(argv.iter().copied());
    params.process_id = id.into();
    params.cwd = "/tmp".into();
    params.env = HashMap::from([
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("LANG".into(), "C".into()),
    ]);
    params
}

/// Collect a process's events until it closed, bounded by [`RUN_TIMEOUT`];
/// panics on an event error.
pub async fn collect_in_time(events: &mut EventReceiver) -> Collected {
    tokio::time::timeout(RUN_TIMEOUT, collect(events))
        .await
        .expect("closed in time")
        .expect("no event error")
}

/// Write `data` to a started process's stdin; the status.
pub async fn write_stdin(started: &StartedProcess, data: &'static [u8]) -> WriteStatus {
    started
        .process
        .write(Bytes::from_static(data))
        .await
        .expect("write to stdin")
}
