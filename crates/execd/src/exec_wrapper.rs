//! `execd exec-wrapper CMD ARGS...`: run one command through the exec
//! policy of the execd process tree it is in (for shells with an
//! `EXEC_WRAPPER` hook, and for scripts). It asks execd over the socket
//! named by `EXECD_ESCALATION_FD`; then it execs the command (allowed), exits
//! 1 saying why (denied), or exits with the status of the command execd ran
//! outside the sandbox (escalated). Outside a policied tree it just execs.
//! The stand-alone `execd-exec-wrapper FILE ARGV…` (src/bin) is the same
//! code in the form a patched shell's `EXEC_WRAPPER` hook calls.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use execd_policy::escalation::{self, Reply};

#[derive(Debug, Args)]
pub struct ExecWrapperArgs {
    /// The program and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Where `program` is: itself if it has a slash, else the first match on PATH.
fn resolve(program: &str) -> Option<String> {
    if program.contains('/') {
        return Some(program.to_string());
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(program))
        .find(|candidate| candidate.is_file())
        .map(|candidate| candidate.to_string_lossy().into_owned())
}

pub fn run(args: ExecWrapperArgs) -> ExitCode {
    let program = &args.command[0];
    let Some(path) = resolve(program) else {
        eprintln!("execd exec-wrapper: {program}: command not found");
        return ExitCode::from(127);
    };
    wrap(&path, &args.command)
}

/// Ask execd about running the file `path` with `argv` (argv[0] included),
/// then exec it, refuse, or end as the escalated command ended.
pub fn wrap(path: &str, argv: &[String]) -> ExitCode {
    let program = argv.first().map(String::as_str).unwrap_or(path);
    if let Some(socket) = escalation::socket_from_env() {
        let cwd = std::env::current_dir()
            .map(|dir| dir.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "/".into());
        let env: Vec<(String, String)> = std::env::vars().collect();
        match escalation::request(socket, path, argv, &cwd, &env) {
            Ok(Reply::Run) => {}
            Ok(Reply::Deny(_)) => {
                eprintln!("execd exec-wrapper: {program}: denied by the exec policy");
                return ExitCode::from(1);
            }
            Ok(Reply::Exited(code)) => return ExitCode::from(code.clamp(0, 255) as u8),
            Ok(Reply::Signaled(signal)) => {
                // Die the same way, so the caller sees the signal.
                if let Ok(signal) = nix::sys::signal::Signal::try_from(signal) {
                    // SAFETY: restoring the default disposition has no handler to race.
                    let _ = unsafe {
                        nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl)
                    };
                    let _ = nix::sys::signal::raise(signal);
                }
                return ExitCode::from((128 + signal).clamp(0, 255) as u8);
            }
            Err(err) => {
                eprintln!("execd exec-wrapper: cannot ask execd: {err}");
                return ExitCode::from(126);
            }
        }
    }
    let err = std::process::Command::new(path)
        .arg0(program)
        .args(argv.iter().skip(1))
        .exec();
    eprintln!("execd exec-wrapper: {program}: {err}");
    ExitCode::from(126)
}
