//! `execd cp`: copy a file or a directory tree between any two of this
//! machine and execd servers.
//!
//! Owns the operand syntax (`URL:/path`, `:/path`, or a local path), the
//! `cp`-like choice of the target name, the walk of a source tree, the
//! streaming of each file in bounded pieces, and the progress bar. Both
//! sides are [`Environment`]s (local or remote), so every combination takes
//! the same code path: read through the source's `FileSystem`, write
//! through the destination's.

use std::io::IsTerminal;
use std::path::Path;

use clap::Args;
use execd_client::manager::URL_VARIABLE;
use execd_client::{ConnectOptions, EnvError, Environment, FileSystem, RemoteEnvironment};
use execd_environment::traits::STREAM_CHUNK;
use execd_local::LocalEnvironment;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::connect_args::ConnectArgs;
use crate::run::{connect_error, describe, server_url};

/// Totals below this get no progress bar.
const PROGRESS_THRESHOLD: u64 = 1024 * 1024;

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Server meant by `:/path` operands; defaults to $EXECD_URL.
    #[arg(long)]
    url: Option<String>,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Copy directories recursively.
    #[arg(short = 'r', short_alias = 'R', long)]
    recursive: bool,
    /// What to copy: a local path, `ws://HOST:PORT:/path`, or `:/path`.
    #[arg(value_name = "SRC")]
    source: String,
    /// Where to copy it, in the same forms. An existing directory receives
    /// the source under its own name.
    #[arg(value_name = "DST")]
    destination: String,
}

/// Where an operand lives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Local,
    Remote(String),
}

/// A parsed operand: a location and an absolute, normalised path there.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Operand {
    location: Location,
    path: String,
}

impl Operand {
    /// How to name `path` (on this operand's side) in messages.
    fn show(&self, path: &str) -> String {
        match &self.location {
            Location::Local => path.to_string(),
            Location::Remote(url) => format!("{url}:{path}"),
        }
    }
}

/// One side of the copy.
struct Side {
    operand: Operand,
    env: Environment,
}

impl Side {
    fn fs(&self) -> &dyn FileSystem {
        self.env.fs.as_ref()
    }

    fn show(&self, path: &str) -> String {
        self.operand.show(path)
    }
}

/// Copy as the arguments say; the error is the message to print.
pub async fn run(args: CpArgs) -> Result<(), String> {
    let default_url = server_url(args.url.clone());
    let source = parse_operand(&args.source, default_url.as_deref())?;
    let destination = parse_operand(&args.destination, default_url.as_deref())?;
    let options = args.connect.options()?;
    let source_env = connect(&source.location, &options).await?;
    let destination_env = if destination.location == source.location {
        source_env.clone()
    } else {
        connect(&destination.location, &options).await?
    };
    let source = Side {
        operand: source,
        env: source_env,
    };
    let destination = Side {
        operand: destination,
        env: destination_env,
    };
    copy(&source, &destination, args.recursive).await
}

/// Split an operand into where and what.
fn parse_operand(text: &str, default_url: Option<&str>) -> Result<Operand, String> {
    for scheme in ["ws://", "wss://"] {
        let Some(rest) = text.strip_prefix(scheme) else {
            continue;
        };
        // The authority (HOST:PORT, or [v6]:PORT) never holds ":/".
        let Some(split) = rest.find(":/") else {
            return Err(format!(
                "{text:?} names a server but no path; write {scheme}HOST:PORT:/path"
            ));
        };
        let url = format!("{scheme}{}", &rest[..split]);
        let path = normalize(&rest[split + 1..]);
        return Ok(Operand {
            location: Location::Remote(url),
            path,
        });
    }
    if let Some(path) = text.strip_prefix(':') {
        if !path.starts_with('/') {
            return Err(format!("{text:?}: a remote path must be absolute (:/path)"));
        }
        let Some(url) = default_url else {
            return Err(format!(
                "{text:?} refers to the default server, but neither --url nor {URL_VARIABLE} is set"
            ));
        };
        return Ok(Operand {
            location: Location::Remote(url.to_string()),
            path: normalize(path),
        });
    }
    if text.is_empty() {
        return Err("empty path".to_string());
    }
    let absolute = std::path::absolute(Path::new(text))
        .map_err(|err| format!("cannot resolve {text}: {err}"))?;
    let Some(absolute) = absolute.to_str() else {
        return Err(format!("{text:?} is not valid UTF-8"));
    };
    let mut path = normalize(absolute);
    // `..` names no entry; ask the filesystem what it is.
    if path.ends_with("/..") {
        if let Some(resolved) = std::fs::canonicalize(&path)
            .ok()
            .and_then(|p| p.to_str().map(normalize))
        {
            path = resolved;
        }
    }
    Ok(Operand {
        location: Location::Local,
        path,
    })
}

/// Collapse repeated slashes, drop `.` components and any trailing slash.
fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// `base/relative`, where an empty `relative` is `base` itself.
fn join(base: &str, relative: &str) -> String {
    if relative.is_empty() {
        base.to_string()
    } else if base.ends_with('/') {
        format!("{base}{relative}")
    } else {
        format!("{base}/{relative}")
    }
}

