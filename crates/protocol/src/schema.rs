//! The JSON Schema of the whole protocol, generated from the wire types
//! (`schemars`): every method's params and result, every notification (both
//! directions), the server→client `exec/approve` request, the error object
//! and the frame envelope. execd's additions over the baseline
//! (`../shared/protocol.md`) are marked `"x-execd-extension": true`, on
//! fields and on whole methods; the codex dialect's methods also carry
//! `"x-execd-dialect": "codex"`. The committed copy is
//! `schema/execd-protocol.json` (a test keeps it equal to [`document`]).
//!
//! Layout: draft 2020-12; the root validates any frame (`$defs/Frame`);
//! `methods` maps each request method to `{direction, params, result}`,
//! `notifications` each notification to `{direction, params}`, and `error`
//! is the error object; all refer into `$defs`.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::codex::fs as cfs;
use crate::codex::http;
use crate::codex::network as cnet;
use crate::{codex, envelope, fs, fs_watch, network, policy, process, transfer};

/// The schema's `$id`.
pub const SCHEMA_ID: &str = "urn:execd:protocol:1";

/// Who sends a method or notification.
#[derive(Clone, Copy)]
enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::ClientToServer => "clientToServer",
            Direction::ServerToClient => "serverToClient",
        }
    }
}

/// Where a method comes from.
#[derive(Clone, Copy, PartialEq)]
enum Origin {
    /// In `../shared/protocol.md`.
    Baseline,
    /// execd's own addition (docs/PROTOCOL.md).
    Execd,
    /// Today's codex dialect, served by execd (docs/PROTOCOL.md).
    Codex,
}

struct Builder {
    generator: SchemaGenerator,
    methods: Map<String, Value>,
    notifications: Map<String, Value>,
}

impl Builder {
    fn schema<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }

    fn entry(direction: Direction, origin: Origin, description: &str) -> Map<String, Value> {
        let mut entry = Map::new();
        entry.insert("direction".into(), json!(direction.name()));
        entry.insert("description".into(), json!(description));
        if origin != Origin::Baseline {
            entry.insert("x-execd-extension".into(), json!(true));
        }
        if origin == Origin::Codex {
            entry.insert("x-execd-dialect".into(), json!("codex"));
        }
        entry
    }

    fn method<P: JsonSchema, R: JsonSchema>(
        &mut self,
        name: &str,
        direction: Direction,
        origin: Origin,
        description: &str,
    ) {
        let params = self.schema::<P>();
        self.method_with(name, direction, origin, description, params);
        let result = self.schema::<R>();
        if let Some(Value::Object(entry)) = self.methods.get_mut(name) {
            entry.insert("result".into(), result);
        }
    }

    fn method_with(
        &mut self,
        name: &str,
        direction: Direction,
        origin: Origin,
        description: &str,
        params: Value,
    ) {
        let mut entry = Self::entry(direction, origin, description);
        entry.insert("params".into(), params);
        self.methods.insert(name.into(), Value::Object(entry));
    }

    fn notification<P: JsonSchema>(
        &mut self,
        name: &str,
        direction: Direction,
        origin: Origin,
        description: &str,
    ) {
        let mut entry = Self::entry(direction, origin, description);
        entry.insert("params".into(), self.schema::<P>());
        self.notifications.insert(name.into(), Value::Object(entry));
    }
}

/// Any params object (methods that take whatever they are sent).
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct AnyParams(Map<String, Value>);

