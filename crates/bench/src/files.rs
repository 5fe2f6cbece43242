//! File transfers: `execd cp`'s streams (a 512 MiB file up and down, a
//! tree of 5,000 small files up and down as one tar stream) over one
//! connection, against `scp` and `tar cf - | ssh host tar xf -` (down:
//! `ssh host tar cf - | tar xf -`) through the same
//! multiplexed ssh master (so neither side pays a handshake). Each
//! repetition runs execd then ssh, so both see the same machine.
//!
//! Every copied tree stays until the end of the measurement: on ext4
//! without a journal, an inode freed in the last minutes is skipped when a
//! new one is allocated (`recently_deleted`), so deleting 5,000 files makes
//! the next 5,000 creations scan past them all — 0.5 ms each instead of
//! 20 µs, for whichever side happens to run next.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use execd_client::{pump, Environment, LocalEnvironment, RemoteEnvironment, WriteOptions};

use crate::report::Report;
use crate::ssh::SshMaster;
use crate::stats::summarize;
use crate::{io_error, BenchConfig, BenchError};

/// Repetitions of each transfer.
const REPS: usize = 3;

/// The row names.
pub fn rows(config: &BenchConfig) -> [String; 4] {
    let mib = config.copy_bytes >> 20;
    [
        format!("cp {mib} MiB up (ssh: scp)"),
        format!("cp {mib} MiB down (ssh: scp)"),
        format!(
            "cp -r {} small files up (ssh: tar cf - | ssh tar xf -)",
            config.copy_files
        ),
        format!(
            "cp -r {} small files down (ssh: ssh tar cf - | tar xf -)",
            config.copy_files
        ),
    ]
}

/// A file of `size` pseudo-random bytes (xorshift: incompressible enough).
fn random_file(path: &Path, size: u64) -> Result<(), BenchError> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).map_err(io_error("creating the test file"))?,
    );
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n])
            .map_err(io_error("writing the test file"))?;
        left -= n as u64;
    }
    out.flush().map_err(io_error("writing the test file"))
}

/// `count` files of 1–4 KiB in directories of 100.
fn small_tree(root: &Path, count: usize) -> Result<(), BenchError> {
    for i in 0..count {
        let dir = root.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir).map_err(io_error("creating the test tree"))?;
        }
        let data = vec![b'a' + (i % 26) as u8; 1024 * (1 + i % 4)];
        std::fs::write(dir.join(format!("f{i}.txt")), data)
            .map_err(io_error("writing the test tree"))?;
    }
    Ok(())
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

async fn stream(
    src: &Environment,
    from: &Path,
    dst: &Environment,
    to: &Path,
    options: WriteOptions,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let reader = src.fs.open_read(&text(from), options.format).await?;
    let writer = dst.fs.open_write(&text(to), options).await?;
    pump(reader, writer, |_| {}).await?;
    Ok(started.elapsed())
}

/// `ssh host tar cf - -C from . | tar xf - -C to`, timed to both ends.
async fn ssh_tar_down(master: &SshMaster, from: &Path, to: &Path) -> Result<Duration, BenchError> {
    let started = Instant::now();
    std::fs::create_dir_all(to).map_err(io_error("creating the tar destination"))?;
    let mut ssh = master.command();
    ssh.arg(format!("tar cf - -C {} .", from.display()))
        .stdout(std::process::Stdio::piped());
    let mut ssh = ssh.spawn().map_err(io_error("ssh tar cf"))?;
    let stdout = ssh
        .stdout
        .take()
        .ok_or_else(|| BenchError::Check("ssh tar cf has no stdout".into()))?;
    let mut untar = std::process::Command::new("tar");
    untar.arg("xf").arg("-").arg("-C").arg(to).stdin(stdout);
    run_ssh(untar, "ssh tar cf - | tar xf -").await?;
    let status = tokio::task::spawn_blocking(move || ssh.wait())
        .await
        .map_err(|err| BenchError::Check(format!("ssh tar cf: {err}")))?
        .map_err(io_error("ssh tar cf"))?;
    if !status.success() {
        return Err(BenchError::Check(format!("ssh tar cf failed: {status}")));
    }
    Ok(started.elapsed())
}

async fn run_ssh(command: std::process::Command, what: &str) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let status = tokio::process::Command::from(command)
        .status()
        .await
        .map_err(io_error(what))?;
    if !status.success() {
        return Err(BenchError::Check(format!("{what} failed: {status}")));
    }
    Ok(started.elapsed())
}

