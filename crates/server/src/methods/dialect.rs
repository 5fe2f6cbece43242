//! Today's codex dialect, told apart per request (no flag): a path or `cwd`
//! sent as a `file://` URI is decoded to a native path before the seed
//! handlers see it, and replies to such a request use that dialect's
//! result fields. Also here, for both generations: `envPolicy` on
//! `process/start` (the child's environment built from the server's own),
//! and which `sandbox` shape a request carries: execd's
//! (`writableRoots`/`network`/`readOnly`) or codex's (an object with
//! `permissions`), which is mapped onto execd's or refused by name.

use std::path::Path;

use execd_local::codex_sandbox::{self, CodexSandboxError};
use execd_local::env_policy;
use execd_protocol::codex::permissions::SandboxContext;
use execd_protocol::codex::{SandboxType, StartExtras};
use execd_protocol::path_uri::{self, PathForm};
use execd_protocol::process::{self as pp, StartParams, StartResult};
use execd_protocol::sandbox::SandboxSpec;
use execd_protocol::{ErrorCode, RpcError};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::codex_network;
use crate::methods::{ok, RpcResult};
use crate::rpc::parse_params;

fn invalid(method: &str, message: impl std::fmt::Display) -> RpcError {
    RpcError::new(
        ErrorCode::InvalidParams,
        format!("invalid params for {method}: {message}"),
    )
}

/// `value` (a path param named `field`) as a native path, and its form.
pub fn native_path(method: &str, field: &str, value: &str) -> Result<(String, PathForm), RpcError> {
    path_uri::to_native(value).map_err(|err| invalid(method, format!("{field}: {err}")))
}

/// A native path in the form the request used.
pub fn reply_path(path: &Path, form: PathForm) -> String {
    path_uri::in_form(path, form)
}

#[derive(Deserialize)]
struct Sandboxed {
    sandbox: SandboxContext,
}

/// codex's sandbox `value` as execd's (`None`: unconfined), or an error
/// naming what execd cannot enforce. `cwd` resolves `project_roots` when
/// the context names no roots.
fn codex_sandbox(method: &str, value: Value, cwd: &Path) -> Result<Option<SandboxSpec>, RpcError> {
    let Sandboxed { sandbox } = reparse(method, &serde_json::json!({ "sandbox": value }))?;
    codex_sandbox::to_spec(&sandbox, cwd).map_err(|err: CodexSandboxError| invalid(method, err))
}

/// Decode `value` as `method`'s params (errors name the field, as for a
/// frame's params).
fn reparse<T: DeserializeOwned>(method: &str, value: &Value) -> Result<T, RpcError> {
    // Straight from the tree; through text only to name a bad field.
    if let Ok(parsed) = T::deserialize(value) {
        return Ok(parsed);
    }
    let raw = serde_json::value::to_raw_value(value)
        .map_err(|err| RpcError::new(ErrorCode::Internal, err.to_string()))?;
    parse_params(method, &raw)
}

/// The `sandbox` a seed `fs/*` request may carry (codex's shape).
#[derive(Deserialize)]
struct FsSandbox {
    #[serde(default)]
    sandbox: Option<Value>,
}

/// How a seed `fs/*` request's paths are taken: each may be a native path
/// or a `file://` URI, and when the request carries codex's `sandbox` (it
/// must map onto execd's), the paths it writes must be writable under it.
pub struct FsPaths {
    method: &'static str,
    sandbox: Option<SandboxSpec>,
}

impl FsPaths {
    /// The request's `sandbox`, read from its params.
    pub fn of(method: &'static str, params: &RawValue) -> Result<FsPaths, RpcError> {
        let FsSandbox { sandbox } = parse_params(method, params)?;
        FsPaths::with_sandbox(method, sandbox)
    }

    /// With the request's `sandbox` decoded already.
    pub fn with_sandbox(method: &'static str, sandbox: Option<Value>) -> Result<FsPaths, RpcError> {
        let sandbox = match sandbox.filter(|v| !v.is_null()) {
            None => None,
            Some(value) => codex_sandbox(method, value, Path::new("/"))?,
        };
        Ok(FsPaths { method, sandbox })
    }

    /// A path the request reads (param `field`), as a native path.
    pub fn read(&self, field: &str, value: &str) -> Result<String, RpcError> {
        native_path(self.method, field, value).map(|(path, _)| path)
    }

