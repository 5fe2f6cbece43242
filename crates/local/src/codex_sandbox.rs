//! codex's `sandbox` (a permission profile) as execd's sandbox, where it
//! maps. execd's sandbox reads everywhere, writes only below writable roots
//! (or everywhere), and has the network on or off; so a profile maps when
//! it grants reading `/`, its writes are whole subtrees, and it keeps
//! nothing read-only or denied inside them. Anything else is refused by
//! name ([`CodexSandboxError`]) rather than run less confined than asked.
//! Entries whose path does not exist and that codex marks
//! `missing_path_behavior: "skip"` are dropped, as codex drops them.

use std::path::{Path, PathBuf};

use execd_protocol::codex::permissions::{
    AccessMode, FileSystemEntry, FileSystemPath, FileSystemPolicy, NetworkPolicy,
    PermissionProfile, SandboxContext, SpecialPath,
};
use execd_protocol::path_uri::{self, PathUriError};
use execd_protocol::sandbox::SandboxSpec;

#[derive(Debug, thiserror::Error)]
pub enum CodexSandboxError {
    #[error("sandbox: an external sandbox (permissions.type \"external\") is not something execd provides; send a managed profile or none")]
    External,
    #[error("sandbox: execd's sandbox cannot restrict reading: the profile does not grant reading \"/\"")]
    RestrictedReads,
    #[error("sandbox: execd's sandbox cannot deny access to {0} (access \"deny\")")]
    Deny(String),
    #[error("sandbox: execd's sandbox cannot keep {path} read-only inside the writable {root}")]
    ReadOnlyInsideWritable { path: String, root: String },
    #[error("sandbox: execd's sandbox cannot grant or deny by glob pattern ({0:?})")]
    Glob(String),
    #[error("sandbox: {0}")]
    Path(#[from] PathUriError),
    #[error("sandbox: path {0:?} must be absolute")]
    Relative(String),
    #[error("enforceManagedNetwork: execd serves a managed network only as a proxy it launches (networkProxy), not facts about one elsewhere (managedNetwork); send networkProxy, or enforceManagedNetwork: false (with network \"restricted\" the sandbox has no network at all)")]
    ManagedNetwork,
}

/// One entry resolved to the paths it covers.
struct Resolved {
    paths: Vec<PathBuf>,
    access: AccessMode,
    skip_if_missing: bool,
}

/// A URI or plain path from the profile, as an absolute native path.
fn native(value: &str) -> Result<PathBuf, CodexSandboxError> {
    let (path, _) = path_uri::to_native(value)?;
    let path = PathBuf::from(path);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(CodexSandboxError::Relative(value.to_string()))
    }
}

/// The project roots: `workspaceRoots`, else the context's cwd, else the
/// process's cwd.
fn project_roots(context: &SandboxContext, cwd: &Path) -> Result<Vec<PathBuf>, CodexSandboxError> {
    if !context.workspace_roots.is_empty() {
        return context.workspace_roots.iter().map(|r| native(r)).collect();
    }
    match &context.cwd {
        Some(uri) => Ok(vec![native(uri)?]),
        None => Ok(vec![cwd.to_path_buf()]),
    }
}

fn resolve(
    entry: &FileSystemEntry,
    context: &SandboxContext,
    cwd: &Path,
) -> Result<Resolved, CodexSandboxError> {
    let paths = match &entry.path {
        FileSystemPath::Path { path } => vec![native(path)?],
        FileSystemPath::GlobPattern { pattern } => {
            return Err(CodexSandboxError::Glob(pattern.clone()))
        }
        FileSystemPath::Special { value } => match value {
            SpecialPath::Root => vec![PathBuf::from("/")],
            // Within "/" readable; as a write grant it is only narrower.
            SpecialPath::Minimal => Vec::new(),
            SpecialPath::ProjectRoots { subpath } => project_roots(context, cwd)?
                .into_iter()
                .map(|root| match subpath {
                    Some(sub) => root.join(sub),
                    None => root,
                })
                .collect(),
            SpecialPath::Tmpdir => std::env::var_os("TMPDIR")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .into_iter()
                .collect(),
            SpecialPath::SlashTmp => vec![PathBuf::from("/tmp")],
            // codex ignores tokens it does not know; a grant ignored leaves
            // the sandbox stricter, a denial ignored would not.
            SpecialPath::Unknown { path, .. } => {
                if entry.access == AccessMode::Deny {
                    return Err(CodexSandboxError::Deny(format!(":{path}")));
                }
                Vec::new()
            }
        },
    };
    Ok(Resolved {
        paths,
        access: entry.access,
        skip_if_missing: entry.skip_if_missing(),
    })
}