/// The whole document.
pub fn document() -> Value {
    use Direction::{ClientToServer as C2S, ServerToClient as S2C};
    use Origin::{Baseline, Codex, Execd};
    let mut b = Builder {
        generator: SchemaSettings::draft2020_12().into_generator(),
        methods: Map::new(),
        notifications: Map::new(),
    };
    b.method::<envelope::InitializeParams, envelope::InitializeResult>(
        "initialize",
        C2S,
        Baseline,
        "First call of a connection; opens the session.",
    );
    // `process/start` params: execd's fields and the codex dialect's, one object.
    let start =
        json!({"allOf": [b.schema::<process::StartParams>(), b.schema::<codex::StartExtras>()]});
    b.method_with(
        process::START,
        C2S,
        Baseline,
        "Start a process; output may arrive before the result.",
        start,
    );
    let start_result = b.schema::<process::StartResult>();
    if let Some(Value::Object(entry)) = b.methods.get_mut(process::START) {
        entry.insert("result".into(), start_result);
    }
    b.method::<process::ReadParams, process::ReadResult>(
        process::READ,
        C2S,
        Baseline,
        "Retained output after a seq; long-polls with waitMs.",
    );
    b.method::<process::WriteParams, process::WriteResult>(
        process::WRITE,
        C2S,
        Baseline,
        "Write to a process's stdin.",
    );
    b.method::<process::TerminateParams, process::TerminateResult>(
        process::TERMINATE,
        C2S,
        Baseline,
        "SIGTERM the process group, SIGKILL after the grace period.",
    );
    b.method::<process::ResizeParams, fs::Empty>(
        process::RESIZE,
        C2S,
        Execd,
        "Resize a PTY process's terminal.",
    );
    b.method::<process::SignalParams, process::SignalResult>(
        process::SIGNAL,
        C2S,
        Execd,
        "Send a signal by name to the process group.",
    );
    b.method::<process::AckParams, fs::Empty>(
        process::ACK,
        C2S,
        Execd,
        "The client consumed the process's events up to a seq (flow control).",
    );
    b.method::<process::ListParams, process::ListResult>(
        process::LIST,
        C2S,
        Execd,
        "The session's processes and where each is in its life.",
    );
    b.method::<fs::ReadFileParams, fs::ReadFileResult>(
        fs::READ_FILE,
        C2S,
        Baseline,
        "Read a regular file (or a range).",
    );
    b.method::<fs::WriteFileParams, fs::Empty>(
        fs::WRITE_FILE,
        C2S,
        Baseline,
        "Replace (or append to) a regular file.",
    );
    b.method::<fs::CreateDirectoryParams, fs::Empty>(
        fs::CREATE_DIRECTORY,
        C2S,
        Baseline,
        "Create a directory.",
    );
    b.method::<fs::PathParams, fs::Metadata>(fs::GET_METADATA, C2S, Baseline, "What a path is.");
    b.method::<fs::PathParams, fs::ReadDirectoryResult>(
        fs::READ_DIRECTORY,
        C2S,
        Baseline,
        "A directory's entries.",
    );
    b.method::<fs::RemoveParams, fs::Empty>(fs::REMOVE, C2S, Baseline, "Remove a file or tree.");
    b.method::<fs::CopyParams, fs::Empty>(
        fs::COPY,
        C2S,
        Baseline,
        "Copy a file or tree on the server.",
    );
    b.method::<fs::SetMetadataParams, fs::Empty>(
        fs::SET_METADATA,
        C2S,
        Execd,
        "Set a path's permission bits and times.",
    );
    b.method::<fs::RenameParams, fs::Empty>(
        fs::RENAME,
        C2S,
        Execd,
        "Move a path atomically (rename(2)), on one filesystem.",
    );
    b.method::<fs_watch::WatchParams, fs_watch::WatchResult>(
        fs_watch::WATCH,
        C2S,
        Execd,
        "Watch a path (recursive optional); changes come as fs/changed.",
    );
    b.method::<fs_watch::UnwatchParams, fs_watch::UnwatchResult>(
        fs_watch::UNWATCH,
        C2S,
        Execd,
        "Stop a watch of fs/watch.",
    );

    b.method::<transfer::UploadParams, transfer::TransferStarted>(
        transfer::UPLOAD,
        C2S,
        Execd,
        "Open an upload stream: a file or a tree (tar), sent as binary pieces.",
    );
    b.method::<transfer::UploadFinishParams, transfer::UploadFinished>(
        transfer::UPLOAD_FINISH,
        C2S,
        Execd,
        "Put an upload in place under its name once every piece is written.",
    );
    b.method::<transfer::DownloadParams, transfer::TransferStarted>(
        transfer::DOWNLOAD,
        C2S,
        Execd,
        "Open a download stream: a file or a tree (tar), received as binary pieces.",
    );
    b.method::<transfer::TransferCancel, fs::Empty>(
        transfer::TRANSFER_CANCEL,
        C2S,
        Execd,
        "End an upload (nothing is put in place) or a download early.",
    );
    b.method::<AnyParams, codex::EnvironmentInfo>(
        codex::ENVIRONMENT_INFO,
        C2S,
        Codex,
        "This environment as codex describes one.",
    );
    b.method::<AnyParams, codex::EnvironmentStatus>(
        codex::ENVIRONMENT_STATUS,
        C2S,
        Codex,
        "Whether the environment is ready.",
    );
    b.method::<codex::EnvironmentConfigReadParams, codex::EnvironmentConfigReadResult>(
        codex::ENVIRONMENT_CONFIG_READ,
        C2S,
        Codex,
        "codex configuration layers (execd keeps none).",
    );
    b.method::<cfs::OpenParams, cfs::OpenResult>(
        cfs::OPEN,
        C2S,
        Codex,
        "Open a file for block reads.",
    );
    b.method::<cfs::ReadBlockParams, cfs::ReadBlockResult>(
        cfs::READ_BLOCK,
        C2S,
        Codex,
        "Read a block of an open file.",
    );
    b.method::<cfs::CloseParams, fs::Empty>(cfs::CLOSE, C2S, Codex, "Close a file handle.");
    b.method::<cfs::CanonicalizeParams, cfs::CanonicalizeResult>(
        cfs::CANONICALIZE,
        C2S,
        Codex,
        "Resolve symlinks, `.` and `..`.",
    );
    b.method::<cfs::WalkParams, cfs::WalkOutcome>(
        cfs::WALK,
        C2S,
        Codex,
        "Walk a directory tree, bounded.",
    );
    b.method::<cfs::WatchMissingParams, cfs::WatchMissingResult>(
        cfs::WATCH_MISSING,
        C2S,
        Codex,
        "Watch until a missing path appears (or a present one goes).",
    );
    b.method::<http::HttpRequestParams, http::HttpRequestResult>(
        http::HTTP_REQUEST,
        C2S,
        Codex,
        "Make an HTTP request from the server's side.",
    );
    b.method::<policy::ApproveParams, policy::ApproveResult>(
        policy::APPROVE,
        S2C,
        Execd,
        "May this exec run? Asked for every `ask` of an exec policy.",
    );
    b.method::<network::NetworkApproveParams, network::NetworkApproveResult>(
        network::APPROVE,
        S2C,
        Execd,
        "May the tree connect to this host and port? Asked for every `ask` of a network policy.",
    );
    b.method::<cnet::PolicyRequestParams, cnet::PolicyRequestResult>(
        cnet::POLICY_REQUEST,
        S2C,
        Codex,
        "May the tree connect to this host and port? (codex's networkProxy)",
    );
    b.notification::<fs::Empty>(
        "initialized",
        C2S,
        Baseline,
        "The client is ready (after initialize).",
    );
    b.notification::<transfer::TransferAck>(
        transfer::TRANSFER_ACK,
        C2S,
        Execd,
        "Download pieces up to seq consumed (the server sends the same for uploads).",
    );
    b.notification::<transfer::TransferEnd>(
        transfer::TRANSFER_END,
        S2C,
        Execd,
        "A download's last piece was sent, or it failed.",
    );
    b.notification::<process::OutputNotification>(
        process::OUTPUT,
        S2C,
        Baseline,
        "A chunk of a process's output (binary frames carry it instead when negotiated).",
    );
    b.notification::<process::ExitedNotification>(
        process::EXITED,
        S2C,
        Baseline,
        "A process exited.",
    );
    b.notification::<process::ClosedNotification>(
        process::CLOSED,
        S2C,
        Baseline,
        "A process's last event.",
    );
    b.notification::<policy::DecisionParams>(
        policy::DECISION,
        S2C,
        Execd,
        "What was decided for an exec, and by whom.",
    );
    b.notification::<fs_watch::ChangedNotification>(
        fs_watch::CHANGED,
        S2C,
        Execd,
        "A batch of changes below a path watched with fs/watch.",
    );

    b.notification::<network::NetworkDecisionParams>(
        network::DECISION,
        S2C,
        Execd,
        "What the tree's proxy decided for a connection, and by whom.",
    );
    b.notification::<cnet::PolicyDecisionParams>(
        cnet::POLICY_DECISION,
        S2C,
        Codex,
        "What the tree's proxy decided for a connection (codex's networkProxy).",
    );
    b.notification::<cfs::MissingChangedNotification>(
        cfs::MISSING_CHANGED,
        S2C,
        Codex,
        "A watch of fs/watchMissing fired.",
    );
    b.notification::<http::HttpBodyDelta>(
        http::HTTP_BODY_DELTA,
        S2C,
        Codex,
        "A piece of a streamed http/request body.",
    );
    let error = b.schema::<envelope::RpcError>();
    let mut defs = b.generator.take_definitions(true);
    defs.insert("Frame".into(), frame_schema());
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "execd JSON-RPC protocol",
        "description": "Every frame of execd's WebSocket/stdio JSON-RPC protocol. The root validates a frame's envelope; `methods` and `notifications` give each method's params and result by name; `error` is the error object. Fields and methods that execd adds to the baseline protocol carry \"x-execd-extension\": true. Generated from crates/protocol (schemars); do not edit by hand.",
        "$ref": "#/$defs/Frame",
        "methods": b.methods,
        "notifications": b.notifications,
        "error": error,
        "$defs": defs,
    })
}

