//! `execd cp` over streams: a file, or a whole tree as one tar stream,
//! read through the source's `FileSystem::open_read` and written through
//! the destination's `open_write` (binary `fs/download`/`fs/upload` on a
//! server, threads here), several pieces in flight and nothing under the
//! target's name until the stream is finished. When either side has no
//! streams (a server over stdio, or an older one) [`copy`] says so with
//! `None` and `cp` falls back to its request-per-piece path.

use std::time::Instant;

use execd_client::{pump, EnvError, TransferFormat, WriteOptions};
use execd_protocol::fs::Metadata;
use indicatif::{BinaryBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cp_side::{fs_error, keep, summary, Kept, Side, PROGRESS_THRESHOLD};

/// Copy `from` (whose metadata is `meta`) to `target` as one stream; `None`
/// when a side cannot stream.
pub(crate) async fn copy(
    source: &Side,
    destination: &Side,
    target: &str,
    meta: &Metadata,
    preserve: bool,
    on_terminal: bool,
) -> Option<Result<(), String>> {
    let from = source.operand.path.as_str();
    let started = Instant::now();
    let (format, options) = if meta.is_directory {
        (TransferFormat::Tree, WriteOptions::tree(preserve))
    } else {
        (TransferFormat::File, WriteOptions::file())
    };
    let reader = match source.fs().open_read(from, format).await {
        Ok(reader) => reader,
        Err(EnvError::Unsupported(_)) => return None,
        Err(err) => return Some(Err(fs_error("cannot read", &source.show(from), &err))),
    };
    let writer = match destination.fs().open_write(target, options).await {
        Ok(writer) => writer,
        Err(EnvError::Unsupported(_)) => return None,
        Err(err) => {
            return Some(Err(fs_error(
                "cannot write",
                &destination.show(target),
                &err,
            )))
        }
    };
    let bar = progress(meta, on_terminal);
    let moved = pump(reader, writer, |done| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
    })
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let bytes = match moved {
        Ok(bytes) => bytes,
        Err(err) => {
            let what = format!("{} to {}", source.show(from), destination.show(target));
            return Some(Err(fs_error("cannot copy", &what, &err)));
        }
    };
    // A tree carries its own modes and times; a file gets them now.
    if !meta.is_directory {
        if let Err(err) = keep(destination, target, &Kept::of(meta, preserve)).await {
            return Some(Err(err));
        }
    }
    if on_terminal && meta.is_directory {
        let seconds = started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            bytes as f64 / seconds
        } else {
            0.0
        };
        eprintln!(
            "a tree, {} of tar in {seconds:.1} s ({}/s)",
            BinaryBytes(bytes),
            BinaryBytes(rate as u64)
        );
    } else if on_terminal {
        eprintln!("{}", summary(1, bytes, started.elapsed()));
    }
    Some(Ok(()))
}

/// A bar for a big file, a byte counter for a tree (its size is unknown).
fn progress(meta: &Metadata, on_terminal: bool) -> Option<ProgressBar> {
    if !on_terminal || (!meta.is_directory && meta.size < PROGRESS_THRESHOLD) {
        return None;
    }
    let (bar, template) = if meta.is_directory {
        (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{bytes:>10} {binary_bytes_per_sec}",
        )
    } else {
        (
            ProgressBar::with_draw_target(Some(meta.size), ProgressDrawTarget::stderr()),
            "{bytes:>10}/{total_bytes} [{wide_bar}] {binary_bytes_per_sec} {eta}",
        )
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}
