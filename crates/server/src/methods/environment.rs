//! `environment/info` (also sent as `environmentInfo` in the `initialize`
//! result), `environment/status` and `environmentConfig/read`, the codex dialect's questions about
//! the environment itself. execd answers with this machine's shell, working
//! directory, home and temporary directory, and the codex features it
//! serves (`fsWatchMissing`, `environmentConfigRead`; every other flag is
//! false, so the client does not call what execd lacks). execd keeps no
//! codex configuration of its own, so `environmentConfig/read` answers with
//! empty layer stacks (what codex's own server answers on a machine with
//! no codex config files). It also owns the server's `account` (the
//! `initialize` extension `execd run` builds the remote environment from).

use std::path::{Path, PathBuf};

use execd_protocol::codex::{
    self, ConfigLayers, EnvironmentCapabilities, EnvironmentConfigReadParams,
    EnvironmentConfigReadResult, EnvironmentInfo, ShellInfo,
};
use execd_protocol::envelope::Account;
use execd_protocol::path_uri;
use execd_protocol::RpcError;
use serde_json::value::RawValue;

use crate::methods::dialect::native_path;
use crate::methods::{ok, RpcResult};
use crate::rpc::parse_params;

fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// The login shell: `$SHELL` when it is an absolute path that exists, else
/// the first of bash and sh found.
fn shell() -> ShellInfo {
    let path = env_dir("SHELL")
        .filter(|p| p.exists())
        .or_else(|| {
            ["/bin/bash", "/usr/bin/bash", "/bin/sh"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| PathBuf::from("/bin/sh"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sh".to_string());
    ShellInfo {
        name,
        path: path.display().to_string(),
    }
}

fn uri(path: &Path) -> String {
    path_uri::to_uri(path)
}

/// This machine as codex's `EnvironmentInfo`.
pub fn info() -> EnvironmentInfo {
    EnvironmentInfo {
        shell: shell(),
        cwd: std::env::current_dir().ok().map(|p| uri(&p)),
        user_home_dir: env_dir("HOME").map(|p| uri(&p)),
        platform_os: std::env::consts::OS.to_string(),
        temp_dir: Some(uri(
            &env_dir("TMPDIR").unwrap_or_else(|| PathBuf::from("/tmp"))
        )),
        prepend_path_dirs: Vec::new(),
        temporary_directories: Vec::new(),
        capabilities: EnvironmentCapabilities {
            fs_watch_missing: true,
            environment_config_read: true,
            // `networkProxy` is served where a tree can get a network
            // namespace of its own for the proxy to be its only way out.
            network_proxy_launch: execd_policy::sandbox::features().network_namespace,
            ..EnvironmentCapabilities::default()
        },
    }
}

/// The account the server (and every process it starts) runs as, for the
/// `account` of the `initialize` result: its user database entry, else
/// `$USER`, `$HOME` and `$SHELL`, else the uid, `/` and `/bin/sh`. A login
/// shell that cannot run commands (`nologin`, `false`, missing) is passed
/// over the same way.
pub fn account() -> Account {
    let uid = nix::unistd::geteuid();
    let entry = nix::unistd::User::from_uid(uid).ok().flatten();
    let variable = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let absolute = |path: PathBuf| {
        Some(path)
            .filter(|p| p.is_absolute())
            .map(|p| p.display().to_string())
    };
    let user = entry
        .as_ref()
        .map(|e| e.name.clone())
        .or_else(|| variable("USER"))
        .unwrap_or_else(|| uid.to_string());
    let home = entry
        .as_ref()
        .and_then(|e| absolute(e.dir.clone()))
        .or_else(|| env_dir("HOME").and_then(absolute))
        .unwrap_or_else(|| "/".to_string());
    let shell = entry
        .as_ref()
        .map(|e| e.shell.clone())
        .filter(|shell| usable_shell(shell))
        .or_else(|| env_dir("SHELL").filter(|shell| usable_shell(shell)))
        .and_then(absolute)
        .unwrap_or_else(|| "/bin/sh".to_string());
    Account {
        user,
        uid: uid.as_raw(),
        home,
        shell,
    }
}

/// A shell that can run commands: an existing absolute path, not one of
/// the "no login" placeholders of service accounts (`nologin`, `false`),
/// which would refuse every command.
fn usable_shell(shell: &Path) -> bool {
    let placeholder = shell
        .file_name()
        .is_some_and(|name| name == "nologin" || name == "false");
    shell.is_absolute() && !placeholder && shell.exists()
}

/// `environment/status`: an environment that answers is ready.
pub fn environment_status(_params: &RawValue) -> RpcResult {
    ok(codex::EnvironmentStatus {
        status: "ready".to_string(),
    })
}

/// `environment/info`: no params are needed (any object is accepted).
pub fn environment_info(_params: &RawValue) -> RpcResult {
    ok(info())
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_default()
}

/// `environmentConfig/read`: the request is checked as codex checks it
/// (a `cwd` URI, at least one path asked for); the answer has no layers.
pub fn environment_config_read(params: &RawValue) -> RpcResult {
    let method = codex::ENVIRONMENT_CONFIG_READ;
    let p: EnvironmentConfigReadParams = parse_params(method, params)?;
    let (cwd, _) = native_path(method, "cwd", &p.cwd)?;
    if !Path::new(&cwd).is_absolute() {
        return Err(RpcError::new(
            execd_protocol::ErrorCode::InvalidParams,
            format!(
                "invalid params for {method}: cwd must be absolute, got {:?}",
                p.cwd
            ),
        ));
    }
    if p.config_paths.is_empty() && p.requirements_paths.is_empty() {
        return Err(RpcError::new(
            execd_protocol::ErrorCode::InvalidParams,
            format!("invalid params for {method}: at least one of configPaths and requirementsPaths must name a path"),
        ));
    }
    let home = env_dir("HOME");
    let codex_home = env_dir("CODEX_HOME").or_else(|| home.as_ref().map(|h| h.join(".codex")));
    ok(EnvironmentConfigReadResult {
        user_home_dir: home.map(|p| uri(&p)),
        codex_home_dir: codex_home.map(|p| uri(&p)),
        hostname: hostname(),
        config: ConfigLayers::default(),
        requirements: ConfigLayers::default(),
    })
}
