//! What `execd run` and `execd shell` start on the server, as ssh decides
//! it: the command line (the words joined and run by the remote account's
//! shell with `-c`, argv as given under `--exec`, or the account's login
//! shell), the environment (`HOME`, `USER`, `LOGNAME`, `SHELL` from the
//! account, `PATH`, `LANG`/`LC_*` from here, `TERM` under a PTY, then
//! `--env`), the default working directory (the account's home), and the
//! exit code of a command that could not be started (127 not found, 126 not
//! executable, as shells answer).

use std::collections::HashMap;

use execd_client::EnvError;
use execd_protocol::envelope::Account;

/// `PATH` of the remote process unless `--env PATH=...` says otherwise.
pub const DEFAULT_PATH: &str = execd_protocol::process::DEFAULT_PATH;
/// `TERM` of a PTY process when the local one is not set.
const DEFAULT_TERM: &str = "xterm-256color";
/// The shell when the server does not say which is the account's.
pub const FALLBACK_SHELL: &str = "/bin/sh";
/// Exit code of a command that was not found (as shells give).
pub const EXIT_NOT_FOUND: u8 = 127;
/// Exit code of a command that was found but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: u8 = 126;

/// A login shell for servers that do not report their account (older
/// execd): the remote side finds its home, goes there unless `--cwd` was
/// given, and picks bash, else sh.
fn fallback_login_script(cwd_given: bool) -> String {
    let home = r#": "${HOME:=$(getent passwd "$(id -u)" 2>/dev/null | cut -d: -f6)}"; export HOME"#;
    let cd = if cwd_given {
        ""
    } else {
        "cd \"${HOME:-/}\" 2>/dev/null\n"
    };
    format!(
        "{home}\n{cd}if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi"
    )
}

/// What to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// Like ssh: the words joined with single spaces, run by the account's
    /// shell as `SHELL -c "<words>"` (pipes, globs, `&&` work).
    ShellCommand(Vec<String>),
    /// The words as argv, with no shell (`--exec`).
    Exec(Vec<String>),
    /// The account's shell as a login shell (`argv[0]` is `-NAME`).
    LoginShell,
}

impl Launch {
    /// argv and `arg0` of the process on a server with `account`.
    pub fn argv(
        &self,
        account: Option<&Account>,
        cwd_given: bool,
    ) -> (Vec<String>, Option<String>) {
        let shell = account.map_or(FALLBACK_SHELL, |a| a.shell.as_str());
        match self {
            Launch::ShellCommand(words) => (
                vec![shell.to_string(), "-c".to_string(), words.join(" ")],
                None,
            ),
            Launch::Exec(words) => (words.clone(), None),
            Launch::LoginShell if account.is_some() => {
                let name = shell.rsplit('/').next().unwrap_or(shell);
                (vec![shell.to_string()], Some(format!("-{name}")))
            }
            Launch::LoginShell => (
                vec![
                    FALLBACK_SHELL.into(),
                    "-c".into(),
                    fallback_login_script(cwd_given),
                ],
                None,
            ),
        }
    }
}

/// The working directory: `--cwd`, else the account's home, else `/`.
pub fn cwd(given: Option<&str>, account: Option<&Account>) -> String {
    match given {
        Some(cwd) => cwd.to_string(),
        None => account.map_or("/", |a| a.home.as_str()).to_string(),
    }
}

/// The process's environment, as sshd builds it: the account's `HOME`,
/// `USER`, `LOGNAME` and `SHELL`, `PATH`, this side's `LANG` and `LC_*`
/// (ssh's default `SendEnv`), `TERM` under a PTY; then `overrides`.
pub fn environment(
    account: Option<&Account>,
    tty: bool,
    overrides: &[(String, String)],
) -> HashMap<String, String> {
    let local: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| name == "LANG" || name.starts_with("LC_"))
        .collect();
    let term = tty.then(|| {
        std::env::var("TERM")
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| DEFAULT_TERM.to_string())
    });
    build_environment(account, &local, term, overrides)
}

fn build_environment(
    account: Option<&Account>,
    local: &[(String, String)],
    term: Option<String>,
    overrides: &[(String, String)],
) -> HashMap<String, String> {
    let mut env = HashMap::new();
    if let Some(account) = account {
        env.insert("HOME".to_string(), account.home.clone());
        env.insert("USER".to_string(), account.user.clone());
        env.insert("LOGNAME".to_string(), account.user.clone());
        env.insert("SHELL".to_string(), account.shell.clone());
    }
    env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
    env.extend(local.iter().cloned());
    if let Some(term) = term {
        env.insert("TERM".to_string(), term);
    }
    env.extend(overrides.iter().cloned());
    env
}

/// `K=V` of `--env`.
pub fn parse_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected K=V, got {text:?}")),
    }
}

/// One `--env` value: a variable (`K=V`) or an environment's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvArg {
    Variable(String, String),
    Environment(String),
}

