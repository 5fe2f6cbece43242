//! Filesystem limits, tried as a hostile client would: whole-file reads
//! over the size cap (a sparse file far larger than memory), ranged reads
//! over it, and files that are not regular (`/dev/zero`, a FIFO with no
//! writer, a socket): each is refused at once with an error naming the
//! limit or the file type, and other filesystem calls keep working.

use execd_test_support::*;

use std::time::{Duration, Instant};

use execd_server::ServerConfig;
use serde_json::{json, Value};

const INVALID_PARAMS: i64 = -32602;

fn mkfifo(path: &str) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {path}");
}

fn assert_message(error: &Value, needles: &[&str]) {
    let message = error["message"].as_str().expect("message");
    for needle in needles {
        assert!(
            message.contains(needle),
            "{message:?} does not name {needle:?}"
        );
    }
}

fn assert_read_limit(error: &Value, max: u64) {
    assert_eq!(error["code"], json!(-32600), "{error}");
    assert_eq!(error["data"]["limit"], json!("maxReadBytes"), "{error}");
    assert_eq!(error["data"]["value"], json!(max), "{error}");
}

/// Answered within a few seconds (not after hanging, not after reading
/// gigabytes).
async fn quick_error(client: &mut Client, method: &str, params: Value) -> Value {
    let started = Instant::now();
    let error = client.call_expect_error(method, params).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{method} took {:?}",
        started.elapsed()
    );
    error
}

#[tokio::test]
async fn whole_file_reads_over_the_cap_point_at_ranged_reads() {
    let max = 1024 * 1024;
    let config = ServerConfig {
        max_read_bytes: max,
        ..ServerConfig::default()
    };
    let server = start_server_with(config).await;
    let mut client = Client::connect_initialized(&server.url()).await;
    let scratch = TempDir::new("fs-limits-cap");

    let at_cap = scratch.text("at-cap");
    std::fs::write(&at_cap, vec![1u8; max as usize]).unwrap();
    let read = client
        .call("fs/readFile", json!({"path": at_cap}))
        .await
        .expect("a file of exactly the cap");
    assert_eq!(unb64(&read["dataBase64"]).len(), max as usize);

    let over = scratch.text("over");
    std::fs::write(&over, vec![2u8; 2 * max as usize]).unwrap();
    let error = quick_error(&mut client, "fs/readFile", json!({"path": over})).await;
    assert_read_limit(&error, max);
    assert_message(&error, &[&over, "2097152 bytes", "offset", "length"]);

    // A sparse file far larger than memory is refused from its size alone.
    let sparse = scratch.text("sparse");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(5 << 30)
        .unwrap();
    let error = quick_error(&mut client, "fs/readFile", json!({"path": sparse})).await;
    assert_read_limit(&error, max);
    assert_message(&error, &["5368709120 bytes", "5 GiB"]);

    // Ranges: longer than the cap is refused, up to it works, and so does
    // an offset alone when the rest fits.
    let error = quick_error(
        &mut client,
        "fs/readFile",
        json!({"path": sparse, "offset": 0, "length": max + 1}),
    )
    .await;
    assert_read_limit(&error, max);
    assert_message(&error, &["length", &(max + 1).to_string()]);
    let piece = client
        .call(
            "fs/readFile",
            json!({"path": sparse, "offset": 4 << 30, "length": max}),
        )
        .await
        .expect("a piece of the sparse file");
    assert_eq!(unb64(&piece["dataBase64"]), vec![0u8; max as usize]);
    assert_eq!(piece["eof"], json!(false));
    let error = quick_error(
        &mut client,
        "fs/readFile",
        json!({"path": over, "offset": 1}),
    )
    .await;
    assert_read_limit(&error, max);
    assert_message(&error, &["offset 1"]);
    let tail = client
        .call("fs/readFile", json!({"path": over, "offset": max + 10}))
        .await
        .expect("the rest fits");
    assert_eq!(unb64(&tail["dataBase64"]).len(), max as usize - 10);
    assert_eq!(tail["eof"], json!(true));
    server.shutdown().await;
}

#[tokio::test]
async fn only_regular_files_are_read_or_written_and_nothing_hangs() {
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;
    let scratch = TempDir::new("fs-limits-special");
    let fifo = scratch.text("fifo");
    mkfifo(&fifo);
    let socket_path = scratch.text("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    let cases = [
        ("/dev/zero".to_string(), "a character device"),
        (fifo.clone(), "a FIFO"),
        (socket_path.clone(), "a socket"),
        (scratch.path().to_str().unwrap().to_string(), "a directory"),
    ];
    for (path, kind) in &cases {
        for params in [
            json!({"path": path}),
            json!({"path": path, "offset": 0, "length": 10}),
        ] {
            let error = quick_error(&mut client, "fs/readFile", params).await;
            assert_eq!(error["code"], json!(INVALID_PARAMS), "{error}");
            assert_message(&error, &[path, kind, "regular file"]);
        }
    }
    // Writing to a FIFO (no reader) or copying from it: refused, not stuck.
    let error = quick_error(
        &mut client,
        "fs/writeFile",
        json!({"path": fifo, "dataBase64": b64(b"x")}),
    )
    .await;
    assert_message(&error, &[&fifo, "a FIFO"]);
    let error = quick_error(
        &mut client,
        "fs/copy",
        json!({"sourcePath": fifo, "destinationPath": scratch.text("copy"), "recursive": false}),
    )
    .await;
    assert_message(&error, &[&fifo, "a FIFO"]);

    // Many at once do not pin the blocking pool: all answered, and other
    // calls still work.
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.push(
            client
                .send_request("fs/readFile", json!({"path": fifo}))
                .await,
        );
    }
    for id in ids {
        let error = client.response(id).await.expect_err("a FIFO read");
        assert_message(&error, &["a FIFO"]);
    }
    let file = scratch.text("plain");
    client
        .call(
            "fs/writeFile",
            json!({"path": file, "dataBase64": b64(b"fine")}),
        )
        .await
        .expect("a regular file");
    let read = client
        .call("fs/readFile", json!({"path": file}))
        .await
        .unwrap();
    assert_eq!(unb64(&read["dataBase64"]), b"fine");
    // /proc files report no size and are still read whole.
    let status = client
        .call("fs/readFile", json!({"path": "/proc/self/status"}))
        .await
        .expect("a /proc file");
    assert!(String::from_utf8_lossy(&unb64(&status["dataBase64"])).contains("Pid:"));
    server.shutdown().await;
}
