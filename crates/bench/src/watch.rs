//! The `fs/watch` row: time from a write on the server's filesystem (a
//! file created by this process, so only when the server shares this
//! machine's filesystem) to the `fs/changed` naming it at the client; the
//! local column is the same through this process's own inotify watch
//! (`execd_local`), with no server in between.

use std::path::Path;
use std::time::{Duration, Instant};

use execd_environment::FileSystem;
use execd_local::LocalFileSystem;

use crate::report::Report;
use crate::stats::summarize;
use crate::{io_error, BenchConfig, BenchError};

/// The row's name.
pub const WATCH_ROW: &str = "fs/watch: write → fs/changed";

/// Longest wait for one change.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn measure(config: &BenchConfig, report: &mut Report) -> Result<(), BenchError> {
    let env = crate::remote::connect(config, true).await?;
    let dir = std::env::temp_dir().join(format!("execd-bench-watch-{}", std::process::id()));
    let shown = dir.display().to_string();
    env.fs.create_directory(&shown, true).await?;
    if !dir.is_dir() {
        report.note(
            WATCH_ROW,
            "not measured: the server's filesystem is not this machine's".into(),
        );
        return Ok(());
    }
    let execd = write_to_change(&*env.fs, &dir, config.reps).await;
    let local = write_to_change(&LocalFileSystem, &dir, config.reps).await;
    env.fs.remove(&shown, true, true).await?;
    report.latency(WATCH_ROW).execd = summarize(&execd?);
    report.latency(WATCH_ROW).local = summarize(&local?);
    Ok(())
}

/// For each rep: create a file in `dir`, and time until `fs`'s watch of
/// `dir` reports it.
async fn write_to_change(
    fs: &dyn FileSystem,
    dir: &Path,
    reps: usize,
) -> Result<Vec<Duration>, BenchError> {
    let mut watch = fs.watch(&dir.display().to_string(), false).await?;
    let mut samples = Vec::with_capacity(reps);
    for rep in 0..reps {
        let file = dir.join(format!("f{rep}"));
        let wanted = file.display().to_string();
        let started = Instant::now();
        std::fs::write(&file, b"x").map_err(io_error(format!("writing {wanted}")))?;
        loop {
            let batch = tokio::time::timeout(CHANGE_TIMEOUT, watch.next())
                .await
                .map_err(|_| BenchError::Check(format!("no fs/changed for {wanted}")))?
                .ok_or_else(|| BenchError::Check("the watch ended".into()))??;
            if batch.iter().any(|change| change.path == wanted) {
                break;
            }
        }
        samples.push(started.elapsed());
    }
    Ok(samples)
}
