//! The exec policy whatever the server's privileges: `execd serve` run as
//! root without CAP_SYS_ADMIN (Docker's default for a root container, here
//! through `setpriv`) still installs the kernel guard (setting
//! `no_new_privs` first, as the kernel then requires), says so in
//! `initialize`, and decides execs.

use std::process::Stdio;

use execd_client::{ExecServerClient, RemoteEnvironment};
use execd_protocol::policy::{ExecPolicy, Rule, Verdict};
use execd_protocol::process::StartParams;
use execd_test_support::binary::next_line;
use execd_test_support::{collect_in_time, process_params, Client};
use tokio::io::{AsyncBufReadExt, BufReader};

const EXECD: &str = env!("CARGO_BIN_EXE_execd");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_works_without_cap_sys_admin() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to drop CAP_SYS_ADMIN alone");
        return;
    }
    let mut server = tokio::process::Command::new("setpriv")
        .args([
            "--bounding-set=-sys_admin",
            "--",
            EXECD,
            "serve",
            "--listen",
            "ws://127.0.0.1:0",
            // The raw client below sends no token; auth is not what this tests.
            "--no-auth",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("setpriv (util-linux)");
    let mut lines = BufReader::new(server.stdout.take().expect("stdout")).lines();
    let url = next_line(&mut lines).await.expect("execd printed its URL");
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.id().expect("pid")))
        .expect("server status");
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).expect("hex"))
        .expect("CapEff");
    assert_eq!(effective & (1 << 21), 0, "CAP_SYS_ADMIN must be gone");

    let mut raw = Client::connect(&url).await;
    let init = raw.initialize("nocap").await;
    assert_eq!(
        init["capabilities"]["execPolicy"], true,
        "the filter can be installed: say so ({init})"
    );
    let client = ExecServerClient::connect(&url).await.expect("connect");
    let env = RemoteEnvironment::new(client).into_environment();
    let params = StartParams {
        exec_policy: Some(ExecPolicy {
            rules: vec![Rule {
                prefix: vec!["rm".into()],
                decision: Verdict::Deny,
            }],
            default: Verdict::Allow,
            ask_timeout_ms: None,
        }),
        ..process_params(
            "nocap",
            &["bash", "-c", "echo ran; rm -f /tmp/none || echo rm-denied"],
        )
    };
    let mut started = env
        .exec
        .start(params)
        .await
        .expect("a policied start works");
    let done = collect_in_time(&mut started.events).await;
    assert_eq!(
        done.stdout_text(),
        "ran\nrm-denied\n",
        "stderr {}",
        done.stderr_text()
    );
}
