//! Today's codex dialect over a real socket, with the frames as codex 0.169
//! sends them (captured from the real client, then trimmed to one process
//! each): the handshake and `environment/info`, `environmentConfig/read`,
//! `process/start` with `file://` cwds, `envPolicy`, `metadata` and both
//! `sandbox` shapes, `process/signal` with `interrupt`, the newer result
//! fields, and clear errors for URIs that name no local path. The child
//! environment is compared with what codex's own server builds: the
//! server's environment through the policy, then `env`.

use std::collections::HashMap;
use std::path::Path;

use execd_test_support::wire::assert_error;
use execd_test_support::{start_server, Client, TempDir};
use serde_json::{json, Value};

fn uri(path: &Path) -> String {
    execd_protocol::path_uri::to_uri(path)
}

/// `process/start` as codex 0.169 sends it for `exec_command`.
fn codex_start(id: &str, argv: &[&str], cwd: &str) -> Value {
    json!({
        "processId": id,
        "metadata": {"threadId": "01a22c47-8868-74a1-8d4d-02fe361156ef", "toolCallId": "call0"},
        "argv": argv,
        "cwd": cwd,
        "envPolicy": {
            "inherit": "all",
            "ignoreDefaultExcludes": true,
            "exclude": ["CODEX_PERMISSION_PROFILE", "CODEX_VERSION",
                        "CODEX_APPLY_PATCH_PRESERVE_LINE_ENDINGS", "CODEX_PLUGIN_METRICS_OUTPUT"],
            "set": {},
            "includeOnly": []
        },
        "env": {"LC_ALL": "C.UTF-8", "PAGER": "cat", "TERM": "dumb", "NO_COLOR": "1",
                "CODEX_VERSION": "0.169.0", "CODEX_CI": "1"},
        "tty": false,
        "pipeStdin": false,
        "arg0": null,
        "sandbox": null,
        "enforceManagedNetwork": false,
        "managedNetwork": null
    })
}