    /// A path the request writes (param `field`), as a native path.
    pub fn write(&self, field: &str, value: &str) -> Result<String, RpcError> {
        let path = self.read(field, value)?;
        match &self.sandbox {
            Some(spec) if !codex_sandbox::allows_write(spec, Path::new(&path)) => Err(invalid(
                self.method,
                format!(
                    "{field}: {path} is not writable under the request's sandbox (writable roots: {:?})",
                    spec.writable_roots
                ),
            )),
            _ => Ok(path),
        }
    }
}

/// A read-only codex call's `sandbox`: it must map onto execd's (reading is
/// then allowed everywhere).
pub fn check_read_sandbox(method: &str, sandbox: Option<Value>) -> Result<(), RpcError> {
    match sandbox.filter(|v| !v.is_null()) {
        None => Ok(()),
        Some(value) => codex_sandbox(method, value, Path::new("/")).map(drop),
    }
}

/// What the reply to a `process/start` depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartDialect {
    /// How `cwd` was sent.
    pub form: PathForm,
    /// The process runs in a sandbox.
    pub sandboxed: bool,
}

/// Decode a `process/start` of either generation into execd's params:
/// `cwd` as a native path, codex's `sandbox` mapped onto execd's,
/// `networkProxy` served as a network policy (other `enforceManagedNetwork`
/// forms refused), and `env`
/// replaced by the environment `envPolicy` builds (when sent).
pub fn start_params(raw: &RawValue) -> Result<(StartParams, StartDialect), RpcError> {
    let method = pp::START;
    let mut extras: StartExtras = parse_params(method, raw)?;
    let codex_shape =
        matches!(&extras.sandbox, Some(Value::Object(s)) if s.contains_key("permissions"));
    // Straight from the text, unless codex's sandbox must first be taken
    // out (it is not execd's shape).
    let (mut start, codex_sandbox_value): (StartParams, _) = if codex_shape {
        let mut params: Value = parse_params(method, raw)?;
        if let Value::Object(map) = &mut params {
            map.remove("sandbox");
        }
        (reparse(method, &params)?, extras.sandbox.take())
    } else {
        (parse_params(method, raw)?, None)
    };
    let (native, form) = native_path(method, "cwd", &start.cwd)?;
    start.cwd = native;
    match (&extras.network_proxy, &extras.managed_network) {
        (Some(launch), None) => {
            let policy = codex_network::policy(launch).map_err(|err| invalid(method, err))?;
            start.network_policy = Some(policy);
        }
        // Facts about a proxy the client runs elsewhere, or enforcement
        // with nothing to enforce it by: execd cannot route to either.
        _ if extras.enforce_managed_network || extras.network_proxy.is_some() => {
            return Err(invalid(
                method,
                codex_sandbox::CodexSandboxError::ManagedNetwork,
            ));
        }
        _ => {}
    }
    if let Some(value) = codex_sandbox_value {
        start.sandbox = codex_sandbox(method, value, Path::new(&start.cwd))?;
    }
    if extras.network_proxy.is_some() {
        // The proxy is the tree's only way out: its own network namespace,
        // whatever the profile said of the network; the filesystem stays
        // as the profile had it (unconfined without one).
        let mut sandbox = start.sandbox.take().unwrap_or(SandboxSpec {
            writable_roots: Vec::new(),
            network: false,
            read_only: false,
        });
        sandbox.network = false;
        start.sandbox = Some(sandbox);
    }
    if let Some(policy) = &extras.env_policy {
        start.env = env_policy::child_env(Some(policy), &start.env);
    }
    let sandboxed = start.sandbox.is_some();
    Ok((start, StartDialect { form, sandboxed }))
}