/// `K=V` is a variable; a value without `=` names an environment.
pub fn parse_env_arg(text: &str) -> Result<EnvArg, String> {
    if text.contains('=') {
        let (key, value) = parse_assignment(text)?;
        return Ok(EnvArg::Variable(key, value));
    }
    execd_client::environments_file::check_name(text)
        .map(|()| EnvArg::Environment(text.to_string()))
        .map_err(|_| {
            format!("expected K=V (a variable) or NAME (an environment: letters, digits, '_', '.', '-'), got {text:?}")
        })
}

/// The `--env K=V` variables.
pub fn variables(env: &[EnvArg]) -> Vec<(String, String)> {
    env.iter()
        .filter_map(|arg| match arg {
            EnvArg::Variable(key, value) => Some((key.clone(), value.clone())),
            EnvArg::Environment(_) => None,
        })
        .collect()
}

/// The `--env NAME` environment, if one is named (at most one may be).
pub fn environment_name(env: &[EnvArg]) -> Result<Option<&str>, String> {
    let mut names = env.iter().filter_map(|arg| match arg {
        EnvArg::Environment(name) => Some(name.as_str()),
        EnvArg::Variable(..) => None,
    });
    let first = names.next();
    if let Some(second) = names.next() {
        return Err(format!(
            "--env names two environments ({:?} and {second:?}); give one (variables are --env K=V)",
            first.unwrap_or_default()
        ));
    }
    Ok(first)
}

/// The exit code for a start that failed with `err`: 127 for a program
/// that was not found, 126 for one that cannot be executed (execd's
/// messages `program "X" not found` and `program "X" is not executable`),
/// `None` for anything else (a failure of execd's own).
pub fn start_failure_code(err: &EnvError) -> Option<u8> {
    match err {
        EnvError::NotFound(_) => Some(EXIT_NOT_FOUND),
        EnvError::InvalidInput(message) if message.starts_with("program ") => {
            if message.ends_with(" not found") {
                Some(EXIT_NOT_FOUND)
            } else if message.contains(" is not executable") {
                Some(EXIT_NOT_EXECUTABLE)
            } else {
                None
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            user: "ann".into(),
            uid: 1000,
            home: "/home/ann".into(),
            shell: "/bin/zsh".into(),
        }
    }

    #[test]
    fn words_go_to_the_accounts_shell() {
        let words = vec![
            "echo".to_string(),
            "a b".to_string(),
            "|".to_string(),
            "wc".to_string(),
        ];
        let (argv, arg0) = Launch::ShellCommand(words.clone()).argv(Some(&account()), false);
        assert_eq!(argv, ["/bin/zsh", "-c", "echo a b | wc"]);
        assert_eq!(arg0, None);
        let (argv, _) = Launch::ShellCommand(words.clone()).argv(None, false);
        assert_eq!(argv[0], FALLBACK_SHELL);
        assert_eq!(Launch::Exec(words.clone()).argv(None, false).0, words);
        let (argv, arg0) = Launch::LoginShell.argv(Some(&account()), false);
        assert_eq!(
            (argv, arg0),
            (vec!["/bin/zsh".to_string()], Some("-zsh".to_string()))
        );
        assert!(Launch::LoginShell.argv(None, false).0[2].contains("cd "));
        assert!(!Launch::LoginShell.argv(None, true).0[2].contains("cd "));
    }

    #[test]
    fn environment_as_sshd_builds_it() {
        let local = [("LANG".to_string(), "C.UTF-8".to_string())];
        let env = build_environment(
            Some(&account()),
            &local,
            Some("xterm".into()),
            &[("PATH".into(), "/bin".into()), ("A".into(), "B=C".into())],
        );
        assert_eq!(env["HOME"], "/home/ann");
        assert_eq!(env["USER"], "ann");
        assert_eq!(env["LOGNAME"], "ann");
        assert_eq!(env["SHELL"], "/bin/zsh");
        assert_eq!(env["PATH"], "/bin");
        assert_eq!(env["LANG"], "C.UTF-8");
        assert_eq!(env["TERM"], "xterm");
        assert_eq!(env["A"], "B=C");
        let bare = build_environment(None, &[], None, &[]);
        assert_eq!(bare.len(), 1, "{bare:?}");
        assert_eq!(cwd(None, Some(&account())), "/home/ann");
        assert_eq!(cwd(Some("/tmp"), Some(&account())), "/tmp");
        assert_eq!(cwd(None, None), "/");
        assert_eq!(parse_assignment("K=V=W"), Ok(("K".into(), "V=W".into())));
        assert!(parse_assignment("=V").is_err());
        assert!(parse_assignment("KV").is_err());
    }

    #[test]
    fn start_failures_map_to_shell_codes() {
        let invalid = |m: &str| EnvError::InvalidInput(m.to_string());
        assert_eq!(
            start_failure_code(&invalid("program \"nope\" not found")),
            Some(127)
        );
        assert_eq!(
            start_failure_code(&invalid(
                "program \"/tmp/x\" is not executable (permission denied)"
            )),
            Some(126)
        );
        assert_eq!(
            start_failure_code(&invalid("cwd \"/x\" does not exist")),
            None
        );
        assert_eq!(start_failure_code(&EnvError::Failed("x".into())), None);
    }
}