/// `env -0` output as a map.
fn env_map(output: &[u8]) -> HashMap<String, String> {
    output
        .split(|b| *b == 0)
        .filter(|entry| !entry.is_empty())
        .filter_map(|entry| {
            let text = String::from_utf8_lossy(entry);
            let (k, v) = text.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// What codex's own server gives the child for [`codex_start`]'s policy:
/// this process's environment (the server runs in it), minus the excluded
/// names, plus `env`.
fn expected_env(start: &Value) -> HashMap<String, String> {
    let excluded: Vec<String> = start["envPolicy"]["exclude"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_ascii_lowercase())
        .collect();
    let mut env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| !excluded.contains(&k.to_ascii_lowercase()))
        .collect();
    for (k, v) in start["env"].as_object().unwrap() {
        env.insert(k.clone(), v.as_str().unwrap().to_string());
    }
    env
}

#[tokio::test]
async fn handshake_and_environment_info_describe_this_machine() {
    let server = start_server().await;
    let (mut client, init) = Client::connect_as_codex(&server.url()).await;
    let info = &init["environmentInfo"];
    let shell = info["shell"]["path"].as_str().expect("shell path");
    assert!(Path::new(shell).exists(), "{info}");
    assert!(info["shell"]["name"].is_string());
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(info["cwd"], json!(uri(&cwd)));
    assert_eq!(info["platformOs"], "linux");
    assert_eq!(info["capabilities"]["fsWatchMissing"], true);
    assert_eq!(info["capabilities"]["environmentConfigRead"], true);
    assert_eq!(info["capabilities"]["fileWriteStreaming"], false);
    let again = client
        .call("environment/info", json!({}))
        .await
        .expect("environment/info");
    assert_eq!(&again, info);
    let status = client
        .call("environment/status", json!({}))
        .await
        .expect("environment/status");
    assert_eq!(status, json!({"status": "ready"}));
    // What execd leaves out says why.
    let err = client
        .call_expect_error(
            "fs/writeBlock",
            json!({"handleId": "h", "offset": 0, "chunk": ""}),
        )
        .await;
    assert_error(
        &err,
        -32601,
        &["fs/writeBlock", "fs/writeFile"],
        "writeBlock",
    );
    // http/request is served now (codex_http.rs): bad params are -32602.
    let err = client.call_expect_error("http/request", json!({})).await;
    assert_error(&err, -32602, &["http/request"], "http/request");
}

#[tokio::test]
async fn environment_config_read_answers_with_no_layers() {
    let server = start_server().await;
    let (mut client, _) = Client::connect_as_codex(&server.url()).await;
    let dir = TempDir::new("cfg");
    let result = client
        .call(
            "environmentConfig/read",
            json!({"cwd": uri(dir.path()), "configPaths": [["mcp_servers"]],
                   "requirementsPaths": [["mcp_servers"]]}),
        )
        .await
        .expect("environmentConfig/read");
    assert_eq!(
        result["config"],
        json!({"layers": [], "cloudInsertionIndex": 0})
    );
    assert_eq!(
        result["requirements"],
        json!({"layers": [], "cloudInsertionIndex": 0})
    );
    assert!(result["hostname"].is_string());
    let err = client
        .call_expect_error(
            "environmentConfig/read",
            json!({"cwd": uri(dir.path()), "configPaths": [], "requirementsPaths": []}),
        )
        .await;
    assert_error(&err, -32602, &["configPaths"], "nothing asked for");
    let err = client
        .call_expect_error("environmentConfig/read", json!({"cwd": "file:///"}))
        .await;
    assert_error(&err, -32602, &["configPaths"], "missing field");
}

#[tokio::test]
async fn codex_start_runs_in_the_uri_cwd_with_codexs_environment() {
    let server = start_server().await;
    let (mut client, _) = Client::connect_as_codex(&server.url()).await;
    let dir = TempDir::new("cwd é x");
    let start = codex_start("env", &["env", "-0"], &uri(dir.path()));
    assert!(start["cwd"].as_str().unwrap().contains("%20"), "{start}");
    let result = client.start(start.clone()).await;
    assert_eq!(result, json!({"processId": "env", "sandboxType": "none"}));
    let got = env_map(&client.wait_closed("env").await.stdout);
    assert_eq!(got, expected_env(&start));
    // Excluded from what is inherited, but `env` lays codex's own on top.
    assert_eq!(got["CODEX_VERSION"], "0.169.0");

    let pwd = codex_start("pwd", &["pwd", "-P"], &uri(dir.path()));
    client.start(pwd).await;
    let out = client.wait_closed("pwd").await.stdout_str();
    assert_eq!(
        out.trim_end(),
        std::fs::canonicalize(dir.path())
            .unwrap()
            .display()
            .to_string()
    );
}

#[tokio::test]
async fn seed_generation_start_with_env_policy_and_without() {
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;
    // codex 0.122: plain cwd, the same envPolicy.
    let mut start = codex_start("old", &["env", "-0"], "/");
    for field in [
        "metadata",
        "sandbox",
        "enforceManagedNetwork",
        "managedNetwork",
    ] {
        start.as_object_mut().unwrap().remove(field);
    }
    let result = client.start(start.clone()).await;
    assert_eq!(
        result,
        json!({"processId": "old"}),
        "no sandboxType for plain paths"
    );
    assert_eq!(
        env_map(&client.wait_closed("old").await.stdout),
        expected_env(&start)
    );

    // Without envPolicy, env is the whole environment.
    start["processId"] = json!("bare");
    start.as_object_mut().unwrap().remove("envPolicy");
    client.start(start.clone()).await;
    let got = env_map(&client.wait_closed("bare").await.stdout);
    let given: HashMap<String, String> = start["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(got, given);

    // inherit "core" with the default excludes, include-only and set.
    start["processId"] = json!("core");
    start["env"] = json!({});
    start["envPolicy"] = json!({"inherit": "core", "ignoreDefaultExcludes": false,
        "exclude": [], "set": {"MY_TOKEN": "set-wins", "EXTRA": "x"}, "includeOnly": ["PATH", "MY_*"]});
    client.start(start).await;
    let got = env_map(&client.wait_closed("core").await.stdout);
    let mut keys: Vec<&str> = got.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["MY_TOKEN", "PATH"]);
    assert_eq!(got["PATH"], std::env::var("PATH").unwrap());
}

#[tokio::test]
async fn uris_that_name_no_local_path_are_refused_by_name() {
    let server = start_server().await;
    let (mut client, _) = Client::connect_as_codex(&server.url()).await;
    for (cwd, needle) in [
        ("http://example.com/tmp", "http"),
        ("file://otherhost/tmp", "otherhost"),
        ("file:tmp", "relative"),
        ("file:///tmp?x=1", "query"),
    ] {
        let err = client
            .call_expect_error("process/start", codex_start("bad", &["true"], cwd))
            .await;
        assert_error(&err, -32602, &[cwd, needle], cwd);
    }
    let err = client
        .call_expect_error(
            "process/start",
            codex_start("gone", &["true"], "file:///no/such/dir"),
        )
        .await;
    assert_error(&err, -32602, &["/no/such/dir"], "missing cwd");
    // The connection keeps working.
    client.start(codex_start("ok", &["true"], "file:///")).await;
    assert_eq!(client.wait_closed("ok").await.exit_code, Some(0));
}

#[tokio::test]
async fn signal_interrupt_and_the_newer_read_fields() {
    let server = start_server().await;
    let (mut client, _) = Client::connect_as_codex(&server.url()).await;
    let mut start = codex_start("sleeper", &["sleep", "30"], "file:///");
    start["pipeStdin"] = json!(true);
    client.start(start).await;
    let result = client
        .call(
            "process/signal",
            json!({"processId": "sleeper", "signal": "interrupt"}),
        )
        .await
        .expect("process/signal");
    assert_eq!(result["running"], true);
    let done = client.wait_closed("sleeper").await;
    assert_eq!(done.signal.as_deref(), Some("SIGINT"));
    let read = client
        .call(
            "process/read",
            json!({"processId": "sleeper", "afterSeq": 0, "maxBytes": null, "waitMs": 0}),
        )
        .await
        .expect("process/read");
    assert_eq!(read["sandboxDenied"], false);
    assert_eq!(read["failure"], Value::Null);
    assert_eq!(read["exited"], true);
    let err = client
        .call_expect_error(
            "process/signal",
            json!({"processId": "sleeper", "signal": "bogus"}),
        )
        .await;
    assert_error(&err, -32602, &["bogus"], "unknown signal");
}

/// codex's permission profile with these filesystem entries.
fn profile(entries: Value, network: &str, root: &Path) -> Value {
    json!({
        "permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": entries},
                        "network": network},
        "cwd": uri(root),
        "workspaceRoots": [uri(root)],
        "windowsSandboxLevel": "disabled",
        "windowsSandboxProxySettingsMode": "reconcile",
        "useLegacyLandlock": false
    })
}

