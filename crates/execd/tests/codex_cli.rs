//! Compatibility with the real codex CLI: the npm registry's
//! `@openai/codex` Linux x64 builds (installed by `scripts/test` under
//! `$HOME/.cache/execd-codex/VERSION`, or `$EXECD_CODEX_DIR/VERSION`) run
//! `codex exec` with `CODEX_EXEC_SERVER_URL` pointing at `execd serve`, driven
//! by a stub model (support/codex_stub.rs) that asks for a shell command, a
//! PTY command typed into with `write_stdin`, and an `apply_patch` (0.169
//! offers it when a model catalog, support/codex_catalog.json, describes the
//! stub's model; 0.122 with `--enable apply_patch_freeform`). Each test
//! checks that the
//! commands ran under execd (process ancestry), that their output reached the
//! model, and that the shell command's environment equals the one codex's own
//! `codex exec-server` of the same version gives for the same request.

#[path = "support/codex_stub.rs"]
mod codex_stub;

use codex_stub::{tool_output, Script, StubModel, ToolCall};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const EXECD: &str = env!("CARGO_BIN_EXE_execd");
/// Every wait on a server or on `codex exec` is bounded by this.
const WAIT: Duration = Duration::from_secs(60);

/// The shell command: its environment between markers, then the pids from
/// the shell up to PID 1.
const ENV_COMMAND: &str = "echo ENV-BEGIN; env | sort; echo ENV-END; \
    echo ANCESTRY $(p=$$; while [ \"$p\" -gt 1 ]; do printf '%s ' $p; \
    p=$(awk '/^PPid:/{print $2}' /proc/$p/status); done)";
/// The PTY command: its ancestry, then `cat` echoing what is typed.
const PTY_COMMAND: &str = "echo ANCESTRY $(p=$$; while [ \"$p\" -gt 1 ]; do printf '%s ' $p; \
    p=$(awk '/^PPid:/{print $2}' /proc/$p/status); done); exec cat";
const TYPED: &str = "ping-from-the-model";
const PATCH: &str = "*** Begin Patch\n*** Add File: hello.txt\n+hi from the patch\n*** End Patch\n";

/// The codex binary of `version`, if installed.
fn codex_binary(version: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("EXECD_CODEX_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/execd-codex"),
    };
    let vendor = root
        .join(version)
        .join("node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl");
    // The binary moved from codex/codex (0.122) to bin/codex (0.169).
    [vendor.join("bin/codex"), vendor.join("codex/codex")]
        .into_iter()
        .find(|path| path.is_file())
}

/// A server under test: its process (killed on drop), its URL, and its
/// stderr (read to the end).
struct Server {
    child: Child,
    url: String,
    stderr: tokio::task::JoinHandle<String>,
}

impl Server {
    /// Stops the server with SIGTERM and returns everything it logged.
    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("server pid") as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("server did not stop in time")
            .expect("wait for server");
        tokio::time::timeout(WAIT, self.stderr)
            .await
            .expect("server stderr not closed in time")
            .expect("stderr reader")
    }
}

/// The environment both servers are started with, so the children's
/// environments can be compared.
fn server_env(command: &mut Command, home: &Path) {
    command
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .env("CODEX_HOME", home.join("codex-home"))
        .env("LANG", "C.UTF-8");
}

/// Starts `command` and reads the `ws://` URL it prints on stdout.
async fn start_server(mut command: Command) -> Server {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("spawn server");
    let mut stderr = child.stderr.take().expect("server stderr");
    let stderr = tokio::spawn(async move {
        let mut log = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut log).await;
        log
    });
    let stdout = child.stdout.take().expect("server stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.expect("read server stdout") {
            if line.starts_with("ws://") {
                return line;
            }
        }
        panic!("server exited without printing its URL");
    })
    .await
    .expect("server printed no URL in time");
    // Keep draining stdout so the server never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server { child, url, stderr }
}

