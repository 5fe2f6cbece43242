//! Resource limits of a real `execd serve` child, measured from outside
//! through `/proc/PID/status`: peak memory of a large `fs/writeFile`,
//! memory held for retained output across many finished processes, exit on
//! SIGTERM while a client has stopped reading, and big files moved by
//! `execd cp` and `execd run` through the frame and stdin-queue limits.

use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use execd_test_support::binary::next_line;
use execd_test_support::procs::child_of;
use execd_test_support::wire::Ws;
use execd_test_support::{b64, Execd, ExecdServer, RUN_TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

/// Every wait in these tests is bounded by this.
const TIMEOUT: Duration = RUN_TIMEOUT;
const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));
const MIB: u64 = 1024 * 1024;

/// A running `execd serve` (the supervisor) and, behind it, the server.
struct Serving {
    serve: ExecdServer,
    /// The server process, whose memory and limits are measured.
    server: u32,
}

impl Serving {
    fn url(&self) -> &str {
        &self.serve.url
    }
}

/// The server process behind the supervisor `supervisor`.
fn server_of(supervisor: &Child) -> u32 {
    let supervisor = supervisor.id().expect("execd serve running") as i32;
    child_of(supervisor).expect("execd serve forked the server") as u32
}

/// A running `execd serve` with `flags` (and `--no-auth`: these tests speak
/// raw WebSocket without a token; the limits are what they test).
async fn serve(flags: &[&str]) -> Serving {
    let mut flags = flags.to_vec();
    flags.push("--no-auth");
    let serve = EXECD.serve_with(&flags).await;
    let server = server_of(&serve.child);
    Serving { serve, server }
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server status");
    let line = status
        .lines()
        .find(|line| line.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in the server's status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number");
    kib * 1024
}

async fn connect(url: &str) -> Ws {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let (mut ws, _) = tokio::time::timeout(
        TIMEOUT,
        tokio_tungstenite::connect_async_with_config(url, Some(config), true),
    )
    .await
    .expect("connect in time")
    .expect("connect");
    send(
        &mut ws,
        json!({"id": 0, "method": "initialize", "params": {"clientName": "limits"}}),
    )
    .await;
    reply(&mut ws, 0).await.expect("initialize");
    ws
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::text(message.to_string()))
        .await
        .expect("send");
}

/// The reply to request `id` (notifications in between are skipped).
async fn reply(ws: &mut Ws, id: i64) -> Result<Value, Value> {
    loop {
        let message = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("no reply in time")
            .expect("connection closed")
            .expect("websocket error");
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
        if frame["id"] == json!(id) {
            return match frame.get("error") {
                Some(error) => Err(error.clone()),
                None => Ok(frame["result"].clone()),
            };
        }
    }
}

async fn call(ws: &mut Ws, id: i64, method: &str, params: Value) -> Result<Value, Value> {
    send(ws, json!({"id": id, "method": method, "params": params})).await;
    reply(ws, id).await
}

/// Run `argv` to its close without reading its output (it stays retained).
async fn run_quietly(ws: &mut Ws, id: i64, process: &str, argv: &[&str]) {
    let params =
        json!({"processId": process, "argv": argv, "cwd": "/", "env": {"PATH": "/usr/bin:/bin"}});
    call(ws, id, "process/start", params).await.expect("start");
    loop {
        let message = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("no close in time")
            .expect("connection closed")
            .expect("websocket error");
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(text.as_str()).unwrap();
        if frame["method"] == "process/closed" && frame["params"]["processId"] == process {
            return;
        }
    }
}

