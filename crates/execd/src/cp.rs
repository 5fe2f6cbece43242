//! `execd cp`: copy a file or a directory tree between any two of this
//! machine and execd servers.
//!
//! Owns the operand syntax (`URL:/path`, `:/path`, or a local path), the
//! `cp`-like choice of the target name, the walk of a source tree, the
//! streaming of each file in bounded pieces, the permission bits (always,
//! as scp) and times (`-p`) of what it creates, and the progress bar and
//! summary line on a terminal; whole files and trees go as one stream
//! where both sides can ([`crate::cp_stream`]). Both
//! sides are [`Environment`]s (local or remote), so every combination takes
//! the same code path: read through the source's `FileSystem`, write
//! through the destination's.

use std::io::IsTerminal;
use std::time::Instant;

use clap::Args;
use execd_client::{ConnectOptions, EnvError, Environment, RemoteEnvironment};
use execd_environment::traits::STREAM_CHUNK;
use execd_local::LocalEnvironment;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::connect_args::ConnectArgs;
use crate::cp_operand::{file_name, join, parse_operand, Location};
use crate::cp_side::{fs_error, keep, summary, Kept, Side, PROGRESS_THRESHOLD};
use crate::messages::connect_error;

#[derive(Debug, Args)]
#[command(after_long_help = CP_HELP)]
pub struct CpArgs {
    /// Server meant by `:/path` operands; defaults to $EXECD_URL.
    #[arg(long)]
    url: Option<String>,
    /// Server meant by `:/path` operands: the environment NAME of the
    /// environments file ($EXECD_ENVIRONMENTS, else
    /// $XDG_CONFIG_HOME/execd/environments.toml or
    /// ~/.config/execd/environments.toml), with its token and CA file.
    #[arg(long = "env", value_name = "NAME", conflicts_with = "url")]
    env: Option<String>,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Copy directories recursively.
    #[arg(short = 'r', short_alias = 'R', long)]
    recursive: bool,
    /// Also keep modification and access times, and the setuid, setgid and
    /// sticky bits (as scp -p and cp -p).
    #[arg(short = 'p', long)]
    preserve: bool,
    /// What to copy: a local path, `ws://HOST:PORT:/path`, or `:/path`.
    #[arg(value_name = "SRC")]
    source: String,
    /// Where to copy it, in the same forms. An existing directory receives
    /// the source under its own name.
    #[arg(value_name = "DST")]
    destination: String,
}

/// The man-page part of `execd cp --help`.
const CP_HELP: &str = "\
Operands:
  A local path, ws://HOST:PORT:/path or wss://HOST:PORT:/path (a path on
  that server), or :/path (a path on the --env NAME, --url or $EXECD_URL
  server). Both operands may be remote, on the same or different servers.

What is kept:
  As scp: the permission bits (rwx for user, group, others) of every file
  and directory copied; with -p also the setuid, setgid and sticky bits and
  the modification and access times (to the millisecond). Owners are not
  kept: what is created belongs to the account the destination's server
  (or this command) runs as. A single file named through a symbolic link
  is copied (the link followed). With -r a tree goes as one stream (tar)
  and keeps its symbolic links as links, as cp -r does; special files
  (sockets, FIFOs, devices) are left out. Against a server without
  streams (stdio, or an older execd) links are followed instead, and links
  to directories and special files are skipped with a message.

Interrupted copies:
  A file is written under a temporary name in its directory
  (.NAME.execd-PID-N.part) and renamed into place when complete; a copy
  that fails or is cut off leaves nothing under the final name.

Output:
  On a terminal, a progress bar on stderr for copies of 1 MiB or more, then
  one summary line (files, bytes, time, rate). Nothing else is printed
  when stderr is not a terminal, except errors.

Signals:
  None are handled: Ctrl-C stops the copy where it is. Over streams
  nothing is left under the name being written (a server removes its
  temporary file; a local one, .NAME.execd-PID-N.part, may remain).

Exit status:
  0 when everything was copied; 1 otherwise, with the reason on stderr
  (named `execd cp: ...`).";