pub async fn measure(config: &BenchConfig, report: &mut Report) -> Result<(), BenchError> {
    let work = std::env::temp_dir().join(format!("execd-bench-files-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(work.clone());
    std::fs::create_dir_all(&work).map_err(io_error("creating the bench directory"))?;
    let (file, tree) = (work.join("file"), work.join("tree"));
    random_file(&file, config.copy_bytes)?;
    small_tree(&tree, config.copy_files)?;
    let mut connect = config.connect.clone();
    connect.binary_output = true;
    let remote = RemoteEnvironment::connect_with(&config.url, connect).await?;
    let local = LocalEnvironment::environment();
    let master = match &config.ssh {
        Some(target) => {
            let target = target.clone();
            Some(
                tokio::task::spawn_blocking(move || SshMaster::start(&target))
                    .await
                    .map_err(|err| BenchError::Check(format!("ssh master: {err}")))??,
            )
        }
        None => None,
    };
    let [up_row, down_row, tree_row, tree_down_row] = rows(config);
    let mut samples: [(Vec<Duration>, Vec<Duration>); 4] = Default::default();
    for rep in 0..REPS {
        let (up, down, tree_to, tree_back) = (
            work.join(format!("up{rep}")),
            work.join(format!("down{rep}")),
            work.join(format!("tree{rep}")),
            work.join(format!("back{rep}")),
        );
        samples[0]
            .0
            .push(stream(&local, &file, &remote, &up, WriteOptions::file()).await?);
        samples[1]
            .0
            .push(stream(&remote, &up, &local, &down, WriteOptions::file()).await?);
        samples[2]
            .0
            .push(stream(&local, &tree, &remote, &tree_to, WriteOptions::tree(false)).await?);
        samples[3].0.push(
            stream(
                &remote,
                &tree_to,
                &local,
                &tree_back,
                WriteOptions::tree(false),
            )
            .await?,
        );
        check_same(&file, &down)?;
        for path in [&up, &down] {
            let _ = std::fs::remove_file(path);
        }
        let Some(master) = &master else { continue };
        let (tree_to, tree_back) = (
            work.join(format!("ssh-tree{rep}")),
            work.join(format!("ssh-back{rep}")),
        );
        let host = master.host();
        let mut scp = master.scp();
        scp.arg(&file).arg(format!("{host}:{}", up.display()));
        samples[0].1.push(run_ssh(scp, "scp up").await?);
        let mut scp = master.scp();
        scp.arg(format!("{host}:{}", up.display())).arg(&down);
        samples[1].1.push(run_ssh(scp, "scp down").await?);
        let mut tar = master.command();
        tar.arg(format!(
            "mkdir -p {0} && tar xf - -C {0}",
            tree_to.display()
        ));
        let archive = std::process::Command::new("tar")
            .arg("cf")
            .arg("-")
            .arg("-C")
            .arg(&tree)
            .arg(".")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(io_error("tar cf"))?;
        let stdout = archive
            .stdout
            .ok_or_else(|| BenchError::Check("tar cf has no stdout".into()))?;
        tar.stdin(stdout);
        samples[2]
            .1
            .push(run_ssh(tar, "tar cf - | ssh tar xf -").await?);
        samples[3]
            .1
            .push(ssh_tar_down(master, &tree, &tree_back).await?);
        for path in [&up, &down] {
            let _ = std::fs::remove_file(path);
        }
    }
    let names = [up_row, down_row, tree_row, tree_down_row];
    for (name, (execd, ssh)) in names.iter().zip(samples) {
        let row = report.latency(name);
        row.execd = summarize(&execd);
        row.ssh = summarize(&ssh);
    }
    report.note(
        "cp rows",
        format!("execd: FileSystem::open_read → open_write streams (what `execd cp` does) over one connection, {REPS} runs; ssh: scp / tar through one multiplexed master connection (no handshake either side)"),
    );
    drop(remote);
    Ok(())
}

/// The file came back byte for byte.
fn check_same(a: &Path, b: &Path) -> Result<(), BenchError> {
    let same = std::fs::read(a).map_err(io_error("reading back"))?
        == std::fs::read(b).map_err(io_error("reading back"))?;
    if same {
        Ok(())
    } else {
        Err(BenchError::Check(format!(
            "{} came back different",
            a.display()
        )))
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