fn scratch(name: &str) -> String {
    let path =
        std::env::temp_dir().join(format!("execd-serve-limits-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn a_large_write_file_peaks_below_twice_its_payload() {
    let payload = 160 * MIB;
    let serving = serve(&["--max-frame-bytes", &(256 * MIB).to_string()]).await;
    let server = serving.server;
    let mut ws = connect(serving.url()).await;
    let dir = scratch("write");
    let path = format!("{dir}/big");
    let data: Vec<u8> = (0..payload).map(|i| (i ^ (i >> 11)) as u8).collect();
    let params = json!({"path": path, "dataBase64": b64(&data)});
    let before = status_bytes(server, "VmHWM");
    call(&mut ws, 1, "fs/writeFile", params)
        .await
        .expect("writeFile");
    let peak = status_bytes(server, "VmHWM");
    eprintln!(
        "fs/writeFile of {} MiB: server peak RSS {} MiB (before: {} MiB)",
        payload / MIB,
        peak / MIB,
        before / MIB
    );
    assert!(std::fs::read(&path).unwrap() == data, "file differs");
    assert!(
        peak <= 2 * payload,
        "peak RSS {} MiB for a {} MiB write",
        peak / MIB,
        payload / MIB
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn retained_output_of_many_finished_processes_stays_within_the_budget() {
    let budget = 64 * MIB;
    let serving = serve(&["--retain-total-bytes", &budget.to_string()]).await;
    let server = serving.server;
    let mut ws = connect(serving.url()).await;
    let baseline = status_bytes(server, "VmRSS");
    let mut highest = 0;
    for n in 0..100 {
        let id = format!("p{n}");
        run_quietly(&mut ws, n + 1, &id, &["head", "-c", "4M", "/dev/zero"]).await;
        highest = highest.max(status_bytes(server, "VmRSS"));
    }
    assert!(
        highest <= baseline + budget + 64 * MIB,
        "RSS reached {} MiB (baseline {} MiB, budget {} MiB)",
        highest / MIB,
        baseline / MIB,
        budget / MIB
    );
    // The newest process kept its 4 MiB; the oldest lost theirs.
    let newest = call(
        &mut ws,
        1000,
        "process/read",
        json!({"processId": "p99", "afterSeq": 0, "maxBytes": 1}),
    )
    .await
    .unwrap();
    assert_eq!(newest["closed"], json!(true));
    assert_ne!(newest["chunks"], json!([]), "p99 lost its output");
    let oldest = call(
        &mut ws,
        1001,
        "process/read",
        json!({"processId": "p0", "afterSeq": 0}),
    )
    .await
    .unwrap();
    assert_eq!(oldest["chunks"], json!([]), "p0 still retains output");
    drop(ws);
    // Once the connection is gone its memory goes back to the kernel (the
    // server's side of the close has no event to await from here: poll).
    let deadline = Instant::now() + TIMEOUT;
    let after = loop {
        let now = status_bytes(server, "VmRSS");
        if now <= baseline + 32 * MIB || Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "400 MiB of output through a {} MiB budget: server RSS {} MiB at start, at most {} MiB, {} MiB after the client left",
        budget / MIB,
        baseline / MIB,
        highest / MIB,
        after / MIB
    );
    assert!(
        after <= baseline + 32 * MIB,
        "RSS stayed at {} MiB",
        after / MIB
    );
}

/// Bytes the kernel holds for us to read on `fd`.
fn unread_bytes(fd: i32) -> usize {
    let mut waiting: nix::libc::c_int = 0;
    // SAFETY: FIONREAD stores one c_int through the valid pointer.
    let rc = unsafe { nix::libc::ioctl(fd, nix::libc::FIONREAD, &mut waiting) };
    assert_eq!(rc, 0, "FIONREAD");
    waiting as usize
}

#[tokio::test]
async fn sigterm_ends_the_server_while_a_client_has_stopped_reading() {
    let grace = Duration::from_millis(500);
    let mut serving = serve(&["--terminate-grace-ms", "500"]).await;
    let ws = connect(serving.url()).await;
    let fd = match ws.get_ref() {
        MaybeTlsStream::Plain(stream) => stream.as_raw_fd(),
        _ => unreachable!("plain ws://"),
    };
    // Requests whose (inline) error replies are a MiB each: the connection
    // blocks writing them once the socket buffers are full, and we read none.
    let id = "x".repeat(MIB as usize);
    let (mut sink, stream) = ws.split();
    let sending = tokio::spawn(async move {
        for n in 0..64 {
            let request = json!({"id": n + 1, "method": "process/signal", "params": {"processId": id, "signal": "TERM"}});
            if sink.send(Message::text(request.to_string())).await.is_err() {
                break;
            }
        }
        sink
    });
    // Wait (bounded) until the replies stop coming: the server is stuck.
    let deadline = Instant::now() + TIMEOUT;
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = unread_bytes(fd);
        if now >= 64 * 1024 && now == last {
            break;
        }
        last = now;
        assert!(
            Instant::now() < deadline,
            "the server never filled the socket"
        );
    }
    // To the supervisor, which passes it on to the server, as a service
    // manager would.
    let pid = Pid::from_raw(serving.serve.child.id().expect("running") as i32);
    let signalled = Instant::now();
    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::time::timeout(grace + Duration::from_secs(10), serving.serve.child.wait())
        .await
        .expect("execd serve still running after SIGTERM")
        .expect("wait");
    eprintln!("exited {:?} after SIGTERM ({status})", signalled.elapsed());
    assert!(signalled.elapsed() < grace + Duration::from_secs(6));
    drop((stream, sending));
}

#[tokio::test]
async fn files_larger_than_a_frame_move_in_pieces_and_a_whole_frame_is_refused() {
    let size = 100 * MIB as usize;
    let serving = serve(&[]).await;
    let url = serving.url().to_string();
    let dir = scratch("cp");
    let local = format!("{dir}/local.bin");
    let data: Vec<u8> = (0..size as u64)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&local, &data).unwrap();
    let cp = |from: String, to: String| EXECD.command(&["cp", &from, &to]);
    for (from, to) in [
        (local.clone(), format!("{url}:{dir}/remote.bin")),
        (format!("{url}:{dir}/remote.bin"), format!("{dir}/back.bin")),
    ] {
        let status = tokio::time::timeout(TIMEOUT, cp(from, to).status())
            .await
            .expect("execd cp in time")
            .expect("execd cp");
        assert!(status.success(), "execd cp failed");
    }
    assert!(
        std::fs::read(format!("{dir}/back.bin")).unwrap() == data,
        "copy differs"
    );
    // The same 100 MiB in one fs/writeFile is over the default frame limit
    // (sent from a task: the server stops reading at the frame's header).
    let ws = connect(&url).await;
    let params = json!({"path": format!("{dir}/whole.bin"), "dataBase64": b64(&data)});
    let request = json!({"id": 1, "method": "fs/writeFile", "params": params}).to_string();
    let (mut sink, mut stream) = ws.split();
    let sending = tokio::spawn(async move {
        let _ = sink.send(Message::text(request)).await;
    });
    let error = loop {
        let message = tokio::time::timeout(TIMEOUT, stream.next())
            .await
            .expect("no refusal in time")
            .expect("closed without a refusal")
            .expect("websocket error before the refusal");
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(frame["id"], json!(-1), "{frame}");
        break frame["error"].clone();
    };
    drop(sending);
    assert_eq!(error["data"]["limit"], json!("maxFrameBytes"), "{error}");
    assert_eq!(error["data"]["value"], json!(64 * MIB), "{error}");
    assert!(!std::path::Path::new(&format!("{dir}/whole.bin")).exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// The soft and hard open-file limits of `pid`.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut numbers = line["Max open files".len()..].split_whitespace();
    let soft = numbers.next().expect("soft").to_string();
    let hard = numbers.next().expect("hard").to_string();
    (soft, hard)
}

#[tokio::test]
async fn execd_serve_raises_its_open_file_limit_to_the_hard_one() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let low = 256.min(hard);
    let mut command = EXECD.command(&["serve", "--listen", "ws://127.0.0.1:0"]);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            setrlimit(Resource::RLIMIT_NOFILE, low, hard).map_err(std::io::Error::from)
        });
    }
    let mut supervisor = command.spawn().expect("spawn execd serve");
    let mut stdout = BufReader::new(supervisor.stdout.take().expect("stdout")).lines();
    next_line(&mut stdout)
        .await
        .expect("execd serve printed its URL");
    let (soft, _) = open_file_limits(server_of(&supervisor));
    // An unlimited hard limit stops at the kernel's ceiling.
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .expect("nr_open")
        .trim()
        .parse()
        .expect("a number");
    assert_eq!(
        soft,
        hard.min(nr_open).to_string(),
        "soft open-file limit not raised"
    );
}

#[tokio::test]
async fn execd_run_waits_out_a_full_stdin_queue() {
    let serving = serve(&["--max-stdin-queue-bytes", &MIB.to_string()]).await;
    let input: Vec<u8> = (0..20 * MIB).map(|i| (i % 251) as u8).collect();
    let mut child = EXECD
        .command(&[
            "run",
            "--url",
            serving.url(),
            "--exec",
            "--",
            "bash",
            "-c",
            "sleep 1; wc -c",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("execd run");
    let mut stdin = child.stdin.take().unwrap();
    let feeding = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        stdin.write_all(&input).await.expect("feed execd run");
    });
    let output = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .expect("execd run in time")
        .expect("execd run");
    feeding.await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        (20 * MIB).to_string()
    );
}