/// The last component of a normalised path (`None` for `/` and `..`).
fn file_name(path: &str) -> Option<&str> {
    path.rsplit('/')
        .next()
        .filter(|name| !name.is_empty() && *name != "..")
}

async fn connect(location: &Location, options: &ConnectOptions) -> Result<Environment, String> {
    match location {
        Location::Local => Ok(LocalEnvironment::environment()),
        Location::Remote(url) => RemoteEnvironment::connect_with(url, options.clone())
            .await
            .map_err(|err| connect_error(url, &err)),
    }
}

/// `<action> <what>: <why>`, without repeating the path for "not found".
fn fs_error(action: &str, what: &str, err: &EnvError) -> String {
    match err {
        EnvError::NotFound(_) => format!("{action} {what}: no such file or directory"),
        other => format!("{action} {what}: {}", describe(other)),
    }
}

/// One thing to create on the destination, relative to the target.
#[derive(Debug)]
enum Item {
    Directory(String),
    File { relative: String, size: u64 },
}

async fn copy(source: &Side, destination: &Side, recursive: bool) -> Result<(), String> {
    let from = source.operand.path.as_str();
    let shown_source = source.show(from);
    let meta = source
        .fs()
        .metadata(from)
        .await
        .map_err(|err| fs_error("cannot stat", &shown_source, &err))?;
    if meta.is_directory && !recursive {
        return Err(format!(
            "-r not specified; omitting directory {shown_source}"
        ));
    }
    if !meta.is_directory && !meta.is_file {
        return Err(format!(
            "cannot copy {shown_source}: not a regular file or directory"
        ));
    }

    let target = target_path(source, destination, meta.is_directory).await?;
    if source.operand.location == destination.operand.location {
        if target == from {
            return Err(format!(
                "{shown_source} and {} are the same file",
                destination.show(&target)
            ));
        }
        if meta.is_directory && (from == "/" || target.starts_with(&format!("{from}/"))) {
            return Err(format!(
                "cannot copy a directory, {shown_source}, into itself, {}",
                destination.show(&target)
            ));
        }
    }

    let mut skipped = 0usize;
    let items = if meta.is_directory {
        walk(source, &mut skipped).await?
    } else {
        vec![Item::File {
            relative: String::new(),
            size: meta.size,
        }]
    };
    let total: u64 = items
        .iter()
        .map(|item| match item {
            Item::File { size, .. } => *size,
            Item::Directory(_) => 0,
        })
        .sum();
    let progress = progress_bar(total);
    let result = copy_items(source, destination, &target, &items, &progress).await;
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    result?;
    if skipped > 0 {
        return Err(format!(
            "{skipped} entr{} of {shown_source} not copied (see above)",
            if skipped == 1 { "y was" } else { "ies were" }
        ));
    }
    Ok(())
}

/// Like `cp`: into an existing directory under the source's name, else as
/// the destination path itself.
async fn target_path(
    source: &Side,
    destination: &Side,
    is_directory: bool,
) -> Result<String, String> {
    let to = destination.operand.path.as_str();
    let shown = destination.show(to);
    match destination.fs().metadata(to).await {
        Ok(meta) if meta.is_directory => {
            let Some(name) = file_name(&source.operand.path) else {
                return Err(format!(
                    "cannot tell what to name {} inside {shown}; give the full destination path",
                    source.show(&source.operand.path)
                ));
            };
            Ok(join(to, name))
        }
        Ok(_) if is_directory => Err(format!(
            "cannot overwrite non-directory {shown} with directory {}",
            source.show(&source.operand.path)
        )),
        Ok(_) | Err(EnvError::NotFound(_)) => Ok(to.to_string()),
        Err(err) => Err(fs_error("cannot stat", &shown, &err)),
    }
}

/// Everything under the source directory, parents before their contents.
/// Entries that are neither files nor directories, and symbolic links to
/// directories (which could loop), are reported and counted in `skipped`.
async fn walk(source: &Side, skipped: &mut usize) -> Result<Vec<Item>, String> {
    let root = source.operand.path.as_str();
    let mut items = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(relative) = pending.pop() {
        let directory = join(root, &relative);
        let entries = source
            .fs()
            .read_directory(&directory)
            .await
            .map_err(|err| fs_error("cannot read directory", &source.show(&directory), &err))?;
        items.push(Item::Directory(relative.clone()));
        let mut subdirectories = Vec::new();
        for entry in entries {
            let child = join(&relative, &entry.file_name);
            let path = join(root, &child);
            if !entry.is_directory && !entry.is_file {
                eprintln!(
                    "execd cp: skipping {}: not a regular file or directory",
                    source.show(&path)
                );
                *skipped += 1;
                continue;
            }
            let meta = source
                .fs()
                .metadata(&path)
                .await
                .map_err(|err| fs_error("cannot stat", &source.show(&path), &err))?;
            if meta.is_directory && meta.is_symlink {
                eprintln!(
                    "execd cp: skipping {}: symbolic link to a directory",
                    source.show(&path)
                );
                *skipped += 1;
            } else if meta.is_directory {
                subdirectories.push(child);
            } else if meta.is_file {
                items.push(Item::File {
                    relative: child,
                    size: meta.size,
                });
            } else {
                eprintln!(
                    "execd cp: skipping {}: not a regular file or directory",
                    source.show(&path)
                );
                *skipped += 1;
            }
        }
        // Popped in name order.
        pending.extend(subdirectories.into_iter().rev());
    }
    Ok(items)
}

