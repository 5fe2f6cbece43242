//! `execd shell`: an interactive login shell on an execd server, like `ssh
//! host`. It is `execd run --tty` with the remote user's shell as the
//! command: raw mode, window-size forwarding, Ctrl-C reaching the remote
//! program and terminal restoration all come from `run`.

use clap::Args;

use crate::connect_args::ConnectArgs;
use crate::run::{self, parse_assignment, RunArgs};

/// Picks the remote user's home and shell on the server side: the remote
/// environment is not known here.
const LOGIN_SCRIPT: &str = r#": "${HOME:=$(getent passwd "$(id -u)" 2>/dev/null | cut -d: -f6)}"; export HOME
[ -n "$EXECD_SHELL_STAY" ] || cd "${HOME:-/}" 2>/dev/null
unset EXECD_SHELL_STAY
if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi"#;

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Server to connect to (`ws://HOST:PORT` or `wss://HOST:PORT`); defaults to $EXECD_URL.
    #[arg(long)]
    url: Option<String>,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Start in this directory instead of the remote home.
    #[arg(long)]
    cwd: Option<String>,
    /// Set a variable in the shell's environment (repeatable).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_assignment)]
    env: Vec<(String, String)>,
}

/// Run the shell; returns this program's exit code (the shell's).
pub async fn run(args: ShellArgs) -> u8 {
    let mut env = args.env;
    if args.cwd.is_some() {
        env.push(("EXECD_SHELL_STAY".into(), "1".into()));
    }
    run::run(RunArgs {
        url: args.url,
        connect: args.connect,
        tty: true,
        cwd: args.cwd.unwrap_or_else(|| "/".into()),
        env,
        command: vec!["/bin/sh".into(), "-c".into(), LOGIN_SCRIPT.into()],
    })
    .await
}
