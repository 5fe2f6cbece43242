//! `initialize`: the handshake that opens a session; it answers with the
//! session id and what this server can do (exec policy, sandbox features,
//! binary output frames when the transport carries them). A resumed
//! session (taken over by the connection before this runs, see
//! [`crate::connection`]) answers with its own id and `resumed: true`.

use execd_protocol::envelope::{Capabilities, InitializeParams, InitializeResult};
use serde_json::value::RawValue;
use tracing::debug;

use crate::methods::{ok, RpcResult};
use crate::rpc::parse_params;
use crate::session::Session;

pub const INITIALIZE: &str = "initialize";
pub const INITIALIZED: &str = "initialized";

pub fn initialize(session: &mut Session, params: &RawValue) -> RpcResult {
    let params: InitializeParams = parse_params(INITIALIZE, params)?;
    debug!(session = %session.id(), client = %params.client_name, "initialize");
    session.initialized = true;
    let binary_output = params.binary_output && session.binary_frames;
    session.events.use_binary_output(binary_output);
    let resumed = params.resume_session_id.as_deref() == Some(session.id());
    ok(InitializeResult {
        session_id: session.id().to_string(),
        server_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        capabilities: Some(Capabilities {
            exec_policy: execd_policy::exec_guard::supported(),
            sandbox: execd_policy::sandbox::features(),
            binary_output,
            file_transfers: session.binary_frames,
        }),
        environment_info: Some(crate::methods::environment::info()),
        resumed,
        account: Some(crate::methods::environment::account()),
    })
}