/// Copy as the arguments say; the error is the message to print.
pub async fn run(args: CpArgs) -> Result<(), String> {
    let (default_url, options) =
        crate::connect_args::resolve(args.env.as_deref(), args.url.clone(), &args.connect)?;
    let source = parse_operand(&args.source, default_url.as_deref())?;
    let destination = parse_operand(&args.destination, default_url.as_deref())?;
    let source_env = connect(&source.location, &options).await?;
    let destination_env = if destination.location == source.location {
        source_env.clone()
    } else {
        connect(&destination.location, &options).await?
    };
    let source = Side::new(source, source_env);
    let destination = Side::new(destination, destination_env);
    copy(&source, &destination, args.recursive, args.preserve).await
}

async fn connect(location: &Location, options: &ConnectOptions) -> Result<Environment, String> {
    match location {
        Location::Local => Ok(LocalEnvironment::environment()),
        Location::Remote(url) => RemoteEnvironment::connect_with(url, options.clone())
            .await
            .map_err(|err| connect_error(url, &err)),
    }
}

/// One thing to create on the destination, relative to the target, and
/// what to keep of its source.
#[derive(Debug)]
enum Item {
    Directory {
        relative: String,
        kept: Kept,
    },
    File {
        relative: String,
        size: u64,
        kept: Kept,
    },
}

async fn copy(
    source: &Side,
    destination: &Side,
    recursive: bool,
    preserve: bool,
) -> Result<(), String> {
    let started = Instant::now();
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

    let on_terminal = std::io::stderr().is_terminal();
    if let Some(streamed) =
        crate::cp_stream::copy(source, destination, &target, &meta, preserve, on_terminal).await
    {
        return streamed;
    }
    let mut skipped = 0usize;
    let items = if meta.is_directory {
        walk(source, Kept::of(&meta, preserve), preserve, &mut skipped).await?
    } else {
        vec![Item::File {
            relative: String::new(),
            size: meta.size,
            kept: Kept::of(&meta, preserve),
        }]
    };
    let total: u64 = items
        .iter()
        .map(|item| match item {
            Item::File { size, .. } => *size,
            Item::Directory { .. } => 0,
        })
        .sum();
    let progress = progress_bar(total, on_terminal);
    let result = copy_items(source, destination, &target, &items, &progress).await;
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    result?;
    // Directories last, deepest first: their contents are written by now
    // (which would change their times), and a read-only one no longer
    // needs to be written into.
    for item in items.iter().rev() {
        if let Item::Directory { relative, kept } = item {
            keep(destination, &join(&target, relative), kept).await?;
        }
    }
    if on_terminal {
        let files = items
            .iter()
            .filter(|item| matches!(item, Item::File { .. }))
            .count();
        eprintln!("{}", summary(files, total, started.elapsed()));
    }
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

/// Everything under the source directory (whose own metadata asks to keep
/// `root_kept`), parents before their contents. Entries that are neither
/// files nor directories, and symbolic links to directories (which could
/// loop), are reported and counted in `skipped`.
async fn walk(
    source: &Side,
    root_kept: Kept,
    preserve: bool,
    skipped: &mut usize,
) -> Result<Vec<Item>, String> {
    let root = source.operand.path.as_str();
    let mut items = Vec::new();
    let mut pending = vec![(String::new(), root_kept)];
    while let Some((relative, kept)) = pending.pop() {
        let directory = join(root, &relative);
        let entries = source
            .fs()
            .read_directory(&directory)
            .await
            .map_err(|err| fs_error("cannot read directory", &source.show(&directory), &err))?;
        items.push(Item::Directory {
            relative: relative.clone(),
            kept,
        });
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
                subdirectories.push((child, Kept::of(&meta, preserve)));
            } else if meta.is_file {
                items.push(Item::File {
                    relative: child,
                    size: meta.size,
                    kept: Kept::of(&meta, preserve),
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
fn progress_bar(total: u64, on_terminal: bool) -> Option<ProgressBar> {
    if total < PROGRESS_THRESHOLD || !on_terminal {
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
            Item::Directory { relative, .. } => {
                ensure_directory(destination, &join(target, relative)).await?;
            }
            Item::File { relative, kept, .. } => {
                let to = join(target, relative);
                copy_file(source, &join(root, relative), destination, &to, progress).await?;
                keep(destination, &to, kept).await?;
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