/// The `process/start` result; in today's dialect with `sandboxType`.
pub fn start_result(process_id: String, dialect: StartDialect) -> RpcResult {
    let sandbox_type = (dialect.form == PathForm::FileUri).then_some(if dialect.sandboxed {
        SandboxType::LinuxSeccomp
    } else {
        SandboxType::None
    });
    ok(StartResult {
        process_id,
        sandbox_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use execd_protocol::fs as fsp;

    fn start(extra: Value) -> Result<(StartParams, StartDialect), RpcError> {
        let mut params = serde_json::json!({
            "processId": "p", "argv": ["true"], "cwd": "file:///tmp", "env": {"A": "1"}
        });
        if let (Value::Object(p), Value::Object(e)) = (&mut params, extra) {
            p.extend(e);
        }
        start_params(&serde_json::value::to_raw_value(&params).expect("raw params"))
    }

    #[test]
    fn uri_cwd_is_decoded_and_remembered() {
        let (params, dialect) = start(serde_json::json!({})).expect("start");
        assert_eq!(params.cwd, "/tmp");
        assert_eq!(params.env.len(), 1);
        assert_eq!(dialect.form, PathForm::FileUri);
        let result = start_result("p".into(), dialect).expect("result");
        assert_eq!(
            result,
            serde_json::json!({"processId": "p", "sandboxType": "none"})
        );
        let err = start(serde_json::json!({"cwd": "ftp:///tmp"})).unwrap_err();
        assert_eq!(err.code, -32602);
        assert!(
            err.message.contains("cwd") && err.message.contains("ftp:///tmp"),
            "{}",
            err.message
        );
    }

    #[test]
    fn both_sandbox_shapes_are_told_apart() {
        let (execd, _) = start(serde_json::json!({"sandbox": {"network": true}})).expect("execd's");
        assert_eq!(
            execd.sandbox.map(|s| (s.network, s.read_only)),
            Some((true, true))
        );
        let codex = serde_json::json!({"sandbox": {"permissions": {"type": "managed", "network": "restricted",
            "file_system": {"type": "restricted", "entries": [
                {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"}]}}}});
        let (params, dialect) = start(codex).expect("codex's");
        assert_eq!(params.sandbox, Some(SandboxSpec::default()));
        assert!(dialect.sandboxed);
        let external = serde_json::json!({"sandbox": {"permissions": {"type": "external"}}});
        let err = start(external).unwrap_err();
        assert!(err.message.contains("external"), "{}", err.message);
        let err =
            start(serde_json::json!({"sandbox": {"permissions": {"type": "bogus"}}})).unwrap_err();
        assert!(
            err.message.contains("sandbox.permissions"),
            "{}",
            err.message
        );
    }

    #[test]
    fn managed_network_is_refused_and_env_policy_applies() {
        let err = start(serde_json::json!({"enforceManagedNetwork": true})).unwrap_err();
        assert!(
            err.message.contains("enforceManagedNetwork"),
            "{}",
            err.message
        );
        let (params, _) =
            start(serde_json::json!({"envPolicy": {"inherit": "core"}})).expect("policy");
        assert_eq!(params.env["A"], "1");
        assert!(params.env.contains_key("PATH"));
    }

    #[test]
    fn fs_paths_and_write_checks() {
        let raw = |value: Value| serde_json::value::to_raw_value(&value).expect("raw");
        let copy = FsPaths::of(
            fsp::COPY,
            &raw(serde_json::json!({
                "sourcePath": "file:///a%20b", "destinationPath": "/c", "recursive": false
            })),
        )
        .expect("copy");
        assert_eq!(
            copy.read("sourcePath", "file:///a%20b").expect("uri"),
            "/a b"
        );
        assert_eq!(copy.write("destinationPath", "/c").expect("plain"), "/c");
        let read_only = serde_json::json!({"permissions": {"type": "managed", "network": "restricted",
            "file_system": {"type": "restricted", "entries": [
                {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"}]}}});
        let write = FsPaths::of(
            fsp::WRITE_FILE,
            &raw(serde_json::json!({
                "path": "file:///etc/x", "dataBase64": "", "sandbox": read_only.clone()
            })),
        )
        .expect("a sandbox execd enforces");
        let err = write.write("path", "file:///etc/x").unwrap_err();
        assert!(
            err.message.contains("/etc/x") && err.message.contains("not writable"),
            "{}",
            err.message
        );
        let read = FsPaths::with_sandbox(fsp::READ_FILE, Some(read_only)).expect("read");
        assert_eq!(
            read.read("path", "file:///etc/x")
                .expect("reads are allowed"),
            "/etc/x"
        );
        let err = FsPaths::of(
            fsp::READ_FILE,
            &raw(serde_json::json!({"path": "/x", "sandbox": {"permissions": {"type": "bogus"}}})),
        )
        .err()
        .expect("a sandbox execd does not know");
        assert!(
            err.message.contains("sandbox.permissions"),
            "{}",
            err.message
        );
    }
}