/// `path` with symlinks resolved when it exists (for "is it under").
fn real(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// execd's sandbox for codex's `context`; `None` means unconfined. `cwd` is
/// the process's working directory (for `project_roots` without roots).
pub fn to_spec(
    context: &SandboxContext,
    cwd: &Path,
) -> Result<Option<SandboxSpec>, CodexSandboxError> {
    let (file_system, network) = match &context.permissions {
        PermissionProfile::Disabled => return Ok(None),
        PermissionProfile::External { .. } => return Err(CodexSandboxError::External),
        PermissionProfile::Managed {
            file_system,
            network,
        } => (file_system, *network == NetworkPolicy::Enabled),
    };
    let entries = match file_system {
        FileSystemPolicy::Unrestricted if network => return Ok(None),
        FileSystemPolicy::Unrestricted => {
            return Ok(Some(SandboxSpec {
                writable_roots: Vec::new(),
                network: false,
                read_only: false,
            }))
        }
        FileSystemPolicy::Restricted { entries } => entries,
    };
    let resolved = entries
        .iter()
        .map(|entry| resolve(entry, context, cwd))
        .collect::<Result<Vec<_>, _>>()?;
    let root = Path::new("/");
    let grants = |access: AccessMode| {
        resolved
            .iter()
            .any(|r| r.access == access && r.paths.iter().any(|p| p == root))
    };
    let all_writable = grants(AccessMode::Write);
    if !all_writable && !grants(AccessMode::Read) {
        return Err(CodexSandboxError::RestrictedReads);
    }
    let mut writable: Vec<PathBuf> = Vec::new();
    for entry in resolved.iter().filter(|r| r.access == AccessMode::Write) {
        for path in &entry.paths {
            if path == root || writable.contains(path) {
                continue;
            }
            if entry.skip_if_missing && !path.exists() {
                continue;
            }
            writable.push(path.clone());
        }
    }
    let real_writable: Vec<PathBuf> = writable.iter().map(|p| real(p)).collect();
    for entry in resolved.iter().filter(|r| r.access != AccessMode::Write) {
        for path in entry.paths.iter().filter(|p| *p != root) {
            if entry.skip_if_missing && !path.exists() {
                continue;
            }
            let shown = path.display().to_string();
            if entry.access == AccessMode::Deny {
                return Err(CodexSandboxError::Deny(shown));
            }
            let real_path = real(path);
            if all_writable {
                return Err(CodexSandboxError::ReadOnlyInsideWritable {
                    path: shown,
                    root: "filesystem".to_string(),
                });
            }
            if let Some(i) = real_writable.iter().position(|w| real_path.starts_with(w)) {
                return Err(CodexSandboxError::ReadOnlyInsideWritable {
                    path: shown,
                    root: format!("root {}", writable[i].display()),
                });
            }
        }
    }
    Ok(Some(SandboxSpec {
        writable_roots: if all_writable {
            Vec::new()
        } else {
            writable.iter().map(|p| p.display().to_string()).collect()
        },
        network,
        read_only: !all_writable,
    }))
}

/// Whether `spec` lets a filesystem call write `path` (for codex's `fs/*`
/// calls that carry a sandbox): anywhere when the filesystem is not
/// read-only, else only below a writable root. Symlinks in the part of the
/// path that exists are resolved first.
pub fn allows_write(spec: &SandboxSpec, path: &Path) -> bool {
    if !spec.read_only {
        return true;
    }
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut resolved = real(&existing);
    resolved.extend(rest.iter().rev());
    spec.writable_roots
        .iter()
        .any(|root| resolved.starts_with(real(Path::new(root))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use execd_protocol::codex::permissions::SandboxContext;

    fn context(profile: serde_json::Value, roots: &[&str]) -> SandboxContext {
        serde_json::from_value(serde_json::json!({
            "permissions": profile,
            "workspaceRoots": roots,
            "windowsSandboxLevel": "disabled"
        }))
        .expect("context")
    }

    fn entry(kind: serde_json::Value, access: &str) -> serde_json::Value {
        serde_json::json!({"path": {"type": "special", "value": kind}, "access": access})
    }

    fn managed(entries: Vec<serde_json::Value>, network: &str) -> serde_json::Value {
        serde_json::json!({"type": "managed", "network": network,
            "file_system": {"type": "restricted", "entries": entries}})
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("execd-codex-sandbox-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn read_only_profile_maps_to_read_only_offline() {
        let ctx = context(
            managed(
                vec![entry(serde_json::json!({"kind": "root"}), "read")],
                "restricted",
            ),
            &[],
        );
        let spec = to_spec(&ctx, Path::new("/"))
            .expect("maps")
            .expect("sandboxed");
        assert_eq!(spec, SandboxSpec::default());
    }

    #[test]
    fn workspace_write_maps_roots_and_skips_missing_carve_outs() {
        let work = temp_dir("ws");
        let uri = path_uri::to_uri(&work);
        let ctx = context(
            managed(
                vec![
                    entry(serde_json::json!({"kind": "root"}), "read"),
                    entry(serde_json::json!({"kind": "project_roots"}), "write"),
                    entry(serde_json::json!({"kind": "slash_tmp"}), "write"),
                    serde_json::json!({"path": {"type": "special", "value": {"kind": "project_roots", "subpath": ".git"}},
                        "access": "read", "missing_path_behavior": "skip"}),
                ],
                "enabled",
            ),
            &[&uri],
        );
        let spec = to_spec(&ctx, Path::new("/"))
            .expect("maps")
            .expect("sandboxed");
        assert!(spec.read_only && spec.network);
        assert_eq!(
            spec.writable_roots,
            vec![work.display().to_string(), "/tmp".to_string()]
        );

        // With .git present, it cannot be kept read-only inside the root.
        std::fs::create_dir_all(work.join(".git")).expect("mkdir .git");
        let err = to_spec(&ctx, Path::new("/")).unwrap_err();
        assert!(
            matches!(err, CodexSandboxError::ReadOnlyInsideWritable { .. }),
            "{err}"
        );
        assert!(err.to_string().contains(".git"), "{err}");
        std::fs::remove_dir_all(&work).ok();
    }

    #[test]
    fn disabled_and_unrestricted_profiles() {
        let ctx = context(serde_json::json!({"type": "disabled"}), &[]);
        assert_eq!(to_spec(&ctx, Path::new("/")).expect("maps"), None);
        let open = serde_json::json!({"type": "managed", "network": "enabled", "file_system": {"type": "unrestricted"}});
        assert_eq!(
            to_spec(&context(open, &[]), Path::new("/")).expect("maps"),
            None
        );
        let offline = serde_json::json!({"type": "managed", "network": "restricted", "file_system": {"type": "unrestricted"}});
        let spec = to_spec(&context(offline, &[]), Path::new("/"))
            .expect("maps")
            .expect("sandboxed");
        assert!(!spec.read_only && !spec.network);
    }

    #[test]
    fn what_cannot_be_enforced_is_refused_by_name() {
        let ext = context(
            serde_json::json!({"type": "external", "network": "restricted"}),
            &[],
        );
        assert!(matches!(
            to_spec(&ext, Path::new("/")),
            Err(CodexSandboxError::External)
        ));

        let minimal = context(
            managed(
                vec![entry(serde_json::json!({"kind": "minimal"}), "read")],
                "restricted",
            ),
            &[],
        );
        assert!(matches!(
            to_spec(&minimal, Path::new("/")),
            Err(CodexSandboxError::RestrictedReads)
        ));

        let deny = context(
            managed(
                vec![
                    entry(serde_json::json!({"kind": "root"}), "read"),
                    serde_json::json!({"path": {"type": "path", "path": "file:///etc"}, "access": "none"}),
                ],
                "restricted",
            ),
            &[],
        );
        let err = to_spec(&deny, Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("/etc"), "{err}");

        let glob = context(
            managed(
                vec![
                    entry(serde_json::json!({"kind": "root"}), "read"),
                    serde_json::json!({"path": {"type": "glob_pattern", "pattern": "**/*.env"}, "access": "deny"}),
                ],
                "restricted",
            ),
            &[],
        );
        assert!(to_spec(&glob, Path::new("/"))
            .unwrap_err()
            .to_string()
            .contains("**/*.env"));

        let bad_uri = context(
            managed(
                vec![
                    entry(serde_json::json!({"kind": "root"}), "read"),
                    serde_json::json!({"path": {"type": "path", "path": "http://x/y"}, "access": "write"}),
                ],
                "restricted",
            ),
            &[],
        );
        assert!(to_spec(&bad_uri, Path::new("/"))
            .unwrap_err()
            .to_string()
            .contains("http"));
    }

    #[test]
    fn writes_are_allowed_only_below_writable_roots() {
        let work = temp_dir("aw");
        let spec = SandboxSpec {
            writable_roots: vec![work.display().to_string()],
            network: false,
            read_only: true,
        };
        assert!(allows_write(&spec, &work.join("new/deeper/file")));
        assert!(!allows_write(&spec, Path::new("/etc/passwd")));
        assert!(!allows_write(&spec, &work.join("../escape")));
        assert!(allows_write(
            &SandboxSpec {
                read_only: false,
                ..spec
            },
            Path::new("/etc/x")
        ));
        std::fs::remove_dir_all(&work).ok();
    }
}
