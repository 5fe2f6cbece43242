//! `execd shell` driven through a real pseudo-terminal: the shell runs
//! locally under a PTY of its own (started with the local environment) and
//! talks to a real server; we type into that PTY and read the screen.

use std::time::Duration;

use bytes::Bytes;
use execd_environment::{EventReceiver, StartedProcess};
use execd_local::LocalEnvironment;
use execd_protocol::event::EventKind;
use execd_protocol::process::{StartParams, TerminalSize};
use execd_server::ServerConfig;
use execd_test_support::{bind_server, eventually, process_params, RUN_TIMEOUT};

const EXECD: &str = env!("CARGO_BIN_EXE_execd");

/// The local terminal running `script`, and what it has shown so far.
struct Terminal {
    started: StartedProcess,
    screen: Vec<u8>,
}

impl Terminal {
    async fn start(script: &str) -> Terminal {
        let env = LocalEnvironment::environment();
        let mut params = StartParams {
            cwd: "/".into(),
            tty: true,
            size: Some(TerminalSize { rows: 24, cols: 80 }),
            ..process_params("terminal", &["/bin/sh", "-c", script])
        };
        params.env.insert("TERM".into(), "xterm".into());
        params.env.insert("EXECD".into(), EXECD.into());
        let started = env
            .exec
            .start(params)
            .await
            .expect("start the local terminal");
        Terminal {
            started,
            screen: Vec::new(),
        }
    }

    fn events(&mut self) -> &mut EventReceiver {
        &mut self.started.events
    }

    async fn type_text(&self, text: &str) {
        self.started
            .process
            .write(Bytes::copy_from_slice(text.as_bytes()))
            .await
            .expect("type into the terminal");
    }

    /// Read until the screen shows `needle` after position `from`.
    async fn wait_for(&mut self, needle: &str) {
        let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
        while !String::from_utf8_lossy(&self.screen).contains(needle) {
            let event = tokio::time::timeout_at(deadline, self.events().recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{needle:?} never appeared; screen: {:?}",
                        String::from_utf8_lossy(&self.screen)
                    )
                })
                .expect("terminal events ended")
                .expect("terminal event error");
            match event.kind {
                EventKind::Output { chunk, .. } => self.screen.extend_from_slice(&chunk),
                other => panic!(
                    "terminal ended ({other:?}) before {needle:?}; screen: {:?}",
                    String::from_utf8_lossy(&self.screen)
                ),
            }
        }
    }

    /// Forget what was shown so far.
    fn clear(&mut self) {
        self.screen.clear();
    }

    /// Wait for the terminal's program to exit; its exit code.
    async fn exit_code(&mut self) -> i32 {
        loop {
            let event = tokio::time::timeout(RUN_TIMEOUT, self.events().recv())
                .await
                .expect("terminal did not exit in time")
                .expect("terminal events ended")
                .expect("terminal event error");
            match event.kind {
                EventKind::Output { chunk, .. } => self.screen.extend_from_slice(&chunk),
                EventKind::Exited(exit) => return exit.code,
                EventKind::Closed => panic!("closed before exited"),
            }
        }
    }
}

/// A process whose command line is `cmdline` (NUL-separated, as in
/// `/proc/PID/cmdline`) that is the foreground process group of its
/// terminal (`pgrp` = `tpgid` in `/proc/PID/stat`).
fn foreground_job(cmdline: &str) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        if std::fs::read(format!("/proc/{pid}/cmdline")).ok()? != cmdline.as_bytes() {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid pgrp session tty_nr tpgid ...`
        let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        let (pgrp, tpgid) = (fields.get(2)?, fields.get(5)?);
        (pgrp == tpgid).then_some(pid)
    })
}

#[tokio::test]
async fn shell_runs_commands_follows_resizes_and_restores_the_terminal() {
    let server = bind_server(ServerConfig::default()).await;
    // After the shell exits, print its status and the terminal mode.
    let script = format!(
        "\"$EXECD\" shell --url {}; echo \"shell-exit:$?\"; stty -a",
        server.url()
    );
    let mut terminal = Terminal::start(&script).await;

    // A command typed into the local terminal runs remotely.
    terminal.type_text("echo computed-$((40+2))\r").await;
    terminal.wait_for("computed-42").await;

    // The remote PTY starts with the local size and follows resizes.
    terminal.type_text("stty size\r").await;
    terminal.wait_for("24 80").await;
    terminal
        .started
        .process
        .resize(TerminalSize {
            rows: 40,
            cols: 100,
        })
        .await
        .expect("resize the local terminal");
    terminal.clear();
    // The resize travels as SIGWINCH → process/resize; retype until it shows.
    let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
    loop {
        terminal.type_text("stty size\r").await;
        let shown = tokio::time::timeout(Duration::from_secs(2), terminal.wait_for("40 100")).await;
        if shown.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "resize never reached the remote PTY"
        );
    }

    // Ctrl-C interrupts the remote program, not execd.
    terminal.clear();
    // A duration of this test's own, to tell its `sleep` from others.
    let nap = format!("999.{}", std::process::id());
    terminal
        .type_text(&format!("sleep {nap}; echo not-interrupted\r"))
        .await;
    terminal.wait_for(&format!("sleep {nap}")).await;
    // The echo of the line is not the program running: a ^C before `sleep`
    // is the terminal's foreground job goes to the shell instead (and the
    // terminal drops the input not read yet), as on any terminal.
    let cmdline = format!("sleep\0{nap}\0");
    eventually("sleep to be the remote terminal's foreground job", || {
        foreground_job(&cmdline).is_some()
    })
    .await;
    terminal.type_text("\x03").await;
    terminal.type_text("echo still-$((1+1))\r").await;
    terminal.wait_for("still-2").await;
    // (The typed line itself is echoed; the program's output would start a line.)
    assert!(!String::from_utf8_lossy(&terminal.screen).contains("\nnot-interrupted"));

    // The shell's exit status becomes execd's, and the terminal is back in
    // cooked mode with echo.
    terminal.clear();
    terminal.type_text("exit 7\r").await;
    terminal.wait_for("shell-exit:7").await;
    terminal.wait_for("speed").await;
    assert_eq!(terminal.exit_code().await, 0);
    let modes = String::from_utf8_lossy(&terminal.screen).into_owned();
    let words: Vec<&str> = modes.split_whitespace().collect();
    for mode in ["icanon", "echo", "isig", "opost"] {
        assert!(
            words.contains(&mode),
            "terminal not restored ({mode} missing): {modes}"
        );
    }
    server.shutdown().await;
}