fn special(kind: Value, access: &str) -> Value {
    json!({"path": {"type": "special", "value": kind}, "access": access})
}

#[tokio::test]
async fn codex_sandbox_is_enforced_or_refused() {
    let server = start_server().await;
    let (mut client, init) = Client::connect_as_codex(&server.url()).await;
    let work = TempDir::new("ws");
    let outside = TempDir::new("outside");
    let write_both = format!(
        "echo in > '{}/f'; echo out > '{}/f'; exit 0",
        work.path().display(),
        outside.path().display()
    );
    let workspace_write = profile(
        json!([special(json!({"kind": "root"}), "read"),
               special(json!({"kind": "project_roots"}), "write"),
               {"path": {"type": "special", "value": {"kind": "project_roots", "subpath": ".git"}},
                "access": "read", "missing_path_behavior": "skip"}]),
        "restricted",
        work.path(),
    );
    let mut start = codex_start("ws", &["bash", "-c", &write_both], &uri(work.path()));
    start["sandbox"] = workspace_write.clone();

    let features = &init["capabilities"]["sandbox"];
    if features["landlock"] != true || features["networkNamespace"] != true {
        // Without the kernel features the start fails saying so, and nothing runs.
        let err = client.call_expect_error("process/start", start).await;
        assert_error(&err, -32602, &["sandbox"], "unsupported kernel");
        assert!(!work.path().join("f").exists());
        return;
    }
    let result = client.start(start).await;
    assert_eq!(result["sandboxType"], "linuxSeccomp");
    client.wait_closed("ws").await;
    assert!(
        work.path().join("f").exists(),
        "the project root is writable"
    );
    assert!(!outside.path().join("f").exists(), "nothing else is");

    // A .git inside the root cannot be kept read-only: refused by name.
    std::fs::create_dir(work.path().join(".git")).unwrap();
    let mut start = codex_start("git", &["true"], &uri(work.path()));
    start["sandbox"] = workspace_write;
    let err = client.call_expect_error("process/start", start).await;
    assert_error(&err, -32602, &[".git", "read-only"], "carve-out");

    // Managed network and external sandboxes are refused, not ignored.
    let mut start = codex_start("net", &["true"], "file:///");
    start["enforceManagedNetwork"] = json!(true);
    let err = client.call_expect_error("process/start", start).await;
    assert_error(&err, -32602, &["enforceManagedNetwork"], "managed network");
    let mut start = codex_start("ext", &["true"], "file:///");
    start["sandbox"] = json!({"permissions": {"type": "external", "network": "restricted"}});
    let err = client.call_expect_error("process/start", start).await;
    assert_error(&err, -32602, &["external"], "external sandbox");

    // execd's own sandbox shape still works on the same method.
    let mut start = codex_start("own", &["bash", "-c", &write_both], "file:///");
    start["sandbox"] = json!({"writableRoots": [outside.path()]});
    client.start(start).await;
    client.wait_closed("own").await;
    assert!(outside.path().join("f").exists());
}
