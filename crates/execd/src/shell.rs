//! `execd shell`: an interactive login shell on an execd server, like `ssh
//! host`. It is `execd run --tty` with the remote account's login shell as
//! the command (`argv[0]` `-bash` and so on, in the account's home): raw
//! mode, window-size forwarding, Ctrl-C reaching the remote program,
//! terminal restoration and the environment all come from `run`.

use clap::Args;

use crate::connect_args::ConnectArgs;
use crate::remote_command::{parse_env_arg, EnvArg};
use crate::run::{self, RunArgs};

#[derive(Debug, Args)]
#[command(after_long_help = SHELL_HELP)]
pub struct ShellArgs {
    /// Server to connect to (`ws://HOST:PORT`, `wss://HOST:PORT`, or
    /// `HOST:PORT` for ws://); defaults to $EXECD_URL.
    #[arg(long)]
    url: Option<String>,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Start in this directory instead of the remote home.
    #[arg(long)]
    cwd: Option<String>,
    /// `K=V`: set a variable in the shell's environment (repeatable).
    /// `NAME`: connect to the environment NAME of the environments file
    /// (as `execd run --env NAME`).
    #[arg(long = "env", value_name = "K=V|NAME", value_parser = parse_env_arg)]
    env: Vec<EnvArg>,
}

/// The man-page part of `execd shell --help`.
const SHELL_HELP: &str = "\\
The shell:
  The login shell of the account the server runs as (as the server reports
  it), started as a login shell (argv[0] \"-bash\", \"-zsh\", ...) under a
  pseudo-terminal, in the account's home directory unless --cwd is given.
  A server that does not report its account gets /bin/sh, which starts
  bash -l if there is one, else sh -l.

Environment:
  As execd run --tty: HOME, USER, LOGNAME and SHELL of the account, PATH,
  LANG and LC_* from this side, TERM from this side (else xterm-256color),
  then --env.

Signals:
  The local terminal is in raw mode while the shell runs: Ctrl-C, Ctrl-Z
  and Ctrl-\\ are bytes for the remote terminal, which signals its own
  foreground job. Window size changes are forwarded. SIGTERM or SIGHUP
  received here are sent to the remote shell; a second one terminates it
  (SIGTERM, then SIGKILL after the server's grace period).

Exit status:
  The shell's exit status (128+N if signal N ended it); 255 if execd
  itself failed (cannot connect, connection lost, server shut down).";

/// Run the shell; returns this program's exit code (the shell's).
pub async fn run(args: ShellArgs) -> u8 {
    let run_args = RunArgs {
        url: args.url,
        connect: args.connect,
        tty: true,
        exec: false,
        cwd: args.cwd,
        env: args.env,
        command: Vec::new(),
        login_shell: true,
    };
    run::run(run_args, "execd shell").await
}
