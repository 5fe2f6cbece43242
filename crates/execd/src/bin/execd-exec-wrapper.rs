//! `execd-exec-wrapper FILE ARGV0 ARGS…`: the exec hook of patched shells
//! (codex's zsh fork sets nothing else: it runs `$EXEC_WRAPPER FILE ARGV…`
//! instead of exec'ing FILE). A policied tree gets `EXEC_WRAPPER` pointing
//! here; it asks execd exactly as `execd exec-wrapper` does, with FILE as
//! resolved by the shell and ARGV as given (ARGV0 included).

use std::process::ExitCode;

#[allow(dead_code)]
#[path = "../exec_wrapper.rs"]
mod exec_wrapper;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next() else {
        eprintln!("usage: execd-exec-wrapper FILE [ARGV0 ARGS...]");
        return ExitCode::from(2);
    };
    let mut argv: Vec<String> = args.collect();
    if argv.is_empty() {
        argv.push(file.clone());
    }
    exec_wrapper::wrap(&file, &argv)
}