/// The session id in codex's output for a running process.
fn session_id(output: &str) -> Option<u64> {
    let rest = &output[output.find("session ID ")? + "session ID ".len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The stub model's script: shell command, PTY command, typing, patch.
fn script(with_patch: bool) -> Script {
    Box::new(move |seen: &[Value]| {
        let function = |name: &str, arguments: Value| {
            Some(ToolCall::Function {
                name: name.to_string(),
                arguments,
            })
        };
        match seen.len() - 1 {
            0 => function("exec_command", json!({"cmd": ENV_COMMAND})),
            1 => function(
                "exec_command",
                json!({"cmd": PTY_COMMAND, "tty": true, "yield_time_ms": 1000}),
            ),
            2 => {
                let id = session_id(&tool_output(seen, "call1")?)?;
                // A line, then Ctrl-D at the start of the next: cat ends.
                let chars = format!("{TYPED}\n\u{4}");
                function(
                    "write_stdin",
                    json!({"session_id": id, "chars": chars, "yield_time_ms": 1000}),
                )
            }
            3 if with_patch => Some(ToolCall::Custom {
                name: "apply_patch".to_string(),
                input: PATCH.to_string(),
            }),
            _ => None,
        }
    })
}

/// What one `codex exec` run showed the model.
struct Run {
    requests: Vec<Value>,
}

impl Run {
    fn output(&self, call_id: &str) -> String {
        tool_output(&self.requests, call_id).unwrap_or_else(|| {
            panic!(
                "the model never saw the output of {call_id}: {:#?}",
                self.requests.len()
            )
        })
    }
}

/// Runs `codex exec` once against the exec server at `url`.
async fn codex_exec(codex: &Path, version: &Version, url: &str, dir: &Path, work: &Path) -> Run {
    let stub = StubModel::start(script(version.patch)).await;
    let provider = format!(
        "model_providers.stub={{name=\"stub\",base_url=\"{}\",wire_api=\"responses\",env_key=\"STUB_KEY\"}}",
        stub.base_url
    );
    let mut command = Command::new(codex);
    command
        .current_dir(work)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", dir)
        .env("CODEX_HOME", dir.join("client-home"))
        .env("STUB_KEY", "stub")
        .env("CODEX_EXEC_SERVER_URL", url)
        .args([
            "exec",
            "--skip-git-repo-check",
            "--disable",
            "plugins",
            "--disable",
            "apps",
        ])
        .args(version.extra_args)
        .args(
            version
                .catalog
                .iter()
                .flat_map(|catalog| ["-c".to_string(), catalog_setting(catalog)]),
        )
        .args(["-s", "danger-full-access", "-m", "gpt-5"])
        .args(["-c", "model_provider=stub", "-c", &provider])
        .arg("run the tools")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    std::fs::create_dir_all(dir.join("client-home")).expect("client home");
    let child = command.spawn().expect("spawn codex exec");
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("codex exec did not finish in time")
        .expect("wait for codex exec");
    assert!(
        output.status.success(),
        "codex exec failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Run {
        requests: stub.requests(),
    }
}

/// The pids on the `ANCESTRY` line of a command's output.
fn ancestry(output: &str) -> Vec<u32> {
    let line = output
        .lines()
        .find_map(|line| line.strip_prefix("ANCESTRY"))
        .unwrap_or_else(|| panic!("no ANCESTRY line in {output}"));
    line.split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

/// The variables between `ENV-BEGIN` and `ENV-END`.
fn environment(output: &str) -> BTreeMap<String, String> {
    let begin = output.find("ENV-BEGIN\n").expect("ENV-BEGIN") + "ENV-BEGIN\n".len();
    let end = output.find("ENV-END").expect("ENV-END");
    output[begin..end]
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// A codex version under test and what it needs.
struct Version {
    number: &'static str,
    extra_args: &'static [&'static str],
    /// Whether this version offers `apply_patch` to the stub model.
    patch: bool,
    /// A model catalog (under tests/support) describing the stub's model,
    /// for versions that take the tools they offer from the model's entry.
    catalog: Option<&'static str>,
}

/// `model_catalog_json="…/tests/support/NAME"` for `-c`.
fn catalog_setting(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name);
    format!("model_catalog_json=\"{}\"", path.display())
}

/// Checks one server's run: each command under `server_pid`, the output
/// back to the model. Returns the shell command's environment.
fn check_run(
    run: &Run,
    server_pid: u32,
    version: &Version,
    work: &Path,
) -> BTreeMap<String, String> {
    let shell = run.output("call0");
    assert!(
        ancestry(&shell).contains(&server_pid),
        "shell command not under the server {server_pid}: {shell}"
    );
    let pty = run.output("call1");
    assert!(
        ancestry(&pty).contains(&server_pid),
        "PTY command not under the server {server_pid}: {pty}"
    );
    let typed = run.output("call2");
    assert!(
        typed.contains(TYPED),
        "the PTY did not echo what was typed: {typed}"
    );
    if version.patch {
        let patched = run.output("call3");
        let file = std::fs::read_to_string(work.join("hello.txt"))
            .unwrap_or_else(|error| panic!("apply_patch wrote no hello.txt ({error}): {patched}"));
        assert_eq!(file, "hi from the patch\n", "model saw: {patched}");
        std::fs::remove_file(work.join("hello.txt")).expect("remove hello.txt");
    }
    environment(&shell)
}

async fn codex_runs_its_tools_through_execd(version: Version) {
    let Some(codex) = codex_binary(version.number) else {
        // Straight to the stderr handle: libtest captures eprintln! of a
        // passing test, and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "\n\n!!! SKIPPED: codex {} is not installed under $EXECD_CODEX_DIR or $HOME/.cache/execd-codex \
             (scripts/test installs it with npm) !!!\n\n",
            version.number
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(dir.path().join("codex-home")).expect("codex home");
    std::fs::create_dir_all(&work).expect("work dir");

    let mut execd = Command::new(EXECD);
    execd.args(["serve", "--listen", "ws://127.0.0.1:0", "--no-auth"]);
    execd.args(["--log-format", "json"]);
    server_env(&mut execd, dir.path());
    let execd = start_server(execd).await;
    let run = codex_exec(&codex, &version, &execd.url, dir.path(), &work).await;
    let execd_pid = execd.child.id().expect("execd pid");
    let ours = check_run(&run, execd_pid, &version, &work);
    if version.patch {
        // The patch was applied by execd: its audit log has the write.
        let log = execd.stop().await;
        let hello = work.join("hello.txt");
        let written = log.lines().any(|line| {
            let event: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            let fields = if event["fields"].is_object() {
                &event["fields"]
            } else {
                &event
            };
            fields["event"] == "fs.change"
                && fields["operation"] == "fs/writeFile"
                && fields["path"] == hello.to_string_lossy().as_ref()
        });
        assert!(
            written,
            "execd's audit log has no fs/writeFile of {hello:?}:\n{log}"
        );
    }

    let mut reference = Command::new(&codex);
    reference.args(["exec-server", "--listen", "ws://127.0.0.1:0"]);
    server_env(&mut reference, dir.path());
    let reference = start_server(reference).await;
    let run = codex_exec(&codex, &version, &reference.url, dir.path(), &work).await;
    let reference_pid = reference.child.id().expect("reference pid");
    let theirs = check_run(&run, reference_pid, &version, &work);

    // The codex client names its session in the `env` it sends: a fresh id
    // per `codex exec`, so the two runs differ there and only there. Each
    // must be present on both sides; the values are not compared.
    let (mut ours, mut theirs) = (ours, theirs);
    for per_session in ["CODEX_THREAD_ID", "CODEX_SESSION_ID"] {
        assert_eq!(
            ours.remove(per_session).is_some(),
            theirs.remove(per_session).is_some(),
            "{per_session} on one side only"
        );
    }
    assert!(
        ours.contains_key("HOME") && ours.contains_key("PATH"),
        "{ours:?}"
    );
    assert_eq!(
        ours, theirs,
        "the shell command's environment under execd (left) and codex exec-server {} (right)",
        version.number
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_0_169_runs_shell_pty_and_patch_through_execd() {
    codex_runs_its_tools_through_execd(Version {
        number: "0.169.0",
        extra_args: &["--disable", "remote_plugin"],
        // 0.169 offers apply_patch when the model's catalog entry asks for
        // it (`apply_patch_tool_type`); a custom provider's model has no
        // entry unless the configuration names a catalog.
        patch: true,
        catalog: Some("codex_catalog.json"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_0_122_runs_shell_pty_and_patch_through_execd() {
    codex_runs_its_tools_through_execd(Version {
        number: "0.122.0",
        extra_args: &["--enable", "apply_patch_freeform"],
        patch: true,
        catalog: None,
    })
    .await;
}
