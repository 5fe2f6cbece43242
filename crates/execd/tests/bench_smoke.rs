//! The benchmark runs end to end with tiny sizes, so it cannot rot. No
//! timing is asserted here: numbers belong in docs/BENCHMARKS.md.

use std::process::Command;

#[test]
fn bench_runs_with_tiny_sizes_and_reports_every_row() {
    let output = Command::new(env!("CARGO_BIN_EXE_execd"))
        .args([
            "bench",
            "--reps",
            "3",
            "--stream-mib",
            "1",
            "--fanout",
            "10",
            "--copy-mib",
            "1",
            "--copy-files",
            "20",
        ])
        .output()
        .expect("run execd bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    for row in [
        "| connect + initialize |",
        "| spawn /bin/true → closed |",
        "| PTY echo, 1 byte |",
        "| stream 1 MiB",
        "| fan-out: 10 × `sh -c printf` at once",
        "first replayed byte",
        "server RSS with 10 idle processes",
        "| cp 1 MiB up (ssh: scp) |",
        "| cp -r 20 small files up",
    ] {
        assert!(stdout.contains(row), "missing {row:?} in:\n{stdout}");
    }
}