/// The envelope: a request, a notification or a response.
fn frame_schema() -> Value {
    let id = json!({"type": ["integer", "string"]});
    json!({
        "description": "One JSON-RPC message (the \"jsonrpc\" member is optional).",
        "anyOf": [
            {
                "title": "Request",
                "type": "object",
                "required": ["id", "method"],
                "properties": {"id": id, "method": {"type": "string"}, "params": {"type": "object"}, "jsonrpc": {"const": "2.0"}}
            },
            {
                "title": "Notification",
                "type": "object",
                "required": ["method"],
                "not": {"required": ["id"]},
                "properties": {"method": {"type": "string"}, "params": {"type": "object"}, "jsonrpc": {"const": "2.0"}}
            },
            {
                "title": "Response",
                "type": "object",
                "required": ["id", "result"],
                "not": {"required": ["error"]},
                "properties": {"id": id, "result": true, "jsonrpc": {"const": "2.0"}}
            },
            {
                "title": "Error response",
                "description": "id is -1 when the frame could not be read, null when a request's id could not be answered.",
                "type": "object",
                "required": ["id", "error"],
                "properties": {"id": {"type": ["integer", "string", "null"]}, "error": {"$ref": "#/$defs/RpcError"}, "jsonrpc": {"const": "2.0"}}
            }
        ]
    })
}