/// A bar on stderr when it is a terminal and the copy is big enough.
fn progress_bar(total: u64) -> Option<ProgressBar> {
    if total < PROGRESS_THRESHOLD || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{bytes:>10}/{total_bytes} [{wide_bar}] {binary_bytes_per_sec} {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

async fn copy_items(
    source: &Side,
    destination: &Side,
    target: &str,
    items: &[Item],
    progress: &Option<ProgressBar>,
) -> Result<(), String> {
    let root = source.operand.path.as_str();
    for item in items {
        match item {
            Item::Directory(relative) => {
                ensure_directory(destination, &join(target, relative)).await?;
            }
            Item::File { relative, .. } => {
                copy_file(
                    source,
                    &join(root, relative),
                    destination,
                    &join(target, relative),
                    progress,
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Create a directory; one that already exists is fine (its contents merge).
async fn ensure_directory(side: &Side, path: &str) -> Result<(), String> {
    match side.fs().create_directory(path, false).await {
        Ok(()) => Ok(()),
        Err(err) => match side.fs().metadata(path).await {
            Ok(meta) if meta.is_directory => Ok(()),
            _ => Err(fs_error("cannot create directory", &side.show(path), &err)),
        },
    }
}

/// Stream one file in pieces of [`STREAM_CHUNK`]; the next piece is read
/// while the previous one is written, so at most two are in memory.
async fn copy_file(
    source: &Side,
    from: &str,
    destination: &Side,
    to: &str,
    progress: &Option<ProgressBar>,
) -> Result<(), String> {
    let read = |offset: u64| async move {
        source
            .fs()
            .read_range(from, offset, STREAM_CHUNK)
            .await
            .map_err(|err| fs_error("cannot read", &source.show(from), &err))
    };
    let write = |data: Vec<u8>, first: bool| async move {
        let result = if first {
            destination.fs().write_file(to, data).await
        } else {
            destination.fs().append_file(to, data).await
        };
        result.map_err(|err| fs_error("cannot write", &destination.show(to), &err))
    };
    let (mut data, mut eof) = read(0).await?;
    let mut offset = data.len() as u64;
    let mut first = true;
    loop {
        let length = data.len() as u64;
        if eof || data.is_empty() {
            // An empty piece is written only to create an empty file.
            if first || length > 0 {
                write(data, first).await?;
            }
            advance(progress, length);
            return Ok(());
        }
        let (written, next) = tokio::join!(write(data, first), read(offset));
        written?;
        advance(progress, length);
        (data, eof) = next?;
        offset += data.len() as u64;
        first = false;
    }
}

fn advance(progress: &Option<ProgressBar>, bytes: u64) {
    if let Some(bar) = progress {
        bar.inc(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: &str, path: &str) -> Operand {
        Operand {
            location: Location::Remote(url.to_string()),
            path: path.to_string(),
        }
    }

    #[test]
    fn operands_split_after_the_authority() {
        assert_eq!(
            parse_operand("ws://127.0.0.1:7878:/tmp/x", None),
            Ok(remote("ws://127.0.0.1:7878", "/tmp/x"))
        );
        assert_eq!(
            parse_operand("ws://[::1]:7878:/tmp//x/./y/", None),
            Ok(remote("ws://[::1]:7878", "/tmp/x/y"))
        );
        assert_eq!(
            parse_operand(":/etc", Some("ws://h:1")),
            Ok(remote("ws://h:1", "/etc"))
        );
        assert!(parse_operand(":/etc", None).is_err());
        assert!(parse_operand(":etc", Some("ws://h:1")).is_err());
        assert!(parse_operand("ws://127.0.0.1:7878", None).is_err());
        let local = parse_operand("/a/b/", None);
        assert_eq!(
            local,
            Ok(Operand {
                location: Location::Local,
                path: "/a/b".into()
            })
        );
        let relative = parse_operand("some/file", None).map(|o| o.path);
        assert!(relative.is_ok_and(|p| p.starts_with('/') && p.ends_with("/some/file")));
    }

    #[test]
    fn names_and_joins() {
        assert_eq!(file_name("/a/b"), Some("b"));
        assert_eq!(file_name("/"), None);
        assert_eq!(file_name("/a/.."), None);
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/a", "x/y"), "/a/x/y");
        assert_eq!(join("/a", ""), "/a");
        assert_eq!(normalize("//a/./b//"), "/a/b");
        assert_eq!(normalize("/"), "/");
    }
}
