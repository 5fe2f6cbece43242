//! codex's managed network over a real socket, as codex's client drives
//! it: `process/start` with `enforceManagedNetwork` and a `networkProxy`
//! launch config runs the tree behind execd's proxy; allowed domains pass,
//! denied ones are refused without a connection, the rest are asked with
//! `network/policyRequest` (answered `allow` or `deny` by the client, or
//! an error, which denies), and every decision arrives as a
//! `network/policyDecision`. Skipped, loudly, where the kernel cannot give
//! a tree a network namespace of its own.

use std::time::Duration;

use execd_test_support::{closing_reply, start_server, unb64, Client, HttpHost};
use serde_json::{json, Value};

const GREETING: &str = "hello from the host";

/// What a run left: stdout, the policy requests asked, the decisions.
struct Run {
    stdout: String,
    requests: Vec<Value>,
    decisions: Vec<Value>,
}

/// Read frames until process `id` closed, answering each
/// `network/policyRequest` with the next of `answers` (a result, or an
/// error object under `"error"`).
async fn drive(client: &mut Client, id: &str, mut answers: Vec<Value>) -> Run {
    answers.reverse();
    let mut run = Run {
        stdout: String::new(),
        requests: Vec::new(),
        decisions: Vec::new(),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let frame = tokio::time::timeout_at(deadline, client.recv_frame())
            .await
            .expect("the process closed in time");
        let method = frame["method"].as_str().unwrap_or_default();
        match method {
            "network/policyRequest" => {
                run.requests.push(frame["params"].clone());
                let answer = answers.pop().expect("an answer for every request");
                let reply = match answer.get("error") {
                    Some(error) => json!({"id": frame["id"], "error": error}),
                    None => json!({"id": frame["id"], "result": answer}),
                };
                client.send_raw(&reply.to_string()).await;
            }
            "network/policyDecision" => run.decisions.push(frame["params"].clone()),
            "process/output"
                if frame["params"]["processId"] == id && frame["params"]["stream"] == "stdout" =>
            {
                let chunk = unb64(&frame["params"]["chunk"]);
                run.stdout.push_str(&String::from_utf8_lossy(&chunk));
            }
            "process/closed" if frame["params"]["processId"] == id => return run,
            _ => {}
        }
    }
}

fn start(id: &str, script: &str, network_proxy: Value) -> Value {
    json!({
        "processId": id,
        "argv": ["bash", "-c", script],
        "cwd": "file:///tmp",
        "env": {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C"},
        "tty": false,
        "pipeStdin": false,
        "arg0": null,
        "sandbox": null,
        "enforceManagedNetwork": true,
        "managedNetwork": null,
        "networkProxy": network_proxy,
    })
}

fn proxy(domains: Value) -> Value {
    json!({
        "proxy": {"enabled": true, "enableSocks5": true, "enableSocks5Udp": false,
                  "allowUpstreamProxy": false, "dangerouslyAllowAllUnixSockets": false,
                  "mode": "full", "domains": domains, "unixSockets": null,
                  "allowLocalBinding": false},
        "auditMetadata": {}, "environmentId": null, "executionId": null,
        "policyDecisionTimeoutMs": 10000
    })
}

fn curl(url: &str) -> String {
    format!("curl -sS -i --max-time 20 {url}; echo")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codexs_messages_drive_the_proxy() {
    let server = start_server().await;
    let (mut client, init) = Client::connect_as_codex(&server.url()).await;
    let namespaces = init["capabilities"]["sandbox"]["networkNamespace"] == true;
    assert_eq!(
        init["environmentInfo"]["capabilities"]["networkProxyLaunch"], namespaces,
        "{init}"
    );
    if !namespaces {
        eprintln!("\n\n!!! SKIPPED: no network namespaces here, which networkProxy needs\n");
        return;
    }
    let host = HttpHost::start(closing_reply(GREETING)).await;
    let port = host.port;
    let script = [
        curl(&format!("http://127.0.0.1:{port}/listed")),
        curl(&format!("http://deny.test:{port}/denied")),
        curl(&format!("http://localhost:{port}/asked-denied")),
        curl(&format!("http://localhost:{port}/asked-allowed")),
        curl(&format!("http://localhost:{port}/asked-error")),
    ]
    .join("; ");
    let domains = json!({"127.0.0.1": "allow", "**.deny.test": "deny"});
    let result = client
        .start(start("codex-net", &script, proxy(domains)))
        .await;
    assert_eq!(result["sandboxType"], "linuxSeccomp", "{result}");
    let answers = vec![
        json!({"decision": {"type": "deny", "reason": "not in the allowlist"}}),
        json!({"decision": {"type": "allow"}}),
        json!({"error": {"code": -32601, "message": "no decider"}}),
    ];
    let run = drive(&mut client, "codex-net", answers).await;

    assert_eq!(run.stdout.matches(GREETING).count(), 2, "{}", run.stdout);
    assert_eq!(
        run.stdout.matches("HTTP/1.1 403 Forbidden").count(),
        3,
        "{}",
        run.stdout
    );
    assert_eq!(host.connections(), 2);
    assert_eq!(run.requests.len(), 3, "{:?}", run.requests);
    assert_eq!(
        run.requests[0],
        json!({"processId": "codex-net", "request": {"protocol": "http", "host": "localhost", "port": port}})
    );
    let seen: Vec<(String, String, String)> = run
        .decisions
        .iter()
        .map(|d| {
            (
                d["host"].as_str().unwrap_or_default().to_string(),
                d["decision"].as_str().unwrap_or_default().to_string(),
                d["source"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expected = [
        ("127.0.0.1", "allow", "rule"),
        ("deny.test", "deny", "rule"),
        ("localhost", "deny", "decider"),
        ("localhost", "allow", "decider"),
        ("localhost", "deny", "timeout"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(h, d, s)| (h.to_string(), d.to_string(), s.to_string()))
        .collect();
    assert_eq!(seen, expected);
    let first = &run.decisions[0];
    assert_eq!(first["processId"], "codex-net");
    assert_eq!(first["scope"], "process");
    assert_eq!(first["protocol"], "http");
    assert_eq!(first["port"], port);
    assert!(
        first["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{first}"
    );
}

#[tokio::test]
async fn unservable_managed_network_forms_are_refused_by_name() {
    let server = start_server().await;
    let (mut client, _) = Client::connect_as_codex(&server.url()).await;
    let mut facts = start("facts", "true", Value::Null);
    facts["managedNetwork"] = json!({"loopbackPorts": [3128], "allowLocalBinding": false});
    let err = client.call_expect_error("process/start", facts).await;
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("managedNetwork"),
        "{err}"
    );
    let limited = start(
        "limited",
        "true",
        json!({"proxy": {"enabled": true, "mode": "limited"}}),
    );
    let err = client.call_expect_error("process/start", limited).await;
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("\"limited\""),
        "{err}"
    );
    // The connection goes on.
    let ran = client.run("after", &["echo", "ok"]).await;
    assert_eq!(ran.stdout_str(), "ok\n");
}
